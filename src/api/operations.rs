//! Operations on the sync: conflicts to settle, failed writes to re-drive, sync runs, and the
//! run-time switches of each endpoint.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::paging::Paging;
use super::{ApiError, AppState, Params, PathParams, endpoint_param};
use crate::domain::{Conflict, DeadLetter, Endpoint, EndpointControl, PolicyChange, Role, SyncRun};
use crate::store::RunKey;
use crate::sync::engine::{RedriveSummary, Resolution, SyncError};
use crate::sync::rules::EndpointSettings;

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

#[derive(Serialize, ToSchema)]
pub(super) struct Policies {
    /// Every endpoint's ownership and conflict rules in force.
    rules: BTreeMap<Endpoint, EndpointSettings>,
    /// Changes made at run time, with who and when, oldest first, a page at a time.
    history: Vec<PolicyChange>,
    /// The `after` of the next page of `history`; none on the last page.
    next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PolicyQuery {
    /// Only the history of this endpoint (the rules are always every endpoint's).
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct EndpointPolicy {
    endpoint: Endpoint,
    rules: EndpointSettings,
}

/// Ownership and conflict rules, and their history a page at a time.
#[utoipa::path(get, path = "/v1/policies", tag = "operations", params(PolicyQuery),
    responses((status = 200, description = "Rules (viewer)", body = Policies),
        (status = 409, description = "The sync is not configured here", body = super::error::ErrorBody)))]
pub(super) async fn policies(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PolicyQuery>,
) -> Result<Json<Policies>, ApiError> {
    caller.require(Role::Viewer)?;
    let endpoint = endpoint_param(q.endpoint.as_deref())?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rules = state.engine()?.all_rules().await?;
    let rows = state
        .store
        .policy_changes_page(endpoint, &paging.query())
        .await?;
    let (history, next) = paging.finish(rows, |c| c.id);
    Ok(Json(Policies {
        rules,
        history,
        next,
    }))
}

/// Replaces one endpoint's rules as a whole (admin), in the shape of its
/// `[sync.endpoints.<name>]` table; recorded with the token's holder and the time.
#[utoipa::path(put, path = "/v1/policies/{endpoint}", tag = "operations",
    params(("endpoint" = Endpoint, Path, description = "The endpoint")),
    request_body = EndpointSettings,
    responses((status = 200, description = "The rules now in force", body = EndpointPolicy),
        (status = 404, description = "The endpoint is not synced here", body = super::error::ErrorBody),
        (status = 409, description = "The sync is not configured here", body = super::error::ErrorBody)))]
pub(super) async fn change_policy(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(endpoint): PathParams<String>,
    super::RawBody(body): super::RawBody,
) -> Result<Json<EndpointPolicy>, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = Endpoint::parse(&endpoint).map_err(|e| ApiError::bad("endpoint", e))?;
    let settings: serde_json::Value = super::parse_body(&body)?;
    match state
        .engine()?
        .change_rules(endpoint, settings, &caller.name)
        .await
    {
        Ok(rules) => Ok(Json(EndpointPolicy { endpoint, rules })),
        Err(SyncError::InvalidPolicy { message, .. }) => {
            let (path, why) = message.split_once(": ").unwrap_or((".", &message));
            let field = if path == "." { "body" } else { path };
            Err(ApiError::bad(field, why))
        }
        Err(SyncError::NotConfigured(e)) => Err(ApiError::NotFound(format!(
            "endpoint {e} is not synced here"
        ))),
        Err(e) => Err(e.into()),
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ConflictList {
    /// Oldest first.
    conflicts: Vec<Conflict>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

/// An endpoint filter and a page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only this endpoint.
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct OneConflict {
    conflict: Conflict,
}

/// Conflicts held for a person, with the base value and both sides' values, a page at a time.
#[utoipa::path(get, path = "/v1/conflicts", tag = "operations", params(ListQuery),
    responses((status = 200, description = "Open conflicts (viewer)", body = ConflictList)))]
pub(super) async fn conflicts(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<ConflictList>, ApiError> {
    caller.require(Role::Viewer)?;
    let endpoint = endpoint_param(q.endpoint.as_deref())?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rows = state
        .store
        .open_conflicts_page(endpoint, &paging.query())
        .await?;
    let (mut conflicts, next) = paging.finish(rows, |c| c.id);
    if let Some(privacy) = state.masking_for(&caller) {
        for c in &mut conflicts {
            for value in [&mut c.base_value, &mut c.crm_value, &mut c.erp_value] {
                privacy.mask_value(c.endpoint, &c.field, value);
            }
        }
    }
    Ok(Json(ConflictList { conflicts, next }))
}

/// Settles a conflict with the CRM's value, the ERP's, or a value of one's own (approver): it is
/// written where it differs and logged as `conflict_resolved` naming the token's holder.
#[utoipa::path(post, path = "/v1/conflicts/{id}/resolve", tag = "operations",
    params(("id" = i64, Path, description = "The conflict's id")), request_body = Resolution,
    responses((status = 200, description = "The conflict, resolved", body = OneConflict),
        (status = 404, description = "No such conflict", body = super::error::ErrorBody),
        (status = 409, description = "`already_resolved`, or the sync is not configured here, or the endpoint is busy", body = super::error::ErrorBody),
        (status = 502, description = "A connector refused the write", body = super::error::ErrorBody)))]
