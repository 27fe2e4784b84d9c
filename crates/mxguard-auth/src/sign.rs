//! DKIM signing of outbound mail, with rspamd's dkim_signing choices: who
//! is signed (authenticated senders, loopback, `sign_networks`), with which
//! domain (`use_domain` header / envelope / auth, `use_esld`), when a
//! mismatch stops it (`allow_hdrfrom_mismatch`, `allow_username_mismatch`),
//! which headers are signed and oversigned, and one signature per key of
//! the domain (RSA-SHA256 and Ed25519 at once).
//!
//! The choice of domain ([`choose`]) is pure on the message's facts, so the
//! rules are tested apart from keys and messages.

use crate::config::{
    ArcConfig, DkimSigningConfig, KeySpec, Oversign, SignedHeader, UseDomain, parse_sign_headers,
};
use crate::keys::{KeyStore, SharedKey};
use crate::seal::{ArcChain, Sealer};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use mxguard_core::envelope::{domain_of, strip_path};
use mxguard_core::iptable::{IpTable, parse_network};
use mxguard_core::{Action, Envelope};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// At most this many signatures per message (keys of one domain).
pub const MAX_SIGNATURES: usize = 4;

/// Header fields looked at when choosing what to sign; a message with more
/// is signed on the first ones only (the signature stays valid: unsigned
/// fields below are not covered).
pub const MAX_FIELDS: usize = 8192;

/// Why a message was sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A SASL-authenticated sender.
    Authenticated,
    /// A loopback client.
    Local,
    /// A client in `sign_networks`.
    Network,
    /// Anyone else (mail from outside, relayed): ARC's `sign_inbound`.
    Inbound,
}

/// Why a message is not signed; logged at debug and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not outbound (no login, not local, not in sign_networks).
    NotOutbound,
    /// The verdict does not deliver the message as it is (rejected,
    /// deferred, discarded, quarantined, or its Subject rewritten).
    NotDelivered,
    NoHeaderFrom,
    MultipleFrom,
    EmptyEnvelopeSender,
    /// Header From and envelope sender domains differ.
    HdrFromMismatch,
    /// The login's domain differs from the signing domain.
    UsernameMismatch,
    /// No key for the signing domain.
    NoKey,
    /// The ARC chain is there but unverified or already failed.
    ArcChain,
    /// Signing itself failed (logged).
    Failed,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotOutbound => "not_outbound",
            Skip::NotDelivered => "not_delivered",
            Skip::NoHeaderFrom => "no_header_from",
            Skip::MultipleFrom => "multiple_from",
            Skip::EmptyEnvelopeSender => "empty_envelope_sender",
            Skip::HdrFromMismatch => "hdrfrom_mismatch",
            Skip::UsernameMismatch => "username_mismatch",
            Skip::NoKey => "no_key",
            Skip::ArcChain => "arc_chain",
            Skip::Failed => "failed",
        }
    }
}

/// Whether mail with this verdict leaves as it was signed: what is
/// rejected, deferred, discarded or quarantined is not delivered, and a
/// rewritten Subject would break the signature over it.
pub fn delivered_unchanged(action: Action) -> bool {
    matches!(action, Action::NoAction | Action::AddHeader)
}

/// Who is signed and with which domain: the rules shared by DKIM signing
/// and ARC sealing.
#[derive(Debug, Clone)]
pub struct Policy {
    pub sign_authenticated: bool,
    pub sign_local: bool,
    pub sign_inbound: bool,
    pub networks: Vec<(IpAddr, u8)>,
    pub use_domain: UseDomain,
    pub use_domain_sign_networks: Option<UseDomain>,
    pub use_domain_sign_local: Option<UseDomain>,
    pub use_esld: bool,
    pub allow_hdrfrom_mismatch: bool,
    pub allow_hdrfrom_mismatch_local: bool,
    pub allow_hdrfrom_mismatch_sign_networks: bool,
    pub allow_username_mismatch: bool,
    pub allow_envfrom_empty: bool,
    pub allow_hdrfrom_multiple: bool,
}

