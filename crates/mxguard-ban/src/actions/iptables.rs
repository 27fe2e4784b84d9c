//! The iptables + ipset action, for hosts whose firewall is iptables.
//! Each jail has two ipsets (`mxg-<jail>-4`, `mxg-<jail>-6`, `hash:net`
//! with per-entry timeouts, so ranges work) and one rule per family at
//! the top of the chain (INPUT by default):
//!
//! ```text
//! -A INPUT -p tcp -m multiport --dports 25,587 -m set --match-set mxg-postfix-4 src \
//!     -m comment --comment mxguard-postfix -j DROP
//! ```
//!
//! A ban is one `ipset add`; the rules never change after `start`. The
//! active bans at start are one `ipset restore` batch.

use std::net::IpAddr;

use super::exec::{Output, Tool};
use super::options::{self, Block, Common, Port, Protocol};
use super::{Action, ActionCounters, ActionError, Ban, show_network};

const KEYS: &[&str] = &["chain", "iptables", "ip6tables", "ipset", "maxelem"];
/// ipset's largest timeout, in seconds; longer bans get no kernel expiry
/// and are lifted by the engine's unban.
const IPSET_MAX_TIMEOUT: u64 = 2_147_483;
/// multiport's limit: 15 ports, a range counting two.
const MULTIPORT_MAX: usize = 15;

pub struct Iptables {
    jail: String,
    chain: String,
    common: Common,
    ipset: Tool,
    iptables: Tool,
    ip6tables: Tool,
    maxelem: u64,
    counters: ActionCounters,
}

impl Iptables {
    /// Keys: `chain` (default "INPUT"), `maxelem` (entries per set, default
    /// 1048576), `iptables`, `ip6tables`, `ipset` (the programs), and the
    /// common ones.
    pub fn from_options(t: &toml::Table, jail: &str) -> Result<Iptables, String> {
        options::check_keys(t, &[options::COMMON_KEYS, KEYS].concat())?;
        let common = Common::from_options(t)?;
        let weight: usize = common
            .ports
            .iter()
            .map(|p| if matches!(p, Port::Range(..)) { 2 } else { 1 })
            .sum();
        if weight > MULTIPORT_MAX {
            return Err(format!(
                "`port` lists more than iptables' multiport match takes ({MULTIPORT_MAX}, a range counting two); use a range or the nftables action"
            ));
        }
        let chain = options::string(t, "chain")?.unwrap_or_else(|| "INPUT".into());
        if chain.is_empty()
            || chain.len() > 28
            || !chain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "`chain = \"{chain}\"` is not an iptables chain name"
            ));
        }
        let maxelem = options::integer(t, "maxelem", 1 << 20)?;
        if !(1024..=1 << 26).contains(&maxelem) {
            return Err(format!("`maxelem = {maxelem}`: write 1024 to 67108864"));
        }
        let tool = |key: &str, package: &str| {
            let program = options::string(t, key)?.unwrap_or_else(|| key.into());
            Tool::new(&program, package, common.netns.as_deref(), common.timeout)
        };
        Ok(Iptables {
            jail: jail.to_string(),
            chain,
            ipset: tool("ipset", "ipset")?,
            iptables: tool("iptables", "iptables")?,
            ip6tables: tool("ip6tables", "iptables")?,
            common,
            maxelem: maxelem as u64,
            counters: ActionCounters::default(),
        })
    }

    fn set_name(&self, v4: bool) -> String {
        format!("mxg-{}-{}", self.jail, if v4 { 4 } else { 6 })
    }

    /// The rule after `-I CHAIN` / `-C CHAIN` / `-D CHAIN`.
    fn rule(&self, v4: bool) -> Vec<String> {
        let mut r: Vec<String> = Vec::new();
        if self.common.protocol != Protocol::All {
            r.extend(["-p".into(), self.common.protocol.as_str().into()]);
        }
        if !self.common.ports.is_empty() {
            let list: Vec<String> = self
                .common
                .ports
                .iter()
                .map(|p| match p {
                    Port::One(n) => n.to_string(),
                    Port::Range(a, b) => format!("{a}:{b}"),
                })
                .collect();
            r.extend([
                "-m".into(),
                "multiport".into(),
                "--dports".into(),
                list.join(","),
            ]);
        }
        r.extend([
            "-m".into(),
            "set".into(),
            "--match-set".into(),
            self.set_name(v4),
            "src".into(),
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            format!("mxguard-{}", self.jail),
            "-j".into(),
        ]);
        match (self.common.block, self.common.protocol) {
            (Block::Drop, _) => r.push("DROP".into()),
            (Block::Reject, Protocol::Tcp) => {
                r.extend(["REJECT".into(), "--reject-with".into(), "tcp-reset".into()])
            }
            (Block::Reject, _) => r.push("REJECT".into()),
        }
        r
    }

    fn tables(&self, v4: bool) -> &Tool {
        if v4 { &self.iptables } else { &self.ip6tables }
    }

    fn rule_op(&self, v4: bool, op: &str, extra: &[&str]) -> Result<Output, ActionError> {
        let mut args: Vec<String> = vec!["-w".into(), op.into(), self.chain.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(self.rule(v4));
        self.tables(v4).run(&args, None, &self.counters)
    }

    fn failed(&self, tool: &Tool, what: &str, out: &Output) -> ActionError {
        ActionError(format!(
            "iptables, jail {}: {what} with {} failed ({}): {}; check that `{}` works as root{}",
            self.jail,
            tool.name,
            out.status,
            out.excerpt(),
            tool.name,
            self.common
                .netns
                .as_deref()
                .map(|ns| format!(" inside network namespace {ns}"))
                .unwrap_or_default()
        ))
    }

    fn ipset_run(
        &self,
        args: &[String],
        stdin: Option<Vec<u8>>,
        what: &str,
    ) -> Result<(), ActionError> {
        let out = self.ipset.run(args, stdin, &self.counters)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(&self.ipset, what, &out))
        }
    }

    fn start_inner(&self, active: &[Ban]) -> Result<(), ActionError> {
        let mut batch = String::new();
        for (v4, family) in [(true, "inet"), (false, "inet6")] {
            let s = self.set_name(v4);
            batch += &format!(
                "create {s} hash:net family {family} timeout 0 maxelem {}\nflush {s}\n",
                self.maxelem
            );
        }
        let mut count = 0;
        for ban in active {
            let net = match ban.network() {
                Ok(net) => net,
                Err(e) => {
                    tracing::warn!(jail = %self.jail, "iptables: active ban skipped: {e}");
                    continue;
                }
            };
            let Some(timeout) = ipset_timeout(ban.remaining_secs()) else {
                continue;
            };
            batch += &format!(
                "add {} {} timeout {timeout}\n",
                self.set_name(net.0.is_ipv4()),
                show_network(net)
            );
            count += 1;
        }
        self.ipset_run(
            &["restore".into(), "-exist".into()],
            Some(batch.into_bytes()),
            &format!("creating the sets with {count} active bans"),
        )?;
        for v4 in [true, false] {
            let check = self.rule_op(v4, "-C", &[])?;
            if check.status.success() {
                continue;
            }
            let out = self.rule_op(v4, "-I", &["1"])?;
            if !out.status.success() {
                return Err(self.failed(
                    self.tables(v4),
                    &format!("adding the rule to {}", self.chain),
                    &out,
                ));
            }
        }
        tracing::info!(jail = %self.jail, bans = count, "iptables: sets and rules ready");
        Ok(())
    }

    fn stop_inner(&self) -> Result<(), ActionError> {
        if self.common.persist {
            return Ok(());
        }
        for v4 in [true, false] {
            // A rule inserted twice (by hand, or two starts) comes out too.
            for _ in 0..16 {
                if !self.rule_op(v4, "-D", &[])?.status.success() {
                    break;
                }
            }
            let out =
                self.ipset
                    .run(&["destroy".into(), self.set_name(v4)], None, &self.counters)?;
            if !out.status.success() && !out.stderr.contains("does not exist") {
                return Err(self.failed(&self.ipset, "removing the set", &out));
            }
        }
        Ok(())
    }
}

