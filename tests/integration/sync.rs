//! The sync engine end to end: sandbox CRM and ERP, real connectors, a real store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Outcome, System, Timestamp};
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{self, Sandbox, SeedScale};
use syncwarden::store::{EventQuery, Store};
use syncwarden::sync::connectors::RetryPolicy;
use syncwarden::sync::connectors::hubspot::{HubSpotConnector, HubSpotSettings};
use syncwarden::sync::connectors::sap_b1::{SapB1Connector, SapB1Settings};
use syncwarden::sync::engine::{Engine, Resolution, RunSummary, SyncError};
use syncwarden::sync::rules::{ConflictPolicy, EndpointSettings, FieldRule, default_endpoints};

use crate::helpers::{TestDb, all_events};

pub(crate) struct World {
    pub(crate) sandbox: Sandbox,
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) db: TestDb,
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        timeout: Duration::from_secs(5),
    }
}

async fn world_with(rules: BTreeMap<Endpoint, EndpointSettings>) -> World {
    world_on(TestDb::sqlite(), rules).await
}

pub(crate) async fn world_on(db: TestDb, rules: BTreeMap<Endpoint, EndpointSettings>) -> World {
    let clock = Clock::manual(Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap());
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let store = db.open().await;
    let engine = engine_for(&sandbox, store.clone(), clock.clone(), rules);
    World {
        sandbox,
        engine,
        store,
        clock,
        db,
    }
}

/// An engine (one syncwarden instance) over the sandbox and a store.
fn engine_for(
    sandbox: &Sandbox,
    store: Arc<dyn Store>,
    clock: Clock,
    rules: BTreeMap<Endpoint, EndpointSettings>,
) -> Engine {
    let crm = HubSpotConnector::new(
        HubSpotSettings {
            base_url: sandbox.crm.base_url(),
            token: sandbox::HUBSPOT_TOKEN.to_string().into(),
            ..Default::default()
        },
        retry(),
    )
    .unwrap();
    let erp = SapB1Connector::new(
        SapB1Settings {
            base_url: sandbox.erp.base_url(),
            company_db: sandbox::SAP_COMPANY_DB.into(),
            username: sandbox::SAP_USER.into(),
            password: sandbox::SAP_PASSWORD.to_string().into(),
            page_size: 7,
            ..Default::default()
        },
        retry(),
    )
    .unwrap();
    Engine::new(store, Arc::new(crm), Arc::new(erp), rules, clock)
}

pub(crate) async fn world() -> World {
    world_with(default_endpoints()).await
}

pub(crate) fn n(summary: &RunSummary, endpoint: Endpoint, outcome: Outcome) -> usize {
    summary
        .events
        .get(&endpoint)
        .and_then(|o| o.get(&outcome))
        .copied()
        .unwrap_or(0)
}

/// HubSpot companies by their ERP number.
fn crm_companies(w: &World) -> HashMap<String, (u64, BTreeMap<String, String>)> {
    let data = w.sandbox.crm_data.lock().unwrap();
    let mut by_key = HashMap::new();
    for o in data.all("companies") {
        if let Some(key) = o.properties.get("erp_number") {
            assert!(
                by_key
                    .insert(key.clone(), (o.id, o.properties.clone()))
                    .is_none(),
                "{key} is in the CRM twice"
            );
        }
    }
    by_key
}

impl World {
    pub(crate) fn later(&self, minutes: u64) -> Timestamp {
        self.clock.advance(Duration::from_secs(minutes * 60));
        self.clock.now()
    }

    fn edit_company(&self, id: u64, property: &str, value: &str) {
        let at = self.later(1);
        let props = BTreeMap::from([(property.to_string(), value.to_string())]);
        assert!(
            self.sandbox
                .crm_data
                .lock()
                .unwrap()
                .update("companies", id, props, at)
        );
    }

    fn edit_partner(&self, code: &str, patch: serde_json::Value) {
        let at = self.later(1);
        self.edit_partner_at(code, patch, at);
    }

    /// Changes a partner in the ERP stamped with `at`, not with the clock.
    fn edit_partner_at(&self, code: &str, patch: serde_json::Value, at: Timestamp) {
        let patch = patch.as_object().unwrap().clone();
        assert!(
            self.sandbox
                .erp_data
                .lock()
                .unwrap()
                .update("BusinessPartners", code, patch, at)
        );
    }

    fn partner(&self, code: &str) -> serde_json::Map<String, serde_json::Value> {
        self.sandbox
            .erp_data
            .lock()
            .unwrap()
            .get("BusinessPartners", code)
            .unwrap()
            .clone()
    }
}

#[tokio::test]
async fn first_sync_links_creates_and_never_duplicates_then_goes_quiet() {
    let w = world().await;
    let scale = SeedScale::small();
    let first = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(first.linked > 0, "{first:?}");
    assert!(
        first.unlinked >= 1,
        "planted duplicates are left for review: {first:?}"
    );
    assert_eq!(first.failed_writes, 0);
    let companies = crm_companies(&w);
    assert_eq!(
        companies.len(),
        scale.accounts,
        "every partner exactly once in the CRM"
    );
    for (code, (_, props)) in &companies {
        assert_eq!(
            Some(&props["name"]),
            w.partner(code)
                .get("CardName")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .as_ref()
        );
    }
    assert!(n(&first, Endpoint::Accounts, Outcome::Applied) > 0);
    assert_run_events_stored(&w.store, &first).await;
    let run = w.store.run(&first.run_id).await.unwrap().unwrap();
    assert_eq!(run.counts.api_calls_ok as u64, first.api_calls_ok);

    // Nothing changed: nothing to do, even though our own writes moved the CRM's timestamps.
    w.later(5);
    let second = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(second.events.is_empty(), "{second:?}");
    assert_eq!(crm_companies(&w).len(), scale.accounts);
}

