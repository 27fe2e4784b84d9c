//! Brand impersonation: a From display name that names a brand people
//! trust with their money or logins ("PayPal", "Microsoft account team",
//! "МеtaМask") while the address is at a domain that is not the brand's.
//!
//! Since DMARC, a brand mails from its own domain (or a subdomain of it):
//! its name beside someone else's domain is how a lure borrows trust a
//! reader gives without looking at the address. The name is compared as a
//! reader sees it ([`mxguard_message::fold::skeleton`]: look-alike,
//! styled and accented letters folded, invisible marks dropped), word by
//! word, so "Trust Wallet", "TrustWallet" and "Trust-Wallet" are one name
//! and "Chaser" is not "Chase". The address passes when its domain
//! contains one of the brand's tokens (`paypal`, `microsoft`, `outlook`,
//! …): a brand's mailing subdomains and sister domains pass without a
//! list of every one of them.
//!
//! The built-in list ([`BRANDS`]) holds brands that phishing reports name
//! most, and only names that are not also common words or given names
//! (no "Chase", "Orange", "UPS", "Target"). `[impersonation] brands` adds
//! an organisation's own names, `trusted_domains` excuses a sender domain
//! (a reseller, a payment provider that mails for a brand).

use super::Check;
use crate::Task;
use mxguard_core::config::{Problems, Section};
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::domain::organisational;
use mxguard_message::fold::skeleton;
use serde::{Deserialize, Serialize};

/// A brand: the words of its name (folded, lowercase) and the tokens one
/// of which its sending domains contain.
pub struct Brand {
    pub name: &'static str,
    pub tokens: &'static [&'static str],
}

