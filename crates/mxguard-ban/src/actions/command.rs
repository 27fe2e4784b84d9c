//! The command action: the admin's own program per ban, e.g. a cloud
//! firewall's CLI or a notifier.
//!
//! ```toml
//! kind = "command"
//! ban = "/usr/local/bin/block --ip <ip> --for <bantime> --reason <jail>"
//! unban = ["/usr/local/bin/unblock", "<ip>"]
//! timeout = "10s"
//! ```
//!
//! No shell: the line is split into arguments first (quotes group words),
//! then each argument has its placeholders replaced, so an address can
//! never become a second command. Placeholders: `<ip>` (an address, or
//! `addr/len` for a range), `<jail>`, `<bantime>` (seconds left, -1 when
//! permanent), `<port>` and `<protocol>` (the jail's); `start` and `stop`
//! take `<jail>` only. A run that exits non-zero or outlives `timeout`
//! (killed with what it started) is logged and counted.

use super::exec::Tool;
use super::options;
use super::{Action, ActionCounters, ActionError, Ban, show_network};

const KEYS: &[&str] = &["ban", "unban", "start", "stop", "timeout"];
const BAN_TAGS: &[&str] = &["<ip>", "<jail>", "<bantime>", "<port>", "<protocol>"];
const JAIL_TAGS: &[&str] = &["<jail>"];

pub struct Command {
    jail: String,
    ban: (Tool, Vec<String>),
    unban: Option<(Tool, Vec<String>)>,
    start: Option<(Tool, Vec<String>)>,
    stop: Option<(Tool, Vec<String>)>,
    counters: ActionCounters,
}

impl Command {
    pub fn from_options(t: &toml::Table, jail: &str) -> Result<Command, String> {
        options::check_keys(t, KEYS)?;
        let timeout = options::duration(t, "timeout", std::time::Duration::from_secs(10))?;
        let line = |key: &str, tags: &[&str]| -> Result<Option<(Tool, Vec<String>)>, String> {
            let Some(argv) = options::argv(t, key)? else {
                return Ok(None);
            };
            for arg in &argv {
                if let Some(tag) = unknown_tag(arg, tags) {
                    return Err(format!(
                        "`{key}`: unknown placeholder {tag}; `{key}` may use {}",
                        tags.join(", ")
                    ));
                }
            }
            if argv[0].contains('<') {
                return Err(format!(
                    "`{key}`: the program itself cannot be a placeholder"
                ));
            }
            let tool = Tool::command(&argv[0], timeout).map_err(|e| format!("`{key}`: {e}"))?;
            Ok(Some((tool, argv[1..].to_vec())))
        };
        let ban = line("ban", BAN_TAGS)?
            .ok_or("`ban` is missing: write the command that bans, e.g. ban = \"/usr/local/bin/block <ip>\"")?;
        Ok(Command {
            jail: jail.to_string(),
            ban,
            unban: line("unban", BAN_TAGS)?,
            start: line("start", JAIL_TAGS)?,
            stop: line("stop", JAIL_TAGS)?,
            counters: ActionCounters::default(),
        })
    }

    /// Runs one configured line with its placeholders replaced; a failure
    /// is logged here and returned.
    fn run(
        &self,
        key: &str,
        (tool, args): &(Tool, Vec<String>),
        values: &[(&str, String)],
    ) -> Result<(), ActionError> {
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                values
                    .iter()
                    .fold(a.clone(), |acc, (tag, value)| acc.replace(tag, value))
            })
            .collect();
        let result = tool.run(&args, None, &self.counters).and_then(|out| {
            if out.status.success() {
                Ok(())
            } else {
                Err(ActionError(format!(
                    "command, jail {}: `{key}` program {} failed ({}): {}",
                    self.jail,
                    tool.name,
                    out.status,
                    out.excerpt()
                )))
            }
        });
        if let Err(e) = &result {
            tracing::warn!(jail = %self.jail, "{e}");
        }
        result
    }

    fn ban_values(&self, ban: &Ban) -> Result<Vec<(&'static str, String)>, ActionError> {
        let net = ban.network()?;
        Ok(vec![
            ("<ip>", show_network(net)),
            ("<jail>", self.jail.clone()),
            (
                "<bantime>",
                ban.remaining_secs().map_or("-1".into(), |s| s.to_string()),
            ),
            ("<port>", ban.ports.join(",")),
            ("<protocol>", ban.protocol.clone()),
        ])
    }
}

/// The first `<word>` in `arg` that is not one of `tags`.
fn unknown_tag<'a>(arg: &'a str, tags: &[&str]) -> Option<&'a str> {
    let mut rest = arg;
    while let Some(open) = rest.find('<') {
        let after = &rest[open..];
        match after.find('>') {
            Some(close) => {
                let tag = &after[..=close];
                let word = &tag[1..tag.len() - 1];
                let looks_like_tag = !word.is_empty()
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if looks_like_tag && !tags.contains(&tag) {
                    return Some(tag);
                }
                rest = &after[1..];
            }
            None => return None,
        }
    }
    None
}

