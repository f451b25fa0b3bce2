//! Security and operations: the secret vault, TLS, personal-data masking per role, GDPR erasure on
//! every read path, and the `/metrics` counters.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use syncwarden::alert::{Alert, AlertStatus, NewNotification, NotificationLogEntry};
use syncwarden::clock::Clock;
use syncwarden::config::Settings;
use syncwarden::domain::{
    Conflict, DeadLetter, Endpoint, MergeField, MergeKind, NewDedupProposal, NewFieldEvent,
    Outcome, RecordState, Role, System, Timestamp,
};
use syncwarden::monitor::{NewFinding, Severity};
use syncwarden::startup::Application;
use syncwarden::store::{Store, SyncCommit};
use syncwarden::vault::{MasterKey, Vault, VaultError};

use crate::helpers::{Serving, TestDb, role_tokens};

/// The app on `db` with `settings`, one token per role, stopped when dropped.
struct App {
    base: String,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    tokens: BTreeMap<Role, String>,
    _serving: Serving,
}

async fn start(db: &TestDb, tweak: impl FnOnce(&mut Settings)) -> App {
    let mut settings = db.settings();
    tweak(&mut settings);
    let store = db.open().await;
    let clock = Clock::system();
    let serving = Serving::start(&settings, clock.clone(), store.clone(), None).await;
    let tokens = role_tokens(store.as_ref(), clock.now(), |role| {
        format!("{}-ana", role.as_str())
    })
    .await;
    App {
        base: serving.base.clone(),
        client: reqwest::Client::new(),
        store,
        tokens,
        _serving: serving,
    }
}

