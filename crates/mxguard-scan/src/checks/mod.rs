//! The checks, one module each. A module holds its config section (a serde
//! struct implementing [`Section`](mxguard_core::config::Section)), its symbols with their default
//! weights, its code and its tests. Adding a check means a new module here,
//! one line in [`register`] for its section and one in [`build_checks`].
//!
//! A check is cheap CPU work by default: [`Check::run`] is called inline,
//! in pipeline order, with no thread hop. A check that waits (DNS, store,
//! clamd) also implements [`Waiting`] and returns it from
//! [`Check::waiting`]; see [`waiting`] for its life in a scan. What a check
//! may use besides the message comes in [`Services`] when it is built.

pub mod address_greeting;
pub mod antivirus;
pub mod arc;
pub mod bayes;
pub mod body_anomalies;
pub mod borrowed_hosting;
pub mod brand_logo;
pub mod dkim;
pub mod dmarc;
pub mod gtube;
pub mod hash_busters;
pub mod header_anomalies;
pub mod headers;
pub mod hfilter;
pub mod html_rules;
pub mod impersonation;
pub mod kit_headers;
pub mod lures;
pub mod mime_limits;
pub mod mime_types;
pub mod multimap;
pub mod phishing;
pub mod placeholder_text;
pub mod rbl;
pub mod received_hops;
pub mod reply_diversion;
pub mod risky_offers;
pub mod rules;
pub mod spf;
pub mod url_shape;
pub mod waiting;

use crate::Task;
use crate::services::Services;
use mxguard_auth::config::{ArcVerifyConfig, DkimConfig, DmarcConfig, SpfConfig};
use mxguard_core::config::{Config, Registry};
use mxguard_core::maps::LineError;
use mxguard_core::{Envelope, ScanResults, SmtpStage, SymbolDef};

pub use waiting::{BoxFuture, Output, Outputs, Value, Waiting};

/// One family of tests over a message.
pub trait Check: Send + Sync {
    /// Short name for logs, e.g. `multimap`.
    fn name(&self) -> &'static str;

    /// Every symbol this check can emit, with default weights.
    fn symbols(&self) -> Vec<SymbolDef>;

