//! `syncwarden bench alert`: (1) time from a finding recorded to its email accepted by an SMTP
//! server, through evaluation (group_wait 0), the outbox and the worker, over real sockets;
//! (2) notifications per second through the outbox to a local webhook listener, beside a baseline
//! in the same run: the same payloads POSTed directly with the same concurrency, no outbox.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::evaluate::Alerting;
use super::model::{AlertStatus, Labels, NewNotification, NotificationLogEntry};
use super::notifiers::{Notification, NotifiedAlert, build_notifiers};
use super::settings::AlertingSettings;
use super::worker::DeliveryWorker;
use crate::clock::Clock;
use crate::config::{DatabaseSettings, Settings};
use crate::monitor::{NewFinding, Severity};
use crate::store::{self, Store};

#[derive(Debug, Clone)]
pub struct AlertBenchOptions {
    pub findings: usize,
    /// Findings recorded per second while the pipeline runs.
    pub rate: u32,
    pub notifications: usize,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertBenchReport {
    pub findings: usize,
    pub finding_to_email_p50_ms: f64,
    pub finding_to_email_p99_ms: f64,
    pub finding_to_email_max_ms: f64,
    /// Evaluate-then-deliver passes during the latency run, and their mean duration: a finding
    /// waits for the pass under way to end, then one whole pass.
    pub pipeline_passes: usize,
    pub pass_mean_ms: f64,
    pub notifications: usize,
    pub outbox_per_sec: f64,
    pub direct_post_per_sec: f64,
    /// Outbox throughput over the direct baseline.
    pub ratio: f64,
    pub batch_size: u32,
}

pub async fn run_alert_bench(options: &AlertBenchOptions) -> anyhow::Result<AlertBenchReport> {
    let dir = options
        .data_dir
        .join(format!("bench-alert-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(options, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn open(dir: &std::path::Path, name: &str) -> anyhow::Result<Arc<dyn Store>> {
    let url = format!("sqlite://{}", dir.join(name).display());
    let store = store::connect(&url.into(), &DatabaseSettings::default()).await?;
    store.migrate().await?;
    Ok(store)
}

async fn bench(
    options: &AlertBenchOptions,
    dir: &std::path::Path,
) -> anyhow::Result<AlertBenchReport> {
    let (smtp_port, accepted) = smtp_sink().await?;
    let (webhook_url, received) = webhook_sink().await?;
    let settings = Settings::from_toml_str(&format!(
        r#"
        [alerting.route]
        receiver = "mail"
        group_by = ["endpoint"]
        group_wait_secs = 0
        [[alerting.receivers]]
        type = "email"
        name = "mail"
        host = "127.0.0.1"
        port = {smtp_port}
        tls = "none"
        from = "bench@syncwarden.test"
        to = ["admin@syncwarden.test"]
        [[alerting.receivers]]
        type = "webhook"
        name = "hook"
        url = "{webhook_url}/hook"
        "#
    ))?
    .alerting;

    let (latencies, passes, pass_mean_ms) =
        finding_to_email(options, &settings, open(dir, "latency.db").await?, accepted).await?;
    let (outbox_per_sec, direct_per_sec) = throughput(
        options.notifications,
        &settings,
        open(dir, "throughput.db").await?,
        &webhook_url,
        received,
    )
    .await?;
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok(AlertBenchReport {
        findings: options.findings,
        finding_to_email_p50_ms: pct(0.50),
        finding_to_email_p99_ms: pct(0.99),
        finding_to_email_max_ms: pct(1.0),
        pipeline_passes: passes,
        pass_mean_ms,
        notifications: options.notifications,
        outbox_per_sec,
        direct_post_per_sec: direct_per_sec,
        ratio: outbox_per_sec / direct_per_sec,
        batch_size: settings.delivery.batch_size,
    })
}

/// Records findings at `rate` while one loop evaluates and delivers back to back; returns the
/// sorted latencies in milliseconds, the passes made and their mean duration in milliseconds.
async fn finding_to_email(
    options: &AlertBenchOptions,
    settings: &AlertingSettings,
    store: Arc<dyn Store>,
    accepted: Arc<Mutex<HashMap<String, Instant>>>,
) -> anyhow::Result<(Vec<f64>, usize, f64)> {
    let clock = Clock::system();
    let alerting = Alerting::new(settings, store.clone())?;
    let notifiers = build_notifiers(&settings.receivers, Duration::from_secs(10))?;
    let worker = DeliveryWorker::new(
        store.clone(),
        notifiers,
        settings.delivery.clone(),
        clock.clone(),
    );
    let total = options.findings;
    let done = Arc::new(AtomicUsize::new(0));
    let pipeline = {
        let done = done.clone();
        let accepted = accepted.clone();
        async move {
            while accepted.lock().map(|a| a.len()).unwrap_or(0) < total {
                alerting.run_once(clock.now()).await?;
                worker.run_once().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }
    };
    let producer = async {
        let mut recorded = HashMap::with_capacity(total);
        let gap = Duration::from_secs_f64(1.0 / f64::from(options.rate.max(1)));
        let start = Instant::now();
        for i in 0..total {
            let endpoint = format!("e{i}");
            let now = crate::domain::Timestamp::now_utc();
            store
                .upsert_finding(&NewFinding {
                    kind: "bench".into(),
                    severity: Severity::Warning,
                    fingerprint: format!("bench:{endpoint}:crm"),
                    title: format!("bench finding {i}"),
                    evidence: serde_json::json!({"i": i}),
                    started_at: now,
                    detected_at: now,
                })
                .await?;
            recorded.insert(endpoint, Instant::now());
            tokio::time::sleep_until((start + gap * (i as u32 + 1)).into()).await;
        }
        anyhow::Ok(recorded)
    };
    let started = Instant::now();
    let (recorded, piped) = tokio::join!(producer, pipeline);
    let elapsed = started.elapsed();
    piped?;
    let recorded = recorded?;
    let accepted = accepted.lock().map(|a| a.clone()).unwrap_or_default();
    let mut latencies: Vec<f64> = recorded
        .iter()
        .filter_map(|(endpoint, at)| {
            accepted
                .get(endpoint)
                .map(|done| done.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    anyhow::ensure!(
        latencies.len() == total,
        "{} of {total} emails arrived",
        latencies.len()
    );
    latencies.sort_by(f64::total_cmp);
    let passes = done.load(Ordering::Relaxed);
    Ok((
        latencies,
        passes,
        elapsed.as_secs_f64() * 1000.0 / passes.max(1) as f64,
    ))
}

/// Outbox rows delivered by the worker versus the same payloads POSTed directly in batches of
/// the worker's size. Returns (outbox per second, direct per second).
async fn throughput(
    count: usize,
    settings: &AlertingSettings,
    store: Arc<dyn Store>,
    webhook_url: &str,
    received: Arc<AtomicUsize>,
) -> anyhow::Result<(f64, f64)> {
    let clock = Clock::system();
    let notifications: Vec<Notification> = (0..count).map(sample).collect();
    for n in &notifications {
        let log = NotificationLogEntry {
            receiver: "hook".into(),
            group_key: n.group_key.clone(),
            hash: String::new(),
            firing: vec![n.alerts[0].fingerprint.clone()],
            resolved: Vec::new(),
            sent_at: clock.now(),
        };
        let row = NewNotification {
            receiver: "hook".into(),
            group_key: n.group_key.clone(),
            payload: serde_json::to_value(n)?,
        };
        store
            .record_notification(&log, Some(&row), clock.now())
            .await?;
    }
    let notifiers = build_notifiers(&settings.receivers, Duration::from_secs(10))?;
    let hook = notifiers
        .get("hook")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no hook receiver"))?;
    let worker = DeliveryWorker::new(store, notifiers, settings.delivery.clone(), clock);
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let report = worker.run_once().await?;
        anyhow::ensure!(
            report.retried + report.failed == 0,
            "delivery failed: {report:?}"
        );
        sent += report.sent;
    }
    let outbox = count as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        received.load(Ordering::SeqCst) == count,
        "webhook count mismatch"
    );

    let started = Instant::now();
    for chunk in notifications.chunks(settings.delivery.batch_size as usize) {
        for result in join_all(chunk.iter().map(|n| hook.notify(n))).await {
            result.map_err(|e| anyhow::anyhow!("direct POST to {webhook_url}: {e}"))?;
        }
    }
    let direct = count as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        received.load(Ordering::SeqCst) == 2 * count,
        "webhook count mismatch"
    );
    Ok((outbox, direct))
}

fn sample(i: usize) -> Notification {
    let labels: Labels = [
        ("type", "bench"),
        ("severity", "warning"),
        ("connector", "crm"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("endpoint".to_string(), format!("e{i}"))])
    .collect();
    let annotations = Labels::from([("summary".to_string(), format!("bench finding {i}"))]);
    Notification {
        receiver: "hook".into(),
        group_key: format!("bench:{i}"),
        status: AlertStatus::Firing,
        group_labels: Labels::from([("endpoint".to_string(), format!("e{i}"))]),
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: "http://127.0.0.1:8080".into(),
        alerts: vec![NotifiedAlert {
            status: AlertStatus::Firing,
            labels,
            annotations,
            starts_at: crate::domain::Timestamp::now_utc(),
            ends_at: None,
            fingerprint: format!("bench:e{i}:crm"),
            generator_url: format!("http://127.0.0.1:8080/ui/#/findings/{i}"),
        }],
        delivery_key: None,
    }
}

/// An SMTP sink that notes when it accepted each message, keyed by the last word of its subject
/// (the group's endpoint label).
async fn smtp_sink() -> anyhow::Result<(u16, Arc<Mutex<HashMap<String, Instant>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let accepted = Arc::new(Mutex::new(HashMap::new()));
    let sink = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read);
                let mut line = String::new();
                let mut subject = String::new();
                let _ = write.write_all(b"220 bench ESMTP\r\n").await;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("DATA") {
                        let _ = write.write_all(b"354 go\r\n").await;
                        loop {
                            line.clear();
                            if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            if let Some(s) = line.strip_prefix("Subject: ") {
                                subject = s.trim().to_string();
                            }
                        }
                        let key = subject.rsplit(' ').next().unwrap_or("").to_string();
                        if let Ok(mut map) = sink.lock() {
                            map.insert(key, Instant::now());
                        }
                        b"250 OK\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((port, accepted))
}

/// A webhook listener that counts the POSTs it answers.
async fn webhook_sink() -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}
