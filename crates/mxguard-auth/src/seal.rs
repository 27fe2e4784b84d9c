//! ARC sealing (RFC 8617) of mail this host relays: one ARC set (ARC-Seal,
//! ARC-Message-Signature, ARC-Authentication-Results) per hop, per domain
//! (selector + key, optionally the DKIM keys).
//!
//! mail-auth's own sealer takes its Authentication-Results only as
//! mail-auth's typed verification outputs; the set is written here so that
//! the results can come from mxguard's scan. The seam is
//! [`Sealer::seal`]: it takes the Authentication-Results payload and the
//! chain's validation ([`ArcChain`]) from whoever verified the message.

use crate::arc::ArcVerdict;
use crate::config::{ArcConfig, DkimSigningConfig, SignedHeader, keys_for, parse_sign_headers};
use crate::keys::{KeyStore, SharedKey, base64};
use crate::results::AuthResult;
use crate::sign::{Facts, NewHeader, Policy, Skip, choose, header_fields, origin, preload};
use mail_auth::dkim::Canonicalization;
use mxguard_core::Envelope;
use mxguard_core::iptable::IpTable;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// RFC 8617 section 4.2.1: at most 50 ARC sets.
pub const MAX_INSTANCE: u32 = 50;

/// The validation of the ARC chain the message arrived with: the `cv=`
/// of the new seal. Comes from inbound ARC verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArcChain {
    /// Verified: no chain, or a valid one (`cv=none` / `cv=pass`).
    Pass,
    /// Verified and broken (`cv=fail`).
    Fail,
    /// Not verified. A message without ARC sets is sealed with `cv=none`;
    /// one with sets is not sealed, since its chain's state is unknown.
    Unverified,
}

impl ArcChain {
    /// The chain's state from the inbound ARC check's typed verdict
    /// (`None`: the check did not run or did not finish). A DNS failure
    /// leaves the chain unverified: sealing it either way would be a guess.
    pub fn of(verdict: Option<&ArcVerdict>) -> ArcChain {
        match verdict.map(|v| v.result) {
            Some(AuthResult::Pass | AuthResult::None) => ArcChain::Pass,
            Some(
                AuthResult::Fail
                | AuthResult::PermError
                | AuthResult::SoftFail
                | AuthResult::Neutral,
            ) => ArcChain::Fail,
            Some(AuthResult::TempError) | None => ArcChain::Unverified,
        }
    }
}

/// ARC sealing, as configured.
pub struct Sealer {
    policy: Policy,
    networks: IpTable<()>,
    headers: Vec<SignedHeader>,
    config: ArcConfig,
    dkim: DkimSigningConfig,
    keys: Arc<KeyStore>,
}

impl Sealer {
    pub fn new(
        config: &ArcConfig,
        dkim: &DkimSigningConfig,
        keys: Arc<KeyStore>,
    ) -> Result<Sealer, Vec<(String, String)>> {
        let (mut config, mut dkim) = (config.clone(), dkim.clone());
        config.domain = crate::config::with_maps(
            "arc",
            &config.domain,
            &config.selector_map,
            &config.path_map,
            &config.selector,
            &config.path,
        )?;
        if config.reuse_dkim_keys {
            dkim.domain = crate::config::with_maps(
                "dkim_signing",
                &dkim.domain,
                &dkim.selector_map,
                &dkim.path_map,
                &dkim.selector,
                &dkim.path,
            )?;
        }
        let mut errors = Vec::new();
        preload(&config.domain, "arc", &keys, &mut errors);
        if config.reuse_dkim_keys && !dkim.enabled {
            preload(&dkim.domain, "dkim_signing", &keys, &mut errors);
        }
        let headers = parse_sign_headers(&config.sign_headers)
            .map_err(|e| vec![("arc.sign_headers".to_string(), e)])?;
        if !errors.is_empty() {
            return Err(errors);
        }
        let policy = Policy::arc(&config);
        let mut networks = IpTable::default();
        for n in &policy.networks {
            networks.insert(*n, ());
        }
        Ok(Sealer {
            policy,
            networks,
            headers,
            config,
            dkim,
            keys,
        })
    }

