//! `mxguard ban test`: a filter over a log file, fail2ban-regex's job —
//! lines read, lines matched per rule, hosts found — and, on request,
//! every matching line (as text or one JSON object each).

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

use crate::filter::{Failure, Filter};
use crate::line::{self, LogLine};

/// What a run found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub filter: String,
    pub lines: u64,
    pub matched: u64,
    /// Matches whose host is a name, not an address (never banned).
    pub unresolved: u64,
    /// (rule, matches), in the filter's rule order.
    pub rules: Vec<RuleCount>,
    /// Failures by host, counting attempts.
    pub hosts: BTreeMap<String, u64>,
    pub seconds: f64,
    pub lines_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleCount {
    pub regex: String,
    pub matches: u64,
}

/// One matching line, for `--json` (`line` is its number in the file).
#[derive(Debug, Clone, Serialize)]
pub struct Match<'a> {
    pub line: u64,
    pub host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub attempts: u32,
}

/// Runs `filter` over every line of `input`; `each` sees each match.
pub fn run(
    filter: &mut dyn Filter,
    mut input: impl BufRead,
    mut each: impl FnMut(u64, &LogLine<'_>, &Failure),
) -> std::io::Result<Summary> {
    let started = std::time::Instant::now();
    let rules = filter.rules();
    let mut per_rule = vec![0u64; rules.len()];
    let mut s = Summary {
        filter: filter.name().to_string(),
        ..Summary::default()
    };
    let mut handle = |bytes: &[u8]| {
        s.lines += 1;
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let parsed = line::parse(&text);
        if let Some(hit) = filter.process(&parsed) {
            s.matched += 1;
            if let Some(n) = per_rule.get_mut(hit.rule) {
                *n += 1;
            }
            if hit.host.ip.is_none() {
                s.unresolved += 1;
            }
            // Looked up first: the key is copied only for a new host.
            match s.hosts.get_mut(&hit.host.text) {
                Some(n) => *n += u64::from(hit.attempts),
                None => {
                    s.hosts
                        .insert(hit.host.text.clone(), u64::from(hit.attempts));
                }
            }
            each(s.lines, &parsed, &hit);
        }
    };
    // Lines are taken from the reader's own buffer where they lie whole
    // (no copy per line); only a line split across two reads is copied.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let block = input.fill_buf()?;
        let len = block.len();
        if len == 0 {
            break;
        }
        let mut start = 0;
        if !carry.is_empty() {
            let Some(nl) = memchr::memchr(b'\n', block) else {
                carry.extend_from_slice(block);
                input.consume(len);
                continue;
            };
            carry.extend_from_slice(&block[..=nl]);
            handle(&carry);
            carry.clear();
            start = nl + 1;
        }
        let base = start;
        for nl in memchr::memchr_iter(b'\n', &block[base..]) {
            let end = base + nl + 1;
            handle(&block[start..end]);
            start = end;
        }
        carry.extend_from_slice(&block[start..]);
        input.consume(len);
    }
    if !carry.is_empty() {
        handle(&carry);
    }
    s.rules = rules
        .into_iter()
        .zip(per_rule)
        .map(|(regex, matches)| RuleCount { regex, matches })
        .collect();
    s.seconds = started.elapsed().as_secs_f64();
    s.lines_per_second = s.lines as f64 / s.seconds.max(1e-9);
    Ok(s)
}

/// The summary as fail2ban-regex prints it, roughly.
pub fn text(s: &Summary) -> String {
    let mut out = format!("Filter: {}\n\nRules: #) [# of matches] regex\n", s.filter);
    for (i, r) in s.rules.iter().enumerate() {
        out.push_str(&format!("{:>3}) [{}] {}\n", i + 1, r.matches, r.regex));
    }
    out.push_str(&format!(
        "\nLines: {} lines, {} matched, {} missed\n",
        s.lines,
        s.matched,
        s.lines - s.matched
    ));
    if s.unresolved > 0 {
        out.push_str(&format!(
            "({} matches name a host, not an address: never banned)\n",
            s.unresolved
        ));
    }
    out.push_str(&format!("Hosts: {} found\n", s.hosts.len()));
    let mut top: Vec<(&String, &u64)> = s.hosts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (h, n) in top.iter().take(20) {
        out.push_str(&format!("  {n:>8}  {h}\n"));
    }
    if top.len() > 20 {
        out.push_str(&format!("  … and {} more\n", top.len() - 20));
    }
    out.push_str(&format!(
        "\nRead in {:.3} s: {:.0} lines/s\n",
        s.seconds, s.lines_per_second
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_rules_and_hosts() {
        let log = b"Feb 25 14:34:10 h sshd[1]: Failed password for invalid user a from 192.0.2.1 port 2 ssh2\n\
                   Feb 25 14:34:11 h sshd[1]: Accepted password for b from 192.0.2.2 port 2 ssh2\n\
                   \xff\xfe junk\n\
                   Feb 25 14:34:12 h sshd[2]: Invalid user c from 192.0.2.1 port 3\n";
        let mut f = crate::filter::builtin("sshd").unwrap();
        let mut seen = Vec::new();
        let s = run(f.as_mut(), &log[..], |n, _, hit| {
            seen.push((n, hit.host.text.clone()))
        })
        .unwrap();
        assert_eq!((s.lines, s.matched), (4, 2));
        assert_eq!(
            seen,
            [(1, "192.0.2.1".to_string()), (4, "192.0.2.1".to_string())]
        );
        assert_eq!(s.hosts["192.0.2.1"], 2);
        assert_eq!(s.rules.iter().map(|r| r.matches).sum::<u64>(), 2);
        assert!(text(&s).contains("4 lines, 2 matched, 2 missed"));
    }

    /// Lines split across the reader's reads, and a last line without
    /// its line end, are read as whole lines.
    #[test]
    fn lines_across_reads_and_without_a_line_end() {
        let log = "Feb 25 14:34:10 h sshd[1]: Invalid user a from 192.0.2.1 port 2\n\
                   Feb 25 14:34:11 h sshd[2]: Invalid user bb from 192.0.2.2 port 2\n\
                   \n\
                   Feb 25 14:34:12 h sshd[3]: Invalid user c from 192.0.2.3";
        for capacity in [1, 7, 64, 1 << 16] {
            let mut f = crate::filter::builtin("sshd").unwrap();
            let mut seen = Vec::new();
            let reader = std::io::BufReader::with_capacity(capacity, log.as_bytes());
            let s = run(f.as_mut(), reader, |n, _, hit| {
                seen.push((n, hit.user.clone().unwrap_or_default()))
            })
            .unwrap();
            assert_eq!((s.lines, s.matched), (4, 3), "capacity {capacity}");
            assert_eq!(
                seen,
                [(1, "a".into()), (2, "bb".into()), (4, "c".into())],
                "capacity {capacity}"
            );
        }
    }
}
