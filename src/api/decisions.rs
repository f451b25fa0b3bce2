//! What people decide about the agent's work: findings (acknowledge, resolve), silences, and the
//! deduper's merge proposals (approve, reject with a reason).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::paging::{MAX_LIMIT, PageQuery, Paging};
use super::{ApiError, AppState, Id, Params, endpoint_param, parse_body, time_param};
use crate::alert::{Matcher, NewSilence, Silence};
use crate::dedup::service::Action;
use crate::domain::{DedupProposal, ProposalStatus, Role, Timestamp};
use crate::monitor::{Finding, FindingState, Severity};
use crate::store::{FindingFilter as FindingQuery, Page};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/findings", get(findings))
        .route("/v1/findings/{id}", get(finding))
        .route("/v1/findings/{id}/acknowledge", post(acknowledge))
        .route("/v1/findings/{id}/resolve", post(resolve))
        .route("/v1/silences", get(silences).post(add_silence))
        .route("/v1/actions", get(actions))
        .route("/v1/actions.csv", get(actions_csv))
        .route("/v1/actions/{id}", get(action))
        .route("/v1/actions/{id}/approve", post(approve))
        .route("/v1/actions/{id}/reject", post(reject))
        .route("/v1/actions/{id}/undo", post(undo))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct FindingFilter {
    /// Only findings in this state.
    #[param(value_type = Option<FindingState>)]
    state: Option<String>,
    /// Only findings of this kind, e.g. `price_mismatch`.
    kind: Option<String>,
    /// Only findings of this severity.
    #[param(value_type = Option<Severity>)]
    severity: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FindingList {
    /// Newest first.
    findings: Vec<Finding>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct OneFinding {
    finding: Finding,
}

/// The monitor's findings, newest first (by id: a reopened finding keeps its place), with their
/// evidence, a page at a time.
#[utoipa::path(get, path = "/v1/findings", tag = "decisions", params(FindingFilter),
    responses((status = 200, description = "Findings (viewer)", body = FindingList)))]
pub(super) async fn findings(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<FindingFilter>,
) -> Result<Json<FindingList>, ApiError> {
    caller.require(Role::Viewer)?;
    let severity = filter
        .severity
        .as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                ApiError::bad(
                    "severity",
                    format!("unknown severity `{s}` (expected info, warning or critical)"),
                )
            })
        })
        .transpose()?;
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
    let paging = Paging::read(filter.after.as_deref(), filter.limit.as_deref())?;
    let query = FindingQuery {
        state: wanted,
        kind: filter.kind,
        severity,
    };
    let rows = state.store.findings_page(&query, &paging.query()).await?;
    let (mut findings, next) = paging.finish(rows, |f| f.id);
    if let Some(privacy) = state.masking_for(&caller) {
        findings
            .iter_mut()
            .for_each(|f| privacy.mask_json(None, &mut f.evidence));
    }
    Ok(Json(FindingList { findings, next }))
}

/// One finding with its evidence, whatever its state: the page an alert's link opens.
#[utoipa::path(get, path = "/v1/findings/{id}", tag = "decisions",
    params(("id" = i64, Path, description = "The finding's id")),
    responses((status = 200, description = "The finding (viewer)", body = OneFinding),
        (status = 404, description = "No such finding", body = super::error::ErrorBody)))]
pub(super) async fn finding(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<OneFinding>, ApiError> {
    caller.require(Role::Viewer)?;
    let Some(mut finding) = state.store.finding(id).await? else {
        return Err(ApiError::NotFound(format!("no finding {id}")));
    };
    if let Some(privacy) = state.masking_for(&caller) {
        privacy.mask_json(None, &mut finding.evidence);
    }
    Ok(Json(OneFinding { finding }))
}

/// Someone is on it (approver). Only an open finding can be acknowledged.
#[utoipa::path(post, path = "/v1/findings/{id}/acknowledge", tag = "decisions",
    params(("id" = i64, Path, description = "The finding's id")),
    responses((status = 200, description = "The finding, acknowledged", body = OneFinding),
        (status = 404, description = "No such finding", body = super::error::ErrorBody),
        (status = 409, description = "The finding is not open (`wrong_state`)", body = super::error::ErrorBody)))]
