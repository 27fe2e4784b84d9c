//! The report as text, laid out like pflogsumm's so its readers find
//! every number where they are used to it.

use crate::date::MONTHS;
use crate::domain::sort_key;
use crate::report::*;
use std::fmt::Write;

/// How much to show (pflogsumm's options of the same names).
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// `-h`: rows of the host/domain summaries; None: all, Some(0): none.
    pub top_hosts: Option<usize>,
    /// `-u`: rows of the sender/recipient lists; None: all, Some(0): none.
    pub top_users: Option<usize>,
    /// `--problems-first`
    pub problems_first: bool,
    /// `--smtpd-stats`
    pub smtpd_stats: bool,
    /// `-q`: leave out sections with nothing in them.
    pub quiet: bool,
    /// A first line ("Postfix log summaries for Dec  7").
    pub title: Option<String>,
}

/// pflogsumm's unit scaling: k above 512 KiB, m above 512 MiB.
pub fn units(v: f64) -> (i64, char) {
    if v > 536_870_912.0 {
        ((v / 1_048_576.0) as i64, 'm')
    } else if v > 524_288.0 {
        ((v / 1024.0) as i64, 'k')
    } else {
        (v as i64, ' ')
    }
}

fn time_units(v: f64) -> (f64, char) {
    if v > 3600.0 {
        (v / 3600.0, 'h')
    } else if v > 60.0 {
        (v / 60.0, 'm')
    } else {
        (v, 's')
    }
}

fn num(out: &mut String, v: f64) {
    let (n, u) = units(v);
    let _ = write!(out, "{n:6}{u}");
}

fn title(out: &mut String, t: &str) {
    let _ = write!(out, "\n{t}\n{}\n", "-".repeat(t.chars().count()));
}

fn hms(secs: f64) -> (u64, u64, u64) {
    let s = secs as u64;
    (s / 3600, s / 60 % 60, s % 60)
}

fn day_name(key: u32) -> String {
    let (y, m, d) = (key / 10_000, key / 100 % 100, key % 100);
    format!("{} {d:2} {y}", MONTHS.get(m as usize - 1).unwrap_or(&"???"))
}

/// Entries sorted by count (descending), then by pflogsumm's host order.
/// The labels are a map's keys, all distinct, and the order ends on them:
/// no two entries compare equal, so an unstable sort gives the stable
/// one's order, without its scratch buffer (the address tables' sorts
/// were most of the text rendering, itself serial at a run's end).
pub fn by_count<'a, V: Copy>(
    items: impl Iterator<Item = (&'a str, V)>,
    count: impl Fn(&V) -> (u64, u64),
) -> Vec<(&'a str, V)> {
    let mut v: Vec<(&str, V, crate::domain::SortKey)> =
        items.map(|(k, v)| (k, v, sort_key(k))).collect();
    v.sort_unstable_by(|a, b| {
        count(&b.1)
            .cmp(&count(&a.1))
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.0.cmp(b.0))
    });
    v.into_iter().map(|(k, v, _)| (k, v)).collect()
}

/// Senders listed before their two lists are made on a second thread
/// (smaller tables take less than starting one).
const PARALLEL_ROWS: usize = 4096;