impl Policy {
    pub fn dkim(c: &DkimSigningConfig) -> Policy {
        Policy {
            sign_authenticated: c.sign_authenticated,
            sign_local: c.sign_local,
            sign_inbound: false,
            networks: c
                .sign_networks
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .collect(),
            use_domain: c.use_domain,
            use_domain_sign_networks: c.use_domain_sign_networks,
            use_domain_sign_local: c.use_domain_sign_local,
            use_esld: c.use_esld,
            allow_hdrfrom_mismatch: c.allow_hdrfrom_mismatch,
            allow_hdrfrom_mismatch_local: c.allow_hdrfrom_mismatch_local,
            allow_hdrfrom_mismatch_sign_networks: c.allow_hdrfrom_mismatch_sign_networks,
            allow_username_mismatch: c.allow_username_mismatch,
            allow_envfrom_empty: c.allow_envfrom_empty,
            allow_hdrfrom_multiple: c.allow_hdrfrom_multiple,
        }
    }

    /// ARC seals what it relays: header/envelope mismatches are normal
    /// there (lists, forwarders), so they do not stop a seal.
    pub fn arc(c: &ArcConfig) -> Policy {
        Policy {
            sign_authenticated: c.sign_authenticated,
            sign_local: c.sign_local,
            sign_inbound: c.sign_inbound,
            networks: c
                .sign_networks
                .iter()
                .filter_map(|n| parse_network(n).ok())
                .collect(),
            use_domain: c.use_domain,
            use_domain_sign_networks: None,
            use_domain_sign_local: None,
            use_esld: c.use_esld,
            allow_hdrfrom_mismatch: true,
            allow_hdrfrom_mismatch_local: true,
            allow_hdrfrom_mismatch_sign_networks: true,
            allow_username_mismatch: true,
            allow_envfrom_empty: true,
            allow_hdrfrom_multiple: true,
        }
    }

    fn table(&self) -> IpTable<()> {
        let mut t = IpTable::default();
        for n in &self.networks {
            t.insert(*n, ());
        }
        t
    }
}

/// What the choice looks at.
#[derive(Debug, Clone, Default)]
pub struct Facts<'a> {
    pub ip: Option<IpAddr>,
    /// SASL login.
    pub user: Option<&'a str>,
    /// MAIL FROM, `Some("")` for the null sender.
    pub mail_from: Option<&'a str>,
    /// Domains of the header From's addresses, lower-case.
    pub header_from: Vec<String>,
    /// Recipients' domains (ARC's inbound sealing).
    pub rcpt_domains: Vec<String>,
}

/// The message's origin under `policy`, or None when it is not signed.
pub fn origin(policy: &Policy, networks: &IpTable<()>, facts: &Facts<'_>) -> Option<Origin> {
    if facts.user.is_some_and(|u| !u.is_empty()) {
        return policy.sign_authenticated.then_some(Origin::Authenticated);
    }
    if let Some(ip) = facts.ip {
        let v4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            _ => ip,
        };
        if v4.is_loopback() && policy.sign_local {
            return Some(Origin::Local);
        }
        if networks.lookup(ip).is_some() {
            return Some(Origin::Network);
        }
    }
    policy.sign_inbound.then_some(Origin::Inbound)
}

