//! The audit trail: field events by record, field, endpoint, time range and run, page by page,
//! and as CSV for finance.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::paging::Paging;
use super::{ApiError, AppState, Params, endpoint_param, time_param};
use crate::domain::{Endpoint, FieldEvent, Role, Timestamp};
use crate::store::{EventQuery, MAX_QUERY_LIMIT};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/events.csv", get(events_csv))
        .route("/v1/metrics/series", get(series))
}

/// Filters of the audit trail; `after` is the cursor the previous page gave as `next`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
    /// A record id on either side (CRM id or ERP key).
    record_id: Option<String>,
    field: Option<String>,
    run_id: Option<String>,
    /// Events that occurred at or after this time.
    #[param(value_type = Option<Timestamp>)]
    from: Option<String>,
    /// Events that occurred before this time.
    #[param(value_type = Option<Timestamp>)]
    to: Option<String>,
    /// The cursor: the `next` of the previous page.
    after: Option<String>,
    /// Events a page (default 500).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct EventPage {
    /// Oldest first.
    events: Vec<FieldEvent>,
    /// The `after` of the next page; none on the last page.
    next: Option<String>,
}

impl AuditQuery {
    /// The filters and the page asked for (one event more than the page, to know whether
    /// another follows).
    fn to_query(&self) -> Result<(EventQuery, Paging<i64>), ApiError> {
        let paging = Paging::read_within(
            self.after.as_deref(),
            self.limit.as_deref(),
            500,
            MAX_QUERY_LIMIT,
        )?;
        let query = EventQuery {
            endpoint: endpoint_param(self.endpoint.as_deref())?,
            record_id: self.record_id.clone(),
            field: self.field.clone(),
            run_id: self.run_id.clone(),
            from: time_param("from", self.from.as_deref())?,
            to: time_param("to", self.to.as_deref())?,
            after_id: paging.after().copied(),
            limit: Some(paging.query().limit),
        };
        Ok((query, paging))
    }
}

/// The audit trail: field events matching every filter given, a keyset page at a time.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of events (viewer)", body = EventPage)))]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Params(audit): Params<AuditQuery>,
) -> Result<Json<EventPage>, ApiError> {
    caller.require(Role::Viewer)?;
    let (query, paging) = audit.to_query()?;
    let rows = state.store.query_events(&query).await?;
    let (mut events, next) = paging.finish(rows, |e| e.id);
    if let Some(privacy) = state.masking_for(&caller) {
        events.iter_mut().for_each(|e| privacy.mask_event(e));
    }
    Ok(Json(EventPage { events, next }))
}

/// Every matching event (all pages; `after` and `limit` are ignored) as CSV for finance, one row
/// per field change, spreadsheet-safe.
#[utoipa::path(get, path = "/v1/audit/events.csv", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "The events as CSV (viewer)", content_type = "text/csv", body = String)))]
pub(super) async fn events_csv(
    State(state): State<AppState>,
    caller: Caller,
    Params(audit): Params<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    caller.require(Role::Viewer)?;
    let (mut query, _) = audit.to_query()?;
    query.after_id = None;
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
    push_cells(out, &cells);
}

/// One CSV row of `cells`, quoted and defused.
pub(super) fn push_cells(out: &mut String, cells: &[String]) {
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SeriesQuery {
    #[param(value_type = Option<Endpoint>)]
    endpoint: Option<String>,
    /// Only this scope: `overall`, `endpoint:<e>`, `connector:<s>` or `<endpoint>:<system>`.
    scope: Option<String>,
    /// Default: a day before `to`; at most 7 days before it by the minute, 93 by the hour, 1,096 by the day.
    #[param(value_type = Option<Timestamp>)]
    from: Option<String>,
    /// Default: now.
    #[param(value_type = Option<Timestamp>)]
    to: Option<String>,
    /// Bucket width (default hour).
    #[param(value_type = Option<Resolution>, inline)]
    resolution: Option<String>,
}

/// The widths a series can be bucketed by (only describes the parameter in the OpenAPI document).
#[derive(Clone, Copy, ToSchema)]
#[schema(as = SeriesResolution, rename_all = "lowercase")]
#[allow(dead_code)]
enum Resolution {
    Minute,
    Hour,
    Day,
}

#[utoipa::path(get, path = "/v1/metrics/series", tag = "audit", params(SeriesQuery),
    responses((status = 200, description = "Metric series from the roll-ups (viewer): `from`, `to`, `resolution` and `series`, each with `scope`, `endpoint`, `target` and `points`", body = serde_json::Value)))]
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