/// `a()` and `b()`, on two threads when `parallel` and the machine has
/// two cores (and `MXGUARD_REPORT_THREADS` is not `1`, as for reading).
fn both<A: Send, B>(parallel: bool, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    if !parallel || crate::input::Split::auto().is_none() {
        return (a(), b());
    }
    std::thread::scope(|s| {
        let a = s.spawn(a);
        let b = b();
        let a = match a.join() {
            Ok(a) => a,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (a, b)
    })
}

fn limit(n: Option<usize>) -> usize {
    n.unwrap_or(usize::MAX)
}

pub fn render(r: &Report, layout: &Layout) -> String {
    render_on(r, layout, r.senders.len() >= PARALLEL_ROWS)
}

/// [`render`], on two threads when `parallel` (and the machine has two
/// cores).
fn render_on(r: &Report, layout: &Layout, parallel: bool) -> String {
    // The sender lists (sorting and formatting every address, twice)
    // and the problem details are most of the rendering, serial at the
    // end of a run: with many senders, the senders by count and the
    // problems are written on a second thread while this one writes the
    // rest, and the pieces joined in the report's order.
    let list = |map, name, by_size| {
        let mut s = String::new();
        users(&mut s, map, name, by_size, layout);
        s
    };
    let second = || {
        let mut p = String::new();
        problems(&mut p, r, layout);
        (list(&r.senders, "Senders by message count", false), p)
    };
    let first = || {
        let mut head = String::with_capacity(16 * 1024);
        grand_totals(&mut head, r, layout);
        let mut traffic = String::with_capacity(16 * 1024);
        per_time_and_domain(&mut traffic, r, layout);
        let mut rest = list(&r.recipients, "Recipients by message count", false);
        rest.push_str(&list(&r.senders, "Senders by message size", true));
        rest.push_str(&list(&r.recipients, "Recipients by message size", true));
        no_size(&mut rest, r, layout);
        (head, traffic, rest)
    };
    let ((senders_by_count, problems_text), (head, traffic, rest)) = both(parallel, second, first);
    // Sized once: grown by doubling, the megabytes of a large report
    // were copied again and their pages faulted in at each step.
    let mut o = String::with_capacity(
        head.len()
            + problems_text.len()
            + traffic.len()
            + senders_by_count.len()
            + rest.len()
            + 16 * 1024,
    );
    o.push_str(&head);
    if layout.problems_first {
        o.push_str(&problems_text);
    }
    o.push_str(&traffic);
    o.push_str(&senders_by_count);
    o.push_str(&rest);
    if !layout.problems_first {
        o.push_str(&problems_text);
    }
    postscreen_and_mxguard(&mut o, r, layout);
    o
}

/// The title, Grand Totals and (`--smtpd-stats`) the smtpd summary.
fn grand_totals(o: &mut String, r: &Report, layout: &Layout) {
    if let Some(t) = &layout.title {
        o.push_str(t);
        o.push('\n');
    }
    let t = &r.totals;
    title(o, "Grand Totals");
    o.push_str("messages\n\n");
    let line = |o: &mut String, v: u64, label: &str| {
        o.push(' ');
        num(o, v as f64);
        let _ = writeln!(o, "  {label}");
    };
    line(o, t.received, "received");
    line(o, t.delivered, "delivered");
    line(o, t.forwarded, "forwarded");
    o.push(' ');
    num(o, t.deferred as f64);
    o.push_str("  deferred");
    if t.deferrals > 0 {
        let (n, u) = units(t.deferrals as f64);
        let _ = write!(o, "  ({n}{u} deferrals)");
    }
    o.push('\n');
    line(o, t.bounced, "bounced");
    line(
        o,
        t.rejected,
        &format!("rejected ({}%)", t.rejected_percent),
    );
    line(o, t.reject_warnings, "reject warnings");
    line(o, t.held, "held");
    line(
        o,
        t.discarded,
        &format!("discarded ({}%)", t.discarded_percent),
    );
    o.push('\n');
    line(o, t.bytes_received, "bytes received");
    line(o, t.bytes_delivered, "bytes delivered");
    line(o, t.senders, "senders");
    line(o, t.sending_hosts_domains, "sending hosts/domains");
    line(o, t.recipients, "recipients");
    line(o, t.recipient_hosts_domains, "recipient hosts/domains");
    let s = &r.smtpd;
    if layout.smtpd_stats {
        o.push_str("\nsmtpd\n\n");
        o.push_str("  ");
        num(o, s.connections as f64);
        o.push_str("  connections\n  ");
        num(o, s.per_domain.len() as f64);
        o.push_str("  hosts/domains\n");
        let avg = if s.connections > 0 {
            s.total_secs as f64 / s.connections as f64 + 0.5
        } else {
            0.0
        };
        let _ = writeln!(o, "  {:6}   avg. connect time (seconds)", avg as u64);
        let (h, m, sec) = hms(s.total_secs as f64);
        let _ = writeln!(o, " {h:2}:{m:02}:{sec:02}  total connect time");
    }
    o.push('\n');
}

/// Traffic per day and hour, the host/domain summaries, (`--smtpd-stats`)
/// the smtpd connection tables.
fn per_time_and_domain(o: &mut String, r: &Report, layout: &Layout) {
    let days = r.day_changes.max(1) as f64;
    if r.day_changes > 1 {
        title(o, "Per-Day Traffic Summary");
        o.push_str("    date          received  delivered   deferred    bounced     rejected\n");
        o.push_str("    --------------------------------------------------------------------\n");
        for (day, cols) in &r.per_day {
            let _ = write!(o, "    {}", day_name(*day));
            for v in cols {
                o.push_str("    ");
                num(o, *v as f64);
            }
            o.push('\n');
        }
    }
    title(
        o,
        if r.day_changes > 1 {
            "Per-Hour Traffic Daily Average"
        } else {
            "Per-Hour Traffic Summary"
        },
    );
    o.push_str("    time          received  delivered   deferred    bounced     rejected\n");
    o.push_str("    --------------------------------------------------------------------\n");
    for (h, cols) in r.per_hour.iter().enumerate() {
        let _ = write!(o, "    {:02}00-{:02}00  ", h, h + 1);
        for v in cols {
            o.push_str("    ");
            let v = if r.day_changes > 0 {
                *v as f64 / days + 0.5
            } else {
                *v as f64
            };
            num(o, v);
        }
        o.push('\n');
    }
    if layout.top_hosts != Some(0) {
        let top = layout
            .top_hosts
            .map_or(String::new(), |n| format!("(top {n})"));
        title(o, &format!("Host/Domain Summary: Message Delivery {top}"));
        o.push_str(" sent cnt  bytes   defers   avg dly max dly host/domain\n");
        o.push_str(" -------- -------  -------  ------- ------- -----------\n");
        let rows = by_count(r.recipient_domains.iter().map(|(k, v)| (&**k, *v)), |d| {
            (d.count, d.size)
        });
        for (dom, d) in rows.into_iter().take(limit(layout.top_hosts)) {
            let avg = if d.count > 0 {
                d.delay_sum / d.count as f64
            } else {
                0.0
            };
            let (a, au) = time_units(avg);
            let (m, mu) = time_units(d.delay_max);
            o.push(' ');
            num(o, d.count as f64);
            o.push_str("  ");
            num(o, d.size as f64);
            o.push_str("  ");
            num(o, d.defers as f64);
            let _ = writeln!(o, "  {a:5.1} {au}  {m:5.1} {mu}  {dom}");
        }
        title(o, &format!("Host/Domain Summary: Messages Received {top}"));
        o.push_str(" msg cnt   bytes   host/domain\n");
        o.push_str(" -------- -------  -----------\n");
        let rows = by_count(r.sending_domains.iter().map(|(k, v)| (&**k, *v)), |d| {
            (d.count, d.size)
        });
        for (dom, d) in rows.into_iter().take(limit(layout.top_hosts)) {
            o.push(' ');
            num(o, d.count as f64);
            o.push_str("  ");
            num(o, d.size as f64);
            let _ = writeln!(o, "  {dom}");
        }
    }
    if layout.smtpd_stats {
        smtpd(o, r, layout);
    }
}

/// Deliveries whose size was not in the log.
fn no_size(o: &mut String, r: &Report, layout: &Layout) {
    if !r.no_size.is_empty() {
        title(o, "Messages with no size data");
        for (q, a) in &r.no_size {
            let _ = writeln!(o, " {q}  {a}");
        }
    } else if !layout.quiet {
        o.push_str("\nMessages with no size data: none\n");
    }
}

fn postscreen_and_mxguard(o: &mut String, r: &Report, layout: &Layout) {
    if !r.postscreen.is_empty() {
        title(o, "Postscreen");
        counts(o, &r.postscreen, " ");
    }
    if !r.mxguard.is_empty() {
        mxguard(o, &r.mxguard, layout);
    }
}

/// mxguard's own section (from serve's log lines, see [`crate::events`]).
fn mxguard(o: &mut String, m: &Mxguard, layout: &Layout) {
    title(o, "mxguard");
    let line = |o: &mut String, v: u64, label: &str| {
        o.push(' ');
        num(o, v as f64);
        let _ = writeln!(o, "  {label}");
    };
    line(o, m.scanned, "messages scanned");
    line(o, m.before_data, "ended before DATA (milter)");
    line(o, m.dkim_signed, "DKIM-signed");
    line(o, m.score_greylist_deferred, "greylisted (score)");
    line(o, m.score_greylist_passed, "passed after retry (score)");
    line(o, m.policy_greylist_deferred, "greylisted (policy)");
    line(o, m.policy_greylist_passed, "passed after retry (policy)");
    line(o, m.bans.values().sum(), "bans");
    if !m.actions.is_empty() {
        title(o, "mxguard: messages by action");
        counts(o, &m.actions, " ");
    }
    let top = layout.top_users.unwrap_or(TOP_SYMBOLS);
    if !m.symbols.is_empty() && top > 0 {
        title(o, &format!("mxguard: top symbols (top {top})"));
        let rows = by_count(m.symbols.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0));
        for (k, v) in rows.into_iter().take(top) {
            o.push(' ');
            num(o, v as f64);
            let _ = writeln!(o, "  {k}");
        }
    }
    if !m.bans.is_empty() {
        title(o, "mxguard: bans by jail");
        counts(o, &m.bans, " ");
    }
}

