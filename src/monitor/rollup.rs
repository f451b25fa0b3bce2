//! Stored metric roll-ups: one-minute buckets per scope (overall, per endpoint, per connector, and
//! per endpoint and connector) computed from the field-event log and the API calls the connectors
//! counted, rolled up to hours and days. The series API and `monitor metrics` read these rows, so
//! a month of series costs a few thousand rows, not a scan of millions of events.
//!
//! Maintenance is incremental, idempotent and resumable: each pass reads the events and API calls
//! stored since its cursors (kept in the store), recomputes every minute they touch in full from
//! the log (a replace, never an add, so a pass run twice changes nothing), then the hours and days
//! of those minutes from their minutes. The last two minutes are recomputed on every pass too,
//! which catches an event committed out of id order (PostgreSQL sequences may do that) shortly
//! after its neighbours.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::Serialize;

use super::metrics::events_between;
use crate::domain::{Endpoint, NewFieldEvent, Outcome, System, Timestamp};
use crate::store::{EventQuery, MAX_QUERY_LIMIT, Store, StoreError};

/// Latency histogram: milliseconds (quantised, see [`quantise_ms`]) -> how many.
pub type Latencies = BTreeMap<i64, u64>;

/// Minutes recomputed on every pass whatever the cursors say.
const TRAILING_MINUTES: i64 = 2;

const MINUTE_MICROS: i64 = 60_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "minute",
            Resolution::Hour => "hour",
            Resolution::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Resolution::Minute, Resolution::Hour, Resolution::Day]
            .into_iter()
            .find(|r| r.as_str() == s)
    }

    /// The longest range one series request may cover at this resolution.
    pub fn max_span(self) -> Duration {
        Duration::from_secs(
            86_400
                * match self {
                    Resolution::Minute => 7,
                    Resolution::Hour => 93,
                    Resolution::Day => 1096,
                },
        )
    }

    pub fn width(self) -> Duration {
        Duration::from_secs(match self {
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
            Resolution::Day => 86_400,
        })
    }

    fn micros(self) -> i64 {
        self.width().as_micros() as i64
    }

    pub fn floor(self, t: Timestamp) -> Timestamp {
        Timestamp::from_micros(t.as_micros().div_euclid(self.micros()) * self.micros())
    }
}

/// Latencies are kept to the millisecond below a second and to three significant digits above,
/// so a day's histogram stays small and its percentiles within 0.5%.
pub fn quantise_ms(ms: i64) -> i64 {
    let ms = ms.max(0);
    if ms < 1000 {
        return ms;
    }
    let step = 10_i64.pow(ms.ilog10() - 2);
    (ms + step / 2) / step * step
}

/// The nearest-rank percentile (`q` in (0, 1]) of a histogram.
pub fn percentile(latencies: &Latencies, q: f64) -> Option<i64> {
    let total: u64 = latencies.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    latencies.iter().find_map(|(ms, n)| {
        seen += n;
        (seen >= rank).then_some(*ms)
    })
}

/// The metrics of one scope over one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rollup {
    /// API calls the connectors made (every attempt, retries included) and those that succeeded.
    pub api_attempted: u64,
    pub api_succeeded: u64,
    pub api_latencies: Latencies,
    /// Field writes (`applied` or `failed` events) and the failed ones.
    pub writes_attempted: u64,
    pub writes_failed: u64,
    /// Every field event, writes or not.
    pub events: u64,
    /// Distinct records with an applied event, per minute (an hour adds up its minutes).
    pub records: u64,
    pub conflicts_opened: u64,
    pub conflicts_resolved: u64,
    /// `missing` and `drift` events of reconciliations.
    pub reconcile_differences: u64,
    /// Open duplicate proposals, sampled when the minute was rolled up (the last one in an hour).
    pub duplicates: Option<u64>,
    /// The last applied write in the bucket (freshness is measured from it).
    pub last_success_at: Option<Timestamp>,
    /// Write latencies of the field events (the sync latency).
    pub sync_latencies: Latencies,
}

impl Rollup {
    fn add_event(&mut self, event: &NewFieldEvent) {
        self.events += 1;
        match event.outcome {
            Outcome::Applied => {
                self.writes_attempted += 1;
                self.last_success_at = self.last_success_at.max(Some(event.occurred_at));
            }
            Outcome::Failed => {
                self.writes_attempted += 1;
                self.writes_failed += 1;
            }
            Outcome::Conflict => self.conflicts_opened += 1,
            Outcome::ConflictResolved => self.conflicts_resolved += 1,
            Outcome::Missing | Outcome::Drift => self.reconcile_differences += 1,
            _ => return,
        }
        if let (Outcome::Applied | Outcome::Failed, Some(ms)) = (event.outcome, event.latency_ms) {
            *self.sync_latencies.entry(quantise_ms(ms)).or_default() += 1;
        }
    }

