//! Alerting end to end: findings recorded in the store, evaluated on a manual clock, delivered by
//! the worker to a real SMTP server and real HTTP listeners started here.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use syncwarden::alert::{
    Alerting, AlertingSettings, AttemptOutcome, DeliveryWorker, Matcher, NewSilence, OutboxStatus,
    build_notifiers,
};
use syncwarden::clock::Clock;
use syncwarden::config::Settings;
use syncwarden::dedup::llm::LlmSettings;
use syncwarden::domain::Timestamp;
use syncwarden::monitor::{Finding, FindingState, NewFinding, Severity};
use syncwarden::store::Store;

use crate::helpers::TestDb;
use crate::smtp::SmtpServer;

#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Request {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// An HTTP listener on port 0 that records every POST and answers with a settable status.
struct Listener {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
}

/// Status 0: the listener records the request and never answers it.
const HOLD: u16 = 0;

impl Listener {
    async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(record))
            .with_state((requests.clone(), status.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            requests,
            status,
        }
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn on(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

type ListenerState = (Arc<Mutex<Vec<Request>>>, Arc<AtomicU16>);

async fn record(
    State((requests, status)): State<ListenerState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    requests.lock().unwrap().push(Request {
        path: format!("/{path}"),
        headers,
        body,
    });
    let status = status.load(Ordering::SeqCst);
    if status == HOLD {
        std::future::pending::<()>().await;
    }
    let code = StatusCode::from_u16(status).unwrap();
    (code, if code.is_success() { "ok" } else { "nope" })
}

fn start_time() -> Timestamp {
    Timestamp::parse_rfc3339("2026-11-23T08:00:00Z").unwrap()
}

fn alerting_settings(toml: &str) -> AlertingSettings {
    Settings::from_toml_str(toml).unwrap().alerting
}

/// The alerting pipeline on one store: evaluator and delivery worker on a manual clock.
struct Rig {
    store: Arc<dyn Store>,
    clock: Clock,
    alerting: Alerting,
    worker: DeliveryWorker,
}

impl Rig {
    async fn new(store: Arc<dyn Store>, clock: Clock, toml: &str) -> Self {
        let settings = alerting_settings(toml);
        let alerting = Alerting::new(&settings, store.clone()).unwrap();
        let worker = Self::worker(&store, &clock, &settings);
        Self {
            store,
            clock,
            alerting,
            worker,
        }
    }

    fn worker(
        store: &Arc<dyn Store>,
        clock: &Clock,
        settings: &AlertingSettings,
    ) -> DeliveryWorker {
        let notifiers = build_notifiers(
            &settings.receivers,
            Duration::from_secs(settings.delivery.timeout_secs),
        )
        .unwrap();
        DeliveryWorker::new(
            store.clone(),
            notifiers,
            settings.delivery.clone(),
            clock.clone(),
        )
    }

    async fn finding(&self, fingerprint: &str, severity: Severity) -> Finding {
        let kind = fingerprint.split(':').next().unwrap().to_string();
        self.store
            .upsert_finding(&NewFinding {
                kind,
                severity,
                fingerprint: fingerprint.into(),
                title: format!("{fingerprint} is wrong"),
                evidence: serde_json::json!({"failures": 17, "calls": 120, "baseline_rate": 0.99}),
                started_at: self.clock.now() - Duration::from_secs(600),
                detected_at: self.clock.now(),
            })
            .await
            .unwrap()
    }

    async fn resolve(&self, finding: &Finding) {
        self.store
            .resolve_finding(finding.id, self.clock.now())
            .await
            .unwrap();
    }

    /// Evaluates the groups now; returns how many notifications were enqueued.
    async fn evaluate(&self) -> usize {
        self.alerting
            .run_once(self.clock.now())
            .await
            .unwrap()
            .enqueued
    }

    async fn deliver(&self) -> syncwarden::alert::DeliveryReport {
        self.worker.run_once().await.unwrap()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn email_receiver(port: u16, extra: &str) -> String {
    format!(
        r#"
        [[alerting.receivers]]
        type = "email"
        name = "mail"
        host = "127.0.0.1"
        port = {port}
        tls = "none"
        from = "syncwarden <alerts@syncwarden.test>"
        to = ["admin@example.test", "oncall@example.test"]
        {extra}
        "#
    )
}

const FAST_DELIVERY: &str = r#"
    [alerting.delivery]
    base_delay_ms = 1000
    max_delay_ms = 1000
    timeout_secs = 5
    max_attempts = 5
    failing_after = 3
"#;

#[tokio::test]
async fn email_carries_the_evidence_and_a_link_to_the_finding() {
    for db in TestDb::all("email_carries_the_evidence_and_a_link_to_the_finding").await {
        let smtp = SmtpServer::start().await;
        let toml = format!(
            "[alerting]\nbase_url = \"http://ui.test/\"\n[alerting.route]\nreceiver = \"mail\"\ngroup_wait_secs = 0\n{}",
            email_receiver(smtp.port, "")
        );
        let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
        let finding = rig
            .finding("success_rate_drop:items:crm", Severity::Critical)
            .await;
        assert_eq!(rig.evaluate().await, 1);
        assert_eq!(rig.deliver().await.sent, 1);

        let mails = smtp.messages();
        assert_eq!(mails.len(), 1);
        let mail = &mails[0];
        assert_eq!(mail.from, "<alerts@syncwarden.test>");
        assert_eq!(mail.to, ["<admin@example.test>", "<oncall@example.test>"]);
        let subject = mail.header("Subject").unwrap();
        assert_eq!(subject, "syncwarden [FIRING:1] success_rate_drop");
        let outbox = rig.store.outbox(None).await.unwrap();
        assert_eq!(
            mail.header("Message-ID").unwrap(),
            format!("<syncwarden-outbox-{}@syncwarden>", outbox[0].id),
            "one Message-ID per outbox entry, the same on a resend"
        );
        assert!(
            mail.header("From")
                .unwrap()
                .contains("alerts@syncwarden.test")
        );
        assert!(mail.header("To").unwrap().contains("oncall@example.test"));
        assert!(
            mail.header("Content-Type")
                .unwrap()
                .starts_with("multipart/alternative"),
        );
        let body = mail.decoded();
        assert!(body.contains("Content-Type: text/plain"), "{body}");
        assert!(body.contains("Content-Type: text/html"), "{body}");
        let link = format!("http://ui.test/ui/#/findings/{}", finding.id);
        assert!(body.contains(&format!("<a href=\"{link}\">")), "{body}");
        assert!(
            body.contains(&format!("  {link}\r\n")),
            "plain text link: {body}"
        );
        assert!(body.contains("failures: 17"), "evidence in text: {body}");
        assert!(
            body.contains(">baseline_rate</td>"),
            "evidence in html: {body}"
        );
        assert!(body.contains("success_rate_drop:items:crm is wrong"));
        assert!(body.contains("connector: crm"));

        // Email does not send resolutions by default; nothing else arrives.
        rig.resolve(&finding).await;
        rig.advance(1);
        assert_eq!(rig.evaluate().await, 0);
        assert_eq!(rig.deliver().await.sent, 0);
        assert_eq!(smtp.messages().len(), 1);
        db.cleanup().await;
    }
}

fn http_receivers(url: &str) -> String {
    format!(
        r#"
        [alerting.route]
        receiver = "hook"
        group_wait_secs = 0
        [[alerting.route.routes]]
        receiver = "slack"
        continue = true
        [[alerting.route.routes]]
        receiver = "teams"
        continue = true
        [[alerting.route.routes]]
        receiver = "pd"
        continue = true
        [[alerting.route.routes]]
        receiver = "hook"

        [[alerting.receivers]]
        type = "webhook"
        name = "hook"
        url = "{url}/hook"
        secret = "s3cret"
        [[alerting.receivers]]
        type = "slack"
        name = "slack"
        url = "{url}/slack"
        [[alerting.receivers]]
        type = "teams"
        name = "teams"
        url = "{url}/teams"
        [[alerting.receivers]]
        type = "pagerduty"
        name = "pd"
        routing_key = "rk-123"
        url = "{url}/v2/enqueue"
        "#
    )
}

#[tokio::test]
async fn webhook_slack_teams_and_pagerduty_payloads() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let rig = Rig::new(
        db.open().await,
        Clock::manual(start_time()),
        &http_receivers(&listener.url),
    )
    .await;
    let finding = rig
        .finding("success_rate_drop:items:crm", Severity::Warning)
        .await;
    assert_eq!(rig.evaluate().await, 4, "one per receiver");
    assert_eq!(rig.deliver().await.sent, 4);

    let hooks = listener.on("/hook");
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
    mac.update(&hook.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(hook.headers["x-syncwarden-signature"], expected.as_str());
    let outbox = rig.store.outbox(None).await.unwrap();
    let hook_entry = outbox.iter().find(|o| o.receiver == "hook").unwrap();
    assert_eq!(
        hook.headers["idempotency-key"],
        format!("syncwarden-outbox-{}", hook_entry.id).as_str()
    );
    let payload = hook.json();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    assert_eq!(payload["receiver"], "hook");
    assert_eq!(payload["truncatedAlerts"], 0);
    assert_eq!(payload["groupLabels"]["type"], "success_rate_drop");
    assert_eq!(payload["commonLabels"]["connector"], "crm");
    let alert = &payload["alerts"][0];
    assert_eq!(alert["fingerprint"], "success_rate_drop:items:crm");
    assert_eq!(alert["labels"]["endpoint"], "items");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        alert["generatorURL"],
        format!("http://127.0.0.1:8080/ui/#/findings/{}", finding.id)
    );
    assert!(alert["startsAt"].is_string() && alert["endsAt"].is_null());

    let slack = listener.on("/slack")[0].json();
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("*[FIRING:1] success_rate_drop*"), "{text}");
    assert!(text.contains("success_rate_drop:items:crm is wrong"));

    let teams = listener.on("/teams")[0].json();
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["version"], "1.2");
    assert_eq!(
        card["content"]["body"][0]["text"],
        "[FIRING:1] success_rate_drop"
    );

    let pd = listener.on("/v2/enqueue")[0].json();
    assert_eq!(pd["routing_key"], "rk-123");
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["dedup_key"], "success_rate_drop:items:crm");
    assert_eq!(pd["payload"]["severity"], "warning");
    assert_eq!(
        pd["payload"]["summary"],
        "success_rate_drop:items:crm is wrong"
    );

    // The resolution reaches every receiver at the next evaluation, with no interval to wait.
    rig.resolve(&finding).await;
    rig.advance(1);
    assert_eq!(rig.evaluate().await, 4);
    assert_eq!(rig.deliver().await.sent, 4);
    let resolved = listener.on("/hook")[1].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    assert!(resolved["alerts"][0]["endsAt"].is_string());
    assert_eq!(
        listener.on("/v2/enqueue")[1].json()["event_action"],
        "resolve"
    );
    assert!(
        listener.on("/slack")[1].json()["text"]
            .as_str()
            .unwrap()
            .starts_with("*[RESOLVED:1]")
    );
    db.cleanup().await;
}

