//! The report's numbers, as the collector leaves them for the renderers.

use crate::date::Stamp;
use crate::hash::Map as HashMap;
use std::collections::BTreeMap;

/// Most distinct labels kept in one problem table (reasons, hosts under a
/// reason); past it, counts go to [`OVERFLOW`]. Hostile logs cannot grow
/// memory without bound through reasons.
pub const MAX_KEYS: usize = 50_000;
/// Most distinct senders, recipients or domains listed per table.
pub const MAX_ADDRESSES: usize = 1_000_000;
/// The label counts go to once a table is full.
pub const OVERFLOW: &str = "(more, not listed: table full)";

/// label → count
pub type Tally = BTreeMap<String, u64>;
/// group → label → count
pub type Tally2 = BTreeMap<String, Tally>;
/// group → reason → label → count
pub type Tally3 = BTreeMap<String, Tally2>;

/// pflogsumm's Grand Totals; field names are the JSON keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrandTotals {
    pub received: u64,
    pub delivered: u64,
    pub forwarded: u64,
    pub deferred: u64,
    pub deferrals: u64,
    pub bounced: u64,
    pub rejected: u64,
    pub rejected_percent: u64,
    pub reject_warnings: u64,
    pub held: u64,
    pub discarded: u64,
    pub discarded_percent: u64,
    pub bytes_received: u64,
    pub bytes_delivered: u64,
    pub senders: u64,
    pub sending_hosts_domains: u64,
    pub recipients: u64,
    pub recipient_hosts_domains: u64,
}

impl GrandTotals {
    /// The percentages, of delivered + rejected + discarded, as pflogsumm.
    pub fn finish(&mut self) {
        let all = self.delivered + self.rejected + self.discarded;
        self.rejected_percent = (self.rejected * 100).checked_div(all).unwrap_or(0);
        self.discarded_percent = (self.discarded * 100).checked_div(all).unwrap_or(0);
    }

    /// (key, value) in pflogsumm's order.
    pub fn fields(&self) -> [(&'static str, u64); 18] {
        [
            ("received", self.received),
            ("delivered", self.delivered),
            ("forwarded", self.forwarded),
            ("deferred", self.deferred),
            ("deferrals", self.deferrals),
            ("bounced", self.bounced),
            ("rejected", self.rejected),
            ("rejected_percent", self.rejected_percent),
            ("reject_warnings", self.reject_warnings),
            ("held", self.held),
            ("discarded", self.discarded),
            ("discarded_percent", self.discarded_percent),
            ("bytes_received", self.bytes_received),
            ("bytes_delivered", self.bytes_delivered),
            ("senders", self.senders),
            ("sending_hosts_domains", self.sending_hosts_domains),
            ("recipients", self.recipients),
            ("recipient_hosts_domains", self.recipient_hosts_domains),
        ]
    }
}

/// Messages and bytes of a sender, recipient or sending domain.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Traffic {
    pub count: u64,
    pub size: u64,
}

/// A recipient domain: deliveries, bytes, deferrals and delays.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DomainDelivery {
    pub count: u64,
    pub size: u64,
    pub defers: u64,
    pub delay_sum: f64,
    pub delay_max: f64,
}

/// smtpd connections: how many, total and longest time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conn {
    pub count: u64,
    pub secs: u64,
    pub max: u64,
}

