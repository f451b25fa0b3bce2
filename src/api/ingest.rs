//! `POST /v1/events`: field events from any other integration platform.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};

use super::{ApiError, AppState};
use crate::store::AppendResult;
use crate::sync::events::{BatchFormat, parse_batch};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(ingest))
}

/// Field events from any integration platform: a JSON array of events, or NDJSON, the same
/// events one a line (chosen by `Content-Type: application/x-ndjson` or by the body's first byte).
/// Answered only once the batch is committed; a replayed `idempotency_key` counts as a duplicate.
#[utoipa::path(post, path = "/v1/events", tag = "ingest",
    request_body(content = Vec<crate::sync::events::EventInput>, content_type = "application/json",
        description = "The events; also accepted as NDJSON (`application/x-ndjson`)"),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Stored", body = AppendResult),
        (status = 400, description = "`malformed_json`: the body is not JSON", body = super::error::ErrorBody),
        (status = 401, description = "The ingest token is set and was not presented", body = super::error::ErrorBody),
        (status = 409, description = "`idempotency_conflict`: a replayed key with other content", body = super::error::ErrorBody),
        (status = 413, description = "The body is larger than `server.body_limit_bytes`", body = super::error::ErrorBody),
        (status = 422, description = "An event is wrong; `field` and `line` name it", body = super::error::ErrorBody),
        (status = 503, description = "The database is unavailable", body = super::error::ErrorBody)))]
pub(super) async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<AppendResult>, ApiError> {
    state.authorize_ingest(&headers)?;
    let limit = state.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Parsing a large body is CPU work; keep it off the async workers.
    let events = tokio::task::spawn_blocking(move || {
        let format = BatchFormat::detect(content_type.as_deref(), &bytes);
        parse_batch(&bytes, format)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let result = state.events.append(&events).await?;
    tracing::debug!(
        accepted = result.accepted,
        duplicates = result.duplicates,
        "ingested batch"
    );
    Ok(Json(result))
}
