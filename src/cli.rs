//! The command line: `serve`, `demo`, `migrate`, `default-config`, `bench`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::bench::{self, IngestBenchOptions};
use crate::clock::Clock;
use crate::config::{DEFAULT_CONFIG_TOML, Settings, redact_url};
use crate::startup::{self, Application};
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
    /// Run the service: the ingest API and health endpoints.
    Serve,
    /// Run the demo on the embedded database; needs no configuration file and no other server.
    Demo {
        /// Port to serve on (127.0.0.1).
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the annotated default configuration.
    DefaultConfig,
    /// Benchmarks, each reported beside a baseline measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
    match cli.command {
        Command::DefaultConfig => Ok(()),
        Command::Serve => serve(&settings).await,
        Command::Demo { port } => {
            settings.server.listen = ([127, 0, 0, 1], port).into();
            print_demo_banner(&settings, port);
            serve(&settings).await
        }
        Command::Migrate => {
            let store = startup::open_store(&settings).await?;
            store.close().await;
            println!("migrations applied ({})", store.backend().as_str());
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
    }
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    tracing::info!(
        database = %redact_url(secrecy::ExposeSecret::expose_secret(&settings.database_url())),
        "opening the store"
    );
    let app = Application::build(settings, Clock::system()).await?;
    // Scripts and tests read this line to learn the port when it was 0.
    println!("syncwarden listening on http://{}", app.local_addr());
    app.run_until_stopped().await?;
    Ok(())
}

fn print_demo_banner(settings: &Settings, port: u16) {
    println!(
        "syncwarden demo: embedded SQLite in {}\n\
         Send field events from another integration platform, e.g.:\n  \
         curl -s -X POST http://127.0.0.1:{port}/v1/events -H 'content-type: application/x-ndjson' \\\n    \
         --data-binary '{{\"idempotency_key\":\"demo-1\",\"endpoint\":\"items\",\"erp_id\":\"A100\",\"field\":\"price\",\"old_value\":\"9.90\",\"new_value\":\"10.50\",\"source_system\":\"erp\",\"target_system\":\"crm\",\"outcome\":\"applied\",\"latency_ms\":42,\"occurred_at\":\"2026-11-23T10:00:00Z\"}}'\n\
         Health: http://127.0.0.1:{port}/healthz  Ready: http://127.0.0.1:{port}/readyz  Stop: ctrl-c",
        settings.data_dir.display()
    );
}
