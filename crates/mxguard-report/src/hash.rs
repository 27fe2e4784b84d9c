//! The hash for the report's tables: SipHash (std's default) was a tenth
//! of the time per line. Keys are addresses and host names from the log,
//! which an attacker can choose, so the hash stays keyed: a multiply-fold
//! over 8-byte words seeded per process from std's random keys — much
//! cheaper than SipHash, and colliding keys cannot be precomputed without
//! the seed. The tables are also bounded ([`crate::report::MAX_ADDRESSES`]).

use std::hash::{BuildHasher, Hasher};

/// A `HashMap` with the report's hash.
pub type Map<K, V> = std::collections::HashMap<K, V, Seeded>;
/// A `HashSet` with the report's hash.
pub type Set<K> = std::collections::HashSet<K, Seeded>;

/// Builds [`Fold`] hashers from a per-process random seed.
#[derive(Clone, Copy, Debug)]
pub struct Seeded(u64, u64);

impl Default for Seeded {
    fn default() -> Self {
        // std's RandomState draws its keys from the OS once per thread;
        // hashing two constants through it yields two random words.
        let rs = std::collections::hash_map::RandomState::new();
        Seeded(
            rs.hash_one(0x243f_6a88_u64),
            rs.hash_one(0x85a3_08d3_u64) | 1,
        )
    }
}

impl BuildHasher for Seeded {
    type Hasher = Fold;
    fn build_hasher(&self) -> Fold {
        Fold {
            h: self.0,
            k: self.1,
        }
    }
}

/// The hasher: each word is folded in by a 64×64→128 multiply with the
/// seed, its halves xored (the mixing step of wyhash and foldhash).
pub struct Fold {
    h: u64,
    k: u64,
}

impl Fold {
    #[inline]
    fn mix(&mut self, w: u64) {
        let m = ((self.h ^ w) as u128).wrapping_mul(self.k as u128);
        self.h = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for Fold {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let r = chunks.remainder();
        let mut tail = [0u8; 8];
        tail[..r.len()].copy_from_slice(r);
        // The length goes in with the tail: "a" and "a\0" differ.
        self.mix(u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56));
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // One more round so the last word's high bits reach the low bits
        // hashbrown indexes by.
        let m = (self.h as u128).wrapping_mul((self.k ^ 0x9e37_79b9_7f4a_7c15) as u128);
        (m as u64) ^ ((m >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_equal_hashes_and_near_keys_differ() {
        let s = Seeded::default();
        assert_eq!(
            s.hash_one("user@example.com"),
            s.hash_one("user@example.com")
        );
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            assert!(seen.insert(s.hash_one(format!("u{i}@example.com"))));
        }
        assert_ne!(s.hash_one("a"), s.hash_one("a\0"));
        let mut m: Map<Box<str>, u32> = Map::default();
        m.insert("x".into(), 1);
        assert_eq!(m.get("x"), Some(&1));
    }

    #[test]
    fn seeds_differ_between_builders() {
        let (a, b) = (Seeded::default(), Seeded::default());
        assert_ne!(a.hash_one("same key"), b.hash_one("same key"));
    }
}
