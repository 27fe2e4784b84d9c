//! Header and body rules: named regexes (rspamd's regexp rules) and Postfix
//! `regexp:` tables used as header_checks or body_checks.

use super::{BuildError, BuildReport, Check};
use crate::Task;
use mail_parser::MimeHeaders;
use mxguard_core::config::{Config, Problems, Section};
use mxguard_core::maps::{
    LineError, MapData, MapFile, MapLimits, logical_lines_whole_line_comments,
};
use mxguard_core::rules::{RuleAction, compile_pattern};
use mxguard_core::{ScanResults, SymbolDef};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a header/body rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTarget {
    /// A header by name (`header = "..."`), decoded unless `raw = true`.
    Header,
    /// The decoded Subject.
    Subject,
    /// The decoded text of every text part (HTML reduced to text).
    Body,
    /// The undecoded body, as transmitted.
    Rawbody,
    /// Each attachment's file name.
    Filename,
    /// Each MIME part's content type, `type/subtype`.
    ContentType,
}

/// A named regexp rule: rspamd's regexp module, Postfix's header/body_checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The symbol the rule emits.
    pub name: String,
    pub target: RuleTarget,
    /// The header name, for `target = "header"`.
    #[serde(default)]
    pub header: Option<String>,
    /// Match the header's raw (undecoded, unfolded) value.
    #[serde(default)]
    pub raw: bool,
    /// A regex, either plain or as `/pattern/flags` (flags: i, m, s, x).
    pub pattern: Spanned<String>,
    /// The symbol's weight (default 1.0).
    #[serde(default)]
    pub score: Option<f64>,
    /// Postfix-style action: `REJECT text`, `DISCARD`, `WARN`, `HOLD`.
    #[serde(default)]
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// What a Postfix `regexp:` table applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableTarget {
    /// Like `header_checks`: each logical header line, `Name: value`.
    Header,
    /// Like `body_checks`: each line of the body.
    Body,
}

/// A Postfix `regexp:` table file used as header_checks or body_checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTableConfig {
    pub path: Spanned<PathBuf>,
    pub target: TableTarget,
    /// Symbol for matches; defaults to HEADER_CHECKS or BODY_CHECKS.
    #[serde(default)]
    pub symbol: Option<String>,
    /// Weight of the symbol (default 1.0); REJECT/DISCARD/HOLD lines force their action.
    #[serde(default)]
    pub score: Option<f64>,
}

/// `[[rules]]`: every named rule, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleList(pub Vec<RuleConfig>);

impl Section for RuleList {
    const KEY: &'static str = "rules";

    fn validate(&self, problems: &mut Problems) {
        for (i, r) in self.0.iter().enumerate() {
            problems.finite_score(format!("[{i}].score"), r.score);
        }
        for (i, r) in self.0.iter().enumerate() {
            if let Err(e) = compile_pattern(r.pattern.get_ref(), false) {
                problems.at_span(r.pattern.span(), format!("[{i}].pattern"), e);
            }
            if let Some(a) = &r.action
                && let Err(e) = RuleAction::parse(a.get_ref())
            {
                problems.at_span(a.span(), format!("[{i}].action"), e);
            }
            if r.target == RuleTarget::Header && r.header.as_deref().is_none_or(str::is_empty) {
                problems.at_span(
                    r.pattern.span(),
                    format!("[{i}].header"),
                    format!(
                        "rule {} has target = \"header\" but no header = \"Name\"",
                        r.name
                    ),
                );
            }
            problems.symbol_name(r.pattern.span(), format!("[{i}].name"), &r.name);
        }
    }
}

/// `[[rule_tables]]`: every Postfix regexp table, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleTableList(pub Vec<RuleTableConfig>);

impl Section for RuleTableList {
    const KEY: &'static str = "rule_tables";

