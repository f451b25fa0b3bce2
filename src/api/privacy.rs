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
async fn erase(
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
