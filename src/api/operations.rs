//! Operations on the sync: conflicts to settle, failed writes to re-drive, sync runs, and the
//! run-time switches of each endpoint.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState, Params, endpoint_param};
use crate::domain::{Endpoint, EndpointControl, Role};
use crate::sync::engine::{Resolution, SyncError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/conflicts", get(conflicts))
        .route("/v1/conflicts/{id}/resolve", post(resolve))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/redrive", post(redrive))
        .route("/v1/runs", get(runs))
        .route("/v1/endpoints", get(endpoints))
        .route("/v1/endpoints/{endpoint}/{switch}", post(switch))
        .route("/v1/policies", get(policies))
        .route("/v1/policies/{endpoint}", axum::routing::put(change_policy))
}

async fn policies(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let rules = state.engine()?.all_rules().await?;
    let history = state.store.policy_changes().await?;
    Ok(Json(json!({ "rules": rules, "history": history })))
}

/// Replaces one endpoint's rules as a whole; recorded with the token's holder and the time.
async fn change_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(endpoint): Path<String>,
    super::RawBody(body): super::RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = Endpoint::parse(&endpoint).map_err(|e| ApiError::bad("endpoint", e))?;
    let settings: Value = super::parse_body(&body)?;
    match state
        .engine()?
        .change_rules(endpoint, settings, &caller.name)
        .await
    {
        Ok(rules) => Ok(Json(json!({ "endpoint": endpoint, "rules": rules }))),
        Err(SyncError::InvalidPolicy { message, .. }) => {
            let (path, why) = message.split_once(": ").unwrap_or((".", &message));
            let field = if path == "." { "body" } else { path };
            Err(ApiError::bad(field, why))
        }
        Err(SyncError::NotConfigured(e)) => Err(ApiError::NotFound(format!("endpoint {e}"))),
        Err(e) => Err(e.into()),
    }
}

async fn conflicts(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let mut conflicts = state.store.open_conflicts().await?;
    if let Some(privacy) = state.masking_for(&caller) {
        for c in &mut conflicts {
            for value in [&mut c.base_value, &mut c.crm_value, &mut c.erp_value] {
                privacy.mask_value(c.endpoint, &c.field, value);
            }
        }
    }
    Ok(Json(json!({ "conflicts": conflicts })))
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    super::RawBody(body): super::RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let resolution: Resolution = super::parse_body(&body)?;
    let engine = state.engine()?;
    let conflict = engine
        .resolve_conflict(id, resolution, &caller.name)
        .await?;
    Ok(Json(json!({ "conflict": conflict })))
}

#[derive(Deserialize)]
struct EndpointFilter {
    endpoint: Option<String>,
}

async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<EndpointFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let endpoint = endpoint_param(filter.endpoint.as_deref())?;
    let mut letters: Vec<_> = state
        .store
        .open_dead_letters()
        .await?
        .into_iter()
        .filter(|d| endpoint.is_none_or(|e| e == d.endpoint))
        .collect();
    if let Some(privacy) = state.masking_for(&caller) {
        for d in &mut letters {
            privacy.mask_fields(d.endpoint, &mut d.fields);
        }
    }
    Ok(Json(json!({ "dead_letters": letters })))
}

async fn redrive(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<EndpointFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = endpoint_param(filter.endpoint.as_deref())?;
    let summary = state.engine()?.retry_failed(endpoint).await?;
    Ok(Json(json!({ "redrive": summary })))
}

#[derive(Deserialize)]
struct RunsQuery {
    limit: Option<u32>,
}

async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<RunsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let runs = state
        .store
        .recent_runs(q.limit.unwrap_or(100).min(1000))
        .await?;
    Ok(Json(json!({ "runs": runs })))
}

async fn endpoints(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(
        json!({"controls": state.store.endpoint_controls().await?}),
    ))
}

/// `pause`, `resume`, `dry-run` or `live`: a running scheduler picks it up at its next run.
async fn switch(
    State(state): State<AppState>,
    caller: Caller,
    Path((endpoint, switch)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = Endpoint::parse(&endpoint).map_err(|e| ApiError::bad("endpoint", e))?;
    let mut control = state
        .store
        .endpoint_controls()
        .await?
        .into_iter()
        .find(|c| c.endpoint == endpoint)
        .unwrap_or(EndpointControl {
            endpoint,
            paused: false,
            dry_run: false,
            changed_at: state.clock.now(),
            changed_by: String::new(),
        });
    match switch.as_str() {
        "pause" => control.paused = true,
        "resume" => control.paused = false,
        "dry-run" => control.dry_run = true,
        "live" => control.dry_run = false,
        other => {
            return Err(ApiError::bad(
                "switch",
                format!("unknown switch `{other}` (expected pause, resume, dry-run or live)"),
            ));
        }
    }
    control.changed_at = state.clock.now();
    control.changed_by = caller.name.clone();
    state.store.set_endpoint_control(&control).await?;
    Ok(Json(json!({ "control": control })))
}
