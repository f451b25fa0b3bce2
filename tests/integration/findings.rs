//! Findings in the store: fingerprinting (a repeat updates, a recurrence reopens) and the
//! lifecycle open -> acknowledged -> resolved, on every backend.

use std::time::Duration;

use syncwarden::domain::Timestamp;
use syncwarden::monitor::{FindingState, NewFinding, Severity};

use crate::helpers::TestDb;

fn at(minutes: u64) -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap() + Duration::from_secs(60 * minutes)
}

fn drop_in_success_rate(detected: u64, rate: f64) -> NewFinding {
    NewFinding {
        kind: "success_rate_drop".into(),
        severity: Severity::Warning,
        fingerprint: "success_rate_drop:items:crm".into(),
        title: "Success rate of items writes to the CRM dropped".into(),
        evidence: serde_json::json!({"window_min": 10, "baseline": 0.99, "observed": rate, "calls": 170}),
        started_at: at(detected - 4),
        detected_at: at(detected),
    }
}

#[tokio::test]
async fn repeats_update_one_finding_and_a_recurrence_reopens_it() {
    for db in TestDb::all("findings::repeats_update_one_finding_and_a_recurrence_reopens_it").await
    {
        let store = db.open().await;
        let first = store
            .upsert_finding(&drop_in_success_rate(10, 0.91))
            .await
            .unwrap();
        assert_eq!(first.state, FindingState::Open);
        assert_eq!(first.occurrences, 1);
        assert_eq!(first.time_to_detect(), Duration::from_secs(240));

        let mut worse = drop_in_success_rate(15, 0.80);
        worse.severity = Severity::Critical;
        let repeat = store.upsert_finding(&worse).await.unwrap();
        assert_eq!(repeat.id, first.id, "a repeat is the same finding");
        assert_eq!(repeat.occurrences, 2);
        assert_eq!(repeat.severity, Severity::Critical);
        assert_eq!(repeat.evidence["observed"], 0.80);
        assert_eq!(repeat.detected_at, at(10), "first detection is kept");
        assert_eq!(repeat.last_seen_at, at(15));

        let acked = store
            .acknowledge_finding(first.id, at(16))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(acked.state, FindingState::Acknowledged);
        assert_eq!(acked.acknowledged_at, Some(at(16)));
        assert!(
            store
                .acknowledge_finding(first.id, at(17))
                .await
                .unwrap()
                .is_none()
        );

        let resolved = store
            .resolve_finding(first.id, at(30))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resolved.state, FindingState::Resolved);
        assert_eq!(
            resolved.time_to_recover(),
            Some(Duration::from_secs(20 * 60))
        );
        assert!(
            store
                .resolve_finding(first.id, at(31))
                .await
                .unwrap()
                .is_none()
        );

        let again = store
            .upsert_finding(&drop_in_success_rate(60, 0.9))
            .await
            .unwrap();
        assert_eq!(again.id, first.id);
        assert_eq!(again.state, FindingState::Open);
        assert_eq!(
            (again.occurrences, again.detected_at, again.resolved_at),
            (1, at(60), None)
        );
        assert_eq!(again.acknowledged_at, None);

        let mut other = drop_in_success_rate(61, 0.5);
        other.fingerprint = "success_rate_drop:contacts:erp".into();
        store.upsert_finding(&other).await.unwrap();
        assert_eq!(store.findings(None).await.unwrap().len(), 2);
        let open = store.findings(Some(FindingState::Open)).await.unwrap();
        assert_eq!(open.len(), 2);
        assert_eq!(
            open[0].fingerprint, "success_rate_drop:contacts:erp",
            "newest first"
        );
        assert!(
            store
                .findings(Some(FindingState::Resolved))
                .await
                .unwrap()
                .is_empty()
        );
        store.close().await;
        db.cleanup().await;
    }
}
