//! Private keys for DKIM signatures and ARC seals: read from PEM files,
//! checked when the daemon is built (a bad or unreadable key is an error
//! naming the file), kept in memory, and re-read when the file changes.

use mail_auth::common::crypto::{
    Algorithm, DkimKey, Ed25519Key, HashContext, HashImpl, RsaKey, Sha256, SigningKey,
};
use mail_auth::common::headers::Writable;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A key file is a few KiB; anything larger is not a key.
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// How often a key file's modification time is looked at, at most.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// The kind of a key, from its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ed25519,
}

impl KeyKind {
    /// The `k=` tag of the DNS record.
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Rsa => "rsa",
            KeyKind::Ed25519 => "ed25519",
        }
    }
}

/// A parsed private key, shared by every signature made with it.
pub struct PrivateKey {
    key: DkimKey,
    kind: KeyKind,
    /// The public half as DNS publishes it (`p=`): SubjectPublicKeyInfo DER
    /// for RSA, the raw 32 bytes for Ed25519 (RFC 8463).
    public: Vec<u8>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses a PEM key: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8) or
    /// Ed25519 (PKCS#8 `PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<PrivateKey, String> {
        if !pem.windows(10).any(|w| w == b"-----BEGIN")
            && let Some(key) = ed25519_raw(pem)
        {
            return key;
        }
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            format!("not a PEM private key ({e}); expected -----BEGIN RSA PRIVATE KEY-----, -----BEGIN PRIVATE KEY----- or an Ed25519 key in rspamd's raw base64")
        })?;
        if let PrivateKeyDer::Pkcs8(p8) = &der
            && let Ok(k) = Ed25519Key::from_pkcs8_maybe_unchecked_der(p8.secret_pkcs8_der())
        {
            let public = k.public_key();
            return Ok(PrivateKey {
                key: DkimKey::Ed25519(k),
                kind: KeyKind::Ed25519,
                public,
            });
        }
        let rsa = RsaKey::<Sha256>::from_key_der(der).map_err(|e| {
            format!("not a usable RSA or Ed25519 key ({e}); RSA keys must be 2048 to 8192 bits")
        })?;
        let public = spki_rsa(&rsa.public_key());
        Ok(PrivateKey {
            key: DkimKey::Rsa(rsa),
            kind: KeyKind::Rsa,
            public,
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The `p=` value of the DNS record, base64.
    pub fn public_base64(&self) -> String {
        base64(&self.public)
    }

    /// The DNS TXT record's text for this key.
    pub fn dns_record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.kind.tag(), self.public_base64())
    }
}

/// An Ed25519 key as rspamd writes it (`rspamadm dkim_keygen -t
/// ed25519`): one line of base64, the 32-byte seed or libsodium's 64-byte
/// secret key (seed then public key). `None`: not that format.
fn ed25519_raw(text: &[u8]) -> Option<Result<PrivateKey, String>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = mail_parser::decoders::base64::base64_decode(&compact)?;
    let key = match raw.len() {
        // PKCS#8 v1 around the seed (RFC 8410 7): ring derives the public key.
        32 => {
            let mut der = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            der.extend_from_slice(&raw);
            Ed25519Key::from_pkcs8_maybe_unchecked_der(&der)
        }
        64 => Ed25519Key::from_seed_and_public_key(&raw[..32], &raw[32..]),
        _ => return None,
    };
    Some(match key {
        Ok(k) => {
            let public = k.public_key();
            Ok(PrivateKey {
                key: DkimKey::Ed25519(k),
                kind: KeyKind::Ed25519,
                public,
            })
        }
        Err(e) => Err(format!(
            "not a usable Ed25519 key in rspamd's raw base64 ({e}): its public half does not match its seed"
        )),
    })
}

/// A shared key as mail-auth's signers want one (they take their key by
/// value; the key is parsed once and shared between messages).
#[derive(Clone)]
pub struct SharedKey(pub Arc<PrivateKey>);

impl SigningKey for SharedKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.key.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.key.algorithm()
    }
}

