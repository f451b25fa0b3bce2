//! The connectors against the sandbox servers, which speak the HubSpot and SAP B1 wire formats.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Timestamp};
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{self, Sandbox, SeedScale};
use syncwarden::sync::connectors::hubspot::{HubSpotConnector, HubSpotSettings};
use syncwarden::sync::connectors::sap_b1::{SapB1Connector, SapB1Settings};
use syncwarden::sync::connectors::{Connector, ConnectorError, RetryPolicy};
use syncwarden::sync::record::{Fields, Record, Write};

fn start() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        timeout: Duration::from_secs(5),
    }
}

fn hubspot(sandbox: &Sandbox, token: &str) -> HubSpotConnector {
    let settings = HubSpotSettings {
        base_url: sandbox.crm.base_url(),
        token: token.to_string().into(),
        page_size: 7,
        price_properties: BTreeMap::from([("1".into(), "price".into())]),
        ..Default::default()
    };
    HubSpotConnector::new(settings, fast_retry()).unwrap()
}

fn sap(sandbox: &Sandbox) -> SapB1Connector {
    let settings = SapB1Settings {
        base_url: sandbox.erp.base_url(),
        company_db: sandbox::SAP_COMPANY_DB.into(),
        username: sandbox::SAP_USER.into(),
        password: sandbox::SAP_PASSWORD.to_string().into(),
        page_size: 7,
        ..Default::default()
    };
    SapB1Connector::new(settings, fast_retry()).unwrap()
}

async fn pull_all(
    c: &dyn Connector,
    endpoint: Endpoint,
    since: Option<Timestamp>,
) -> Result<Vec<Record>, ConnectorError> {
    let mut records = Vec::new();
    let mut page = None;
    loop {
        let p = c.pull(endpoint, since, page).await?;
        records.extend(p.records);
        match p.next {
            Some(next) => page = Some(next),
            None => return Ok(records),
        }
    }
}

