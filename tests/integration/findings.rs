//! Findings in the store: fingerprinting (a repeat updates, a recurrence reopens) and the
//! lifecycle open -> acknowledged -> resolved, on every backend.

use std::time::Duration;

use syncwarden::domain::Timestamp;
use syncwarden::monitor::{FindingState, NewFinding, Severity};

use crate::helpers::TestDb;

pub fn at(minutes: u64) -> Timestamp {
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

/// Two days of item writes into the CRM at about 1,000 an hour: a 99% -> 90% drop for two hours
/// on the second day, then a silent stop. Events -> one-minute buckets -> watcher -> store.
#[tokio::test]
async fn the_watcher_turns_an_event_stream_into_findings() {
    use syncwarden::domain::{Endpoint, NewFieldEvent, Outcome, System};
    use syncwarden::monitor::{Bucket, Scope, Watcher, bucket_events, record};

    let minutes = 2 * 1440;
    let (drop_at, stop_at) = (1440 + 600, 1440 + 900);
    let mut rng = fastrand::Rng::with_seed(5);
    let mut events = Vec::new();
    for minute in 0..stop_at {
        for second in 0..60 {
            // About 1,000 writes an hour.
            if rng.u32(0..1000) >= 278 {
                continue;
            }
            let rate = if (drop_at..drop_at + 120).contains(&minute) {
                0.10
            } else {
                0.01
            };
            let failed = rng.f64() < rate;
            events.push(NewFieldEvent {
                idempotency_key: format!("{minute}-{second}"),
                run_id: None,
                endpoint: Endpoint::Items,
                crm_id: Some("1".into()),
                erp_id: Some("A1".into()),
                field: "price".into(),
                old_value: None,
                new_value: Some("1.00".into()),
                source_system: System::Erp,
                target_system: System::Crm,
                outcome: if failed {
                    Outcome::Failed
                } else {
                    Outcome::Applied
                },
                error: failed.then(|| "503".into()),
                latency_ms: Some(80 + i64::from(rng.u32(0..40))),
                occurred_at: at(minute) + Duration::from_secs(second),
            });
        }
    }
    let scope = Scope {
        endpoint: Endpoint::Items,
        target: System::Crm,
    };
    let series = bucket_events(&events, Duration::from_secs(60));
    let buckets = &series[&scope];
    let db = TestDb::sqlite();
    let store = db.open().await;
    let mut watcher = Watcher::default();
    for minute in 0..minutes {
        // The clock goes on after the last event: the quiet minutes are fed too.
        let bucket = buckets
            .get(minute as usize)
            .cloned()
            .unwrap_or_else(|| Bucket::empty(buckets[0].start + Duration::from_secs(60 * minute)));
        let reports = watcher.observe(scope, &bucket);
        record(store.as_ref(), &reports).await.unwrap();
    }
    let findings = store.findings(None).await.unwrap();
    let by_fingerprint = |f: &str| findings.iter().find(|x| x.fingerprint == f);
    let drop = by_fingerprint("success_rate_drop:items:crm").expect("no success-rate finding");
    assert_eq!(drop.state, FindingState::Resolved);
    let drop_start = buckets[0].start + Duration::from_secs(60 * drop_at);
    assert!(drop.detected_at >= drop_start);
    assert!(
        drop.time_to_detect() <= Duration::from_secs(15 * 60)
            && drop.detected_at.since(drop_start) <= Duration::from_secs(15 * 60),
        "detected {} after the drop",
        drop.detected_at.since(drop_start).as_secs()
    );
    let stale = by_fingerprint("freshness:items:crm").expect("no freshness finding");
    assert_eq!(stale.state, FindingState::Open);
    let volume = by_fingerprint("volume:items:crm").expect("no volume finding");
    assert_eq!(volume.evidence["direction"], "down");
    assert_eq!(findings.len(), 3, "{findings:#?}");
    store.close().await;
}

/// An hour of ~17 writes a minute to the CRM's items, then half of them failing for 20 minutes,
/// then nothing.
pub fn burst_then_silence() -> Vec<syncwarden::domain::NewFieldEvent> {
    use syncwarden::domain::{Endpoint, Outcome, System};
    let mut rng = fastrand::Rng::with_seed(9);
    let mut events = Vec::new();
    for minute in 0..80u64 {
        for n in 0..17u64 {
            let mut e = crate::helpers::event((minute * 17 + n) as usize);
            e.endpoint = Endpoint::Items;
            e.target_system = System::Crm;
            e.outcome = if minute >= 60 && rng.bool() {
                Outcome::Failed
            } else {
                Outcome::Applied
            };
            e.occurred_at = at(minute) + Duration::from_secs(3 * n);
            events.push(e);
        }
    }
    events
}

/// The live monitor reads the log minute by minute: a failure burst, then silence, become findings.
#[tokio::test]
async fn the_live_monitor_reads_the_log_and_records_findings() {
    use syncwarden::monitor::{LiveMonitor, Watcher};

    let db = TestDb::sqlite();
    let store = db.open().await;
    let events = burst_then_silence();
    store.append_events(&events, at(0)).await.unwrap();

    let mut monitor = LiveMonitor::new(store.clone(), Watcher::default(), at(0));
    let reports = monitor.run_once(at(120)).await.unwrap();
    assert!(reports >= 2, "{reports} reports");
    assert_eq!(
        monitor.run_once(at(120)).await.unwrap(),
        0,
        "minutes are read once"
    );
    let all = store.findings(None).await.unwrap();
    let state = |fingerprint: &str| {
        all.iter()
            .find(|f| f.fingerprint == fingerprint)
            .map(|f| f.state)
    };
    // The failures end with the silence, so the drop resolves; the silence stays open.
    assert_eq!(
        state("success_rate_drop:items:crm"),
        Some(FindingState::Resolved),
        "{all:#?}"
    );
    assert_eq!(
        state("freshness:items:crm"),
        Some(FindingState::Open),
        "{all:#?}"
    );
    let drop = all.iter().find(|f| f.kind == "success_rate_drop").unwrap();
    assert!(
        drop.detected_at >= at(60) && drop.detected_at <= at(63),
        "{}",
        drop.detected_at
    );
    store.close().await;
}

/// The live monitor with the price and drift checks on a fresh sandbox, on a manual clock.
struct LiveSandbox {
    clock: syncwarden::clock::Clock,
    sandbox: syncwarden::sandbox::Sandbox,
    store: std::sync::Arc<dyn syncwarden::store::Store>,
    engine: std::sync::Arc<syncwarden::sync::engine::Engine>,
    monitor: syncwarden::monitor::LiveMonitor,
    _db: TestDb,
}

async fn live_sandbox() -> LiveSandbox {
    live_sandbox_with_books(Default::default()).await
}

/// The live sandbox, with `books` assigning customers their own ERP price book.
async fn live_sandbox_with_books(books: std::collections::HashMap<String, String>) -> LiveSandbox {
    use std::sync::Arc;
    use syncwarden::clock::Clock;
    use syncwarden::domain::Currency;
    use syncwarden::monitor::checks::{Currencies, SystemChecks};
    use syncwarden::monitor::{LiveMonitor, PriceTolerance, Watcher};
    use syncwarden::sandbox::{Sandbox, SeedScale};

    let clock = Clock::manual(at(0));
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let mut settings = db.settings();
    sandbox.configure(&mut settings);
    settings.sync.retry.base_delay_ms = 1;
    let engine = Arc::new(
        syncwarden::sync::service::engine(&settings, store.clone(), clock.clone()).unwrap(),
    );
    let eur = Currency::parse("EUR").unwrap();
    let checks = SystemChecks::new(
        engine.clone(),
        PriceTolerance::default(),
        "1".into(),
        Currencies { crm: eur, erp: eur },
    )
    .with_customer_price_books(books);
    let monitor = LiveMonitor::new(store.clone(), Watcher::default(), clock.now())
        .with_checks(checks, Duration::from_secs(300));
    LiveSandbox {
        clock,
        sandbox,
        store,
        engine,
        monitor,
        _db: db,
    }
}

/// The sandbox's planted price drift is found before the first sync, with its evidence; the
/// item prices resolve once the sync has put the ERP's back, the quote lines (the CRM owns
/// quotes) stay open; a CRM that reports a skewed price raises the finding again until the skew
/// is gone.
#[tokio::test]
async fn price_mismatches_from_the_sandbox_open_with_evidence_and_resolve_when_fixed() {
    use syncwarden::domain::Endpoint;
    use syncwarden::sandbox::faults::FaultConfig;

    let mut live = live_sandbox().await;
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    let (lines, items): (Vec<_>, Vec<_>) = open
        .iter()
        .filter(|f| f.kind == "price_mismatch")
        .partition(|f| f.fingerprint.contains(":line:"));
    assert!(!items.is_empty(), "no planted item drift found: {open:#?}");
    assert!(!lines.is_empty(), "no planted quote line found: {open:#?}");
    for f in &items {
        let e = &f.evidence;
        assert_eq!(e["issue"]["kind"], "different", "{f:#?}");
        assert_eq!(e["price_book"], "1");
        let (crm, erp) = (
            e["issue"]["crm"]["minor"].as_i64().unwrap(),
            e["issue"]["erp"]["minor"].as_i64().unwrap(),
        );
        assert!((crm - erp * 11 / 10).abs() <= 1, "10% too high: {e}");
        assert!(
            e["crm_record"].is_string() && e["erp_record"].is_string(),
            "{e}"
        );
        assert_eq!(f.started_at, at(0));
    }
    assert_eq!(lines[0].severity, Severity::Critical);

    live.clock.advance(Duration::from_secs(600));
    live.engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let all = live.store.findings(None).await.unwrap();
    let state = |fingerprint: &str| {
        all.iter()
            .find(|f| f.fingerprint == fingerprint)
            .map(|f| (f.state, f.resolved_at))
            .unwrap()
    };
    for f in &items {
        assert_eq!(
            state(&f.fingerprint),
            (FindingState::Resolved, Some(at(10))),
            "the sync fixed it"
        );
    }
    assert_eq!(state(&lines[0].fingerprint).0, FindingState::Open);

    let code = items[0].evidence["item_code"].as_str().unwrap().to_string();
    live.sandbox.crm.faults.set(FaultConfig {
        skewed_prices: [(code.clone(), 120)].into(),
        ..Default::default()
    });
    live.clock.advance(Duration::from_secs(300));
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let again = live.store.findings(Some(FindingState::Open)).await.unwrap();
    let skewed = again
        .iter()
        .find(|f| f.fingerprint == items[0].fingerprint)
        .expect("the skew reopens the finding");
    assert_eq!(skewed.started_at, at(15));
    live.sandbox.crm.faults.set(FaultConfig::default());
    live.clock.advance(Duration::from_secs(300));
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    assert!(
        open.iter().all(|f| f.fingerprint != items[0].fingerprint),
        "{open:#?}"
    );
}

/// Customer ERP number -> the price list the ERP gives it (SAP B1 `PriceListNum`).
async fn erp_price_books(
    engine: &syncwarden::sync::engine::Engine,
) -> std::collections::HashMap<String, String> {
    use syncwarden::domain::{Endpoint, System};
    engine
        .read_all(System::Erp, Endpoint::Accounts)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|a| Some((a.key?, a.fields.get("price_book")?.clone())))
        .collect()
}

