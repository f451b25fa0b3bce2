//! Several instances on one database: scheduled work runs once across them, and when the instance
//! holding a job is killed (SIGKILL), another takes the job over within a bounded time and nothing
//! is lost or done twice. Also SIGKILL while a notification is being sent.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use syncwarden::alert::OutboxStatus;
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Timestamp};
use syncwarden::lease::Leases;
use syncwarden::monitor::{NewFinding, Severity};
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{self, Sandbox, SeedScale};
use syncwarden::store::Store;

use crate::helpers::{PG_VAR, TestDb, all_events, skip_notice, spawn_serve};
use crate::invariants::{check_accounts, crm_account_keys};

/// A webhook receiver that counts the notifications it acknowledged, per alert fingerprint and
/// status; the first `stall` requests are never answered (the sender is killed meanwhile).
#[derive(Clone)]
struct Hook {
    url: String,
    acknowledged: Arc<Mutex<Vec<(String, String)>>>,
    bodies: Arc<Mutex<Vec<Bytes>>>,
    stall: Arc<AtomicUsize>,
}

impl Hook {
    async fn start(stall: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = Self {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            acknowledged: Default::default(),
            bodies: Default::default(),
            stall: Arc::new(AtomicUsize::new(stall)),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        hook
    }

    /// Acknowledged notifications per (fingerprint, status).
    fn counts(&self) -> HashMap<(String, String), usize> {
        let mut counts = HashMap::new();
        for key in self.acknowledged.lock().unwrap().iter() {
            *counts.entry(key.clone()).or_default() += 1;
        }
        counts
    }

    fn firing(&self, fingerprint: &str) -> usize {
        self.counts()
            .get(&(fingerprint.to_string(), "firing".to_string()))
            .copied()
            .unwrap_or(0)
    }
}

async fn receive(State(hook): State<Hook>, body: Bytes) -> &'static str {
    hook.bodies.lock().unwrap().push(body.clone());
    let stalled = hook
        .stall
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if stalled {
        // Never answered: the connection dies with the sender.
        std::future::pending::<()>().await;
    }
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut acknowledged = hook.acknowledged.lock().unwrap();
    for alert in payload["alerts"].as_array().unwrap() {
        acknowledged.push((
            alert["fingerprint"].as_str().unwrap().to_string(),
            alert["status"].as_str().unwrap().to_string(),
        ));
    }
    "ok"
}

/// A finding of its own kind, so it is notified in a group of its own.
async fn open_finding(store: &dyn Store, n: usize) -> String {
    let fingerprint = format!("test_{n}:accounts:crm");
    let now = Clock::system().now();
    store
        .upsert_finding(&NewFinding {
            kind: format!("test_{n}"),
            severity: Severity::Warning,
            fingerprint: fingerprint.clone(),
            title: format!("test finding {n}"),
            evidence: serde_json::json!({"n": n}),
            started_at: now,
            detected_at: now,
        })
        .await
        .unwrap();
    fingerprint
}

