//! `GET /metrics` in the Prometheus text format: HTTP requests by route and status, counted as
//! they are served, and the state of the store read at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::domain::Role;
use crate::monitor::FindingState;
use crate::telemetry::label_value as label;

/// (route, method, status) -> requests served.
type Counts = BTreeMap<(String, String, u16), u64>;

#[derive(Clone, Default)]
pub struct HttpCounts(Arc<Mutex<Counts>>);

impl HttpCounts {
    fn add(&self, route: String, method: String, status: u16) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry((route, method, status)).or_default() += 1;
    }

    fn snapshot(&self) -> Counts {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Counts every request by its matched route (not its raw path, so ids do not explode the
/// series); unmatched requests count as `unmatched`.
pub async fn track(State(counts): State<HttpCounts>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    counts.add(route, method, response.status().as_u16());
    response
}

/// Prometheus text: HTTP requests by route, method and status, events, findings by state, open
/// conflicts and dead letters.
#[utoipa::path(get, path = "/metrics", tag = "audit",
    responses((status = 200, description = "Prometheus text format (viewer)", content_type = "text/plain", body = String)))]
pub(super) async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(Role::Viewer)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP syncwarden_http_requests_total HTTP requests served."
    );
    let _ = writeln!(out, "# TYPE syncwarden_http_requests_total counter");
    for ((route, method, status), n) in state.http.snapshot() {
        let _ = writeln!(
            out,
            "syncwarden_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }
    crate::telemetry::render_counters(&mut out);
    let events = state.store.count_events().await?;
    let _ = writeln!(
        out,
        "# HELP syncwarden_events_total Field events in the log."
    );
    let _ = writeln!(out, "# TYPE syncwarden_events_total counter");
    let _ = writeln!(out, "syncwarden_events_total {events}");
    let _ = writeln!(
        out,
        "# HELP syncwarden_findings Findings of the monitor by state."
    );
    let _ = writeln!(out, "# TYPE syncwarden_findings gauge");
    for findings_state in [
        FindingState::Open,
        FindingState::Acknowledged,
        FindingState::Resolved,
    ] {
        let n = state.store.findings(Some(findings_state)).await?.len();
        let _ = writeln!(
            out,
            "syncwarden_findings{{state=\"{}\"}} {n}",
            findings_state.as_str()
        );
    }
    let conflicts = state.store.open_conflicts().await?.len();
    let letters = state.store.open_dead_letters().await?.len();
    let _ = writeln!(
        out,
        "# HELP syncwarden_conflicts_open Conflicts held for a person."
    );
    let _ = writeln!(out, "# TYPE syncwarden_conflicts_open gauge");
    let _ = writeln!(out, "syncwarden_conflicts_open {conflicts}");
    let _ = writeln!(
        out,
        "# HELP syncwarden_dead_letters_open Failed writes waiting for re-drive."
    );
    let _ = writeln!(out, "# TYPE syncwarden_dead_letters_open gauge");
    let _ = writeln!(out, "syncwarden_dead_letters_open {letters}");
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
