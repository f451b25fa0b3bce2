//! `syncwarden bench digest`: the time to build one week's digest (every KPI, both weeks) over
//! a SQLite store holding that many field events in the week, beside a plain `COUNT(*)` over
//! the same rows measured in the same run.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::kpis::build;
use super::week::{IsoWeek, Zone};
use crate::config::DatabaseSettings;
use crate::domain::{Endpoint, NewFieldEvent, Outcome, RunStatus, SyncRun, SyncRunCounts, System};
use crate::store::{self, Store};

pub struct DigestBenchOptions {
    pub events: usize,
    /// Where the scratch SQLite file goes (removed afterwards).
    pub data_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct DigestBenchReport {
    pub backend: &'static str,
    pub events: usize,
    pub seed_secs: f64,
    /// Median of three builds.
    pub digest_ms: f64,
    /// Median of three `COUNT(*)` scans over the same events.
    pub count_ms: f64,
    /// digest_ms / count_ms.
    pub ratio: f64,
    pub records_synced: Option<i64>,
}

const BATCH: usize = 10_000;

/// Events `range` of `total` spread evenly over the week: most applied, 2% failed, latencies
/// 5-500 ms, 50,000 distinct records.
fn events(
    range: std::ops::Range<usize>,
    total: usize,
    week: &[crate::domain::Timestamp; 8],
) -> Vec<NewFieldEvent> {
    let span = week[7].as_micros() - week[0].as_micros();
    range
        .map(|i| NewFieldEvent {
            idempotency_key: format!("bench-{i}"),
            run_id: None,
            endpoint: Endpoint::ALL[i % 7],
            crm_id: Some(format!("R{}", i % 50_000)),
            erp_id: None,
            field: "price".into(),
            old_value: None,
            new_value: Some(format!("{i}")),
            source_system: System::Crm,
            target_system: System::Erp,
            outcome: if i % 50 == 0 {
                Outcome::Failed
            } else {
                Outcome::Applied
            },
            error: None,
            latency_ms: Some(5 + (i as i64 * 7919) % 496),
            occurred_at: crate::domain::Timestamp::from_micros(
                week[0].as_micros() + span / total as i64 * i as i64,
            ),
        })
        .collect()
}

async fn seed(
    store: &dyn Store,
    total: usize,
    week: &[crate::domain::Timestamp; 8],
) -> anyhow::Result<()> {
    for start in (0..total).step_by(BATCH) {
        let batch = events(start..(start + BATCH).min(total), total, week);
        store.append_events(&batch, week[7]).await?;
    }
    for (day, midnight) in week[..7].iter().enumerate() {
        let id = format!("bench-run-{day}");
        let started_at = *midnight + Duration::from_secs(3600);
        store
            .start_run(&SyncRun {
                id: id.clone(),
                endpoint: None,
                started_at,
                ended_at: None,
                status: RunStatus::Running,
                counts: SyncRunCounts::default(),
                error: None,
            })
            .await?;
        let counts = SyncRunCounts {
            api_calls_ok: 1000,
            api_calls_failed: day as i64,
            ..Default::default()
        };
        store
            .finish_run(&id, started_at, RunStatus::Succeeded, &counts, None)
            .await?;
    }
    Ok(())
}

async fn median_ms<F, Fut, T>(mut run: F) -> anyhow::Result<(f64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let started = Instant::now();
        last = Some(run().await?);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[1], last.context("no run")?))
}

pub async fn run_digest_bench(options: &DigestBenchOptions) -> anyhow::Result<DigestBenchReport> {
    let dir = options
        .data_dir
        .join(format!("bench-digest-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = store::connect(&url.into(), &DatabaseSettings::default()).await?;
    store.migrate().await?;
    let zone = Zone::parse("UTC")?;
    let week = IsoWeek::parse("2026-W47")?;
    let bounds = zone.bounds(week);
    let started = Instant::now();
    seed(store.as_ref(), options.events, &bounds).await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let now = bounds[7];
    let (digest_ms, digest) =
        median_ms(|| async { Ok(build(store.as_ref(), &zone, "UTC", week, now, 5).await?) })
            .await?;
    let (count_ms, _) = median_ms(|| async { Ok(store.count_events().await?) }).await?;
    store.close().await;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(DigestBenchReport {
        backend: "sqlite",
        events: options.events,
        seed_secs,
        digest_ms,
        count_ms,
        ratio: digest_ms / count_ms,
        records_synced: digest.records_synced.value,
    })
}
