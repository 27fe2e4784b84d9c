//! The report as JSON, for monitoring: every number, Grand Totals under
//! `grand_totals` keyed by pflogsumm's labels in snake_case.

use crate::report::*;
use crate::text::by_count;
use serde_json::{Map, Value, json};

fn tally(t: &Tally) -> Value {
    Value::Array(
        by_count(t.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0))
            .into_iter()
            .map(|(k, v)| json!({"name": k, "count": v}))
            .collect(),
    )
}

fn tally2(t: &Tally2, group: &str) -> Value {
    Value::Array(
        t.iter()
            .map(|(g, items)| json!({group: g, "total": total(items), "items": tally(items)}))
            .collect(),
    )
}

fn tally3(t: &Tally3) -> Value {
    Value::Array(
        t.iter()
            .map(|(stage, reasons)| json!({"stage": stage, "reasons": tally2(reasons, "reason")}))
            .collect(),
    )
}

/// mxguard's own section; every count is there (zero when serve's log
/// was not among the input).
fn mxguard(m: &Mxguard, top_users: Option<usize>) -> Value {
    let mut symbols = tally(&m.symbols);
    if let Value::Array(a) = &mut symbols {
        a.truncate(top_users.unwrap_or(TOP_SYMBOLS));
    }
    json!({
        "scanned": m.scanned,
        "before_data": m.before_data,
        "actions": tally(&m.actions),
        "top_symbols": symbols,
        "dkim_signed": m.dkim_signed,
        "score_greylist": {
            "deferred": m.score_greylist_deferred,
            "passed_after_retry": m.score_greylist_passed,
        },
        "policy_greylist": {
            "deferred": m.policy_greylist_deferred,
            "passed_after_retry": m.policy_greylist_passed,
        },
        "bans": m.bans.values().sum::<u64>(),
        "bans_by_jail": tally(&m.bans),
    })
}

fn day(key: u32) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        key / 10_000,
        key / 100 % 100,
        key % 100
    )
}

fn traffic(map: &crate::hash::Map<Box<str>, Traffic>, by_size: bool, top: Option<usize>) -> Value {
    Value::Array(
        by_count(map.iter().map(|(k, v)| (&**k, *v)), |t| {
            if by_size {
                (t.size, t.count)
            } else {
                (t.count, t.size)
            }
        })
        .into_iter()
        .take(top.unwrap_or(usize::MAX))
        .map(|(k, t)| json!({"name": k, "count": t.count, "bytes": t.size}))
        .collect(),
    )
}

/// `top_hosts`/`top_users` limit the lists as `-h`/`-u` do.
pub fn render(r: &Report, top_hosts: Option<usize>, top_users: Option<usize>) -> Value {
    let mut totals = Map::new();
    for (k, v) in r.totals.fields() {
        totals.insert(k.to_string(), json!(v));
    }
    let per_day: Vec<Value> = r
        .per_day
        .iter()
        .map(|(d, c)| {
            let mut m = Map::new();
            m.insert("date".into(), json!(day(*d)));
            for (i, name) in TRAFFIC_COLUMNS.iter().enumerate() {
                m.insert((*name).into(), json!(c[i]));
            }
            Value::Object(m)
        })
        .collect();
    let per_hour: Vec<Value> = r
        .per_hour
        .iter()
        .enumerate()
        .map(|(h, c)| {
            let mut m = Map::new();
            m.insert("hour".into(), json!(h));
            for (i, name) in TRAFFIC_COLUMNS.iter().enumerate() {
                m.insert((*name).into(), json!(c[i]));
            }
            Value::Object(m)
        })
        .collect();
    let delivery: Vec<Value> = by_count(r.recipient_domains.iter().map(|(k, v)| (&**k, *v)), |d| (d.count, d.size))
        .into_iter()
        .take(top_hosts.unwrap_or(usize::MAX))
        .map(|(k, d)| {
            json!({"domain": k, "sent": d.count, "bytes": d.size, "defers": d.defers,
                   "avg_delay_seconds": if d.count > 0 { d.delay_sum / d.count as f64 } else { 0.0 },
                   "max_delay_seconds": d.delay_max})
        })
        .collect();
    let smtpd_domains: Vec<Value> = by_count(r.smtpd.per_domain.iter().map(|(k, v)| (&**k, *v)), |c| (c.count, c.secs))
        .into_iter()
        .take(top_hosts.unwrap_or(usize::MAX))
        .map(|(k, c)| json!({"domain": k, "connections": c.count, "seconds": c.secs, "max_seconds": c.max}))
        .collect();
    json!({
        "grand_totals": Value::Object(totals),
        "period": {
            "first": r.first.map(|s| format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", s.year, s.month, s.day, s.hour, s.min, s.sec)),
            "last": r.last.map(|s| format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", s.year, s.month, s.day, s.hour, s.min, s.sec)),
        },
        "per_day": per_day,
        "per_hour": per_hour,
        "delivery_domains": delivery,
        "received_domains": traffic(&r.sending_domains, false, top_hosts),
        "senders_by_count": traffic(&r.senders, false, top_users),
        "recipients_by_count": traffic(&r.recipients, false, top_users),
        "senders_by_size": traffic(&r.senders, true, top_users),
        "recipients_by_size": traffic(&r.recipients, true, top_users),
        "no_size": r.no_size,
        "deferrals": tally2(&r.deferrals, "daemon"),
        "bounces": tally2(&r.bounces, "relay"),
        "rejects": tally3(&r.rejects),
        "reject_warnings": tally3(&r.reject_warnings),
        "holds": tally3(&r.holds),
        "discards": tally3(&r.discards),
        "smtp_failures": tally2(&r.smtp_failures, "reason"),
        "warnings": tally2(&r.warnings, "daemon"),
        "fatals": tally2(&r.fatals, "daemon"),
        "panics": tally2(&r.panics, "daemon"),
        "master": tally(&r.master),
        "smtpd": {
            "connections": r.smtpd.connections,
            "hosts_domains": r.smtpd.per_domain.len(),
            "total_seconds": r.smtpd.total_secs,
            "domains": smtpd_domains,
        },
        "postscreen": tally(&r.postscreen),
        "mxguard": mxguard(&r.mxguard, top_users),
        "input": {
            "lines": r.lines,
            "postfix_lines": r.postfix_lines,
            "malformed": r.malformed,
            "too_long": r.too_long,
            "other_programs": r.other_programs,
            "out_of_period": r.out_of_period,
            "mxguard_lines": r.mxguard_lines,
        },
    })
}
