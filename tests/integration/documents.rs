//! Quotes (CRM -> ERP), sales orders and invoices (ERP -> CRM) with their lines, end to end on
//! the sandbox: HubSpot line items and associations on one side, SAP B1 DocumentLines on the other.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};
use syncwarden::domain::{Endpoint, Outcome};
use syncwarden::sandbox::faults::FaultConfig;

use crate::helpers::TestDb;
use crate::sync::{World, n, world, world_on};

/// A document's lines as (item, quantity, unit price) text, in order.
type Lines = Vec<(String, String, String)>;

fn sap_lines(doc: &Map<String, Value>) -> Lines {
    let mut lines: Vec<&Value> = doc["DocumentLines"].as_array().unwrap().iter().collect();
    lines.sort_by_key(|l| l["LineNum"].as_i64());
    lines
        .iter()
        .map(|l| {
            (
                l["ItemCode"].as_str().unwrap().to_string(),
                format!("{}", l["Quantity"].as_f64().unwrap()),
                format!("{:.2}", l["UnitPrice"].as_f64().unwrap()),
            )
        })
        .collect()
}

impl World {
    /// The CRM's objects of one type with their line items (by position), by id.
    fn crm_documents(&self, object: &str) -> BTreeMap<u64, (BTreeMap<String, String>, Lines)> {
        let data = self.sandbox.crm_data.lock().unwrap();
        data.all(object)
            .into_iter()
            .map(|o| {
                let mut items: Vec<BTreeMap<String, String>> = data
                    .associated(object, o.id, "line_items")
                    .into_iter()
                    .filter_map(|id| data.get("line_items", id))
                    .map(|l| l.properties.clone())
                    .collect();
                items.sort_by_key(|p| p["hs_position_on_quote"].parse::<u32>().unwrap());
                let lines = items
                    .iter()
                    .map(|p| {
                        let quantity: f64 = p["quantity"].parse().unwrap();
                        let price: f64 = p["price"].parse().unwrap();
                        (
                            p["hs_sku"].clone(),
                            format!("{quantity}"),
                            format!("{price:.2}"),
                        )
                    })
                    .collect();
                (o.id, (o.properties.clone(), lines))
            })
            .collect()
    }

    fn erp_documents(&self, set: &str) -> Vec<Map<String, Value>> {
        let data = self.sandbox.erp_data.lock().unwrap();
        data.all(set).into_iter().cloned().collect()
    }

    async fn run(&self, endpoint: Endpoint) -> syncwarden::sync::engine::RunSummary {
        self.engine.run_endpoint(endpoint, false).await.unwrap()
    }

    /// Runs an endpoint again and checks it finds nothing to do, and nothing differs.
    async fn assert_quiet(&self, endpoint: Endpoint) {
        self.later(1);
        let again = self.run(endpoint).await;
        assert!(
            again.events.is_empty() && again.records_written == 0,
            "{endpoint} is not quiet: {:?}",
            again.events
        );
        let check = self.engine.reconcile(endpoint).await.unwrap();
        assert_eq!(check.differences(), 0, "{endpoint}: {check:?}");
    }

    fn edit_line_item(&self, id: u64, property: &str, value: &str) {
        let at = self.later(1);
        let props = BTreeMap::from([(property.to_string(), value.to_string())]);
        let mut data = self.sandbox.crm_data.lock().unwrap();
        assert!(data.update("line_items", id, props, at));
    }

    fn line_item_ids(&self, object: &str, id: u64) -> Vec<u64> {
        let data = self.sandbox.crm_data.lock().unwrap();
        let mut ids = data.associated(object, id, "line_items");
        ids.sort_by_key(|l| {
            data.get("line_items", *l).unwrap().properties["hs_position_on_quote"]
                .parse::<u32>()
                .unwrap()
        });
        ids
    }
}

