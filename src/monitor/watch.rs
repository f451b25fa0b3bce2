//! The watcher: per scope, the success-rate, latency, volume and freshness detectors fed from
//! one-minute metric buckets, reporting findings to open and fingerprints to resolve, and the
//! step that records those reports in the store.

use std::collections::HashMap;
use std::time::Duration;

use super::freshness::{FreshnessChange, FreshnessMonitor, FreshnessParams};
use super::metrics::{Bucket, Scope};
use super::seasonal::{SeasonalChange, SeasonalDetector, SeasonalParams};
use super::success_rate::{SuccessRateChange, SuccessRateDetector, SuccessRateParams};
use super::{FindingState, NewFinding};
use crate::domain::Timestamp;
use crate::store::{Store, StoreError};

/// Minutes per bucket of the latency and volume detectors, whose baselines are tuned for
/// five-minute buckets (one-minute percentiles are too noisy to judge).
const SEASONAL_MINUTES: usize = 5;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchParams {
    pub success_rate: SuccessRateParams,
    pub seasonal: SeasonalParams,
    pub freshness: FreshnessParams,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    Open(NewFinding),
    Resolve { fingerprint: String, at: Timestamp },
}

#[derive(Debug, Clone)]
struct ScopeWatch {
    success_rate: SuccessRateDetector,
    latency: SeasonalDetector,
    volume: SeasonalDetector,
    freshness: FreshnessMonitor,
    pending: Option<Bucket>,
    pending_minutes: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Watcher {
    params: WatchParams,
    scopes: HashMap<Scope, ScopeWatch>,
}

impl Watcher {
    pub fn new(params: WatchParams) -> Self {
        Self {
            params,
            scopes: HashMap::new(),
        }
    }

    /// Takes the next one-minute bucket of `scope` (in time order, quiet minutes included).
    pub fn observe(&mut self, scope: Scope, minute: &Bucket) -> Vec<Report> {
        let params = &self.params;
        let watch = self.scopes.entry(scope).or_insert_with(|| ScopeWatch {
            success_rate: SuccessRateDetector::new(params.success_rate.clone()),
            latency: SeasonalDetector::new(params.seasonal.clone()),
            volume: SeasonalDetector::counts(params.seasonal.clone()),
            freshness: FreshnessMonitor::new(params.freshness.clone()),
            pending: None,
            pending_minutes: 0,
        });
        let name = scope.to_string();
        let end = minute.start + Duration::from_secs(60);
        let mut reports = Vec::new();

        match watch.success_rate.update(minute.calls()) {
            Some(SuccessRateChange::Opened(incident)) => {
                reports.push(Report::Open(incident.finding(&name)));
            }
            Some(SuccessRateChange::Resolved { incident, at }) => reports.push(Report::Resolve {
                fingerprint: incident.finding(&name).fingerprint,
                at,
            }),
            None => {}
        }

        let moved_data = minute.attempts > minute.failures;
        let freshness = if moved_data {
            watch.freshness.record_success(end)
        } else {
            watch.freshness.check(end)
        };
        match freshness {
            Some(FreshnessChange::Stale(incident)) => {
                reports.push(Report::Open(incident.finding(&name)));
            }
            Some(FreshnessChange::Fresh { incident, at }) => reports.push(Report::Resolve {
                fingerprint: incident.finding(&name).fingerprint,
                at,
            }),
            None => {}
        }

        match &mut watch.pending {
            Some(pending) => pending.merge(minute),
            None => watch.pending = Some(minute.clone()),
        }
        watch.pending_minutes += 1;
        if watch.pending_minutes == SEASONAL_MINUTES
            && let Some(five) = watch.pending.take()
        {
            watch.pending_minutes = 0;
            if let Some(p95) = five.latency_percentile(0.95) {
                let change = watch.latency.update(five.start, p95 as f64);
                reports.extend(seasonal_report(change, "latency_p95", &name));
            }
            let change = watch.volume.update(five.start, five.attempts as f64);
            reports.extend(seasonal_report(change, "volume", &name));
        }
        reports
    }
}

fn seasonal_report(change: Option<SeasonalChange>, metric: &str, scope: &str) -> Option<Report> {
    Some(match change? {
        SeasonalChange::Opened(incident) => Report::Open(incident.finding(metric, scope)),
        SeasonalChange::Resolved { incident, at } => Report::Resolve {
            fingerprint: incident.finding(metric, scope).fingerprint,
            at,
        },
    })
}

/// Records reports in the store: findings upserted by fingerprint, and every unresolved finding
/// with a resolved fingerprint resolved.
pub async fn record(store: &dyn Store, reports: &[Report]) -> Result<(), StoreError> {
    for report in reports {
        match report {
            Report::Open(finding) => {
                store.upsert_finding(finding).await?;
            }
            Report::Resolve { fingerprint, at } => {
                for state in [FindingState::Open, FindingState::Acknowledged] {
                    for finding in store.findings(Some(state)).await? {
                        if &finding.fingerprint == fingerprint {
                            store.resolve_finding(finding.id, *at).await?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
