//! The admin API under load: requests/s and latency percentiles for listing findings, listing
//! proposals (`/v1/actions`) and the audit-trail query, with a million field events in the store,
//! each beside `/healthz` on the same server in the same run. The load generator is in-process
//! (concurrent keep-alive clients on loopback), so it works on a fresh machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::ingest::Scratch;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{
    Endpoint, MergeField, NewDedupProposal, NewFieldEvent, Outcome, Role, System, Timestamp,
};
use crate::monitor::{NewFinding, Severity};
use crate::startup::Application;
use crate::store::Store;

pub struct ApiBenchOptions {
    pub events: usize,
    /// Requests per route.
    pub requests: usize,
    /// Clients sending at once.
    pub concurrency: usize,
    /// A PostgreSQL server URL; a scratch database is created on it and dropped afterwards.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct RouteFigures {
    pub route: String,
    pub requests: usize,
    pub errors: usize,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// requests_per_sec / the baseline's.
    pub ratio_to_baseline: f64,
}

#[derive(Debug, Serialize)]
pub struct ApiBenchReport {
    pub backend: &'static str,
    pub events: usize,
    pub findings: usize,
    pub proposals: usize,
    pub concurrency: usize,
    pub seed_secs: f64,
    pub baseline: RouteFigures,
    pub routes: Vec<RouteFigures>,
}

const FINDINGS: usize = 200;
const PROPOSALS: usize = 200;
const RECORDS: usize = 100_000;
const BATCH: usize = 10_000;

pub async fn run_api_bench(options: &ApiBenchOptions) -> anyhow::Result<ApiBenchReport> {
    let scratch = Scratch::create_in(options.database_url.as_deref(), &options.data_dir).await?;
    let store = scratch.open().await?;
    let started = Instant::now();
    seed(store.as_ref(), options.events).await?;
    let seed_secs = started.elapsed().as_secs_f64();

    let mut settings = Settings::default();
    settings.database.url = scratch.url().to_string().into();
    settings.server.listen = ([127, 0, 0, 1], 0).into();
    settings.server.requests_per_minute = 0;
    let clock = Clock::system();
    let token = crate::api::auth::new_token();
    let hash = crate::api::auth::hash_token(&token);
    store
        .create_token("bench", Role::Admin, &hash, clock.now(), None)
        .await?;
    let app = Application::with_store(&settings, clock, store.clone(), None).await?;
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let load = Load {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(options.concurrency)
            .build()?,
        base,
        token,
        requests: options.requests.max(1),
        concurrency: options.concurrency.max(1),
    };
    let audit: Vec<String> = (0..64)
        .map(|i| {
            format!(
                "/v1/audit/events?record_id=C{:06}&limit=100",
                i * 1_511 % RECORDS
            )
        })
        .collect();
    let baseline = load.run("/healthz", &["/healthz".to_string()]).await?;
    let mut routes = Vec::new();
    for (name, paths) in [
        ("/v1/findings", vec!["/v1/findings".to_string()]),
        ("/v1/actions", vec!["/v1/actions".to_string()]),
        ("/v1/audit/events?record_id=..&limit=100", audit),
    ] {
        let mut figures = load.run(name, &paths).await?;
        figures.ratio_to_baseline = figures.requests_per_sec / baseline.requests_per_sec;
        routes.push(figures);
    }
    let _ = stop.send(());
    let _ = server.await;
    let backend = store.backend().as_str();
    store.close().await;
    scratch.remove().await?;
    Ok(ApiBenchReport {
        backend,
        events: options.events,
        findings: FINDINGS,
        proposals: PROPOSALS,
        concurrency: load.concurrency,
        seed_secs,
        baseline,
        routes,
    })
}

struct Load {
    client: reqwest::Client,
    base: String,
    token: String,
    requests: usize,
    concurrency: usize,
}