#[tokio::test]
async fn quotes_reach_the_erp_with_their_lines_and_get_the_erp_number_back() {
    let w = world().await;
    let run = w.run(Endpoint::Quotes).await;
    assert_eq!(run.failed_writes, 0, "{run:?}");
    let quotes = w.crm_documents("quotes");
    let quotations = w.erp_documents("Quotations");
    assert_eq!(quotations.len(), quotes.len());
    let by_reference: HashMap<String, &Map<String, Value>> = quotations
        .iter()
        .map(|q| (q["NumAtCard"].as_str().unwrap().to_string(), q))
        .collect();
    assert_eq!(
        by_reference.len(),
        quotes.len(),
        "a quote was created twice"
    );
    for (id, (props, lines)) in &quotes {
        let doc = by_reference[&id.to_string()];
        assert_eq!(
            doc["CardCode"].as_str(),
            Some(props["erp_account_number"].as_str())
        );
        assert_eq!(&sap_lines(doc), lines, "lines of quote {id}");
        // The ERP's number came back in the same run.
        assert_eq!(
            props.get("erp_quote_number").map(String::as_str),
            Some(doc["DocEntry"].to_string().as_str()),
            "quote {id}"
        );
    }
    assert!(n(&run, Endpoint::Quotes, Outcome::Applied) > 0);
    w.assert_quiet(Endpoint::Quotes).await;
}

#[tokio::test]
async fn orders_and_invoices_reach_the_crm_with_lines_totals_and_links() {
    let w = world().await;
    for endpoint in [Endpoint::SalesOrders, Endpoint::Invoices] {
        let run = w.run(endpoint).await;
        assert_eq!(run.failed_writes, 0, "{endpoint}: {run:?}");
    }
    for (object, set, total) in [
        ("orders", "Orders", "hs_total_price"),
        ("invoices", "Invoices", "hs_amount_billed"),
    ] {
        let crm: HashMap<String, (BTreeMap<String, String>, Lines)> = w
            .crm_documents(object)
            .into_values()
            .map(|(props, lines)| (props["erp_number"].clone(), (props, lines)))
            .collect();
        let erp = w.erp_documents(set);
        assert_eq!(crm.len(), erp.len(), "{object}");
        for doc in &erp {
            let (props, lines) = &crm[&doc["DocEntry"].to_string()];
            assert_eq!(&sap_lines(doc), lines, "{object} {}", doc["DocEntry"]);
            let doc_total = format!("{:.2}", doc["DocTotal"].as_f64().unwrap());
            assert_eq!(props[total], doc_total);
            if set == "Invoices" {
                let base = doc["DocumentLines"][0]["BaseEntry"].to_string();
                assert_eq!(props["erp_based_on"], base, "invoice links its order");
            }
        }
    }
    w.assert_quiet(Endpoint::SalesOrders).await;
    w.assert_quiet(Endpoint::Invoices).await;
}

#[tokio::test]
async fn quote_line_edits_added_and_removed_lines_follow_the_crm() {
    let w = world().await;
    w.run(Endpoint::Quotes).await;
    // Pick a quote with at least two lines.
    let (quote, _) = w
        .crm_documents("quotes")
        .into_iter()
        .find(|(_, (_, lines))| lines.len() >= 2)
        .expect("a seeded quote with two lines");
    let lines = w.line_item_ids("quotes", quote);
    // Line items change without their quote changing: the incremental pull must still see them.
    w.edit_line_item(lines[0], "quantity", "9");
    let removed = *lines.last().unwrap();
    let at = w.later(1);
    {
        let mut data = w.sandbox.crm_data.lock().unwrap();
        assert!(data.archive("line_items", removed));
        let props = BTreeMap::from([
            ("hs_sku".to_string(), "I00001".to_string()),
            ("quantity".to_string(), "3".to_string()),
            ("price".to_string(), "10.00".to_string()),
            ("hs_position_on_quote".to_string(), "99".to_string()),
        ]);
        let added = data.insert("line_items", props, at);
        data.associate(("quotes", quote), ("line_items", added));
    }
    let run = w.run(Endpoint::Quotes).await;
    assert_eq!(run.failed_writes, 0, "{run:?}");
    let (_, crm_lines) = w.crm_documents("quotes").remove(&quote).unwrap();
    assert_eq!(crm_lines[0].1, "9");
    assert_eq!(crm_lines.last().unwrap().0, "I00001");
    let quotation = w
        .erp_documents("Quotations")
        .into_iter()
        .find(|q| q["NumAtCard"] == json!(quote.to_string()))
        .unwrap();
    assert_eq!(sap_lines(&quotation), crm_lines);
    w.assert_quiet(Endpoint::Quotes).await;
}

