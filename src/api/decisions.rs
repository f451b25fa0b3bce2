//! What people decide about the agent's work: findings (acknowledge, resolve), silences, and the
//! deduper's merge proposals (approve, reject with a reason).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState, Params, endpoint_param, parse_body, time_param};
use crate::alert::{Matcher, NewSilence};
use crate::domain::{ProposalStatus, Role, Timestamp};
use crate::monitor::FindingState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/findings", get(findings))
        .route("/v1/findings/{id}/acknowledge", post(acknowledge))
        .route("/v1/findings/{id}/resolve", post(resolve))
        .route("/v1/silences", get(silences).post(add_silence))
        .route("/v1/actions", get(actions))
        .route("/v1/actions/{id}/approve", post(approve))
        .route("/v1/actions/{id}/reject", post(reject))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFilter {
    state: Option<String>,
    endpoint: Option<String>,
}

async fn findings(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<StateFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let wanted = match filter.state.as_deref() {
        None => None,
        Some("open") => Some(FindingState::Open),
        Some("acknowledged") => Some(FindingState::Acknowledged),
        Some("resolved") => Some(FindingState::Resolved),
        Some(other) => {
            return Err(ApiError::bad(
                "state",
                format!("unknown state `{other}` (expected open, acknowledged or resolved)"),
            ));
        }
    };
    Ok(Json(
        json!({ "findings": state.store.findings(wanted).await? }),
    ))
}

async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    move_finding(&state, &caller, id, FindingState::Acknowledged).await
}

async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    move_finding(&state, &caller, id, FindingState::Resolved).await
}

/// Moves a finding on in its lifecycle (open -> acknowledged -> resolved).
async fn move_finding(
    state: &AppState,
    caller: &Caller,
    id: i64,
    to: FindingState,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let now = state.clock.now();
    let moved = match to {
        FindingState::Acknowledged => state.store.acknowledge_finding(id, now).await?,
        _ => state.store.resolve_finding(id, now).await?,
    };
    let finding =
        moved.ok_or_else(|| ApiError::NotFound(format!("finding {id} to {}", to.as_str())))?;
    tracing::info!(finding = id, by = %caller.name, state = to.as_str(), "finding moved");
    Ok(Json(json!({ "finding": finding })))
}

async fn silences(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(json!({ "silences": state.store.silences().await? })))
}

/// A silence needs matchers, an end and a comment; its author is the token's holder.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceRequest {
    matchers: Vec<String>,
    starts_at: Option<String>,
    ends_at: String,
    comment: String,
}

async fn add_silence(
    State(state): State<AppState>,
    caller: Caller,
    super::RawBody(body): super::RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let request: SilenceRequest = parse_body(&body)?;
    if request.matchers.is_empty() {
        return Err(ApiError::bad("matchers", "at least one matcher is needed"));
    }
    if request.comment.trim().is_empty() {
        return Err(ApiError::bad("comment", "say why the alerts are silenced"));
    }
    let matchers = request
        .matchers
        .iter()
        .enumerate()
        .map(|(i, m)| Matcher::parse(m).map_err(|e| ApiError::bad(&format!("matchers[{i}]"), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let now = state.clock.now();
    let starts_at = time_param("starts_at", request.starts_at.as_deref())?.unwrap_or(now);
    let ends_at =
        Timestamp::parse_rfc3339(&request.ends_at).map_err(|e| ApiError::bad("ends_at", e))?;
    if ends_at <= starts_at {
        return Err(ApiError::bad("ends_at", "must be after starts_at"));
    }
    let silence = NewSilence {
        matchers,
        starts_at,
        ends_at,
        author: caller.name.clone(),
        comment: request.comment,
    };
    let stored = state.store.add_silence(&silence, now).await?;
    Ok(Json(json!({ "silence": stored })))
}

async fn actions(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<StateFilter>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let status = filter
        .state
        .as_deref()
        .map(|s| {
            ProposalStatus::parse(s).ok_or_else(|| {
                ApiError::bad(
                    "state",
                    format!("unknown state `{s}` (expected open, approved or rejected)"),
                )
            })
        })
        .transpose()?;
    let endpoint = endpoint_param(filter.endpoint.as_deref())?;
    let proposals = state.store.dedup_proposals(endpoint, status).await?;
    Ok(Json(json!({ "actions": proposals })))
}

async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    decide(&state, id, ProposalStatus::Approved, caller.name).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejection {
    reason: String,
}

async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    super::RawBody(body): super::RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let rejection: Rejection = parse_body(&body)?;
    if rejection.reason.trim().is_empty() {
        return Err(ApiError::bad("reason", "say why the merge is wrong"));
    }
    // The proposal keeps one "decided by" text: who, and why they said no.
    let by = format!("{} (reason: {})", caller.name, rejection.reason.trim());
    decide(&state, id, ProposalStatus::Rejected, by).await
}

async fn decide(
    state: &AppState,
    id: i64,
    status: ProposalStatus,
    by: String,
) -> Result<Json<Value>, ApiError> {
    let decided = state
        .store
        .decide_dedup_proposal(id, status, &by, state.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("open action {id}")))?;
    Ok(Json(json!({ "action": decided })))
}
