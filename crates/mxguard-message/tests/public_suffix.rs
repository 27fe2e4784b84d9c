//! `domain::organisational` against the Public Suffix List's own test
//! vectors (test_psl.txt in $MXGUARD_TESTDATA/publicsuffix).
//!
//! A vector's `null` (no registrable domain) is, for `organisational`, the
//! name given back lowercased. So is a name under a top-level domain the
//! list does not have (`b.example.example`: the vectors apply the list's
//! default `*` rule and expect `example.example`; `organisational`
//! documents why it does not). Which TLDs the list has is read from the
//! list file beside the vectors, not from the crate under test. Every other
//! vector must give exactly its expected domain.

use mxguard_message::domain::organisational;
use std::collections::HashSet;

mod common;

use common::testdata;

/// The quoted arguments of `checkPublicSuffix('input', 'expected');`
/// (`None` for `null`); `None` for other lines.
fn vector<'a>(line: &'a str) -> Option<(Option<&'a str>, Option<&'a str>)> {
    let args = line
        .trim()
        .strip_prefix("checkPublicSuffix(")?
        .strip_suffix(");")?;
    let (a, b) = args.split_once(", ")?;
    let quoted = |s: &'a str| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\''));
    Some((quoted(a), quoted(b)))
}

#[test]
fn public_suffix_list_test_vectors() {
    let dir = testdata().join("publicsuffix");
    let (Ok(vectors), Ok(list)) = (
        std::fs::read_to_string(dir.join("test_psl.txt")),
        std::fs::read_to_string(dir.join("public_suffix_list.dat")),
    ) else {
        eprintln!(
            "SKIPPED: test_psl.txt and public_suffix_list.dat not found in {} (set MXGUARD_TESTDATA); the public suffix vectors did not run",
            dir.display()
        );
        return;
    };
    // The top-level domains the list has a rule under.
    let tlds: HashSet<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .filter_map(|l| l.trim_start_matches('!').rsplit('.').next())
        .collect();

    let (mut checked, mut wrong) = (0, Vec::new());
    for (n, line) in vectors.lines().enumerate() {
        let Some((Some(input), expected)) = vector(line) else {
            continue;
        };
        let lower = input.to_lowercase();
        let tld = lower.rsplit('.').next().unwrap_or_default();
        // The list file writes internationalised TLDs in Unicode only: a
        // punycode TLD (`xn--fiqs8s`, 中国) is taken as listed, as the
        // vectors take it.
        let listed = tlds.contains(tld) || tld.starts_with("xn--");
        let want = match expected {
            Some(e) if listed => e.to_string(),
            _ => lower.clone(),
        };
        let got = organisational(input);
        checked += 1;
        if got != want {
            wrong.push(format!(
                "test_psl.txt:{}: {input:?} gave {got:?}, want {want:?}",
                n + 1
            ));
        }
    }
    eprintln!("{checked} vectors checked, {} wrong", wrong.len());
    assert!(
        checked >= 70,
        "only {checked} vectors read from test_psl.txt"
    );
    assert!(wrong.is_empty(), "{wrong:#?}");
}
