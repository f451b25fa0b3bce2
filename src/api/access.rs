//! Who is calling (`GET /v1/me`), so a client can offer only what the token's role may do, and
//! the tokens that exist (`GET /v1/tokens`, admin; never a token or its hash).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::paging::{PageQuery, Paging};
use super::{ApiError, AppState, Params};
use crate::domain::{ApiToken, Role, Timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/me", get(me))
        .route("/v1/tokens", get(tokens))
}

/// The roles a token can have (only describes them in the OpenAPI document).
#[derive(Clone, Copy, ToSchema)]
#[schema(as = Role, rename_all = "lowercase")]
#[allow(dead_code)]
enum RoleName {
    Viewer,
    Approver,
    Admin,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    /// The token's name, as it appears in the audit trail.
    name: String,
    #[schema(value_type = RoleName)]
    role: Role,
    /// What the role allows, each implying those before it: `read` (viewer), `decide`
    /// (approver: acknowledge and resolve findings, approve, reject and undo actions, resolve
    /// conflicts, silence alerts), `administer` (admin: policies, endpoint switches, re-drives,
    /// erasure, tokens).
    #[schema(value_type = Vec<String>)]
    can: Vec<&'static str>,
}

/// The caller's token: its name and role, and what that role may do.
#[utoipa::path(get, path = "/v1/me", tag = "meta",
    responses((status = 200, description = "The token's name and role (any role)", body = Me)))]
pub(super) async fn me(caller: Caller) -> Json<Me> {
    let can = [
        (Role::Viewer, "read"),
        (Role::Approver, "decide"),
        (Role::Admin, "administer"),
    ]
    .into_iter()
    .filter(|(role, _)| caller.require(*role).is_ok())
    .map(|(_, what)| what)
    .collect();
    Json(Me {
        name: caller.name,
        role: caller.role,
        can,
    })
}

/// A token as listed: never the token itself nor its hash.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenInfo {
    id: i64,
    name: String,
    #[schema(value_type = RoleName)]
    role: Role,
    #[schema(value_type = Timestamp)]
    created_at: Timestamp,
    #[schema(value_type = Option<Timestamp>)]
    expires_at: Option<Timestamp>,
    #[schema(value_type = Option<Timestamp>)]
    revoked_at: Option<Timestamp>,
}

impl From<ApiToken> for TokenInfo {
    fn from(t: ApiToken) -> Self {
        TokenInfo {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    /// Oldest first, revoked and expired ones included.
    tokens: Vec<TokenInfo>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

/// Every API token, a page at a time (admin).
#[utoipa::path(get, path = "/v1/tokens", tag = "meta", params(PageQuery),
    responses((status = 200, description = "Tokens (admin)", body = TokenList)))]
pub(super) async fn tokens(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> Result<Json<TokenList>, ApiError> {
    caller.require(Role::Admin)?;
    let paging = Paging::read(q.after.as_deref(), q.limit.as_deref())?;
    let rows = state.store.tokens_page(&paging.query()).await?;
    let (rows, next) = paging.finish(rows, |t| t.id);
    Ok(Json(TokenList {
        tokens: rows.into_iter().map(TokenInfo::from).collect(),
        next,
    }))
}
