//! The weekly KPI digest: numbers checked against what the test stores for two weeks, week
//! boundaries in a non-UTC zone, the charts in HTML and in a real email, the LLM summary and its
//! fallbacks, and the scheduled send made once per week across restarts and instances.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use syncwarden::api::auth::{hash_token, new_token};
use syncwarden::clock::Clock;
use syncwarden::config::Settings;
use syncwarden::digest::{self, DigestScheduler, Digester, Images, IsoWeek, Zone, charts};
use syncwarden::domain::{
    Conflict, Endpoint, MergeField, NewDedupProposal, NewFieldEvent, Outcome, ProposalStatus, Role,
    RunStatus, SyncRun, SyncRunCounts, System, Timestamp,
};
use syncwarden::monitor::{NewFinding, Severity};
use syncwarden::store::{Store, SyncCommit};

use crate::helpers::{TestApp, TestDb};
use crate::llm::{LlmServer, Reply};
use crate::smtp::SmtpServer;

fn at(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn week(s: &str) -> IsoWeek {
    IsoWeek::parse(s).unwrap()
}

async fn run(store: &dyn Store, id: &str, started: &str, ok: i64, failed: i64) {
    let started_at = at(started);
    store
        .start_run(&SyncRun {
            id: id.into(),
            endpoint: Some(Endpoint::Items),
            started_at,
            ended_at: None,
            status: RunStatus::Running,
            counts: SyncRunCounts::default(),
            error: None,
        })
        .await
        .unwrap();
    let counts = SyncRunCounts {
        api_calls_ok: ok,
        api_calls_failed: failed,
        ..Default::default()
    };
    store
        .finish_run(id, started_at, RunStatus::Succeeded, &counts, None)
        .await
        .unwrap();
}

fn event(
    key: &str,
    endpoint: Endpoint,
    record: &str,
    outcome: Outcome,
    latency: i64,
    when: Timestamp,
) -> NewFieldEvent {
    NewFieldEvent {
        idempotency_key: key.into(),
        run_id: None,
        endpoint,
        crm_id: Some(record.into()),
        erp_id: None,
        field: "name".into(),
        old_value: None,
        new_value: Some("\"x\"".into()),
        source_system: System::Crm,
        target_system: System::Erp,
        outcome,
        error: None,
        latency_ms: Some(latency),
        occurred_at: when,
    }
}

async fn finding(
    store: &dyn Store,
    fingerprint: &str,
    started: &str,
    detected: &str,
    resolved: Option<&str>,
) {
    let f = store
        .upsert_finding(&NewFinding {
            kind: fingerprint.split(':').next().unwrap().into(),
            severity: Severity::Warning,
            fingerprint: fingerprint.into(),
            title: format!("{fingerprint} went wrong"),
            evidence: serde_json::json!({"calls": 10}),
            started_at: at(started),
            detected_at: at(detected),
        })
        .await
        .unwrap();
    if let Some(resolved) = resolved {
        store.resolve_finding(f.id, at(resolved)).await.unwrap();
    }
}

fn proposal(members: &[&str], created: &str) -> NewDedupProposal {
    NewDedupProposal {
        endpoint: Endpoint::Accounts,
        members: members.iter().map(|m| m.to_string()).collect(),
        survivor: members[0].into(),
        fields: vec![MergeField {
            field: "name".into(),
            value: "Acme".into(),
            from: members[0].into(),
            why: "agreed".into(),
        }],
        before: BTreeMap::new(),
        min_probability: 0.9,
        created_at: at(created),
    }
}

/// Two weeks of activity: 2026-W46 (quiet) and 2026-W47 (busier), as the KPIs should count it.
async fn seed_two_weeks(store: &dyn Store) {
    run(store, "w46", "2026-11-10T09:00:00Z", 40, 10).await;
    run(store, "w47a", "2026-11-17T09:00:00Z", 90, 5).await;
    run(store, "w47b", "2026-11-19T09:00:00Z", 5, 0).await;
    // Outside both weeks: counted in neither.
    run(store, "w48", "2026-11-23T00:00:00Z", 1, 1000).await;

    let mut events = Vec::new();
    for i in 0..4 {
        let t = at("2026-11-11T10:00:00Z");
        events.push(event(
            &format!("a46-{i}"),
            Endpoint::Items,
            &format!("I{i}"),
            Outcome::Applied,
            5,
            t,
        ));
    }
    for i in 0..10 {
        // Monday to Friday of W47, two records a day, latencies 10 ... 100 ms.
        let t = at("2026-11-16T10:00:00Z") + Duration::from_secs(86_400 * (i / 2) as u64);
        let latency = (i as i64 + 1) * 10;
        events.push(event(
            &format!("a47-{i}"),
            Endpoint::Items,
            &format!("I{i}"),
            Outcome::Applied,
            latency,
            t,
        ));
    }
    for i in 0..3 {
        let t = at("2026-11-18T12:00:00Z");
        events.push(event(
            &format!("acc-{i}"),
            Endpoint::Accounts,
            &format!("A{i}"),
            Outcome::Applied,
            50,
            t,
        ));
        // A second field of the same record is the same record synced.
        events.push(event(
            &format!("acc2-{i}"),
            Endpoint::Accounts,
            &format!("A{i}"),
            Outcome::Applied,
            50,
            t,
        ));
    }
    for i in 0..2 {
        let t = at("2026-11-20T12:00:00Z");
        events.push(event(
            &format!("f47-{i}"),
            Endpoint::Items,
            &format!("F{i}"),
            Outcome::Failed,
            1000,
            t,
        ));
        events.push(event(
            &format!("m47-{i}"),
            Endpoint::Accounts,
            &format!("M{i}"),
            Outcome::Merged,
            0,
            t,
        ));
    }
    // Not a write: no latency counted, no record synced.
    events.push(event(
        "skip",
        Endpoint::Items,
        "S",
        Outcome::SkippedNotOwner,
        9999,
        at("2026-11-17T10:00:00Z"),
    ));
    store
        .append_events(&events, at("2026-11-23T00:00:00Z"))
        .await
        .unwrap();

    let conflict = |key: &str| Conflict {
        id: 0,
        endpoint: Endpoint::Accounts,
        key: key.into(),
        field: "name".into(),
        base_value: None,
        crm_value: Some("\"a\"".into()),
        erp_value: Some("\"b\"".into()),
        opened_at: at("2026-11-17T08:00:00Z"),
        resolved_at: None,
        resolution: None,
    };
    let opened = SyncCommit {
        conflicts: vec![conflict("k1"), conflict("k2")],
        ..Default::default()
    };
    store
        .commit_sync(&opened, at("2026-11-17T08:00:00Z"))
        .await
        .unwrap();
    let first = store.open_conflicts().await.unwrap()[0].id;
    let resolved = SyncCommit {
        resolved_conflicts: vec![(first, "crm".into())],
        ..Default::default()
    };
    store
        .commit_sync(&resolved, at("2026-11-18T08:00:00Z"))
        .await
        .unwrap();

    // W46: detected after 120 s, resolved an hour later.
    finding(
        store,
        "freshness:items:erp",
        "2026-11-12T10:00:00Z",
        "2026-11-12T10:02:00Z",
        Some("2026-11-12T11:02:00Z"),
    )
    .await;
    // W47: detected after 600 s and resolved two days later; after 300 s, still open; a price
    // mismatch detected at once and still open.
    finding(
        store,
        "price_mismatch:pricebook:erp",
        "2026-11-16T10:00:00Z",
        "2026-11-16T10:10:00Z",
        Some("2026-11-18T10:10:00Z"),
    )
    .await;
    finding(
        store,
        "success_rate_drop:items:crm",
        "2026-11-17T09:00:00Z",
        "2026-11-17T09:05:00Z",
        None,
    )
    .await;
    finding(
        store,
        "price_mismatch:quotes:erp",
        "2026-11-19T12:00:00Z",
        "2026-11-19T12:00:00Z",
        None,
    )
    .await;

    store
        .save_dedup_proposals(&[
            proposal(&["A1", "A2", "A3"], "2026-11-17T12:00:00Z"),
            proposal(&["B1", "B2"], "2026-11-18T12:00:00Z"),
            proposal(&["C1", "C2"], "2026-11-11T12:00:00Z"),
        ])
        .await
        .unwrap();
    let b = store
        .dedup_proposals(None, None)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.proposal.survivor == "B1")
        .unwrap();
    store
        .decide_dedup_proposal(
            b.id,
            ProposalStatus::Approved,
            "manager",
            at("2026-11-19T08:00:00Z"),
        )
        .await
        .unwrap();
}

