//! One versus two `serve` processes syncing the sandbox through one PostgreSQL database: the
//! records/s of the initial sync with each, and how long the survivor takes to pick up an
//! endpoint after the process syncing it is killed (SIGKILL) mid-run.
//!
//! The sandbox runs in this process; the instances are child processes of this binary, so what
//! is measured is the real scheduling: per-endpoint loops under leases in the shared database.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::ingest::Scratch;
use crate::clock::Clock;
use crate::domain::{Endpoint, RunStatus, SyncRun, Timestamp};
use crate::sandbox::Sandbox;
use crate::store::Store;

pub struct InstancesBenchOptions {
    /// Multiple of the default sandbox scale.
    pub scale: usize,
    /// The PostgreSQL server; a scratch database is made on it per measurement.
    pub database_url: String,
    /// `sync.lease_secs` of the instances: the bound on a takeover.
    pub lease_secs: u64,
    pub data_dir: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct SyncFigures {
    pub instances: usize,
    /// From the instances' start to the end of the last run that wrote anything.
    pub seconds: f64,
    pub records_read: i64,
    pub records_written: i64,
    pub field_events: i64,
    pub records_written_per_sec: f64,
    /// For each instance (by lease holder), the endpoints it was seen syncing: how the work was
    /// shared out.
    pub endpoints_by_instance: BTreeMap<String, BTreeSet<String>>,
    /// How often an endpoint's lease was seen held by another instance than the time before:
    /// runs alternating between instances (each re-reading what the other wrote) show here.
    pub holder_changes: usize,
    /// Each endpoint's finished runs and the records they read.
    pub by_endpoint: BTreeMap<String, EndpointFigures>,
}

#[derive(Debug, Default, Serialize)]
pub struct EndpointFigures {
    pub runs: usize,
    pub records_read: i64,
}

#[derive(Debug, Serialize)]
pub struct TakeoverFigures {
    pub lease_secs: u64,
    /// The endpoint whose holder was killed.
    pub endpoint: String,
    /// From the kill to the survivor holding that endpoint's lease.
    pub takeover_secs: f64,
    /// The whole initial sync, kill included.
    pub sync: SyncFigures,
}

#[derive(Debug, Serialize)]
pub struct InstancesBenchReport {
    pub scale: usize,
    pub one: SyncFigures,
    pub two: SyncFigures,
    /// Two instances' records/s over one's (the baseline): below 1 would be coordination cost.
    pub ratio: f64,
    pub takeover: TakeoverFigures,
}

const CONVERGE_TIMEOUT: Duration = Duration::from_secs(1_800);

/// The endpoints `serve` schedules: item prices (the pricebook) travel with the items.
fn scheduled() -> impl Iterator<Item = Endpoint> {
    Endpoint::ALL
        .into_iter()
        .filter(|e| *e != Endpoint::Pricebook)
}

pub async fn run_instances_bench(
    options: &InstancesBenchOptions,
) -> anyhow::Result<InstancesBenchReport> {
    let interrupts = &mut Interrupts::catch()?;
    let one = measure(options, interrupts, 1, false).await?.0;
    let two = measure(options, interrupts, 2, false).await?.0;
    let (sync, takeover) = measure(options, interrupts, 2, true).await?;
    let (endpoint, takeover_secs) = takeover.context("no endpoint lease was seen to kill")?;
    Ok(InstancesBenchReport {
        scale: options.scale,
        ratio: two.records_written_per_sec / one.records_written_per_sec,
        one,
        two,
        takeover: TakeoverFigures {
            lease_secs: options.lease_secs,
            endpoint,
            takeover_secs,
            sync,
        },
    })
}

/// SIGINT and SIGTERM, caught from the bench's start: stopping the bench stops its `serve`
/// children and drops its scratch database, rather than leaving them running.
struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    fn catch() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// The `serve` children of one measurement: killed when dropped, whichever way the
/// measurement ends (an error included), so none outlives it.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A killed instance's lease, and when it was killed.
struct Kill {
    job: String,
    holder: String,
    at: Instant,
}

/// What the watcher saw: the runs, and which holder held which endpoint's lease.
struct Seen {
    runs: Vec<SyncRun>,
    holders: BTreeMap<String, BTreeSet<String>>,
    holder_changes: usize,
}

async fn measure(
    options: &InstancesBenchOptions,
    interrupts: &mut Interrupts,
    instances: usize,
    kill_one: bool,
) -> anyhow::Result<(SyncFigures, Option<(String, f64)>)> {
    let scale = super::scaled(options.scale);
    let sandbox = Sandbox::start(Clock::system(), &scale).await?;
    let scratch = Scratch::create_in(Some(&options.database_url), &options.data_dir).await?;
    let store = scratch.open().await?;
    let started_at = Timestamp::now_utc();
    let mut children = Children(Vec::new());
    for _ in 0..instances {
        children
            .0
            .push(spawn_instance(options, scratch.url(), &sandbox)?);
    }
    eprintln!(
        "bench instances: {instances} instance(s) syncing the sandbox at {}x{}",
        options.scale,
        if kill_one { ", one killed mid-run" } else { "" }
    );
    let outcome = tokio::select! {
        outcome = watch(store.as_ref(), &mut children.0, kill_one, started_at) => outcome,
        () = interrupts.recv() => Err(anyhow::anyhow!("interrupted")),
    };
    drop(children);
    store.close().await;
    scratch.remove().await?;
    let (seen, kill) = outcome?;
    let figures = figures(instances, started_at, &seen);
    let takeover = kill.map(|(k, secs)| (k.job["sync:".len()..].to_string(), secs));
    Ok((figures, takeover))
}

/// Polls the runs and the leases until every endpoint has synced and its latest run found
/// nothing more to do (and, with `kill_one`, until the killed holder's endpoint was taken over).
async fn watch(
    store: &dyn Store,
    children: &mut [Child],
    kill_one: bool,
    started_at: Timestamp,
) -> anyhow::Result<(Seen, Option<(Kill, f64)>)> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut holders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut last_holder: BTreeMap<String, String> = BTreeMap::new();
    let mut holder_changes = 0;
    let mut kill: Option<Kill> = None;
    let mut takeover: Option<f64> = None;
    loop {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the sync did not converge in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let leases = held_leases(store).await?;
        for (job, holder) in &leases {
            holders
                .entry(holder.clone())
                .or_default()
                .insert(job["sync:".len()..].to_string());
            if last_holder
                .insert(job.clone(), holder.clone())
                .is_some_and(|last| last != *holder)
            {
                holder_changes += 1;
            }
        }
        if kill_one && kill.is_none() {
            kill = kill_a_holder(&leases, children)?;
        }
        if let (Some(k), None) = (&kill, takeover)
            && leases
                .iter()
                .any(|(job, holder)| *job == k.job && *holder != k.holder)
        {
            takeover = Some(k.at.elapsed().as_secs_f64());
        }
        let runs: Vec<SyncRun> = store
            .recent_runs(10_000)
            .await?
            .into_iter()
            .filter(|r| r.started_at >= started_at)
            .collect();
        if (!kill_one || takeover.is_some()) && converged(&runs) {
            let seen = Seen {
                runs,
                holders,
                holder_changes,
            };
            return Ok((seen, kill.zip(takeover)));
        }
    }
}

