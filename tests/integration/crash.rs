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
    use syncwarden::sandbox;
    Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["sync", "--once", "--endpoint", endpoint, "--data-dir"])
        .arg(data_dir)
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .env("SYNCWARDEN_CRM__BASE_URL", sandbox.crm.base_url())
        .env("SYNCWARDEN_CRM__TOKEN", sandbox::HUBSPOT_TOKEN)
        .env("SYNCWARDEN_ERP__BASE_URL", sandbox.erp.base_url())
        .env("SYNCWARDEN_ERP__COMPANY_DB", sandbox::SAP_COMPANY_DB)
        .env("SYNCWARDEN_ERP__USERNAME", sandbox::SAP_USER)
        .env("SYNCWARDEN_ERP__PASSWORD", sandbox::SAP_PASSWORD)
        .env("SYNCWARDEN_LOG__LEVEL", "warn")
        .env("SYNCWARDEN_SYNC__LEASE_SECS", "1")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}
