//! Verdict → milter replies. The spam headers come computed in the scan's
//! milter block ([`MilterBlock`], rspamd's `add_headers`/`remove_headers`);
//! this module only turns them into packets.
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
use mxguard_core::{Action, Envelope, SmtpStage, Verdict};
use mxguard_scan::MilterBlock;
use mxguard_scan::milter_headers::{one_line, owned_headers};
use std::sync::Arc;

/// What the milter knows about the message besides the verdict.
#[derive(Debug, Clone, Copy)]
pub struct MessageFacts<'a> {
    pub envelope: &'a Envelope,
    /// How often each of the [owned headers](mxguard_scan::milter_headers::owned_headers) occurs
    /// (at most [`MAX_COUNTED_COPIES`]).
    pub header_counts: &'a HeaderCounts,
    /// The first Subject's value as received; `None` when there is none.
    pub subject: Option<&'a [u8]>,
    /// `HDR_LEADSPC` was negotiated: values go out with their leading space.
    pub leading_space: bool,
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
    block: &MilterBlock,
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
    header_replies(block, facts, &mut out);
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
    let block = MilterBlock::unscanned(&config.headers, facts.envelope);
    header_replies(&block, facts, &mut out);
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

/// At most this many copies of one owned header are counted, and so
/// deleted: a message with a million forged `X-Spam-Flag` lines would
/// otherwise cost a million CHGHEADER replies. Copies past it stay (the
/// headers mxguard adds come after them).
pub const MAX_COUNTED_COPIES: u32 = 1000;

/// How often each header mxguard may delete ([`owned_headers`] of the
/// config) occurs in a message, names compared ignoring ASCII case (as a
/// map by lower-cased name would). No other name is counted. A fixed array
/// beside the config the names come from, not a map of lower-cased
/// copies: the map, built for every message, and a walk of it per header
/// were ~10k instructions a message.
#[derive(Debug, Clone)]
pub struct HeaderCounts {
    config: Arc<MilterConfig>,
    /// By position in `owned_headers(&config.headers)`.
    counts: [u32; OWNED_MAX],
}

/// [`owned_headers`] yields at most this many names.
const OWNED_MAX: usize = 6;

impl HeaderCounts {
    /// Zero copies of each header `config` owns.
    pub fn new(config: Arc<MilterConfig>) -> HeaderCounts {
        HeaderCounts {
            config,
            counts: [0; OWNED_MAX],
        }
    }

    /// The position of the first owned name equal to `name` ignoring ASCII
    /// case.
    fn position(&self, name: &str) -> Option<usize> {
        owned_headers(&self.config.headers)
            .take(OWNED_MAX)
            .position(|owned| owned.eq_ignore_ascii_case(name))
    }

    /// One more copy of `name`, if it is owned (at most
    /// [`MAX_COUNTED_COPIES`]).
    pub fn add(&mut self, name: &str) {
        if let Some(i) = self.position(name)
            && let Some(n) = self.counts.get_mut(i)
        {
            *n = (*n + 1).min(MAX_COUNTED_COPIES);
        }
    }

    /// The copies of `name` counted; 0 for a name not owned.
    pub fn get(&self, name: &str) -> u32 {
        self.position(name)
            .and_then(|i| self.counts.get(i).copied())
            .unwrap_or(0)
    }
}

