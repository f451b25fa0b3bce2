//! The one error shape of every HTTP answer: `{"error": {"code", "message", "field"?, "line"?}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::Role;
use crate::store::StoreError;
use crate::sync::engine::SyncError;
use crate::sync::events::InvalidEvent;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    InvalidEvent(#[from] InvalidEvent),
    #[error("missing, wrong, expired or revoked bearer token")]
    Unauthorized,
    #[error("this needs the {} role; the token has {}", needed.as_str(), has.as_str())]
    Forbidden { needed: Role, has: Role },
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    /// A paging parameter (`limit`, `after`) that does not read: the request is malformed, not
    /// merely unprocessable, so it answers 400.
    #[error("{field}: {message}")]
    BadPage {
        field: &'static str,
        message: String,
    },
    #[error("the request took longer than {0} s and was stopped")]
    Timeout(u64),
    #[error("too many requests for this token; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the sync is not configured here (no [crm] token or [erp] company)")]
    SyncNotConfigured,
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("{method} is not allowed on {path}; the Allow header lists what is")]
    MethodNotAllowed { method: String, path: String },
    /// What is missing, said in full: `no finding 7`.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists but is past the step asked for: `finding 7 is resolved: ...`.
    #[error("{0}")]
    WrongState(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dedup(#[from] crate::dedup::DedupError),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
}

impl ApiError {
    pub(super) fn bad_page(field: &'static str, message: impl std::fmt::Display) -> Self {
        ApiError::BadPage {
            field,
            message: message.to_string(),
        }
    }

    pub fn bad(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError::BadRequest {
            field: field.to_string(),
            message: message.to_string(),
        }
    }
}

/// Every error answer of the API.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ErrorDetail<'a> {
    /// Stable, for programs: `unauthorized`, `forbidden`, `invalid_request`, `not_found`,
    /// `method_not_allowed`, `rate_limited`, `payload_too_large`, `timeout`, `store_unavailable`, `busy`,
    /// `sync_not_configured`, `connector_failed`, `internal`, `wrong_state` (a finding or action
    /// past the step asked for), for actions `cannot_merge` and `erased` (it would write erased
    /// personal data back), and the ingest codes
    /// `malformed_json`, `missing_field`, `unknown_field`, `invalid_type`, `invalid_event`,
    /// `idempotency_conflict`.
    code: &'a str,
    /// For people: what was wrong and, where it helps, what to do.
    message: String,
    /// The parameter, body member or event field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// The 1-based NDJSON line or array position of the event at fault (ingest).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    line: Option<usize>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &str, Option<&str>, Option<usize>) {
        match self {
            ApiError::InvalidEvent(e) => {
                let status = if e.code == "malformed_json" {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                (status, e.code, e.field.as_deref(), e.line)
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None, None),
            ApiError::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden", None, None),
            ApiError::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout", None, None),
            ApiError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None, None)
            }
            ApiError::BadPage { field, .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Some(*field),
                None,
            ),
            ApiError::BadRequest { field, .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                Some(field.as_str()),
                None,
            ),
            ApiError::SyncNotConfigured => {
                (StatusCode::CONFLICT, "sync_not_configured", None, None)
            }
            ApiError::Sync(SyncError::UnknownConflict(_)) => {
                (StatusCode::NOT_FOUND, "not_found", None, None)
            }
            ApiError::Sync(SyncError::ConflictResolved { .. }) => {
                (StatusCode::CONFLICT, "already_resolved", None, None)
            }
            ApiError::Sync(SyncError::Busy { .. }) => (StatusCode::CONFLICT, "busy", None, None),
            ApiError::Sync(SyncError::Connector { .. }) => {
                (StatusCode::BAD_GATEWAY, "connector_failed", None, None)
            }
            ApiError::Sync(SyncError::Store(StoreError::Unavailable(_))) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                None,
                None,
            ),
            ApiError::Sync(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, None),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                None,
                None,
            ),
            ApiError::NoRoute(_) | ApiError::NotFound(_) => {
                (StatusCode::NOT_FOUND, "not_found", None, None)
            }
            ApiError::WrongState(_) => (StatusCode::CONFLICT, "wrong_state", None, None),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
                None,
            ),
            ApiError::Dedup(e) => dedup_parts(e),
            ApiError::Store(StoreError::IdempotencyConflict { index, .. }) => (
                StatusCode::CONFLICT,
                "idempotency_conflict",
                Some("idempotency_key"),
                Some(index + 1),
            ),
            ApiError::Store(StoreError::Unavailable(_)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                None,
                None,
            ),
            ApiError::Privacy(e) => privacy_parts(e),
            ApiError::Store(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, None)
            }
        }
    }
}

fn privacy_parts(
    e: &crate::privacy::PrivacyError,
) -> (
    StatusCode,
    &'static str,
    Option<&'static str>,
    Option<usize>,
) {
    use crate::privacy::PrivacyError as P;
    let invalid = |field| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            Some(field),
            None,
        )
    };
    match e {
        P::AmbiguousSubject | P::NoSubject => invalid("key"),
        P::NoPersonalFields(_) => invalid("endpoint"),
        P::NoReason => invalid("reason"),
        P::Blank(field) => invalid(field),
        P::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
        P::Store(StoreError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            None,
            None,
        ),
        P::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, None),
    }
}

fn dedup_parts(
    error: &crate::dedup::DedupError,
) -> (
    StatusCode,
    &'static str,
    Option<&'static str>,
    Option<usize>,
) {
    use crate::dedup::DedupError;
    match error {
        DedupError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
        DedupError::WrongState { .. } => (StatusCode::CONFLICT, "wrong_state", None, None),
        DedupError::Erased { .. } => (StatusCode::CONFLICT, "erased", None, None),
        DedupError::Merge { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "cannot_merge", None, None),
        DedupError::Connector(_) => (StatusCode::BAD_GATEWAY, "connector_failed", None, None),
        DedupError::Store(StoreError::Unavailable(_)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            None,
            None,
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None, None),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, line) = self.parts();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, cause = ?std::error::Error::source(&self), "request failed");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "the database is unavailable; retry later".into()
                }
                _ => "internal error; see the server log".into(),
            }
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
                line,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
        }
        response
    }
}
