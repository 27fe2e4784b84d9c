//! The reader greeted by their mail address: "Hallo jane@example.org,",
//! "Dear jane@example.org:", "Your money is waiting, jane@example.org!".
//!
//! A bulk sender working from a list of addresses knows nothing else of
//! the reader, so its template puts the address where a name goes. A
//! person writing to someone knows a name, and a service with an account
//! greets its customer by the name on the account. Quoted mail ("On
//! Monday, jane@example.org wrote:"), signatures and lists of addresses
//! are not greetings: the address must follow a greeting word and be
//! followed by punctuation, or be followed by an exclamation mark.
//!
//! Reads the window of [`crate::lead_text`] (the subject and the heads of
//! the text parts, HTML reduced to text) and looks only around its `@`
//! bytes (memchr): no regex and no copy of the text.

use super::Check;
use super::placeholder_text::placeholder_html;
use crate::Task;
use crate::lead_text::{MAX_PART, head, lead_texts};
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "phishing";

/// `@` signs looked at per text: a text made of addresses costs at most
/// this many short looks.
const MAX_ATS: usize = 64;

/// Bytes of white space allowed between the address and its punctuation,
/// and between the greeting word (or its comma) and the address: a space,
/// a line break, a no-break space.
const MAX_GAP: usize = 4;

/// Greeting words, lower case, in the languages of the lure checks (and
/// Italian). A word ending in `(a)` or `(o)` ("Prezado(a)") is read
/// without it.
const GREETINGS: &[&str] = &[
    "hello",
    "hi",
    "hey",
    "dear",
    "greetings",
    "welcome",
    "congratulations",
    "hallo",
    "liebe",
    "lieber",
    "geehrte",
    "geehrter",
    "willkommen",
    "olá",
    "ola",
    "oi",
    "prezado",
    "prezada",
    "caro",
    "cara",
    "querido",
    "querida",
    "hola",
    "estimado",
    "estimada",
    "bonjour",
    "cher",
    "chère",
    "bienvenue",
    "beste",
    "ciao",
    "gentile",
    "salut",
];

/// `[address_greeting]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AddressGreetingConfig {
    pub enabled: bool,
}

impl Default for AddressGreetingConfig {
    fn default() -> Self {
        AddressGreetingConfig { enabled: true }
    }
}

impl Section for AddressGreetingConfig {
    const KEY: &'static str = "address_greeting";
}

pub struct AddressGreeting;

impl Check for AddressGreeting {
    fn name(&self) -> &'static str {
        "address_greeting"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![SymbolDef::new(
            "ADDRESS_AS_NAME",
            1.5,
            GROUP,
            "The text greets the reader by a mail address where a name goes (a template fed with a list of addresses)",
        )]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        let parts = task.text_parts();
        if let Some(address) = lead_texts(task.message.subject(), &parts).find_map(greeted_address)
        {
            results.insert("ADDRESS_AS_NAME", vec![address.to_string()]);
            return;
        }
        // The subject opening with an address, as a name is put first
        // ("jane@example.org, your reward"). TO_IN_SUBJ already counts the
        // recipient's own address there, outside mailing lists.
        if !results.has("TO_IN_SUBJ")
            && let Some(address) = task.message.subject().and_then(opening_address)
        {
            results.insert("ADDRESS_AS_NAME", vec![address.to_string()]);
            return;
        }
        // What the reader sees when the plain version is a placeholder.
        if let Some(html) = placeholder_html(task)
            && let Some(address) = greeted_address(head(&html, MAX_PART))
        {
            results.insert("ADDRESS_AS_NAME", vec![address.to_string()]);
        }
    }
}

fn local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Bytes of white space (a line break, a no-break space) at the start of `s`.
fn white_prefix(s: &str) -> usize {
    s.chars()
        .take_while(|c| c.is_whitespace())
        .take(MAX_GAP + 1)
        .map(char::len_utf8)
        .sum()
}

/// The first address of `text` used as a greeting's name.
pub fn greeted_address(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'@', bytes)
        .take(MAX_ATS)
        .find_map(|at| {
            let start = at
                - bytes[..at]
                    .iter()
                    .rev()
                    .take_while(|b| local_byte(**b))
                    .count();
            let mut end = at
                + 1
                + bytes[at + 1..]
                    .iter()
                    .take_while(|b| domain_byte(**b))
                    .count();
            while end > at + 1 && bytes[end - 1] == b'.' {
                end -= 1;
            }
            if start == at || end == at + 1 || !bytes[end - 1].is_ascii_alphanumeric() {
                return None;
            }
            let gap = white_prefix(&text[end..]);
            if gap > MAX_GAP {
                return None;
            }
            let after = bytes.get(end + gap).copied();
            let greeted = match after {
                Some(b'!') => true,
                Some(b',' | b':' | b';') => follows_greeting(&text[..start]),
                _ => false,
            };
            greeted.then(|| &text[start..end])
        })
}

/// The address a subject opens with, followed by a comma or a space and
/// more words (not a colon: "jane@example.org: patch applied" quotes).
pub fn opening_address(subject: &str) -> Option<&str> {
    let subject = subject.trim_start();
    let end = subject
        .find(|c: char| c.is_whitespace() || c == ',')
        .filter(|&e| {
            subject[e..]
                .trim_start_matches([',', ' ', '\t'])
                .chars()
                .next()
                .is_some_and(char::is_alphanumeric)
        })?;
    let token = &subject[..end];
    let (local, domain) = token.split_once('@')?;
    let ok = !local.is_empty()
        && !domain.is_empty()
        && local.bytes().all(local_byte)
        && domain.bytes().all(domain_byte)
        && domain
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    ok.then_some(token)
}

