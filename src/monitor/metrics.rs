//! Metrics from the field-event log: per endpoint and target system, fixed-width buckets of writes
//! attempted and failed, field events and write latencies, rolled up to coarser buckets by merging.
//!
//! A write attempt is a field event with outcome `applied` or `failed`; the other outcomes
//! (skipped, conflicts, dry runs, reconciliation differences) are not calls. Attempts are counted
//! per field event, so a record write that changes three fields counts three.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;

use super::success_rate::Calls;
use crate::domain::{Endpoint, NewFieldEvent, Outcome, System, Timestamp};
use crate::store::{EventQuery, MAX_QUERY_LIMIT, Store, StoreError};

/// Where a metric is measured: writes of one endpoint into one system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    pub endpoint: Endpoint,
    pub target: System,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.endpoint.as_str(), self.target.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub start: Timestamp,
    pub attempts: u64,
    pub failures: u64,
    /// Every field event, calls or not.
    pub events: u64,
    pub latencies_ms: Vec<i64>,
}

impl Bucket {
    pub fn empty(start: Timestamp) -> Self {
        Self {
            start,
            attempts: 0,
            failures: 0,
            events: 0,
            latencies_ms: Vec::new(),
        }
    }

    fn add(&mut self, event: &NewFieldEvent) {
        self.events += 1;
        match event.outcome {
            Outcome::Applied => self.attempts += 1,
            Outcome::Failed => {
                self.attempts += 1;
                self.failures += 1;
            }
            _ => return,
        }
        if let Some(ms) = event.latency_ms {
            self.latencies_ms.push(ms);
        }
    }

    /// Adds `other`'s counts and latencies (the start stays this bucket's).
    pub fn merge(&mut self, other: &Bucket) {
        self.attempts += other.attempts;
        self.failures += other.failures;
        self.events += other.events;
        self.latencies_ms.extend_from_slice(&other.latencies_ms);
    }

    /// The nearest-rank percentile of the write latencies (`q` in (0, 1]).
    pub fn latency_percentile(&self, q: f64) -> Option<i64> {
        if self.latencies_ms.is_empty() {
            return None;
        }
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.clamp(1, sorted.len()) - 1])
    }

    pub fn calls(&self) -> Calls {
        Calls {
            at: self.start,
            attempts: self.attempts,
            failures: self.failures,
        }
    }
}

/// One bucket as the rest of the app reads it: counts, success rate and latency percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BucketSummary {
    pub start: Timestamp,
    pub attempts: u64,
    pub failures: u64,
    /// Share of attempts that succeeded; none without attempts.
    pub success_rate: Option<f64>,
    pub events: u64,
    pub latency_p50_ms: Option<i64>,
    pub latency_p95_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
}

impl From<&Bucket> for BucketSummary {
    fn from(b: &Bucket) -> Self {
        Self {
            start: b.start,
            attempts: b.attempts,
            failures: b.failures,
            success_rate: (b.attempts > 0)
                .then(|| (b.attempts - b.failures) as f64 / b.attempts as f64),
            events: b.events,
            latency_p50_ms: b.latency_percentile(0.50),
            latency_p95_ms: b.latency_percentile(0.95),
            latency_p99_ms: b.latency_percentile(0.99),
        }
    }
}

