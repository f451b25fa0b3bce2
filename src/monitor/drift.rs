//! Reconciliation drift: records missing on one side or different between the sides, as a full
//! reconciliation records them (`missing` and `drift` field events of one check). A difference seen
//! in one check only may be a change the sync has not carried yet; one still there at the next
//! check is drift. One finding per endpoint names the records, and resolves when a check finds no
//! confirmed difference left.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::findings::{NewFinding, Severity};
use super::watch::Report;
use crate::domain::{Endpoint, NewFieldEvent, Outcome, Timestamp};

/// Records named in a finding's evidence at most (the counts are always complete).
const EVIDENCE_RECORDS: usize = 20;

/// One difference: a record (by ERP id, else CRM id) and a field (`*`: the whole record).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Difference {
    pub record: String,
    pub field: String,
    pub missing: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftEvidence {
    pub endpoint: Endpoint,
    pub missing_records: usize,
    pub different_fields: usize,
    pub examples: Vec<Difference>,
}

/// Remembers the differences of the last check of each endpoint, and since when each confirmed
/// drift has lasted.
#[derive(Debug, Clone, Default)]
pub struct DriftWatch {
    previous: HashMap<Endpoint, BTreeSet<Difference>>,
    since: HashMap<Endpoint, Timestamp>,
}

impl DriftWatch {
    /// Takes the events of one reconciliation of `endpoint` at `at` (other events are ignored).
    /// Returns the finding to open or update, or the one to resolve.
    pub fn check(
        &mut self,
        endpoint: Endpoint,
        events: &[NewFieldEvent],
        at: Timestamp,
    ) -> Option<Report> {
        let current: BTreeSet<Difference> = events
            .iter()
            .filter(|e| matches!(e.outcome, Outcome::Missing | Outcome::Drift))
            .filter_map(|e| {
                let record = e.erp_id.clone().or_else(|| e.crm_id.clone())?;
                Some(Difference {
                    record,
                    field: e.field.clone(),
                    missing: e.outcome == Outcome::Missing,
                })
            })
            .collect();
        let previous = self.previous.insert(endpoint, current.clone());
        let confirmed: Vec<Difference> = previous
            .map(|p| current.intersection(&p).cloned().collect())
            .unwrap_or_default();
        let fingerprint = format!("reconciliation_drift:{}", endpoint.as_str());
        if confirmed.is_empty() {
            return self
                .since
                .remove(&endpoint)
                .map(|_| Report::Resolve { fingerprint, at });
        }
        let started_at = *self.since.entry(endpoint).or_insert(at);
        let missing: BTreeSet<&str> = confirmed
            .iter()
            .filter(|d| d.missing)
            .map(|d| d.record.as_str())
            .collect();
        let evidence = DriftEvidence {
            endpoint,
            missing_records: missing.len(),
            different_fields: confirmed.iter().filter(|d| !d.missing).count(),
            examples: confirmed.iter().take(EVIDENCE_RECORDS).cloned().collect(),
        };
        Some(Report::Open(NewFinding {
            kind: "reconciliation_drift".into(),
            severity: if evidence.missing_records > 0 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            title: format!(
                "{}: {} records missing on one side, {} fields different, in two checks running",
                endpoint.as_str(),
                evidence.missing_records,
                evidence.different_fields
            ),
            fingerprint,
            evidence: serde_json::to_value(&evidence).unwrap_or_default(),
            started_at,
            detected_at: at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::System;

    fn difference(record: &str, field: &str, outcome: Outcome) -> NewFieldEvent {
        NewFieldEvent {
            idempotency_key: format!("{record}-{field}"),
            run_id: Some("check".into()),
            endpoint: Endpoint::Accounts,
            crm_id: None,
            erp_id: Some(record.into()),
            field: field.into(),
            old_value: None,
            new_value: None,
            source_system: System::Erp,
            target_system: System::Crm,
            outcome,
            error: None,
            latency_ms: None,
            occurred_at: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn a_difference_in_two_checks_running_is_drift_until_it_is_gone() {
        let t = |m: u64| Timestamp::from_micros(0) + Duration::from_secs(60 * m);
        let mut watch = DriftWatch::default();
        let first = vec![
            difference("C1", "*", Outcome::Missing),
            difference("C2", "phone", Outcome::Drift),
        ];
        // In flight: one check only says nothing yet.
        assert_eq!(watch.check(Endpoint::Accounts, &first, t(0)), None);
        let second = vec![
            difference("C1", "*", Outcome::Missing),
            difference("C3", "name", Outcome::Drift),
            difference("C9", "x", Outcome::Applied),
        ];
        let Some(Report::Open(finding)) = watch.check(Endpoint::Accounts, &second, t(10)) else {
            panic!("no drift finding");
        };
        assert_eq!(finding.fingerprint, "reconciliation_drift:accounts");
        assert_eq!(finding.severity, Severity::Critical);
        assert_eq!(finding.evidence["missing_records"], 1);
        assert_eq!(finding.evidence["different_fields"], 0);
        assert_eq!(finding.evidence["examples"][0]["record"], "C1");
        let third = vec![difference("C3", "name", Outcome::Drift)];
        let Some(Report::Open(finding)) = watch.check(Endpoint::Accounts, &third, t(20)) else {
            panic!("C3 is confirmed now");
        };
        assert_eq!((finding.started_at, finding.detected_at), (t(10), t(20)));
        assert_eq!(finding.severity, Severity::Warning);
        assert_eq!(
            watch.check(Endpoint::Accounts, &[], t(30)),
            Some(Report::Resolve {
                fingerprint: "reconciliation_drift:accounts".into(),
                at: t(30)
            })
        );
        assert_eq!(watch.check(Endpoint::Accounts, &[], t(40)), None);
    }
}