/// Every event the run counted is in the log under its run id.
async fn assert_run_events_stored(store: &Arc<dyn Store>, run: &RunSummary) {
    let stored = store
        .query_events(&EventQuery {
            run_id: Some(run.run_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let counted: usize = run.events.values().flat_map(|o| o.values()).sum();
    assert_eq!(stored.len(), counted, "{}", run.run_id);
}

/// A run cut into chunks of three records stores what a run in one chunk stores: the same
/// events and record states, no intent left behind, and nothing to do on the next run.
#[tokio::test]
async fn a_run_in_many_chunks_stores_what_one_chunk_stores() {
    let (whole, chunked) = (world().await, world().await);
    let in_chunks = engine_for(
        &chunked.sandbox,
        chunked.store.clone(),
        chunked.clock.clone(),
        default_endpoints(),
    )
    .with_chunk_records(3);
    let one_chunk = engine_for(
        &whole.sandbox,
        whole.store.clone(),
        whole.clock.clone(),
        default_endpoints(),
    )
    .with_chunk_records(100_000);
    for endpoint in [Endpoint::Accounts, Endpoint::Items, Endpoint::Quotes] {
        let one = one_chunk.run_endpoint(endpoint, false).await.unwrap();
        let many = in_chunks.run_endpoint(endpoint, false).await.unwrap();
        assert!(many.records_written > 3, "{endpoint}: one chunk only");
        assert_eq!(many.events, one.events, "{endpoint}");
        assert_eq!(many.records_written, one.records_written, "{endpoint}");
        assert_run_events_stored(&chunked.store, &many).await;
        let states = |w: &World| {
            let store = w.store.clone();
            async move {
                let mut states: Vec<_> = store
                    .record_states(endpoint)
                    .await
                    .unwrap()
                    .into_values()
                    .map(|s| (s.key, s.fields))
                    .collect();
                states.sort();
                states
            }
        };
        assert_eq!(states(&chunked).await, states(&whole).await, "{endpoint}");
        assert!(chunked.store.intents(endpoint).await.unwrap().is_empty());
        chunked.later(5);
        let again = in_chunks.run_endpoint(endpoint, false).await.unwrap();
        assert!(again.events.is_empty(), "{endpoint}: {again:?}");
    }
}

/// A run stopped between its chunks (as a crash or a lost lease stops it: the run's future is
/// dropped) keeps what its committed chunks stored and leaves the cursors where they were; the
/// next run finishes the job: every partner once in the CRM, every write recorded once, no
/// intent left, and a run after that finds nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_between_chunks_is_finished_by_the_next_without_loss_or_duplicates() {
    let w = world().await;
    let engine = Arc::new(
        engine_for(
            &w.sandbox,
            w.store.clone(),
            w.clock.clone(),
            default_endpoints(),
        )
        .with_chunk_records(4),
    );
    let keyed_before: std::collections::HashSet<String> = crm_companies(&w).into_keys().collect();
    w.sandbox.crm.faults.set(FaultConfig {
        latency_ms: 40,
        ..Default::default()
    });
    let run = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run_endpoint(Endpoint::Accounts, false).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while w
        .store
        .record_states(Endpoint::Accounts)
        .await
        .unwrap()
        .len()
        < 8
    {
        assert!(
            !run.is_finished(),
            "the run ended before it could be stopped"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no chunk was committed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    let kept = w
        .store
        .record_states(Endpoint::Accounts)
        .await
        .unwrap()
        .len();
    assert!(kept < SeedScale::small().accounts, "the stop came too late");
    assert_eq!(
        w.store
            .cursor(Endpoint::Accounts, System::Crm)
            .await
            .unwrap(),
        None,
        "the cursors move with the last chunk only"
    );

    w.sandbox.crm.faults.set(FaultConfig::default());
    let resumed = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(resumed.failed_writes, 0, "{resumed:?}");
    let companies = crm_companies(&w);
    assert_eq!(companies.len(), SeedScale::small().accounts);
    let events = all_events(w.store.as_ref()).await;
    let mut keys: Vec<&String> = companies.keys().collect();
    keys.sort();
    for key in keys.into_iter().filter(|k| !keyed_before.contains(*k)) {
        // However it got there (created: its name written; linked: its key written), once.
        let recorded = events
            .iter()
            .filter(|e| {
                e.event.erp_id.as_deref() == Some(key.as_str())
                    && e.event.outcome == Outcome::Applied
                    && (e.event.field == "name" || e.event.field == "erp_number")
            })
            .count();
        assert_eq!(recorded, 1, "{key}: {recorded} events");
    }
    let mut seen = std::collections::HashSet::new();
    for e in &events {
        assert!(seen.insert(e.event.idempotency_key.clone()), "stored twice");
    }
    assert!(
        w.store
            .intents(Endpoint::Accounts)
            .await
            .unwrap()
            .is_empty()
    );
    w.later(5);
    let quiet = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

/// A chunk whose commit fails stops the run there, though later chunks were already planned
/// and their writes may have gone out: the cursors stay where they were, and the next run
/// records what the stopped one wrote, once, and finishes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_chunk_commit_keeps_the_cursors_and_the_next_run_finishes_without_duplicates() {
    let w = world().await;
    let engine = engine_for(
        &w.sandbox,
        w.store.clone(),
        w.clock.clone(),
        default_endpoints(),
    )
    .with_chunk_records(4);
    let mut codes: Vec<String> = w
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .all("BusinessPartners")
        .iter()
        .filter_map(|p| p.get("CardCode")?.as_str().map(str::to_string))
        .collect();
    codes.sort();
    let failing = codes[codes.len() / 2].clone();
    // The store refuses the state of one record in the middle: its chunk's commit fails.
    let db = sqlx::SqlitePool::connect(&w.db.url).await.unwrap();
    for sql in [
        "CREATE TABLE refused_keys (record_key TEXT NOT NULL)",
        "CREATE TRIGGER refuse_one_state BEFORE INSERT ON record_states \
         WHEN NEW.record_key IN (SELECT record_key FROM refused_keys) \
         BEGIN SELECT RAISE(ABORT, 'refused'); END",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    sqlx::query("INSERT INTO refused_keys (record_key) VALUES (?)")
        .bind(&failing)
        .execute(&db)
        .await
        .unwrap();

    let stopped = engine.run_endpoint(Endpoint::Accounts, false).await;
    assert!(stopped.is_err(), "{stopped:?}");
    let states = w.store.record_states(Endpoint::Accounts).await.unwrap();
    assert!(!states.contains_key(&failing));
    assert!(
        !states.is_empty(),
        "the chunks before the failing one are kept"
    );
    for system in [System::Crm, System::Erp] {
        let cursor = w.store.cursor(Endpoint::Accounts, system).await.unwrap();
        assert_eq!(
            cursor, None,
            "{system}: the cursor moved past a failed chunk"
        );
    }

    sqlx::query("DROP TRIGGER refuse_one_state")
        .execute(&db)
        .await
        .unwrap();
    let resumed = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(resumed.failed_writes, 0, "{resumed:?}");
    assert_eq!(crm_companies(&w).len(), SeedScale::small().accounts);
    let states = w.store.record_states(Endpoint::Accounts).await.unwrap();
    assert!(states.contains_key(&failing));
    let mut seen = std::collections::HashSet::new();
    for e in &all_events(w.store.as_ref()).await {
        assert!(seen.insert(e.event.idempotency_key.clone()), "stored twice");
    }
    assert!(
        w.store
            .intents(Endpoint::Accounts)
            .await
            .unwrap()
            .is_empty()
    );
    for system in [System::Crm, System::Erp] {
        let cursor = w.store.cursor(Endpoint::Accounts, system).await.unwrap();
        assert!(cursor.is_some(), "{system}: no cursor after a full run");
    }
    w.later(5);
    let quiet = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

#[tokio::test]
async fn a_full_cycle_on_postgres() {
    let Some(db) = TestDb::postgres("sync::a_full_cycle_on_postgres").await else {
        return;
    };
    let w = world_on(db, default_endpoints()).await;
    for endpoint in [Endpoint::Accounts, Endpoint::Items] {
        let first = w.engine.run_endpoint(endpoint, false).await.unwrap();
        assert!(
            first
                .events
                .values()
                .flat_map(|o| o.values())
                .sum::<usize>()
                > 0
        );
        assert_eq!(w.engine.reconcile(endpoint).await.unwrap().differences(), 0);
        let second = w.engine.run_endpoint(endpoint, false).await.unwrap();
        assert!(second.events.is_empty(), "{second:?}");
    }
    assert_eq!(crm_companies(&w).len(), SeedScale::small().accounts);
    assert!(
        w.store
            .intents(Endpoint::Accounts)
            .await
            .unwrap()
            .is_empty()
    );
    w.store.close().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn runs_side_by_side_each_count_only_their_own_calls() {
    let w = world().await;
    let (crm, erp) = w.engine.connectors();
    let total = || {
        [crm.calls(), erp.calls()]
            .iter()
            .map(|c| c.ok + c.failed)
            .sum::<u64>()
    };
    let before = total();
    let (accounts, items) = tokio::join!(
        w.engine.run_endpoint(Endpoint::Accounts, false),
        w.engine.run_endpoint(Endpoint::Items, false)
    );
    let (accounts, items) = (accounts.unwrap(), items.unwrap());
    let calls = |r: &RunSummary| r.api_calls_ok + r.api_calls_failed;
    assert!(calls(&accounts) > 0 && calls(&items) > 0);
    assert_eq!(calls(&accounts) + calls(&items), total() - before);
}

#[tokio::test]
async fn ownership_decides_which_edits_travel() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let companies = crm_companies(&w);
    let (code, (id, _)) = companies.iter().min_by_key(|(k, _)| k.as_str()).unwrap();
    let original_name = w.partner(code)["CardName"].as_str().unwrap().to_string();

    // Phone is the CRM's: it reaches the ERP. Name is the ERP's: the CRM edit is refused and undone.
    w.edit_company(*id, "phone", "+44 20 7946 0000");
    w.edit_company(*id, "name", "Renamed By Sales");
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(w.partner(code)["Phone1"], "+44 20 7946 0000");
    assert_eq!(w.partner(code)["CardName"], original_name.as_str());
    assert_eq!(crm_companies(&w)[code].1["name"], original_name);
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::SkippedNotOwner), 1);
    assert_eq!(
        n(&run, Endpoint::Accounts, Outcome::Applied),
        2,
        "phone to the ERP, name restored in the CRM"
    );
    let refused = w
        .store
        .query_events(&EventQuery {
            record_id: Some(code.clone()),
            field: Some("name".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let skipped = refused
        .iter()
        .find(|e| e.event.outcome == Outcome::SkippedNotOwner)
        .unwrap();
    assert_eq!(
        (skipped.event.source_system, skipped.event.target_system),
        (System::Crm, System::Erp)
    );
    assert_eq!(
        skipped.event.new_value.as_deref(),
        Some("\"Renamed By Sales\"")
    );

    // An ERP edit of the billing city (ERP-owned) reaches the CRM.
    w.edit_partner(code, json!({"BPAddresses": [{"AddressName": "Bill To", "AddressType": "bo_BillTo", "City": "Zürich"}]}));
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(crm_companies(&w)[code].1["city"], "Zürich");
}

#[tokio::test]
async fn conflicts_follow_each_policy() {
    let mut rules = default_endpoints();
    let accounts = rules.get_mut(&Endpoint::Accounts).unwrap();
    accounts.fields.insert(
        "phone".into(),
        FieldRule {
            owner: System::Crm,
            conflict: ConflictPolicy::OwnerWins,
        },
    );
    accounts.fields.insert(
        "industry".into(),
        FieldRule {
            owner: System::Crm,
            conflict: ConflictPolicy::NewestWins,
        },
    );
    accounts.fields.insert(
        "billing_street".into(),
        FieldRule {
            owner: System::Erp,
            conflict: ConflictPolicy::Manual,
        },
    );
    let w = world_with(rules).await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let companies = crm_companies(&w);
    let (code, (id, _)) = companies.iter().min_by_key(|(k, _)| k.as_str()).unwrap();
    let street_before = w.partner(code)["BPAddresses"][0]["Street"]
        .as_str()
        .unwrap()
        .to_string();

    // Both sides change the same three fields; the ERP edits come last.
    w.edit_company(*id, "phone", "+1 111");
    w.edit_company(*id, "industry", "Crm Industry");
    w.edit_company(*id, "address", "1 Crm Road");
    w.edit_partner(code, json!({"Phone1": "+2 222", "Industry": "Erp Industry",
        "BPAddresses": [{"AddressName": "Bill To", "AddressType": "bo_BillTo", "Street": "2 Erp Road"}]}));
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();

    let partner = w.partner(code);
    let company = crm_companies(&w)[code].1.clone();
    assert_eq!(
        (partner["Phone1"].as_str(), company["phone"].as_str()),
        (Some("+1 111"), "+1 111"),
        "owner (CRM) wins"
    );
    assert_eq!(
        (partner["Industry"].as_str(), company["industry"].as_str()),
        (Some("Erp Industry"), "Erp Industry"),
        "newest (ERP) wins"
    );
    assert_eq!(company["address"], "1 Crm Road", "manual: nothing written");
    assert_eq!(partner["BPAddresses"][0]["Street"], "2 Erp Road");
    assert_ne!(street_before, "2 Erp Road");
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::ConflictResolved), 2);
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::Conflict), 1);
    let open = w.store.open_conflicts().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(
        (open[0].crm_value.as_deref(), open[0].erp_value.as_deref()),
        (Some("1 Crm Road"), Some("2 Erp Road"))
    );
}

#[tokio::test]
async fn erp_prices_reach_the_crm_and_crm_price_edits_are_undone() {
    let w = world().await;
    let first = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    // The seed planted price drift on products that were already in the CRM.
    assert!(
        n(&first, Endpoint::Pricebook, Outcome::Applied) >= 1,
        "{first:?}"
    );
    let product = |code: &str| {
        let data = w.sandbox.crm_data.lock().unwrap();
        data.all("products")
            .into_iter()
            .find(|o| o.properties.get("erp_number").map(String::as_str) == Some(code))
            .map(|o| (o.id, o.properties.clone()))
    };
    let (id, props) = product("I00001").unwrap();
    let erp_price = w
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .get("Items", "I00001")
        .unwrap()["ItemPrices"][0]["Price"]
        .as_f64()
        .unwrap();
    assert_eq!(props["price"], format!("{erp_price:.2}"));

    let at = w.later(1);
    w.sandbox.crm_data.lock().unwrap().update(
        "products",
        id,
        BTreeMap::from([("price".to_string(), "0.01".to_string())]),
        at,
    );
    let run = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert_eq!(n(&run, Endpoint::Pricebook, Outcome::SkippedNotOwner), 1);
    assert_eq!(
        product("I00001").unwrap().1["price"],
        format!("{erp_price:.2}")
    );
}

#[tokio::test]
async fn failed_writes_are_recorded_as_failed_and_kept_for_redrive() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let code = crm_companies(&w).keys().min().unwrap().clone();
    // An ERP name the CRM refuses (207 partial failure), and a CRM that keeps failing for a while.
    w.edit_partner(&code, json!({"CardName": " "}));
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(run.failed_writes, 1);
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::Failed), 1);
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::Applied), 0);
    let dead = w.store.open_dead_letters().await.unwrap();
    assert_eq!(
        (dead.len(), dead[0].key.as_str(), dead[0].target),
        (1, code.as_str(), System::Crm)
    );
    assert!(
        dead[0].error.contains("VALIDATION_ERROR") || dead[0].error.contains("name"),
        "{}",
        dead[0].error
    );

    // Re-driving while the cause remains keeps the letter open with the new error.
    let redrive = w.engine.retry_failed(None).await.unwrap();
    assert_eq!(
        (redrive.attempted, redrive.succeeded, redrive.still_failing),
        (1, 0, 1)
    );
    assert_eq!(w.store.open_dead_letters().await.unwrap()[0].attempts, 2);

    w.edit_partner(&code, json!({"CardName": "Valid Again GmbH"}));
    w.sandbox.crm.faults.set(FaultConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    let err = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("crm"), "{err}");
    let runs = w.store.recent_runs(1).await.unwrap();
    assert!(runs[0].counts.api_calls_failed >= 4 && runs[0].error.is_some());
    // The failed pull committed nothing: the change is still pending and arrives once the CRM is back.
    w.sandbox.crm.faults.set(FaultConfig::default());
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::Applied), 1);
    assert_eq!(crm_companies(&w)[&code].1["name"], "Valid Again GmbH");
    // That successful write of the name retired the letter of the blank name it replaced.
    assert!(w.store.open_dead_letters().await.unwrap().is_empty());

    // A write that fails for a while (the ERP rejects writes): kept, then re-driven once it is back.
    let (id, _) = crm_companies(&w)[&code].clone();
    w.edit_company(id, "phone", "+33 1 00 00 00 00");
    w.sandbox.erp.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(
        (
            run.failed_writes,
            n(&run, Endpoint::Accounts, Outcome::Failed)
        ),
        (1, 1)
    );
    assert_ne!(w.partner(&code)["Phone1"], "+33 1 00 00 00 00");
    w.sandbox.erp.faults.set(FaultConfig::default());
    let redrive = w
        .engine
        .retry_failed(Some(Endpoint::Accounts))
        .await
        .unwrap();
    assert_eq!(
        (redrive.attempted, redrive.succeeded, redrive.still_failing),
        (1, 1, 0)
    );
    assert_eq!(w.partner(&code)["Phone1"], "+33 1 00 00 00 00");
    assert!(w.store.open_dead_letters().await.unwrap().is_empty());
    let redriven = w
        .store
        .query_events(&EventQuery {
            record_id: Some(code.clone()),
            field: Some("phone".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = redriven.last().unwrap();
    assert_eq!(
        (last.event.outcome, last.event.target_system),
        (Outcome::Applied, System::Erp)
    );
    // Nothing is left over for the next run to redo.
    let quiet = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

#[tokio::test]
async fn dry_run_records_what_would_change_and_writes_nothing() {
    let w = world().await;
    let before = crm_companies(&w).len();
    let dry = w
        .engine
        .run_endpoint(Endpoint::Accounts, true)
        .await
        .unwrap();
    assert!(dry.dry_run && n(&dry, Endpoint::Accounts, Outcome::DryRun) > 0);
    assert_eq!(n(&dry, Endpoint::Accounts, Outcome::Applied), 0);
    assert_eq!(crm_companies(&w).len(), before);
    assert!(
        w.store
            .record_states(Endpoint::Accounts)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        w.store
            .cursor(Endpoint::Accounts, System::Crm)
            .await
            .unwrap(),
        None
    );
    // The real run afterwards does it all.
    let real = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(crm_companies(&w).len(), SeedScale::small().accounts);
    assert!(n(&real, Endpoint::Accounts, Outcome::Applied) > 0);
}

#[tokio::test]
async fn records_sharing_the_cursor_timestamp_are_not_lost() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let codes: Vec<String> = {
        let mut c: Vec<String> = crm_companies(&w).into_keys().collect();
        c.sort();
        c
    };
    // Nine partners change in the same second, across a page boundary (pages of 7 here); then one
    // more changes in that same second after the run, which an exclusive cursor would miss.
    let at = w.later(10);
    for code in &codes[..9] {
        w.edit_partner_at(
            code,
            json!({"CardName": format!("{code} Same Second GmbH")}),
            at,
        );
    }
    // Run once the overlap has passed, so the cursor lands on that very second: only an
    // inclusive boundary reads the late change below.
    w.later(5);
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(
        w.store
            .cursor(Endpoint::Accounts, System::Erp)
            .await
            .unwrap(),
        Some(at),
        "the cursor sits on the shared second"
    );
    w.edit_partner_at(
        &codes[9],
        json!({"CardName": "Late But Same Second GmbH"}),
        at,
    );
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(
        n(&run, Endpoint::Accounts, Outcome::Applied),
        1,
        "only the late one is new: {run:?}"
    );
    let companies = crm_companies(&w);
    for code in &codes[..9] {
        assert_eq!(
            companies[code].1["name"],
            format!("{code} Same Second GmbH")
        );
    }
    assert_eq!(companies[&codes[9]].1["name"], "Late But Same Second GmbH");
}

/// A full read saw every record there was when it started: the next run reads what changed
/// since (the full read's own writes among them), not everything again, and loses no change
/// made as the full read began.
#[tokio::test]
async fn the_run_after_a_full_read_reads_only_what_changed_since_it_began() {
    let w = world().await;
    let started = w.later(10);
    let first = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let untouched = {
        let data = w.sandbox.crm_data.lock().unwrap();
        let seeded = Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        let companies = data.all("companies");
        companies.iter().filter(|c| c.updated_at == seeded).count()
    };
    assert!(
        untouched > 0,
        "some companies were not written by the first run"
    );
    // A change stamped with the instant the full read began, made after the read had passed
    // the partner (as a change during the run would be).
    let codes: Vec<String> = crm_companies(&w).into_keys().collect();
    w.edit_partner_at(
        &codes[0],
        json!({"CardName": "Changed As The Read Began GmbH"}),
        started,
    );
    w.later(1);
    let second = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(
        n(&second, Endpoint::Accounts, Outcome::Applied),
        1,
        "{second:?}"
    );
    assert_eq!(
        crm_companies(&w)[&codes[0]].1["name"],
        "Changed As The Read Began GmbH"
    );
    assert!(
        second.records_read + untouched <= first.records_read,
        "the companies the first run left alone are not read again: {} then {}",
        first.records_read,
        second.records_read
    );
}

#[tokio::test]
async fn reconciliation_catches_a_page_the_server_silently_dropped() {
    let w = world().await;
    // Page 2 of the ERP's answers is skipped: every call succeeds, records are lost.
    w.sandbox.erp.faults.set(FaultConfig {
        drop_page: Some(2),
        ..Default::default()
    });
    let run = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert_eq!((run.api_calls_failed, run.failed_writes), (0, 0));
    w.sandbox.erp.faults.set(FaultConfig::default());
    let report = w.engine.reconcile(Endpoint::Items).await.unwrap();
    assert!(report.missing > 0, "{report:?}");
    let missing = w
        .store
        .query_events(&EventQuery {
            endpoint: Some(Endpoint::Items),
            field: Some("*".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(missing.len(), report.missing);
    assert!(
        missing
            .iter()
            .all(|e| e.event.outcome == Outcome::Missing && e.event.target_system == System::Crm)
    );
    // A clean pair of systems reconciles to nothing.
    let w2 = world().await;
    w2.engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    let clean = w2.engine.reconcile(Endpoint::Items).await.unwrap();
    assert_eq!(clean.differences(), 0, "{clean:?}");
}

#[tokio::test]
async fn a_held_conflict_stays_held_and_runs_keep_going() {
    let mut rules = default_endpoints();
    let accounts = rules.get_mut(&Endpoint::Accounts).unwrap();
    accounts.fields.insert(
        "billing_street".into(),
        FieldRule {
            owner: System::Erp,
            conflict: ConflictPolicy::Manual,
        },
    );
    let w = world_with(rules).await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let companies = crm_companies(&w);
    let (code, (id, _)) = companies.iter().min_by_key(|(k, _)| k.as_str()).unwrap();
    w.edit_company(*id, "address", "1 Crm Road");
    w.edit_partner(code, json!({"BPAddresses": [{"AddressName": "Bill To", "AddressType": "bo_BillTo", "Street": "2 Erp Road"}]}));
    let first = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(first.conflicts, 1);
    // Later runs, one with an unrelated edit on the same record: the held field is left alone,
    // no second conflict is opened, and nothing fails.
    w.edit_company(*id, "phone", "+1 999");
    for _ in 0..2 {
        let run = w
            .engine
            .run_endpoint(Endpoint::Accounts, false)
            .await
            .unwrap();
        assert_eq!(run.conflicts, 0);
        assert_eq!(n(&run, Endpoint::Accounts, Outcome::Conflict), 0);
    }
    assert_eq!(w.store.open_conflicts().await.unwrap().len(), 1);
    assert_eq!(crm_companies(&w)[code].1["address"], "1 Crm Road");
    assert_eq!(w.partner(code)["BPAddresses"][0]["Street"], "2 Erp Road");
    assert_eq!(w.partner(code)["Phone1"], "+1 999");

    // A person settles it with the CRM's value: the ERP gets it, the decision is logged with
    // who made it, the conflict closes and the next run finds nothing to do.
    let conflict = w.store.open_conflicts().await.unwrap().remove(0);
    let missing = w
        .engine
        .resolve_conflict(conflict.id + 100, Resolution::Crm, "ana")
        .await;
    assert!(
        matches!(missing, Err(SyncError::UnknownConflict(_))),
        "{missing:?}"
    );
    let closed = w
        .engine
        .resolve_conflict(conflict.id, Resolution::Crm, "ana")
        .await
        .unwrap();
    assert!(closed.resolution.unwrap().contains("ana"));
    assert!(w.store.open_conflicts().await.unwrap().is_empty());
    assert_eq!(w.partner(code)["BPAddresses"][0]["Street"], "1 Crm Road");
    let resolved: Vec<_> = all_events(w.store.as_ref())
        .await
        .into_iter()
        .filter(|e| e.event.outcome == Outcome::ConflictResolved)
        .collect();
    assert_eq!(resolved.len(), 1, "one side needed the write");
    assert_eq!(resolved[0].event.target_system, System::Erp);
    assert!(
        resolved[0]
            .event
            .error
            .as_deref()
            .unwrap()
            .contains("resolved by ana")
    );
    w.later(1);
    let quiet = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

#[tokio::test]
async fn a_dry_run_then_a_real_run_over_a_refused_edit() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let (code, (id, _)) = crm_companies(&w)
        .into_iter()
        .min_by_key(|(k, _)| k.clone())
        .unwrap();
    w.edit_company(id, "name", "Not Yours To Change");
    let dry = w
        .engine
        .run_endpoint(Endpoint::Accounts, true)
        .await
        .unwrap();
    assert_eq!(n(&dry, Endpoint::Accounts, Outcome::DryRun), 2, "{dry:?}");
    assert_eq!(crm_companies(&w)[&code].1["name"], "Not Yours To Change");
    let real = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(n(&real, Endpoint::Accounts, Outcome::SkippedNotOwner), 1);
    assert_ne!(crm_companies(&w)[&code].1["name"], "Not Yours To Change");
}

#[tokio::test]
async fn a_record_that_could_not_be_created_leaves_the_other_side_alone() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    // A new ERP partner the CRM refuses (blank name): the create fails.
    let at = w.later(1);
    let partner = json!({"CardCode": "C99001", "CardName": " ", "CardType": "cCustomer", "Phone1": "+49 1", "Industry": "Retail"});
    w.sandbox.erp_data.lock().unwrap().put(
        "BusinessPartners",
        partner.as_object().unwrap().clone(),
        at,
    );
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(run.failed_writes, 1);
    // A later ERP edit must not read the failed create as "the CRM emptied the fields".
    w.edit_partner("C99001", json!({"CardName": "Now Named GmbH"}));
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let p = w.partner("C99001");
    assert_eq!(
        (p["Phone1"].as_str(), p["Industry"].as_str()),
        (Some("+49 1"), Some("Retail"))
    );
    assert_eq!(crm_companies(&w)["C99001"].1["name"], "Now Named GmbH");
    assert_eq!(crm_companies(&w)["C99001"].1["phone"], "+49 1");
}

#[tokio::test]
async fn contacts_link_by_email_and_follow_their_owners() {
    let w = world().await;
    let scale = SeedScale::small();
    let first = w
        .engine
        .run_endpoint(Endpoint::Contacts, false)
        .await
        .unwrap();
    assert!(first.linked > 0 && first.unlinked >= 1, "{first:?}");
    let contacts = || {
        let data = w.sandbox.crm_data.lock().unwrap();
        let mut by_key = HashMap::new();
        for o in data.all("contacts") {
            if let Some(key) = o.properties.get("erp_number") {
                assert!(
                    by_key
                        .insert(key.clone(), (o.id, o.properties.clone()))
                        .is_none(),
                    "{key} twice"
                );
            }
        }
        by_key
    };
    let all = contacts();
    assert_eq!(all.len(), scale.accounts * scale.contacts_per_account);
    let (key, (id, props)) = all.iter().min_by_key(|(k, _)| k.as_str()).unwrap();
    assert_eq!(props["erp_account_number"], key.split('/').next().unwrap());
    // The CRM owns contact details; the ERP owns which account a contact belongs to.
    let at = w.later(1);
    let edit = BTreeMap::from([
        ("phone".to_string(), "+44 7700 900000".to_string()),
        ("erp_account_number".to_string(), "C00002".to_string()),
    ]);
    w.sandbox
        .crm_data
        .lock()
        .unwrap()
        .update("contacts", *id, edit, at);
    let run = w
        .engine
        .run_endpoint(Endpoint::Contacts, false)
        .await
        .unwrap();
    assert_eq!(n(&run, Endpoint::Contacts, Outcome::SkippedNotOwner), 1);
    let (card, code) = key.split_once('/').unwrap();
    let partner = w.partner(card);
    let member = partner["ContactEmployees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["InternalCode"].as_i64().map(|c| c.to_string()).as_deref() == Some(code))
        .unwrap()
        .clone();
    assert_eq!(member["Phone1"], "+44 7700 900000");
    assert_eq!(contacts()[key].1["erp_account_number"], card);
    let quiet = w
        .engine
        .run_endpoint(Endpoint::Contacts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

#[tokio::test]
async fn a_malformed_record_is_rejected_and_recorded_while_the_rest_sync() {
    let w = world().await;
    let at = w.later(1);
    let bad = json!({"ItemCode": "I09999", "ItemName": "Bad Currency", "ItemPrices": [{"PriceList": 1, "Price": 5.0, "Currency": "EURO"}]});
    w.sandbox
        .erp_data
        .lock()
        .unwrap()
        .put("Items", bad.as_object().unwrap().clone(), at);
    let run = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert_eq!(run.rejected, 1);
    assert!(
        n(&run, Endpoint::Items, Outcome::Applied) > 0,
        "the other items still sync"
    );
    let failed = w
        .store
        .query_events(&EventQuery {
            record_id: Some("I09999".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].event.outcome, Outcome::Failed);
    assert!(
        failed[0].event.error.as_deref().unwrap().contains("EURO"),
        "{:?}",
        failed[0].event.error
    );
    let status = w.store.run(&run.run_id).await.unwrap().unwrap().status;
    assert_eq!(status, syncwarden::domain::RunStatus::Partial);
    let products = w
        .sandbox
        .crm_data
        .lock()
        .unwrap()
        .all("products")
        .iter()
        .filter(|o| o.properties.get("erp_number").map(String::as_str) == Some("I09999"))
        .count();
    assert_eq!(products, 0, "never stored as good data");
}

#[tokio::test]
async fn a_newer_successful_write_retires_the_older_failed_one() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let (code, (id, _)) = crm_companies(&w)
        .into_iter()
        .min_by_key(|(k, _)| k.clone())
        .unwrap();
    w.edit_company(id, "phone", "+1 old");
    w.sandbox.erp.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let failed = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(failed.failed_writes, 1);
    w.sandbox.erp.faults.set(FaultConfig::default());
    w.edit_company(id, "phone", "+1 new");
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(w.partner(&code)["Phone1"], "+1 new");
    assert!(
        w.store.open_dead_letters().await.unwrap().is_empty(),
        "the stale letter is retired"
    );
    let redrive = w.engine.retry_failed(None).await.unwrap();
    assert_eq!(redrive.attempted, 0);
    assert_eq!(
        w.partner(&code)["Phone1"],
        "+1 new",
        "nothing stale written back"
    );
}

#[tokio::test]
async fn endpoints_pause_resume_and_dry_run_at_run_time() {
    use syncwarden::domain::EndpointControl;
    use syncwarden::sync::engine::SyncError;
    let w = world().await;
    let switch = |paused, dry_run| EndpointControl {
        endpoint: Endpoint::Accounts,
        paused,
        dry_run,
        changed_at: w.clock.now(),
        changed_by: "test".into(),
    };
    w.store
        .set_endpoint_control(&switch(true, false))
        .await
        .unwrap();
    assert!(matches!(
        w.engine.run_endpoint(Endpoint::Accounts, false).await,
        Err(SyncError::Paused(Endpoint::Accounts))
    ));
    assert!(
        w.engine.run_endpoint(Endpoint::Items, false).await.is_ok(),
        "other endpoints go on"
    );
    w.store
        .set_endpoint_control(&switch(false, true))
        .await
        .unwrap();
    let dry = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(dry.dry_run && n(&dry, Endpoint::Accounts, Outcome::Applied) == 0);
    w.store
        .set_endpoint_control(&switch(false, false))
        .await
        .unwrap();
    let live = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(!live.dry_run && n(&live, Endpoint::Accounts, Outcome::Applied) > 0);
    let controls = w.store.endpoint_controls().await.unwrap();
    assert_eq!(controls.len(), 1);
    assert_eq!(controls[0].changed_by, "test");
}

#[tokio::test]
async fn the_scheduler_syncs_on_its_interval_and_reconciles() {
    use syncwarden::sync::service::run_scheduler;
    let mut rules = default_endpoints();
    rules.retain(|e, _| *e == Endpoint::Items);
    let w = world_with(rules).await;
    let engine = Arc::new(w.engine);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = tokio::spawn(run_scheduler(
        engine.clone(),
        w.clock.clone(),
        Duration::from_secs(3600),
        stop_rx,
    ));
    let drift = || async {
        w.store
            .query_events(&EventQuery {
                endpoint: Some(Endpoint::Pricebook),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event.outcome == Outcome::Drift)
            .count()
    };
    let runs = || async {
        w.store
            .recent_runs(1000)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.ended_at.is_some())
            .count()
    };
    for _ in 0..500 {
        if runs().await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs().await, 1);
    // The CRM starts reporting a wrong price without the record changing: no incremental pull
    // can see it; only reading both sides in full does.
    let code = {
        let data = w.sandbox.crm_data.lock().unwrap();
        data.all("products")
            .iter()
            .find_map(|o| o.properties.get("erp_number").cloned())
            .unwrap()
    };
    w.sandbox.crm.faults.set(FaultConfig {
        skewed_prices: BTreeMap::from([(code, 130)]),
        ..Default::default()
    });
    // Items run every 60 s; an hour on, the scheduler has run again and reconciled.
    for _ in 0..61 {
        w.clock.advance(Duration::from_secs(60));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..500 {
        if drift().await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        drift().await,
        1,
        "the skewed price was caught by the scheduled reconciliation"
    );
    assert!(
        runs().await >= 2,
        "the scheduler kept syncing on its interval"
    );
    stop_tx.send(true).unwrap();
    w.clock.advance(Duration::from_secs(60));
    tokio::time::timeout(Duration::from_secs(10), scheduler)
        .await
        .unwrap()
        .unwrap();
}

/// One instance's scheduler on its own task (daily reconciliation), and the switch that stops it.
fn start_scheduler(
    engine: Arc<Engine>,
    clock: &Clock,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(syncwarden::sync::service::run_scheduler(
        engine,
        clock.clone(),
        Duration::from_secs(24 * 3600),
        stop_rx,
    ));
    (stop_tx, task)
}

/// The runs that have ended, on every instance.
async fn finished_runs(store: &dyn Store) -> usize {
    let runs = store.recent_runs(1000).await.unwrap();
    runs.iter().filter(|r| r.ended_at.is_some()).count()
}

/// Waits (up to 5 s) for `want` ended runs, then a little more: time for another run to start,
/// were one due.
async fn settle_runs(store: &dyn Store, want: usize) {
    for _ in 0..500 {
        if finished_runs(store).await >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Two instances' schedulers on one store, out of step, run an endpoint once an interval between
/// them, not once an interval each, and the one left alone keeps the schedule.
#[tokio::test]
async fn two_schedulers_on_one_store_share_one_schedule() {
    let mut rules = default_endpoints();
    rules.retain(|e, _| *e == Endpoint::Items);
    let interval = Duration::from_secs(rules[&Endpoint::Items].interval_secs);
    let w = world_with(rules.clone()).await;
    let other = engine_for(&w.sandbox, w.store.clone(), w.clock.clone(), rules);
    let start = |engine: Engine| start_scheduler(Arc::new(engine), &w.clock);
    let runs = || finished_runs(w.store.as_ref());
    let settle = |want: usize| settle_runs(w.store.as_ref(), want);
    let half = interval / 2;
    // A starts and runs; B starts half an interval later, out of step with A.
    let (stop_a, a) = start(other);
    settle(1).await;
    w.clock.advance(half);
    let (stop_b, b) = start(w.engine);
    settle(2).await;
    assert_eq!(
        runs().await,
        1,
        "B started within A's interval and left it to A"
    );
    // Four more intervals in half steps: each instance wakes once an interval, half an interval
    // apart; one run an interval in all (each on its own would make eight).
    for step in 1..=8 {
        w.clock.advance(half);
        settle(1 + step / 2).await;
    }
    assert_eq!(runs().await, 5, "one run an interval between the two");
    // A stops; B takes the slot once it is an interval overdue, then keeps it, once an interval.
    stop_a.send(true).unwrap();
    w.clock.advance(half);
    tokio::time::timeout(Duration::from_secs(10), a)
        .await
        .unwrap()
        .unwrap();
    for step in 1..=6_usize {
        w.clock.advance(half);
        settle(5 + step.saturating_sub(2) / 2).await;
    }
    assert_eq!(runs().await, 7, "B alone keeps the schedule");
    stop_b.send(true).unwrap();
    w.clock.advance(interval);
    tokio::time::timeout(Duration::from_secs(10), b)
        .await
        .unwrap()
        .unwrap();
}

/// Two instances' schedulers that wake together each interval: the one that took the last slot
/// keeps the endpoint while it lives (runs do not alternate, each re-reading what the other
/// wrote), and the other takes it over once it stops.
#[tokio::test]
async fn runs_stay_on_the_instance_that_took_the_last_slot_until_it_stops() {
    let mut rules = default_endpoints();
    rules.retain(|e, _| *e == Endpoint::Items);
    let interval = Duration::from_secs(rules[&Endpoint::Items].interval_secs);
    let w = world_with(rules.clone()).await;
    let a = Arc::new(engine_for(
        &w.sandbox,
        w.store.clone(),
        w.clock.clone(),
        rules,
    ));
    let b = Arc::new(w.engine);
    let start = |engine: &Arc<Engine>| start_scheduler(engine.clone(), &w.clock);
    let calls = |engine: &Arc<Engine>| {
        let (crm, erp) = engine.connectors();
        crm.calls().ok + erp.calls().ok
    };
    let runs = || finished_runs(w.store.as_ref());
    let settle = |want: usize| settle_runs(w.store.as_ref(), want);
    // A runs first; B starts half an interval later. From then on the clock moves a whole
    // interval at once, so both wake together with A's slot due and either could take it.
    let (stop_a, task_a) = start(&a);
    settle(1).await;
    w.clock.advance(interval / 2);
    let (stop_b, task_b) = start(&b);
    settle(1).await;
    for step in 1..=4 {
        w.clock.advance(interval);
        settle(1 + step).await;
    }
    assert_eq!(runs().await, 5, "one run an interval");
    assert_eq!(calls(&b), 0, "every run was A's: B never took its slot");
    // A stops: B takes the endpoint over once the slot is an interval overdue, then keeps it.
    let a_calls = calls(&a);
    stop_a.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task_a)
        .await
        .unwrap()
        .unwrap();
    // Due, but not yet an interval overdue: B leaves it; then B takes it, then keeps it.
    for step in 1..=3 {
        w.clock.advance(interval);
        settle(4 + step).await;
    }
    assert_eq!(runs().await, 7, "B took over and kept the schedule");
    assert!(calls(&b) > 0, "B ran the endpoint after A stopped");
    assert_eq!(calls(&a), a_calls, "A ran nothing after it stopped");
    stop_b.send(true).unwrap();
    w.clock.advance(interval);
    tokio::time::timeout(Duration::from_secs(10), task_b)
        .await
        .unwrap()
        .unwrap();
}

/// A run longer than two intervals: another instance cannot take the slot while the run holds
/// the endpoint's lease, nor once it has released it (the holder moved the next slot first, to an
/// interval past the run's end), however often it asks meanwhile. SQLite, and PostgreSQL when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_slot_is_free_between_a_long_run_and_its_next_slot() {
    use syncwarden::sync::engine::Slot;
    let test = "sync::no_slot_is_free_between_a_long_run_and_its_next_slot";
    let mut rules = default_endpoints();
    rules.retain(|e, _| *e == Endpoint::Items);
    let interval = Duration::from_secs(10);
    let (job, lease) = ("sync-due:items", Duration::from_secs(3600));
    for db in TestDb::all(test).await {
        let w = world_on(db, rules.clone()).await;
        let a = Arc::new(w.engine.with_lease(lease));
        let b = Arc::new(
            engine_for(&w.sandbox, w.store.clone(), w.clock.clone(), rules.clone())
                .with_lease(lease),
        );
        let take = |engine: &Arc<Engine>| {
            let engine = engine.clone();
            async move {
                engine
                    .take_slot(Endpoint::Items, job, interval, interval, true)
                    .await
                    .unwrap()
            }
        };
        assert!(take(&a).await, "the first slot is A's");
        // Slow CRM answers stretch A's run over real time, so the clock can move on during it.
        w.sandbox.crm.faults.set(FaultConfig {
            latency_ms: 30,
            ..Default::default()
        });
        let run = tokio::spawn({
            let a = a.clone();
            async move {
                let slot = Slot {
                    job,
                    every: interval,
                };
                a.run_slot(Endpoint::Items, slot).await.unwrap();
            }
        });
        for _ in 0..500 {
            if w.store.lease("sync:items").await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        w.clock.advance(interval * 3);
        // B asks for the slot as often as it can until A's run is over and its lease released.
        let mut asked = 0;
        while !run.is_finished() {
            assert!(!take(&b).await, "B took the slot of A's run");
            asked += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        run.await.unwrap();
        assert!(asked > 0, "A's run ended before B asked; nothing tested");
        assert!(w.store.lease("sync:items").await.unwrap().is_none());
        assert!(!take(&b).await, "B took the slot A had just run");
        assert_eq!(
            w.store.job_mark(job).await.unwrap(),
            Some(w.clock.now() + interval),
            "the next slot is an interval past the run's end"
        );
        // The schedule goes on with A; B takes it once A misses a slot by the grace.
        w.clock.advance(interval);
        assert!(!take(&b).await);
        assert!(take(&a).await);
        w.clock.advance(interval * 2);
        assert!(take(&b).await, "A stopped taking its slots");
        w.store.close().await;
        w.db.cleanup().await;
    }
}

/// Every default endpoint on a one-minute interval, and two instances of it on one store whose
/// leases (and heartbeats) last ten minutes, so no heartbeat lapses between two steps of the clock.
fn two_instances_of_every_endpoint(
    w: &World,
    rules: &BTreeMap<Endpoint, EndpointSettings>,
) -> (Arc<Engine>, Arc<Engine>) {
    let lease = Duration::from_secs(600);
    let engine = || {
        engine_for(&w.sandbox, w.store.clone(), w.clock.clone(), rules.clone()).with_lease(lease)
    };
    (Arc::new(engine()), Arc::new(engine()))
}

fn every_endpoint_each_minute() -> BTreeMap<Endpoint, EndpointSettings> {
    let mut rules = default_endpoints();
    for settings in rules.values_mut() {
        settings.interval_secs = 60;
    }
    assert_eq!(rules.len(), 6);
    rules
}

/// The endpoints whose sync schedule `engine` holds (took the last slot of), by name.
async fn held_endpoints(store: &dyn Store, engine: &Engine) -> Vec<String> {
    let held = store.held_job_slots(engine.holder(), "sync-due:%").await;
    held.unwrap()
        .into_iter()
        .map(|job| job.trim_start_matches("sync-due:").to_string())
        .collect()
}

/// Stops an instance's scheduler and waits for it (the clock moves so its loops wake).
async fn stop_scheduler(
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    clock: &Clock,
) {
    stop.send(true).unwrap();
    clock.advance(Duration::from_secs(1));
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

/// Two instances that start together (each has seen the other's heartbeat) split six endpoints
/// three and three from their first slots, and keep them: affinity within a share (issue 8).
/// SQLite, and PostgreSQL when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_that_start_together_split_the_endpoints() {
    let test = "sync::two_instances_that_start_together_split_the_endpoints";
    let rules = every_endpoint_each_minute();
    for db in TestDb::all(test).await {
        let w = world_on(db, rules.clone()).await;
        let (a, b) = two_instances_of_every_endpoint(&w, &rules);
        a.beat().await.unwrap();
        b.beat().await.unwrap();
        let (stop_a, task_a) = start_scheduler(a.clone(), &w.clock);
        let (stop_b, task_b) = start_scheduler(b.clone(), &w.clock);
        settle_runs(w.store.as_ref(), 6).await;
        let split = (
            held_endpoints(w.store.as_ref(), &a).await,
            held_endpoints(w.store.as_ref(), &b).await,
        );
        assert_eq!((split.0.len(), split.1.len()), (3, 3), "{split:?}");
        for step in 1..=3 {
            w.clock.advance(Duration::from_secs(60));
            settle_runs(w.store.as_ref(), 6 * (step + 1)).await;
            let now = (
                held_endpoints(w.store.as_ref(), &a).await,
                held_endpoints(w.store.as_ref(), &b).await,
            );
            assert_eq!(now, split, "step {step}: an endpoint moved");
        }
        assert_eq!(
            finished_runs(w.store.as_ref()).await,
            24,
            "one run an interval each"
        );
        stop_scheduler(stop_a, task_a, &w.clock).await;
        stop_scheduler(stop_b, task_b, &w.clock).await;
        w.store.close().await;
        w.db.cleanup().await;
    }
}

/// Waits until the loops the clock woke have claimed their slots and every run has ended.
async fn settle_loops(store: &dyn Store) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..500 {
        let runs = store.recent_runs(1000).await.unwrap();
        if runs.iter().all(|r| r.ended_at.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One instance alone takes all six endpoints; when a second joins, the first hands back exactly
/// its excess (the last three by name, after their runs) and the second takes them when due;
/// nothing moves again, and no endpoint moves twice. Then the first dies without a word (its
/// heartbeat runs on to its end): the second takes all its endpoints once that heartbeat has
/// expired, within one lease length and an interval. SQLite, and PostgreSQL when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_instance_is_handed_the_excess_once_and_takes_all_when_the_other_dies() {
    let test =
        "sync::a_joining_instance_is_handed_the_excess_once_and_takes_all_when_the_other_dies";
    let rules = every_endpoint_each_minute();
    let (interval, half) = (Duration::from_secs(60), Duration::from_secs(30));
    let mut all: Vec<String> = rules.keys().map(|e| e.to_string()).collect();
    all.sort();
    let (kept, handed) = (all[..3].to_vec(), all[3..].to_vec());
    for db in TestDb::all(test).await {
        let w = world_on(db, rules.clone()).await;
        let (a, b) = two_instances_of_every_endpoint(&w, &rules);
        let held = async |engine: &Arc<Engine>| held_endpoints(w.store.as_ref(), engine).await;
        let (stop_a, task_a) = start_scheduler(a.clone(), &w.clock);
        settle_loops(w.store.as_ref()).await;
        assert_eq!(held(&a).await, all, "alone, A takes every endpoint");
        // B joins half an interval later: A's slots are not due, B takes none. From then on the
        // clock moves half an interval at a time: A's loops wake, then B's.
        w.clock.advance(half);
        let (stop_b, task_b) = start_scheduler(b.clone(), &w.clock);
        settle_loops(w.store.as_ref()).await;
        assert!(held(&b).await.is_empty());
        let mut history = Vec::new();
        for _ in 0..12 {
            w.clock.advance(half);
            settle_loops(w.store.as_ref()).await;
            history.push((held(&a).await, held(&b).await));
        }
        assert_eq!(
            history.last().unwrap(),
            &(kept.clone(), handed.clone()),
            "A kept the first three by name, B took the rest: {history:?}"
        );
        for endpoint in &all {
            let holders: Vec<&str> = history
                .iter()
                .filter_map(|(a_held, b_held)| {
                    (a_held.contains(endpoint).then_some("A"))
                        .or(b_held.contains(endpoint).then_some("B"))
                })
                .collect();
            let moves = holders.windows(2).filter(|w| w[0] != w[1]).count();
            assert!(moves <= 1, "{endpoint} moved {moves} times: {history:?}");
        }
        // A dies: its loops stop, and its heartbeat stays as its last beat left it.
        stop_scheduler(stop_a, task_a, &w.clock).await;
        let (holder, died) = (a.holder(), w.clock.now());
        let lease = a.lease_length();
        let heartbeat = format!("instance:{holder}");
        let beat = w
            .store
            .acquire_lease(&heartbeat, holder, died + lease, died);
        assert!(beat.await.unwrap());
        let mut took = None;
        for step in 1..=30_u32 {
            w.clock.advance(half);
            settle_loops(w.store.as_ref()).await;
            let b_held = held(&b).await;
            if w.clock.now() < died + lease {
                assert_eq!(
                    b_held, handed,
                    "step {step}: A's heartbeat still counts it live"
                );
            } else if b_held == all {
                took = Some(half * step);
                break;
            }
        }
        let took = took.expect("B never took all the endpoints");
        assert!(
            took <= lease + interval,
            "B took them all {took:?} after A died"
        );
        stop_scheduler(stop_b, task_b, &w.clock).await;
        w.store.close().await;
        w.db.cleanup().await;
    }
}

/// An instance that stops cleanly hands its endpoints back as it leaves (what `serve` does on
/// SIGTERM): the one left takes each at its next slot, not a whole interval late as after a
/// crash. SQLite, and PostgreSQL when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_leaves_hands_its_endpoints_over_at_their_next_slot() {
    let test = "sync::an_instance_that_leaves_hands_its_endpoints_over_at_their_next_slot";
    let rules = every_endpoint_each_minute();
    let mut all: Vec<String> = rules.keys().map(|e| e.to_string()).collect();
    all.sort();
    for db in TestDb::all(test).await {
        let w = world_on(db, rules.clone()).await;
        let (a, b) = two_instances_of_every_endpoint(&w, &rules);
        let held = async |engine: &Arc<Engine>| held_endpoints(w.store.as_ref(), engine).await;
        let (stop_a, task_a) = start_scheduler(a.clone(), &w.clock);
        settle_loops(w.store.as_ref()).await;
        assert_eq!(held(&a).await, all, "alone, A takes every endpoint");
        stop_scheduler(stop_a, task_a, &w.clock).await;
        a.leave().await;
        assert!(held(&a).await.is_empty(), "A handed every schedule back");
        let (stop_b, task_b) = start_scheduler(b.clone(), &w.clock);
        settle_loops(w.store.as_ref()).await;
        assert!(held(&b).await.is_empty(), "no slot is due yet");
        // One interval on, every slot A left is due: B takes each then, where a slot still held
        // by A would be B's only once it is a whole interval overdue.
        w.clock.advance(Duration::from_secs(60));
        settle_loops(w.store.as_ref()).await;
        assert_eq!(held(&b).await, all, "B took each at its next slot");
        stop_scheduler(stop_b, task_b, &w.clock).await;
        w.store.close().await;
        w.db.cleanup().await;
    }
}

#[tokio::test]
async fn under_random_faults_nothing_is_lost_and_both_sides_end_up_agreeing() {
    let w = world().await;
    let faults = FaultConfig {
        error_rate: 0.15,
        write_error_rate: 0.15,
        burst_429: 3,
        latency_ms: 1,
        ..Default::default()
    };
    w.sandbox.crm.faults.set(faults.clone());
    w.sandbox.erp.faults.set(faults);
    let mut failed_calls = 0;
    for round in 0.. {
        assert!(round < 30, "no clean round under faults after 30 tries");
        match w.engine.run_endpoint(Endpoint::Accounts, false).await {
            Ok(run) => failed_calls += run.api_calls_failed,
            Err(_) => continue,
        }
        let redrive = w.engine.retry_failed(None).await.unwrap();
        if redrive.still_failing == 0 && w.store.open_dead_letters().await.unwrap().is_empty() {
            break;
        }
    }
    assert!(failed_calls > 0, "the faults were hit");
    // Every failed attempt was recorded as such: the runs' counts add up to at least what we saw.
    let runs = w.store.recent_runs(100).await.unwrap();
    assert!(runs.iter().map(|r| r.counts.api_calls_failed).sum::<i64>() >= failed_calls as i64);
    w.sandbox.crm.faults.set(FaultConfig::default());
    w.sandbox.erp.faults.set(FaultConfig::default());
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let companies = crm_companies(&w);
    assert_eq!(
        companies.len(),
        SeedScale::small().accounts,
        "every partner once in the CRM"
    );
    for (code, (_, props)) in &companies {
        assert_eq!(
            w.partner(code)["CardName"].as_str(),
            Some(props["name"].as_str())
        );
    }
    assert_eq!(
        w.engine
            .reconcile(Endpoint::Accounts)
            .await
            .unwrap()
            .differences(),
        0
    );
    let quiet = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_not_reported_as_failed() {
    let w = world().await;
    w.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    // A CRM company carrying an ERP number the ERP does not have yet: the sync creates it there.
    let at = w.later(1);
    let props = BTreeMap::from([
        ("name".to_string(), "Brand New GmbH".to_string()),
        ("erp_number".to_string(), "C90000".to_string()),
    ]);
    w.sandbox
        .crm_data
        .lock()
        .unwrap()
        .insert("companies", props, at);
    // The ERP makes the create but its answer is lost; the retry then hears "already exists".
    w.sandbox.erp.faults.set(FaultConfig {
        lose_write_answers: 1,
        ..Default::default()
    });
    let run = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(run.failed_writes, 0, "{run:?}");
    assert_eq!(n(&run, Endpoint::Accounts, Outcome::Applied), 1);
    assert_eq!(w.partner("C90000")["CardName"], "Brand New GmbH");
    assert!(w.store.open_dead_letters().await.unwrap().is_empty());

    // A genuine clash still fails: the ERP has the key for a different partner, one the sync has
    // not read (it changed before the cursor), so the create collides with it.
    let long_ago = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let other =
        json!({"CardCode": "C90001", "CardName": "Someone Else AG", "CardType": "cCustomer"});
    w.sandbox.erp_data.lock().unwrap().put(
        "BusinessPartners",
        other.as_object().unwrap().clone(),
        long_ago,
    );
    let at = w.later(1);
    let props = BTreeMap::from([
        ("name".to_string(), "Not The Same Ltd".to_string()),
        ("erp_number".to_string(), "C90001".to_string()),
    ]);
    w.sandbox
        .crm_data
        .lock()
        .unwrap()
        .insert("companies", props, at);
    let clash = w
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(clash.failed_writes, 1, "{clash:?}");
    assert_eq!(w.partner("C90001")["CardName"], "Someone Else AG");
}

#[tokio::test]
async fn an_item_deactivated_in_the_erp_is_archived_in_the_crm() {
    let w = world().await;
    // One item inactive before the first sync (never created in the CRM), one deactivated later.
    let at = w.later(1);
    let codes: Vec<String> = w
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .all("Items")
        .iter()
        .map(|i| i["ItemCode"].as_str().unwrap().to_string())
        .collect();
    let in_crm: Vec<String> = {
        let crm = w.sandbox.crm_data.lock().unwrap();
        crm.all("products")
            .iter()
            .filter_map(|p| p.properties.get("erp_number").cloned())
            .collect()
    };
    let never = codes.iter().find(|c| !in_crm.contains(c)).unwrap().clone();
    let later = in_crm[0].clone();
    let inactive = json!({"Valid": "tNO"}).as_object().unwrap().clone();
    assert!(
        w.sandbox
            .erp_data
            .lock()
            .unwrap()
            .update("Items", &never, inactive.clone(), at)
    );
    w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    let products = |code: &str| {
        let crm = w.sandbox.crm_data.lock().unwrap();
        crm.all("products")
            .iter()
            .filter(|p| p.properties.get("erp_number").map(String::as_str) == Some(code))
            .count()
    };
    assert_eq!(products(&never), 0, "an inactive item is not created");
    assert_eq!(products(&later), 1);

    let at = w.later(1);
    assert!(
        w.sandbox
            .erp_data
            .lock()
            .unwrap()
            .update("Items", &later, inactive, at)
    );
    let run = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert_eq!(n(&run, Endpoint::Items, Outcome::Applied), 1, "{run:?}");
    assert_eq!(products(&later), 0, "archived in the CRM");
    assert_eq!(
        w.engine
            .reconcile(Endpoint::Items)
            .await
            .unwrap()
            .differences(),
        0
    );
    w.later(1);
    let quiet = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert!(quiet.events.is_empty(), "{quiet:?}");

    // Active again in the ERP: HubSpot cannot restore by API, so the write fails and says so.
    let at = w.later(1);
    let active = json!({"Valid": "tYES"}).as_object().unwrap().clone();
    assert!(
        w.sandbox
            .erp_data
            .lock()
            .unwrap()
            .update("Items", &later, active, at)
    );
    let run = w.engine.run_endpoint(Endpoint::Items, false).await.unwrap();
    assert_eq!(run.failed_writes, 1);
    let dead = w.store.open_dead_letters().await.unwrap();
    assert!(
        dead[0].error.contains("restore it in HubSpot"),
        "{}",
        dead[0].error
    );
}

/// Two instances on one store: one endpoint runs on one of them at a time, and a dead holder's
/// lease is taken over once it expires.
async fn check_leases(w: &World) {
    let other = engine_for(
        &w.sandbox,
        w.store.clone(),
        w.clock.clone(),
        default_endpoints(),
    );
    // While this instance syncs (slowly), the other is refused the same endpoint.
    w.sandbox.crm.faults.set(FaultConfig {
        latency_ms: 100,
        ..Default::default()
    });
    let (first, second) = tokio::join!(w.engine.run_endpoint(Endpoint::Accounts, false), async {
        // Once the first holds the lease (however long a loaded machine takes to get there).
        while w.store.lease("sync:accounts").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        other.run_endpoint(Endpoint::Accounts, false).await
    });
    first.unwrap();
    assert!(
        matches!(
            second,
            Err(SyncError::Busy {
                endpoint: Endpoint::Accounts,
                ..
            })
        ),
        "{second:?}"
    );
    w.sandbox.crm.faults.set(FaultConfig::default());
    // Done, the lease is given back: the other instance may run it now.
    other.run_endpoint(Endpoint::Accounts, false).await.unwrap();

    // An instance that died holding the lease: refused until the lease expires, then taken over.
    let now = w.clock.now();
    assert!(
        w.store
            .acquire_lease(
                "sync:items",
                "dead-instance",
                now + Duration::from_secs(30),
                now
            )
            .await
            .unwrap()
    );
    let refused = other.run_endpoint(Endpoint::Items, false).await;
    assert!(
        matches!(&refused, Err(SyncError::Busy { holder, .. }) if holder == "dead-instance"),
        "{refused:?}"
    );
    w.clock.advance(Duration::from_secs(31));
    other.run_endpoint(Endpoint::Items, false).await.unwrap();
}

#[tokio::test]
async fn one_instance_at_a_time_syncs_an_endpoint_and_a_dead_ones_lease_expires() {
    check_leases(&world().await).await;
}

#[tokio::test]
async fn leases_hold_on_postgres_too() {
    let Some(db) = TestDb::postgres("sync::leases_hold_on_postgres_too").await else {
        return;
    };
    let w = world_on(db, default_endpoints()).await;
    check_leases(&w).await;
    w.store.close().await;
    w.db.cleanup().await;
}

#[tokio::test]
async fn a_run_whose_lease_was_taken_over_stops() {
    let w = world().await;
    let slow = engine_for(
        &w.sandbox,
        w.store.clone(),
        w.clock.clone(),
        default_endpoints(),
    )
    .with_lease(Duration::from_secs(3));
    w.sandbox.crm.faults.set(FaultConfig {
        latency_ms: 100,
        ..Default::default()
    });
    let (run, ()) = tokio::join!(slow.run_endpoint(Endpoint::Accounts, false), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        // This instance stalled past its lease and another took the endpoint over...
        let later = w.clock.now() + Duration::from_secs(10);
        assert!(
            w.store
                .acquire_lease(
                    "sync:accounts",
                    "thief",
                    later + Duration::from_secs(60),
                    later
                )
                .await
                .unwrap()
        );
        // ...which the stalled one finds at its next renewal.
        w.clock.advance(Duration::from_secs(2));
    });
    assert!(
        matches!(&run, Err(SyncError::Busy { holder, .. }) if holder == "thief"),
        "{run:?}"
    );
}
