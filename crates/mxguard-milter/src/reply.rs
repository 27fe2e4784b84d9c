//! Verdict → milter replies, and the spam headers in rspamd's formats.
//!
//! | action | reply |
//! |---|---|
//! | reject | REPLYCODE `554 5.7.1` with the verdict's `smtp_message` or `reject_message` |
//! | soft reject, greylist | REPLYCODE `451 4.7.1` with the message or `tempfail_message` |
//! | discard | DISCARD |
//! | quarantine | headers, QUARANTINE with the message or `quarantine_reason`, ACCEPT |
//! | rewrite subject | headers, Subject changed by `subject_template` (added if missing), ACCEPT |
//! | add header, no action | headers, ACCEPT |
//!
//! Before DATA ([`early_reply`]): a reject or tempfail answers at its own
//! stage; a forced accept at connect, HELO or MAIL FROM answers ACCEPT (the
//! MTA stops calling the milter for the connection or the message); any
//! other forced action is kept and applied at end of message without a scan.

use crate::codec::{Reply, action};
use mxguard_core::config::MilterConfig;
use mxguard_core::{Action, Envelope, SmtpStage, SymbolResult, Verdict};
use std::collections::HashMap;
use std::net::IpAddr;

/// `X-Spam-Level` never gets longer than this.
pub const MAX_SPAM_LEVEL: usize = 100;

/// What the milter knows about the message besides the verdict.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    pub envelope: &'a Envelope,
    /// How often each of [`owned_headers`] occurs, by lower-cased name
    /// (at most [`MAX_COUNTED_COPIES`]).
    pub header_counts: &'a HashMap<String, u32>,
    /// The first Subject's value as received; `None` when there is none.
    pub subject: Option<&'a [u8]>,
    /// `HDR_LEADSPC` was negotiated: values go out with their leading space.
    pub leading_space: bool,
    /// The MTA's host name (Postfix's `j` macro), for Authentication-Results.
    pub mta_hostname: Option<&'a str>,
    /// The `action::*` bits the MTA granted; modifications outside them are
    /// not sent.
    pub actions: u32,
}

/// How a verdict made before DATA is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Early {
    /// Answer now, at this stage.
    Respond(Reply),
    /// Go on (CONTINUE), and apply the verdict at end of message without
    /// scanning.
    Defer,
}

/// The answer to a verdict that a check gave at an SMTP stage before DATA.
pub fn early_reply(config: &MilterConfig, stage: SmtpStage, verdict: &Verdict) -> Early {
    match verdict.action {
        Action::Reject | Action::SoftReject | Action::Greylist => {
            Early::Respond(smtp_rejection(config, verdict))
        }
        Action::NoAction
            if matches!(
                stage,
                SmtpStage::Connect | SmtpStage::Helo | SmtpStage::MailFrom
            ) =>
        {
            Early::Respond(Reply::Accept)
        }
        _ => Early::Defer,
    }
}

/// REPLYCODE for a reject (554 5.7.1) or a tempfail (451 4.7.1).
fn smtp_rejection(config: &MilterConfig, verdict: &Verdict) -> Reply {
    let (code, enhanced, default) = if verdict.action == Action::Reject {
        (554, "5.7.1", config.reject_message.as_str())
    } else {
        (451, "4.7.1", config.tempfail_message.as_str())
    };
    let text = verdict
        .smtp_message()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or(default);
    Reply::smtp(code, enhanced, text).unwrap_or(if code == 554 {
        Reply::Reject
    } else {
        Reply::Tempfail
    })
}

