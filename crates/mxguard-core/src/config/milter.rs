//! `[milter]`: the milter front end's listener, limits and headers.
//!
//! Everything here has a working default; `mxguard serve` with no `[milter]`
//! section listens on 127.0.0.1:11336 for Postfix
//! (`smtpd_milters = inet:127.0.0.1:11336`, `milter_protocol = 6`).

use super::units::{ByteSize, Millis};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A scan's memory, counted against `[milter] memory_budget`, as a multiple
/// of the message's size: the message itself, and three times its size for
/// what the scan builds from it (decoded parts, text, tokens, the autolearn
/// copy). Conservative for ordinary mail (a base64 attachment decodes to 3/4
/// of its size); the MIME parse bounds its own work per part and header so
/// that hostile shapes stay within it too.
pub const SCAN_MEMORY_FACTOR: u64 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilterConfig {
    /// Run the milter in `mxguard serve`.
    pub enabled: bool,
    /// `host:port` for TCP, or an absolute path for a unix socket.
    pub listen: String,
    /// Permissions of a unix socket, octal, e.g. "0660". Ignored for TCP.
    pub socket_mode: String,
    /// Messages larger than this (headers and body as received) are not
    /// scanned; `oversize_action` says what happens to them instead.
    pub max_message_size: ByteSize,
    /// What to do with a message over `max_message_size`: `accept` it
    /// unscanned with an `oversize_header`, or `tempfail` it (451 4.3.4).
    pub oversize_action: OversizeAction,
    /// The header added to a message accepted unscanned for its size.
    pub oversize_header: String,
    /// How long to wait for option negotiation after Postfix connects.
    pub negotiate_timeout: Millis,
    /// How long to wait for the next command outside the message content:
    /// connect, HELO, MAIL, RCPT, and between messages. Postfix paces these
    /// by the SMTP client, so keep it above Postfix's `smtpd_timeout` (300s).
    pub command_timeout: Millis,
    /// How long to wait for the next header or body packet of a message.
    pub content_timeout: Millis,
    /// How long one scan may take; past it the message is tempfailed
    /// (451 4.7.1) and the scan's result, when it comes, is dropped.
    pub scan_timeout: Millis,
    /// While a scan runs, a PROGRESS packet is sent this often so Postfix's
    /// `milter_content_timeout` does not expire.
    pub progress_interval: Millis,
    /// On shutdown, how long sessions in the middle of a message get to
    /// finish it before they are cut.
    pub shutdown_grace: Millis,
    /// At most this many MTA connections are served at once. A connection
    /// past the cap is accepted and closed at once, and Postfix applies its
    /// `milter_default_action` to that SMTP session. Follows a reload.
    pub max_sessions: usize,
    /// At most this many scans are in their CPU phase (parse, inline
    /// checks) at once (0: twice the number of CPUs); a scan waiting on its
    /// waiting checks (DNS, store) holds no slot. A message that gets no
    /// slot within `scan_timeout` is tempfailed as a timed-out scan is.
    /// Read at start; a reload does not change it.
    pub max_scans: usize,
    /// The most memory the messages in flight may hold at once: every
    /// session's buffered message, plus [`SCAN_MEMORY_FACTOR`] times the
    /// size of each message being scanned (the scan's working memory). A
    /// message that finds no room waits up to `memory_wait`, then is
    /// tempfailed (451 4.3.2; Postfix retries it). The last eighth is kept
    /// for messages of up to a 64th of it, so ordinary mail still passes
    /// while large messages wait. Must hold `max_message_size` times
    /// [`SCAN_MEMORY_FACTOR`] in seven eighths. Read at start.
    pub memory_budget: ByteSize,
    /// How long a message waits for room in `memory_budget`, while it is
    /// received (the MTA is not read meanwhile) and again before its scan,
    /// before it is tempfailed. Keep it well under Postfix's
    /// `milter_content_timeout` (300s).
    pub memory_wait: Millis,
    /// SMTP text of a reject (554 5.7.1) when the verdict carries none.
    pub reject_message: String,
    /// SMTP text of a soft reject or greylist (451 4.7.1) when the verdict
    /// carries none.
    pub tempfail_message: String,
    /// Reason given to Postfix with a quarantine (shown in its log and
    /// `postcat`) when the verdict carries no message.
    pub quarantine_reason: String,
    /// The new Subject for `rewrite subject`: `%s` is the old subject.
    pub subject_template: String,
    /// The spam headers, rspamd's milter_headers routines.
    pub headers: MilterHeaders,
}

