//! mxguard's own events in the log: the lines `mxguard serve` writes
//! (tracing's text format, on stderr, in the journal or a log file) that
//! the report's mxguard section counts. The writing side is:
//!
//! - `scan: verdict` (mxguard_scan's service, one per scanned message):
//!   `queue_id="…" action="reject" score=… symbols=A,B greylist=passed dkim=signed`;
//! - `policy greylist: deferred` / `policy greylist: passed` (the policy
//!   server's triplet greylisting);
//! - `banned jail=NAME ip=…` (the ban engine).
//!
//! serve's JSON log lines (`--log-format json`) are turned into the same
//! text first ([`from_json`]).
//!
//! Lines are matched by their message text, not by position, so a syslog
//! or journal prefix, a timestamp or a span in front does not matter.
//! Nothing here runs on Postfix lines: only lines that are not Postfix's
//! (the `mxguard` syslog tag, or a bare tracing line) are looked at.

use crate::report::{MAX_KEYS, Mxguard, bump};
use memchr::memmem;
use std::borrow::Cow;

const MARKERS: [&[u8]; 5] = [
    b"scan: verdict",
    b"milter: early verdict",
    b"policy greylist: deferred",
    b"policy greylist: passed",
    b": banned ",
];

/// Whether `text` (after the time stamp) starts as tracing's text lines
/// do: the level, padded to five characters, then a space.
pub fn is_tracing_line(text: &[u8]) -> bool {
    let t = text.strip_prefix(b" ").unwrap_or(text);
    [&b"TRACE "[..], b"DEBUG ", b"INFO ", b"WARN ", b"ERROR "]
        .iter()
        .any(|l| t.starts_with(l))
}

/// Whether `text` holds one of the events [`count`] counts.
pub fn is_event(text: &[u8]) -> bool {
    MARKERS.iter().any(|m| memmem::find(text, m).is_some())
}

/// Counts `text` (a whole log line or its message) into `m` if it is one
/// of mxguard's events; false when it is none.
pub fn count(text: &[u8], m: &mut Mxguard) -> bool {
    if let Some(p) = memmem::find(text, b"scan: verdict") {
        let fields = &text[p + 13..];
        m.scanned += 1;
        let action = field(fields, b"action").unwrap_or(Cow::Borrowed("?"));
        bump(&mut m.actions, &action, 1);
        if let Some(symbols) = field(fields, b"symbols") {
            for s in symbols.split(',').filter(|s| !s.is_empty()) {
                if m.symbols.contains_key(s) || m.symbols.len() < MAX_KEYS {
                    bump(&mut m.symbols, s, 1);
                }
            }
        }
        match field(fields, b"greylist").as_deref() {
            Some("deferred") => m.score_greylist_deferred += 1,
            Some("passed") => m.score_greylist_passed += 1,
            _ => {}
        }
        if field(fields, b"dkim").as_deref() == Some("signed") {
            m.dkim_signed += 1;
        }
        return true;
    }
    // The milter's reply before DATA (`log_early` in mxguard-milter's
    // server: `stage=Rcpt action=reject forced_by=""`, the action written
    // bare, so up to the next field when it has a space).
    if let Some(p) = memmem::find(text, b"milter: early verdict") {
        let fields = &text[p + 21..];
        m.before_data += 1;
        let action = match memmem::find(fields, b" action=") {
            Some(a) if fields.get(a + 8) != Some(&b'"') => {
                let v = &fields[a + 8..];
                let end = memmem::find(v, b" forced_by=")
                    .or_else(|| memchr::memchr(b' ', v))
                    .unwrap_or(v.len());
                String::from_utf8_lossy(&v[..end])
            }
            _ => field(fields, b"action").unwrap_or(Cow::Borrowed("?")),
        };
        bump(&mut m.actions, &action, 1);
        return true;
    }
    if memmem::find(text, b"policy greylist: deferred").is_some() {
        m.policy_greylist_deferred += 1;
        return true;
    }
    if memmem::find(text, b"policy greylist: passed").is_some() {
        m.policy_greylist_passed += 1;
        return true;
    }
    if let Some(p) = memmem::find(text, b": banned ") {
        let jail = field(&text[p + 8..], b"jail").unwrap_or(Cow::Borrowed("?"));
        bump(&mut m.bans, &jail, 1);
        return true;
    }
    false
}

