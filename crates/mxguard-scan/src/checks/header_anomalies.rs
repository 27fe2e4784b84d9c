//! Header anomalies, with rspamd's symbol names: headers that disagree with
//! each other or with the envelope, and fields whose shape mail software
//! does not produce but bulk senders and forgers do.
//!
//! Each rule looks at fields the sender wrote (From, Reply-To, To, Cc,
//! Message-ID, Date, Subject) and the envelope; none reads a verdict another
//! receiver wrote. The time of receipt is the date of the newest Received
//! field (in the milter the relay that handed the message to us, as
//! Postfix adds its own after the milter; the last receiver's for a stored
//! message), or the scanner's clock when there is none or it is later.
//! Rules that need the envelope stay silent when it is unknown (`mxguard
//! scan` of a file).

use super::Check;
use crate::Task;
use mail_parser::{Address, DateTime, HeaderName};
use mxguard_core::config::Section;
use mxguard_core::envelope::{domain_of, strip_path};
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::domain::{ends_in_known_suffix, organisational};
use mxguard_message::fold::disguise;
use mxguard_store::Clock;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// `[header_anomalies]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderAnomaliesConfig {
    pub enabled: bool,
    /// A Date this many seconds after the time of receipt is DATE_IN_FUTURE.
    pub future_seconds: u64,
    /// A Date this many seconds before the time of receipt is DATE_IN_PAST.
    pub past_seconds: u64,
    /// To and Cc with at least this many addresses, sorted, give SORTED_RECIPS.
    pub sorted_recipients_min: usize,
}

impl Default for HeaderAnomaliesConfig {
    fn default() -> Self {
        HeaderAnomaliesConfig {
            enabled: true,
            // rspamd's: two hours ahead, one day behind.
            future_seconds: 2 * 3600,
            past_seconds: 86400,
            sorted_recipients_min: 7,
        }
    }
}

impl Section for HeaderAnomaliesConfig {
    const KEY: &'static str = "header_anomalies";
}

const GROUP: &str = "headers";

/// Header fields a message carries once (RFC 5322 section 3.6).
const UNIQUE: [HeaderName<'static>; 9] = [
    HeaderName::From,
    HeaderName::Sender,
    HeaderName::ReplyTo,
    HeaderName::To,
    HeaderName::Cc,
    HeaderName::Subject,
    HeaderName::Date,
    HeaderName::MessageId,
    HeaderName::InReplyTo,
];

/// The index of `name` in [`UNIQUE`], by its variant (no comparison with
/// each: every field of every message is looked up).
fn unique_slot(name: &HeaderName<'_>) -> Option<usize> {
    match name {
        HeaderName::From => Some(0),
        HeaderName::Sender => Some(1),
        HeaderName::ReplyTo => Some(2),
        HeaderName::To => Some(3),
        HeaderName::Cc => Some(4),
        HeaderName::Subject => Some(5),
        HeaderName::Date => Some(6),
        HeaderName::MessageId => Some(7),
        HeaderName::InReplyTo => Some(8),
        _ => None,
    }
}

/// Free mailbox providers: anyone gets an address there in a minute, so
/// an organisation's mail that asks for replies there is a lure
/// (rspamd's FREEMAIL_REPLYTO_NEQ_FROM_DOM). Registrable domains.
pub const FREEMAIL: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "yahoo.de",
    "yahoo.es",
    "yahoo.it",
    "yahoo.com.br",
    "ymail.com",
    "rocketmail.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "hotmail.de",
    "hotmail.it",
    "hotmail.es",
    "outlook.com",
    "outlook.fr",
    "outlook.de",
    "live.com",
    "live.fr",
    "live.de",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "mail.com",
    "email.com",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "gmx.at",
    "web.de",
    "t-online.de",
    "freenet.de",
    "mail.ru",
    "inbox.ru",
    "list.ru",
    "bk.ru",
    "yandex.ru",
    "yandex.com",
    "rambler.ru",
    "protonmail.com",
    "proton.me",
    "tutanota.com",
    "zoho.com",
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "rediffmail.com",
    "libero.it",
    "laposte.net",
    "orange.fr",
    "wanadoo.fr",
    "free.fr",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "uol.com.br",
    "bol.com.br",
    "terra.com.br",
    "naver.com",
    "daum.net",
];

pub struct HeaderAnomalies {
    config: HeaderAnomaliesConfig,
    clock: Arc<dyn Clock>,
}

impl HeaderAnomalies {
    pub fn new(config: &HeaderAnomaliesConfig, clock: Arc<dyn Clock>) -> HeaderAnomalies {
        HeaderAnomalies {
            config: config.clone(),
            clock,
        }
    }

