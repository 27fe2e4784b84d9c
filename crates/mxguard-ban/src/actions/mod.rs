//! Ban actions: what enforces a ban. Each kind is one module; a jail has
//! several. Actions are synchronous (they run `nft`, `iptables`, `ipset`,
//! `ufw` or a command without a shell); the engine calls them off the
//! async runtime.
//!
//! [`build`] turns one `[[ban.jails.<name>.actions]]` table into an action.
//! Keys every firewall kind shares are parsed by [`options::Common`]; the
//! jail's `port` and `protocol` reach an action through its options (the
//! engine copies the jail's values in when the action's table lacks them,
//! as fail2ban's `action = nftables[port=…]` defaults do), because the
//! firewall rule that matches them is made at `start`, before any ban.

pub mod command;
mod exec;
pub mod iptables;
pub mod nftables;
pub mod options;
pub mod ufw;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One ban as the actions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The banned network: an address (prefix 32/128) or a range.
    pub addr: IpAddr,
    pub prefix: u8,
    /// The jail that banned it (`sshd`, `postfix`, …).
    pub jail: String,
    /// How long from now; `None` = permanent (`bantime = -1`).
    pub remaining: Option<Duration>,
    /// Ports and protocol from the jail (`smtp,submission`, `tcp`); empty = every port.
    /// The firewall actions use the `port`/`protocol` they were built with
    /// (their rule exists before the first ban); the command action offers
    /// these as `<port>` and `<protocol>`.
    pub ports: Vec<String>,
    pub protocol: String,
}

impl Ban {
    /// The banned network with host bits cleared and IPv4-mapped IPv6
    /// turned into IPv4; a prefix longer than the address, or `/0` (which
    /// would ban everyone), is refused.
    pub fn network(&self) -> Result<(IpAddr, u8), ActionError> {
        let (addr, prefix) = match self.addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.prefix >= 96 => (IpAddr::V4(v4), self.prefix - 96),
                _ => (self.addr, self.prefix),
            },
            v4 => (v4, self.prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix == 0 || prefix > max {
            return Err(ActionError(format!(
                "jail {}: ban of {}/{} refused: the prefix must be 1 to {max} (a /0 would ban every address)",
                self.jail, self.addr, self.prefix
            )));
        }
        Ok((mxguard_core::iptable::mask(addr, prefix), prefix))
    }

    /// Seconds left, rounded up; `None` when permanent. A ban with no time
    /// left is `Some(0)`, which callers skip.
    pub fn remaining_secs(&self) -> Option<u64> {
        self.remaining
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
    }
}

/// `addr` for an address, `addr/len` for a range.
pub(crate) fn show_network((addr, prefix): (IpAddr, u8)) -> String {
    let full = if addr.is_ipv4() { 32 } else { 128 };
    if prefix == full {
        addr.to_string()
    } else {
        format!("{addr}/{prefix}")
    }
}

/// Why an action failed: the program or peer and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError(pub String);

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ActionError {}

/// How often an action's programs ran and failed, for `ban status` and
/// metrics. Shared by every kind so the engine reads them one way.
#[derive(Debug, Default)]
pub struct ActionCounters {
    /// Operations (start, ban, unban, stop) that succeeded.
    pub ok: AtomicU64,
    /// Operations that failed, timed-out ones included.
    pub failed: AtomicU64,
    /// Operations whose program was killed at the time limit.
    pub timed_out: AtomicU64,
}

impl ActionCounters {
    /// Counts `result` and passes it on.
    pub(crate) fn count<T>(&self, result: Result<T, ActionError>) -> Result<T, ActionError> {
        match &result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// (ok, failed, timed out).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.timed_out.load(Ordering::Relaxed),
        )
    }
}

/// What enforces bans. `start` is called once with the bans active at
/// start (after a restart: the store's), `stop` at shutdown.
pub trait Action: Send + Sync {
    /// `nftables`, `iptables`, `ufw`, `command`, `smtp`, for logs and counters.
    fn name(&self) -> &str;
    /// Creates what the action needs (table, sets, chains) and applies `active`.
    fn start(&self, active: &[Ban]) -> Result<(), ActionError>;
    fn ban(&self, ban: &Ban) -> Result<(), ActionError>;
    fn unban(&self, ban: &Ban) -> Result<(), ActionError>;
    /// Removes what `start` created, unless configured to persist.
    fn stop(&self) -> Result<(), ActionError>;
    /// Success and failure counts, for actions that keep them.
    fn counters(&self) -> Option<&ActionCounters> {
        None
    }
}

/// The action kinds [`build`] knows.
pub const KINDS: &[&str] = &["nftables", "iptables", "ufw", "command"];

/// Builds the action of `kind` for `jail` from its options table. Errors
/// name the key at fault and what to write instead.
pub fn build(kind: &str, options: &toml::Table, jail: &str) -> Result<Box<dyn Action>, String> {
    options::check_jail_name(jail)?;
    let context = |e: String| format!("jail {jail}, action {kind}: {e}");
    match kind {
        "nftables" => nftables::Nftables::from_options(options, jail)
            .map(|a| Box::new(a) as Box<dyn Action>)
            .map_err(context),
        "iptables" => iptables::Iptables::from_options(options, jail)
            .map(|a| Box::new(a) as Box<dyn Action>)
            .map_err(context),
        "ufw" => ufw::Ufw::from_options(options, jail)
            .map(|a| Box::new(a) as Box<dyn Action>)
            .map_err(context),
        "command" => command::Command::from_options(options, jail)
            .map(|a| Box::new(a) as Box<dyn Action>)
            .map_err(context),
        other => Err(format!(
            "jail {jail}: unknown action kind `{other}`; write one of {} or smtp",
            KINDS.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(addr: &str, prefix: u8) -> Ban {
        Ban {
            addr: addr.parse().unwrap(),
            prefix,
            jail: "sshd".into(),
            remaining: Some(Duration::from_millis(1500)),
            ports: vec![],
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn networks_are_masked_mapped_and_never_everyone() {
        assert_eq!(
            show_network(ban("10.1.2.3", 8).network().unwrap()),
            "10.0.0.0/8"
        );
        assert_eq!(
            show_network(ban("::ffff:192.0.2.7", 128).network().unwrap()),
            "192.0.2.7"
        );
        assert_eq!(
            show_network(ban("2001:db8::1", 128).network().unwrap()),
            "2001:db8::1"
        );
        assert!(ban("10.0.0.1", 0).network().is_err());
        assert!(ban("10.0.0.1", 33).network().is_err());
        assert!(ban("2001:db8::", 129).network().is_err());
        assert_eq!(ban("10.0.0.1", 32).remaining_secs(), Some(2));
    }

    #[test]
    fn unknown_kinds_and_bad_jail_names_are_named() {
        let t = toml::Table::new();
        let e = build("pf", &t, "sshd").err().unwrap();
        assert!(e.contains("`pf`") && e.contains("nftables"), "{e}");
        let e = build("nftables", &t, "ss hd").err().unwrap();
        assert!(e.contains("ss hd"), "{e}");
    }
}