#[tokio::test]
async fn provider_limits_truncate_and_say_so() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let rig = Rig::new(
        db.open().await,
        Clock::manual(start_time()),
        &http_receivers(&listener.url),
    )
    .await;
    rig.store
        .upsert_finding(&NewFinding {
            kind: "price_mismatch".into(),
            severity: Severity::Info,
            fingerprint: "price_mismatch:pricebook:erp".into(),
            title: "x".repeat(5000),
            evidence: serde_json::json!({}),
            started_at: rig.clock.now(),
            detected_at: rig.clock.now(),
        })
        .await
        .unwrap();
    rig.evaluate().await;
    assert_eq!(rig.deliver().await.sent, 4);
    let text = listener.on("/slack")[0].json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text.chars().count(), 3000);
    assert!(text.ends_with("limit 3000)"), "{}", &text[2900..]);
    let summary = listener.on("/v2/enqueue")[0].json()["payload"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.contains("truncated"));
    db.cleanup().await;
}

fn webhook_only(url: &str, route: &str) -> String {
    format!(
        r#"
        [alerting.route]
        receiver = "hook"
        {route}
        [[alerting.receivers]]
        type = "webhook"
        name = "hook"
        url = "{url}/hook"
        {FAST_DELIVERY}
        "#
    )
}

