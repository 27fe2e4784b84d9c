//! DMARC (RFC 7489, and DMARCbis, RFC 9989): policy discovery, identifier
//! alignment and the policy to apply, over SPF's and DKIM's results.
//!
//! - Discovery is RFC 9989's DNS tree walk (4.10.1): `_dmarc.<author
//!   domain>`, then up the tree (at most [`MAX_WALK_QUERIES`] names, a
//!   long name jumping to its last seven labels). It finds everything the
//!   older form (author domain, then organisational domain) finds.
//! - Alignment compares organisational domains by the public suffix list
//!   (`mxguard_message::domain::organisational`), the one answer mxguard
//!   shares between its checks: relaxed when the record says so
//!   (default), exact for `adkim=s` / `aspf=s`.
//! - The policy: `p` for the author domain's own record, else `sp` (or
//!   `p`), else `np` when the author domain does not exist (NXDOMAIN).
//!   `t=y` (testing) applies the policy one step lower; the older `pct`
//!   applies it to that share of failing messages and the next lower
//!   policy to the rest (RFC 7489 6.6.4).

use crate::Verifier;
use crate::dkim::DkimVerdict;
use crate::results::{AuthResult, normalise_domain};
use crate::spf::SpfVerdict;
use mxguard_message::domain::organisational;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// The tree walk asks at most this many names (RFC 9989 4.10.1: eight).
pub const MAX_WALK_QUERIES: usize = 8;

/// At most this many distinct author domains (From: with several
/// addresses) are evaluated; the strictest outcome wins.
pub const MAX_AUTHOR_DOMAINS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    fn parse(v: &str) -> Option<Policy> {
        match v.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    /// One step less strict: what testing mode and `pct` sampling apply.
    fn lower(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alignment {
    #[default]
    Relaxed,
    Strict,
}

/// A DMARC policy record, both forms: RFC 7489's tags and RFC 9989's
/// (`np`, `t`, `psd`). Unknown tags are ignored, as both RFCs say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub p: Option<Policy>,
    pub sp: Option<Policy>,
    pub np: Option<Policy>,
    pub adkim: Alignment,
    pub aspf: Alignment,
    /// 0..=100; 100 when absent.
    pub pct: u8,
    /// `t=y`: testing, apply one step lower.
    pub testing: bool,
    pub rua: Vec<String>,
}

/// Why a TXT record is not a usable DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Does not start with `v=DMARC1`: not a DMARC record at all.
    NotDmarc,
    /// A DMARC record with a broken required part.
    Invalid(String),
}

impl Record {
    /// Parses `v=DMARC1; p=...; ...`.
    pub fn parse(txt: &str) -> Result<Record, RecordError> {
        let mut tags = txt.split(';').map(str::trim).filter(|t| !t.is_empty());
        match tags.next().and_then(|t| t.split_once('=')) {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("v") && v.trim() == "DMARC1" => {}
            _ => return Err(RecordError::NotDmarc),
        }
        let mut r = Record {
            p: None,
            sp: None,
            np: None,
            adkim: Alignment::Relaxed,
            aspf: Alignment::Relaxed,
            pct: 100,
            testing: false,
            rua: Vec::new(),
        };
        let mut bad_p = None;
        for tag in tags {
            let Some((k, v)) = tag.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "p" => match Policy::parse(v) {
                    Some(p) => r.p = Some(p),
                    None => bad_p = Some(v.to_string()),
                },
                // An unknown sp/np value is ignored: p applies.
                "sp" => r.sp = Policy::parse(v),
                "np" => r.np = Policy::parse(v),
                "adkim" => r.adkim = alignment(v),
                "aspf" => r.aspf = alignment(v),
                "pct" => r.pct = v.parse::<u8>().map_or(100, |n| n.min(100)),
                "t" => r.testing = v.eq_ignore_ascii_case("y"),
                "rua" => {
                    r.rua = v
                        .split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .take(8)
                        .collect()
                }
                _ => {}
            }
        }
        // RFC 9989 4.7: a missing or invalid p with a valid rua is p=none;
        // without rua the record is unusable.
        if r.p.is_none() {
            if r.rua.is_empty() {
                return Err(RecordError::Invalid(match bad_p {
                    Some(v) => format!("p={v} is not none, quarantine or reject"),
                    None => "no p= tag".to_string(),
                }));
            }
            r.p = Some(Policy::None);
        }
        Ok(r)
    }
}

fn alignment(v: &str) -> Alignment {
    if v.eq_ignore_ascii_case("s") {
        Alignment::Strict
    } else {
        Alignment::Relaxed
    }
}

