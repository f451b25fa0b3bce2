//! `POST /v1/erasure` (admin): a person's data erased from the event log and every snapshot.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use super::auth::Caller;
use super::{ApiError, AppState, RawBody, parse_body};
use crate::domain::Role;
use crate::privacy::{self, ErasureReport, ErasureRequest};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/erasure", post(erase))
}

/// `{"endpoint": "contacts", "key": "C0001/1", "reason": "..."}` or `{"email": "...", "reason":
/// "..."}`; answers what was replaced. Recorded with the token's holder as who asked.
#[utoipa::path(post, path = "/v1/erasure", tag = "operations",
    request_body = ErasureRequest,
    responses((status = 200, description = "What was replaced by the tombstone (admin)", body = ErasureReport),
        (status = 404, description = "No record holds the e-mail address", body = super::error::ErrorBody)))]
pub(super) async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Json<ErasureReport>, ApiError> {
    caller.require(Role::Admin)?;
    let request: ErasureRequest = parse_body(&body)?;
    let report = privacy::erase(
        state.store.as_ref(),
        &state.privacy,
        &state.clock,
        &request,
        &caller.name,
    )
    .await?;
    Ok(Json(report))
}
