//! `/metrics`: Prometheus text format (version 0.0.4), written by hand:
//! a few dozen lines from the store's counters, the classifier, the scan
//! service and the API itself need no metrics library.

use crate::api::{Api, Reply, text};
use hyper::StatusCode;
use mxguard_store::Counters;
use std::fmt::Write;

/// A label value with `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn metrics(api: &Api) -> Reply {
    let mut out = String::new();
    let counters = Counters::new(api.backend.store.clone())
        .all()
        .await
        .unwrap_or_default();
    family(
        &mut out,
        "mxguard_scanned_total",
        "counter",
        "Messages scanned by any front end.",
    );
    let _ = writeln!(
        out,
        "mxguard_scanned_total {}",
        counters.get("scanned").copied().unwrap_or(0)
    );
    family(
        &mut out,
        "mxguard_actions_total",
        "counter",
        "Messages by the action of their verdict.",
    );
    for (k, v) in &counters {
        if let Some(a) = k.strip_prefix("action:") {
            let _ = writeln!(out, "mxguard_actions_total{{action=\"{}\"}} {v}", label(a));
        }
    }
    family(
        &mut out,
        "mxguard_events_total",
        "counter",
        "Every other counter the store keeps, by name.",
    );
    for (k, v) in &counters {
        if k != "scanned" && !k.starts_with("action:") {
            let _ = writeln!(out, "mxguard_events_total{{name=\"{}\"}} {v}", label(k));
        }
    }
    if let Ok(s) = mxguard_learn::persist::status(&*api.backend.store).await {
        family(
            &mut out,
            "mxguard_classifier_learns",
            "gauge",
            "Messages the classifier has learned, by class.",
        );
        let _ = writeln!(
            out,
            "mxguard_classifier_learns{{class=\"spam\"}} {}",
            s.spam_learns
        );
        let _ = writeln!(
            out,
            "mxguard_classifier_learns{{class=\"ham\"}} {}",
            s.ham_learns
        );
    }
    if let Some(scanner) = &api.backend.scanner {
        let p = scanner.pipeline();
        family(
            &mut out,
            "mxguard_check_timeouts_total",
            "counter",
            "Checks that gave their time-out symbol.",
        );
        let _ = writeln!(out, "mxguard_check_timeouts_total {}", p.check_timeouts());
        family(
            &mut out,
            "mxguard_check_failures_total",
            "counter",
            "Checks that panicked and were skipped.",
        );
        let _ = writeln!(out, "mxguard_check_failures_total {}", p.check_failures());
        family(
            &mut out,
            "mxguard_scan_cpu_phases_peak",
            "gauge",
            "Most scan CPU phases that ran at once.",
        );
        let _ = writeln!(
            out,
            "mxguard_scan_cpu_phases_peak {}",
            scanner.cpu_phases().peak()
        );
    }
    family(
        &mut out,
        "mxguard_web_replies_total",
        "counter",
        "HTTP API replies by status class.",
    );
    for (i, n) in api.replies().iter().enumerate() {
        let _ = writeln!(out, "mxguard_web_replies_total{{code=\"{}xx\"}} {n}", i + 1);
    }
    family(
        &mut out,
        "mxguard_web_failed_logins_total",
        "counter",
        "Wrong passwords sent to the HTTP API.",
    );
    let _ = writeln!(
        out,
        "mxguard_web_failed_logins_total {}",
        api.access.failed_logins()
    );
    family(
        &mut out,
        "mxguard_web_limited_logins_total",
        "counter",
        "Logins refused with 429 after too many failures.",
    );
    let _ = writeln!(
        out,
        "mxguard_web_limited_logins_total {}",
        api.access.limited_logins()
    );
    family(
        &mut out,
        "mxguard_uptime_seconds",
        "gauge",
        "Seconds since the API started.",
    );
    let _ = writeln!(out, "mxguard_uptime_seconds {:.0}", api.uptime());
    if let Some(rss) = resident_bytes() {
        family(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        out,
    )
}

/// Resident set size of this process, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
