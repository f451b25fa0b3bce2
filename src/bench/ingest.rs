//! The ingest benchmark: field events through `Store::append_events` versus plain prepared INSERTs
//! of the same rows into the same schema, and the same events over HTTP as NDJSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::clock::Clock;
use crate::config::{DatabaseSettings, Settings};
use crate::domain::{Endpoint, NewFieldEvent, Outcome, System, Timestamp};
use crate::startup::Application;
use crate::store::{self, Store};
use crate::sync::events::{EventLog, to_wire_json};

pub struct IngestBenchOptions {
    pub events: usize,
    pub batch_size: usize,
    /// A PostgreSQL server URL; scratch databases are created on it and dropped afterwards.
    pub database_url: Option<String>,
    /// Where SQLite scratch files go (removed afterwards).
    pub data_dir: PathBuf,
    pub http: bool,
}

#[derive(Debug, Serialize)]
pub struct IngestBenchReport {
    pub backend: &'static str,
    pub events: usize,
    pub batch_size: usize,
    pub events_per_sec: f64,
    pub baseline_rows_per_sec: f64,
    /// events_per_sec / baseline_rows_per_sec.
    pub ratio: f64,
    pub http_events_per_sec: Option<f64>,
    /// http_events_per_sec / events_per_sec: what HTTP and parsing cost on top of the store.
    pub http_ratio_to_store: Option<f64>,
}

/// A scratch database: a file under the data dir, or a new PostgreSQL database.
pub(super) struct Scratch {
    url: String,
    admin_url: Option<String>,
    dir: Option<PathBuf>,
}

impl Scratch {
    async fn create(options: &IngestBenchOptions) -> anyhow::Result<Self> {
        Self::create_in(options.database_url.as_deref(), &options.data_dir).await
    }

    /// On the PostgreSQL server `database_url` names, else a SQLite file under `data_dir`.
    pub(super) async fn create_in(
        database_url: Option<&str>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        match database_url {
            Some(admin) => Ok(Self {
                url: store::create_scratch_database(admin, "sw_bench").await?,
                admin_url: Some(admin.to_string()),
                dir: None,
            }),
            None => {
                let dir = data_dir.join(format!("bench-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(Self {
                    url: format!("sqlite://{}", dir.join("bench.db").display()),
                    admin_url: None,
                    dir: Some(dir),
                })
            }
        }
    }

    pub(super) fn url(&self) -> &str {
        &self.url
    }

