//! Blocking: which record pairs are compared at all. Several keys (exact blocks and sorted
//! neighbourhoods) are unioned, so a pair missed by one key (a typo in the surname) is caught by
//! another (same date of birth and postcode). Candidates stay near-linear in the number of
//! records: small blocks are compared all against all, larger ones only within a sorted window,
//! and blocks too large to mean anything are skipped.

use std::hash::BuildHasher;

use foldhash::fast::FixedState;

use super::FastMap;
use super::features::{join, parallelism};
use super::normalise;
use super::profile::{KeyPart, Prepared, Profile, Transform};

/// Candidate pairs as indexes into the record slice, `a < b`, sorted and unique.
#[derive(Debug, Default)]
pub struct Candidates {
    pub pairs: Vec<(u32, u32)>,
    /// Blocks left out because they were larger than `max_block`.
    pub skipped_blocks: usize,
    /// Blocks compared within a sorted window rather than all against all.
    pub windowed_blocks: usize,
}

/// The key of one record, `None` when a part is missing (a missing value blocks with nothing).
pub(crate) fn key(profile: &Profile, parts: &[KeyPart], record: &Prepared) -> Option<String> {
    let mut out = String::new();
    key_into(profile, parts, record, &mut out).then_some(out)
}

/// Writes the key of one record into `out` (cleared first); false when a part is missing.
fn key_into(profile: &Profile, parts: &[KeyPart], record: &Prepared, out: &mut String) -> bool {
    out.clear();
    let mut write = || -> Option<()> {
        for part in parts {
            let text = record.value(profile.field_index(&part.field)?)?.text;
            let first = text.split(' ').next().unwrap_or_default();
            match part.transform {
                Transform::Exact => out.push_str(text),
                Transform::Soundex => out.push_str(&normalise::soundex(first)),
                Transform::Prefix3 => out.extend(text.chars().take(3)),
                Transform::FirstToken => out.push_str(first),
                Transform::SortedTokens => {
                    let mut words: Vec<&str> = record
                        .value(profile.field_index(&part.field)?)?
                        .tokens()
                        .collect();
                    words.sort_unstable();
                    out.push_str(&words.join(" "));
                }
            }
            out.push('\u{1f}');
        }
        Some(())
    };
    write().is_some()
}

/// Blocks of one key: record indexes grouped by a 64-bit hash of their key. Two keys sharing a
/// hash only put more pairs in one block, so no pair that shares a key is ever lost.
fn blocks(profile: &Profile, parts: &[KeyPart], records: &[Prepared]) -> Vec<Vec<u32>> {
    let hasher = FixedState::default();
    // One key buffer for all records: a million keys, no allocation each.
    let mut buffer = String::new();
    let mut hashed: Vec<(u64, u32)> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        if key_into(profile, parts, r, &mut buffer) {
            hashed.push((hasher.hash_one(&buffer), i as u32));
        }
    }
    hashed.sort_unstable();
    hashed
        .chunk_by(|x, y| x.0 == y.0)
        .filter(|run| run.len() > 1)
        .map(|run| run.iter().map(|(_, i)| *i).collect())
        .collect()
}

/// Each record paired with the next `window - 1` in `order`.
fn window_pairs(order: &[u32], window: usize, out: &mut Vec<(u32, u32)>) {
    for (x, a) in order.iter().enumerate() {
        for b in order.iter().skip(x + 1).take(window.saturating_sub(1)) {
            out.push(((*a).min(*b), (*a).max(*b)));
        }
    }
}

/// The pairs of one exact key, and how many blocks were skipped and windowed.
fn key_pairs(profile: &Profile, parts: &[KeyPart], records: &[Prepared]) -> Candidates {
    let spec = &profile.blocking;
    let max_block = spec.max_block.max(2);
    let all_pairs_up_to = spec.all_pairs_up_to.unwrap_or(max_block).min(max_block);
    let mut out = Candidates::default();
    for mut members in blocks(profile, parts, records) {
        if members.len() > max_block {
            out.skipped_blocks += 1;
        } else if members.len() <= all_pairs_up_to || spec.order.is_empty() {
            window_pairs(&members, members.len(), &mut out.pairs);
        } else {
            out.windowed_blocks += 1;
            members.sort_by_cached_key(|i| key(profile, &spec.order, &records[*i as usize]));
            window_pairs(&members, spec.window, &mut out.pairs);
        }
    }
    out
}

