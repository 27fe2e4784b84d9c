//! `[dkim_signing]` and `[arc]`: which outbound mail gets a DKIM-Signature,
//! with which domain, selector and key, and which relayed mail gets an ARC
//! seal. The choices are rspamd's dkim_signing and arc modules' (an rspamd
//! user's `local.d/dkim_signing.conf` maps key for key); the keys
//! themselves are read and checked by `mxguard_auth::keys` when the daemon
//! is built, so a bad key file is an error at `config check` and at start.

use mxguard_core::iptable::parse_network;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// rspamd's default list of signed headers, in its own syntax: `(o)` signs
/// every copy and one more (so no copy can be added after signing), `(x)`
/// does so only when the header is there; a bare name is signed when
/// present.
pub const DEFAULT_SIGN_HEADERS: &str = "(o)from:(x)sender:(o)reply-to:(o)subject:(x)date:\
(x)message-id:(o)to:(o)cc:(x)mime-version:(x)content-type:(x)content-transfer-encoding:\
resent-to:resent-cc:resent-from:resent-sender:resent-message-id:(x)in-reply-to:(x)references:\
list-id:list-help:list-owner:list-unsubscribe:list-unsubscribe-post:list-subscribe:list-post:\
(x)openpgp:(x)autocrypt";

/// Where the signing domain comes from (rspamd's `use_domain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UseDomain {
    /// The domain of the header From.
    #[default]
    Header,
    /// The domain of the envelope sender (MAIL FROM).
    Envelope,
    /// The domain of the SASL login name (`user@domain`).
    Auth,
}

/// One key of a domain: `selector._domainkey.<domain>` publishes its public
/// half. The key type (RSA or Ed25519) is read from the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeySpec {
    pub selector: String,
    /// PEM file: RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8), as written by
    /// `mxguard dkim keygen`, opendkim-genkey or rspamadm dkim_keygen.
    pub path: String,
}

/// A domain's own keys (rspamd's `domain { example.com { ... } }`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DomainKeys {
    /// The domain's key, as rspamd writes it: `selector` + `path`.
    pub selector: Option<String>,
    pub path: Option<String>,
    /// More keys signed with at once (an RSA and an Ed25519 key, or a key
    /// being rolled over): one signature each.
    pub keys: Vec<KeySpec>,
}

impl DomainKeys {
    /// Every key of the domain: `selector`/`path` first, then `keys`.
    pub fn all(&self) -> Vec<KeySpec> {
        let mut out = Vec::new();
        if let (Some(s), Some(p)) = (&self.selector, &self.path) {
            out.push(KeySpec {
                selector: s.clone(),
                path: p.clone(),
            });
        }
        out.extend(self.keys.iter().cloned());
        out
    }
}

/// `[dkim_signing]`: rspamd's dkim_signing module.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DkimSigningConfig {
    /// Off until keys are configured.
    pub enabled: bool,
    /// Sign mail of SASL-authenticated senders (the milter's `{auth_authen}`).
    pub sign_authenticated: bool,
    /// Sign mail from loopback clients (local submission, webmail on the host).
    pub sign_local: bool,
    /// Clients whose mail is signed, like Postfix's `mynetworks`: addresses
    /// or CIDR networks.
    pub sign_networks: Vec<String>,
    /// Where the signing domain comes from.
    pub use_domain: UseDomain,
    /// Override of `use_domain` for `sign_networks` clients (rspamd's
    /// `use_domain_sign_networks`), and for loopback clients.
    pub use_domain_sign_networks: Option<UseDomain>,
    pub use_domain_sign_local: Option<UseDomain>,
    /// Sign with the organisational domain (public suffix list) of the
    /// chosen domain, and compare domains by it: `mail.example.com` signs
    /// as `example.com`.
    pub use_esld: bool,
    /// Sign even when the header From's domain differs from the envelope
    /// sender's (compared by organisational domain with `use_esld`).
    pub allow_hdrfrom_mismatch: bool,
    /// The same, only for loopback clients / for `sign_networks` clients.
    pub allow_hdrfrom_mismatch_local: bool,
    pub allow_hdrfrom_mismatch_sign_networks: bool,
    /// Sign even when the login name's domain differs from the signing
    /// domain (a login without `@domain` is always a mismatch).
    pub allow_username_mismatch: bool,
    /// Sign mail with an empty envelope sender (bounces).
    pub allow_envfrom_empty: bool,
    /// Sign when the header has several From addresses (or From fields).
    pub allow_hdrfrom_multiple: bool,
    /// The selector and key path for a domain not in `domain`: `$domain`
    /// and `$selector` are replaced. Empty path: such domains are not signed.
    pub selector: String,
    pub path: String,
    /// Try `selector`/`path` for a domain that `domain` does not list.
    pub try_fallback: bool,
    /// rspamd's per-domain maps, files of `domain value` lines (`#`
    /// comments): the selector, and the key path, of each domain listed
    /// there and not in `domain`; the one missing comes from
    /// `selector`/`path`. Read at start and at reload. Empty: none.
    pub selector_map: String,
    pub path_map: String,
    /// Headers to sign, rspamd's syntax (see [`DEFAULT_SIGN_HEADERS`]).
    pub sign_headers: String,
    /// Per-domain selector and key path.
    pub domain: BTreeMap<String, DomainKeys>,
}