/// The ERP's sales orders are priced from each customer's own list: a list-1 customer's orders
/// are 5% high for list 2. Configured to buy at list 2, each of that customer's order lines is a
/// finding naming the item, the customer's book, both prices, the order and line.
#[tokio::test]
async fn order_lines_are_checked_against_each_customers_own_price_book() {
    use syncwarden::domain::{Endpoint, System};

    let mut live = live_sandbox().await;
    let books = erp_price_books(&live.engine).await;
    let orders: Vec<_> = live
        .engine
        .read_all(System::Erp, Endpoint::SalesOrders)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| books.get(&o.fields["account"]).map(String::as_str) == Some("1"))
        .collect();
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    assert_eq!(order_line_evidence(&open), Vec::<serde_json::Value>::new());
    assert!(
        open.iter()
            .any(|f| f.fingerprint.starts_with("price_mismatch:line:quotes ")),
        "the planted quote lines are still found against list 1: {open:#?}"
    );

    let customer = orders[0].fields["account"].clone();
    // Every line of every order of that customer, by (order key, line number).
    let mut expected: Vec<(String, u64)> = orders
        .iter()
        .filter(|o| o.fields.get("account") == Some(&customer))
        .flat_map(|o| {
            let key = o.key.clone().unwrap_or_else(|| o.id.clone());
            (1..)
                .take_while(|n| o.fields.contains_key(&format!("line.{n}.item")))
                .map(move |n| (key.clone(), n))
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty());

    let mut live = live_sandbox_with_books([(customer.clone(), "2".to_string())].into()).await;
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    let found = order_line_evidence(&open);
    let mut flagged: Vec<(String, u64)> = found
        .iter()
        .map(|e| {
            let document = e["issue"]["document"].as_str().unwrap();
            let key = document.strip_prefix("sales_orders ").unwrap().to_string();
            (key, e["issue"]["line_no"].as_u64().unwrap())
        })
        .collect();
    flagged.sort();
    assert_eq!(flagged, expected);
    for e in &found {
        assert_eq!(e["price_book"], "2", "{e}");
        assert_eq!(e["issue"]["kind"], "line", "{e}");
        assert_eq!(e["issue"]["customer"], customer.as_str(), "{e}");
        assert!(
            e["item_code"].is_string() && e["erp_record"].is_string(),
            "{e}"
        );
        // List 2 is list 1 less 5%.
        let (unit, erp) = (
            e["issue"]["unit_price"]["minor"].as_i64().unwrap(),
            e["issue"]["erp"]["minor"].as_i64().unwrap(),
        );
        assert_eq!(erp, unit - unit / 20, "{e}");
    }
    let line = open
        .iter()
        .find(|f| {
            f.fingerprint
                .starts_with("price_mismatch:line:sales_orders ")
        })
        .unwrap();
    assert_eq!(line.started_at, at(0));
    assert_eq!(line.severity, Severity::Critical);
}