    /// Runs before the other checks; a forced action here skips them.
    fn prefilter(&self, _task: &Task<'_>, _results: &mut ScanResults) {}

    /// The main test, inline: cheap CPU work only (a check that waits does
    /// that in [`Check::waiting`]).
    fn run(&self, _task: &Task<'_>, _results: &mut ScanResults) {}

    /// A test on the envelope alone, at an SMTP stage before DATA, so the
    /// milter can answer early. Only forced actions matter here.
    fn early(&self, _stage: SmtpStage, _envelope: &Envelope, _results: &mut ScanResults) {}

    /// Whether [`Check::early`] can act at `stage` with this config. A
    /// front end need not even wait for its peer at a stage where no check
    /// acts (the milter then asks Postfix for no reply there: one round
    /// trip fewer per stage and message).
    fn acts_early_at(&self, _stage: SmtpStage) -> bool {
        false
    }

    /// The part of the check that waits, run after every inline check.
    fn waiting(&self) -> Option<&dyn Waiting> {
        None
    }
}

/// A check failed to build: the config names a file that cannot be read.
#[derive(Debug, Clone)]
pub struct BuildError {
    /// Config key path, e.g. `multimap[0].map`.
    pub key: String,
    /// Where the value sits in the config file, when known.
    pub span: Option<std::ops::Range<usize>>,
    pub message: String,
}

/// Everything a check's constructor may report.
#[derive(Default)]
pub struct BuildReport {
    pub errors: Vec<BuildError>,
    pub line_errors: Vec<LineError>,
}

/// Adds every check's config section to `registry`, so the loader reads
/// and validates them with the rest of the file. The authentication
/// sections are `mxguard-auth`'s: the scan reads `[auth]`, `[spf]`,
/// `[dkim]`, `[dmarc]`, `[arc_verify]`, the signing service `[dkim_signing]`
/// and `[arc]`, the DMARC check `[dmarc_reporting]`.
pub fn register(registry: Registry) -> Registry {
    mxguard_auth::config::register(registry)
        .with::<gtube::GtubeConfig>()
        .with::<headers::HeaderChecksConfig>()
        .with::<header_anomalies::HeaderAnomaliesConfig>()
        .with::<hfilter::HfilterConfig>()
        .with::<html_rules::HtmlRulesConfig>()
        .with::<url_shape::UrlShapeConfig>()
        .with::<mime_types::MimeTypesConfig>()
        .with::<rules::RuleList>()
        .with::<rules::RuleTableList>()
        .with::<multimap::MultimapList>()
        .with::<bayes::ClassifierConfig>()
        .with::<phishing::PhishingConfig>()
        .with::<impersonation::ImpersonationConfig>()
        .with::<lures::LuresConfig>()
        .with::<borrowed_hosting::BorrowedHostingConfig>()
        .with::<hash_busters::HashBustersConfig>()
        .with::<risky_offers::RiskyOffersConfig>()
        .with::<address_greeting::AddressGreetingConfig>()
        .with::<kit_headers::KitHeadersConfig>()
        .with::<reply_diversion::ReplyDiversionConfig>()
        .with::<brand_logo::BrandLogoConfig>()
        .with::<placeholder_text::PlaceholderTextConfig>()
        .with::<rbl::RblConfig>()
        .with::<antivirus::AntivirusConfig>()
}

/// Every section the scan reads besides core's: what a program that
/// builds a [`Pipeline`](crate::Pipeline) loads its config with.
pub fn sections() -> Registry {
    register(Registry::new())
}

/// Builds every enabled check from the config, in pipeline order.
pub fn build_checks(
    config: &Config,
    services: &Services,
    report: &mut BuildReport,
) -> Vec<Box<dyn Check>> {
    let mut checks: Vec<Box<dyn Check>> = Vec::new();
    if config.section::<gtube::GtubeConfig>().enabled {
        checks.push(Box::new(gtube::Gtube));
    }
    checks.push(Box::new(multimap::Multimap::new(config, report)));
    checks.push(Box::new(rules::Rules::new(config, report)));
    let headers = config.section::<headers::HeaderChecksConfig>();
    if headers.enabled {
        checks.push(Box::new(headers::HeaderSanity::new(headers)));
    }
    checks.push(Box::new(mime_limits::MimeLimits));
    let anomalies = config.section::<header_anomalies::HeaderAnomaliesConfig>();
    if anomalies.enabled {
        checks.push(Box::new(header_anomalies::HeaderAnomalies::new(
            anomalies,
            services.clock.clone(),
        )));
    }
    let hfilter = config.section::<hfilter::HfilterConfig>();
    if hfilter.enabled {
        checks.push(Box::new(hfilter::Hfilter::new(hfilter)));
    }
    checks.push(Box::new(received_hops::ReceivedHops));
    checks.push(Box::new(body_anomalies::BodyAnomalies));
    let mime_types = config.section::<mime_types::MimeTypesConfig>();
    if mime_types.enabled {
        checks.push(Box::new(mime_types::MimeTypes::new(mime_types)));
    }
    let html = config.section::<html_rules::HtmlRulesConfig>();
    if html.enabled {
        checks.push(Box::new(html_rules::HtmlRules::new(html)));
    }
    if config.section::<url_shape::UrlShapeConfig>().enabled {
        checks.push(Box::new(url_shape::UrlShape::new(config, report)));
    }
    if config
        .section::<borrowed_hosting::BorrowedHostingConfig>()
        .enabled
    {
        checks.push(Box::new(borrowed_hosting::BorrowedHosting));
    }
    if config.section::<hash_busters::HashBustersConfig>().enabled {
        checks.push(Box::new(hash_busters::HashBusters));
    }
    if config.section::<risky_offers::RiskyOffersConfig>().enabled {
        checks.push(Box::new(risky_offers::RiskyOffers));
    }
    if config.section::<phishing::PhishingConfig>().enabled {
        checks.push(Box::new(phishing::Phishing::new(config, services, report)));
    }
    let impersonation = config.section::<impersonation::ImpersonationConfig>();
    if impersonation.enabled {
        checks.push(Box::new(impersonation::Impersonation::new(impersonation)));
    }
    if config.section::<lures::LuresConfig>().enabled {
        checks.push(Box::new(lures::Lures));
    }
    if config
        .section::<address_greeting::AddressGreetingConfig>()
        .enabled
    {
        checks.push(Box::new(address_greeting::AddressGreeting));
    }
    if config.section::<kit_headers::KitHeadersConfig>().enabled {
        checks.push(Box::new(kit_headers::KitHeaders));
    }
    if config
        .section::<reply_diversion::ReplyDiversionConfig>()
        .enabled
    {
        checks.push(Box::new(reply_diversion::ReplyDiversion));
    }
    if config.section::<brand_logo::BrandLogoConfig>().enabled {
        checks.push(Box::new(brand_logo::BrandLogo::new(config)));
    }
    if config
        .section::<placeholder_text::PlaceholderTextConfig>()
        .enabled
    {
        checks.push(Box::new(placeholder_text::PlaceholderText));
    }
    // The authentication checks wait on DNS: without a resolver (`config
    // check`, `mxguard scan` without DNS) they are not built at all.
    if let Some(dns) = &services.resolver {
        let verifier = mxguard_auth::Verifier::new(dns);
        if config.section::<SpfConfig>().enabled {
            checks.push(Box::new(spf::Spf::new(config, verifier.clone())));
        }
        if config.section::<DkimConfig>().enabled {
            checks.push(Box::new(dkim::Dkim::new(config, verifier.clone())));
        }
        if config.section::<ArcVerifyConfig>().enabled {
            checks.push(Box::new(arc::Arc::new(config, verifier.clone())));
        }
        if config.section::<DmarcConfig>().enabled {
            checks.push(Box::new(dmarc::Dmarc::new(config, verifier, services)));
        }
        if config.section::<rbl::RblConfig>().needs_dns() {
            checks.push(Box::new(rbl::Rbl::new(config, dns.clone(), report)));
        }
    }
    if let Some(av) = antivirus::Antivirus::new(config, services.store.clone(), report) {
        checks.push(Box::new(av));
    }
    let classifier = config.section::<bayes::ClassifierConfig>();
    if classifier.enabled {
        checks.push(Box::new(bayes::Bayes::new(
            classifier,
            services.classifier.clone(),
        )));
    }
    checks
}

/// Whether `needle` (a short, non-empty literal) occurs in `hay`.
///
/// `str::contains` with a `&str` builds a two-way searcher on every call,
/// a few hundred instructions before the first byte is read; on host names
/// and URLs, looked at by the thousand per message, that was most of the
/// cost. Here the first byte is found with `memchr` and the rest compared
/// in place.
pub(crate) fn contains_short(hay: &str, needle: &str) -> bool {
    find_short(hay, needle).is_some()
}

/// Where `needle` (a short literal) first occurs in `hay`: `str::find`
/// without building a searcher ([`contains_short`]).
pub(crate) fn find_short(hay: &str, needle: &str) -> Option<usize> {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, hay).find(|&p| hay[p..].starts_with(needle))
}

#[cfg(test)]
mod contains_short_tests {
    use super::{contains_short, find_short};