/// One of serve's JSON log lines (`--log-format json`: `timestamp`,
/// `level`, `target`, `message` and the event's fields at the top level)
/// as tracing's text format writes it: `stamp LEVEL target: message
/// key=value …`. None when it is not one.
pub fn from_json(v: &serde_json::Value) -> Option<String> {
    let o = v.as_object()?;
    let stamp = o.get("timestamp")?.as_str()?;
    let message = o.get("message")?.as_str()?;
    let level = o.get("level")?.as_str()?;
    let target = o.get("target").and_then(|t| t.as_str()).unwrap_or("-");
    let mut text = format!("{stamp} {level:>5} {target}: {message}");
    for (k, v) in o {
        if matches!(k.as_str(), "timestamp" | "level" | "target" | "message") {
            continue;
        }
        match v {
            // Debug-formatted fields arrive already quoted.
            serde_json::Value::String(s)
                if !s.contains(' ') || (s.starts_with('"') && s.ends_with('"')) =>
            {
                text.push_str(&format!(" {k}={s}"));
            }
            serde_json::Value::String(s) => text.push_str(&format!(" {k}={s:?}")),
            other => text.push_str(&format!(" {k}={other}")),
        }
    }
    Some(text)
}

/// The value of ` key=value` in tracing's text format: bare up to the
/// next space, or quoted (`"…"`, Rust's escapes for `"` and `\`).
pub fn field<'a>(s: &'a [u8], key: &[u8]) -> Option<Cow<'a, str>> {
    let mut from = 0;
    while let Some(p) = memmem::find(&s[from..], key) {
        let at = from + p;
        from = at + key.len();
        let before_ok = at == 0 || s[at - 1] == b' ';
        if !before_ok || s.get(from) != Some(&b'=') {
            continue;
        }
        let v = &s[from + 1..];
        if let Some(q) = v.strip_prefix(b"\"") {
            let mut out = Vec::new();
            let mut i = 0;
            while i < q.len() {
                match q[i] {
                    b'"' => return Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned())),
                    b'\\' if i + 1 < q.len() => {
                        out.push(q[i + 1]);
                        i += 2;
                    }
                    c => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            return None; // no closing quote: not a value
        }
        let end = memchr::memchr(b' ', v).unwrap_or(v.len());
        return Some(String::from_utf8_lossy(&v[..end]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_greylisting_and_bans() {
        let mut m = Mxguard::default();
        for line in [
            &b"2026-12-07T12:00:01.123456Z  INFO mxguard_scan::service: scan: verdict queue_id=\"4ABC\" action=\"reject\" score=1000.0 symbols=GTUBE,R_SPF_NA greylist=- dkim=-"[..],
            b"Dec  7 12:00:02 mx mxguard[77]: 2026-12-07T12:00:02Z  INFO mxguard_scan::service: scan: verdict queue_id=\"-\" action=\"no action\" score=0.5 symbols=R_SPF_NA greylist=- dkim=signed",
            b"2026-12-07T12:00:03Z  INFO mxguard_scan::service: scan: verdict queue_id=\"4ABD\" action=\"greylist\" score=5.0 symbols=T_GREY greylist=deferred dkim=-",
            b"2026-12-07T12:00:04Z  INFO mxguard_scan::service: scan: verdict queue_id=\"4ABE\" action=\"no action\" score=5.0 symbols=T_GREY,GREYLIST greylist=passed dkim=-",
            b"2026-12-07T12:00:05Z  INFO mxguard_policy::engine: policy greylist: deferred client=192.0.2.1",
            b"2026-12-07T12:00:06Z  INFO mxguard_policy::engine: policy greylist: passed client=192.0.2.1 delayed=301",
            b"2026-12-07T12:00:07Z  WARN mxguard_ban::jail: banned jail=sshd ip=192.0.2.9 until=Some(1) count=1",
            b"2026-12-07T12:00:08Z  WARN mxguard_ban::jail: banned jail=postfix ip=192.0.2.8 until=None count=2",
        ] {
            assert!(count(line, &mut m), "{}", String::from_utf8_lossy(line));
        }
        assert!(!count(
            b"2026-12-07T12:00:09Z  INFO mxguard::serve: milter listening",
            &mut m
        ));
        assert_eq!(m.scanned, 4);
        assert_eq!(m.actions.get("no action"), Some(&2));
        assert_eq!(m.actions.get("reject"), Some(&1));
        assert_eq!(m.symbols.get("R_SPF_NA"), Some(&2));
        assert_eq!(m.symbols.get("T_GREY"), Some(&2));
        assert_eq!((m.score_greylist_deferred, m.score_greylist_passed), (1, 1));
        assert_eq!(
            (m.policy_greylist_deferred, m.policy_greylist_passed),
            (1, 1)
        );
        assert_eq!(m.bans.get("sshd"), Some(&1));
        assert_eq!(m.bans.get("postfix"), Some(&1));
        assert_eq!(m.dkim_signed, 1);
    }

    #[test]
    fn milter_replies_before_data_count_by_action() {
        let mut m = Mxguard::default();
        for line in [
            &b"2026-12-07T12:00:01.5Z  INFO mxguard_milter::server: milter: early verdict session=3 ip=Some(192.0.2.1) stage=Rcpt action=reject forced_by=\"\""[..],
            b"Dec  7 12:00:02 mx mxguard[77]: 2026-12-07T12:00:02Z  INFO mxguard_milter::server: milter: early verdict session=4 ip=Some(192.0.2.2) stage=Connect action=soft reject forced_by=\"RBL\"",
            b"2026-12-07T12:00:03Z  INFO mxguard_milter::server: milter: early verdict session=5 ip=None stage=Helo action=\"soft reject\"",
        ] {
            assert!(count(line, &mut m), "{}", String::from_utf8_lossy(line));
        }
        assert_eq!((m.before_data, m.scanned), (3, 0));
        assert_eq!(m.actions.get("reject"), Some(&1));
        assert_eq!(m.actions.get("soft reject"), Some(&2));
        // serve's JSON log line of the same event reads the same.
        let v = serde_json::json!({"timestamp": "2026-12-07T12:00:04Z", "level": "INFO",
            "target": "mxguard_milter::server", "message": "milter: early verdict",
            "session": 6, "ip": "Some(192.0.2.3)", "stage": "MailFrom", "action": "reject",
            "forced_by": "\"\""});
        assert!(count(from_json(&v).unwrap().as_bytes(), &mut m));
        assert_eq!((m.before_data, m.actions.get("reject")), (4, Some(&2)));
    }

    #[test]
    fn json_log_lines_read_as_text_ones() {
        let mut m = Mxguard::default();
        for line in [
            r#"{"timestamp":"2026-12-07T12:00:01.5Z","level":"INFO","message":"scan: verdict","queue_id":"\"4ABC\"","action":"\"no action\"","score":0.5,"symbols":"R_SPF_NA","greylist":"passed","dkim":"signed","target":"mxguard_scan::service"}"#,
            r#"{"timestamp":"2026-12-07T12:00:02Z","level":"WARN","message":"banned","jail":"sshd","ip":"192.0.2.9","until":"Some(1)","count":1,"target":"mxguard_ban::jail"}"#,
        ] {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let text = from_json(&v).unwrap();
            assert!(text.starts_with("2026-12-07T12:00:0"), "{text}");
            assert!(count(text.as_bytes(), &mut m), "{text}");
        }
        assert_eq!(m.actions.get("no action"), Some(&1));
        assert_eq!((m.score_greylist_passed, m.dkim_signed), (1, 1));
        assert_eq!(m.bans.get("sshd"), Some(&1));
        assert!(from_json(&serde_json::json!({"MESSAGE": "x"})).is_none());
    }

    #[test]
    fn fields_quoted_bare_and_hostile() {
        let s = br#" queue_id="a \"b\" c" action=reject x=1"#;
        assert_eq!(field(s, b"queue_id").as_deref(), Some(r#"a "b" c"#));
        assert_eq!(field(s, b"action").as_deref(), Some("reject"));
        assert_eq!(field(s, b"id"), None, "part of another key");
        assert_eq!(field(b" action=\"open", b"action"), None);
        assert_eq!(field(b" action=", b"action").as_deref(), Some(""));
        assert_eq!(field(b"", b"action"), None);
    }
}