fn fields(pairs: &[(&str, &str)]) -> Fields {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn hubspot_pages_searches_and_upserts() {
    let clock = Clock::manual(start());
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let crm = hubspot(&sandbox, sandbox::HUBSPOT_TOKEN);
    crm.check().await.unwrap();

    let seeded = sandbox.crm_data.lock().unwrap().all("companies").len();
    let all = pull_all(&crm, Endpoint::Accounts, None).await.unwrap();
    assert_eq!(all.len(), seeded);
    assert!(seeded > 7, "the seed must span several pages");
    let linked = all.iter().find(|r| r.key.is_some()).unwrap();
    assert!(linked.fields.contains_key("name") && linked.fields.contains_key("billing_city"));

    // Two companies change an hour later; an incremental pull from then sees exactly those,
    // including one whose change shares the boundary timestamp.
    clock.advance(Duration::from_secs(3600));
    let changed_at = clock.now();
    let ids: Vec<u64> = all.iter().take(2).map(|r| r.id.parse().unwrap()).collect();
    for id in &ids {
        let props = BTreeMap::from([("phone".to_string(), "+1 555 0100".to_string())]);
        sandbox
            .crm_data
            .lock()
            .unwrap()
            .update("companies", *id, props, changed_at);
    }
    let changed = pull_all(&crm, Endpoint::Accounts, Some(changed_at))
        .await
        .unwrap();
    let mut changed_ids: Vec<u64> = changed.iter().map(|r| r.id.parse().unwrap()).collect();
    changed_ids.sort();
    assert_eq!(changed_ids, ids);
    assert!(
        changed
            .iter()
            .all(|r| r.fields["phone"] == "+1 555 0100" && r.modified_at == changed_at)
    );

    // Upsert by the ERP key: creating twice updates instead of duplicating.
    let write = Write {
        id: None,
        key: "C99999".into(),
        fields: fields(&[("name", "Newco Ltd"), ("billing_city", "Leeds")]),
    };
    let first = crm
        .write(Endpoint::Accounts, std::slice::from_ref(&write))
        .await
        .unwrap();
    let again = crm
        .write(
            Endpoint::Accounts,
            &[Write {
                fields: fields(&[("name", "Newco Limited")]),
                ..write.clone()
            }],
        )
        .await
        .unwrap();
    assert_eq!(first[0].as_ref().unwrap(), again[0].as_ref().unwrap());
    assert_eq!(
        pull_all(&crm, Endpoint::Accounts, None)
            .await
            .unwrap()
            .len(),
        seeded + 1
    );
    let id: u64 = first[0].clone().unwrap().parse().unwrap();
    let stored = sandbox
        .crm_data
        .lock()
        .unwrap()
        .get("companies", id)
        .cloned()
        .unwrap();
    assert_eq!(stored.properties["name"], "Newco Limited");
    assert_eq!(stored.properties["city"], "Leeds");
    assert_eq!(stored.properties["erp_number"], "C99999");
}

#[tokio::test]
async fn hubspot_partial_batch_failure_rate_limits_and_errors() {
    let sandbox = Sandbox::start(Clock::manual(start()), &SeedScale::small())
        .await
        .unwrap();
    let crm = hubspot(&sandbox, sandbox::HUBSPOT_TOKEN);

    // 207: the record with an empty name fails alone, with HubSpot's category.
    let writes = vec![
        Write {
            id: None,
            key: "C90001".into(),
            fields: fields(&[("name", "Good One")]),
        },
        Write {
            id: None,
            key: "C90002".into(),
            fields: fields(&[("name", " ")]),
        },
        Write {
            id: None,
            key: "C90003".into(),
            fields: fields(&[("name", "Good Two")]),
        },
    ];
    let results = crm.write(Endpoint::Accounts, &writes).await.unwrap();
    assert!(results[0].is_ok() && results[2].is_ok());
    match &results[1] {
        Err(ConnectorError::Api {
            status: 207,
            code: Some(code),
            message,
            ..
        }) => {
            assert_eq!(code, "VALIDATION_ERROR");
            assert!(message.contains("name"));
        }
        other => panic!("unexpected {other:?}"),
    }

    // A burst of 429s is retried; every attempt is counted, the failures as failures.
    let before = crm.calls();
    sandbox.crm.faults.set(FaultConfig {
        burst_429: 2,
        ..Default::default()
    });
    pull_all(&crm, Endpoint::Accounts, None).await.unwrap();
    let after = crm.calls();
    assert_eq!(after.failed - before.failed, 2);

    // A server that keeps failing: the retries are bounded and the error comes back.
    sandbox.crm.faults.set(FaultConfig {
        error_rate: 1.0,
        ..Default::default()
    });
    let err = crm.pull(Endpoint::Accounts, None, None).await.unwrap_err();
    assert!(
        matches!(err, ConnectorError::Api { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(crm.calls().failed - after.failed, 4);

    // A malformed answer is an error, never an empty success.
    sandbox.crm.faults.set(FaultConfig {
        malformed_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        crm.pull(Endpoint::Accounts, None, None).await,
        Err(ConnectorError::Malformed { .. })
    ));
    sandbox.crm.faults.set(FaultConfig::default());

    let wrong = hubspot(&sandbox, "pat-wrong");
    match wrong.check().await {
        Err(ConnectorError::Api {
            status: 401,
            code: Some(code),
            correlation_id: Some(_),
            ..
        }) => {
            assert_eq!(code, "INVALID_AUTHENTICATION")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn sap_b1_pages_filters_writes_and_survives_session_expiry() {
    let clock = Clock::manual(start());
    let scale = SeedScale::small();
    let sandbox = Sandbox::start(clock.clone(), &scale).await.unwrap();
    let erp = sap(&sandbox);
    erp.check().await.unwrap();

    let all = pull_all(&erp, Endpoint::Accounts, None).await.unwrap();
    assert_eq!(all.len(), scale.accounts);
    let first = &all[0];
    assert_eq!(first.key.as_deref(), Some(first.id.as_str()));
    assert!(first.fields.contains_key("billing_postcode"));

    let items = pull_all(&erp, Endpoint::Items, None).await.unwrap();
    assert_eq!(items.len(), scale.items);
    let prices: Vec<_> = items[0]
        .fields
        .keys()
        .filter(|k| k.starts_with("price."))
        .collect();
    assert_eq!(prices.len(), scale.price_lists);
    assert!(
        items[0].fields["price.1"].contains('.'),
        "prices are decimal strings with cents"
    );

    // Sessions end (timeout, Service Layer restart): the connector logs in again by itself.
    sandbox.erp_data.lock().unwrap().expire_sessions();
    clock.advance(Duration::from_secs(90 * 60));
    let changed_at = clock.now();
    let code = all[3].id.clone();
    let patch = json!({"Phone1": "+49 40 1234567"})
        .as_object()
        .unwrap()
        .clone();
    sandbox
        .erp_data
        .lock()
        .unwrap()
        .update("BusinessPartners", &code, patch, changed_at);
    // The date filter matches the whole day; records before `since` that day are dropped client-side.
    let changed = pull_all(&erp, Endpoint::Accounts, Some(changed_at))
        .await
        .unwrap();
    assert_eq!(
        changed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [code.as_str()]
    );
    assert_eq!(changed[0].fields["phone"], "+49 40 1234567");

    // Update the billing address in place (not appended), and create a new partner.
    let update = Write {
        id: Some(code.clone()),
        key: code.clone(),
        fields: fields(&[("billing_city", "Bremen")]),
    };
    let create = Write {
        id: None,
        key: "C77777".into(),
        fields: fields(&[("name", "Fresh Partner GmbH")]),
    };
    let results = erp
        .write(Endpoint::Accounts, &[update, create])
        .await
        .unwrap();
    assert_eq!(results, vec![Ok(code.clone()), Ok("C77777".to_string())]);
    {
        let data = sandbox.erp_data.lock().unwrap();
        let bp = data.get("BusinessPartners", &code).unwrap();
        let addresses = bp["BPAddresses"].as_array().unwrap();
        assert_eq!(addresses.len(), 1);
        assert_eq!(addresses[0]["City"], "Bremen");
        assert_eq!(
            data.get("BusinessPartners", "C77777").unwrap()["CardType"],
            "cCustomer"
        );
    }

    // Creating an existing key is refused with SAP's error body.
    let dup = Write {
        id: None,
        key: "C77777".into(),
        fields: fields(&[("name", "Again")]),
    };
    match &erp.write(Endpoint::Accounts, &[dup]).await.unwrap()[0] {
        Err(ConnectorError::Api {
            status: 400,
            message,
            ..
        }) => assert!(message.contains("already exists")),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_dropped_page_loses_records_silently() {
    // No connector can notice a server that skips records; reconciliation has to.
    let sandbox = Sandbox::start(Clock::manual(start()), &SeedScale::small())
        .await
        .unwrap();
    let erp = sap(&sandbox);
    sandbox.erp.faults.set(FaultConfig {
        drop_page: Some(2),
        ..Default::default()
    });
    let seen = pull_all(&erp, Endpoint::Accounts, None).await.unwrap();
    assert_eq!(seen.len(), SeedScale::small().accounts - 7);
    assert_eq!(erp.calls().failed, 0);
}

#[tokio::test]
async fn faults_switch_at_run_time_over_http() {
    let sandbox = Sandbox::start(Clock::manual(start()), &SeedScale::small())
        .await
        .unwrap();
    let erp = sap(&sandbox);
    erp.check().await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/_sandbox/faults", sandbox.erp.base_url());
    let put = client
        .put(&url)
        .json(&json!({"expire_sessions": true, "shared_timestamp": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let bad = client
        .put(&url)
        .json(&json!({"eror_rate": 1}))
        .send()
        .await
        .unwrap();
    assert!(
        bad.status().is_client_error(),
        "unknown fault names are refused"
    );

    // Session expiry: the next call is refused with 401/301, the connector logs in again.
    let failed_before = erp.calls().failed;
    assert_eq!(
        pull_all(&erp, Endpoint::Accounts, None)
            .await
            .unwrap()
            .len(),
        SeedScale::small().accounts
    );
    assert_eq!(erp.calls().failed - failed_before, 1);
    let config: FaultConfig = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(!config.expire_sessions, "expiry is one-shot");

    // Shared timestamp: writes made at different moments all carry the first one's time.
    for (i, code) in ["C00001", "C00002", "C00003"].iter().enumerate() {
        let w = Write {
            id: Some(code.to_string()),
            key: code.to_string(),
            fields: fields(&[("phone", &format!("+1 {i}"))]),
        };
        erp.write(Endpoint::Accounts, &[w]).await.unwrap()[0]
            .clone()
            .unwrap();
    }
    let data = sandbox.erp_data.lock().unwrap();
    let stamps: Vec<_> = ["C00001", "C00002", "C00003"]
        .iter()
        .map(|c| {
            (
                data.get("BusinessPartners", c).unwrap()["UpdateDate"].clone(),
                data.get("BusinessPartners", c).unwrap()["UpdateTime"].clone(),
            )
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] == w[1]), "{stamps:?}");
}

#[tokio::test]
async fn a_skewed_crm_price_is_reported_as_such() {
    let sandbox = Sandbox::start(Clock::manual(start()), &SeedScale::small())
        .await
        .unwrap();
    let crm = hubspot(&sandbox, sandbox::HUBSPOT_TOKEN);
    let products = pull_all(&crm, Endpoint::Items, None).await.unwrap();
    let code = products.iter().find_map(|r| r.key.clone()).unwrap();
    let price = |records: &[Record]| -> f64 {
        records
            .iter()
            .find(|r| r.key.as_ref() == Some(&code))
            .unwrap()
            .fields["price.1"]
            .parse()
            .unwrap()
    };
    let honest = price(&products);
    sandbox.crm.faults.set(FaultConfig {
        skewed_prices: BTreeMap::from([(code.clone(), 150)]),
        ..Default::default()
    });
    let skewed = price(&pull_all(&crm, Endpoint::Items, None).await.unwrap());
    assert!((skewed - honest * 1.5).abs() < 0.01, "{honest} -> {skewed}");
}

#[tokio::test]
async fn sap_b1_local_times_and_named_addresses() {
    let clock = Clock::manual(start());
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    // A partner whose bill-to address is not called "Bill To".
    let partner = json!({"CardCode": "C88888", "CardName": "Named Address AG", "CardType": "cCustomer",
        "BPAddresses": [{"AddressName": "Head Office", "AddressType": "bo_BillTo", "City": "Basel"}]});
    sandbox.erp_data.lock().unwrap().put(
        "BusinessPartners",
        partner.as_object().unwrap().clone(),
        clock.now(),
    );
    let settings = SapB1Settings {
        base_url: sandbox.erp.base_url(),
        company_db: sandbox::SAP_COMPANY_DB.into(),
        username: sandbox::SAP_USER.into(),
        password: sandbox::SAP_PASSWORD.to_string().into(),
        utc_offset_minutes: 60,
        ..Default::default()
    };
    let erp = SapB1Connector::new(settings, fast_retry()).unwrap();
    let all = pull_all(&erp, Endpoint::Accounts, None).await.unwrap();
    let record = all.iter().find(|r| r.id == "C88888").unwrap();
    // The server's 08:00 local time is 07:00 UTC.
    assert_eq!(record.modified_at, start() - Duration::from_secs(3600));
    let write = Write {
        id: Some("C88888".into()),
        key: "C88888".into(),
        fields: fields(&[("billing_city", "Zug")]),
    };
    erp.write(Endpoint::Accounts, &[write]).await.unwrap()[0]
        .clone()
        .unwrap();
    let data = sandbox.erp_data.lock().unwrap();
    let addresses = data.get("BusinessPartners", "C88888").unwrap()["BPAddresses"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        addresses.len(),
        1,
        "updated in place, not appended: {addresses:?}"
    );
    assert_eq!(addresses[0]["City"], "Zug");
}

#[tokio::test]
async fn hubspot_oauth_tokens_are_fetched_and_refreshed() {
    let clock = Clock::manual(start());
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let settings = HubSpotSettings {
        base_url: sandbox.crm.base_url(),
        oauth_client_id: sandbox::HUBSPOT_CLIENT_ID.into(),
        oauth_client_secret: sandbox::HUBSPOT_CLIENT_SECRET.to_string().into(),
        oauth_refresh_token: sandbox::HUBSPOT_REFRESH_TOKEN.to_string().into(),
        ..Default::default()
    };
    let crm = HubSpotConnector::new(settings.clone(), fast_retry()).unwrap();
    crm.check().await.unwrap();
    crm.check().await.unwrap();
    assert_eq!(
        sandbox.crm_oauth.lock().unwrap().refreshes,
        1,
        "the token is reused while valid"
    );
    // The token expires on the server's clock: the refused call is refreshed and made again.
    clock.advance(Duration::from_secs(31 * 60));
    let records = pull_all(&crm, Endpoint::Accounts, None).await.unwrap();
    assert!(!records.is_empty());
    assert_eq!(sandbox.crm_oauth.lock().unwrap().refreshes, 2);

    let wrong = HubSpotConnector::new(
        HubSpotSettings {
            oauth_refresh_token: "revoked".to_string().into(),
            ..settings
        },
        fast_retry(),
    )
    .unwrap();
    match wrong.check().await {
        Err(ConnectorError::Api {
            status: 400,
            message,
            ..
        }) => assert!(message.contains("refresh token"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn hubspot_search_reads_past_its_ten_thousand_result_limit() {
    let clock = Clock::manual(start());
    let scale = SeedScale {
        accounts: 1,
        contacts_per_account: 0,
        duplicate_accounts: 0,
        duplicate_contacts: 0,
        items: 10_050,
        price_lists: 1,
        crm_overlap: 1.0,
        drifted_prices: 0,
        ..SeedScale::small()
    };
    let sandbox = Sandbox::start(clock.clone(), &scale).await.unwrap();
    let settings = HubSpotSettings {
        base_url: sandbox.crm.base_url(),
        token: sandbox::HUBSPOT_TOKEN.to_string().into(),
        page_size: 200,
        ..Default::default()
    };
    let crm = HubSpotConnector::new(settings, fast_retry()).unwrap();
    // More than 10,000 products seeded at one and the same instant: the read pages through
    // that instant by object id.
    let records = pull_all(&crm, Endpoint::Items, Some(start()))
        .await
        .unwrap();
    let keys: std::collections::HashSet<_> = records.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(keys.len(), 10_050, "every product of one instant is read");
    // More than 10,000 products changed since the cursor, each at its own instant.
    let ids: Vec<u64> = sandbox
        .crm_data
        .lock()
        .unwrap()
        .all("products")
        .iter()
        .map(|o| o.id)
        .collect();
    assert!(ids.len() > 10_000);
    for id in &ids {
        clock.advance(Duration::from_millis(2));
        let at = clock.now();
        sandbox.crm_data.lock().unwrap().update(
            "products",
            *id,
            BTreeMap::from([("description".to_string(), "changed".to_string())]),
            at,
        );
    }
    let records = pull_all(&crm, Endpoint::Items, Some(start()))
        .await
        .unwrap();
    let keys: std::collections::HashSet<_> = records.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(
        keys.len(),
        ids.len(),
        "every changed product is read, across query windows"
    );
}
