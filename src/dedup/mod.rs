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
pub mod merge;
pub mod model;
pub mod normalise;
pub mod policy;
pub mod profile;
pub mod scan;
pub mod service;
pub mod similarity;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

use serde::{Deserialize, Serialize};

use self::model::Model;
use self::profile::{Prepared, Profile};

/// The deduper's in-memory maps (token counts, block keys, truth labels, pair sets) hold a file's
/// own data, not keys a client picks, so they need no defence against hash flooding: SipHash's
/// cost showed at a million records. foldhash with its fixed seed is fast and the same run to run.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
pub(crate) type FastSet<T> = HashSet<T, foldhash::fast::FixedState>;

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
    #[error("proposal {proposal}: {message}")]
    Merge { proposal: i64, message: String },
    #[error("no action {0}")]
    NotFound(i64),
    #[error("action {id} is {status}: {message}")]
    WrongState {
        id: i64,
        status: &'static str,
        message: &'static str,
    },
    /// Carrying out the action would write the erasure tombstone into the CRM or ERP, over
    /// whatever the person's record holds there now.
    #[error(
        "action {id} cannot be {doing}: the personal data it would write ({records}) was erased \
         by {erasures}; writing it would put the tombstone \"{tombstone}\" into the CRM or ERP. \
         Nothing was changed; re-enter what is still needed in the CRM by hand",
        tombstone = crate::privacy::ERASED
    )]
    Erased {
        id: i64,
        doing: &'static str,
        /// Which erasures, e.g. `GDPR erasure 3f2a…`.
        erasures: String,
        /// Each record with the erased fields, e.g. `accounts C0001: phone`.
        records: String,
    },
    #[error(transparent)]
    Connector(#[from] crate::sync::connectors::ConnectorError),
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
    /// Seconds between scans (with the auto-merge policy) in `serve` and the demo; 0: none.
    pub interval_secs: u64,
    /// The profile each scanned endpoint's records are compared with.
    pub profiles: BTreeMap<crate::domain::Endpoint, String>,
    /// Where people's approve/reject decisions are kept as labelled pairs (`<endpoint>.csv`);
    /// empty: `<data_dir>/dedup-feedback`.
    pub feedback_dir: String,
    /// How long a worker holds a merge job between steps before another may take it over.
    pub claim_secs: u64,
    /// When the agent may merge on its own, per endpoint; endpoints not listed never auto-merge.
    pub policy: BTreeMap<crate::domain::Endpoint, policy::MergePolicy>,
}

