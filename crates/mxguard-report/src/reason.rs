//! The reasons pflogsumm groups problems by: its rules for shortening a
//! reject, deferral or bounce text to what the mails have in common (the
//! addresses and host names cut out), unless `--verbose-msg-detail` asks
//! for the whole text. Problems are a small share of a log, so regexes
//! are fine here (compiled once; linear time on hostile text).

use regex::Regex;

/// A reject, reject_warning, hold or discard by smtpd/postscreen, split
/// the way the report groups it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// The SMTP stage: RCPT, DATA, CONNECT, EHLO, MAIL, VRFY, …
    pub stage: String,
    pub reason: String,
    /// What is counted under the reason: the client's domain, the
    /// recipient or the sender, depending on the reason.
    pub data: String,
}

pub struct Rules {
    reject_line: Regex,
    rcpt_addr: Regex,
    rcpt_protocol: Regex,
    rcpt_reason: Regex,
    rcpt_addr_rejected: Regex,
    rcpt_blocked: Regex,
    mail_reason: Regex,
    other_reason: Regex,
    to_full: Regex,
    to_unknown: Regex,
    to_open: Regex,
    from_full: Regex,
    pipelining: Regex,
    pipelining_src: Regex,
    size_limit: Regex,
    local_config: Regex,
    cleanup_from: Regex,
    smtp_connect_address: Regex,
    smtp_connect_port: Regex,
}

fn re(s: &str) -> Regex {
    Regex::new(s).expect("built-in pattern")
}

/// Cuts to `max` characters with "..." when longer.
pub fn trim(s: &str, max: usize, verbose: bool) -> String {
    if verbose || s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// Shortens a remote server's reply: drops what precedes "said: ", then
/// leading "word: " parts, until it fits; cut with "..." as a last resort.
pub fn trim_said(s: &str, max: usize) -> String {
    let mut s = s.to_string();
    while s.chars().count() > max {
        if let Some(p) = s.rfind(" said: ") {
            s = s[p + 7..].to_string();
        } else if let Some(p) = s.find(':') {
            s = s[p + 1..].trim_start_matches(' ').to_string();
        } else {
            s = trim(&s, max, false);
            break;
        }
    }
    s
}

fn strip_code(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
        &s[4..]
    } else {
        s
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::new()
    }
}

impl Rules {
    pub fn new() -> Rules {
        Rules {
            reject_line: re(
                r"^(?:.* )?\b(?:reject(?:_warning)?|hold|discard): (\S+) from (\S+?): (.*)$",
            ),
            rcpt_addr: re(r"^(\d{3} <).*?(>:)"),
            rcpt_protocol: re(r"^(?:\d{3} \d\.\d\.\d )(Protocol error);.*$"),
            rcpt_reason: re(r"^(?:.*?[:;] )(?:\[[^\]]+\] )?([^;,]+)[;,].*$"),
            rcpt_addr_rejected: re(r"^((?:Sender|Recipient) address rejected: [^:]+):.*$"),
            rcpt_blocked: re(r"(?:client|Client host|Sender address) .+? blocked"),
            mail_reason: re(r"^\d{3} (?:<.+>: )?([^;:]+)[;:]?.*$"),
            other_reason: re(r"^(?:.*[:;] )?([^,]+).*$"),
            to_full: re(r"to=<([^>]+)>"),
            to_unknown: re(r"\d{3} <([^>]+)>: User unknown "),
            to_open: re(r"to=<(.*?)(?:[, ]|$)"),
            from_full: re(r"from=<([^>]+)>"),
            pipelining: re(r"^.*?\d{3} (Improper use of SMTP command pipelining);.*$"),
            pipelining_src: re(r"^.+? from (\S+?):.*$"),
            size_limit: re(r"^.*?\d{3} (Message size exceeds fixed limit);.*$"),
            local_config: re(r"^.*?\d{3} (Server configuration (?:error|problem));.*$"),
            cleanup_from: re(r"(?: from \S+?)?; from=<.*$"),
            smtp_connect_address: re(r".* connect to (\S+?): ([^;]+); address \S+ port.*$"),
            smtp_connect_port: re(r".* connect to ([^\[]+)\[\S+?\]: (.+?) \(port \d+\)$"),
        }
    }

