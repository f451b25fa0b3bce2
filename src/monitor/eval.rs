//! `syncwarden monitor eval`: the sync-incident detectors on simulated weeks of one endpoint's
//! writes, with incidents of known start injected, and clean weeks.
//!
//! The simulation is of the metric stream, not of the sandbox servers: one-minute buckets of item
//! writes into the CRM at about 1,000 an hour in working hours and a third of that at night and at
//! weekends, 1% failures, write latency 60-140 ms, and a price list of 200 items checked every 15
//! minutes. Every run is a learning week (never scored: it teaches the weekly rhythm) followed by
//! the scored week, in which one incident starts at a random minute of a weekday's working hours
//! (when the endpoint runs at ~1,000 writes an hour, the volume the targets name):
//! - `success_rate_drop`: 99% -> 90% success for two hours;
//! - `silent_stop`: no writes at all for three hours;
//! - `latency_x5`: latency five times as high for an hour;
//! - `price_drift`: five items' CRM prices drift 3-10% from the ERP's;
//! - `dropped_page`: a server silently drops a page of 100 records, which an hourly
//!   reconciliation then finds missing in the CRM (every check also finds three records in
//!   flight, different each time, which must not count).
//!
//! A run detects its incident when a finding of the expected kind opens at or after its start and
//! before its end plus an hour; every other finding opened in the scored week is false.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::drift::DriftWatch;
use super::findings::NewFinding;
use super::metrics::{Bucket, Scope};
use super::prices::{PriceTolerance, PriceWatch, price_book_mismatches};
use super::watch::{Report, Watcher};
use crate::domain::{
    Currency, Endpoint, Item, Money, MoneyError, NewFieldEvent, Outcome, PriceBookEntry, System,
    Timestamp,
};

const WEEK: u64 = 7 * 1440;
/// Monday 2026-11-23 00:00 UTC, so the simulated weekly rhythm lines up with the calendar.
const START: Timestamp = Timestamp::from_micros(1_795_392_000_000_000);
const PRICE_CHECK_MINUTES: u64 = 15;
const RECONCILE_MINUTES: u64 = 60;
/// Records a dropped page leaves missing in the CRM.
const PAGE: usize = 100;
const ITEMS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    SuccessRateDrop,
    SilentStop,
    LatencyX5,
    PriceDrift,
    DroppedPage,
}

impl IncidentKind {
    pub const ALL: [IncidentKind; 5] = [
        IncidentKind::SuccessRateDrop,
        IncidentKind::SilentStop,
        IncidentKind::LatencyX5,
        IncidentKind::PriceDrift,
        IncidentKind::DroppedPage,
    ];

    /// Minutes the incident lasts (price drift lasts until the end of the run).
    pub(super) fn minutes(self) -> u64 {
        match self {
            IncidentKind::SuccessRateDrop => 120,
            IncidentKind::SilentStop => 180,
            IncidentKind::LatencyX5 => 60,
            IncidentKind::PriceDrift | IncidentKind::DroppedPage => WEEK,
        }
    }

    /// The finding kinds that detect it: a silent stop is a freshness finding, and the volume
    /// dropping to nothing is the same incident seen by another detector.
    fn detected_by(self, finding: &NewFinding) -> bool {
        self.detects(&finding.kind)
    }