    /// Seconds since the epoch at which the message was received.
    fn received_at(&self, task: &Task<'_>) -> i64 {
        let newest = task
            .headers()
            .iter()
            .find(|h| h.name == HeaderName::Received)
            .and_then(|h| {
                task.raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .and_then(|v| std::str::from_utf8(v).ok())
            })
            .and_then(|v| v.rsplit_once(';'))
            .and_then(|(_, date)| DateTime::parse_rfc822(date.trim()))
            .filter(DateTime::is_valid)
            .map(|d| d.to_timestamp());
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        // A Received field dated after now was forged or mis-set: the clock.
        newest.map_or(now, |r| r.min(now))
    }
}

impl Check for HeaderAnomalies {
    fn name(&self) -> &'static str {
        "header_anomalies"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let s = |n, w, d| SymbolDef::new(n, w, GROUP, d);
        vec![
            s(
                "MULTIPLE_UNIQUE_HEADERS",
                2.5,
                "A header field that must appear once appears several times",
            ),
            s(
                "REPLYTO_DOM_NEQ_FROM_DOM",
                0.0,
                "Reply-To's domain differs from From's",
            ),
            s(
                "FROM_NEQ_ENVFROM",
                0.0,
                "From's address differs from the envelope sender",
            ),
            s(
                "SPOOF_DISPLAY_NAME",
                5.0,
                "From's display name shows an address of another domain",
            ),
            s(
                "FROM_NEQ_DISPLAY_NAME",
                2.0,
                "From's display name is another address of its domain",
            ),
            s(
                "FROM_DN_EQ_ADDR",
                1.0,
                "From's display name is its own address",
            ),
            s(
                "R_NO_SPACE_IN_FROM",
                0.5,
                "No space between From's display name and its <address>",
            ),
            s(
                "FORGED_RECIPIENTS",
                2.0,
                "None of the envelope recipients is in To or Cc",
            ),
            s("MISSING_TO", 1.0, "To header is missing"),
            s(
                "MISSING_MIME_VERSION",
                2.0,
                "MIME message without MIME-Version",
            ),
            s("R_UNDISC_RCPT", 3.0, "To says undisclosed recipients"),
            s(
                "SORTED_RECIPS",
                3.5,
                "Many To/Cc recipients in alphabetical order",
            ),
            s(
                "MID_MISSING_BRACKETS",
                0.5,
                "Message-ID has no angle brackets",
            ),
            s(
                "MID_RHS_NOT_FQDN",
                0.5,
                "Message-ID's right side is not a domain name",
            ),
            s(
                "MID_RHS_IP_LITERAL",
                0.5,
                "Message-ID's right side is an IP address",
            ),
            s(
                "MID_CONTAINS_FROM",
                1.0,
                "Message-ID contains the From address",
            ),
            s(
                "MISSING_MIMEOLE",
                2.0,
                "X-Mailer claims a Windows Outlook that always writes X-MimeOLE, and there is none",
            ),
            s(
                "SUBJECT_HAS_CURRENCY",
                1.0,
                "Subject contains a currency sign",
            ),
            s("INVALID_DATE", 1.5, "Date header cannot be read"),
            s(
                "DATE_IN_FUTURE",
                4.0,
                "Date is well after the time the message was received",
            ),
            s(
                "DATE_IN_PAST",
                1.0,
                "Date is well before the time the message was received",
            ),
            s(
                "FAKE_REPLY",
                1.0,
                "Subject says Re: but the message answers nothing",
            ),
            s(
                "SUBJ_EXCESS_BASE64",
                1.5,
                "Subject is base64-encoded plain ASCII",
            ),
            s(
                "FROM_EXCESS_BASE64",
                1.5,
                "From's display name is base64-encoded plain ASCII",
            ),
            s(
                "MULTIPLE_FROM",
                3.0,
                "From holds several entries (a display name broken by a comma) without Sender",
            ),
            s(
                "FREEMAIL_REPLYTO_NEQ_FROM_DOM",
                1.5,
                "Replies go to a free mailbox, From is another domain",
            ),
            s(
                "FROM_DOMAIN_INVALID",
                2.5,
                "From's domain is not a domain name under a public suffix",
            ),
            s(
                "TO_IN_SUBJ",
                2.0,
                "The recipient's address is in the subject",
            ),
            s(
                "SUBJ_DISGUISED",
                3.0,
                "Subject written with look-alike, styled or hidden characters",
            ),
            s(
                "FROM_NAME_DISGUISED",
                3.0,
                "From's display name written with look-alike, styled or hidden characters",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let m = &task.message;
        let headers = task.headers();
        // Several of one unique field: one pass over the fields.
        let mut seen = [0u32; UNIQUE.len()];
        for slot in headers.iter().filter_map(|h| unique_slot(&h.name)) {
            seen[slot] += 1;
        }
        let repeated: Vec<String> = UNIQUE
            .iter()
            .zip(seen)
            .filter(|(_, n)| *n > 1)
            .map(|(name, _)| name.as_str().to_string())
            .collect();
        if !repeated.is_empty() {
            results.insert("MULTIPLE_UNIQUE_HEADERS", repeated);
        }

        // Several From entries: RFC 5322 wants a Sender then, and a name
        // without an address is a display name broken by an unquoted
        // comma, which mail software quotes and hand-made lures do not.
        if let Some(all) = m.from() {
            let entries: Vec<_> = all.iter().take(64).collect();
            let nameless = entries.iter().any(|a| a.address().is_none());
            if entries.len() > 1
                && (nameless || !headers.iter().any(|h| h.name == HeaderName::Sender))
            {
                results.insert("MULTIPLE_FROM", vec![entries.len().to_string()]);
            }
        }
        // Header text dressed to slip past word filters and catch the eye.
        if let Some(d) = m.subject().and_then(disguise) {
            results.insert("SUBJ_DISGUISED", vec![d.as_str().to_string()]);
        }
        if let Some(d) = m
            .from()
            .into_iter()
            .flat_map(|a| a.iter())
            .take(4)
            .filter_map(|a| a.name())
            .find_map(disguise)
        {
            results.insert("FROM_NAME_DISGUISED", vec![d.as_str().to_string()]);
        }

        let from = m
            .from()
            .and_then(|a| a.iter().find(|a| a.address().is_some()));
        let from_addr = from
            .and_then(|a| a.address())
            .map(|a| a.trim().to_ascii_lowercase());
        let from_domain = from_addr.as_deref().and_then(domain_of);

        // A sender domain no mail could come back to: no public suffix
        // (`noreply@correios`), or characters no domain name has.
        if let Some(fd) = from_domain.as_deref()
            && !fd.starts_with('[')
            && !is_special_use(fd)
            && (!ends_in_known_suffix(fd)
                || !fd
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-'))
        {
            results.insert("FROM_DOMAIN_INVALID", vec![fd.to_string()]);
        }

        // Reply-To elsewhere: replies go to someone other than the sender.
        if let (Some(fd), Some(rd)) = (
            from_domain.as_deref(),
            m.reply_to()
                .and_then(Address::first)
                .and_then(|a| a.address())
                .and_then(domain_of),
        ) && organisational(fd) != organisational(&rd)
        {
            results.insert("REPLYTO_DOM_NEQ_FROM_DOM", vec![]);
            if FREEMAIL.contains(&organisational(&rd).as_str())
                && !FREEMAIL.contains(&organisational(fd).as_str())
            {
                results.insert("FREEMAIL_REPLYTO_NEQ_FROM_DOM", vec![rd.to_string()]);
            }
        }

        // The envelope sender (known only from an MTA).
        if let (Some(fa), Some(env)) = (from_addr.as_deref(), task.envelope.mail_from.as_deref()) {
            let env = strip_path(env).to_ascii_lowercase();
            if !env.is_empty() && env != fa {
                results.insert("FROM_NEQ_ENVFROM", vec![fa.to_string(), env]);
            }
        }

        // The display name.
        if let (Some(fa), Some(name)) = (from_addr.as_deref(), from.and_then(|a| a.name())) {
            let name = name.trim().trim_matches(['"', '\'']).trim();
            let shown = name.trim_matches(['<', '>']).trim().to_ascii_lowercase();
            if shown == fa {
                results.insert("FROM_DN_EQ_ADDR", vec![]);
            } else if let Some(shown_addr) = address_in(name)
                && let Some(shown_domain) = domain_of(shown_addr)
                && let Some(fd) = from_domain.as_deref()
            {
                if organisational(&shown_domain) != organisational(fd) {
                    results.insert("SPOOF_DISPLAY_NAME", vec![shown_domain]);
                } else if shown == shown_addr.to_ascii_lowercase()
                    && shown.split('@').next() != fa.split('@').next()
                {
                    // The whole name is another mailbox of the same domain.
                    results.insert("FROM_NEQ_DISPLAY_NAME", vec![]);
                }
            }
        }
        for raw in raw_values(task, HeaderName::From).take(1) {
            if no_space_before_bracket(raw) {
                results.insert("R_NO_SPACE_IN_FROM", vec![]);
            }
            if excess_base64(raw) {
                results.insert("FROM_EXCESS_BASE64", vec![]);
            }
        }

        // Recipients.
        let listed: Vec<String> = m
            .to()
            .into_iter()
            .chain(m.cc())
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .map(|a| a.trim().to_ascii_lowercase())
            .take(1000)
            .collect();
        if !headers.iter().any(|h| h.name == HeaderName::To) {
            results.insert("MISSING_TO", vec![]);
        } else if raw_values(task, HeaderName::To)
            .any(|v| v.to_ascii_lowercase().contains("undisclosed"))
        {
            results.insert("R_UNDISC_RCPT", vec![]);
        }
        if !task.envelope.rcpts.is_empty() && !listed.is_empty() {
            let any = task
                .envelope
                .rcpts
                .iter()
                .any(|r| listed.iter().any(|l| l.eq_ignore_ascii_case(strip_path(r))));
            if !any {
                results.insert("FORGED_RECIPIENTS", vec![]);
            }
        }
        // The recipient's address in the subject: lures "personalise"
        // with the only thing they know of the reader. A mailing list's
        // own address in its subject (List-Id) is not counted.
        if let Some(subject) = m.subject()
            && subject.contains('@')
            && !headers
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case("List-Id"))
        {
            let subject = subject.to_lowercase();
            if listed
                .iter()
                .any(|a| a.contains('@') && subject.contains(a.as_str()))
            {
                results.insert("TO_IN_SUBJ", vec![]);
            }
        }
        if listed.len() >= self.config.sorted_recipients_min.max(2)
            && listed.windows(2).all(|w| w[0] <= w[1])
        {
            results.insert("SORTED_RECIPS", vec![listed.len().to_string()]);
        }

        // Message-ID's shape.
        if let Some(raw) = raw_values(task, HeaderName::MessageId).next() {
            let v = raw.trim();
            let bracketed = v.starts_with('<') && v.contains('>');
            if !v.is_empty() && !bracketed {
                results.insert("MID_MISSING_BRACKETS", vec![]);
            }
            let inner = v.trim_start_matches('<');
            let inner = inner.split('>').next().unwrap_or(inner);
            if let Some((left, right)) = inner.rsplit_once('@') {
                let right = right.trim();
                let literal = right.trim_start_matches('[').trim_end_matches(']');
                if literal.parse::<std::net::IpAddr>().is_ok() {
                    results.insert("MID_RHS_IP_LITERAL", vec![]);
                } else if !is_fqdn(right) {
                    results.insert("MID_RHS_NOT_FQDN", vec![]);
                }
                if let Some(fa) = from_addr.as_deref()
                    && fa.len() > 3
                    && left.to_ascii_lowercase().contains(fa)
                {
                    results.insert("MID_CONTAINS_FROM", vec![]);
                }
            } else if !inner.is_empty() {
                results.insert("MID_RHS_NOT_FQDN", vec![]);
            }
        }

        // Date against the time of receipt.
        if headers.iter().any(|h| h.name == HeaderName::Date) {
            match m.date().filter(|d| d.is_valid()) {
                None => results.insert("INVALID_DATE", vec![]),
                Some(d) => {
                    let at = self.received_at(task);
                    let date = d.to_timestamp();
                    if date > at.saturating_add(self.config.future_seconds as i64) {
                        results.insert("DATE_IN_FUTURE", vec![]);
                    } else if date < at.saturating_sub(self.config.past_seconds as i64) {
                        results.insert("DATE_IN_PAST", vec![]);
                    }
                }
            }
        }

        // MIME structure declared without MIME-Version: hand-made.
        if !headers.iter().any(|h| h.name == HeaderName::MimeVersion)
            && headers.iter().any(|h| {
                h.name == HeaderName::ContentType
                    && h.value.as_content_type().is_some_and(|c| {
                        c.c_type.eq_ignore_ascii_case("multipart")
                            || !c.c_type.eq_ignore_ascii_case("text")
                            || c.c_subtype
                                .as_deref()
                                .is_some_and(|s| !s.eq_ignore_ascii_case("plain"))
                    })
            })
        {
            results.insert("MISSING_MIME_VERSION", vec![]);
        }

        // A forged mail client: Outlook and Outlook Express for Windows up
        // to Outlook 2003 write X-MimeOLE; ratware copying only X-Mailer does not.
        if let Some(mailer) = task
            .headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case("X-Mailer"))
            .and_then(|h| {
                task.raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .and_then(|v| std::str::from_utf8(v).ok())
            })
            && claims_old_windows_outlook(mailer)
            && !headers
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case("X-MimeOLE"))
        {
            results.insert("MISSING_MIMEOLE", vec![]);
        }

