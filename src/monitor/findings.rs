//! Findings: what the monitor noticed, with its evidence. A finding is keyed by a fingerprint
//! (what is wrong and where), so a repeat updates the one finding instead of adding another, and
//! a recurrence after it was resolved reopens it. Lifecycle: open -> acknowledged -> resolved.

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    Open,
    Acknowledged,
    Resolved,
}

impl FindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingState::Open => "open",
            FindingState::Acknowledged => "acknowledged",
            FindingState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            FindingState::Open,
            FindingState::Acknowledged,
            FindingState::Resolved,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|severity| severity.as_str() == s)
    }
}

/// A finding as a detector reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFinding {
    /// What kind of anomaly: `success_rate_drop`, `latency`, `freshness`, `price_mismatch`, ...
    pub kind: String,
    pub severity: Severity,
    /// Identifies the anomaly across reports, e.g. `success_rate_drop:items:crm`.
    pub fingerprint: String,
    pub title: String,
    /// The numbers behind it: window, baseline, observed values, records involved.
    pub evidence: serde_json::Value,
    /// When the anomaly began, as estimated by the detector.
    pub started_at: Timestamp,
    pub detected_at: Timestamp,
}

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub id: i64,
    pub kind: String,
    pub severity: Severity,
    pub fingerprint: String,
    pub title: String,
    pub evidence: serde_json::Value,
    pub state: FindingState,
    pub started_at: Timestamp,
    pub detected_at: Timestamp,
    /// The latest report of it.
    pub last_seen_at: Timestamp,
    /// Reports of it since it was (re)opened.
    pub occurrences: i64,
    pub acknowledged_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

impl Finding {
    /// Time to detect: from the estimated start to the detection.
    pub fn time_to_detect(&self) -> std::time::Duration {
        self.detected_at.since(self.started_at)
    }

    /// Time to recover: from the detection to the resolution, once resolved.
    pub fn time_to_recover(&self) -> Option<std::time::Duration> {
        self.resolved_at.map(|at| at.since(self.detected_at))
    }
}

/// Findings with their mean time to detect (over all) and to recover (over the resolved ones).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FindingsReport {
    pub count: usize,
    pub mean_time_to_detect_secs: Option<f64>,
    pub mean_time_to_recover_secs: Option<f64>,
    pub findings: Vec<Finding>,
}

impl FindingsReport {
    pub fn new(findings: Vec<Finding>) -> Self {
        let mean = |secs: Vec<f64>| {
            (!secs.is_empty()).then(|| secs.iter().sum::<f64>() / secs.len() as f64)
        };
        let detect = findings
            .iter()
            .map(|f| f.time_to_detect().as_secs_f64())
            .collect();
        let recover = findings
            .iter()
            .filter_map(|f| f.time_to_recover().map(|d| d.as_secs_f64()))
            .collect();
        Self {
            count: findings.len(),
            mean_time_to_detect_secs: mean(detect),
            mean_time_to_recover_secs: mean(recover),
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn finding(started: u64, detected: u64, resolved: Option<u64>) -> Finding {
        let t = |s: u64| Timestamp::from_micros(0) + Duration::from_secs(s);
        Finding {
            id: 1,
            kind: "freshness".into(),
            severity: Severity::Warning,
            fingerprint: "freshness:items".into(),
            title: "stale".into(),
            evidence: serde_json::json!({}),
            state: if resolved.is_some() {
                FindingState::Resolved
            } else {
                FindingState::Open
            },
            started_at: t(started),
            detected_at: t(detected),
            last_seen_at: t(detected),
            occurrences: 1,
            acknowledged_at: None,
            resolved_at: resolved.map(t),
        }
    }

    #[test]
    fn the_report_averages_detection_over_all_and_recovery_over_the_resolved() {
        let report = FindingsReport::new(vec![
            finding(0, 60, Some(660)),
            finding(100, 400, None),
            finding(0, 120, Some(420)),
        ]);
        assert_eq!(report.count, 3);
        assert_eq!(report.mean_time_to_detect_secs, Some(160.0));
        assert_eq!(report.mean_time_to_recover_secs, Some(450.0));
        let empty = FindingsReport::new(Vec::new());
        assert_eq!(
            (
                empty.mean_time_to_detect_secs,
                empty.mean_time_to_recover_secs
            ),
            (None, None)
        );
    }

    #[test]
    fn states_and_severities_round_trip_their_names() {
        for state in [
            FindingState::Open,
            FindingState::Acknowledged,
            FindingState::Resolved,
        ] {
            assert_eq!(FindingState::parse(state.as_str()), Some(state));
        }
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(Severity::parse(severity.as_str()), Some(severity));
        }
        assert_eq!(FindingState::parse("closed"), None);
        assert_eq!(Severity::parse("fatal"), None);
    }
}
