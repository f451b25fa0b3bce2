//! The admin API on the real app (random port) over a sandbox-synced store: tokens and roles,
//! conflicts, the audit trail and its CSV, endpoint switches, dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use syncwarden::api::auth::{hash_token, new_token};
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Role, System};
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{Sandbox, SeedScale};
use syncwarden::startup::Application;
use syncwarden::store::Store;
use syncwarden::sync::engine::{Engine, SyncError};
use syncwarden::sync::rules::{ConflictPolicy, FieldRule, default_endpoints};
use syncwarden::sync::service;

use crate::helpers::TestDb;

/// The app over a sandbox-synced store, with a token per role (also used by the OpenAPI and
/// browser tests).
pub(crate) struct Admin {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<Engine>,
    sandbox: Sandbox,
    pub(crate) clock: Clock,
    pub(crate) tokens: BTreeMap<Role, String>,
    _db: TestDb,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn admin_app() -> Admin {
    admin_app_with(|_| {}).await
}

pub(crate) async fn admin_app_with(tweak: impl FnOnce(&mut syncwarden::config::Settings)) -> Admin {
    let clock = Clock::system();
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let db = TestDb::sqlite();
    let store = db.open().await;
    let mut settings = db.settings();
    sandbox.configure(&mut settings);
    // Street conflicts are held for a person.
    let mut rules = default_endpoints();
    rules.get_mut(&Endpoint::Accounts).unwrap().fields.insert(
        "billing_street".into(),
        FieldRule {
            owner: System::Erp,
            conflict: ConflictPolicy::Manual,
        },
    );
    settings.sync.endpoints = rules;
    tweak(&mut settings);
    let engine = Arc::new(service::engine(&settings, store.clone(), clock.clone()).unwrap());
    let app = Application::with_store(
        &settings,
        clock.clone(),
        store.clone(),
        Some(engine.clone()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let mut tokens = BTreeMap::new();
    for role in [Role::Viewer, Role::Approver, Role::Admin] {
        let token = new_token();
        store
            .create_token(role.as_str(), role, &hash_token(&token), clock.now(), None)
            .await
            .unwrap();
        tokens.insert(role, token);
    }
    Admin {
        base,
        client: reqwest::Client::new(),
        store,
        engine,
        sandbox,
        clock,
        tokens,
        _db: db,
        stop: Some(tx),
    }
}

impl Admin {
    async fn call(
        &self,
        role: Option<Role>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = match method {
            "POST" => self.client.post(url),
            "PUT" => self.client.put(url),
            _ => self.client.get(url),
        };
        if let Some(role) = role {
            request = request.bearer_auth(&self.tokens[&role]);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The HubSpot id and ERP key of the CRM company with the lowest ERP key.
    fn first_keyed_company(&self) -> (u64, String) {
        let data = self.sandbox.crm_data.lock().unwrap();
        let c = data
            .all("companies")
            .into_iter()
            .filter(|o| o.properties.contains_key("erp_number"))
            .min_by_key(|o| o.properties["erp_number"].clone())
            .unwrap();
        (c.id, c.properties["erp_number"].clone())
    }

    /// A CRM user's edit of one company property, a moment after the last sync.
    async fn edit_company(&self, id: u64, property: &str, value: &str) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let at = self.clock.now();
        let props = BTreeMap::from([(property.to_string(), value.to_string())]);
        assert!(
            self.sandbox
                .crm_data
                .lock()
                .unwrap()
                .update("companies", id, props, at)
        );
    }

    /// A held conflict on one company's street; returns its ERP key.
    pub(crate) async fn conflict(&self) -> String {
        self.engine
            .run_endpoint(Endpoint::Accounts, false)
            .await
            .unwrap();
        let (id, code) = self.first_keyed_company();
        self.edit_company(id, "address", "1 Crm Road").await;
        let patch = json!({"BPAddresses": [{"AddressName": "Bill To", "AddressType": "bo_BillTo", "Street": "2 Erp Road"}]});
        self.sandbox.erp_data.lock().unwrap().update(
            "BusinessPartners",
            &code,
            patch.as_object().unwrap().clone(),
            self.clock.now(),
        );
        let run = self
            .engine
            .run_endpoint(Endpoint::Accounts, false)
            .await
            .unwrap();
        assert_eq!(run.conflicts, 1);
        code
    }
}

#[tokio::test]
async fn every_route_needs_a_valid_token_of_the_right_role() {
    let app = admin_app().await;
    let (status, body) = app.call(None, "GET", "/v1/conflicts", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let wrong = app
        .client
        .get(format!("{}/v1/runs", app.base))
        .bearer_auth("sw_not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    // Revoked and expired tokens are refused too.
    let now = app.clock.now();
    for (name, expires) in [
        ("revoked", None),
        ("expired", Some(now - Duration::from_secs(1))),
    ] {
        let token = new_token();
        let id = app
            .store
            .create_token(name, Role::Admin, &hash_token(&token), now, expires)
            .await
            .unwrap();
        if name == "revoked" {
            assert!(app.store.revoke_token(id, now).await.unwrap());
        }
        let r = app
            .client
            .get(format!("{}/v1/runs", app.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{name}");
    }
    let (status, _) = app.call(Some(Role::Viewer), "GET", "/v1/runs", None).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .call(
            Some(Role::Viewer),
            "POST",
            "/v1/endpoints/items/pause",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            "/v1/endpoints/items/pause",
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn an_approver_settles_a_conflict_and_the_audit_trail_shows_who() {
    let app = admin_app().await;
    let code = app.conflict().await;
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/conflicts", None)
        .await;
    let conflicts = body["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    let id = conflicts[0]["id"].as_i64().unwrap();
    let path = format!("/v1/conflicts/{id}/resolve");
    let (status, _) = app
        .call(
            Some(Role::Viewer),
            "POST",
            &path,
            Some(json!({"choice": "crm"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &path,
            Some(json!({"choice": "sideways"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &path,
            Some(json!({"choice": "value", "value": "3 Agreed Way"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &path,
            Some(json!({"choice": "crm"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let street = app
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .get("BusinessPartners", &code)
        .unwrap()["BPAddresses"][0]["Street"]
        .clone();
    assert_eq!(street, "3 Agreed Way");

    let path = format!("/v1/audit/events?record_id={code}&field=billing_street");
    let (status, body) = app.call(Some(Role::Viewer), "GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    let resolved: Vec<&Value> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "conflict_resolved")
        .collect();
    assert_eq!(resolved.len(), 2, "both sides were written: {body}");
    assert!(resolved.iter().all(|e| {
        e["error"]
            .as_str()
            .unwrap()
            .contains("resolved by approver")
    }));
}

#[tokio::test]
async fn the_audit_trail_pages_filters_refuses_typos_and_exports_csv() {
    let app = admin_app().await;
    app.engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut path = "/v1/audit/events?endpoint=items&limit=7".to_string();
    loop {
        let (status, body) = app.call(Some(Role::Viewer), "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().unwrap().clone();
        assert!(events.len() <= 7);
        assert!(events.iter().all(|e| e["endpoint"] == "items"));
        seen.extend(events.iter().map(|e| e["id"].as_i64().unwrap()));
        match body["next"].as_i64() {
            Some(next) => path = format!("/v1/audit/events?endpoint=items&limit=7&after={next}"),
            None => break,
        }
    }
    assert!(seen.len() > 7, "more than one page");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "pages follow each other without repeats");

    let (status, body) = app
        .call(
            Some(Role::Viewer),
            "GET",
            "/v1/audit/events?endpont=items",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("query")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Some(Role::Viewer),
            "GET",
            "/v1/audit/events?from=yesterday",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("from")),
        "{body}"
    );

    let csv = app
        .client
        .get(format!("{}/v1/audit/events.csv?endpoint=items", app.base))
        .bearer_auth(&app.tokens[&Role::Viewer])
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("id,occurred_at,recorded_at,endpoint,"));
    assert_eq!(text.lines().count(), seen.len() + 1);
}

#[tokio::test]
async fn admins_pause_endpoints_and_redrive_failed_writes() {
    let app = admin_app().await;
    let (status, body) = app
        .call(Some(Role::Admin), "POST", "/v1/endpoints/items/pause", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["control"]["changed_by"], "admin");
    let paused = app.engine.run_endpoint(Endpoint::Items, false).await;
    assert!(
        matches!(paused, Err(SyncError::Paused(Endpoint::Items))),
        "{paused:?}"
    );
    let (status, body) = app
        .call(
            Some(Role::Admin),
            "POST",
            "/v1/endpoints/items/sideways",
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("switch"))
    );
    app.call(
        Some(Role::Admin),
        "POST",
        "/v1/endpoints/items/resume",
        None,
    )
    .await;

    // Writes to the CRM fail for a while: they wait in the dead-letter list, then are re-driven.
    app.sandbox.crm.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let run = app
        .engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    assert!(run.failed_writes > 0);
    let (_, body) = app
        .call(
            Some(Role::Viewer),
            "GET",
            "/v1/dead-letters?endpoint=items",
            None,
        )
        .await;
    assert_eq!(
        body["dead_letters"].as_array().unwrap().len(),
        run.failed_writes
    );
    app.sandbox.crm.faults.set(FaultConfig::default());
    let (status, _) = app
        .call(
            Some(Role::Approver),
            "POST",
            "/v1/dead-letters/redrive",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            Some(Role::Admin),
            "POST",
            "/v1/dead-letters/redrive?endpoint=items",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redrive"]["succeeded"], run.failed_writes);
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/dead-letters", None)
        .await;
    assert!(body["dead_letters"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn token_create_prints_only_the_token_which_then_works() {
    let db = TestDb::sqlite();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["token", "create", "--role", "approver", "--name", "ana"])
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1);
    let token = stdout.trim();
    assert!(token.starts_with("sw_") && token.len() > 60);
    let store = db.open().await;
    let found = store
        .token_by_hash(&hash_token(token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.name.as_str(), found.role), ("ana", Role::Approver));
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["token", "list"])
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(token),
        "a token is never listed"
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["token", "create", "--role", "owner", "--name", "x"])
        .env("SYNCWARDEN_DATABASE__URL", &db.url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("viewer, approver or admin"));
    store.close().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_show_the_stores_state() {
    let app = admin_app().await;
    app.engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    for _ in 0..3 {
        app.call(Some(Role::Viewer), "GET", "/v1/conflicts/7/resolve", None)
            .await;
        app.call(Some(Role::Viewer), "GET", "/v1/runs", None).await;
    }
    let (status, _) = app.call(None, "GET", "/metrics", None).await;
    assert_eq!(status, 401);
    let (status, body) = app.call(Some(Role::Viewer), "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(
        text.contains(
            r#"syncwarden_http_requests_total{route="/v1/runs",method="GET",status="200"} 3"#
        ),
        "{text}"
    );
    let events = app.store.count_events().await.unwrap();
    assert!(events > 0);
    assert!(
        text.contains(&format!("syncwarden_events_total {events}\n")),
        "{text}"
    );
    assert!(text.contains("syncwarden_conflicts_open 0\n"));
    assert!(text.contains("syncwarden_findings{state=\"open\"} 0\n"));
}

#[tokio::test]
async fn people_acknowledge_findings_silence_alerts_and_decide_merges() {
    use syncwarden::domain::{MergeField, NewDedupProposal};
    use syncwarden::monitor::{NewFinding, Severity};

    let app = admin_app().await;
    let now = app.clock.now();
    let finding = app
        .store
        .upsert_finding(&NewFinding {
            kind: "freshness".into(),
            severity: Severity::Warning,
            fingerprint: "freshness:items:crm".into(),
            title: "items have not moved for 40 minutes".into(),
            evidence: json!({"usual_gap_minutes": 5}),
            started_at: now,
            detected_at: now,
        })
        .await
        .unwrap();
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/findings?state=open", None)
        .await;
    assert_eq!(body["findings"].as_array().unwrap().len(), 1);
    let (status, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/findings?state=sleepy", None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("state"))
    );
    let ack = format!("/v1/findings/{}/acknowledge", finding.id);
    assert_eq!(
        app.call(Some(Role::Viewer), "POST", &ack, None).await.0,
        403
    );
    let (status, body) = app.call(Some(Role::Approver), "POST", &ack, None).await;
    assert_eq!(
        (status, body["finding"]["state"].as_str()),
        (200, Some("acknowledged")),
        "{body}"
    );
    let resolve = format!("/v1/findings/{}/resolve", finding.id);
    let (status, body) = app.call(Some(Role::Approver), "POST", &resolve, None).await;
    assert_eq!(
        (status, body["finding"]["state"].as_str()),
        (200, Some("resolved")),
        "{body}"
    );
    assert_eq!(
        app.call(Some(Role::Approver), "POST", &resolve, None)
            .await
            .0,
        404
    );

    // Silences: matchers, an end and a comment; the author is the token's holder.
    let ends = (now + Duration::from_secs(3600)).to_string();
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            "/v1/silences",
            Some(json!({"matchers": ["type=freshness"], "ends_at": ends, "comment": "ERP maintenance"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["silence"]["author"], "approver");
    for (bad, field) in [
        (
            json!({"matchers": [], "ends_at": ends, "comment": "x"}),
            "matchers",
        ),
        (
            json!({"matchers": ["type=freshness"], "ends_at": ends, "comment": " "}),
            "comment",
        ),
        (
            json!({"matchers": ["type=freshness"], "ends_at": "soon", "comment": "x"}),
            "ends_at",
        ),
        (
            json!({"matchers": ["type=freshness"], "comment": "x"}),
            "ends_at",
        ),
    ] {
        let (status, body) = app
            .call(Some(Role::Approver), "POST", "/v1/silences", Some(bad))
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/silences", None)
        .await;
    assert_eq!(body["silences"].as_array().unwrap().len(), 1);

    // Merge proposals: approve one, reject one with a reason.
    let proposal = |a: &str, b: &str| NewDedupProposal {
        endpoint: Endpoint::Accounts,
        members: vec![a.into(), b.into()],
        survivor: a.into(),
        fields: vec![MergeField {
            field: "name".into(),
            value: "Acme GmbH".into(),
            from: a.into(),
            why: "owner_system".into(),
        }],
        before: BTreeMap::new(),
        min_probability: 0.97,
        created_at: now,
    };
    app.store
        .save_dedup_proposals(&[proposal("C1", "C2"), proposal("C3", "C4")])
        .await
        .unwrap();
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/actions?state=open", None)
        .await;
    let ids: Vec<i64> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &format!("/v1/actions/{}/approve", ids[0]),
            None,
        )
        .await;
    // With the connectors here the merge job runs at once: the approved action is applied.
    assert_eq!(
        (status, body["action"]["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    let reject = format!("/v1/actions/{}/reject", ids[1]);
    let (status, body) = app
        .call(Some(Role::Approver), "POST", &reject, Some(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("reason")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &reject,
            Some(json!({"reason": "two different plants"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["action"].to_string().contains("two different plants"),
        "{body}"
    );
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/actions?state=open", None)
        .await;
    assert!(body["actions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_admin_changes_who_owns_a_field_and_the_next_run_follows_it() {
    let app = admin_app().await;
    app.engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let (status, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/policies", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"]["accounts"]["fields"]["phone"]["owner"], "crm");
    assert!(body["history"].as_array().unwrap().is_empty());

    // From now on the ERP owns the phone number.
    let mut accounts = body["rules"]["accounts"].clone();
    accounts["fields"]["phone"] = json!({"owner": "erp", "conflict": "owner_wins"});
    let (status, _) = app
        .call(
            Some(Role::Approver),
            "PUT",
            "/v1/policies/accounts",
            Some(accounts.clone()),
        )
        .await;
    assert_eq!(status, 403);
    let mut typo = accounts.clone();
    typo["fields"]["phone"] = json!({"owner": "erp", "conflikt": "owner_wins"});
    let (status, body) = app
        .call(
            Some(Role::Admin),
            "PUT",
            "/v1/policies/accounts",
            Some(typo),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["field"].as_str().unwrap().contains("phone"),
        "{body}"
    );
    let (status, body) = app
        .call(
            Some(Role::Admin),
            "PUT",
            "/v1/policies/accounts",
            Some(accounts),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A CRM phone edit is now refused and the ERP's phone put back.
    let (id, code) = app.first_keyed_company();
    app.edit_company(id, "phone", "+1 555 0000").await;
    let run = app
        .engine
        .run_endpoint(Endpoint::Accounts, false)
        .await
        .unwrap();
    let skipped = run.events[&Endpoint::Accounts][&syncwarden::domain::Outcome::SkippedNotOwner];
    assert_eq!(skipped, 1, "{run:?}");
    let erp_phone = app
        .sandbox
        .erp_data
        .lock()
        .unwrap()
        .get("BusinessPartners", &code)
        .unwrap()["Phone1"]
        .clone();
    assert_ne!(erp_phone, "+1 555 0000");
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/policies", None)
        .await;
    let history = body["history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0]["endpoint"].as_str(),
            history[0]["changed_by"].as_str()
        ),
        (Some("accounts"), Some("admin"))
    );
}

#[tokio::test]
async fn each_token_is_rate_limited_and_bodies_are_bounded() {
    let app = admin_app_with(|s| {
        s.server.requests_per_minute = 5;
        s.server.admin_body_limit_bytes = 1024;
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            app.call(Some(Role::Viewer), "GET", "/v1/runs", None)
                .await
                .0,
            200
        );
    }
    let limited = app
        .client
        .get(format!("{}/v1/runs", app.base))
        .bearer_auth(&app.tokens[&Role::Viewer])
        .send()
        .await
        .unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another token has its own allowance.
    assert_eq!(
        app.call(Some(Role::Admin), "GET", "/v1/runs", None).await.0,
        200
    );

    let huge = json!({"matchers": ["type=x"], "ends_at": "2030-01-01T00:00:00Z", "comment": "x".repeat(4096)});
    let (status, body) = app
        .call(Some(Role::Approver), "POST", "/v1/silences", Some(huge))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
}

#[tokio::test]
async fn a_request_past_its_deadline_is_answered_in_the_error_shape() {
    let app = admin_app_with(|s| s.server.request_timeout_secs = 1).await;
    app.sandbox.crm.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let run = app
        .engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    assert!(run.failed_writes > 0);
    // The CRM now answers, but slowly: re-driving every letter takes longer than a second.
    app.sandbox.crm.faults.set(FaultConfig {
        latency_ms: 1500,
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let (status, body) = app
        .call(Some(Role::Admin), "POST", "/v1/dead-letters/redrive", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("timeout")),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn metric_series_come_from_the_rollups_per_endpoint_and_target() {
    let app = admin_app().await;
    app.sandbox.crm.faults.set(FaultConfig {
        write_error_rate: 1.0,
        ..Default::default()
    });
    let run = app
        .engine
        .run_endpoint(Endpoint::Items, false)
        .await
        .unwrap();
    assert!(run.failed_writes > 0);
    // The live monitor's roll-up pass, which `serve` runs every minute.
    syncwarden::monitor::rollup::run_once(app.store.as_ref(), Clock::system().now())
        .await
        .unwrap();
    let (status, body) = app
        .call(
            Some(Role::Viewer),
            "GET",
            "/v1/metrics/series?endpoint=items&resolution=minute",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let series = body["series"].as_array().unwrap();
    let to_crm = series
        .iter()
        .find(|s| s["endpoint"] == "items" && s["target"] == "crm")
        .unwrap_or_else(|| panic!("no items -> crm series: {body}"));
    let points = to_crm["points"].as_array().unwrap();
    let failures: u64 = points.iter().map(|p| p["failures"].as_u64().unwrap()).sum();
    let attempts: u64 = points.iter().map(|p| p["attempts"].as_u64().unwrap()).sum();
    assert!(
        failures > 0 && failures == attempts,
        "every write failed: {to_crm}"
    );
    assert!(points.iter().any(|p| p["success_rate"] == json!(0.0)));
    let calls: u64 = points
        .iter()
        .map(|p| p["api_calls_attempted"].as_u64().unwrap())
        .sum();
    let ok: u64 = points
        .iter()
        .map(|p| p["api_calls_succeeded"].as_u64().unwrap())
        .sum();
    assert!(
        calls > ok && ok > 0,
        "reads succeed, writes fail, per call: {to_crm}"
    );
    for (query, field) in [
        ("resolution=fortnight", "resolution"),
        ("from=2020-01-01T00:00:00Z&to=2021-01-01T00:00:00Z", "from"),
        ("from=2026-11-28T10:00:00Z&to=2026-11-28T09:00:00Z", "from"),
    ] {
        let (status, body) = app
            .call(
                Some(Role::Viewer),
                "GET",
                &format!("/v1/metrics/series?{query}"),
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some(field)),
            "{query}: {body}"
        );
    }
}