impl Default for DedupSettings {
    fn default() -> Self {
        Self {
            review_below: 0.2,
            llm_above: 0.95,
            min_link_density: 0.5,
            interval_secs: 3600,
            profiles: BTreeMap::from([
                (
                    crate::domain::Endpoint::Accounts,
                    "config/dedup/accounts.toml".to_string(),
                ),
                (
                    crate::domain::Endpoint::Contacts,
                    "config/dedup/contacts.toml".to_string(),
                ),
            ]),
            feedback_dir: String::new(),
            claim_secs: 60,
            policy: policy::default_policies(),
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
    let mut reader = csv_reader(path)?;
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
    pub raw: RawRows,
    pub truth: Option<Vec<String>>,
}

/// Records' original columns, kept compactly (one byte string a record, column names shared)
/// and given back exactly as they were read, empty values and all.
#[derive(Debug, Default)]
pub struct RawRows {
    columns: Vec<String>,
    rows: Vec<Box<[u8]>>,
}

impl RawRows {
    /// `(column index, value)` pairs as one byte string: index and length, then the value.
    fn encode<'a>(values: impl Iterator<Item = (usize, &'a str)>) -> Box<[u8]> {
        let mut out = Vec::new();
        for (column, value) in values {
            out.extend_from_slice(&(column as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out.into_boxed_slice()
    }

    pub fn from_maps<'a>(maps: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> Self {
        let mut out = Self::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        for map in maps {
            let values: Vec<(usize, &str)> = map
                .iter()
                .map(|(k, v)| {
                    let next = index.len();
                    let column = *index.entry(k.clone()).or_insert_with(|| {
                        out.columns.push(k.clone());
                        next
                    });
                    (column, v.as_str())
                })
                .collect();
            out.rows.push(Self::encode(values.into_iter()));
        }
        out
    }

    /// Record `i`'s columns.
    pub fn get(&self, i: usize) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut rest = self.rows.get(i).map_or(&[][..], |r| &r[..]);
        while rest.len() >= 8 {
            let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let (column, len) = (word(&rest[..4]), word(&rest[4..8]));
            let value = String::from_utf8_lossy(&rest[8..8 + len]).into_owned();
            out.insert(self.columns[column].clone(), value);
            rest = &rest[8 + len..];
        }
        out
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// `self`'s rows, then `other`'s.
    pub fn concat(self, other: Self) -> Self {
        let maps: Vec<BTreeMap<String, String>> = (0..self.len())
            .map(|i| self.get(i))
            .chain((0..other.len()).map(|i| other.get(i)))
            .collect();
        Self::from_maps(&maps)
    }
}

/// One row as read: the prepared record, its original columns and its truth label.
type ReadRow = (Prepared, Box<[u8]>, Option<String>);

/// Rows handed from the reading thread to the normalising ones at a time.
const BATCH: usize = 4096;

/// Reads a table; `truth` names a column that says which records are the same (evaluation and
/// training only: it is never a feature). The file is read on this thread while the other cores
/// normalise what was read, batch by batch, so a large file is never held twice.
pub fn read_table(
    profile: &Profile,
    path: &Path,
    truth: Option<&str>,
) -> Result<Table, DedupError> {
    let csv_err = |source| DedupError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv_reader(path)?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DedupError::MissingColumn {
                path: path.to_path_buf(),
                column: name.to_string(),
            })
    };
    let id = profile.id.as_deref().map(column).transpose()?;
    let truth_col = truth.map(column).transpose()?;
    // A repeated header name keeps its last column, as a map of the row would.
    let index: FastMap<&str, usize> = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| Some(h.as_str()) != truth)
        .map(|(i, h)| (h.as_str(), i))
        .collect();
    let prepare = |i: usize, row: &csv::StringRecord| -> ReadRow {
        let id = id
            .and_then(|c| row.get(c))
            .map_or_else(|| (i + 1).to_string(), str::to_string);
        let record = profile.prepare_with(id, |c| index.get(c).and_then(|k| row.get(*k)));
        let raw = RawRows::encode(row.iter().enumerate().filter(|(k, _)| {
            headers
                .get(*k)
                .is_some_and(|h| index.get(h.as_str()) == Some(k))
        }));
        let label = truth_col.map(|c| row.get(c).unwrap_or_default().to_string());
        (record, raw, label)
    };
    let (batch_tx, batch_rx) = mpsc::sync_channel::<(usize, Vec<csv::StringRecord>)>(4);
    let batch_rx = Mutex::new(batch_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Vec<ReadRow>)>();
    std::thread::scope(|scope| {
        for _ in 0..features::parallelism() {
            let (batch_rx, done_tx, prepare) = (&batch_rx, done_tx.clone(), &prepare);
            scope.spawn(move || {
                // The lock is held only while taking the next batch.
                while let Some((first, rows)) = next_batch(batch_rx) {
                    let rows = rows
                        .iter()
                        .enumerate()
                        .map(|(j, r)| prepare(first + j, r))
                        .collect();
                    if done_tx.send((first, rows)).is_err() {
                        break;
                    }
                }
            });
        }
        // Dropping the sender (also on a read error) lets the workers finish.
        send_batches(&mut reader, batch_tx)
    })
    .map_err(csv_err)?;
    drop(done_tx);
    let mut batches: Vec<(usize, Vec<ReadRow>)> = done_rx.into_iter().collect();
    batches.sort_unstable_by_key(|(first, _)| *first);
    let n = batches.iter().map(|(_, b)| b.len()).sum();
    let mut table = Table {
        records: Vec::with_capacity(n),
        raw: RawRows {
            columns: headers.clone(),
            rows: Vec::with_capacity(n),
        },
        truth: truth_col.map(|_| Vec::with_capacity(n)),
    };
    for (record, raw, label) in batches.into_iter().flat_map(|(_, b)| b) {
        table.records.push(record);
        table.raw.rows.push(raw);
        if let (Some(truth), Some(label)) = (table.truth.as_mut(), label) {
            truth.push(label);
        }
    }
    features::weigh_all(
        profile.fields.len(),
        &mut table.records.iter_mut().collect::<Vec<_>>(),
    );
    Ok(table)
}