impl SharedKey {
    /// SHA-256 of the canonical body or header input.
    pub fn digest(&self, input: impl Writable) -> Vec<u8> {
        let mut h = <Sha256 as HashImpl>::hasher();
        input.write(&mut h);
        h.complete().as_ref().to_vec()
    }
}

/// Reads and parses a key file; the error names the file and what to do.
pub fn load(path: &Path) -> Result<PrivateKey, String> {
    let bytes = mxguard_core::files::read_bounded(path, MAX_KEY_FILE).map_err(|e| {
        format!(
            "cannot read DKIM/ARC key {}: {e} (the daemon's user must be able to read it; \
             `mxguard dkim keygen` writes one)",
            path.display()
        )
    })?;
    PrivateKey::from_pem(&bytes).map_err(|e| format!("bad key in {}: {e}", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
    })
}

struct Current {
    key: Arc<PrivateKey>,
    stamp: Option<Stamp>,
    /// A stamp whose file was refused, not re-read until it changes.
    refused: Option<Stamp>,
    checked: Instant,
}

/// A key file and the key in use: re-read when its modification time or
/// size changes (looked at most every [`CHECK_EVERY`]); a version that does
/// not parse is logged once and the last good key is kept.
pub struct KeyFile {
    path: PathBuf,
    current: RwLock<Current>,
}