/// The DMARC outcome for a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcVerdict {
    /// pass, fail, none (no author domain or no record), temperror (DNS),
    /// permerror (a broken record).
    pub result: AuthResult,
    /// The author (RFC 5322 From) domain evaluated.
    pub from_domain: String,
    /// The policy the domain publishes for this message (`p`, `sp` or
    /// `np`), before testing mode and sampling.
    pub published: Option<Policy>,
    /// What to apply on failure, after `t=y` and `pct`.
    pub policy: Option<Policy>,
    /// The record was in testing mode (`t=y`) or `pct` sampled this
    /// message out.
    pub lowered: bool,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    /// Why it failed or could not be evaluated.
    pub reason: Option<String>,
    /// The record applied and the name it was found at (the reports'
    /// domain); `None` when no usable record was found.
    pub record: Option<(String, Record)>,
}

impl DmarcVerdict {
    fn none(from_domain: &str, reason: &str) -> DmarcVerdict {
        DmarcVerdict {
            result: AuthResult::None,
            from_domain: from_domain.to_string(),
            published: None,
            policy: None,
            lowered: false,
            spf_aligned: false,
            dkim_aligned: false,
            reason: Some(reason.to_string()),
            record: None,
        }
    }

    /// How strict the outcome is, to pick among several author domains.
    fn severity(&self) -> (u8, Option<Policy>) {
        let r = match self.result {
            AuthResult::Fail => 4,
            AuthResult::PermError => 3,
            AuthResult::TempError => 2,
            AuthResult::Pass => 1,
            _ => 0,
        };
        (r, self.policy)
    }
}

/// The author domains of a message's From header(s): distinct, lower case.
pub fn author_domains<'a>(from_addresses: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in from_addresses {
        if let Some((_, d)) = a.trim().trim_end_matches('>').rsplit_once('@') {
            let d = normalise_domain(d);
            if !d.is_empty() && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// Evaluates DMARC for the author domains (see [`author_domains`]); with
/// several, the strictest outcome wins, so a second From address cannot
/// hide a failing one.
pub async fn evaluate(
    verifier: &Verifier,
    authors: &[String],
    spf: Option<&SpfVerdict>,
    dkim: &[DkimVerdict],
) -> DmarcVerdict {
    let mut worst: Option<DmarcVerdict> = None;
    if authors.is_empty() {
        return DmarcVerdict::none("", "no author domain in From");
    }
    for author in authors.iter().take(MAX_AUTHOR_DOMAINS) {
        let v = evaluate_one(verifier, author, spf, dkim).await;
        if worst.as_ref().is_none_or(|w| v.severity() > w.severity()) {
            worst = Some(v);
        }
    }
    worst.unwrap_or_else(|| DmarcVerdict::none("", "no author domain in From"))
}

/// The names the tree walk asks, longest first (RFC 9989 4.10.1): the
/// domain's own suffixes, borrowed, unless it has empty labels to drop.
pub fn walk_names(domain: &str) -> Vec<Cow<'_, str>> {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    let mut names = Vec::new();
    if labels.is_empty() {
        return names;
    }
    // Where each label starts in `domain`, when the labels are all of it.
    let plain = labels.len() == domain.split('.').count();
    let mut n = labels.len();
    loop {
        let tail = &labels[labels.len() - n..];
        names.push(if plain {
            let len = tail.iter().map(|l| l.len() + 1).sum::<usize>() - 1;
            Cow::Borrowed(&domain[domain.len() - len..])
        } else {
            Cow::Owned(tail.join("."))
        });
        if n == 1 || names.len() >= MAX_WALK_QUERIES {
            break;
        }
        n = if n >= 8 { 7 } else { n - 1 };
    }
    names
}

/// The record found for a domain: where, and what.
enum Found {
    Record(String, Record),
    None,
    TempError(String),
    PermError(String, String),
}

/// What one name of the walk publishes, read once per DNS answer (kept
/// beside it in the resolver's cache, see
/// [`mxguard_dns::Dns::txt_parsed`]): a sender's `_dmarc` record is asked
/// for every message it sends.
enum AtName {
    /// One DMARC record: the walk stops here.
    One(Record),
    /// Only broken DMARC records: permerror.
    Broken(String),
    /// No DMARC record, or several (none of them applies, RFC 9989
    /// 4.10.1): the walk goes on.
    Nothing,
}

