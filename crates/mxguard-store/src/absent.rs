//! Which keys the embedded store has certainly never held, so a read of
//! such keys answers "absent" without a read transaction.
//!
//! Why: most of the policy server's reads are of keys that do not exist
//! (a first-seen greylist triplet, its sender-pool record, the ban record
//! of a client never banned). A redb read transaction costs about as much
//! as the rest of the request; a filter lookup, a hash and a word.
//!
//! It is a blocked Bloom filter (the bits of one key in one 64-bit word)
//! over every key of the values table: it can say "maybe" of a key that is
//! absent, never "absent" of one that is there. So it only ever saves a
//! read, and a read it lets through is answered by redb as before.
//!
//! - Filled at open from the file, by a thread of its own reading one
//!   snapshot; until it is done, every read goes to redb.
//! - The writer adds each key it creates before it commits it, so a read
//!   that sees the filter without the key is ordered before the write.
//!   Deleted and purged keys stay in it (a "maybe" more, nothing worse).
//! - When full it grows by a layer twice the size; past [`MAX_BYTES`] it
//!   stops answering (every read goes to redb) until the next start,
//!   which builds it again from what the file holds then.
//! - Keys are hashed with a per-process random key, so a sender cannot
//!   choose keys that fill one word; at worst it costs reads.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// Bits per key a layer is sized for (about 1% false "maybe" when full).
const BITS_PER_KEY: u64 = 12;

/// Bits set per key, in its word.
const PROBES: u32 = 6;

/// The first layer holds at least this many keys (1.5 MiB).
pub(crate) const MIN_KEYS: u64 = 1 << 20;

/// The most memory the filter takes; past it, it gives up until restart.
pub(crate) const MAX_BYTES: u64 = 64 << 20;

/// The key filter of one open store.
pub(crate) struct KeyFilter {
    hasher: RandomState,
    layers: RwLock<Vec<Layer>>,
    /// Filled from the file: until then it answers "maybe" to everything.
    ready: AtomicBool,
    /// Past `max_bytes` ([`MAX_BYTES`]): "maybe" to everything from then on.
    given_up: AtomicBool,
    max_bytes: u64,
}

struct Layer {
    words: Box<[AtomicU64]>,
    /// Keys added, and how many it is sized for.
    added: AtomicU64,
    capacity: u64,
}

impl Layer {
    fn new(capacity: u64) -> Layer {
        let words = (capacity.saturating_mul(BITS_PER_KEY) / 64).clamp(1, u64::from(u32::MAX));
        Layer {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            added: AtomicU64::new(0),
            capacity,
        }
    }

    fn bytes(&self) -> u64 {
        self.words.len() as u64 * 8
    }

    /// The word of a hash, and the bits the key sets in it.
    fn place(&self, h: u64) -> (usize, u64) {
        // The low half picks the word (multiply-shift: any number of
        // words), the high bits the bits.
        let word = ((h & 0xffff_ffff) * self.words.len() as u64) >> 32;
        let word = word as usize;
        let mut bits = 0u64;
        let mut rest = h >> 28;
        for _ in 0..PROBES {
            bits |= 1 << (rest & 63);
            rest >>= 6;
        }
        (word, bits)
    }

    fn set(&self, h: u64) {
        let (word, bits) = self.place(h);
        self.words[word].fetch_or(bits, Ordering::Release);
    }

    fn test(&self, h: u64) -> bool {
        let (word, bits) = self.place(h);
        self.words[word].load(Ordering::Acquire) & bits == bits
    }
}

impl KeyFilter {
    /// An empty filter sized for `keys` keys (at least [`MIN_KEYS`]),
    /// not ready until [`KeyFilter::filled`].
    pub(crate) fn new(keys: u64) -> KeyFilter {
        KeyFilter::capped(keys, MAX_BYTES)
    }