    #[test]
    fn agrees_with_str_contains() {
        for hay in [
            "",
            "a",
            "x.s3.amazonaws.com",
            "xn--80ak6aa92e.com",
            "a://b",
            ":/:/://",
            "..s3..s3.",
        ] {
            for needle in [".s3.", "://", "xn--", "&#", "a", ""] {
                assert_eq!(
                    contains_short(hay, needle),
                    hay.contains(needle),
                    "{hay:?} {needle:?}"
                );
                assert_eq!(
                    find_short(hay, needle),
                    hay.find(needle),
                    "{hay:?} {needle:?}"
                );
            }
        }
    }
}

/// A hash set of names built from constants or configuration and looked
/// up with words and hosts of the message ([`NameHasher`]).
pub(crate) type NameSetOf<T> =
    std::collections::HashSet<T, std::hash::BuildHasherDefault<NameHasher>>;

/// The hasher of [`NameSetOf`]: a multiply and rotate per 8 bytes
/// (FxHash's step) instead of SipHash's rounds, which were most of the
/// cost of the ~30 lookups a message makes in url_shape's and
/// impersonation's name sets. It is not keyed: fine for sets a message
/// can only look up in, never add to (a message that makes lookups
/// collide only walks a longer probe of a fixed table); not for sets
/// keyed by the message's own text.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl NameHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length in the top byte: "a" and "a\0" differ.
            self.add(u64::from_le_bytes(last) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and a tag from the
        // top 7: fold the well-mixed high half into the low one.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod name_set_tests {
    use super::NameSetOf;

    #[test]
    fn a_name_set_finds_what_it_holds_and_nothing_else() {
        let names: Vec<String> = (0..2000).map(|i| format!("name{i}.example")).collect();
        let set: NameSetOf<String> = names.iter().cloned().collect();
        assert!(names.iter().all(|n| set.contains(n.as_str())));
        for miss in [
            "",
            "a",
            "a\0",
            "name2000.example",
            "Name1.example",
            "name1.exampl",
        ] {
            assert!(!set.contains(miss), "{miss:?}");
        }
    }
}
