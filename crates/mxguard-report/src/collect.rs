//! The one pass over the log: every line is read once, counted into the
//! report, and forgotten. What is kept between lines is per queue id in
//! flight (size, where it came from, deferred once), dropped when qmgr
//! logs `removed`, and per distinct host and address for the summaries.
//!
//! The counting rules are pflogsumm's (1.1.5), so the Grand Totals agree
//! with the reports admins know; departures are listed in
//! docs/ARCHITECTURE.md ("Mail-log report").

use crate::date::Stamp;
use crate::domain;
use crate::hash::Map as HashMap;
use crate::line::{self, Line};
use crate::reason::{Rules, trim_into};
use crate::report::*;
use memchr::memmem::{Finder, FinderRev};

mod seam;
pub(crate) use seam::QOp;

/// Which lines count and how problems are grouped.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only lines of `postfix` and this syslog name (pflogsumm's
    /// `--syslog-name`); None: every instance (`postfix`, `postfix-*`).
    pub syslog_name: Option<String>,
    /// Keep whole problem texts instead of pflogsumm's short reasons.
    pub verbose_msg_detail: bool,
    /// Add the sender to reject detail lines.
    pub rej_add_from: bool,
    /// Only lines at or after this wall-clock time.
    pub since: Option<Stamp>,
    /// Only lines before this wall-clock time.
    pub until: Option<Stamp>,
}

/// A queue id as a hash-map key without allocating: ids up to 16 bytes
/// are packed as they are; longer ones (never seen from Postfix, whose
/// long ids are 12–15 characters) by two independent hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Qid(u128);

impl Qid {
    fn new(b: &[u8]) -> Qid {
        if b.len() <= 16 {
            let mut buf = [0u8; 16];
            buf[..b.len()].copy_from_slice(b);
            Qid(u128::from_le_bytes(buf))
        } else {
            use std::hash::{BuildHasher, Hasher};
            let mut h1 = std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().build_hasher();
            h1.write(b);
            let mut h2 = h1.clone();
            h2.write_u8(0xa5);
            Qid(((h1.finish() as u128) << 64) | h2.finish() as u128 | 1 << 127)
        }
    }
}

/// A queue id in flight, until qmgr logs `removed`. Small (16 bytes, 32
/// with the key): the table holds every message in flight and its probes
/// missed the cache when the entries were 64 bytes.
#[derive(Debug, Default)]
struct InFlight {
    /// From qmgr's `from=<…>, size=`; 0 when not yet logged (a size of
    /// 0 counts as none everywhere it is read).
    size: u64,
    /// Where a received message came from (client domain or "pickup"),
    /// until qmgr names its sender: an id of [`Origins`], 0 = none.
    origin: u32,
    /// Already counted as deferred.
    deferred: bool,
    /// What a speculative collector knows of the id ([`seam`]): always
    /// [`seam::LIVE`] in an ordinary one.
    seam: u8,
}

/// The origin of a message in flight that did not fit [`Origins`]'s
/// table: kept in its `spill` map under the queue id.
const SPILLED: u32 = u32::MAX;

/// The origins of messages in flight, each distinct name stored once and
/// named by a small id: a `Box<str>` per message was an allocation and a
/// free per received message. Bounded by [`MAX_ADDRESSES`] names; past
/// that, origins are kept per queue id and dropped with it, as before.
struct Origins {
    /// Most names kept ([`MAX_ADDRESSES`]; smaller in tests).
    limit: usize,
    ids: HashMap<Box<str>, u32>,
    /// Name of id `i` at `i - 1`.
    names: Vec<Box<str>>,
    spill: HashMap<Qid, Box<str>>,
}

impl Default for Origins {
    fn default() -> Self {
        Origins {
            limit: MAX_ADDRESSES,
            ids: HashMap::default(),
            names: Vec::new(),
            spill: HashMap::default(),
        }
    }
}

impl Origins {
    /// The id for `name` as the origin of `q` (never 0).
    fn id(&mut self, q: Qid, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        if self.names.len() < self.limit {
            self.names.push(name.into());
            let id = self.names.len() as u32;
            self.ids.insert(name.into(), id);
            id
        } else {
            self.spill.insert(q, name.into());
            SPILLED
        }
    }

