//! The KPIs of one week beside the week before, computed from the store: the event log (write
//! latencies, records synced and merged), sync runs (API calls), conflicts, findings, dedup
//! proposals and the notification outbox.

use std::collections::BTreeMap;

use serde::Serialize;

use super::week::{IsoWeek, Zone};
use super::{DigestError, summary};
use crate::alert::OutboxStatus;
use crate::domain::{Endpoint, Outcome, ProposalStatus, Timestamp};
use crate::monitor::{Finding, Severity};
use crate::store::{Store, WeekBounds};

const PRICE_MISMATCH: &str = "price_mismatch";

/// One KPI this week and the week before; `null` when it has no value (no calls, no findings).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Kpi<T> {
    pub value: Option<T>,
    pub previous: Option<T>,
}

impl<T: Copy> Kpi<T> {
    fn of<W>(this: &W, previous: &W, read: impl Fn(&W) -> Option<T>) -> Self {
        Self {
            value: read(this),
            previous: read(previous),
        }
    }
}

/// One day of the week, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: chrono::NaiveDate,
    pub api_call_success_rate: Option<f64>,
    pub sync_latency_p50_ms: Option<i64>,
    pub sync_latency_p95_ms: Option<i64>,
    pub findings_opened: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopFinding {
    pub id: i64,
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub state: crate::monitor::FindingState,
    pub detected_at: Timestamp,
    pub occurrences: i64,
}

/// The digest of one week: what `--format json` prints and `GET /v1/kpis` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub week: String,
    pub time_zone: String,
    pub from: Timestamp,
    pub to: Timestamp,
    /// The week is not over yet (live KPIs).
    pub partial: bool,
    /// Successful API calls of the sync runs over all calls, 0-1.
    pub api_call_success_rate: Kpi<f64>,
    pub api_calls: Kpi<i64>,
    pub sync_latency_p50_ms: Kpi<i64>,
    pub sync_latency_p95_ms: Kpi<i64>,
    /// Distinct records written to the other side, all endpoints.
    pub records_synced: Kpi<i64>,
    pub records_synced_by_endpoint: BTreeMap<&'static str, Kpi<i64>>,
    /// Records beyond the first of each duplicate cluster proposed for merging.
    pub duplicates_found: Kpi<i64>,
    /// Distinct records merged (events with outcome `merged`).
    pub merges_applied: Kpi<i64>,
    /// Merge proposals approved by a person.
    pub merges_approved: Kpi<i64>,
    /// Records merged without a person's approval (under the auto-merge policy).
    pub manual_interventions_avoided: Kpi<i64>,
    pub conflicts_opened: Kpi<i64>,
    pub conflicts_resolved: Kpi<i64>,
    /// Price-mismatch findings unresolved at the end of the week.
    pub price_mismatches_open: Kpi<i64>,
    pub price_mismatches_fixed: Kpi<i64>,
    pub findings_opened: Kpi<i64>,
    /// Mean time from an anomaly's start to its finding, over the findings detected in the week.
    pub mttd_seconds: Kpi<f64>,
    /// Mean time from detection to resolution, over the findings resolved in the week.
    pub mttr_seconds: Kpi<f64>,
    /// Alert notifications delivered.
    pub alerts_sent: Kpi<i64>,
    pub top_findings: Vec<TopFinding>,
    pub daily: Vec<Day>,
    pub summary: String,
    /// `llm` or `template`.
    pub summary_source: &'static str,
}

/// Write latencies as value -> writes: exact percentiles over any number of events.
type Histogram = BTreeMap<i64, i64>;

/// The nearest-rank percentile (`q` in (0, 1]), as the monitor computes it.
fn percentile(histogram: &Histogram, q: f64) -> Option<i64> {
    let total: i64 = histogram.values().sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
    let mut seen = 0;
    histogram.iter().find_map(|(value, count)| {
        seen += count;
        (seen >= rank).then_some(*value)
    })
}

