//! URL shape (rspamd's URL rules): what a message's links look like, with
//! no lookup anywhere. A link to a bare IP address, through a shortener or
//! a redirect parameter, with a host that mixes alphabets to look like
//! another, with user info before the host, unusually long, on a top-level
//! domain of a configurable list, on IPFS gateways, onion services or in a
//! WordPress tree (where compromised sites keep phishing kits).
//!
//! The URLs are the message model's ([`Mail::urls`](mxguard_message::Mail::urls):
//! text parts and HTML source, each once). At most `max_urls` of them are
//! looked at. Lists that change (shorteners, suspicious TLDs) have a
//! built-in default and may be replaced by a map file, one name a line,
//! reloaded when it changes.

use super::{BuildError, BuildReport, Check, contains_short, find_short};
use crate::Task;
use mxguard_core::config::{Config, Problems, Section};
use mxguard_core::maps::{LineError, MapData, MapFile, MapLimits, logical_lines};
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::Url;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Link shorteners and redirectors that hide where a link goes: the
/// default of `shorteners_map`.
pub const DEFAULT_SHORTENERS: &[&str] = &[
    "bit.ly",
    "bitly.com",
    "bitly.ws",
    "tinyurl.com",
    "t.co",
    "goo.gl",
    "ow.ly",
    "is.gd",
    "v.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
    "rb.gy",
    "t.ly",
    "tiny.cc",
    "tiny.one",
    "lnkd.in",
    "bl.ink",
    "s.id",
    "qr.ae",
    "adf.ly",
    "shorte.st",
    "bc.vc",
    "po.st",
    "x.co",
    "su.pr",
    "tr.im",
    "cli.gs",
    "u.to",
    "clck.ru",
    "urlz.fr",
    "soo.gd",
    "shorturl.com",
    "t2m.io",
    "2no.co",
    "zpr.io",
    "urlzs.com",
    "href.li",
    "tinu.be",
    "n9.cl",
];

/// Free web hosting, storage buckets and tunnels, where anyone can put a
/// login page in a minute and phishing kits live: the default of
/// `free_hosting_map`. Matched against a link's host and registrable domain.
pub const DEFAULT_FREE_HOSTING: &[&str] = &[
    "storage.googleapis.com",
    "firebasestorage.googleapis.com",
    "firebaseapp.com",
    "web.app",
    "s3.amazonaws.com",
    "blob.core.windows.net",
    "web.core.windows.net",
    "azurewebsites.net",
    "r2.dev",
    "pages.dev",
    "workers.dev",
    "glitch.me",
    "netlify.app",
    "vercel.app",
    "herokuapp.com",
    "ngrok.io",
    "ngrok-free.app",
    "ngrok.app",
    "trycloudflare.com",
    "loca.lt",
    "000webhostapp.com",
    "weebly.com",
    "wixsite.com",
    "webflow.io",
    "godaddysites.com",
    "square.site",
    "mystrikingly.com",
    "framer.app",
    "repl.co",
    "replit.app",
    "surge.sh",
    "onrender.com",
    "fly.dev",
    "sites.google.com",
    "forms.gle",
    "canva.site",
    "my.canva.site",
    "dropboxusercontent.com",
    "linodeobjects.com",
    "digitaloceanspaces.com",
    "backblazeb2.com",
];

/// Top-level domains with a large share of abuse in public reports: the
/// default of `suspicious_tlds_map`. A hint, weighted low; a site that
/// lives on one of them lists its domain in a multimap whitelist or
/// replaces the map.
pub const DEFAULT_SUSPICIOUS_TLDS: &[&str] = &[
    "zip",
    "mov",
    "top",
    "click",
    "link",
    "work",
    "gq",
    "ml",
    "cf",
    "tk",
    "ga",
    "kim",
    "country",
    "cricket",
    "science",
    "party",
    "review",
    "loan",
    "win",
    "bid",
    "date",
    "faculty",
    "racing",
    "download",
    "accountant",
    "stream",
    "men",
    "icu",
    "cyou",
    "rest",
    "buzz",
    "monster",
    "sbs",
    "cfd",
    "quest",
    "bond",
    "beauty",
    "hair",
    "skin",
    "autos",
    "boats",
    "yachts",
    "mom",
    "lol",
    "surf",
    "cam",
    "xin",
];