fn kpi(json: &Value, name: &str) -> (Value, Value) {
    (json[name]["value"].clone(), json[name]["previous"].clone())
}

#[tokio::test]
async fn kpis_match_what_the_store_holds_for_two_consecutive_weeks() {
    for db in TestDb::all("kpis_match_what_the_store_holds_for_two_consecutive_weeks").await {
        let app = TestApp::spawn(db.settings()).await;
        seed_two_weeks(app.store.as_ref()).await;
        let token = new_token();
        app.store
            .create_token(
                "viewer",
                Role::Viewer,
                &hash_token(&token),
                at("2026-11-01T00:00:00Z"),
                None,
            )
            .await
            .unwrap();
        let get = |query: &str| {
            app.client
                .get(format!("{}/v1/kpis{query}", app.base))
                .bearer_auth(&token)
                .send()
        };
        let response = get("?week=2026-W47").await.unwrap();
        assert_eq!(response.status(), 200);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["week"], "2026-W47");
        assert_eq!(json["from"], "2026-11-16T00:00:00Z");
        assert_eq!(json["to"], "2026-11-23T00:00:00Z");
        assert_eq!(json["partial"], false);
        assert_eq!(
            kpi(&json, "api_call_success_rate"),
            (0.95.into(), 0.8.into())
        );
        assert_eq!(kpi(&json, "api_calls"), (100.into(), 50.into()));
        // 10 item writes of 10..100 ms, 6 account writes of 50 ms, 2 failed writes of 1000 ms.
        assert_eq!(kpi(&json, "sync_latency_p50_ms"), (50.into(), 5.into()));
        assert_eq!(kpi(&json, "sync_latency_p95_ms"), (1000.into(), 5.into()));
        assert_eq!(kpi(&json, "records_synced"), (13.into(), 4.into()));
        let by_endpoint = &json["records_synced_by_endpoint"];
        assert_eq!(
            by_endpoint["items"],
            serde_json::json!({"value": 10, "previous": 4})
        );
        assert_eq!(
            by_endpoint["accounts"],
            serde_json::json!({"value": 3, "previous": 0})
        );
        assert_eq!(
            by_endpoint["invoices"],
            serde_json::json!({"value": 0, "previous": 0})
        );
        assert_eq!(kpi(&json, "duplicates_found"), (3.into(), 1.into()));
        assert_eq!(kpi(&json, "merges_applied"), (2.into(), 0.into()));
        assert_eq!(kpi(&json, "merges_approved"), (1.into(), 0.into()));
        assert_eq!(
            kpi(&json, "manual_interventions_avoided"),
            (1.into(), 0.into())
        );
        assert_eq!(kpi(&json, "conflicts_opened"), (2.into(), 0.into()));
        assert_eq!(kpi(&json, "conflicts_resolved"), (1.into(), 0.into()));
        assert_eq!(kpi(&json, "price_mismatches_open"), (1.into(), 0.into()));
        assert_eq!(kpi(&json, "price_mismatches_fixed"), (1.into(), 0.into()));
        assert_eq!(kpi(&json, "findings_opened"), (3.into(), 1.into()));
        assert_eq!(kpi(&json, "mttd_seconds"), (300.0.into(), 120.0.into()));
        assert_eq!(
            kpi(&json, "mttr_seconds"),
            (172_800.0.into(), 3600.0.into())
        );
        assert_eq!(kpi(&json, "alerts_sent"), (0.into(), 0.into()));
        let daily = json["daily"].as_array().unwrap();
        assert_eq!(daily.len(), 7);
        assert_eq!(daily[0]["date"], "2026-11-16");
        let tuesday = daily[1]["api_call_success_rate"].as_f64().unwrap();
        assert!((tuesday - 90.0 / 95.0).abs() < 1e-12, "{tuesday}");
        assert_eq!(daily[0]["api_call_success_rate"], Value::Null);
        assert_eq!(daily[4]["sync_latency_p95_ms"], 1000);
        let per_day: Vec<i64> = daily
            .iter()
            .map(|d| d["findings_opened"].as_i64().unwrap())
            .collect();
        assert_eq!(per_day, [1, 1, 0, 1, 0, 0, 0]);
        let top: Vec<&str> = json["top_findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            top.len(),
            3,
            "the W46 finding was resolved before W47: {top:?}"
        );
        assert_eq!(json["summary_source"], "template");
        let summary = json["summary"].as_str().unwrap();
        assert!(
            summary.contains("13 records") && summary.contains("95.0%"),
            "{summary}"
        );

        // W48 holds one bad run and nothing else: zero counts and unknown means, beside W47's.
        let json: Value = get("?week=2026-W48").await.unwrap().json().await.unwrap();
        let rate = json["api_call_success_rate"]["value"].as_f64().unwrap();
        assert!((rate - 1.0 / 1001.0).abs() < 1e-12, "{rate}");
        assert_eq!(json["api_call_success_rate"]["previous"], 0.95);
        assert_eq!(kpi(&json, "records_synced"), (0.into(), 13.into()));
        assert_eq!(kpi(&json, "mttd_seconds"), (Value::Null, 300.0.into()));

        // The default is the current week, still in progress.
        let json: Value = get("").await.unwrap().json().await.unwrap();
        assert_eq!(json["partial"], true);
        let bad = get("?week=2026-W99").await.unwrap();
        assert_eq!(bad.status(), 422);
        let error: Value = bad.json().await.unwrap();
        assert_eq!(error["error"]["field"], "week");
        let anonymous = app
            .client
            .get(format!("{}/v1/kpis", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        drop(app);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn week_boundaries_are_drawn_in_the_configured_zone() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    // Sunday 23:30 UTC of W46 is already Monday 00:30 of W47 in Berlin (UTC+1 in November).
    run(store.as_ref(), "late", "2026-11-15T23:30:00Z", 7, 3).await;
    let now = at("2026-12-01T00:00:00Z");
    let utc = digest::build(
        store.as_ref(),
        &Zone::parse("UTC").unwrap(),
        "UTC",
        week("2026-W47"),
        now,
        5,
    )
    .await
    .unwrap();
    assert_eq!(utc.api_calls.value, Some(0));
    assert_eq!(utc.api_calls.previous, Some(10));
    let berlin = Zone::parse("Europe/Berlin").unwrap();
    let local = digest::build(
        store.as_ref(),
        &berlin,
        "Europe/Berlin",
        week("2026-W47"),
        now,
        5,
    )
    .await
    .unwrap();
    assert_eq!(local.from, at("2026-11-15T23:00:00Z"));
    assert_eq!(local.to, at("2026-11-22T23:00:00Z"));
    assert_eq!(local.api_calls.value, Some(10));
    assert_eq!(local.api_calls.previous, Some(0));
    assert_eq!(local.daily[0].api_call_success_rate, Some(0.7));
    assert_eq!(local.time_zone, "Europe/Berlin");
    // A fixed offset works the same way.
    let minus_one = Zone::parse("-01:00").unwrap();
    let west = digest::build(
        store.as_ref(),
        &minus_one,
        "-01:00",
        week("2026-W46"),
        now,
        5,
    )
    .await
    .unwrap();
    assert_eq!(west.api_calls.value, Some(10));
    db.cleanup().await;
}

/// The PNGs a rendering refers to by data URI, decoded.
fn data_uri_pngs(html: &str) -> Vec<Vec<u8>> {
    html.split("src=\"data:image/png;base64,")
        .skip(1)
        .map(|rest| {
            let b64 = rest.split('"').next().unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        })
        .collect()
}

/// Width, height, and whether anything but white was drawn.
fn inspect_png(bytes: &[u8]) -> (u32, u32, bool) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    let drawn = pixels[..info.buffer_size()].iter().any(|b| *b < 200);
    (info.width, info.height, drawn)
}

#[tokio::test]
async fn html_embeds_the_charts_as_png_and_renders_in_mail_clients() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    seed_two_weeks(store.as_ref()).await;
    let d = digest::build(
        store.as_ref(),
        &Zone::parse("UTC").unwrap(),
        "UTC",
        week("2026-W47"),
        at("2026-12-01T00:00:00Z"),
        5,
    )
    .await
    .unwrap();
    let html = digest::html(&d, &charts(&d).unwrap(), Images::DataUri);
    let pngs = data_uri_pngs(&html);
    assert_eq!(pngs.len(), 3, "success rate, latency, findings");
    for png in &pngs {
        assert_eq!(inspect_png(png), (640, 200, true));
    }
    assert!(
        !html.contains("<script") && !html.contains("<style"),
        "inline styles only"
    );
    assert!(html.contains("API call success rate per day"));
    assert!(html.contains(">95.00%<"), "the rate in the table");
    assert!(html.contains("success_rate_drop:items:crm went wrong"));

    // The command prints the same from the store of its data directory.
    let dir = tempfile::tempdir().unwrap();
    let settings = db.settings();
    let url = secrecy::ExposeSecret::expose_secret(&settings.database.url).to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["digest", "--week", "2026-W47", "--format", "html"])
        .env("SYNCWARDEN_DATABASE__URL", &url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8(output.stdout).unwrap();
    assert_eq!(data_uri_pngs(&printed).len(), 3);
    assert!(printed.contains(">95.00%<"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["digest", "--week", "2026-W47", "--format", "json"])
        .env("SYNCWARDEN_DATABASE__URL", &url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["records_synced"]["value"], 13);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
        .args(["digest", "--week", "2026-W47", "--send"])
        .env("SYNCWARDEN_DATABASE__URL", &url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("digest.recipients is empty"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    db.cleanup().await;
}

/// Settings mailing the digest through an email receiver on `smtp`.
fn mail_settings(db: &TestDb, smtp: &SmtpServer, extra: &str) -> Settings {
    let toml = format!(
        r#"
        [alerting.route]
        receiver = "mail"
        [[alerting.receivers]]
        type = "email"
        name = "mail"
        host = "127.0.0.1"
        port = {}
        tls = "none"
        from = "syncwarden <digest@syncwarden.test>"
        to = ["admin@example.test"]
        [digest]
        recipients = ["boss@example.test", "ops@example.test"]
        {extra}
        "#,
        smtp.port
    );
    let mut settings = Settings::from_toml_str(&toml).unwrap();
    settings.database.url = db.settings().database.url;
    settings
}

#[tokio::test]
async fn the_email_carries_the_charts_inline_and_the_text() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    seed_two_weeks(store.as_ref()).await;
    let smtp = SmtpServer::start().await;
    let digester = Digester::from_settings(&mail_settings(&db, &smtp, ""), true).unwrap();
    let d = digester
        .digest(store.as_ref(), week("2026-W47"), at("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    digester.send(&d).await.unwrap();
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "<digest@syncwarden.test>");
    assert_eq!(mail.to, ["<boss@example.test>", "<ops@example.test>"]);
    assert_eq!(
        mail.header("Subject").unwrap(),
        "syncwarden weekly digest 2026-W47"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative")
    );
    let body = mail.decoded();
    assert!(body.contains("Content-Type: text/plain"), "{body}");
    assert!(body.contains("Content-Type: multipart/related"), "{body}");
    for cid in ["chart-success-rate", "chart-latency", "chart-findings"] {
        assert!(
            body.contains(&format!("src=\"cid:{cid}\"")),
            "html refers to {cid}"
        );
        assert!(
            body.contains(&format!("Content-ID: <{cid}>")),
            "inline part {cid}"
        );
    }
    assert_eq!(body.matches("Content-Type: image/png").count(), 3);
    assert!(
        !body.contains("data:image/png"),
        "no data URIs in the email"
    );
    assert!(
        body.contains("Records synced"),
        "the KPI table in the text part"
    );
    assert!(body.contains(&d.summary[..40]), "the summary");
    // Each image part decodes to a PNG.
    let part = body.split("Content-ID: <chart-latency>").nth(1).unwrap();
    let b64: String = part
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("\r\n--")
        .next()
        .unwrap()
        .lines()
        .collect();
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    assert_eq!(inspect_png(&png), (640, 200, true));
    db.cleanup().await;
}

#[tokio::test]
async fn the_summary_comes_from_the_llm_or_else_the_template() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    seed_two_weeks(store.as_ref()).await;
    // A finding title with personal data in it: it must not reach the LLM.
    store
        .upsert_finding(&NewFinding {
            kind: "reconciliation_drift".into(),
            severity: Severity::Critical,
            fingerprint: "reconciliation_drift:contacts:crm".into(),
            title: "Contact jane.doe@example.test differs".into(),
            evidence: serde_json::json!({}),
            started_at: at("2026-11-20T10:00:00Z"),
            detected_at: at("2026-11-20T10:00:00Z"),
        })
        .await
        .unwrap();
    let llm = LlmServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("summary.md");
    std::fs::write(&prompt, "Summarise {{week}}:\n{{kpis}}").unwrap();
    let mut settings = db.settings();
    settings.llm = llm.settings(dir.path().join("unused.md"));
    settings.digest.summary_prompt = prompt;
    let digester = Digester::from_settings(&settings, false).unwrap();
    let now = at("2026-12-01T00:00:00Z");
    let written = "Sync stayed healthy at 95% success. A price mismatch was fixed. Watch the open CRM success-rate drop.";
    llm.reply(Reply::Text(written.into()));
    let d = digester
        .digest(store.as_ref(), week("2026-W47"), now)
        .await
        .unwrap();
    assert_eq!((d.summary.as_str(), d.summary_source), (written, "llm"));
    let asked = llm.prompts().pop().unwrap();
    assert!(asked.starts_with("Summarise 2026-W47:"), "{asked}");
    assert!(asked.contains("\"records_synced\""), "{asked}");
    assert!(!asked.contains("jane.doe@example.test"), "{asked}");
    assert!(asked.contains("[redacted email #1]"), "{asked}");

    let template = digest::template_summary(&d);
    for reply in [
        Reply::Garbage,
        Reply::Slow,
        Reply::Broken,
        Reply::Text(String::new()),
    ] {
        llm.reply(reply.clone());
        let d = digester
            .digest(store.as_ref(), week("2026-W47"), now)
            .await
            .unwrap();
        assert_eq!(
            (d.summary.as_str(), d.summary_source),
            (template.as_str(), "template"),
            "{reply:?}"
        );
    }
    // An LLM that is not there at all.
    settings.llm.base_url = "http://127.0.0.1:9/v1".into();
    let down = Digester::from_settings(&settings, false).unwrap();
    let d = down
        .digest(store.as_ref(), week("2026-W47"), now)
        .await
        .unwrap();
    assert_eq!(d.summary_source, "template");
    // No LLM configured: the template, and no prompt file needed.
    settings.llm = Default::default();
    settings.digest.summary_prompt = dir.path().join("missing.md");
    let off = Digester::from_settings(&settings, false).unwrap();
    assert_eq!(
        off.digest(store.as_ref(), week("2026-W47"), now)
            .await
            .unwrap()
            .summary,
        template
    );
    db.cleanup().await;
}

#[tokio::test]
async fn the_scheduled_send_goes_once_per_week_across_restarts_and_instances() {
    for db in
        TestDb::all("the_scheduled_send_goes_once_per_week_across_restarts_and_instances").await
    {
        let store: Arc<dyn Store> = db.open().await;
        let mut smtp = SmtpServer::start().await;
        let settings = mail_settings(&db, &smtp, "time_zone = \"Europe/Berlin\"\nsend_hour = 9");
        // Monday of W48, 08:59 in Berlin.
        let clock = Clock::manual(at("2026-11-23T07:59:00Z"));
        let scheduler = |clock: &Clock| {
            DigestScheduler::from_settings(&settings, store.clone(), clock.clone())
                .unwrap()
                .unwrap()
        };
        let first = scheduler(&clock);
        // Last Monday's send time is more than a day ago: nothing to make up.
        assert_eq!(first.run_once(clock.now()).await.unwrap(), None);
        clock.advance(Duration::from_secs(60));
        assert_eq!(
            first.run_once(clock.now()).await.unwrap(),
            Some(week("2026-W47"))
        );
        assert_eq!(first.run_once(clock.now()).await.unwrap(), None);
        assert_eq!(smtp.messages().len(), 1);
        assert!(
            smtp.messages()[0]
                .header("Subject")
                .unwrap()
                .ends_with("2026-W47")
        );
        let sent = store.digest_send("2026-W47").await.unwrap().unwrap();
        assert_eq!(sent.sent_at, Some(clock.now()));

        // A restart (a new instance on the same store) does not send the week again.
        drop(first);
        let restarted = scheduler(&clock);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(restarted.run_once(clock.now()).await.unwrap(), None);
        assert_eq!(smtp.messages().len(), 1);

        // The next week: two instances at once, one send. The SMTP server is down at first: the
        // send fails, is recorded, and is made once it is back, after the retry delay.
        clock.advance(Duration::from_secs(7 * 86_400 - 3600));
        smtp.stop();
        let (a, b) = (scheduler(&clock), scheduler(&clock));
        let (ra, rb) = tokio::join!(a.run_once(clock.now()), b.run_once(clock.now()));
        assert!(
            ra.is_err() != rb.is_err(),
            "exactly one tried: {ra:?} {rb:?}"
        );
        let failed = store.digest_send("2026-W48").await.unwrap().unwrap();
        assert!(
            failed.sent_at.is_none() && failed.last_error.is_some(),
            "{failed:?}"
        );
        smtp.restart().await;
        clock.advance(Duration::from_secs(60));
        assert_eq!(a.run_once(clock.now()).await.unwrap(), None, "retry waits");
        clock.advance(Duration::from_secs(300));
        let (ra, rb) = tokio::join!(a.run_once(clock.now()), b.run_once(clock.now()));
        let sent: Vec<_> = [ra.unwrap(), rb.unwrap()].into_iter().flatten().collect();
        assert_eq!(sent, [week("2026-W48")]);
        assert_eq!(smtp.messages().len(), 2);
        assert_eq!(
            store
                .digest_send("2026-W48")
                .await
                .unwrap()
                .unwrap()
                .attempts,
            2
        );
        db.cleanup().await;
    }
}
