//! Password hashes: argon2id PHC strings (`$argon2id$v=19$m=…`), what
//! `mxguard pw` prints and `[web] password` / `enable_password` hold. Only
//! the hash is stored, so a leaked config does not leak the password.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2};

/// Longest passphrase accepted: argon2 takes any length, but hashing a
/// megabyte on every request is a cheap way to burn CPU.
pub const MAX_PASSWORD: usize = 1024;

/// Hashes `passphrase` with argon2id (default cost: 19 MiB, 2 passes) and a
/// random salt.
pub fn hash(passphrase: &str) -> Result<String, String> {
    if passphrase.is_empty() {
        return Err("the password is empty".into());
    }
    if passphrase.len() > MAX_PASSWORD {
        return Err(format!("the password is longer than {MAX_PASSWORD} bytes"));
    }
    Argon2::default()
        .hash_password(passphrase.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `hash` is an argon2id PHC string this build can verify.
pub fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| {
        format!(
            "not a password hash ({e}): put the line `mxguard pw` prints here, never the password itself"
        )
    })?;
    if parsed.algorithm.as_str() != Algorithm::Argon2id.ident().as_str() {
        return Err(format!(
            "the hash uses {}; only argon2id is accepted: make one with `mxguard pw`",
            parsed.algorithm
        ));
    }
    Ok(())
}

/// Whether `passphrase` matches `hash`. The comparison inside argon2 is
/// constant-time; a malformed hash never matches.
pub fn verify(hash: &str, passphrase: &[u8]) -> bool {
    if passphrase.is_empty() || passphrase.len() > MAX_PASSWORD {
        return false;
    }
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(passphrase, &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify(&h, b"correct horse"));
        assert!(!verify(&h, b"correct hors"));
        assert!(!verify(&h, b""));
        // Two hashes of one password differ (salt).
        assert_ne!(h, hash("correct horse").unwrap());
    }

    #[test]
    fn other_strings_are_not_hashes() {
        assert!(check_hash("secret").is_err());
        assert!(!verify("secret", b"secret"));
        let e = check_hash("$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcA")
            .unwrap_err();
        assert!(e.contains("only argon2id"), "{e}");
        assert!(hash("").is_err());
    }
}