#[tokio::test]
async fn order_lines_follow_the_erp_and_crm_edits_are_undone() {
    let w = world().await;
    w.run(Endpoint::SalesOrders).await;
    let order = w.erp_documents("Orders").remove(0);
    let entry = order["DocEntry"].to_string();
    let (crm_id, _) = w
        .crm_documents("orders")
        .into_iter()
        .find(|(_, (p, _))| p["erp_number"] == entry)
        .unwrap();

    // The ERP changes a quantity: the CRM line and the order total follow.
    let at = w.later(1);
    let patch = json!({"DocumentLines": [{"LineNum": 0, "Quantity": 11}]});
    assert!(w.sandbox.erp_data.lock().unwrap().update(
        "Orders",
        &entry,
        patch.as_object().unwrap().clone(),
        at
    ));
    let run = w.run(Endpoint::SalesOrders).await;
    assert!(
        n(&run, Endpoint::SalesOrders, Outcome::Applied) >= 2,
        "{run:?}"
    );
    let order = w
        .erp_documents("Orders")
        .into_iter()
        .find(|o| o["DocEntry"] == json!(entry.parse::<u64>().unwrap()))
        .unwrap();
    let (props, lines) = w.crm_documents("orders").remove(&crm_id).unwrap();
    assert_eq!(lines, sap_lines(&order));
    assert_eq!(lines[0].1, "11");
    assert_eq!(
        props["hs_total_price"],
        format!("{:.2}", order["DocTotal"].as_f64().unwrap())
    );

    // The ERP closes the order: its status follows near real time.
    let at = w.later(1);
    let closed = json!({"DocumentStatus": "bost_Close"});
    assert!(w.sandbox.erp_data.lock().unwrap().update(
        "Orders",
        &entry,
        closed.as_object().unwrap().clone(),
        at
    ));
    w.run(Endpoint::SalesOrders).await;
    let (props, _) = w.crm_documents("orders").remove(&crm_id).unwrap();
    assert_eq!(props["erp_order_status"], "closed");

    // A sales rep edits a unit price in the CRM: refused, recorded, and the ERP's price restored.
    let first_line = w.line_item_ids("orders", crm_id)[0];
    w.edit_line_item(first_line, "price", "0.01");
    let run = w.run(Endpoint::SalesOrders).await;
    assert_eq!(n(&run, Endpoint::SalesOrders, Outcome::SkippedNotOwner), 1);
    let (_, lines) = w.crm_documents("orders").remove(&crm_id).unwrap();
    assert_eq!(lines, sap_lines(&order));
    w.assert_quiet(Endpoint::SalesOrders).await;
}

#[tokio::test]
async fn a_quote_create_whose_answer_was_lost_is_not_made_twice() {
    let w = world().await;
    w.sandbox.erp.faults.set(FaultConfig {
        lose_write_answers: 3,
        ..Default::default()
    });
    let run = w.run(Endpoint::Quotes).await;
    assert_eq!(run.failed_writes, 0, "{run:?}");
    assert_eq!(n(&run, Endpoint::Quotes, Outcome::Failed), 0);
    let quotations = w.erp_documents("Quotations");
    let mut references: Vec<&str> = quotations
        .iter()
        .map(|q| q["NumAtCard"].as_str().unwrap())
        .collect();
    references.sort();
    references.dedup();
    assert_eq!(
        references.len(),
        quotations.len(),
        "a quotation exists twice"
    );
    assert_eq!(quotations.len(), w.crm_documents("quotes").len());
    w.assert_quiet(Endpoint::Quotes).await;
}