/// The signing domain for a message of `origin`, by rspamd's rules.
pub fn choose(policy: &Policy, origin: Origin, facts: &Facts<'_>) -> Result<String, Skip> {
    let norm = |d: &str| {
        let d = d.trim_end_matches('.').to_ascii_lowercase();
        if policy.use_esld {
            mxguard_message::domain::organisational(&d)
        } else {
            d
        }
    };
    if origin == Origin::Inbound {
        // A relay seals in the name of the domain it delivers for.
        return facts
            .rcpt_domains
            .first()
            .map(|d| norm(d))
            .ok_or(Skip::NoKey);
    }
    if facts.header_from.len() > 1 && !policy.allow_hdrfrom_multiple {
        return Err(Skip::MultipleFrom);
    }
    let hdom = facts.header_from.first().map(|d| norm(d));
    let env = facts.mail_from.map(strip_path);
    if env == Some("") && !policy.allow_envfrom_empty {
        return Err(Skip::EmptyEnvelopeSender);
    }
    let edom = env.and_then(domain_of).map(|d| norm(&d));
    let udom = facts
        .user
        .and_then(|u| u.rsplit_once('@'))
        .map(|(_, d)| norm(d))
        .filter(|d| !d.is_empty());
    let use_domain = match origin {
        Origin::Network => policy.use_domain_sign_networks.unwrap_or(policy.use_domain),
        Origin::Local => policy.use_domain_sign_local.unwrap_or(policy.use_domain),
        _ => policy.use_domain,
    };
    let allow_mismatch = match origin {
        Origin::Local => policy.allow_hdrfrom_mismatch || policy.allow_hdrfrom_mismatch_local,
        Origin::Network => {
            policy.allow_hdrfrom_mismatch || policy.allow_hdrfrom_mismatch_sign_networks
        }
        _ => policy.allow_hdrfrom_mismatch,
    };
    if let (Some(h), Some(e)) = (&hdom, &edom)
        && h != e
        && !allow_mismatch
    {
        return Err(Skip::HdrFromMismatch);
    }
    let domain = match use_domain {
        UseDomain::Header => hdom.clone().ok_or(Skip::NoHeaderFrom)?,
        UseDomain::Envelope => edom.clone().ok_or(Skip::EmptyEnvelopeSender)?,
        UseDomain::Auth => udom.clone().ok_or(Skip::UsernameMismatch)?,
    };
    if origin == Origin::Authenticated
        && !policy.allow_username_mismatch
        && udom.as_deref() != Some(domain.as_str())
    {
        return Err(Skip::UsernameMismatch);
    }
    Ok(domain)
}

/// A header field: its name, and its value from after the colon through
/// its line end (CRLF included).
pub type Field<'a> = (&'a [u8], &'a [u8]);

/// A message's header fields and the offset of the body. At most
/// [`MAX_FIELDS`].
pub fn header_fields(raw: &[u8]) -> (Vec<Field<'_>>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < raw.len() && out.len() < MAX_FIELDS {
        let rest = &raw[pos..];
        if rest.starts_with(b"\r\n") {
            return (out, pos + 2);
        }
        if rest.starts_with(b"\n") {
            return (out, pos + 1);
        }
        // The field ends at a line end not followed by a space or tab.
        let mut end = pos;
        loop {
            match memchr_nl(&raw[end..]) {
                Some(nl) => {
                    end += nl + 1;
                    if !matches!(raw.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = raw.len();
                    break;
                }
            }
        }
        let field = &raw[pos..end];
        if let Some(colon) = field.iter().position(|b| *b == b':') {
            let name = trim_ascii_end(&field[..colon]);
            out.push((name, &field[colon + 1..]));
        }
        pos = end;
    }
    (out, raw.len().min(pos))
}

fn memchr_nl(s: &[u8]) -> Option<usize> {
    s.iter().position(|b| *b == b'\n')
}

fn trim_ascii_end(s: &[u8]) -> &[u8] {
    let mut e = s.len();
    while e > 0 && s[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    &s[..e]
}

/// The `h=` list for a message: each listed header present is signed (every
/// copy); `(o)` adds one more entry (present or not) and `(x)` one more
/// when present, so a copy added later breaks the signature.
pub fn signed_names(list: &[SignedHeader], fields: &[(&[u8], &[u8])]) -> Vec<String> {
    let mut out = Vec::new();
    for h in list {
        let count = fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(h.name.as_bytes()))
            .count();
        let extra = match h.oversign {
            Oversign::No => 0,
            Oversign::Always => 1,
            Oversign::IfPresent => usize::from(count > 0),
        };
        out.extend(std::iter::repeat_n(h.name.clone(), count + extra));
    }
    out
}

