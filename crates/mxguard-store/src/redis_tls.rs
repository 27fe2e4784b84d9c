//! TLS to Redis (`rediss://` URLs), through the `redis` crate's rustls
//! support: rustls, ring and tokio-rustls are already in the tree for the
//! URL feeds, so TLS adds no OpenSSL and next to no code.
//!
//! Whom to trust: the PEM CA file `[store] tls_ca_file` names (Redis
//! servers normally carry a certificate from a private CA), else the
//! system's store. A server started with `tls-auth-clients yes` (Redis's
//! default) asks for a client certificate: `tls_cert_file` and
//! `tls_key_file`. `tls_insecure` turns verification off altogether; it
//! exists for a first setup and is logged as a warning at every start.
//!
//! rustls takes its crypto from its one built-in provider, ring (this
//! crate's dependency on rustls asks for it, and nothing in the tree asks
//! for aws-lc), as the feeds' HTTPS client does.
//!
//! The files are read and parsed when the store is opened, so a missing or
//! malformed one is an error naming its key at start, not a failed
//! handshake later.

use crate::{ErrorKind, Result, StoreError};
use redis::{ClientTlsConfig, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// A PEM file larger than this is not a certificate bundle.
const MAX_PEM_SIZE: u64 = 1 << 20;

/// `[store]`'s TLS settings, used by `rediss://` URLs only.
#[derive(Debug, Clone, Default)]
pub struct RedisTls {
    /// PEM file of the CA(s) that signed the server's certificate; `None`:
    /// the system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for a server that asks for one.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate: no verification at all.
    pub insecure: bool,
}

impl RedisTls {
    /// Whether any TLS setting is given (they need a `rediss://` URL).
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.insecure
    }

    /// The certificates for the `redis` crate, read and checked now.
    pub(crate) fn certificates(&self) -> Result<TlsCertificates> {
        let root_cert = match &self.ca_file {
            Some(p) => {
                let pem = read_pem(p, "tls_ca_file")?;
                let n = CertificateDer::pem_slice_iter(&pem)
                    .map(|c| c.map(|_| ()))
                    .collect::<std::result::Result<Vec<()>, _>>()
                    .map_err(|e| bad(p, "tls_ca_file", &format!("not PEM certificates ({e})")))?
                    .len();
                if n == 0 {
                    return Err(bad(
                        p,
                        "tls_ca_file",
                        "holds no certificate (-----BEGIN CERTIFICATE-----)",
                    ));
                }
                Some(pem)
            }
            None => None,
        };
        let client_tls = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => {
                let client_cert = read_pem(c, "tls_cert_file")?;
                if CertificateDer::pem_slice_iter(&client_cert)
                    .next()
                    .is_none_or(|r| r.is_err())
                {
                    return Err(bad(
                        c,
                        "tls_cert_file",
                        "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    ));
                }
                let client_key = read_pem(k, "tls_key_file")?;
                PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| {
                    bad(
                        k,
                        "tls_key_file",
                        &format!("holds no PEM private key ({e})"),
                    )
                })?;
                Some(ClientTlsConfig {
                    client_cert,
                    client_key,
                })
            }
            (None, None) => None,
            _ => {
                return Err(StoreError::new(
                    ErrorKind::Open,
                    "[store] tls_cert_file and tls_key_file go together: give both (the client certificate and its key) or neither",
                ));
            }
        };
        Ok(TlsCertificates {
            client_tls,
            root_cert,
        })
    }

    /// The `redis` client for one `rediss://` URL.
    pub(crate) fn client(&self, url: &str) -> Result<redis::Client> {
        let certs = self.certificates()?;
        let url = if self.insecure && !url.contains('#') {
            format!("{url}#insecure")
        } else {
            url.to_string()
        };
        redis::Client::build_with_tls(url, certs).map_err(|e| {
            StoreError::new(ErrorKind::Open, format!("[store] url: cannot use TLS: {e}"))
        })
    }
}

fn read_pem(path: &Path, key: &str) -> Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .map_err(|e| bad(path, key, &format!("cannot be read: {e}")))?
        .len();
    if size > MAX_PEM_SIZE {
        return Err(bad(
            path,
            key,
            &format!("is {size} bytes, too large for a PEM file (at most {MAX_PEM_SIZE})"),
        ));
    }
    std::fs::read(path).map_err(|e| bad(path, key, &format!("cannot be read: {e}")))
}

fn bad(path: &Path, key: &str, what: &str) -> StoreError {
    StoreError::new(
        ErrorKind::Open,
        format!(
            "[store] {key}: {} {what}; give the PEM file{}",
            path.display(),
            match key {
                "tls_ca_file" => " of the CA that signed the Redis server's certificate",
                "tls_cert_file" =>
                    " of the client certificate Redis accepts (its tls-ca-cert-file signed it)",
                _ => " of the client certificate's private key",
            }
        ),
    )
}

/// What to fix when a connection failed in the TLS handshake; `None`
/// when `text` (the error) is not a TLS failure.
pub(crate) fn hint(text: &str) -> Option<&'static str> {
    if text.contains("CertificateRequired") || text.contains("certificate required") {
        return Some(
            "Redis asks for a client certificate (tls-auth-clients yes): give [store] tls_cert_file and tls_key_file, signed by a CA in Redis's tls-ca-cert-file, or set tls-auth-clients no in Redis",
        );
    }
    if text.contains("BadCertificate") || text.contains("UnknownCA") || text.contains("unknown ca")
    {
        return Some(
            "Redis refused the client certificate: [store] tls_cert_file must be signed by a CA in Redis's tls-ca-cert-file",
        );
    }
    let tls = [
        "certificate",
        "Certificate",
        "UnknownIssuer",
        "NotValidForName",
        "handshake",
        "alert",
        "TLS",
        "tls",
    ];
    tls.iter().any(|w| text.contains(w)).then_some(
        "the TLS connection failed: check [store] tls_ca_file (the CA that signed the Redis server's certificate) and that the certificate names the host in [store] url",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let none = RedisTls {
            ca_file: Some(dir.path().join("nope.pem")),
            ..RedisTls::default()
        };
        let e = none.certificates().err().unwrap().to_string();
        assert!(
            e.contains("[store] tls_ca_file") && e.contains("nope.pem"),
            "{e}"
        );

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = RedisTls {
            ca_file: Some(junk.clone()),
            ..RedisTls::default()
        }
        .certificates()
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("tls_ca_file") && e.contains("no certificate"),
            "{e}"
        );

        let e = RedisTls {
            cert_file: Some(junk.clone()),
            ..RedisTls::default()
        }
        .certificates()
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("go together"), "{e}");

        let e = RedisTls {
            cert_file: Some(junk.clone()),
            key_file: Some(junk),
            ..RedisTls::default()
        }
        .certificates()
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("[store] tls_cert_file"), "{e}");
    }

    #[test]
    fn handshake_failures_get_the_hint_that_fits() {
        let h = hint("invalid peer certificate: UnknownIssuer").unwrap();
        assert!(h.contains("tls_ca_file"), "{h}");
        let h = hint("received fatal alert: CertificateRequired").unwrap();
        assert!(h.contains("tls_cert_file"), "{h}");
        assert!(hint("Connection refused (os error 111)").is_none());
    }
}