/// Second-level names that registries sell as if they were top-level
/// domains (CentralNic's `sa.com`, `za.com`, `us.com`, ...): cheap,
/// unvetted, and read by people as `.com`. Counted with the suspicious
/// TLDs, for links and for From.
pub const PSEUDO_TLDS: &[&str] = &[
    "sa.com", "za.com", "us.com", "uk.com", "it.com", "br.com", "cn.com", "de.com", "eu.com",
    "gb.com", "jpn.com", "ru.com", "uy.com", "kr.com", "gr.com", "mex.com", "za.net", "in.net",
    "uk.net", "hu.net", "se.net", "jp.net", "ae.org", "com.de",
];

/// The suspicious suffix `host` ends in, if any: its TLD in `tlds`, or
/// one of [`PSEUDO_TLDS`] as its last two labels.
fn suspicious_suffix<'h>(host: &'h str, tlds: &NameSet) -> Option<&'h str> {
    // The last two dots by memrchr (`rsplitn(3, '.')` built a searcher
    // per host and was most of this function's cost).
    let b = host.as_bytes();
    let last_dot = memchr::memrchr(b'.', b);
    let tld = last_dot.map_or(host, |i| &host[i + 1..]);
    if tld.is_empty() {
        return None;
    }
    if tlds.contains(tld) {
        return Some(tld);
    }
    // Needs a name under the pseudo-TLD: `sa.com` itself is a site.
    let dot = memchr::memrchr(b'.', &b[..last_dot?])?;
    let suffix = &host[dot + 1..];
    PSEUDO_TLDS.contains(&suffix).then_some(suffix)
}

/// [`suspicious_suffix`] as it was, with `rsplitn`: the tests' reference.
#[cfg(test)]
fn suspicious_suffix_reference<'h>(host: &'h str, tlds: &NameSet) -> Option<&'h str> {
    let mut labels = host.rsplitn(3, '.');
    let tld = labels.next().filter(|t| !t.is_empty())?;
    if tlds.contains(tld) {
        return Some(tld);
    }
    let second = labels.next()?;
    labels.next()?;
    let suffix = &host[host.len() - tld.len() - second.len() - 1..];
    PSEUDO_TLDS.contains(&suffix).then_some(suffix)
}

/// `[url_shape]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlShapeConfig {
    pub enabled: bool,
    /// URLs looked at per message.
    pub max_urls: usize,
    /// A URL longer than this (bytes, as written) is URL_VERY_LONG.
    pub long_url: usize,
    /// Replaces the built-in shortener list: one host or domain a line.
    pub shorteners_map: Option<PathBuf>,
    /// Replaces the built-in suspicious TLD list: one TLD a line (`top`, `.top`).
    pub suspicious_tlds_map: Option<PathBuf>,
    /// Replaces the built-in list of free hosting and storage services.
    pub free_hosting_map: Option<PathBuf>,
}

impl Default for UrlShapeConfig {
    fn default() -> Self {
        UrlShapeConfig {
            enabled: true,
            max_urls: 256,
            long_url: 1500,
            shorteners_map: None,
            suspicious_tlds_map: None,
            free_hosting_map: None,
        }
    }
}

impl Section for UrlShapeConfig {
    const KEY: &'static str = "url_shape";

    fn validate(&self, problems: &mut Problems) {
        if self.long_url == 0 {
            problems.at("long_url", "must be above 0");
        }
    }
}

/// A set of lower-case names, one a line, a leading dot ignored.
#[derive(Debug, Default)]
pub struct NameSet(super::NameSetOf<String>);

