//! The admin API on the real app (random port) over a sandbox-synced store: tokens and roles,
//! conflicts, the audit trail and its CSV, endpoint switches, dead letters.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use syncwarden::api::auth::hash_token;
use syncwarden::clock::Clock;
use syncwarden::domain::{Endpoint, Role};
use syncwarden::sandbox::faults::FaultConfig;
use syncwarden::sandbox::{Sandbox, SeedScale};
use syncwarden::store::Store;
use syncwarden::sync::engine::{Engine, SyncError};
use syncwarden::sync::service;

use crate::helpers::{Serving, TestDb, hold_conflicts, issue_token, role_tokens};

/// The app over a sandbox-synced store, with a token per role (also used by the OpenAPI and
/// browser tests).
pub(crate) struct Admin {
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) sandbox: Sandbox,
    pub(crate) clock: Clock,
    pub(crate) tokens: BTreeMap<Role, String>,
    _serving: Serving,
    _db: TestDb,
}

async fn admin_app() -> Admin {
    admin_app_with(|_| {}).await
}

pub(crate) async fn admin_app_with(tweak: impl FnOnce(&mut syncwarden::config::Settings)) -> Admin {
    admin_app_on(TestDb::sqlite(), tweak).await
}

/// The app on the database `db` (see `Admin::cleanup`).
pub(crate) async fn admin_app_on(
    db: TestDb,
    tweak: impl FnOnce(&mut syncwarden::config::Settings),
) -> Admin {
    let clock = Clock::system();
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let store = db.open().await;
    let mut settings = db.settings();
    sandbox.configure(&mut settings);
    // Street conflicts are held for a person.
    hold_conflicts(&mut settings, Endpoint::Accounts, "billing_street");
    tweak(&mut settings);
    let engine = Arc::new(service::engine(&settings, store.clone(), clock.clone()).unwrap());
    let serving = Serving::start(
        &settings,
        clock.clone(),
        store.clone(),
        Some(engine.clone()),
    )
    .await;
    let tokens = role_tokens(store.as_ref(), clock.now(), |role| {
        role.as_str().to_string()
    })
    .await;
    Admin {
        base: serving.base.clone(),
        client: reqwest::Client::new(),
        store,
        engine,
        sandbox,
        clock,
        tokens,
        _serving: serving,
        _db: db,
    }
}

