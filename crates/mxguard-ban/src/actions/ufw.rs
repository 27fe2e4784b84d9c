//! The ufw action, what fail2ban users on Ubuntu pick: one ufw rule per
//! ban, put first so an earlier `allow` cannot let the address through:
//!
//! ```text
//! ufw insert 1 deny from 192.0.2.7 to any port 25,587 proto tcp comment mxguard-postfix
//! ufw delete deny from 192.0.2.7 to any port 25,587 proto tcp
//! ```
//!
//! `insert 1` fails when there is no rule yet, or when rule 1 is of the
//! other IP family ("Invalid position '1'"); `ufw prepend` (ufw ≥ 0.35) is
//! then used, which means the same: first among that family's rules.
//!
//! ufw rules have no timeout and outlive mxguard, so every rule carries the
//! comment `mxguard-<jail>`: `start` reads them back (`ufw show added`),
//! deletes those whose ban is over and adds only the missing ones; `stop`
//! deletes them all unless `persist = true`. ufw runs one Python process
//! per rule (about a fifth of a second): for thousands of bans use the
//! nftables action.

use std::collections::HashSet;

use super::exec::{Output, Tool};
use super::options::{self, Block, Common, Port, Protocol};
use super::{Action, ActionCounters, ActionError, Ban, show_network};

const KEYS: &[&str] = &["ufw"];

pub struct Ufw {
    jail: String,
    common: Common,
    ufw: Tool,
    counters: ActionCounters,
}

impl Ufw {
    /// Keys: `ufw` (the program) and the common ones.
    pub fn from_options(t: &toml::Table, jail: &str) -> Result<Ufw, String> {
        options::check_keys(t, &[options::COMMON_KEYS, KEYS].concat())?;
        let common = Common::from_options(t)?;
        let program = options::string(t, "ufw")?.unwrap_or_else(|| "ufw".into());
        let ufw = Tool::new(&program, "ufw", common.netns.as_deref(), common.timeout)?;
        Ok(Ufw {
            jail: jail.to_string(),
            common,
            ufw,
            counters: ActionCounters::default(),
        })
    }

    fn comment(&self) -> String {
        format!("mxguard-{}", self.jail)
    }