pub(super) async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<OneFinding>, ApiError> {
    move_finding(&state, &caller, id, FindingState::Acknowledged).await
}

/// It is over (approver).
#[utoipa::path(post, path = "/v1/findings/{id}/resolve", tag = "decisions",
    params(("id" = i64, Path, description = "The finding's id")),
    responses((status = 200, description = "The finding, resolved", body = OneFinding),
        (status = 404, description = "No such finding", body = super::error::ErrorBody),
        (status = 409, description = "The finding is already resolved (`wrong_state`)", body = super::error::ErrorBody)))]
pub(super) async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<OneFinding>, ApiError> {
    move_finding(&state, &caller, id, FindingState::Resolved).await
}

/// Moves a finding on in its lifecycle (open -> acknowledged -> resolved).
async fn move_finding(
    state: &AppState,
    caller: &Caller,
    id: i64,
    to: FindingState,
) -> Result<Json<OneFinding>, ApiError> {
    caller.require(Role::Approver)?;
    let now = state.clock.now();
    let moved = match to {
        FindingState::Acknowledged => state.store.acknowledge_finding(id, now).await?,
        _ => state.store.resolve_finding(id, now).await?,
    };
    let Some(mut finding) = moved else {
        return Err(unmoved(state, id, to).await);
    };
    tracing::info!(finding = id, by = %caller.name, state = to.as_str(), "finding moved");
    if let Some(privacy) = state.masking_for(caller) {
        privacy.mask_json(None, &mut finding.evidence);
    }
    Ok(Json(OneFinding { finding }))
}

/// Why a finding did not move: there is none of that id (404), or it is past that step (409).
async fn unmoved(state: &AppState, id: i64, to: FindingState) -> ApiError {
    match state.store.finding(id).await {
        Ok(Some(found)) => ApiError::WrongState(format!(
            "finding {id} is {}: only {} finding can be {}",
            found.state.as_str(),
            match to {
                FindingState::Acknowledged => "an open",
                _ => "an open or acknowledged",
            },
            to.as_str()
        )),
        Ok(None) => ApiError::NotFound(format!("no finding {id}")),
        Err(e) => e.into(),
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct SilenceList {
    /// Oldest first.
    silences: Vec<Silence>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct OneSilence {
    silence: Silence,
}

/// Every silence, past, present and future, a page at a time.
#[utoipa::path(get, path = "/v1/silences", tag = "decisions", params(PageQuery),
    responses((status = 200, description = "Silences (viewer)", body = SilenceList)))]
pub(super) async fn silences(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> Result<Json<SilenceList>, ApiError> {
    caller.require(Role::Viewer)?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rows = state.store.silences_page(&paging.query()).await?;
    let (silences, next) = paging.finish(rows, |s| s.id);
    Ok(Json(SilenceList { silences, next }))
}

/// A silence needs matchers, an end and a comment; its author is the token's holder.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({
    "matchers": ["type=freshness", "endpoint=~acc.*"],
    "ends_at": "2999-12-31T23:59:59Z",
    "comment": "ERP maintenance",
})))]
pub(super) struct SilenceRequest {
    /// Alertmanager-style label matchers, all of which must hold: `name=value`, `name!=value`,
    /// `name=~regex`, `name!~regex`.
    #[schema(min_items = 1, value_type = Vec<Matcher>)]
    matchers: Vec<String>,
    /// Default: now.
    #[schema(value_type = Option<Timestamp>)]
    starts_at: Option<String>,
    /// After `starts_at`, so in the future when `starts_at` is not given.
    #[schema(value_type = Timestamp)]
    ends_at: String,
    /// Why the alerts are silenced.
    #[schema(min_length = 1, pattern = "\\S")]
    comment: String,
}

/// Silences the alerts the matchers select until `ends_at` (approver).
#[utoipa::path(post, path = "/v1/silences", tag = "decisions", request_body = SilenceRequest,
    responses((status = 200, description = "The silence stored", body = OneSilence)))]
