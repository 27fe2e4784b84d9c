//! Two threads on one file: the report's bar is speed, and the servers it
//! runs on have two cores. One collector reads a part of the file; a
//! second, speculative one reads the part after it at the same time,
//! from an empty state, and is then folded into the first
//! ([`Collector::absorb`]). The result is the one a single pass gives,
//! byte for byte, because the speculative collector never guesses what it
//! cannot know:
//!
//! - A line whose effect depends on a queue id's state from before its
//!   part (a `from=`, a delivery, a deferral or `removed` of an id it has
//!   not seen begin) is kept as it is and read again by the first
//!   collector at the merge, in order, after that collector's own part
//!   ("pending"). So is everything later of that id, and an smtpd
//!   `disconnect` whose `connect` it has not seen.
//! - `removed` of an id never seen here is kept as the id alone: after it
//!   the id is gone whatever came before.
//! - An id that begins here (`client=`, pickup) is assumed new; the merge
//!   checks that the first part did not leave it in flight, and when it
//!   did, the part is read again by the first collector instead.
//! - Everything else only adds to counts, which add up the same in any
//!   order — except the sums of delivery delays (floating point, so the
//!   order shows in the last digits): those are replayed in order too.
//! - The tables are bounded ([`MAX_KEYS`], [`MAX_ADDRESSES`]); which keys
//!   a full table keeps depends on order, so the merge is refused (the
//!   part read again) unless both parts together stay below every bound.
//!
//! Memory stays bounded: a part is at most about a segment of the file
//! (`input::Split::segment`, 32 MiB), and the pending lines are capped
//! (past the cap the part is read again instead).

use super::{Collector, InFlight, Qid, SPILLED, Staged};
use crate::date::Stamp;
use crate::hash::Map as HashMap;
use crate::line;
use crate::report::*;
use std::collections::hash_map::Entry;

/// A queue id entry as an ordinary collector has it.
pub(super) const LIVE: u8 = 0;
/// Its lines are pending: its state from before the part is unknown.
const PENDING: u8 = 1;
/// Begun and removed within the part: known to be gone.
const GONE: u8 = 2;

/// smtpd connection markers in a speculative collector's table (real
/// values are seconds of a date, far from these).
const CONN_PENDING: i64 = i64::MIN;
const CONN_GONE: i64 = i64::MIN + 1;

/// Most bytes of pending lines kept; past it the part is read again.
const PENDING_BYTES: usize = 32 << 20;
/// Most pending ids and delays kept; past it the part is read again.
const PENDING_ITEMS: usize = 4 << 20;

/// What a line does to a queue id's state.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QOp {
    /// `client=`, pickup: an id begins.
    Create,
    /// qmgr's `from=<…>, size=`.
    Sender,
    /// A delivery `status=sent` (not forwarded).
    Sent,
    /// A delivery `status=deferred`.
    Defer,
    /// qmgr's `removed`.
    Remove,
}

/// In order: what the merge does again after the first part.
enum Replay {
    /// A pending line: `arena[start..end]`.
    Line { start: u32, end: u32 },
    /// A delay to add to a recipient domain (by its index in `domains`).
    Delay { domain: u32, delay: f64 },
}

/// A speculative collector's own state.
#[derive(Default)]
pub(super) struct Spec {
    arena: Vec<u8>,
    replay: Vec<Replay>,
    lines: usize,
    /// Ids `removed` that were never seen in this part.
    removes: Vec<Qid>,
    domains: HashMap<Box<str>, u32>,
    domain_names: Vec<Box<str>>,
    /// The day of the part's first Postfix line (0: none yet).
    pub(super) first_day: u32,
    /// A cap was passed: the part must be read again.
    gave_up: bool,
}

impl Spec {
    fn pend(&mut self, raw: &[u8]) {
        if self.arena.len() + raw.len() > PENDING_BYTES || self.replay.len() >= PENDING_ITEMS {
            self.gave_up = true;
            return;
        }
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(raw);
        self.replay.push(Replay::Line {
            start,
            end: self.arena.len() as u32,
        });
        self.lines += 1;
    }

