//! The sync benchmark: a full initial sync of the sandbox at a multiple of the default scale, then
//! an incremental run after 1% of the records changed. The figure beside each rate is the share of
//! wall time spent in syncwarden itself rather than waiting on the servers' answers: the time
//! with no call to either server in flight. The endpoints run as a cycle runs them (wave by wave,
//! a wave's endpoints at once); the seeds are a day old at the start, as data that was there
//! before go-live is; each call can be given a round trip (`latency_ms`) like a real server's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::clock::Clock;
use crate::config::{DatabaseSettings, Settings};
use crate::domain::Endpoint;
use crate::sandbox::faults::FaultConfig;
use crate::sandbox::{Sandbox, SeedScale};
use crate::store;
use crate::sync::connectors::hubspot::HubSpotConnector;
use crate::sync::connectors::sap_b1::SapB1Connector;
use crate::sync::connectors::{CallCounts, Connector, RetryPolicy, waiting_time};
use crate::sync::engine::{Engine, RunSummary};
use crate::sync::service::waves;

pub struct SyncBenchOptions {
    /// Multiple of the default sandbox scale (2,000 accounts, 500 items).
    pub scale: usize,
    /// Added by the sandbox servers to every call: a network round trip (0: none).
    pub latency_ms: u64,
    pub data_dir: std::path::PathBuf,
}

/// One wave of endpoints (see [`waves`]), run at once.
#[derive(Debug, Serialize)]
pub struct WaveReport {
    pub endpoints: Vec<Endpoint>,
    /// Seconds from the wave's start to each endpoint's run ending.
    pub ended_after: BTreeMap<Endpoint, f64>,
    pub seconds: f64,
    pub waiting_seconds: f64,
    pub field_events: usize,
}

#[derive(Debug, Serialize)]
pub struct PhaseReport {
    pub seconds: f64,
    pub records_read: usize,
    pub records_per_sec: f64,
    pub field_events: usize,
    pub field_events_per_sec: f64,
    pub api_calls: u64,
    /// The calls' latencies added up (calls overlap, so this can exceed the wall time).
    pub call_seconds: f64,
    /// Wall seconds with at least one call to the sandbox servers in flight.
    pub waiting_seconds: f64,
    /// Share of wall time spent in syncwarden itself (target < 0.2).
    pub syncwarden_share: f64,
    pub waves: Vec<WaveReport>,
}

#[derive(Debug, Serialize)]
pub struct SyncBenchReport {
    pub latency_ms: u64,
    pub accounts: usize,
    pub contacts: usize,
    pub items: usize,
    pub quotes: usize,
    pub orders: usize,
    pub invoices: usize,
    pub initial: PhaseReport,
    pub incremental: PhaseReport,
    pub changed_records: usize,
}

/// How old the seeded records are when the initial sync starts.
const SEED_AGE: Duration = Duration::from_secs(24 * 3600);

fn total(counts: [CallCounts; 2]) -> (u64, Duration) {
    counts.iter().fold((0, Duration::ZERO), |(n, t), c| {
        (n + c.ok + c.failed, t + c.total_latency)
    })
}

fn field_events(run: &RunSummary) -> usize {
    run.events.values().flat_map(|o| o.values()).sum()
}

async fn phase(
    engine: &Engine,
    connectors: &[Arc<dyn Connector>; 2],
) -> anyhow::Result<PhaseReport> {
    let before = total([connectors[0].calls(), connectors[1].calls()]);
    let waiting_before = waiting_time();
    let started = Instant::now();
    let mut runs: Vec<RunSummary> = Vec::new();
    let mut wave_reports = Vec::new();
    let endpoints = [
        Endpoint::Accounts,
        Endpoint::Contacts,
        Endpoint::Items,
        Endpoint::Quotes,
        Endpoint::SalesOrders,
        Endpoint::Invoices,
    ];
    for wave in waves(endpoints) {
        let (wave_started, wave_waiting) = (Instant::now(), waiting_time());
        let done = futures_util::future::try_join_all(wave.iter().map(|&endpoint| async move {
            let run = engine.run_endpoint(endpoint, false).await?;
            anyhow::Ok((run, wave_started.elapsed().as_secs_f64()))
        }))
        .await?;
        let (done, ended): (Vec<RunSummary>, Vec<f64>) = done.into_iter().unzip();
        wave_reports.push(WaveReport {
            ended_after: wave.iter().copied().zip(ended).collect(),
            endpoints: wave,
            seconds: wave_started.elapsed().as_secs_f64(),
            waiting_seconds: (waiting_time() - wave_waiting).as_secs_f64(),
            field_events: done.iter().map(field_events).sum(),
        });
        runs.extend(done);
    }
    let seconds = started.elapsed().as_secs_f64();
    let waiting = (waiting_time() - waiting_before).as_secs_f64();
    let after = total([connectors[0].calls(), connectors[1].calls()]);
    let records_read = runs.iter().map(|r| r.records_read).sum();
    let field_events = runs.iter().map(field_events).sum();
    Ok(PhaseReport {
        seconds,
        records_read,
        records_per_sec: records_read as f64 / seconds,
        field_events,
        field_events_per_sec: field_events as f64 / seconds,
        api_calls: after.0 - before.0,
        call_seconds: (after.1 - before.1).as_secs_f64(),
        waiting_seconds: waiting,
        syncwarden_share: (1.0 - waiting / seconds).max(0.0),
        waves: wave_reports,
    })
}