    /// The name of origin `id` of `q`, forgetting a spilled one.
    fn take(&mut self, q: Qid, id: u32) -> std::borrow::Cow<'_, str> {
        if id == SPILLED {
            return self
                .spill
                .remove(&q)
                .map(String::from)
                .unwrap_or_default()
                .into();
        }
        self.names.get(id as usize - 1).map_or("", |n| &**n).into()
    }
}

/// Prebuilt substring searchers for the hot path.
struct Finders {
    from: Finder<'static>,
    to: Finder<'static>,
    client: Finder<'static>,
    connect_to: Finder<'static>,
    colon_space: FinderRev<'static>,
}

/// Collects a report from log lines.
pub struct Collector {
    opts: Options,
    rules: Rules,
    finders: Finders,
    report: Report,
    /// What is known of each queue id in flight (one table: one hash
    /// and probe per line, where three tables took up to three).
    queue: HashMap<Qid, InFlight>,
    origins: Origins,
    /// The four problem tables while reading (see [`Staged`]), by
    /// [`Problem`] in declaration order.
    problems: [Staged; 4],
    /// smtpd connection start (seconds) by pid.
    connections: HashMap<u32, i64>,
    last_day: u32,
    years: line::Years,
    scratch: String,
    scratch2: String,
    /// Set when this collector reads a later part of a file than the one
    /// read at the same time by another ([`seam`]).
    spec: Option<Box<seam::Spec>>,
}

/// Log bytes as text: borrowed when valid UTF-8 (almost always; std's
/// check is word-at-a-time for ASCII), replacement characters otherwise.
/// `from_utf8_lossy` alone walks the bytes in chunks and cost 7% of a run.
fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

/// The first token of a message: pflogsumm's "queue id" (`[^:\s]+`).
fn first_token(msg: &[u8]) -> &[u8] {
    let n = msg
        .iter()
        .position(|&c| c == b':' || c.is_ascii_whitespace())
        .unwrap_or(msg.len());
    &msg[..n]
}

fn is_word(b: &[u8]) -> bool {
    !b.is_empty() && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// `from=<addr>, size=N` anywhere in the message.
fn from_size<'a>(f: &Finder, msg: &'a [u8]) -> Option<(&'a [u8], u64)> {
    let mut start = 0;
    while let Some(p) = f.find(&msg[start..]) {
        let at = start + p + 6;
        start = at;
        let Some(close) = memchr::memchr(b'>', &msg[at..]) else {
            break;
        };
        let addr = &msg[at..at + close];
        let rest = &msg[at + close + 1..];
        if let Some(num) = rest.strip_prefix(b", size=") {
            let n = num.iter().take_while(|c| c.is_ascii_digit()).count();
            if n > 0 && n <= 19 {
                let size = std::str::from_utf8(&num[..n]).ok()?.parse().ok()?;
                return Some((addr, size));
            }
        }
    }
    None
}

/// Where the last `word: ` in `msg` starts: by its colons from the right
/// (a reverse substring search cost ~500 instructions a warning line).
fn rfind_word_colon(msg: &[u8], word: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(b':', msg)
        .find(|&c| msg.get(c + 1) == Some(&b' ') && msg[..c].ends_with(word))
        .map(|c| c - word.len())
}

/// A delivery line's fields.
struct Delivery<'a> {
    to: &'a [u8],
    relay: &'a [u8],
    delay: f64,
    status: &'a [u8],
    rest: &'a [u8],
}

fn field<'a>(s: &'a [u8], name: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let v = s.strip_prefix(name)?;
    let end = memchr::memchr(b',', v)?;
    if end == 0 {
        return None;
    }
    let after = v[end..].strip_prefix(b", ")?;
    Some((&v[..end], after))
}

fn delivery<'a>(f: &Finder, msg: &'a [u8]) -> Option<Delivery<'a>> {
    let mut start = 0;
    while let Some(p) = f.find(&msg[start..]) {
        let at = start + p + 4;
        start = at;
        if let Some(d) = delivery_at(&msg[at..]) {
            return Some(d);
        }
    }
    None
}

