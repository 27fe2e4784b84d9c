//! The report as one self-contained HTML page: tables for the numbers,
//! and inline SVG charts (traffic per hour, reject reasons) that mail
//! clients show without fetching anything. No scripts, no external CSS.

use crate::report::*;
use crate::text::{Layout, by_count};
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const COLOURS: [&str; 5] = ["#3b7dd8", "#2e9d52", "#e0a100", "#d2691e", "#c0392b"];

/// Grouped bars per hour: received, delivered, deferred, bounced, rejected.
pub fn hourly_chart(r: &Report) -> String {
    let (w, h, left, bottom, top) = (760.0, 260.0, 44.0, 30.0, 24.0);
    let max = r
        .per_hour
        .iter()
        .flat_map(|c| c.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_h = h - bottom - top;
    let slot = (w - left - 8.0) / 24.0;
    let bar = (slot - 4.0) / 5.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="chart-hourly" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Traffic per hour"><rect width="100%" height="100%" fill="#fff"/>"##
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let y = top + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end" fill="#555">{}</text>"##,
            w - 8.0,
            left - 4.0,
            y + 3.0,
            v.round() as u64
        );
    }
    for (hour, cols) in r.per_hour.iter().enumerate() {
        let x0 = left + slot * hour as f64 + 2.0;
        for (i, v) in cols.iter().enumerate() {
            let bh = plot_h * *v as f64 / max;
            let _ = write!(
                s,
                r##"<rect class="bar" x="{:.1}" y="{:.1}" width="{bar:.1}" height="{bh:.1}" fill="{}"><title>{:02}:00 {}: {v}</title></rect>"##,
                x0 + bar * i as f64,
                top + plot_h - bh,
                COLOURS[i],
                hour,
                TRAFFIC_COLUMNS[i]
            );
        }
        if hour % 2 == 0 {
            let _ = write!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#555">{hour:02}</text>"##,
                x0 + slot / 2.0 - 2.0,
                h - bottom + 14.0
            );
        }
    }
    for (i, name) in TRAFFIC_COLUMNS.iter().enumerate() {
        let x = left + i as f64 * 110.0;
        let _ = write!(
            s,
            r##"<rect x="{x}" y="4" width="10" height="10" fill="{}"/><text x="{}" y="13" font-size="11" fill="#333">{name}</text>"##,
            COLOURS[i],
            x + 14.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars of the most frequent reject reasons (all stages).
pub fn reject_chart(r: &Report, top: usize) -> String {
    let mut reasons: std::collections::BTreeMap<&str, u64> = Default::default();
    for stages in r.rejects.values() {
        for (reason, t) in stages {
            *reasons.entry(reason.as_str()).or_default() += total(t);
        }
    }
    let rows = by_count(reasons.into_iter(), |v| (*v, 0));
    let rows: Vec<_> = rows.into_iter().take(top).collect();
    let (w, row_h, label_w) = (760.0, 22.0, 360.0);
    let h = 10.0 + row_h * rows.len().max(1) as f64;
    let max = rows.first().map_or(1, |r| r.1).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" id="chart-rejects" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Reject reasons"><rect width="100%" height="100%" fill="#fff"/>"##
    );
    if rows.is_empty() {
        s.push_str(r##"<text x="10" y="20" font-size="12" fill="#555">no rejects</text>"##);
    }
    for (i, (reason, n)) in rows.iter().enumerate() {
        let y = 6.0 + row_h * i as f64;
        let label: String = reason.chars().take(58).collect();
        let bw = (w - label_w - 60.0) * *n as f64 / max;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#333">{}</text><rect class="bar" x="{label_w}" y="{y:.1}" width="{bw:.1}" height="{:.1}" fill="#c0392b"><title>{}: {n}</title></rect><text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{n}</text>"##,
            label_w - 6.0,
            y + 14.0,
            escape(&label),
            row_h - 6.0,
            escape(reason),
            label_w + bw + 4.0,
            y + 14.0
        );
    }
    s.push_str("</svg>");
    s
}

/// A count → label table, by count.
fn count_table(o: &mut String, t: &Tally, label: &str, top: usize) {
    table_start(o, &["count", label]);
    for (k, v) in by_count(t.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0))
        .into_iter()
        .take(top)
    {
        let _ = write!(o, "<tr><td class=\"n\">{v}</td><td>{}</td></tr>", escape(k));
    }
    o.push_str("</table>");
}

