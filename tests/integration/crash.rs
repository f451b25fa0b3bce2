//! SIGKILL in the middle of a large ingest: every acknowledged batch survives, whole; no half batch,
//! no duplicate; retried batches land exactly once.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use syncwarden::sync::events::to_wire_json;

use crate::helpers::{TestDb, all_events, events, spawn_serve};

const BATCHES: usize = 60;
const BATCH: usize = 2_000;
const KILL_AFTER_ACKS: usize = 12;

struct Server {
    child: Child,
    base: String,
}

fn start_server(db: &TestDb, data_dir: &std::path::Path) -> Server {
    let (child, base) = spawn_serve(&db.url, data_dir, None);
    Server { child, base }
}

fn batch_body(b: usize) -> String {
    events(b * BATCH..(b + 1) * BATCH)
        .iter()
        .map(|e| to_wire_json(e) + "\n")
        .collect()
}

async fn post(client: &reqwest::Client, base: &str, body: String) -> bool {
    match client
        .post(format!("{base}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
    {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

#[tokio::test]
async fn sigkill_during_ingest_loses_no_acknowledged_batch() {
    for db in TestDb::all("crash::sigkill_during_ingest_loses_no_acknowledged_batch").await {
        let data_dir = tempfile::tempdir().unwrap();
        let mut server = start_server(&db, data_dir.path());
        let bodies: Arc<Vec<String>> = Arc::new((0..BATCHES).map(batch_body).collect());
        let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
        let next = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::new();

        // Three writers keep a request in flight almost all the time.
        let writers: Vec<_> = (0..3)
            .map(|_| {
                let (bodies, acked, next, client, base) = (
                    bodies.clone(),
                    acked.clone(),
                    next.clone(),
                    client.clone(),
                    server.base.clone(),
                );
                tokio::spawn(async move {
                    loop {
                        let b = next.fetch_add(1, Ordering::SeqCst);
                        if b >= BATCHES || !post(&client, &base, bodies[b].clone()).await {
                            return;
                        }
                        acked.lock().unwrap().insert(b);
                    }
                })
            })
            .collect();
        while acked.lock().unwrap().len() < KILL_AFTER_ACKS {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            acked.len() >= KILL_AFTER_ACKS && acked.len() < BATCHES,
            "kill came too late to test anything"
        );

        // Restart on the same database and look at what survived.
        let mut server = start_server(&db, data_dir.path());
        let store = db.open().await;
        let mut present = HashSet::new();
        for e in all_events(store.as_ref()).await {
            let n: usize = e.event.idempotency_key["key-".len()..].parse().unwrap();
            assert!(present.insert(n), "event {n} stored twice");
        }
        for b in 0..BATCHES {
            let stored = (b * BATCH..(b + 1) * BATCH)
                .filter(|n| present.contains(n))
                .count();
            assert!(
                stored == 0 || stored == BATCH,
                "batch {b} is half stored ({stored} of {BATCH})"
            );
            if acked.contains(&b) {
                assert_eq!(stored, BATCH, "acknowledged batch {b} was lost");
            }
        }

        // The client retries everything it has no answer for: each event ends up stored once.
        for b in (0..BATCHES).filter(|b| !acked.contains(b)) {
            assert!(post(&client, &server.base, bodies[b].clone()).await);
        }
        assert_eq!(
            store.count_events().await.unwrap(),
            (BATCHES * BATCH) as i64
        );
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        store.close().await;
        db.cleanup().await;
    }
}

/// SIGKILL in the middle of a sync's writes, then a clean re-run: every partner reaches the CRM
/// once, and every write made, including those of the killed run, has its event, once.
// The sandbox serves from this test's runtime while the child runs: it needs its own threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_sync_then_resume() {
    use syncwarden::clock::Clock;
    use syncwarden::domain::{Endpoint, Outcome};
    use syncwarden::sandbox::faults::FaultConfig;
    use syncwarden::sandbox::{Sandbox, SeedScale};

    let scale = SeedScale {
        accounts: 600,
        items: 5,
        crm_overlap: 0.2,
        duplicate_accounts: 0,
        ..SeedScale::default()
    };
    let sandbox = Sandbox::start(Clock::system(), &scale).await.unwrap();
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let run_sync = || spawn_sync("accounts", data_dir.path(), &db, &sandbox);
    let linked_in_crm = || {
        let data = sandbox.crm_data.lock().unwrap();
        data.all("companies")
            .iter()
            .filter(|o| o.properties.contains_key("erp_number"))
            .count()
    };
    let before = linked_in_crm();
    let keyed_before: std::collections::HashSet<String> = {
        let data = sandbox.crm_data.lock().unwrap();
        data.all("companies")
            .iter()
            .filter_map(|o| o.properties.get("erp_number").cloned())
            .collect()
    };
    sandbox.crm.faults.set(FaultConfig {
        latency_ms: 150,
        ..Default::default()
    });
    let mut child = run_sync();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while linked_in_crm() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never started writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after_kill = linked_in_crm();
    assert!(
        after_kill < scale.accounts,
        "the kill came after the last write; nothing tested"
    );

    sandbox.crm.faults.set(FaultConfig::default());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut resumed = run_sync();
    let status = loop {
        if let Some(status) = resumed.try_wait().unwrap() {
            break status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success());

    let data = sandbox
        .crm_data
        .lock()
        .unwrap()
        .all("companies")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    let mut keys: Vec<&String> = data
        .iter()
        .filter_map(|o| o.properties.get("erp_number"))
        .collect();
    keys.sort();
    let total = keys.len();
    keys.dedup();
    assert_eq!(
        (keys.len(), total),
        (scale.accounts, scale.accounts),
        "every partner once in the CRM"
    );

    let store = db.open().await;
    let events = all_events(store.as_ref()).await;
    // Every partner the CRM did not know by its key before has exactly one event saying how it
    // got there: created (its name written) or linked (its key written), whichever run did it.
    for key in keys {
        if keyed_before.contains(key) {
            continue;
        }
        let recorded = events
            .iter()
            .filter(|e| {
                e.event.erp_id.as_deref() == Some(key.as_str())
                    && e.event.endpoint == Endpoint::Accounts
                    && e.event.outcome == Outcome::Applied
                    && (e.event.field == "name" || e.event.field == "erp_number")
            })
            .count();
        assert_eq!(recorded, 1, "{key}: {recorded} events");
    }
    assert!(
        store.intents(Endpoint::Accounts).await.unwrap().is_empty(),
        "intents are settled"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_quote_sync_then_resume_makes_each_quotation_once() {
    use syncwarden::clock::Clock;
    use syncwarden::domain::{Endpoint, Outcome};
    use syncwarden::sandbox::faults::FaultConfig;
    use syncwarden::sandbox::{Sandbox, SeedScale};

    let scale = SeedScale {
        accounts: 10,
        items: 5,
        quotes: 200,
        orders: 0,
        invoices: 0,
        ..SeedScale::small()
    };
    let sandbox = Sandbox::start(Clock::system(), &scale).await.unwrap();
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let run_sync = || spawn_sync("quotes", data_dir.path(), &db, &sandbox);
    let quotations = || sandbox.erp_data.lock().unwrap().all("Quotations").len();
    sandbox.erp.faults.set(FaultConfig {
        latency_ms: 20,
        ..Default::default()
    });
    let mut child = run_sync();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while quotations() < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "no quotation was made"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        quotations() < scale.quotes,
        "the kill came too late; nothing tested"
    );

    sandbox.erp.faults.set(FaultConfig::default());
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(run_sync().wait().unwrap().success());

    let made: Vec<String> = sandbox
        .erp_data
        .lock()
        .unwrap()
        .all("Quotations")
        .iter()
        .map(|q| q["NumAtCard"].as_str().unwrap().to_string())
        .collect();
    let unique: std::collections::BTreeSet<&String> = made.iter().collect();
    assert_eq!(
        (made.len(), unique.len()),
        (scale.quotes, scale.quotes),
        "every quote once in the ERP"
    );
    let crm = sandbox.crm_data.lock().unwrap().all("quotes").len();
    assert_eq!(crm, scale.quotes);

    let store = db.open().await;
    let events = all_events(store.as_ref()).await;
    // Every quote has exactly one event saying its customer reached the ERP, whichever run did it.
    for key in unique {
        let recorded = events
            .iter()
            .filter(|e| {
                e.event.endpoint == Endpoint::Quotes
                    && e.event.crm_id.as_deref() == Some(key.as_str())
                    && e.event.field == "account"
                    && e.event.outcome == Outcome::Applied
            })
            .count();
        assert_eq!(recorded, 1, "quote {key}: {recorded} events");
    }
    assert!(store.intents(Endpoint::Quotes).await.unwrap().is_empty());
    store.close().await;
}

/// `syncwarden sync --once --endpoint ENDPOINT` as its own process against the sandbox; the
/// killed process keeps its lease on the endpoint for a second after it dies.
fn spawn_sync(
    endpoint: &str,
    data_dir: &std::path::Path,
    db: &TestDb,
    sandbox: &syncwarden::sandbox::Sandbox,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["sync", "--once", "--endpoint", endpoint, "--data-dir"])
        .arg(data_dir)
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .envs(sandbox.env())
        .env("SYNCWARDEN_LOG__LEVEL", "warn")
        .env("SYNCWARDEN_SYNC__LEASE_SECS", "1")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// `syncwarden dedup <args>` as its own process against the sandbox, merge claims held for a
/// second so a killed worker's job is free again soon.
fn spawn_dedup(
    args: &[&str],
    data_dir: &std::path::Path,
    db: &TestDb,
    sandbox: &syncwarden::sandbox::Sandbox,
) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .envs(sandbox.env())
        .env("SYNCWARDEN_LOG__LEVEL", "warn")
        .env("SYNCWARDEN_DEDUP__CLAIM_SECS", "1")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits until `done` holds, the child still running (else the kill would test nothing).
async fn kill_when(child: &mut Child, what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the process ended before {what}: nothing tested"
        );
        assert!(std::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// SIGKILL in the middle of a merge job (after the HubSpot merge, before the survivor's values
/// are written) and in the middle of its undo (after the ERP is put back, before the loser is
/// created again); `dedup merges` after each finishes the job exactly once: the sandbox CRM and
/// ERP end as a single clean run would leave them, no record twice, no step recorded twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_merge_and_during_its_undo_then_resume() {
    use std::collections::BTreeMap;

    use syncwarden::clock::Clock;
    use syncwarden::dedup::merge::CRM_ONLY;
    use syncwarden::dedup::profile::Profile;
    use syncwarden::dedup::service as dedup_service;
    use syncwarden::domain::{Endpoint, JobStatus, MergeKind, ProposalStatus};
    use syncwarden::sandbox::faults::FaultConfig;
    use syncwarden::sandbox::{Sandbox, SeedScale};
    use syncwarden::store::EventQuery;
    use syncwarden::sync::service;

    let clock = Clock::system();
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = db.settings();
    settings.data_dir = data_dir.path().to_path_buf();
    sandbox.configure(&mut settings);
    let engine = Arc::new(service::engine(&settings, store.clone(), clock.clone()).unwrap());
    let cycle = service::run_cycle(&engine, None, false).await;
    assert!(cycle.errors.is_empty(), "{:?}", cycle.errors);
    // The planted companies get a newer phone, so the merge writes the survivor on both sides.
    {
        let mut crm = sandbox.crm_data.lock().unwrap();
        let planted: Vec<u64> = crm
            .all("companies")
            .into_iter()
            .filter(|o| !o.properties.contains_key("erp_number") && o.properties.len() == 1)
            .map(|o| o.id)
            .collect();
        for (n, id) in planted.into_iter().enumerate() {
            let phone = BTreeMap::from([("phone".to_string(), format!("+49 40 555 02{n:02}"))]);
            crm.update("companies", id, phone, clock.now());
        }
    }
    let profile = Profile::load(std::path::Path::new("config/dedup/accounts.toml")).unwrap();
    let model = syncwarden::dedup::load_model(&profile).unwrap();
    dedup_service::build(&settings, store.clone(), Some(&engine), clock.clone())
        .scan_and_merge(Endpoint::Accounts, &profile, &model, None)
        .await
        .unwrap();
    let proposal = store
        .dedup_proposals(Some(Endpoint::Accounts), Some(ProposalStatus::Open))
        .await
        .unwrap()
        .remove(0);
    let loser: u64 = proposal
        .proposal
        .members
        .iter()
        .find_map(|m| m.strip_prefix(CRM_ONLY))
        .unwrap()
        .parse()
        .unwrap();
    let key = proposal
        .proposal
        .members
        .iter()
        .find(|m| !m.starts_with(CRM_ONLY))
        .unwrap()
        .clone();
    let chosen: BTreeMap<String, String> = proposal
        .proposal
        .fields
        .iter()
        .map(|f| (f.field.clone(), f.value.clone()))
        .collect();
    let companies = || -> BTreeMap<u64, BTreeMap<String, String>> {
        let crm = sandbox.crm_data.lock().unwrap();
        crm.all("companies")
            .into_iter()
            .map(|o| (o.id, o.properties.clone()))
            .collect()
    };
    let partner = || -> serde_json::Value {
        let erp = sandbox.erp_data.lock().unwrap();
        let mut p = erp
            .all("BusinessPartners")
            .into_iter()
            .find(|e| e["CardCode"] == key.as_str())
            .unwrap()
            .clone();
        p.remove("UpdateDate");
        p.remove("UpdateTime");
        serde_json::Value::Object(p)
    };
    let (crm_before, erp_before) = (companies(), partner());
    let survivor: u64 = store.record_states(Endpoint::Accounts).await.unwrap()[&key]
        .crm_id
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(crm_before[&survivor]["phone"], chosen["phone"]);
    let id = proposal.id.to_string();
    // Every step of a job once in the event log, however often the job was started.
    let events_once = |job: i64, kind: &str| {
        let store = store.clone();
        let run = format!("{kind}-{job}");
        async move {
            let events = store
                .query_events(&EventQuery {
                    run_id: Some(run),
                    ..Default::default()
                })
                .await
                .unwrap();
            let keys: std::collections::HashSet<&str> = events
                .iter()
                .map(|e| e.event.idempotency_key.as_str())
                .collect();
            assert_eq!(keys.len(), events.len(), "a step recorded twice");
            events
        }
    };
    let resume = || async {
        // The killed process's claim runs out after a second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let mut merges = spawn_dedup(&["dedup", "merges"], data_dir.path(), &db, &sandbox);
        let status = loop {
            if let Some(status) = merges.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(status.success());
    };

    // Killed after HubSpot merged the loser away, before the survivor's values are written.
    sandbox.crm.faults.set(FaultConfig {
        latency_ms: 400,
        ..Default::default()
    });
    let mut approve = spawn_dedup(
        &["dedup", "approve", &id, "--by", "ann"],
        data_dir.path(),
        &db,
        &sandbox,
    );
    kill_when(&mut approve, "the HubSpot merge", || {
        !companies().contains_key(&loser)
    })
    .await;
    assert_eq!(
        companies()[&survivor],
        crm_before[&survivor],
        "killed too late"
    );
    sandbox.crm.faults.set(FaultConfig::default());
    resume().await;
    let jobs = store.merge_jobs(proposal.id).await.unwrap();
    assert_eq!(
        (jobs.len(), jobs[0].kind, jobs[0].status),
        (1, MergeKind::Merge, JobStatus::Done)
    );
    assert!(jobs[0].attempts >= 2, "the job was resumed, not run anew");
    let p = store.dedup_proposal(proposal.id).await.unwrap().unwrap();
    assert_eq!(p.status, ProposalStatus::Applied);
    let merged = companies();
    assert_eq!(merged.len(), crm_before.len() - 1, "only the loser is gone");
    assert!(!merged.contains_key(&loser));
    assert_eq!(merged[&survivor]["phone"], chosen["phone"]);
    assert_eq!(merged[&survivor]["name"], chosen["name"]);
    assert_eq!(partner()["Phone1"], chosen["phone"].as_str());
    assert_eq!(
        store.record_states(Endpoint::Accounts).await.unwrap()[&key].fields["phone"],
        chosen["phone"]
    );
    let events = events_once(jobs[0].id, "merge").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.field == "merged_into")
            .count(),
        1
    );

    // Killed after the ERP got its values back, before the loser is created again in the CRM.
    sandbox.crm.faults.set(FaultConfig {
        latency_ms: 400,
        ..Default::default()
    });
    let mut undo = spawn_dedup(
        &["dedup", "undo", &id, "--by", "ann"],
        data_dir.path(),
        &db,
        &sandbox,
    );
    kill_when(&mut undo, "the ERP put back", || partner() == erp_before).await;
    assert_eq!(companies().len(), merged.len(), "killed too late");
    sandbox.crm.faults.set(FaultConfig::default());
    resume().await;
    let jobs = store.merge_jobs(proposal.id).await.unwrap();
    assert_eq!(
        (jobs.len(), jobs[1].kind, jobs[1].status),
        (2, MergeKind::Undo, JobStatus::Done)
    );
    assert!(jobs[1].attempts >= 2, "the undo was resumed, not run anew");
    let p = store.dedup_proposal(proposal.id).await.unwrap().unwrap();
    assert_eq!(p.status, ProposalStatus::Undone);
    let undone = companies();
    assert_eq!(partner(), erp_before);
    assert_eq!(undone[&survivor], crm_before[&survivor]);
    let restored: Vec<&BTreeMap<String, String>> = undone
        .iter()
        .filter(|(id, _)| !crm_before.contains_key(*id))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        restored.len(),
        1,
        "the loser created again once: {restored:?}"
    );
    assert_eq!(undone.len(), crm_before.len());
    let mut expected = crm_before[&loser].clone();
    expected.insert(
        "syncwarden_restore_key".into(),
        format!("undo-{}-{loser}", proposal.id),
    );
    assert_eq!(restored[0], &expected);
    events_once(jobs[1].id, "undo").await;
    store.close().await;
}