pub async fn run_sync_bench(options: &SyncBenchOptions) -> anyhow::Result<SyncBenchReport> {
    let scale = SeedScale {
        age: SEED_AGE,
        ..super::scaled(options.scale)
    };
    let clock = Clock::system();
    eprintln!(
        "bench sync: seeding the sandbox ({} accounts, {} items, {} quotes, {} orders, {} invoices)",
        scale.accounts, scale.items, scale.quotes, scale.orders, scale.invoices
    );
    let sandbox = Sandbox::start(clock.clone(), &scale).await?;
    let round_trip = FaultConfig {
        latency_ms: options.latency_ms,
        ..FaultConfig::default()
    };
    sandbox.crm.faults.set(round_trip.clone());
    sandbox.erp.faults.set(round_trip);
    let dir = options
        .data_dir
        .join(format!("bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let store = store::connect(&url.into(), &DatabaseSettings::default()).await?;
    store.migrate().await?;
    let mut settings = Settings::default();
    sandbox.configure(&mut settings);
    let retry = RetryPolicy::from(&settings.sync.retry);
    let connectors: [Arc<dyn Connector>; 2] = [
        Arc::new(HubSpotConnector::new(settings.crm.clone(), retry.clone())?),
        Arc::new(SapB1Connector::new(settings.erp.clone(), retry)?),
    ];
    let engine = Engine::new(
        store.clone(),
        connectors[0].clone(),
        connectors[1].clone(),
        settings.sync.endpoints.clone(),
        clock.clone(),
    );
    eprintln!("bench sync: initial sync");
    let initial = phase(&engine, &connectors).await?;
    // Let the clock move past the initial sync so the changes carry later timestamps.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let changed_records = change_one_percent(&sandbox, &scale, clock.now());
    eprintln!("bench sync: incremental sync after {changed_records} changes");
    let incremental = phase(&engine, &connectors).await?;
    store.close().await;
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(SyncBenchReport {
        latency_ms: options.latency_ms,
        accounts: scale.accounts,
        contacts: scale.accounts * scale.contacts_per_account,
        items: scale.items,
        quotes: scale.quotes,
        orders: scale.orders,
        invoices: scale.invoices,
        initial,
        incremental,
        changed_records,
    })
}

/// 1% of partners renamed, 1% of items repriced and 1% of orders given a new quantity on their
/// first line in the ERP; 1% of companies and 1% of contacts given a new phone number and 1% of
/// quote lines a new quantity in the CRM.
fn change_one_percent(sandbox: &Sandbox, scale: &SeedScale, at: crate::domain::Timestamp) -> usize {
    let mut changed = 0;
    let mut erp = sandbox.erp_data.lock().unwrap_or_else(|e| e.into_inner());
    for i in (1..=scale.accounts).step_by(100) {
        let patch = json!({"CardName": format!("Renamed Partner {i} GmbH")});
        if let Some(patch) = patch.as_object() {
            changed +=
                usize::from(erp.update("BusinessPartners", &format!("C{i:05}"), patch.clone(), at));
        }
    }
    for i in (1..=scale.items).step_by(100) {
        let patch = json!({"ItemPrices": [{"PriceList": 1, "Price": 1234.5, "Currency": "EUR"}]});
        if let Some(patch) = patch.as_object() {
            changed += usize::from(erp.update("Items", &format!("I{i:05}"), patch.clone(), at));
        }
    }
    let orders: Vec<String> = erp
        .all("Orders")
        .iter()
        .step_by(100)
        .filter_map(|o| o.get("DocEntry").map(|e| e.to_string()))
        .collect();
    for entry in orders {
        let patch = json!({"DocumentLines": [{"LineNum": 0, "Quantity": 42}]});
        if let Some(patch) = patch.as_object() {
            changed += usize::from(erp.update("Orders", &entry, patch.clone(), at));
        }
    }
    drop(erp);
    let mut crm = sandbox.crm_data.lock().unwrap_or_else(|e| e.into_inner());
    let lines: Vec<u64> = crm
        .all("quotes")
        .iter()
        .step_by(100)
        .filter_map(|q| {
            crm.associated("quotes", q.id, "line_items")
                .first()
                .copied()
        })
        .collect();
    for id in lines {
        let props = BTreeMap::from([("quantity".to_string(), "42".to_string())]);
        changed += usize::from(crm.update("line_items", id, props, at));
    }
    for object_type in ["companies", "contacts"] {
        let ids: Vec<u64> = crm
            .all(object_type)
            .iter()
            .map(|o| o.id)
            .step_by(100)
            .collect();
        for id in ids {
            let props = BTreeMap::from([("phone".to_string(), "+1 555 0199".to_string())]);
            changed += usize::from(crm.update(object_type, id, props, at));
        }
    }
    changed
}
