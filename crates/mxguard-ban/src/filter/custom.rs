//! Filters written by the user: `failregex` and `ignoreregex` in
//! fail2ban's vocabulary (see `pattern`), an optional `prefregex` whose
//! `<F-CONTENT>` the failregexes then read, and an optional `datepattern`.
//!
//! The expressions are matched against the line after its time stamp,
//! as fail2ban does. With a `datepattern`, that pattern (strftime-style
//! `%Y %m %d %H %M %S %b %f %z`, or a regex) is what is cut off the line
//! instead. Multi-line groups: `<F-MLFID>` ties a line to earlier ones
//! (a line without a host takes the address its id last had),
//! `<F-NOFAIL>` marks a line that only names the address, and
//! `<F-MLFFORGET>` ends the id.

use std::collections::HashMap;

use regex::Regex;

use super::{Failure, Filter, FilterError};
use crate::host::Host;
use crate::line::LogLine;
use crate::pattern::{Captured, Pattern};

/// A custom filter's definition, as the config or a .conf file gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Definition {
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub prefregex: Option<String>,
    pub datepattern: Option<String>,
}

pub struct Custom {
    name: String,
    fail: Vec<Pattern>,
    ignore: Vec<Pattern>,
    prefix: Option<Pattern>,
    date: Option<Regex>,
    ids: HashMap<String, Host>,
}

const MAX_IDS: usize = 20_000;

impl Custom {
    /// Compiles a definition; errors name the expression at fault
    /// (`failregex[2]: …`).
    pub fn new(name: &str, def: &Definition) -> Result<Custom, FilterError> {
        if def.failregex.is_empty() {
            return Err(FilterError(format!(
                "filter `{name}` has no failregex: give at least one expression with <HOST>"
            )));
        }
        let compile = |what: &str, i: usize, src: &str| {
            Pattern::new(src)
                .map_err(|e| FilterError(format!("filter `{name}`, {what}[{i}] `{src}` {e}")))
        };
        let mut fail = Vec::new();
        for (i, src) in def.failregex.iter().enumerate() {
            let p = compile("failregex", i, src)?;
            if !p.has_host()
                && !src.contains("<F-MLFID>")
                && def
                    .prefregex
                    .as_deref()
                    .is_none_or(|p| !p.contains("<F-MLFID>"))
            {
                return Err(FilterError(format!(
                    "filter `{name}`, failregex[{i}] `{src}` captures no host: add <HOST>, <ADDR>, <IP4> or <IP6>"
                )));
            }
            fail.push(p);
        }
        let ignore = def
            .ignoreregex
            .iter()
            .enumerate()
            .map(|(i, s)| compile("ignoreregex", i, s))
            .collect::<Result<_, _>>()?;
        let prefix = def
            .prefregex
            .as_deref()
            .map(|s| compile("prefregex", 0, s))
            .transpose()?;
        let date = def
            .datepattern
            .as_deref()
            .map(|s| {
                Regex::new(&date_regex(s)).map_err(|e| {
                    FilterError(format!(
                        "filter `{name}`, datepattern `{s}` is not valid: {e}"
                    ))
                })
            })
            .transpose()?;
        Ok(Custom {
            name: name.to_string(),
            fail,
            ignore,
            prefix,
            date,
            ids: HashMap::new(),
        })
    }
}

/// fail2ban's date pattern (strftime-like, `{^LN-BEG}` for the line start)
/// to a regex.
pub fn date_regex(pattern: &str) -> String {
    let mut out = String::new();
    let p = pattern.replace("{^LN-BEG}", "^");
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('Y') => r"[0-9]{4}",
            Some('y') => r"[0-9]{2}",
            Some('m') | Some('d') | Some('H') | Some('M') | Some('S') | Some('I') => r"[0-9]{1,2}",
            Some('e') => r" ?[0-9]{1,2}",
            Some('b') | Some('a') => r"[A-Za-z]{3}",
            Some('B') | Some('A') => r"[A-Za-z]+",
            Some('f') => r"[0-9]+",
            Some('z') => r"[+-][0-9]{2}:?[0-9]{2}",
            Some('Z') => r"[A-Z]{2,5}",
            Some('p') => r"[AP]M",
            Some('j') => r"[0-9]{1,3}",
            Some('s') => r"[0-9]{9,11}",
            Some('%') => "%",
            Some(other) => {
                out.push('%');
                out.push(other);
                continue;
            }
            None => "%",
        };
        out.push_str(piece);
    }
    out
}

