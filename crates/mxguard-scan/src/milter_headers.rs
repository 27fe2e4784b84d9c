//! rspamd's `milter` block: the spam headers a verdict adds to the message
//! (X-Spam-*, X-Spamd-Result, the virus header, Authentication-Results)
//! and the forged copies it removes, as rspamd's `/checkv2` gives them.
//! Computed once, in the [`ScanService`](crate::ScanService), for every
//! front end: the milter turns it into ADDHEADER/INSHEADER/CHGHEADER
//! packets, the HTTP API will return it as JSON.
//!
//! Which routines run is `[milter.headers]` (`MilterHeaders` in
//! `mxguard_core::config`, where the whole file is validated).

use mxguard_core::config::{HeaderRemove, MilterHeaders};
use mxguard_core::{Action, Envelope, SymbolResult, Verdict};
use serde::Serialize;
use std::net::IpAddr;

/// `X-Spam-Level` never gets longer than this.
pub const MAX_SPAM_LEVEL: usize = 100;

/// What the verdict changes in the message's header.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MilterBlock {
    /// Headers to add, in the order given.
    pub add_headers: Vec<AddHeader>,
    /// Forged copies to remove, before the adds.
    pub remove_headers: Vec<RemoveHeader>,
}

/// One header to add.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddHeader {
    pub name: String,
    /// Without a leading space; folded with `\n\t`.
    pub value: String,
    /// rspamd's `order`: `Some(0)` inserts it above every other header
    /// (Authentication-Results, RFC 8601); `None` appends it.
    pub order: Option<u32>,
}

/// Copies of a header to remove, rspamd's way: `index` 0 removes every
/// copy, N the Nth from the top, -N the Nth from the bottom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoveHeader {
    pub name: String,
    pub index: i64,
}

impl RemoveHeader {
    /// The copies (1-based from the top, highest first) to delete in a
    /// message where the header occurs `copies` times.
    pub fn copies(&self, copies: u32) -> Vec<u32> {
        let remove = if self.index == 0 {
            HeaderRemove::All
        } else {
            HeaderRemove::Nth(self.index)
        };
        remove.copies(copies)
    }
}

impl MilterBlock {
    /// The block for a verdict. `mta_name` is the MTA's host name, the
    /// authserv-id when `authserv_id` is not configured.
    pub fn for_verdict(
        config: &MilterHeaders,
        verdict: &Verdict,
        envelope: &Envelope,
        mta_name: Option<&str>,
    ) -> MilterBlock {
        // Asked for by a stage after scoring (score greylisting): added
        // even where the spam headers are skipped.
        let requested = verdict.add_headers.iter().map(|(name, value)| AddHeader {
            name: name.clone(),
            value: value.clone(),
            order: None,
        });
        if skip_headers(config, envelope) {
            return MilterBlock {
                add_headers: requested.collect(),
                remove_headers: Vec::new(),
            };
        }
        let authserv_id = authserv_id(config, mta_name);
        let add_headers = spam_headers(config, verdict, envelope, authserv_id)
            .into_iter()
            .map(|(name, value)| AddHeader {
                order: (name == "Authentication-Results").then_some(0),
                name,
                value,
            })
            .chain(requested)
            .collect();
        MilterBlock {
            add_headers,
            remove_headers: removals(config),
        }
    }

    /// Narrows the removal of every Authentication-Results copy (`remove =
    /// "all"`) to the copies not written by a trusted authserv-id (`[auth]
    /// trusted_authserv_ids`), read from the message `raw`.
    pub fn keep_trusted_auth_results(
        mut self,
        config: &MilterHeaders,
        raw: &[u8],
        mta_name: Option<&str>,
        trusted: &[String],
    ) -> MilterBlock {
        if trusted.is_empty() {
            return self;
        }
        let before = self.remove_headers.len();
        self.remove_headers
            .retain(|r| !(r.index == 0 && r.name.eq_ignore_ascii_case("Authentication-Results")));
        if self.remove_headers.len() != before {
            let own = authserv_id(config, mta_name);
            self.remove_headers
                .extend(untrusted_auth_results(raw, own, trusted));
        }
        self
    }