fn delivery_at(s: &[u8]) -> Option<Delivery<'_>> {
    let close = memchr::memchr(b'>', s)?;
    let to = &s[..close];
    let mut r = s[close + 1..].strip_prefix(b", ")?;
    if let Some(o) = r.strip_prefix(b"orig_to=<") {
        let c = memchr::memchr(b'>', o)?;
        r = o[c + 1..].strip_prefix(b", ")?;
    }
    let (relay, r2) = field(r, b"relay=")?;
    r = r2;
    if let Some((_, r2)) = field(r, b"conn_use=") {
        r = r2;
    }
    let (delay, r2) = field(r, b"delay=")?;
    r = r2;
    if let Some((_, r2)) = field(r, b"delays=") {
        r = r2;
    }
    if let Some((_, r2)) = field(r, b"dsn=") {
        r = r2;
    }
    let st = r.strip_prefix(b"status=")?;
    let n = st
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(st.len());
    if n == 0 {
        return None;
    }
    let delay = std::str::from_utf8(delay)
        .ok()
        .and_then(perl_number)
        .unwrap_or(0.0);
    Some(Delivery {
        to,
        relay,
        delay,
        status: &st[..n],
        rest: &st[n..],
    })
}

/// The numeric prefix of a string, as Perl reads "1.5" or "30".
fn perl_number(s: &str) -> Option<f64> {
    let n = s
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    s[..n].parse().ok()
}

/// Finds `(type): (header|body|END-OF-MESSAGE) ` in a cleanup message.
fn cleanup_check(msg: &[u8]) -> Option<(Problem, &[u8], &[u8])> {
    let mut i = 0;
    while let Some(p) = memchr::memmem::find(&msg[i..], b": ") {
        let colon = i + p;
        i = colon + 2;
        let before = &msg[..colon];
        let word_start = before
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-'))
            .map_or(0, |q| q + 1);
        let word = &before[word_start..];
        let kind = match word {
            b"reject" | b"milter-reject" => Problem::Reject,
            w if w.ends_with(b"-reject") => Problem::Reject,
            b"warning" => Problem::RejectWarning,
            b"hold" => Problem::Hold,
            b"discard" => Problem::Discard,
            _ => continue,
        };
        let after = &msg[i..];
        for what in [&b"header"[..], b"body", b"END-OF-MESSAGE"] {
            if let Some(r) = after.strip_prefix(what)
                && let Some(r) = r.strip_prefix(b" ")
            {
                return Some((kind, what, r));
            }
        }
    }
    None
}

impl Collector {
    pub fn new(opts: Options) -> Collector {
        Collector {
            opts,
            rules: Rules::new(),
            finders: Finders {
                from: Finder::new(b"from=<").into_owned(),
                to: Finder::new(b"to=<").into_owned(),
                client: Finder::new(b": client=").into_owned(),
                connect_to: Finder::new(b"connect to ").into_owned(),
                colon_space: FinderRev::new(b": ").into_owned(),
            },
            report: Report::default(),
            queue: HashMap::default(),
            origins: Origins::default(),
            problems: Default::default(),
            connections: HashMap::default(),
            last_day: 0,
            years: line::Years::new(Stamp::default()),
            scratch: String::new(),
            scratch2: String::new(),
            spec: None,
        }
    }

