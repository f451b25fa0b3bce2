//! The HTTP surface: translates requests into domain calls and domain errors into one JSON shape.

mod access;
mod audit;
pub mod auth;
mod decisions;
mod error;
mod health;
mod ingest;
mod kpis;
mod metrics;
pub mod openapi;
mod operations;
mod paging;
mod privacy;
mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method, Uri, header};
use secrecy::{ExposeSecret, SecretString};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use std::sync::Arc;

use crate::clock::Clock;
use crate::store::Store;
use crate::sync::engine::Engine;
use crate::sync::events::EventLog;

#[derive(Clone)]
pub struct AppState {
    pub events: EventLog,
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// The sync engine, when both connectors are configured (conflicts and re-drives need it).
    pub engine: Option<Arc<Engine>>,
    /// The deduper's decisions (approve merges, reject, undo).
    pub dedup: Arc<crate::dedup::service::Dedup>,
    pub ingest_token: Option<SecretString>,
    pub body_limit: usize,
    /// Requests served, for `/metrics`.
    pub http: metrics::HttpCounts,
    /// Requests per token per minute on the admin API.
    pub limits: auth::RateLimits,
    /// Largest request body of the admin API (ingest has its own, `body_limit`).
    pub admin_body_limit: usize,
    /// How long an admin API request may take.
    pub request_timeout: std::time::Duration,
    /// The weekly digest's time zone and top-findings count, for `/v1/kpis`.
    pub digest: Arc<crate::digest::DigestSettings>,
    /// Personal fields, who sees them, what an erasure replaces.
    pub privacy: Arc<crate::privacy::PrivacySettings>,
}

/// Answers a request that runs past the deadline with the one error shape; the work it was
/// doing is dropped at its next await (store transactions roll back).
async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout(limit.as_secs()).into_response(),
    }
}

/// Query parameters, refused in the one error shape (naming `query`) when a key is unknown or a
/// value does not read, so a typo never widens a query silently.
struct Params<T>(T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<AppState> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &AppState,
    ) -> Result<Self, ApiError> {
        let params = axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad("query", e.body_text()))?;
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::bad("query", e.body_text()))?;
        if let Some((key, _)) = pairs.0.iter().find(|(_, v)| v.contains('\0')) {
            return Err(ApiError::bad(key, NUL_REFUSED));
        }
        Ok(Params(params.0))
    }
}

/// PostgreSQL text cannot hold a NUL character, so a request carrying one is refused on every
/// backend alike, naming where it is, rather than failing in the database.
const NUL_REFUSED: &str = "must not contain a NUL character (\\u0000)";

/// Where a JSON document holds a string with a NUL character, as `serde_path_to_error` names
/// places (`comment`, `matchers[0]`, `a.b`).
fn nul_at(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
            "body".into()
        } else {
            at.into()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| nul_at(v, &join(k))),
        _ => None,
    }
}

/// Path parameters, refused in the one error shape naming the parameter that does not read.
struct PathParams<T>(T);

impl<T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<AppState>
    for PathParams<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        use axum::extract::path::{ErrorKind, Path};
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(PathParams(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key } => key.clone(),
                    _ => "path".to_string(),
                };
                Err(ApiError::bad(&field, e.body_text()))
            }
            Err(e) => Err(ApiError::bad("path", e.body_text())),
        }
    }
}

/// The numeric `{id}` of a finding, action or conflict.
struct Id(i64);

impl axum::extract::FromRequestParts<AppState> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        // Read by name, so a wrong id is refused naming `id`.
        #[derive(serde::Deserialize)]
        struct Named {
            id: i64,
        }
        let PathParams(Named { id }) = PathParams::from_request_parts(parts, state).await?;
        Ok(Id(id))
    }
}

/// An optional `endpoint` parameter.
fn endpoint_param(value: Option<&str>) -> Result<Option<crate::domain::Endpoint>, ApiError> {
    value
        .map(|e| crate::domain::Endpoint::parse(e).map_err(|err| ApiError::bad("endpoint", err)))
        .transpose()
}

/// An optional RFC 3339 time parameter named `field`.
fn time_param(
    field: &str,
    value: Option<&str>,
) -> Result<Option<crate::domain::Timestamp>, ApiError> {
    value
        .map(|v| crate::domain::Timestamp::parse_rfc3339(v).map_err(|e| ApiError::bad(field, e)))
        .transpose()
}

/// The raw body of an admin API request, refused in our error shape when over the limit.
struct RawBody(axum::body::Bytes);

impl axum::extract::FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        axum::body::Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|e| match e.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                    limit: state.admin_body_limit,
                },
                _ => ApiError::bad("body", e.body_text()),
            })
    }
}

/// A JSON request body, refused with the error naming the field it could not read.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            // serde names a missing or unknown member only in its message: `missing field `x``.
            let named = ["missing field `", "unknown field `"]
                .iter()
                .find_map(|p| message.strip_prefix(p))
                .and_then(|rest| rest.split('`').next());
            let field = match (path.as_str(), named) {
                (".", Some(name)) => name.to_string(),
                (".", None) => "body".to_string(),
                (_, Some(name)) => format!("{path}.{name}"),
                (_, None) => path,
            };
            ApiError::bad(&field, message)
        })
        .and_then(|parsed| {
            // JSON writes a NUL only as this escape.
            if !body.windows(6).any(|w| w == b"\\u0000") {
                return Ok(parsed);
            }
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| ApiError::bad("body", e))?;
            match nul_at(&value, "") {
                Some(at) => Err(ApiError::bad(&at, NUL_REFUSED)),
                None => Ok(parsed),
            }
        })
}

impl AppState {
    /// The privacy settings when `caller` must not see personal values.
    fn masking_for(&self, caller: &auth::Caller) -> Option<&crate::privacy::PrivacySettings> {
        (!self.privacy.reveals_to(caller.role)).then_some(&*self.privacy)
    }

    fn engine(&self) -> Result<&Arc<Engine>, ApiError> {
        self.engine.as_ref().ok_or(ApiError::SyncNotConfigured)
    }

    fn authorize_ingest(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.ingest_token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(presented.as_bytes(), expected.expose_secret().as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ingest::router())
        .merge(openapi::router(&state.privacy))
        .merge(ui::router())
        .merge(
            Router::new()
                .merge(operations::router())
                .merge(access::router())
                .merge(audit::router())
                .merge(metrics::router())
                .merge(decisions::router())
                .merge(kpis::router())
                .merge(privacy::router())
                .layer(DefaultBodyLimit::max(state.admin_body_limit))
                .layer(axum::middleware::from_fn_with_state(
                    state.request_timeout,
                    deadline,
                )),
        )
        .fallback(|uri: Uri| async move { ApiError::NoRoute(uri.path().to_string()) })
        // After every route: it is set on the routes registered so far.
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed {
                method: method.to_string(),
                path: uri.path().to_string(),
            }
        })
        // Ingest enforces its own, configurable limit with our error shape.
        .layer(DefaultBodyLimit::disable())
        .layer(TraceLayer::new_for_http())
        .route_layer(axum::middleware::from_fn_with_state(
            state.http.clone(),
            metrics::track,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
