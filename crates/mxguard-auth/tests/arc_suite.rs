//! The ValiMail ARC validation suite (MXGUARD_TESTDATA/arc-suite, 171
//! tests): each scenario's DKIM keys served on loopback, every message
//! through `mxguard_auth::arc::verify`, its chain result compared with the
//! expected `cv` (an empty `cv` means the chain must not pass). At least
//! 95% must pass; failures are printed.

mod common;

use common::Zone;
use mxguard_auth::results::AuthResult;
use mxguard_auth::{Signed, Verifier};
use serde::Deserialize;
use serde_yaml::Value;

const BAR: f64 = 0.95;

/// The suite names one test twice in a scenario (`as_fields_b_head_case`);
/// YAML maps refuse that, so later copies get a `__dupN` suffix here, and
/// replace the earlier one below, as the suite's own Python driver (a
/// dict) does: 171 tests.
fn rename_duplicate_tests(text: &str) -> String {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        if line == "---" {
            seen.clear();
        }
        let is_test = line.starts_with("  ")
            && !line.starts_with("   ")
            && line.trim_end().ends_with(':')
            && !line.trim().contains(' ');
        if is_test {
            let name = line.trim().trim_end_matches(':').to_string();
            let n = seen.entry(name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                out.push_str(&format!("  {name}__dup{n}:\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valimail_validation_suite() {
    let Some(dir) = common::testdata("arc-suite/tests") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("arc-draft-validation-tests.yml"))
        .expect("read the suite");
    let text = rename_duplicate_tests(&text);
    let (mut total, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let scenario = Value::deserialize(doc).expect("a YAML scenario");
        let Some(tests) = scenario.get("tests").and_then(Value::as_mapping) else {
            continue;
        };
        let mut zone = Zone::default();
        if let Some(recs) = scenario.get("txt-records").and_then(Value::as_mapping) {
            for (name, value) in recs {
                if let (Some(n), Some(v)) = (name.as_str(), value.as_str()) {
                    zone.add_txt(n, v.as_bytes());
                }
            }
        }
        let server = common::serve(zone).await;
        let dns = common::dns(server);
        let verifier = Verifier::new(&dns);
        let mut cases: Vec<(&str, &Value)> = Vec::new();
        for (name, t) in tests {
            let name = name.as_str().unwrap_or_default();
            let base = name.split("__dup").next().unwrap_or(name);
            match cases.iter_mut().find(|(n, _)| *n == base) {
                Some(c) => c.1 = t,
                None => cases.push((base, t)),
            }
        }
        for (name, t) in cases {
            total += 1;
            let message = t.get("message").and_then(Value::as_str).unwrap_or_default();
            let want = t
                .get("cv")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            let raw = common::crlf(message.as_bytes());
            let signed = Signed::new(&raw);
            let got = match signed.parse() {
                Some(m) => mxguard_auth::arc::verify(&verifier, &m).await,
                None => mxguard_auth::arc::ArcVerdict {
                    result: AuthResult::None,
                    sets: 0,
                    sealers: vec![],
                    reason: None,
                },
            };
            let ok = match want.as_str() {
                "pass" => got.result == AuthResult::Pass,
                "none" => got.result == AuthResult::None,
                "fail" => got.result == AuthResult::Fail || got.result == AuthResult::PermError,
                // An empty cv: the chain must not be judged a pass.
                _ => got.result != AuthResult::Pass,
            };
            if ok {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name}: got {} ({}), expected {}",
                    got.result,
                    got.reason.unwrap_or_default(),
                    if want.is_empty() { "not pass" } else { &want }
                ));
            }
        }
    }
    let rate = passed as f64 / total.max(1) as f64;
    println!(
        "ARC ValiMail validation suite: {passed}/{total} pass ({:.1}%)",
        rate * 100.0
    );
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(total >= 170, "the suite has 171 tests, read {total}");
    assert!(
        rate >= BAR,
        "{passed}/{total} is under the {:.0}% bar",
        BAR * 100.0
    );
}