    fn add_calls(&mut self, calls: &ApiCalls) {
        self.api_attempted += calls.attempted;
        self.api_succeeded += calls.succeeded;
        for (ms, n) in &calls.latencies_ms {
            *self.api_latencies.entry(quantise_ms(*ms)).or_default() += n;
        }
    }

    /// Adds a later bucket of the same scope.
    pub fn merge(&mut self, later: &Rollup) {
        self.api_attempted += later.api_attempted;
        self.api_succeeded += later.api_succeeded;
        self.writes_attempted += later.writes_attempted;
        self.writes_failed += later.writes_failed;
        self.events += later.events;
        self.records += later.records;
        self.conflicts_opened += later.conflicts_opened;
        self.conflicts_resolved += later.conflicts_resolved;
        self.reconcile_differences += later.reconcile_differences;
        self.duplicates = later.duplicates.or(self.duplicates);
        self.last_success_at = self.last_success_at.max(later.last_success_at);
        for (into, from) in [
            (&mut self.api_latencies, &later.api_latencies),
            (&mut self.sync_latencies, &later.sync_latencies),
        ] {
            for (ms, n) in from {
                *into.entry(*ms).or_default() += n;
            }
        }
    }
}

/// One stored row: a scope's metrics over one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupRow {
    pub resolution: Resolution,
    pub start: Timestamp,
    /// `overall`, `endpoint:<endpoint>`, `connector:<crm|erp>` or `<endpoint>:<crm|erp>`.
    pub scope: String,
    pub values: Rollup,
}

/// One bucket as the series API and `monitor metrics` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub start: Timestamp,
    pub api_calls_attempted: u64,
    pub api_calls_succeeded: u64,
    /// Share of API calls that succeeded; none without calls.
    pub api_success_rate: Option<f64>,
    pub api_latency_p50_ms: Option<i64>,
    pub api_latency_p95_ms: Option<i64>,
    pub api_latency_p99_ms: Option<i64>,
    /// Field writes attempted and failed, and the share that succeeded.
    pub attempts: u64,
    pub failures: u64,
    pub success_rate: Option<f64>,
    pub events: u64,
    pub records: u64,
    /// Sync latency: the field writes' latency percentiles.
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
    pub conflicts_opened: u64,
    pub conflicts_resolved: u64,
    pub reconcile_differences: u64,
    pub duplicates: Option<u64>,
    /// Seconds from the last applied write (in this bucket or an earlier one of the series) to
    /// the end of the bucket; none before the first.
    pub freshness_secs: Option<u64>,
}

/// One scope's points, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub scope: String,
    /// For the per-endpoint-and-connector scopes (`items:crm`): the endpoint and the system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<System>,
    pub points: Vec<SeriesPoint>,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Rows (sorted by scope, then time, as the store returns them) as series.
pub fn series(rows: &[RollupRow]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut last_success: Option<Timestamp> = None;
    for row in rows {
        if out.last().is_none_or(|s| s.scope != row.scope) {
            let (endpoint, target) = match row.scope.split_once(':') {
                Some((e, s)) => (Endpoint::parse(e).ok(), System::parse(s).ok()),
                None => (None, None),
            };
            let both = endpoint.is_some() && target.is_some();
            out.push(Series {
                scope: row.scope.clone(),
                endpoint: endpoint.filter(|_| both),
                target: target.filter(|_| both),
                points: Vec::new(),
            });
            last_success = None;
        }
        let v = &row.values;
        last_success = last_success.max(v.last_success_at);
        let end = row.start + row.resolution.width();
        let point = SeriesPoint {
            start: row.start,
            api_calls_attempted: v.api_attempted,
            api_calls_succeeded: v.api_succeeded,
            api_success_rate: share(v.api_succeeded, v.api_attempted),
            api_latency_p50_ms: percentile(&v.api_latencies, 0.50),
            api_latency_p95_ms: percentile(&v.api_latencies, 0.95),
            api_latency_p99_ms: percentile(&v.api_latencies, 0.99),
            attempts: v.writes_attempted,
            failures: v.writes_failed,
            success_rate: share(v.writes_attempted - v.writes_failed, v.writes_attempted),
            events: v.events,
            records: v.records,
            latency_p50_ms: percentile(&v.sync_latencies, 0.50),
            latency_p95_ms: percentile(&v.sync_latencies, 0.95),
            latency_p99_ms: percentile(&v.sync_latencies, 0.99),
            conflicts_opened: v.conflicts_opened,
            conflicts_resolved: v.conflicts_resolved,
            reconcile_differences: v.reconcile_differences,
            duplicates: v.duplicates,
            freshness_secs: last_success.map(|t| end.since(t).as_secs()),
        };
        if let Some(s) = out.last_mut() {
            s.points.push(point);
        }
    }
    out
}