/// The milter block as packets: CHGHEADER with an empty value for each
/// forged copy the message has (by the session's counts), then the
/// headers to add (INSHEADER at the top for `order` 0, else ADDHEADER).
fn header_replies(block: &MilterBlock, facts: &MessageFacts<'_>, out: &mut Vec<Reply>) {
    for r in &block.remove_headers {
        let copies = facts.header_counts.get(&r.name).min(MAX_COUNTED_COPIES);
        for index in r.copies(copies) {
            out.push(Reply::ChgHeader {
                index,
                name: r.name.clone(),
                value: Vec::new(),
            });
        }
    }
    for h in &block.add_headers {
        let value = value_bytes(&h.value, facts.leading_space);
        match h.order {
            Some(index) => out.push(Reply::InsHeader {
                index,
                name: h.name.clone(),
                value,
            }),
            None => out.push(Reply::AddHeader {
                name: h.name.clone(),
                value,
            }),
        }
    }
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

    /// The replies for a verdict with the block the scan service computes.
    fn final_replies(cfg: &MilterConfig, v: &Verdict, f: &MessageFacts<'_>) -> Vec<Reply> {
        let block = MilterBlock::for_verdict(&cfg.headers, v, f.envelope, Some("mx.test"));
        super::final_replies(cfg, v, &block, f)
    }

    /// A verdict with no symbols: the replies depend on its action.
    fn verdict(action: Action, score: f64) -> Verdict {
        Verdict {
            action,
            score,
            required_score: 15.0,
            symbols: BTreeMap::new(),
            messages: BTreeMap::new(),
            is_skipped: false,
            forced_by: None,
            add_headers: Vec::new(),
        }
    }

    /// The counts of a message with these headers, under the default
    /// config.
    fn counts(names: &[&str]) -> HeaderCounts {
        let mut c = HeaderCounts::new(Arc::new(MilterConfig::default()));
        for n in names {
            c.add(n);
        }
        c
    }

    fn facts<'a>(
        env: &'a Envelope,
        counts: &'a HeaderCounts,
        subject: Option<&'a [u8]>,
    ) -> MessageFacts<'a> {
        MessageFacts {
            envelope: env,
            header_counts: counts,
            subject,
            leading_space: false,
            actions: action::ALL,
        }
    }

    #[test]
    fn reply_table() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let counts = counts(&[]);
        let f = facts(&env, &counts, Some(b"hello"));

        let mut rej = verdict(Action::Reject, 20.0);
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
                final_replies(&cfg, &verdict(a, 5.0), &f),
                [Reply::ReplyCode("451 4.7.1 Try again later".into())]
            );
        }
        assert_eq!(
            final_replies(&cfg, &verdict(Action::Discard, 5.0), &f),
            [Reply::Discard]
        );
        let q = final_replies(&cfg, &verdict(Action::Quarantine, 5.0), &f);
        assert_eq!(
            q[q.len() - 2],
            Reply::Quarantine("Quarantined by mxguard".into())
        );
        assert_eq!(q.last(), Some(&Reply::Accept));
        let rs = final_replies(&cfg, &verdict(Action::RewriteSubject, 9.0), &f);
        assert!(rs.contains(&Reply::ChgHeader {
            index: 1,
            name: "Subject".into(),
            value: b"***SPAM*** hello".to_vec()
        }));
        let ok = final_replies(&cfg, &verdict(Action::NoAction, 0.0), &f);
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
        let counts = counts(&[]);
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
        let counts = counts(&["X-Spam-Flag", "x-spam-flag", "X-SPAM-STATUS", "Subject"]);
        let f = facts(&env, &counts, None);
        let r = final_replies(&cfg, &verdict(Action::NoAction, 0.0), &f);
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
            final_replies(&local_cfg, &verdict(Action::AddHeader, 8.0), &f),
            [Reply::Accept]
        );
        // skip_authenticated is on by default.
        let auth = Envelope {
            user: Some("joe".into()),
            ..Envelope::default()
        };
        let f = facts(&auth, &counts, None);
        assert_eq!(
            final_replies(&cfg, &verdict(Action::AddHeader, 8.0), &f),
            [Reply::Accept]
        );
    }

    #[test]
    fn modifications_the_mta_did_not_grant_are_not_sent() {
        let cfg = MilterConfig::default();
        let env = Envelope::default();
        let counts = counts(&["X-Spam-Flag"]);
        let mut f = facts(&env, &counts, Some(b"s"));
        f.actions = action::ADD_HEADERS;
        let r = final_replies(&cfg, &verdict(Action::Quarantine, 9.0), &f);
        assert!(
            r.iter()
                .all(|r| matches!(r, Reply::AddHeader { .. } | Reply::Accept))
        );
    }

    #[test]
    fn early_replies() {
        let cfg = MilterConfig::default();
        let mut v = verdict(Action::Reject, 0.0);
        v.messages
            .insert("smtp_message".into(), "Blocked sender".into());
        assert_eq!(
            early_reply(&cfg, SmtpStage::MailFrom, &v),
            Early::Respond(Reply::ReplyCode("554 5.7.1 Blocked sender".into()))
        );
        let wl = verdict(Action::NoAction, 0.0);
        assert_eq!(
            early_reply(&cfg, SmtpStage::Connect, &wl),
            Early::Respond(Reply::Accept)
        );
        assert_eq!(early_reply(&cfg, SmtpStage::Rcpt, &wl), Early::Defer);
        let q = verdict(Action::Quarantine, 0.0);
        assert_eq!(early_reply(&cfg, SmtpStage::Helo, &q), Early::Defer);
        let g = verdict(Action::Greylist, 0.0);
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
        let counts = counts(&[]);
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