    /// Whether a message of these envelope facts is sealed at all.
    pub fn may_seal(&self, facts: &Facts<'_>) -> bool {
        origin(&self.policy, &self.networks, facts).is_some()
    }

    /// The key for a domain: `[arc]`'s, else `[dkim_signing]`'s when
    /// `reuse_dkim_keys`.
    fn key_for(&self, domain: &str) -> Option<(String, Arc<crate::keys::PrivateKey>)> {
        let c = &self.config;
        let mut specs = keys_for(&c.domain, c.try_fallback, &c.selector, &c.path, domain);
        if self.config.reuse_dkim_keys {
            specs.extend(self.dkim.keys_for(domain));
        }
        specs.into_iter().find_map(|s| {
            self.keys
                .get(Path::new(&s.path))
                .map(|k| (s.selector.clone(), k))
        })
    }

    /// The new ARC set for `raw` (the message as it leaves, signatures
    /// added this hop included), topmost first: ARC-Seal,
    /// ARC-Message-Signature, ARC-Authentication-Results. `results` is
    /// the Authentication-Results payload (`authserv-id; spf=pass ...`).
    pub fn seal(
        &self,
        envelope: &Envelope,
        raw: &[u8],
        results: impl FnOnce() -> String,
        chain: ArcChain,
    ) -> Result<Vec<NewHeader>, Skip> {
        let mut facts = crate::sign::facts(envelope);
        let origin = origin(&self.policy, &self.networks, &facts).ok_or(Skip::NotOutbound)?;
        let (fields, body_at) = header_fields(raw);
        facts.header_from = crate::sign::header_from_domains(&fields);
        let domain = if origin == crate::sign::Origin::Inbound {
            // The first recipient domain this host holds a key for.
            facts
                .rcpt_domains
                .iter()
                .find_map(|d| {
                    let f = Facts {
                        rcpt_domains: vec![d.clone()],
                        ..Facts::default()
                    };
                    choose(&self.policy, origin, &f)
                        .ok()
                        .filter(|d| self.key_for(d).is_some())
                })
                .ok_or(Skip::NoKey)?
        } else {
            choose(&self.policy, origin, &facts)?
        };
        let (selector, key) = self.key_for(&domain).ok_or(Skip::NoKey)?;
        let mut names = crate::sign::signed_names(&self.headers, &fields);
        let dkim_sigs = fields
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(b"dkim-signature"))
            .count();
        names.extend(std::iter::repeat_n("dkim-signature".to_string(), dkim_sigs));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let results = results();
        let spec = SetSpec {
            domain: &domain,
            selector: &selector,
            signed_names: &names,
            results: &results,
            chain,
            timestamp: now,
        };
        build_set(
            &SharedKey(key),
            &fields,
            raw.get(body_at..).unwrap_or_default(),
            &spec,
        )
    }
}

/// What one ARC set is made of: what [`Sealer::seal`] chose from the
/// configuration, or what a conformance suite prescribes.
pub struct SetSpec<'a> {
    pub domain: &'a str,
    pub selector: &'a str,
    /// `h=` of the ARC-Message-Signature, lower case, in signing order.
    pub signed_names: &'a [String],
    /// The Authentication-Results payload (`authserv-id; spf=pass ...`)
    /// that becomes the ARC-Authentication-Results.
    pub results: &'a str,
    pub chain: ArcChain,
    /// `t=`, seconds since the epoch.
    pub timestamp: u64,
}

/// The new ARC set for `raw` as [`SetSpec`] says, topmost first:
/// ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results. The
/// policy-free half of [`Sealer::seal`], public so the ValiMail signing
/// suite drives exactly the code the daemon runs.
pub fn arc_set<K: SigningKey>(
    key: &K,
    raw: &[u8],
    spec: &SetSpec<'_>,
) -> Result<Vec<NewHeader>, Skip> {
    let (fields, body_at) = header_fields(raw);
    build_set(key, &fields, raw.get(body_at..).unwrap_or_default(), spec)
}

