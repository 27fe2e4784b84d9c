//! Hash busters: a random token written into each copy of a campaign
//! (`Notificação ao cliente - Cod. qewnlo4Ty4VFo0tNyEM`, an attachment
//! `XI6Tx31OYpMG.pdf`) so that no two copies share a checksum and fuzzy
//! hashes and "seen this before" lists miss them. People name things with
//! words, dates and numbers; a word that jumps between digits and letters
//! of both cases is made by a generator.
//!
//! Reads the subject and the attachments' declared names only, ASCII
//! bytes, no regex.

use super::Check;
use crate::Task;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "headers";

/// Shortest token counted: shorter ones are too often real codes.
const MIN_TOKEN: usize = 10;

/// Longer runs are encoded data (base64 in a name), another matter.
const MAX_TOKEN: usize = 64;

/// Digit/letter boundaries a token needs: `iPhone15` has two.
const MIN_BOUNDARIES: usize = 3;

/// Attachments whose names are looked at.
const MAX_ATTACHMENTS: usize = 32;

/// `[hash_busters]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashBustersConfig {
    pub enabled: bool,
}

impl Default for HashBustersConfig {
    fn default() -> Self {
        HashBustersConfig { enabled: true }
    }
}

impl Section for HashBustersConfig {
    const KEY: &'static str = "hash_busters";
}

pub struct HashBusters;

impl Check for HashBusters {
    fn name(&self) -> &'static str {
        "hash_busters"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "SUBJ_RANDOM_TOKEN",
                1.5,
                GROUP,
                "The subject carries a random token of mixed-case letters and digits (a per-copy hash buster)",
            ),
            SymbolDef::new(
                "ATTACHMENT_RANDOM_NAME",
                1.0,
                GROUP,
                "An attachment is named with a random token of mixed-case letters and digits",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        if let Some(token) = task.message.subject().and_then(random_token) {
            results.insert("SUBJ_RANDOM_TOKEN", vec![token.to_string()]);
        }
        if let Some(token) = task
            .attachments()
            .take(MAX_ATTACHMENTS)
            .filter_map(|a| a.name)
            .find_map(|name| random_token(name.rsplit_once('.').map_or(name, |(stem, _)| stem)))
        {
            results.insert("ATTACHMENT_RANDOM_NAME", vec![token.to_string()]);
        }
    }
}

/// The first run of ASCII letters and digits in `text` that looks
/// generated: [`MIN_TOKEN`] to [`MAX_TOKEN`] long, upper and lower case
/// letters and digits all present, and at least [`MIN_BOUNDARIES`]
/// places where a digit meets a letter.
pub fn random_token(text: &str) -> Option<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| is_random(w.as_bytes()))
}

fn is_random(w: &[u8]) -> bool {
    if w.len() < MIN_TOKEN || w.len() > MAX_TOKEN {
        return false;
    }
    let (mut upper, mut lower, mut digit) = (false, false, false);
    for b in w {
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        digit |= b.is_ascii_digit();
    }
    upper
        && lower
        && digit
        && w.windows(2)
            .filter(|p| p[0].is_ascii_digit() != p[1].is_ascii_digit())
            .count()
            >= MIN_BOUNDARIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn generated_tokens() {
        for s in [
            "Notificação ao cliente  Cod. qewnlo4Ty4VFo0tNyEM",
            "Liberação Pendente - eTlEhzBoS1JyavZKriI9048OqnXFV",
            "BBInforma: Saldo Liberado MCkoqpobZ72eqCjQkI89",
            "PONTOS - 27A9cO059i",
        ] {
            assert!(random_token(s).is_some(), "{s}");
        }
        for s in [
            "Your iPhone15ProMax order",
            "Order #NP09312186721 shipped",
            "Tracking 1Z999AA10123456784",
            "Aviso Importante - 479BE13568",
            "Meeting notes 2024-01-15",
            "MacBookPro2023 for sale",
            "Re: [PATCH v3] fix build",
            "",
            "ßaaaaaaaaaaaa1",
        ] {
            assert_eq!(random_token(s), None, "{s}");
        }
        let long = "aB1".repeat(30);
        assert_eq!(random_token(&long), None);
    }

    fn scan(raw: &str) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        HashBusters.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn subject_and_attachment_names() {
        let raw = "From: a@example.com\r\nSubject: Pontos - J50Zq44KA22HpGX\r\n\
            MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
            --b\r\nContent-Type: application/pdf; name=\"XI6Tx31OYpMG.pdf\"\r\n\
            Content-Disposition: attachment; filename=\"XI6Tx31OYpMG.pdf\"\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";
        assert_eq!(
            scan(raw),
            vec!["SUBJ_RANDOM_TOKEN", "ATTACHMENT_RANDOM_NAME"]
        );
        let plain = raw
            .replace("J50Zq44KA22HpGX", "March statement")
            .replace("XI6Tx31OYpMG", "statement-2024-03");
        assert!(scan(&plain).is_empty());
    }
}
