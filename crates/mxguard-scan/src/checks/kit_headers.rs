//! Header fields as bulk-mailing kits write them and mail programs never
//! do. A kit fills its header template per copy and per campaign: a
//! random word where the mailer's name goes (so no two copies share a
//! header fingerprint), a Message-ID made of a long random string glued to
//! some domain, an empty `<>` for the recipient it sends to by Bcc, a
//! display name decorated with pictographs, and, since 2023, the default
//! `*.onmicrosoft.com` domain of a throw-away Microsoft 365 trial tenant as
//! the sender. A mail program names itself with words and a version,
//! takes the Message-ID's right side from a host name, writes
//! "undisclosed-recipients:;" for Bcc-only mail, and an organisation mails
//! from its own domain once it has one.
//!
//! Reads a few header fields only, ASCII bytes, no regex.

use super::Check;
use crate::Task;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "headers";

/// Longest DNS label (RFC 1035); a longer "label" is no host's name.
const MAX_LABEL: usize = 63;

/// Bytes of a header value looked at.
const MAX_VALUE: usize = 2048;

/// The default domain of every Microsoft 365 tenant.
const MS_TENANT_SUFFIX: &str = ".onmicrosoft.com";

/// `[kit_headers]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KitHeadersConfig {
    pub enabled: bool,
}

impl Default for KitHeadersConfig {
    fn default() -> Self {
        KitHeadersConfig { enabled: true }
    }
}

impl Section for KitHeadersConfig {
    const KEY: &'static str = "kit_headers";
}

pub struct KitHeaders;

impl Check for KitHeaders {
    fn name(&self) -> &'static str {
        "kit_headers"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "XMAILER_RANDOM",
                1.5,
                GROUP,
                "X-Mailer is one generated token, not a program's name (a per-copy header hash buster)",
            ),
            SymbolDef::new(
                "MID_RHS_LONG_LABEL",
                1.0,
                GROUP,
                "Message-ID's right side has a label longer than 63 bytes: no host is named so",
            ),
            SymbolDef::new(
                "TO_EMPTY_ADDRESS",
                1.0,
                GROUP,
                "To holds an empty address <> (a kit's Bcc template; mail programs write undisclosed-recipients:;)",
            ),
            SymbolDef::new(
                "FROM_NAME_EMOJI",
                1.0,
                GROUP,
                "From's display name carries pictographs (emoji)",
            ),
            SymbolDef::new(
                "FROM_NAME_LONG_NUMBER",
                1.0,
                GROUP,
                "From's display name carries a run of nine or more digits (a per-copy number; names have none)",
            ),
            SymbolDef::new(
                "FROM_LOCAL_RANDOM",
                1.0,
                GROUP,
                "From's local part is generated: letters jumping between cases (ohHuKeI), a new sender per copy",
            ),
            SymbolDef::new(
                "REPLYTO_RESERVED_DOMAIN",
                1.0,
                GROUP,
                "Reply-To is at a reserved example domain (example.com, *.invalid, ...): a kit's default, no reply can arrive",
            ),
            SymbolDef::new(
                "FROM_MS_TENANT_DOMAIN",
                1.0,
                GROUP,
                "From or the envelope sender is at a Microsoft 365 tenant's default *.onmicrosoft.com domain",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        // One walk over the header fields, reading raw values in place.
        let raw = task.raw;
        let value = |h: &mail_parser::Header<'_>| {
            raw.get(h.offset_start as usize..h.offset_end as usize)
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or("")
        };
        let (mut mailer, mut message_id, mut return_path, mut to_empty) = (None, None, None, false);
        for h in task.headers() {
            let name = h.name();
            if name.eq_ignore_ascii_case("To") {
                to_empty |= head(value(h), MAX_VALUE).contains("<>");
            } else if message_id.is_none() && name.eq_ignore_ascii_case("Message-ID") {
                message_id = Some(value(h));
            } else if mailer.is_none() && name.eq_ignore_ascii_case("X-Mailer") {
                mailer = Some(value(h).trim());
            } else if return_path.is_none() && name.eq_ignore_ascii_case("Return-Path") {
                return_path = Some(value(h));
            }
        }
        if let Some(mailer) = mailer.filter(|m| is_generated(m)) {
            results.insert("XMAILER_RANDOM", vec![head(mailer, 64).to_string()]);
        }
        if message_id.is_some_and(has_long_label) {
            results.insert("MID_RHS_LONG_LABEL", vec![]);
        }
        if to_empty {
            results.insert("TO_EMPTY_ADDRESS", vec![]);
        }
        let from = task.message.from();
        let names = || from.iter().flat_map(|a| a.iter()).filter_map(|a| a.name());
        if names().any(has_pictograph) {
            results.insert("FROM_NAME_EMOJI", vec![]);
        }
        if names().any(has_long_number) {
            results.insert("FROM_NAME_LONG_NUMBER", vec![]);
        }
        let from_address = from
            .iter()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .map(str::to_string)
            .next_back();
        if let Some(local) = from_address
            .as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .map(|(l, _)| l)
            .filter(|l| is_random_local(l))
        {
            results.insert("FROM_LOCAL_RANDOM", vec![local.to_string()]);
        }
        if let Some(reply) = task
            .message
            .reply_to()
            .iter()
            .flat_map(|a| a.iter())
            .filter_map(|a| a.address())
            .find(|a| reserved_domain(a))
        {
            results.insert("REPLYTO_RESERVED_DOMAIN", vec![reply.to_string()]);
        }
        // The envelope sender, or where the last receiver recorded it.
        let sender = task.envelope.mail_from.as_deref().or_else(|| {
            return_path.map(|v| v.trim().trim_start_matches('<').trim_end_matches('>'))
        });
        if let Some(address) = [from_address.as_deref(), sender]
            .into_iter()
            .flatten()
            .find(|a| ms_tenant(a))
        {
            results.insert("FROM_MS_TENANT_DOMAIN", vec![address.to_string()]);
        }
    }
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn head(s: &str, max: usize) -> &str {
    crate::lead_text::head(s, max)
}

