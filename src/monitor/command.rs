//! `syncwarden monitor score|eval|metrics|findings|ack|resolve`: the command line of the monitor
//! (the edge, so errors become anyhow).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::findings::{FindingState, FindingsReport};
use super::rollup;
use super::score::{DetectorKind, score_file, score_tree};
use crate::config::Settings;
use crate::domain::Timestamp;
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Score recorded series (`timestamp,value` CSV) point by point with the live detector and
    /// write `timestamp,value,anomaly_score`; prints a JSON summary with the detector's cost.
    Score(ScoreArgs),
    /// The sync-incident detectors on simulated weeks of one endpoint's writes, with injected
    /// incidents of known start and clean weeks; prints one JSON report.
    Eval {
        /// Runs per incident kind (each a learning week and a scored week).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Clean scored weeks (each after its own learning week).
        #[arg(long, default_value_t = 20)]
        clean_weeks: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Against the sandbox servers on a manual clock (faults injected into the real sandbox
        /// CRM and ERP while the engine syncs) instead of the simulated metric stream.
        #[arg(long)]
        sandbox: bool,
        /// With --sandbox: hours each run learns before it is scored.
        #[arg(long, default_value_t = 24, requires = "sandbox")]
        learn_hours: u64,
        /// With --sandbox: scored hours of an incident run (the incident starts an hour in, or a
        /// third in when shorter).
        #[arg(long, default_value_t = 6, requires = "sandbox")]
        scored_hours: u64,
        /// With --sandbox: scored hours of the clean run.
        #[arg(long, default_value_t = 168, requires = "sandbox")]
        clean_hours: u64,
        /// With --sandbox: ERP item edits per minute, on average (17: about 1,000 an hour).
        #[arg(long, default_value_t = 17, requires = "sandbox")]
        writes_per_minute: usize,
        /// With --sandbox: items in the sandbox (each edit picks one at random).
        #[arg(long, default_value_t = 200, requires = "sandbox")]
        items: usize,
        /// With --sandbox: milliseconds every CRM write call takes on top of its own time (five
        /// times as many during the latency incident); real time, so well above the machine's
        /// own noise.
        #[arg(long, default_value_t = 20, requires = "sandbox")]
        write_latency_ms: u64,
        /// With --sandbox: scenarios run at once.
        #[arg(long, default_value_t = 2, requires = "sandbox")]
        jobs: usize,
    },
    /// The findings in the store, newest first, with mean time to detect and to recover.
    Findings {
        /// Only findings in this state (open, acknowledged, resolved).
        #[arg(long, value_parser = parse_state)]
        state: Option<FindingState>,
    },
    /// The stored metric roll-ups (brought up to date first) per scope, per minute, hour or day:
    /// API calls, writes, success rates, latency percentiles, records, conflicts, reconciliation
    /// differences, duplicates and freshness, as JSON.
    Metrics {
        /// From this instant (RFC 3339), inclusive; default: a day before `--to`.
        #[arg(long, value_parser = parse_time)]
        from: Option<Timestamp>,
        /// Up to this instant (RFC 3339), exclusive; default: now.
        #[arg(long, value_parser = parse_time)]
        to: Option<Timestamp>,
        #[arg(long, value_enum, default_value_t = Resolution::Hour)]
        resolution: Resolution,
    },
    /// Acknowledge an open finding.
    Ack { id: i64 },
    /// Resolve a finding by hand (it reopens if the anomaly is reported again).
    Resolve { id: i64 },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    Minute,
    Hour,
    Day,
}