/// Writes the set. Tags are in alphabetical order with one space after
/// each `;` (folds only there), the ValiMail suite's standard form: any
/// order is valid, this one lets the suite compare signatures byte for
/// byte.
fn build_set<K: SigningKey>(
    key: &K,
    fields: &[(&[u8], &[u8])],
    body: &[u8],
    spec: &SetSpec<'_>,
) -> Result<Vec<NewHeader>, Skip> {
    let SetSpec {
        domain, selector, ..
    } = *spec;
    let prior = prior_sets(fields);
    let n = prior.len() as u32 + 1;
    let cv = match (prior.is_empty(), spec.chain) {
        (true, _) => "none",
        (false, ArcChain::Pass) => "pass",
        (false, ArcChain::Fail) => "fail",
        (false, ArcChain::Unverified) => return Err(Skip::ArcChain),
    };
    // A chain already marked failed is not sealed again (RFC 8617 5.1).
    if n > MAX_INSTANCE || prior.iter().any(|s| cv_of(s.seal) == Some("fail")) {
        return Err(Skip::ArcChain);
    }
    let alg = match key.algorithm() {
        mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
        _ => "rsa-sha256",
    };
    let now = spec.timestamp;
    let aar = format!("i={n}; {}", one_line(spec.results));

    // ARC-Message-Signature: a DKIM signature of the message, with i=.
    let bh = base64(
        key.hash(Canonicalization::Relaxed.canonical_body(body, 0))
            .as_ref(),
    );
    let ams_tail = format!(
        ";\n\tbh={bh}; c=relaxed/relaxed; d={domain};\n\th={}; i={n}; s={selector}; t={now}",
        spec.signed_names.join(":")
    );
    let ams_head = format!("a={alg};\n\tb=");
    let mut input = Vec::new();
    for (name, value) in select_headers(fields, spec.signed_names) {
        relaxed_header(name, value, &mut input);
        input.extend_from_slice(b"\r\n");
    }
    relaxed_header(
        b"arc-message-signature",
        format!("{ams_head}{ams_tail}").as_bytes(),
        &mut input,
    );
    let b = key.sign(&input[..]).map_err(|e| {
        tracing::warn!(domain, selector, "ARC signing failed: {e}");
        Skip::Failed
    })?;
    let ams = format!("{ams_head}{}{ams_tail}", base64(&b));

    // ARC-Seal: the earlier sets in order, then this one.
    let seal_head = format!("a={alg};\n\tb=");
    let seal_tail = format!(";\n\tcv={cv}; d={domain}; i={n}; s={selector}; t={now}");
    let mut input = Vec::new();
    // A seal that records a broken chain covers only its own set: the
    // earlier ones are what broke (RFC 8617 5.1.1; the ValiMail signing
    // suite's i1_base_fail and i2_base_fail).
    let covered = if cv == "fail" {
        &prior[..0]
    } else {
        &prior[..]
    };
    for set in covered {
        for (name, value) in [
            (b"arc-authentication-results".as_slice(), set.aar),
            (b"arc-message-signature".as_slice(), set.ams),
            (b"arc-seal".as_slice(), set.seal),
        ] {
            relaxed_header(name, value, &mut input);
            input.extend_from_slice(b"\r\n");
        }
    }
    relaxed_header(b"arc-authentication-results", aar.as_bytes(), &mut input);
    input.extend_from_slice(b"\r\n");
    relaxed_header(b"arc-message-signature", ams.as_bytes(), &mut input);
    input.extend_from_slice(b"\r\n");
    relaxed_header(
        b"arc-seal",
        format!("{seal_head}{seal_tail}").as_bytes(),
        &mut input,
    );
    let b = key.sign(&input[..]).map_err(|e| {
        tracing::warn!(domain, selector, "ARC sealing failed: {e}");
        Skip::Failed
    })?;
    let seal = format!("{seal_head}{}{seal_tail}", base64(&b));
    Ok(vec![
        ("ARC-Seal".into(), seal),
        ("ARC-Message-Signature".into(), ams),
        ("ARC-Authentication-Results".into(), aar),
    ])
}

use mail_auth::common::crypto::SigningKey;

/// One earlier ARC set, raw values.
struct PriorSet<'a> {
    aar: &'a [u8],
    ams: &'a [u8],
    seal: &'a [u8],
}

