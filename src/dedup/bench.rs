//! `syncwarden dedup bench`: Febrl-style person records generated from a seed (originals and
//! corrupted duplicates, the truth kept aside), written as CSV, then deduplicated end to end.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::command::{Phases, dedup_table};
use super::model::Model;
use super::profile::Profile;
use super::{Decision, DedupError, DedupSettings, block, read_table};

const ONSETS: &[&str] = &[
    "b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "r", "s", "sh",
    "st", "t", "th", "v", "w", "z",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "ie", "ou", "y"];
const CODAS: &[&str] = &[
    "", "n", "r", "l", "s", "t", "m", "nd", "rt", "ck", "ll", "ng",
];
const STREET_TYPES: &[&str] = &[
    "street", "road", "avenue", "place", "crescent", "drive", "lane",
];
const STATES: &[&str] = &["nsw", "vic", "qld", "wa", "sa", "tas", "act", "nt"];

/// A pronounceable made-up word of `syllables` syllables.
fn word(rng: &mut fastrand::Rng, syllables: usize) -> String {
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(ONSETS[rng.usize(..ONSETS.len())]);
        w.push_str(VOWELS[rng.usize(..VOWELS.len())]);
    }
    w.push_str(CODAS[rng.usize(..CODAS.len())]);
    w
}

/// A vocabulary of `n` words, drawn with a skew so a few are common (like real names).
struct Vocabulary(Vec<String>);

impl Vocabulary {
    fn new(rng: &mut fastrand::Rng, n: usize, syllables: usize) -> Self {
        Self((0..n).map(|_| word(rng, syllables)).collect())
    }

    fn pick<'a>(&'a self, rng: &mut fastrand::Rng) -> &'a str {
        let skewed = rng.f64().powi(2);
        &self.0[(skewed * self.0.len() as f64) as usize]
    }
}

fn typo(rng: &mut fastrand::Rng, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 3 {
        return s.to_string();
    }
    let i = rng.usize(1..c.len() - 1);
    match rng.u8(0..4) {
        0 => {
            c.remove(i);
        }
        1 => c.insert(i, c[i]),
        2 => c[i] = char::from(b'a' + rng.u8(0..26)),
        _ => c.swap(i, i + 1),
    }
    c.into_iter().collect()
}

const COLUMNS: [&str; 10] = [
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
];

/// Writes `records` Febrl-style rows (`rec_id`, the ten Febrl columns, `entity_id`): about 20% of
/// the people have one to three duplicates, each with one to three corruptions.
pub fn generate(path: &Path, records: usize, seed: u64) -> Result<(), DedupError> {
    let io = |source| DedupError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let given = Vocabulary::new(&mut rng, 3_000, 2);
    let surnames = Vocabulary::new(&mut rng, 40_000, 2);
    let streets = Vocabulary::new(&mut rng, 20_000, 2);
    let suburbs = Vocabulary::new(&mut rng, 8_000, 2);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(out, "rec_id,{},entity_id", COLUMNS.join(",")).map_err(io)?;
    let (mut written, mut entity) = (0, 0);
    while written < records {
        let suburb_index = rng.usize(..suburbs.0.len());
        let original = [
            given.pick(&mut rng).to_string(),
            surnames.pick(&mut rng).to_string(),
            rng.u32(1..400).to_string(),
            format!(
                "{} {}",
                streets.pick(&mut rng),
                STREET_TYPES[rng.usize(..STREET_TYPES.len())]
            ),
            if rng.bool() {
                word(&mut rng, 2)
            } else {
                String::new()
            },
            suburbs.0[suburb_index].clone(),
            // A suburb has one postcode and one state, as in life.
            format!("{}", 2000 + suburb_index % 7000),
            STATES[suburb_index % STATES.len()].to_string(),
            format!(
                "{}{:02}{:02}",
                rng.u32(1920..2010),
                rng.u32(1..13),
                rng.u32(1..29)
            ),
            rng.u32(1_000_000..9_999_999).to_string(),
        ];
        let copies = if rng.u8(0..5) == 0 {
            rng.usize(1..4)
        } else {
            0
        };
        for k in 0..=copies.min(records - written - 1) {
            let mut row = original.clone();
            if k > 0 {
                for _ in 0..rng.usize(1..4) {
                    let i = rng.usize(..row.len());
                    row[i] = match rng.u8(0..5) {
                        0 => String::new(),
                        1 if i == 8 && row[8].len() == 8 => {
                            format!("{}{}{}", &row[8][..4], &row[8][6..8], &row[8][4..6])
                        }
                        _ => typo(&mut rng, &row[i]),
                    };
                }
            }
            writeln!(out, "rec-{entity}-{k},{},e{entity}", row.join(",")).map_err(io)?;
            written += 1;
        }
        entity += 1;
    }
    out.flush().map_err(io)
}