/// The largest From field parsed for its addresses; a longer one is cut.
pub const MAX_FROM_FIELD: usize = 16 * 1024;

/// The same choice as mail-auth's signer wants it: it signs every copy of
/// a listed name and lists a name it cannot find once more, so each name
/// is given once when present, and a second time to oversign.
pub fn signer_template(list: &[SignedHeader], fields: &[Field<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for h in list {
        let present = fields
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(h.name.as_bytes()));
        let (sign, extra) = match h.oversign {
            Oversign::No => (present, false),
            Oversign::Always => (present, true),
            Oversign::IfPresent => (present, present),
        };
        if sign {
            out.push(h.name.clone());
        }
        if extra {
            out.push(h.name.clone());
        }
    }
    out
}

/// The header From's address domains (lower-case), by mail-parser, reading
/// only the From fields (so a hostile rest of the header costs nothing).
pub fn header_from_domains(fields: &[(&[u8], &[u8])]) -> Vec<String> {
    let from: Vec<&[u8]> = fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"from"))
        .map(|(_, v)| &v[..v.len().min(MAX_FROM_FIELD)])
        .collect();
    let mut out = Vec::new();
    if let Some(first) = from.first() {
        let mut mini = b"From:".to_vec();
        mini.extend_from_slice(first);
        if !mini.ends_with(b"\n") {
            mini.extend_from_slice(b"\r\n");
        }
        mini.extend_from_slice(b"\r\n");
        if let Some(m) = mail_parser::MessageParser::new().parse_headers(&mini[..])
            && let Some(addrs) = m.from()
        {
            for a in addrs.iter() {
                if let Some(d) = a.address().and_then(domain_of) {
                    out.push(d);
                }
            }
        }
    }
    // Two From fields count as several senders even if one is empty.
    if from.len() > 1 && out.len() < 2 {
        out.push(String::new());
    }
    out
}

/// The envelope's facts; the header From's domains are read later, only
/// for mail that is signed at all.
pub fn facts(envelope: &Envelope) -> Facts<'_> {
    Facts {
        ip: envelope.ip,
        user: envelope.user.as_deref().filter(|u| !u.is_empty()),
        mail_from: envelope.mail_from.as_deref(),
        header_from: Vec::new(),
        rcpt_domains: envelope.rcpts.iter().filter_map(|r| domain_of(r)).collect(),
    }
}

/// A header to add: name and value (no leading space, folded with `\n\t`).
pub type NewHeader = (String, String);

/// DKIM signing, as configured.
pub struct DkimSigning {
    policy: Policy,
    networks: IpTable<()>,
    headers: Vec<SignedHeader>,
    config: DkimSigningConfig,
    keys: Arc<KeyStore>,
}

impl DkimSigning {
    /// Loads every key the config names; errors as (key path, message),
    /// each naming the file at fault.
    pub fn new(
        config: &DkimSigningConfig,
        keys: Arc<KeyStore>,
    ) -> Result<DkimSigning, Vec<(String, String)>> {
        let mut config = config.clone();
        config.domain = crate::config::with_maps(
            "dkim_signing",
            &config.domain,
            &config.selector_map,
            &config.path_map,
            &config.selector,
            &config.path,
        )?;
        let mut errors = Vec::new();
        preload(&config.domain, "dkim_signing", &keys, &mut errors);
        let headers = parse_sign_headers(&config.sign_headers)
            .map_err(|e| vec![("dkim_signing.sign_headers".to_string(), e)])?;
        if !errors.is_empty() {
            return Err(errors);
        }
        let policy = Policy::dkim(&config);
        Ok(DkimSigning {
            networks: policy.table(),
            policy,
            headers,
            config,
            keys,
        })
    }