/// API calls of one connector for one endpoint, as stored when a run ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCalls {
    pub id: i64,
    pub at: Timestamp,
    pub system: System,
    /// None: calls made outside an endpoint's run (a connector check).
    pub endpoint: Option<Endpoint>,
    pub attempted: u64,
    pub succeeded: u64,
    pub latencies_ms: Latencies,
}

/// The scopes a measurement of `endpoint` on `system` counts in.
pub fn scopes(endpoint: Option<Endpoint>, system: System) -> Vec<String> {
    let mut scopes = vec!["overall".to_string(), format!("connector:{system}")];
    if let Some(e) = endpoint {
        scopes.push(format!("endpoint:{}", e.as_str()));
        scopes.push(format!("{}:{system}", e.as_str()));
    }
    scopes
}

/// Minute rows computed directly from events and API calls (of whole minutes).
pub fn minute_rows(events: &[NewFieldEvent], calls: &[ApiCalls]) -> Vec<RollupRow> {
    let mut rows: BTreeMap<(Timestamp, String), Rollup> = BTreeMap::new();
    let mut records: HashMap<(Timestamp, String), BTreeSet<&str>> = HashMap::new();
    for event in events {
        let minute = Resolution::Minute.floor(event.occurred_at);
        let record = event.erp_id.as_deref().or(event.crm_id.as_deref());
        for scope in scopes(Some(event.endpoint), event.target_system) {
            if let (Outcome::Applied, Some(record)) = (event.outcome, record) {
                records
                    .entry((minute, scope.clone()))
                    .or_default()
                    .insert(record);
            }
            rows.entry((minute, scope)).or_default().add_event(event);
        }
    }
    for call in calls {
        let minute = Resolution::Minute.floor(call.at);
        for scope in scopes(call.endpoint, call.system) {
            rows.entry((minute, scope)).or_default().add_calls(call);
        }
    }
    rows.into_iter()
        .map(|((start, scope), mut values)| {
            values.records = records
                .get(&(start, scope.clone()))
                .map_or(0, |r| r.len() as u64);
            RollupRow {
                resolution: Resolution::Minute,
                start,
                scope,
                values,
            }
        })
        .collect()
}

/// Rows of a coarser `resolution` merged from finer rows (in time order).
pub fn merge_rows(rows: &[RollupRow], resolution: Resolution) -> Vec<RollupRow> {
    let mut merged: BTreeMap<(Timestamp, &str), Rollup> = BTreeMap::new();
    for row in rows {
        merged
            .entry((resolution.floor(row.start), row.scope.as_str()))
            .or_default()
            .merge(&row.values);
    }
    merged
        .into_iter()
        .map(|((start, scope), values)| RollupRow {
            resolution,
            start,
            scope: scope.to_string(),
            values,
        })
        .collect()
}

/// Contiguous runs of minutes, as [from, to) ranges of at most an hour each.
fn ranges(minutes: &BTreeSet<Timestamp>) -> Vec<(Timestamp, Timestamp)> {
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    for &m in minutes {
        let end = m + Duration::from_secs(60);
        match out.last_mut() {
            Some((from, to)) if *to == m && to.since(*from) < Duration::from_secs(3600) => {
                *to = end;
            }
            _ => out.push((m, end)),
        }
    }
    out
}

const EVENTS_JOB: &str = "rollup:events";
const CALLS_JOB: &str = "rollup:api_calls";