#[tokio::test]
async fn ten_findings_one_group_one_notification_then_repeat_and_resolution() {
    for db in TestDb::all("ten_findings_one_group_one_notification").await {
        let listener = Listener::start().await;
        let toml = webhook_only(
            &listener.url,
            "group_by = [\"type\"]\ngroup_wait_secs = 30\ngroup_interval_secs = 300\nrepeat_interval_secs = 3600",
        );
        let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
        let mut findings = Vec::new();
        for endpoint in 0..10 {
            findings.push(
                rig.finding(
                    &format!("success_rate_drop:endpoint{endpoint}:crm"),
                    Severity::Warning,
                )
                .await,
            );
        }
        assert_eq!(rig.evaluate().await, 0, "group_wait holds the first notice");
        rig.advance(29);
        assert_eq!(rig.evaluate().await, 0);
        rig.advance(1);
        assert_eq!(rig.evaluate().await, 1);
        assert_eq!(rig.deliver().await.sent, 1);
        let first = listener.on("/hook")[0].json();
        assert_eq!(first["alerts"].as_array().unwrap().len(), 10);

        // Unchanged: nothing until the repeat interval.
        rig.advance(600);
        assert_eq!(rig.evaluate().await, 0);
        rig.advance(3000);
        assert_eq!(rig.evaluate().await, 1, "repeat after an hour");
        rig.deliver().await;
        assert_eq!(listener.on("/hook").len(), 2);

        // A new alert joins: told after the group interval, not before.
        rig.finding("success_rate_drop:endpoint10:crm", Severity::Warning)
            .await;
        rig.advance(60);
        assert_eq!(rig.evaluate().await, 0);
        rig.advance(240);
        assert_eq!(rig.evaluate().await, 1);
        rig.deliver().await;
        assert_eq!(
            listener.on("/hook")[2].json()["alerts"]
                .as_array()
                .unwrap()
                .len(),
            11
        );

        // A resolution goes out at once, naming the resolved alert.
        rig.resolve(&findings[3]).await;
        rig.advance(1);
        assert_eq!(rig.evaluate().await, 1);
        rig.deliver().await;
        let notice = listener.on("/hook")[3].json();
        let resolved: Vec<&serde_json::Value> = notice["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "resolved")
            .collect();
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            resolved[0]["fingerprint"],
            "success_rate_drop:endpoint3:crm"
        );
        assert_eq!(notice["alerts"].as_array().unwrap().len(), 11);
        assert_eq!(rig.evaluate().await, 0, "told once");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn silences_and_inhibition_mute_and_say_why() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let toml = format!(
        "{}\n{}",
        webhook_only(&listener.url, "group_by = [\"type\"]\ngroup_wait_secs = 0"),
        r#"
        [[alerting.inhibit_rules]]
        source_matchers = ["type=freshness"]
        target_matchers = ["type=success_rate_drop"]
        equal = ["connector"]
        "#
    );
    let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
    let silence = rig
        .store
        .add_silence(
            &NewSilence {
                matchers: vec![Matcher::parse("connector=tryton").unwrap()],
                starts_at: rig.clock.now(),
                ends_at: rig.clock.now() + Duration::from_secs(3600),
                author: "ana".into(),
                comment: "Tryton maintenance".into(),
            },
            rig.clock.now(),
        )
        .await
        .unwrap();
    rig.finding("latency:items:tryton", Severity::Warning).await;
    rig.finding("freshness:items:crm", Severity::Critical).await;
    rig.finding("success_rate_drop:items:crm", Severity::Warning)
        .await;
    rig.finding("success_rate_drop:items:erp", Severity::Warning)
        .await;
    // Neither carries a connector: a missing label is not "equal", so no inhibition.
    rig.finding("freshness:quotes", Severity::Critical).await;
    rig.finding("success_rate_drop:quotes", Severity::Warning)
        .await;

    let report = rig.alerting.run_once(rig.clock.now()).await.unwrap();
    assert_eq!(report.muted, 2);
    let alerts = rig.store.alerts(Timestamp::from_micros(0)).await.unwrap();
    let muted = |fp: &str| {
        alerts
            .iter()
            .find(|a| a.fingerprint == fp)
            .unwrap()
            .muted_by
            .clone()
    };
    assert_eq!(
        muted("latency:items:tryton").unwrap(),
        format!("silence {} by ana: Tryton maintenance", silence.id)
    );
    assert_eq!(
        muted("success_rate_drop:items:crm").unwrap(),
        "inhibited by freshness:items:crm"
    );
    assert_eq!(muted("success_rate_drop:items:erp"), None);
    assert_eq!(muted("success_rate_drop:quotes"), None);
    rig.deliver().await;
    let notified: Vec<String> = listener
        .on("/hook")
        .iter()
        .flat_map(|r| {
            r.json()["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["fingerprint"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!notified.contains(&"latency:items:tryton".to_string()));
    assert!(!notified.contains(&"success_rate_drop:items:crm".to_string()));
    assert!(notified.contains(&"success_rate_drop:items:erp".to_string()));
    assert!(notified.contains(&"success_rate_drop:quotes".to_string()));

    // The silence ends: the alert is told.
    rig.advance(3600);
    rig.evaluate().await;
    rig.deliver().await;
    let alerts = rig.store.alerts(Timestamp::from_micros(0)).await.unwrap();
    assert!(
        alerts
            .iter()
            .all(|a| a.fingerprint != "latency:items:tryton" || a.muted_by.is_none())
    );
    assert!(
        listener
            .on("/hook")
            .iter()
            .any(|r| r.json()["groupLabels"]["type"] == "latency")
    );
    db.cleanup().await;
}

#[tokio::test]
async fn smtp_down_for_a_while_then_delivered_exactly_once() {
    for db in TestDb::all("smtp_down_for_a_while_then_delivered_exactly_once").await {
        let mut smtp = SmtpServer::start().await;
        let toml = format!(
            "[alerting.route]\nreceiver = \"mail\"\ngroup_wait_secs = 0\n{}{}",
            email_receiver(smtp.port, ""),
            FAST_DELIVERY.replace("failing_after = 3", "failing_after = 10")
        );
        let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
        smtp.stop();
        rig.finding("freshness:items:erp", Severity::Critical).await;
        assert_eq!(rig.evaluate().await, 1);
        for _ in 0..3 {
            let report = rig.deliver().await;
            assert_eq!(report.retried, 1, "{report:?}");
            assert_eq!(rig.deliver().await.retried, 0, "not before its backoff");
            rig.advance(1);
        }
        smtp.restart().await;
        assert_eq!(rig.deliver().await.sent, 1);
        rig.advance(3600);
        assert_eq!(rig.deliver().await, Default::default());
        assert_eq!(rig.evaluate().await, 0);
        assert_eq!(smtp.messages().len(), 1);
        let attempts = rig.store.notification_attempts("mail").await.unwrap();
        let outcomes: Vec<AttemptOutcome> = attempts.iter().map(|a| a.outcome).collect();
        use AttemptOutcome::*;
        assert_eq!(outcomes, [Retry, Retry, Retry, Sent]);
        assert!(attempts[0].error.as_deref().unwrap().contains("SMTP"));
        let outbox = rig.store.outbox(None).await.unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].status, OutboxStatus::Sent);
        assert_eq!(outbox[0].attempts, 4);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_restart_with_undelivered_notifications_delivers_each_once() {
    for db in TestDb::all("a_restart_with_undelivered_notifications").await {
        let listener = Listener::start().await;
        let toml = webhook_only(
            &listener.url,
            "group_by = [\"connector\"]\ngroup_wait_secs = 0",
        );
        let clock = Clock::manual(start_time());
        {
            let rig = Rig::new(db.open().await, clock.clone(), &toml).await;
            rig.finding("freshness:items:crm", Severity::Critical).await;
            rig.finding("freshness:items:erp", Severity::Critical).await;
            rig.finding("latency:quotes:tryton", Severity::Warning)
                .await;
            assert_eq!(rig.evaluate().await, 3);
            // One notification was taken by a worker that died mid-send.
            let taken = rig
                .store
                .claim_notifications(
                    "dead-worker",
                    clock.now(),
                    clock.now() + Duration::from_secs(60),
                    1,
                )
                .await
                .unwrap();
            assert_eq!(taken.len(), 1);
            rig.store.close().await;
        }
        // A new process on the same database.
        let rig = Rig::new(db.open().await, clock.clone(), &toml).await;
        assert_eq!(
            rig.evaluate().await,
            0,
            "the log remembers what is already queued"
        );
        assert_eq!(rig.deliver().await.sent, 2);
        assert_eq!(
            rig.deliver().await.sent,
            0,
            "the dead worker's claim still holds"
        );
        rig.advance(61);
        assert_eq!(rig.deliver().await.sent, 1, "its claim expired");
        rig.advance(3600);
        assert_eq!(rig.deliver().await.sent, 0);
        let mut connectors: Vec<String> = listener
            .on("/hook")
            .iter()
            .map(|r| {
                r.json()["groupLabels"]["connector"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        connectors.sort();
        assert_eq!(connectors, ["crm", "erp", "tryton"]);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_failing_receiver_raises_its_own_finding() {
    for db in TestDb::all("a_failing_receiver_raises_its_own_finding").await {
        let listener = Listener::start().await;
        let toml = webhook_only(
            &listener.url,
            "group_by = [\"connector\"]\ngroup_wait_secs = 0",
        );
        let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
        listener.answer(503);
        rig.finding("freshness:items:crm", Severity::Critical).await;
        rig.evaluate().await;
        for _ in 0..3 {
            assert_eq!(rig.deliver().await.retried, 1);
            rig.advance(1);
        }
        let failing: Vec<Finding> = rig
            .store
            .findings(Some(FindingState::Open))
            .await
            .unwrap()
            .into_iter()
            .filter(|f| f.kind == "receiver_failing")
            .collect();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].severity, Severity::Critical);
        assert_eq!(failing[0].evidence["receiver"], "hook");
        assert_eq!(failing[0].evidence["failed_attempts"], 3);
        assert!(
            failing[0].evidence["last_error"]
                .as_str()
                .unwrap()
                .contains("503")
        );

        // A 4xx other than 429 is not retried.
        listener.answer(400);
        let report = rig.deliver().await;
        assert_eq!(report.failed, 1, "{report:?}");
        rig.advance(3600);
        assert_eq!(rig.deliver().await, Default::default());
        assert_eq!(
            rig.store
                .outbox(Some(OutboxStatus::Failed))
                .await
                .unwrap()
                .len(),
            1
        );

        // Back to health: the next notification (about the failing receiver itself) arrives and
        // the receiver's finding resolves.
        listener.answer(200);
        assert!(rig.evaluate().await >= 1);
        assert!(rig.deliver().await.sent >= 1);
        assert!(
            listener
                .on("/hook")
                .iter()
                .any(|r| r.json()["groupLabels"]["connector"] == "hook")
        );
        let still_open = rig
            .store
            .findings(Some(FindingState::Open))
            .await
            .unwrap()
            .into_iter()
            .any(|f| f.kind == "receiver_failing");
        assert!(!still_open);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn two_workers_on_one_database_send_each_notification_once() {
    for db in TestDb::all("two_workers_on_one_database_send_each_notification_once").await {
        let listener = Listener::start().await;
        let toml = webhook_only(
            &listener.url,
            "group_by = [\"endpoint\"]\ngroup_wait_secs = 0",
        );
        let clock = Clock::manual(start_time());
        let rig = Rig::new(db.open().await, clock.clone(), &toml).await;
        for n in 0..20 {
            rig.finding(&format!("freshness:endpoint{n}:crm"), Severity::Warning)
                .await;
        }
        assert_eq!(rig.evaluate().await, 20);
        let other = Rig::new(db.open().await, clock.clone(), &toml).await;
        let (a, b) = tokio::join!(rig.worker.run_once(), other.worker.run_once());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.sent + b.sent, 20, "{a:?} {b:?}");
        let (a, b) = tokio::join!(rig.worker.run_once(), other.worker.run_once());
        assert_eq!(a.unwrap().sent + b.unwrap().sent, 0);
        let mut groups: Vec<String> = listener
            .on("/hook")
            .iter()
            .map(|r| r.json()["groupKey"].as_str().unwrap().to_string())
            .collect();
        groups.sort();
        groups.dedup();
        assert_eq!(groups.len(), 20);
        assert_eq!(listener.on("/hook").len(), 20);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn alert_test_command_sends_through_the_named_receiver() {
    let listener = Listener::start().await;
    let smtp = SmtpServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alerting.toml");
    let toml = format!(
        "{}\n{}",
        webhook_only(&listener.url, ""),
        email_receiver(smtp.port, "")
    );
    std::fs::write(&config, toml).unwrap();
    let run = |receiver: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
                .arg("--config")
                .arg(&config)
                .args(["alert", "test", "--receiver", receiver])
                .output()
                .unwrap()
        })
    };
    let out = run("hook").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hooks = listener.on("/hook");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["alerts"][0]["labels"]["type"], "test");

    let out = run("mail").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(smtp.messages().len(), 1);
    assert!(
        smtp.messages()[0]
            .header("Subject")
            .unwrap()
            .contains("[FIRING:1] test")
    );

    let out = run("nobody").await.unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no receiver named `nobody`"), "{stderr}");

    listener.answer(400);
    let out = run("hook").await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the test notification"));
}

#[tokio::test]
async fn the_serve_loop_evaluates_and_delivers_on_its_interval_until_stopped() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let settings = alerting_settings(&webhook_only(&listener.url, "group_wait_secs = 10"));
    let store = db.open().await;
    let clock = Clock::manual(start_time());
    let (alerting, worker) = syncwarden::alert::service::build(
        &settings,
        &LlmSettings::default(),
        store.clone(),
        clock.clone(),
    )
    .unwrap()
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let leases = syncwarden::lease::Leases::new(
        store.clone(),
        clock.clone(),
        syncwarden::lease::DEFAULT_LEASE,
    );
    let task = tokio::spawn(syncwarden::alert::service::run(
        alerting,
        worker,
        clock.clone(),
        leases,
        Duration::from_secs(5),
        stop_rx,
    ));
    store
        .upsert_finding(&NewFinding {
            kind: "freshness".into(),
            severity: Severity::Critical,
            fingerprint: "freshness:items:erp".into(),
            title: "items stopped arriving from the ERP".into(),
            evidence: serde_json::json!({"silence_secs": 1200}),
            started_at: clock.now(),
            detected_at: clock.now(),
        })
        .await
        .unwrap();
    // Each advance wakes the loop for one pass; group_wait is 10 s, so the third pass sends.
    let mut waited = 0;
    while listener.on("/hook").is_empty() {
        clock.advance(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 100, "nothing delivered");
    }
    assert_eq!(listener.on("/hook").len(), 1);
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    db.cleanup().await;
}

#[test]
fn a_missing_receiver_is_no_alerting_and_a_bad_route_is_an_error() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = TestDb::sqlite();
        let store = db.open().await;
        let clock = Clock::manual(start_time());
        let none = syncwarden::alert::service::build(
            &AlertingSettings::default(),
            &LlmSettings::default(),
            store.clone(),
            clock.clone(),
        )
        .unwrap();
        assert!(none.is_none());
        let bad = alerting_settings(
            "[alerting.route]\nreceiver = \"nobody\"\n[[alerting.receivers]]\ntype = \"slack\"\nname = \"s\"\nurl = \"http://127.0.0.1:1/x\"",
        );
        let err = syncwarden::alert::service::build(&bad, &LlmSettings::default(), store, clock)
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown receiver `nobody`"), "{err}");
    });
}

#[tokio::test]
async fn silences_from_the_command_line_mute_and_stale_ones_are_flagged() {
    let db = TestDb::sqlite();
    let store = db.open().await;
    let cli = |args: &'static [&'static str]| {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_syncwarden"))
                .env("SYNCWARDEN_DATABASE__URL", url)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let added = cli(&[
        "alert",
        "silence",
        "add",
        "--matcher",
        "connector=erp",
        "--matcher",
        "type=~fresh.*",
        "--minutes",
        "60",
        "--author",
        "ana",
        "--comment",
        "ERP maintenance",
    ])
    .await
    .unwrap();
    let silence: serde_json::Value = serde_json::from_str(&added).unwrap();
    assert_eq!(
        silence["matchers"],
        serde_json::json!(["connector=erp", "type=~fresh.*"])
    );
    let listed = cli(&["alert", "silence", "list"]).await.unwrap();
    assert!(listed.contains("active"), "{listed}");
    assert!(listed.contains("(matches nothing)"), "{listed}");

    let listener = Listener::start().await;
    let rig = Rig::new(store, Clock::system(), &webhook_only(&listener.url, "")).await;
    rig.finding("freshness:items:erp", Severity::Critical).await;
    rig.alerting.run_once(rig.clock.now()).await.unwrap();

    let alerts = cli(&["alert", "list"]).await.unwrap();
    assert!(
        alerts.contains("freshness:items:erp")
            && alerts.contains("MUTED: silence 1 by ana: ERP maintenance"),
        "{alerts}"
    );
    let listed = cli(&["alert", "silence", "list"]).await.unwrap();
    assert!(
        listed.contains("mutes 1") && !listed.contains("matches nothing"),
        "{listed}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn a_flapping_finding_is_not_told_resolved_within_keep_firing_for() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let toml = format!(
        "[alerting]\nkeep_firing_for_secs = 300\n{}",
        webhook_only(&listener.url, "group_wait_secs = 0")
    );
    let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
    let finding = rig.finding("latency:items:crm", Severity::Warning).await;
    assert_eq!(rig.evaluate().await, 1);
    rig.deliver().await;
    // Resolves, recurs two minutes later, resolves again: one incident to the receiver.
    rig.resolve(&finding).await;
    rig.advance(60);
    assert_eq!(
        rig.evaluate().await,
        0,
        "still firing inside keep_firing_for"
    );
    rig.advance(60);
    let finding = rig.finding("latency:items:crm", Severity::Warning).await;
    assert_eq!(
        rig.evaluate().await,
        0,
        "the recurrence is the same incident"
    );
    rig.resolve(&finding).await;
    rig.advance(299);
    assert_eq!(rig.evaluate().await, 0);
    rig.advance(1);
    assert_eq!(
        rig.evaluate().await,
        1,
        "resolved once keep_firing_for passed"
    );
    rig.deliver().await;
    let sent = listener.on("/hook");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].json()["status"], "resolved");
    db.cleanup().await;
}