#[derive(Debug, Serialize)]
pub struct ScaleReport {
    pub records: usize,
    pub seed: u64,
    pub true_pairs: usize,
    pub compared_pairs: usize,
    pub blocking_recall: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Reading, normalising, blocking, scoring and clustering; generation excluded.
    pub seconds: f64,
    /// Of which reading the CSV, normalising and weighing tokens.
    pub read_seconds: f64,
    /// And the rest.
    pub phase_seconds: Phases,
    pub pairs_per_sec: f64,
    /// Blocks compared in a sorted window rather than all against all.
    pub windowed_blocks: usize,
    /// Resident memory once the records are read (Linux).
    pub rss_after_read_mib: Option<f64>,
    /// Peak resident memory of the process (Linux), generation included.
    pub peak_rss_mib: Option<f64>,
}

/// A memory figure of this process from `/proc/self/status` (`VmHWM` peak, `VmRSS` now), MiB.
fn rss_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub struct Scale<'a> {
    pub records: usize,
    pub seed: u64,
    /// Where the generated CSV goes.
    pub dir: &'a Path,
    /// Keep the CSV after the run.
    pub keep: bool,
}

/// Generates, then deduplicates and scores the result against the generated truth.
pub async fn run(
    profile: &Profile,
    model: &Model,
    settings: &DedupSettings,
    scale: Scale<'_>,
) -> Result<ScaleReport, DedupError> {
    let Scale {
        records,
        seed,
        dir,
        keep,
    } = scale;
    let path = dir.join(format!("syncwarden-persons-{records}-{seed}.csv"));
    generate(&path, records, seed)?;
    let started = Instant::now();
    let table = read_table(profile, &path, Some("entity_id"));
    if !keep {
        // Best effort: a leftover file in the temporary directory is harmless.
        let _ = std::fs::remove_file(&path);
    }
    let table = table?;
    let read_seconds = started.elapsed().as_secs_f64();
    let rss_after_read_mib = rss_mib("VmRSS:");
    let run = dedup_table(profile, model, settings, None, &table).await;
    let seconds = started.elapsed().as_secs_f64();
    let truth = table.truth.as_deref().unwrap_or_default();
    let true_pairs = block::truth_pairs(truth);
    let (mut tp, mut predicted) = (0usize, 0usize);
    for p in run.pairs.iter().filter(|p| p.decision == Decision::Match) {
        predicted += 1;
        tp += usize::from(truth[p.a] == truth[p.b]);
    }
    let precision = tp as f64 / predicted.max(1) as f64;
    let recall = tp as f64 / true_pairs.max(1) as f64;
    Ok(ScaleReport {
        records: table.records.len(),
        seed,
        true_pairs,
        compared_pairs: run.candidates.len(),
        blocking_recall: block::recall(&run.candidates, truth),
        precision,
        recall,
        f1: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
        seconds,
        read_seconds,
        phase_seconds: run.seconds,
        pairs_per_sec: run.candidates.len() as f64 / seconds,
        windowed_blocks: run.windowed_blocks,
        rss_after_read_mib,
        peak_rss_mib: rss_mib("VmHWM:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_and_plants_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        generate(&a, 500, 9).unwrap();
        generate(&b, 500, 9).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        assert_eq!(text.lines().count(), 501);
        let dups = text
            .lines()
            .filter(|l| l.starts_with("rec-") && !l.contains("-0,"))
            .count();
        assert!((50..250).contains(&dups), "{dups} duplicates");
    }
}