/// With no customer configured, each order is judged against the price list the ERP gives its
/// customer (SAP B1 `PriceListNum`): the seed prices every order from its customer's list, list 2
/// included, so nothing is found; moved to list 3 in the ERP, a customer's order lines are found
/// against list 3.
#[tokio::test]
async fn order_lines_follow_the_price_list_the_erp_gives_each_customer() {
    use syncwarden::domain::{Endpoint, System};

    let mut live = live_sandbox().await;
    let books = erp_price_books(&live.engine).await;
    let orders = live
        .engine
        .read_all(System::Erp, Endpoint::SalesOrders)
        .await
        .unwrap();
    let customer = orders
        .iter()
        .map(|o| o.fields["account"].clone())
        .find(|c| books[c] == "2")
        .expect("the seed has an order of a list-2 customer");
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    assert_eq!(order_line_evidence(&open), Vec::<serde_json::Value>::new());

    let patch = serde_json::json!({"PriceListNum": 3});
    live.sandbox.erp_data.lock().unwrap().update(
        "BusinessPartners",
        &customer,
        patch.as_object().unwrap().clone(),
        live.clock.now(),
    );
    live.clock.advance(Duration::from_secs(300));
    live.monitor.check_prices(live.clock.now()).await.unwrap();
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    let found = order_line_evidence(&open);
    let lines = orders
        .iter()
        .filter(|o| o.fields["account"] == customer)
        .flat_map(|o| (1..).take_while(|n| o.fields.contains_key(&format!("line.{n}.item"))))
        .count();
    assert_eq!(found.len(), lines, "{found:#?}");
    for e in &found {
        assert_eq!(e["price_book"], "3", "{e}");
        assert_eq!(e["issue"]["customer"], customer.as_str(), "{e}");
        // Priced at list 2 (list 1 less 5%), judged against list 3 (list 1 less 10%).
        let (unit, erp) = (
            e["issue"]["unit_price"]["minor"].as_i64().unwrap(),
            e["issue"]["erp"]["minor"].as_i64().unwrap(),
        );
        assert!(erp < unit, "{e}");
    }
}