impl Default for MilterConfig {
    fn default() -> Self {
        MilterConfig {
            enabled: true,
            listen: "127.0.0.1:11336".to_string(),
            socket_mode: "0666".to_string(),
            max_message_size: ByteSize(50 * 1024 * 1024),
            oversize_action: OversizeAction::Accept,
            oversize_header: "X-Mxguard-Unscanned".to_string(),
            negotiate_timeout: Millis(30_000),
            command_timeout: Millis(600_000),
            content_timeout: Millis(300_000),
            scan_timeout: Millis(120_000),
            progress_interval: Millis(3_000),
            shutdown_grace: Millis(10_000),
            max_sessions: 500,
            max_scans: 0,
            memory_budget: ByteSize(256 * 1024 * 1024),
            memory_wait: Millis(30_000),
            reject_message: "Spam message rejected".to_string(),
            tempfail_message: "Try again later".to_string(),
            quarantine_reason: "Quarantined by mxguard".to_string(),
            subject_template: "***SPAM*** %s".to_string(),
            headers: MilterHeaders::default(),
        }
    }
}

impl MilterConfig {
    /// Checks what the types alone cannot. Returns `(key path, message)`
    /// pairs, e.g. `("milter.socket_mode", "...")`; empty when all is well.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let mut err = |key: &str, message: String| errors.push((format!("milter.{key}"), message));
        if self.listen.trim().is_empty() {
            err(
                "listen",
                "must be host:port or an absolute socket path".into(),
            );
        } else if !self.listen.starts_with('/') && !self.listen.contains(':') {
            err(
                "listen",
                format!(
                    "`{}` is neither host:port nor an absolute socket path",
                    self.listen
                ),
            );
        }
        if parse_mode(&self.socket_mode).is_none() {
            err(
                "socket_mode",
                format!("`{}` is not an octal mode like 0660", self.socket_mode),
            );
        }
        if self.max_message_size.0 == 0 {
            err(
                "max_message_size",
                "0 leaves every message unscanned (or tempfailed, with oversize_action = \
                 \"tempfail\"); give a size like \"50M\", or set enabled = false to turn \
                 the milter off"
                    .into(),
            );
        }
        if self.scan_claim(self.max_message_size.0) > self.largest_claim() {
            let need = self
                .max_message_size
                .0
                .saturating_mul(SCAN_MEMORY_FACTOR)
                .saturating_mul(8)
                .div_ceil(7)
                .div_ceil(1 << 20);
            err(
                "memory_budget",
                format!(
                    "{} bytes cannot hold the scan of one message of max_message_size ({} \
                     bytes): a scan counts {SCAN_MEMORY_FACTOR} times the message's size, within \
                     seven eighths of the budget; raise memory_budget to at least \"{need}M\" or \
                     lower max_message_size",
                    self.memory_budget.0, self.max_message_size.0,
                ),
            );
        }
        if !valid_header_name(&self.oversize_header) {
            err("oversize_header", bad_header(&self.oversize_header));
        }
        if !valid_header_name(&self.headers.virus_header) {
            err(
                "headers.virus_header",
                bad_header(&self.headers.virus_header),
            );
        }
        for (key, v) in [
            ("negotiate_timeout", self.negotiate_timeout),
            ("command_timeout", self.command_timeout),
            ("content_timeout", self.content_timeout),
            ("scan_timeout", self.scan_timeout),
            ("progress_interval", self.progress_interval),
            ("memory_wait", self.memory_wait),
        ] {
            if v.0 == 0 {
                err(key, "must be more than zero".into());
            }
        }
        if self.max_sessions == 0 {
            err(
                "max_sessions",
                "must be more than zero (0 would refuse every connection); give the \
                 most MTA connections to serve at once, like 500"
                    .into(),
            );
        }
        if self.subject_template.matches("%s").count() > 1 {
            err(
                "subject_template",
                "may hold `%s` (the old subject) at most once".into(),
            );
        }
        if self.headers.spam_level_char.chars().count() != 1 {
            err(
                "headers.spam_level_char",
                "must be exactly one character".into(),
            );
        }
        for (key, text) in [
            ("reject_message", &self.reject_message),
            ("tempfail_message", &self.tempfail_message),
            ("quarantine_reason", &self.quarantine_reason),
            ("subject_template", &self.subject_template),
        ] {
            if text.contains('\0') {
                err(key, "must not contain a NUL character".into());
            }
        }
        errors
    }

    /// The unix socket permissions as a number (`socket_mode` parsed as octal).
    pub fn socket_mode_bits(&self) -> Option<u32> {
        parse_mode(&self.socket_mode)
    }

    /// How many scans may run at once: `max_scans`, or twice the number of
    /// CPUs when it is 0.
    pub fn scan_slots(&self) -> usize {
        if self.max_scans > 0 {
            self.max_scans
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get() * 2)
        }
    }

    /// What the scan of a message of `size` bytes claims of `memory_budget`.
    pub fn scan_claim(&self, size: u64) -> u64 {
        size.saturating_mul(SCAN_MEMORY_FACTOR)
    }

    /// The largest claim one message may hold: seven eighths of
    /// `memory_budget` (the rest is kept for small messages).
    pub fn largest_claim(&self) -> u64 {
        self.memory_budget.0 - self.memory_budget.0 / 8
    }

    /// True when an oversized message is tempfailed rather than accepted.
    pub fn oversize_tempfails(&self) -> bool {
        self.oversize_action == OversizeAction::Tempfail
    }
}

