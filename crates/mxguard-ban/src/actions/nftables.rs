//! The nftables action. Layout, in mxguard's own table (`inet mxguard`,
//! nothing else in the ruleset is read or changed):
//!
//! ```text
//! table inet mxguard {
//!     set sshd_v4      { type ipv4_addr; flags timeout; }            # addresses
//!     set sshd_v4_nets { type ipv4_addr; flags interval,timeout; }   # ranges
//!     set sshd_v6 …  set sshd_v6_nets …
//!     chain sshd { type filter hook input priority -1; policy accept;
//!         ip saddr @sshd_v4 tcp dport { 22 } drop
//!         ip saddr @sshd_v4_nets tcp dport { 22 } drop
//!         ip6 saddr @sshd_v6 tcp dport { 22 } drop
//!         ip6 saddr @sshd_v6_nets tcp dport { 22 } drop }
//! }
//! ```
//!
//! Sets are per jail, not shared: jails differ in ports, and a jail's
//! stop (or restart) must not lift another jail's bans. Elements carry
//! their own timeout, so the kernel lifts a ban on time even if mxguard is
//! down. Every change is one `nft -f -` batch (atomic, no shell), and
//! `start` rebuilds the jail's sets and chain in one batch — 10,000 active
//! bans are one program run.
//!
//! Addresses and ranges live in separate sets because nft (1.0.6, Debian
//! 12) reads every element of a table's interval sets before each change
//! to check for overlaps: with 10,000 addresses in an interval set each
//! ban cost ~45 ms of CPU, in a plain timeout set ~5 ms (docs/BENCHMARKS.md).
//! Ranges are few, so their interval sets stay small. An address inside a
//! banned range keeps its own element (and time); a range replaces the
//! ranges it covers, and one inside a banned range adds nothing.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use mxguard_core::iptable::IpTable;

use super::exec::Tool;
use super::options::{self, Block, Common, Port, Protocol};
use super::{Action, ActionCounters, ActionError, Ban, show_network};

const KEYS: &[&str] = &["table", "priority", "nft"];
/// Elements per `add element` statement in a start batch.
const CHUNK: usize = 1000;

/// Serialises table creation and the emptiness check at stop between the
/// jails of this process, so one jail's stop never deletes the table under
/// another jail's start.
static TABLE_LOCK: Mutex<()> = Mutex::new(());

pub struct Nftables {
    jail: String,
    table: String,
    priority: i64,
    common: Common,
    nft: Tool,
    counters: ActionCounters,
}

impl Nftables {
    /// Keys: `table` (default "mxguard"), `priority` (default -1, before
    /// the usual filter chains at 0), `nft` (the program), and the common
    /// ones (`port`, `protocol`, `blocktype`, `persist`, `netns`, `timeout`).
    pub fn from_options(t: &toml::Table, jail: &str) -> Result<Nftables, String> {
        options::check_keys(t, &[options::COMMON_KEYS, KEYS].concat())?;
        let common = Common::from_options(t)?;
        let table = options::string(t, "table")?.unwrap_or_else(|| "mxguard".into());
        let table_ok = table.len() <= 32
            && table.starts_with(|c: char| c.is_ascii_alphabetic())
            && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !table_ok {
            return Err(format!(
                "`table = \"{table}\"`: use up to 32 letters, digits or `_`, starting with a letter"
            ));
        }
        let priority = options::integer(t, "priority", -1)?;
        if !(-1000..=1000).contains(&priority) {
            return Err(format!(
                "`priority = {priority}`: write a number from -1000 to 1000 (filter chains are at 0)"
            ));
        }
        let program = options::string(t, "nft")?.unwrap_or_else(|| "nft".into());
        let nft = Tool::new(
            &program,
            "nftables",
            common.netns.as_deref(),
            common.timeout,
        )?;
        Ok(Nftables {
            jail: jail.to_string(),
            table,
            priority,
            common,
            nft,
            counters: ActionCounters::default(),
        })
    }