impl Load {
    /// `requests` GETs spread over `paths` by `concurrency` clients; a warm-up round first.
    async fn run(&self, name: &str, paths: &[String]) -> anyhow::Result<RouteFigures> {
        for path in paths.iter().take(self.concurrency) {
            self.get(path).await?;
        }
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut clients = Vec::new();
        for _ in 0..self.concurrency {
            let (next, paths) = (next.clone(), paths.to_vec());
            let (client, base, token, total) = (
                self.client.clone(),
                self.base.clone(),
                self.token.clone(),
                self.requests,
            );
            clients.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return (latencies, errors);
                    }
                    let sent = Instant::now();
                    let request = client
                        .get(format!("{base}{}", paths[i % paths.len()]))
                        .bearer_auth(&token);
                    // A request is done when its whole body has arrived.
                    let ok = match request.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    latencies.push(sent.elapsed());
                    if !ok {
                        errors += 1;
                    }
                }
            }));
        }
        let mut latencies = Vec::with_capacity(self.requests);
        let mut errors = 0;
        for client in clients {
            let (l, e) = client.await?;
            latencies.extend(l);
            errors += e;
        }
        let wall = started.elapsed().as_secs_f64();
        latencies.sort();
        let percentile = |p: f64| {
            let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[i].as_secs_f64() * 1000.0
        };
        Ok(RouteFigures {
            route: name.to_string(),
            requests: latencies.len(),
            errors,
            requests_per_sec: latencies.len() as f64 / wall,
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
            ratio_to_baseline: 1.0,
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<()> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path} answered {}",
            response.status()
        );
        response.bytes().await?;
        Ok(())
    }
}

/// `events` field events over `RECORDS` accounts and contacts, plus open findings and proposals.
async fn seed(store: &dyn Store, events: usize) -> anyhow::Result<()> {
    let start = Timestamp::parse_rfc3339("2026-11-16T00:00:00Z")?;
    let mut done = 0;
    while done < events {
        let batch: Vec<NewFieldEvent> = (done..events.min(done + BATCH))
            .map(|i| event(i, start))
            .collect();
        done += batch.len();
        store.append_events(&batch, start).await?;
    }
    for i in 0..FINDINGS {
        store
            .upsert_finding(&NewFinding {
                kind: "price_mismatch".into(),
                severity: Severity::Warning,
                fingerprint: format!("price_mismatch:items:A{i:05}"),
                title: format!("item A{i:05}: CRM price differs from the ERP"),
                evidence: serde_json::json!({"crm": "10.50", "erp": "9.90", "item": i}),
                started_at: start,
                detected_at: start,
            })
            .await?;
    }
    let proposals: Vec<NewDedupProposal> = (0..PROPOSALS).map(|i| proposal(i, start)).collect();
    store.save_dedup_proposals(&proposals).await?;
    Ok(())
}

fn event(i: usize, start: Timestamp) -> NewFieldEvent {
    let record = i * 7_919 % RECORDS;
    let endpoint = [Endpoint::Accounts, Endpoint::Contacts, Endpoint::Items][i % 3];
    let field = ["name", "phone", "email", "price.1"][i % 4];
    NewFieldEvent {
        idempotency_key: format!("bench-api-{i}"),
        run_id: Some(format!("run-{}", i / 50_000)),
        endpoint,
        crm_id: Some(format!("{}", 10_000_000 + record)),
        erp_id: Some(format!("C{record:06}")),
        field: field.into(),
        old_value: Some(format!("\"value {}\"", i % 997)),
        new_value: Some(format!("\"value {}\"", (i + 1) % 997)),
        source_system: System::Erp,
        target_system: System::Crm,
        outcome: Outcome::Applied,
        error: None,
        latency_ms: Some(40 + (i % 300) as i64),
        occurred_at: start + Duration::from_millis(i as u64 * 600),
    }
}

fn proposal(i: usize, at: Timestamp) -> NewDedupProposal {
    let members = vec![format!("C{:06}", 2 * i), format!("C{:06}", 2 * i + 1)];
    let fields = |name: &str| {
        [("name", name), ("phone", "+49 30 1234")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    NewDedupProposal {
        endpoint: Endpoint::Accounts,
        survivor: members[0].clone(),
        fields: vec![MergeField {
            field: "name".into(),
            value: format!("Acme {i} GmbH"),
            from: members[0].clone(),
            why: "most_complete".into(),
        }],
        before: members
            .iter()
            .map(|m| (m.clone(), fields(&format!("Acme {i}"))))
            .collect(),
        members,
        min_probability: 0.93,
        created_at: at,
    }
}