pub(super) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    super::Id(id): super::Id,
    super::RawBody(body): super::RawBody,
) -> Result<Json<OneConflict>, ApiError> {
    caller.require(Role::Approver)?;
    let resolution: Resolution = super::parse_body(&body)?;
    let engine = state.engine()?;
    let conflict = engine
        .resolve_conflict(id, resolution, &caller.name)
        .await?;
    Ok(Json(OneConflict { conflict }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EndpointFilter {
    /// Only this endpoint.
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeadLetterList {
    /// Oldest first.
    dead_letters: Vec<DeadLetter>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Redrive {
    redrive: RedriveSummary,
}

/// Failed writes waiting for a re-drive, a page at a time.
#[utoipa::path(get, path = "/v1/dead-letters", tag = "operations", params(ListQuery),
    responses((status = 200, description = "Open dead letters (viewer)", body = DeadLetterList)))]
pub(super) async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    caller.require(Role::Viewer)?;
    let endpoint = endpoint_param(q.endpoint.as_deref())?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rows = state
        .store
        .open_dead_letters_page(endpoint, &paging.query())
        .await?;
    let (mut letters, next) = paging.finish(rows, |d| d.id);
    if let Some(privacy) = state.masking_for(&caller) {
        for d in &mut letters {
            privacy.mask_fields(d.endpoint, &mut d.fields);
        }
    }
    Ok(Json(DeadLetterList {
        dead_letters: letters,
        next,
    }))
}

/// Sends every open dead letter (of one endpoint, or of all) again (admin).
#[utoipa::path(post, path = "/v1/dead-letters/redrive", tag = "operations", params(EndpointFilter),
    responses((status = 200, description = "What the re-drive did", body = Redrive),
        (status = 409, description = "The sync is not configured here, or the endpoint is busy", body = super::error::ErrorBody),
        (status = 502, description = "A connector failed", body = super::error::ErrorBody)))]
pub(super) async fn redrive(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<EndpointFilter>,
) -> Result<Json<Redrive>, ApiError> {
    caller.require(Role::Admin)?;
    let endpoint = endpoint_param(filter.endpoint.as_deref())?;
    let summary = state.engine()?.retry_failed(endpoint).await?;
    Ok(Json(Redrive { redrive: summary }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// Only this endpoint's runs.
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RunList {
    /// Newest first.
    runs: Vec<SyncRun>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ControlList {
    controls: Vec<EndpointControl>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct OneControl {
    control: EndpointControl,
}

/// Sync runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "operations", params(RunsQuery),
    responses((status = 200, description = "Sync runs (viewer)", body = RunList)))]
pub(super) async fn runs(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<RunsQuery>,
) -> Result<Json<RunList>, ApiError> {
    caller.require(Role::Viewer)?;
    let endpoint = endpoint_param(q.endpoint.as_deref())?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rows = state.store.runs_page(endpoint, &paging.query()).await?;
    let (runs, next) = paging.finish(rows, |r| RunKey {
        started_at: r.started_at.as_micros(),
        id: r.id.clone(),
    });
    Ok(Json(RunList { runs, next }))
}

/// The run-time switches set on endpoints (an endpoint never switched is absent: live, running).
#[utoipa::path(get, path = "/v1/endpoints", tag = "operations",
    responses((status = 200, description = "Endpoint switches (viewer)", body = ControlList)))]
pub(super) async fn endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ControlList>, ApiError> {
    caller.require(Role::Viewer)?;
    let controls = state.store.endpoint_controls().await?;
    Ok(Json(ControlList { controls }))
}

/// `pause`, `resume`, `dry-run` or `live` (admin): a running scheduler picks it up at its next run.
#[utoipa::path(post, path = "/v1/endpoints/{endpoint}/{switch}", tag = "operations",
    params(("endpoint" = Endpoint, Path, description = "The endpoint"),
        ("switch" = String, Path, description = "The switch", pattern = "^(pause|resume|dry-run|live)$")),
    responses((status = 200, description = "The endpoint's switches now", body = OneControl)))]
pub(super) async fn switch(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((endpoint, switch)): PathParams<(String, String)>,
) -> Result<Json<OneControl>, ApiError> {
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
    Ok(Json(OneControl { control }))
}