impl Conn {
    pub fn add(&mut self, secs: u64) {
        self.count += 1;
        self.secs += secs;
        self.max = self.max.max(secs);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Smtpd {
    pub connections: u64,
    pub total_secs: u64,
    pub per_hour: [Conn; 24],
    pub per_day: BTreeMap<u32, Conn>,
    pub per_domain: HashMap<Box<str>, Conn>,
}

/// Which problem table a line counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Reject,
    RejectWarning,
    Hold,
    Discard,
}

/// Symbols listed in the mxguard section unless `-u` says otherwise.
pub const TOP_SYMBOLS: usize = 20;

/// mxguard's own section: what `mxguard serve` logged about the mail it
/// scanned, greylisted and signed and the addresses it banned
/// ([`crate::events`] reads the lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mxguard {
    /// Messages scanned (milter or HTTP API), by verdict action.
    pub scanned: u64,
    /// Transactions the milter ended before DATA (a reject or tempfail at
    /// connect, HELO, MAIL FROM or RCPT TO: nothing was scanned); their
    /// actions are counted in `actions` too.
    pub before_data: u64,
    pub actions: Tally,
    /// Symbol → messages it was found on.
    pub symbols: Tally,
    /// Score greylisting (the milter): first attempts deferred, retries
    /// passed after the delay.
    pub score_greylist_deferred: u64,
    pub score_greylist_passed: u64,
    /// The policy server's triplet greylisting.
    pub policy_greylist_deferred: u64,
    pub policy_greylist_passed: u64,
    /// Jail → bans.
    pub bans: Tally,
    /// Messages that left with mxguard's DKIM signature.
    pub dkim_signed: u64,
}

impl Mxguard {
    /// No mxguard event was read: the section is left out.
    pub fn is_empty(&self) -> bool {
        *self == Mxguard::default()
    }
}

/// Columns of the per-day and per-hour traffic tables.
pub const TRAFFIC_COLUMNS: [&str; 5] = ["received", "delivered", "deferred", "bounced", "rejected"];

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub totals: GrandTotals,
    /// YYYYMMDD → [received, delivered, deferred, bounced, rejected]
    pub per_day: BTreeMap<u32, [u64; 5]>,
    pub per_hour: [[u64; 5]; 24],
    /// How often the day changed from one line to the next (pflogsumm's
    /// divisor for the per-hour daily average).
    pub day_changes: u64,
    pub recipient_domains: HashMap<Box<str>, DomainDelivery>,
    pub sending_domains: HashMap<Box<str>, Traffic>,
    pub senders: HashMap<Box<str>, Traffic>,
    pub recipients: HashMap<Box<str>, Traffic>,
    /// Deliveries whose size was not in the log: queue id → recipient.
    pub no_size: BTreeMap<String, String>,
    /// daemon → reason → count
    pub deferrals: Tally2,
    /// relay → reason → count
    pub bounces: Tally2,
    pub rejects: Tally3,
    pub reject_warnings: Tally3,
    pub holds: Tally3,
    pub discards: Tally3,
    /// reason → host → count
    pub smtp_failures: Tally2,
    /// daemon → text → count
    pub warnings: Tally2,
    pub fatals: Tally2,
    pub panics: Tally2,
    pub master: Tally,
    pub smtpd: Smtpd,
    /// postscreen events (CONNECT, PASS NEW, DNSBL rank, …) → count
    pub postscreen: Tally,
    pub mxguard: Mxguard,
    pub first: Option<Stamp>,
    pub last: Option<Stamp>,
    /// Lines read, lines that were not log lines (skipped and counted),
    /// lines of other programs, lines outside the period, Postfix lines.
    pub lines: u64,
    pub malformed: u64,
    pub other_programs: u64,
    pub out_of_period: u64,
    pub postfix_lines: u64,
    /// Lines longer than the reader's bound (skipped).
    pub too_long: u64,
    /// mxguard's own event lines (counted in [`Report::mxguard`]).
    pub mxguard_lines: u64,
}

/// Adds to a label's count (bounded, see [`MAX_KEYS`]).
pub fn bump(t: &mut Tally, key: &str, n: u64) {
    if let Some(v) = t.get_mut(key) {
        *v += n;
    } else if t.len() < MAX_KEYS {
        t.insert(key.to_string(), n);
    } else {
        *t.entry(OVERFLOW.to_string()).or_default() += n;
    }
}

pub fn bump2(t: &mut Tally2, group: &str, key: &str, n: u64) {
    if let Some(g) = t.get_mut(group) {
        bump(g, key, n);
    } else {
        let g = if t.len() < MAX_KEYS { group } else { OVERFLOW };
        bump(t.entry(g.to_string()).or_default(), key, n);
    }
}

/// Sum of a group's counts.
pub fn total(t: &Tally) -> u64 {
    t.values().sum()
}