    /// `sshd_v4`, `sshd_v4_nets`, `sshd_v6`, `sshd_v6_nets`.
    fn set_name(&self, v4: bool, ranges: bool) -> String {
        let family = if v4 { "v4" } else { "v6" };
        let kind = if ranges { "_nets" } else { "" };
        format!("{}_{family}{kind}", self.jail)
    }

    /// The four sets: (IPv4?, ranges?, name, definition).
    fn sets(&self) -> Vec<(bool, bool, String, String)> {
        [(true, false), (true, true), (false, false), (false, true)]
            .into_iter()
            .map(|(v4, ranges)| {
                let ty = if v4 { "ipv4_addr" } else { "ipv6_addr" };
                let flags = if ranges {
                    "interval,timeout"
                } else {
                    "timeout"
                };
                let def = format!("{{ type {ty}; flags {flags}; }}");
                (v4, ranges, self.set_name(v4, ranges), def)
            })
            .collect()
    }

    /// `inet mxguard sshd_v4` for an address, `… sshd_v4_nets` for a range.
    fn set_ref(&self, (addr, prefix): (IpAddr, u8)) -> String {
        format!(
            "inet {} {}",
            self.table,
            self.set_name(addr.is_ipv4(), !is_host((addr, prefix)))
        )
    }

    /// The sets and chains now in the table (`nft -t list table`: terse,
    /// without elements); none when there is no table.
    fn objects(&self) -> Result<Objects, ActionError> {
        let args: Vec<String> = ["-t", "list", "table", "inet", self.table.as_str()]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let out = self.nft.run(&args, None, &self.counters)?;
        if out.status.success() {
            Ok(parse_objects(&out.stdout))
        } else if out.stderr.contains("No such file or directory") {
            Ok(Objects::default())
        } else {
            Err(self.failed("listing the table", &out))
        }
    }

    /// Deletes of this jail's chain and sets among `present`, chain first
    /// (its rules refer to the sets). By name, so a set made with another
    /// definition (an older layout, a hand edit) goes too.
    fn removal(&self, present: &Objects) -> String {
        let (t, j) = (&self.table, &self.jail);
        let mut b = String::new();
        if present.chains.contains(j) {
            b += &format!("delete chain inet {t} {j}\n");
        }
        for (_, _, s, _) in self.sets() {
            if present.sets.contains(&s) {
                b += &format!("delete set inet {t} {s}\n");
            }
        }
        b
    }

    /// The batch that replaces what the jail had in the table with its
    /// sets and chain, empty.
    fn skeleton(&self, present: &Objects) -> String {
        let (t, j) = (&self.table, &self.jail);
        let mut b = format!("add table inet {t}\n");
        b += &self.removal(present);
        for (_, _, s, def) in self.sets() {
            b += &format!("add set inet {t} {s} {def}\n");
        }
        b += &format!(
            "add chain inet {t} {j} {{ type filter hook input priority {}; policy accept; }}\n",
            self.priority
        );
        let (m, verdict) = (self.l4_match(), self.verdict());
        for (v4, _, set, _) in self.sets() {
            let family = if v4 { "ip" } else { "ip6" };
            b += &format!("add rule inet {t} {j} {family} saddr @{set} {m}{verdict}\n");
        }
        b
    }

    /// `tcp dport { 25, 587 } ` (with its trailing space), or a protocol
    /// match alone, or nothing for every protocol.
    fn l4_match(&self) -> String {
        let p = self.common.protocol.as_str();
        match (self.common.protocol, self.common.ports.as_slice()) {
            (Protocol::All, _) => String::new(),
            (_, []) => format!("meta l4proto {p} "),
            (_, ports) => {
                let list: Vec<String> = ports
                    .iter()
                    .map(|port| match port {
                        Port::One(n) => n.to_string(),
                        Port::Range(a, b) => format!("{a}-{b}"),
                    })
                    .collect();
                format!("{p} dport {{ {} }} ", list.join(", "))
            }
        }
    }