/// ipset's timeout for a ban: 0 is no expiry; `None` when already over.
fn ipset_timeout(secs: Option<u64>) -> Option<u64> {
    match secs {
        None => Some(0),
        Some(0) => None,
        Some(s) if s > IPSET_MAX_TIMEOUT => Some(0),
        Some(s) => Some(s),
    }
}

fn family_of(addr: IpAddr) -> bool {
    addr.is_ipv4()
}

impl Action for Iptables {
    fn name(&self) -> &str {
        "iptables"
    }

    fn start(&self, active: &[Ban]) -> Result<(), ActionError> {
        self.counters.count(self.start_inner(active))
    }

    fn ban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = ban.network()?;
            let Some(timeout) = ipset_timeout(ban.remaining_secs()) else {
                return Ok(());
            };
            // -exist: a ban already there gets the new timeout.
            let args = [
                "add".into(),
                "-exist".into(),
                self.set_name(family_of(net.0)),
                show_network(net),
                "timeout".into(),
                timeout.to_string(),
            ];
            self.ipset_run(&args, None, &format!("banning {}", show_network(net)))
        })();
        self.counters.count(result)
    }

    fn unban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = ban.network()?;
            let args = [
                "del".into(),
                "-exist".into(),
                self.set_name(family_of(net.0)),
                show_network(net),
            ];
            self.ipset_run(&args, None, &format!("unbanning {}", show_network(net)))
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

    fn action(opts: &str) -> Result<Iptables, String> {
        let mut t: toml::Table = opts.parse().unwrap();
        for k in ["iptables", "ip6tables", "ipset"] {
            t.insert(k.into(), "true".into());
        }
        Iptables::from_options(&t, "postfix")
    }

    #[test]
    fn rules_match_ports_sets_and_block_type() {
        let a = action("port = \"smtp,submission,1000:1010\"").unwrap();
        assert_eq!(
            a.rule(true).join(" "),
            "-p tcp -m multiport --dports 25,587,1000:1010 -m set --match-set mxg-postfix-4 src -m comment --comment mxguard-postfix -j DROP"
        );
        let a = action("blocktype = \"reject\"").unwrap();
        assert_eq!(
            a.rule(false).join(" "),
            "-p tcp -m set --match-set mxg-postfix-6 src -m comment --comment mxguard-postfix -j REJECT --reject-with tcp-reset"
        );
        let a = action("protocol = \"all\"").unwrap();
        assert!(a.rule(true).join(" ").starts_with("-m set"));
    }

    #[test]
    fn limits_are_checked_when_built() {
        let many: Vec<String> = (1..=16).map(|p| p.to_string()).collect();
        let e = action(&format!("port = \"{}\"", many.join(",")))
            .err()
            .unwrap();
        assert!(e.contains("multiport"), "{e}");
        assert!(
            action("chain = \"IN PUT\"")
                .err()
                .unwrap()
                .contains("chain")
        );
        assert!(action("maxelem = 5").err().unwrap().contains("maxelem"));
        assert_eq!(ipset_timeout(None), Some(0));
        assert_eq!(ipset_timeout(Some(0)), None);
        assert_eq!(ipset_timeout(Some(3600)), Some(3600));
        assert_eq!(ipset_timeout(Some(IPSET_MAX_TIMEOUT + 1)), Some(0));
    }
}