    fn validate(&self, problems: &mut Problems) {
        for (i, t) in self.0.iter().enumerate() {
            problems.finite_score(format!("[{i}].score"), t.score);
            if let Some(s) = &t.symbol {
                problems.symbol_name(t.path.span(), format!("[{i}].symbol"), s);
            }
        }
    }
}

/// Postfix's default body_checks_size_limit: body_checks see this much.
const BODY_CHECKS_LIMIT: usize = 51200;

struct Rule {
    symbol: String,
    target: RuleTarget,
    header: Option<String>,
    raw: bool,
    regex: Regex,
    action: Option<RuleAction>,
}

/// One line of a Postfix regexp table.
#[derive(Debug)]
struct TableEntry {
    line: usize,
    regex: Regex,
    negate: bool,
    /// `if` blocks enclosing this entry: each must match (or, negated, not match).
    conditions: Vec<(Regex, bool)>,
    action: RuleAction,
}

/// A parsed `regexp:` table.
#[derive(Debug, Default)]
pub struct RegexpTable {
    entries: Vec<TableEntry>,
}

/// Splits `/pattern/flags rest` or `!/pattern/flags rest`, where the
/// pattern ends at the first `/` followed by flags and whitespace or end.
fn split_table_line(s: &str) -> Option<(bool, &str, &str)> {
    let (negate, s) = match s.strip_prefix('!') {
        Some(r) => (true, r.trim_start()),
        None => (false, s),
    };
    let delim = s.chars().next()?;
    if delim.is_alphanumeric() || delim.is_whitespace() {
        return None;
    }
    let body = &s[delim.len_utf8()..];
    let mut search = 0;
    while let Some(i) = body[search..].find(delim) {
        let end = search + i;
        let after = &body[end + delim.len_utf8()..];
        let flags_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let rest = &after[flags_len..];
        if rest.is_empty() || rest.starts_with(char::is_whitespace) {
            let literal_end = delim.len_utf8() + end + delim.len_utf8() + flags_len;
            return Some((negate, &s[..literal_end], rest.trim()));
        }
        search = end + delim.len_utf8();
    }
    None
}

/// A regex that matches nothing, for the entries under a broken `if`.
fn never_matches() -> Regex {
    // `[^\s\S]` matches no character at all.
    Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("constant regex"))
}

/// Postfix patterns may use any delimiter; normalise to `/body/flags`.
fn to_slash_literal(lit: &str) -> String {
    let delim = lit.chars().next().unwrap_or('/');
    let inner = &lit[delim.len_utf8()..];
    let end = inner.rfind(delim).unwrap_or(inner.len());
    format!(
        "/{}/{}",
        &inner[..end],
        &inner[(end + delim.len_utf8()).min(inner.len())..]
    )
}

impl MapData for RegexpTable {
    fn parse(path: &Path, text: &str, errors: &mut Vec<LineError>) -> Self {
        let mut table = RegexpTable::default();
        let mut conditions: Vec<(Regex, bool)> = Vec::new();
        let mut open_ifs: Vec<usize> = Vec::new();
        for (line, content) in logical_lines_whole_line_comments(text) {
            let mut err = |message: String| {
                errors.push(LineError {
                    file: path.to_path_buf(),
                    line,
                    message,
                })
            };
            if content.eq_ignore_ascii_case("endif") {
                if conditions.pop().is_none() {
                    err("`endif` without `if`".into());
                }
                open_ifs.pop();
                continue;
            }
            let (is_if, spec) = match content.strip_prefix("if ").or(content.strip_prefix("IF ")) {
                Some(r) => (true, r.trim()),
                None => (false, content.as_str()),
            };
            let parsed = split_table_line(spec)
                .ok_or_else(|| format!("expected `/pattern/flags ACTION`, found `{content}`"))
                .and_then(|(negate, literal, rest)| {
                    compile_pattern(&to_slash_literal(literal), true).map(|r| (negate, r, rest))
                });
            let (negate, regex, rest) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    err(e);
                    if is_if {
                        // A broken `if` must not make its block apply to
                        // everything: its entries get a condition that
                        // never holds, and its `endif` still matches.
                        conditions.push((never_matches(), false));
                        open_ifs.push(line);
                    }
                    continue;
                }
            };
            if is_if {
                if !rest.is_empty() {
                    err("`if /pattern/` takes no action".into());
                }
                conditions.push((regex, negate));
                open_ifs.push(line);
                continue;
            }
            match RuleAction::parse(rest) {
                Ok(action) => table.entries.push(TableEntry {
                    line,
                    regex,
                    negate,
                    conditions: conditions.clone(),
                    action,
                }),
                Err(e) => err(e),
            }
        }
        for line in open_ifs {
            errors.push(LineError {
                file: path.to_path_buf(),
                line,
                message: "`if` without `endif`".into(),
            });
        }
        table
    }
}