    fn verdict(&self) -> &'static str {
        match (self.common.block, self.common.protocol) {
            (Block::Drop, _) => "drop",
            (Block::Reject, Protocol::Tcp) => "reject with tcp reset",
            (Block::Reject, _) => "reject",
        }
    }

    fn apply(&self, batch: String) -> Result<super::exec::Output, ActionError> {
        self.nft.run(
            &["-f".into(), "-".into()],
            Some(batch.into_bytes()),
            &self.counters,
        )
    }

    fn failed(&self, what: &str, out: &super::exec::Output) -> ActionError {
        ActionError(format!(
            "nftables, jail {}: {what} failed ({}): {}; check that nftables works here (`nft list ruleset` as root){}",
            self.jail,
            out.status,
            out.excerpt(),
            self.common
                .netns
                .as_deref()
                .map(|ns| format!(" inside network namespace {ns}"))
                .unwrap_or_default()
        ))
    }

    /// Elements of the jail's range set for `addr`'s family.
    fn ranges(&self, addr: IpAddr) -> Result<Vec<(IpAddr, u8)>, ActionError> {
        let (t, s) = (&self.table, self.set_name(addr.is_ipv4(), true));
        let args: Vec<String> = ["-j", "list", "set", "inet", t.as_str(), s.as_str()]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let out = self.nft.run(&args, None, &self.counters)?;
        if !out.status.success() {
            return Err(self.failed("listing the set", &out));
        }
        parse_elements(&out.stdout).ok_or_else(|| {
            ActionError(format!(
                "nftables, jail {}: `nft -j list set inet {t} {s}` printed JSON this version does not understand",
                self.jail
            ))
        })
    }

    /// A range that overlaps banned ranges: nothing to do when one covers
    /// it; otherwise it replaces the ranges it covers.
    fn ban_overlapping(&self, net: (IpAddr, u8), timeout: &str) -> Result<(), ActionError> {
        let existing = self.ranges(net.0)?;
        if let Some(cover) = existing.iter().find(|e| covers(**e, net)) {
            tracing::debug!(
                jail = %self.jail,
                "nftables: {} is already banned by range {}",
                show_network(net),
                show_network(*cover)
            );
            return Ok(());
        }
        let set = self.set_ref(net);
        let mut batch = String::new();
        for inner in existing.iter().filter(|e| covers(net, **e)) {
            batch += &format!("delete element {set} {{ {} }}\n", show_network(*inner));
        }
        batch += &format!("add element {set} {{ {}{timeout} }}\n", show_network(net));
        let out = self.apply(batch)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(&format!("banning {}", show_network(net)), &out))
        }
    }

    fn start_inner(&self, active: &[Ban]) -> Result<(), ActionError> {
        let _guard = TABLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = self.skeleton(&self.objects()?);
        let elements = normalise(&self.jail, active);
        for (v4, ranges, name, _) in self.sets() {
            let of_set: Vec<&(IpAddr, u8, String)> = elements
                .iter()
                .filter(|e| e.0.is_ipv4() == v4 && is_host((e.0, e.1)) != ranges)
                .collect();
            let set = format!("inet {} {name}", self.table);
            for chunk in of_set.chunks(CHUNK) {
                let list: Vec<String> = chunk
                    .iter()
                    .map(|(a, p, timeout)| format!("{}{timeout}", show_network((*a, *p))))
                    .collect();
                batch += &format!("add element {set} {{ {} }}\n", list.join(", "));
            }
        }
        let out = self.apply(batch)?;
        if !out.status.success() {
            return Err(self.failed(
                &format!(
                    "creating table inet {} and {} active bans",
                    self.table,
                    elements.len()
                ),
                &out,
            ));
        }
        tracing::info!(
            jail = %self.jail,
            bans = elements.len(),
            "nftables: table inet {} ready",
            self.table
        );
        Ok(())
    }

    fn stop_inner(&self) -> Result<(), ActionError> {
        if self.common.persist {
            return Ok(());
        }
        let _guard = TABLE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let present = self.objects()?;
        let removal = self.removal(&present);
        if !removal.is_empty() {
            let out = self.apply(removal)?;
            if !out.status.success() {
                return Err(self.failed("removing the jail's chain and sets", &out));
            }
        }
        // The table goes with its last jail; `delete table` would take the
        // other jails' chains with it, so only an empty one is deleted.
        let ours: Vec<String> = self.sets().into_iter().map(|(_, _, s, _)| s).collect();
        let others = present.chains.iter().any(|c| *c != self.jail)
            || present.sets.iter().any(|s| !ours.contains(s));
        if present.exists && !others {
            let out = self.apply(format!("delete table inet {}\n", self.table))?;
            if !out.status.success() {
                return Err(self.failed("removing the empty table", &out));
            }
        }
        Ok(())
    }
}