    /// The options this collector counts by.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn instance_wanted(&self, instance: &[u8]) -> bool {
        if instance == b"postfix" {
            return true;
        }
        match &self.opts.syslog_name {
            Some(name) => instance == name.as_bytes(),
            None => instance.starts_with(b"postfix-"),
        }
    }

    /// Counts one log line (without its line end). `reference` gives the
    /// year of syslog timestamps (see [`crate::date::infer_year`]).
    pub fn line(&mut self, raw: &[u8], reference: Stamp) {
        self.report.lines += 1;
        let l = match line::parse_with(raw, reference, &mut self.years) {
            Ok(l) => l,
            Err(_) => {
                // Not a syslog line: `mxguard serve`'s own stderr log
                // (tracing's text lines, RFC 3339 stamp then the level)?
                match line::timestamp(raw, reference) {
                    Some((stamp, rest)) if self.mxguard_line(stamp, rest) => {}
                    // serve's other lines: a program's, not malformed.
                    Some((_, rest)) if crate::events::is_tracing_line(rest) => {
                        self.report.other_programs += 1;
                    }
                    _ => self.report.malformed += 1,
                }
                return;
            }
        };
        if !self.instance_wanted(l.instance) {
            if l.program != b"mxguard" || !self.mxguard_line(l.stamp, l.msg) {
                self.report.other_programs += 1;
            }
            return;
        }
        if !self.in_period(l.stamp) {
            self.report.out_of_period += 1;
            return;
        }
        self.report.postfix_lines += 1;
        self.postfix_line(&l, raw);
    }

    fn in_period(&self, stamp: Stamp) -> bool {
        self.opts.since.is_none_or(|since| stamp >= since)
            && self.opts.until.is_none_or(|until| stamp < until)
    }

    /// A line of mxguard's (the `mxguard` syslog tag, or serve's own log
    /// file): its events go to the mxguard section. False when it holds
    /// none of them.
    fn mxguard_line(&mut self, stamp: Stamp, text: &[u8]) -> bool {
        if !crate::events::is_event(text) {
            return false;
        }
        if self.in_period(stamp) {
            crate::events::count(text, &mut self.report.mxguard);
            self.report.mxguard_lines += 1;
        } else {
            self.report.out_of_period += 1;
        }
        true
    }

    fn postfix_line(&mut self, l: &Line, raw: &[u8]) {
        let day = l.stamp.day_key();
        if day != self.last_day {
            if self.last_day == 0
                && let Some(spec) = self.spec.as_deref_mut()
            {
                spec.first_day = day;
            }
            self.last_day = day;
            self.report.day_changes += 1;
        }
        if self.report.first.is_none_or(|f| l.stamp < f) {
            self.report.first = Some(l.stamp);
        }
        if self.report.last.is_none_or(|f| l.stamp > f) {
            self.report.last = Some(l.stamp);
        }
        self.postfix_body(l, raw);
    }

    /// What a Postfix line counts for, past the line-level counters (all
    /// of it but the day changes and the first and last time).
    fn postfix_body(&mut self, l: &Line, raw: &[u8]) {
        let day = l.stamp.day_key();
        let hour = l.stamp.hour as usize;
        let daemon = l.daemon;
        let msg = l.msg;
        let qid = first_token(msg);
        if daemon == b"cleanup"
            && let Some((kind, what, rest)) = cleanup_check(msg)
        {
            let text = self
                .rules
                .cleanup_text(&text(rest), self.opts.verbose_msg_detail);
            self.problem(
                kind,
                "cleanup",
                &String::from_utf8_lossy(what),
                &text,
                hour,
                day,
            );
            return;
        }
        match qid {
            b"warning" | b"fatal" | b"panic" => {
                // After the last `warning: ` (`fatal: `, `panic: `).
                let reason = match rfind_word_colon(msg, qid) {
                    Some(p) => &msg[p + qid.len() + 2..],
                    None => msg,
                };
                let reason = text(reason);
                // Most fit: no copy then; the rest are cut into a buffer.
                let reason: &str = if self.opts.verbose_msg_detail || reason.len() <= 66 {
                    &reason
                } else {
                    trim_into(&reason, 66, false, &mut self.scratch2);
                    &self.scratch2
                };
                let table = match qid {
                    b"warning" => &mut self.report.warnings,
                    b"fatal" => &mut self.report.fatals,
                    _ => &mut self.report.panics,
                };
                bump2(table, &text(daemon), reason, 1);
                return;
            }
            b"reject" | b"reject_warning" | b"hold" | b"discard" => {
                self.smtpd_reject(Problem::of(qid), l, raw, hour, day);
                return;
            }
            _ => {}
        }
        if daemon == b"master" {
            let m = match self.finders.colon_space.rfind(msg) {
                Some(p) => &msg[p + 2..],
                None => msg,
            };
            bump(&mut self.report.master, &text(m), 1);
            return;
        }
        if daemon == b"postscreen" {
            self.postscreen(msg);
        }
        if daemon == b"smtpd" || daemon == b"postscreen" {
            if l.pid.is_some() && is_word(qid) {
                let after = &msg[qid.len()..];
                if let Some(client) = after.strip_prefix(b": client=") {
                    if self.gate(qid, QOp::Create, raw) {
                        return;
                    }
                    let end = memchr::memchr(b',', client).unwrap_or(client.len());
                    self.received(hour, day);
                    domain::host_domain(&text(&client[..end]), &mut self.scratch);
                    let name = std::mem::take(&mut self.scratch);
                    self.set_origin(Qid::new(qid), &name);
                    self.scratch = name;
                    return;
                }
                if let Some(r) = after.strip_prefix(b": ") {
                    let kind = first_token(r);
                    if r.get(kind.len()..kind.len() + 2) == Some(b": ")
                        && matches!(kind, b"reject" | b"reject_warning" | b"hold" | b"discard")
                    {
                        self.smtpd_reject(Problem::of(kind), l, raw, hour, day);
                        return;
                    }
                }
            }
            if daemon == b"smtpd"
                && let Some(pid) = l.pid
            {
                if msg.starts_with(b"connect from ") {
                    self.connections.insert(pid, l.stamp.secs());
                } else if let Some(host) = msg.strip_prefix(b"disconnect from ")
                    && let Some(start) = self.take_connection(pid, raw)
                {
                    let secs = (l.stamp.secs() - start).max(0) as u64;
                    domain::host_domain(&text(host), &mut self.scratch);
                    let r = &mut self.report.smtpd;
                    r.connections += 1;
                    r.total_secs += secs;
                    r.per_hour[hour].add(secs);
                    r.per_day.entry(day).or_default().add(secs);
                    if let Some(c) = r.per_domain.get_mut(self.scratch.as_str()) {
                        c.add(secs);
                    } else if r.per_domain.len() < MAX_KEYS {
                        let mut c = Conn::default();
                        c.add(secs);
                        r.per_domain.insert(self.scratch.as_str().into(), c);
                    }
                }
            }
            let _ = &self.finders.client;
            return;
        }
        // qmgr's `removed` first: a quarter of a server's lines, and the
        // message (`ID: removed`) can hold neither `from=<` nor `to=<`, so
        // the two searches below would only miss.
        if daemon == b"qmgr" && msg.len() == qid.len() + 9 && msg.ends_with(b": removed") {
            let q = Qid::new(qid);
            if self.spec.is_some() {
                self.gate(qid, QOp::Remove, raw);
                return;
            }
            if self.queue.remove(&q).is_some_and(|e| e.origin == SPILLED) {
                self.origins.spill.remove(&q);
            }
            return;
        }
        if let Some((addr, size)) = from_size(&self.finders.from, msg) {
            if self.gate(qid, QOp::Sender, raw) {
                return;
            }
            self.sender(qid, addr, size);
            return;
        }
        if let Some(d) = delivery(&self.finders.to, msg) {
            self.delivered(daemon, qid, &d, hour, day, raw);
            return;
        }
        if daemon == b"pickup" {
            let after = &msg[qid.len()..];
            if after.starts_with(b": sender=") || after.starts_with(b": uid=") {
                if self.gate(qid, QOp::Create, raw) {
                    return;
                }
                self.received(hour, day);
                self.set_origin(Qid::new(qid), "pickup");
            }
            return;
        }
        if daemon == b"smtp" && self.finders.connect_to.find(msg).is_some() {
            // pflogsumm matches on the line from the tag on.
            let tagged = &raw[raw.len() - msg.len()..];
            if let Some((reason, host)) = self.rules.smtp_failure(&text(tagged)) {
                bump2(&mut self.report.smtp_failures, &reason, &host, 1);
            }
        }
    }

    /// Where message `q` came from, until qmgr names its sender.
    fn set_origin(&mut self, q: Qid, name: &str) {
        let id = self.origins.id(q, name);
        let entry = self.queue.entry(q).or_default();
        if std::mem::replace(&mut entry.origin, id) == SPILLED && id != SPILLED {
            self.origins.spill.remove(&q);
        }
    }

    fn received(&mut self, hour: usize, day: u32) {
        self.report.totals.received += 1;
        self.report.per_hour[hour][0] += 1;
        self.report.per_day.entry(day).or_default()[0] += 1;
    }

    fn sender(&mut self, qid: &[u8], addr: &[u8], size: u64) {
        let q = Qid::new(qid);
        let entry = self.queue.entry(q).or_default();
        if entry.size != 0 {
            return; // qmgr logs from= again after a deferral
        }
        if addr.is_empty() {
            self.scratch.clear();
            self.scratch.push_str("from=<>");
        } else {
            domain::address_key(&text(addr), &mut self.scratch);
        }
        entry.size = size;
        let id = std::mem::take(&mut entry.origin);
        if id == 0 {
            return; // not received here (a forward or bounce): not counted
        }
        let origin = self.origins.take(q, id);
        let dom: &str = match domain::domain_of(&self.scratch) {
            Some(d) => d,
            None if &*origin == "pickup" => &self.scratch,
            None => &origin,
        };
        let r = &mut self.report;
        if upsert(&mut r.sending_domains, dom, |s| {
            s.count += 1;
            s.size += size;
        }) {
            r.totals.sending_hosts_domains += 1;
        }
        if upsert(&mut r.senders, &self.scratch, |s| {
            s.count += 1;
            s.size += size;
        }) {
            r.totals.senders += 1;
        }
        r.totals.bytes_received += size;
    }

    fn delivered(
        &mut self,
        daemon: &[u8],
        qid: &[u8],
        d: &Delivery,
        hour: usize,
        day: u32,
        raw: &[u8],
    ) {
        let q = Qid::new(qid);
        if self.spec.is_some() {
            let op = match d.status {
                b"sent" if memchr::memmem::find(d.rest, b"forwarded as ").is_none() => {
                    Some(QOp::Sent)
                }
                b"deferred" => Some(QOp::Defer),
                _ => None, // touches no queue state: never held back
            };
            if let Some(op) = op
                && self.gate(qid, op, raw)
            {
                return;
            }
        }
        domain::address_key(&text(d.to), &mut self.scratch);
        let addr = self.scratch.as_str();
        let dom = match memchr::memchr(b'@', addr.as_bytes()) {
            Some(at) if at > 0 => &addr[at + 1..],
            _ => addr,
        };
        let r = &mut self.report;
        match d.status {
            b"sent" => {
                if memchr::memmem::find(d.rest, b"forwarded as ").is_some() {
                    r.totals.forwarded += 1;
                    return;
                }
                let size = self.queue.get(&q).map_or(0, |e| e.size);
                // A domain is new to the count at its first delivery (it may
                // have been listed already for a deferral).
                let mut first = false;
                upsert(&mut r.recipient_domains, dom, |s| {
                    first = s.count == 0;
                    s.count += 1;
                    s.size += size;
                    s.delay_sum += d.delay;
                    if d.delay > s.delay_max {
                        s.delay_max = d.delay;
                    }
                });
                if first && r.recipient_domains.contains_key(dom) {
                    r.totals.recipient_hosts_domains += 1;
                }
                if let Some(spec) = self.spec.as_deref_mut() {
                    spec.delay(dom, d.delay);
                }
                if upsert(&mut r.recipients, addr, |s| {
                    s.count += 1;
                    s.size += size;
                }) {
                    r.totals.recipients += 1;
                }
                r.per_hour[hour][1] += 1;
                r.per_day.entry(day).or_default()[1] += 1;
                r.totals.delivered += 1;
                if size != 0 {
                    r.totals.bytes_delivered += size;
                } else if r.no_size.len() < MAX_KEYS {
                    r.no_size.insert(text(qid).into_owned(), addr.to_string());
                }
            }
            b"deferred" => {
                let reason = paren(d.rest, b" (", false);
                let reason = self
                    .rules
                    .deferral(&text(reason), self.opts.verbose_msg_detail);
                bump2(&mut r.deferrals, &text(daemon), &reason, 1);
                r.per_hour[hour][2] += 1;
                r.per_day.entry(day).or_default()[2] += 1;
                r.totals.deferrals += 1;
                let entry = self.queue.entry(q).or_default();
                if !std::mem::replace(&mut entry.deferred, true) {
                    r.totals.deferred += 1;
                }
                upsert(&mut r.recipient_domains, dom, |s| {
                    s.defers += 1;
                    if d.delay > s.delay_max {
                        s.delay_max = d.delay;
                    }
                });
            }
            b"bounced" => {
                let reason = paren(d.rest, b" (", true);
                let reason = self
                    .rules
                    .bounce(&text(reason), self.opts.verbose_msg_detail);
                bump2(&mut r.bounces, &text(d.relay), &reason, 1);
                r.per_hour[hour][3] += 1;
                r.per_day.entry(day).or_default()[3] += 1;
                r.totals.bounced += 1;
            }
            _ => {}
        }
    }

    fn smtpd_reject(&mut self, kind: Problem, l: &Line, raw: &[u8], hour: usize, day: u32) {
        let tagged = &raw[l.program.as_ptr() as usize - raw.as_ptr() as usize..];
        let tagged = text(tagged);
        let mut data = std::mem::take(&mut self.scratch2);
        let (stage, reason) = self.rules.reject_parts(
            &tagged,
            self.opts.verbose_msg_detail,
            self.opts.rej_add_from,
            &mut data,
        );
        self.problem(kind, stage, &reason, &data, hour, day);
        self.scratch2 = data;
    }

    fn problem(
        &mut self,
        kind: Problem,
        group: &str,
        reason: &str,
        data: &str,
        hour: usize,
        day: u32,
    ) {
        let r = &mut self.report;
        let total = match kind {
            Problem::Reject => &mut r.totals.rejected,
            Problem::RejectWarning => &mut r.totals.reject_warnings,
            Problem::Hold => &mut r.totals.held,
            Problem::Discard => &mut r.totals.discarded,
        };
        *total += 1;
        self.problems[kind as usize].bump(group, reason, data);
        r.per_hour[hour][4] += 1;
        r.per_day.entry(day).or_default()[4] += 1;
    }

    fn postscreen(&mut self, msg: &[u8]) {
        const EVENTS: [&str; 14] = [
            "CONNECT from",
            "PASS NEW",
            "PASS OLD",
            "DNSBL rank",
            "PREGREET",
            "HANGUP after",
            "COMMAND PIPELINING",
            "NON-SMTP COMMAND",
            "BARE NEWLINE",
            "WHITELISTED",
            "ALLOWLISTED",
            "BLACKLISTED",
            "DENYLISTED",
            "NOQUEUE: reject",
        ];
        for e in EVENTS {
            if msg.starts_with(e.as_bytes()) {
                bump(&mut self.report.postscreen, e, 1);
                return;
            }
        }
    }

    /// A line longer than the read buffer was skipped.
    pub fn too_long(&mut self) {
        self.report.lines += 1;
        self.report.too_long += 1;
    }

    pub fn finish(self) -> Report {
        let mut r = self.report;
        let [rejects, reject_warnings, holds, discards] = self.problems;
        r.rejects = rejects.into_sorted();
        r.reject_warnings = reject_warnings.into_sorted();
        r.holds = holds.into_sorted();
        r.discards = discards.into_sorted();
        r.totals.finish();
        r
    }
}