/// mxguard's own section (from serve's log lines).
fn mxguard(o: &mut String, m: &Mxguard, top_users: Option<usize>) {
    o.push_str("<h2>mxguard</h2>");
    table_start(o, &["count", "what"]);
    for (v, what) in [
        (m.scanned, "messages scanned"),
        (m.before_data, "ended before DATA (milter)"),
        (m.dkim_signed, "DKIM-signed"),
        (m.score_greylist_deferred, "greylisted (score)"),
        (m.score_greylist_passed, "passed after retry (score)"),
        (m.policy_greylist_deferred, "greylisted (policy)"),
        (m.policy_greylist_passed, "passed after retry (policy)"),
        (m.bans.values().sum(), "bans"),
    ] {
        let _ = write!(o, "<tr><td class=\"n\">{v}</td><td>{what}</td></tr>");
    }
    o.push_str("</table>");
    if !m.actions.is_empty() {
        o.push_str("<h3>Messages by action</h3>");
        count_table(o, &m.actions, "action", usize::MAX);
    }
    let top = top_users.unwrap_or(TOP_SYMBOLS);
    if !m.symbols.is_empty() && top > 0 {
        let _ = write!(o, "<h3>Top symbols (top {top})</h3>");
        count_table(o, &m.symbols, "symbol", top);
    }
    if !m.bans.is_empty() {
        o.push_str("<h3>Bans by jail</h3>");
        count_table(o, &m.bans, "jail", usize::MAX);
    }
}

fn table_start(o: &mut String, heads: &[&str]) {
    o.push_str("<table><tr>");
    for h in heads {
        let _ = write!(o, "<th>{}</th>", escape(h));
    }
    o.push_str("</tr>");
}

fn problems2(o: &mut String, t: &Tally2, name: &str, group: &str) {
    let _ = write!(o, "<h3>{}</h3>", escape(name));
    if t.is_empty() {
        o.push_str("<p class=\"none\">none</p>");
        return;
    }
    table_start(o, &[group, "count", "reason"]);
    for (g, items) in t {
        for (k, v) in by_count(items.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0)) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"n\">{v}</td><td>{}</td></tr>",
                escape(g),
                escape(k)
            );
        }
    }
    o.push_str("</table>");
}

fn problems3(o: &mut String, t: &Tally3, name: &str) {
    let _ = write!(o, "<h3>{}</h3>", escape(name));
    if t.is_empty() {
        o.push_str("<p class=\"none\">none</p>");
        return;
    }
    table_start(o, &["stage", "reason", "count", "client / address"]);
    for (stage, reasons) in t {
        for (reason, items) in reasons {
            for (k, v) in by_count(items.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0)) {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{v}</td><td>{}</td></tr>",
                    escape(stage),
                    escape(reason),
                    escape(k)
                );
            }
        }
    }
    o.push_str("</table>");
}

fn users(
    o: &mut String,
    map: &crate::hash::Map<Box<str>, Traffic>,
    name: &str,
    by_size: bool,
    top: Option<usize>,
) {
    if top == Some(0) {
        return;
    }
    let _ = write!(o, "<h3>{}</h3>", escape(name));
    if map.is_empty() {
        o.push_str("<p class=\"none\">none</p>");
        return;
    }
    table_start(o, &[if by_size { "bytes" } else { "messages" }, "address"]);
    for (a, t) in by_count(map.iter().map(|(k, v)| (&**k, *v)), |t| {
        if by_size { (t.size, 0) } else { (t.count, 0) }
    })
    .into_iter()
    .take(top.unwrap_or(usize::MAX))
    {
        let _ = write!(
            o,
            "<tr><td class=\"n\">{}</td><td>{}</td></tr>",
            if by_size { t.size } else { t.count },
            escape(a)
        );
    }
    o.push_str("</table>");
}