pub(super) async fn add_silence(
    State(state): State<AppState>,
    caller: Caller,
    super::RawBody(body): super::RawBody,
) -> Result<Json<OneSilence>, ApiError> {
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
    Ok(Json(OneSilence { silence: stored }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ActionFilter {
    /// Only actions in this state.
    #[param(value_type = Option<ProposalStatus>)]
    state: Option<String>,
    /// Only actions on this endpoint.
    #[param(value_type = Option<crate::domain::Endpoint>)]
    endpoint: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Rows a page (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ActionList {
    /// Oldest first.
    actions: Vec<DedupProposal>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

/// The agent's proposed actions (merges of duplicate records), with every member's fields and
/// the proposed survivor's per-field choices.
#[utoipa::path(get, path = "/v1/actions", tag = "decisions", params(ActionFilter),
    responses((status = 200, description = "Actions (viewer)", body = ActionList)))]
pub(super) async fn actions(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<ActionFilter>,
) -> Result<Json<ActionList>, ApiError> {
    caller.require(Role::Viewer)?;
    let (endpoint, status) = filter.read()?;
    let paging = Paging::read(filter.after.as_deref(), filter.limit.as_deref())?;
    let rows = state
        .store
        .dedup_proposals_page(endpoint, status, &paging.query())
        .await?;
    let (mut actions, next) = paging.finish(rows, |p| p.id);
    mask_actions(&state, &caller, &mut actions);
    Ok(Json(ActionList { actions, next }))
}

impl ActionFilter {
    fn read(&self) -> Result<(Option<crate::domain::Endpoint>, Option<ProposalStatus>), ApiError> {
        let status = self
            .state
            .as_deref()
            .map(|s| {
                ProposalStatus::parse(s).ok_or_else(|| {
                    ApiError::bad(
                        "state",
                        format!(
                            "unknown state `{s}` (expected open, approved, rejected, applied or undone)"
                        ),
                    )
                })
            })
            .transpose()?;
        Ok((endpoint_param(self.endpoint.as_deref())?, status))
    }
}

fn mask_actions(state: &AppState, caller: &Caller, actions: &mut [DedupProposal]) {
    if let Some(privacy) = state.masking_for(caller) {
        actions
            .iter_mut()
            .for_each(|p| privacy.mask_proposal(&mut p.proposal));
    }
}

/// Every matching action (all pages; `after` and `limit` are ignored) as CSV, one row per member
/// and field: each member's value side by side with the value the survivor keeps, where it comes
/// from and why.
#[utoipa::path(get, path = "/v1/actions.csv", tag = "decisions", params(ActionFilter),
    responses((status = 200, description = "The actions as CSV (viewer)", content_type = "text/csv", body = String)))]
pub(super) async fn actions_csv(
    State(state): State<AppState>,
    caller: Caller,
    Params(filter): Params<ActionFilter>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let (endpoint, status) = filter.read()?;
    // Ignored here, but refused like anywhere else when they do not read.
    Paging::<i64>::read(filter.after.as_deref(), filter.limit.as_deref())?;
    let mut page = Page::first(MAX_LIMIT);
    let mut actions = Vec::new();
    loop {
        let rows = state
            .store
            .dedup_proposals_page(endpoint, status, &page)
            .await?;
        let full = rows.len() == MAX_LIMIT as usize;
        page.after = rows.last().map(|p| p.id);
        actions.extend(rows);
        if !full {
            break;
        }
    }
    mask_actions(&state, &caller, &mut actions);
    let mut out =
        String::from("id,status,endpoint,survivor,member,field,value,kept_value,kept_from,why\n");
    for action in &actions {
        let p = &action.proposal;
        for (member, fields) in &p.before {
            for (field, value) in fields {
                let kept = p.fields.iter().find(|f| f.field == *field);
                let cells = [
                    action.id.to_string(),
                    action.status.as_str().to_string(),
                    p.endpoint.as_str().to_string(),
                    p.survivor.clone(),
                    member.clone(),
                    field.clone(),
                    value.clone(),
                    kept.map(|k| k.value.clone()).unwrap_or_default(),
                    kept.map(|k| k.from.clone()).unwrap_or_default(),
                    kept.map(|k| k.why.clone()).unwrap_or_default(),
                ];
                super::audit::push_cells(&mut out, &cells);
            }
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"syncwarden-actions.csv\"",
            ),
        ],
        out,
    ))
}

