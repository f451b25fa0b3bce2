//! A fast, deterministic hasher for the deduper's in-memory maps (token counts, block keys,
//! pair sets). The standard SipHash resists hash flooding, which matters for maps keyed by what
//! a client sends, not for counting a file's own tokens; at a million records its cost shows.
//! This is the multiply-rotate hash rustc uses (FxHash), a few lines rather than a dependency.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
pub(crate) type FastSet<T> = HashSet<T, BuildHasherDefault<FastHasher>>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
            ]));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length tells `ab` from `ab\0`.
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        // One more round spreads the last word into the high bits hashbrown takes its tags from.
        (self.0 ^ (self.0 >> 29)).wrapping_mul(K)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    fn hash(s: &str) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(s)
    }

    #[test]
    fn distinct_short_and_long_keys_hash_apart() {
        let words: Vec<String> = (0..50_000)
            .map(|i| format!("{i}"))
            .chain((0..50_000).map(|i| format!("street {i} road")))
            .chain(["", "a", "a\0", "ab", "ba"].map(String::from))
            .collect();
        let hashes: FastSet<u64> = words.iter().map(|w| hash(w)).collect();
        assert_eq!(hashes.len(), words.len());
        assert_eq!(hash("smith"), hash("smith"));
    }
}