fn read_at_name(txt: &[String]) -> AtName {
    let mut records = Vec::new();
    let mut invalid = None;
    for t in txt {
        match Record::parse(t) {
            Ok(r) => records.push(r),
            Err(RecordError::Invalid(why)) => invalid = Some(why),
            Err(RecordError::NotDmarc) => {}
        }
    }
    match (records.len(), invalid) {
        (1, None) => records.pop().map_or(AtName::Nothing, AtName::One),
        (0, Some(why)) => AtName::Broken(why),
        _ => AtName::Nothing,
    }
}

async fn discover(verifier: &Verifier, author: &str) -> Found {
    for name in walk_names(author) {
        let at = match verifier
            .dns()
            .txt_parsed(&format!("_dmarc.{name}"), read_at_name)
            .await
        {
            Ok(at) => at,
            Err(e) => return Found::TempError(e.0),
        };
        match &*at {
            AtName::One(r) => return Found::Record(name.into_owned(), r.clone()),
            AtName::Broken(why) => return Found::PermError(name.into_owned(), why.clone()),
            AtName::Nothing => {}
        }
    }
    Found::None
}

/// Whether `identifier` (an SPF or DKIM domain) aligns with `author`.
/// `author_org` keeps the author's organisational domain for the other
/// identifiers of the message: one public-suffix look-up, not one each.
fn aligned(identifier: &str, author: &str, author_org: &OnceCell<String>, mode: Alignment) -> bool {
    // `normalise_domain`, borrowed when it changes nothing (most names).
    let trimmed = identifier.trim().trim_end_matches('.');
    let identifier: Cow<'_, str> = if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    };
    if identifier.is_empty() {
        return false;
    }
    match mode {
        Alignment::Strict => identifier == author,
        Alignment::Relaxed => {
            organisational(&identifier) == *author_org.get_or_init(|| organisational(author))
        }
    }
}

/// `pct` sampling: whether this message is in the share the policy
/// applies to. Random per message, so a sender cannot aim for the gap.
fn sampled_in(pct: u8) -> bool {
    if pct >= 100 {
        return true;
    }
    let roll = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
        % 100;
    roll < u64::from(pct)
}

