//! The audit trail: field events by record, field, endpoint, time range and run, page by page,
//! and as CSV for finance.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiError, AppState, Params, endpoint_param, time_param};
use crate::domain::{FieldEvent, Role};
use crate::store::{EventQuery, MAX_QUERY_LIMIT};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/events.csv", get(events_csv))
        .route("/v1/metrics/series", get(series))
}

/// Filters of the audit trail; `after` is the cursor the previous page gave as `next`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    endpoint: Option<String>,
    record_id: Option<String>,
    field: Option<String>,
    run_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

impl AuditQuery {
    fn to_query(&self) -> Result<EventQuery, ApiError> {
        Ok(EventQuery {
            endpoint: endpoint_param(self.endpoint.as_deref())?,
            record_id: self.record_id.clone(),
            field: self.field.clone(),
            run_id: self.run_id.clone(),
            from: time_param("from", self.from.as_deref())?,
            to: time_param("to", self.to.as_deref())?,
            after_id: self.after,
            limit: Some(self.limit.unwrap_or(500).clamp(1, MAX_QUERY_LIMIT)),
        })
    }
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Params(audit): Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let query = audit.to_query()?;
    let limit = query.limit.unwrap_or(MAX_QUERY_LIMIT) as usize;
    let mut events = state.store.query_events(&query).await?;
    if let Some(privacy) = state.masking_for(&caller) {
        events.iter_mut().for_each(|e| privacy.mask_event(e));
    }
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({ "events": events, "next": next })))
}

/// Every matching event (all pages) as CSV, one row per field change.
async fn events_csv(
    State(state): State<AppState>,
    caller: Caller,
    Params(audit): Params<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let mut query = audit.to_query()?;
    query.limit = Some(MAX_QUERY_LIMIT);
    let mut out = String::from(
        "id,occurred_at,recorded_at,endpoint,crm_id,erp_id,field,old_value,new_value,source_system,target_system,outcome,error,run_id\n",
    );
    loop {
        let mut page = state.store.query_events(&query).await?;
        for e in &mut page {
            if let Some(privacy) = state.masking_for(&caller) {
                privacy.mask_event(e);
            }
            push_row(&mut out, e);
        }
        match page.last() {
            Some(last) if page.len() == MAX_QUERY_LIMIT as usize => query.after_id = Some(last.id),
            _ => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"syncwarden-audit.csv\"",
            ),
        ],
        out,
    ))
}

/// RFC 4180 quoting; a leading = + - @ is prefixed with ' so a spreadsheet never runs it as a
/// formula.
fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

fn push_row(out: &mut String, e: &FieldEvent) {
    let ev = &e.event;
    let cells = [
        e.id.to_string(),
        ev.occurred_at.to_string(),
        e.recorded_at.to_string(),
        ev.endpoint.as_str().to_string(),
        ev.crm_id.clone().unwrap_or_default(),
        ev.erp_id.clone().unwrap_or_default(),
        ev.field.clone(),
        ev.old_value.clone().unwrap_or_default(),
        ev.new_value.clone().unwrap_or_default(),
        ev.source_system.as_str().to_string(),
        ev.target_system.as_str().to_string(),
        ev.outcome.as_str().to_string(),
        ev.error.clone().unwrap_or_default(),
        ev.run_id.clone().unwrap_or_default(),
    ];
    let row: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
    out.push_str(&row.join(","));
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_cell("-12.50"), "'-12.50");
    }
}

/// `GET /v1/metrics/series`: per scope (overall, `endpoint:<e>`, `connector:<s>` and
/// `<endpoint>:<system>`), buckets of a minute, an hour or a day over [from, to) (default: the last
/// day), read from the stored roll-ups the live monitor maintains: API calls, field writes,
/// success rates, latency percentiles, records, conflicts, reconciliation differences, duplicates
/// and freshness.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SeriesQuery {
    endpoint: Option<String>,
    scope: Option<String>,
    from: Option<String>,
    to: Option<String>,
    resolution: Option<String>,
}

pub(super) async fn series(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<SeriesQuery>,
) -> Result<Json<Value>, ApiError> {
    use crate::monitor::rollup::{Resolution, series};
    use std::time::Duration;
    caller.require(Role::Viewer)?;
    let name = q.resolution.as_deref().unwrap_or("hour");
    let resolution = Resolution::parse(name).ok_or_else(|| {
        ApiError::bad(
            "resolution",
            format!("unknown resolution `{name}` (expected minute, hour or day)"),
        )
    })?;
    let to = time_param("to", q.to.as_deref())?.unwrap_or_else(|| state.clock.now());
    let from = time_param("from", q.from.as_deref())?.unwrap_or(to - Duration::from_secs(86_400));
    if from >= to {
        return Err(ApiError::bad("from", "must be before to"));
    }
    if to.since(from) > resolution.max_span() {
        return Err(ApiError::bad(
            "from",
            format!(
                "a series by the {name} covers at most {} days",
                resolution.max_span().as_secs() / 86_400
            ),
        ));
    }
    let endpoint = endpoint_param(q.endpoint.as_deref())?;
    let rows = state
        .store
        .rollups(resolution, resolution.floor(from), to)
        .await?;
    let series: Vec<_> = series(&rows)
        .into_iter()
        .filter(|s| q.scope.as_ref().is_none_or(|scope| &s.scope == scope))
        .filter(|s| {
            endpoint.is_none_or(|e| {
                s.endpoint == Some(e) || s.scope == format!("endpoint:{}", e.as_str())
            })
        })
        .collect();
    Ok(Json(
        json!({ "from": from, "to": to, "resolution": resolution, "series": series }),
    ))
}