    /// The block for a message that was not scanned: forged copies removed,
    /// nothing added.
    pub fn unscanned(config: &MilterHeaders, envelope: &Envelope) -> MilterBlock {
        if skip_headers(config, envelope) {
            return MilterBlock::default();
        }
        MilterBlock {
            add_headers: Vec::new(),
            remove_headers: removals(config),
        }
    }
}

/// The Authentication-Results copies of `raw` to delete: every one whose
/// authserv-id is not in `trusted` (RFC 8601 5), and every one claiming
/// our own id, which only we may write. 1-based from the top, highest
/// first, so each deletion leaves the lower indices valid.
pub fn untrusted_auth_results(raw: &[u8], own_id: &str, trusted: &[String]) -> Vec<RemoveHeader> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(raw.get(..end).unwrap_or_default());
    let mut copies: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = copies.last_mut()
                && last.len() < 1024
            {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("authentication-results")
        {
            copies.push(value.trim().to_string());
        }
    }
    let mut out: Vec<RemoveHeader> = copies
        .iter()
        .enumerate()
        .filter(|(_, value)| {
            let id = authserv_id_of(value);
            id.eq_ignore_ascii_case(own_id) || !trusted.iter().any(|t| t.eq_ignore_ascii_case(id))
        })
        .map(|(i, _)| RemoveHeader {
            name: "Authentication-Results".to_string(),
            index: i as i64 + 1,
        })
        .collect();
    out.reverse();
    out
}

/// The authserv-id of an Authentication-Results value: up to the first
/// `;`, without a version or comment (`mx.example.com 1 (x)` ->
/// `mx.example.com`).
fn authserv_id_of(value: &str) -> &str {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .split([' ', '\t', '('])
        .find(|s| !s.is_empty())
        .unwrap_or_default()
}

/// Our authserv-id: `[milter.headers] authserv_id`, else the MTA's name.
fn authserv_id<'a>(config: &'a MilterHeaders, mta_name: Option<&'a str>) -> &'a str {
    if config.authserv_id.is_empty() {
        mta_name.unwrap_or("localhost")
    } else {
        config.authserv_id.as_str()
    }
}

/// Forged copies of the headers the enabled routines own.
fn removals(config: &MilterHeaders) -> Vec<RemoveHeader> {
    let index = match config.remove {
        HeaderRemove::None => return Vec::new(),
        HeaderRemove::All => 0,
        HeaderRemove::Nth(n) => n,
    };
    owned_headers(config)
        .map(|name| RemoveHeader {
            name: name.to_string(),
            index,
        })
        .collect()
}

