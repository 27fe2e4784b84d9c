//! The openspf RFC 7208 conformance suite (MXGUARD_TESTDATA/spf-suite),
//! its zone data served by a DNS server on loopback, every test through
//! `mxguard_auth::spf::verify`. At least 97% must pass; every failure is
//! printed with its reason.

mod common;

use common::{Rec, Zone};
use mxguard_auth::Verifier;
use serde::Deserialize;
use serde_yaml::Value;

const BAR: f64 = 0.97;

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(s) => s.iter().flat_map(strings).collect(),
        Value::Number(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
        _ => vec![],
    }
}

/// The suite's zone data; SPF-type records are served as TXT unless the
/// name lists its own TXT records (the suite's driver convention).
fn zone(data: &Value) -> Zone {
    let mut z = Zone::default();
    let Some(map) = data.as_mapping() else {
        return z;
    };
    for (name, recs) in map {
        let Some(name) = name.as_str() else { continue };
        let recs = recs.as_sequence().cloned().unwrap_or_default();
        let has_txt = recs
            .iter()
            .any(|r| r.as_mapping().is_some_and(|m| m.contains_key("TXT")));
        for r in &recs {
            if r.as_str() == Some("TIMEOUT") {
                z.add(name, Rec::Timeout);
                continue;
            }
            let Some(m) = r.as_mapping() else { continue };
            for (k, v) in m {
                let k = k.as_str().unwrap_or_default();
                match k {
                    "TXT" | "SPF" => {
                        if k == "SPF" && has_txt {
                            continue;
                        }
                        if v.as_str() == Some("NONE") {
                            z.add(name, Rec::NoTxt);
                            continue;
                        }
                        let parts: Vec<Vec<u8>> = match v {
                            Value::Sequence(s) => {
                                s.iter().flat_map(strings).map(String::into_bytes).collect()
                            }
                            other => strings(other).into_iter().map(String::into_bytes).collect(),
                        };
                        let parts = if parts.is_empty() {
                            vec![Vec::new()]
                        } else {
                            parts
                        };
                        z.add(name, Rec::Txt(parts));
                    }
                    "A" => {
                        for s in strings(v) {
                            if let Ok(a) = s.parse() {
                                z.add(name, Rec::A(a));
                            }
                        }
                    }
                    "AAAA" => {
                        for s in strings(v) {
                            if let Ok(a) = s.parse() {
                                z.add(name, Rec::Aaaa(a));
                            }
                        }
                    }
                    "MX" => {
                        let s = strings(v);
                        if let [pref, host] = s.as_slice() {
                            z.add(name, Rec::Mx(pref.parse().unwrap_or(0), host.clone()));
                        }
                    }
                    "PTR" => {
                        for s in strings(v) {
                            z.add(name, Rec::Ptr(s));
                        }
                    }
                    "CNAME" => {
                        for s in strings(v) {
                            z.add(name, Rec::Cname(s));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    z
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openspf_rfc7208_suite() {
    let Some(dir) = common::testdata("spf-suite") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("rfc7208-tests.yml")).expect("read the suite");
    let (mut total, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let scenario = Value::deserialize(doc).expect("a YAML scenario");
        let Some(tests) = scenario.get("tests").and_then(Value::as_mapping) else {
            continue;
        };
        let server = common::serve(zone(scenario.get("zonedata").unwrap_or(&Value::Null))).await;
        let dns = common::dns(server);
        let verifier = Verifier::new(&dns);
        for (name, t) in tests {
            let name = name.as_str().unwrap_or_default();
            total += 1;
            let get = |k: &str| {
                t.get(k)
                    .map(strings)
                    .and_then(|s| s.first().cloned())
                    .unwrap_or_default()
            };
            let expected: Vec<String> = t.get("result").map(strings).unwrap_or_default();
            let Some(ip) = common::parse_ip(&get("host")) else {
                failures.push(format!("{name}: host `{}` is not an address", get("host")));
                continue;
            };
            let mail_from = get("mailfrom");
            // A MAIL FROM without a local part is postmaster@domain (RFC 7208 4.3).
            let sender = if mail_from.is_empty() || mail_from.contains('@') {
                mail_from.clone()
            } else {
                format!("postmaster@{mail_from}")
            };
            let v =
                mxguard_auth::spf::verify(&verifier, ip, &get("helo"), &sender, "localhost").await;
            let got = v.result.as_str();
            if expected.iter().any(|e| e == got) {
                passed += 1;
            } else {
                failures.push(format!(
                    "{name} (spec {}): got {got}, expected {}",
                    get("spec"),
                    expected.join(" or ")
                ));
            }
        }
    }
    let rate = passed as f64 / total.max(1) as f64;
    println!(
        "SPF openspf RFC 7208 suite: {passed}/{total} pass ({:.1}%)",
        rate * 100.0
    );
    for f in &failures {
        println!("  FAIL {f}");
    }
    assert!(total >= 200, "the suite has 203 tests, read {total}");
    assert!(
        rate >= BAR,
        "{passed}/{total} is under the {:.0}% bar",
        BAR * 100.0
    );
}