    /// A reject-like line of smtpd or postscreen (`line` from the syslog
    /// tag on).
    pub fn reject(&self, line: &str, verbose: bool, add_from: bool) -> Reject {
        let (stage, client, rest) = match self.reject_line.captures(line) {
            Some(c) => (
                c.get(1).map_or("", |m| m.as_str()),
                c.get(2).map_or("", |m| m.as_str()),
                c.get(3).map_or("", |m| m.as_str()),
            ),
            None => ("", "", ""),
        };
        let mut reason = rest.to_string();
        if !verbose {
            if matches!(stage, "RCPT" | "DATA" | "CONNECT") {
                reason = self.rcpt_addr.replace(&reason, "$1$2").into_owned();
                reason = self.rcpt_protocol.replace(&reason, "$1").into_owned();
                reason = self.rcpt_reason.replace(&reason, "$1").into_owned();
                reason = self.rcpt_addr_rejected.replace(&reason, "$1").into_owned();
                reason = self.rcpt_blocked.replace(&reason, "blocked").into_owned();
            } else if stage == "MAIL" {
                reason = self.mail_reason.replace(&reason, "$1").into_owned();
            } else {
                reason = self.other_reason.replace(&reason, "$1").into_owned();
            }
        }
        let to = self
            .to_full
            .captures(rest)
            .or_else(|| self.to_unknown.captures(rest))
            .or_else(|| self.to_open.captures(rest))
            .and_then(|c| c.get(1))
            .map_or("<>", |m| m.as_str());
        let from = self
            .from_full
            .captures(rest)
            .and_then(|c| c.get(1))
            .map_or("<>", |m| m.as_str());
        let mut domain = String::new();
        crate::domain::host_domain(client, &mut domain);
        let with_from = |mut d: String| {
            if add_from {
                d.push_str("  (");
                d.push_str(from);
                d.push(')');
            }
            d
        };
        let data = if reason.starts_with("Sender address rejected:") {
            from.to_string()
        } else if reason.starts_with("Recipient address rejected:")
            || reason == "User unknown"
            || reason.starts_with("User unknown ")
        {
            let mut d = to.to_string();
            if add_from {
                d.push_str("  (");
                d.push_str(from);
                d.push(')');
            }
            d
        } else if self.pipelining.is_match(&reason) {
            reason = self.pipelining.replace(&reason, "$1").into_owned();
            self.pipelining_src
                .captures(line)
                .and_then(|c| c.get(1))
                .map_or(String::new(), |m| m.as_str().to_string())
        } else if self.size_limit.is_match(&reason) {
            reason = self.size_limit.replace(&reason, "$1").into_owned();
            with_from(domain)
        } else if self.local_config.is_match(&reason) {
            reason = self
                .local_config
                .replace(&reason, "(Local) $1")
                .into_owned();
            with_from(domain)
        } else {
            with_from(domain)
        };
        Reject {
            stage: stage.to_string(),
            reason,
            data,
        }
    }

    /// A cleanup header/body check's text after "header "/"body ".
    pub fn cleanup_text(&self, rest: &str, verbose: bool) -> String {
        let s = if verbose {
            rest.to_string()
        } else {
            self.cleanup_from.replace(rest, "").into_owned()
        };
        trim(&s, 64, verbose)
    }

    /// The reason of a deferral (the text in the parentheses of
    /// `status=deferred (…)`).
    pub fn deferral(&self, text: &str, verbose: bool) -> String {
        if verbose {
            return text.to_string();
        }
        let s = trim_said(text, 65);
        let s = strip_code(&s);
        s.strip_prefix("connect to ").unwrap_or(s).to_string()
    }

    pub fn bounce(&self, text: &str, verbose: bool) -> String {
        if verbose {
            return text.to_string();
        }
        strip_code(&trim_said(text, 66)).to_string()
    }

    /// An smtp client's connection failure: (reason lower-cased, host).
    pub fn smtp_failure(&self, msg: &str) -> Option<(String, String)> {
        let c = self
            .smtp_connect_address
            .captures(msg)
            .or_else(|| self.smtp_connect_port.captures(msg))?;
        Some((c[2].to_lowercase(), c[1].to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcpt_rejects_group_like_pflogsumm() {
        let r = Rules::new();
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[192.0.2.236]: 554 5.7.1 <dom.tld>: Helo command rejected: Access denied; from=<ADMINISTRATOR@dom.tld> to=<lp@dom.tld> proto=ESMTP helo=<dom.tld>";
        let j = r.reject(line, false, false);
        assert_eq!(
            (j.stage.as_str(), j.reason.as_str(), j.data.as_str()),
            (
                "RCPT",
                "Helo command rejected: Access denied",
                "192.0.2.236"
            )
        );
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[1.2.3.4]: 550 5.1.1 <sales@server.com>: Recipient address rejected: User unknown in local recipient table; from=<a@b> to=<sales@server.com> proto=ESMTP helo=<m>";
        let j = r.reject(line, false, true);
        assert_eq!(
            j.reason,
            "Recipient address rejected: User unknown in local recipient table"
        );
        assert_eq!(j.data, "sales@server.com  (a@b)");
        let line = "postfix/smtpd[1]: NOQUEUE: reject: RCPT from badguy.example.com[93.184.216.34]: 454 4.7.1 Service unavailable; Client host [93.184.216.34] blocked using rbl.example.com; http://x; from=<s@e> to=<g@e> proto=ESMTP helo=<b>";
        assert_eq!(
            r.reject(line, false, false).reason,
            "blocked using rbl.example.com"
        );
        let v = r.reject(line, true, false);
        assert!(
            v.reason
                .starts_with("454 4.7.1 Service unavailable; Client host")
        );
    }

    #[test]
    fn said_trimming() {
        assert_eq!(
            Rules::new().deferral(
                "connect to mx.example.com[10.0.0.4]:25: Connection timed out",
                false
            ),
            "mx.example.com[10.0.0.4]:25: Connection timed out"
        );
        let long = "host mx.x.org[1.2.3.4] said: 550 5.1.1 <someone@x.org>: Recipient address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)";
        let b = Rules::new().bounce(long, false);
        assert!(b.chars().count() <= 66, "{b}");
    }
}