/// The message's ARC sets by instance, 1 to N; sets with a missing or
/// duplicate member, or a gap, end the list there (that chain would not
/// verify, and `Unverified`/`Fail` handle it).
fn prior_sets<'a>(fields: &[(&'a [u8], &'a [u8])]) -> Vec<PriorSet<'a>> {
    let mut by_i: Vec<[Option<&'a [u8]>; 3]> = Vec::new();
    for (name, value) in fields {
        let slot = if name.eq_ignore_ascii_case(b"arc-authentication-results") {
            0
        } else if name.eq_ignore_ascii_case(b"arc-message-signature") {
            1
        } else if name.eq_ignore_ascii_case(b"arc-seal") {
            2
        } else {
            continue;
        };
        let Some(i) = instance(value) else { continue };
        if i == 0 || i > MAX_INSTANCE {
            continue;
        }
        let i = i as usize;
        if by_i.len() < i {
            by_i.resize(i, [None; 3]);
        }
        by_i[i - 1][slot].get_or_insert(value);
    }
    by_i.into_iter()
        .map_while(|s| match s {
            [Some(aar), Some(ams), Some(seal)] => Some(PriorSet { aar, ams, seal }),
            _ => None,
        })
        .collect()
}

/// The `i=` tag of an ARC header value.
fn instance(value: &[u8]) -> Option<u32> {
    tag(value, "i")?.parse().ok()
}

fn cv_of(seal: &[u8]) -> Option<&'static str> {
    match tag(seal, "cv")?.to_ascii_lowercase().as_str() {
        "none" => Some("none"),
        "pass" => Some("pass"),
        "fail" => Some("fail"),
        _ => None,
    }
}

fn tag(value: &[u8], name: &str) -> Option<String> {
    let v = String::from_utf8_lossy(value);
    v.split(';').find_map(|t| {
        let (k, val) = t.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| val.split_whitespace().collect::<String>())
    })
}

/// DKIM's choice of header instances for `h=`: for each name, the next
/// copy from the bottom; a name with no copy left adds nothing.
fn select_headers<'a>(
    fields: &[(&'a [u8], &'a [u8])],
    names: &[String],
) -> Vec<(&'a [u8], &'a [u8])> {
    let mut used = vec![false; fields.len()];
    let mut out = Vec::new();
    for n in names {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].0.eq_ignore_ascii_case(n.as_bytes()))
        {
            used[i] = true;
            out.push(fields[i]);
        }
    }
    out
}

/// RFC 6376 3.4.2 relaxed header canonicalization, without the line end:
/// lower-case name, unfolded value, runs of white space as one space, none
/// at either end.
fn relaxed_header(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    let mut space = false;
    let start = out.len();
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            b' ' | b'\t' => space = true,
            _ => {
                if space && out.len() > start {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization() {
        let mut out = Vec::new();
        relaxed_header(b"SubJect", b" \t A  b\r\n\t c \r\n", &mut out);
        assert_eq!(out, b"subject:A b c");
    }

    #[test]
    fn prior_sets_in_order_and_complete() {
        let raw = b"ARC-Seal: i=2; cv=pass; b=x\r\nARC-Message-Signature: i=2; b=y\r\n\
ARC-Authentication-Results: i=2; mx\r\nARC-Seal: i=1; cv=none; b=x\r\n\
ARC-Message-Signature: i=1; b=y\r\nARC-Authentication-Results: i=1; mx\r\n\r\n";
        let (f, _) = header_fields(raw);
        let sets = prior_sets(&f);
        assert_eq!(sets.len(), 2);
        assert_eq!(instance(sets[0].seal), Some(1));
        assert_eq!(cv_of(sets[1].seal), Some("pass"));
        // Set 1 missing its seal: nothing usable.
        let raw = b"ARC-Message-Signature: i=1; b=y\r\nARC-Authentication-Results: i=1; mx\r\n\r\n";
        let (f, _) = header_fields(raw);
        assert!(prior_sets(&f).is_empty());
    }

    #[test]
    fn selects_copies_from_the_bottom() {
        let raw = b"To: a\r\nSubject: 1\r\nSubject: 2\r\n\r\n";
        let (f, _) = header_fields(raw);
        let names = ["subject", "subject", "subject", "to"].map(String::from);
        let s = select_headers(&f, &names);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].1, b" 2\r\n");
        assert_eq!(s[1].1, b" 1\r\n");
    }
}