    /// Whether a finding of kind `finding` detects this incident.
    pub(super) fn detects(self, finding: &str) -> bool {
        match self {
            IncidentKind::SuccessRateDrop => finding == "success_rate_drop",
            IncidentKind::SilentStop => finding == "freshness" || finding == "volume",
            IncidentKind::LatencyX5 => finding == "latency_p95",
            IncidentKind::PriceDrift => finding == "price_mismatch",
            IncidentKind::DroppedPage => finding == "reconciliation_drift",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentReport {
    pub kind: IncidentKind,
    pub runs: usize,
    pub detected: usize,
    pub detection_rate: f64,
    pub median_minutes_to_detect: Option<f64>,
    pub max_minutes_to_detect: Option<u64>,
    /// Findings other than the incident's, opened in the scored weeks of these runs.
    pub false_findings: usize,
    /// Those findings by kind.
    pub other_findings_by_kind: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub seed: u64,
    pub incidents: Vec<IncidentReport>,
    pub clean_weeks: usize,
    pub false_findings_in_clean_weeks: usize,
    pub false_findings_per_clean_week: f64,
    /// The kinds of those false findings.
    pub false_finding_kinds: Vec<String>,
}

struct Simulation {
    rng: fastrand::Rng,
    currency: Currency,
    erp_items: Vec<Item>,
}

impl Simulation {
    fn new(seed: u64, currency: Currency) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let erp_items = (0..ITEMS)
            .map(|i| Item {
                code: format!("I{i:04}"),
                erp_id: Some(format!("I{i:04}")),
                crm_id: Some(format!("{}", 1000 + i)),
                name: format!("Item {i}"),
                prices: vec![PriceBookEntry {
                    price_book: "Retail".into(),
                    item_code: format!("I{i:04}"),
                    price: Money::new(rng.i64(100..100_000), currency),
                }],
                ..Item::default()
            })
            .collect();
        Self {
            rng,
            currency,
            erp_items,
        }
    }

    fn minute(&mut self, minute: u64, incident: Option<(IncidentKind, u64)>) -> Bucket {
        let active = |kind: IncidentKind| {
            incident.is_some_and(|(k, start)| {
                k == kind && (start..start + kind.minutes()).contains(&minute)
            })
        };
        let hour = (minute / 60) % 24;
        let weekday = (minute / 1440) % 7 < 5;
        let per_hour = if weekday && (8..18).contains(&hour) {
            1000.0
        } else {
            330.0
        };
        let mut bucket = Bucket::empty(at(minute));
        if active(IncidentKind::SilentStop) {
            return bucket;
        }
        let failure_rate = if active(IncidentKind::SuccessRateDrop) {
            0.10
        } else {
            0.01
        };
        let slow = if active(IncidentKind::LatencyX5) {
            5
        } else {
            1
        };
        // Binomial writes per minute: 60 one-second chances.
        for _ in 0..60 {
            if self.rng.f64() < per_hour / 3600.0 {
                bucket.events += 1;
                bucket.attempts += 1;
                bucket.failures += u64::from(self.rng.f64() < failure_rate);
                bucket.latencies_ms.push(slow * self.rng.i64(60..140));
            }
        }
        bucket
    }

    fn crm_items(&self, drifted: &[usize]) -> Vec<Item> {
        self.erp_items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let mut crm = item.clone();
                if let Some(k) = drifted.iter().position(|&d| d == i) {
                    let e = &mut crm.prices[0];
                    // 3% to 10% up, in integer minor units.
                    let percent = 3 + 7 * k as i64 / 4;
                    e.price =
                        Money::new(e.price.minor + e.price.minor * percent / 100, self.currency);
                }
                crm
            })
            .collect()
    }
}

fn at(minute: u64) -> Timestamp {
    START + Duration::from_secs(60 * minute)
}

/// Runs one learning week and one scored week; returns the findings opened in the scored week.
fn run(seed: u64, currency: Currency, incident: Option<(IncidentKind, u64)>) -> Vec<NewFinding> {
    let mut sim = Simulation::new(seed, currency);
    let scope = Scope {
        endpoint: Endpoint::Items,
        target: System::Crm,
    };
    let drifted: Vec<usize> = (0..5).map(|_| sim.rng.usize(0..ITEMS)).collect();
    let mut watcher = Watcher::default();
    let mut prices = PriceWatch::default();
    let mut drift = DriftWatch::default();
    let mut opened = Vec::new();
    for minute in 0..2 * WEEK {
        let bucket = sim.minute(minute, incident);
        let mut reports = watcher.observe(scope, &bucket);
        if minute % PRICE_CHECK_MINUTES == 0 {
            let drift =
                incident.is_some_and(|(k, start)| k == IncidentKind::PriceDrift && minute >= start);
            let crm = sim.crm_items(if drift { &drifted } else { &[] });
            let mismatches = price_book_mismatches(&sim.erp_items, &crm, PriceTolerance::default());
            let (findings, _) = prices.check(&mismatches, at(minute));
            // A price finding is reported the first time it is seen; later checks update it.
            reports.extend(
                findings
                    .into_iter()
                    .filter(|f| f.started_at == f.detected_at)
                    .map(Report::Open),
            );
        }
        if minute % RECONCILE_MINUTES == 0 {
            let dropped = incident
                .is_some_and(|(k, start)| k == IncidentKind::DroppedPage && minute >= start);
            // Records changed just as the check ran: different ones each time.
            let in_flight = (0..3).map(|k| format!("F{minute}-{k}"));
            let mut events: Vec<NewFieldEvent> = in_flight
                .map(|record| reconcile_event(record, Outcome::Drift, minute))
                .collect();
            if dropped {
                events.extend(
                    (0..PAGE)
                        .map(|i| reconcile_event(format!("P{i:04}"), Outcome::Missing, minute)),
                );
            }
            // Like prices, reported when first confirmed; later checks update it.
            if let Some(Report::Open(finding)) = drift.check(Endpoint::Items, &events, at(minute))
                && finding.started_at == finding.detected_at
            {
                reports.push(Report::Open(finding));
            }
        }
        if minute >= WEEK {
            opened.extend(reports.into_iter().filter_map(|r| match r {
                Report::Open(finding) => Some(finding),
                Report::Resolve { .. } => None,
            }));
        }
    }
    opened
}