const fn b(name: &'static str, tokens: &'static [&'static str]) -> Brand {
    Brand { name, tokens }
}

/// Brands phishing borrows most (public phishing reports: payment,
/// banking, crypto wallets, mail and cloud accounts, parcel carriers,
/// shops, streaming, tax offices). Names of two words match written
/// together or hyphenated too.
pub const BRANDS: &[Brand] = &[
    // Payment, banking, crypto.
    b("paypal", &["paypal"]),
    b("venmo", &["venmo"]),
    b("zelle", &["zelle", "zellepay"]),
    b("cash app", &["cash", "square"]),
    b("revolut", &["revolut"]),
    b("wells fargo", &["wellsfargo", "wf"]),
    b("bank of america", &["bankofamerica", "bofa"]),
    b("citibank", &["citi", "citibank"]),
    b("hsbc", &["hsbc"]),
    b("santander", &["santander"]),
    b("barclays", &["barclays"]),
    b("lloyds", &["lloyds"]),
    b("natwest", &["natwest"]),
    b("bradesco", &["bradesco"]),
    b("itau", &["itau"]),
    b("banco do brasil", &["bb", "bancodobrasil"]),
    b("caixa", &["caixa"]),
    b("nubank", &["nubank", "nu"]),
    b("sparkasse", &["sparkasse"]),
    b("volksbank", &["volksbank", "vr"]),
    b("commerzbank", &["commerzbank"]),
    b("deutsche bank", &["deutsche-bank", "deutschebank", "db"]),
    b("postbank", &["postbank"]),
    b("rabobank", &["rabobank"]),
    b("abn amro", &["abnamro"]),
    b("american express", &["americanexpress", "amex", "aexp"]),
    b("mastercard", &["mastercard"]),
    b("capital one", &["capitalone"]),
    b("coinbase", &["coinbase"]),
    b("binance", &["binance"]),
    b("metamask", &["metamask", "consensys"]),
    b("trust wallet", &["trustwallet"]),
    b("ledger", &["ledger"]),
    b("opensea", &["opensea"]),
    b("blockchain.com", &["blockchain"]),
    b("crypto.com", &["crypto"]),
    // Mail, cloud and software accounts.
    b(
        "microsoft",
        &[
            "microsoft",
            "outlook",
            "office",
            "live",
            "msft",
            "sharepoint",
        ],
    ),
    b("office 365", &["microsoft", "office", "outlook"]),
    b("office365", &["microsoft", "office", "outlook"]),
    b("microsoft 365", &["microsoft", "office", "outlook"]),
    b("outlook", &["microsoft", "outlook", "office", "live"]),
    b("onedrive", &["microsoft", "onedrive", "sharepoint", "live"]),
    b("sharepoint", &["microsoft", "sharepoint"]),
    b("apple", &["apple", "icloud", "itunes"]),
    b("icloud", &["apple", "icloud"]),
    b("google", &["google", "gmail", "youtube"]),
    b("gmail", &["google", "gmail"]),
    b("facebook", &["facebook", "fb", "meta"]),
    b("instagram", &["instagram", "facebook", "meta"]),
    b("whatsapp", &["whatsapp", "facebook", "meta"]),
    b("linkedin", &["linkedin"]),
    b("docusign", &["docusign"]),
    b("dropbox", &["dropbox"]),
    b("adobe", &["adobe"]),
    b("yahoo", &["yahoo"]),
    b("proton mail", &["proton"]),
    b("protonmail", &["proton"]),
    b("norton", &["norton", "gen"]),
    b("mcafee", &["mcafee"]),
    b("netflix", &["netflix"]),
    b("spotify", &["spotify"]),
    b("disney+", &["disney"]),
    b("amazon", &["amazon", "amzn", "aws"]),
    b("prime video", &["amazon", "primevideo"]),
    b("ebay", &["ebay"]),
    b("aliexpress", &["aliexpress", "alibaba"]),
    b("walmart", &["walmart"]),
    b("costco", &["costco"]),
    b("lowes", &["lowes"]),
    b("home depot", &["homedepot"]),
    b("lidl", &["lidl"]),
    b("aldi", &["aldi"]),
    b("edeka", &["edeka"]),
    b("rossmann", &["rossmann"]),
    b("telekom", &["telekom", "t-online"]),
    b("vodafone", &["vodafone"]),
    b("verizon", &["verizon"]),
    b("at&t", &["att"]),
    b("xfinity", &["xfinity", "comcast"]),
    // Parcel carriers and post.
    b("dhl", &["dhl"]),
    b("fedex", &["fedex"]),
    b("usps", &["usps"]),
    b("correios", &["correios"]),
    b("postnl", &["postnl"]),
    b("royal mail", &["royalmail"]),
    b("dpd", &["dpd"]),
    b("evri", &["evri"]),
    b("poste italiane", &["poste"]),
    b("la poste", &["laposte"]),
    b("canada post", &["canadapost", "postescanada"]),
    b("australia post", &["auspost"]),
    // Tax offices and agencies.
    b("irs", &["irs", "treasury"]),
    b("hmrc", &["hmrc", "gov.uk"]),
    b("fbi", &["fbi", "ic3"]),
];

/// `[impersonation]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImpersonationConfig {
    pub enabled: bool,
    /// More brands: `"Name"` (its token is the name without spaces) or
    /// `"Name = token1, token2"`.
    pub brands: Vec<String>,
    /// Sender domains (organisational) that may use any brand's name.
    pub trusted_domains: Vec<String>,
}

impl Default for ImpersonationConfig {
    fn default() -> Self {
        ImpersonationConfig {
            enabled: true,
            brands: Vec::new(),
            trusted_domains: Vec::new(),
        }
    }
}

impl Section for ImpersonationConfig {
    const KEY: &'static str = "impersonation";

    fn validate(&self, problems: &mut Problems) {
        for (i, entry) in self.brands.iter().enumerate() {
            if parse_brand(entry).is_none() {
                problems.at(
                    format!("brands[{i}]"),
                    "expected \"Name\" or \"Name = token, token\" with a name of letters or digits",
                );
            }
        }
    }
}

/// A brand of the config: its folded words and its tokens.
fn parse_brand(entry: &str) -> Option<(Vec<String>, Vec<String>)> {
    let (name, tokens) = match entry.split_once('=') {
        Some((n, t)) => (n, Some(t)),
        None => (entry, None),
    };
    let words = words(&skeleton(name, 200));
    if words.is_empty() {
        return None;
    }
    let tokens: Vec<String> = match tokens {
        Some(t) => t
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect(),
        None => vec![words.concat()],
    };
    (!tokens.is_empty()).then_some((words, tokens))
}