    /// Empty for the next part, its buffers kept: a new one each part
    /// grew the pending lines' arena again from nothing, page by page.
    fn clear(&mut self) {
        let Spec {
            arena,
            replay,
            lines,
            removes,
            domains,
            domain_names,
            first_day,
            gave_up,
        } = self;
        arena.clear();
        replay.clear();
        *lines = 0;
        removes.clear();
        domains.clear();
        domain_names.clear();
        *first_day = 0;
        *gave_up = false;
    }

    /// A delivery delay to add in order at the merge.
    pub(super) fn delay(&mut self, domain: &str, delay: f64) {
        if self.replay.len() >= PENDING_ITEMS {
            self.gave_up = true;
            return;
        }
        let domain = match self.domains.get(domain) {
            Some(&i) => i,
            None => {
                let i = self.domain_names.len() as u32;
                self.domain_names.push(domain.into());
                self.domains.insert(domain.into(), i);
                i
            }
        };
        self.replay.push(Replay::Delay { domain, delay });
    }
}

impl Collector {
    /// A collector for a later part of a file, folded into the collector
    /// of the part before it with [`Collector::absorb`].
    pub fn speculative(opts: super::Options) -> Collector {
        let mut c = Collector::new(opts);
        c.spec = Some(Box::default());
        c
    }