    pub(super) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let store = store::connect(&self.url.clone().into(), &DatabaseSettings::default()).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub(super) async fn remove(self) -> anyhow::Result<()> {
        if let Some(admin) = &self.admin_url {
            store::drop_database(admin, &self.url).await?;
        }
        if let Some(dir) = &self.dir {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

pub async fn run_ingest_bench(options: &IngestBenchOptions) -> anyhow::Result<IngestBenchReport> {
    let batches = generate_batches(options.events, options.batch_size.max(1));
    let clock = Clock::system();

    let (backend, store_secs) = timed_store_run(options, &batches, |store, batch, now| {
        Box::pin(async move {
            EventLog::new(store, Clock::manual(now))
                .append(batch)
                .await?;
            Ok(())
        })
    })
    .await?;
    progress(format_args!("store path: {:.2} s", store_secs));

    let (_, baseline_secs) = timed_store_run(options, &batches, |store, batch, now| {
        Box::pin(async move {
            store.baseline_insert_batch(batch, now).await?;
            Ok(())
        })
    })
    .await?;
    progress(format_args!("baseline: {:.2} s", baseline_secs));

    let http_secs = if options.http {
        let secs = timed_http_run(options, &batches, clock).await?;
        progress(format_args!("http: {:.2} s", secs));
        Some(secs)
    } else {
        None
    };

    let n = options.events as f64;
    let events_per_sec = n / store_secs;
    let http_events_per_sec = http_secs.map(|s| n / s);
    Ok(IngestBenchReport {
        backend,
        events: options.events,
        batch_size: options.batch_size,
        events_per_sec,
        baseline_rows_per_sec: n / baseline_secs,
        ratio: baseline_secs / store_secs,
        http_events_per_sec,
        http_ratio_to_store: http_events_per_sec.map(|h| h / events_per_sec),
    })
}

type BatchFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// Writes every batch into a fresh scratch database with `write`, timing only the writes.
async fn timed_store_run<F>(
    options: &IngestBenchOptions,
    batches: &[Vec<NewFieldEvent>],
    write: F,
) -> anyhow::Result<(&'static str, f64)>
where
    F: for<'a> Fn(Arc<dyn Store>, &'a [NewFieldEvent], Timestamp) -> BatchFuture<'a>,
{
    let scratch = Scratch::create(options).await?;
    let store = scratch.open().await?;
    let backend = store.backend().as_str();
    let mut elapsed = Duration::ZERO;
    for (i, batch) in batches.iter().enumerate() {
        let started = Instant::now();
        write(store.clone(), batch, Timestamp::now_utc()).await?;
        elapsed += started.elapsed();
        report_batch(i, batches.len());
    }
    let stored = store.count_events().await?;
    anyhow::ensure!(
        stored == options.events as i64,
        "expected {} stored events, found {stored}",
        options.events
    );
    store.close().await;
    scratch.remove().await?;
    Ok((backend, elapsed.as_secs_f64()))
}

/// Posts every batch as NDJSON to a real server on loopback, timing only the requests.
async fn timed_http_run(
    options: &IngestBenchOptions,
    batches: &[Vec<NewFieldEvent>],
    clock: Clock,
) -> anyhow::Result<f64> {
    let scratch = Scratch::create(options).await?;
    let store = scratch.open().await?;
    let mut settings = Settings::default();
    settings.server.listen = "127.0.0.1:0".parse()?;
    let app = Application::with_store(&settings, clock, store.clone(), None).await?;
    let url = format!("http://{}/v1/events", app.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let mut elapsed = Duration::ZERO;
    for (i, batch) in batches.iter().enumerate() {
        let body = ndjson(batch);
        let started = Instant::now();
        let response = client
            .post(&url)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        elapsed += started.elapsed();
        anyhow::ensure!(status.is_success(), "ingest answered {status}: {text}");
        report_batch(i, batches.len());
    }
    let _ = stop_tx.send(());
    server.await??;
    scratch.remove().await?;
    Ok(elapsed.as_secs_f64())
}

fn ndjson(batch: &[NewFieldEvent]) -> String {
    let mut body = String::with_capacity(batch.len() * 400);
    for event in batch {
        body.push_str(&to_wire_json(event));
        body.push('\n');
    }
    body
}

fn report_batch(index: usize, total: usize) {
    let step = (total / 10).max(1);
    if (index + 1).is_multiple_of(step) || index + 1 == total {
        progress(format_args!("  {}/{} batches", index + 1, total));
    }
}

fn progress(message: std::fmt::Arguments<'_>) {
    eprintln!("bench ingest: {message}");
}

/// A small deterministic PRNG (splitmix64), so every run writes the same rows.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

const FIELDS: [&str; 8] = [
    "name",
    "phone",
    "email",
    "price",
    "quantity",
    "description",
    "status",
    "owner",
];

/// Realistic events: random idempotency keys (as other platforms send them), records spread over
/// the seven endpoints, mostly applied, some skipped, failed or in conflict.
pub fn generate_batches(events: usize, batch_size: usize) -> Vec<Vec<NewFieldEvent>> {
    let mut rng = SplitMix(0x5EED);
    let start =
        Timestamp::parse_rfc3339("2026-11-16T00:00:00Z").unwrap_or(Timestamp::from_micros(0));
    let runs = (events / 50_000).max(1);
    let mut batches: Vec<Vec<NewFieldEvent>> = Vec::with_capacity(events.div_ceil(batch_size));
    for i in 0..events {
        if i % batch_size == 0 {
            batches.push(Vec::with_capacity(batch_size.min(events - i)));
        }
        let event = {
            let r = rng.next();
            let endpoint = Endpoint::ALL[(r % 7) as usize];
            let record = (r >> 8) % 200_000;
            let (source, target) = if r & 0x10_0000 == 0 {
                (System::Erp, System::Crm)
            } else {
                (System::Crm, System::Erp)
            };
            let outcome = match (r >> 24) % 100 {
                0..=1 => Outcome::Failed,
                2..=4 => Outcome::SkippedNotOwner,
                5 => Outcome::Conflict,
                _ => Outcome::Applied,
            };
            let field = FIELDS[((r >> 32) % FIELDS.len() as u64) as usize];
            NewFieldEvent {
                idempotency_key: format!("{:016x}{:016x}", rng.next(), i),
                run_id: Some(format!("run-{}", i * runs / events.max(1))),
                endpoint,
                crm_id: Some(format!("{}", 10_000_000 + record)),
                erp_id: Some(format!("C{record:06}")),
                field: field.to_string(),
                old_value: Some(format!("\"value {}\"", r % 1000)),
                new_value: Some(format!("\"value {}\"", (r >> 10) % 1000)),
                source_system: source,
                target_system: target,
                outcome,
                error: (outcome == Outcome::Failed)
                    .then(|| "HTTP 503 from the ERP: service unavailable".to_string()),
                latency_ms: Some(20 + (r >> 40) as i64 % 400),
                occurred_at: start + Duration::from_millis(i as u64 * 600),
            }
        };
        if let Some(batch) = batches.last_mut() {
            batch.push(event);
        }
    }
    batches
}