fn smtpd(o: &mut String, r: &Report, layout: &Layout) {
    let s = &r.smtpd;
    let days = r.day_changes.max(1);
    if r.day_changes > 1 {
        title(o, "Per-Day SMTPD Connection Summary");
        o.push_str("    date        connections    time conn.    avg./conn.   max. time\n");
        o.push_str("    --------------------------------------------------------------------\n");
        for (day, c) in &s.per_day {
            let (h, m, sec) = hms(c.secs as f64);
            let avg = (c.secs as f64 / c.count.max(1) as f64 + 0.5) as u64;
            let _ = write!(o, "    {}   ", day_name(*day));
            num(o, c.count as f64);
            let _ = writeln!(
                o,
                "       {h:2}:{m:02}:{sec:02}      {avg:6}s      {:6}s",
                c.max
            );
        }
        title(o, "Per-Hour SMTPD Connection Daily Average");
        o.push_str("    hour        connections    time conn.\n");
        o.push_str("    -------------------------------------\n");
    } else {
        title(o, "Per-Hour SMTPD Connection Summary");
        o.push_str("    hour        connections    time conn.    avg./conn.   max. time\n");
        o.push_str("    --------------------------------------------------------------------\n");
    }
    for (hour, c) in s.per_hour.iter().enumerate() {
        if c.count == 0 {
            continue;
        }
        let avg = (c.secs as f64 / c.count as f64 + 0.5) as u64;
        let (count, secs) = if days > 1 {
            (
                c.count as f64 / days as f64 + 0.5,
                c.secs as f64 / days as f64 + 0.5,
            )
        } else {
            (c.count as f64, c.secs as f64)
        };
        let (h, m, sec) = hms(secs);
        let _ = write!(o, "    {:02}00-{:02}00     ", hour, hour + 1);
        num(o, count);
        let _ = write!(o, "       {h:2}:{m:02}:{sec:02}");
        if days < 2 {
            let _ = write!(o, "      {avg:6}s      {:6}s", c.max);
        }
        o.push('\n');
    }
    if layout.top_hosts != Some(0) {
        let top = layout
            .top_hosts
            .map_or(String::new(), |n| format!("(top {n})"));
        title(o, &format!("Host/Domain Summary: SMTPD Connections {top}"));
        o.push_str(" connections  time conn.  avg./conn.  max. time  host/domain\n");
        o.push_str(" -----------  ----------  ----------  ---------  -----------\n");
        let rows = by_count(s.per_domain.iter().map(|(k, v)| (&**k, *v)), |c| {
            (c.count, c.secs)
        });
        for (dom, c) in rows.into_iter().take(limit(layout.top_hosts)) {
            let (h, m, sec) = hms(c.secs as f64);
            let avg = (c.secs as f64 / c.count.max(1) as f64 + 0.5) as u64;
            o.push_str("  ");
            num(o, c.count as f64);
            let _ = writeln!(
                o,
                "      {h:2}:{m:02}:{sec:02}     {avg:6}s    {:6}s   {dom}",
                c.max
            );
        }
    }
}