impl App {
    async fn get(&self, role: Role, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.tokens[&role])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get_json(&self, role: Role, path: &str) -> Value {
        let (status, body) = self.get(role, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn post(&self, role: Role, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.tokens[&role])
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

fn at(minute: u64) -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T09:00:00Z").unwrap()
        + std::time::Duration::from_secs(60 * minute)
}

/// A contact field change, CRM -> ERP.
fn contact_event(
    n: u64,
    erp_id: &str,
    crm_id: &str,
    field: &str,
    old: &str,
    new: &str,
) -> NewFieldEvent {
    NewFieldEvent {
        idempotency_key: format!("sec-{n}"),
        run_id: Some("run-1".into()),
        endpoint: Endpoint::Contacts,
        crm_id: Some(crm_id.into()),
        erp_id: Some(erp_id.into()),
        field: field.into(),
        old_value: Some(json!(old).to_string()),
        new_value: Some(json!(new).to_string()),
        source_system: System::Crm,
        target_system: System::Erp,
        outcome: Outcome::Applied,
        error: None,
        latency_ms: Some(12),
        occurred_at: at(n),
    }
}

fn price_event(n: u64) -> NewFieldEvent {
    NewFieldEvent {
        endpoint: Endpoint::Items,
        crm_id: Some("p-1".into()),
        erp_id: Some("A100".into()),
        field: "price.1".into(),
        old_value: Some("\"9.90\"".into()),
        new_value: Some("\"10.50\"".into()),
        source_system: System::Erp,
        target_system: System::Crm,
        ..contact_event(n, "A100", "p-1", "price.1", "", "")
    }
}

/// Two contacts (Ana, to be erased, and Bo) with events, states, a conflict and a dead letter.
async fn seed_people(store: &dyn Store) {
    let ana = [
        ("first_name", "Anna", "Ana"),
        ("last_name", "Silva", "Silva-Lopes"),
        ("email", "ana.old@example.com", "Ana.Silva@example.com"),
        ("phone", "+351 111", "+351 222"),
        ("owner", "7", "8"),
    ];
    let mut events: Vec<NewFieldEvent> = ana
        .iter()
        .enumerate()
        .map(|(n, (f, o, v))| contact_event(n as u64, "C0001/1", "101", f, o, v))
        .collect();
    events.push(contact_event(
        10,
        "C0002/1",
        "102",
        "email",
        "",
        "bo@example.com",
    ));
    events.push(contact_event(11, "C0002/1", "102", "first_name", "", "Bo"));
    events.push(price_event(12));
    let fields = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };
    let state = |key: &str, crm: &str, f: BTreeMap<String, String>| RecordState {
        endpoint: Endpoint::Contacts,
        key: key.into(),
        crm_id: Some(crm.into()),
        erp_id: Some(key.into()),
        fields: f,
        synced_at: at(20),
    };
    let commit = SyncCommit {
        events,
        states: vec![
            state(
                "C0001/1",
                "101",
                fields(&[
                    ("first_name", "Ana"),
                    ("email", "ana.silva@example.com"),
                    ("owner", "8"),
                ]),
            ),
            state(
                "C0002/1",
                "102",
                fields(&[("first_name", "Bo"), ("email", "bo@example.com")]),
            ),
        ],
        conflicts: vec![Conflict {
            id: 0,
            endpoint: Endpoint::Contacts,
            key: "C0001/1".into(),
            field: "phone".into(),
            base_value: Some("+351 222".into()),
            crm_value: Some("+351 333".into()),
            erp_value: Some("+351 444".into()),
            opened_at: at(21),
            resolved_at: None,
            resolution: None,
        }],
        dead_letters: vec![DeadLetter {
            id: 0,
            endpoint: Endpoint::Contacts,
            target: System::Erp,
            key: "C0001/1".into(),
            record_id: Some("C0001/1".into()),
            fields: fields(&[("last_name", "Silva-Lopes"), ("owner", "8")]),
            error: "503".into(),
            attempts: 5,
            created_at: at(22),
            resolved_at: None,
        }],
        ..Default::default()
    };
    store.commit_sync(&commit, at(30)).await.unwrap();
}

/// Ana's personal values (her last names are in her e-mail addresses too).
const ANA: [&str; 4] = ["Anna", "Silva", "ana.old", "+351"];

fn assert_no_ana(what: &str, text: &str) {
    let lower = text.to_lowercase();
    for value in ANA {
        assert!(
            !lower.contains(&value.to_lowercase()),
            "{what} still holds {value}: {text}"
        );
    }
}

#[tokio::test]
async fn viewers_see_personal_fields_masked_in_json_and_csv_admins_do_not() {
    let db = TestDb::sqlite();
    let app = start(&db, |_| {}).await;
    seed_people(app.store.as_ref()).await;

    let viewer = app
        .get_json(Role::Viewer, "/v1/audit/events?record_id=C0001/1")
        .await;
    let events = viewer["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    for e in events {
        let expected = if e["field"] == "owner" {
            "\"8\""
        } else {
            "\"[masked]\""
        };
        assert_eq!(e["new_value"], expected, "{e}");
    }
    let (_, csv) = app.get(Role::Viewer, "/v1/audit/events.csv").await;
    assert!(csv.contains("[masked]"), "{csv}");
    assert!(
        !csv.contains("Silva") && !csv.contains("bo@example.com"),
        "{csv}"
    );
    assert!(csv.contains("10.50"), "prices are not personal: {csv}");
    let conflicts = app.get_json(Role::Viewer, "/v1/conflicts").await;
    assert_eq!(conflicts["conflicts"][0]["crm_value"], "[masked]");
    let letters = app.get_json(Role::Viewer, "/v1/dead-letters").await;
    assert_eq!(
        letters["dead_letters"][0]["fields"]["last_name"],
        "[masked]"
    );
    assert_eq!(letters["dead_letters"][0]["fields"]["owner"], "8");

    for role in [Role::Approver, Role::Admin] {
        let (_, csv) = app.get(role, "/v1/audit/events.csv").await;
        assert!(
            csv.contains("Silva-Lopes") && !csv.contains("[masked]"),
            "{csv}"
        );
        let json = app.get_json(role, "/v1/conflicts").await;
        assert_eq!(json["conflicts"][0]["crm_value"], "+351 333");
    }
    drop(app);

    // Which roles see personal data is configuration.
    let app = start(&db, |s| {
        s.privacy.reveal_to = vec![Role::Admin];
        s.privacy
            .personal_fields
            .insert(Endpoint::Items, vec!["price.1".into()]);
    })
    .await;
    let (_, csv) = app.get(Role::Approver, "/v1/audit/events.csv").await;
    assert!(!csv.contains("Silva") && !csv.contains("10.50"), "{csv}");
    let (_, csv) = app.get(Role::Admin, "/v1/audit/events.csv").await;
    assert!(csv.contains("Silva") && csv.contains("10.50"), "{csv}");
}

fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What the deduper keeps of Ana: a merge of her record with a copy only the CRM holds, approved,
/// with its job's plan (before-images, the values it writes), and a proposal of Bo's that stays.
/// Returns the id of Ana's proposal.
async fn seed_merge(store: &dyn Store) -> i64 {
    let ana = fields(&[
        ("first_name", "Anna"),
        ("email", "ana.silva@example.com"),
        ("owner", "8"),
    ]);
    let copy = fields(&[
        ("first_name", "Ana"),
        ("last_name", "Silva"),
        ("email", "ana.silva@example.com"),
        ("phone", "+351 555"),
        ("owner", "8"),
    ]);
    let choice = |field: &str, value: &str, from: &str| MergeField {
        field: field.into(),
        value: value.into(),
        from: from.into(),
        why: "most_complete".into(),
    };
    let proposals = [
        NewDedupProposal {
            endpoint: Endpoint::Contacts,
            members: vec!["C0001/1".into(), "crm:555".into()],
            survivor: "C0001/1".into(),
            fields: vec![
                choice("first_name", "Ana", "crm:555"),
                choice("last_name", "Silva", "crm:555"),
                choice("email", "ana.silva@example.com", "C0001/1"),
                choice("owner", "8", "C0001/1"),
            ],
            before: BTreeMap::from([("C0001/1".into(), ana.clone()), ("crm:555".into(), copy)]),
            min_probability: 0.97,
            created_at: at(40),
        },
        NewDedupProposal {
            endpoint: Endpoint::Contacts,
            members: vec!["C0002/1".into(), "crm:777".into()],
            survivor: "C0002/1".into(),
            fields: vec![choice("email", "bo@example.com", "C0002/1")],
            before: BTreeMap::from([
                ("C0002/1".into(), fields(&[("email", "bo@example.com")])),
                (
                    "crm:777".into(),
                    fields(&[("email", "bo@example.com"), ("last_name", "Silva")]),
                ),
            ]),
            min_probability: 0.95,
            created_at: at(40),
        },
    ];
    assert_eq!(store.save_dedup_proposals(&proposals).await.unwrap(), 2);
    let id = store.dedup_proposals(None, None).await.unwrap()[0].id;
    let state = RecordState {
        endpoint: Endpoint::Contacts,
        key: "C0001/1".into(),
        crm_id: Some("101".into()),
        erp_id: Some("C0001/1".into()),
        fields: ana,
        synced_at: at(20),
    };
    // The shape of the deduper's merge plan (steps, before and after states).
    let plan = json!({
        "endpoint": "contacts",
        "steps": [
            {"op": "merge", "survivor": "101", "loser": "555"},
            {"op": "write", "system": "crm", "id": "101", "key": "C0001/1",
             "fields": {"first_name": "Ana", "last_name": "Silva"},
             "old": {"first_name": "Anna", "last_name": ""}},
        ],
        "before": [state],
        "after": [],
        "dropped": [],
        "relink": {},
    });
    store
        .enqueue_merge_job(id, MergeKind::Merge, &plan, "approver-ana", at(41))
        .await
        .unwrap();
    id
}

/// A finding, its alert and a notification about Ana, in the words alerting uses.
async fn seed_alerting(store: &dyn Store) {
    store
        .upsert_finding(&NewFinding {
            kind: "reconciliation_drift".into(),
            severity: Severity::Warning,
            fingerprint: "reconciliation_drift:contacts".into(),
            title: "contacts: 1 field different".into(),
            evidence: json!({
                "endpoint": "contacts",
                "examples": [{"record": "C0001/1", "field": "email",
                              "crm_value": "ana.silva@example.com", "erp_value": "ana.old@example.com"}],
                "contact": {"first_name": "Anna", "last_name": "Silva", "owner": "8"},
            }),
            started_at: at(50),
            detected_at: at(50),
        })
        .await
        .unwrap();
    store
        .upsert_alert(&Alert {
            fingerprint: "reconciliation_drift:contacts".into(),
            finding_id: None,
            labels: fields(&[("alertname", "reconciliation_drift")]),
            annotations: fields(&[("summary", "Ana Silva (ana.silva@example.com) differs")]),
            status: AlertStatus::Firing,
            starts_at: at(50),
            ends_at: None,
            updated_at: at(50),
            muted_by: None,
        })
        .await
        .unwrap();
    let log = NotificationLogEntry {
        receiver: "ops".into(),
        group_key: "contacts".into(),
        hash: "h".into(),
        firing: vec!["reconciliation_drift:contacts".into()],
        resolved: Vec::new(),
        sent_at: at(51),
    };
    let notification = NewNotification {
        receiver: "ops".into(),
        group_key: "contacts".into(),
        payload: json!({
            "text": "Contact Anna Silva-Lopes, +351 222, differs; Bo and Canada are fine",
            "alerts": [{"annotations": {"summary": "Ana.Silva@example.com differs"}}],
        }),
    };
    store
        .record_notification(&log, Some(&notification), at(51))
        .await
        .unwrap();
}

#[tokio::test]
async fn viewers_see_merge_actions_and_finding_evidence_masked_admins_do_not() {
    let db = TestDb::sqlite();
    let app = start(&db, |_| {}).await;
    seed_people(app.store.as_ref()).await;
    let id = seed_merge(app.store.as_ref()).await;
    seed_alerting(app.store.as_ref()).await;

    let (_, list) = app.get(Role::Viewer, "/v1/actions?endpoint=contacts").await;
    assert_no_ana("the viewer's action list", &list);
    let list: Value = serde_json::from_str(&list).unwrap();
    let action = &list["actions"][0];
    assert_eq!(action["before"]["crm:555"]["phone"], "[masked]", "{action}");
    assert_eq!(action["before"]["crm:555"]["owner"], "8", "{action}");
    assert_eq!(action["fields"][0]["value"], "[masked]", "{action}");
    assert_eq!(action["fields"][3]["value"], "8", "{action}");
    assert_eq!(
        action["members"][1], "crm:555",
        "record ids are not personal"
    );

    let (status, view) = app.get(Role::Viewer, &format!("/v1/actions/{id}")).await;
    assert_eq!(status, 200, "{view}");
    assert_no_ana("the viewer's action view", &view);
    let view: Value = serde_json::from_str(&view).unwrap();
    let plan = &view["action"]["jobs"][0]["plan"];
    assert_eq!(plan["before"][0]["fields"]["email"], "[masked]", "{plan}");
    assert_eq!(plan["before"][0]["fields"]["owner"], "8", "{plan}");
    assert_eq!(plan["before"][0]["key"], "C0001/1", "{plan}");
    assert_eq!(plan["steps"][1]["old"]["first_name"], "[masked]", "{plan}");

    let (status, csv) = app.get(Role::Viewer, "/v1/actions.csv").await;
    assert_eq!(status, 200, "{csv}");
    assert_no_ana("the viewer's action CSV", &csv);
    assert!(csv.contains("[masked]") && csv.contains("crm:555"), "{csv}");

    let (_, findings) = app.get(Role::Viewer, "/v1/findings").await;
    assert_no_ana("the viewer's findings", &findings);
    let findings: Value = serde_json::from_str(&findings).unwrap();
    let evidence = &findings["findings"][0]["evidence"];
    assert_eq!(
        evidence["examples"][0]["crm_value"], "[masked]",
        "{evidence}"
    );
    assert_eq!(evidence["examples"][0]["record"], "C0001/1", "{evidence}");
    assert_eq!(evidence["contact"]["owner"], "8", "{evidence}");

    for role in [Role::Approver, Role::Admin] {
        let (_, list) = app.get(role, "/v1/actions").await;
        assert!(
            list.contains("+351 555") && !list.contains("[masked]"),
            "{list}"
        );
        let (_, view) = app.get(role, &format!("/v1/actions/{id}")).await;
        assert!(view.contains("ana.silva@example.com"), "{view}");
        let (_, csv) = app.get(role, "/v1/actions.csv").await;
        assert!(csv.contains("Silva") && !csv.contains("[masked]"), "{csv}");
        let (_, findings) = app.get(role, "/v1/findings").await;
        assert!(findings.contains("ana.old@example.com"), "{findings}");
    }
}

async fn erasure_on(db: TestDb) {
    let app = start(&db, |_| {}).await;
    seed_people(app.store.as_ref()).await;
    let merge = seed_merge(app.store.as_ref()).await;
    seed_alerting(app.store.as_ref()).await;
    let intents = [
        contact_event(
            60,
            "C0001/1",
            "101",
            "email",
            "ana.silva@example.com",
            "ana@new.example",
        ),
        contact_event(61, "C0002/1", "102", "first_name", "Bo", "Bob"),
    ];
    let intents: Vec<syncwarden::store::WriteIntent> = intents
        .iter()
        .map(|e| syncwarden::store::WriteIntent {
            key: e.idempotency_key.clone(),
            events: vec![e],
        })
        .collect();
    app.store
        .save_intents(Endpoint::Contacts, &intents, at(60))
        .await
        .unwrap();
    let request = json!({"email": "ANA.SILVA@example.com", "reason": "GDPR request 42"});

    let (status, _) = app
        .post(Role::Approver, "/v1/erasure", request.clone())
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .post(Role::Admin, "/v1/erasure", json!({"reason": "x"}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .post(
            Role::Admin,
            "/v1/erasure",
            json!({"email": "nobody@example.com", "reason": "x"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    let (status, report) = app.post(Role::Admin, "/v1/erasure", request.clone()).await;
    assert_eq!(status, 200, "{report}");
    // Her synced record, and the copy only the CRM holds that only the deduper knows of.
    assert_eq!(report["records"], 2, "{report}");
    assert_eq!(report["erased"]["events"], 4, "{report}");
    assert_eq!(report["erased"]["record_states"], 1);
    assert_eq!(report["erased"]["conflicts"], 1);
    assert_eq!(report["erased"]["dead_letters"], 1);
    for what in [
        "dedup_proposals",
        "merge_jobs",
        "intents",
        "notifications",
        "alerts",
        "findings",
    ] {
        assert_eq!(report["erased"][what], 1, "{what}: {report}");
    }

    // Every read path, as the role that sees the most.
    let (_, json) = app
        .get(Role::Admin, "/v1/audit/events?record_id=C0001/1")
        .await;
    assert_no_ana("the audit trail", &json);
    let (_, csv) = app.get(Role::Admin, "/v1/audit/events.csv").await;
    assert_no_ana("the CSV export", &csv);
    assert!(
        csv.contains("bo@example.com") && csv.contains("10.50"),
        "others are kept: {csv}"
    );
    let (_, conflicts) = app.get(Role::Admin, "/v1/conflicts").await;
    assert_no_ana("the conflicts", &conflicts);
    let (_, letters) = app.get(Role::Admin, "/v1/dead-letters").await;
    assert_no_ana("the dead letters", &letters);
    let states = app.store.record_states(Endpoint::Contacts).await.unwrap();
    assert_no_ana("the record states", &format!("{states:?}"));
    assert_eq!(states["C0001/1"].fields["first_name"], "[erased]");
    assert_eq!(
        states["C0001/1"].fields["owner"], "8",
        "non-personal fields stay"
    );
    assert_eq!(states["C0002/1"].fields["first_name"], "Bo");

    // The deduper's copies: proposals, the merge job's before-images, the sync's intents.
    let proposals = app.store.dedup_proposals(None, None).await.unwrap();
    assert_no_ana("Ana's merge proposal", &format!("{:?}", proposals[0]));
    assert_eq!(proposals[0].proposal.before["crm:555"]["owner"], "8");
    let bo = &proposals[1].proposal.before["crm:777"];
    assert_eq!(bo["email"], "bo@example.com");
    assert_eq!(
        bo["last_name"], "Silva",
        "another Silva, in a merge not hers, stays"
    );
    let jobs = app.store.merge_jobs(merge).await.unwrap();
    assert_no_ana("the merge job's plan", &jobs[0].plan.to_string());
    assert_eq!(jobs[0].plan["before"][0]["fields"]["email"], "[erased]");
    let intents = app.store.intents(Endpoint::Contacts).await.unwrap();
    assert_no_ana("the write intents", &format!("{intents:?}"));
    assert_eq!(intents[1].new_value.as_deref(), Some("\"Bob\""));
    let (_, view) = app.get(Role::Admin, &format!("/v1/actions/{merge}")).await;
    assert_no_ana("the action view", &view);

    // Alerting's free text: the words go, the rest of the sentence stays.
    let outbox = app.store.outbox(None).await.unwrap();
    let payload = outbox[0].payload.to_string();
    assert_no_ana("the notification payload", &payload);
    assert!(payload.contains("Bo and Canada are fine"), "{payload}");
    let alerts = app.store.alerts(at(0)).await.unwrap();
    assert_no_ana("the alert annotations", &format!("{alerts:?}"));
    let (_, findings) = app.get(Role::Admin, "/v1/findings").await;
    assert_no_ana("the finding evidence", &findings);
    assert!(findings.contains("C0001/1"), "{findings}");

    // The erasure is itself an event: who, when, which fields, why.
    let json = app
        .get_json(Role::Viewer, "/v1/audit/events?record_id=C0001/1")
        .await;
    let events = json["events"].as_array().unwrap();
    let tombstone = events.iter().find(|e| e["outcome"] == "erased").unwrap();
    assert_eq!(tombstone["field"], "erasure");
    assert_eq!(tombstone["crm_id"], "101");
    assert_eq!(tombstone["error"], "erased by admin-ana: GDPR request 42");
    let fields: Vec<String> =
        serde_json::from_str(tombstone["new_value"].as_str().unwrap()).unwrap();
    assert_eq!(fields, ["first_name", "last_name", "email", "phone"]);
    let owner = events.iter().find(|e| e["field"] == "owner").unwrap();
    assert_eq!(owner["new_value"], "\"8\"");

    // Done again, nothing is left to replace, and the log still refuses changes made outside an
    // erasure.
    let (status, report) = app
        .post(
            Role::Admin,
            "/v1/erasure",
            json!({"endpoint": "contacts", "key": "101", "reason": "again"}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["erased"]["events"], 0, "{report}");
    assert_log_is_still_append_only(&db.url).await;
    let subjects = erasure_subjects(&db.url).await;
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert_no_ana("the record of the erasures", &subjects.join(" "));
    assert!(subjects[0].starts_with("email sha256:"), "{subjects:?}");
    drop(app);
    db.cleanup().await;
}

/// A person the sync knows only from a record state (no event names her), and a replay of an
/// erased event under its idempotency key.
async fn erasure_lookup_and_replay_on(db: TestDb) {
    let app = start(&db, |_| {}).await;
    let commit = SyncCommit {
        states: vec![RecordState {
            endpoint: Endpoint::Contacts,
            key: "C0009/1".into(),
            crm_id: Some("109".into()),
            erp_id: Some("C0009/1".into()),
            fields: fields(&[("email", "zoe@example.com"), ("first_name", "Zoe")]),
            synced_at: at(1),
        }],
        ..Default::default()
    };
    app.store.commit_sync(&commit, at(2)).await.unwrap();
    let (status, report) = app
        .post(
            Role::Admin,
            "/v1/erasure",
            json!({"email": "ZOE@example.com", "reason": "asked"}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["records"], 1, "{report}");
    assert_eq!(report["erased"]["record_states"], 1, "{report}");
    let states = app.store.record_states(Endpoint::Contacts).await.unwrap();
    assert_eq!(states["C0009/1"].fields["email"], "[erased]");

    // An event ingested, erased, then sent again by the platform that first sent it.
    let event = contact_event(1, "C0008/1", "108", "email", "", "yann@example.com");
    let body = format!("[{}]", syncwarden::sync::events::to_wire_json(&event));
    let ingest = || {
        app.client
            .post(format!("{}/v1/events", app.base))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    assert_eq!(ingest().await.unwrap().status(), 200);
    let (status, report) = app
        .post(
            Role::Admin,
            "/v1/erasure",
            json!({"endpoint": "contacts", "key": "C0008/1", "reason": "asked"}),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["erased"]["events"], 1, "{report}");
    let replay = ingest().await.unwrap();
    assert_eq!(
        replay.status(),
        409,
        "a replay must not bring the value back"
    );
    let answer: Value = replay.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "idempotency_conflict", "{answer}");
    let (_, trail) = app
        .get(Role::Admin, "/v1/audit/events?record_id=C0008/1")
        .await;
    assert!(!trail.contains("yann"), "{trail}");
    let trail: Value = serde_json::from_str(&trail).unwrap();
    let email = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "email")
        .unwrap();
    assert_eq!(email["new_value"], "\"[erased]\"");
    drop(app);
    db.cleanup().await;
}

#[tokio::test]
async fn erasure_finds_people_in_record_states_and_a_replay_does_not_resurrect_them_sqlite() {
    erasure_lookup_and_replay_on(TestDb::sqlite()).await;
}

#[tokio::test]
async fn erasure_finds_people_in_record_states_and_a_replay_does_not_resurrect_them_postgres() {
    if let Some(db) = TestDb::postgres(
        "erasure_finds_people_in_record_states_and_a_replay_does_not_resurrect_them_postgres",
    )
    .await
    {
        erasure_lookup_and_replay_on(db).await;
    }
}

/// What the `erasures` rows say they erased, oldest first.
async fn erasure_subjects(url: &str) -> Vec<String> {
    let sql = "SELECT subject FROM erasures ORDER BY started_at";
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let subjects = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        subjects
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let subjects = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        subjects
    }
}

async fn assert_log_is_still_append_only(url: &str) {
    let statements = [
        "UPDATE field_events SET new_value = '\"[erased]\"' WHERE field = 'email'",
        "UPDATE field_events SET field = 'x'",
        "DELETE FROM field_events",
    ];
    for sql in statements {
        let refused = if url.starts_with("sqlite") {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            let result = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
            pool.close().await;
            result.is_err()
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let result = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
            pool.close().await;
            result.is_err()
        };
        assert!(refused, "the event log accepted `{sql}`");
    }
}

#[tokio::test]
async fn erasure_replaces_personal_values_on_every_read_path_sqlite() {
    erasure_on(TestDb::sqlite()).await;
}

#[tokio::test]
async fn erasure_replaces_personal_values_on_every_read_path_postgres() {
    if let Some(db) =
        TestDb::postgres("erasure_replaces_personal_values_on_every_read_path_postgres").await
    {
        erasure_on(db).await;
    }
}

fn write_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, MasterKey::generate()).unwrap();
    path
}

#[tokio::test]
async fn vault_round_trip_resolves_config_references_and_names_a_wrong_key() {
    for db in TestDb::all("vault_round_trip_resolves_config_references_and_names_a_wrong_key").await
    {
        let dir = tempfile::tempdir().unwrap();
        let key_file = write_key(dir.path(), "master.key");
        let store = db.open().await;
        let key = MasterKey::from_file(&key_file).unwrap();
        let vault = Vault::new(store.clone(), key.clone());
        vault
            .set("hubspot_token", "pat-eu1-secret", at(0))
            .await
            .unwrap();
        vault
            .set("hook_url", "https://hooks.example.com/abc", at(0))
            .await
            .unwrap();
        assert_eq!(
            vault.get("hubspot_token").await.unwrap().expose_secret(),
            "pat-eu1-secret"
        );
        let sealed = store.secret("hubspot_token").await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&sealed.ciphertext).contains("pat-eu1"));
        let names: Vec<String> = vault
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["hook_url", "hubspot_token"]);

        let mut settings = db.settings();
        settings.vault.key_file = key_file.clone();
        settings.crm.token = "vault:hubspot_token".to_string().into();
        settings.erp.password = "plain".to_string().into();
        syncwarden::vault::resolve_settings(&mut settings)
            .await
            .unwrap();
        assert_eq!(settings.crm.token.expose_secret(), "pat-eu1-secret");
        assert_eq!(settings.erp.password.expose_secret(), "plain");

        let mut wrong = db.settings();
        wrong.vault.key_file = write_key(dir.path(), "other.key");
        wrong.crm.token = "vault:hubspot_token".to_string().into();
        let err = syncwarden::vault::resolve_settings(&mut wrong)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("crm.token") && err.contains("hubspot_token"),
            "{err}"
        );
        assert!(
            err.contains(key.id()),
            "names the key it was sealed with: {err}"
        );

        let mut missing = db.settings();
        missing.vault.key_file = key_file.clone();
        missing.ingest.token = "vault:nope".to_string().into();
        let err = syncwarden::vault::resolve_settings(&mut missing)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ingest.token") && err.contains("`nope`"),
            "{err}"
        );