/// Whether `before` ends with a greeting word, then white space (a comma
/// may stand between: "Hi, jane@…,").
fn follows_greeting(before: &str) -> bool {
    let trimmed = before.trim_end_matches(char::is_whitespace);
    if before.len() - trimmed.len() == 0 || before.len() - trimmed.len() > MAX_GAP {
        return false;
    }
    let trimmed = trimmed.strip_suffix(',').unwrap_or(trimmed);
    let trimmed = trimmed.trim_end_matches(char::is_whitespace);
    let trimmed = ["(a)", "(o)", "(A)", "(O)"]
        .iter()
        .find_map(|s| trimmed.strip_suffix(s))
        .unwrap_or(trimmed);
    let word_start = trimmed
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(trimmed.len(), |(i, _)| i);
    let word = &trimmed[word_start..];
    if word.is_empty() || word.len() > 16 {
        return false;
    }
    // A word start: the greeting is not the end of a longer word.
    if trimmed[..word_start]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
    {
        return false;
    }
    let lower = word.to_lowercase();
    GREETINGS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn greetings_with_an_address() {
        for (text, want) in [
            ("Hallo phishing@pot, 👋 Sind Sie", "phishing@pot"),
            (
                "Hello jane.doe@example.org , we are writing",
                "jane.doe@example.org",
            ),
            ("Dear JM@NETNOTEINC.COM: you", "JM@NETNOTEINC.COM"),
            (
                "Prezado(a) rodrigo-f-p@hotmail.com , Informamos",
                "rodrigo-f-p@hotmail.com",
            ),
            ("Hi, bob@example.net! 8000+ watches", "bob@example.net"),
            (
                "Your Money is Waiting, jane@example.org!",
                "jane@example.org",
            ),
            (
                "¡Entrega fallida jane@example.org! entrega",
                "jane@example.org",
            ),
            ("Olá\tana@example.com.br; seu", "ana@example.com.br"),
            ("Hello jane@example.org\r\n,</p>", "jane@example.org"),
            (
                "Prezado(a)\u{a0}jane@example.org\u{a0},",
                "jane@example.org",
            ),
            (
                "Congratulations x@y.example. Dear x@y.example, you",
                "x@y.example",
            ),
        ] {
            assert_eq!(greeted_address(text), Some(want), "{text}");
        }
    }

    #[test]
    fn quotes_signatures_and_lists_are_no_greeting() {
        for text in [
            "Hi, fergal@example.ie said: > 7.3 seems",
            "On Tue, Matthias Saou <matthias@example.net> wrote:",
            "Matthias Saou (matthias@example.net) wrote*:",
            "CC: svlug@example.org, Rick Moen <rick@example.com>, sluglug@example.edu,",
            "-- Antoin ** antoin@example.com ** http://www.example.com",
            "email orders@example.com, or call",
            "Thanks, bob@example.com, for the patch", // no greeting word
            "Ohio bob@example.com, x",                // "hi" inside a word
            "Hi @jane, see you",
            "Hello       jane@example.org,", // too far apart to be one greeting
            "mail me at jane@example.org.",
        ] {
            assert_eq!(greeted_address(text), None, "{text}");
        }
    }

    #[test]
    fn subjects_opening_with_an_address() {
        assert_eq!(
            opening_address("jane@example.org, your reward is waiting"),
            Some("jane@example.org")
        );
        assert_eq!(
            opening_address(" jane@example.org Natürlich abnehmen"),
            Some("jane@example.org")
        );
        assert_eq!(opening_address("vk@example.com: Security warning"), None);
        assert_eq!(opening_address("Re: jane@example.org, lunch"), None);
        assert_eq!(opening_address("jane@example.org"), None);
        assert_eq!(opening_address("@jane, hello"), None);
    }

    #[test]
    fn bounded_on_hostile_text() {
        let text = "a@b ".repeat(50_000) + "Hello x@y.example,";
        assert_eq!(greeted_address(&text), None);
        let text = "@".repeat(100_000);
        assert_eq!(greeted_address(&text), None);
        let text = "é@é! ".repeat(1000);
        assert_eq!(greeted_address(&text), None);
    }

    fn scan(raw: &str) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        AddressGreeting.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn the_check_reads_html_and_the_subject() {
        let html = "From: a@b.example\r\nTo: jane@example.org\r\nSubject: Offer\r\nContent-Type: text/html\r\n\r\n<p>Hallo <b>jane@example.org</b>,</p><p>Ihr Gewinn</p>\r\n";
        assert_eq!(scan(html), vec!["ADDRESS_AS_NAME"]);
        let subject =
            "From: a@b.example\r\nSubject: Congratulations jane@example.org!\r\n\r\nx\r\n";
        assert_eq!(scan(subject), vec!["ADDRESS_AS_NAME"]);
        let plain = "From: a@b.example\r\nSubject: Re: lunch\r\n\r\nHi Jane,\r\n\r\nmail bob@example.org, he knows.\r\n";
        assert!(scan(plain).is_empty());
    }
}