    fn capped(keys: u64, max_bytes: u64) -> KeyFilter {
        let capacity = keys
            .saturating_mul(2)
            .clamp(MIN_KEYS, max_bytes * 8 / BITS_PER_KEY);
        KeyFilter {
            hasher: RandomState::new(),
            layers: RwLock::new(vec![Layer::new(capacity)]),
            ready: AtomicBool::new(false),
            given_up: AtomicBool::new(false),
            max_bytes,
        }
    }

    /// Everything the file held when it was opened is in: from now on an
    /// absent answer can be trusted.
    pub(crate) fn filled(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether absent answers are given (filled, not given up).
    pub(crate) fn answers(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.given_up.load(Ordering::Acquire)
    }

    /// Records a key the store now holds (or may hold).
    pub(crate) fn add(&self, key: &str) {
        if self.given_up.load(Ordering::Relaxed) {
            return;
        }
        let h = self.hasher.hash_one(key);
        {
            let layers = self.layers.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(last) = layers.last()
                && last.added.fetch_add(1, Ordering::Relaxed) < last.capacity
            {
                last.set(h);
                return;
            }
        }
        let mut layers = self.layers.write().unwrap_or_else(PoisonError::into_inner);
        let (bytes, capacity) = layers
            .iter()
            .fold((0, 0), |(b, _), l| (b + l.bytes(), l.capacity));
        let full = layers
            .last()
            .is_none_or(|l| l.added.load(Ordering::Relaxed) > l.capacity);
        if full {
            let next = Layer::new(capacity.saturating_mul(2).max(MIN_KEYS));
            if bytes + next.bytes() > self.max_bytes {
                self.given_up.store(true, Ordering::Release);
                tracing::info!(
                    "store: the key filter reached {} MiB; reads look every key up in the file until the next start",
                    self.max_bytes >> 20
                );
                return;
            }
            layers.push(next);
        }
        if let Some(last) = layers.last() {
            last.added.fetch_add(1, Ordering::Relaxed);
            last.set(h);
        }
    }

    /// True when none of `keys` has ever been in the store (so each reads
    /// as absent); false when any may be, or the filter cannot tell.
    pub(crate) fn none_of(&self, keys: &[&str]) -> bool {
        if !self.ready.load(Ordering::Acquire) || self.given_up.load(Ordering::Acquire) {
            return false;
        }
        let layers = self.layers.read().unwrap_or_else(PoisonError::into_inner);
        keys.iter().all(|k| {
            let h = self.hasher.hash_one(k);
            !layers.iter().any(|l| l.test(h))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_says_absent_of_an_added_key() {
        let f = KeyFilter::new(0);
        f.add("grey:a");
        assert!(!f.none_of(&["grey:zz"]), "not ready: maybe");
        f.filled();
        // Past the first layer's capacity: the second layer takes over.
        let n = MIN_KEYS as usize + 50_000;
        for i in 0..n {
            f.add(&format!("k{i}"));
        }
        assert_eq!(f.layers.read().unwrap().len(), 2);
        for i in (0..n).step_by(97) {
            assert!(!f.none_of(&[&format!("k{i}")]), "k{i}");
        }
        assert!(!f.none_of(&["grey:a"]));
        assert!(!f.none_of(&["absent", "grey:a"]), "one present: maybe");
        // Keys never added: nearly all answered absent.
        let absent = (0..10_000)
            .filter(|i| f.none_of(&[&format!("other{i}")]))
            .count();
        assert!(absent > 9_500, "{absent} of 10000 absent keys recognised");
    }

    #[test]
    fn gives_up_past_its_memory_cap() {
        // Room for the first layer (1.5 MiB) only.
        let f = KeyFilter::capped(0, 2 << 20);
        f.filled();
        f.add("a");
        assert!(!f.none_of(&["a"]));
        // Pretend it is full: the next layer would pass the cap.
        {
            let layers = f.layers.read().unwrap();
            let last = layers.last().unwrap();
            last.added.store(last.capacity + 1, Ordering::Relaxed);
        }
        f.add("c");
        assert!(f.given_up.load(Ordering::Relaxed));
        assert!(!f.none_of(&["never-added"]), "given up: maybe");
    }
}