impl Resolution {
    fn rollup(self) -> rollup::Resolution {
        match self {
            Resolution::Minute => rollup::Resolution::Minute,
            Resolution::Hour => rollup::Resolution::Hour,
            Resolution::Day => rollup::Resolution::Day,
        }
    }
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

fn parse_state(s: &str) -> Result<FindingState, String> {
    FindingState::parse(s)
        .ok_or_else(|| format!("unknown state `{s}` (open, acknowledged, resolved)"))
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["input", "input_dir"]))]
pub struct ScoreArgs {
    /// One series to score.
    #[arg(long, value_name = "SERIES.csv", requires = "output")]
    input: Option<PathBuf>,
    /// Where to write the scored series.
    #[arg(long, value_name = "SCORED.csv", requires = "input")]
    output: Option<PathBuf>,
    /// A tree of series (`*.csv` at any depth).
    #[arg(
        long,
        value_name = "DIR",
        requires = "output_dir",
        conflicts_with = "input"
    )]
    input_dir: Option<PathBuf>,
    /// Where to write the scored tree, at the same relative paths.
    #[arg(long, value_name = "DIR", requires = "input_dir")]
    output_dir: Option<PathBuf>,
    /// The detector: the monitor's own, or the plain windowed Gaussian baseline.
    #[arg(long, value_enum, default_value_t = DetectorArg::Ensemble)]
    detector: DetectorArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DetectorArg {
    Ensemble,
    WindowedGaussian,
}

impl From<DetectorArg> for DetectorKind {
    fn from(arg: DetectorArg) -> Self {
        match arg {
            DetectorArg::Ensemble => DetectorKind::Ensemble,
            DetectorArg::WindowedGaussian => DetectorKind::WindowedGaussian,
        }
    }
}

pub async fn run(command: MonitorCommand, settings: &Settings) -> anyhow::Result<()> {
    let args = match command {
        MonitorCommand::Score(args) => args,
        MonitorCommand::Findings { state } => {
            let store = startup::open_store(settings).await?;
            let report = FindingsReport::new(store.findings(state).await?);
            store.close().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        MonitorCommand::Metrics {
            from,
            to,
            resolution,
        } => {
            let to = to.unwrap_or_else(Timestamp::now_utc);
            let from = from.unwrap_or(to - Duration::from_secs(86_400));
            let resolution = resolution.rollup();
            let store = startup::open_store(settings).await?;
            // Brings the roll-ups up to date first, so the command answers without a running
            // `serve` too.
            rollup::run_once(store.as_ref(), Timestamp::now_utc()).await?;
            let rows = store
                .rollups(resolution, resolution.floor(from), to)
                .await?;
            store.close().await;
            println!("{}", serde_json::to_string_pretty(&rollup::series(&rows))?);
            return Ok(());
        }
        MonitorCommand::Ack { id } | MonitorCommand::Resolve { id } => {
            let store = startup::open_store(settings).await?;
            let now = Timestamp::now_utc();
            let changed = if matches!(command, MonitorCommand::Ack { .. }) {
                store.acknowledge_finding(id, now).await?
            } else {
                store.resolve_finding(id, now).await?
            };
            store.close().await;
            let finding = changed.with_context(|| {
                format!("no finding {id} in a state that allows it (see `monitor findings`)")
            })?;
            println!("{}", serde_json::to_string(&finding)?);
            return Ok(());
        }
        MonitorCommand::Eval {
            runs,
            seed,
            sandbox: true,
            learn_hours,
            scored_hours,
            clean_hours,
            writes_per_minute,
            items,
            write_latency_ms,
            jobs,
            ..
        } => {
            let options = super::sandbox_eval::SandboxEvalOptions {
                runs,
                learn_hours,
                scored_hours,
                clean_hours,
                writes_per_minute,
                items,
                write_latency_ms,
                jobs,
                seed,
            };
            let report =
                super::sandbox_eval::run_sandbox_eval(options, settings.monitor.watch_params())
                    .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
        MonitorCommand::Eval {
            runs,
            clean_weeks,
            seed,
            ..
        } => {
            let report = super::eval::run_eval(runs, clean_weeks, seed)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
    };
    let kind = DetectorKind::from(args.detector);
    let summary = match (args.input, args.output, args.input_dir, args.output_dir) {
        (Some(input), Some(output), _, _) => {
            score_file(kind, &settings.monitor.detector, &input, &output)?
        }
        (_, _, Some(input_dir), Some(output_dir)) => score_tree(
            kind,
            &settings.monitor.detector,
            &input_dir,
            &output_dir,
            |done, total, path| {
                eprintln!("[{done}/{total}] {}", path.display());
            },
        )
        .with_context(|| format!("scoring the series under {}", input_dir.display()))?,
        // clap's groups and `requires` make every other combination unreachable.
        _ => anyhow::bail!("give --input and --output, or --input-dir and --output-dir"),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
