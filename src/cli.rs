//! The command line: `serve`, `demo`, `sync`, `token`, `monitor`, `dedup`, `alert`, `digest`,
//! `bench` and the rest.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::bench::{self, IngestBenchOptions};
use crate::clock::Clock;
use crate::config::{DEFAULT_CONFIG_TOML, Settings, redact_url};
use crate::domain::{Endpoint, EndpointControl, Role};
use crate::lease::Leases;
use crate::maintenance::Maintenance;
use crate::sandbox::{Sandbox, SeedScale};
use crate::startup::{self, Application};
use crate::store::Store;
use crate::sync::engine::Engine;
use crate::sync::rules::ErpKind;
use crate::sync::service;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "syncwarden",
    version,
    about = "Keeps a CRM and an ERP in sync and watches the sync"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Configuration file (TOML); see `syncwarden default-config` for every key.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Directory of the embedded database and local state (default ./syncwarden-data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: the API, and the sync of every endpoint when both connectors are configured.
    Serve,
    /// Run the demo: a sandbox CRM and ERP synced continuously, on the embedded database; needs no
    /// configuration file and no other server.
    Demo {
        /// Port to serve on (127.0.0.1).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Run one full sync cycle (every endpoint, then reconciliation), print a summary and exit.
        #[arg(long)]
        once: bool,
        /// With --once: print the summary as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        alerts: crate::alert::DemoAlertArgs,
    },
    /// Sync the configured CRM and ERP: continuously, or once.
    Sync {
        /// One pass over the endpoints, then exit.
        #[arg(long)]
        once: bool,
        /// Only this endpoint (accounts, contacts, pricebook, items, quotes, sales_orders, invoices).
        #[arg(long, value_parser = parse_endpoint)]
        endpoint: Option<Endpoint>,
        /// Compute and record what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Re-drive the failed writes kept in the dead-letter list, then exit.
        #[arg(long)]
        retry_failed: bool,
    },
    /// Compare both systems in full and record every record missing or different on one side.
    Reconcile {
        #[arg(long, value_parser = parse_endpoint)]
        endpoint: Option<Endpoint>,
    },
    /// Pause, resume or dry-run an endpoint at run time (a running `serve` or `demo` picks it up at
    /// its next run), or list the switches.
    Endpoint {
        #[command(subcommand)]
        which: EndpointCommand,
    },
    /// Connector operations.
    Connectors {
        #[command(subcommand)]
        which: ConnectorsCommand,
    },
    /// API tokens for the admin API (run in the demo's directory, they use the demo's store).
    Token {
        #[command(subcommand)]
        which: TokenCommand,
    },
    /// The secret vault: secrets kept encrypted in the store, named `vault:NAME` in the
    /// configuration.
    Secret {
        #[command(subcommand)]
        which: crate::vault::SecretCommand,
    },
    /// Erase a person's data (GDPR) from the event log and every snapshot, recorded as an event.
    Erase(crate::privacy::EraseArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Print the annotated default configuration.
    DefaultConfig,
    /// The monitor: score recorded metric series with the live anomaly detector, evaluate the
    /// sync-incident detectors on simulated weeks, list, acknowledge and resolve findings.
    Monitor {
        #[command(subcommand)]
        which: crate::monitor::MonitorCommand,
    },
    /// Find duplicate records: run over a CSV table, score candidate pairs, train, evaluate.
    Dedup {
        #[command(subcommand)]
        which: crate::dedup::command::DedupCommand,
    },
    /// Alerting: test a receiver, list alerts, manage silences.
    Alert {
        #[command(subcommand)]
        which: crate::alert::AlertCommand,
    },
    /// The weekly KPI digest of one week: print it as text, HTML or JSON, and optionally email it.
    Digest(crate::digest::DigestArgs),
    /// Benchmarks, each reported beside a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EndpointCommand {
    /// Show every endpoint's run-time switches.
    List,
    /// Stop syncing an endpoint until it is resumed.
    Pause {
        #[arg(value_parser = parse_endpoint)]
        endpoint: Endpoint,
    },
    Resume {
        #[arg(value_parser = parse_endpoint)]
        endpoint: Endpoint,
    },
    /// Compute and record what would change, write nothing, until `live`.
    DryRun {
        #[arg(value_parser = parse_endpoint)]
        endpoint: Endpoint,
    },
    Live {
        #[arg(value_parser = parse_endpoint)]
        endpoint: Endpoint,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it (only it, on stdout, this once; only its hash is kept).
    Create {
        /// viewer (reads), approver (also decides), admin (also operates and configures).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Who or what holds it; recorded with every decision made with it.
        #[arg(long)]
        name: String,
        /// Days until it expires (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
    },
    /// List the tokens (never the tokens themselves).
    List,
    /// Revoke a token by its id.
    Revoke { id: i64 },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// Verify credentials and reachability of the CRM and the ERP.
    Check,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// A full initial sync of the sandbox, then an incremental run after 1% of records change.
    Sync {
        /// Multiple of the default sandbox scale (2,000 accounts, 500 items).
        #[arg(long, default_value_t = 10)]
        scale: usize,
        /// Milliseconds the sandbox servers add to every call, as a network round trip would.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Alerting: finding-to-email latency through the outbox and an SMTP server, and outbox
    /// throughput to a webhook beside direct POSTs.
    Alert {
        /// Findings recorded for the latency measurement.
        #[arg(long, default_value_t = 1_000)]
        findings: usize,
        /// Findings recorded per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Notifications through the outbox for the throughput measurement.
        #[arg(long, default_value_t = 5_000)]
        notifications: usize,
    },
    /// The admin API under load on loopback: requests/s and p50/p99 latency of listing findings,
    /// proposals and the audit trail with many field events stored, beside /healthz.
    Api {
        /// Field events in the store.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Requests per route.
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
        /// Clients sending at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// A PostgreSQL server to measure instead of SQLite; a scratch database is created on it.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// Building one week's digest over a SQLite store holding that many events in the week,
    /// beside a plain COUNT(*) over the same rows.
    Digest {
        /// Field events in the week.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// Field events through the store versus plain prepared INSERTs, and over HTTP.
    Ingest {
        /// Number of field events to write.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        /// Events per batch (one transaction, one HTTP request).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// A PostgreSQL server to measure instead of SQLite; scratch databases are created on it.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// Skip the HTTP measurement.
        #[arg(long)]
        no_http: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sync of the sandbox by one and by two `serve` processes on one PostgreSQL database, and
    /// the takeover of an endpoint after its instance is killed mid-run.
    Instances {
        /// Multiple of the default sandbox scale.
        #[arg(long, default_value_t = 1)]
        scale: usize,
        /// The PostgreSQL server; scratch databases are created on it and dropped after.
        #[arg(long, value_name = "URL")]
        database_url: String,
        /// `sync.lease_secs` of the instances (the takeover bound).
        #[arg(long, default_value_t = 5)]
        lease_secs: u64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_settings(global: &GlobalArgs) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(global.config.as_deref())?;
    if let Some(dir) = &global.data_dir {
        settings.data_dir = dir.clone();
    }
    Ok(settings)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::DefaultConfig = cli.command {
        print!("{DEFAULT_CONFIG_TOML}");
        return Ok(());
    }
    let mut settings = load_settings(&cli.global)?;
    telemetry::init(&settings.log);
    if uses_secrets(&cli.command) {
        crate::vault::resolve_settings(&mut settings).await?;
    }
    match cli.command {
        Command::DefaultConfig => Ok(()),
        Command::Serve => serve(&settings).await,
        Command::Demo {
            port,
            once,
            json,
            alerts,
        } => {
            alerts.apply(&mut settings.alerting, port)?;
            demo(&mut settings, port, once, json).await
        }
        Command::Sync {
            once,
            endpoint,
            dry_run,
            retry_failed,
        } => sync(&settings, once, endpoint, dry_run, retry_failed).await,
        Command::Reconcile { endpoint } => reconcile(&settings, endpoint).await,
        Command::Connectors {
            which: ConnectorsCommand::Check,
        } => check_connectors(&settings).await,
        Command::Endpoint { which } => endpoint_switch(&settings, which).await,
        Command::Token { which } => token(&settings, which).await,
        Command::Secret { which } => crate::vault::run_command(&settings, which).await,
        Command::Erase(args) => crate::privacy::run_erase(&settings, args).await,
        Command::Monitor { which } => crate::monitor::run_command(which, &settings).await,
        Command::Dedup { which } => crate::dedup::command::run(&settings, which).await,
        Command::Alert { which } => crate::alert::run_command(&settings, which).await,
        Command::Digest(args) => crate::digest::command::run(&settings, args).await,
        Command::Migrate => {
            let store = startup::open_store(&settings).await?;
            store.close().await;
            println!("migrations applied ({})", store.backend().as_str());
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Sync {
                    scale,
                    latency_ms,
                    json,
                },
        } => {
            let options = bench::SyncBenchOptions {
                scale,
                latency_ms,
                data_dir: settings.data_dir.clone(),
            };
            let report = bench::run_sync_bench(&options).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Alert {
                    findings,
                    rate,
                    notifications,
                },
        } => {
            let options = crate::alert::AlertBenchOptions {
                findings,
                rate,
                notifications,
                data_dir: settings.data_dir.clone(),
            };
            let report = crate::alert::run_alert_bench(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Bench {
            which: BenchCommand::Digest { events },
        } => {
            let options = crate::digest::DigestBenchOptions {
                events,
                data_dir: settings.data_dir.clone(),
            };
            let report = crate::digest::run_digest_bench(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Api {
                    events,
                    requests,
                    concurrency,
                    database_url,
                },
        } => {
            let options = bench::ApiBenchOptions {
                events,
                requests,
                concurrency,
                database_url,
                data_dir: settings.data_dir.clone(),
            };
            let report = bench::run_api_bench(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Ingest {
                    events,
                    batch,
                    database_url,
                    no_http,
                    json,
                },
        } => {
            let options = IngestBenchOptions {
                events,
                batch_size: batch,
                database_url,
                data_dir: settings.data_dir.clone(),
                http: !no_http,
            };
            let report = bench::run_ingest_bench(&options).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Instances {
                    scale,
                    database_url,
                    lease_secs,
                },
        } => {
            let options = bench::InstancesBenchOptions {
                scale,
                database_url,
                lease_secs,
                data_dir: settings.data_dir.clone(),
            };
            let report = bench::run_instances_bench(&options).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

/// Whether the command talks to the CRM, ERP, receivers, LLM or serves ingest: then the
/// configuration's `vault:NAME` secrets are read from the vault first.
fn uses_secrets(command: &Command) -> bool {
    matches!(
        command,
        Command::Serve
            | Command::Demo { .. }
            | Command::Sync { .. }
            | Command::Reconcile { .. }
            | Command::Connectors { .. }
            | Command::Monitor { .. }
            | Command::Dedup { .. }
            | Command::Alert { .. }
            | Command::Digest(_)
    )
}

async fn token(settings: &Settings, which: TokenCommand) -> anyhow::Result<()> {
    let store = startup::open_store(settings).await?;
    let now = Clock::system().now();
    match which {
        TokenCommand::Create {
            role,
            name,
            expires_days,
        } => {
            anyhow::ensure!(!name.trim().is_empty(), "--name must not be empty");
            let token = crate::api::auth::new_token();
            let expires = expires_days.map(|d| now + Duration::from_secs(u64::from(d) * 86_400));
            let hash = crate::api::auth::hash_token(&token);
            let id = store.create_token(&name, role, &hash, now, expires).await?;
            eprintln!(
                "token {id} for {name} ({}); it is not shown again",
                role.as_str()
            );
            println!("{token}");
        }
        TokenCommand::List => {
            println!("{}", serde_json::to_string_pretty(&store.tokens().await?)?);
        }
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(
                store.revoke_token(id, now).await?,
                "no unrevoked token has id {id}"
            );
            println!("token {id} revoked");
        }
    }
    store.close().await;
    Ok(())
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    tracing::info!(
        database = %redact_url(secrecy::ExposeSecret::expose_secret(&settings.database_url())),
        "opening the store"
    );
    let clock = Clock::system();
    let store = startup::open_store(settings).await?;
    let engine = if service::is_configured(settings) {
        Some(Arc::new(service::engine(
            settings,
            store.clone(),
            clock.clone(),
        )?))
    } else {
        tracing::info!("no CRM token or ERP company configured: serving the API without the sync");
        None
    };
    run_app(settings, clock, store, engine).await
}

/// Serves the API and the live monitor (and runs the sync scheduler, when there is an engine)
/// until ctrl-c or SIGTERM.
async fn run_app(
    settings: &Settings,
    clock: Clock,
    store: Arc<dyn Store>,
    engine: Option<Arc<Engine>>,
) -> anyhow::Result<()> {
    // Announced as soon as the store is open, not when the scheduler starts: instances started
    // together then count each other before their first claims, and split the endpoints from
    // the first slots instead of one taking them all and handing half back after their runs.
    // Only an instance that schedules something counts, or the others would keep a share free
    // for it.
    let sharing = engine
        .clone()
        .filter(|e| e.endpoints().any(|(_, settings)| !settings.paused));
    if let Some(engine) = &sharing
        && let Err(e) = engine.beat().await
    {
        tracing::warn!(error = %e, "could not announce this instance");
    }
    let served = serve_until_stopped(settings, clock, store.clone(), engine).await;
    // Stopped (or failed to start): the others take this instance's endpoints at once.
    if let Some(engine) = sharing {
        engine.leave().await;
    }
    store.close().await;
    served
}

async fn serve_until_stopped(
    settings: &Settings,
    clock: Clock,
    store: Arc<dyn Store>,
    engine: Option<Arc<Engine>>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // One holder per process for the jobs that run on one instance at a time.
    let leases = Leases::new(
        store.clone(),
        clock.clone(),
        Duration::from_secs(settings.sync.lease_secs.max(1)),
    );
    let mut monitor =
        live_monitor(settings, &clock, store.clone(), engine.clone())?.with_leases(leases.clone());
    let maintenance = tokio::spawn(crate::maintenance::run(
        Maintenance::new(store.clone(), &settings.maintenance, &settings.data_dir),
        leases.clone(),
        clock.clone(),
        stop_rx.clone(),
    ));
    // Before the scheduler's first run, so a mismatch present at start is on record even when the
    // first sync corrects it (the next check then resolves it).
    monitor.check_prices(clock.now()).await?;
    let app =
        Application::with_store(settings, clock.clone(), store.clone(), engine.clone()).await?;
    // Scripts and tests read this line to learn the port when it was 0.
    println!(
        "syncwarden listening on {}://{}",
        app.scheme(),
        app.local_addr()
    );
    let every = Duration::from_secs(settings.sync.reconcile_interval_secs.max(1));
    let monitoring = tokio::spawn(crate::monitor::live::run(
        monitor,
        clock.clone(),
        stop_rx.clone(),
    ));
    let alerting = crate::alert::service::build(
        &settings.alerting,
        &settings.llm,
        store.clone(),
        clock.clone(),
    )?
    .map(|(alerting, worker)| {
        let every = Duration::from_secs(settings.alerting.evaluation_interval_secs.max(1));
        tokio::spawn(crate::alert::service::run(
            alerting,
            worker,
            clock.clone(),
            leases.clone(),
            every,
            stop_rx.clone(),
        ))
    });
    let digest =
        crate::digest::DigestScheduler::from_settings(settings, store.clone(), clock.clone())?.map(
            |d| {
                let every = Duration::from_secs(settings.digest.check_interval_secs.max(1));
                tokio::spawn(d.run(every, stop_rx.clone()))
            },
        );
    let dedup = engine
        .as_ref()
        .filter(|_| settings.dedup.interval_secs > 0)
        .map(|e| -> anyhow::Result<_> {
            let dedup =
                crate::dedup::service::build(settings, store.clone(), Some(e), clock.clone());
            let llm = crate::dedup::llm::Adjudicator::from_settings(&settings.llm)?;
            let every = Duration::from_secs(settings.dedup.interval_secs);
            Ok(tokio::spawn(crate::dedup::service::run(
                Arc::new(dedup),
                llm,
                every,
                clock.clone(),
                leases.clone(),
                stop_rx.clone(),
            )))
        })
        .transpose()?;
    let scheduler = engine.map(|e| tokio::spawn(service::run_scheduler(e, clock, every, stop_rx)));
    let served = app.run_until_stopped().await;
    let _ = stop_tx.send(true);
    if let Some(dedup) = dedup {
        let _ = dedup.await;
    }
    let _ = monitoring.await;
    let _ = maintenance.await;
    if let Some(alerting) = alerting {
        let _ = alerting.await;
    }
    if let Some(digest) = digest {
        let _ = digest.await;
    }
    if let Some(scheduler) = scheduler {
        // The scheduler stops between runs, so no run is cut in half.
        let _ = scheduler.await;
    }
    Ok(served?)
}

/// The live monitor with the configured detectors and, when the sync runs, the price and drift
/// checks.
fn live_monitor(
    settings: &Settings,
    clock: &Clock,
    store: Arc<dyn Store>,
    engine: Option<Arc<Engine>>,
) -> anyhow::Result<crate::monitor::LiveMonitor> {
    use crate::monitor::checks::{Currencies, SystemChecks};
    let watcher = crate::monitor::Watcher::new(settings.monitor.watch_params());
    let monitor = crate::monitor::LiveMonitor::new(store, watcher, clock.now());
    let Some(engine) = engine else {
        return Ok(monitor);
    };
    let currency = |name: &str, value: &str| {
        crate::domain::Currency::parse(value).with_context(|| format!("{name}: `{value}`"))
    };
    let currencies = Currencies {
        crm: currency("crm.default_currency", &settings.crm.default_currency)?,
        erp: currency("erp.default_currency", &settings.erp.default_currency)?,
    };
    let checks = SystemChecks::new(
        engine,
        settings.monitor.price_tolerance(),
        settings.monitor.line_price_book.clone(),
        currencies,
    )
    .with_customer_price_books(
        settings
            .monitor
            .customer_price_books
            .clone()
            .into_iter()
            .collect(),
    );
    let every = Duration::from_secs(settings.monitor.price_check_interval_secs.max(1));
    Ok(monitor.with_checks(checks, every))
}

async fn sync_engine(settings: &Settings) -> anyhow::Result<Engine> {
    if let Some(missing) = service::missing_credentials(settings) {
        anyhow::bail!(
            "the sync needs {missing} (and the rest of that section); see `syncwarden default-config`"
        );
    }
    let store = startup::open_store(settings).await?;
    Ok(service::engine(settings, store, Clock::system())?)
}

async fn sync(
    settings: &Settings,
    once: bool,
    endpoint: Option<Endpoint>,
    dry_run: bool,
    retry_failed: bool,
) -> anyhow::Result<()> {
    let engine = sync_engine(settings).await?;
    if retry_failed {
        let summary = engine.retry_failed(endpoint).await?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    if once {
        let summary = service::run_cycle(&engine, endpoint, dry_run).await;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        anyhow::ensure!(
            summary.errors.is_empty(),
            "some endpoints failed: {:?}",
            summary.errors
        );
        return Ok(());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let every = Duration::from_secs(settings.sync.reconcile_interval_secs.max(1));
    let scheduler = tokio::spawn(service::run_scheduler(
        Arc::new(engine),
        Clock::system(),
        every,
        stop_rx,
    ));
    tokio::signal::ctrl_c().await?;
    let _ = stop_tx.send(true);
    scheduler.await?;
    Ok(())
}

async fn reconcile(settings: &Settings, endpoint: Option<Endpoint>) -> anyhow::Result<()> {
    let engine = sync_engine(settings).await?;
    let endpoints: Vec<Endpoint> = engine
        .endpoints()
        .map(|(e, _)| *e)
        .filter(|e| endpoint.is_none_or(|o| o == *e))
        .collect();
    let mut report = BTreeMap::new();
    for e in endpoints {
        report.insert(e, engine.reconcile(e).await?);
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

async fn endpoint_switch(settings: &Settings, which: EndpointCommand) -> anyhow::Result<()> {
    let store = startup::open_store(settings).await?;
    let controls = store.endpoint_controls().await?;
    let (endpoint, paused, dry_run) = match which {
        EndpointCommand::List => {
            println!("{}", serde_json::to_string_pretty(&controls)?);
            return Ok(());
        }
        EndpointCommand::Pause { endpoint } => (endpoint, Some(true), None),
        EndpointCommand::Resume { endpoint } => (endpoint, Some(false), None),
        EndpointCommand::DryRun { endpoint } => (endpoint, None, Some(true)),
        EndpointCommand::Live { endpoint } => (endpoint, None, Some(false)),
    };
    let current = controls.into_iter().find(|c| c.endpoint == endpoint);
    let control = EndpointControl {
        endpoint,
        paused: paused.unwrap_or(current.as_ref().is_some_and(|c| c.paused)),
        dry_run: dry_run.unwrap_or(current.as_ref().is_some_and(|c| c.dry_run)),
        changed_at: Clock::system().now(),
        changed_by: "cli".into(),
    };
    store.set_endpoint_control(&control).await?;
    println!("{}", serde_json::to_string(&control)?);
    Ok(())
}

async fn check_connectors(settings: &Settings) -> anyhow::Result<()> {
    let [crm, erp] = service::connectors(settings)?;
    let mut failed = false;
    let erp_name = match settings.sync.erp {
        ErpKind::SapB1 => "erp (SAP Business One)",
        ErpKind::Tryton => "erp (Tryton)",
    };
    for (name, connector) in [("crm (HubSpot)", crm), (erp_name, erp)] {
        match connector.check().await {
            Ok(()) => println!("{name}: ok"),
            Err(e) => {
                failed = true;
                println!("{name}: FAILED: {e}");
            }
        }
    }
    anyhow::ensure!(!failed, "a connector check failed");
    Ok(())
}

/// Points the connectors at a freshly started sandbox.
fn use_sandbox(settings: &mut Settings, sandbox: &Sandbox) {
    sandbox.configure(settings);
    // The sandbox answers in microseconds: short backoffs keep the demo lively under faults.
    settings.sync.retry.base_delay_ms = 50;
    settings.sync.retry.max_delay_ms = 2_000;
}

async fn demo(settings: &mut Settings, port: u16, once: bool, json: bool) -> anyhow::Result<()> {
    settings.server.listen = ([127, 0, 0, 1], port).into();
    let clock = Clock::system();
    let scale = SeedScale::default();
    let sandbox = Sandbox::start(clock.clone(), &scale).await?;
    use_sandbox(settings, &sandbox);
    let store = startup::open_store(settings).await?;
    // The sandbox starts from its seed every time, so what the last demo synced no longer holds.
    store
        .reset_sync_state(clock.now(), "demo sandbox restarted")
        .await?;
    let engine = Arc::new(service::engine(settings, store.clone(), clock.clone())?);
    if once {
        let summary = service::run_cycle(&engine, None, false).await;
        if let Some((alerting, worker)) = crate::alert::service::build(
            &settings.alerting,
            &settings.llm,
            store.clone(),
            clock.clone(),
        )? {
            crate::alert::service::flush(&alerting, &worker, &clock, 5).await;
        }
        if json {
            println!("{}", serde_json::to_string(&summary)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        store.close().await;
        anyhow::ensure!(
            summary.errors.is_empty(),
            "some endpoints failed: {:?}",
            summary.errors
        );
        return Ok(());
    }
    print_demo_banner(settings, port, &sandbox, &scale);
    run_app(settings, clock, store, Some(engine)).await
}

fn print_demo_banner(settings: &Settings, port: u16, sandbox: &Sandbox, scale: &SeedScale) {
    println!(
        "syncwarden demo: embedded SQLite in {}\n\
         Sandbox CRM (HubSpot API) at {} and ERP (SAP B1 Service Layer) at {}: {} accounts, {} items\n\
         in {} price lists, planted duplicates and price drift. Syncing all seven endpoints now.\n\
         Inject faults: curl -X PUT {}/_sandbox/faults -H 'content-type: application/json' -d '{{\"error_rate\":0.2}}'\n\
         Other platforms can send field events too, e.g.:\n  \
         curl -s -X POST http://127.0.0.1:{port}/v1/events -H 'content-type: application/x-ndjson' \\\n    \
         --data-binary '{{\"idempotency_key\":\"demo-1\",\"endpoint\":\"items\",\"erp_id\":\"A100\",\"field\":\"price\",\"old_value\":\"9.90\",\"new_value\":\"10.50\",\"source_system\":\"erp\",\"target_system\":\"crm\",\"outcome\":\"applied\",\"latency_ms\":42,\"occurred_at\":\"2026-11-23T10:00:00Z\"}}'\n\
         Health: http://127.0.0.1:{port}/healthz  Ready: http://127.0.0.1:{port}/readyz  Stop: ctrl-c",
        settings.data_dir.display(),
        sandbox.crm.base_url(),
        sandbox.erp.base_url(),
        scale.accounts,
        scale.items,
        scale.price_lists,
        sandbox.erp.base_url(),
    );
}
