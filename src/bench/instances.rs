//! Several instances on one PostgreSQL database: ingest events/s and sync records/s with one and
//! with two `syncwarden serve` processes (the same binary, started by the bench), and the time
//! another instance needs to take an endpoint over after its holder is killed (SIGKILL).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::ingest::{generate_batches, ndjson};
use crate::clock::Clock;
use crate::config::DatabaseSettings;
use crate::domain::{Endpoint, RunStatus};
use crate::sandbox::{self, Sandbox, SeedScale};
use crate::store::{self, Store};

/// Endpoints whose first runs make up the initial sync (the pricebook travels with the items).
const SYNCED: [Endpoint; 6] = [
    Endpoint::Accounts,
    Endpoint::Contacts,
    Endpoint::Items,
    Endpoint::Quotes,
    Endpoint::SalesOrders,
    Endpoint::Invoices,
];

/// Concurrent ingest clients, spread over the instances.
const CLIENTS: usize = 4;

pub struct InstancesBenchOptions {
    /// A PostgreSQL server; a scratch database is made for each measurement and dropped.
    pub database_url: String,
    pub events: usize,
    pub batch_size: usize,
    /// Lease length of the takeover measurement, in seconds.
    pub lease_secs: u64,
    pub data_dir: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Pair {
    pub one_instance: f64,
    pub two_instances: f64,
    /// two / one.
    pub ratio: f64,
}

impl Pair {
    fn new(one_instance: f64, two_instances: f64) -> Self {
        Self {
            one_instance,
            two_instances,
            ratio: two_instances / one_instance,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct InstancesBenchReport {
    pub events: usize,
    pub ingest_events_per_sec: Pair,
    pub sync_records: usize,
    pub sync_records_per_sec: Pair,
    pub lease_secs: u64,
    pub sync_interval_secs: u64,
    /// From the kill of the endpoint's holder to the survivor holding it.
    pub takeover_secs: f64,
}

struct Instance(Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `syncwarden serve` (this binary) on `db_url` with `config`; returns it and its base URL.
fn spawn(db_url: &str, data_dir: &Path, config: &Path) -> anyhow::Result<(Instance, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env("SYNCWARDEN_DATABASE__URL", db_url)
        .env("SYNCWARDEN_SERVER__LISTEN", "127.0.0.1:0")
        .env("SYNCWARDEN_LOG__LEVEL", "error")
        .stdout(Stdio::piped())
        .spawn()
        .context("starting syncwarden serve")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("syncwarden listening on ")
        .with_context(|| format!("unexpected first line {line:?}"))?
        .to_string();
    Ok((Instance(child), base))
}

/// A config file in `dir`: the sandbox's connectors (when given), every endpoint synced every
/// second under `lease_secs`.
fn write_config(
    dir: &Path,
    sandbox: Option<&Sandbox>,
    lease_secs: u64,
) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let mut toml = format!("[sync]\nlease_secs = {lease_secs}\n");
    for endpoint in Endpoint::ALL {
        toml += &format!(
            "[sync.endpoints.{}]\ninterval_secs = 1\n",
            endpoint.as_str()
        );
    }
    if let Some(s) = sandbox {
        toml += &format!(
            "[crm]\nbase_url = \"{}\"\ntoken = \"{}\"\n[erp]\nbase_url = \"{}\"\ncompany_db = \"{}\"\nusername = \"{}\"\npassword = \"{}\"\n",
            s.crm.base_url(),
            sandbox::HUBSPOT_TOKEN,
            s.erp.base_url(),
            sandbox::SAP_COMPANY_DB,
            sandbox::SAP_USER,
            sandbox::SAP_PASSWORD,
        );
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

struct Scratch {
    admin: String,
    url: String,
    store: Arc<dyn Store>,
}

impl Scratch {
    async fn create(admin: &str) -> anyhow::Result<Self> {
        let url = store::create_scratch_database(admin, "sw_bench").await?;
        let store = store::connect(&url.clone().into(), &DatabaseSettings::default()).await?;
        store.migrate().await?;
        Ok(Self {
            admin: admin.to_string(),
            url,
            store,
        })
    }

    async fn remove(self) -> anyhow::Result<()> {
        self.store.close().await;
        store::drop_database(&self.admin, &self.url).await?;
        Ok(())
    }
}

async fn wait_until<F, Fut>(limit: Duration, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + limit;
    while !done().await? {
        anyhow::ensure!(Instant::now() < deadline, "timed out after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Events/s through `POST /v1/events` of `n` instances, batches spread round-robin.
async fn ingest(options: &InstancesBenchOptions, n: usize) -> anyhow::Result<f64> {
    let scratch = Scratch::create(&options.database_url).await?;
    let dir = options.data_dir.join(format!("ingest-{n}"));
    let config = write_config(&dir, None, options.lease_secs)?;
    let mut instances = Vec::new();
    for i in 0..n {
        instances.push(spawn(&scratch.url, &dir.join(format!("i{i}")), &config)?);
    }
    let bodies: Arc<Vec<String>> = Arc::new(
        generate_batches(options.events, options.batch_size)
            .iter()
            .map(|b| ndjson(b))
            .collect(),
    );
    let urls: Arc<Vec<String>> = Arc::new(
        instances
            .iter()
            .map(|(_, base)| format!("{base}/v1/events"))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (bodies, urls, next, client) =
                (bodies.clone(), urls.clone(), next.clone(), client.clone());
            tokio::spawn(async move {
                loop {
                    let b = next.fetch_add(1, Ordering::SeqCst);
                    let Some(body) = bodies.get(b) else {
                        return anyhow::Ok(());
                    };
                    let response = client
                        .post(&urls[b % urls.len()])
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await?;
                    anyhow::ensure!(
                        response.status().is_success(),
                        "ingest answered {}",
                        response.status()
                    );
                }
            })
        })
        .collect();
    for c in clients {
        c.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        scratch.store.count_events().await? == options.events as i64,
        "not every event was stored"
    );
    drop(instances);
    scratch.remove().await?;
    Ok(options.events as f64 / seconds)
}

/// The initial sync of a default-scale sandbox by `n` instances: records read by the first run
/// of every endpoint, per second from start to the last one's end. Returns (records, per second).
async fn sync(options: &InstancesBenchOptions, n: usize) -> anyhow::Result<(usize, f64)> {
    let scratch = Scratch::create(&options.database_url).await?;
    let sandbox = Sandbox::start(Clock::system(), &SeedScale::default()).await?;
    let dir = options.data_dir.join(format!("sync-{n}"));
    let config = write_config(&dir, Some(&sandbox), options.lease_secs)?;
    let started = Instant::now();
    let mut instances = Vec::new();
    for i in 0..n {
        instances.push(spawn(&scratch.url, &dir.join(format!("i{i}")), &config)?);
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let records = loop {
        if let Some(records) = first_runs_records(scratch.store.as_ref()).await? {
            break records;
        }
        anyhow::ensure!(Instant::now() < deadline, "the initial sync did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    drop(instances);
    scratch.remove().await?;
    Ok((records, records as f64 / seconds))
}

/// Records read by the first finished run of every synced endpoint; `None` while one has none.
async fn first_runs_records(store: &dyn Store) -> anyhow::Result<Option<usize>> {
    let runs = store.recent_runs(1000).await?;
    let mut records = 0;
    for endpoint in SYNCED {
        let first = runs
            .iter()
            .filter(|r| r.endpoint == Some(endpoint) && r.status != RunStatus::Running)
            .min_by_key(|r| r.started_at);
        match first {
            Some(run) => records += run.counts.records_read as usize,
            None => return Ok(None),
        }
    }
    Ok(Some(records))
}

/// Two instances syncing the accounts of a slow sandbox: the holder of the accounts endpoint is
/// killed mid-run; seconds until the other holds it.
async fn takeover(options: &InstancesBenchOptions) -> anyhow::Result<f64> {
    let scratch = Scratch::create(&options.database_url).await?;
    let sandbox = Sandbox::start(Clock::system(), &SeedScale::default()).await?;
    sandbox.crm.faults.set(crate::sandbox::faults::FaultConfig {
        latency_ms: 200,
        ..Default::default()
    });
    let dir = options.data_dir.join("takeover");
    let config = write_config(&dir, Some(&sandbox), options.lease_secs)?;
    let mut instances = Vec::new();
    for i in 0..2 {
        instances.push(spawn(&scratch.url, &dir.join(format!("i{i}")), &config)?.0);
    }
    let store = scratch.store.clone();
    let holder = || async {
        Ok::<_, anyhow::Error>(
            store
                .lease("sync:accounts")
                .await?
                .and_then(|(h, _)| h.split('-').next()?.parse::<u32>().ok()),
        )
    };
    wait_until(Duration::from_secs(60), || async {
        Ok(holder().await?.is_some())
    })
    .await?;
    let pid = holder().await?.context("no holder")?;
    let leader = instances
        .iter()
        .position(|i| i.0.id() == pid)
        .context("the holder is not one of the instances")?;
    let mut killed = instances.remove(leader);
    killed.0.kill()?;
    let killed_at = Instant::now();
    killed.0.wait()?;
    let survivor = instances[0].0.id();
    wait_until(Duration::from_secs(120), || async {
        Ok(holder().await? == Some(survivor))
    })
    .await?;
    let seconds = killed_at.elapsed().as_secs_f64();
    drop(instances);
    scratch.remove().await?;
    Ok(seconds)
}

pub async fn run_instances_bench(
    options: &InstancesBenchOptions,
) -> anyhow::Result<InstancesBenchReport> {
    let ingest_one = ingest(options, 1).await?;
    let ingest_two = ingest(options, 2).await?;
    let (records, sync_one) = sync(options, 1).await?;
    let (_, sync_two) = sync(options, 2).await?;
    let takeover_secs = takeover(options).await?;
    Ok(InstancesBenchReport {
        events: options.events,
        ingest_events_per_sec: Pair::new(ingest_one, ingest_two),
        sync_records: records,
        sync_records_per_sec: Pair::new(sync_one, sync_two),
        lease_secs: options.lease_secs,
        sync_interval_secs: 1,
        takeover_secs,
    })
}