/// `serve` with `monitor.customer_price_books` from the environment: its first price check (at
/// start-up, before any sync) judges the quote lines of a configured customer against the
/// configured book, over the ERP's own. A customer configured at a book its quotes are not
/// priced from has every quote line found; one configured at the book its quotes are priced
/// from has none, though the ERP has moved it to another list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_quote_lines_against_the_configured_customer_price_books() {
    use std::sync::Arc;
    use syncwarden::clock::Clock;
    use syncwarden::domain::{Endpoint, System};
    use syncwarden::sandbox::{self, Sandbox, SeedScale};

    let sandbox = Sandbox::start(Clock::system(), &SeedScale::small())
        .await
        .unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let mut settings = db.settings();
    sandbox.configure(&mut settings);
    let engine = Arc::new(
        syncwarden::sync::service::engine(&settings, store.clone(), Clock::system()).unwrap(),
    );
    let books = erp_price_books(&engine).await;
    let prices: std::collections::HashMap<(String, String), String> = engine
        .read_all(System::Erp, Endpoint::Items)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|item| {
            let code = item.key.clone().unwrap();
            item.fields.into_iter().filter_map(move |(f, v)| {
                Some(((code.clone(), f.strip_prefix("price.")?.to_string()), v))
            })
        })
        .collect();
    let quotes = engine
        .read_all(System::Crm, Endpoint::Quotes)
        .await
        .unwrap();
    let lines_of = |customer: &str| -> Vec<(String, String)> {
        quotes
            .iter()
            .filter(|q| q.fields.get("account").map(String::as_str) == Some(customer))
            .flat_map(|q| {
                (1..).map_while(move |n| {
                    let field = |name: &str| q.fields.get(&format!("line.{n}.{name}")).cloned();
                    Some((field("item")?, field("unit_price")?))
                })
            })
            .collect()
    };
    // Customers whose every quote line is priced exactly from their ERP list (no planted drift).
    let mut clean: Vec<String> = quotes
        .iter()
        .filter_map(|q| q.fields.get("account").cloned())
        .filter(|c| {
            let book = &books[c];
            lines_of(c).iter().all(|(item, unit)| {
                prices.get(&(item.clone(), book.clone())).map(|p| money(p)) == Some(money(unit))
            })
        })
        .collect();
    clean.sort();
    clean.dedup();
    let wrong = clean
        .iter()
        .find(|c| books[*c] == "1")
        .expect("a list-1 customer with clean quotes")
        .clone();
    let right = clean
        .iter()
        .find(|c| **c != wrong)
        .expect("a second customer with clean quotes")
        .clone();
    let right_book = books[&right].clone();
    // The ERP moves `right` to list 3; the configuration keeps it at the list its quotes use.
    let patch = serde_json::json!({"PriceListNum": 3});
    sandbox.erp_data.lock().unwrap().update(
        "BusinessPartners",
        &right,
        patch.as_object().unwrap().clone(),
        Clock::system().now(),
    );

    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .env("SYNCWARDEN_SERVER__LISTEN", "127.0.0.1:0")
        .env("SYNCWARDEN_LOG__LEVEL", "warn")
        .env("SYNCWARDEN_CRM__BASE_URL", sandbox.crm.base_url())
        .env("SYNCWARDEN_CRM__TOKEN", sandbox::HUBSPOT_TOKEN)
        .env("SYNCWARDEN_ERP__BASE_URL", sandbox.erp.base_url())
        .env("SYNCWARDEN_ERP__COMPANY_DB", sandbox::SAP_COMPANY_DB)
        .env("SYNCWARDEN_ERP__USERNAME", sandbox::SAP_USER)
        .env("SYNCWARDEN_ERP__PASSWORD", sandbox::SAP_PASSWORD)
        .env(
            "SYNCWARDEN_MONITOR__CUSTOMER_PRICE_BOOKS",
            format!("{{{wrong}=\"2\",{right}=\"{right_book}\"}}"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The start-up price check is recorded before the listening line; the sandbox answers
    // meanwhile, so the line is waited for off the runtime.
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        line
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(line.starts_with("syncwarden listening on"), "{line:?}");

    let found: Vec<serde_json::Value> = store
        .findings(Some(FindingState::Open))
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.fingerprint.starts_with("price_mismatch:line:quotes "))
        .map(|f| f.evidence)
        .collect();
    let of = |customer: &str| -> Vec<&serde_json::Value> {
        found
            .iter()
            .filter(|e| e["issue"]["customer"] == customer)
            .collect()
    };
    assert_eq!(of(&wrong).len(), lines_of(&wrong).len(), "{found:#?}");
    for e in of(&wrong) {
        assert_eq!(e["price_book"], "2", "{e}");
    }
    assert_eq!(of(&right), Vec::<&serde_json::Value>::new());
    store.close().await;
}

