//! mxguard-auth: email authentication, inbound and outbound.
//!
//! Verification: SPF ([`spf`]), DKIM ([`dkim`]), DMARC ([`dmarc`]) and ARC
//! ([`arc`]), with the shared result vocabulary in [`results`]. Outbound:
//! DKIM signing ([`sign`]), ARC sealing ([`seal`]), keys ([`keys`],
//! [`keygen`]). [`report`]: DMARC aggregate reports (RFC 7489 section 7.2
//! and RFC 9990): each inbound DMARC evaluation is counted in the store,
//! and once per period a report per reporting domain is built,
//! gzip-attached and sent by SMTP to the domain's `rua` addresses, once.
//!
//! DKIM and ARC signature checks are mail-auth's; SPF ([`spf_eval`]:
//! mail-auth's fails the openspf suite) and DMARC (it needs `pct` and the
//! public-suffix organisational domain the rest of mxguard uses) are ours,
//! their lookups through [`mxguard_dns::Dns`] like every other lookup. mail-auth's `MessageAuthenticator` is built
//! around the *same* hickory resolver as `Dns` ([`Dns::resolver`]), so the
//! `[dns]` servers, time-out and cache apply to every lookup made here.
//!
//! DNS answers and messages are hostile: SPF keeps RFC 7208's limits (10
//! lookups, 2 void lookups, 10 MX/PTR names), at most
//! [`dkim::MAX_SIGNATURES`] DKIM signatures and [`arc::MAX_SETS`] ARC sets
//! are looked at per message, the DMARC tree walk asks at most
//! [`dmarc::MAX_WALK_QUERIES`] names, and TXT records over
//! [`mxguard_dns::MAX_TXT_LEN`] are dropped.

pub mod arc;
pub mod config;
pub mod dkim;
pub mod dmarc;
pub mod keygen;
pub mod keys;
pub mod report;
pub mod results;
pub mod seal;
pub mod sign;
pub mod spf;
pub mod spf_eval;

pub use mail_auth::AuthenticatedMessage;
use mail_auth::MessageAuthenticator;
use mxguard_dns::Dns;
use std::borrow::Cow;

/// The verifier: the shared resolver, seen both as mxguard's [`Dns`] and as
/// mail-auth's authenticator. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    dns: Dns,
    authenticator: MessageAuthenticator,
}

impl Verifier {
    /// A verifier over `dns`' resolver: its name servers, time-out and
    /// cache.
    pub fn new(dns: &Dns) -> Verifier {
        Verifier {
            dns: dns.clone(),
            authenticator: MessageAuthenticator(dns.resolver().clone()),
        }
    }

    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    pub(crate) fn authenticator(&self) -> &MessageAuthenticator {
        &self.authenticator
    }
}

/// A message as the DKIM and ARC checks read it: the raw bytes, trimmed
/// of the signature headers past the caps when a message carries more.
pub struct Signed<'a> {
    raw: Cow<'a, [u8]>,
    /// DKIM-Signature and ARC headers left out for the caps.
    pub dropped: usize,
}

impl<'a> Signed<'a> {
    /// Keeps the first [`dkim::MAX_SIGNATURES`] DKIM-Signature headers and
    /// the first [`arc::MAX_SETS`] of each ARC header: parsing hashes the
    /// body once per distinct signature shape, so an unbounded count would
    /// let one message buy unbounded CPU. Copies only when over a cap.
    pub fn new(raw: &'a [u8]) -> Signed<'a> {
        let head_end = memchr::memmem::find(raw, b"\r\n\r\n")
            .map(|i| i + 2)
            .or_else(|| memchr::memmem::find(raw, b"\n\n").map(|i| i + 1))
            .unwrap_or(raw.len());
        let head = &raw[..head_end];
        // Header fields: (start, end) byte ranges, continuation lines included.
        let mut fields: Vec<(usize, usize)> = Vec::new();
        let mut pos = 0;
        while pos < head.len() {
            let end = memchr::memchr(b'\n', &head[pos..]).map_or(head.len(), |i| pos + i + 1);
            let folded = matches!(head[pos], b' ' | b'\t');
            match fields.last_mut() {
                Some(last) if folded => last.1 = end,
                _ => fields.push((pos, end)),
            }
            pos = end;
        }
        let limits: [(&[u8], usize); 4] = [
            (b"dkim-signature", dkim::MAX_SIGNATURES),
            (b"arc-seal", arc::MAX_SETS),
            (b"arc-message-signature", arc::MAX_SETS),
            (b"arc-authentication-results", arc::MAX_SETS),
        ];
        let mut counts = [0usize; 4];
        let mut keep = Vec::with_capacity(fields.len());
        let mut dropped = 0;
        for &(start, end) in &fields {
            let line = &head[start..end];
            let name = line
                .iter()
                .position(|&b| b == b':')
                .map(|i| line[..i].trim_ascii())
                .unwrap_or_default();
            let mut kept = true;
            for (i, (limit_name, cap)) in limits.iter().enumerate() {
                if name.eq_ignore_ascii_case(limit_name) {
                    counts[i] += 1;
                    kept = counts[i] <= *cap;
                }
            }
            if !kept {
                dropped += 1;
            }
            keep.push(kept);
        }
        if dropped == 0 {
            return Signed {
                raw: Cow::Borrowed(raw),
                dropped,
            };
        }
        let mut out = Vec::with_capacity(raw.len());
        for (&(start, end), kept) in fields.iter().zip(keep) {
            if kept {
                out.extend_from_slice(&head[start..end]);
            }
        }
        out.extend_from_slice(&raw[head_end..]);
        Signed {
            raw: Cow::Owned(out),
            dropped,
        }
    }

    /// Parses for mail-auth: `None` when there is no header block.
    pub fn parse(&self) -> Option<AuthenticatedMessage<'_>> {
        AuthenticatedMessage::parse(&self.raw)
    }
}
