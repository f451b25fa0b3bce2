//! The real-engine tier: the Tryton connector and the sync engine against a real Tryton server.
//! Runs when SW_TEST_TRYTON_URL is set, e.g. http://admin:admin@127.0.0.1:8765/tryton (.ci/run
//! installs Tryton 8.2 from PyPI, initialises a database with a company and starts the server).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Outcome, Timestamp};
use syncwarden::sandbox::{self, Sandbox, SeedScale};
use syncwarden::sync::connectors::hubspot::{HubSpotConnector, HubSpotSettings};
use syncwarden::sync::connectors::tryton::{TrytonConnector, TrytonSettings};
use syncwarden::sync::connectors::{Connector, RetryPolicy};
use syncwarden::sync::engine::Engine;
use syncwarden::sync::record::{Record, Write};
use syncwarden::sync::rules::default_endpoints;

use crate::helpers::{TestDb, skip_notice};

const VAR: &str = "SW_TEST_TRYTON_URL";

/// `http://user:password@host:port/database` into connector settings.
fn settings(test: &str) -> Option<TrytonSettings> {
    let Ok(url) = std::env::var(VAR) else {
        skip_notice(test, VAR, "http://admin:admin@127.0.0.1:8765/tryton");
        return None;
    };
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (credentials, rest) = rest.split_once('@').expect("user:password@");
    let (username, password) = credentials.split_once(':').expect("user:password");
    let (host, database) = rest.split_once('/').expect("/database");
    Some(TrytonSettings {
        base_url: format!("{scheme}://{host}"),
        database: database.trim_end_matches('/').to_string(),
        username: username.into(),
        password: password.to_string().into(),
        page_size: 25,
        ..Default::default()
    })
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        timeout: Duration::from_secs(20),
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .to_uppercase()
}

async fn pull_all(c: &dyn Connector, endpoint: Endpoint, since: Option<Timestamp>) -> Vec<Record> {
    let mut records = Vec::new();
    let mut page = None;
    loop {
        let p = c.pull(endpoint, since, page).await.unwrap();
        assert!(
            p.rejected.is_empty() || endpoint == Endpoint::Accounts,
            "{:?}",
            p.rejected
        );
        records.extend(p.records);
        match p.next {
            Some(next) => page = Some(next),
            None => return records,
        }
    }
}