    /// The DKIM-Signature headers for a message, first key first.
    pub fn sign(&self, envelope: &Envelope, raw: &[u8]) -> Result<Vec<NewHeader>, Skip> {
        let mut facts = facts(envelope);
        let origin = origin(&self.policy, &self.networks, &facts).ok_or(Skip::NotOutbound)?;
        let (fields, _) = header_fields(raw);
        facts.header_from = header_from_domains(&fields);
        let domain = choose(&self.policy, origin, &facts)?;
        self.sign_fields(&domain, &fields, raw)
    }

    /// Signs mail mxguard writes itself (DMARC reports) as `domain`, with
    /// that domain's keys: no origin or mismatch rules, since no client
    /// sent it.
    pub fn sign_own(&self, domain: &str, raw: &[u8]) -> Result<Vec<NewHeader>, Skip> {
        let (fields, _) = header_fields(raw);
        self.sign_fields(domain, &fields, raw)
    }

    /// One DKIM-Signature per key of `domain`, first key first.
    fn sign_fields(
        &self,
        domain: &str,
        fields: &[Field<'_>],
        raw: &[u8],
    ) -> Result<Vec<NewHeader>, Skip> {
        let names = signer_template(&self.headers, fields);
        let mut out = Vec::new();
        for spec in self.config.keys_for(domain).iter().take(MAX_SIGNATURES) {
            let Some(key) = self.keys.get(Path::new(&spec.path)) else {
                continue;
            };
            match sign_one(SharedKey(key), domain, &spec.selector, &names, raw) {
                Ok(h) => out.push(h),
                Err(e) => {
                    tracing::warn!(domain, selector = spec.selector, "DKIM signing failed: {e}");
                    return Err(Skip::Failed);
                }
            }
        }
        if out.is_empty() {
            return Err(Skip::NoKey);
        }
        Ok(out)
    }
}

/// Loads the keys a `domain` table names; errors at `<section>.domain.<d>`.
pub(crate) fn preload(
    domains: &std::collections::BTreeMap<String, crate::config::DomainKeys>,
    section: &str,
    keys: &KeyStore,
    errors: &mut Vec<(String, String)>,
) {
    for (d, k) in domains {
        let all: Vec<KeySpec> = k.all();
        for (i, spec) in all.iter().enumerate() {
            if let Err(e) = keys.preload(Path::new(&spec.path)) {
                let key = if i == 0 && k.path.is_some() {
                    format!("{section}.domain.{d}.path")
                } else {
                    let j = if k.path.is_some() { i - 1 } else { i };
                    format!("{section}.domain.{d}.keys[{j}]")
                };
                errors.push((key, e));
            }
        }
    }
}

fn sign_one(
    key: SharedKey,
    domain: &str,
    selector: &str,
    names: &[String],
    raw: &[u8],
) -> mail_auth::Result<NewHeader> {
    let sig = DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(names.iter().map(String::as_str))
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
        .sign(raw)?;
    Ok(as_milter_header(&sig.to_header()))
}

/// `Name: value\r\n` as mail-auth writes it → (name, value folded `\n\t`).
pub(crate) fn as_milter_header(h: &str) -> NewHeader {
    let (name, value) = h.split_once(':').unwrap_or((h, ""));
    let value = value.trim_start_matches(' ').trim_end_matches(['\r', '\n']);
    (name.to_string(), value.replace("\r\n", "\n"))
}

/// DKIM signing and ARC sealing of one message, after its verdict.
pub struct Outbound {
    dkim: Option<DkimSigning>,
    arc: Option<Sealer>,
}

/// What signing did to a message.
#[derive(Debug, Default)]
pub struct Signed {
    /// Headers to insert at the top, in the order they must end up
    /// (topmost first): ARC-Seal, ARC-Message-Signature,
    /// ARC-Authentication-Results, DKIM-Signature….
    pub headers: Vec<NewHeader>,
    pub dkim_skipped: Option<Skip>,
    pub arc_skipped: Option<Skip>,
}

impl Outbound {
    /// From the config: keys loaded (once each, shared between DKIM and
    /// ARC); errors as (key path, message), naming the files.
    pub fn new(
        dkim: &DkimSigningConfig,
        arc: &ArcConfig,
    ) -> Result<Option<Outbound>, Vec<(String, String)>> {
        if !dkim.enabled && !arc.enabled {
            return Ok(None);
        }
        let keys = Arc::new(KeyStore::default());
        let mut errors = Vec::new();
        let d = if dkim.enabled {
            DkimSigning::new(dkim, keys.clone())
                .map_err(|e| errors.extend(e))
                .ok()
        } else {
            None
        };
        let a = if arc.enabled {
            Sealer::new(arc, dkim, keys)
                .map_err(|e| errors.extend(e))
                .ok()
        } else {
            None
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(Outbound { dkim: d, arc: a }))
    }