/// A first run creates the CRM's quotes in the ERP several at once, each once, with the ERP's
/// number back in the CRM. One at a time, the scale-out bench's first quotes run at 5x (5,000
/// quotes, two round trips each, behind the other endpoints' reads) did not end in ten minutes.
/// SQLite, and PostgreSQL when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotes_are_created_in_the_erp_several_at_once() {
    let test = "documents::quotes_are_created_in_the_erp_several_at_once";
    for db in TestDb::all(test).await {
        let w = world_on(db, syncwarden::sync::rules::default_endpoints()).await;
        // Slow answers, so that writes sent together are seen together.
        w.sandbox.erp.faults.set(FaultConfig {
            latency_ms: 20,
            ..Default::default()
        });
        let run = w.run(Endpoint::Quotes).await;
        assert_eq!(run.failed_writes, 0, "{run:?}");
        let quotes = w.crm_documents("quotes");
        assert!(quotes.len() > 2, "too few quotes to test");
        assert!(
            w.sandbox.erp.faults.peak_writes_in_flight() > 1,
            "the quotes were created one at a time"
        );
        let quotations = w.erp_documents("Quotations");
        let mut references: Vec<&str> = quotations
            .iter()
            .map(|q| q["NumAtCard"].as_str().unwrap())
            .collect();
        references.sort();
        references.dedup();
        assert_eq!(references.len(), quotes.len(), "each quote made once");
        assert_eq!(quotations.len(), quotes.len());
        for (id, (props, _)) in &quotes {
            assert!(props.contains_key("erp_quote_number"), "quote {id}");
        }
        w.sandbox.erp.faults.set(FaultConfig::default());
        w.assert_quiet(Endpoint::Quotes).await;
        w.store.close().await;
        w.db.cleanup().await;
    }
}

#[tokio::test]
async fn failed_quote_creates_are_dead_lettered_and_redriven() {
    let w = world().await;
    w.sandbox.erp.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let run = w.run(Endpoint::Quotes).await;
    let quotes = w.crm_documents("quotes").len();
    assert_eq!(run.failed_writes, quotes);
    assert!(n(&run, Endpoint::Quotes, Outcome::Failed) > 0);
    assert_eq!(n(&run, Endpoint::Quotes, Outcome::Applied), 0);
    assert!(w.erp_documents("Quotations").is_empty());
    assert_eq!(w.store.open_dead_letters().await.unwrap().len(), quotes);

    w.sandbox.erp.faults.set(FaultConfig::default());
    let redrive = w.engine.retry_failed(Some(Endpoint::Quotes)).await.unwrap();
    assert_eq!((redrive.succeeded, redrive.still_failing), (quotes, 0));
    assert_eq!(w.erp_documents("Quotations").len(), quotes);
    // The next run settles what the re-drive could not: the ERP numbers go back to the CRM.
    w.later(1);
    let run = w.run(Endpoint::Quotes).await;
    assert_eq!(run.failed_writes, 0);
    assert!(
        w.crm_documents("quotes")
            .values()
            .all(|(p, _)| p.contains_key("erp_quote_number"))
    );
    w.assert_quiet(Endpoint::Quotes).await;
}

#[tokio::test]
async fn a_dry_run_of_documents_records_what_would_change_and_writes_nothing() {
    let w = world().await;
    for endpoint in [Endpoint::Quotes, Endpoint::SalesOrders] {
        let run = w.engine.run_endpoint(endpoint, true).await.unwrap();
        assert!(n(&run, endpoint, Outcome::DryRun) > 0, "{endpoint}");
        assert_eq!(n(&run, endpoint, Outcome::Applied), 0);
        assert_eq!(run.records_written, 0);
    }
    assert!(w.erp_documents("Quotations").is_empty());
    assert!(w.crm_documents("orders").is_empty());
    assert!(
        w.crm_documents("quotes")
            .values()
            .all(|(p, _)| !p.contains_key("erp_quote_number"))
    );
}

#[tokio::test]
async fn an_order_page_the_server_dropped_is_caught_by_reconciliation() {
    let w = world().await;
    // The CRM's order list silently skips its first page while the sync reads the ERP in full:
    // the sync cannot see the loss, reconciliation must.
    w.run(Endpoint::SalesOrders).await;
    w.sandbox.crm.faults.set(FaultConfig {
        drop_page: Some(1),
        ..Default::default()
    });
    let check = w.engine.reconcile(Endpoint::SalesOrders).await.unwrap();
    assert!(check.missing > 0, "{check:?}");
    w.sandbox.crm.faults.set(FaultConfig::default());
    assert_eq!(
        w.engine
            .reconcile(Endpoint::SalesOrders)
            .await
            .unwrap()
            .differences(),
        0
    );
}

