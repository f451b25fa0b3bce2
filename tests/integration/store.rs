use std::time::Duration;

use syncwarden::domain::{Endpoint, RecordLink, RunStatus, SyncRun, SyncRunCounts, Timestamp};
use syncwarden::store::{AppendResult, EventQuery, StoreError, SyncCommit};

use crate::helpers::{TestDb, event, events};

fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-28T12:00:00Z").unwrap()
}

#[tokio::test]
async fn migrations_run_from_empty_and_are_idempotent() {
    for db in TestDb::all("store::migrations_run_from_empty_and_are_idempotent").await {
        let store = db.open().await;
        store.migrate().await.unwrap();
        assert_eq!(store.count_events().await.unwrap(), 0);
        store.ping().await.unwrap();
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn event_batch_round_trips_every_field() {
    for db in TestDb::all("store::event_batch_round_trips_every_field").await {
        let store = db.open().await;
        let mut batch = events(0..50);
        // Optional fields absent, and values that are not strings.
        batch[1].run_id = None;
        batch[1].crm_id = None;
        batch[1].old_value = None;
        batch[1].error = None;
        batch[1].latency_ms = None;
        batch[2].new_value = Some(r#"{"street":"1 Main St","city":"Zürich"}"#.into());
        let result = store.append_events(&batch, now()).await.unwrap();
        assert_eq!(
            result,
            AppendResult {
                accepted: 50,
                duplicates: 0
            }
        );
        let stored = store.query_events(&EventQuery::default()).await.unwrap();
        assert_eq!(stored.len(), 50);
        for (got, want) in stored.iter().zip(&batch) {
            assert_eq!(&got.event, want);
            assert_eq!(got.recorded_at, now());
        }
        assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn replayed_keys_are_duplicates_not_new_rows() {
    for db in TestDb::all("store::replayed_keys_are_duplicates_not_new_rows").await {
        let store = db.open().await;
        store.append_events(&events(0..10), now()).await.unwrap();
        // A replay overlapping the stored batch, with a repeat inside the batch itself.
        let mut replay = events(5..15);
        replay.push(event(14));
        let result = store.append_events(&replay, now()).await.unwrap();
        assert_eq!(
            result,
            AppendResult {
                accepted: 5,
                duplicates: 6
            }
        );
        assert_eq!(store.count_events().await.unwrap(), 15);
        let again = store.append_events(&events(0..15), now()).await.unwrap();
        assert_eq!(
            again,
            AppendResult {
                accepted: 0,
                duplicates: 15
            }
        );
        assert_eq!(store.count_events().await.unwrap(), 15);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_run_commit_leaves_out_events_the_log_holds_and_says_which() {
    for db in
        TestDb::all("store::a_run_commit_leaves_out_events_the_log_holds_and_says_which").await
    {
        let store = db.open().await;
        store.append_events(&events(0..4), now()).await.unwrap();
        // A refusal seen again on a later run: same key, a later time. Not a conflict here.
        let mut seen_again = event(2);
        seen_again.occurred_at = seen_again.occurred_at + Duration::from_secs(3600);
        let commit = SyncCommit {
            events: vec![event(4), seen_again, event(5), event(4)],
            ..Default::default()
        };
        let recorded = store.commit_run(&commit, now()).await.unwrap();
        assert_eq!(recorded, [true, false, true, false]);
        assert_eq!(store.count_events().await.unwrap(), 6);
        let stored = crate::helpers::all_events(store.as_ref()).await;
        let key_2 = stored.iter().find(|e| e.event.idempotency_key == "key-2");
        assert_eq!(
            key_2.map(|e| e.event.occurred_at),
            Some(event(2).occurred_at)
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_batch_with_one_bad_row_stores_nothing() {
    for db in TestDb::all("store::a_batch_with_one_bad_row_stores_nothing").await {
        let store = db.open().await;
        store.append_events(&events(0..10), now()).await.unwrap();

        // A stored key replayed with different content.
        let mut batch = events(10..20);
        let mut changed = event(3);
        changed.new_value = Some("\"something else\"".into());
        batch.push(changed);
        let err = store.append_events(&batch, now()).await.unwrap_err();
        match err {
            StoreError::IdempotencyConflict { key, index } => {
                assert_eq!((key.as_str(), index), ("key-3", 10));
            }
            other => panic!("unexpected {other:?}"),
        }

        // The same key twice inside one batch with different content.
        let mut batch = events(20..30);
        let mut twin = event(25);
        twin.outcome = syncwarden::domain::Outcome::Failed;
        batch.push(twin);
        assert!(matches!(
            store.append_events(&batch, now()).await,
            Err(StoreError::IdempotencyConflict { index: 10, .. })
        ));
        assert_eq!(store.count_events().await.unwrap(), 10);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn queries_by_record_field_time_and_run() {
    for db in TestDb::all("store::queries_by_record_field_time_and_run").await {
        let store = db.open().await;
        let batch = events(0..70);
        store.append_events(&batch, now()).await.unwrap();
        let keys = |q: EventQuery| {
            let store = store.clone();
            async move {
                store
                    .query_events(&q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.event.idempotency_key)
                    .collect::<Vec<_>>()
            }
        };
        let expect = |pred: &dyn Fn(&syncwarden::domain::NewFieldEvent) -> bool| {
            batch
                .iter()
                .filter(|e| pred(e))
                .map(|e| e.idempotency_key.clone())
                .collect::<Vec<_>>()
        };

        let by_crm = keys(EventQuery {
            record_id: Some("crm-2".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(by_crm, expect(&|e| e.crm_id.as_deref() == Some("crm-2")));
        assert_eq!(by_crm.len(), 14);
        let by_erp = keys(EventQuery {
            record_id: Some("ERP2".into()),
            endpoint: Some(Endpoint::Items),
            ..Default::default()
        })
        .await;
        assert_eq!(
            by_erp,
            expect(&|e| e.erp_id.as_deref() == Some("ERP2") && e.endpoint == Endpoint::Items)
        );
        assert!(!by_erp.is_empty());

        let by_field = keys(EventQuery {
            field: Some("price".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(by_field, expect(&|e| e.field == "price"));

        let from = batch[10].occurred_at;
        let to = batch[20].occurred_at;
        let by_time = keys(EventQuery {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await;
        assert_eq!(
            by_time,
            expect(&|e| e.occurred_at >= from && e.occurred_at < to)
        );
        assert_eq!(by_time.len(), 10);

        let by_run = keys(EventQuery {
            run_id: Some("run-1".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(by_run, expect(&|e| e.run_id.as_deref() == Some("run-1")));

        // Keyset pagination walks everything once, in order.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .query_events(&EventQuery {
                    after_id: after,
                    limit: Some(16),
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.into_iter().map(|e| e.event.idempotency_key));
        }
        assert_eq!(seen, expect(&|_| true));
        // One id in either column, or in both: each event once, in id order, page by page.
        let mut shared = events(100..103);
        shared[0].crm_id = Some("X-1".into());
        shared[1].erp_id = Some("X-1".into());
        shared[2].crm_id = Some("X-1".into());
        shared[2].erp_id = Some("X-1".into());
        store.append_events(&shared, now()).await.unwrap();
        let all_x = keys(EventQuery {
            record_id: Some("X-1".into()),
            ..Default::default()
        })
        .await;
        let shared_keys: Vec<String> = shared.iter().map(|e| e.idempotency_key.clone()).collect();
        assert_eq!(all_x, shared_keys);
        let first = store
            .query_events(&EventQuery {
                record_id: Some("X-1".into()),
                limit: Some(2),
                ..Default::default()
            })
            .await
            .unwrap();
        let rest = keys(EventQuery {
            record_id: Some("X-1".into()),
            after_id: Some(first[1].id),
            ..Default::default()
        })
        .await;
        assert_eq!(rest, shared_keys[2..]);

        db.cleanup().await;
    }
}

#[tokio::test]
async fn sync_runs_and_record_links() {
    for db in TestDb::all("store::sync_runs_and_record_links").await {
        let store = db.open().await;
        let run = SyncRun {
            id: "run-a".into(),
            endpoint: Some(Endpoint::Quotes),
            started_at: now(),
            ended_at: None,
            status: RunStatus::Running,
            counts: SyncRunCounts::default(),
            error: None,
        };
        store.start_run(&run).await.unwrap();
        assert_eq!(store.run("run-a").await.unwrap(), Some(run.clone()));
        let counts = SyncRunCounts {
            records_read: 10,
            records_written: 8,
            events: 30,
            api_calls_ok: 12,
            api_calls_failed: 2,
        };
        let ended = now() + Duration::from_secs(5);
        store
            .finish_run(
                "run-a",
                ended,
                RunStatus::Failed,
                &counts,
                Some("ERP timed out"),
            )
            .await
            .unwrap();
        let done = store.run("run-a").await.unwrap().unwrap();
        assert_eq!(
            (
                done.ended_at,
                done.status,
                done.counts,
                done.error.as_deref()
            ),
            (
                Some(ended),
                RunStatus::Failed,
                counts,
                Some("ERP timed out")
            )
        );
        let later = SyncRun {
            id: "run-b".into(),
            started_at: ended,
            ..run
        };
        store.start_run(&later).await.unwrap();
        let ids: Vec<_> = store
            .recent_runs(10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["run-b", "run-a"]);
        assert_eq!(store.run("missing").await.unwrap(), None);

        let link = RecordLink {
            endpoint: Endpoint::Accounts,
            crm_id: "9001".into(),
            erp_id: "C00042".into(),
            linked_at: now(),
        };
        store.link_records(&link).await.unwrap();
        assert_eq!(
            store
                .link_by_crm_id(Endpoint::Accounts, "9001")
                .await
                .unwrap(),
            Some(link.clone())
        );
        assert_eq!(
            store
                .link_by_erp_id(Endpoint::Accounts, "C00042")
                .await
                .unwrap(),
            Some(link)
        );
        assert_eq!(
            store
                .link_by_erp_id(Endpoint::Contacts, "C00042")
                .await
                .unwrap(),
            None
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_event_log_refuses_updates_and_deletes() {
    // Append-only is enforced by the database itself, not only by the code that writes to it.
    let db = TestDb::sqlite();
    let store = db.open().await;
    store.append_events(&events(0..3), now()).await.unwrap();
    drop(store);
    let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
    let update = sqlx::query("UPDATE field_events SET field = 'x'")
        .execute(&pool)
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM field_events").execute(&pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    if let Some(pg) = TestDb::postgres("store::the_event_log_refuses_updates_and_deletes").await {
        let store = pg.open().await;
        store.append_events(&events(0..3), now()).await.unwrap();
        store.close().await;
        let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
        let update = sqlx::query("UPDATE field_events SET field = 'x'")
            .execute(&pool)
            .await;
        assert!(update.unwrap_err().to_string().contains("append-only"));
        pool.close().await;
        pg.cleanup().await;
    }
}
