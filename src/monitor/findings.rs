//! Findings: what the monitor noticed, with its evidence. A finding is keyed by a fingerprint
//! (what is wrong and where), so a repeat updates the one finding instead of adding another, and
//! a recurrence after it was resolved reopens it. Lifecycle: open -> acknowledged -> resolved.

use serde::{Deserialize, Serialize};

use crate::domain::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