fn users(
    o: &mut String,
    map: &crate::hash::Map<Box<str>, Traffic>,
    name: &str,
    by_size: bool,
    layout: &Layout,
) {
    if layout.top_users == Some(0) {
        return;
    }
    let name = match layout.top_users {
        Some(n) => format!("top {n} {name}"),
        None => name.to_string(),
    };
    if map.is_empty() {
        if !layout.quiet {
            let _ = writeln!(o, "\n{name}: none");
        }
        return;
    }
    title(o, &name);
    let rows = by_count(map.iter().map(|(k, v)| (&**k, *v)), |t| {
        if by_size { (t.size, 0) } else { (t.count, 0) }
    });
    for (addr, t) in rows.into_iter().take(limit(layout.top_users)) {
        o.push(' ');
        num(o, if by_size { t.size } else { t.count } as f64);
        let _ = writeln!(o, "  {addr}");
    }
}

/// A label → count table, by count then host order.
fn counts(o: &mut String, t: &Tally, indent: &str) {
    for (k, v) in by_count(t.iter().map(|(k, v)| (k.as_str(), *v)), |v| (*v, 0)) {
        o.push_str(indent);
        num(o, v as f64);
        let _ = writeln!(o, "  {k}");
    }
}

fn nested2(o: &mut String, t: &Tally2, name: &str, layout: &Layout) {
    if t.is_empty() {
        if !layout.quiet {
            let _ = writeln!(o, "\n{name}: none");
        }
        return;
    }
    title(o, name);
    for (group, tally) in t {
        let _ = writeln!(o, "  {group} (total: {})", total(tally));
        counts(o, tally, "    ");
    }
}

