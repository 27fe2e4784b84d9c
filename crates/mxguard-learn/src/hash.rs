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
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K2).rotate_left(29);
    }
    fmix64(h)
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
}
