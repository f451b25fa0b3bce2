//! `monitor eval --sandbox`: the sync-incident evaluation against the real sandbox servers. A
//! scenario starts the sandbox CRM and ERP on a manual clock, keeps an ERP user editing items
//! (`writes_per_minute` on average, each edit an API call, over `items` items so that a minute's
//! edits rarely hit one item twice) while the engine syncs the items endpoint every simulated
//! minute, reconciles it every hour, and runs the live monitor (the same `LiveMonitor` as
//! `serve`, with its price and drift checks) every minute. The CRM refuses 1% of the records of a
//! batch write (a 207 with an error per refused record; retries are off, so a refused record is
//! a failed write) and every CRM write call takes `write_latency_ms` more. Incidents are injected
//! as sandbox faults at a known minute:
//! - `success_rate_drop`: the CRM refuses 10% of the records written instead of 1%, for two
//!   hours;
//! - `silent_stop`: the ERP answers every list empty, so the sync reads nothing and writes
//!   nothing, without an error, for three hours;
//! - `latency_x5`: CRM write calls take five times `write_latency_ms` more, for an hour;
//! - `price_drift`: the CRM reports five items' prices 5% too high, until the end;
//! - `dropped_page`: the CRM silently leaves out its first page of every list, until the end.
//!
//! Latency is real time: the engine times its calls with the machine's clock, not the scenario's
//! manual one, so the added write latency is a real sleep and must stand well above the noise of
//! a loaded machine's own response times (a few ms) for "x5" to mean five times. Only write calls
//! are slowed (one or two a minute), which keeps a simulated week affordable; `jobs` scenarios run
//! at once so their sleeps overlap.
//!
//! The first `learn_hours` teach the detectors and are not scored. A run detects its incident when
//! a finding of the expected kind is detected between its start and its end plus an hour; every
//! other finding detected in the scored hours is false. Nothing here runs under `cargo test`
//! except a tiny scenario.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::checks::{Currencies, SystemChecks};
use super::eval::{IncidentKind, IncidentReport, median};
use super::findings::Finding;
use super::live::LiveMonitor;
use super::prices::PriceTolerance;
use super::watch::{WatchParams, Watcher};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{Currency, Endpoint, Timestamp};
use crate::sandbox::faults::FaultConfig;
use crate::sandbox::{Sandbox, SeedScale};
use crate::store::{Store, StoreError};
use crate::sync::connectors::sap_b1::SapB1Connector;
use crate::sync::connectors::{Connector, ConnectorError, RetryPolicy};
use crate::sync::engine::{Engine, SyncError};
use crate::sync::record::Write;