/// One pass of roll-up maintenance at `now`; returns how many minutes it recomputed.
pub async fn run_once(store: &dyn Store, now: Timestamp) -> Result<usize, StoreError> {
    let mut touched = BTreeSet::new();
    let last = Resolution::Minute.floor(now);
    for back in 0..TRAILING_MINUTES {
        touched.insert(Timestamp::from_micros(
            last.as_micros() - back * MINUTE_MICROS,
        ));
    }
    let events_cursor = store.rollup_progress(EVENTS_JOB).await?;
    let mut after_id = events_cursor;
    loop {
        let page = store
            .query_events(&EventQuery {
                after_id,
                limit: Some(MAX_QUERY_LIMIT),
                ..EventQuery::default()
            })
            .await?;
        touched.extend(
            page.iter()
                .map(|e| Resolution::Minute.floor(e.event.occurred_at)),
        );
        after_id = page.last().map(|e| e.id).or(after_id);
        if page.len() < MAX_QUERY_LIMIT as usize {
            break;
        }
    }
    let calls_cursor = store.rollup_progress(CALLS_JOB).await?;
    let new_calls = store.api_calls_after(calls_cursor).await?;
    touched.extend(new_calls.iter().map(|c| Resolution::Minute.floor(c.at)));

    let duplicates = duplicate_counts(store).await?;
    for (from, to) in ranges(&touched) {
        let events = events_between(store, from, to).await?;
        let calls = store.api_calls_between(from, to).await?;
        let mut rows = minute_rows(&events, &calls);
        if to > last {
            add_duplicates(&mut rows, last, &duplicates);
        }
        store.upsert_rollups(&rows).await?;
    }
    let hours: BTreeSet<Timestamp> = touched.iter().map(|m| Resolution::Hour.floor(*m)).collect();
    roll_up_into(store, &hours, Resolution::Minute, Resolution::Hour).await?;
    let days: BTreeSet<Timestamp> = hours.iter().map(|h| Resolution::Day.floor(*h)).collect();
    roll_up_into(store, &days, Resolution::Hour, Resolution::Day).await?;

    if after_id != events_cursor
        && let Some(id) = after_id
    {
        store.set_rollup_progress(EVENTS_JOB, id).await?;
    }
    if let Some(last_call) = new_calls.last() {
        store.set_rollup_progress(CALLS_JOB, last_call.id).await?;
    }
    Ok(touched.len())
}

/// Recomputes the `to` rows of each bucket start in `starts` from its `from` rows.
async fn roll_up_into(
    store: &dyn Store,
    starts: &BTreeSet<Timestamp>,
    from: Resolution,
    to: Resolution,
) -> Result<(), StoreError> {
    for start in starts {
        let finer = store.rollups(from, *start, *start + to.width()).await?;
        store.upsert_rollups(&merge_rows(&finer, to)).await?;
    }
    Ok(())
}

/// Open duplicate proposals per endpoint.
async fn duplicate_counts(store: &dyn Store) -> Result<BTreeMap<Endpoint, u64>, StoreError> {
    let mut counts = BTreeMap::new();
    for p in store
        .dedup_proposals(None, Some(crate::domain::ProposalStatus::Open))
        .await?
    {
        *counts.entry(p.proposal.endpoint).or_default() += 1;
    }
    Ok(counts)
}

/// Puts the duplicate counts on the minute `at` (the newest one): per endpoint and overall.
fn add_duplicates(rows: &mut Vec<RollupRow>, at: Timestamp, counts: &BTreeMap<Endpoint, u64>) {
    let mut gauge =
        |scope: String, n: u64| match rows.iter_mut().find(|r| r.start == at && r.scope == scope) {
            Some(row) => row.values.duplicates = Some(n),
            None => rows.push(RollupRow {
                resolution: Resolution::Minute,
                start: at,
                scope,
                values: Rollup {
                    duplicates: Some(n),
                    ..Rollup::default()
                },
            }),
        };
    gauge("overall".into(), counts.values().sum());
    for (endpoint, n) in counts {
        gauge(format!("endpoint:{}", endpoint.as_str()), *n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_quantised_above_a_second_and_percentiles_rank() {
        assert_eq!(
            [999, 1234, 12_345, 99_951].map(quantise_ms),
            [999, 1230, 12_300, 100_000]
        );
        let h: Latencies = (1..=100).map(|ms| (ms, 1)).collect();
        assert_eq!(percentile(&h, 0.5), Some(50));
        assert_eq!(percentile(&h, 0.95), Some(95));
        assert_eq!(percentile(&h, 1.0), Some(100));
        assert_eq!(percentile(&Latencies::new(), 0.5), None);
    }

    #[test]
    fn contiguous_minutes_group_into_ranges_of_an_hour_at_most() {
        let m = |i: i64| Timestamp::from_micros(i * MINUTE_MICROS);
        let minutes: BTreeSet<Timestamp> = (0..70).chain([80, 81]).map(m).collect();
        assert_eq!(
            ranges(&minutes),
            vec![(m(0), m(60)), (m(60), m(70)), (m(80), m(82))]
        );
    }
}