fn next_batch<T>(rx: &Mutex<mpsc::Receiver<T>>) -> Option<T> {
    rx.lock().ok()?.recv().ok()
}

/// Reads every row, in batches numbered by their first row.
fn send_batches(
    reader: &mut csv::Reader<std::fs::File>,
    tx: mpsc::SyncSender<(usize, Vec<csv::StringRecord>)>,
) -> Result<(), csv::Error> {
    let mut first = 0;
    loop {
        let mut batch = Vec::with_capacity(BATCH);
        let mut row = csv::StringRecord::new();
        while batch.len() < BATCH && reader.read_record(&mut row)? {
            batch.push(std::mem::take(&mut row));
        }
        let len = batch.len();
        if len == 0 || tx.send((first, batch)).is_err() {
            return Ok(());
        }
        first += len;
    }
}

fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, DedupError> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|source| DedupError::Csv {
            path: path.to_path_buf(),
            source,
        })
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

/// Pairs a scoring thread takes at a time: small enough to share the work evenly on a busy
/// machine, large enough that taking one costs nothing.
const SCORE_CHUNK: usize = 1 << 16;

/// How many pairs ahead of the one being scored its second record is fetched: enough for a
/// memory load to arrive (a pair takes about as long), few enough not to evict what is in use.
const PREFETCH_AHEAD: usize = 4;

/// Scores candidate pairs on all cores and keeps the matches and the pairs that wait for review,
/// in candidate order. This is where a large run spends its time; each pair is independent and
/// the non-matches, most of them, are dropped as they are scored.
pub fn score_candidates(
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    records: &[Prepared],
    pairs: &[(u32, u32)],
) -> Vec<ScoredPair> {
    let chunks: Vec<&[(u32, u32)]> = pairs.chunks(SCORE_CHUNK).collect();
    let next = AtomicUsize::new(0);
    let score = |chunk: &[(u32, u32)]| {
        let mut x = Vec::with_capacity(model.features.len());
        let mut kept = Vec::new();
        for (k, (a, b)) in chunk.iter().enumerate() {
            // Pairs come sorted by their first record, so only the second misses the cache:
            // its slot is fetched two strides ahead, its storage (found through the slot) one.
            if let Some((_, far)) = chunk.get(k + 2 * PREFETCH_AHEAD) {
                profile::prefetch(&records[*far as usize]);
            }
            if let Some((_, near)) = chunk.get(k + PREFETCH_AHEAD) {
                records[*near as usize].prefetch();
            }
            let (a, b) = (*a as usize, *b as usize);
            x.clear();
            features::pair_into(profile, &records[a], &records[b], &mut x);
            let probability = model.probability(&x);
            let decision = Decision::from_probability(probability, model.threshold, settings);
            if decision != Decision::NonMatch {
                kept.push(ScoredPair {
                    a,
                    b,
                    probability,
                    decision,
                    reason: None,
                });
            }
        }
        kept
    };
    let mut done: Vec<(usize, Vec<ScoredPair>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..features::parallelism())
            .map(|_| {
                let (chunks, next, score) = (&chunks, &next, &score);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else {
                            return mine;
                        };
                        mine.push((i, score(chunk)));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(features::join).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, kept)| kept).collect()
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