#[tokio::test]
async fn a_mute_window_holds_a_route_and_says_so() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    // The clock starts on Monday 2026-11-23 at 08:00 UTC.
    let toml = format!(
        "{}\n{}",
        webhook_only(
            &listener.url,
            r#"group_wait_secs = 0
            [[alerting.route.routes]]
            matchers = ["type=latency"]
            mute_time_intervals = ["monday-morning"]"#,
        ),
        r#"
        [[alerting.time_intervals]]
        name = "monday-morning"
        weekdays = ["monday"]
        start_time = "08:00"
        end_time = "09:00"
        "#
    );
    let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
    rig.finding("latency:items:crm", Severity::Warning).await;
    rig.finding("freshness:items:crm", Severity::Warning).await;
    assert_eq!(rig.evaluate().await, 1, "only the unmuted route notifies");
    let alerts = rig.store.alerts(Timestamp::from_micros(0)).await.unwrap();
    let latency = alerts
        .iter()
        .find(|a| a.fingerprint == "latency:items:crm")
        .unwrap();
    assert_eq!(
        latency.muted_by.as_deref(),
        Some("mute window monday-morning on route 0.0")
    );
    rig.advance(3600);
    assert_eq!(rig.evaluate().await, 1, "the window closed");
    rig.deliver().await;
    let types: Vec<String> = listener
        .on("/hook")
        .iter()
        .map(|r| {
            r.json()["alerts"][0]["labels"]["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(types, ["freshness", "latency"]);
    db.cleanup().await;
}

const EXPLAINED: &str = "The CRM rejected 17 of 120 item writes. An expired API token is the likely cause. Renew the token and re-drive the failed writes.";

/// Webhook, Slack, Teams, PagerDuty and email, all on one route with a group wait.
fn every_receiver(url: &str, smtp: u16, prompt: &std::path::Path, group_wait: u64) -> String {
    let http = http_receivers(url)
        .replace(
            "group_wait_secs = 0",
            &format!("group_wait_secs = {group_wait}"),
        )
        .replacen(
            "[[alerting.route.routes]]",
            "[[alerting.route.routes]]\nreceiver = \"mail\"\ncontinue = true\n[[alerting.route.routes]]",
            1,
        );
    format!(
        "[alerting]\nexplanation_prompt = \"{}\"\n{http}\n{}",
        prompt.display(),
        email_receiver(smtp, "")
    )
}

async fn explained_rig(db: &TestDb, llm: &crate::llm::LlmServer, toml: &str) -> Rig {
    let store = db.open().await;
    let clock = Clock::manual(start_time());
    let settings = alerting_settings(toml);
    let alerting = Alerting::new(&settings, store.clone())
        .unwrap()
        .with_llm(&llm.settings("unused".into()))
        .unwrap();
    let worker = Rig::worker(&store, &clock, &settings);
    Rig {
        store,
        clock,
        alerting,
        worker,
    }
}

async fn finding_with_personal_evidence(rig: &Rig) {
    rig.store
        .upsert_finding(&NewFinding {
            kind: "success_rate_drop".into(),
            severity: Severity::Critical,
            fingerprint: "success_rate_drop:items:crm".into(),
            title: "Item writes to the CRM are failing".into(),
            evidence: serde_json::json!({"failures": 17, "calls": 120, "last_contact_email": "jane@x.test"}),
            started_at: rig.clock.now() - Duration::from_secs(600),
            detected_at: rig.clock.now(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn alerts_carry_the_llm_explanation_to_every_receiver() {
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let smtp = SmtpServer::start().await;
    let llm = crate::llm::LlmServer::start().await;
    llm.reply(crate::llm::Reply::Text(EXPLAINED.into()));
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("explain.md");
    std::fs::write(&prompt, "Explain this alert:\n{{alert}}").unwrap();
    let rig = explained_rig(
        &db,
        &llm,
        &every_receiver(&listener.url, smtp.port, &prompt, 30),
    )
    .await;
    finding_with_personal_evidence(&rig).await;
    // The group waits; meanwhile the explanation is asked for.
    assert_eq!(rig.evaluate().await, 0);
    rig.alerting.settle_explanations().await;
    rig.advance(30);
    assert_eq!(rig.evaluate().await, 5);
    assert_eq!(rig.deliver().await.sent, 5);

    let asked = llm.prompts();
    assert_eq!(asked.len(), 1);
    assert!(asked[0].starts_with("Explain this alert:"), "{}", asked[0]);
    assert!(asked[0].contains("\"failures\": 17"), "{}", asked[0]);
    assert!(!asked[0].contains("jane@x.test"), "{}", asked[0]);
    assert!(
        asked[0].contains("[redacted last_contact_email #1]"),
        "{}",
        asked[0]
    );

    let hook = listener.on("/hook")[0].json();
    let annotations = &hook["alerts"][0]["annotations"];
    assert_eq!(annotations["explanation"], EXPLAINED);
    assert_eq!(annotations["explanation_source"], "llm");
    let slack = listener.on("/slack")[0].json();
    assert!(slack["text"].as_str().unwrap().contains(EXPLAINED));
    let teams = listener.on("/teams")[0].json();
    assert!(
        teams["attachments"][0]["content"]["body"][1]["text"]
            .as_str()
            .unwrap()
            .contains(EXPLAINED)
    );
    let pd = listener.on("/v2/enqueue")[0].json();
    assert_eq!(pd["payload"]["custom_details"]["explanation"], EXPLAINED);
    let mail = smtp.messages()[0].decoded().replace("\r\n", " ");
    assert!(mail.contains(EXPLAINED), "{mail}");
    db.cleanup().await;
}

#[tokio::test]
async fn without_an_llm_answer_alerts_carry_the_template_and_are_not_held_back() {
    let dir = tempfile::tempdir().unwrap();
    let prompt = dir.path().join("explain.md");
    std::fs::write(&prompt, "Explain:\n{{alert}}").unwrap();
    for reply in [
        crate::llm::Reply::Slow,
        crate::llm::Reply::Broken,
        crate::llm::Reply::Garbage,
    ] {
        let db = TestDb::sqlite();
        let listener = Listener::start().await;
        let smtp = SmtpServer::start().await;
        let llm = crate::llm::LlmServer::start().await;
        llm.reply(reply.clone());
        let toml = every_receiver(&listener.url, smtp.port, &prompt, 0);
        let rig = explained_rig(&db, &llm, &toml).await;
        finding_with_personal_evidence(&rig).await;
        // No group wait: the notifications go now, whatever the LLM is doing.
        assert_eq!(rig.evaluate().await, 5, "{reply:?}");
        assert_eq!(rig.deliver().await.sent, 5);
        rig.alerting.settle_explanations().await;
        let hook = listener.on("/hook")[0].json();
        let annotations = &hook["alerts"][0]["annotations"];
        assert_eq!(annotations["explanation_source"], "template", "{reply:?}");
        let text = annotations["explanation"].as_str().unwrap();
        assert!(
            text.starts_with(
                "What happened: Item writes to the CRM are failing on items crm (critical severity)"
            ),
            "{text}"
        );
        assert!(
            text.contains("Likely cause: the connector's API is failing"),
            "{text}"
        );
        assert!(
            text.contains("Suggested action: check the connector"),
            "{text}"
        );
        assert!(
            listener.on("/slack")[0].json()["text"]
                .as_str()
                .unwrap()
                .contains("Likely cause:")
        );
        // The failed answer is not stored: the next notification still carries the template.
        let alerts = rig.store.alerts(start_time()).await.unwrap();
        assert!(
            !alerts[0].annotations.contains_key("explanation"),
            "{reply:?}"
        );
        db.cleanup().await;
    }
    // No LLM configured: the template too, and no prompt file needed.
    let db = TestDb::sqlite();
    let listener = Listener::start().await;
    let toml = format!(
        "[alerting]\nexplanation_prompt = \"/nonexistent.md\"\n{}",
        webhook_only(&listener.url, "group_wait_secs = 0")
    );
    let rig = Rig::new(db.open().await, Clock::manual(start_time()), &toml).await;
    rig.finding("success_rate_drop:items:crm", Severity::Warning)
        .await;
    rig.evaluate().await;
    rig.deliver().await;
    let hook = listener.on("/hook")[0].json();
    assert_eq!(
        hook["alerts"][0]["annotations"]["explanation_source"],
        "template"
    );
    db.cleanup().await;
}

/// `serve` killed (SIGKILL) while a webhook is in flight: after a restart that notification is
/// sent again with the same `Idempotency-Key` (the receiver can drop the repeat), every other one
/// exactly once, and the outbox ends with all of them sent.
#[tokio::test]
async fn sigkill_during_a_notification_send_resends_it_under_the_same_key() {
    for db in TestDb::all("sigkill_during_a_notification_send").await {
        let listener = Listener::start().await;
        listener.answer(HOLD);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alerting.toml");
        let route = webhook_only(
            &listener.url,
            "group_by = [\"connector\"]\ngroup_wait_secs = 0",
        );
        let toml = route
            .replace(
                "[alerting.route]",
                "[alerting]\nevaluation_interval_secs = 1\n[alerting.route]",
            )
            .replace("max_attempts = 5", "max_attempts = 5\nclaim_secs = 2");
        std::fs::write(&config, toml).unwrap();
        let store = db.open().await;
        let rig = Rig::new(store.clone(), Clock::system(), &route).await;
        for fingerprint in [
            "freshness:items:crm",
            "freshness:items:erp",
            "latency:quotes:tryton",
        ] {
            rig.finding(fingerprint, Severity::Critical).await;
        }

        let (mut serve, _) = crate::helpers::spawn_serve(&db.url, dir.path(), Some(&config));
        let keys = |listener: &Listener| -> Vec<String> {
            listener
                .on("/hook")
                .iter()
                .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string())
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while keys(&listener).is_empty() {
            assert!(std::time::Instant::now() < deadline, "nothing was sent");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        serve.kill().unwrap();
        serve.wait().unwrap();
        // The listener runs on this test's thread, so requests the killed instance had already
        // sent may not be read yet: let it read them, or they would count as answered after the
        // restart (beside the restarted instance's resend of the same key).
        let mut in_flight = keys(&listener);
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = keys(&listener);
            if now.len() == in_flight.len() {
                break;
            }
            in_flight = now;
        }
        assert!(
            in_flight
                .iter()
                .all(|k| k.starts_with("syncwarden-outbox-")),
            "{in_flight:?}"
        );

        listener.answer(200);
        let answered_from = listener.on("/hook").len();
        let (mut serve, _) = crate::helpers::spawn_serve(&db.url, dir.path(), Some(&config));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let sent = loop {
            let outbox = store.outbox(None).await.unwrap();
            if outbox.len() >= 3 && outbox.iter().all(|o| o.status == OutboxStatus::Sent) {
                break outbox;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not all sent: {outbox:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        serve.kill().unwrap();
        serve.wait().unwrap();

        let answered: Vec<Request> = listener.on("/hook")[answered_from..].to_vec();
        let mut answered_keys: Vec<String> = answered
            .iter()
            .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_string())
            .collect();
        for key in &in_flight {
            assert!(answered_keys.contains(key), "{key} was never delivered");
        }
        answered_keys.sort();
        let total = answered_keys.len();
        answered_keys.dedup();
        assert_eq!(
            total,
            answered_keys.len(),
            "a notification was delivered twice"
        );
        assert_eq!(answered_keys.len(), sent.len());
        let mut connectors: Vec<String> = answered
            .iter()
            .map(|r| {
                r.json()["groupLabels"]["connector"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        connectors.sort();
        assert_eq!(connectors, ["crm", "erp", "tryton"]);
        store.close().await;
        db.cleanup().await;
    }
}