    /// `deny from NET to any port 25,587 proto tcp`.
    fn rule(&self, net: &str) -> Vec<String> {
        let block = match self.common.block {
            Block::Drop => "deny",
            Block::Reject => "reject",
        };
        let mut r: Vec<String> = [block, "from", net, "to", "any"].map(String::from).to_vec();
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
            r.extend(["port".into(), list.join(",")]);
        }
        if self.common.protocol != Protocol::All {
            r.extend(["proto".into(), self.common.protocol.as_str().into()]);
        }
        r
    }

    fn run(&self, args: Vec<String>) -> Result<Output, ActionError> {
        self.ufw.run(&args, None, &self.counters)
    }

    fn failed(&self, what: &str, out: &Output) -> ActionError {
        ActionError(format!(
            "ufw, jail {}: {what} failed ({}): {}; check that `ufw status` works as root{}",
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

    fn add(&self, net: &str) -> Result<(), ActionError> {
        let tail = |mut rule: Vec<String>| {
            rule.extend(["comment".into(), self.comment()]);
            rule
        };
        let mut args = vec!["insert".to_string(), "1".into()];
        args.extend(tail(self.rule(net)));
        let out = self.run(args)?;
        if out.status.success() {
            return Ok(());
        }
        if !(out.stdout.contains("Invalid position") || out.stderr.contains("Invalid position")) {
            return Err(self.failed(&format!("banning {net}"), &out));
        }
        let mut args = vec!["prepend".to_string()];
        args.extend(tail(self.rule(net)));
        let out = self.run(args)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(&format!("banning {net}"), &out))
        }
    }

    /// This jail's rules as `ufw show added` prints them, each as the
    /// arguments that delete it and the network it bans.
    fn ours(&self) -> Result<Vec<(Vec<String>, String)>, ActionError> {
        let out = self.run(vec!["show".into(), "added".into()])?;
        if !out.status.success() {
            return Err(self.failed("listing the rules (`ufw show added`)", &out));
        }
        Ok(parse_added(&out.stdout, &self.comment()))
    }

    fn delete(&self, rule: Vec<String>, net: &str) -> Result<(), ActionError> {
        let mut args = vec!["delete".to_string()];
        args.extend(rule);
        let out = self.run(args)?;
        // "Could not delete non-existent rule" exits 0: already gone is fine.
        if out.status.success() {
            Ok(())
        } else {
            Err(self.failed(&format!("unbanning {net}"), &out))
        }
    }

    fn start_inner(&self, active: &[Ban]) -> Result<(), ActionError> {
        let status = self.run(vec!["status".into()])?;
        if !status.status.success() {
            return Err(self.failed("`ufw status`", &status));
        }
        if status.stdout.contains("Status: inactive") {
            tracing::warn!(
                jail = %self.jail,
                "ufw is inactive: its bans take effect only after `ufw enable`"
            );
        }
        let mut wanted = HashSet::new();
        for ban in active {
            match ban.network() {
                Ok(net) if ban.remaining_secs() != Some(0) => {
                    wanted.insert(show_network(net));
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(jail = %self.jail, "ufw: active ban skipped: {e}"),
            }
        }
        let mut present = HashSet::new();
        for (rule, net) in self.ours()? {
            if wanted.contains(&net) && rule == self.rule(&net) {
                present.insert(net);
            } else {
                // Its ban ended while mxguard was down, or the jail's ports changed.
                self.delete(rule, &net)?;
            }
        }
        let mut added = 0;
        for net in wanted.difference(&present) {
            self.add(net)?;
            added += 1;
        }
        tracing::info!(
            jail = %self.jail,
            kept = present.len(),
            added,
            "ufw: rules ready"
        );
        Ok(())
    }
}

/// From `ufw show added` output, the rules with `comment '<comment>'`: the
/// rule words without `ufw` and the comment (what `ufw delete` takes), and
/// the network after `from`.
fn parse_added(text: &str, comment: &str) -> Vec<(Vec<String>, String)> {
    let suffix = format!(" comment '{comment}'");
    text.lines()
        .filter_map(|line| {
            let body = line.trim().strip_prefix("ufw ")?.strip_suffix(&suffix)?;
            let words: Vec<String> = body.split_whitespace().map(String::from).collect();
            let from = words.iter().position(|w| w == "from")?;
            let net = words.get(from + 1)?.clone();
            // ufw prints a rule without ports with no `to any`; delete
            // matches either form, but comparison with ours needs one.
            let words = if words.iter().any(|w| w == "to") {
                words
            } else {
                let mut w = words;
                w.insert(from + 2, "any".into());
                w.insert(from + 2, "to".into());
                w
            };
            Some((words, net))
        })
        .collect()
}

impl Action for Ufw {
    fn name(&self) -> &str {
        "ufw"
    }

    fn start(&self, active: &[Ban]) -> Result<(), ActionError> {
        self.counters.count(self.start_inner(active))
    }

    fn ban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = ban.network()?;
            if ban.remaining_secs() == Some(0) {
                return Ok(());
            }
            self.add(&show_network(net))
        })();
        self.counters.count(result)
    }

    fn unban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            let net = show_network(ban.network()?);
            self.delete(self.rule(&net), &net)
        })();
        self.counters.count(result)
    }

    fn stop(&self) -> Result<(), ActionError> {
        let result = (|| {
            if self.common.persist {
                return Ok(());
            }
            for (rule, net) in self.ours()? {
                self.delete(rule, &net)?;
            }
            Ok(())
        })();
        self.counters.count(result)
    }

    fn counters(&self) -> Option<&ActionCounters> {
        Some(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(opts: &str) -> Ufw {
        let mut t: toml::Table = opts.parse().unwrap();
        t.insert("ufw".into(), "true".into());
        Ufw::from_options(&t, "postfix").unwrap()
    }

    #[test]
    fn rules_read_like_fail2bans() {
        let a = action("port = \"smtp,submission\"");
        assert_eq!(
            a.rule("192.0.2.7").join(" "),
            "deny from 192.0.2.7 to any port 25,587 proto tcp"
        );
        let a = action("protocol = \"all\"\nblocktype = \"reject\"");
        assert_eq!(
            a.rule("2001:db8::/64").join(" "),
            "reject from 2001:db8::/64 to any"
        );
    }

    #[test]
    fn our_rules_are_read_back_from_show_added() {
        let text = "Added user rules (see 'ufw status' for running firewall):\n\
            ufw deny from 10.9.9.8/29 proto tcp comment 'mxguard-postfix'\n\
            ufw deny from 10.9.9.9 to any port 25,587 proto tcp comment 'mxguard-postfix'\n\
            ufw deny from 10.9.9.10 to any port 25 proto tcp comment 'mxguard-postfix-2'\n\
            ufw allow 22/tcp\n";
        let got = parse_added(text, "mxguard-postfix");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.join(" "), "deny from 10.9.9.8/29 to any proto tcp");
        assert_eq!(got[0].1, "10.9.9.8/29");
        assert_eq!(got[1].0, action("port = \"25,587\"").rule("10.9.9.9"));
    }
}