/// Accounts synced every second under a 2 s lease, every other endpoint paused; alerts evaluated
/// every second and sent at once to `hook`, a dead sender's claim expiring after 2 s.
fn write_config(dir: &Path, sandbox: Option<&Sandbox>, hook: &Hook) -> std::path::PathBuf {
    let mut toml = String::new();
    if let Some(sandbox) = sandbox {
        toml += &format!(
            r#"
            [crm]
            base_url = "{}"
            token = "{}"
            [erp]
            base_url = "{}"
            company_db = "{}"
            username = "{}"
            password = "{}"
            "#,
            sandbox.crm.base_url(),
            sandbox::HUBSPOT_TOKEN,
            sandbox.erp.base_url(),
            sandbox::SAP_COMPANY_DB,
            sandbox::SAP_USER,
            sandbox::SAP_PASSWORD,
        );
    }
    toml += "[sync]\nlease_secs = 2\n[sync.retry]\nbase_delay_ms = 20\nmax_delay_ms = 200\n";
    toml += "[sync.endpoints.accounts]\ninterval_secs = 1\n";
    // Item prices travel with the items: the pricebook has no section of its own.
    for endpoint in Endpoint::ALL
        .into_iter()
        .filter(|e| *e != Endpoint::Accounts && *e != Endpoint::Pricebook)
    {
        toml += &format!("[sync.endpoints.{}]\npaused = true\n", endpoint.as_str());
    }
    toml += &format!(
        r#"
        [alerting]
        evaluation_interval_secs = 1
        [alerting.route]
        receiver = "hook"
        group_by = ["type"]
        group_wait_secs = 0
        [[alerting.receivers]]
        type = "webhook"
        name = "hook"
        url = "{}"
        [alerting.delivery]
        claim_secs = 2
        timeout_secs = 1
        base_delay_ms = 100
        max_delay_ms = 200
        "#,
        hook.url
    );
    let path = dir.join("syncwarden.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Polls `done` every 50 ms until it holds; panics with `what` after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid in a lease holder's name (`<pid>-<random>`).
fn holder_pid(holder: &str) -> u32 {
    holder.split('-').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_the_sync_leader_killed_mid_run_the_other_takes_over() {
    let test = "scaleout::two_instances_the_sync_leader_killed_mid_run_the_other_takes_over";
    let Some(db) = TestDb::postgres(test).await else {
        return;
    };
    let scale = SeedScale {
        accounts: 600,
        items: 5,
        crm_overlap: 0.2,
        duplicate_accounts: 0,
        ..SeedScale::small()
    };
    let sandbox = Sandbox::start(Clock::system(), &scale).await.unwrap();
    let keyed_before = crm_account_keys(&sandbox);
    let hook = Hook::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Some(&sandbox), &hook);
    let store = db.open().await;
    let mut fingerprints = Vec::new();
    for n in 0..3 {
        fingerprints.push(open_finding(store.as_ref(), n).await);
    }
    // Slow CRM calls stretch the initial sync over seconds, so the kill lands inside it.
    sandbox.crm.faults.set(FaultConfig {
        latency_ms: 150,
        ..Default::default()
    });
    let mut instances: Vec<std::process::Child> = (0..2)
        .map(|i| spawn_serve(&db.url, &dir.path().join(format!("i{i}")), Some(&config)).0)
        .collect();

    wait_for(
        "the first notifications",
        Duration::from_secs(30),
        async || fingerprints[..3].iter().all(|f| hook.firing(f) > 0),
    )
    .await;
    wait_for(
        "the sync to start writing",
        Duration::from_secs(60),
        async || crm_account_keys(&sandbox).len() > keyed_before.len(),
    )
    .await;
    let (holder, _) = store.lease("sync:accounts").await.unwrap().unwrap();
    let leader = instances
        .iter()
        .position(|c| c.id() == holder_pid(&holder))
        .expect("the lease holder is one of the two instances");
    instances[leader].kill().unwrap();
    instances[leader].wait().unwrap();
    assert!(
        crm_account_keys(&sandbox).len() < scale.accounts,
        "the kill came after the last write; nothing tested"
    );
    for n in 3..6 {
        fingerprints.push(open_finding(store.as_ref(), n).await);
    }

    // The survivor takes the endpoint over once the dead holder's lease has expired.
    let survivor = instances[1 - leader].id();
    wait_for("the takeover", Duration::from_secs(20), async || {
        store
            .lease("sync:accounts")
            .await
            .unwrap()
            .is_some_and(|(h, _)| holder_pid(&h) == survivor)
    })
    .await;
    sandbox.crm.faults.set(FaultConfig::default());
    wait_for("the sync to finish", Duration::from_secs(60), async || {
        crm_account_keys(&sandbox).len() == scale.accounts
            && store.intents(Endpoint::Accounts).await.unwrap().is_empty()
            && store.lease("sync:accounts").await.unwrap().is_none()
    })
    .await;
    wait_for("every notification", Duration::from_secs(30), async || {
        fingerprints.iter().all(|f| hook.firing(f) > 0)
    })
    .await;
    // A few more evaluation rounds on the survivor: nothing is sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let survivor = &mut instances[1 - leader];
    survivor.kill().unwrap();
    survivor.wait().unwrap();

    for f in &fingerprints {
        assert_eq!(hook.firing(f), 1, "{f} notified {} times", hook.firing(f));
    }
    let events = all_events(store.as_ref()).await;
    check_accounts(&sandbox, &events, &keyed_before);
    store.close().await;
    db.cleanup().await;
}

/// SIGKILL while the webhook has a notification in hand and has not answered: after a restart,
/// that notification is sent again once its claim expires, and each notification is acknowledged
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_notification_send_then_restart() {
    let db = TestDb::sqlite();
    let hook = Hook::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), None, &hook);
    let store = db.open().await;
    let first = open_finding(store.as_ref(), 0).await;
    let (mut child, _) = spawn_serve(&db.url, dir.path(), Some(&config));
    wait_for("the send to begin", Duration::from_secs(30), async || {
        !hook.bodies.lock().unwrap().is_empty()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(hook.firing(&first), 0, "the stalled send was acknowledged");
    let second = open_finding(store.as_ref(), 1).await;

    let (mut child, _) = spawn_serve(&db.url, dir.path(), Some(&config));
    wait_for("both notifications", Duration::from_secs(30), async || {
        hook.firing(&first) > 0 && hook.firing(&second) > 0
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(hook.firing(&first), 1);
    assert_eq!(hook.firing(&second), 1);
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 3, "the stalled send, its resend, the second");
    let of_first: Vec<&Bytes> = bodies
        .iter()
        .filter(|b| String::from_utf8_lossy(b).contains(&first))
        .collect();
    assert_eq!(of_first.len(), 2);
    assert_eq!(
        of_first[0], of_first[1],
        "the resend is the same notification"
    );
    let outbox = store.outbox(None).await.unwrap();
    assert!(
        outbox.iter().all(|n| n.status == OutboxStatus::Sent),
        "{outbox:?}"
    );
    store.close().await;
}

/// Two live monitors on one store, each with its own leases: every instance watches, the holder
/// records; a standby that takes over from a dead holder records from the shared mark on. The
/// findings come out as one monitor alone makes them: nothing lost, nothing counted twice.
#[tokio::test]
async fn the_monitor_records_each_minute_once_across_instances() {
    use syncwarden::monitor::{LiveMonitor, Watcher};

    for db in TestDb::all("scaleout::the_monitor_records_each_minute_once_across_instances").await {
        let events = crate::findings::burst_then_silence();
        let at = crate::findings::at;
        let alone = TestDb::sqlite();
        let alone_store = alone.open().await;
        alone_store.append_events(&events, at(0)).await.unwrap();
        LiveMonitor::new(alone_store.clone(), Watcher::default(), at(0))
            .run_once(at(120))
            .await
            .unwrap();

        let store = db.open().await;
        store.append_events(&events, at(0)).await.unwrap();
        let clock = Clock::manual(at(120));
        let instance = || {
            LiveMonitor::new(store.clone(), Watcher::default(), at(0)).with_leases(Leases::new(
                store.clone(),
                clock.clone(),
                Duration::from_secs(30),
            ))
        };
        let (mut a, mut b) = (instance(), instance());
        assert!(a.run_once(at(70)).await.unwrap() > 0, "a records the burst");
        assert_eq!(
            b.run_once(at(70)).await.unwrap(),
            0,
            "b saw the same minutes"
        );
        // a dies holding the monitor: b watches on but cannot record until the lease expires.
        assert!(
            store
                .acquire_lease(
                    "monitor:live",
                    "dead",
                    clock.now() + Duration::from_secs(30),
                    clock.now()
                )
                .await
                .unwrap()
        );
        drop(a);
        assert_eq!(
            b.run_once(at(120)).await.unwrap(),
            0,
            "the lease is the dead one's"
        );
        clock.advance(Duration::from_secs(31));
        assert!(
            b.run_once(at(120)).await.unwrap() > 0,
            "b records what a did not"
        );

        let summary = |findings: Vec<syncwarden::monitor::Finding>| {
            let mut s: Vec<_> = findings
                .into_iter()
                .map(|f| (f.fingerprint, f.state, f.occurrences, f.detected_at))
                .collect();
            s.sort_by(|x, y| x.0.cmp(&y.0));
            s
        };
        assert_eq!(
            summary(store.findings(None).await.unwrap()),
            summary(alone_store.findings(None).await.unwrap())
        );
        store.close().await;
        alone_store.close().await;
        db.cleanup().await;
    }
}

/// The mark is shared by name: a timestamp far in the past is never a reason to record again.
#[tokio::test]
async fn job_marks_only_move_forward() {
    for db in TestDb::all("scaleout::job_marks_only_move_forward").await {
        let store = db.open().await;
        let t = |s: i64| Timestamp::from_micros(s * 1_000_000);
        assert_eq!(store.job_mark("j").await.unwrap(), None);
        store.advance_job_mark("j", t(100)).await.unwrap();
        store.advance_job_mark("j", t(50)).await.unwrap();
        assert_eq!(store.job_mark("j").await.unwrap(), Some(t(100)));
        store.advance_job_mark("j", t(160)).await.unwrap();
        assert_eq!(store.job_mark("j").await.unwrap(), Some(t(160)));
        store.close().await;
        db.cleanup().await;
    }
}

/// A schedule's slot stays with the instance that took the last one: another takes it only once
/// it is overdue by the grace, never while the endpoint's lease is another's, and the holder's
/// run end moves the next slot. The same SQL on SQLite and PostgreSQL.
#[tokio::test]
async fn a_slot_stays_with_the_instance_that_took_the_last_one() {
    use syncwarden::store::SlotClaim;
    for db in TestDb::all("scaleout::a_slot_stays_with_the_instance_that_took_the_last_one").await {
        let store = db.open().await;
        let t = |s: i64| Timestamp::from_micros(s * 1_000_000);
        // `holder` claims at `now` with a grace of 10 s and an interval of 10 s.
        let claim = |holder: &'static str, now: i64| {
            let store = store.clone();
            async move {
                let claim = SlotClaim {
                    job: "sync-due:items",
                    holder,
                    lease: "sync:items",
                    now: t(now),
                    overdue_before: t(now - 10),
                    next: t(now + 10),
                    share: None,
                };
                store.claim_job_slot(&claim).await.unwrap()
            }
        };
        assert!(claim("a", 0).await, "the first slot is the first caller's");
        assert!(!claim("b", 5).await, "not due");
        assert!(!claim("b", 10).await, "due, but a took the last one");
        assert!(claim("a", 10).await, "a takes its next slot when due");
        assert!(!claim("a", 15).await, "taken already");
        // a runs past its next slot, holding the lease: not a missed slot.
        assert!(
            store
                .acquire_lease("sync:items", "a", t(100), t(10))
                .await
                .unwrap()
        );
        assert!(!claim("b", 40).await, "a holds the lease");
        store
            .keep_job_slot("sync-due:items", "a", t(45))
            .await
            .unwrap();
        store
            .keep_job_slot("sync-due:items", "b", t(99))
            .await
            .unwrap();
        assert_eq!(store.job_mark("sync-due:items").await.unwrap(), Some(t(45)));
        store.release_lease("sync:items", "a").await.unwrap();
        // a stops: b takes the slot once it is overdue by the grace, and keeps it.
        assert!(!claim("b", 50).await, "overdue by less than the grace");
        assert!(claim("b", 55).await, "overdue by the grace");
        assert!(!claim("a", 65).await, "b took the last one");
        assert!(claim("b", 65).await);
        store.close().await;
        db.cleanup().await;
    }
}

/// Balance (issue 8): an instance takes a slot it does not hold only while it holds fewer than
/// its share of the endpoints, ceil(endpoints / live instances), the live ones counted from
/// their unexpired heartbeats; its own slots it keeps whatever it holds, and a slot handed back
/// is anyone's within their share. The same SQL on SQLite and PostgreSQL.
#[tokio::test]
async fn a_free_slot_is_taken_only_within_the_share_of_the_live_instances() {
    use syncwarden::store::{SlotClaim, SlotShare};
    let test = "scaleout::a_free_slot_is_taken_only_within_the_share_of_the_live_instances";
    let jobs = [
        "sync-due:accounts",
        "sync-due:contacts",
        "sync-due:invoices",
        "sync-due:items",
        "sync-due:quotes",
        "sync-due:sales_orders",
    ];
    for db in TestDb::all(test).await {
        let store = db.open().await;
        let t = |s: i64| Timestamp::from_micros(s * 1_000_000);
        // `holder` claims `job` at `now`, one of six endpoints, interval, grace and lease 10 s.
        let claim = |holder: &'static str, job: &'static str, now: i64| {
            let store = store.clone();
            async move {
                let lease = format!("sync:{}", job.trim_start_matches("sync-due:"));
                let claim = SlotClaim {
                    job,
                    holder,
                    lease: &lease,
                    now: t(now),
                    overdue_before: t(now - 10),
                    next: t(now + 10),
                    share: Some(SlotShare {
                        endpoints: jobs.len(),
                        slots: "sync-due:%",
                        instances: "instance:%",
                        starved_before: t(now - 20),
                    }),
                };
                store.claim_job_slot(&claim).await.unwrap()
            }
        };
        let beat = |holder: &'static str, until: i64| {
            let store = store.clone();
            async move {
                let job = format!("instance:{holder}");
                assert!(
                    store
                        .acquire_lease(&job, holder, t(until), t(0))
                        .await
                        .unwrap()
                );
            }
        };
        let held = |holder: &'static str| {
            let store = store.clone();
            async move { store.held_job_slots(holder, "sync-due:%").await.unwrap() }
        };
        // Both alive: a takes three of the six first slots, b the other three.
        beat("a", 100).await;
        beat("b", 30).await;
        assert_eq!(store.live_leases("instance:%", t(0)).await.unwrap(), 2);
        let mut taken = Vec::new();
        for job in jobs {
            taken.push(claim("a", job, 0).await);
        }
        assert_eq!(
            taken,
            [true, true, true, false, false, false],
            "a's share is 3"
        );
        for job in jobs {
            assert_eq!(
                claim("b", job, 0).await,
                !held("a").await.contains(&job.to_string())
            );
        }
        assert_eq!(held("a").await, jobs[..3]);
        assert_eq!(held("b").await, jobs[3..]);
        // A seventh schedule neither counts (instances configured with different endpoints):
        // both hold their share, so it is stored free, and is anyone's once nobody took it for
        // the grace and a lease length.
        let extra = "sync-due:pricebook";
        assert!(!claim("a", extra, 0).await, "a holds its share");
        assert!(!claim("b", extra, 5).await, "b holds its share");
        assert_eq!(
            store.job_mark(extra).await.unwrap(),
            Some(t(0)),
            "stored due"
        );
        assert!(!claim("a", extra, 19).await, "not waiting long enough yet");
        assert!(claim("a", extra, 20).await, "nobody took it: anyone's");
        store.release_job_slot(extra, "a").await.unwrap();
        // Each keeps its own slots when due.
        assert!(claim("a", jobs[0], 10).await);
        assert!(claim("b", jobs[5], 10).await);
        // a hands one back: b, at its share, does not take it; a, below its share again, does.
        store.release_job_slot(jobs[2], "a").await.unwrap();
        store.release_job_slot(jobs[2], "b").await.unwrap();
        assert_eq!(
            held("a").await,
            jobs[..2],
            "only the holder hands a slot back"
        );
        assert!(!claim("b", jobs[2], 10).await, "b holds its share");
        assert!(claim("a", jobs[2], 10).await, "a is below its share");
        // b stops taking its slots, and its heartbeat expires at 30: until then a, at its
        // share, leaves b's overdue slots alone; then its share is all six and it takes them.
        beat("a", 200).await;
        assert!(
            !claim("a", jobs[3], 29).await,
            "overdue, but b is live and a holds its share"
        );
        assert_eq!(store.live_leases("instance:%", t(30)).await.unwrap(), 1);
        for job in &jobs[3..] {
            assert!(claim("a", job, 31).await, "{job}: b is gone");
        }
        assert_eq!(held("a").await, jobs);
        // Alone, an instance takes every first slot; a second one's own slots stay its own even
        // above its share.
        beat("b", 200).await;
        assert!(
            claim("a", jobs[0], 130).await,
            "a's own, though it holds six of a share of 3"
        );
        store.close().await;
        db.cleanup().await;
    }
}