/// The replies at end of message: modifications first, then the final one.
pub fn final_replies(
    config: &MilterConfig,
    verdict: &Verdict,
    facts: &MessageFacts<'_>,
) -> Vec<Reply> {
    let mut out = Vec::new();
    match verdict.action {
        Action::Reject | Action::SoftReject | Action::Greylist => {
            out.push(smtp_rejection(config, verdict));
            return out;
        }
        Action::Discard => {
            out.push(Reply::Discard);
            return out;
        }
        _ => {}
    }
    header_replies(config, Some(verdict), facts, &mut out);
    if verdict.action == Action::RewriteSubject {
        out.push(subject_reply(config, facts));
    }
    if verdict.action == Action::Quarantine {
        let reason = verdict
            .smtp_message()
            .filter(|m| !m.trim().is_empty())
            .unwrap_or(&config.quarantine_reason);
        out.push(Reply::Quarantine(one_line(reason)));
    }
    out.retain(|r| allowed(r, facts.actions));
    out.push(Reply::Accept);
    out
}

/// The replies for a message over `max_message_size`: a tempfail, or the
/// forged spam headers removed, a header saying it was not scanned, ACCEPT.
pub fn oversize_replies(config: &MilterConfig, size: u64, facts: &MessageFacts<'_>) -> Vec<Reply> {
    if config.oversize_tempfails() {
        return vec![
            Reply::smtp(451, "4.3.4", "Message too large to scan, try again later")
                .unwrap_or(Reply::Tempfail),
        ];
    }
    let mut out = Vec::new();
    header_replies(config, None, facts, &mut out);
    out.push(Reply::AddHeader {
        name: config.oversize_header.clone(),
        value: value_bytes(
            &format!(
                "not scanned: {size} bytes, over the {}-byte limit",
                config.max_message_size.0
            ),
            facts.leading_space,
        ),
    });
    out.retain(|r| allowed(r, facts.actions));
    out.push(Reply::Accept);
    out
}

/// The answer when the scan did not finish in time or failed.
pub fn scan_failed_reply() -> Reply {
    Reply::smtp(
        451,
        "4.7.1",
        "Message could not be scanned, try again later",
    )
    .unwrap_or(Reply::Tempfail)
}

/// The answer when the memory budget had no room for the message within
/// `memory_wait`: the MTA keeps the message and retries it later.
pub fn busy_reply() -> Reply {
    Reply::smtp(
        451,
        "4.3.2",
        "Too busy to scan the message now, try again later",
    )
    .unwrap_or(Reply::Tempfail)
}

fn allowed(r: &Reply, actions: u32) -> bool {
    let need = match r {
        Reply::AddHeader { .. } | Reply::InsHeader { .. } => action::ADD_HEADERS,
        Reply::ChgHeader { .. } => action::CHANGE_HEADERS,
        Reply::Quarantine(_) => action::QUARANTINE,
        Reply::AddRcpt(_) => action::ADD_RCPT,
        Reply::AddRcptPar { .. } => action::ADD_RCPT_PAR,
        Reply::DelRcpt(_) => action::DEL_RCPT,
        Reply::ChgFrom { .. } => action::CHANGE_FROM,
        Reply::ReplBody(_) => action::CHANGE_BODY,
        _ => 0,
    };
    actions & need == need
}

fn value_bytes(value: &str, leading_space: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 1);
    if leading_space {
        v.push(b' ');
    }
    v.extend_from_slice(value.as_bytes());
    v
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the header routines stay away from this message.
fn skip_headers(config: &MilterConfig, env: &Envelope) -> bool {
    let h = &config.headers;
    (h.skip_local && env.ip.is_some_and(is_local))
        || (h.skip_authenticated && env.is_authenticated())
}