/// The text in parentheses after `open`: up to the first `)` (deferrals)
/// or the last (bounces).
fn paren<'a>(rest: &'a [u8], open: &[u8], to_last: bool) -> &'a [u8] {
    let Some(p) = memchr::memmem::find(rest, open) else {
        return b"";
    };
    let inner = &rest[p + open.len()..];
    let end = if to_last {
        memchr::memrchr(b')', inner)
    } else {
        memchr::memchr(b')', inner)
    };
    match end {
        Some(e) => &inner[..e],
        None if to_last => b"",
        None => inner,
    }
}

/// label → count, while reading.
type HashTally = HashMap<Box<str>, u64>;

/// A problem table (group → reason → label → count) while reading: hash
/// maps, one hash and probe per level, sorted into the report's
/// `BTreeMap`s once at [`Collector::finish`]. Rejects are a fifth of a
/// server's lines and their labels (client hosts) run to thousands, so the
/// string compares along `BTreeMap` paths were the largest memcmp share of
/// a run. The bounds are [`bump`]'s and [`bump2`]'s: the same keys are
/// kept and the same counts go to [`OVERFLOW`].
#[derive(Default)]
struct Staged(HashMap<Box<str>, HashMap<Box<str>, HashTally>>);

impl Staged {
    fn bump(&mut self, group: &str, reason: &str, label: &str) {
        let t = &mut self.0;
        let group = if t.contains_key(group) || t.len() < MAX_KEYS {
            group
        } else {
            OVERFLOW
        };
        let g = match t.get_mut(group) {
            Some(g) => g,
            None => t.entry(group.into()).or_default(),
        };
        let reasons = match g.get_mut(reason) {
            Some(r) => r,
            None => {
                let reason = if g.len() < MAX_KEYS { reason } else { OVERFLOW };
                g.entry(reason.into()).or_default()
            }
        };
        if let Some(n) = reasons.get_mut(label) {
            *n += 1;
        } else if reasons.len() < MAX_KEYS {
            reasons.insert(label.into(), 1);
        } else {
            *reasons.entry(OVERFLOW.into()).or_default() += 1;
        }
    }