impl Admin {
    /// Stops the app and drops its database (a scratch PostgreSQL database would stay).
    pub(crate) async fn cleanup(self) {
        drop(self._serving);
        self.store.close().await;
        self._db.cleanup().await;
    }

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
        let (id, token) = issue_token(app.store.as_ref(), name, Role::Admin, now, expires).await;
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
        (409, Some("already_resolved")),
        "{body}"
    );
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            &format!("/v1/conflicts/{}/resolve", id + 1000),
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
        match body["next"].as_str() {
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
    // Past that step it is a conflict naming the state; an unknown id is a 404 naming it.
    for path in [&resolve, &ack] {
        let (status, body) = app.call(Some(Role::Approver), "POST", path, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (409, Some("wrong_state")),
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("finding {} is resolved", finding.id)),
            "{message}"
        );
    }
    let (status, body) = app
        .call(
            Some(Role::Approver),
            "POST",
            "/v1/findings/999999/resolve",
            None,
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["error"]["message"].as_str()
        ),
        (404, Some("not_found"), Some("no finding 999999")),
        "{body}"
    );
    // One finding by id, whatever its state (the page an alert's link opens), for a viewer.
    let one = format!("/v1/findings/{}", finding.id);
    let (status, body) = app.call(Some(Role::Viewer), "GET", &one, None).await;
    assert_eq!(
        (status, body["finding"]["state"].as_str()),
        (200, Some("resolved")),
        "{body}"
    );
    assert_eq!(body["finding"]["evidence"]["usual_gap_minutes"], 5);
    assert_eq!(app.call(None, "GET", &one, None).await.0, 401);
    let (status, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/findings/999999", None)
        .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("no finding 999999")),
        "{body}"
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
    // Approved, the merge runs at once (these records are not in the CRM or the ERP: nothing
    // to send, the sync state only).
    assert_eq!(
        (status, body["action"]["status"].as_str()),
        (200, Some("applied")),
        "{body}"
    );
    let undo = format!("/v1/actions/{}/undo", ids[0]);
    assert_eq!(
        app.call(Some(Role::Viewer), "POST", &undo, None).await.0,
        403
    );
    let (status, body) = app.call(Some(Role::Approver), "POST", &undo, None).await;
    assert_eq!(
        (status, body["action"]["status"].as_str()),
        (200, Some("undone")),
        "{body}"
    );
    let (status, body) = app.call(Some(Role::Approver), "POST", &undo, None).await;
    assert_eq!(status, 409, "only an applied merge can be undone: {body}");
    let (_, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/actions?state=undone", None)
        .await;
    assert_eq!(body["actions"][0]["id"], ids[0], "{body}");
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

/// Every row of a list route, page by page from `path` (which has a `limit`), following `next`;
/// checks each page holds at most `limit` rows and returns the ids in the order served and the
/// number of pages.
async fn walk(
    app: &Admin,
    role: Role,
    path: &str,
    list: &str,
    limit: usize,
) -> (Vec<Value>, usize) {
    walk_from(app, role, path, list, limit, None).await
}

/// `walk`, from the page after `start`.
async fn walk_from(
    app: &Admin,
    role: Role,
    path: &str,
    list: &str,
    limit: usize,
    start: Option<String>,
) -> (Vec<Value>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut next = start;
    loop {
        let url = match &next {
            None => path.to_string(),
            Some(cursor) => format!("{path}&after={cursor}"),
        };
        let (status, body) = app.call(Some(role), "GET", &url, None).await;
        assert_eq!(status, 200, "{url}: {body}");
        let rows = body[list]
            .as_array()
            .unwrap_or_else(|| panic!("{url}: {body}"));
        assert!(rows.len() <= limit, "{url}: {} rows", rows.len());
        pages += 1;
        ids.extend(rows.iter().map(|r| r["id"].clone()));
        match &body["next"] {
            Value::Null => return (ids, pages),
            Value::String(cursor) => {
                assert!(!rows.is_empty(), "{url}: a next cursor after an empty page");
                next = Some(cursor.clone());
            }
            other => panic!("{url}: next is {other}"),
        }
    }
}

#[tokio::test]
async fn every_list_pages_through_each_row_once_in_order_with_filters_on_both_backends() {
    use syncwarden::alert::{Matcher, NewSilence};
    use syncwarden::domain::{
        Conflict, DeadLetter, NewDedupProposal, PolicyChange, RunStatus, SyncRun, SyncRunCounts,
        System, Timestamp,
    };
    use syncwarden::monitor::{NewFinding, Severity};
    use syncwarden::store::SyncCommit;

    for db in TestDb::all("api::every_list_pages_through_each_row_once").await {
        let app = admin_app_on(db, |_| {}).await;
        let store = app.store.clone();
        let backend = store.backend().as_str();
        let t0 = Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap();
        let at = |i: usize| t0 + Duration::from_secs(i as u64);
        let endpoint = |i: usize| {
            if i.is_multiple_of(3) {
                Endpoint::Contacts
            } else {
                Endpoint::Accounts
            }
        };
        const N: usize = 11;
        for i in 0..N {
            store
                .upsert_finding(&NewFinding {
                    kind: if i.is_multiple_of(3) {
                        "latency"
                    } else {
                        "freshness"
                    }
                    .into(),
                    severity: if i.is_multiple_of(2) {
                        Severity::Warning
                    } else {
                        Severity::Critical
                    },
                    fingerprint: format!("paging:{i}"),
                    title: format!("finding {i}"),
                    evidence: json!({}),
                    started_at: at(i),
                    detected_at: at(i),
                })
                .await
                .unwrap();
            store
                .save_dedup_proposals(&[NewDedupProposal {
                    endpoint: endpoint(i),
                    members: vec![format!("P{i}a"), format!("P{i}b")],
                    survivor: format!("P{i}a"),
                    fields: vec![],
                    before: BTreeMap::new(),
                    min_probability: 0.9,
                    created_at: at(i),
                }])
                .await
                .unwrap();
            store
                .add_silence(
                    &NewSilence {
                        matchers: vec![Matcher::parse(&format!("n={i}")).unwrap()],
                        starts_at: at(i),
                        ends_at: at(i + 3600),
                        author: "tester".into(),
                        comment: "paging".into(),
                    },
                    at(i),
                )
                .await
                .unwrap();
            // Runs in threes sharing a start, so ties are broken by the id.
            store
                .start_run(&SyncRun {
                    id: format!("r{i:02}"),
                    endpoint: Some(endpoint(i)),
                    started_at: at(i / 3),
                    ended_at: None,
                    status: RunStatus::Running,
                    counts: SyncRunCounts::default(),
                    error: None,
                })
                .await
                .unwrap();
            store
                .save_policy_change(&PolicyChange {
                    id: 0,
                    endpoint: endpoint(i),
                    settings: json!({}),
                    changed_at: at(i),
                    changed_by: "tester".into(),
                })
                .await
                .unwrap();
            issue_token(store.as_ref(), &format!("t{i}"), Role::Viewer, at(i), None).await;
        }
        store
            .commit_sync(
                &SyncCommit {
                    conflicts: (0..N)
                        .map(|i| Conflict {
                            id: 0,
                            endpoint: endpoint(i),
                            key: format!("K{i}"),
                            field: "name".into(),
                            base_value: None,
                            crm_value: Some("a".into()),
                            erp_value: Some("b".into()),
                            opened_at: at(i),
                            resolved_at: None,
                            resolution: None,
                        })
                        .collect(),
                    dead_letters: (0..N)
                        .map(|i| DeadLetter {
                            id: 0,
                            endpoint: endpoint(i),
                            target: System::Erp,
                            key: format!("K{i}"),
                            record_id: None,
                            fields: BTreeMap::new(),
                            error: "refused".into(),
                            attempts: 1,
                            created_at: at(i),
                            resolved_at: None,
                        })
                        .collect(),
                    ..Default::default()
                },
                at(N),
            )
            .await
            .unwrap();

        let ids = |values: Vec<i64>| values.into_iter().map(Value::from).collect::<Vec<_>>();
        let mut findings: Vec<_> = store.findings(None).await.unwrap();
        findings.sort_by_key(|f| std::cmp::Reverse(f.id));
        let latency: Vec<_> = findings.iter().filter(|f| f.kind == "latency").collect();
        let mut proposals = store.dedup_proposals(None, None).await.unwrap();
        proposals.sort_by_key(|p| p.id);
        let conflicts = store.open_conflicts().await.unwrap();
        let letters = store.open_dead_letters().await.unwrap();
        let silences = store.silences().await.unwrap();
        let tokens = store.tokens().await.unwrap();
        let changes = store.policy_changes().await.unwrap();
        let mut runs = store.recent_runs(1000).await.unwrap();
        runs.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
        let of = |e: Endpoint| move |x: &Endpoint| *x == e;
        let contacts = of(Endpoint::Contacts);

        let cases: Vec<(Role, &str, &str, Vec<Value>)> = vec![
            (
                Role::Viewer,
                "/v1/findings?limit=3",
                "findings",
                ids(findings.iter().map(|f| f.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/findings?kind=latency&severity=warning&state=open&limit=1",
                "findings",
                ids(latency
                    .iter()
                    .filter(|f| f.severity == Severity::Warning)
                    .map(|f| f.id)
                    .collect()),
            ),
            (
                Role::Viewer,
                "/v1/actions?limit=4",
                "actions",
                ids(proposals.iter().map(|p| p.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/actions?state=open&endpoint=contacts&limit=2",
                "actions",
                ids(proposals
                    .iter()
                    .filter(|p| contacts(&p.proposal.endpoint))
                    .map(|p| p.id)
                    .collect()),
            ),
            (
                Role::Viewer,
                "/v1/conflicts?limit=5",
                "conflicts",
                ids(conflicts.iter().map(|c| c.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/conflicts?endpoint=contacts&limit=2",
                "conflicts",
                ids(conflicts
                    .iter()
                    .filter(|c| contacts(&c.endpoint))
                    .map(|c| c.id)
                    .collect()),
            ),
            (
                Role::Viewer,
                "/v1/dead-letters?limit=3",
                "dead_letters",
                ids(letters.iter().map(|d| d.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/dead-letters?endpoint=contacts&limit=3",
                "dead_letters",
                ids(letters
                    .iter()
                    .filter(|d| contacts(&d.endpoint))
                    .map(|d| d.id)
                    .collect()),
            ),
            (
                Role::Viewer,
                "/v1/silences?limit=4",
                "silences",
                ids(silences.iter().map(|s| s.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/runs?limit=2",
                "runs",
                runs.iter().map(|r| Value::from(r.id.clone())).collect(),
            ),
            (
                Role::Viewer,
                "/v1/runs?endpoint=accounts&limit=3",
                "runs",
                runs.iter()
                    .filter(|r| r.endpoint == Some(Endpoint::Accounts))
                    .map(|r| Value::from(r.id.clone()))
                    .collect(),
            ),
            (
                Role::Admin,
                "/v1/tokens?limit=4",
                "tokens",
                ids(tokens.iter().map(|t| t.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/policies?limit=3",
                "history",
                ids(changes.iter().map(|c| c.id).collect()),
            ),
            (
                Role::Viewer,
                "/v1/policies?endpoint=contacts&limit=3",
                "history",
                ids(changes
                    .iter()
                    .filter(|c| contacts(&c.endpoint))
                    .map(|c| c.id)
                    .collect()),
            ),
        ];
        for (role, path, list, expected) in cases {
            let limit: usize = path.rsplit("limit=").next().unwrap().parse().unwrap();
            assert!(expected.len() > limit, "{path}: the data spans pages");
            let (served, pages) = walk(&app, role, path, list, limit).await;
            assert_eq!(served, expected, "{backend} {path}");
            assert_eq!(
                pages,
                expected.len().div_ceil(limit),
                "{backend} {path}: pages"
            );
        }
        // A whole list fits one page by default.
        let (_, body) = app
            .call(Some(Role::Viewer), "GET", "/v1/findings", None)
            .await;
        assert_eq!(body["findings"].as_array().unwrap().len(), N);
        assert_eq!(body["next"], Value::Null);
        // Rows added behind the walk do not shift it: a page already served stays served.
        let (_, first) = app
            .call(Some(Role::Viewer), "GET", "/v1/actions?limit=5", None)
            .await;
        store
            .save_dedup_proposals(&[NewDedupProposal {
                endpoint: Endpoint::Items,
                members: vec!["late-a".into(), "late-b".into()],
                survivor: "late-a".into(),
                fields: vec![],
                before: BTreeMap::new(),
                min_probability: 0.9,
                created_at: at(N),
            }])
            .await
            .unwrap();
        let cursor = first["next"].as_str().unwrap();
        let (rest, _) = walk_from(
            &app,
            Role::Viewer,
            "/v1/actions?limit=5",
            "actions",
            5,
            Some(cursor.to_string()),
        )
        .await;
        let mut all: Vec<Value> = first["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].clone())
            .collect();
        all.extend(rest);
        assert_eq!(
            all.len(),
            N + 1,
            "{backend}: every action once, the new one last"
        );
        app.cleanup().await;
    }
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_a_400_naming_it() {
    let app = admin_app().await;
    let routes = [
        "/v1/findings",
        "/v1/actions",
        "/v1/conflicts",
        "/v1/dead-letters",
        "/v1/silences",
        "/v1/runs",
        "/v1/tokens",
        "/v1/policies",
        "/v1/audit/events",
    ];
    for route in routes {
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=10001", "limit"),
            ("limit=ten", "limit"),
            ("limit=-3", "limit"),
            ("after=zzz", "after"),
            ("after=", "after"),
        ] {
            let path = format!("{route}?{query}");
            let (status, body) = app.call(Some(Role::Admin), "GET", &path, None).await;
            assert_eq!(
                (
                    status,
                    body["error"]["code"].as_str(),
                    body["error"]["field"].as_str()
                ),
                (400, Some("invalid_request"), Some(field)),
                "{path}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains(&query[query.find('=').unwrap() + 1..]),
                "{path}: {body}"
            );
        }
    }
    // The list routes stop at 1,000 a page; the audit trail at 10,000.
    for route in &routes[..8] {
        let (status, body) = app
            .call(
                Some(Role::Admin),
                "GET",
                &format!("{route}?limit=1001"),
                None,
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some("limit")),
            "{route}"
        );
        let (status, body) = app
            .call(
                Some(Role::Admin),
                "GET",
                &format!("{route}?limit=1000"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{route}: {body}");
    }
    let (status, _) = app
        .call(
            Some(Role::Viewer),
            "GET",
            "/v1/audit/events?limit=10000",
            None,
        )
        .await;
    assert_eq!(status, 200);
    // A run cursor is its start and id; a bare number is not one.
    let (status, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/runs?after=12", None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (400, Some("after")),
        "{body}"
    );
    // Paging does not need more than the route's own role; tokens are for admins.
    let (status, _) = app
        .call(Some(Role::Approver), "GET", "/v1/tokens", None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn me_names_the_token_and_its_role() {
    let app = admin_app().await;
    for (role, can) in [
        (Role::Viewer, json!(["read"])),
        (Role::Approver, json!(["read", "decide"])),
        (Role::Admin, json!(["read", "decide", "administer"])),
    ] {
        let (status, body) = app.call(Some(role), "GET", "/v1/me", None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"name": role.as_str(), "role": role.as_str(), "can": can})
        );
    }
    let (status, _) = app.call(None, "GET", "/v1/me", None).await;
    assert_eq!(status, 401);
    // The token list names each token and its role, never the token or its hash.
    let (status, body) = app.call(Some(Role::Admin), "GET", "/v1/tokens", None).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(&str, &str)> = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [
            ("viewer", "viewer"),
            ("approver", "approver"),
            ("admin", "admin")
        ]
    );
    let text = body.to_string();
    for token in app.tokens.values() {
        assert!(!text.contains(token.as_str()), "{text}");
        assert!(!text.contains(&hash_token(token)), "{text}");
    }
}

/// Who calls, the method, the path and the body; the status, the code and the field at fault.
type Refusal<'a> = (
    Role,
    &'a str,
    &'a str,
    Option<Value>,
    u16,
    &'a str,
    Option<&'a str>,
);

/// Every route's refusals beyond the token, one per route that had none, and the answers where
/// no route or no method matches: all in the one error shape, naming the field at fault.
#[tokio::test]
async fn each_route_refuses_bad_input_in_the_one_error_shape() {
    let app = admin_app().await;
    let blank_key = json!({"endpoint": "accounts", "key": " ", "reason": "asked"});
    let cases: [Refusal; 16] = [
        (
            Role::Viewer,
            "GET",
            "/v1/audit/events.csv?endpoint=nope",
            None,
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/actions.csv?state=sleepy",
            None,
            422,
            "invalid_request",
            Some("state"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/conflicts?endpoint=nope",
            None,
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/policies?endpoint=nope",
            None,
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/kpis?week=someday",
            None,
            422,
            "invalid_request",
            Some("week"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/actions/abc",
            None,
            422,
            "invalid_request",
            Some("id"),
        ),
        (
            Role::Viewer,
            "GET",
            "/v1/actions/999999",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Role::Approver,
            "POST",
            "/v1/actions/999999/approve",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Role::Approver,
            "POST",
            "/v1/actions/999999/reject",
            Some(json!({"reason": "no"})),
            404,
            "not_found",
            None,
        ),
        (
            Role::Approver,
            "POST",
            "/v1/actions/999999/undo",
            None,
            404,
            "not_found",
            None,
        ),
        (
            Role::Admin,
            "POST",
            "/v1/endpoints/items/nap",
            None,
            422,
            "invalid_request",
            Some("switch"),
        ),
        (
            Role::Admin,
            "POST",
            "/v1/endpoints/nowhere/pause",
            None,
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Admin,
            "POST",
            "/v1/dead-letters/redrive?endpoint=nope",
            None,
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Admin,
            "PUT",
            "/v1/policies/nowhere",
            Some(json!({})),
            422,
            "invalid_request",
            Some("endpoint"),
        ),
        (
            Role::Admin,
            "POST",
            "/v1/erasure",
            Some(blank_key),
            422,
            "invalid_request",
            Some("key"),
        ),
        (
            Role::Viewer,
            "GET",
            "/ui/nope.js",
            None,
            404,
            "not_found",
            None,
        ),
    ];
    for (role, method, path, body, status, code, field) in cases {
        let (got, answer) = app.call(Some(role), method, path, body).await;
        assert_eq!(
            (
                got,
                answer["error"]["code"].as_str(),
                answer["error"]["field"].as_str()
            ),
            (status, Some(code), field),
            "{method} {path}: {answer}"
        );
        assert!(
            answer["error"]["message"].is_string(),
            "{method} {path}: {answer}"
        );
    }
    // No route, and a route without that method: the same shape, the allowed methods in Allow.
    let (status, body) = app
        .call(Some(Role::Viewer), "GET", "/v1/nothing", None)
        .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (404, Some("no route for /v1/nothing"))
    );
    let response = app
        .client
        .delete(format!("{}/v1/findings", app.base))
        .bearer_auth(&app.tokens[&Role::Admin])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET,HEAD");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert_eq!(
        body["error"]["message"],
        "DELETE is not allowed on /v1/findings; the Allow header lists what is"
    );
}

/// A NUL character, which PostgreSQL text cannot hold, is refused on both backends alike with a
/// 422 naming where it is, never a database error.
#[tokio::test]
async fn a_nul_character_is_refused_naming_where_it_is_on_both_backends() {
    for db in TestDb::all("a_nul_character_is_refused").await {
        let app = admin_app_on(db, |_| {}).await;
        let ends = (app.clock.now() + Duration::from_secs(3600)).to_string();
        let silence = |matcher: &str, comment: &str| {
            Some(json!({"matchers": [matcher], "ends_at": ends, "comment": comment}))
        };
        let cases = [
            (
                "POST",
                "/v1/silences",
                silence("type=a", "a\u{0}b"),
                "comment",
            ),
            (
                "POST",
                "/v1/silences",
                silence("type=a\u{0}", "x"),
                "matchers[0]",
            ),
            (
                "POST",
                "/v1/erasure",
                Some(json!({"email": "a@b.c", "reason": "\u{0}"})),
                "reason",
            ),
            ("GET", "/v1/audit/events?field=a%00b", None, "field"),
        ];
        for (method, path, body, field) in cases {
            let (status, answer) = app.call(Some(Role::Admin), method, path, body).await;
            assert_eq!(
                (status, answer["error"]["field"].as_str()),
                (422, Some(field)),
                "{path}: {answer}"
            );
            assert!(
                answer["error"]["message"].as_str().unwrap().contains("NUL"),
                "{answer}"
            );
        }
        let (status, answer) = app
            .call(
                Some(Role::Admin),
                "POST",
                "/v1/silences",
                silence("type=a", "ok"),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        app.cleanup().await;
    }
}
