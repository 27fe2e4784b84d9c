//! Ban actions: what enforces a ban. Each kind is one module; a jail has
//! several. Actions are synchronous (they run `nft`, `iptables`, `ipset`,
//! `ufw` or a command without a shell); the engine calls them off the
//! async runtime.

use std::fmt;
use std::net::IpAddr;
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
    pub ports: Vec<String>,
    pub protocol: String,
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
}