impl NameSet {
    pub fn of(names: &[&str]) -> NameSet {
        NameSet(names.iter().map(|n| n.to_string()).collect())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

impl MapData for NameSet {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut set = super::NameSetOf::default();
        for (line, content) in logical_lines(text) {
            let name = content.trim().trim_start_matches('.').to_ascii_lowercase();
            if name.contains(char::is_whitespace) || name.is_empty() {
                errors.push(LineError {
                    file: path.to_path_buf(),
                    line,
                    message: format!("`{content}`: expected one name, without spaces"),
                });
                continue;
            }
            set.insert(name);
        }
        NameSet(set)
    }
}

/// A list: built in, or a map file that replaces it.
enum List {
    BuiltIn(Arc<NameSet>),
    File(MapFile<NameSet>),
}

impl List {
    fn build(
        path: Option<&PathBuf>,
        default: &[&str],
        key: &str,
        limits: MapLimits,
        report: &mut BuildReport,
    ) -> List {
        let Some(path) = path else {
            return List::BuiltIn(Arc::new(NameSet::of(default)));
        };
        match MapFile::<NameSet>::load(path, limits) {
            Ok((map, errors)) => {
                report.line_errors.extend(errors);
                List::File(map)
            }
            Err(message) => {
                report.errors.push(BuildError {
                    key: format!("url_shape.{key}"),
                    span: None,
                    message,
                });
                List::BuiltIn(Arc::new(NameSet::of(default)))
            }
        }
    }

