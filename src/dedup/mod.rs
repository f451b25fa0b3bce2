//! The deduper: normalise, block, compare, classify, adjudicate the uncertain band with an LLM,
//! cluster without chaining, and propose merges.
//!
//! Data flows one way: CSV rows (or store records) -> [`profile::Prepared`] -> candidate pairs
//! ([`block`]) -> feature vectors ([`features`]) -> match probability ([`model`]) -> decision,
//! optionally revised by [`llm`] -> clusters and merge proposals ([`cluster`]).

pub mod bench;
pub mod block;
pub mod cluster;
pub mod command;
pub mod features;
pub mod llm;
pub mod model;
pub mod normalise;
pub mod profile;
pub mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::model::Model;
use self::profile::{Prepared, Profile};

#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    // The cause is printed by whoever prints the error chain.
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("profile {path}: {message}")]
    Profile { path: PathBuf, message: String },
    #[error("{path}: column {column} not found")]
    MissingColumn { path: PathBuf, column: String },
    #[error("no model-v<N>.json in {0}: train one with `syncwarden dedup train`")]
    NoModel(PathBuf),
    #[error("model {path}: {message}")]
    BadModel { path: PathBuf, message: String },
    #[error(
        "the model was trained on {model} features but the profile yields {profile}: retrain it"
    )]
    FeatureMismatch { model: usize, profile: usize },
    #[error("training failed: {0}")]
    Training(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{path} line {line}: label {value:?} is neither 0 nor 1")]
    BadLabel {
        path: PathBuf,
        line: u64,
        value: String,
    },
}

/// Settings of the deduper (`[dedup]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DedupSettings {
    /// Pairs below the model's threshold but at or above this probability wait for review.
    pub review_below: f64,
    /// With an LLM configured, pairs in [review_below, llm_above) are adjudicated by it; pairs at
    /// or above this are matches without asking.
    pub llm_above: f64,
    /// A cluster only grows when this share of the pairs across the two joined groups are
    /// matches, so one weak link cannot chain two people together.
    pub min_link_density: f64,
}

impl Default for DedupSettings {
    fn default() -> Self {
        Self {
            review_below: 0.2,
            llm_above: 0.95,
            min_link_density: 0.5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Match,
    Review,
    NonMatch,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Review => "review",
            Self::NonMatch => "non_match",
        }
    }

    /// The classifier's own decision.
    pub fn from_probability(p: f64, threshold: f64, settings: &DedupSettings) -> Self {
        if p >= threshold {
            Self::Match
        } else if p >= settings.review_below {
            Self::Review
        } else {
            Self::NonMatch
        }
    }
}

/// One compared pair, as indexes into the records it was scored from.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredPair {
    pub a: usize,
    pub b: usize,
    pub probability: f64,
    pub decision: Decision,
    /// Why the decision differs from the classifier's (the LLM's reason), if it does.
    pub reason: Option<String>,
}

/// A CSV file read into raw rows (header -> value).
pub struct Rows {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub fn read_csv(path: &Path) -> Result<Rows, DedupError> {
    let csv_err = |source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(csv_err)?;
    let headers = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let rows = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .map_err(csv_err)?;
    Ok(Rows { headers, rows })
}

impl Rows {
    fn column(&self, path: &Path, name: &str) -> Result<usize, DedupError> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DedupError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            })
    }

    /// Row `i` as `column -> value`, the columns renamed by `rename` (those it maps to `None`
    /// are left out).
    fn map<'a>(
        &'a self,
        i: usize,
        rename: impl Fn(&'a str) -> Option<&'a str>,
    ) -> BTreeMap<&'a str, &'a str> {
        self.headers
            .iter()
            .zip(&self.rows[i])
            .filter_map(|(h, v)| rename(h).map(|h| (h, v.as_str())))
            .collect()
    }
}

/// One table of records to deduplicate, with the truth labels when evaluating.
pub struct Table {
    pub records: Vec<Prepared>,
    /// Every record's original columns, for merge proposals and LLM prompts.
    pub raw: Vec<BTreeMap<String, String>>,
    pub truth: Option<Vec<String>>,
}