/// Retention on PostgreSQL: months past `retention_months` are written to an archive file, then
/// detached and dropped; a replay of an archived event is still a duplicate, and a partition the
/// maintenance made refuses updates like the rest of the log.
#[tokio::test]
async fn months_past_retention_are_archived_then_dropped() {
    use syncwarden::maintenance::{Maintenance, MaintenanceSettings};

    let test = "scaleout::months_past_retention_are_archived_then_dropped";
    let Some(db) = TestDb::postgres(test).await else {
        return;
    };
    let store = db.open().await;
    let t = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    store
        .ensure_event_partitions(t("2026-01-01T00:00:00Z"), 12)
        .await
        .unwrap();
    let months = [
        "2026-01-10T00:00:00Z",
        "2026-01-20T00:00:00Z",
        "2026-01-31T23:59:59Z",
        "2026-02-01T00:00:00Z",
        "2026-02-15T00:00:00Z",
        "2026-11-02T00:00:00Z",
    ];
    let events: Vec<_> = months
        .iter()
        .enumerate()
        .map(|(n, at)| {
            let mut e = crate::helpers::event(n);
            e.occurred_at = t(at);
            e
        })
        .collect();
    store
        .append_events(&events, t("2026-11-28T00:00:00Z"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let settings = MaintenanceSettings {
        retention_months: 6,
        archive_dir: dir.path().join("archive"),
        ..Default::default()
    };
    let maintenance = Maintenance::new(store.clone(), &settings, dir.path());
    let report = maintenance
        .run_once(t("2026-11-28T12:00:00Z"))
        .await
        .unwrap();
    let archived: Vec<(&str, i64)> = report
        .archived
        .iter()
        .map(|(name, rows, _)| (name.as_str(), *rows))
        .collect();
    assert_eq!(
        archived,
        [
            ("field_events_y2026m01", 3),
            ("field_events_y2026m02", 2),
            ("field_events_y2026m03", 0),
            ("field_events_y2026m04", 0),
        ]
    );
    let january = std::fs::read_to_string(&report.archived[0].2).unwrap();
    let keys: Vec<String> = january
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["idempotency_key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys, ["key-0", "key-1", "key-2"]);
    assert_eq!(store.count_events().await.unwrap(), 1);
    let replay = store
        .append_events(&events[..1], t("2026-11-28T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!((replay.accepted, replay.duplicates), (0, 1));
    assert_eq!(
        maintenance
            .run_once(t("2026-11-28T12:00:00Z"))
            .await
            .unwrap(),
        Default::default(),
        "nothing left to do"
    );

    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let update = sqlx::query("UPDATE field_events_y2026m11 SET field = 'x'")
        .execute(&pool)
        .await;
    assert!(update.is_err(), "a partition accepted an update");
    pool.close().await;
    store.close().await;
    db.cleanup().await;
}

/// The processes whose parent is `parent`, and that are not yet reaped-only zombies.
/// Sends SIGTERM to `child` and waits up to `limit` for it to exit.
async fn terminate(child: &mut std::process::Child, limit: Duration, what: &str) {
    let term = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{what} did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn live_children(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, then the parent's pid.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if fields[0] != "Z" && fields[1].parse() == Ok(parent) {
            children.push(pid);
        }
    }
    children
}

fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'))
}

/// `bench instances` stopped with SIGTERM stops its `serve` children too, rather than leaving
/// them syncing a dead sandbox.
#[tokio::test]
async fn a_stopped_instances_bench_leaves_no_instance_running() {
    let test = "scaleout::a_stopped_instances_bench_leaves_no_instance_running";
    let Ok(admin) = std::env::var(PG_VAR) else {
        skip_notice(test, PG_VAR, "postgres://postgres@127.0.0.1:5432/test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut bench = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "bench",
            "instances",
            "--scale",
            "1",
            "--database-url",
            &admin,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut children = Vec::new();
    wait_for(
        "the bench's instances",
        Duration::from_secs(60),
        async || {
            children = live_children(bench.id());
            !children.is_empty()
        },
    )
    .await;
    terminate(&mut bench, Duration::from_secs(30), "the bench").await;
    for child in children {
        assert!(!is_running(child), "instance {child} outlived the bench");
    }
}

/// `serve` stopped with SIGTERM hands every endpoint it holds back and drops its heartbeat
/// before it exits, its store still open after the API stopped: another instance then takes
/// each endpoint at its next slot, not an interval late as after a crash. PostgreSQL only.
// Two workers: `spawn_serve` blocks one reading the first line while the sandbox answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_with_sigterm_hands_its_endpoints_back() {
    let test = "scaleout::an_instance_stopped_with_sigterm_hands_its_endpoints_back";
    let Some(db) = TestDb::postgres(test).await else {
        return;
    };
    let sandbox = Sandbox::start(Clock::system(), &SeedScale::small())
        .await
        .unwrap();
    let hook = Hook::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), Some(&sandbox), &hook);
    let store = db.open().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let count = async |sql: &str| -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let held = "SELECT COUNT(*) FROM job_marks WHERE job LIKE 'sync-due:%' AND holder IS NOT NULL";
    let beats = "SELECT COUNT(*) FROM job_leases WHERE job LIKE 'instance:%'";
    let (mut serve, _) = spawn_serve(&db.url, &dir.path().join("i0"), Some(&config));
    wait_for(
        "the instance to take its endpoints",
        Duration::from_secs(60),
        async || count(held).await > 0 && count(beats).await == 1,
    )
    .await;
    terminate(&mut serve, Duration::from_secs(60), "serve").await;
    assert_eq!(count(held).await, 0, "every schedule handed back");
    assert_eq!(count(beats).await, 0, "the heartbeat dropped");
    pool.close().await;
    store.close().await;
    db.cleanup().await;
}