    fn get(&self) -> Arc<NameSet> {
        match self {
            List::BuiltIn(s) => s.clone(),
            List::File(m) => m.get(),
        }
    }
}

pub struct UrlShape {
    max_urls: usize,
    long_url: usize,
    shorteners: List,
    tlds: List,
    hosting: List,
}

impl UrlShape {
    pub fn new(config: &Config, report: &mut BuildReport) -> UrlShape {
        let c = config.section::<UrlShapeConfig>();
        let limits = MapLimits::of(&config.scan);
        UrlShape {
            max_urls: c.max_urls,
            long_url: c.long_url,
            shorteners: List::build(
                c.shorteners_map.as_ref(),
                DEFAULT_SHORTENERS,
                "shorteners_map",
                limits,
                report,
            ),
            tlds: List::build(
                c.suspicious_tlds_map.as_ref(),
                DEFAULT_SUSPICIOUS_TLDS,
                "suspicious_tlds_map",
                limits,
                report,
            ),
            hosting: List::build(
                c.free_hosting_map.as_ref(),
                DEFAULT_FREE_HOSTING,
                "free_hosting_map",
                limits,
                report,
            ),
        }
    }
}

const GROUP: &str = "url";

impl Check for UrlShape {
    fn name(&self) -> &'static str {
        "url_shape"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let s = |n: &str, w: f64, d: &str| SymbolDef::new(n, w, GROUP, d);
        vec![
            s("HTTP_TO_IP", 1.5, "A link to a bare IP address"),
            s(
                "URL_USER_PASSWORD",
                2.0,
                "A link with user info before the host (bank.example@evil.example)",
            ),
            s(
                "REDIRECTOR_URL",
                1.0,
                "A link through a known shortener or redirector",
            ),
            s(
                "URL_REDIRECTOR_NESTED",
                1.0,
                "A link whose query carries another URL, twice or more (a redirect chain)",
            ),
            s(
                "OMOGRAPH_URL",
                5.0,
                "A host label that mixes alphabets, or is written in look-alike letters",
            ),
            s(
                "PUNYCODE_URL",
                0.5,
                "A link to an internationalised (xn--) host",
            ),
            s("URL_VERY_LONG", 0.5, "A very long link"),
            s(
                "URL_UNKNOWN_TLD",
                1.0,
                "A link to a host under a top-level domain that does not exist",
            ),
            s(
                "URL_SUSPICIOUS_TLD",
                1.0,
                "A link on a top-level domain of the suspicious list",
            ),
            s(
                "URL_FREE_HOSTING",
                1.0,
                "A link to free web hosting, a storage bucket or a tunnel",
            ),
            s(
                "URL_FREE_HOSTING_PAGE",
                2.0,
                "A link to a web page (.html, .htm, .php) kept on free hosting or in a storage bucket",
            ),
            s(
                "FROM_FREE_HOSTING",
                2.0,
                "From's address is at a free hosting or app platform's subdomain",
            ),
            s(
                "FROM_SUSPICIOUS_TLD",
                1.5,
                "From's domain is on a top-level domain of the suspicious list, or under a registry's pseudo-TLD (sa.com, za.com, ...)",
            ),
            s("HAS_ONION_URI", 1.0, "A link to a Tor onion service"),
            s(
                "HAS_IPFS_GATEWAY_URL",
                4.0,
                "A link to content on IPFS through a web gateway",
            ),
            s(
                "HAS_WP_URI",
                0.5,
                "A link into a WordPress tree (wp-content, wp-admin, wp-includes)",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        let hosting = self.hosting.get();
        let tlds = self.tlds.get();
        // Mail from a project's subdomain of an app platform
        // (`noreply@promo-1f2e3.firebaseapp.com`): anyone sends so in a
        // minute, with no domain of their own to lose.
        // (mail-parser's header accessors index the first part: none
        // when the message was not parsed.)
        if !task.message.parts.is_empty()
            && let Some(domain) = task
                .message
                .from()
                .and_then(|f| f.iter().filter_map(|a| a.address()).next_back())
                .and_then(|a| a.rsplit_once('@'))
                .map(|(_, d)| d.trim().trim_end_matches('.').to_ascii_lowercase())
        {
            if parents(&domain).any(|p| hosting.contains(p)) {
                results.insert(
                    "FROM_FREE_HOSTING",
                    vec![domain.chars().take(100).collect()],
                );
            }
            // A sender on a throw-away name: the same hint as a link
            // there, worth a little more since it is the sender itself.
            if let Some(suffix) = suspicious_suffix(&domain, &tlds) {
                results.insert("FROM_SUSPICIOUS_TLD", vec![suffix.to_string()]);
            }
        }
        let urls = task.urls();
        if urls.is_empty() {
            return;
        }
        let shorteners = self.shorteners.get();
        for url in urls.iter().take(self.max_urls) {
            self.one(url, &shorteners, &tlds, results);
            if hosting.contains(&url.host) || hosting.contains(&url.domain) || {
                // A bucket's host: `name.s3.eu-north-1.amazonaws.com`.
                url.domain == "amazonaws.com" && contains_short(&url.host, ".s3.")
            } {
                let host: String = url.host.chars().take(100).collect();
                match path_extension(&url.url) {
                    Some(e)
                        if ["html", "htm", "shtml", "php"]
                            .iter()
                            .any(|p| e.eq_ignore_ascii_case(p)) =>
                    {
                        results.insert("URL_FREE_HOSTING_PAGE", vec![host]);
                    }
                    // Images and style sheets of a newsletter kept in a
                    // bucket say nothing.
                    Some(e)
                        if [
                            "png", "jpg", "jpeg", "gif", "webp", "svg", "css", "js", "ico",
                        ]
                        .iter()
                        .any(|p| e.eq_ignore_ascii_case(p)) => {}
                    _ => results.insert("URL_FREE_HOSTING", vec![host]),
                }
            }
        }
    }
}

impl UrlShape {
    fn one(&self, url: &Url, shorteners: &NameSet, tlds: &NameSet, results: &mut ScanResults) {
        let host = url.host.as_str();
        let opt = || vec![host.chars().take(100).collect::<String>()];
        if host.parse::<std::net::IpAddr>().is_ok() {
            results.insert("HTTP_TO_IP", opt());
        }
        if url.userinfo {
            results.insert("URL_USER_PASSWORD", opt());
        }
        if shorteners.contains(host) || shorteners.contains(&url.domain) {
            results.insert("REDIRECTOR_URL", opt());
        }
        if url.url.len() > 20 && embedded_urls(&url.url) >= 2 {
            results.insert("URL_REDIRECTOR_NESTED", opt());
        }
        if url.url.len() > self.long_url {
            results.insert("URL_VERY_LONG", vec![url.url.len().to_string()]);
        }
        let tld = host.rsplit('.').next().unwrap_or("");
        if let Some(suffix) = suspicious_suffix(host, tlds) {
            results.insert("URL_SUSPICIOUS_TLD", vec![suffix.to_string()]);
        }
        // Only a link with a scheme in HTML: a bare `www.` in text is often
        // a typo or a line cut in two.
        if url.in_html && contains_short(&url.url, "://") && tld != "onion" && has_unknown_tld(host)
        {
            results.insert("URL_UNKNOWN_TLD", opt());
        }
        if tld == "onion" {
            results.insert("HAS_ONION_URI", opt());
        }
        // Gateways and WordPress write these paths in lower case.
        let (ipfs, wp) = paths(url.url.as_bytes());
        if ipfs || contains_short(host, ".ipfs.") || contains_short(host, ".ipns.") {
            results.insert("HAS_IPFS_GATEWAY_URL", opt());
        }
        if wp {
            results.insert("HAS_WP_URI", opt());
        }
        let puny = contains_short(host, "xn--");
        let mut omograph = false;
        if puny || !host.is_ascii() {
            let tld_is_latin = tld.is_ascii() && !tld.starts_with("xn--");
            for label in host.split('.').take(32) {
                let decoded;
                let text = match label.strip_prefix("xn--") {
                    Some(code) => match punycode_decode(code) {
                        Some(d) => {
                            decoded = d;
                            decoded.as_str()
                        }
                        None => continue,
                    },
                    None => label,
                };
                if !text.is_ascii() && is_homograph(text, tld_is_latin) {
                    omograph = true;
                }
            }
        }
        if puny || !host.is_ascii() {
            results.insert("PUNYCODE_URL", opt());
        }
        if omograph {
            results.insert("OMOGRAPH_URL", opt());
        }
    }
}

/// The domains above `domain`, nearest first (`a.b.example` → `b.example`,
/// `example`).
fn parents(domain: &str) -> impl Iterator<Item = &str> {
    domain
        .match_indices('.')
        .take(16)
        .map(|(i, _)| &domain[i + 1..])
}

/// Whether the URL has an IPFS gateway path (`/ipfs/`, `/ipns/`) and a
/// WordPress one (`/wp-content/`, `/wp-admin/`, `/wp-includes/`): one pass
/// over its slashes.
fn paths(u: &[u8]) -> (bool, bool) {
    let (mut ipfs, mut wp) = (false, false);
    for p in memchr::memchr_iter(b'/', u) {
        let t = &u[p..];
        ipfs |= t.starts_with(b"/ipfs/") || t.starts_with(b"/ipns/");
        wp |= t.starts_with(b"/wp-content/")
            || t.starts_with(b"/wp-admin/")
            || t.starts_with(b"/wp-includes/");
    }
    (ipfs, wp)
}

/// The extension of the last segment of the URL's path (before any query
/// or fragment), when it has one.
fn path_extension(url: &str) -> Option<&str> {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let (_, path) = after_scheme.split_once('/')?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    last.rsplit_once('.').map(|(_, e)| e)
}

/// A dotted name (not an IP address) whose last label is no top-level
/// domain of the public suffix list: `x.drekam.givest`. A single-label
/// intranet host says nothing and is left alone.
fn has_unknown_tld(host: &str) -> bool {
    host.contains('.')
        && host.parse::<std::net::IpAddr>().is_err()
        && !psl::suffix(host.as_bytes()).is_some_and(|s| s.is_known())
}

/// How many URLs are written inside this one's path or query (`?u=https://`,
/// `%3A%2F%2F`), each one more hop of a redirect.
fn embedded_urls(url: &str) -> usize {
    let b = url.as_bytes();
    let after_host = find_short(url, "://").map_or(0, |p| p + 3).min(b.len());
    let rest = &b[after_host..];
    memchr::memchr2_iter(b':', b'%', rest)
        .filter(|&p| {
            let tail = &rest[p..];
            tail.starts_with(b"://")
                || tail
                    .get(..9)
                    .is_some_and(|t| t.eq_ignore_ascii_case(b"%3A%2F%2F"))
        })
        .count()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Cyrillic,
    Greek,
    Other,
}

fn script_of(c: char) -> Option<Script> {
    let n = c as u32;
    if c.is_ascii_alphabetic() || (0xC0..=0x24F).contains(&n) || (0x1E00..=0x1EFF).contains(&n) {
        Some(Script::Latin)
    } else if (0x400..=0x52F).contains(&n) {
        Some(Script::Cyrillic)
    } else if (0x370..=0x3FF).contains(&n) {
        Some(Script::Greek)
    } else if c.is_alphabetic() {
        Some(Script::Other)
    } else {
        None
    }
}

/// Cyrillic and Greek letters drawn like Latin ones.
const LOOKALIKES: &str = "аеорсухіјѕһԁԛԝӏвкмнтАЕОРСУХІЈЅВКМНТαορτυνικεΑΒΕΖΗΙΚΜΝΟΡΤΥΧ";

/// A label that mixes Latin with Cyrillic or Greek letters, or one written
/// only in Cyrillic or Greek look-alikes of Latin letters under a Latin
/// top-level domain (`аррӏе.com`).
fn is_homograph(label: &str, tld_is_latin: bool) -> bool {
    let mut seen = [false; 4];
    let mut all_lookalike = true;
    let mut letters = 0;
    for c in label.chars() {
        let Some(s) = script_of(c) else {
            continue;
        };
        letters += 1;
        seen[s as usize] = true;
        if !LOOKALIKES.contains(c) {
            all_lookalike = false;
        }
    }
    let (latin, cyrillic, greek) = (seen[0], seen[1], seen[2]);
    let mixed = (latin && (cyrillic || greek)) || (cyrillic && greek);
    let whole = tld_is_latin && letters > 0 && !latin && (cyrillic || greek) && all_lookalike;
    mixed || whole
}

/// Decodes a punycode label (RFC 3492, without the `xn--`); `None` when it
/// is not valid punycode or longer than a DNS label may be.
pub fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;
    if input.len() > 63 || !input.is_ascii() {
        return None;
    }
    let (basic, extended) = match input.rfind('-') {
        Some(p) => (&input[..p], &input[p + 1..]),
        None => ("", input),
    };
    let mut out: Vec<char> = basic.chars().collect();
    let (mut n, mut i, mut bias) = (128u32, 0u32, 72u32);
    let digits = extended.as_bytes();
    let mut pos = 0;
    while pos < digits.len() {
        let old_i = i;
        let mut w = 1u32;
        let mut k = BASE;
        loop {
            let c = *digits.get(pos)?;
            pos += 1;
            let digit = match c {
                b'a'..=b'z' => c - b'a',
                b'A'..=b'Z' => c - b'A',
                b'0'..=b'9' => c - b'0' + 26,
                _ => return None,
            } as u32;
            i = i.checked_add(digit.checked_mul(w)?)?;
            let t = if k <= bias {
                TMIN
            } else if k >= bias + TMAX {
                TMAX
            } else {
                k - bias
            };
            if digit < t {
                break;
            }
            w = w.checked_mul(BASE - t)?;
            k += BASE;
        }
        let len = out.len() as u32 + 1;
        // Adapt the bias.
        let mut delta = if old_i == 0 {
            (i - old_i) / DAMP
        } else {
            (i - old_i) / 2
        };
        delta += delta / len;
        let mut kk = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            kk += BASE;
        }
        bias = kk + (BASE - TMIN + 1) * delta / (delta + SKEW);
        n = n.checked_add(i / len)?;
        i %= len;
        out.insert(i as usize, char::from_u32(n)?);
        i += 1;
        if out.len() > 63 {
            return None;
        }
    }
    Some(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;
    use proptest::prelude::*;

    fn names_with(config: Config, body: &str) -> Vec<String> {
        let raw = format!("From: a@example.com\r\nContent-Type: text/plain\r\n\r\n{body}\r\n");
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 30);
        let mut report = BuildReport::default();
        let check = UrlShape::new(&config, &mut report);
        assert!(report.errors.is_empty());
        let mut r = ScanResults::default();
        check.run(&task, &mut r);
        r.hits.iter().map(|h| h.name.clone()).collect()
    }

