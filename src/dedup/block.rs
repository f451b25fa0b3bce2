//! Blocking: which record pairs are compared at all. Several keys (exact blocks and sorted
//! neighbourhoods) are unioned, so a pair missed by one key (a typo in the surname) is caught by
//! another (same date of birth and postcode); oversized blocks are skipped to stay near-linear.

use std::collections::HashMap;

use super::normalise;
use super::profile::{KeyPart, Prepared, Profile, Transform};

/// Candidate pairs as indexes into the record slice, `a < b`, sorted and unique.
#[derive(Debug, Default)]
pub struct Candidates {
    pub pairs: Vec<(u32, u32)>,
    /// Blocks left out because they were larger than `max_block`.
    pub skipped_blocks: usize,
}

/// The key of one record, `None` when a part is missing (a missing value blocks with nothing).
fn key(profile: &Profile, parts: &[KeyPart], record: &Prepared) -> Option<String> {
    let mut out = String::new();
    for part in parts {
        let i = profile.field_index(&part.field)?;
        let text = &record.values[i].as_ref()?.text;
        let first = text.split(' ').next().unwrap_or_default();
        let piece = match part.transform {
            Transform::Exact => text.clone(),
            Transform::Soundex => normalise::soundex(first),
            Transform::Prefix3 => text.chars().take(3).collect(),
            Transform::FirstToken => first.to_string(),
        };
        out.push_str(&piece);
        out.push('\u{1f}');
    }
    Some(out)
}

pub fn candidates(profile: &Profile, records: &[Prepared]) -> Candidates {
    let mut out = Candidates::default();
    let max_block = profile.blocking.max_block.max(2);
    for parts in &profile.blocking.keys {
        let mut blocks: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(k) = key(profile, parts, r) {
                blocks.entry(k).or_default().push(i as u32);
            }
        }
        for members in blocks.values() {
            if members.len() > max_block {
                out.skipped_blocks += 1;
                continue;
            }
            for (x, &a) in members.iter().enumerate() {
                for &b in &members[x + 1..] {
                    out.pairs.push((a.min(b), a.max(b)));
                }
            }
        }
    }
    for sorted in &profile.blocking.sorted {
        let mut keyed: Vec<(String, u32)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| key(profile, &sorted.key, r).map(|k| (k, i as u32)))
            .collect();
        keyed.sort_unstable();
        for (x, (_, a)) in keyed.iter().enumerate() {
            for (_, b) in keyed
                .iter()
                .skip(x + 1)
                .take(sorted.window.saturating_sub(1))
            {
                out.pairs.push(((*a).min(*b), (*a).max(*b)));
            }
        }
    }
    out.pairs.sort_unstable();
    out.pairs.dedup();
    out
}

/// Pairs sharing a truth label (e.g. Febrl's `entity_id`): all of them, and those among `pairs`.
pub fn truth_pairs(truth: &[String]) -> usize {
    let mut groups: HashMap<&str, usize> = HashMap::new();
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
    use std::collections::BTreeMap;

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
                            (Some(x), Some(y)) => {
                                x == y && block_sizes[k][&x] <= profile.blocking.max_block
                            }
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
