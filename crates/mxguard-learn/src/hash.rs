//! The feature hash: stable across platforms and releases, because hashed
//! feature ids are persisted in the model. Changing it means bumping
//! [`crate::model::FORMAT_VERSION`] (old models then no longer load).

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}

/// Hashes bytes eight at a time (little-endian, so identical on every
/// platform), seeded with the feature family.
#[inline]
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = seed.wrapping_mul(K1) ^ (bytes.len() as u64).wrapping_mul(K2);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K2).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = (h ^ tail_word(rest)).wrapping_mul(K2).rotate_left(29);
    }
    fmix64(h)
}

/// `hash_bytes` of the lower-cased bytes of an ASCII letters-and-digits
/// word, without copying it: for such bytes lower-casing is setting bit
/// 0x20 (digits have it already), done eight bytes at a time.
#[inline]
pub(crate) fn hash_ascii_alnum_lower(seed: u64, word: &[u8]) -> u64 {
    debug_assert!(word.iter().all(u8::is_ascii_alphanumeric));
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let mut h = seed.wrapping_mul(K1) ^ (word.len() as u64).wrapping_mul(K2);
    let mut chunks = word.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or_default()) | LOWER;
        h = (h ^ w).wrapping_mul(K2).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let w = tail_word(rest) | (LOWER >> (8 * (8 - rest.len())));
        h = (h ^ w).wrapping_mul(K2).rotate_left(29);
    }
    fmix64(h)
}

/// The 1 to 7 bytes of `rest` as a little-endian word, zero-padded: the
/// same value as copying them into a zeroed `[u8; 8]`, but with two
/// overlapping loads instead of a variable-length copy (a `memcpy` call per
/// token). Overlapping bytes are the same in both loads, so OR is exact.
#[inline]
fn tail_word(rest: &[u8]) -> u64 {
    let r = rest.len();
    debug_assert!((1..8).contains(&r));
    if r >= 4 {
        let lo = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        let hi = u32::from_le_bytes([rest[r - 4], rest[r - 3], rest[r - 2], rest[r - 1]]) as u64;
        lo | (hi << (8 * (r - 4)))
    } else {
        let a = rest[0] as u64;
        let b = (rest[r / 2] as u64) << (8 * (r / 2));
        let c = (rest[r - 1] as u64) << (8 * (r - 1));
        a | b | c
    }
}

/// Combines two token hashes into an ordered pair (bigram) hash.
#[inline]
pub(crate) fn hash_pair(seed: u64, a: u64, b: u64) -> u64 {
    fmix64(seed.wrapping_mul(K1) ^ a.rotate_left(23) ^ b.wrapping_mul(K2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        // Persisted models depend on these exact values.
        assert_eq!(hash_bytes(1, b"viagra"), hash_bytes(1, b"viagra"));
        assert_ne!(hash_bytes(1, b"viagra"), hash_bytes(2, b"viagra"));
        assert_ne!(hash_bytes(1, b"ab"), hash_bytes(1, b"ab\0"));
        assert_eq!(
            hash_bytes(7, b"hello world, long token"),
            2_466_046_317_719_650_008
        );
        assert_ne!(hash_pair(3, 1, 2), hash_pair(3, 2, 1));
    }

    #[test]
    fn alnum_lower_hash_is_the_hash_of_the_lowered_word() {
        let w = b"AbCdEfGhIjKlMnOpQrStUvWxYz0123456789Zz";
        for i in 0..w.len() {
            for j in i..=w.len() {
                let word = &w[i..j];
                assert_eq!(
                    hash_ascii_alnum_lower(5, word),
                    hash_bytes(5, &word.to_ascii_lowercase()),
                    "{word:?}"
                );
            }
        }
    }

    #[test]
    fn tail_word_is_the_zero_padded_word() {
        let bytes = *b"\x01\x82\x03\xf4\x05\x96\x07";
        for r in 1..8 {
            let mut w = [0u8; 8];
            w[..r].copy_from_slice(&bytes[..r]);
            assert_eq!(tail_word(&bytes[..r]), u64::from_le_bytes(w), "{r}");
        }
    }
}