/// The sync leases held now: (job, holder).
async fn held_leases(store: &dyn Store) -> anyhow::Result<Vec<(String, String)>> {
    let now = Timestamp::now_utc();
    let mut held = Vec::new();
    for endpoint in scheduled() {
        let job = format!("sync:{}", endpoint.as_str());
        if let Some((holder, until)) = store.lease(&job).await?
            && until > now
        {
            held.push((job, holder));
        }
    }
    Ok(held)
}

/// Kills the instance holding a sync lease (its holder name starts with its process id).
fn kill_a_holder(
    leases: &[(String, String)],
    children: &mut [Child],
) -> anyhow::Result<Option<Kill>> {
    for (job, holder) in leases {
        let pid: Option<u32> = holder.split('-').next().and_then(|p| p.parse().ok());
        let Some(child) = children.iter_mut().find(|c| Some(c.id()) == pid) else {
            continue;
        };
        child.kill()?;
        child.wait()?;
        eprintln!("bench instances: killed {holder} while it held {job}");
        return Ok(Some(Kill {
            job: job.clone(),
            holder: holder.clone(),
            at: Instant::now(),
        }));
    }
    Ok(None)
}

fn converged(runs: &[SyncRun]) -> bool {
    scheduled().all(|endpoint| {
        let of_endpoint = || runs.iter().filter(|r| r.endpoint == Some(endpoint));
        let latest = of_endpoint()
            .filter(|r| r.ended_at.is_some())
            .max_by_key(|r| r.started_at);
        latest.is_some_and(|r| {
            matches!(r.status, RunStatus::Succeeded | RunStatus::Partial)
                && r.counts.records_written == 0
                && r.counts.events == 0
        }) && of_endpoint().any(|r| r.counts.records_written > 0)
    })
}

fn figures(instances: usize, started_at: Timestamp, seen: &Seen) -> SyncFigures {
    let runs = &seen.runs;
    let ended = runs
        .iter()
        .filter(|r| r.counts.records_written > 0)
        .filter_map(|r| r.ended_at)
        .max()
        .unwrap_or(started_at);
    let seconds = ended.since(started_at).as_secs_f64().max(f64::EPSILON);
    let records_written: i64 = runs.iter().map(|r| r.counts.records_written).sum();
    let mut by_endpoint: BTreeMap<String, EndpointFigures> = BTreeMap::new();
    for run in runs.iter().filter(|r| r.ended_at.is_some()) {
        let Some(endpoint) = run.endpoint else {
            continue;
        };
        let figures = by_endpoint
            .entry(endpoint.as_str().to_string())
            .or_default();
        figures.runs += 1;
        figures.records_read += run.counts.records_read;
    }
    SyncFigures {
        instances,
        seconds,
        records_read: runs.iter().map(|r| r.counts.records_read).sum(),
        records_written,
        field_events: runs.iter().map(|r| r.counts.events).sum(),
        records_written_per_sec: records_written as f64 / seconds,
        endpoints_by_instance: seen.holders.clone(),
        holder_changes: seen.holder_changes,
        by_endpoint,
    }
}

fn spawn_instance(
    options: &InstancesBenchOptions,
    database_url: &str,
    sandbox: &Sandbox,
) -> anyhow::Result<Child> {
    let data_dir = options
        .data_dir
        .join(format!("instance-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir)?;
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["serve", "--data-dir"])
        .arg(&data_dir)
        .env("SYNCWARDEN_DATABASE__URL", database_url)
        .env("SYNCWARDEN_SERVER__LISTEN", "127.0.0.1:0")
        .env("SYNCWARDEN_LOG__LEVEL", "error")
        .envs(sandbox.env())
        .env(
            "SYNCWARDEN_SYNC__LEASE_SECS",
            options.lease_secs.to_string(),
        )
        .stdout(Stdio::null());
    for endpoint in scheduled() {
        let key = endpoint.as_str().to_ascii_uppercase();
        command.env(
            format!("SYNCWARDEN_SYNC__ENDPOINTS__{key}__INTERVAL_SECS"),
            "1",
        );
    }
    Ok(command.spawn()?)
}