fn is_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The headers the enabled routines write, whose copies already in a
/// message are deleted: the only ones whose copies the session counts.
pub fn owned_headers(config: &MilterConfig) -> impl Iterator<Item = &str> {
    let h = &config.headers;
    [
        (h.spam_flag, "X-Spam-Flag"),
        (h.spam_level, "X-Spam-Level"),
        (h.spam_status, "X-Spam-Status"),
        (h.spamd_result, "X-Spamd-Result"),
        (h.virus, h.virus_header.as_str()),
        (h.authentication_results, "Authentication-Results"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
}

/// At most this many copies of one owned header are counted, and so
/// deleted: a message with a million forged `X-Spam-Flag` lines would
/// otherwise cost a million CHGHEADER replies. Copies past it stay (the
/// headers mxguard adds come after them).
pub const MAX_COUNTED_COPIES: u32 = 1000;

/// Removes forged copies of the headers the enabled routines own, then adds
/// the routines' headers for `verdict` (`None`: removals only).
fn header_replies(
    config: &MilterConfig,
    verdict: Option<&Verdict>,
    facts: &MessageFacts<'_>,
    out: &mut Vec<Reply>,
) {
    // Asked for by a stage after scoring (score greylisting): added even
    // where the spam headers are skipped.
    for (name, value) in verdict
        .map(|v| v.add_headers.as_slice())
        .unwrap_or_default()
    {
        out.push(Reply::AddHeader {
            name: name.clone(),
            value: value_bytes(value, facts.leading_space),
        });
    }
    if skip_headers(config, facts.envelope) {
        return;
    }
    let h = &config.headers;
    for name in owned_headers(config) {
        let copies = facts
            .header_counts
            .get(&name.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
            .min(MAX_COUNTED_COPIES);
        for index in h.copies_to_remove(copies) {
            out.push(Reply::ChgHeader {
                index,
                name: name.to_string(),
                value: Vec::new(),
            });
        }
    }
    let Some(verdict) = verdict else {
        return;
    };
    let authserv_id = if h.authserv_id.is_empty() {
        facts.mta_hostname.unwrap_or("localhost")
    } else {
        h.authserv_id.as_str()
    };
    for (name, value) in spam_headers(config, verdict, facts.envelope, authserv_id) {
        let value = value_bytes(&value, facts.leading_space);
        if name == "Authentication-Results" {
            // RFC 8601: above the headers it speaks about.
            out.push(Reply::InsHeader {
                index: 0,
                name: name.to_string(),
                value,
            });
        } else {
            out.push(Reply::AddHeader {
                name: name.to_string(),
                value,
            });
        }
    }
}

/// The headers the enabled routines add for a verdict, `(name, value)`,
/// values without leading space, folded with `\n\t`.
pub fn spam_headers(
    config: &MilterConfig,
    verdict: &Verdict,
    envelope: &Envelope,
    authserv_id: &str,
) -> Vec<(String, String)> {
    let h = &config.headers;
    let mut out = Vec::new();
    let spam = verdict.action.is_spam();
    if h.spam_flag && spam {
        out.push(("X-Spam-Flag".to_string(), "YES".to_string()));
    }
    if h.spam_level && verdict.score >= 1.0 {
        let n = (verdict.score.floor() as usize).min(MAX_SPAM_LEVEL);
        out.push(("X-Spam-Level".to_string(), h.spam_level_char.repeat(n)));
    }
    if h.spam_status {
        out.push((
            "X-Spam-Status".to_string(),
            format!(
                "{}, score={:.2} required={:.2}",
                if spam { "Yes" } else { "No" },
                verdict.score,
                verdict.required_score
            ),
        ));
    }
    if h.spamd_result {
        out.push(("X-Spamd-Result".to_string(), spamd_result(verdict)));
    }
    if h.virus
        && let Some(v) = virus_names(verdict, &h.virus_symbols)
    {
        out.push((h.virus_header.clone(), v));
    }
    if h.authentication_results
        && let Some(ar) = authentication_results(verdict, envelope, authserv_id)
    {
        out.push(("Authentication-Results".to_string(), ar));
    }
    out
}

/// rspamd's `X-Spamd-Result`: `default: False [S / R]`, then every symbol as
/// `NAME(score)[options]`, largest absolute score first, one per line.
pub fn spamd_result(verdict: &Verdict) -> String {
    let mut syms: Vec<&SymbolResult> = verdict.symbols.values().collect();
    syms.sort_by(|a, b| {
        b.score
            .abs()
            .partial_cmp(&a.score.abs())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut s = format!(
        "default: {} [{:.2} / {:.2}]",
        if verdict.action == Action::Reject {
            "True"
        } else {
            "False"
        },
        verdict.score,
        verdict.required_score
    );
    for sym in syms {
        s.push_str(";\n\t");
        s.push_str(&format!(
            "{}({:.2})[{}]",
            sym.name,
            sym.score,
            sym.options
                .iter()
                .map(|o| one_line(o))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    s
}

/// The viruses found: each virus symbol's options (or `unknown`), joined by
/// commas, like rspamd's `x-virus` routine.
pub fn virus_names(verdict: &Verdict, virus_symbols: &[String]) -> Option<String> {
    let found: Vec<String> = virus_symbols
        .iter()
        .filter_map(|name| verdict.symbols.get(name))
        .map(|s| {
            if s.options.is_empty() {
                "unknown".to_string()
            } else {
                s.options
                    .iter()
                    .map(|o| one_line(o))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        })
        .collect();
    (!found.is_empty()).then(|| found.join(","))
}

const DKIM: &[(&str, &str)] = &[
    ("pass", "R_DKIM_ALLOW"),
    ("fail", "R_DKIM_REJECT"),
    ("temperror", "R_DKIM_TEMPFAIL"),
    ("permerror", "R_DKIM_PERMFAIL"),
];
const SPF: &[(&str, &str)] = &[
    ("pass", "R_SPF_ALLOW"),
    ("fail", "R_SPF_FAIL"),
    ("softfail", "R_SPF_SOFTFAIL"),
    ("neutral", "R_SPF_NEUTRAL"),
    ("temperror", "R_SPF_DNSFAIL"),
    ("permerror", "R_SPF_PERMFAIL"),
];
const DMARC: &[(&str, &str)] = &[
    ("pass", "DMARC_POLICY_ALLOW"),
    ("reject", "DMARC_POLICY_REJECT"),
    ("quarantine", "DMARC_POLICY_QUARANTINE"),
    ("softfail", "DMARC_POLICY_SOFTFAIL"),
    ("permerror", "DMARC_BAD_POLICY"),
    ("temperror", "DMARC_DNSFAIL"),
];
const ARC: &[(&str, &str)] = &[
    ("pass", "ARC_ALLOW"),
    ("reject", "ARC_REJECT"),
    ("permerror", "ARC_INVALID"),
    ("temperror", "ARC_DNSFAIL"),
];

/// `Authentication-Results`, built like rspamd's `lua_auth_results` from
/// the auth checks' symbols (rspamd's names; `*_NA` symbols give nothing)
/// and the SMTP AUTH login. `None` when there is nothing to say.
///
/// Symbol options read: DKIM `domain` or `domain:selector` (also
/// `domain:s=selector`), one per signature; DMARC pass `[from-domain,
/// policy]`, DMARC failures `["domain : reason"]`; ARC a free comment.
pub fn authentication_results(
    verdict: &Verdict,
    envelope: &Envelope,
    authserv_id: &str,
) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let sym = |name: &str| verdict.symbols.get(name);
    for (result, name) in DKIM {
        if let Some(s) = sym(name) {
            if s.options.is_empty() {
                parts.push(format!("dkim={result}"));
            }
            for o in &s.options {
                let (domain, selector) = match o.split_once(':') {
                    Some((d, sel)) => {
                        let sel = sel.strip_prefix("s=").unwrap_or(sel);
                        (
                            d,
                            Some(sel).filter(|s| !s.is_empty() && *s != "+" && *s != "-"),
                        )
                    }
                    None => (o.as_str(), None),
                };
                let mut p = format!("dkim={result} header.d={}", domain.trim());
                if let Some(sel) = selector {
                    p.push_str(&format!(" header.s={}", sel.trim()));
                }
                parts.push(p);
            }
        }
    }
    if let Some((result, s)) = ARC.iter().find_map(|(r, n)| sym(n).map(|s| (r, s))) {
        match s.options.first() {
            Some(o) => parts.push(format!("arc={result} ({})", one_line(o))),
            None => parts.push(format!("arc={result}")),
        }
    }
    if let Some(result) = SPF.iter().find_map(|(r, n)| sym(n).map(|_| r)) {
        let mut p = format!("spf={result}");
        match (&envelope.mail_from, &envelope.helo) {
            (Some(from), _) if !from.is_empty() => p.push_str(&format!(" smtp.mailfrom={from}")),
            (_, Some(helo)) => p.push_str(&format!(" smtp.helo={helo}")),
            _ => {}
        }
        parts.push(p);
    }
    if let Some((result, s)) = DMARC.iter().find_map(|(r, n)| sym(n).map(|s| (*r, s))) {
        let p = match result {
            "pass" => {
                let mut p = "dmarc=pass".to_string();
                if let Some(policy) = s.options.get(1) {
                    p.push_str(&format!(" (policy={policy})"));
                }
                if let Some(dom) = s.options.first() {
                    p.push_str(&format!(" header.from={dom}"));
                }
                p
            }
            _ => {
                let shown = if matches!(result, "reject" | "quarantine" | "softfail") {
                    "fail"
                } else {
                    result
                };
                let mut p = format!("dmarc={shown}");
                if let Some(o) = s.options.first() {
                    let (dom, reason) = match o.split_once(" : ") {
                        Some((d, r)) => (d, Some(r)),
                        None => (o.as_str(), None),
                    };
                    if let Some(r) = reason {
                        p.push_str(&format!(" reason=\"{}\"", one_line(r).replace('"', "'")));
                    }
                    p.push_str(&format!(" header.from={}", dom.trim()));
                }
                let policy = if result == "softfail" { "none" } else { result };
                p.push_str(&format!(" (policy={policy})"));
                p
            }
        };
        parts.push(p);
    }
    if let Some(user) = envelope.user.as_deref().filter(|u| !u.is_empty()) {
        match envelope.mail_from.as_deref() {
            Some(from) if !from.is_empty() => {
                parts.push(format!("auth=pass smtp.auth={user} smtp.mailfrom={from}"))
            }
            _ => parts.push(format!("auth=pass smtp.auth={user}")),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(format!("{authserv_id};\n\t{}", parts.join(";\n\t")))
}

/// CHGHEADER of the first Subject through `subject_template`, or ADDHEADER
/// when the message has none.
fn subject_reply(config: &MilterConfig, facts: &MessageFacts<'_>) -> Reply {
    let old: &[u8] = facts.subject.unwrap_or_default();
    let old = trim_start_ws(old);
    let template = config.subject_template.as_bytes();
    let mut value = Vec::with_capacity(template.len() + old.len() + 1);
    if facts.leading_space {
        value.push(b' ');
    }
    match config.subject_template.find("%s") {
        Some(at) => {
            value.extend_from_slice(&template[..at]);
            value.extend_from_slice(old);
            value.extend_from_slice(&template[at + 2..]);
        }
        None => value.extend_from_slice(template),
    }
    if facts.subject.is_none() {
        while value.last().is_some_and(|b| *b == b' ') {
            value.pop();
        }
        Reply::AddHeader {
            name: "Subject".into(),
            value,
        }
    } else {
        Reply::ChgHeader {
            index: 1,
            name: "Subject".into(),
            value,
        }
    }
}

fn trim_start_ws(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn verdict(action: Action, score: f64, syms: &[(&str, f64, &[&str])]) -> Verdict {
        let symbols: BTreeMap<String, SymbolResult> = syms
            .iter()
            .map(|(n, s, o)| {
                (
                    n.to_string(),
                    SymbolResult {
                        name: n.to_string(),
                        score: *s,
                        description: None,
                        options: o.iter().map(|x| x.to_string()).collect(),
                    },
                )
            })
            .collect();
        Verdict {
            action,
            score,
            required_score: 15.0,
            symbols,
            messages: BTreeMap::new(),
            is_skipped: false,
            forced_by: None,
            add_headers: Vec::new(),
        }
    }

    fn facts<'a>(
        env: &'a Envelope,
        counts: &'a HashMap<String, u32>,
        subject: Option<&'a [u8]>,
    ) -> MessageFacts<'a> {
        MessageFacts {
            envelope: env,
            header_counts: counts,
            subject,
            leading_space: false,
            mta_hostname: Some("mx.test"),
            actions: action::ALL,
        }
    }

    #[test]
    fn spamd_result_format() {
        let v = verdict(
            Action::AddHeader,
            7.5,
            &[
                ("MIME_GOOD", -0.1, &["text/plain"]),
                ("BAYES_SPAM", 5.1, &["98.5%"]),
                ("R_SPF_FAIL", 1.0, &["-all", "x"]),
                ("ARC_NA", 0.0, &[]),
            ],
        );
        assert_eq!(
            spamd_result(&v),
            "default: False [7.50 / 15.00];\n\tBAYES_SPAM(5.10)[98.5%];\n\tR_SPF_FAIL(1.00)[-all,x];\n\tMIME_GOOD(-0.10)[text/plain];\n\tARC_NA(0.00)[]"
        );
        let r = verdict(Action::Reject, 20.0, &[]);
        assert_eq!(spamd_result(&r), "default: True [20.00 / 15.00]");
    }

    #[test]
    fn headers_for_spam_and_ham() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let v = verdict(
            Action::AddHeader,
            7.9,
            &[("CLAM_VIRUS", 10.0, &["Eicar-Test", "Other"])],
        );
        let h = spam_headers(&cfg, &v, &env, "mx.test");
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "X-Spam-Flag",
                "X-Spam-Level",
                "X-Spam-Status",
                "X-Spamd-Result",
                "X-Virus-Check"
            ]
        );
        assert_eq!(h[0].1, "YES");
        assert_eq!(h[1].1, "*******");
        assert_eq!(h[2].1, "Yes, score=7.90 required=15.00");
        assert_eq!(h[4].1, "Eicar-Test,Other");

        let ham = verdict(Action::NoAction, 0.5, &[]);
        let h = spam_headers(&cfg, &ham, &env, "mx.test");
        let names: Vec<&str> = h.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["X-Spam-Status", "X-Spamd-Result"]);
        assert_eq!(h[0].1, "No, score=0.50 required=15.00");
        // Greylist is not spam either.
        let g = verdict(Action::Greylist, 5.0, &[]);
        assert!(
            !spam_headers(&cfg, &g, &env, "x")
                .iter()
                .any(|(n, _)| n == "X-Spam-Flag")
        );
        // The level is capped.
        let huge = verdict(Action::Reject, 1e9, &[]);
        let lvl = spam_headers(&cfg, &huge, &env, "x")
            .into_iter()
            .find(|(n, _)| n == "X-Spam-Level")
            .unwrap();
        assert_eq!(lvl.1.len(), MAX_SPAM_LEVEL);
    }

    #[test]
    fn authentication_results_from_symbols() {
        let env = Envelope {
            mail_from: Some("a@example.com".into()),
            helo: Some("client.example".into()),
            ..Envelope::default()
        };
        let none = verdict(Action::NoAction, 0.0, &[("R_SPF_NA", 0.0, &[])]);
        assert_eq!(authentication_results(&none, &env, "mx.test"), None);
        let v = verdict(
            Action::NoAction,
            0.0,
            &[
                ("R_SPF_ALLOW", -0.2, &["+ip4:192.0.2.0/24"]),
                ("R_DKIM_ALLOW", -0.2, &["example.com:s=sel1", "example.net"]),
                ("DMARC_POLICY_ALLOW", -0.5, &["example.com", "reject"]),
            ],
        );
        assert_eq!(
            authentication_results(&v, &env, "mx.test").unwrap(),
            "mx.test;\n\tdkim=pass header.d=example.com header.s=sel1;\n\tdkim=pass header.d=example.net;\n\tspf=pass smtp.mailfrom=a@example.com;\n\tdmarc=pass (policy=reject) header.from=example.com"
        );
        let bounce = Envelope {
            mail_from: Some(String::new()),
            helo: Some("client.example".into()),
            user: Some("joe".into()),
            ..Envelope::default()
        };
        let v = verdict(
            Action::Reject,
            20.0,
            &[
                ("R_SPF_FAIL", 1.0, &[]),
                (
                    "DMARC_POLICY_REJECT",
                    2.0,
                    &["example.com : No valid SPF, No valid DKIM"],
                ),
            ],
        );
        assert_eq!(
            authentication_results(&v, &bounce, "mx").unwrap(),
            "mx;\n\tspf=fail smtp.helo=client.example;\n\tdmarc=fail reason=\"No valid SPF, No valid DKIM\" header.from=example.com (policy=reject);\n\tauth=pass smtp.auth=joe"
        );
    }

    #[test]
    fn reply_table() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let counts = HashMap::new();
        let f = facts(&env, &counts, Some(b"hello"));

        let mut rej = verdict(Action::Reject, 20.0, &[]);
        assert_eq!(
            final_replies(&cfg, &rej, &f),
            [Reply::ReplyCode("554 5.7.1 Spam message rejected".into())]
        );
        rej.messages
            .insert("smtp_message".into(), "Go away\nfor good".into());
        assert_eq!(
            final_replies(&cfg, &rej, &f),
            [Reply::ReplyCode(
                "554-5.7.1 Go away\r\n554 5.7.1 for good".into()
            )]
        );
        for a in [Action::SoftReject, Action::Greylist] {
            assert_eq!(
                final_replies(&cfg, &verdict(a, 5.0, &[]), &f),
                [Reply::ReplyCode("451 4.7.1 Try again later".into())]
            );
        }
        assert_eq!(
            final_replies(&cfg, &verdict(Action::Discard, 5.0, &[]), &f),
            [Reply::Discard]
        );
        let q = final_replies(&cfg, &verdict(Action::Quarantine, 5.0, &[]), &f);
        assert_eq!(
            q[q.len() - 2],
            Reply::Quarantine("Quarantined by mxguard".into())
        );
        assert_eq!(q.last(), Some(&Reply::Accept));
        let rs = final_replies(&cfg, &verdict(Action::RewriteSubject, 9.0, &[]), &f);
        assert!(rs.contains(&Reply::ChgHeader {
            index: 1,
            name: "Subject".into(),
            value: b"***SPAM*** hello".to_vec()
        }));
        let ok = final_replies(&cfg, &verdict(Action::NoAction, 0.0, &[]), &f);
        assert_eq!(ok.last(), Some(&Reply::Accept));
        assert!(
            ok.iter()
                .any(|r| matches!(r, Reply::AddHeader { name, .. } if name == "X-Spam-Status"))
        );
    }

    #[test]
    fn subject_added_when_missing_and_leading_space_kept() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let counts = HashMap::new();
        let f = facts(&env, &counts, None);
        assert_eq!(
            subject_reply(&cfg, &f),
            Reply::AddHeader {
                name: "Subject".into(),
                value: b"***SPAM***".to_vec()
            }
        );
        let mut f = facts(&env, &counts, Some(b" =?UTF-8?B?w6k=?="));
        f.leading_space = true;
        assert_eq!(
            subject_reply(&cfg, &f),
            Reply::ChgHeader {
                index: 1,
                name: "Subject".into(),
                value: b" ***SPAM*** =?UTF-8?B?w6k=?=".to_vec()
            }
        );
    }

    #[test]
    fn forged_headers_removed_highest_first_and_skips() {
        let cfg = MilterConfig::default();
        let env = Envelope {
            ip: Some("192.0.2.1".parse().unwrap()),
            ..Envelope::default()
        };
        let counts: HashMap<String, u32> = [
            ("x-spam-flag".to_string(), 2),
            ("x-spam-status".to_string(), 1),
        ]
        .into_iter()
        .collect();
        let f = facts(&env, &counts, None);
        let r = final_replies(&cfg, &verdict(Action::NoAction, 0.0, &[]), &f);
        let dels: Vec<(u32, &str)> = r
            .iter()
            .filter_map(|r| match r {
                Reply::ChgHeader { index, name, value } if value.is_empty() => {
                    Some((*index, name.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            dels,
            [(2, "X-Spam-Flag"), (1, "X-Spam-Flag"), (1, "X-Spam-Status")]
        );

        // skip_local: nothing added or removed for 127.0.0.1 when enabled.
        let mut local_cfg = MilterConfig::default();
        local_cfg.headers.skip_local = true;
        let local = Envelope {
            ip: Some("127.0.0.1".parse().unwrap()),
            ..Envelope::default()
        };
        let f = facts(&local, &counts, None);
        assert_eq!(
            final_replies(&local_cfg, &verdict(Action::AddHeader, 8.0, &[]), &f),
            [Reply::Accept]
        );
        // skip_authenticated is on by default.
        let auth = Envelope {
            user: Some("joe".into()),
            ..Envelope::default()
        };
        let f = facts(&auth, &counts, None);
        assert_eq!(
            final_replies(&cfg, &verdict(Action::AddHeader, 8.0, &[]), &f),
            [Reply::Accept]
        );
        // Headers a stage after scoring asks for are added even there.
        let mut passed = verdict(Action::NoAction, 5.0, &[]);
        passed
            .add_headers
            .push(("X-Greylist".into(), "delayed 300 seconds".into()));
        assert_eq!(
            final_replies(&cfg, &passed, &f),
            [
                Reply::AddHeader {
                    name: "X-Greylist".into(),
                    value: b"delayed 300 seconds".to_vec(),
                },
                Reply::Accept
            ]
        );
    }

    #[test]
    fn modifications_the_mta_did_not_grant_are_not_sent() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let counts: HashMap<String, u32> = [("x-spam-flag".to_string(), 1)].into_iter().collect();
        let mut f = facts(&env, &counts, Some(b"s"));
        f.actions = action::ADD_HEADERS;
        let r = final_replies(&cfg, &verdict(Action::Quarantine, 9.0, &[]), &f);
        assert!(
            r.iter()
                .all(|r| matches!(r, Reply::AddHeader { .. } | Reply::Accept))
        );
    }

    #[test]
    fn early_replies() {
        let cfg = MilterConfig::default();
        let mut v = verdict(Action::Reject, 0.0, &[]);
        v.messages
            .insert("smtp_message".into(), "Blocked sender".into());
        assert_eq!(
            early_reply(&cfg, SmtpStage::MailFrom, &v),
            Early::Respond(Reply::ReplyCode("554 5.7.1 Blocked sender".into()))
        );
        let wl = verdict(Action::NoAction, 0.0, &[]);
        assert_eq!(
            early_reply(&cfg, SmtpStage::Connect, &wl),
            Early::Respond(Reply::Accept)
        );
        assert_eq!(early_reply(&cfg, SmtpStage::Rcpt, &wl), Early::Defer);
        let q = verdict(Action::Quarantine, 0.0, &[]);
        assert_eq!(early_reply(&cfg, SmtpStage::Helo, &q), Early::Defer);
        let g = verdict(Action::Greylist, 0.0, &[]);
        assert_eq!(
            early_reply(&cfg, SmtpStage::Rcpt, &g),
            Early::Respond(Reply::ReplyCode("451 4.7.1 Try again later".into()))
        );
    }

    #[test]
    fn oversize() {
        let mut cfg = MilterConfig::default();
        cfg.max_message_size.0 = 10;
        let env = Envelope::default();
        let counts = HashMap::new();
        let f = facts(&env, &counts, None);
        let r = oversize_replies(&cfg, 11, &f);
        assert_eq!(
            r,
            [
                Reply::AddHeader {
                    name: "X-Mxguard-Unscanned".into(),
                    value: b"not scanned: 11 bytes, over the 10-byte limit".to_vec()
                },
                Reply::Accept
            ]
        );
        let mut t: MilterConfig = toml::from_str("oversize_action = \"tempfail\"").unwrap();
        t.max_message_size.0 = 10;
        assert_eq!(
            oversize_replies(&t, 11, &f),
            [Reply::ReplyCode(
                "451 4.3.4 Message too large to scan, try again later".into()
            )]
        );
    }
}
