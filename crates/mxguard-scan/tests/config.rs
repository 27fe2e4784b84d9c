//! The config file with the scan checks' sections registered: every error
//! of the file in one pass, core's and the checks' alike, each at its
//! file:line:column with "did you mean". These tests lived beside the
//! loader before the checks owned their sections; their messages and
//! positions are unchanged.

use mxguard_core::config::{ConfigError, MAX_ERRORS, Position, load_str};
use mxguard_scan::checks::gtube::GtubeConfig;
use mxguard_scan::checks::headers::HeaderChecksConfig;
use mxguard_scan::checks::multimap::MultimapList;
use mxguard_scan::checks::rules::{RuleList, RuleTableList};
use mxguard_scan::sections;

fn errors(text: &str) -> Vec<ConfigError> {
    load_str(text, "t.toml", &sections()).expect_err("config should be rejected")
}

/// The error for `key`, which must be there.
fn find<'a>(e: &'a [ConfigError], key: &str) -> &'a ConfigError {
    e.iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key}: {e:#?}"))
}

#[test]
fn empty_config_is_all_defaults() {
    let c = load_str("", "t.toml", &sections()).unwrap();
    assert!(c.section::<GtubeConfig>().enabled);
    let h = c.section::<HeaderChecksConfig>();
    assert!(h.enabled);
    assert_eq!(h.max_to_rcpts, 10);
    assert!(c.section::<RuleList>().0.is_empty());
    assert!(c.section::<RuleTableList>().0.is_empty());
    assert!(c.section::<MultimapList>().0.is_empty());
}

#[test]
fn every_error_is_reported() {
    let text = "[gtube]\nenabeld = true\n\n[actions]\nreject = \"high\"\n\n[scan]\nmax_message_size = \"12q\"\n[[rules]]\nname = \"X\"\ntarget = \"headr\"\npattern = \"a\"\n";
    let e = errors(text);
    let lines: Vec<usize> = e.iter().map(|e| e.position.unwrap().line).collect();
    assert_eq!(lines.len(), 4, "{e:#?}");
    for l in [2, 5, 8, 11] {
        assert!(lines.contains(&l), "missing error on line {l}: {e:#?}");
    }
    let variant = e.iter().find(|e| e.position.unwrap().line == 11).unwrap();
    assert_eq!(variant.key, "rules[0].target");
    assert!(
        variant.message.contains("did you mean `header`"),
        "{}",
        variant.message
    );
}