    /// Mail mxguard writes itself (a DMARC report from `domain`), whole,
    /// with its DKIM-Signature(s) on top; `None` when DKIM signing is off.
    pub fn sign_own(&self, domain: &str, raw: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let dkim = self.dkim.as_ref()?;
        Some(match dkim.sign_own(domain, raw) {
            Ok(headers) => {
                let mut out = Vec::with_capacity(raw.len() + 1024);
                for (name, value) in headers {
                    out.extend_from_slice(name.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.replace('\n', "\r\n").as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(raw);
                Ok(out)
            }
            Err(skip) => Err(format!("not DKIM-signed as {domain}: {}", skip.as_str())),
        })
    }

    /// Whether [`Outbound::sign`] may add anything: the verdict delivers
    /// the message and its origin is one DKIM or ARC signs. Cheap (the
    /// envelope only), so a caller holds a CPU slot only for what it signs.
    pub fn may_sign(&self, action: Action, envelope: &Envelope) -> bool {
        if !delivered_unchanged(action) {
            return false;
        }
        let f = facts(envelope);
        self.dkim
            .as_ref()
            .is_some_and(|d| origin(&d.policy, &d.networks, &f).is_some())
            || self.arc.as_ref().is_some_and(|a| a.may_seal(&f))
    }

    /// Signs and seals a message the verdict delivers. `results` gives the
    /// Authentication-Results payload for the ARC set (`authserv-id;
    /// method=result ...`), asked only when a seal is made; `chain` is the
    /// ARC chain's validation (see [`ArcChain`]).
    pub fn sign(
        &self,
        action: Action,
        envelope: &Envelope,
        raw: &[u8],
        results: impl FnOnce() -> String,
        chain: ArcChain,
    ) -> Signed {
        let mut signed = Signed::default();
        if !delivered_unchanged(action) {
            signed.dkim_skipped = self.dkim.as_ref().map(|_| Skip::NotDelivered);
            signed.arc_skipped = self.arc.as_ref().map(|_| Skip::NotDelivered);
            return signed;
        }
        let mut dkim_headers = Vec::new();
        if let Some(d) = &self.dkim {
            match d.sign(envelope, raw) {
                Ok(h) => dkim_headers = h,
                Err(s) => signed.dkim_skipped = Some(s),
            }
        }
        if let Some(a) = &self.arc {
            // The seal covers the message as it leaves: with the new
            // DKIM-Signature fields on top.
            let mut with_dkim = Vec::new();
            for (n, v) in &dkim_headers {
                with_dkim.extend_from_slice(n.as_bytes());
                with_dkim.extend_from_slice(b": ");
                with_dkim.extend_from_slice(v.replace('\n', "\r\n").as_bytes());
                with_dkim.extend_from_slice(b"\r\n");
            }
            with_dkim.extend_from_slice(raw);
            match a.seal(envelope, &with_dkim, results, chain) {
                Ok(set) => signed.headers.extend(set),
                Err(s) => signed.arc_skipped = Some(s),
            }
        }
        signed.headers.extend(dkim_headers);
        signed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::dkim(&DkimSigningConfig::default())
    }

    fn facts<'a>(user: Option<&'a str>, env: Option<&'a str>, from: &[&str]) -> Facts<'a> {
        Facts {
            ip: Some("203.0.113.5".parse().unwrap()),
            user,
            mail_from: env,
            header_from: from.iter().map(|s| s.to_string()).collect(),
            rcpt_domains: vec!["dest.example".into()],
        }
    }

    #[test]
    fn who_is_signed() {
        let mut p = policy();
        p.networks = vec![parse_network("192.0.2.0/24").unwrap()];
        let t = p.table();
        let mut f = facts(Some("joe@example.com"), None, &[]);
        assert_eq!(origin(&p, &t, &f), Some(Origin::Authenticated));
        f.user = None;
        assert_eq!(origin(&p, &t, &f), None, "outside, not authenticated");
        f.ip = Some("192.0.2.9".parse().unwrap());
        assert_eq!(origin(&p, &t, &f), Some(Origin::Network));
        f.ip = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(origin(&p, &t, &f), Some(Origin::Local));
        p.sign_local = false;
        assert_eq!(origin(&p, &t, &f), None);
        f.user = Some("joe@example.com");
        p.sign_authenticated = false;
        assert_eq!(origin(&p, &t, &f), None);
    }

    #[test]
    fn domain_from_header_envelope_or_login() {
        let mut p = policy();
        let f = facts(
            Some("joe@example.com"),
            Some("<joe@mail.example.com>"),
            &["news.example.com"],
        );
        // use_esld: both are example.com.
        assert_eq!(
            choose(&p, Origin::Authenticated, &f).unwrap(),
            "example.com"
        );
        p.use_esld = false;
        assert_eq!(
            choose(&p, Origin::Authenticated, &f),
            Err(Skip::HdrFromMismatch)
        );
        p.allow_hdrfrom_mismatch = true;
        // header domain news.example.com, login domain example.com.
        assert_eq!(
            choose(&p, Origin::Authenticated, &f),
            Err(Skip::UsernameMismatch)
        );
        p.allow_username_mismatch = true;
        assert_eq!(
            choose(&p, Origin::Authenticated, &f).unwrap(),
            "news.example.com"
        );
        p.use_domain = UseDomain::Envelope;
        assert_eq!(
            choose(&p, Origin::Authenticated, &f).unwrap(),
            "mail.example.com"
        );
        p.use_domain = UseDomain::Auth;
        assert_eq!(
            choose(&p, Origin::Authenticated, &f).unwrap(),
            "example.com"
        );
    }

    #[test]
    fn mismatch_rules() {
        let p = policy();
        // A login without a domain never matches unless allowed.
        let f = facts(Some("joe"), Some("joe@example.com"), &["example.com"]);
        assert_eq!(
            choose(&p, Origin::Authenticated, &f),
            Err(Skip::UsernameMismatch)
        );
        let mut q = policy();
        q.allow_username_mismatch = true;
        assert_eq!(
            choose(&q, Origin::Authenticated, &f).unwrap(),
            "example.com"
        );
        // Header From and envelope from different organisations.
        let f = facts(None, Some("bounce@mailer.test"), &["example.com"]);
        assert_eq!(choose(&p, Origin::Network, &f), Err(Skip::HdrFromMismatch));
        let mut q = policy();
        q.allow_hdrfrom_mismatch_sign_networks = true;
        assert_eq!(choose(&q, Origin::Network, &f).unwrap(), "example.com");
        assert_eq!(
            choose(&q, Origin::Local, &f),
            Err(Skip::HdrFromMismatch),
            "the networks' allowance is not the loopback's"
        );
        // The null sender: signed by default, refused when told so.
        let f = facts(None, Some("<>"), &["example.com"]);
        assert_eq!(choose(&p, Origin::Local, &f).unwrap(), "example.com");
        let mut q = policy();
        q.allow_envfrom_empty = false;
        assert_eq!(
            choose(&q, Origin::Local, &f),
            Err(Skip::EmptyEnvelopeSender)
        );
        // Several From addresses.
        let f = facts(None, None, &["a.example", "b.example"]);
        assert_eq!(choose(&p, Origin::Local, &f), Err(Skip::MultipleFrom));
        let f = facts(None, None, &[]);
        assert_eq!(choose(&p, Origin::Local, &f), Err(Skip::NoHeaderFrom));
        // Per-origin use_domain.
        let mut q = policy();
        q.use_domain_sign_networks = Some(UseDomain::Envelope);
        q.allow_hdrfrom_mismatch = true;
        let f = facts(None, Some("x@bulk.example.net"), &["example.com"]);
        assert_eq!(choose(&q, Origin::Network, &f).unwrap(), "example.net");
        assert_eq!(choose(&q, Origin::Local, &f).unwrap(), "example.com");
    }

    #[test]
    fn oversigning() {
        let list = parse_sign_headers("(o)from:(x)date:(x)sender:subject:(o)reply-to").unwrap();
        let raw = b"From: a@b.c\r\nDate: x\r\nSubject: s\r\nSubject: t\r\n\r\nbody\r\n";
        let (fields, body) = header_fields(raw);
        assert_eq!(&raw[body..], b"body\r\n");
        let names = signed_names(&list, &fields);
        assert_eq!(
            names,
            [
                "from", "from", "date", "date", "subject", "subject", "reply-to"
            ]
        );
    }

    #[test]
    fn header_fields_unfold_and_bound() {
        let raw = b"A: 1\r\n  2\r\nB:3\r\n\r\nx";
        let (f, body) = header_fields(raw);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].1, b" 1\r\n  2\r\n");
        assert_eq!(&raw[body..], b"x");
        let many = "X: y\r\n".repeat(MAX_FIELDS + 10);
        assert_eq!(header_fields(many.as_bytes()).0.len(), MAX_FIELDS);
        assert!(header_fields(b"no colon and no end").0.is_empty());
    }