impl RegexpTable {
    /// The first entry that matches `input`, as Postfix evaluates a table.
    fn first_match(&self, input: &str) -> Option<&TableEntry> {
        self.entries.iter().find(|e| {
            e.conditions
                .iter()
                .all(|(r, neg)| r.is_match(input) != *neg)
                && e.regex.is_match(input) != e.negate
        })
    }
}

struct Table {
    file: MapFile<RegexpTable>,
    path: PathBuf,
    target: TableTarget,
    symbol: String,
}

pub struct Rules {
    rules: Vec<Rule>,
    tables: Vec<Table>,
    defs: Vec<SymbolDef>,
}

impl Rules {
    pub fn new(config: &Config, report: &mut BuildReport) -> Rules {
        let mut rules = Vec::new();
        let mut defs = Vec::new();
        for (i, r) in config.section::<RuleList>().0.iter().enumerate() {
            let regex = match compile_pattern(r.pattern.get_ref(), false) {
                Ok(re) => re,
                Err(message) => {
                    report.errors.push(BuildError {
                        key: format!("rules[{i}].pattern"),
                        span: Some(r.pattern.span()),
                        message,
                    });
                    continue;
                }
            };
            defs.push(SymbolDef::new(
                &r.name,
                r.score.unwrap_or(1.0),
                r.group.as_deref().unwrap_or("rules"),
                r.description.as_deref().unwrap_or(""),
            ));
            rules.push(Rule {
                symbol: r.name.clone(),
                target: r.target,
                header: r.header.clone(),
                raw: r.raw,
                regex,
                action: r
                    .action
                    .as_ref()
                    .and_then(|a| RuleAction::parse(a.get_ref()).ok()),
            });
        }
        let limits = MapLimits::of(&config.scan);
        let mut tables = Vec::new();
        for (i, t) in config.section::<RuleTableList>().0.iter().enumerate() {
            let symbol = t.symbol.clone().unwrap_or_else(|| match t.target {
                TableTarget::Header => "HEADER_CHECKS".to_string(),
                TableTarget::Body => "BODY_CHECKS".to_string(),
            });
            match MapFile::<RegexpTable>::load(t.path.get_ref(), limits) {
                Ok((file, errs)) => {
                    report.line_errors.extend(errs);
                    if !defs.iter().any(|d| d.name == symbol) {
                        defs.push(SymbolDef::new(
                            &symbol,
                            t.score.unwrap_or(1.0),
                            "rules",
                            "Postfix regexp table match",
                        ));
                    }
                    tables.push(Table {
                        file,
                        path: t.path.get_ref().clone(),
                        target: t.target,
                        symbol,
                    });
                }
                Err(message) => report.errors.push(BuildError {
                    key: format!("rule_tables[{i}].path"),
                    span: Some(t.path.span()),
                    message,
                }),
            }
        }
        Rules {
            rules,
            tables,
            defs,
        }
    }