/// A raw JSON-RPC call, for setting up data the connector only reads.
async fn rpc(s: &TrytonSettings, method: &str, params: Value) -> Value {
    let url = format!("{}/{}/rpc/", s.base_url, s.database);
    let password = secrecy::ExposeSecret::expose_secret(&s.password).to_string();
    let answer: Value = reqwest::Client::new()
        .post(url)
        .basic_auth(&s.username, Some(password))
        .json(&json!({"id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("error").is_none(), "{method}: {answer}");
    answer["result"].clone()
}

#[tokio::test]
async fn parties_are_created_read_updated_and_pulled_incrementally() {
    let Some(s) = settings("tryton::parties_are_created_read_updated_and_pulled_incrementally")
    else {
        return;
    };
    let erp = TrytonConnector::new(s.clone(), retry()).unwrap();
    erp.check().await.unwrap();
    let code = unique("TP");
    let fields = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let create = Write {
        id: None,
        key: code.clone(),
        fields: fields(&[
            ("name", "Tryton Test GmbH"),
            ("phone", "+49 1"),
            ("billing_city", "Leipzig"),
        ]),
    };
    let id = erp.write(Endpoint::Accounts, &[create]).await.unwrap()[0]
        .clone()
        .unwrap();
    let find = |records: Vec<Record>| {
        records
            .into_iter()
            .find(|r| r.key.as_deref() == Some(code.as_str()))
    };
    let record =
        find(pull_all(&erp, Endpoint::Accounts, None).await).expect("created party is read back");
    assert_eq!(record.id, id);
    assert_eq!(
        (
            record.fields["name"].as_str(),
            record.fields["phone"].as_str(),
            record.fields["billing_city"].as_str()
        ),
        ("Tryton Test GmbH", "+49 1", "Leipzig")
    );

    let since = record.modified_at;
    let update = Write {
        id: Some(id.clone()),
        key: code.clone(),
        fields: fields(&[
            ("name", "Tryton Renamed GmbH"),
            ("billing_city", "Halle"),
            ("phone", "+49 2"),
        ]),
    };
    erp.write(Endpoint::Accounts, &[update]).await.unwrap()[0]
        .clone()
        .unwrap();
    let changed = find(pull_all(&erp, Endpoint::Accounts, Some(since)).await)
        .expect("the change is in the incremental pull");
    assert_eq!(
        (
            changed.fields["name"].as_str(),
            changed.fields["billing_city"].as_str(),
            changed.fields["phone"].as_str()
        ),
        ("Tryton Renamed GmbH", "Halle", "+49 2")
    );
    let party = rpc(
        &s,
        "model.party.party.read",
        json!([
            [id.parse::<i64>().unwrap()],
            ["addresses", "contact_mechanisms"],
            {}
        ]),
    )
    .await;
    assert_eq!(
        party[0]["addresses"].as_array().unwrap().len(),
        1,
        "the address is updated, not added"
    );
    assert_eq!(party[0]["contact_mechanisms"].as_array().unwrap().len(), 1);

    // A refused write comes back as an error naming Tryton's reason.
    let duplicate = Write {
        id: None,
        key: code.clone(),
        fields: fields(&[("name", "Same Code")]),
    };
    let err = erp.write(Endpoint::Accounts, &[duplicate]).await.unwrap()[0]
        .clone()
        .unwrap_err();
    assert!(err.to_string().to_lowercase().contains("unique"), "{err}");
}

#[tokio::test]
async fn products_are_read_with_their_list_price() {
    let Some(s) = settings("tryton::products_are_read_with_their_list_price") else {
        return;
    };
    let code = unique("TI");
    rpc(
        &s,
        "model.product.template.create",
        json!([[{
        "name": format!("Tryton Widget {code}"), "type": "goods", "default_uom": 1,
        "list_price": {"__class__": "Decimal", "decimal": "12.50"},
        "products": [["create", [{"suffix_code": code}]]]
    }], {"company": s.company}]),
    )
    .await;
    let product = rpc(
        &s,
        "model.product.product.search",
        json!([[["code", "=", code]], 0, null, null, {}]),
    )
    .await[0]
        .as_i64()
        .unwrap();
    // A price list with a fixed price for this product, and one computed line that is not copied.
    let list = rpc(
        &s,
        "model.product.price_list.create",
        json!([[{
        "name": format!("Wholesale {code}"), "price": "list_price",
        "lines": [["create", [{"product": product, "formula": "11.00", "sequence": 10},
                              {"formula": "unit_price * 0.9", "sequence": 20}]]]
    }], {"company": s.company}]),
    )
    .await[0]
        .as_i64()
        .unwrap();
    let erp = TrytonConnector::new(
        TrytonSettings {
            price_lists: vec![list],
            ..s
        },
        retry(),
    )
    .unwrap();
    assert!(
        erp.fields(Endpoint::Items)
            .unwrap()
            .contains(&format!("price.{list}"))
    );
    let items = pull_all(&erp, Endpoint::Items, None).await;
    let item = items
        .iter()
        .find(|r| r.key.as_deref() == Some(code.as_str()))
        .expect("product read");
    assert_eq!(item.fields[&format!("price.{list}")], "11.00");
    if list != 1 {
        assert_eq!(item.fields["price.1"], "12.50", "the template's list price");
    }
    assert_eq!(item.fields["name"], format!("Tryton Widget {code}"));
    let with_that_list = items
        .iter()
        .filter(|r| r.fields.contains_key(&format!("price.{list}")))
        .count();
    assert_eq!(with_that_list, 1, "the computed line gives no copied price");
}

/// An engine between the sandbox CRM and this Tryton, syncing `endpoint` only.
fn engine_for(
    s: &TrytonSettings,
    sandbox: &Sandbox,
    store: Arc<dyn syncwarden::store::Store>,
    endpoint: Endpoint,
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
    let erp = TrytonConnector::new(s.clone(), retry()).unwrap();
    let mut rules = default_endpoints();
    rules.retain(|e, _| *e == endpoint);
    Engine::new(store, Arc::new(crm), Arc::new(erp), rules, Clock::system())
}

#[tokio::test]
async fn accounts_sync_between_the_sandbox_crm_and_real_tryton() {
    let Some(s) = settings("tryton::accounts_sync_between_the_sandbox_crm_and_real_tryton") else {
        return;
    };
    let scale = SeedScale {
        account_prefix: unique("T"),
        accounts: 12,
        items: 1,
        ..SeedScale::small()
    };
    let sandbox = Sandbox::start(Clock::system(), &scale).await.unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let engine = engine_for(&s, &sandbox, store.clone(), Endpoint::Accounts);

    // The CRM's keyed companies do not exist in this Tryton yet: they are created there.
    let first = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    assert_eq!(first.failed_writes, 0, "{first:?}");
    // (Parties Tryton already had go the other way, into the CRM; this compares the test's own.)
    let keyed: BTreeMap<String, String> = {
        let data = sandbox.crm_data.lock().unwrap();
        data.all("companies")
            .iter()
            .filter_map(|o| {
                Some((
                    o.properties.get("erp_number")?.clone(),
                    o.properties["name"].clone(),
                ))
            })
            .filter(|(code, _)| code.starts_with(&scale.account_prefix))
            .collect()
    };
    assert!(!keyed.is_empty());
    let parties = rpc(
        &s,
        "model.party.party.search_read",
        json!([
            [["code", "like", format!("{}%", scale.account_prefix)]],
            0,
            null,
            null,
            ["code", "name"],
            {}
        ]),
    )
    .await;
    let in_tryton: BTreeMap<String, String> = parties
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(in_tryton, keyed);
    assert!(first.events[&Endpoint::Accounts][&Outcome::Applied] > 0);

    // An ERP rename (the ERP owns names) reaches the CRM; then all is quiet.
    let (code, _) = in_tryton.iter().next().unwrap();
    let id = parties
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["code"] == code.as_str())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    rpc(
        &s,
        "model.party.party.write",
        json!([[id], {"name": "Renamed In Tryton"}, {}]),
    )
    .await;
    engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let renamed = sandbox
        .crm_data
        .lock()
        .unwrap()
        .all("companies")
        .iter()
        .any(|o| {
            o.properties.get("erp_number") == Some(code)
                && o.properties["name"] == "Renamed In Tryton"
        });
    assert!(renamed);
    let quiet = engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    // Other tests add parties to the same Tryton meanwhile; this test's own records are quiet.
    let ours = store
        .query_events(&syncwarden::store::EventQuery {
            run_id: Some(quiet.run_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| {
            e.event
                .erp_id
                .as_deref()
                .is_some_and(|k| k.starts_with(&scale.account_prefix))
        })
        .count();
    assert_eq!(ours, 0, "{quiet:?}");
}

/// A contact party's e-mail and phone mechanisms in Tryton, by type.
async fn mechanisms(s: &TrytonSettings, party: &Value) -> BTreeMap<String, (i64, String)> {
    let ids = party["contact_mechanisms"].clone();
    let found = rpc(
        s,
        "model.party.contact_mechanism.read",
        json!([ids, ["type", "value"], {}]),
    )
    .await;
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_string(),
                (
                    m["id"].as_i64().unwrap(),
                    m["value"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn contacts_sync_between_the_sandbox_crm_and_real_tryton() {
    let Some(s) = settings("tryton::contacts_sync_between_the_sandbox_crm_and_real_tryton") else {
        return;
    };
    let scale = SeedScale {
        account_prefix: unique("K"),
        accounts: 4,
        contacts_per_account: 2,
        crm_overlap: 1.0,
        items: 1,
        ..SeedScale::small()
    };
    let sandbox = Sandbox::start(Clock::system(), &scale).await.unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let engine = engine_for(&s, &sandbox, store.clone(), Endpoint::Contacts);
    let ours = |props: &BTreeMap<String, String>| {
        props
            .get("erp_number")
            .is_some_and(|k| k.starts_with(&scale.account_prefix))
    };
    let crm_contacts = || -> BTreeMap<String, (u64, BTreeMap<String, String>)> {
        let data = sandbox.crm_data.lock().unwrap();
        data.all("contacts")
            .iter()
            .filter(|o| ours(&o.properties))
            .map(|o| {
                (
                    o.properties["erp_number"].clone(),
                    (o.id, o.properties.clone()),
                )
            })
            .collect()
    };
    let tryton_contacts = || async {
        let found = rpc(
            &s,
            "model.party.party.search_read",
            json!([
                [["code", "like", format!("{}%/%", scale.account_prefix)]],
                0,
                null,
                null,
                ["code", "name", "contact_mechanisms"],
                {}
            ]),
        )
        .await;
        let mut by_code = BTreeMap::new();
        for party in found.as_array().unwrap() {
            let mechanisms = mechanisms(&s, party).await;
            by_code.insert(
                party["code"].as_str().unwrap().to_string(),
                (
                    party["id"].as_i64().unwrap(),
                    party["name"].as_str().unwrap().to_string(),
                    mechanisms,
                ),
            );
        }
        by_code
    };

    // The CRM's keyed contacts become contact parties in Tryton, name, e-mail and phone.
    let first = engine
        .run_endpoint(Endpoint::Contacts, false)
        .await
        .unwrap();
    assert_eq!(first.failed_writes, 0, "{first:?}");
    let crm = crm_contacts();
    let tryton = tryton_contacts().await;
    assert!(!crm.is_empty());
    assert_eq!(
        crm.keys().collect::<Vec<_>>(),
        tryton.keys().collect::<Vec<_>>()
    );
    for (key, (_, props)) in &crm {
        let (_, name, mechanisms) = &tryton[key];
        assert_eq!(
            name,
            &format!("{} {}", props["firstname"], props["lastname"])
        );
        assert_eq!(mechanisms["email"].1, props["email"]);
        assert_eq!(mechanisms["phone"].1, props["phone"]);
    }

    // A CRM e-mail change reaches Tryton; a Tryton phone change is refused (the CRM owns contact
    // details) and the CRM's phone is put back.
    let (key, (id, props)) = crm.iter().next().unwrap();
    let at = sandbox
        .crm_data
        .lock()
        .unwrap()
        .get("contacts", *id)
        .unwrap()
        .updated_at;
    sandbox.crm_data.lock().unwrap().update(
        "contacts",
        *id,
        BTreeMap::from([("email".to_string(), "moved@example.org".to_string())]),
        at + Duration::from_secs(1),
    );
    let (party, _, mechanisms) = &tryton[key];
    rpc(
        &s,
        "model.party.contact_mechanism.write",
        json!([[mechanisms["phone"].0], {"value": "+1 000 0000"}, {}]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = engine
        .run_endpoint(Endpoint::Contacts, false)
        .await
        .unwrap();
    assert_eq!(second.failed_writes, 0, "{second:?}");
    assert_eq!(
        second.events[&Endpoint::Contacts][&Outcome::SkippedNotOwner],
        1
    );
    let (_, _, after) = &tryton_contacts().await[key];
    assert_eq!(after["email"].1, "moved@example.org");
    assert_eq!(after["phone"].1, props["phone"], "party {party}");
}