async fn evaluate_one(
    verifier: &Verifier,
    author: &str,
    spf: Option<&SpfVerdict>,
    dkim: &[DkimVerdict],
) -> DmarcVerdict {
    let (found_at, record) = match discover(verifier, author).await {
        Found::Record(at, r) => (at, r),
        Found::None => return DmarcVerdict::none(author, "no DMARC record"),
        Found::TempError(e) => {
            let mut v = DmarcVerdict::none(author, &e);
            v.result = AuthResult::TempError;
            return v;
        }
        Found::PermError(at, why) => {
            let mut v = DmarcVerdict::none(author, &format!("_dmarc.{at}: {why}"));
            v.result = AuthResult::PermError;
            return v;
        }
    };
    let org = OnceCell::new();
    let spf_aligned = spf.is_some_and(|s| {
        s.identity == crate::spf::Identity::MailFrom
            && s.result == AuthResult::Pass
            && aligned(&s.domain, author, &org, record.aspf)
    });
    let dkim_aligned = dkim
        .iter()
        .any(|d| d.result == AuthResult::Pass && aligned(&d.domain, author, &org, record.adkim));
    let temp = spf.is_some_and(|s| {
        s.result == AuthResult::TempError && aligned(&s.domain, author, &org, record.aspf)
    }) || dkim.iter().any(|d| {
        d.result == AuthResult::TempError && aligned(&d.domain, author, &org, record.adkim)
    });
    let p = record.p.unwrap_or(Policy::None);
    let published = if found_at == author {
        p
    } else {
        let sub = record.sp.unwrap_or(p);
        match record.np {
            Some(np) if np != sub => match verifier.dns().name_exists(author).await {
                Ok(false) => np,
                _ => sub,
            },
            _ => sub,
        }
    };
    let (testing, pct) = (record.testing, record.pct);
    let mut v = DmarcVerdict {
        result: AuthResult::Pass,
        from_domain: author.to_string(),
        published: Some(published),
        policy: Some(published),
        lowered: false,
        spf_aligned,
        dkim_aligned,
        reason: None,
        record: Some((found_at, record)),
    };
    if spf_aligned || dkim_aligned {
        return v;
    }
    if temp {
        // An aligned identifier could not be checked: neither pass nor
        // fail (RFC 9989 5.3.6).
        v.result = AuthResult::TempError;
        v.reason = Some("an aligned SPF or DKIM result is a temporary error".into());
        return v;
    }
    v.result = AuthResult::Fail;
    v.reason = Some(
        match (
            spf.map(|s| s.result),
            dkim.iter().any(|d| d.result == AuthResult::Pass),
        ) {
            (Some(AuthResult::Pass), true) => "SPF and DKIM pass but do not align",
            (Some(AuthResult::Pass), false) => "SPF passes but does not align, no valid DKIM",
            (_, true) => "DKIM passes but does not align, no valid SPF",
            _ => "no valid SPF, no valid DKIM",
        }
        .to_string(),
    );
    if testing || !sampled_in(pct) {
        v.policy = Some(published.lower());
        v.lowered = true;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_both_forms() {
        let r = Record::parse("v=DMARC1; p=reject; sp=quarantine; pct=20; adkim=s").unwrap();
        assert_eq!(r.p, Some(Policy::Reject));
        assert_eq!(r.sp, Some(Policy::Quarantine));
        assert_eq!(r.pct, 20);
        assert_eq!(r.adkim, Alignment::Strict);
        assert_eq!(r.aspf, Alignment::Relaxed);
        let bis = Record::parse("v=DMARC1;p=quarantine;np=reject;t=y;psd=n").unwrap();
        assert_eq!(bis.np, Some(Policy::Reject));
        assert!(bis.testing);
        assert_eq!(Record::parse("v=spf1 -all"), Err(RecordError::NotDmarc));
        assert!(matches!(
            Record::parse("v=DMARC1; p=bogus"),
            Err(RecordError::Invalid(_))
        ));
        // An invalid p with rua is p=none (RFC 9989 4.7).
        let lax = Record::parse("v=DMARC1; p=bogus; rua=mailto:d@example.com").unwrap();
        assert_eq!(lax.p, Some(Policy::None));
        assert_eq!(Record::parse("v=DMARC1; p=none; pct=900").unwrap().pct, 100);
    }

    #[test]
    fn the_tree_walk_asks_at_most_eight_names() {
        assert_eq!(
            walk_names("a.mail.example.co.uk"),
            [
                "a.mail.example.co.uk",
                "mail.example.co.uk",
                "example.co.uk",
                "co.uk",
                "uk"
            ]
        );
        let long = walk_names("a.b.c.d.e.f.g.h.i.j.example.com");
        assert_eq!(long.len(), MAX_WALK_QUERIES);
        assert_eq!(long[0], "a.b.c.d.e.f.g.h.i.j.example.com");
        assert_eq!(long[1], "f.g.h.i.j.example.com", "seven labels");
        assert!(walk_names("").is_empty());
        // Empty labels are dropped, as before.
        assert_eq!(
            walk_names("a..example.com."),
            ["a.example.com", "example.com", "com"]
        );
        assert_eq!(walk_names(".example.com"), ["example.com", "com"]);
    }

    #[test]
    fn alignment_by_organisational_domain() {
        let aligned = |id: &str, author: &str, mode| aligned(id, author, &OnceCell::new(), mode);
        assert!(aligned(
            "mail.example.co.uk",
            "example.co.uk",
            Alignment::Relaxed
        ));
        assert!(!aligned(
            "mail.example.co.uk",
            "example.co.uk",
            Alignment::Strict
        ));
        assert!(!aligned("other.co.uk", "example.co.uk", Alignment::Relaxed));
        assert!(aligned("EXAMPLE.com.", "example.com", Alignment::Strict));
        assert!(aligned(
            " Mail.EXAMPLE.com ",
            "example.com",
            Alignment::Relaxed
        ));
        assert!(!aligned("", "example.com", Alignment::Relaxed));
        // The author's organisational domain, kept for the next identifier.
        let org = OnceCell::new();
        let a = "news.example.co.uk";
        assert!(super::aligned(
            "x.example.co.uk",
            a,
            &org,
            Alignment::Relaxed
        ));
        assert_eq!(org.get().map(String::as_str), Some("example.co.uk"));
        assert!(!super::aligned("example.com", a, &org, Alignment::Relaxed));
        assert!(super::aligned(
            "EXAMPLE.co.uk.",
            a,
            &org,
            Alignment::Relaxed
        ));
    }

    #[test]
    fn sampling_bounds() {
        assert!(sampled_in(100));
        assert!(!sampled_in(0));
        let hits = (0..2000).filter(|_| sampled_in(50)).count();
        assert!((700..1300).contains(&hits), "{hits}");
    }

    #[test]
    fn author_domains_are_distinct() {
        assert_eq!(
            author_domains(["a@Example.com", "b@example.com", "c@other.org>"]),
            ["example.com", "other.org"]
        );
        assert!(author_domains(["nobody"]).is_empty());
    }
}