/// An action as the caller may see it: personal values masked for roles that do not need them,
/// in the members' fields, the survivor's choices and the jobs' plans (before-images).
fn shown(state: &AppState, caller: &Caller, mut action: Action) -> Value {
    if let Some(privacy) = state.masking_for(caller) {
        let endpoint = action.proposal.proposal.endpoint;
        privacy.mask_proposal(&mut action.proposal.proposal);
        for job in &mut action.jobs {
            privacy.mask_json(Some(endpoint), &mut job.plan);
        }
    }
    json!({ "action": action })
}

/// One action: every member's fields side by side (`before`), the proposed survivor and the
/// value chosen per field with why, and its merge and undo jobs with their steps.
#[utoipa::path(get, path = "/v1/actions/{id}", tag = "decisions",
    params(("id" = i64, Path, description = "The action's id")),
    responses((status = 200, description = "`{\"action\"}`: the proposal with its jobs (viewer)", body = serde_json::Value),
        (status = 404, description = "No such action", body = super::error::ErrorBody)))]
pub(super) async fn action(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let action = state.dedup.action(id).await?;
    Ok(Json(shown(&state, &caller, action)))
}

/// Approves an open action and merges its records through the CRM and ERP (approver).
#[utoipa::path(post, path = "/v1/actions/{id}/approve", tag = "decisions",
    params(("id" = i64, Path, description = "The action's id")),
    responses((status = 200, description = "`{\"action\"}`: the action, applied", body = serde_json::Value),
        (status = 404, description = "No such open action", body = super::error::ErrorBody),
        (status = 409, description = "The action is not open (`wrong_state`), or a value it would write was erased (`erased`)", body = super::error::ErrorBody),
        (status = 422, description = "The records cannot be merged", body = super::error::ErrorBody),
        (status = 502, description = "A connector failed", body = super::error::ErrorBody)))]
pub(super) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let action = state.dedup.approve(id, &caller.name).await?;
    tracing::info!(action = id, by = %caller.name, "merge approved");
    Ok(Json(shown(&state, &caller, action)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rejection {
    /// Why the action is wrong.
    #[schema(min_length = 1, pattern = "\\S")]
    reason: String,
}

/// Rejects an open action with a reason (approver).
#[utoipa::path(post, path = "/v1/actions/{id}/reject", tag = "decisions",
    params(("id" = i64, Path, description = "The action's id")), request_body = Rejection,
    responses((status = 200, description = "`{\"action\"}`: the action, rejected", body = serde_json::Value),
        (status = 404, description = "No such action", body = super::error::ErrorBody),
        (status = 409, description = "The action is not open", body = super::error::ErrorBody)))]
pub(super) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
    super::RawBody(body): super::RawBody,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let rejection: Rejection = parse_body(&body)?;
    if rejection.reason.trim().is_empty() {
        return Err(ApiError::bad("reason", "say why the merge is wrong"));
    }
    // The proposal keeps one "decided by" text: who, and why they said no.
    let by = format!("{} (reason: {})", caller.name, rejection.reason.trim());
    let action = state.dedup.reject(id, &by).await?;
    tracing::info!(action = id, by = %caller.name, "merge rejected");
    Ok(Json(shown(&state, &caller, action)))
}

/// Undoes an applied merge: every record back to its before-image (approver).
#[utoipa::path(post, path = "/v1/actions/{id}/undo", tag = "decisions",
    params(("id" = i64, Path, description = "The action's id")),
    responses((status = 200, description = "`{\"action\"}`: the action, undone", body = serde_json::Value),
        (status = 404, description = "No such action", body = super::error::ErrorBody),
        (status = 409, description = "The action is not applied (`wrong_state`), or personal data it would restore was erased since (`erased`): nothing is written", body = super::error::ErrorBody),
        (status = 502, description = "A connector failed", body = super::error::ErrorBody)))]
pub(super) async fn undo(
    State(state): State<AppState>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Approver)?;
    let action = state.dedup.undo(id, &caller.name).await?;
    tracing::info!(action = id, by = %caller.name, "merge undone");
    Ok(Json(shown(&state, &caller, action)))
}