impl MilterHeaders {
    /// Which copies (1-based, from the top) of a header that occurs
    /// `copies` times in the message `remove` deletes, highest first, so
    /// that deleting one does not shift the index of the next.
    pub fn copies_to_remove(&self, copies: u32) -> Vec<u32> {
        self.remove.copies(copies)
    }
}

impl HeaderRemove {
    /// Which copies (1-based, from the top) of a header that occurs
    /// `copies` times this deletes, highest first.
    pub fn copies(self, copies: u32) -> Vec<u32> {
        match self {
            HeaderRemove::None => Vec::new(),
            HeaderRemove::All => (1..=copies).rev().collect(),
            HeaderRemove::Nth(n) => {
                let c = i64::from(copies);
                let idx = if n > 0 { n } else { c + 1 + n };
                if idx >= 1 && idx <= c {
                    vec![idx as u32]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// Parses an octal permission string for a unix socket, like `0660`.
pub fn parse_mode(mode: &str) -> Option<u32> {
    let m = mode.trim();
    let m = m.strip_prefix("0o").unwrap_or(m);
    if m.is_empty() {
        return None;
    }
    u32::from_str_radix(m, 8).ok().filter(|v| *v <= 0o7777)
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

fn bad_header(name: &str) -> String {
    format!("`{name}` is not a header name (printable ASCII, no spaces or colons)")
}

/// What happens to a message too large to scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizeAction {
    /// Accept it unscanned, with `oversize_header` saying so.
    Accept,
    /// Answer 451 4.3.4: the sender retries (and may give up).
    Tempfail,
}

/// `[milter.headers]`: which of rspamd's milter_headers routines run, in
/// rspamd's formats.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilterHeaders {
    /// `X-Spam-Flag: YES`, only when the action counts as spam.
    pub spam_flag: bool,
    /// `X-Spam-Level`: one `spam_level_char` per whole point of score, when
    /// the score is 1 or more (capped at 100 characters).
    pub spam_level: bool,
    /// The character `X-Spam-Level` repeats.
    pub spam_level_char: String,
    /// `X-Spam-Status: Yes, score=S required=R` (`No, ...` for ham).
    pub spam_status: bool,
    /// `X-Spamd-Result: default: False [S / R]` and every symbol as
    /// `NAME(score)[options]`, folded.
    pub spamd_result: bool,
    /// Add `virus_header` when one of `virus_symbols` fired.
    pub virus: bool,
    /// The header naming the viruses found (their symbols' options).
    pub virus_header: String,
    /// Symbols that mean "a virus was found".
    pub virus_symbols: Vec<String>,
    /// `Authentication-Results`, built from the SPF, DKIM, DMARC and ARC
    /// symbols (rspamd's names) and the SMTP AUTH login; not added when
    /// none of them is known.
    pub authentication_results: bool,
    /// The authserv-id of `Authentication-Results`; empty means the MTA's
    /// host name (Postfix's `j` macro, i.e. `myhostname`).
    pub authserv_id: String,
    /// Copies of these headers already in the message, which a sender could
    /// have forged, are deleted: `true` or `"all"` (or 0) deletes every copy,
    /// `N` only the Nth from the top, `-N` the Nth from the bottom (rspamd's
    /// `remove = 1`), `false` none.
    pub remove: HeaderRemove,
    /// Add no headers (and delete none) for clients on 127.0.0.0/8 or ::1.
    pub skip_local: bool,
    /// Add no headers (and delete none) for SMTP AUTH senders, so outgoing
    /// mail does not carry the scan's details.
    pub skip_authenticated: bool,
}

impl Default for MilterHeaders {
    fn default() -> Self {
        MilterHeaders {
            spam_flag: true,
            spam_level: true,
            spam_level_char: "*".to_string(),
            spam_status: true,
            spamd_result: true,
            virus: true,
            virus_header: "X-Virus-Check".to_string(),
            virus_symbols: vec!["CLAM_VIRUS".to_string()],
            authentication_results: true,
            authserv_id: String::new(),
            remove: HeaderRemove::All,
            skip_local: false,
            skip_authenticated: true,
        }
    }
}

/// Which copies of a header already in the message are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRemove {
    /// Keep them all.
    None,
    /// Delete every copy.
    All,
    /// Delete only the Nth copy: 1 is the topmost, -1 the bottom one.
    Nth(i64),
}

struct RemoveVisitor;

impl Visitor<'_> for RemoveVisitor {
    type Value = HeaderRemove;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("true, false, \"all\" or a copy number like 1 or -1")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<HeaderRemove, E> {
        Ok(if v {
            HeaderRemove::All
        } else {
            HeaderRemove::None
        })
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<HeaderRemove, E> {
        Ok(if v == 0 {
            HeaderRemove::All
        } else {
            HeaderRemove::Nth(v)
        })
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<HeaderRemove, E> {
        i64::try_from(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            .and_then(|v| self.visit_i64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<HeaderRemove, E> {
        match v.trim().to_ascii_lowercase().as_str() {
            "all" | "true" => Ok(HeaderRemove::All),
            "none" | "false" => Ok(HeaderRemove::None),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for HeaderRemove {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RemoveVisitor)
    }
}

impl Serialize for HeaderRemove {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            HeaderRemove::None => s.serialize_bool(false),
            HeaderRemove::All => s.serialize_str("all"),
            HeaderRemove::Nth(n) => s.serialize_i64(*n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MilterConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_are_valid_and_documented_values_parse() {
        let d = MilterConfig::default();
        assert!(d.validate().is_empty(), "{:?}", d.validate());
        assert_eq!(d.socket_mode_bits(), Some(0o666));
        let c = parse(
            r#"
listen = "/run/mxguard/milter.sock"
socket_mode = "0660"
max_message_size = "20M"
oversize_action = "tempfail"
scan_timeout = "30s"
progress_interval = "500ms"
max_sessions = 100
max_scans = 4
[headers]
remove = 1
skip_local = true
virus_symbols = ["CLAM_VIRUS", "FPROT_VIRUS"]
"#,
        );
        assert_eq!(c.max_message_size, ByteSize(20 << 20));
        assert_eq!(c.oversize_action, OversizeAction::Tempfail);
        assert_eq!(c.scan_timeout, Millis(30_000));
        assert_eq!(c.progress_interval, Millis(500));
        assert_eq!((c.max_sessions, c.max_scans, c.scan_slots()), (100, 4, 4));
        assert_eq!(d.max_sessions, 500);
        assert!(d.scan_slots() >= 2);
        assert_eq!(c.headers.remove, HeaderRemove::Nth(1));
        assert!(c.headers.skip_local);
        assert!(c.validate().is_empty());
    }

    #[test]
    fn the_memory_budget_must_hold_one_scan_of_the_largest_message() {
        let d = MilterConfig::default();
        // 50 MiB × 4 = 200 MiB within 7/8 of 256 MiB.
        assert_eq!(d.scan_claim(d.max_message_size.0), 200 << 20);
        assert!(d.scan_claim(d.max_message_size.0) <= d.largest_claim());
        let c = parse("memory_budget = \"128M\"\nmemory_wait = \"5s\"\n");
        assert_eq!(c.memory_wait, Millis(5000));
        let errors = c.validate();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "milter.memory_budget");
        assert!(errors[0].1.contains("at least \"229M\""), "{}", errors[0].1);
        let fits = parse("memory_budget = \"229M\"\n");
        assert!(fits.validate().is_empty(), "{:?}", fits.validate());
        let smaller = parse("memory_budget = \"64M\"\nmax_message_size = \"10M\"\n");
        assert!(smaller.validate().is_empty(), "{:?}", smaller.validate());
        let no_wait = parse("memory_wait = 0\n");
        assert_eq!(no_wait.validate()[0].0, "milter.memory_wait");
    }

    #[test]
    fn remove_spellings() {
        for (text, want) in [
            ("remove = true", HeaderRemove::All),
            ("remove = \"all\"", HeaderRemove::All),
            ("remove = 0", HeaderRemove::All),
            ("remove = false", HeaderRemove::None),
            ("remove = -1", HeaderRemove::Nth(-1)),
        ] {
            let c = parse(&format!("[headers]\n{text}\n"));
            assert_eq!(c.headers.remove, want, "{text}");
            let back = toml::to_string(&c).unwrap();
            assert_eq!(parse(&back).headers.remove, want);
        }
        assert!(toml::from_str::<MilterConfig>("[headers]\nremove = \"x\"\n").is_err());
        let mut h = MilterHeaders::default();
        assert_eq!(h.copies_to_remove(3), [3, 2, 1]);
        assert!(h.copies_to_remove(0).is_empty());
        h.remove = HeaderRemove::Nth(1);
        assert_eq!(h.copies_to_remove(3), [1]);
        h.remove = HeaderRemove::Nth(-1);
        assert_eq!(h.copies_to_remove(3), [3]);
        h.remove = HeaderRemove::Nth(4);
        assert!(h.copies_to_remove(3).is_empty());
        h.remove = HeaderRemove::None;
        assert!(h.copies_to_remove(3).is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported() {
        assert!(toml::from_str::<MilterConfig>("lisen = \"x\"\n").is_err());
        assert!(toml::from_str::<MilterConfig>("[headers]\nbogus = 1\n").is_err());
        let c = parse(
            "socket_mode = \"999\"\nlisten = \"nowhere\"\nmax_sessions = 0\nsubject_template = \"%s %s\"\n[headers]\nvirus_header = \"X Bad\"\n",
        );
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "milter.listen",
                "milter.socket_mode",
                "milter.headers.virus_header",
                "milter.max_sessions",
                "milter.subject_template"
            ]
        );
        let errors = c.validate();
        let (_, why) = errors
            .iter()
            .find(|(k, _)| k == "milter.max_sessions")
            .unwrap();
        assert!(why.contains("more than zero"), "{why}");
    }
}