        let mut no_key = db.settings();
        no_key.crm.token = "vault:hubspot_token".to_string().into();
        let err = syncwarden::vault::resolve_settings(&mut no_key)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, VaultError::Field { source, .. } if matches!(**source, VaultError::NoKey)),
            "{err}"
        );

        // Rotation: every secret under the new key, none readable with the old one.
        let new_file = write_key(dir.path(), "new.key");
        let new = MasterKey::from_file(&new_file).unwrap();
        assert_eq!(vault.rotate(&new, at(1)).await.unwrap(), 2);
        assert!(vault.get("hubspot_token").await.is_err());
        let rotated = Vault::new(store.clone(), new);
        assert_eq!(
            rotated.get("hook_url").await.unwrap().expose_secret(),
            "https://hooks.example.com/abc"
        );
        store.close().await;
        db.cleanup().await;
    }
}

fn syncwarden(dir: &std::path::Path, key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_syncwarden"));
    command
        .arg("--data-dir")
        .arg(dir)
        .env("SYNCWARDEN_MASTER_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn secret_cli_reads_the_value_from_stdin_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let mut child = syncwarden(dir.path(), &key)
        .args(["secret", "set", "erp_password"])
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"manager-pw\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = syncwarden(dir.path(), &key)
        .args(["secret", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("erp_password") && !listed.contains("manager-pw"),
        "{listed}"
    );

    // A wrong key fails naming the secret, when the configuration refers to it.
    let out = syncwarden(dir.path(), &MasterKey::generate())
        .args(["connectors", "check"])
        .env("SYNCWARDEN_ERP__PASSWORD", "vault:erp_password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("erp.password") && stderr.contains("erp_password"),
        "{stderr}"
    );
    assert!(!stderr.contains("manager-pw"));
    // The digest reads the vault too (its LLM key and SMTP password may live there).
    let out = syncwarden(dir.path(), &MasterKey::generate())
        .args(["digest", "--format", "json"])
        .env("SYNCWARDEN_LLM__API_KEY", "vault:erp_password")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("llm.api_key") && stderr.contains("erp_password"),
        "{stderr}"
    );

    let out = syncwarden(dir.path(), &key)
        .args(["secret", "delete", "erp_password"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = syncwarden(dir.path(), &key)
        .args(["secret", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("erp_password"));
}

#[tokio::test]
async fn erase_cli_erases_a_record_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite();
    let url = db.url.clone();
    let store = db.open().await;
    seed_people(store.as_ref()).await;
    store.close().await;
    let out = Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args([
            "erase",
            "--endpoint",
            "contacts",
            "--key",
            "C0001/1",
            "--reason",
            "ticket 7",
            "--by",
            "dpo",
        ])
        .env("SYNCWARDEN_DATABASE__URL", &url)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["erased"]["events"], 4, "{report}");
    let store = db.open().await;
    let events = crate::helpers::all_events(store.as_ref()).await;
    assert_no_ana("the event log", &format!("{events:?}"));
    let tombstone = events
        .iter()
        .find(|e| e.event.outcome == Outcome::Erased)
        .unwrap();
    assert_eq!(
        tombstone.event.error.as_deref(),
        Some("erased by dpo: ticket 7")
    );
}

#[tokio::test]
async fn tls_serves_https_with_the_configured_certificate() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let db = TestDb::sqlite();
    let app = start(&db, |s| {
        s.server.tls_cert = cert_path.clone();
        s.server.tls_key = key_path.clone();
    })
    .await;
    assert!(app.base.starts_with("https://"), "{}", app.base);
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = trusting
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metrics = trusting
        .get(format!("{}/metrics", app.base))
        .bearer_auth(&app.tokens[&Role::Viewer])
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    // Plain HTTP on the same port gets no answer, and an untrusting client refuses the certificate.
    let plain = app.base.replacen("https", "http", 1);
    let refused = reqwest::Client::new()
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(refused.map(|r| !r.status().is_success()).unwrap_or(true));
    assert!(
        reqwest::Client::new()
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .is_err()
    );

    let mut half = db.settings();
    half.server.tls_cert = cert_path;
    let err = Application::build(&half, Clock::system())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("server.tls_key"), "{err}");
}