/// A decimal price as cents, so "10.5" and "10.50" compare equal.
fn money(decimal: &str) -> i64 {
    let (units, cents) = decimal.split_once('.').unwrap_or((decimal, "0"));
    let cents = format!("{cents:0<2}");
    units.parse::<i64>().unwrap() * 100 + cents[..2].parse::<i64>().unwrap()
}

/// A page the CRM drops shows in two reconciliations running as drift, from the live loop; once
/// the page is back the next reconciliation resolves it.
#[tokio::test]
async fn reconciliation_drift_is_judged_in_the_live_loop_and_resolves() {
    use syncwarden::domain::Endpoint;
    use syncwarden::sandbox::faults::FaultConfig;

    let mut live = live_sandbox().await;
    live.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    live.sandbox.crm.faults.set(FaultConfig {
        drop_page: Some(1),
        ..Default::default()
    });
    for minutes in [5, 10] {
        live.clock.advance(Duration::from_secs(300));
        live.engine.reconcile(Endpoint::Accounts).await.unwrap();
        live.monitor.run_once(at(minutes)).await.unwrap();
    }
    let open = live.store.findings(Some(FindingState::Open)).await.unwrap();
    let drift = open
        .iter()
        .find(|f| f.fingerprint == "reconciliation_drift:accounts")
        .unwrap_or_else(|| panic!("no drift finding: {open:#?}"));
    assert!(
        drift.evidence["missing_records"].as_u64().unwrap() > 0,
        "{drift:#?}"
    );
    assert_eq!((drift.started_at, drift.detected_at), (at(10), at(10)));

    live.sandbox.crm.faults.set(FaultConfig::default());
    live.clock.advance(Duration::from_secs(300));
    live.engine.reconcile(Endpoint::Accounts).await.unwrap();
    live.monitor.run_once(at(15)).await.unwrap();
    let all = live.store.findings(None).await.unwrap();
    let drift = all
        .iter()
        .find(|f| f.fingerprint == "reconciliation_drift:accounts")
        .unwrap();
    assert_eq!(
        (drift.state, drift.resolved_at),
        (FindingState::Resolved, Some(at(15)))
    );
}

/// The evidence of every sales-order line price mismatch among `found`.
fn order_line_evidence(found: &[syncwarden::monitor::Finding]) -> Vec<serde_json::Value> {
    found
        .iter()
        .filter(|f| {
            f.fingerprint
                .starts_with("price_mismatch:line:sales_orders ")
        })
        .map(|f| f.evidence.clone())
        .collect()
}