    /// Whether a speculative collector passed one of its caps (the rest
    /// of its part need not be read: it will be read again).
    pub fn gave_up(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| s.gave_up)
    }

    /// In a speculative collector: true when the line was held back (or
    /// fully handled) because of what it does to queue id `qid`; the
    /// caller then skips it. Always false in an ordinary collector.
    #[inline]
    pub(super) fn gate(&mut self, qid: &[u8], op: QOp, raw: &[u8]) -> bool {
        if self.spec.is_none() {
            return false;
        }
        self.gate_id(Qid::new(qid), op, raw)
    }

    fn gate_id(&mut self, q: Qid, op: QOp, raw: &[u8]) -> bool {
        let Some(spec) = self.spec.as_deref_mut() else {
            return false;
        };
        match self.queue.entry(q) {
            Entry::Vacant(v) => match op {
                QOp::Remove => {
                    if spec.removes.len() >= PENDING_ITEMS {
                        spec.gave_up = true;
                    }
                    spec.removes.push(q);
                    true
                }
                QOp::Create => {
                    v.insert(InFlight::default());
                    false
                }
                _ => {
                    v.insert(InFlight {
                        seam: PENDING,
                        ..Default::default()
                    });
                    spec.pend(raw);
                    true
                }
            },
            Entry::Occupied(mut o) => match (o.get().seam, op) {
                (PENDING, _) => {
                    spec.pend(raw);
                    true
                }
                (GONE, QOp::Remove) => true,
                // The size of a gone id reads as 0, as for an absent one.
                (GONE, QOp::Sent) => false,
                (GONE, _) => {
                    o.get_mut().seam = LIVE;
                    false
                }
                (_, QOp::Remove) => {
                    let e = o.get_mut();
                    if e.origin == SPILLED {
                        self.origins.spill.remove(&q);
                    }
                    *e = InFlight {
                        seam: GONE,
                        ..Default::default()
                    };
                    true
                }
                _ => false,
            },
        }
    }

    /// The start of smtpd connection `pid`, forgetting it; in a
    /// speculative collector the `disconnect` line is held back when the
    /// `connect` was not in its part.
    pub(super) fn take_connection(&mut self, pid: u32, raw: &[u8]) -> Option<i64> {
        let Some(spec) = self.spec.as_deref_mut() else {
            return self.connections.remove(&pid);
        };
        match self.connections.entry(pid) {
            Entry::Vacant(v) => {
                v.insert(CONN_PENDING);
                spec.pend(raw);
                None
            }
            Entry::Occupied(mut o) => match *o.get() {
                CONN_PENDING => {
                    spec.pend(raw);
                    None
                }
                CONN_GONE => None,
                start => {
                    o.insert(CONN_GONE);
                    Some(start)
                }
            },
        }
    }

    /// Reads a pending line again, as the line it was.
    fn replay_line(&mut self, raw: &[u8], reference: Stamp) {
        if let Ok(l) = line::parse_with(raw, reference, &mut self.years) {
            self.postfix_body(&l, raw);
        }
    }

    /// Folds speculative collector `b`, which read the part of the file
    /// right after this collector's, into this one, and empties `b` for
    /// the next part. False when it could not be folded exactly: nothing
    /// has changed here then, and `b`'s part must be read by this
    /// collector.
    pub fn absorb(&mut self, b: &mut Collector, reference: Stamp) -> bool {
        let mut spec = b.spec.take().expect("absorb: not a speculative collector");
        let ok = !spec.gave_up && self.fits(b, spec.lines) && !self.conflicts(b, &spec);
        if !ok {
            b.reset();
            spec.clear();
            b.spec = Some(spec);
            return false;
        }
        // `removed` of ids new to b's part: first, as they came before
        // anything else b held back about those ids.
        for q in &spec.removes {
            if self.queue.remove(q).is_some_and(|e| e.origin == SPILLED) {
                self.origins.spill.remove(q);
            }
        }
        let first_day = spec.first_day;
        let report = std::mem::take(&mut b.report);
        let emptied = self.add_report(report, first_day);
        for (kind, staged) in std::mem::take(&mut b.problems).into_iter().enumerate() {
            self.problems[kind].add(staged);
        }
        for item in &spec.replay {
            match *item {
                Replay::Line { start, end } => {
                    let raw = &spec.arena[start as usize..end as usize];
                    self.replay_line(raw, reference);
                }
                Replay::Delay { domain, delay } => {
                    let name = &*spec.domain_names[domain as usize];
                    if let Some(d) = self.report.recipient_domains.get_mut(name) {
                        d.delay_sum += delay;
                    }
                }
            }
        }
        // Drained, not taken: b keeps the table's capacity for its next
        // part instead of growing it again from empty.
        for (q, e) in b.queue.drain() {
            if e.seam != LIVE {
                continue;
            }
            let origin = match e.origin {
                0 => 0,
                id => {
                    let name = b.origins.take(q, id).into_owned();
                    self.origins.id(q, &name)
                }
            };
            self.queue.insert(q, InFlight { origin, ..e });
        }
        for (pid, start) in b.connections.drain() {
            match start {
                CONN_PENDING => {}
                CONN_GONE => {
                    self.connections.remove(&pid);
                }
                start => {
                    self.connections.insert(pid, start);
                }
            }
        }
        if first_day != 0 {
            self.last_day = b.last_day;
        }
        b.reset();
        // The address tables back, emptied with their capacity: grown
        // again from nothing each part, their rehashes and fresh pages
        // were most of the second thread's page faults.
        let r = &mut b.report;
        (
            r.recipient_domains,
            r.sending_domains,
            r.senders,
            r.recipients,
        ) = emptied;
        spec.clear();
        b.spec = Some(spec);
        true
    }

    /// Empties a speculative collector for the next part.
    fn reset(&mut self) {
        self.report = Report::default();
        self.queue.clear();
        // Cleared, not replaced: the tables keep their capacity.
        self.origins.ids.clear();
        self.origins.names.clear();
        self.origins.spill.clear();
        self.problems = Default::default();
        self.connections.clear();
        self.last_day = 0;
    }

    /// An id that began in b's part and that this collector left in
    /// flight (a queue id reused without `removed`): b assumed it new.
    fn conflicts(&self, b: &Collector, spec: &Spec) -> bool {
        let mut clash: Vec<Qid> = b
            .queue
            .iter()
            .filter(|(q, e)| e.seam != PENDING && self.queue.contains_key(q))
            .map(|(q, _)| *q)
            .collect();
        if clash.is_empty() {
            return false;
        }
        // Fine when b's part removed it first (before it began there).
        let removed: crate::hash::Set<Qid> = spec.removes.iter().copied().collect();
        clash.retain(|q| !removed.contains(q));
        !clash.is_empty()
    }

    /// Whether both parts' tables together, with every pending line
    /// adding a key, stay below every bound: then no table filled in
    /// either order and the merged tables are the single pass's.
    fn fits(&self, b: &Collector, pending: usize) -> bool {
        let (x, y) = (&self.report, &b.report);
        let under = |a: usize, b: usize, bound: usize| a + b + pending < bound;
        let t1 = |a: &Tally, b: &Tally| under(a.len(), b.len(), MAX_KEYS);
        let inner = |t: &Tally2| t.values().map(|v| v.len()).max().unwrap_or(0);
        let t2 = |a: &Tally2, b: &Tally2| {
            under(a.len(), b.len(), MAX_KEYS) && under(inner(a), inner(b), MAX_KEYS)
        };
        under(
            x.recipient_domains.len(),
            y.recipient_domains.len(),
            MAX_ADDRESSES,
        ) && under(
            x.sending_domains.len(),
            y.sending_domains.len(),
            MAX_ADDRESSES,
        ) && under(x.senders.len(), y.senders.len(), MAX_ADDRESSES)
            && under(x.recipients.len(), y.recipients.len(), MAX_ADDRESSES)
            && under(x.no_size.len(), y.no_size.len(), MAX_KEYS)
            && under(x.smtpd.per_domain.len(), y.smtpd.per_domain.len(), MAX_KEYS)
            && t2(&x.deferrals, &y.deferrals)
            && t2(&x.bounces, &y.bounces)
            && t2(&x.smtp_failures, &y.smtp_failures)
            && t2(&x.warnings, &y.warnings)
            && t2(&x.fatals, &y.fatals)
            && t2(&x.panics, &y.panics)
            && t1(&x.master, &y.master)
            && t1(&x.postscreen, &y.postscreen)
            && t1(&x.mxguard.actions, &y.mxguard.actions)
            && t1(&x.mxguard.symbols, &y.mxguard.symbols)
            && t1(&x.mxguard.bans, &y.mxguard.bans)
            && self
                .problems
                .iter()
                .zip(&b.problems)
                .all(|(a, b)| a.fits_with(b, pending))
    }

    /// Adds b's counts (its part came after this collector's). Returns
    /// b's four address tables, drained.
    fn add_report(&mut self, mut y: Report, first_day: u32) -> AddressTables {
        let x = &mut self.report;
        let (t, u) = (&mut x.totals, y.totals);
        t.received += u.received;
        t.delivered += u.delivered;
        t.forwarded += u.forwarded;
        t.deferred += u.deferred;
        t.deferrals += u.deferrals;
        t.bounced += u.bounced;
        t.rejected += u.rejected;
        t.reject_warnings += u.reject_warnings;
        t.held += u.held;
        t.discarded += u.discarded;
        t.bytes_received += u.bytes_received;
        t.bytes_delivered += u.bytes_delivered;
        // The distinct counts follow from the tables, below.
        for (day, v) in y.per_day {
            let w = x.per_day.entry(day).or_default();
            for (a, b) in w.iter_mut().zip(v) {
                *a += b;
            }
        }
        for (w, v) in x.per_hour.iter_mut().zip(y.per_hour) {
            for (a, b) in w.iter_mut().zip(v) {
                *a += b;
            }
        }
        // b counted its first day as a change from "no day yet".
        x.day_changes += y.day_changes;
        if first_day != 0 && first_day == self.last_day {
            x.day_changes -= 1;
        }
        for (k, v) in y.recipient_domains.drain() {
            match x.recipient_domains.get_mut(&k) {
                Some(d) => {
                    if d.count == 0 && v.count > 0 {
                        t.recipient_hosts_domains += 1;
                    }
                    d.count += v.count;
                    d.size += v.size;
                    d.defers += v.defers;
                    if v.delay_max > d.delay_max {
                        d.delay_max = v.delay_max;
                    }
                }
                None => {
                    if v.count > 0 {
                        t.recipient_hosts_domains += 1;
                    }
                    // The delays come back in order with the replay.
                    let v = DomainDelivery {
                        delay_sum: 0.0,
                        ..v
                    };
                    x.recipient_domains.insert(k, v);
                }
            }
        }
        t.sending_hosts_domains += add_traffic(&mut x.sending_domains, &mut y.sending_domains);
        t.senders += add_traffic(&mut x.senders, &mut y.senders);
        t.recipients += add_traffic(&mut x.recipients, &mut y.recipients);
        x.no_size.extend(y.no_size);
        add2(&mut x.deferrals, y.deferrals);
        add2(&mut x.bounces, y.bounces);
        add2(&mut x.smtp_failures, y.smtp_failures);
        add2(&mut x.warnings, y.warnings);
        add2(&mut x.fatals, y.fatals);
        add2(&mut x.panics, y.panics);
        add1(&mut x.master, y.master);
        add1(&mut x.postscreen, y.postscreen);
        let (s, v) = (&mut x.smtpd, y.smtpd);
        s.connections += v.connections;
        s.total_secs += v.total_secs;
        for (a, b) in s.per_hour.iter_mut().zip(v.per_hour) {
            add_conn(a, b);
        }
        for (k, b) in v.per_day {
            add_conn(s.per_day.entry(k).or_default(), b);
        }
        for (k, b) in v.per_domain {
            add_conn(s.per_domain.entry(k).or_default(), b);
        }
        let (m, n) = (&mut x.mxguard, y.mxguard);
        m.scanned += n.scanned;
        m.before_data += n.before_data;
        m.score_greylist_deferred += n.score_greylist_deferred;
        m.score_greylist_passed += n.score_greylist_passed;
        m.policy_greylist_deferred += n.policy_greylist_deferred;
        m.policy_greylist_passed += n.policy_greylist_passed;
        m.dkim_signed += n.dkim_signed;
        add1(&mut m.actions, n.actions);
        add1(&mut m.symbols, n.symbols);
        add1(&mut m.bans, n.bans);
        x.first = match (x.first, y.first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        x.last = match (x.last, y.last) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        x.lines += y.lines;
        x.malformed += y.malformed;
        x.other_programs += y.other_programs;
        x.out_of_period += y.out_of_period;
        x.postfix_lines += y.postfix_lines;
        x.too_long += y.too_long;
        x.mxguard_lines += y.mxguard_lines;
        (
            y.recipient_domains,
            y.sending_domains,
            y.senders,
            y.recipients,
        )
    }
}