        // The subject.
        if let Some(subject) = m.subject() {
            if subject.contains(['$', '€', '£', '¥']) {
                results.insert("SUBJECT_HAS_CURRENCY", vec![]);
            }
            let s = subject.trim_start();
            let is_reply = s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("re:"));
            if is_reply
                && !headers
                    .iter()
                    .any(|h| matches!(h.name, HeaderName::InReplyTo | HeaderName::References))
            {
                results.insert("FAKE_REPLY", vec![]);
            }
        }
        if raw_values(task, HeaderName::Subject)
            .take(1)
            .any(excess_base64)
        {
            results.insert("SUBJ_EXCESS_BASE64", vec![]);
        }
    }
}

/// The raw (undecoded, still folded) values of a top-level header field.
fn raw_values<'t>(task: &'t Task<'_>, name: HeaderName<'static>) -> impl Iterator<Item = &'t str> {
    task.headers()
        .iter()
        .filter(move |h| h.name == name)
        .filter_map(|h| {
            task.raw
                .get(h.offset_start as usize..h.offset_end as usize)
                .and_then(|v| std::str::from_utf8(v).ok())
        })
}

/// `Microsoft Outlook…` in X-Mailer, but neither the Macintosh editions nor
/// Outlook 2007 and later (version 12 up), which write no X-MimeOLE.
fn claims_old_windows_outlook(mailer: &str) -> bool {
    let m = mailer.to_ascii_lowercase();
    let Some(at) = m
        .find("microsoft outlook")
        .or_else(|| m.find("microsoft office outlook"))
    else {
        return false;
    };
    if m.contains("macintosh") || m.contains("mac os") {
        return false;
    }
    // The first number after the product name is its major version.
    let major: String = m[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    !major.parse::<u32>().is_ok_and(|v| (12..100).contains(&v))
}

/// The first thing that looks like `local@domain.tld` in a display name.
fn address_in(name: &str) -> Option<&str> {
    let at = name.find('@')?;
    // Byte-wise: every byte of an address is ASCII, so the cuts fall on
    // character boundaries.
    let is_addr = |c: &u8| c.is_ascii_alphanumeric() || b"._%+-".contains(c);
    let bytes = name.as_bytes();
    let start = bytes[..at]
        .iter()
        .rposition(|c| !is_addr(c))
        .map_or(0, |i| i + 1);
    let end = bytes[at + 1..]
        .iter()
        .position(|c| !is_addr(c))
        .map_or(name.len(), |i| at + 1 + i);
    let addr = name.get(start..end)?;
    let (local, domain) = addr.split_once('@')?;
    (!local.is_empty() && is_fqdn(domain.trim_end_matches('.'))).then_some(addr)
}

/// A domain name with at least two labels and a letter in the last one.
fn is_fqdn(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    let mut labels = s.split('.');
    let Some(tld) = s.rsplit('.').next() else {
        return false;
    };
    s.contains('.')
        && tld.chars().any(|c| c.is_ascii_alphabetic())
        && labels.all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// `Name<addr@x>` written without a space: hand-made headers, not a mail client's.
fn no_space_before_bracket(raw: &str) -> bool {
    let v = raw.trim();
    match v.find('<') {
        Some(i) if i > 0 => {
            let before = v[..i].chars().next_back();
            before.is_some_and(|c| !c.is_whitespace() && c != '"' && c != ',')
        }
        _ => false,
    }
}

/// A base64 encoded word (`=?charset?B?…?=`) whose text is plain ASCII:
/// encoding that no mail client needs, used to hide words from filters.
fn excess_base64(raw: &str) -> bool {
    let mut rest = raw;
    let mut any = false;
    while let Some(start) = rest.find("=?") {
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (Some(_charset), Some(enc), Some(tail)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Some(end) = tail.find("?=") else {
            return false;
        };
        if enc.eq_ignore_ascii_case("b") {
            match decode_base64(&tail[..end]) {
                Some(bytes) if bytes.iter().all(|b| (0x20..0x7f).contains(b)) => any = true,
                _ => return false,
            }
        } else {
            return false;
        }
        rest = &tail[end + 2..];
    }
    any
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Names reserved for tests and private networks (RFC 6761 `.test`,
/// `.example`, `.localhost`; mDNS `.local`; RFC 8375 `home.arpa`; ICANN's
/// `.internal`): not in the public suffix list, yet a lab's or an
/// intranet's mail legitimately comes from them, so they are not invalid.
fn is_special_use(domain: &str) -> bool {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    let last = d.rsplit('.').next().unwrap_or(d);
    ["test", "example", "localhost", "local", "internal"]
        .iter()
        .any(|t| last.eq_ignore_ascii_case(t))
        || d.len() >= 9 && d.as_bytes()[d.len() - 9..].eq_ignore_ascii_case(b"home.arpa")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;
    use std::time::{Duration, SystemTime};

    #[test]
    fn unique_slots_follow_the_table() {
        for (i, name) in UNIQUE.iter().enumerate() {
            assert_eq!(unique_slot(name), Some(i), "{name:?}");
        }
        for name in ["Received", "X-From", "Resent-From", "Bcc", "References"] {
            assert_eq!(
                unique_slot(&HeaderName::parse(name).unwrap()),
                None,
                "{name}"
            );
        }
    }

    struct Fixed(SystemTime);
    impl Clock for Fixed {
        fn now(&self) -> SystemTime {
            self.0
        }
    }

    /// Mon, 1 Jan 2024 12:00:00 +0000.
    const NOW: u64 = 1_704_110_400;

    fn scan_env(env: &Envelope, raw: &str) -> Vec<String> {
        let task = Task::new(env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        let clock = Arc::new(Fixed(UNIX_EPOCH + Duration::from_secs(NOW)));
        HeaderAnomalies::new(&HeaderAnomaliesConfig::default(), clock).run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    fn scan(raw: &str) -> Vec<String> {
        scan_env(&Envelope::default(), raw)
    }

    const CLEAN: &str = "From: Alice Example <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nDate: Mon, 1 Jan 2024 11:00:00 +0000\r\nMessage-ID: <123.456@mail.example.com>\r\nSubject: Lunch\r\n\r\nSee you at noon.\r\n";

    #[test]
    fn an_ordinary_message_has_no_anomaly() {
        assert!(scan(CLEAN).is_empty(), "{:?}", scan(CLEAN));
        let env = Envelope {
            mail_from: Some("alice@example.com".into()),
            rcpts: vec!["<BOB@example.org>".into()],
            ..Envelope::default()
        };
        assert!(scan_env(&env, CLEAN).is_empty());
    }

    #[test]
    fn several_from_entries() {
        let with = |from: &str| CLEAN.replace("From: Alice Example <alice@example.com>", from);
        // A display name broken by an unquoted comma.
        let raw = with("From: \"Fressnapf Gutschein\", jehd <service@example.com>");
        assert!(
            scan(&raw).contains(&"MULTIPLE_FROM".to_string()),
            "{:?}",
            scan(&raw)
        );
        // Two mailboxes without Sender.
        let raw = with("From: a@example.com, b@example.com");
        assert!(scan(&raw).contains(&"MULTIPLE_FROM".to_string()));
        // Two mailboxes with Sender, as RFC 5322 wants: fine.
        let raw = with("From: a@example.com, b@example.com\r\nSender: a@example.com");
        assert!(!scan(&raw).contains(&"MULTIPLE_FROM".to_string()));
        // A quoted comma is one display name.
        let raw = with("From: \"Example, Alice\" <alice@example.com>");
        assert!(scan(&raw).is_empty(), "{:?}", scan(&raw));
    }

    #[test]
    fn disguised_subject_and_display_name() {
        let with = |from: &str, subject: &str| {
            CLEAN
                .replace("From: Alice Example", from)
                .replace("Subject: Lunch", subject)
        };
        let raw = with(
            "From: =?UTF-8?B?0JzQtXRh0Jxhc2s=?=",
            "Subject: =?UTF-8?B?8J2QmPCdkI7wnZCU8J2QkQ==?= photos",
        );
        assert_eq!(scan(&raw), vec!["SUBJ_DISGUISED", "FROM_NAME_DISGUISED"]);
        // Other alphabets, accents and emoji are ordinary.
        let raw = with(
            "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?=",
            "Subject: =?UTF-8?B?0J/RgNC40LLQtdGCIOKclO+4jyBoZWxsbw==?=",
        );
        assert!(scan(&raw).is_empty(), "{:?}", scan(&raw));
    }

    #[test]
    fn sender_domains_that_are_no_names() {
        let with = |from: &str| CLEAN.replace("alice@example.com", from);
        for (from, bad) in [
            ("noreply@correios", true),
            ("a@x.invalid", true),
            ("a@origin.test", false),
            ("a@nas.home.arpa", false),
            ("a@printer.local", false),
            ("a@atendimento.net-2", true),
            ("a@x%y.example.com", true),
            ("a@mail.example.co.uk", false),
            ("a@iki.fi", false),
            ("a@[192.0.2.1]", false),
            ("a@b\u{fc}cher.de", false),
        ] {
            assert_eq!(
                scan(&with(from)).contains(&"FROM_DOMAIN_INVALID".to_string()),
                bad,
                "{from}: {:?}",
                scan(&with(from))
            );
        }
    }

    #[test]
    fn recipient_in_subject() {
        let raw = CLEAN.replace(
            "Subject: Lunch",
            "Subject: Bob@Example.org, your mailbox is full",
        );
        assert_eq!(scan(&raw), vec!["TO_IN_SUBJ"]);
        let raw = raw.replace("Subject:", "List-Id: <x.example.org>\r\nSubject:");
        assert!(scan(&raw).is_empty());
        let raw = CLEAN.replace("Subject: Lunch", "Subject: write to carol@example.org");
        assert!(scan(&raw).is_empty());
    }

    #[test]
    fn replies_to_a_free_mailbox() {
        let with = |from: &str| CLEAN.replace("From: Alice Example <alice@example.com>", from);
        let raw = with("From: Bank <info@bank.example.com>\r\nReply-To: desk.bank@gmail.com");
        assert_eq!(
            scan(&raw),
            vec!["REPLYTO_DOM_NEQ_FROM_DOM", "FREEMAIL_REPLYTO_NEQ_FROM_DOM"]
        );
        // From a free mailbox itself, replies to another: a person's habit.
        let raw = with("From: Al <al@yahoo.com>\r\nReply-To: al@gmail.com");
        assert_eq!(scan(&raw), vec!["REPLYTO_DOM_NEQ_FROM_DOM"]);
    }

    #[test]
    fn display_name_spoofing_and_reply_to() {
        let raw = CLEAN.replace(
            "From: Alice Example <alice@example.com>",
            "From: \"service@paypal.com\" <x@evil.example.net>\r\nReply-To: collect@other.example",
        );
        assert_eq!(
            scan(&raw),
            vec!["REPLYTO_DOM_NEQ_FROM_DOM", "SPOOF_DISPLAY_NAME"]
        );
        // Same organisation: not spoofing.
        let raw = CLEAN.replace(
            "From: Alice Example <alice@example.com>",
            "From: \"alice@www.example.com\" <alice@example.com>\r\nReply-To: help@lists.example.com",
        );
        assert!(scan(&raw).is_empty(), "{:?}", scan(&raw));
        let raw = CLEAN.replace(
            "From: Alice Example <alice@example.com>",
            "From: alice@example.com <alice@example.com>",
        );
        assert_eq!(scan(&raw), vec!["FROM_DN_EQ_ADDR"]);
        let raw = CLEAN.replace(
            "From: Alice Example <alice@example.com>",
            "From: \"bob@example.com\" <alice@example.com>",
        );
        assert_eq!(scan(&raw), vec!["FROM_NEQ_DISPLAY_NAME"]);
        let raw = CLEAN.replace(
            "From: Alice Example <alice@example.com>",
            "From: Alice<alice@example.com>",
        );
        assert_eq!(scan(&raw), vec!["R_NO_SPACE_IN_FROM"]);
    }

    #[test]
    fn envelope_rules_need_an_envelope() {
        let env = Envelope {
            mail_from: Some("<bounce-1@mailer.example.net>".into()),
            rcpts: vec!["carol@example.org".into()],
            ..Envelope::default()
        };
        assert_eq!(
            scan_env(&env, CLEAN),
            vec!["FROM_NEQ_ENVFROM", "FORGED_RECIPIENTS"]
        );
        // The null sender is not a mismatch.
        let env = Envelope {
            mail_from: Some(String::new()),
            ..Envelope::default()
        };
        assert!(scan_env(&env, CLEAN).is_empty());
    }

    #[test]
    fn recipients() {
        let raw = CLEAN.replace("To: Bob <bob@example.org>\r\n", "");
        assert_eq!(scan(&raw), vec!["MISSING_TO"]);
        let raw = CLEAN.replace("Bob <bob@example.org>", "undisclosed-recipients:;");
        assert_eq!(scan(&raw), vec!["R_UNDISC_RCPT"]);
        let to: Vec<String> = (0..8).map(|i| format!("user{i}@example.org")).collect();
        let raw = CLEAN.replace("Bob <bob@example.org>", &to.join(", "));
        assert_eq!(scan(&raw), vec!["SORTED_RECIPS"]);
        let mut to = to;
        to.swap(1, 5);
        let raw = CLEAN.replace("Bob <bob@example.org>", &to.join(", "));
        assert!(scan(&raw).is_empty());
    }

    #[test]
    fn mime_without_mime_version() {
        let html = CLEAN.replace(
            "Subject: Lunch",
            "Subject: Lunch\r\nContent-Type: text/html",
        );
        assert_eq!(scan(&html), vec!["MISSING_MIME_VERSION"]);
        let ok = html.replace("Subject: Lunch", "Subject: Lunch\r\nMIME-Version: 1.0");
        assert!(scan(&ok).is_empty());
        let plain = CLEAN.replace(
            "Subject: Lunch",
            "Subject: Lunch\r\nContent-Type: text/plain",
        );
        assert!(scan(&plain).is_empty());
    }

    #[test]
    fn forged_outlook_and_currency() {
        let raw = CLEAN.replace(
            "Subject: Lunch",
            "Subject: Lunch\r\nX-mailer: Microsoft Outlook Express 6.00.2600.0000",
        );
        assert_eq!(scan(&raw), vec!["MISSING_MIMEOLE"]);
        let ok = raw.replace(
            "Subject: Lunch",
            "Subject: Lunch\r\nX-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000",
        );
        assert!(scan(&ok).is_empty());
        for modern in [
            "Microsoft Office Outlook 12.0",
            "Microsoft Outlook 16.0",
            "Microsoft Outlook Express Macintosh Edition - 4.5 (0410)",
        ] {
            let raw = CLEAN.replace(
                "Subject: Lunch",
                &format!("Subject: Lunch\r\nX-Mailer: {modern}"),
            );
            assert!(scan(&raw).is_empty(), "{modern}");
        }
        let raw = CLEAN.replace("Subject: Lunch", "Subject: Win $1000 today");
        assert_eq!(scan(&raw), vec!["SUBJECT_HAS_CURRENCY"]);
    }

    #[test]
    fn repeated_unique_fields() {
        let raw = CLEAN.replace("Subject: Lunch", "Subject: Lunch\r\nSubject: Dinner");
        assert_eq!(scan(&raw), vec!["MULTIPLE_UNIQUE_HEADERS"]);
    }

    #[test]
    fn message_id_shapes() {
        for (mid, want) in [
            ("123@mail.example.com", "MID_MISSING_BRACKETS"),
            ("<123@localhost>", "MID_RHS_NOT_FQDN"),
            ("<123@[192.0.2.1]>", "MID_RHS_IP_LITERAL"),
            (
                "<alice@example.com.123@mail.example.com>",
                "MID_CONTAINS_FROM",
            ),
        ] {
            let raw = CLEAN.replace("<123.456@mail.example.com>", mid);
            assert_eq!(scan(&raw), vec![want], "{mid}");
        }
    }

    #[test]
    fn dates_against_the_time_of_receipt() {
        let future = CLEAN.replace("11:00:00", "23:00:00");
        assert_eq!(scan(&future), vec!["DATE_IN_FUTURE"]);
        let past = CLEAN.replace("Mon, 1 Jan 2024", "Fri, 1 Dec 2023");
        assert_eq!(scan(&past), vec!["DATE_IN_PAST"]);
        let bad = CLEAN.replace("Mon, 1 Jan 2024 11:00:00 +0000", "yesterday");
        assert_eq!(scan(&bad), vec!["INVALID_DATE"]);
        // The newest Received field's date is the time of receipt: an old
        // message read from a file is judged against when it arrived.
        let stored = format!(
            "Received: from a.example by mx.example.org; Fri, 1 Dec 2023 10:30:00 +0000\r\n{}",
            past
        );
        assert!(scan(&stored).is_empty(), "{:?}", scan(&stored));
        // A Received field dated in the future does not hide a future Date.
        let forged = format!(
            "Received: from a.example by mx.example.org; Mon, 1 Jan 2024 23:30:00 +0000\r\n{}",
            future
        );
        assert_eq!(scan(&forged), vec!["DATE_IN_FUTURE"]);
    }

    #[test]
    fn subject_shapes() {
        let raw = CLEAN.replace("Subject: Lunch", "Subject: RE: your invoice");
        assert_eq!(scan(&raw), vec!["FAKE_REPLY"]);
        let raw = CLEAN.replace(
            "Subject: Lunch",
            "Subject: Re: Lunch\r\nIn-Reply-To: <1@example.org>",
        );
        assert!(scan(&raw).is_empty());
        // "Free money" in base64.
        let raw = CLEAN.replace("Subject: Lunch", "Subject: =?utf-8?B?RnJlZSBtb25leQ==?=");
        assert_eq!(scan(&raw), vec!["SUBJ_EXCESS_BASE64"]);
        // "café" needs the encoding.
        let raw = CLEAN.replace("Subject: Lunch", "Subject: =?utf-8?B?Y2Fmw6k=?=");
        assert!(scan(&raw).is_empty());
        let raw = CLEAN.replace("Alice Example", "=?utf-8?B?QWxpY2U=?=");
        assert_eq!(scan(&raw), vec!["FROM_EXCESS_BASE64"]);
    }

    #[test]
    fn hostile_input_does_not_panic() {
        for raw in [
            "From: @\r\nMessage-ID: <@>\r\nSubject: =?\r\n\r\n",
            "From: \"a@\" <@b>\r\nMessage-ID: <<<>>>@@\r\nSubject: =?x?B?@@@?=\r\nDate: Mon, 99 Foo 99999 99:99:99 +9999\r\n\r\n",
            "From: é@é <é@é>\r\nTo: \r\nSubject: Ré\r\n\r\n",
            "From: \"Zoë@é.x\" <a@b.example>\r\nSubject: a€\r\n\r\n",
        ] {
            let _ = scan(raw);
        }
    }
}
