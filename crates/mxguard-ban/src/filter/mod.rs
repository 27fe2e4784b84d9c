//! Filters: which log lines are failures, and of which host.
//!
//! The built-in ones (`sshd`, `postfix`, `dovecot`, `postfix-flood`) are
//! ours: tables of rules over the message part of a line, with the state
//! a service needs (sshd's failures that name no host are tied to their
//! connection by pid). Custom filters (`failregex`/`ignoreregex` in the
//! config, or a fail2ban filter .conf) are [`custom::Custom`].
//!
//! A filter is stateful and owned by one reader; it is fed every line of
//! its sources in order.

pub mod conf;
pub mod custom;
pub mod dovecot;
pub(crate) mod fast;
pub mod flood;
pub mod postfix;
pub mod sshd;

use crate::host::Host;
use crate::line::LogLine;
use crate::pattern::{Captured, Pattern, PatternError};
use fast::{Fast, FastFn};

/// One failure a line counts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub host: Host,
    pub user: Option<String>,
    /// How many failures the line counts as (fail2ban's `attempts`).
    pub attempts: u32,
    /// Index of the rule that matched, into [`Filter::rules`].
    pub rule: usize,
}

/// What turns log lines into failures.
pub trait Filter: Send {
    /// `sshd`, `postfix:aggressive`, a custom filter's name.
    fn name(&self) -> &str;
    /// The rules' sources, for `ban test` (matched-per-rule counts).
    fn rules(&self) -> Vec<String>;
    /// Feeds one line; the failure it counts as, if any.
    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure>;
}

/// A filter spec error: the name, mode or expression at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FilterError {}

/// The built-in filters and their modes, for help texts and errors.
pub const BUILTIN: &[(&str, &[&str])] = &[
    ("sshd", &["normal", "ddos", "extra", "aggressive"]),
    (
        "postfix",
        &[
            "more",
            "normal",
            "auth",
            "rbl",
            "errors",
            "ddos",
            "aggressive",
        ],
    ),
    ("dovecot", &["normal", "aggressive"]),
    ("postfix-flood", &["normal"]),
];

/// Builds a built-in filter from `NAME[:MODE]` (`postfix:aggressive`;
/// fail2ban's `postfix[mode=aggressive]` is read too).
pub fn builtin(spec: &str) -> Result<Box<dyn Filter>, FilterError> {
    let (name, mode) = split_spec(spec);
    let known = |modes: &[&str]| -> Result<(), FilterError> {
        match mode {
            Some(m) if !modes.contains(&m) => Err(FilterError(format!(
                "filter `{name}` has no mode `{m}`: use one of {}",
                modes.join(", ")
            ))),
            _ => Ok(()),
        }
    };
    let modes = BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, m)| *m);
    let Some(modes) = modes else {
        return Err(FilterError(format!(
            "no built-in filter `{name}`: use one of {} or define it under [ban.filters.{name}] \
             (failregex, or file = a fail2ban filter .conf)",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    known(modes)?;
    let mode = mode.unwrap_or(modes[0]);
    Ok(match name {
        "sshd" => Box::new(sshd::Sshd::new(mode)),
        "postfix" => Box::new(postfix::Postfix::new(mode)),
        "dovecot" => Box::new(dovecot::Dovecot::new(mode)),
        _ => Box::new(flood::PostfixFlood::new()),
    })
}

/// `name:mode` or `name[mode=m]` → (name, mode).
pub fn split_spec(spec: &str) -> (&str, Option<&str>) {
    if let Some((name, mode)) = spec.split_once(':') {
        return (name, Some(mode));
    }
    if let Some(open) = spec.find('[')
        && let Some(inner) = spec[open + 1..].strip_suffix(']')
        && let Some(mode) = inner.strip_prefix("mode=")
    {
        return (&spec[..open], Some(mode.trim_matches(['"', '\''])));
    }
    (spec, None)
}

/// A rule of a built-in filter: a pattern, what a match means, and the
/// modes it is on in (bit set of the filter's own mode bits).
pub(crate) struct Rule<E> {
    pub pattern: Pattern,
    pub effect: E,
    pub modes: u8,
    /// A hand-written reading of the same rule for its common lines
    /// (see [`fast`]); the regex decides whenever it declines.
    pub fast: Option<FastFn>,
}

/// The rules of a built-in filter that are on in one mode, tried in order.
pub(crate) struct Rules<E> {
    rules: Vec<Rule<E>>,
}

impl<E: Copy> Rules<E> {
    /// Compiles `(modes, effect, pattern)`; keeps those whose modes meet
    /// `mode`. Built-in patterns are ours and tested: a failure is a bug.
    pub fn new(table: &[(u8, E, &str)], mode: u8) -> Rules<E> {
        Rules::with_shortcuts(table, mode, |_| None)
    }

    /// As [`Rules::new`], with `shortcut(source)` giving the hand-written
    /// reading of a rule, if it has one.
    pub fn with_shortcuts(
        table: &[(u8, E, &str)],
        mode: u8,
        shortcut: impl Fn(&str) -> Option<FastFn>,
    ) -> Rules<E> {
        let rules = table
            .iter()
            .filter(|(modes, _, _)| modes & mode != 0)
            .map(|&(modes, effect, src)| Rule {
                pattern: Pattern::new(src)
                    .unwrap_or_else(|e: PatternError| panic!("built-in rule {src}: {e}")),
                effect,
                modes,
                fast: shortcut(src),
            })
            .collect();
        Rules { rules }
    }

    pub fn sources(&self) -> Vec<String> {
        self.rules
            .iter()
            .map(|r| r.pattern.source.clone())
            .collect()
    }

    /// The first rule that matches `text`, its index, effect and captures.
    pub fn first<'t>(&'t self, text: &'t str) -> Option<(usize, E, Captured<'t>)> {
        self.rules.iter().enumerate().find_map(|(i, r)| {
            let _ = r.modes;
            let found = match r.fast.map(|f| f(text)) {
                Some(Fast::Match(c)) => Some(c),
                Some(Fast::NoMatch) => None,
                Some(Fast::Unsure) | None => {
                    return r.pattern.captures(text).map(|c| (i, r.effect, c));
                }
            };
            // Debug builds (every test) hold the shortcut to the regex's
            // answer on every line they read.
            #[cfg(debug_assertions)]
            assert_eq!(
                found,
                r.pattern.captures(text),
                "shortcut of rule {} disagrees with its regex on {text:?}",
                r.pattern.source
            );
            found.map(|c| (i, r.effect, c))
        })
    }
}

/// A failure of one host from captures (no host: `None`).
pub(crate) fn failure(c: &Captured<'_>, rule: usize) -> Option<Failure> {
    let host = Host::parse(c.host?);
    Some(Failure {
        host,
        user: c.user.map(str::to_string),
        attempts: 1,
        rule,
    })
}