/// A report's recipient domains, sending domains, senders and recipients.
type AddressTables = (
    HashMap<Box<str>, DomainDelivery>,
    HashMap<Box<str>, Traffic>,
    HashMap<Box<str>, Traffic>,
    HashMap<Box<str>, Traffic>,
);

/// Adds traffic per key; returns how many keys were new.
fn add_traffic(x: &mut HashMap<Box<str>, Traffic>, y: &mut HashMap<Box<str>, Traffic>) -> u64 {
    let mut new = 0;
    for (k, v) in y.drain() {
        match x.get_mut(&k) {
            Some(t) => {
                t.count += v.count;
                t.size += v.size;
            }
            None => {
                x.insert(k, v);
                new += 1;
            }
        }
    }
    new
}

fn add1(x: &mut Tally, y: Tally) {
    for (k, n) in y {
        *x.entry(k).or_default() += n;
    }
}

fn add2(x: &mut Tally2, y: Tally2) {
    for (g, t) in y {
        add1(x.entry(g).or_default(), t);
    }
}

fn add_conn(a: &mut Conn, b: Conn) {
    a.count += b.count;
    a.secs += b.secs;
    a.max = a.max.max(b.max);
}

impl Staged {
    fn add(&mut self, other: Staged) {
        for (g, reasons) in other.0 {
            let mine = self.0.entry(g).or_default();
            for (r, labels) in reasons {
                let mine = mine.entry(r).or_default();
                for (l, n) in labels {
                    *mine.entry(l).or_default() += n;
                }
            }
        }
    }

    /// [`Collector::fits`] for one problem table, level by level.
    fn fits_with(&self, b: &Staged, pending: usize) -> bool {
        let under = |a: usize, b: usize| a + b + pending < MAX_KEYS;
        let mid = |s: &Staged| s.0.values().map(|r| r.len()).max().unwrap_or(0);
        let low = |s: &Staged| {
            s.0.values()
                .flat_map(|r| r.values().map(|l| l.len()))
                .max()
                .unwrap_or(0)
        };
        under(self.0.len(), b.0.len()) && under(mid(self), mid(b)) && under(low(self), low(b))
    }
}
