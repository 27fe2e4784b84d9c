//! The `postfix-flood` filter: every connection and every lost
//! connection is one event, so a jail with a high `maxretry` in a short
//! `findtime` catches connection storms (fail2ban's postfix-flood-attack
//! jail, which counted only lost connections after AUTH).

use super::{Failure, Filter, Rules, failure};
use crate::line::LogLine;

#[rustfmt::skip]
const TABLE: &[(u8, (), &str)] = &[
    (1, (), r"^connect from [^\[\s]*\[<HOST>\](?::[0-9]+)?\s*$"),
    (1, (), r"^CONNECT from \[<ADDR>\]:[0-9]+ to "),
    (1, (), r"^(?:NOQUEUE: )?lost connection after \S+ from [^\[\s]*\[<HOST>\](?::[0-9]+)?\s*$"),
];

pub struct PostfixFlood {
    rules: Rules<()>,
}

impl PostfixFlood {
    pub fn new() -> PostfixFlood {
        PostfixFlood {
            rules: Rules::new(TABLE, 1),
        }
    }
}

impl Default for PostfixFlood {
    fn default() -> Self {
        Self::new()
    }
}

impl Filter for PostfixFlood {
    fn name(&self) -> &str {
        "postfix-flood"
    }

    fn rules(&self) -> Vec<String> {
        self.rules.sources()
    }

    fn process(&mut self, line: &LogLine<'_>) -> Option<Failure> {
        if !line.daemon.starts_with("postfix") {
            return None;
        }
        let (rule, (), caps) = self.rules.first(line.msg)?;
        failure(&caps, rule)
    }
}