#[tokio::test]
async fn documents_sync_through_session_expiry_rate_limits_and_errors() {
    let w = world().await;
    w.sandbox.erp.faults.set(FaultConfig {
        expire_sessions: true,
        error_rate: 0.2,
        ..Default::default()
    });
    w.sandbox.crm.faults.set(FaultConfig {
        burst_429: 3,
        retry_after_secs: 0,
        error_rate: 0.2,
        ..Default::default()
    });
    let mut failed_calls = 0;
    for _ in 0..4 {
        for endpoint in [Endpoint::Quotes, Endpoint::SalesOrders, Endpoint::Invoices] {
            // A run may fail as a whole when a read keeps failing; the next one picks it up.
            if let Ok(run) = w.engine.run_endpoint(endpoint, false).await {
                failed_calls += run.api_calls_failed;
            }
        }
        w.engine.retry_failed(None).await.unwrap();
        w.later(1);
    }
    w.sandbox.erp.faults.set(FaultConfig::default());
    w.sandbox.crm.faults.set(FaultConfig::default());
    for endpoint in [Endpoint::Quotes, Endpoint::SalesOrders, Endpoint::Invoices] {
        w.run(endpoint).await;
        w.later(1);
        w.assert_quiet(endpoint).await;
    }
    // Nothing was made twice on either side, whatever was retried.
    let quotations = w.erp_documents("Quotations");
    assert_eq!(quotations.len(), w.crm_documents("quotes").len());
    assert_eq!(
        w.crm_documents("orders").len(),
        w.erp_documents("Orders").len()
    );
    assert!(failed_calls > 0, "the faults were not exercised");
}

#[tokio::test]
async fn absurd_values_are_rejected_with_a_recorded_error_and_never_synced() {
    let w = world().await;
    let at = w.later(1);
    let entries: Vec<String> = {
        let mut erp = w.sandbox.erp_data.lock().unwrap();
        let negative = json!({"CardCode": "C00001", "DocDate": "2026-11-23", "DocCurrency": "EUR",
            "DocumentLines": [{"ItemCode": "I00001", "Quantity": -5, "UnitPrice": 10.0}]});
        let currency = json!({"CardCode": "C00002", "DocDate": "2026-11-23", "DocCurrency": "EURO",
            "DocumentLines": [{"ItemCode": "I00001", "Quantity": 1, "UnitPrice": 10.0}]});
        [negative, currency]
            .into_iter()
            .map(|d| {
                erp.put("Orders", d.as_object().unwrap().clone(), at)
                    .unwrap()
            })
            .collect()
    };
    let huge_name = "A".repeat(20_000);
    w.sandbox.crm_data.lock().unwrap().insert(
        "companies",
        BTreeMap::from([
            ("name".to_string(), huge_name.clone()),
            ("erp_number".to_string(), "C99999".to_string()),
        ]),
        at,
    );

    let orders = w.run(Endpoint::SalesOrders).await;
    assert_eq!(orders.rejected, 2, "{orders:?}");
    assert_eq!(n(&orders, Endpoint::SalesOrders, Outcome::Failed), 2);
    let in_crm: Vec<String> = w
        .crm_documents("orders")
        .into_values()
        .map(|(p, _)| p["erp_number"].clone())
        .collect();
    assert!(
        entries.iter().all(|e| !in_crm.contains(e)),
        "a bad order reached the CRM"
    );
    assert_eq!(in_crm.len(), w.erp_documents("Orders").len() - 2);

    let accounts = w.run(Endpoint::Accounts).await;
    assert!(accounts.rejected >= 1, "{accounts:?}");
    let made = w
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .get("BusinessPartners", "C99999")
        .is_some();
    assert!(!made, "an oversized record reached the ERP");
    let errors: Vec<String> = crate::helpers::all_events(w.store.as_ref())
        .await
        .into_iter()
        .filter(|e| e.event.outcome == Outcome::Failed)
        .filter_map(|e| e.event.error)
        .collect();
    for needle in ["negative quantity", "EURO", "20000 characters"] {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error names {needle}: {errors:?}"
        );
    }
}