fn rate(ok: i64, failed: i64) -> Option<f64> {
    (ok + failed > 0).then(|| ok as f64 / (ok + failed) as f64)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

#[derive(Debug, Default)]
struct DayCounts {
    api_ok: i64,
    api_failed: i64,
    latency: Histogram,
    findings: i64,
}

/// One week's figures, before they are set beside the previous week's.
#[derive(Debug, Default)]
struct Week {
    days: [DayCounts; 7],
    latency: Histogram,
    api_ok: i64,
    api_failed: i64,
    records: BTreeMap<Endpoint, i64>,
    merged: i64,
    duplicates: i64,
    approved: i64,
    approved_records: i64,
    conflicts: (i64, i64),
    price_open: i64,
    price_fixed: i64,
    findings_opened: i64,
    mttd: Option<f64>,
    mttr: Option<f64>,
    alerts_sent: i64,
}

fn within(t: Timestamp, bounds: &WeekBounds) -> bool {
    bounds[0] <= t && t < bounds[7]
}

fn day_of(t: Timestamp, bounds: &WeekBounds) -> Option<usize> {
    within(t, bounds).then(|| bounds[1..].iter().position(|edge| t < *edge).unwrap_or(6))
}

/// What the store and the findings say of the week `bounds` delimits.
async fn week_figures(
    store: &dyn Store,
    bounds: &WeekBounds,
    findings: &[Finding],
) -> Result<Week, DigestError> {
    let (from, to) = (bounds[0], bounds[7]);
    let mut week = Week::default();
    for (day, ok, failed) in store.digest_api_calls(bounds).await? {
        week.days[day.min(6)].api_ok += ok;
        week.days[day.min(6)].api_failed += failed;
        week.api_ok += ok;
        week.api_failed += failed;
    }
    for (day, latency, writes) in store.digest_latencies(bounds).await? {
        *week.days[day.min(6)].latency.entry(latency).or_default() += writes;
        *week.latency.entry(latency).or_default() += writes;
    }
    for (endpoint, outcome, records) in store.digest_records(from, to).await? {
        match outcome {
            Outcome::Merged => week.merged += records,
            _ => *week.records.entry(endpoint).or_default() += records,
        }
    }
    for proposal in store.dedup_proposals(None, None).await? {
        let members = proposal.proposal.members.len() as i64;
        if within(proposal.proposal.created_at, bounds) {
            week.duplicates += (members - 1).max(0);
        }
        let approved_now = proposal.status == ProposalStatus::Approved
            && proposal.decided_at.is_some_and(|at| within(at, bounds));
        if approved_now {
            week.approved += 1;
            week.approved_records += (members - 1).max(0);
        }
    }
    week.conflicts = store.digest_conflicts(from, to).await?;
    add_findings(&mut week, bounds, findings);
    week.alerts_sent = store
        .outbox(Some(OutboxStatus::Sent))
        .await?
        .iter()
        .filter(|n| n.sent_at.is_some_and(|at| within(at, bounds)))
        .count() as i64;
    Ok(week)
}

fn add_findings(week: &mut Week, bounds: &WeekBounds, findings: &[Finding]) {
    let resolved_in = |f: &Finding| f.resolved_at.is_some_and(|at| within(at, bounds));
    let detected: Vec<&Finding> = findings
        .iter()
        .filter(|f| within(f.detected_at, bounds))
        .collect();
    for f in &detected {
        if let Some(day) = day_of(f.detected_at, bounds) {
            week.days[day].findings += 1;
        }
    }
    week.findings_opened = detected.len() as i64;
    week.mttd = mean(detected.iter().map(|f| f.time_to_detect().as_secs_f64()));
    week.mttr = mean(
        findings
            .iter()
            .filter(|f| resolved_in(f))
            .filter_map(|f| f.time_to_recover())
            .map(|d| d.as_secs_f64()),
    );
    for f in findings.iter().filter(|f| f.kind == PRICE_MISMATCH) {
        let open_at_end =
            f.detected_at < bounds[7] && f.resolved_at.is_none_or(|at| at >= bounds[7]);
        week.price_open += i64::from(open_at_end);
        week.price_fixed += i64::from(resolved_in(f));
    }
}

/// The findings that were active during the week, worst first.
fn top_findings(findings: &[Finding], bounds: &WeekBounds, n: usize) -> Vec<TopFinding> {
    let mut active: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.detected_at < bounds[7] && f.resolved_at.is_none_or(|at| at >= bounds[0]))
        .collect();
    active.sort_by(|a, b| {
        (b.severity, b.occurrences, b.detected_at).cmp(&(a.severity, a.occurrences, a.detected_at))
    });
    active
        .into_iter()
        .take(n)
        .map(|f| TopFinding {
            id: f.id,
            kind: f.kind.clone(),
            severity: f.severity,
            title: f.title.clone(),
            state: f.state,
            detected_at: f.detected_at,
            occurrences: f.occurrences,
        })
        .collect()
}