impl KeyFile {
    pub fn load(path: &Path) -> Result<KeyFile, String> {
        let stamp = stamp(path);
        let key = load(path)?;
        Ok(KeyFile {
            path: path.to_path_buf(),
            current: RwLock::new(Current {
                key: Arc::new(key),
                stamp,
                refused: None,
                checked: Instant::now(),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key in use, re-read first if the file changed.
    pub fn get(&self) -> Arc<PrivateKey> {
        {
            let c = self.current.read().unwrap_or_else(|p| p.into_inner());
            if c.checked.elapsed() < CHECK_EVERY {
                return c.key.clone();
            }
        }
        self.reload_if_changed();
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .key
            .clone()
    }

    /// Re-reads the file now if it changed. True if a new key is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now_stamp = stamp(&self.path);
        {
            let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
            c.checked = Instant::now();
            if now_stamp == c.stamp || (now_stamp.is_some() && now_stamp == c.refused) {
                return false;
            }
            if now_stamp.is_none() {
                if c.refused.is_some() || c.stamp.is_some() {
                    tracing::warn!(file = %self.path.display(), "DKIM/ARC key file is gone; signing with the last good key");
                }
                c.stamp = None;
                c.refused = None;
                return false;
            }
        }
        match load(&self.path) {
            Ok(k) => {
                let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
                c.key = Arc::new(k);
                c.stamp = now_stamp;
                c.refused = None;
                tracing::info!(file = %self.path.display(), "DKIM/ARC key reloaded");
                true
            }
            Err(e) => {
                let mut c = self.current.write().unwrap_or_else(|p| p.into_inner());
                c.refused = now_stamp;
                tracing::error!("{e}; signing with the last good key");
                false
            }
        }
    }
}

/// Key files by path, loaded once each (a key used for DKIM and ARC, or by
/// two domains, is one `KeyFile`). Keys named in the config are loaded at
/// build; keys from the fallback path template on first use, and a
/// missing one is remembered (and retried after [`CHECK_EVERY`]).
#[derive(Default)]
pub struct KeyStore {
    files: Mutex<HashMap<PathBuf, Slot>>,
}

enum Slot {
    Loaded(Arc<KeyFile>),
    Missing(Instant),
}

impl KeyStore {
    /// Loads a configured key now: the error names the file.
    pub fn preload(&self, path: &Path) -> Result<Arc<KeyFile>, String> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(Slot::Loaded(k)) = files.get(path) {
            return Ok(k.clone());
        }
        let k = Arc::new(KeyFile::load(path)?);
        files.insert(path.to_path_buf(), Slot::Loaded(k.clone()));
        Ok(k)
    }

    /// The key of `path`, loading it on first use; None when it cannot be
    /// loaded (logged once per [`CHECK_EVERY`]).
    pub fn get(&self, path: &Path) -> Option<Arc<PrivateKey>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        match files.get(path) {
            Some(Slot::Loaded(k)) => {
                let k = k.clone();
                drop(files);
                return Some(k.get());
            }
            Some(Slot::Missing(at)) if at.elapsed() < CHECK_EVERY => return None,
            _ => {}
        }
        match KeyFile::load(path) {
            Ok(k) => {
                let k = Arc::new(k);
                files.insert(path.to_path_buf(), Slot::Loaded(k.clone()));
                drop(files);
                Some(k.get())
            }
            Err(e) => {
                tracing::debug!("{e}");
                files.insert(path.to_path_buf(), Slot::Missing(Instant::now()));
                None
            }
        }
    }
}

/// Wraps a PKCS#1 RSAPublicKey in a SubjectPublicKeyInfo, the form DKIM
/// records carry and every verifier reads (RFC 6376 section 3.6.1).
pub fn spki_rsa(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const ALG: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x03];
    der_len(pkcs1.len() + 1, &mut bits);
    bits.push(0x00);
    bits.extend_from_slice(pkcs1);
    let mut out = vec![0x30];
    der_len(ALG.len() + bits.len(), &mut out);
    out.extend_from_slice(&ALG);
    out.extend_from_slice(&bits);
    out
}

fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_in_rspamds_raw_base64() {
        // RFC 8032 7.1 test 1: secret key (seed) and its public key.
        let seed = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let public = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ];
        let k = PrivateKey::from_pem(format!("{}\n", base64(&seed)).as_bytes()).unwrap();
        assert_eq!(k.kind(), KeyKind::Ed25519);
        assert_eq!(k.public_base64(), base64(&public));
        let both = [seed.as_slice(), public.as_slice()].concat();
        let k = PrivateKey::from_pem(base64(&both).as_bytes()).unwrap();
        assert_eq!(k.public_base64(), base64(&public));
        // A public half that is not the seed's is refused, naming the format.
        let mut wrong = both.clone();
        wrong[40] ^= 1;
        let e = PrivateKey::from_pem(base64(&wrong).as_bytes()).unwrap_err();
        assert!(e.contains("rspamd"), "{e}");
        // Other base64 is not taken for a key.
        assert!(PrivateKey::from_pem(base64(b"short").as_bytes()).is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn reloads_a_changed_key_and_keeps_the_last_good_one() {
        use crate::keygen::{Request, generate};
        let dir = tempfile::tempdir().unwrap();
        let req = |force| Request {
            domain: "example.com".into(),
            selector: "s".into(),
            kind: KeyKind::Ed25519,
            bits: 0,
            out_dir: dir.path().to_path_buf(),
            force,
        };
        let g = generate(&req(false)).unwrap();
        let file = KeyFile::load(&g.path).unwrap();
        let first = file.get().dns_record();
        assert_eq!(first, g.record);
        assert!(!file.reload_if_changed(), "unchanged");
        let g2 = generate(&req(true)).unwrap();
        assert!(file.reload_if_changed(), "a new key is read");
        assert_eq!(file.get().dns_record(), g2.record);
        std::fs::write(&g.path, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
        assert!(!file.reload_if_changed());
        assert_eq!(
            file.get().dns_record(),
            g2.record,
            "the last good key stays"
        );
        assert!(
            !file.reload_if_changed(),
            "a refused version is not re-read"
        );
        std::fs::remove_file(&g.path).unwrap();
        assert!(!file.reload_if_changed());
        assert_eq!(file.get().dns_record(), g2.record);
    }

    #[test]
    fn refuses_garbage_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.key");
        std::fs::write(&p, "not a key").unwrap();
        let e = load(&p).unwrap_err();
        assert!(e.contains("bad.key"), "{e}");
        let e = load(&dir.path().join("missing.key")).unwrap_err();
        assert!(
            e.contains("missing.key") && e.contains("cannot read"),
            "{e}"
        );
    }
}
