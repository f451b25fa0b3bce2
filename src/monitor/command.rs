//! `syncwarden monitor score|eval`: the command line of the monitor (the edge, so errors become
//! anyhow).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};

use super::score::{DetectorKind, score_file, score_tree};

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
    },
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

pub fn run(command: MonitorCommand) -> anyhow::Result<()> {
    let args = match command {
        MonitorCommand::Score(args) => args,
        MonitorCommand::Eval {
            runs,
            clean_weeks,
            seed,
        } => {
            let report = super::eval::run_eval(runs, clean_weeks, seed)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            return Ok(());
        }
    };
    let kind = DetectorKind::from(args.detector);
    let summary = match (args.input, args.output, args.input_dir, args.output_dir) {
        (Some(input), Some(output), _, _) => score_file(kind, &input, &output)?,
        (_, _, Some(input_dir), Some(output_dir)) => {
            score_tree(kind, &input_dir, &output_dir, |done, total, path| {
                eprintln!("[{done}/{total}] {}", path.display());
            })
            .with_context(|| format!("scoring the series under {}", input_dir.display()))?
        }
        // clap's groups and `requires` make every other combination unreachable.
        _ => anyhow::bail!("give --input and --output, or --input-dir and --output-dir"),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