/// A reconciliation's record of one difference on an item record.
fn reconcile_event(record: String, outcome: Outcome, minute: u64) -> NewFieldEvent {
    NewFieldEvent {
        idempotency_key: format!("reconcile-{minute}-{record}"),
        run_id: Some(format!("reconcile-{minute}")),
        endpoint: Endpoint::Items,
        crm_id: None,
        erp_id: Some(record),
        field: if outcome == Outcome::Missing {
            "*"
        } else {
            "name"
        }
        .into(),
        old_value: None,
        new_value: None,
        source_system: System::Erp,
        target_system: System::Crm,
        outcome,
        error: None,
        latency_ms: None,
        occurred_at: at(minute),
    }
}

pub fn run_eval(runs: usize, clean_weeks: usize, seed: u64) -> Result<EvalReport, MoneyError> {
    let currency = Currency::parse("EUR")?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let incidents = IncidentKind::ALL
        .iter()
        .map(|&kind| {
            let (mut detected, mut delays) = (0, Vec::new());
            let mut others: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..runs {
                // A weekday of the scored week, in working hours (the ~1,000 writes an hour the
                // targets are stated for), early enough to end by 18:00 where it can.
                let latest = 600 - kind.minutes().min(540);
                let start = WEEK + 1440 * rng.u64(0..5) + 8 * 60 + rng.u64(0..=latest);
                let began = at(start);
                let ends = began + Duration::from_secs(60 * (kind.minutes().min(WEEK) + 60));
                let mut found = false;
                for finding in run(rng.u64(..), currency, Some((kind, start))) {
                    let in_time = finding.detected_at >= began && finding.detected_at <= ends;
                    if kind.detected_by(&finding) && in_time {
                        if !found {
                            delays.push(finding.detected_at.since(began).as_secs() / 60);
                            found = true;
                        }
                    } else {
                        *others.entry(finding.kind).or_default() += 1;
                    }
                }
                detected += usize::from(found);
            }
            delays.sort_unstable();
            IncidentReport {
                kind,
                runs,
                detected,
                detection_rate: detected as f64 / runs.max(1) as f64,
                median_minutes_to_detect: median(&delays),
                max_minutes_to_detect: delays.last().copied(),
                false_findings: others.values().sum(),
                other_findings_by_kind: others,
            }
        })
        .collect();
    let mut false_kinds = Vec::new();
    for _ in 0..clean_weeks {
        false_kinds.extend(run(rng.u64(..), currency, None).into_iter().map(|f| f.kind));
    }
    false_kinds.sort();
    Ok(EvalReport {
        seed,
        incidents,
        clean_weeks,
        false_findings_in_clean_weeks: false_kinds.len(),
        false_findings_per_clean_week: false_kinds.len() as f64 / clean_weeks.max(1) as f64,
        false_finding_kinds: false_kinds,
    })
}

pub(super) fn median(sorted: &[u64]) -> Option<f64> {
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2] as f64),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_incident_kind_is_found_in_a_run_and_a_clean_week_stays_quiet() {
        let report = run_eval(1, 1, 3).unwrap();
        for incident in &report.incidents {
            assert_eq!(incident.detected, 1, "{incident:?}");
        }
        assert!(report.false_findings_in_clean_weeks <= 1, "{report:?}");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1, 5, 9]), Some(5.0));
        assert_eq!(median(&[1, 5, 9, 11]), Some(7.0));
    }
}