/// What a table holds, by name.
#[derive(Debug, Default, PartialEq)]
struct Objects {
    exists: bool,
    sets: Vec<String>,
    chains: Vec<String>,
}

/// Set and chain names from `nft -t list table` output.
fn parse_objects(text: &str) -> Objects {
    let mut o = Objects {
        exists: true,
        ..Objects::default()
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("set"), Some(name), Some("{")) => o.sets.push(name.to_string()),
            (Some("chain"), Some(name), Some("{")) => o.chains.push(name.to_string()),
            _ => {}
        }
    }
    o
}

/// ` timeout 3600s`, or nothing for a permanent ban.
fn timeout_clause(secs: Option<u64>) -> String {
    secs.map(|s| format!(" timeout {s}s")).unwrap_or_default()
}

/// A single address (a full-length prefix)?
fn is_host((addr, prefix): (IpAddr, u8)) -> bool {
    prefix == if addr.is_ipv4() { 32 } else { 128 }
}

/// Does network `a` hold all of network `b`?
fn covers(a: (IpAddr, u8), b: (IpAddr, u8)) -> bool {
    a.0.is_ipv4() == b.0.is_ipv4() && a.1 <= b.1 && mxguard_core::iptable::mask(b.0, a.1) == a.0
}

/// The active bans as set elements: expired and invalid ones left out
/// (with a warning), duplicates dropped (the longest-lasting kept), and
/// ranges inside another banned range dropped (nftables refuses
/// overlapping intervals, and one refusal would fail the whole batch).
/// Addresses inside a banned range stay: they are in the other set. Each
/// keeps its timeout clause.
fn normalise(jail: &str, active: &[Ban]) -> Vec<(IpAddr, u8, String)> {
    let mut nets: Vec<((IpAddr, u8), Option<u64>)> = Vec::with_capacity(active.len());
    for ban in active {
        match ban.network() {
            Ok(net) => match ban.remaining_secs() {
                Some(0) => {}
                secs => nets.push((net, secs)),
            },
            Err(e) => tracing::warn!(jail, "nftables: active ban skipped: {e}"),
        }
    }
    // Widest first, and of equal networks the longest-lasting first
    // (permanent before any timeout), so the first kept wins.
    nets.sort_by_key(|(net, secs)| (net.1, std::cmp::Reverse(secs.unwrap_or(u64::MAX))));
    let mut ranges = IpTable::default();
    let mut hosts = HashSet::new();
    let mut out = Vec::with_capacity(nets.len());
    for (net, secs) in nets {
        let fresh = if is_host(net) {
            hosts.insert(net.0)
        } else if ranges.lookup(net.0).is_some() {
            false
        } else {
            ranges.insert(net, ());
            true
        };
        if fresh {
            out.push((net.0, net.1, timeout_clause(secs)));
        }
    }
    out
}