    fn into_sorted(self) -> Tally3 {
        self.0
            .into_iter()
            .map(|(g, reasons)| {
                let reasons = reasons
                    .into_iter()
                    .map(|(r, labels)| {
                        let labels = labels.into_iter().map(|(l, n)| (l.into(), n)).collect();
                        (r.into(), labels)
                    })
                    .collect();
                (g.into(), reasons)
            })
            .collect()
    }
}

/// Adds to a per-key record, inserting it when new and when under the
/// limit; true when the key was new.
fn upsert<T: Default>(map: &mut HashMap<Box<str>, T>, key: &str, f: impl FnOnce(&mut T)) -> bool {
    if let Some(v) = map.get_mut(key) {
        f(v);
        return false;
    }
    let mut v = T::default();
    f(&mut v);
    if map.len() >= MAX_ADDRESSES {
        // Past the bound new keys are neither listed nor counted as
        // distinct (their messages still count): memory stays bounded.
        return false;
    }
    map.insert(key.into(), v);
    true
}

impl Problem {
    fn of(word: &[u8]) -> Problem {
        match word {
            b"reject_warning" => Problem::RejectWarning,
            b"hold" => Problem::Hold,
            b"discard" => Problem::Discard,
            _ => Problem::Reject,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages from three client domains and one local sender, each
    /// sender without a domain so that the origin names the sending
    /// domain; qmgr removes them all.
    fn lines() -> Vec<String> {
        let mut v = Vec::new();
        for (i, client) in [
            "mail.one.example[192.0.2.1]",
            "mx.two.example[192.0.2.2]",
            "three.example[192.0.2.3]",
            "mail.one.example[192.0.2.1]",
        ]
        .iter()
        .enumerate()
        {
            v.push(format!(
                "Mar 22 08:00:0{i} mx postfix/smtpd[10{i}]: ABC{i}: client={client}"
            ));
        }
        // ABC2 is named twice: its second origin wins.
        v.push(
            "Mar 22 08:00:05 mx postfix/smtpd[102]: ABC2: client=mail.one.example[192.0.2.1]"
                .into(),
        );
        v.push("Mar 22 08:00:05 mx postfix/pickup[200]: ABC9: uid=0 from=<root>".into());
        for i in [0, 1, 2, 3, 9] {
            v.push(format!("Mar 22 08:00:06 mx postfix/qmgr[300]: ABC{i}: from=<local{i}>, size=10{i}, nrcpt=1 (queue active)"));
        }
        for i in [0, 1, 2, 3, 9] {
            v.push(format!(
                "Mar 22 08:00:07 mx postfix/qmgr[300]: ABC{i}: removed"
            ));
        }
        v
    }

    fn run(limit: usize) -> (Report, Collector) {
        let mut c = Collector::new(Options::default());
        c.origins.limit = limit;
        let reference = Stamp {
            year: 2024,
            month: 3,
            day: 23,
            ..Stamp::default()
        };
        for l in lines() {
            c.line(l.as_bytes(), reference);
        }
        let r = std::mem::take(&mut c.report);
        (r, c)
    }

    #[test]
    fn origins_past_the_bound_count_the_same_and_are_dropped_with_their_message() {
        let (full, c) = run(MAX_ADDRESSES);
        assert!(c.origins.spill.is_empty());
        let mut domains: Vec<_> = full.sending_domains.keys().map(|k| k.to_string()).collect();
        domains.sort();
        assert_eq!(domains.len(), 3, "{domains:?}");
        assert!(
            domains.iter().any(|d| d.contains("one.example")),
            "{domains:?}"
        );
        assert!(!domains.iter().any(|d| d.contains("three")), "{domains:?}");
        assert_eq!(full.totals.received, 6); // ABC2 received twice, as pflogsumm counts it
        for limit in [0, 1, 2] {
            let (small, c) = run(limit);
            assert_eq!(small.sending_domains, full.sending_domains, "limit {limit}");
            assert_eq!(small.totals, full.totals, "limit {limit}");
            assert!(c.origins.names.len() <= limit);
            assert!(
                c.origins.spill.is_empty(),
                "limit {limit}: {:?}",
                c.origins.spill
            );
            assert!(c.queue.is_empty());
        }
    }
}