impl Default for DkimSigningConfig {
    fn default() -> Self {
        DkimSigningConfig {
            enabled: false,
            sign_authenticated: true,
            sign_local: true,
            sign_networks: Vec::new(),
            use_domain: UseDomain::Header,
            use_domain_sign_networks: None,
            use_domain_sign_local: None,
            use_esld: true,
            allow_hdrfrom_mismatch: false,
            allow_hdrfrom_mismatch_local: false,
            allow_hdrfrom_mismatch_sign_networks: false,
            allow_username_mismatch: false,
            allow_envfrom_empty: true,
            allow_hdrfrom_multiple: false,
            selector: "dkim".into(),
            path: "/var/lib/mxguard/dkim/$domain.$selector.key".into(),
            try_fallback: true,
            selector_map: String::new(),
            path_map: String::new(),
            sign_headers: DEFAULT_SIGN_HEADERS.into(),
            domain: BTreeMap::new(),
        }
    }
}

/// `[arc]`: ARC sealing of mail this host relays (rspamd's arc module,
/// signing side).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArcConfig {
    pub enabled: bool,
    /// Seal with `[dkim_signing]`'s keys for a domain `[arc] domain` does
    /// not list.
    pub reuse_dkim_keys: bool,
    /// Seal mail from outside too (this host forwards or runs a list),
    /// with the domain of the first recipient that has a key.
    pub sign_inbound: bool,
    /// Who else gets sealed, with the domain chosen as for DKIM.
    pub sign_authenticated: bool,
    pub sign_local: bool,
    pub sign_networks: Vec<String>,
    pub use_domain: UseDomain,
    pub use_esld: bool,
    /// Fallback selector and path template, as in `[dkim_signing]`.
    pub selector: String,
    pub path: String,
    pub try_fallback: bool,
    /// rspamd's per-domain maps, files of `domain value` lines (`#`
    /// comments): the selector, and the key path, of each domain listed
    /// there and not in `domain`; the one missing comes from
    /// `selector`/`path`. Read at start and at reload. Empty: none.
    pub selector_map: String,
    pub path_map: String,
    /// Headers the ARC-Message-Signature signs, rspamd's syntax.
    pub sign_headers: String,
    pub domain: BTreeMap<String, DomainKeys>,
}

impl Default for ArcConfig {
    fn default() -> Self {
        ArcConfig {
            enabled: false,
            reuse_dkim_keys: false,
            sign_inbound: true,
            sign_authenticated: true,
            sign_local: true,
            sign_networks: Vec::new(),
            use_domain: UseDomain::Header,
            use_esld: true,
            selector: "arc".into(),
            path: "/var/lib/mxguard/arc/$domain.$selector.key".into(),
            try_fallback: false,
            selector_map: String::new(),
            path_map: String::new(),
            sign_headers: DEFAULT_SIGN_HEADERS.into(),
            domain: BTreeMap::new(),
        }
    }
}

/// One entry of a `sign_headers` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeader {
    /// Lower-case name.
    pub name: String,
    pub oversign: Oversign,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversign {
    /// Signed when present.
    No,
    /// `(o)`: every copy and one more, present or not.
    Always,
    /// `(x)`: every copy and one more, only when present.
    IfPresent,
}