/// Networks of `nft -j list set` output; `None` when it is not that shape.
fn parse_elements(json: &str) -> Option<Vec<(IpAddr, u8)>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let set = v
        .get("nftables")?
        .as_array()?
        .iter()
        .find_map(|o| o.get("set"))?;
    let Some(elems) = set.get("elem") else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for e in elems.as_array()? {
        let val = e.get("elem").and_then(|x| x.get("val")).unwrap_or(e);
        if let Some(s) = val.as_str() {
            let a: IpAddr = s.parse().ok()?;
            out.push((a, if a.is_ipv4() { 32 } else { 128 }));
        } else if let Some(p) = val.get("prefix") {
            let a: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
            out.push((a, len));
        }
        // `range` elements (a-b) are never written by mxguard; skipped.
    }
    Some(out)
}

impl Action for Nftables {
    fn name(&self) -> &str {
        "nftables"
    }

    fn start(&self, active: &[Ban]) -> Result<(), ActionError> {
        self.counters.count(self.start_inner(active))
    }

    fn ban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = ban.network()?;
            let secs = ban.remaining_secs();
            if secs == Some(0) {
                return Ok(());
            }
            let (set, n, timeout) = (self.set_ref(net), show_network(net), timeout_clause(secs));
            // Add, delete, add: a ban already there gets the new timeout,
            // and a missing one does not fail the delete.
            let batch = format!(
                "add element {set} {{ {n} }}\ndelete element {set} {{ {n} }}\nadd element {set} {{ {n}{timeout} }}\n"
            );
            let out = self.apply(batch)?;
            if out.status.success() {
                Ok(())
            } else if !is_host(net) && out.stderr.contains("interval overlaps") {
                self.ban_overlapping(net, &timeout)
            } else {
                Err(self.failed(&format!("banning {n}"), &out))
            }
        })();
        self.counters.count(result)
    }

    fn unban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = ban.network()?;
            let n = show_network(net);
            let out = self.apply(format!("delete element {} {{ {n} }}\n", self.set_ref(net)))?;
            // Absent: it expired in the kernel already, or a banned range
            // covered it when it came.
            // nft says so itself for interval sets; for the others the
            // kernel's ENOENT (which a missing set also gives: nothing to
            // unban there either).
            let absent = out.stderr.contains("element does not exist")
                || out.stderr.contains("No such file or directory");
            if out.status.success() || absent {
                Ok(())
            } else {
                Err(self.failed(&format!("unbanning {n}"), &out))
            }
        })();
        self.counters.count(result)
    }

    fn stop(&self) -> Result<(), ActionError> {
        self.counters.count(self.stop_inner())
    }

    fn counters(&self) -> Option<&ActionCounters> {
        Some(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn action(opts: &str) -> Nftables {
        // `true` stands in for nft: these tests read the batches, not run them.
        let mut t: toml::Table = opts.parse().unwrap();
        t.insert("nft".into(), "true".into());
        Nftables::from_options(&t, "postfix").unwrap()
    }

    fn ban(net: &str, secs: Option<u64>) -> Ban {
        let (addr, prefix) = mxguard_core::iptable::parse_network(net).unwrap();
        Ban {
            addr,
            prefix,
            jail: "postfix".into(),
            remaining: secs.map(Duration::from_secs),
            ports: vec![],
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn the_chain_matches_the_jails_ports_and_block_type() {
        let a = action("port = \"smtp,submission,1000:1010\"\npriority = 5");
        let s = a.skeleton(&Objects::default());
        assert!(s.contains("hook input priority 5;"), "{s}");
        assert!(
            s.contains("add rule inet mxguard postfix ip saddr @postfix_v4 tcp dport { 25, 587, 1000-1010 } drop"),
            "{s}"
        );
        assert!(s.contains("ip6 saddr @postfix_v6 tcp dport"), "{s}");
        assert!(
            s.contains("ip saddr @postfix_v4_nets tcp dport { 25, 587, 1000-1010 } drop"),
            "{s}"
        );
        assert!(
            s.contains(
                "add set inet mxguard postfix_v6_nets { type ipv6_addr; flags interval,timeout; }"
            ),
            "{s}"
        );
        assert!(
            s.contains("add set inet mxguard postfix_v4 { type ipv4_addr; flags timeout; }"),
            "{s}"
        );
        let s = action("blocktype = \"reject\"").skeleton(&Objects::default());
        assert!(
            s.contains("@postfix_v4 meta l4proto tcp reject with tcp reset"),
            "{s}"
        );
        let s = action("protocol = \"all\"\ntable = \"other\"").skeleton(&Objects::default());
        assert!(
            s.contains("add rule inet other postfix ip saddr @postfix_v4 drop"),
            "{s}"
        );
    }

    #[test]
    fn start_bans_are_deduplicated_and_ranges_absorb_narrower_ranges() {
        let active = [
            ban("192.0.2.7", Some(100)),
            ban("192.0.2.7", Some(900)),
            ban("10.1.2.3", None),
            ban("10.1.0.0/16", None),
            ban("10.0.0.0/8", Some(60)),
            ban("2001:db8::1", Some(5)),
            ban("198.51.100.1", Some(0)),
            ban("::ffff:203.0.113.9", None),
        ];
        let got: Vec<String> = normalise("postfix", &active)
            .into_iter()
            .map(|(a, p, t)| format!("{}{t}", show_network((a, p))))
            .collect();
        assert_eq!(
            got,
            [
                "10.0.0.0/8 timeout 60s",
                "10.1.2.3",
                "203.0.113.9",
                "192.0.2.7 timeout 900s",
                "2001:db8::1 timeout 5s"
            ]
        );
    }

    #[test]
    fn a_start_deletes_only_this_jails_objects_by_name() {
        let text = "table inet mxguard {\n\tset postfix_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n\t}\n\tset sshd_v4 {\n\t}\n\tchain postfix {\n\t\ttype filter hook input priority filter - 1; policy accept;\n\t}\n\tchain sshd {\n\t}\n}\n";
        let o = parse_objects(text);
        assert_eq!(o.sets, ["postfix_v4", "sshd_v4"]);
        assert_eq!(o.chains, ["postfix", "sshd"]);
        let s = action("").skeleton(&o);
        assert!(
            s.starts_with("add table inet mxguard\ndelete chain inet mxguard postfix\ndelete set inet mxguard postfix_v4\nadd set"),
            "{s}"
        );
        assert!(!s.contains("sshd"), "{s}");
        assert!(!action("").skeleton(&Objects::default()).contains("delete"));
    }

    #[test]
    fn set_listings_parse_in_every_element_shape() {
        let json = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", "name": "s", "table": "t", "type": "ipv4_addr", "elem": [{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 8}}, "timeout": 60, "expires": 59}}, "192.0.2.1", {"elem": {"val": "192.0.2.5", "timeout": 100}}]}}]}"#;
        let got = parse_elements(json).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(show_network(got[0]), "10.0.0.0/8");
        assert_eq!(show_network(got[2]), "192.0.2.5");
        assert_eq!(
            parse_elements(r#"{"nftables": [{"set": {"name": "s"}}]}"#),
            Some(vec![])
        );
        assert_eq!(parse_elements("not json"), None);
        assert!(covers(got[0], ("10.9.0.0".parse().unwrap(), 16)));
        assert!(!covers(got[1], got[0]));
    }

    #[test]
    fn bad_options_name_their_key() {
        let mut t: toml::Table = "priority = 5000".parse().unwrap();
        t.insert("nft".into(), "true".into());
        let e = Nftables::from_options(&t, "x").err().unwrap();
        assert!(e.contains("priority"), "{e}");
        let t: toml::Table = "table = \"bad name\"".parse().unwrap();
        assert!(
            Nftables::from_options(&t, "x")
                .err()
                .unwrap()
                .contains("table")
        );
    }
}