#[test]
fn bad_regex_and_action_are_located() {
    let text = "[[rules]]\nname = \"A\"\ntarget = \"subject\"\npattern = \"/(unclosed/i\"\n\n[[rules]]\nname = \"B\"\ntarget = \"body\"\npattern = \"ok\"\naction = \"EXPLODE now\"\n";
    let e = errors(text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(e[0].key, "rules[0].pattern");
    assert_eq!(e[0].position.unwrap().line, 4);
    assert_eq!(e[1].key, "rules[1].action");
    assert_eq!(e[1].position.unwrap().line, 10);
}

#[test]
fn missing_required_field_is_named() {
    let e = errors("[[multimap]]\nname = \"BL\"\ntype = \"ip\"\n");
    assert!(e[0].message.contains("map"), "{e:?}");
    assert!(e[0].key.starts_with("multimap"), "{e:?}");
}

#[test]
fn type_errors_past_the_cap_stop_the_search_and_say_so() {
    let mut text = String::new();
    for i in 0..2_000 {
        text.push_str(&format!(
            "[[rules]]\nname = \"R{i}\"\ntarget = \"subjec\"\npattern = \"x\"\n"
        ));
    }
    let e = errors(&text);
    assert!(e.len() <= MAX_ERRORS + 1, "{}", e.len());
    assert_eq!(e[0].key, "rules[0].target");
    assert_eq!(e[0].position.map(|p| p.line), Some(3));
    let last = e.last().unwrap();
    assert!(last.message.contains("stopped looking"), "{last}");
}

#[test]
fn validation_errors_past_the_cap_are_counted_not_listed() {
    let mut text = String::new();
    for i in 0..1_000 {
        text.push_str(&format!(
            "[[rules]]\nname = \"R{i}\"\ntarget = \"subject\"\npattern = \"(\"\n"
        ));
    }
    let e = errors(&text);
    assert_eq!(e.len(), MAX_ERRORS + 1, "{}", e.len());
    assert_eq!(e[99].position.map(|p| p.line), Some(99 * 4 + 4));
    assert!(e[100].message.contains("900 more"), "{}", e[100]);
}

#[test]
fn non_finite_scores_are_refused_with_their_key_and_line() {
    let text = "\
[symbols.MISSING_MID]
score = nan
[groups.headers]
max_score = inf
[classifier]
autolearn_spam_threshold = inf
autolearn_ham_threshold = nan
spam_threshold = nan
[[rules]]
name = \"R\"
target = \"subject\"
pattern = \"x\"
score = -inf
[[rule_tables]]
path = \"/etc/t\"
target = \"body\"
score = nan
[[multimap]]
name = \"BL\"
type = \"ip\"
map = \"/etc/bl\"
score = +inf
";
    let e = errors(text);
    for (key, line, value) in [
        ("symbols.MISSING_MID.score", 2, "NaN"),
        ("groups.headers.max_score", 4, "inf"),
        ("classifier.autolearn_spam_threshold", 6, "inf"),
        ("classifier.autolearn_ham_threshold", 7, "NaN"),
        ("classifier.spam_threshold", 8, "NaN"),
        ("rules[0].score", 13, "-inf"),
        ("rule_tables[0].score", 17, "NaN"),
        ("multimap[0].score", 22, "inf"),
    ] {
        let err = find(&e, key);
        assert_eq!(err.position.map(|p| p.line), Some(line), "{err}");
        assert!(err.message.contains(value), "{err}");
        assert!(err.message.contains("finite"), "{err}");
    }
    assert_eq!(e.len(), 8, "{e:#?}");
}

#[test]
fn example_config_is_valid() {
    let text = include_str!("../../../examples/mxguard.toml");
    if let Err(e) = load_str(text, "examples/mxguard.toml", &sections()) {
        panic!("{e:#?}");
    }
}

#[test]
fn errors_in_check_sections_come_with_core_errors_in_one_pass() {
    let text = "\
[actions]
rejct = 12
[headers]
max_to_rcpts = \"many\"
[milter]
max_message_size = \"12q\"
[[multimap]]
name = \"BL\"
type = \"ipp\"
map = \"x\"
[[rule_tables]]
path = \"/etc/t\"
target = \"body\"
symbl = \"X\"
";
    let e = errors(text);
    let shown: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(e.len(), 5, "{shown:#?}");
    for (line, prefix) in [
        (2, "t.toml:2:1: actions.rejct: unknown field `rejct`"),
        (4, "t.toml:4:16: headers.max_to_rcpts: invalid type"),
        (6, "t.toml:6:20: milter.max_message_size: "),
        (9, "t.toml:9:8: multimap[0].type: unknown variant `ipp`"),
        (
            14,
            "t.toml:14:1: rule_tables[0].symbl: unknown field `symbl`",
        ),
    ] {
        assert!(
            shown.iter().any(|s| s.starts_with(prefix)),
            "no error on line {line} starting {prefix:?}: {shown:#?}"
        );
    }
    assert!(shown[4].contains("did you mean `symbol`"), "{}", shown[4]);
}

#[test]
fn an_unknown_top_level_key_suggests_a_check_section() {
    for (text, line, wanted) in [
        ("[[multimp]]\nname = \"BL\"\n", 1, "multimap"),
        ("[scan]\n\n[gtub]\nenabled = false\n", 3, "gtube"),
        ("[[rule_table]]\npath = \"/t\"\n", 1, "rule_tables"),
        ("[header]\nenabled = false\n", 1, "headers"),
        // Core's keys are still there to be suggested.
        ("[stor]\n", 1, "store"),
    ] {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].position.map(|p| p.line), Some(line), "{}", e[0]);
        assert!(
            e[0].message.contains(&format!("did you mean `{wanted}`")),
            "{}",
            e[0]
        );
        assert!(
            e[0].message.contains("`multimap`") && e[0].message.contains("`classifier`"),
            "{}",
            e[0]
        );
    }
}

#[test]
fn a_check_sections_validation_is_located_at_its_line() {
    let text = "\
[greylist]
max_age = 0
[[multimap]]
name = \"BL\"
type = \"header\"
map = \"/etc/bl\"
[[multimap]]
name = \"OK\"
type = \"ip\"
map = \"/etc/ok\"

score = nan
[[rules]]
name = \"bad name\"
target = \"body\"
pattern = \"x\"
";
    let e = errors(text);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(
        find(&e, "greylist.max_age").position.map(|p| p.line),
        Some(2)
    );
    let header = find(&e, "multimap[0].header");
    assert_eq!(header.position, Some(Position { line: 6, column: 7 }));
    assert!(header.message.contains("no header = \"Name\""), "{header}");
    let score = find(&e, "multimap[1].score");
    assert_eq!(
        score.position,
        Some(Position {
            line: 12,
            column: 9
        })
    );
    assert!(score.message.contains("finite"), "{score}");
    let name = find(&e, "rules[0].name");
    assert_eq!(name.position.map(|p| p.line), Some(16));
    assert!(name.message.contains("symbol name `bad name`"), "{name}");
}