/// Parses rspamd's `sign_headers` syntax: names separated by `:` (spaces
/// allowed), each optionally prefixed `(o)` or `(x)`.
pub fn parse_sign_headers(s: &str) -> Result<Vec<SignedHeader>, String> {
    let mut out: Vec<SignedHeader> = Vec::new();
    for item in s.split(':') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (oversign, name) = if let Some(n) = item.strip_prefix("(o)") {
            (Oversign::Always, n)
        } else if let Some(n) = item.strip_prefix("(x)") {
            (Oversign::IfPresent, n)
        } else {
            (Oversign::No, item)
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("`{item}` is not a header name"));
        }
        if name == "dkim-signature" || name.starts_with("arc-") {
            return Err(format!(
                "`{name}` cannot be signed here (signatures and seals sign themselves)"
            ));
        }
        if !out.iter().any(|h| h.name == name) {
            out.push(SignedHeader { name, oversign });
        }
    }
    if !out.iter().any(|h| h.name == "from") {
        return Err("the list must contain from (RFC 6376 requires the From header signed)".into());
    }
    Ok(out)
}

fn check_common(
    section: &str,
    networks: &[String],
    sign_headers: &str,
    selector: &str,
    domains: &BTreeMap<String, DomainKeys>,
    errors: &mut Vec<(String, String)>,
) {
    for (i, n) in networks.iter().enumerate() {
        if let Err(e) = parse_network(n) {
            errors.push((
                format!("{section}.sign_networks[{i}]"),
                format!("{e}; write an address or a network like \"192.0.2.0/24\""),
            ));
        }
    }
    if let Err(e) = parse_sign_headers(sign_headers) {
        errors.push((format!("{section}.sign_headers"), e));
    }
    if !selector.is_empty() && !super::valid_name(selector) {
        errors.push((
            format!("{section}.selector"),
            format!("`{selector}` is not a DNS label: letters, digits, - and _"),
        ));
    }
    for (domain, keys) in domains {
        let at = format!("{section}.domain.{domain}");
        if !super::valid_name(domain) {
            errors.push((at.clone(), format!("`{domain}` is not a domain name")));
        }
        if keys.selector.is_some() != keys.path.is_some() {
            errors.push((
                at.clone(),
                "give both selector and path (or a keys = [{ selector, path }] list)".into(),
            ));
        }
        let all = keys.all();
        if all.is_empty() && keys.selector.is_none() && keys.path.is_none() {
            errors.push((
                at.clone(),
                "no key: give selector and path, or keys = [{ selector, path }]".into(),
            ));
        }
        for (i, k) in all.iter().enumerate() {
            let key = if i == 0 && keys.selector.is_some() {
                format!("{at}.selector")
            } else {
                let j = if keys.selector.is_some() { i - 1 } else { i };
                format!("{at}.keys[{j}]")
            };
            if !super::valid_name(&k.selector) {
                errors.push((
                    key.clone(),
                    format!(
                        "`{}` is not a DNS label: letters, digits, - and _",
                        k.selector
                    ),
                ));
            }
            if k.path.trim().is_empty() {
                errors.push((key, "the key's path is empty".into()));
            }
        }
    }
}

impl DkimSigningConfig {
    /// Errors as (key path, message). Key files are read and checked when
    /// the daemon's parts are built (`mxguard_auth::keys`).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_common(
            "dkim_signing",
            &self.sign_networks,
            &self.sign_headers,
            &self.selector,
            &self.domain,
            &mut errors,
        );
        if self.enabled && self.domain.is_empty() && (!self.try_fallback || self.path.is_empty()) {
            errors.push((
                "dkim_signing".into(),
                "signing is enabled but no domain has a key: add [dkim_signing.domain.\"example.com\"] \
                 with selector and path (mxguard dkim keygen writes one), or a fallback path"
                    .into(),
            ));
        }
        errors
    }

    /// The key of `domain`: its own keys, or the fallback template's.
    pub fn keys_for(&self, domain: &str) -> Vec<KeySpec> {
        keys_for(
            &self.domain,
            self.try_fallback,
            &self.selector,
            &self.path,
            domain,
        )
    }
}

impl ArcConfig {
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        check_common(
            "arc",
            &self.sign_networks,
            &self.sign_headers,
            &self.selector,
            &self.domain,
            &mut errors,
        );
        errors
    }
}

/// Most bytes a `selector_map` or `path_map` file may have.
pub const MAX_MAP_FILE: u64 = 4 << 20;