/// Whether the header routines stay away from this message.
fn skip_headers(config: &MilterHeaders, env: &Envelope) -> bool {
    (config.skip_local && env.ip.is_some_and(is_local))
        || (config.skip_authenticated && env.is_authenticated())
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
/// message are deleted: the only ones whose copies the milter counts.
pub fn owned_headers(config: &MilterHeaders) -> impl Iterator<Item = &str> {
    let h = config;
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

/// The headers the enabled routines add for a verdict, `(name, value)`,
/// values without leading space, folded with `\n\t`.
pub fn spam_headers(
    config: &MilterHeaders,
    verdict: &Verdict,
    envelope: &Envelope,
    authserv_id: &str,
) -> Vec<(String, String)> {
    let h = config;
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
        out.push(("X-Spam-Status".to_string(), {
            let mut v = String::with_capacity(40);
            v.push_str(if spam { "Yes, score=" } else { "No, score=" });
            push_score(&mut v, verdict.score);
            v.push_str(" required=");
            push_score(&mut v, verdict.required_score);
            v
        }));
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

/// One line: CR and LF runs become single spaces.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_one_line(&mut out, s);
    out
}

/// [`one_line`] appended to `out`, without a string of its own.
fn push_one_line(out: &mut String, s: &str) {
    // Most options (domains, URLs, scores) hold no line end: copied as
    // they are, without splitting.
    if memchr::memchr2(b'\r', b'\n', s.as_bytes()).is_none() {
        out.push_str(s);
        return;
    }
    let mut first = true;
    for line in s.split(['\r', '\n']).filter(|l| !l.is_empty()) {
        if !first {
            out.push(' ');
        }
        out.push_str(line);
        first = false;
    }
}

/// Appends `x` as `format!("{x:.2}")` writes it. A verdict's headers and
/// history row print forty-odd scores per message; the formatter's exact
/// decimal expansion of each was the larger part of building them. A
/// score rounds the same way scaled to hundredths unless it lies within a
/// hair of a tie (or is over ten million, where the scaling's own error
/// could reach that hair, or is not a number): those go to the formatter.
pub fn push_score(out: &mut String, x: f64) {
    use std::fmt::Write;
    let scaled = x.abs() * 100.0;
    let whole = scaled.round();
    let near_tie = (scaled - scaled.trunc() - 0.5).abs() < 1e-6;
    if !x.is_finite() || scaled >= 1e9 || near_tie {
        let _ = write!(out, "{x:.2}");
        return;
    }
    let hundredths = whole as u64;
    if x.is_sign_negative() {
        out.push('-');
    }
    // The digits by hand: `write!` of two integers costs more than the
    // rest together.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = hundredths / 100;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
    let cents = (hundredths % 100) as u8;
    out.push('.');
    out.push(char::from(b'0' + cents / 10));
    out.push(char::from(b'0' + cents % 10));
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
    let mut s = String::with_capacity(32 + 40 * syms.len());
    s.push_str(if verdict.action == Action::Reject {
        "default: True ["
    } else {
        "default: False ["
    });
    push_score(&mut s, verdict.score);
    s.push_str(" / ");
    push_score(&mut s, verdict.required_score);
    s.push(']');
    for sym in syms {
        s.push_str(";\n\t");
        s.push_str(&sym.name);
        s.push('(');
        push_score(&mut s, sym.score);
        s.push_str(")[");
        for (i, o) in sym.options.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            push_one_line(&mut s, o);
        }
        s.push(']');
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

const DKIM: &[(&str, &str); 4] = &[
    ("pass", "R_DKIM_ALLOW"),
    ("fail", "R_DKIM_REJECT"),
    ("temperror", "R_DKIM_TEMPFAIL"),
    ("permerror", "R_DKIM_PERMFAIL"),
];
const SPF: &[(&str, &str); 7] = &[
    ("pass", "R_SPF_ALLOW"),
    ("fail", "R_SPF_FAIL"),
    ("softfail", "R_SPF_SOFTFAIL"),
    ("neutral", "R_SPF_NEUTRAL"),
    ("temperror", "R_SPF_DNSFAIL"),
    ("permerror", "R_SPF_PERMFAIL"),
    ("none", "R_SPF_NA"),
];
const DMARC: &[(&str, &str); 6] = &[
    ("pass", "DMARC_POLICY_ALLOW"),
    ("reject", "DMARC_POLICY_REJECT"),
    ("quarantine", "DMARC_POLICY_QUARANTINE"),
    ("softfail", "DMARC_POLICY_SOFTFAIL"),
    ("permerror", "DMARC_BAD_POLICY"),
    ("temperror", "DMARC_DNSFAIL"),
];
const ARC: &[(&str, &str); 4] = &[
    ("pass", "ARC_ALLOW"),
    ("reject", "ARC_REJECT"),
    ("permerror", "ARC_INVALID"),
    ("temperror", "ARC_DNSFAIL"),
];

/// `Authentication-Results`, built like rspamd's `lua_auth_results` from
/// the auth checks' symbols (rspamd's names; `*_NA` symbols give nothing
/// but `spf=none`, which says which identity had no record)
/// and the SMTP AUTH login. `None` when there is nothing to say.
///
/// Symbol options read: DKIM `domain` or `domain:selector` (also
/// `domain:s=selector`), one per signature; DMARC pass `[from-domain,
/// policy]`, DMARC failures `["domain : reason"]`; ARC a free comment.
///
/// Written into one string: a look-up per symbol name (21 string searches
/// of the verdict's map) and a `format!` per part were most of its cost.
pub fn authentication_results(
    verdict: &Verdict,
    envelope: &Envelope,
    authserv_id: &str,
) -> Option<String> {
    let mut out = String::with_capacity(authserv_id.len() + 160);
    out.push_str(authserv_id);
    let empty = out.len();
    // Every part starts with the separator after the authserv-id or the
    // part before it.
    let part = |out: &mut String, text: &str| {
        out.push_str(";\n\t");
        out.push_str(text);
    };
    let found = AuthSymbols::of(verdict);
    for (&(result, _), s) in DKIM.iter().zip(found.dkim) {
        let Some(s) = s else { continue };
        if s.options.is_empty() {
            part(&mut out, "dkim=");
            out.push_str(result);
        }
        for o in &s.options {
            // `domain`, `domain:selector`, `domain:s=selector[:i=auid]`.
            let mut fields = o.split(':');
            let domain = fields.next().unwrap_or_default();
            let (mut selector, mut auid) = (None, None);
            for f in fields {
                if let Some(i) = f.strip_prefix("i=") {
                    auid = Some(i).filter(|i| !i.is_empty());
                } else {
                    let sel = f.strip_prefix("s=").unwrap_or(f);
                    selector = Some(sel).filter(|s| !s.is_empty() && *s != "+" && *s != "-");
                }
            }
            part(&mut out, "dkim=");
            out.push_str(result);
            out.push_str(" header.d=");
            out.push_str(domain.trim());
            if let Some(i) = auid {
                out.push_str(" header.i=");
                out.push_str(i.trim());
            }
            if let Some(sel) = selector {
                out.push_str(" header.s=");
                out.push_str(sel.trim());
            }
        }
    }
    if let Some((&(result, _), s)) = ARC
        .iter()
        .zip(found.arc)
        .find_map(|(r, s)| s.map(|s| (r, s)))
    {
        part(&mut out, "arc=");
        out.push_str(result);
        if let Some(o) = s.options.first() {
            out.push_str(" (");
            push_one_line(&mut out, o);
            out.push(')');
        }
    }
    if let Some(&(result, _)) = SPF.iter().zip(found.spf).find_map(|(r, s)| s.map(|_| r)) {
        part(&mut out, "spf=");
        out.push_str(result);
        match (&envelope.mail_from, &envelope.helo) {
            (Some(from), _) if !from.is_empty() => {
                out.push_str(" smtp.mailfrom=");
                out.push_str(from);
            }
            (_, Some(helo)) => {
                out.push_str(" smtp.helo=");
                out.push_str(helo);
            }
            _ => {}
        }
    }
    if let Some((&(result, _), s)) = DMARC
        .iter()
        .zip(found.dmarc)
        .find_map(|(r, s)| s.map(|s| (r, s)))
    {
        if result == "pass" {
            part(&mut out, "dmarc=pass");
            if let Some(policy) = s.options.get(1) {
                out.push_str(" (policy=");
                out.push_str(policy);
                out.push(')');
            }
            if let Some(dom) = s.options.first() {
                out.push_str(" header.from=");
                out.push_str(dom);
            }
        } else {
            let shown = if matches!(result, "reject" | "quarantine" | "softfail") {
                "fail"
            } else {
                result
            };
            part(&mut out, "dmarc=");
            out.push_str(shown);
            if let Some(o) = s.options.first() {
                let (dom, reason) = match o.split_once(" : ") {
                    Some((d, r)) => (d, Some(r)),
                    None => (o.as_str(), None),
                };
                if let Some(r) = reason {
                    out.push_str(" reason=\"");
                    let at = out.len();
                    push_one_line(&mut out, r);
                    // A quote would end the value: shown as an apostrophe.
                    if out[at..].contains('"') {
                        let quoted = out.split_off(at).replace('"', "'");
                        out.push_str(&quoted);
                    }
                    out.push('"');
                }
                out.push_str(" header.from=");
                out.push_str(dom.trim());
            }
            out.push_str(" (policy=");
            out.push_str(if result == "softfail" { "none" } else { result });
            out.push(')');
        }
    }
    if let Some(user) = envelope.user.as_deref().filter(|u| !u.is_empty()) {
        part(&mut out, "auth=pass smtp.auth=");
        out.push_str(user);
        if let Some(from) = envelope.mail_from.as_deref().filter(|f| !f.is_empty()) {
            out.push_str(" smtp.mailfrom=");
            out.push_str(from);
        }
    }
    (out.len() > empty).then_some(out)
}

/// The auth checks' symbols present in a verdict, each family in its
/// table's order.
struct AuthSymbols<'a> {
    dkim: [Option<&'a SymbolResult>; 4],
    arc: [Option<&'a SymbolResult>; 4],
    spf: [Option<&'a SymbolResult>; 7],
    dmarc: [Option<&'a SymbolResult>; 6],
}

impl<'a> AuthSymbols<'a> {
    /// One pass over the verdict's symbols (a few dozen), most ruled out
    /// by their first letter, instead of a search of the map per name.
    fn of(verdict: &'a Verdict) -> AuthSymbols<'a> {
        fn put<'a, const N: usize>(
            found: &mut [Option<&'a SymbolResult>; N],
            table: &[(&str, &str); N],
            name: &str,
            s: &'a SymbolResult,
        ) {
            if let Some(i) = table.iter().position(|(_, n)| *n == name) {
                found[i] = Some(s);
            }
        }
        let mut out = AuthSymbols {
            dkim: [None; 4],
            arc: [None; 4],
            spf: [None; 7],
            dmarc: [None; 6],
        };
        for (name, s) in &verdict.symbols {
            match name.as_bytes().first() {
                Some(b'R') => {
                    put(&mut out.dkim, DKIM, name, s);
                    put(&mut out.spf, SPF, name, s);
                }
                Some(b'A') => put(&mut out.arc, ARC, name, s),
                Some(b'D') => put(&mut out.dmarc, DMARC, name, s),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    /// The builder as it was before it wrote into one string: what the
    /// new one must equal.
    #[allow(clippy::format_push_string)]
    fn reference_authentication_results(
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
                    // `domain`, `domain:selector`, `domain:s=selector[:i=auid]`.
                    let mut fields = o.split(':');
                    let domain = fields.next().unwrap_or_default();
                    let (mut selector, mut auid) = (None, None);
                    for f in fields {
                        if let Some(i) = f.strip_prefix("i=") {
                            auid = Some(i).filter(|i| !i.is_empty());
                        } else {
                            let sel = f.strip_prefix("s=").unwrap_or(f);
                            selector =
                                Some(sel).filter(|s| !s.is_empty() && *s != "+" && *s != "-");
                        }
                    }
                    let mut p = format!("dkim={result} header.d={}", domain.trim());
                    if let Some(i) = auid {
                        p.push_str(&format!(" header.i={}", i.trim()));
                    }
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
                (Some(from), _) if !from.is_empty() => {
                    p.push_str(&format!(" smtp.mailfrom={from}"))
                }
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

    #[test]
    fn scores_are_written_as_the_formatter_writes_them() {
        let mut values = vec![
            0.0,
            -0.0,
            0.005,
            0.015,
            0.025,
            0.125,
            -0.125,
            1.005,
            2.675,
            -0.001,
            -0.004,
            -0.005,
            0.994999,
            0.995,
            9.995,
            15.0,
            -1.5,
            1e7,
            1e7 + 0.005,
            1e12,
            -1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // Every hundredth and thousandth over the score range, and sums of
        // weights as the scorer makes them.
        for i in -200_000..200_000 {
            values.push(f64::from(i) / 1000.0);
            values.push(f64::from(i) / 100.0 + 0.1 + 0.2);
            values.push(f64::from(i) * 0.3 / 7.0);
        }
        for x in values {
            let mut got = String::new();
            push_score(&mut got, x);
            assert_eq!(got, format!("{x:.2}"), "{x:e}");
        }
    }
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

    #[test]
    fn headers_asked_for_after_scoring_are_added_even_where_spam_headers_are_skipped() {
        let mut passed = verdict(Action::NoAction, 5.0, &[]);
        passed
            .add_headers
            .push(("X-Greylist".into(), "delayed 300 seconds".into()));
        let config = MilterHeaders {
            skip_local: true,
            ..Default::default()
        };
        let local = Envelope {
            ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        };
        let skipped = MilterBlock::for_verdict(&config, &passed, &local, None);
        assert_eq!(
            skipped.add_headers,
            [AddHeader {
                name: "X-Greylist".into(),
                value: "delayed 300 seconds".into(),
                order: None,
            }]
        );
        assert!(skipped.remove_headers.is_empty());
        let remote = Envelope {
            ip: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        };
        let full = MilterBlock::for_verdict(&config, &passed, &remote, None);
        assert!(full.add_headers.len() > 1, "spam headers and X-Greylist");
        assert_eq!(full.add_headers.last().unwrap().name, "X-Greylist");
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
        let cfg = MilterHeaders::default();
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
        let none = verdict(Action::NoAction, 0.0, &[("R_DKIM_NA", 0.0, &[])]);
        assert_eq!(authentication_results(&none, &env, "mx.test"), None);
        let spf_none = verdict(Action::NoAction, 0.0, &[("R_SPF_NA", 0.0, &[])]);
        assert_eq!(
            authentication_results(&spf_none, &env, "mx.test").as_deref(),
            Some("mx.test;\n\tspf=none smtp.mailfrom=a@example.com")
        );
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
    fn one_line_joins_lines_with_single_spaces() {
        for (text, line) in [
            ("plain, no line end", "plain, no line end"),
            ("", ""),
            ("a\r\n\r\nb", "a b"),
            ("\r\nx\n", "x"),
            ("a\rb\nc", "a b c"),
            ("\n\r", ""),
        ] {
            assert_eq!(one_line(text), line, "{text:?}");
        }
    }

    #[test]
    fn authentication_results_equal_the_reference_builder() {
        let options: &[&[&str]] = &[
            &[],
            &["example.com"],
            &[
                "example.com:s=sel:i=@example.com",
                " spaced.example : s= + ",
            ],
            &["d.example : reason \"quoted\"\r\nnext line", "x"],
            &["example.org", "quarantine"],
            &[":", "::i=", "", "d:-:+:s=-"],
            &["no separator here"],
        ];
        let names: Vec<&str> = DKIM
            .iter()
            .chain(SPF)
            .chain(DMARC)
            .chain(ARC)
            .map(|(_, n)| *n)
            .chain([
                "R_DKIM_NA",
                "ARC_NA",
                "DMARC_NA",
                "R_SPF_",
                "ARC",
                "R_DKIM_ALLOWED",
                "BAYES_HAM",
                "A",
                "Z",
            ])
            .collect();
        let maybe = |s: &str, pick: u64| match pick % 3 {
            0 => None,
            1 => Some(String::new()),
            _ => Some(s.to_string()),
        };
        // A fixed xorshift sequence: the same cases every run.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut with_result = 0;
        for _ in 0..20_000 {
            let mut syms: Vec<(&str, f64, &[&str])> = Vec::new();
            for name in &names {
                if next() % 4 == 0 {
                    let o = options[(next() % options.len() as u64) as usize];
                    syms.push((name, 0.0, o));
                }
            }
            let v = verdict(Action::NoAction, 0.0, &syms);
            let env = Envelope {
                mail_from: maybe("a@example.com", next()),
                helo: maybe("client.example", next()),
                user: maybe("joe", next()),
                ..Envelope::default()
            };
            let got = authentication_results(&v, &env, "mx.test");
            with_result += usize::from(got.is_some());
            assert_eq!(
                got,
                reference_authentication_results(&v, &env, "mx.test"),
                "{syms:?} {env:?}"
            );
        }
        assert!(with_result > 10_000, "{with_result}");
    }

    #[test]
    fn block_removes_owned_headers_and_puts_authentication_results_on_top() {
        let cfg = MilterHeaders::default();
        let env = Envelope {
            mail_from: Some("a@example.com".into()),
            ..Envelope::default()
        };
        let v = verdict(Action::NoAction, 0.0, &[("R_SPF_ALLOW", -0.2, &[])]);
        let b = MilterBlock::for_verdict(&cfg, &v, &env, Some("mx.test"));
        let removed: Vec<(&str, i64)> = b
            .remove_headers
            .iter()
            .map(|r| (r.name.as_str(), r.index))
            .collect();
        assert_eq!(
            removed,
            [
                ("X-Spam-Flag", 0),
                ("X-Spam-Level", 0),
                ("X-Spam-Status", 0),
                ("X-Spamd-Result", 0),
                ("X-Virus-Check", 0),
                ("Authentication-Results", 0)
            ]
        );
        let ar = b
            .add_headers
            .iter()
            .find(|h| h.name == "Authentication-Results")
            .unwrap();
        assert_eq!(ar.order, Some(0));
        assert!(ar.value.starts_with("mx.test;"), "{}", ar.value);
        assert!(
            b.add_headers
                .iter()
                .filter(|h| h.name != "Authentication-Results")
                .all(|h| h.order.is_none())
        );
        assert_eq!(b.remove_headers[0].copies(3), [3, 2, 1]);
        let nth = RemoveHeader {
            name: "X".into(),
            index: -1,
        };
        assert_eq!(nth.copies(3), [3]);
        assert!(nth.copies(0).is_empty());

        // An authenticated sender's message is left alone.
        let auth = Envelope {
            user: Some("joe".into()),
            ..Envelope::default()
        };
        assert_eq!(
            MilterBlock::for_verdict(&cfg, &v, &auth, None),
            MilterBlock::default()
        );
        assert_eq!(MilterBlock::unscanned(&cfg, &auth), MilterBlock::default());
        let unscanned = MilterBlock::unscanned(&cfg, &env);
        assert!(unscanned.add_headers.is_empty());
        assert_eq!(unscanned.remove_headers, b.remove_headers);
    }

    #[test]
    fn outside_auth_results_go_unless_trusted() {
        let raw = b"Authentication-Results: border.example; spf=pass\r\n\
            Received: x\r\nAuthentication-Results: evil.example;\r\n\tdkim=pass\r\n\
            Authentication-Results: mx.test 1 (us?); dmarc=pass\r\n\r\nbody\r\n";
        let trusted = vec!["border.example".to_string()];
        let r = untrusted_auth_results(raw, "mx.test", &trusted);
        let idx: Vec<i64> = r.iter().map(|r| r.index).collect();
        assert_eq!(idx, [3, 2], "our own id and the unknown one, highest first");
        let config = MilterHeaders::default();
        let v = verdict(
            Action::NoAction,
            0.0,
            &[("R_DKIM_ALLOW", -0.2, &["example.com:s=sel:i=@example.com"])],
        );
        let env = Envelope::default();
        let block = MilterBlock::for_verdict(&config, &v, &env, Some("mx.test"))
            .keep_trusted_auth_results(&config, raw, Some("mx.test"), &trusted);
        let ar: Vec<i64> = block
            .remove_headers
            .iter()
            .filter(|r| r.name == "Authentication-Results")
            .map(|r| r.index)
            .collect();
        assert_eq!(ar, [3, 2]);
        let added = &block
            .add_headers
            .iter()
            .find(|h| h.name == "Authentication-Results")
            .unwrap()
            .value;
        assert!(
            added.contains("dkim=pass header.d=example.com header.i=@example.com header.s=sel"),
            "{added}"
        );
        // Nobody trusted: every copy goes, as before.
        let all = MilterBlock::for_verdict(&config, &v, &env, None).keep_trusted_auth_results(
            &config,
            raw,
            None,
            &[],
        );
        assert!(
            all.remove_headers
                .iter()
                .any(|r| r.name == "Authentication-Results" && r.index == 0)
        );
    }
}