fn nested3(o: &mut String, t: &Tally3, name: &str, layout: &Layout) {
    if t.is_empty() {
        if !layout.quiet {
            let _ = writeln!(o, "\n{name}: none");
        }
        return;
    }
    title(o, name);
    for (group, reasons) in t {
        let _ = writeln!(o, "  {group}");
        for (reason, tally) in reasons {
            let _ = writeln!(o, "    {reason} (total: {})", total(tally));
            counts(o, tally, "      ");
        }
    }
}

fn problems(o: &mut String, r: &Report, layout: &Layout) {
    nested2(o, &r.deferrals, "message deferral detail", layout);
    nested2(o, &r.bounces, "message bounce detail (by relay)", layout);
    nested3(o, &r.rejects, "message reject detail", layout);
    nested3(
        o,
        &r.reject_warnings,
        "message reject warning detail",
        layout,
    );
    nested3(o, &r.holds, "message hold detail", layout);
    nested3(o, &r.discards, "message discard detail", layout);
    nested2(o, &r.smtp_failures, "smtp delivery failures", layout);
    nested2(o, &r.warnings, "Warnings", layout);
    nested2(o, &r.fatals, "Fatal Errors", layout);
    nested2(o, &r.panics, "Panics", layout);
    if r.master.is_empty() {
        if !layout.quiet {
            o.push_str("\nMaster daemon messages: none\n");
        }
    } else {
        title(o, "Master daemon messages");
        counts(o, &r.master, " ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Collector, Options};
    use crate::date::Stamp;

    /// A log with enough senders for the two-thread rendering, rejects,
    /// deferrals and messages without a size.
    fn report() -> Report {
        let mut c = Collector::new(Options::default());
        let reference = Stamp {
            year: 2024,
            month: 3,
            day: 23,
            ..Stamp::default()
        };
        for i in 0..PARALLEL_ROWS + 500 {
            let (d, h) = (20 + i % 3, i % 24);
            for l in [
                format!(
                    "Mar {d} {h:02}:00:01 mx postfix/smtpd[1{i}]: Q{i}: client=h{}.example[192.0.2.{}]",
                    i % 97,
                    i % 250
                ),
                format!(
                    "Mar {d} {h:02}:00:02 mx postfix/qmgr[2]: Q{i}: from=<s{}@d{}.Example>, size={}, nrcpt=1 (queue active)",
                    i % 3000,
                    i % 41,
                    100 + i * 7 % 900
                ),
                format!(
                    "Mar {d} {h:02}:00:03 mx postfix/smtp[3]: Q{i}: to=<r{}@rcpt{}.example>, relay=mx[10.0.0.1]:25, delay=1.{}, delays=0/0/0/1, dsn=2.0.0, status=sent (250 OK)",
                    i % 700,
                    i % 13,
                    i % 10
                ),
                format!(
                    "Mar {d} {h:02}:00:04 mx postfix/smtp[3]: N{i}: to=<x{i}@y.example>, relay=mx[10.0.0.1]:25, delay=3, delays=0/0/0/3, dsn=4.0.0, status=deferred (host said: busy {})",
                    i % 5
                ),
                format!(
                    "Mar {d} {h:02}:00:05 mx postfix/smtpd[1{i}]: NOQUEUE: reject: RCPT from c{}.example[198.51.100.{}]: 554 5.7.1 <v@example.com>: Relay access denied; from=<z{}@spam.example> to=<v@example.com> proto=ESMTP helo=<x>",
                    i % 300,
                    i % 200,
                    i % 50
                ),
                // No qmgr line for M{i}: a delivery without a size.
                format!(
                    "Mar {d} {h:02}:00:05 mx postfix/smtp[3]: M{i}: to=<m{}@z.example>, relay=mx[10.0.0.1]:25, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 OK)",
                    i % 11
                ),
                format!("Mar {d} {h:02}:00:06 mx postfix/qmgr[2]: Q{i}: removed"),
            ] {
                c.line(l.as_bytes(), reference);
            }
        }
        c.finish()
    }

    #[test]
    fn two_threads_render_what_one_does() {
        let r = report();
        assert!(r.senders.len() >= PARALLEL_ROWS, "{}", r.senders.len());
        assert!(!r.no_size.is_empty(), "no size");
        assert!(!r.rejects.is_empty(), "rejects");
        for layout in [
            Layout::default(),
            Layout {
                top_hosts: Some(5),
                top_users: Some(7),
                problems_first: true,
                smtpd_stats: true,
                quiet: true,
                title: Some("Postfix log summaries for Mar 21".into()),
            },
            Layout {
                top_users: Some(0),
                top_hosts: Some(0),
                ..Layout::default()
            },
        ] {
            let one = render_on(&r, &layout, false);
            let two = render_on(&r, &layout, true);
            assert!(one.contains("message reject detail"));
            assert_eq!(one, two, "{layout:?}");
        }
    }
}