#[derive(Debug, thiserror::Error)]
pub enum SandboxEvalError {
    #[error("sandbox: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Money(#[from] crate::domain::MoneyError),
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxEvalOptions {
    /// Runs per incident kind.
    pub runs: usize,
    /// Hours before the scored part of a run (never scored).
    pub learn_hours: u64,
    /// Scored hours of an incident run; the incident starts an hour in (a third in, when
    /// shorter than three hours).
    pub scored_hours: u64,
    /// Scored hours of the clean run (after its own learning hours); 0: none.
    pub clean_hours: u64,
    /// ERP item edits per minute, on average.
    pub writes_per_minute: usize,
    /// Items in the sandbox; each edit picks one at random.
    pub items: usize,
    /// Milliseconds every CRM write call takes on top of its own time (five times as many during
    /// `latency_x5`).
    pub write_latency_ms: u64,
    /// Scenarios run at once.
    pub jobs: usize,
    pub seed: u64,
}

impl Default for SandboxEvalOptions {
    fn default() -> Self {
        Self {
            runs: 5,
            learn_hours: 24,
            scored_hours: 6,
            clean_hours: 168,
            writes_per_minute: 17,
            items: 200,
            write_latency_ms: 20,
            jobs: 2,
            seed: 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SandboxEvalReport {
    pub options: SandboxEvalOptions,
    pub incidents: Vec<IncidentReport>,
    pub false_findings_in_clean_hours: usize,
    pub false_findings_per_clean_week: Option<f64>,
    /// The clean run's false findings by kind.
    pub false_findings_by_kind: BTreeMap<String, usize>,
    /// Records the sync wrote (or failed to write) into the CRM per scored hour of the clean run:
    /// the volume the detectors saw.
    pub clean_writes_per_hour: Option<f64>,
    pub wall_seconds: f64,
}

/// Monday 2026-11-23 00:00 UTC.
const START: Timestamp = Timestamp::from_micros(1_795_392_000_000_000);
const DRIFTED_ITEMS: usize = 5;

/// The CRM's faults in minute `minute` of a run with `incident`.
fn crm_faults(incident: Option<(IncidentKind, u64)>, minute: u64, latency_ms: u64) -> FaultConfig {
    let normal = FaultConfig {
        input_error_rate: 0.01,
        write_latency_ms: latency_ms,
        ..FaultConfig::default()
    };
    let Some((kind, _)) = incident
        .filter(|(kind, start)| minute >= *start && minute < start.saturating_add(kind.minutes()))
    else {
        return normal;
    };
    match kind {
        IncidentKind::SuccessRateDrop => FaultConfig {
            input_error_rate: 0.10,
            ..normal
        },
        IncidentKind::LatencyX5 => FaultConfig {
            write_latency_ms: 5 * latency_ms,
            ..normal
        },
        IncidentKind::PriceDrift => FaultConfig {
            skewed_prices: (1..=DRIFTED_ITEMS)
                .map(|i| (format!("I{i:05}"), 105))
                .collect(),
            ..normal
        },
        IncidentKind::DroppedPage => FaultConfig {
            drop_page: Some(1),
            ..normal
        },
        IncidentKind::SilentStop => normal,
    }
}

/// The ERP's faults: only the silent stop touches the ERP.
fn erp_faults(incident: Option<(IncidentKind, u64)>, minute: u64) -> FaultConfig {
    match incident {
        Some((IncidentKind::SilentStop, start))
            if minute >= start && minute < start + IncidentKind::SilentStop.minutes() =>
        {
            FaultConfig {
                empty_lists: true,
                ..FaultConfig::default()
            }
        }
        _ => FaultConfig::default(),
    }
}

struct Scenario {
    clock: Clock,
    sandbox: Sandbox,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    erp_user: SapB1Connector,
    monitor: LiveMonitor,
    rng: fastrand::Rng,
    items: usize,
    dir: std::path::PathBuf,
}

/// What one scenario left: its findings, and the records the sync wrote (or failed to write)
/// into the CRM in each minute.
struct RunOutcome {
    findings: Vec<Finding>,
    writes: Vec<usize>,
}

impl Scenario {
    async fn start(seed: u64, items: usize, watch: WatchParams) -> Result<Self, SandboxEvalError> {
        let clock = Clock::manual(START);
        let scale = SeedScale {
            seed,
            items,
            ..SeedScale::small()
        };
        let sandbox = Sandbox::start(clock.clone(), &scale).await?;
        let dir = std::env::temp_dir().join(format!("syncwarden-eval-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let mut settings = Settings {
            data_dir: dir.clone(),
            ..Settings::default()
        };
        sandbox.configure(&mut settings);
        // A refused record is a failed write here, not a retried one: the detectors see the
        // injected failure rate as it is.
        settings.sync.retry.max_attempts = 1;
        settings
            .sync
            .endpoints
            .retain(|endpoint, _| *endpoint == Endpoint::Items);
        let store = crate::startup::open_store(&settings).await?;
        let engine = Arc::new(crate::sync::service::engine(
            &settings,
            store.clone(),
            clock.clone(),
        )?);
        let erp_user = SapB1Connector::new(settings.erp.clone(), RetryPolicy::default())?;
        let eur = Currency::parse("EUR")?;
        let checks = SystemChecks::new(
            engine.clone(),
            PriceTolerance::default(),
            "1".into(),
            Currencies { crm: eur, erp: eur },
        );
        let monitor = LiveMonitor::new(store.clone(), Watcher::new(watch), clock.now())
            .with_checks(checks, Duration::from_secs(15 * 60));
        Ok(Self {
            clock,
            sandbox,
            store,
            engine,
            erp_user,
            monitor,
            rng: fastrand::Rng::with_seed(seed),
            items,
            dir,
        })
    }

    /// An ERP user edits about `rate` items' descriptions.
    async fn edit_items(&mut self, rate: usize, minute: u64) -> Result<(), ConnectorError> {
        let edits = self.rng.usize(0..=2 * rate);
        let writes: Vec<Write> = (0..edits)
            .map(|n| {
                let code = format!("I{:05}", self.rng.usize(1..=self.items));
                Write {
                    id: Some(code.clone()),
                    key: code,
                    fields: [("description".to_string(), format!("rev {minute}.{n}"))].into(),
                }
            })
            .collect();
        self.erp_user.write(Endpoint::Items, &writes).await?;
        Ok(())
    }

    /// Runs `minutes` simulated minutes with `incident`.
    async fn run(
        mut self,
        minutes: u64,
        options: &SandboxEvalOptions,
        incident: Option<(IncidentKind, u64)>,
    ) -> Result<RunOutcome, SandboxEvalError> {
        let mut writes = Vec::with_capacity(minutes as usize);
        for minute in 0..minutes {
            let crm = crm_faults(incident, minute, options.write_latency_ms);
            self.sandbox.crm.faults.set(crm);
            self.sandbox.erp.faults.set(erp_faults(incident, minute));
            self.clock.advance(Duration::from_secs(60));
            if let Err(e) = self.edit_items(options.writes_per_minute, minute).await {
                tracing::debug!(error = %e, "an ERP edit failed");
            }
            match self.engine.run_endpoint(Endpoint::Items, false).await {
                Ok(summary) => writes.push(summary.records_written + summary.failed_writes),
                Err(e) => {
                    writes.push(0);
                    tracing::debug!(error = %e, "a sync run failed");
                }
            }
            if minute % 60 == 59
                && let Err(e) = self.engine.reconcile(Endpoint::Items).await
            {
                tracing::debug!(error = %e, "a reconciliation failed");
            }
            self.monitor.run_once(self.clock.now()).await?;
        }
        let findings = self.store.findings(None).await?;
        self.store.close().await;
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(error = %e, dir = %self.dir.display(), "could not remove the scenario's store");
        }
        Ok(RunOutcome { findings, writes })
    }
}

fn at(minute: u64) -> Timestamp {
    START + Duration::from_secs(60 * (minute + 1))
}

/// One scenario to run: an incident of `kind` starting at minute `start`, or a clean run.
#[derive(Clone, Copy)]
struct Job {
    incident: Option<(IncidentKind, u64)>,
    minutes: u64,
    seed: u64,
}

/// Runs `jobs` with at most `options.jobs` at once; the outcomes come back in the jobs' order.
async fn run_jobs(
    jobs: &[Job],
    options: &SandboxEvalOptions,
    watch: &WatchParams,
) -> Result<Vec<RunOutcome>, SandboxEvalError> {
    let mut set = tokio::task::JoinSet::new();
    let mut outcomes: Vec<Option<RunOutcome>> = (0..jobs.len()).map(|_| None).collect();
    let mut next = 0;
    let mut done = 0;
    while done < jobs.len() {
        while next < jobs.len() && set.len() < options.jobs.max(1) {
            let (job, options, watch) = (jobs[next], options.clone(), watch.clone());
            set.spawn(async move {
                let started = Instant::now();
                let scenario = Scenario::start(job.seed, options.items, watch).await?;
                let outcome = scenario.run(job.minutes, &options, job.incident).await?;
                tracing::info!(
                    job = next,
                    incident = ?job.incident.map(|(kind, _)| kind),
                    minutes = job.minutes,
                    seconds = started.elapsed().as_secs_f64(),
                    "scenario done"
                );
                Ok::<_, SandboxEvalError>((next, outcome))
            });
            next += 1;
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (i, outcome) = joined.map_err(|e| std::io::Error::other(e.to_string()))??;
        outcomes[i] = Some(outcome);
        done += 1;
    }
    Ok(outcomes.into_iter().flatten().collect())
}

/// Runs the scenarios of `options` and reports detection and false findings.
pub async fn run_sandbox_eval(
    options: SandboxEvalOptions,
    watch: WatchParams,
) -> Result<SandboxEvalReport, SandboxEvalError> {
    let started = Instant::now();
    let learn = options.learn_hours * 60;
    let scored = options.scored_hours * 60;
    // An hour into the scored part, or a third of it when that is shorter.
    let start = learn + (scored / 3).min(60);
    let mut rng = fastrand::Rng::with_seed(options.seed);
    let mut jobs = Vec::new();
    // The clean run first: it is the longest, so it must not be left to run alone at the end.
    let clean = options.clean_hours > 0;
    if clean {
        jobs.push(Job {
            incident: None,
            minutes: learn + options.clean_hours * 60,
            seed: rng.u64(..),
        });
    }
    for kind in IncidentKind::ALL {
        for _ in 0..options.runs {
            jobs.push(Job {
                incident: Some((kind, start)),
                minutes: learn + scored,
                seed: rng.u64(..),
            });
        }
    }
    let outcomes = run_jobs(&jobs, &options, &watch).await?;
    let (clean_outcome, outcomes) = outcomes.split_at(usize::from(clean));
    let scored_from = at(learn);

    let mut incidents = Vec::new();
    for (n, kind) in IncidentKind::ALL.into_iter().enumerate() {
        let runs = &outcomes[n * options.runs..(n + 1) * options.runs];
        let (began, ends) = (at(start), at(start + kind.minutes().min(scored) + 60));
        let (mut detected, mut delays) = (0, Vec::new());
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        for outcome in runs {
            let mut first: Option<Timestamp> = None;
            for f in outcome
                .findings
                .iter()
                .filter(|f| f.detected_at >= scored_from)
            {
                if kind.detects(&f.kind) && f.detected_at >= began && f.detected_at <= ends {
                    first = Some(first.map_or(f.detected_at, |t| t.min(f.detected_at)));
                } else {
                    *others.entry(f.kind.clone()).or_default() += 1;
                }
            }
            if let Some(first) = first {
                detected += 1;
                delays.push(first.since(began).as_secs() / 60);
            }
        }
        delays.sort_unstable();
        incidents.push(IncidentReport {
            kind,
            runs: options.runs,
            detected,
            detection_rate: detected as f64 / options.runs.max(1) as f64,
            median_minutes_to_detect: median(&delays),
            max_minutes_to_detect: delays.last().copied(),
            false_findings: others.values().sum(),
            other_findings_by_kind: others,
        });
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut clean_writes_per_hour = None;
    if let Some(clean) = clean_outcome.first() {
        for f in clean
            .findings
            .iter()
            .filter(|f| f.detected_at >= scored_from)
        {
            *kinds.entry(f.kind.clone()).or_default() += 1;
        }
        let written: usize = clean.writes.iter().skip(learn as usize).sum();
        clean_writes_per_hour = Some(written as f64 / options.clean_hours as f64);
    }
    let false_clean: usize = kinds.values().sum();
    Ok(SandboxEvalReport {
        false_findings_per_clean_week: (options.clean_hours > 0)
            .then(|| false_clean as f64 * 168.0 / options.clean_hours as f64),
        false_findings_in_clean_hours: false_clean,
        false_findings_by_kind: kinds,
        clean_writes_per_hour,
        options,
        incidents,
        wall_seconds: started.elapsed().as_secs_f64(),
    })
}