    fn names(body: &str) -> Vec<String> {
        names_with(Config::default(), body)
    }

    #[test]
    fn ordinary_links_have_none() {
        assert!(
            names("see https://www.example.com/a?b=1 and www.example.org/x and http://münchen.example.de/ http://intranet/ https://shop.example.co.uk/")
                .iter()
                .all(|n| n == "PUNYCODE_URL")
        );
        assert!(names("https://news.example.com/track?u=https://shop.example.com/").is_empty());
        assert!(
            names("https://b.s3.amazonaws.com/logo.png https://x.cloudfront.net/a.html").is_empty()
        );
    }

    #[test]
    fn each_shape_has_its_symbol() {
        for (body, want) in [
            ("http://192.0.2.7/login", "HTTP_TO_IP"),
            ("https://bank.example@evil.example/", "URL_USER_PASSWORD"),
            ("https://bit.ly/3abc", "REDIRECTOR_URL"),
            (
                "https://r.example/?u=https%3A%2F%2Fa.example%2F%3Fnext%3Dhttps://b.example/",
                "URL_REDIRECTOR_NESTED",
            ),
            ("https://xn--pple-43d.com/", "OMOGRAPH_URL"),
            ("https://xn--80ak6aa92e.com/", "OMOGRAPH_URL"),
            ("https://login.example.top/", "URL_SUSPICIOUS_TLD"),
            ("https://quibusdam.sa.com/x", "URL_SUSPICIOUS_TLD"),
            ("http://abcdefghij.onion/", "HAS_ONION_URI"),
            (
                "https://ipfs.io/ipfs/QmXyz/index.html",
                "HAS_IPFS_GATEWAY_URL",
            ),
            ("https://bafybei.ipfs.dweb.link/", "HAS_IPFS_GATEWAY_URL"),
            (
                "https://shop.example/wp-content/plugins/x/login.php",
                "HAS_WP_URI",
            ),
        ] {
            let got = names(body);
            assert!(got.contains(&want.to_string()), "{body}: {got:?}");
        }
        let raw = "From: a@example.com\r\nContent-Type: text/html\r\n\r\n\
            <a href=\"http://tpwstm.drekam.givest/x\">x</a> www.typo.comx\r\n";
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 30);
        let mut r = ScanResults::default();
        UrlShape::new(&Config::default(), &mut BuildReport::default()).run(&task, &mut r);
        assert_eq!(r.hits.len(), 1);
        assert_eq!(r.hits[0].name, "URL_UNKNOWN_TLD");
        assert_eq!(r.hits[0].options, ["tpwstm.drekam.givest"]);
        let long = format!("https://a.example.com/{}", "x".repeat(1600));
        assert_eq!(names(&long), ["URL_VERY_LONG"]);
    }

    #[test]
    fn senders_on_app_platforms() {
        let config = Config::default().with_section(UrlShapeConfig::default());
        let mut report = BuildReport::default();
        let check = UrlShape::new(&config, &mut report);
        for (from, hit) in [
            ("noreply@promo-1f2e3.firebaseapp.com", true),
            ("Bonus <a@x.y.web.app>", true),
            ("news@firebaseapp.com", false),
            ("a@example.com", false),
        ] {
            let raw = format!("From: {from}\r\n\r\nhello\r\n");
            let env = mxguard_core::Envelope::default();
            let task = Task::new(&env, raw.as_bytes(), 1 << 20);
            let mut r = ScanResults::default();
            check.run(&task, &mut r);
            assert_eq!(r.has("FROM_FREE_HOSTING"), hit, "{from}");
        }
    }

    #[test]
    fn senders_on_suspicious_tlds() {
        let check = UrlShape::new(&Config::default(), &mut BuildReport::default());
        for (from, hit) in [
            ("Offers <lina_45139@offers4u.sa.com>", Some("sa.com")),
            ("a@mail.shop.click.", Some("click")),
            ("a@b.TOP", Some("top")),
            // The registry's own site, and ordinary names.
            ("info@sa.com", None),
            ("a@example.com", None),
            ("a@example.co.za", None),
            ("a@example.de", None),
        ] {
            let raw = format!("From: {from}\r\n\r\nhello\r\n");
            let env = mxguard_core::Envelope::default();
            let task = Task::new(&env, raw.as_bytes(), 1 << 20);
            let mut r = ScanResults::default();
            check.run(&task, &mut r);
            let got = r
                .hits
                .iter()
                .find(|h| h.name == "FROM_SUSPICIOUS_TLD")
                .map(|h| h.options[0].clone());
            assert_eq!(got.as_deref(), hit, "{from}");
        }
    }

    /// Every string of up to 7 pieces over labels that are and are not
    /// listed, dots and non-ASCII, as the `rsplitn` version answered.
    #[test]
    fn suspicious_suffix_matches_the_reference() {
        let tlds = NameSet::of(DEFAULT_SUSPICIOUS_TLDS);
        let pieces = [".", "top", "za", "com", "x", "\u{e9}", "sa"];
        let mut hosts = vec![String::new()];
        for _ in 0..7 {
            let longer: Vec<String> = hosts
                .iter()
                .flat_map(|h| pieces.iter().map(move |p| format!("{h}{p}")))
                .collect();
            for h in &longer {
                assert_eq!(
                    suspicious_suffix(h, &tlds),
                    suspicious_suffix_reference(h, &tlds),
                    "{h}"
                );
            }
            hosts = longer;
        }
    }

    #[test]
    fn suspicious_suffixes() {
        let tlds = NameSet::of(DEFAULT_SUSPICIOUS_TLDS);
        assert_eq!(suspicious_suffix("a.b.top", &tlds), Some("top"));
        assert_eq!(suspicious_suffix("x.za.com", &tlds), Some("za.com"));
        assert_eq!(suspicious_suffix("za.com", &tlds), None);
        assert_eq!(suspicious_suffix("pizza.com", &tlds), None);
        assert_eq!(suspicious_suffix("x.pizza.com", &tlds), None);
        assert_eq!(suspicious_suffix("", &tlds), None);
        assert_eq!(suspicious_suffix(".", &tlds), None);
        assert_eq!(suspicious_suffix("com", &tlds), None);
    }

    #[test]
    fn punycode_decodes() {
        assert_eq!(punycode_decode("bcher-kva").as_deref(), Some("bücher"));
        assert_eq!(punycode_decode("mnchen-3ya").as_deref(), Some("münchen"));
        assert_eq!(punycode_decode("80ak6aa92e").as_deref(), Some("аррӏе"));
        assert_eq!(punycode_decode("pple-43d").as_deref(), Some("аpple"));
        assert_eq!(punycode_decode("!!"), None);
        assert!(!is_homograph("bücher", true));
        assert!(
            !is_homograph("пример", true),
            "real Russian words are not look-alikes"
        );
        assert!(is_homograph("аррӏе", true));
        assert!(!is_homograph("аррӏе", false), "under a Cyrillic TLD");
    }

    #[test]
    fn a_map_replaces_a_built_in_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.map");
        std::fs::write(&path, "# mine\nsho.rt.com\n.link.example.net\nbad line\n").unwrap();
        let config = Config::default().with_section(UrlShapeConfig {
            shorteners_map: Some(path.clone()),
            ..UrlShapeConfig::default()
        });
        assert_eq!(
            names_with(config.clone(), "https://sho.rt.com/x"),
            ["REDIRECTOR_URL"]
        );
        assert!(names_with(config.clone(), "https://bit.ly/x").is_empty());
        assert_eq!(
            names_with(config.clone(), "https://link.example.net/x"),
            ["REDIRECTOR_URL"]
        );
        let mut report = BuildReport::default();
        let _ = UrlShape::new(&config, &mut report);
        assert_eq!(report.line_errors.len(), 1);
        assert_eq!(report.line_errors[0].line, 4);

        let missing = Config::default().with_section(UrlShapeConfig {
            suspicious_tlds_map: Some(dir.path().join("nope")),
            ..UrlShapeConfig::default()
        });
        let mut report = BuildReport::default();
        let _ = UrlShape::new(&missing, &mut report);
        assert_eq!(report.errors[0].key, "url_shape.suspicious_tlds_map");
    }

    proptest! {
        #[test]
        fn punycode_never_panics(s in "[a-z0-9-]{0,70}") {
            let _ = punycode_decode(&s);
        }

        #[test]
        fn any_text_never_panics(s in "(https?://|www\\.|xn--|[a-zа-я0-9.@%:/?=-]){0,60}") {
            let _ = names(&s);
        }
    }
}