/// The words of a folded text: runs of letters and digits (`&` and `+`
/// kept inside, for "AT&T" and "Disney+").
fn words(folded: &str) -> Vec<String> {
    word_slices(folded)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// [`words`] borrowed from the text: what a message's names are matched
/// by, without a `String` per word.
fn word_slices(folded: &str) -> Vec<&str> {
    folded
        .split(|c: char| !(c.is_alphanumeric() || c == '&' || c == '+'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// A brand ready to match: its words as written, its words with the
/// letters swapped for each other folded ([`fold_swaps`]), its tokens.
struct Known {
    plain: Vec<String>,
    folded: Vec<String>,
    tokens: Vec<String>,
}

pub struct Impersonation {
    brands: Vec<Known>,
    /// Every brand's first folded word and its folded words written
    /// together: a text with none of them (or of its letter runs) names
    /// no brand, which most mail is told by a few hash lookups.
    keys: super::NameSetOf<String>,
    trusted: Vec<String>,
}

/// Folds the letters and digits lures swap for each other (`I` and `l`,
/// `1` and `l`, `0` and `o`: "Iedger", "PayPa1", "lRS"), on a folded,
/// lowercase text, in place: the swapped characters are ASCII, and an ASCII byte is
/// never part of a longer character in UTF-8.
fn fold_swaps(folded: String) -> String {
    let mut bytes = folded.into_bytes();
    for b in &mut bytes {
        *b = match *b {
            b'i' | b'1' => b'l',
            b'0' => b'o',
            b => b,
        };
    }
    // Always valid: only ASCII bytes were changed, to ASCII bytes.
    String::from_utf8(bytes).unwrap_or_default()
}

/// Bytes of a display name looked at.
const MAX_NAME: usize = 512;

impl Impersonation {
    pub fn new(config: &ImpersonationConfig) -> Impersonation {
        let known = |plain: Vec<String>, tokens: Vec<String>| Known {
            folded: plain.iter().map(|w| fold_swaps(w.clone())).collect(),
            plain,
            tokens,
        };
        let brands = BRANDS
            .iter()
            .map(|b| {
                known(
                    b.name.split(' ').map(str::to_string).collect(),
                    b.tokens.iter().map(|t| t.to_string()).collect(),
                )
            })
            .chain(
                config
                    .brands
                    .iter()
                    .filter_map(|e| parse_brand(e))
                    .map(|(w, t)| known(w, t)),
            )
            .collect();
        let brands: Vec<Known> = brands;
        let keys = brands
            .iter()
            .flat_map(|b| [b.folded[0].clone(), b.folded.concat()])
            .collect();
        Impersonation {
            brands,
            keys,
            trusted: config
                .trusted_domains
                .iter()
                .map(|d| organisational(d.trim()))
                .collect(),
        }
    }

    /// The brand `name` (a display name) names whose tokens `domain` does
    /// not contain.
    pub fn borrowed_brand(&self, name: &str, domain: &str) -> Option<String> {
        let folded = fold_swaps(skeleton(name, MAX_NAME));
        let words = word_slices(&folded);
        if !self.may_name(&words) {
            return None;
        }
        let compact: String = domain.to_ascii_lowercase().replace(['-', '_'], "");
        for brand in &self.brands {
            if !names(&words, &brand.folded) {
                continue;
            }
            if brand
                .tokens
                .iter()
                .any(|t| domain_has_token(domain, &compact, t))
            {
                return None;
            }
            return Some(brand.plain.join(" "));
        }
        None
    }

    /// The brand `text` names only once its look-alike letters are read
    /// as what they show: `Iedger`, `МеtaМask`, `𝐏𝐚𝐲𝐏𝐚𝐥`. No brand writes
    /// its own name so; names of three letters or fewer are left out
    /// (`FBL` is not a disguised `FBI`).
    pub fn disguised_brand(&self, text: &str) -> Option<String> {
        let folded_text = fold_swaps(skeleton(text, MAX_NAME));
        let folded = word_slices(&folded_text);
        if !self.may_name(&folded) {
            return None;
        }
        let plain_text = text
            .chars()
            .take(MAX_NAME)
            .collect::<String>()
            .to_lowercase();
        let plain = word_slices(&plain_text);
        self.brands
            .iter()
            .filter(|b| b.plain.iter().map(|w| w.chars().count()).sum::<usize>() > 3)
            .find(|b| names(&folded, &b.folded) && !names(&plain, &b.plain))
            .map(|b| b.plain.join(" "))
    }
}

impl Impersonation {
    /// Whether `words` may name a brand: one of them, or a run of single
    /// letters written together, is a key.
    fn may_name(&self, words: &[&str]) -> bool {
        let mut letters = String::new();
        for w in words {
            if self.keys.contains(*w) {
                return true;
            }
            if w.chars().count() == 1 {
                letters.push_str(w);
                if self.keys.contains(&letters) {
                    return true;
                }
            } else {
                letters.clear();
            }
        }
        false
    }
}

/// Whether `words` holds `brand`'s words in a row, or written together,
/// or spelt out letter by letter (`F.e.d.E.x`).
fn names(words: &[&str], brand: &[String]) -> bool {
    let mut letters = String::new();
    for w in words {
        if w.chars().count() == 1 {
            letters.push_str(w);
            if is_concat(&letters, brand) {
                return true;
            }
        } else {
            letters.clear();
        }
    }
    words_name(words, brand)
}

/// Whether `s` is `parts` written together (`parts.concat() == s`, without
/// building the string: brands are tried by the dozen per name).
fn is_concat(s: &str, parts: &[String]) -> bool {
    let mut rest = s;
    for p in parts {
        match rest.strip_prefix(p.as_str()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

fn words_name(words: &[&str], brand: &[String]) -> bool {
    if brand.len() == 1 {
        return words.contains(&brand[0].as_str());
    }
    words.iter().any(|w| is_concat(w, brand))
        || words
            .windows(brand.len())
            .any(|win| win.iter().zip(brand).all(|(a, b)| *a == b.as_str()))
}

/// Whether the sender's domain carries a brand token: anywhere in a label
/// for tokens of five letters or more, as a whole label or a label's
/// hyphen-separated part for shorter ones (`bb.com.br`, `dhl-news.com`;
/// not `firstclass.example` for `irs`, nor `delivery.example` for `live`).
fn domain_has_token(domain: &str, compact: &str, token: &str) -> bool {
    if token.contains('.') {
        return domain.contains(token);
    }
    let token_compact = token.replace(['-', '_'], "");
    if token_compact.len() >= 5 {
        return compact.contains(&token_compact);
    }
    domain
        .split(['.', '-'])
        .any(|part| part.eq_ignore_ascii_case(token))
}

const GROUP: &str = "phishing";

impl Check for Impersonation {
    fn name(&self) -> &'static str {
        "impersonation"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "FROM_NAME_BRAND_MISMATCH",
                4.0,
                GROUP,
                "From's display name names a brand, the address is at another domain",
            ),
            SymbolDef::new(
                "BRAND_NAME_DISGUISED",
                4.0,
                GROUP,
                "Subject or From's display name writes a brand's name with look-alike letters",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        let from = task.message.from();
        // The display name may be split over several entries
        // (`"PayPal", Service <a@b>`); the sender is the address.
        let name: String = from
            .iter()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.name())
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        let domain = from
            .iter()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .filter_map(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.trim().trim_end_matches('>').to_ascii_lowercase())
            .next_back();
        let trusted = domain
            .as_deref()
            .is_some_and(|d| self.trusted.contains(&organisational(d)));
        if trusted {
            return;
        }
        if let Some(domain) = domain
            && let Some(brand) = self.borrowed_brand(&name, &domain)
        {
            results.insert("FROM_NAME_BRAND_MISMATCH", vec![brand, domain]);
        }
        if let Some(brand) = task
            .message
            .subject()
            .and_then(|s| self.disguised_brand(s))
            .or_else(|| self.disguised_brand(&name))
        {
            results.insert("BRAND_NAME_DISGUISED", vec![brand]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn is_concat_is_concat_equal() {
        let parts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for p in [
            &[][..],
            &["a"],
            &["pay", "pal"],
            &["", "x"],
            &["ab", "", "c"],
        ] {
            let p = parts(p);
            for s in ["", "a", "paypal", "payp", "paypall", "x", "abc", "ab"] {
                assert_eq!(is_concat(s, &p), p.concat() == s, "{s:?} {p:?}");
            }
        }
    }

    fn check() -> Impersonation {
        Impersonation::new(&ImpersonationConfig::default())
    }

    #[test]
    fn brand_names_against_sender_domains() {
        let c = check();
        for (name, domain, want) in [
            ("PayPal", "mail.paypal.com", None),
            ("PayPal Service", "secure-pay.example", Some("paypal")),
            (
                "Microsoft account team",
                "access-accsecurity.com",
                Some("microsoft"),
            ),
            ("Microsoft Outlook", "email.microsoft.com", None),
            ("Microsoft Store", "e.microsoftstore.com", None),
            ("МеtaМask", "sb1ostlandet.no", Some("metamask")),
            ("Trust-Wallet", "alquiaga.com", Some("trust wallet")),
            ("TrustWallet APP", "pepsup.com", Some("trust wallet")),
            (
                "Tr\u{E0139}u\u{E0139}st Wa\u{E0139}llet",
                "viajesbereber.com",
                Some("trust wallet"),
            ),
            (
                "BANCO DO BRASIL",
                "bbatendimento.lb",
                Some("banco do brasil"),
            ),
            ("Banco do Brasil", "bb.com.br", None),
            ("Microsoft", "delivery-notice.example", Some("microsoft")),
            ("Microsoft", "login.live.com", None),
            (
                "Banco do Brasil - Cartoes",
                "gmail.com",
                Some("banco do brasil"),
            ),
            ("DHL Express", "dhl-news.com", None),
            ("DHL Express", "fearineas.com", Some("dhl")),
            ("F.e.d.E.x", "sab3atontanks8.example.com", Some("fedex")),
            ("IRS", "irs.gov", None),
            ("IRS Refunds", "firstclass.example", Some("irs")),
            // Not a brand: a person, a common word, a longer word.
            ("Chase Miller", "example.org", None),
            ("Ledgerwood Farms", "example.org", None),
            ("Appleby, John", "example.org", None),
            ("", "example.org", None),
        ] {
            assert_eq!(
                c.borrowed_brand(name, domain).as_deref(),
                want,
                "{name:?} <…@{domain}>"
            );
        }
    }

    #[test]
    fn disguised_brand_names() {
        let c = check();
        for (text, want) in [
            ("Scan your Iedger now", Some("ledger")),
            ("Trust WaIIet", Some("trust wallet")),
            ("[Banco do BrasiI]", Some("banco do brasil")),
            ("МеtaМask wallet", Some("metamask")),
            (
                "\u{1D40F}\u{1D41A}\u{1D432}\u{1D40F}\u{1D41A}\u{1D425}",
                Some("paypal"),
            ),
            ("Your PayPal receipt", None),
            ("Ledger Live update", None),
            ("FBL report", None),
            ("Iceland trip", None),
        ] {
            assert_eq!(c.disguised_brand(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn configured_brands_and_trusted_domains() {
        let config = ImpersonationConfig {
            enabled: true,
            brands: vec!["Stadtwerke Musterstadt = stadtwerke-muster".into()],
            trusted_domains: vec!["payments-provider.com".into()],
        };
        assert!(config.brands.iter().all(|e| parse_brand(e).is_some()));
        assert!(parse_brand(" = x").is_none());
        let c = Impersonation::new(&config);
        assert_eq!(
            c.borrowed_brand("Stadtwerke Musterstadt", "other.example")
                .as_deref(),
            Some("stadtwerke musterstadt")
        );
        assert!(
            c.borrowed_brand("Stadtwerke Musterstadt", "stadtwerke-muster.de")
                .is_none()
        );
        let raw = "From: PayPal <service@mail.payments-provider.com>\r\n\r\nx\r\n";
        assert!(scan(&c, raw).is_empty());
    }

    fn scan(c: &Impersonation, raw: &str) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        c.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn from_fields() {
        let c = check();
        for (from, hit) in [
            (
                "\"Microsoft account team\", _ <no-reply@access-accsecurity.com>",
                true,
            ),
            ("=?UTF-8?B?UGF5UGFs?= <x@evil.example>", true),
            ("PayPal <service@paypal.de>", false),
            ("paypal-fan@example.org", false),
            ("Amazon", false),
        ] {
            let raw = format!("From: {from}\r\nSubject: x\r\n\r\nbody\r\n");
            assert_eq!(
                scan(&c, &raw) == ["FROM_NAME_BRAND_MISMATCH"],
                hit,
                "{from}"
            );
        }
    }
}