impl Action for Command {
    fn name(&self) -> &str {
        "command"
    }

    fn start(&self, active: &[Ban]) -> Result<(), ActionError> {
        let result = (|| {
            if let Some(line) = &self.start {
                self.run("start", line, &[("<jail>", self.jail.clone())])?;
            }
            let mut failed = 0;
            let mut last = None;
            for ban in active.iter().filter(|b| b.remaining_secs() != Some(0)) {
                if let Err(e) = self
                    .ban_values(ban)
                    .and_then(|v| self.run("ban", &self.ban, &v))
                {
                    failed += 1;
                    last = Some(e);
                }
            }
            match last {
                None => Ok(()),
                Some(e) => Err(ActionError(format!(
                    "{failed} of {} active bans failed to apply; the last: {e}",
                    active.len()
                ))),
            }
        })();
        self.counters.count(result)
    }

    fn ban(&self, ban: &Ban) -> Result<(), ActionError> {
        let result = (|| {
            if ban.remaining_secs() == Some(0) {
                return Ok(());
            }
            let values = self.ban_values(ban)?;
            self.run("ban", &self.ban, &values)
        })();
        self.counters.count(result)
    }

    fn unban(&self, ban: &Ban) -> Result<(), ActionError> {
        let Some(line) = &self.unban else {
            return Ok(());
        };
        let result = self
            .ban_values(ban)
            .and_then(|v| self.run("unban", line, &v));
        self.counters.count(result)
    }

    fn stop(&self) -> Result<(), ActionError> {
        let Some(line) = &self.stop else {
            return Ok(());
        };
        let result = self.run("stop", line, &[("<jail>", self.jail.clone())]);
        self.counters.count(result)
    }

    fn counters(&self) -> Option<&ActionCounters> {
        Some(&self.counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn build(s: &str) -> Result<Command, String> {
        Command::from_options(&s.parse().unwrap(), "sshd")
    }

    fn ban(addr: &str, prefix: u8, secs: Option<u64>) -> Ban {
        Ban {
            addr: addr.parse().unwrap(),
            prefix,
            jail: "sshd".into(),
            remaining: secs.map(Duration::from_secs),
            ports: vec!["ssh".into()],
            protocol: "tcp".into(),
        }
    }

    #[test]
    fn placeholders_are_replaced_per_argument_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cmd = build(&format!(
            r#"ban = ["sh", "-c", "printf '%s|' \"$@\" >> {}", "x", "<ip>", "<jail>:<bantime>", "<port>/<protocol>", "$(id)"]"#,
            out.display()
        ))
        .unwrap();
        cmd.ban(&ban("2001:db8::1", 64, Some(90))).unwrap();
        cmd.ban(&ban("192.0.2.7", 32, None)).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            text,
            "2001:db8::/64|sshd:90|ssh/tcp|$(id)|192.0.2.7|sshd:-1|ssh/tcp|$(id)|"
        );
        assert_eq!(cmd.counters.snapshot(), (2, 0, 0));
    }

    #[test]
    fn failures_and_time_outs_are_counted() {
        let cmd = build("ban = \"false <ip>\"\nunban = \"sleep 5\"\ntimeout = \"200ms\"").unwrap();
        let e = cmd.ban(&ban("192.0.2.7", 32, Some(5))).unwrap_err();
        assert!(e.0.contains("`ban` program false failed"), "{e}");
        let e = cmd.unban(&ban("192.0.2.7", 32, Some(5))).unwrap_err();
        assert!(e.0.contains("killed"), "{e}");
        assert_eq!(cmd.counters.snapshot(), (0, 2, 1));
        let e = cmd
            .start(&[ban("192.0.2.7", 32, Some(5)), ban("192.0.2.8", 32, Some(5))])
            .unwrap_err();
        assert!(e.0.starts_with("2 of 2 active bans failed"), "{e}");
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let e = build("ban = \"echo <address>\"").err().unwrap();
        assert!(e.contains("`ban`") && e.contains("<address>"), "{e}");
        let e = build("ban = \"echo\"\nstart = \"echo <ip>\"")
            .err()
            .unwrap();
        assert!(e.contains("`start`") && e.contains("<ip>"), "{e}");
        assert!(
            build("unban = \"echo\"")
                .err()
                .unwrap()
                .contains("`ban` is missing")
        );
        assert!(
            build("ban = \"/no/such/program\"")
                .err()
                .unwrap()
                .contains("`ban`")
        );
        assert!(build("ban = \"<ip>\"").is_err());
        assert!(build("ban = \"echo a<b c>d\"").is_ok());
    }
}