/// Reads a table; `truth` names a column that says which records are the same (evaluation and
/// training only: it is never a feature).
pub fn read_table(
    profile: &Profile,
    path: &Path,
    truth: Option<&str>,
) -> Result<Table, DedupError> {
    let rows = read_csv(path)?;
    let id = profile
        .id
        .as_deref()
        .map(|c| rows.column(path, c))
        .transpose()?;
    let truth_col = truth.map(|c| rows.column(path, c)).transpose()?;
    let prepare = |(i, row): (usize, &Vec<String>)| {
        let id = id
            .and_then(|c| row.get(c).cloned())
            .unwrap_or_else(|| (i + 1).to_string());
        let map = rows.map(i, |h| (Some(h) != truth).then_some(h));
        let record = profile.prepare(id, &map);
        let raw: BTreeMap<String, String> = map
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        (record, raw)
    };
    // Normalising is most of the cost of reading a large table, and rows are independent.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.rows.len().div_ceil(threads).max(1024);
    let prepared: Vec<Vec<(Prepared, BTreeMap<String, String>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .rows
            .chunks(chunk)
            .enumerate()
            .map(|(k, part)| {
                let prepare = &prepare;
                scope.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, row)| prepare((k * chunk + j, row)))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let (records, raw) = prepared.into_iter().flatten().unzip();
    let mut table = Table {
        records,
        raw,
        truth: truth_col.map(|c| {
            rows.rows
                .iter()
                .map(|row| row.get(c).cloned().unwrap_or_default())
                .collect()
        }),
    };
    features::weigh_all(
        profile.fields.len(),
        &mut table.records.iter_mut().collect::<Vec<_>>(),
    );
    Ok(table)
}

/// A candidate-pair file (`left_*`, `right_*`, optional `label`).
pub struct PairFile {
    pub left: Vec<Prepared>,
    pub right: Vec<Prepared>,
    pub raw: Vec<[BTreeMap<String, String>; 2]>,
    pub labels: Option<Vec<bool>>,
}

pub fn read_pairs(profile: &Profile, path: &Path) -> Result<PairFile, DedupError> {
    let rows = read_csv(path)?;
    let label = rows.headers.iter().position(|h| h == "label");
    let mut file = PairFile {
        left: Vec::with_capacity(rows.rows.len()),
        right: Vec::with_capacity(rows.rows.len()),
        raw: Vec::with_capacity(rows.rows.len()),
        labels: label.map(|_| Vec::with_capacity(rows.rows.len())),
    };
    for (i, row) in rows.rows.iter().enumerate() {
        let left = rows.map(i, |h| h.strip_prefix("left_"));
        let right = rows.map(i, |h| h.strip_prefix("right_"));
        file.left
            .push(profile.prepare(format!("{}L", i + 1), &left));
        file.right
            .push(profile.prepare(format!("{}R", i + 1), &right));
        let owned = |m: BTreeMap<&str, &str>| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        file.raw.push([owned(left), owned(right)]);
        if let (Some(labels), Some(c)) = (file.labels.as_mut(), label) {
            let value = row.get(c).map(|v| v.trim()).unwrap_or_default();
            labels.push(match value {
                "1" => true,
                "0" => false,
                other => {
                    return Err(DedupError::BadLabel {
                        path: path.to_path_buf(),
                        // Line 1 is the header.
                        line: i as u64 + 2,
                        value: other.to_string(),
                    });
                }
            });
        }
    }
    // Token rarity over both sides: a catalogue's worth of records, each row's counted once.
    let mut all: Vec<&mut Prepared> = file.left.iter_mut().chain(file.right.iter_mut()).collect();
    features::weigh_all(profile.fields.len(), &mut all);
    Ok(file)
}

impl PairFile {
    pub fn features(&self, profile: &Profile) -> Vec<Vec<f64>> {
        self.left
            .iter()
            .zip(&self.right)
            .map(|(a, b)| features::pair(profile, a, b))
            .collect()
    }
}

/// The match probability of every candidate pair, computed on all cores: this is where a large
/// run spends its time, and each pair is independent.
pub fn probabilities(
    profile: &Profile,
    model: &Model,
    records: &[Prepared],
    pairs: &[(u32, u32)],
) -> Vec<f64> {
    let mut out = vec![0.0; pairs.len()];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = pairs.len().div_ceil(threads).max(1024);
    std::thread::scope(|scope| {
        for (pairs, out) in pairs.chunks(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                let mut x = Vec::with_capacity(model.features.len());
                for ((a, b), p) in pairs.iter().zip(out.iter_mut()) {
                    x.clear();
                    features::pair_into(
                        profile,
                        &records[*a as usize],
                        &records[*b as usize],
                        &mut x,
                    );
                    *p = model.probability(&x);
                }
            });
        }
    });
    out
}

/// Classifier decisions for scored pairs.
pub fn classify(
    model: &Model,
    settings: &DedupSettings,
    pairs: impl Iterator<Item = (usize, usize)>,
    probabilities: &[f64],
) -> Vec<ScoredPair> {
    pairs
        .zip(probabilities)
        .map(|((a, b), p)| ScoredPair {
            a,
            b,
            probability: *p,
            decision: Decision::from_probability(*p, model.threshold, settings),
            reason: None,
        })
        .collect()
}

/// The profile's model, checked against the profile's features.
pub fn load_model(profile: &Profile) -> Result<Model, DedupError> {
    let model = Model::load_latest(&profile.model)?;
    model.check_features(&features::names(profile))?;
    Ok(model)
}
