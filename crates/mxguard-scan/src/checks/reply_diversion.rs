//! Replies diverted from one free mailbox to another: From is a free-mail
//! address and Reply-To another free-mail address (SpamAssassin's
//! FREEMAIL_REPLYTO). Advance-fee, romance and "consignment" mail is sent
//! from throw-away mailboxes the provider soon closes, while the answers
//! go to the one mailbox the scammer keeps. A person with two free
//! mailboxes sends from the one they want replies at.
//!
//! The organisation's mail that asks for replies at a free mailbox is
//! FREEMAIL_REPLYTO_NEQ_FROM_DOM (`header_anomalies`), which this one
//! complements: here the sender is a free mailbox too. Reads From and
//! Reply-To only.

use super::Check;
use super::header_anomalies::FREEMAIL;
use crate::Task;
use crate::lead_text::lead_texts;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::domain::organisational;
use serde::{Deserialize, Serialize};

const GROUP: &str = "headers";

/// `[reply_diversion]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplyDiversionConfig {
    pub enabled: bool,
}

impl Default for ReplyDiversionConfig {
    fn default() -> Self {
        ReplyDiversionConfig { enabled: true }
    }
}

impl Section for ReplyDiversionConfig {
    const KEY: &'static str = "reply_diversion";
}

pub struct ReplyDiversion;

/// The last address of a header, trimmed and lower case.
fn last_address(list: Option<&mail_parser::Address<'_>>) -> Option<String> {
    list.and_then(|l| l.iter().filter_map(|a| a.address()).next_back())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
}

fn is_freemail(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(_, d)| FREEMAIL.contains(&organisational(d).as_str()))
}

impl Check for ReplyDiversion {
    fn name(&self) -> &'static str {
        "reply_diversion"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "FREEMAIL_REPLYTO",
                1.5,
                GROUP,
                "From is a free-mail address and Reply-To another free-mail address",
            ),
            SymbolDef::new(
                "FREEMAIL_REPLYTO_MILLIONS",
                1.5,
                "phishing",
                "Replies diverted between free mailboxes, and the text names a sum in the millions (advance fee)",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        let (Some(from), Some(reply)) = (
            last_address(task.message.from()),
            last_address(task.message.reply_to()),
        ) else {
            return;
        };
        if from != reply && is_freemail(&from) && is_freemail(&reply) {
            results.insert("FREEMAIL_REPLYTO", vec![reply]);
            // Read only for the few messages that divert replies so.
            let parts = task.text_parts();
            if lead_texts(task.message.subject(), &parts).any(names_millions) {
                results.insert("FREEMAIL_REPLYTO_MILLIONS", vec![]);
            }
        }
    }
}

/// Whether `text` names a sum in the millions: the word (`million`,
/// `millones`, `milhões`, `Millionen`) or a number of seven digits or more
/// written in groups (`5,000,000.00`, `2.500.000`).
pub fn names_millions(text: &str) -> bool {
    // A copy, but only of the few messages that divert replies.
    let lower = text.to_ascii_lowercase();
    let word = ["million", "millon", "milhõ", "milhao"]
        .iter()
        .any(|w| lower.contains(w));
    word || grouped_number(text.as_bytes())
}

/// A run of digits and `,`/`.` separators with seven or more digits
/// before its decimals and two or more separators.
fn grouped_number(bytes: &[u8]) -> bool {
    bytes
        .split(|b| !(b.is_ascii_digit() || *b == b',' || *b == b'.'))
        .any(|run| {
            let run = run.trim_ascii();
            let separators = run.iter().filter(|b| !b.is_ascii_digit()).count();
            // Cents after the last separator are not counted.
            let whole = match run.iter().rposition(|b| !b.is_ascii_digit()) {
                Some(p) if run.len() - p - 1 == 2 => &run[..p],
                _ => run,
            };
            separators >= 2 && whole.iter().filter(|b| b.is_ascii_digit()).count() >= 7
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(from: &str, reply_to: Option<&str>) -> bool {
        let reply = reply_to.map_or(String::new(), |r| format!("Reply-To: {r}\r\n"));
        let raw = format!(
            "From: {from}\r\n{reply}To: undisclosed-recipients:;\r\nSubject: Hello\r\n\r\nDear friend\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        ReplyDiversion.run(&task, &mut r);
        r.has("FREEMAIL_REPLYTO")
    }

    #[test]
    fn advance_fee_sums_with_diverted_replies() {
        let raw = "From: Mrs Nelson <nelson3@gmail.com>\r\nReply-To: nelson111@gmail.com\r\nSubject: Good day\r\n\r\nI want to WILL a total sum of $10.5 million to you.\r\n";
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        ReplyDiversion.run(&task, &mut r);
        assert!(r.has("FREEMAIL_REPLYTO_MILLIONS"));
        let raw = raw.replace("Reply-To: nelson111@gmail.com\r\n", "");
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        ReplyDiversion.run(&task, &mut r);
        assert!(!r.has("FREEMAIL_REPLYTO_MILLIONS"));
    }

    #[test]
    fn sums_in_the_millions() {
        for t in [
            "deposited the US$5,000,000.00 with",
            "a total sum of $10.5 million to you",
            "USD 2.500.000",
            "cinco millones de dólares",
            "R$ 3 milhões",
            "EUR 4 MILLION",
        ] {
            assert!(names_millions(t), "{t}");
        }
        for t in [
            "call 1-800-998-9938",
            "version 1.2.3",
            "$299.99",
            "US$ 45,000.00",
            "12345678", // a number without groups: an order, a phone
            "a familiar face",
            "milk",
            "a millisecond",
        ] {
            assert!(!names_millions(t), "{t}");
        }
    }

    #[test]
    fn replies_from_one_free_mailbox_to_another() {
        assert!(scan(
            "Miss Stella <stella22@gmail.com>",
            Some("claims22@outlook.com")
        ));
        assert!(scan("a.b@gmail.com", Some("Agent <other@gmail.com>")));
        // The same mailbox, written in another case.
        assert!(!scan("Jane <Jane@Gmail.com>", Some("jane@gmail.com")));
        // An organisation's sender: header_anomalies' rule, not this one.
        assert!(!scan("bank@bank.example.com", Some("claims@gmail.com")));
        assert!(!scan("jane@gmail.com", Some("list@lists.example.org")));
        assert!(!scan("jane@gmail.com", None));
    }
}