/// Reads one rspamd map of `domain value` lines; errors name the file and
/// line.
fn read_map(key: &str, file: &str) -> Result<BTreeMap<String, String>, (String, String)> {
    let err = |m: String| (key.to_string(), m);
    let bytes = mxguard_core::files::read_bounded(std::path::Path::new(file), MAX_MAP_FILE)
        .map_err(|e| err(format!("cannot read {file}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| err(format!("{file} is not UTF-8")))?;
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(v), None) => {
                out.insert(d.trim_end_matches('.').to_ascii_lowercase(), v.to_string());
            }
            _ => {
                return Err(err(format!(
                    "{file} line {}: expected `domain value`, got `{line}`",
                    n + 1
                )));
            }
        }
    }
    Ok(out)
}

/// rspamd's `selector_map`/`path_map` folded into the `domain` table: each
/// domain they list and `domain` does not gets a selector (its map entry,
/// else `selector`) and a path (its map entry, else the `path` template).
pub fn with_maps(
    section: &str,
    domains: &BTreeMap<String, DomainKeys>,
    selector_map: &str,
    path_map: &str,
    selector: &str,
    path: &str,
) -> Result<BTreeMap<String, DomainKeys>, Vec<(String, String)>> {
    let mut out = domains.clone();
    if selector_map.is_empty() && path_map.is_empty() {
        return Ok(out);
    }
    let mut errors = Vec::new();
    let mut load = |name: &str, file: &str| {
        if file.is_empty() {
            return BTreeMap::new();
        }
        read_map(&format!("{section}.{name}"), file).unwrap_or_else(|e| {
            errors.push(e);
            BTreeMap::new()
        })
    };
    let selectors = load("selector_map", selector_map);
    let paths = load("path_map", path_map);
    if !errors.is_empty() {
        return Err(errors);
    }
    for d in selectors.keys().chain(paths.keys()) {
        if out.keys().any(|k| k.eq_ignore_ascii_case(d)) {
            continue;
        }
        let sel = selectors.get(d).map_or(selector, String::as_str);
        let p = match paths.get(d) {
            Some(p) => p.clone(),
            None if !path.is_empty() => path.replace("$domain", d).replace("$selector", sel),
            None => {
                errors.push((
                    format!("{section}.path_map"),
                    format!("{d} has a selector in {selector_map} but no key path: list it in path_map or set path"),
                ));
                continue;
            }
        };
        out.insert(
            d.clone(),
            DomainKeys {
                selector: Some(sel.to_string()),
                path: Some(p),
                ..Default::default()
            },
        );
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A domain's keys: configured ones, else the fallback template with
/// `$domain` and `$selector` replaced.
pub fn keys_for(
    domains: &BTreeMap<String, DomainKeys>,
    try_fallback: bool,
    selector: &str,
    path: &str,
    domain: &str,
) -> Vec<KeySpec> {
    if let Some(k) = domains
        .iter()
        .find(|(d, _)| d.eq_ignore_ascii_case(domain))
        .map(|(_, k)| k.all())
    {
        return k;
    }
    if try_fallback && !path.is_empty() && !selector.is_empty() {
        return vec![KeySpec {
            selector: selector.to_string(),
            path: path
                .replace("$domain", domain)
                .replace("$selector", selector),
        }];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::register;
    use mxguard_core::config::{Registry, load_str};

    #[test]
    fn selector_and_path_maps() {
        let dir = tempfile::tempdir().unwrap();
        let sel = dir.path().join("selectors.map");
        let paths = dir.path().join("paths.map");
        std::fs::write(
            &sel,
            "# rspamd map\nexample.org  s2024\nlisted.test other\n",
        )
        .unwrap();
        std::fs::write(&paths, "example.net /keys/net.key\n").unwrap();
        let mut domains = BTreeMap::new();
        domains.insert(
            "listed.test".to_string(),
            DomainKeys {
                selector: Some("own".into()),
                path: Some("/keys/own.key".into()),
                ..Default::default()
            },
        );
        let (s, p) = (sel.to_str().unwrap(), paths.to_str().unwrap());
        let out = with_maps(
            "dkim_signing",
            &domains,
            s,
            p,
            "dkim",
            "/k/$domain.$selector.key",
        )
        .unwrap();
        let get = |d: &str| {
            let k = &out[d];
            (k.selector.clone().unwrap(), k.path.clone().unwrap())
        };
        assert_eq!(
            get("example.org"),
            ("s2024".into(), "/k/example.org.s2024.key".into())
        );
        assert_eq!(get("example.net"), ("dkim".into(), "/keys/net.key".into()));
        // The `domain` table wins over the maps.
        assert_eq!(get("listed.test"), ("own".into(), "/keys/own.key".into()));
        // A bad line names the file and line.
        std::fs::write(&sel, "ok.test s\nbroken\n").unwrap();
        let e = with_maps("dkim_signing", &domains, s, "", "dkim", "").unwrap_err();
        assert_eq!(e[0].0, "dkim_signing.selector_map");
        assert!(e[0].1.contains("line 2"), "{:?}", e);
        let e = with_maps("arc", &domains, "/nonexistent/map", "", "arc", "").unwrap_err();
        assert!(e[0].1.contains("/nonexistent/map"), "{:?}", e);
    }

    #[test]
    fn rspamd_sign_headers_syntax() {
        let h = parse_sign_headers(DEFAULT_SIGN_HEADERS).unwrap();
        assert_eq!(h[0].name, "from");
        assert_eq!(h[0].oversign, Oversign::Always);
        assert_eq!(h[1].name, "sender");
        assert_eq!(h[1].oversign, Oversign::IfPresent);
        assert!(
            h.iter()
                .any(|x| x.name == "list-id" && x.oversign == Oversign::No)
        );
        assert!(
            parse_sign_headers("subject:date").is_err(),
            "from is required"
        );
        assert!(parse_sign_headers("from:dkim-signature").is_err());
        assert_eq!(parse_sign_headers(" From : (o)To ").unwrap().len(), 2);
    }

    #[test]
    fn validate_names_the_key_at_fault() {
        let mut c = DkimSigningConfig {
            enabled: true,
            sign_networks: vec!["10.0.0.0/33".into()],
            ..Default::default()
        };
        c.domain.insert(
            "example.com".into(),
            DomainKeys {
                selector: Some("bad selector".into()),
                path: Some("/k".into()),
                keys: vec![],
            },
        );
        let e = c.validate();
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"dkim_signing.sign_networks[0]"), "{e:?}");
        assert!(
            keys.contains(&"dkim_signing.domain.example.com.selector"),
            "{e:?}"
        );
        assert!(DkimSigningConfig::default().validate().is_empty());
        assert!(ArcConfig::default().validate().is_empty());
    }

    /// The rspamd user's local.d/dkim_signing.conf and arc.conf
    /// (../shared/testdata/user-setups/rspamd-clamav), written as mxguard
    /// TOML: every choice they make has its key.
    #[test]
    fn rspamd_users_signing_setup_in_toml() {
        let text = r#"
[dkim_signing]
enabled = true
allow_hdrfrom_mismatch = true
allow_hdrfrom_mismatch_sign_networks = true
allow_username_mismatch = true
use_domain = "header"
sign_authenticated = true
use_esld = false
[dkim_signing.domain."example.com"]
path = "/var/lib/rspamd/dkim/example.com.dkim.key"
selector = "dkim"
[arc]
enabled = true
[arc.domain."example.com"]
selector = "dkim"
path = "/var/lib/rspamd/dkim/example.com.dkim.key"
"#;
        let c = load_str(text, "user.toml", &register(Registry::new())).unwrap();
        let d = c.section::<DkimSigningConfig>();
        assert!(d.allow_hdrfrom_mismatch && d.allow_hdrfrom_mismatch_sign_networks);
        assert!(d.allow_username_mismatch && !d.use_esld);
        assert_eq!(d.use_domain, UseDomain::Header);
        assert_eq!(
            d.keys_for("EXAMPLE.com")[0].path,
            "/var/lib/rspamd/dkim/example.com.dkim.key"
        );
        assert_eq!(
            c.section::<ArcConfig>().domain["example.com"].all()[0].selector,
            "dkim"
        );
        let e = load_str(
            "[dkim_signing]
use_domain = \"recipient\"\n",
            "x",
            &register(Registry::new()),
        )
        .unwrap_err();
        assert!(e[0].to_string().contains("use_domain"), "{}", e[0]);
    }

    #[test]
    fn fallback_path_template() {
        let c = DkimSigningConfig::default();
        let k = c.keys_for("example.org");
        assert_eq!(k[0].path, "/var/lib/mxguard/dkim/example.org.dkim.key");
        let c = DkimSigningConfig {
            try_fallback: false,
            ..Default::default()
        };
        assert!(c.keys_for("example.org").is_empty());
    }
}