/// The pairs of one sorted-neighbourhood pass over all records.
fn sorted_pairs(
    profile: &Profile,
    parts: &[KeyPart],
    window: usize,
    records: &[Prepared],
) -> Vec<(u32, u32)> {
    let mut keyed: Vec<(String, u32)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| key(profile, parts, r).map(|k| (k, i as u32)))
        .collect();
    keyed.sort_unstable();
    let order: Vec<u32> = keyed.into_iter().map(|(_, i)| i).collect();
    let mut out = Vec::new();
    window_pairs(&order, window, &mut out);
    out
}

/// Every key's pairs, the keys shared out over the cores, then merged.
pub fn candidates(profile: &Profile, records: &[Prepared]) -> Candidates {
    enum Pass<'a> {
        Exact(&'a [KeyPart]),
        Sorted(&'a [KeyPart], usize),
    }
    let passes: Vec<Pass> = profile
        .blocking
        .keys
        .iter()
        .map(|k| Pass::Exact(k))
        .chain(
            profile
                .blocking
                .sorted
                .iter()
                .map(|s| Pass::Sorted(&s.key, s.window)),
        )
        .collect();
    let threads = parallelism();
    let passes = &passes;
    let parts: Vec<Candidates> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Candidates::default();
                    for pass in passes.iter().skip(t).step_by(threads) {
                        match pass {
                            Pass::Exact(parts) => {
                                let c = key_pairs(profile, parts, records);
                                out.pairs.extend(c.pairs);
                                out.skipped_blocks += c.skipped_blocks;
                                out.windowed_blocks += c.windowed_blocks;
                            }
                            Pass::Sorted(parts, window) => out
                                .pairs
                                .extend(sorted_pairs(profile, parts, *window, records)),
                        }
                    }
                    out.pairs.sort_unstable();
                    out.pairs.dedup();
                    out
                })
            })
            .collect();
        handles.into_iter().map(join).collect()
    });
    let mut out = Candidates::default();
    for part in parts {
        out.pairs.extend(part.pairs);
        out.skipped_blocks += part.skipped_blocks;
        out.windowed_blocks += part.windowed_blocks;
    }
    // Sorted runs, one per thread: the stable sort merges them.
    out.pairs.sort();
    out.pairs.dedup();
    out
}

/// Pairs sharing a truth label (e.g. Febrl's `entity_id`): all of them, and those among `pairs`.
pub fn truth_pairs(truth: &[String]) -> usize {
    let mut groups: FastMap<&str, usize> = FastMap::default();
    for t in truth {
        *groups.entry(t).or_default() += 1;
    }
    groups.values().map(|n| n * (n - 1) / 2).sum()
}

