//! `GET /v1/kpis?week=2026-W47`: the weekly digest's KPIs as JSON (viewer role), the same JSON as
//! `syncwarden digest --format json` with the template summary (no LLM call per request).
//! `week` is an ISO week, `current` (the default: live KPIs of the week so far) or `last`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, AppState, Params};
use crate::digest::{self, Digest, DigestError, resolve_week};
use crate::domain::Role;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/kpis", get(kpis))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct KpiQuery {
    /// An ISO week like `2026-W47`, `current` (the default) or `last`.
    week: Option<String>,
}

/// The week's KPIs, each `{"value", "previous"}`, with the records synced per endpoint, the top
/// findings, the days and the template summary (viewer).
#[utoipa::path(get, path = "/v1/kpis", tag = "audit", params(KpiQuery),
    responses((status = 200, description = "The digest's JSON for the week (viewer)", body = serde_json::Value)))]
pub(super) async fn kpis(
    State(state): State<AppState>,
    caller: Caller,
    Params(query): Params<KpiQuery>,
) -> Result<Json<Digest>, ApiError> {
    caller.require(Role::Viewer)?;
    let settings = &state.digest;
    let zone = settings
        .zone()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let week = resolve_week(query.week.as_deref().unwrap_or("current"), &zone, now)
        .map_err(|e| ApiError::bad("week", e))?;
    let digest = digest::build(
        state.store.as_ref(),
        &zone,
        &settings.time_zone,
        week,
        now,
        settings.top_findings,
    )
    .await
    .map_err(|e| match e {
        DigestError::Store(e) => ApiError::Store(e),
        other => ApiError::Internal(other.to_string()),
    })?;
    Ok(Json(digest))
}
