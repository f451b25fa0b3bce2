//! `syncwarden dedup ...`: run, score-pairs, train and eval over CSV files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use super::FastSet;
use super::cluster::{self, Member};
use super::features;
use super::llm::{self, Adjudicator};
use super::model::{self, Model};
use super::profile::{FieldKind, Profile};
use super::service::Dedup;
use super::{
    Decision, DedupError, DedupSettings, PairFile, ScoredPair, Table, block, classify, load_model,
    read_pairs, read_table, score_candidates,
};
use crate::config::Settings;
use crate::domain::{Endpoint, ProposalStatus};

#[derive(Debug, Subcommand)]
pub enum DedupCommand {
    /// Find the duplicates in one table: writes `id_a,id_b,probability,decision,reason` for every
    /// pair that is a match or waits for review.
    Run {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        profile: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Also write one merge proposal per cluster (JSON).
        #[arg(long)]
        proposals: Option<PathBuf>,
    },
    /// Link two tables: the pairs of one record from each that are the same, written like `run`
    /// (`id_a` from --left, `id_b` from --right).
    Link {
        #[arg(long)]
        left: PathBuf,
        #[arg(long)]
        right: PathBuf,
        #[arg(long)]
        profile: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Score a candidate-pair file (`left_*`, `right_*` columns): `probability,decision,reason`
    /// per row, in input order. A `label` column is ignored.
    ScorePairs {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        profile: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Train the profile's model from labelled pairs and write it as the next version.
    Train {
        #[arg(long)]
        profile: PathBuf,
        /// Labelled pair files (`left_*`, `right_*`, `label` 1/0), e.g. admins' approved (1) and
        /// rejected (0) proposals. Repeatable.
        #[arg(long)]
        pairs: Vec<PathBuf>,
        /// Tables whose `--truth` column says which records are the same; their blocked
        /// candidate pairs become labelled pairs. Repeatable.
        #[arg(long)]
        table: Vec<PathBuf>,
        #[arg(long, default_value = "entity_id")]
        truth: String,
        /// Where to write the model (default: the profile's model directory).
        #[arg(long)]
        output_dir: Option<PathBuf>,
        /// L2 penalty of the logistic regression.
        #[arg(long, default_value_t = 0.01)]
        alpha: f64,
    },
    /// Scan an endpoint's synced records in the store (and the CRM's unlinked ones, when the CRM
    /// is configured), store a merge proposal per cluster and merge what the policy allows.
    Scan {
        /// accounts, contacts or items.
        #[arg(long, value_parser = parse_endpoint)]
        endpoint: Endpoint,
        /// The profile for that endpoint's fields (e.g. config/dedup/products.toml for items).
        #[arg(long)]
        profile: PathBuf,
    },
    /// List stored merge proposals.
    Proposals {
        #[arg(long, value_parser = parse_endpoint)]
        endpoint: Option<Endpoint>,
        /// open, approved or rejected.
        #[arg(long, value_parser = parse_status)]
        status: Option<ProposalStatus>,
    },
    /// Approve an open merge proposal and merge its records through the CRM and ERP (when they
    /// are configured; otherwise the merge waits for `serve`).
    Approve(Decide),
    /// Undo an applied merge: every record back as it was, re-linked.
    Undo(Decide),
    /// Run the merge and undo jobs left pending (e.g. by a process that was killed mid-merge).
    Merges,
    /// Reject an open merge proposal.
    Reject(Decide),
    /// Generate Febrl-style person records (seeded), deduplicate them end to end and score the
    /// result against the generated truth.
    Bench {
        #[arg(long, default_value_t = 1_000_000)]
        records: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value = "config/dedup/people.toml")]
        profile: PathBuf,
        /// Keep the generated CSV in this directory (default: the system's temporary directory,
        /// removed after the run).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure against labelled data: a table with a truth column, or a labelled pair file.
    /// Prints one JSON report with a single Jaro-Winkler threshold as the baseline.
    Eval {
        #[arg(long)]
        profile: PathBuf,
        /// A table to deduplicate, judged by its `--truth` column.
        #[arg(long, conflicts_with = "pairs")]
        input: Option<PathBuf>,
        #[arg(long, default_value = "entity_id")]
        truth: String,
        /// A labelled pair file to score.
        #[arg(long, required_unless_present = "input")]
        pairs: Option<PathBuf>,
        /// Labelled pairs to choose the baseline's threshold on (else chosen with hindsight on
        /// the evaluated data, an upper bound for the baseline).
        #[arg(long)]
        baseline_train: Option<PathBuf>,
        /// Also write what `run` / `score-pairs` would.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Adjudicate the uncertain band with the configured LLM.
        #[arg(long)]
        llm: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct Decide {
    id: i64,
    /// Who decides (recorded with the decision). Decisions are also kept as labelled pairs in
    /// `dedup.feedback_dir`, for `dedup train --pairs`.
    #[arg(long, default_value = "cli")]
    by: String,
}

fn parse_endpoint(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse(s).map_err(|e| e.to_string())
}

fn parse_status(s: &str) -> Result<ProposalStatus, String> {
    ProposalStatus::parse(s).ok_or_else(|| format!("unknown status {s} (open, approved, rejected)"))
}

/// The deduper with the configured CRM and ERP (when they are configured).
async fn service(settings: &Settings) -> anyhow::Result<Dedup> {
    let store = crate::startup::open_store(settings).await?;
    let clock = crate::clock::Clock::system();
    let engine = if crate::sync::service::is_configured(settings) {
        Some(crate::sync::service::engine(
            settings,
            store.clone(),
            clock.clone(),
        )?)
    } else {
        None
    };
    Ok(super::service::build(
        settings,
        store,
        engine.as_ref(),
        clock,
    ))
}

async fn decide(settings: &Settings, d: Decide, status: ProposalStatus) -> anyhow::Result<()> {
    let dedup = service(settings).await?;
    let action = match status {
        ProposalStatus::Approved => dedup.approve(d.id, &d.by).await?,
        _ => dedup.reject(d.id, &d.by).await?,
    };
    println!("{}", serde_json::to_string_pretty(&action)?);
    Ok(())
}

pub async fn run(settings: &Settings, command: DedupCommand) -> anyhow::Result<()> {
    match command {
        DedupCommand::Scan { endpoint, profile } => {
            let profile = Profile::load(&profile)?;
            let model = load_model(&profile)?;
            let llm = Adjudicator::from_settings(&settings.llm)?;
            let dedup = service(settings).await?;
            let report = dedup
                .scan_and_merge(endpoint, &profile, &model, llm.as_ref())
                .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        DedupCommand::Undo(d) => {
            let action = service(settings).await?.undo(d.id, &d.by).await?;
            println!("{}", serde_json::to_string_pretty(&action)?);
            Ok(())
        }
        DedupCommand::Merges => {
            let ended = service(settings).await?.run_merges().await;
            println!("{}", serde_json::json!({ "jobs_ended": ended }));
            Ok(())
        }
        DedupCommand::Proposals { endpoint, status } => {
            let store = crate::startup::open_store(settings).await?;
            let proposals = store.dedup_proposals(endpoint, status).await?;
            println!("{}", serde_json::to_string_pretty(&proposals)?);
            Ok(())
        }
        DedupCommand::Bench {
            records,
            seed,
            profile,
            dir,
        } => {
            // The shipped profile names its model relative to the repository root: both are
            // looked up under the same root, so the bench runs from any directory.
            let root = shipped_root(&profile);
            let mut profile = Profile::load(&root.join(profile))?;
            profile.model = root.join(&profile.model);
            let model = load_model(&profile)?;
            let keep = dir.is_some();
            let dir = dir.unwrap_or_else(std::env::temp_dir);
            let report = super::bench::run(
                &profile,
                &model,
                &settings.dedup,
                super::bench::Scale {
                    records,
                    seed,
                    dir: &dir,
                    keep,
                },
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        DedupCommand::Approve(d) => decide(settings, d, ProposalStatus::Approved).await,
        DedupCommand::Reject(d) => decide(settings, d, ProposalStatus::Rejected).await,
        DedupCommand::Run {
            input,
            profile,
            output,
            proposals,
        } => {
            let profile = Profile::load(&profile)?;
            let model = load_model(&profile)?;
            let llm = Adjudicator::from_settings(&settings.llm)?;
            let table = read_table(&profile, &input, None)?;
            let result = dedup_table(&profile, &model, &settings.dedup, llm.as_ref(), &table).await;
            write_table_pairs(&output, &table, &result.pairs)?;
            if let Some(path) = proposals {
                let proposals = proposals_of(&table, &result.clusters);
                std::fs::write(&path, serde_json::to_string_pretty(&proposals)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            tracing::info!(
                records = table.records.len(),
                candidates = result.candidates.len(),
                matches = result.count(Decision::Match),
                review = result.count(Decision::Review),
                clusters = result.clusters.len(),
                llm_asked = result.llm_asked,
                "dedup run done"
            );
            Ok(())
        }
        DedupCommand::Link {
            left,
            right,
            profile,
            output,
        } => {
            let profile = Profile::load(&profile)?;
            let model = load_model(&profile)?;
            let llm = Adjudicator::from_settings(&settings.llm)?;
            let left = read_table(&profile, &left, None)?;
            let right = read_table(&profile, &right, None)?;
            let (table, pairs) =
                link_tables(&profile, &model, &settings.dedup, llm.as_ref(), left, right).await;
            write_table_pairs(&output, &table, &pairs)?;
            tracing::info!(
                records = table.records.len(),
                matches = pairs
                    .iter()
                    .filter(|p| p.decision == Decision::Match)
                    .count(),
                "dedup link done"
            );
            Ok(())
        }
        DedupCommand::ScorePairs {
            input,
            profile,
            output,
        } => {
            let profile = Profile::load(&profile)?;
            let model = load_model(&profile)?;
            let llm = Adjudicator::from_settings(&settings.llm)?;
            let file = read_pairs(&profile, &input)?;
            let scored =
                score_pair_file(&profile, &model, &settings.dedup, llm.as_ref(), &file).await;
            write_scored_rows(&output, &scored)?;
            Ok(())
        }
        DedupCommand::Train {
            profile,
            pairs,
            table,
            truth,
            output_dir,
            alpha,
        } => {
            let profile = Profile::load(&profile)?;
            anyhow::ensure!(
                !pairs.is_empty() || !table.is_empty(),
                "give labelled pairs (--pairs) or tables with a truth column (--table)"
            );
            let set = training_set(&profile, &pairs, &table, &truth)?;
            let (model, metrics) = Model::train(
                &profile.entity,
                features::names(&profile),
                &set.rows,
                &set.labels,
                alpha,
            )?;
            let dir = output_dir.unwrap_or_else(|| profile.model.clone());
            let (path, meta) = model.save_next(&dir, set.sources, &set.labels, metrics)?;
            println!("wrote {}", path.display());
            println!("{}", serde_json::to_string_pretty(&meta)?);
            Ok(())
        }
        DedupCommand::Eval {
            profile,
            input,
            truth,
            pairs,
            baseline_train,
            output,
            llm,
        } => {
            let profile = Profile::load(&profile)?;
            let model = load_model(&profile)?;
            let llm = if llm {
                Some(
                    Adjudicator::from_settings(&settings.llm)?
                        .context("--llm needs [llm] base_url in the configuration")?,
                )
            } else {
                None
            };
            let report = match (input, pairs) {
                (Some(input), _) => {
                    eval_table(
                        &profile,
                        &model,
                        settings,
                        llm.as_ref(),
                        &input,
                        &truth,
                        output.as_deref(),
                    )
                    .await?
                }
                (None, Some(pairs)) => {
                    eval_pairs(
                        &profile,
                        &model,
                        settings,
                        llm.as_ref(),
                        &pairs,
                        baseline_train.as_deref(),
                        output.as_deref(),
                    )
                    .await?
                }
                (None, None) => anyhow::bail!("give --input (a table) or --pairs"),
            };
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

/// The directory a relative path of the shipped files (profiles, models) is taken from: the
/// working directory when the path exists there, else the first directory holding it among the
/// binary's ancestors (`<repo>/target/release/syncwarden`) and the repository it was built from.
fn shipped_root(relative: &Path) -> PathBuf {
    if relative.is_absolute() || relative.exists() {
        return PathBuf::new();
    }
    let exe = std::env::current_exe().ok();
    let ancestors = exe.iter().flat_map(|e| e.ancestors().skip(1));
    ancestors
        .chain(std::iter::once(Path::new(env!("CARGO_MANIFEST_DIR"))))
        .find(|root| root.join(relative).exists())
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The outcome of deduplicating one table.
pub struct TableRun {
    /// The compared pairs that are matches or wait for review (non-matches are dropped: a large
    /// run compares millions), then the pairs clusters imply, with their final decisions.
    pub pairs: Vec<ScoredPair>,
    /// How many of `pairs` come from the comparison; the rest were implied by clusters.
    pub compared_kept: usize,
    /// Every compared pair (blocking's output), sorted.
    pub candidates: Vec<(u32, u32)>,
    pub clusters: Vec<Vec<usize>>,
    pub skipped_blocks: usize,
    pub windowed_blocks: usize,
    pub llm_asked: usize,
    pub seconds: Phases,
}

/// Where a run's time went.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Phases {
    pub blocking: f64,
    /// Features and classifier for every candidate pair.
    pub scoring: f64,
    /// LLM adjudication, clustering and the pairs clusters imply.
    pub clustering: f64,
}

impl TableRun {
    pub fn count(&self, decision: Decision) -> usize {
        self.pairs.iter().filter(|p| p.decision == decision).count()
    }
}

/// Block, score, adjudicate, cluster. A match that did not make it into a cluster (a weak link
/// between two groups) waits for review; pairs a cluster implies but blocking never compared are
/// scored and added as matches.
pub async fn dedup_table(
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    llm: Option<&Adjudicator>,
    table: &Table,
) -> TableRun {
    let mut clock = Instant::now();
    let mut lap = || {
        let seconds = clock.elapsed().as_secs_f64();
        clock = Instant::now();
        seconds
    };
    let blocked = block::candidates(profile, &table.records);
    let blocking = lap();
    // Long runs report their phases so an operator sees it moving.
    tracing::info!(
        records = table.records.len(),
        candidates = blocked.pairs.len(),
        skipped_blocks = blocked.skipped_blocks,
        windowed_blocks = blocked.windowed_blocks,
        "blocking done, scoring"
    );
    let mut pairs = score_candidates(profile, model, settings, &table.records, &blocked.pairs);
    let scoring = lap();
    let llm_asked = match llm {
        Some(llm) => {
            llm.adjudicate(&profile.entity, settings, &mut pairs, |p| {
                llm::render_pair(
                    profile,
                    &table.raw.get(p.a),
                    &table.raw.get(p.b),
                    llm.redact,
                )
            })
            .await
        }
        None => 0,
    };
    let clusters = cluster::clusters(table.records.len(), &pairs, settings.min_link_density);
    let implied: FastSet<(usize, usize)> = cluster::cluster_pairs(&clusters).into_iter().collect();
    for p in &mut pairs {
        if p.decision == Decision::Match && !implied.contains(&(p.a, p.b)) {
            p.decision = Decision::Review;
            p.reason = Some("match links two clusters too weakly to join them".into());
        }
    }
    let compared_kept = pairs.len();
    let mut unseen: Vec<&(usize, usize)> = implied
        .iter()
        .filter(|(a, b)| {
            blocked
                .pairs
                .binary_search(&(*a as u32, *b as u32))
                .is_err()
        })
        .collect();
    unseen.sort_unstable();
    for (a, b) in unseen {
        let x = features::pair(profile, &table.records[*a], &table.records[*b]);
        pairs.push(ScoredPair {
            a: *a,
            b: *b,
            probability: model.probability(&x),
            decision: Decision::Match,
            reason: Some("same cluster".into()),
        });
    }
    TableRun {
        pairs,
        compared_kept,
        candidates: blocked.pairs,
        clusters,
        skipped_blocks: blocked.skipped_blocks,
        windowed_blocks: blocked.windowed_blocks,
        llm_asked,
        seconds: Phases {
            blocking,
            scoring,
            clustering: lap(),
        },
    }
}

/// Links two tables: only pairs with one record from each are compared. Returns both tables as
/// one (left records first) and the pairs that are matches or wait for review.
pub async fn link_tables(
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    llm: Option<&Adjudicator>,
    left: Table,
    right: Table,
) -> (Table, Vec<ScoredPair>) {
    let split = left.records.len();
    let mut table = Table {
        records: left.records.into_iter().chain(right.records).collect(),
        raw: left.raw.concat(right.raw),
        truth: None,
    };
    // Token rarity over both tables together: a name common on either side is common.
    features::weigh_all(
        profile.fields.len(),
        &mut table.records.iter_mut().collect::<Vec<_>>(),
    );
    let cross: Vec<(u32, u32)> = block::candidates(profile, &table.records)
        .pairs
        .into_iter()
        .filter(|(a, b)| (*a as usize) < split && (*b as usize) >= split)
        .collect();
    let mut pairs = score_candidates(profile, model, settings, &table.records, &cross);
    if let Some(llm) = llm {
        llm.adjudicate(&profile.entity, settings, &mut pairs, |p| {
            llm::render_pair(
                profile,
                &table.raw.get(p.a),
                &table.raw.get(p.b),
                llm.redact,
            )
        })
        .await;
    }
    (table, pairs)
}

pub async fn score_pair_file(
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    llm: Option<&Adjudicator>,
    file: &PairFile,
) -> Vec<ScoredPair> {
    let probabilities: Vec<f64> = file
        .features(profile)
        .iter()
        .map(|x| model.probability(x))
        .collect();
    let mut scored = classify(
        model,
        settings,
        (0..probabilities.len()).map(|i| (i, i)),
        &probabilities,
    );
    if let Some(llm) = llm {
        llm.adjudicate(&profile.entity, settings, &mut scored, |p| {
            let [left, right] = &file.raw[p.a];
            llm::render_pair(profile, left, right, llm.redact)
        })
        .await;
    }
    scored
}

/// One merge proposal per cluster, from the CSV rows (no owner system, no modification time:
/// the most complete value wins).
pub fn proposals_of(table: &Table, clusters: &[Vec<usize>]) -> Vec<cluster::Proposal> {
    clusters
        .iter()
        .filter_map(|c| {
            let members: Vec<Member> = c
                .iter()
                .map(|i| Member {
                    id: table.records[*i].id.clone(),
                    system: None,
                    modified_at: None,
                    fields: table.raw.get(*i),
                })
                .collect();
            cluster::propose(&members, &Default::default())
        })
        .collect()
}

fn csv_writer(path: &Path) -> Result<csv::Writer<std::fs::File>, DedupError> {
    csv::Writer::from_path(path).map_err(|source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    })
}

fn write_table_pairs(path: &Path, table: &Table, pairs: &[ScoredPair]) -> Result<(), DedupError> {
    let err = |source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv_writer(path)?;
    w.write_record(["id_a", "id_b", "probability", "decision", "reason"])
        .map_err(err)?;
    for p in pairs.iter().filter(|p| p.decision != Decision::NonMatch) {
        w.write_record([
            table.records[p.a].id.as_str(),
            table.records[p.b].id.as_str(),
            &format!("{:.4}", p.probability),
            p.decision.as_str(),
            p.reason.as_deref().unwrap_or(""),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|source| DedupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_scored_rows(path: &Path, scored: &[ScoredPair]) -> Result<(), DedupError> {
    let err = |source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv_writer(path)?;
    w.write_record(["probability", "decision", "reason"])
        .map_err(err)?;
    for p in scored {
        w.write_record([
            &format!("{:.4}", p.probability),
            p.decision.as_str(),
            p.reason.as_deref().unwrap_or(""),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|source| DedupError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Feature vectors and labels from labelled pair files and from tables with a truth column.
pub fn training_set(
    profile: &Profile,
    pair_files: &[PathBuf],
    tables: &[PathBuf],
    truth: &str,
) -> Result<TrainingSet, DedupError> {
    let (mut rows, mut labels, mut sources) = (Vec::new(), Vec::new(), Vec::new());
    for path in pair_files {
        let file = read_pairs(profile, path)?;
        let Some(l) = &file.labels else {
            return Err(DedupError::MissingColumn {
                path: path.clone(),
                column: "label".into(),
            });
        };
        labels.extend_from_slice(l);
        rows.extend(file.features(profile));
        sources.push(format!("{} ({} labelled pairs)", path.display(), l.len()));
    }
    for path in tables {
        let table = read_table(profile, path, Some(truth))?;
        let pairs = block::candidates(profile, &table.records).pairs;
        let t = table.truth.unwrap_or_default();
        labels.extend(pairs.iter().map(|(a, b)| t[*a as usize] == t[*b as usize]));
        sources.push(format!(
            "{} ({} records, {} blocked candidate pairs labelled by {truth})",
            path.display(),
            table.records.len(),
            pairs.len()
        ));
        rows.extend(pairs.iter().map(|(a, b)| {
            features::pair(
                profile,
                &table.records[*a as usize],
                &table.records[*b as usize],
            )
        }));
    }
    Ok(TrainingSet {
        rows,
        labels,
        sources,
    })
}

/// Labelled feature vectors, and where they came from (for the model's meta.json).
pub struct TrainingSet {
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<bool>,
    pub sources: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Serialize)]
pub struct Baseline {
    pub method: &'static str,
    pub threshold: f64,
    pub scores: Scores,
}

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub data: String,
    pub model_version: u32,
    pub rows: usize,
    pub compared_pairs: usize,
    /// Share of the true pairs blocking kept (tables only).
    pub blocking_recall: Option<f64>,
    /// The classifier alone, before clustering and the LLM.
    pub classifier: Scores,
    /// The final decisions (`match` only counts as a predicted pair).
    pub final_decisions: Scores,
    pub review: usize,
    pub llm_asked: usize,
    pub baseline: Baseline,
    /// Final F1 over baseline F1.
    pub f1_ratio_to_baseline: f64,
    pub seconds: f64,
    pub pairs_per_sec: f64,
}

/// The text the baseline compares: the profile's name fields, or its first text field.
fn baseline_text(profile: &Profile, record: &super::profile::Prepared) -> String {
    let names: Vec<usize> = profile
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.kind, FieldKind::Name | FieldKind::Company))
        .map(|(i, _)| i)
        .collect();
    let fields = if names.is_empty() {
        profile
            .fields
            .iter()
            .position(|f| f.kind == FieldKind::Text)
            .into_iter()
            .collect()
    } else {
        names
    };
    fields
        .iter()
        .filter_map(|i| record.value(*i).map(|v| v.text))
        .collect::<Vec<_>>()
        .join(" ")
}

fn scores((precision, recall, f1): (f64, f64, f64)) -> Scores {
    Scores {
        precision,
        recall,
        f1,
    }
}

/// Pairwise scores of predicted pairs against a truth labelling of records.
fn table_scores(predicted: &HashSet<(usize, usize)>, truth: &[String]) -> Scores {
    let tp = predicted
        .iter()
        .filter(|(a, b)| truth[*a] == truth[*b])
        .count() as f64;
    let total = block::truth_pairs(truth) as f64;
    let precision = if predicted.is_empty() {
        0.0
    } else {
        tp / predicted.len() as f64
    };
    let recall = if total > 0.0 { tp / total } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Scores {
        precision,
        recall,
        f1,
    }
}

async fn eval_table(
    profile: &Profile,
    model: &Model,
    settings: &Settings,
    llm: Option<&Adjudicator>,
    input: &Path,
    truth: &str,
    output: Option<&Path>,
) -> anyhow::Result<EvalReport> {
    let started = Instant::now();
    let table = read_table(profile, input, Some(truth))?;
    let result = dedup_table(profile, model, &settings.dedup, llm, &table).await;
    let seconds = started.elapsed().as_secs_f64();
    let t = table.truth.as_deref().unwrap_or_default();
    let blocked = &result.candidates;
    // Compared pairs below the threshold are non-matches to the classifier alone as well.
    let classifier: HashSet<(usize, usize)> = result.pairs[..result.compared_kept]
        .iter()
        .filter(|p| p.probability >= model.threshold)
        .map(|p| (p.a, p.b))
        .collect();
    let matched: HashSet<(usize, usize)> = result
        .pairs
        .iter()
        .filter(|p| p.decision == Decision::Match)
        .map(|p| (p.a, p.b))
        .collect();
    // The baseline sees the same candidate pairs and picks its best threshold with hindsight.
    let jw: Vec<f64> = blocked
        .iter()
        .map(|(a, b)| {
            strsim::jaro_winkler(
                &baseline_text(profile, &table.records[*a as usize]),
                &baseline_text(profile, &table.records[*b as usize]),
            )
        })
        .collect();
    let (threshold, baseline) = (50..=99)
        .map(|cut| {
            let cut = f64::from(cut) / 100.0;
            let predicted: HashSet<(usize, usize)> = blocked
                .iter()
                .zip(&jw)
                .filter(|(_, s)| **s >= cut)
                .map(|((a, b), _)| (*a as usize, *b as usize))
                .collect();
            (cut, table_scores(&predicted, t))
        })
        .fold((0.0, scores((0.0, 0.0, 0.0))), |best, c| {
            if c.1.f1 > best.1.f1 { c } else { best }
        });
    let final_decisions = table_scores(&matched, t);
    if let Some(path) = output {
        write_table_pairs(path, &table, &result.pairs)?;
    }
    Ok(EvalReport {
        data: input.display().to_string(),
        model_version: model.version,
        rows: table.records.len(),
        compared_pairs: result.candidates.len(),
        blocking_recall: Some(block::recall(blocked, t)),
        classifier: table_scores(&classifier, t),
        f1_ratio_to_baseline: final_decisions.f1 / baseline.f1.max(f64::EPSILON),
        final_decisions,
        review: result.count(Decision::Review),
        llm_asked: result.llm_asked,
        baseline: Baseline {
            method: "one Jaro-Winkler threshold on the name fields, best with hindsight",
            threshold,
            scores: baseline,
        },
        seconds,
        pairs_per_sec: result.candidates.len() as f64 / seconds,
    })
}

async fn eval_pairs(
    profile: &Profile,
    model: &Model,
    settings: &Settings,
    llm: Option<&Adjudicator>,
    path: &Path,
    baseline_train: Option<&Path>,
    output: Option<&Path>,
) -> anyhow::Result<EvalReport> {
    let started = Instant::now();
    let file = read_pairs(profile, path)?;
    let labels = file
        .labels
        .clone()
        .with_context(|| format!("{} has no label column", path.display()))?;
    let scored = score_pair_file(profile, model, &settings.dedup, llm, &file).await;
    let seconds = started.elapsed().as_secs_f64();
    let jw = |f: &PairFile| -> Vec<f64> {
        f.left
            .iter()
            .zip(&f.right)
            .map(|(a, b)| {
                strsim::jaro_winkler(&baseline_text(profile, a), &baseline_text(profile, b))
            })
            .collect()
    };
    let (threshold, method) = match baseline_train {
        Some(train_path) => {
            let train = read_pairs(profile, train_path)?;
            let l = train
                .labels
                .clone()
                .with_context(|| format!("{} has no label column", train_path.display()))?;
            (
                model::best_threshold(&jw(&train), &l).0,
                "one Jaro-Winkler threshold on the title, chosen on the training pairs",
            )
        }
        None => (
            model::best_threshold(&jw(&file), &labels).0,
            "one Jaro-Winkler threshold on the title, best with hindsight",
        ),
    };
    let base = scores(model::prf(
        jw(&file).iter().map(|s| *s >= threshold),
        &labels,
    ));
    let final_decisions = scores(model::prf(
        scored.iter().map(|p| p.decision == Decision::Match),
        &labels,
    ));
    if let Some(out) = output {
        write_scored_rows(out, &scored)?;
    }
    Ok(EvalReport {
        data: path.display().to_string(),
        model_version: model.version,
        rows: labels.len(),
        compared_pairs: labels.len(),
        blocking_recall: None,
        classifier: scores(model::prf(
            scored.iter().map(|p| p.probability >= model.threshold),
            &labels,
        )),
        f1_ratio_to_baseline: final_decisions.f1 / base.f1.max(f64::EPSILON),
        final_decisions,
        review: scored
            .iter()
            .filter(|p| p.decision == Decision::Review)
            .count(),
        llm_asked: scored.iter().filter(|p| p.reason.is_some()).count(),
        baseline: Baseline {
            method,
            threshold,
            scores: base,
        },
        seconds,
        pairs_per_sec: labels.len() as f64 / seconds,
    })
}