    fn apply(results: &mut ScanResults, symbol: &str, action: Option<&RuleAction>, option: String) {
        if action == Some(&RuleAction::Dunno) || action == Some(&RuleAction::Accept) {
            return;
        }
        results.insert(symbol, vec![option]);
        if let Some((a, text)) = action.and_then(RuleAction::forced) {
            results.force(a, text, symbol);
        }
    }

    fn run_rule(rule: &Rule, task: &Task<'_>) -> Option<String> {
        let found = |s: &str| rule.regex.find(s).map(|m| truncate(m.as_str()));
        match rule.target {
            RuleTarget::Header => {
                let name = rule.header.as_deref()?;
                let values = if rule.raw {
                    task.header_raw_values(name)
                } else {
                    task.header_values(name)
                };
                values.iter().find_map(|v| found(v))
            }
            RuleTarget::Subject => task.message.subject().and_then(found),
            RuleTarget::Body => task.text_parts().iter().find_map(|t| found(t)),
            RuleTarget::Rawbody => found(&String::from_utf8_lossy(task.raw_body())),
            RuleTarget::Filename => task
                .message
                .attachments()
                .filter_map(|p| p.attachment_name())
                .find_map(found),
            RuleTarget::ContentType => task.message.parts.iter().find_map(|p| {
                let ct = p.content_type()?;
                let full = match &ct.c_subtype {
                    Some(sub) => format!("{}/{}", ct.c_type, sub),
                    None => ct.c_type.to_string(),
                };
                found(&full.to_ascii_lowercase())
            }),
        }
    }
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Check for Rules {
    fn name(&self) -> &'static str {
        "rules"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        self.defs.clone()
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        for rule in &self.rules {
            if let Some(matched) = Self::run_rule(rule, task) {
                Self::apply(results, &rule.symbol, rule.action.as_ref(), matched);
            }
        }
        for t in &self.tables {
            let table = t.file.get();
            let file = t.path.display();
            let hit = |input: &str| table.first_match(input);
            match t.target {
                TableTarget::Header => {
                    for line in task.logical_header_lines() {
                        if let Some(e) = hit(&line) {
                            Self::apply(
                                results,
                                &t.symbol,
                                Some(&e.action),
                                format!("{file}:{}", e.line),
                            );
                        }
                    }
                }
                TableTarget::Body => {
                    let body = task.raw_body();
                    let body = &body[..body.len().min(BODY_CHECKS_LIMIT)];
                    for line in String::from_utf8_lossy(body).lines() {
                        if let Some(e) = hit(line) {
                            Self::apply(
                                results,
                                &t.symbol,
                                Some(&e.action),
                                format!("{file}:{}", e.line),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::{Action, Envelope};
    use toml::Spanned;

    fn rule(
        name: &str,
        target: RuleTarget,
        header: Option<&str>,
        pattern: &str,
        action: Option<&str>,
    ) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            target,
            header: header.map(str::to_string),
            raw: false,
            pattern: Spanned::new(0..0, pattern.into()),
            score: Some(2.0),
            action: action.map(|a| Spanned::new(0..0, a.to_string())),
            group: None,
            description: None,
        }
    }

    fn scan(config: &Config, raw: &str) -> ScanResults {
        let mut report = BuildReport::default();
        let rules = Rules::new(config, &mut report);
        assert!(report.errors.is_empty() && report.line_errors.is_empty());
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        rules.run(&task, &mut r);
        r
    }

    const MSG: &str = "From: a@b.c\r\nSubject: =?utf-8?q?Cheap_p=C3=Afll?=\r\nX-Mailer: SpamBlaster 3000\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nBuy v=69agra today\r\n--b\r\nContent-Type: application/x-msdownload; name=\"invoice.exe\"\r\nContent-Disposition: attachment; filename=\"invoice.exe\"\r\n\r\nMZ\r\n--b--\r\n";

    #[test]
    fn each_target() {
        let c = Config::default().with_section(RuleList(vec![
            rule(
                "R_MAILER",
                RuleTarget::Header,
                Some("x-mailer"),
                "/spamblaster/i",
                None,
            ),
            rule("R_SUBJ", RuleTarget::Subject, None, "Cheap pïll", None),
            rule("R_BODY", RuleTarget::Body, None, "viagra", None),
            rule("R_RAW", RuleTarget::Rawbody, None, "v=69agra", None),
            rule(
                "R_EXE",
                RuleTarget::Filename,
                None,
                r"/\.exe$/i",
                Some("REJECT no executables"),
            ),
            rule(
                "R_CT",
                RuleTarget::ContentType,
                None,
                "^application/x-msdownload$",
                None,
            ),
            rule("R_NOPE", RuleTarget::Body, None, "lottery", None),
        ]));
        let r = scan(&c, MSG);
        let names: Vec<&str> = r.hits.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["R_MAILER", "R_SUBJ", "R_BODY", "R_RAW", "R_EXE", "R_CT"]
        );
        let f = r.forced.unwrap();
        assert_eq!(f.action, Action::Reject);
        assert_eq!(f.message.as_deref(), Some("no executables"));
    }

    #[test]
    fn postfix_tables() {
        let dir = tempfile::tempdir().unwrap();
        let hc = dir.path().join("header_checks");
        std::fs::write(
            &hc,
            "# header checks\n/^X-Mailer: SpamBlaster/ HOLD\n/^Subject: .*pill/ WARN\nif /^From:/\n!/@b\\.c/ REJECT foreign\nendif\n/unbalanced( REJECT\n",
        )
        .unwrap();
        let bc = dir.path().join("body_checks");
        std::fs::write(&bc, "/^Buy v=69agra/ REJECT body says no\n").unwrap();
        let c = Config::default().with_section(RuleTableList(vec![
            RuleTableConfig {
                path: Spanned::new(0..0, hc.clone()),
                target: TableTarget::Header,
                symbol: None,
                score: None,
            },
            RuleTableConfig {
                path: Spanned::new(0..0, bc),
                target: TableTarget::Body,
                symbol: Some("MY_BODY".into()),
                score: None,
            },
        ]));
        let mut report = BuildReport::default();
        let rules = Rules::new(&c, &mut report);
        assert_eq!(report.line_errors.len(), 1, "{:?}", report.line_errors);
        assert_eq!(report.line_errors[0].line, 7);
        let env = Envelope::default();
        let task = Task::new(&env, MSG.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        rules.run(&task, &mut r);
        let hc_hit = r.hits.iter().find(|h| h.name == "HEADER_CHECKS").unwrap();
        assert_eq!(hc_hit.options, vec![format!("{}:2", hc.display())]);
        assert!(r.has("MY_BODY"));
        // Body REJECT is stronger than header HOLD.
        assert_eq!(r.forced.unwrap().action, Action::Reject);
    }

    #[test]
    fn a_broken_if_disables_its_block() {
        let mut errors = Vec::new();
        let t = RegexpTable::parse(
            Path::new("hc"),
            "if /(unclosed/\n/./ REJECT everything\nendif\n/^Subject: x/ WARN\n",
            &mut errors,
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            t.first_match("From: a@b.c").is_none(),
            "the block under the broken if never applies"
        );
        assert!(
            t.first_match("Subject: x").is_some(),
            "entries after its endif still do"
        );
    }

    #[test]
    fn table_line_syntax() {
        assert_eq!(
            split_table_line("/a b/i REJECT x"),
            Some((false, "/a b/i", "REJECT x"))
        );
        assert_eq!(split_table_line("!/x/ OK"), Some((true, "/x/", "OK")));
        assert_eq!(
            split_table_line("/a/b/ DUNNO"),
            Some((false, "/a/b/", "DUNNO"))
        );
        assert_eq!(split_table_line("#x# WARN"), Some((false, "#x#", "WARN")));
        assert_eq!(split_table_line("nothing"), None);
        assert_eq!(to_slash_literal("#x#i"), "/x/i");
    }
}