fn daily(week: &Week, iso: IsoWeek) -> Vec<Day> {
    iso.days()
        .iter()
        .zip(&week.days)
        .map(|(date, d)| Day {
            date: *date,
            api_call_success_rate: rate(d.api_ok, d.api_failed),
            sync_latency_p50_ms: percentile(&d.latency, 0.5),
            sync_latency_p95_ms: percentile(&d.latency, 0.95),
            findings_opened: d.findings,
        })
        .collect()
}

/// The digest of `week` in `zone` as the store holds it at `now`, with the template summary.
pub async fn build(
    store: &dyn Store,
    zone: &Zone,
    zone_name: &str,
    iso: IsoWeek,
    now: Timestamp,
    top: usize,
) -> Result<Digest, DigestError> {
    let findings = store.findings(None).await?;
    let bounds = zone.bounds(iso);
    let this = week_figures(store, &bounds, &findings).await?;
    let last = week_figures(store, &zone.bounds(iso.previous()), &findings).await?;
    let count = |read: fn(&Week) -> i64| Kpi::of(&this, &last, |w| Some(read(w)));
    let records_synced_by_endpoint = Endpoint::ALL
        .iter()
        .map(|e| {
            let kpi = Kpi::of(&this, &last, |w| {
                Some(w.records.get(e).copied().unwrap_or(0))
            });
            (e.as_str(), kpi)
        })
        .collect();
    let mut digest = Digest {
        week: iso.to_string(),
        time_zone: zone_name.to_string(),
        from: bounds[0],
        to: bounds[7],
        partial: now < bounds[7],
        api_call_success_rate: Kpi::of(&this, &last, |w| rate(w.api_ok, w.api_failed)),
        api_calls: count(|w| w.api_ok + w.api_failed),
        sync_latency_p50_ms: Kpi::of(&this, &last, |w| percentile(&w.latency, 0.5)),
        sync_latency_p95_ms: Kpi::of(&this, &last, |w| percentile(&w.latency, 0.95)),
        records_synced: count(|w| w.records.values().sum()),
        records_synced_by_endpoint,
        duplicates_found: count(|w| w.duplicates),
        merges_applied: count(|w| w.merged),
        merges_approved: count(|w| w.approved),
        manual_interventions_avoided: count(|w| (w.merged - w.approved_records).max(0)),
        conflicts_opened: count(|w| w.conflicts.0),
        conflicts_resolved: count(|w| w.conflicts.1),
        price_mismatches_open: count(|w| w.price_open),
        price_mismatches_fixed: count(|w| w.price_fixed),
        findings_opened: count(|w| w.findings_opened),
        mttd_seconds: Kpi::of(&this, &last, |w| w.mttd),
        mttr_seconds: Kpi::of(&this, &last, |w| w.mttr),
        alerts_sent: count(|w| w.alerts_sent),
        top_findings: top_findings(&findings, &bounds, top),
        daily: daily(&this, iso),
        summary: String::new(),
        summary_source: "template",
    };
    digest.summary = summary::template_summary(&digest);
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_from_a_histogram() {
        let h: Histogram = [(10, 50), (20, 45), (500, 5)].into_iter().collect();
        assert_eq!(percentile(&h, 0.5), Some(10));
        assert_eq!(percentile(&h, 0.95), Some(20));
        assert_eq!(percentile(&h, 0.96), Some(500));
        assert_eq!(percentile(&Histogram::new(), 0.5), None);
    }
}
