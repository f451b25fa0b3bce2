use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can serve: the database answers.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.events.store().ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