fn field<'t>(c: &Captured<'t>, name: &str) -> Option<&'t str> {
    c.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

impl Filter for Custom {
    fn name(&self) -> &str {
        &self.name
    }

    fn rules(&self) -> Vec<String> {
        self.fail.iter().map(|p| p.source.clone()).collect()
    }

    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure> {
        let text = match &self.date {
            Some(date) => match date.find(line.raw) {
                Some(m) => line.raw[m.end()..].trim_start_matches(' '),
                None => line.raw,
            },
            None => line.rest,
        };
        let (text, pre) = match &self.prefix {
            Some(p) => {
                let c = p.captures(text)?;
                let content = field(&c, "content").unwrap_or(text);
                (content, Some(c))
            }
            None => (text, None),
        };
        if self.ignore.iter().any(|p| p.is_match(text)) {
            return None;
        }
        let (rule, caps) = self
            .fail
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.captures(text).map(|c| (i, c)))?;
        let get =
            |name: &str| field(&caps, name).or_else(|| pre.as_ref().and_then(|p| field(p, name)));
        let mlfid = get("mlfid").map(str::to_string);
        let nofail = get("nofail").is_some();
        let forget = get("mlfforget").is_some();
        let host = caps
            .host
            .or_else(|| pre.as_ref().and_then(|p| p.host))
            .map(Host::parse);
        let host = match (&mlfid, host) {
            (Some(id), Some(h)) => {
                if self.ids.len() >= MAX_IDS {
                    self.ids.clear();
                }
                self.ids.insert(id.clone(), h.clone());
                Some(h)
            }
            (Some(id), None) => self.ids.get(id).cloned(),
            (None, h) => h,
        };
        if forget && let Some(id) = &mlfid {
            self.ids.remove(id);
        }
        if nofail {
            return None;
        }
        Some(Failure {
            host: host?,
            user: caps
                .user
                .or_else(|| pre.as_ref().and_then(|p| p.user))
                .map(str::to_string),
            attempts: 1,
            rule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::parse;

    #[test]
    fn failregex_ignoreregex_and_datepattern() {
        let def = Definition {
            failregex: vec![r"^\S+ app: login failed for <F-USER>\S+</F-USER> from <HOST>$".into()],
            ignoreregex: vec![r"from 10\.".into()],
            ..Definition::default()
        };
        let mut f = Custom::new("app", &def).unwrap();
        let hit = f
            .process(&parse(
                "Jan  1 00:00:00 h app: login failed for bob from 192.0.2.9",
            ))
            .unwrap();
        assert_eq!(
            (hit.host.text.as_str(), hit.user.as_deref()),
            ("192.0.2.9", Some("bob"))
        );
        assert!(
            f.process(&parse(
                "Jan  1 00:00:00 h app: login failed for bob from 10.0.0.1"
            ))
            .is_none()
        );

        let def = Definition {
            failregex: vec![r"^bad <ADDR>$".into()],
            datepattern: Some(r"{^LN-BEG}\[%d/%b/%Y:%H:%M:%S %z\]".into()),
            ..Definition::default()
        };
        let mut f = Custom::new("web", &def).unwrap();
        let hit = f
            .process(&parse("[07/Dec/2026:09:00:00 +0000] bad 2001:db8::7"))
            .unwrap();
        assert_eq!(hit.host.text, "2001:db8::7");
    }

    #[test]
    fn errors_name_the_expression() {
        let def = Definition {
            failregex: vec!["ok <HOST>".into(), "(?<=x)<HOST>".into()],
            ..Definition::default()
        };
        let e = Custom::new("x", &def).err().unwrap();
        assert!(
            e.0.contains("failregex[1]") && e.0.contains("look-behind"),
            "{e}"
        );
        let def = Definition {
            failregex: vec!["no host here".into()],
            ..Definition::default()
        };
        assert!(
            Custom::new("x", &def)
                .err()
                .unwrap()
                .0
                .contains("captures no host")
        );
    }
}