    #[test]
    fn header_from_domains_read_only_from_fields() {
        let raw = b"Subject: x\r\nFrom: \"Joe, Q\" <Joe@Mail.Example.COM>\r\n\r\n";
        let (f, _) = header_fields(raw);
        assert_eq!(header_from_domains(&f), ["mail.example.com"]);
        let raw = b"From: a@one.example, b@two.example\r\n\r\n";
        let (f, _) = header_fields(raw);
        assert_eq!(header_from_domains(&f).len(), 2);
        let raw = b"From: a@one.example\r\nFrom: <>\r\n\r\n";
        let (f, _) = header_fields(raw);
        assert_eq!(header_from_domains(&f).len(), 2, "two From fields");
        let long = format!("From: {}a@b.example\r\n\r\n", "x".repeat(1 << 20));
        let (f, _) = header_fields(long.as_bytes());
        assert!(header_from_domains(&f).len() <= 1);
        let (f, _) = header_fields(b"To: a@b.example\r\n\r\n");
        assert!(header_from_domains(&f).is_empty());
    }

    #[test]
    fn only_delivered_mail_is_signed() {
        assert!(delivered_unchanged(Action::NoAction));
        assert!(delivered_unchanged(Action::AddHeader));
        for a in [
            Action::Reject,
            Action::SoftReject,
            Action::Greylist,
            Action::Discard,
            Action::Quarantine,
            Action::RewriteSubject,
        ] {
            assert!(!delivered_unchanged(a), "{a:?}");
        }
    }
}