pub fn render(r: &Report, layout: &Layout, heading: &str) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
body{{font-family:sans-serif;color:#222;margin:16px;max-width:1000px}}\
table{{border-collapse:collapse;margin:6px 0 14px}}td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:left}}\
td.n{{text-align:right;font-variant-numeric:tabular-nums}}th{{background:#f2f2f2}}h2{{border-bottom:2px solid #3b7dd8}}.none{{color:#777}}\
</style></head><body><h1>{}</h1>",
        escape(heading),
        escape(heading)
    );
    o.push_str("<h2>Grand Totals</h2>");
    table_start(&mut o, &["", "count"]);
    for (k, v) in r.totals.fields() {
        let _ = write!(
            o,
            "<tr><th>{}</th><td class=\"n\" id=\"gt-{k}\">{v}</td></tr>",
            k.replace('_', " ")
        );
    }
    o.push_str("</table>");
    o.push_str("<h2>Traffic per hour</h2>");
    o.push_str(&hourly_chart(r));
    o.push_str("<h2>Reject reasons</h2>");
    o.push_str(&reject_chart(r, 12));
    if r.per_day.len() > 1 {
        o.push_str("<h2>Traffic per day</h2>");
        table_start(
            &mut o,
            &[
                "date",
                "received",
                "delivered",
                "deferred",
                "bounced",
                "rejected",
            ],
        );
        for (d, c) in &r.per_day {
            let _ = write!(
                o,
                "<tr><td>{:04}-{:02}-{:02}</td>",
                d / 10_000,
                d / 100 % 100,
                d % 100
            );
            for v in c {
                let _ = write!(o, "<td class=\"n\">{v}</td>");
            }
            o.push_str("</tr>");
        }
        o.push_str("</table>");
    }
    if layout.top_hosts != Some(0) {
        o.push_str("<h2>Host/Domain Summary</h2><h3>Message delivery</h3>");
        table_start(
            &mut o,
            &[
                "sent",
                "bytes",
                "defers",
                "avg delay (s)",
                "max delay (s)",
                "domain",
            ],
        );
        for (k, d) in by_count(r.recipient_domains.iter().map(|(k, v)| (&**k, *v)), |d| {
            (d.count, d.size)
        })
        .into_iter()
        .take(layout.top_hosts.unwrap_or(usize::MAX))
        {
            let avg = if d.count > 0 {
                d.delay_sum / d.count as f64
            } else {
                0.0
            };
            let _ = write!(
                o,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{avg:.1}</td><td class=\"n\">{:.1}</td><td>{}</td></tr>",
                d.count,
                d.size,
                d.defers,
                d.delay_max,
                escape(k)
            );
        }
        o.push_str("</table><h3>Messages received</h3>");
        table_start(&mut o, &["messages", "bytes", "domain"]);
        for (k, d) in by_count(r.sending_domains.iter().map(|(k, v)| (&**k, *v)), |d| {
            (d.count, d.size)
        })
        .into_iter()
        .take(layout.top_hosts.unwrap_or(usize::MAX))
        {
            let _ = write!(
                o,
                "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                d.count,
                d.size,
                escape(k)
            );
        }
        o.push_str("</table>");
    }
    o.push_str("<h2>Senders and recipients</h2>");
    users(
        &mut o,
        &r.senders,
        "Senders by message count",
        false,
        layout.top_users,
    );
    users(
        &mut o,
        &r.recipients,
        "Recipients by message count",
        false,
        layout.top_users,
    );
    users(
        &mut o,
        &r.senders,
        "Senders by message size",
        true,
        layout.top_users,
    );
    users(
        &mut o,
        &r.recipients,
        "Recipients by message size",
        true,
        layout.top_users,
    );
    o.push_str("<h2>Problems</h2>");
    problems2(&mut o, &r.deferrals, "Deferrals", "daemon");
    problems2(&mut o, &r.bounces, "Bounces (by relay)", "relay");
    problems3(&mut o, &r.rejects, "Rejects");
    problems3(&mut o, &r.reject_warnings, "Reject warnings");
    problems3(&mut o, &r.holds, "Held");
    problems3(&mut o, &r.discards, "Discarded");
    problems2(&mut o, &r.smtp_failures, "SMTP delivery failures", "reason");
    problems2(&mut o, &r.warnings, "Warnings", "daemon");
    problems2(&mut o, &r.fatals, "Fatal errors", "daemon");
    problems2(&mut o, &r.panics, "Panics", "daemon");
    if !r.postscreen.is_empty() {
        o.push_str("<h2>Postscreen</h2>");
        table_start(&mut o, &["count", "event"]);
        for (k, v) in by_count(r.postscreen.iter().map(|(k, v)| (k.as_str(), *v)), |v| {
            (*v, 0)
        }) {
            let _ = write!(o, "<tr><td class=\"n\">{v}</td><td>{}</td></tr>", escape(k));
        }
        o.push_str("</table>");
    }
    if !r.mxguard.is_empty() {
        mxguard(&mut o, &r.mxguard, layout.top_users);
    }
    if layout.smtpd_stats {
        let _ = write!(
            o,
            "<h2>smtpd</h2><p>{} connections from {} hosts/domains, {} s in all</p>",
            r.smtpd.connections,
            r.smtpd.per_domain.len(),
            r.smtpd.total_secs
        );
    }
    let _ = writeln!(
        o,
        "<p class=\"none\">{} lines read, {} Postfix lines, {} malformed lines skipped.</p></body></html>",
        r.lines, r.postfix_lines, r.malformed
    );
    o
}