fn ms_tenant(address: &str) -> bool {
    let domain = address.rsplit_once('@').map_or("", |(_, d)| d.trim());
    domain.len() > MS_TENANT_SUFFIX.len()
        && domain
            .get(domain.len() - MS_TENANT_SUFFIX.len()..)
            .is_some_and(|s| s.eq_ignore_ascii_case(MS_TENANT_SUFFIX))
}

/// Domains reserved for examples and tests (RFC 2606, RFC 6761): mail
/// cannot be delivered there.
const RESERVED: &[&str] = &["example.com", "example.net", "example.org"];
const RESERVED_TLDS: &[&str] = &["example", "invalid", "test", "localhost"];

fn reserved_domain(address: &str) -> bool {
    let Some((_, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let tld = domain.rsplit('.').next().unwrap_or("");
    RESERVED
        .iter()
        .any(|r| domain == *r || domain.ends_with(&format!(".{r}")))
        || (domain.contains('.') && RESERVED_TLDS.contains(&tld))
}

/// A local part made by a generator: six or more letters only, starting
/// in lower case, with two or more capitals, three or more switches of
/// case and no run of four lower-case letters (`ohHuKeI`, `sjVVbMK`).
/// People write their names in lower case, or capitalise each word
/// (`ThosStew`, `DoNotUse`, `LoneWolf`: capital first, runs of letters).
fn is_random_local(local: &str) -> bool {
    let b = local.as_bytes();
    if b.len() < 6 || b.len() > 64 || !b.iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    if !b[0].is_ascii_lowercase() || b.iter().filter(|x| x.is_ascii_uppercase()).count() < 2 {
        return false;
    }
    let switches = b
        .windows(2)
        .filter(|w| w[0].is_ascii_uppercase() != w[1].is_ascii_uppercase())
        .count();
    let longest_lower = b
        .split(|x| !x.is_ascii_lowercase())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    switches >= 3 && longest_lower <= 3
}

/// Whether a Message-ID's right side has a label no DNS name can have.
fn has_long_label(id: &str) -> bool {
    let id = head(id, MAX_VALUE);
    let Some((_, rhs)) = id.rsplit_once('@') else {
        return false;
    };
    rhs.trim()
        .trim_end_matches('>')
        .split('.')
        .any(|label| label.len() > MAX_LABEL)
}

/// Emoji and other pictographs: Miscellaneous Symbols and Dingbats,
/// Miscellaneous Symbols and Pictographs through Symbols and Pictographs
/// Extended-A.
fn has_pictograph(name: &str) -> bool {
    name.chars()
        .take(256)
        .any(|c| matches!(c as u32, 0x2600..=0x27BF | 0x1F300..=0x1FAFF | 0x1F000..=0x1F2FF))
}

/// Digits in a row that no name has: a protocol or case number written
/// into each copy (`BB - Restitua seu IRPF [97603111350482725]`).
const LONG_NUMBER: usize = 9;

fn has_long_number(name: &str) -> bool {
    name.as_bytes()
        .iter()
        .take(512)
        .fold((0usize, false), |(run, found), b| {
            let run = if b.is_ascii_digit() { run + 1 } else { 0 };
            (run, found || run >= LONG_NUMBER)
        })
        .1
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
}

fn class(b: u8) -> Class {
    if b.is_ascii_lowercase() {
        Class::Lower
    } else if b.is_ascii_uppercase() {
        Class::Upper
    } else {
        Class::Digit
    }
}

/// Whether an X-Mailer value is one generated token. A mail program names
/// itself with words, and a version after a space, `/` or `.`
/// (`Microsoft Outlook 16.0`, `Evolution/1.0.2`, `PHPMailer 6.9.3`,
/// `Sylpheed`, `KMail`); a generator writes letters and digits at random:
/// `pyIaL`, `d8cAt`, `gqVkx`, or a run of 40 or more. A token of letters
/// and digits only is generated when it switches between lower case, upper
/// case and digits twice or more after its first letter, and either keeps
/// no run of three lower-case letters (no syllable of a word: `WebMail` and
/// `SendGrid` have them) or has digits between letters (`nny3y`).
pub fn is_generated(value: &str) -> bool {
    let b = value.as_bytes();
    if b.len() < 5 || b.len() > 512 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let has = |c: Class| b.iter().any(|x| class(*x) == c);
    if b.len() >= 40 && has(Class::Lower) && has(Class::Upper) && has(Class::Digit) {
        return true;
    }
    let switches = b[1..]
        .windows(2)
        .filter(|w| class(w[0]) != class(w[1]))
        .count();
    if switches < 2 {
        return false;
    }
    let longest_lower = b[1..]
        .split(|x| !x.is_ascii_lowercase())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let digits_inside = b
        .windows(3)
        .any(|w| w[0].is_ascii_alphabetic() && w[1].is_ascii_digit() && w[2].is_ascii_alphabetic());
    longest_lower <= 2 || digits_inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn generated_mailer_names() {
        for name in [
            "pyIaL",
            "BkXkD",
            "MRhIQ",
            "d8cAt",
            "gqVkx",
            "wqQD5",
            "HzmRb",
            "nny3y",
            "U7uGL",
            "qXWWwySZHRJlt2F",
            "u4dz1nhK4D8Y2T8vFGzuwUjfEgXXFgtvUmRzdKj0AVwXetqIqm6yy6oAferkg65",
        ] {
            assert!(is_generated(name), "{name}");
        }
        for name in [
            "Sylpheed",
            "Accucast",
            "Sendinblue",
            "Gmail",
            "KMail",
            "WebMail",
            "SendGrid",
            "MailChimp",
            "PHPMailer",
            "iPhone",
            "Evolution/1.0.2-5mdk",
            "Microsoft Outlook 16.0",
            "Smart_Send_3_1_6",
            "Mutt",
            "mutt",
            "yqoez", // may be random, but reads as a word: not counted
            "",
        ] {
            assert!(!is_generated(name), "{name}");
        }
    }

    #[test]
    fn generated_local_parts() {
        for l in ["ohHuKeI", "sjVVbMK", "msMqrRsA", "caQIUAgQI", "uJrkoOT"] {
            assert!(is_random_local(l), "{l}");
        }
        for l in [
            "ThosStew",
            "DoNotUse",
            "LoneWolf",
            "jane.doe",
            "jSmith",
            "johnDoeSmith",
            "info",
            "OcgeXDmYf",
            "ab1CdEf",
        ] {
            assert!(!is_random_local(l), "{l}");
        }
    }

    #[test]
    fn reserved_domains() {
        for a in [
            "no-reply@example.com",
            "a@mail.example.org",
            "a@shop.example",
            "a@x.invalid",
            "a@EXAMPLE.NET.",
        ] {
            assert!(reserved_domain(a), "{a}");
        }
        for a in [
            "a@example.co.uk",
            "a@myexample.com",
            "a@invalid",
            "a@example.com.br",
            "a",
        ] {
            assert!(!reserved_domain(a), "{a}");
        }
    }

    #[test]
    fn message_id_labels() {
        let long = "a".repeat(64);
        assert!(has_long_label(&format!("<x.y@{long}.example.edu>")));
        assert!(!has_long_label(&format!("<{long}@mail.example.com>")));
        assert!(!has_long_label("<no-at-sign>"));
        assert!(!has_long_label(&format!("<x@{}>", "a".repeat(63))));
    }

    fn scan(raw: &str, env: &Envelope) -> Vec<String> {
        let task = Task::new(env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        KitHeaders.run(&task, &mut r);
        let mut names: Vec<String> = r.hits.into_iter().map(|h| h.name).collect();
        names.sort();
        names
    }

    const CLEAN: &str = "From: Jane <jane@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Lunch\r\nMessage-ID: <1234.abcd@mail.example.com>\r\nX-Mailer: Microsoft Outlook 16.0\r\n\r\nHi Bob\r\n";

    #[test]
    fn each_symbol_on_its_header() {
        let env = Envelope::default();
        assert!(scan(CLEAN, &env).is_empty());
        let raw = CLEAN.replace("Microsoft Outlook 16.0", "pyIaL");
        assert_eq!(scan(&raw, &env), vec!["XMAILER_RANDOM"]);
        let raw = CLEAN.replace(
            "1234.abcd@mail.example.com",
            &format!("ZF3l@{}.example.edu", "Q1w".repeat(30)),
        );
        assert_eq!(scan(&raw, &env), vec!["MID_RHS_LONG_LABEL"]);
        let raw = CLEAN.replace("To: Bob <bob@example.org>", "To: Recipients <>");
        assert_eq!(scan(&raw, &env), vec!["TO_EMPTY_ADDRESS"]);
        let raw = CLEAN.replace("Bob <bob@example.org>", "undisclosed-recipients:;");
        assert!(scan(&raw, &env).is_empty());
        let raw = CLEAN.replace(
            "From: Jane <jane@example.com>",
            "From: =?UTF-8?B?8J+SsiBGcmVlIFNwaW5zIPCfkrI=?= <a@example.com>",
        );
        assert_eq!(scan(&raw, &env), vec!["FROM_NAME_EMOJI"]);
        let raw = CLEAN.replace("Jane <", "\"BB - Restitua seu IRPF [97603111350482725]\" <");
        assert_eq!(scan(&raw, &env), vec!["FROM_NAME_LONG_NUMBER"]);
        let raw = CLEAN.replace("Jane <", "\"Jane 12345678 Doe\" <");
        assert!(scan(&raw, &env).is_empty());
        let raw = CLEAN.replace("jane@example.com", "ohHuKeI@deck.example.com");
        assert_eq!(scan(&raw, &env), vec!["FROM_LOCAL_RANDOM"]);
        let raw = CLEAN.replace("To: Bob", "Reply-To: no-reply@example.com\r\nTo: Bob");
        assert_eq!(scan(&raw, &env), vec!["REPLYTO_RESERVED_DOMAIN"]);
        let raw = CLEAN.replace("jane@example.com", "info@contoso123.onmicrosoft.com");
        assert_eq!(scan(&raw, &env), vec!["FROM_MS_TENANT_DOMAIN"]);
        let raw = format!("Return-Path: <x@Tenant.OnMicrosoft.com>\r\n{CLEAN}");
        assert_eq!(scan(&raw, &env), vec!["FROM_MS_TENANT_DOMAIN"]);
        let env = Envelope {
            mail_from: Some("bounce@tenant.onmicrosoft.com".into()),
            ..Envelope::default()
        };
        assert_eq!(scan(CLEAN, &env), vec!["FROM_MS_TENANT_DOMAIN"]);
        // A domain that merely ends in the same letters.
        let raw = CLEAN.replace("jane@example.com", "jane@notonmicrosoft.com");
        assert!(scan(&raw, &Envelope::default()).is_empty());
    }
}
