//! `mxguard dkim keygen`: a new DKIM key, its private half written with
//! mode 0600 from the moment the file exists, and the DNS records to
//! publish (the key's TXT record split into strings of at most 255 bytes,
//! a suggested SPF and DMARC record).

use crate::keys::{KeyKind, PrivateKey, base64};
use mail_auth::dkim::generate::DkimKeyPair;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A TXT record's character-strings are at most 255 bytes (RFC 1035).
pub const TXT_STRING_MAX: usize = 255;

/// RSA sizes offered: below 2048 bits receivers reject or ignore the key
/// (and ring will not sign with it); above 4096 the record gets unwieldy.
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

#[derive(Debug, Clone)]
pub struct Request {
    pub domain: String,
    pub selector: String,
    pub kind: KeyKind,
    pub bits: usize,
    pub out_dir: PathBuf,
    /// Replace an existing key file.
    pub force: bool,
}

#[derive(Debug, Clone)]
pub struct Generated {
    pub path: PathBuf,
    /// `v=DKIM1; k=...; p=...`
    pub record: String,
    /// The zone-file line for the key.
    pub zone_line: String,
    pub spf: String,
    pub dmarc: String,
}

/// The key file's name in `out_dir`: `<domain>.<selector>.key`, the
/// `[dkim_signing] path` default's `$domain.$selector.key`.
pub fn key_path(out_dir: &Path, domain: &str, selector: &str) -> PathBuf {
    out_dir.join(format!("{domain}.{selector}.key"))
}

pub fn generate(req: &Request) -> Result<Generated, String> {
    let domain = req.domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !crate::config::valid_name(&domain) || !domain.contains('.') {
        return Err(format!("`{}` is not a domain name", req.domain));
    }
    if !crate::config::valid_name(&req.selector) || req.selector.contains('.') {
        return Err(format!(
            "`{}` is not a selector: one DNS label of letters, digits, - and _",
            req.selector
        ));
    }
    let pem = match req.kind {
        KeyKind::Rsa => {
            if !RSA_BITS.contains(&req.bits) {
                return Err(format!(
                    "--bits {} is outside {}..={}; 2048 is what receivers expect",
                    req.bits,
                    RSA_BITS.start(),
                    RSA_BITS.end()
                ));
            }
            let pair = DkimKeyPair::generate_rsa(req.bits)
                .map_err(|e| format!("RSA key generation failed: {e}"))?;
            pem_encode("RSA PRIVATE KEY", pair.private_key())
        }
        KeyKind::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519()
                .map_err(|e| format!("Ed25519 key generation failed: {e}"))?;
            pem_encode("PRIVATE KEY", pair.private_key())
        }
    };
    // Read back as the signer will, so a key that cannot sign is never written.
    let key = PrivateKey::from_pem(pem.as_bytes())?;
    let path = key_path(&req.out_dir, &domain, &req.selector);
    write_private(&path, pem.as_bytes(), req.force)?;
    let record = key.dns_record();
    Ok(Generated {
        zone_line: zone_line(&req.selector, &record),
        record,
        spf: format!("{domain}. IN TXT \"v=spf1 mx -all\""),
        dmarc: format!(
            "_dmarc.{domain}. IN TXT \"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}\""
        ),
        path,
    })
}

/// `selector._domainkey IN TXT ( "..." "..." )`, each string ≤ 255 bytes.
pub fn zone_line(selector: &str, record: &str) -> String {
    let strings: Vec<String> = split_txt(record)
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    format!("{selector}._domainkey IN TXT ( {} )", strings.join("\n\t"))
}

/// Splits a record into TXT strings of at most 255 bytes (the record is
/// ASCII, so any byte is a boundary).
pub fn split_txt(record: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = record;
    while rest.len() > TXT_STRING_MAX {
        let (a, b) = rest.split_at(TXT_STRING_MAX);
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

/// Writes the private key with mode 0600 set when the file is created (no
/// moment where another user could read it). An existing file is refused
/// unless `force`; then the key goes to a new file beside it, renamed over.
fn write_private(path: &Path, pem: &[u8], force: bool) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        return Err(format!(
            "{} is not a directory; create it (mode 0700, owned by the user mxguard runs as) or give --out",
            dir.display()
        ));
    }
    if path.exists() && !force {
        return Err(format!(
            "{} exists; refusing to overwrite a key that may be published (give --force to replace it)",
            path.display()
        ));
    }
    let target = if force {
        path.with_extension(format!("key.new-{}", std::process::id()))
    } else {
        path.to_path_buf()
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    let written = f.write_all(pem).and_then(|_| f.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&target);
        return Err(format!("cannot write {}: {e}", target.display()));
    }
    if force {
        std::fs::rename(&target, path).map_err(|e| {
            let _ = std::fs::remove_file(&target);
            format!("cannot replace {}: {e}", path.display())
        })?;
    }
    Ok(())
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b = base64(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn req(dir: &Path, kind: KeyKind) -> Request {
        Request {
            domain: "Example.COM".into(),
            selector: "dkim".into(),
            kind,
            bits: 2048,
            out_dir: dir.to_path_buf(),
            force: false,
        }
    }

    #[test]
    fn writes_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [KeyKind::Ed25519, KeyKind::Rsa] {
            let r = Request {
                selector: kind.tag().into(),
                ..req(dir.path(), kind)
            };
            let g = generate(&r).unwrap();
            assert_eq!(
                g.path,
                dir.path().join(format!("example.com.{}.key", kind.tag()))
            );
            let mode = std::fs::metadata(&g.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert!(crate::keys::load(&g.path).is_ok());
            assert!(
                g.record
                    .starts_with(&format!("v=DKIM1; k={}; p=", kind.tag()))
            );
            let e = generate(&r).unwrap_err();
            assert!(e.contains("exists"), "{e}");
            let before = std::fs::read(&g.path).unwrap();
            let g2 = generate(&Request { force: true, ..r }).unwrap();
            assert_ne!(std::fs::read(&g2.path).unwrap(), before);
            assert_eq!(
                std::fs::metadata(&g2.path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // Only the two key files: no temporary left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn txt_strings_fit_255_bytes() {
        let record = format!("v=DKIM1; k=rsa; p={}", "A".repeat(600));
        let parts = split_txt(&record);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.concat(), record);
        let line = zone_line("dkim", &record);
        assert!(line.starts_with("dkim._domainkey IN TXT ( \"v=DKIM1;"));
        assert!(line.ends_with("\" )"));
    }

    #[test]
    fn refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = req(dir.path(), KeyKind::Rsa);
        r.bits = 1024;
        assert!(generate(&r).unwrap_err().contains("--bits"));
        r.domain = "not a domain".into();
        assert!(generate(&r).is_err());
        let r = Request {
            out_dir: dir.path().join("nope"),
            ..req(dir.path(), KeyKind::Ed25519)
        };
        assert!(generate(&r).unwrap_err().contains("not a directory"));
    }
}