/// Share of the true pairs that blocking kept (1.0 when there is none to keep).
pub fn recall(pairs: &[(u32, u32)], truth: &[String]) -> f64 {
    let total = truth_pairs(truth);
    let kept = pairs
        .iter()
        .filter(|(a, b)| truth[*a as usize] == truth[*b as usize])
        .count();
    if total == 0 {
        1.0
    } else {
        kept as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    #[test]
    fn on_generated_people_every_true_pair_sharing_a_key_is_a_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("people.csv");
        crate::dedup::bench::generate(&path, 3_000, 5).unwrap();
        let profile = Profile::load(std::path::Path::new("config/dedup/people.toml")).unwrap();
        let table = crate::dedup::read_table(&profile, &path, Some("entity_id")).unwrap();
        let truth = table.truth.unwrap();
        let records = &table.records;
        let c = candidates(&profile, records);
        let mut block_sizes: Vec<HashMap<String, usize>> =
            vec![HashMap::new(); profile.blocking.keys.len()];
        for (k, parts) in profile.blocking.keys.iter().enumerate() {
            for r in records {
                if let Some(key) = key(&profile, parts, r) {
                    *block_sizes[k].entry(key).or_default() += 1;
                }
            }
        }
        let all_pairs_up_to = profile.blocking.all_pairs_up_to.unwrap_or(usize::MAX);
        let mut checked = 0;
        for a in 0..records.len() {
            for b in a + 1..records.len() {
                if truth[a] != truth[b] {
                    continue;
                }
                let shares_a_key =
                    profile.blocking.keys.iter().enumerate().any(|(k, parts)| {
                        match (
                            key(&profile, parts, &records[a]),
                            key(&profile, parts, &records[b]),
                        ) {
                            (Some(x), Some(y)) => x == y && block_sizes[k][&x] <= all_pairs_up_to,
                            _ => false,
                        }
                    });
                if shares_a_key {
                    checked += 1;
                    assert!(
                        c.pairs.binary_search(&(a as u32, b as u32)).is_ok(),
                        "{} and {} share a key but were not compared",
                        records[a].id,
                        records[b].id
                    );
                }
            }
        }
        assert!(checked > 500, "only {checked} true pairs share a key");
        assert!(recall(&c.pairs, &truth) > 0.99);
        // Near-linear: a handful of comparisons per record, not n^2 / 2.
        assert!(
            c.pairs.len() < 20 * records.len(),
            "{} pairs",
            c.pairs.len()
        );
    }

    fn people(rows: &[(&str, &str, &str)]) -> (Profile, Vec<Prepared>) {
        let profile = Profile::parse(
            r#"
entity = "persons"
model = "m"
[[fields]]
name = "surname"
kind = "name"
columns = ["surname"]
[[fields]]
name = "dob"
kind = "date"
columns = ["dob"]
[blocking]
max_block = 3
keys = [[{ field = "dob" }], [{ field = "surname", transform = "soundex" }]]
sorted = [{ key = [{ field = "surname" }], window = 2 }]
"#,
        )
        .unwrap();
        let records = rows
            .iter()
            .map(|(id, s, d)| {
                let row = BTreeMap::from([("surname", *s), ("dob", *d)]);
                profile.prepare(id.to_string(), &row)
            })
            .collect();
        (profile, records)
    }

    #[test]
    fn every_true_pair_sharing_a_key_is_kept() {
        let (profile, records) = people(&[
            ("0", "smith", "19800101"),
            ("1", "smyth", "19900101"), // soundex of 0
            ("2", "jones", "19700101"),
            ("3", "xavier", "19700101"), // dob of 2
            ("4", "brown", "19600101"),
            ("5", "browne", "19610101"), // sorted neighbour of 4, soundex too
            ("6", "quinn", ""),          // no dob: blocks on surname only
            ("7", "zed", "19500505"),
        ]);
        let c = candidates(&profile, &records);
        let truth: Vec<String> = ["a", "a", "b", "b", "c", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(recall(&c.pairs, &truth), 1.0);
        assert!(c.pairs.windows(2).all(|w| w[0] < w[1]));
        // Far fewer than all 28 pairs.
        assert!(c.pairs.len() < 14, "{:?}", c.pairs);
    }

    #[test]
    fn a_large_block_is_compared_in_a_sorted_window_and_keeps_its_duplicates() {
        // Sixty records sharing one birth date: twenty people, each written three ways.
        let names: Vec<(String, String)> = (0..60)
            .map(|i| {
                let person = ["adams", "baker", "clark", "dixon", "evans"][i / 3 % 5];
                let variant = ["", "e", "s"][i % 3];
                (i.to_string(), format!("{person}{}{variant}", i / 15))
            })
            .collect();
        let rows: Vec<(&str, &str, &str)> = names
            .iter()
            .map(|(id, s)| (id.as_str(), s.as_str(), "19800101"))
            .collect();
        let (mut profile, records) = people(&rows);
        profile.blocking.keys.truncate(1);
        profile.blocking.sorted.clear();
        profile.blocking.max_block = 100;
        let exhaustive = candidates(&profile, &records);
        assert_eq!(exhaustive.pairs.len(), 60 * 59 / 2);
        profile.blocking.all_pairs_up_to = Some(10);
        profile.blocking.order = vec![KeyPart {
            field: "surname".into(),
            transform: Transform::Exact,
        }];
        profile.blocking.window = 3;
        let bounded = candidates(&profile, &records);
        assert_eq!(bounded.windowed_blocks, 1);
        assert_eq!(bounded.pairs.len(), 59 + 58);
        assert!(
            bounded
                .pairs
                .iter()
                .all(|p| exhaustive.pairs.binary_search(p).is_ok())
        );
        let truth: Vec<String> = (0..60).map(|i| (i / 3).to_string()).collect();
        assert_eq!(recall(&bounded.pairs, &truth), 1.0);
    }

    #[test]
    fn oversized_blocks_are_skipped_and_recall_reports_the_loss() {
        let rows: Vec<(String, &str, &str)> = (0..5)
            .map(|i| (i.to_string(), "same", "20000101"))
            .collect();
        let rows: Vec<(&str, &str, &str)> =
            rows.iter().map(|(a, b, c)| (a.as_str(), *b, *c)).collect();
        let (mut profile, records) = people(&rows);
        profile.blocking.sorted.clear();
        let c = candidates(&profile, &records);
        assert_eq!(c.skipped_blocks, 2);
        assert!(c.pairs.is_empty());
        let truth = vec!["x".to_string(); 5];
        assert_eq!(recall(&c.pairs, &truth), 0.0);
        assert_eq!(truth_pairs(&truth), 10);
    }
}