/// Every event of the log that occurred in [from, to), read page by page.
pub async fn events_between(
    store: &dyn Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<NewFieldEvent>, StoreError> {
    let mut events = Vec::new();
    let mut after_id = None;
    loop {
        let page = store
            .query_events(&EventQuery {
                from: Some(from),
                to: Some(to),
                after_id,
                limit: Some(MAX_QUERY_LIMIT),
                ..EventQuery::default()
            })
            .await?;
        after_id = page.last().map(|e| e.id);
        let done = page.len() < MAX_QUERY_LIMIT as usize;
        events.extend(page.into_iter().map(|e| e.event));
        if done {
            return Ok(events);
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX).max(1)
}

/// Buckets of `width` per scope, contiguous from each scope's first event to its last (empty
/// buckets included: a quiet minute is data too), oldest first.
pub fn bucket_events<'a>(
    events: impl IntoIterator<Item = &'a NewFieldEvent>,
    width: Duration,
) -> HashMap<Scope, Vec<Bucket>> {
    let w = micros(width);
    let mut by_scope: HashMap<Scope, HashMap<i64, Bucket>> = HashMap::new();
    for event in events {
        let scope = Scope {
            endpoint: event.endpoint,
            target: event.target_system,
        };
        let index = event.occurred_at.as_micros().div_euclid(w);
        by_scope
            .entry(scope)
            .or_default()
            .entry(index)
            .or_insert_with(|| Bucket::empty(Timestamp::from_micros(index * w)))
            .add(event);
    }
    by_scope
        .into_iter()
        .map(|(scope, mut buckets)| {
            let first = buckets.keys().copied().min().unwrap_or(0);
            let last = buckets.keys().copied().max().unwrap_or(-1);
            let series = (first..=last)
                .map(|i| {
                    buckets
                        .remove(&i)
                        .unwrap_or_else(|| Bucket::empty(Timestamp::from_micros(i * w)))
                })
                .collect();
            (scope, series)
        })
        .collect()
}

/// Merges buckets (in time order) into buckets of `width`, aligned on multiples of it since the
/// epoch (minutes into clock hours: 10:00-10:59 is one hour however the minutes began); the first
/// and last may be partial.
pub fn roll_up(buckets: &[Bucket], width: Duration) -> Vec<Bucket> {
    let w = micros(width);
    let mut merged: Vec<Bucket> = Vec::new();
    for b in buckets {
        let start = Timestamp::from_micros(b.start.as_micros().div_euclid(w) * w);
        match merged.last_mut() {
            Some(last) if last.start == start => last.merge(b),
            _ => {
                let mut bucket = Bucket::empty(start);
                bucket.merge(b);
                merged.push(bucket);
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(minute: u64, second: u64, outcome: Outcome, latency_ms: i64) -> NewFieldEvent {
        NewFieldEvent {
            idempotency_key: format!("k-{minute}-{second}-{latency_ms}"),
            run_id: None,
            endpoint: Endpoint::Items,
            crm_id: Some("1".into()),
            erp_id: Some("A1".into()),
            field: "price".into(),
            old_value: None,
            new_value: Some("1".into()),
            source_system: System::Erp,
            target_system: System::Crm,
            outcome,
            error: None,
            latency_ms: Some(latency_ms),
            occurred_at: Timestamp::parse_rfc3339("2026-11-23T10:00:00Z").unwrap()
                + Duration::from_secs(60 * minute + second),
        }
    }

    #[test]
    fn events_fall_into_contiguous_buckets_per_scope() {
        let mut events = vec![
            event(0, 5, Outcome::Applied, 40),
            event(0, 50, Outcome::Failed, 400),
            event(0, 59, Outcome::SkippedNotOwner, 1),
            event(3, 0, Outcome::Applied, 60),
        ];
        let mut other = event(1, 0, Outcome::Applied, 10);
        other.target_system = System::Erp;
        events.push(other);
        let series = bucket_events(&events, Duration::from_secs(60));
        let crm = &series[&Scope {
            endpoint: Endpoint::Items,
            target: System::Crm,
        }];
        assert_eq!(crm.len(), 4, "minutes 0..=3, the quiet ones included");
        assert_eq!((crm[0].attempts, crm[0].failures, crm[0].events), (2, 1, 3));
        assert_eq!(crm[0].latencies_ms, vec![40, 400]);
        assert_eq!((crm[1].events, crm[2].events, crm[3].attempts), (0, 0, 1));
        assert_eq!(crm[1].start, crm[0].start + Duration::from_secs(60));
        assert_eq!(series.len(), 2);
    }

    #[test]
    fn a_summary_has_the_success_rate_and_percentiles() {
        let mut bucket = Bucket::empty(Timestamp::from_micros(0));
        assert_eq!(BucketSummary::from(&bucket).success_rate, None);
        bucket.attempts = 200;
        bucket.failures = 3;
        bucket.latencies_ms = (1..=200).collect();
        let summary = BucketSummary::from(&bucket);
        assert_eq!(summary.success_rate, Some(0.985));
        assert_eq!(
            (
                summary.latency_p50_ms,
                summary.latency_p95_ms,
                summary.latency_p99_ms
            ),
            (Some(100), Some(190), Some(198))
        );
    }

    #[test]
    fn percentiles_and_roll_ups() {
        let mut bucket = Bucket::empty(Timestamp::from_micros(0));
        bucket.latencies_ms = (1..=100).rev().collect();
        assert_eq!(bucket.latency_percentile(0.5), Some(50));
        assert_eq!(bucket.latency_percentile(0.95), Some(95));
        assert_eq!(bucket.latency_percentile(1.0), Some(100));
        assert_eq!(Bucket::empty(bucket.start).latency_percentile(0.5), None);

        // From 00:30 for 150 minutes: the second half of one hour, then two full hours.
        let minutes: Vec<Bucket> = (30..180)
            .map(|i| Bucket {
                start: Timestamp::from_micros(i * 60_000_000),
                attempts: 2,
                failures: u64::from(i % 10 == 0),
                events: 3,
                latencies_ms: vec![i],
            })
            .collect();
        let hours = roll_up(&minutes, Duration::from_secs(3600));
        assert_eq!(hours.len(), 3);
        assert_eq!(
            hours[0].start,
            Timestamp::from_micros(0),
            "aligned on the hour"
        );
        assert_eq!(hours[0].attempts, 60, "the first, partial hour");
        assert_eq!(
            (hours[1].attempts, hours[1].failures, hours[1].events),
            (120, 6, 180)
        );
        assert_eq!(hours[2].start, Timestamp::from_micros(2 * 3600 * 1_000_000));
        assert_eq!(hours[2].latencies_ms.len(), 60);
    }
}