/// The value of the series `line_prefix` in a Prometheus text body (0 when absent).
fn series(metrics: &str, line_prefix: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_sync_calls_notifications_and_requests() {
    use syncwarden::sandbox::{Sandbox, SeedScale};
    let db = TestDb::sqlite();
    let app = start(&db, |_| {}).await;
    let (_, before) = app.get(Role::Viewer, "/metrics").await;

    let clock = Clock::system();
    let sandbox = Sandbox::start(clock.clone(), &SeedScale::small())
        .await
        .unwrap();
    let mut settings = db.settings();
    sandbox.configure(&mut settings);
    for connector in syncwarden::sync::service::connectors(&settings).unwrap() {
        connector.check().await.unwrap();
    }

    // A receiver nobody listens on: its delivery attempt fails and is counted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let alerting = Settings::from_toml_str(&format!(
        r#"
        [alerting.route]
        receiver = "sec-hook"
        group_wait_secs = 0
        [[alerting.receivers]]
        type = "webhook"
        name = "sec-hook"
        url = "http://{closed}/hook"
        "#
    ))
    .unwrap()
    .alerting;
    // A manual clock: evaluation then sees the finding at the instant it runs.
    let clock = Clock::manual(Timestamp::now_utc());
    let (alerting, worker) = syncwarden::alert::service::build(
        &alerting,
        &syncwarden::dedup::llm::LlmSettings::default(),
        app.store.clone(),
        clock.clone(),
    )
    .unwrap()
    .unwrap();
    app.store
        .upsert_finding(&syncwarden::monitor::NewFinding {
            kind: "freshness".into(),
            severity: syncwarden::monitor::Severity::Critical,
            fingerprint: "freshness:items:erp".into(),
            title: "items stopped arriving".into(),
            evidence: json!({}),
            started_at: clock.now(),
            detected_at: clock.now(),
        })
        .await
        .unwrap();
    syncwarden::alert::service::flush(&alerting, &worker, &clock, 5).await;
    let _ = app.get(Role::Viewer, "/v1/findings").await;

    let (_, after) = app.get(Role::Viewer, "/metrics").await;
    for prefix in [
        "syncwarden_sync_calls_total{connector=\"hubspot\",outcome=\"ok\"}",
        "syncwarden_sync_calls_total{connector=\"sap_b1\",outcome=\"ok\"}",
        "syncwarden_notifications_total{receiver=\"sec-hook\",outcome=\"retry\"}",
        "syncwarden_http_requests_total{route=\"/v1/findings\",method=\"GET\",status=\"200\"}",
    ] {
        assert!(
            series(&after, prefix) > series(&before, prefix),
            "{prefix} did not move:\n{after}"
        );
    }
}
