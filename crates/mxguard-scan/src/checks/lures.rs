//! Lure language: the few sentences phishing is built on, in the
//! languages of the mail it reaches (English, German, Portuguese, Spanish,
//! French, Dutch), together with a link that leaves the sender's domain.
//!
//! A lure asks the reader to act on something they own: an account that
//! is suspended or must be verified, a sign-in nobody asked for, a
//! password that expires, a full mailbox, photos about to be deleted, a
//! payment that failed, a parcel held for a fee (LURE_ACCOUNT); or it
//! promises something for nothing: a prize, free spins, an airdrop, a gift
//! card, casino bonuses, tokens, a fund waiting for a beneficiary
//! (LURE_PRIZE). Each family is a phrase shape (an object near a threat, a
//! verb near what it wants), not a sample's sentence. A lure must point
//! away: a link whose registrable domain is not From's, or a Reply-To of
//! another domain, since the real service links to itself. Mailing-list talk about
//! "a new device" or "suspended accounts" is plain text without such a
//! link more often than not, and the classifier's ham evidence outweighs
//! a lure symbol of this size anyway.
//!
//! Limits: the subject and at most [`MAX_PART`] bytes of each text part,
//! [`MAX_TEXT`] in all, read in place (no copy); two regex sets, linear
//! time, run only on texts holding one of their keywords ([`ACCOUNT_KEYS`],
//! [`PRIZE_KEYS`]): the `{0,50}` gaps make the sets' automata large and
//! slow, a keyword alternation is small and stops at its first hit, and
//! most mail names none of them.

use super::Check;
use crate::Task;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::domain::organisational;
use regex::bytes::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Bytes read of each text part: a lure says what it wants up front.
pub const MAX_PART: usize = 8 * 1024;
/// Bytes read of all parts together.
pub const MAX_TEXT: usize = 16 * 1024;

/// Words of a phrase apart: up to 50 bytes within a sentence. A byte
/// class, so the automaton stays small (a Unicode class repeated 50 times
/// made the scan a third slower); the regexes run on bytes for it.
const NEAR: &str = r"(?-u:[^.!?]){0,50}";

/// An account, mailbox or wallet that is threatened, verified, accessed
/// or about to lose something; a payment that failed; a parcel held.
fn account_patterns() -> Vec<String> {
    let b = r"(?-u:\b)";
    vec![
        // Something of the reader's is suspended, locked, limited.
        format!(
            r"{b}(account|mailbox|wallet|konto|postfach|conta|cuenta|compte|rekening){NEAR}{b}(suspend|locked|lock |limited|restricted|disabled|deactivat|terminat|blocked|frozen|freez|on hold|gesperrt|eingeschr[äa]nkt|bloquead|suspens|suspendu|bloqu[ée]|geblokkeerd|opgeschort)"
        ),
        // Verify / confirm / update what it wants.
        format!(
            r"{b}(verify|confirm|validate|reactivate|re-activate|unlock|restore|bestätigen|verifizieren|aktualisieren|confirme|atualize|verifique|confirmar|actualice|vérifie[rz]|confirme[rz]|bevestig|verifieer){NEAR}{b}(account|identity|information|details|wallet|password|mailbox|payment|billing|card|konto|daten|identität|zahlung|conta|dados|cadastro|cuenta|datos|identidad|compte|identité|coordonnées|gegevens|rekening)"
        ),
        // A sign-in or activity nobody asked for.
        format!(
            r"{b}(unusual|suspicious|unfamiliar|unauthori[sz]ed|unrecogni[sz]ed) (sign[- ]?in|log[- ]?in|login|activity|access)|{b}(ungewöhnliche|verdächtige) (anmeld|aktivit)|{b}(acesso|atividade) (suspeit|incomum)|{b}novo acesso{b}|actividad (sospechosa|inusual)|connexion inhabituelle"
        ),
        // A password that expires.
        format!(
            r"{b}password (will )?(expire|expired|expiration)|{b}passwort (läuft|abgelaufen)|{b}senha (expira|vence)"
        ),
        // A mailbox or cloud storage that is full; photos to be deleted.
        format!(
            r"{b}(mailbox|storage|quota|speicherplatz|armazenamento|almacenamiento|stockage){NEAR}{b}(full|exceeded|almost|voll|cheio|lleno|plein)|{b}photos (and|&) videos (will be )?(deleted|removed)|fotos und videos|fotos e vídeos|fotos y vídeos"
        ),
        // A payment that failed.
        format!(
            r"{b}(payment|billing){NEAR}{b}(declined|failed|expired|unsuccessful)|{b}zahlung{NEAR}(fehlgeschlagen|abgelehnt)|{b}pagamento (recusado|pendente)|{b}pago (rechazado|pendiente)"
        ),
        // A parcel held until the reader acts or pays.
        format!(
            r"{b}(parcel|shipment|delivery|paket|pakket|encomenda|entrega|colis|livraison){NEAR}{b}(pending|on hold|held|failed|unable|suspended|retida|pendente|bloquead|taxad|zugestellt|afwachting|en attente|retenu)"
        ),
    ]
}

/// Something for nothing.
fn prize_patterns() -> Vec<String> {
    let b = r"(?-u:\b)";
    vec![
        format!(r"{b}you('ve| have) (won|been selected)|{b}claim your (reward|prize|gift|bonus)"),
        format!(r"{b}(free spins|freispiele|gratis spins|airdrop|giveaway)"),
        format!(r"{b}(gift card|gutschein|cadeaukaart|carte cadeau|cartão presente)"),
        format!(r"{b}(sie haben gewonnen|você ganhou|has ganado|vous avez gagné|je hebt gewonnen)"),
        // Casino bonuses.
        format!(
            r"{b}(casino|no deposit|ohne einzahlung|sem depósito|sin depósito|welcome bonus|willkommensbonus)"
        ),
        // Tokens for nothing.
        format!(
            r"{b}(claim|eligible|receive|allocation|airdrop|reward|bonus){NEAR}{b}(tokens?|usdt|usdc|xrp|eth|btc|bitcoin|crypto)(?-u:\b)"
        ),
        // Advance fee: a fund or inheritance waiting for the reader.
        format!(
            r"{b}(beneficiary|compensation|inheritance|unclaimed|relief fund|donation){NEAR}(\$|usd|eur|€|million)"
        ),
    ]
}

/// Words one of which every match of [`account_patterns`] holds (the
/// first word of each branch, or a word behind white space in it) at an
/// ASCII word start: the prefilter of [`ACCOUNT`]. A pattern's new branch
/// needs its word here, or the branch never runs.
pub const ACCOUNT_KEYS: &str = "account|mailbox|wallet|konto|postfach|conta|cuenta|compte|rekening|\
verify|confirm|validate|reactivate|re-activate|unlock|restore|bestätigen|verifizieren|aktualisieren|\
atualize|verifique|actualice|vérifie|bevestig|verifieer|\
unusual|suspicious|unfamiliar|unauthori|unrecogni|ungewöhnliche|verdächtige|acesso|atividade|actividad|connexion|\
password|passwort|senha|\
storage|quota|speicherplatz|armazenamento|almacenamiento|stockage|photos|fotos|\
payment|billing|zahlung|pagamento|pago|\
parcel|shipment|delivery|paket|pakket|encomenda|entrega|colis|livraison";

/// The same for [`prize_patterns`] ("won" of "you have won", "spins" of
/// "free spins", "cadeau" of "carte cadeau", …).
pub const PRIZE_KEYS: &str = "won|selected|claim|\
spins|freispiele|airdrop|giveaway|\
gift|gutschein|cadeau|cartão|\
gewonnen|ganhou|ganado|gagné|\
casino|deposit|depósito|einzahlung|bonus|willkommensbonus|\
eligible|receive|allocation|reward|\
beneficiary|compensation|inheritance|unclaimed|relief|donation";

static ACCOUNT: LazyLock<RegexSet> = LazyLock::new(|| build(account_patterns()));
static PRIZE: LazyLock<RegexSet> = LazyLock::new(|| build(prize_patterns()));
static ACCOUNT_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| keys(ACCOUNT_KEYS));
static PRIZE_KEY: LazyLock<Option<Regex>> = LazyLock::new(|| keys(PRIZE_KEYS));

/// A keyword alternation with the patterns' own case folding (`(?i)`,
/// Unicode) and word start, so it finds every word they would. The lists
/// are constants of this module and a test builds them; were one not to
/// build, `None` lets every text through (slower, never blind).
fn keys(words: &str) -> Option<Regex> {
    Regex::new(&format!(r"(?i)(?-u:\b)(?:{words})")).ok()
}

/// Whether `text` may hold a phrase of the set `key` guards.
fn has_key(key: &Option<Regex>, text: &[u8]) -> bool {
    key.as_ref().is_none_or(|k| k.is_match(text))
}

/// Case-insensitive, any run of white space between words (a phrase is
/// often broken over lines or table cells).
fn build(patterns: Vec<String>) -> RegexSet {
    let patterns = patterns
        .into_iter()
        .map(|p| format!("(?i){}", p.replace(' ', r"\s+")));
    // The patterns are constants of this module; a test builds them.
    RegexSet::new(patterns).unwrap_or_else(|_| RegexSet::empty())
}

/// `[lures]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LuresConfig {
    pub enabled: bool,
}

impl Default for LuresConfig {
    fn default() -> Self {
        LuresConfig { enabled: true }
    }
}

impl Section for LuresConfig {
    const KEY: &'static str = "lures";
}

pub struct Lures;

const GROUP: &str = "phishing";

/// The texts a lure is looked for in, as borrowed slices: the subject
/// and the first [`MAX_PART`] bytes of each text part, [`MAX_TEXT`] in
/// all. No copy: the patterns are case-insensitive and take any white
/// space between words.
fn lure_texts<'t>(
    subject: Option<&'t str>,
    parts: &'t [std::borrow::Cow<'t, str>],
) -> impl Iterator<Item = &'t str> + Clone {
    let bodies = parts.iter().scan(MAX_TEXT, |left, part| {
        if *left == 0 {
            return None;
        }
        let mut end = MAX_PART.min(*left).min(part.len());
        while !part.is_char_boundary(end) {
            end -= 1;
        }
        *left -= end;
        Some(&part[..end])
    });
    subject.into_iter().chain(bodies)
}

/// The organisational domain of the last address of a header.
fn address_org(list: Option<&mail_parser::Address<'_>>) -> Option<String> {
    list.and_then(|f| f.iter().filter_map(|a| a.address()).next_back())
        .and_then(|a| a.rsplit_once('@'))
        .map(|(_, d)| organisational(d.trim()))
}

/// Whether the message leads away from From's organisation: a link
/// elsewhere (any link when there is no From address), or replies asked
/// for elsewhere (Reply-To), the way of advance-fee mail without links.
fn leads_elsewhere(task: &Task<'_>) -> bool {
    let from_org = address_org(task.message.from());
    if let Some(reply) = address_org(task.message.reply_to())
        && from_org.as_deref() != Some(reply.as_str())
    {
        return true;
    }
    task.urls()
        .iter()
        .any(|u| from_org.as_deref() != Some(u.domain.as_str()))
}

impl Check for Lures {
    fn name(&self) -> &'static str {
        "lures"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "LURE_ACCOUNT",
                2.0,
                GROUP,
                "Account, sign-in, payment or parcel lure with a link off the sender's domain",
            ),
            SymbolDef::new(
                "LURE_PRIZE",
                1.5,
                GROUP,
                "Prize, bonus or gift lure with a link off the sender's domain",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() || !leads_elsewhere(task) {
            return;
        }
        let parts = task.text_parts();
        let texts = lure_texts(task.message.subject(), &parts);
        // The families found, in pattern order (the options), without a
        // per-message vector; the sets run only on texts with a keyword.
        let mut account = [false; ACCOUNT_NAMES.len()];
        for t in texts.clone().map(str::as_bytes) {
            if has_key(&ACCOUNT_KEY, t) {
                for i in ACCOUNT.matches(t).iter() {
                    account[i] = true;
                }
            }
        }
        if account.contains(&true) {
            results.insert(
                "LURE_ACCOUNT",
                ACCOUNT_NAMES
                    .iter()
                    .zip(account)
                    .filter(|(_, hit)| *hit)
                    .map(|(name, _)| name.to_string())
                    .collect(),
            );
        }
        if texts
            .map(str::as_bytes)
            .any(|t| has_key(&PRIZE_KEY, t) && PRIZE.is_match(t))
        {
            results.insert("LURE_PRIZE", vec![]);
        }
    }
}

/// The account families, in [`account_patterns`]' order, for the options.
const ACCOUNT_NAMES: [&str; 7] = [
    "threat", "verify", "sign-in", "password", "storage", "payment", "parcel",
];

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn the_patterns_build() {
        for p in account_patterns().into_iter().chain(prize_patterns()) {
            let p = format!("(?i){}", p.replace(' ', r"\s+"));
            regex::bytes::Regex::new(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        assert_eq!(ACCOUNT.len(), ACCOUNT_NAMES.len());
        assert_eq!(PRIZE.len(), prize_patterns().len());
        for words in [ACCOUNT_KEYS, PRIZE_KEYS] {
            let p = format!(r"(?i)(?-u:\b)(?:{words})");
            regex::bytes::Regex::new(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    /// Every family's phrase passes its keyword prefilter, in the case
    /// folding and white space lures use: a keyword missing from the
    /// lists would silently drop the family.
    #[test]
    fn every_family_passes_its_prefilter() {
        let account = [
            "Your ACCOUNT has been suspended",
            "please re-activate your wallet",
            "Bitte BESTÄTIGEN Sie Ihre Daten",
            "Vérifiez votre compte",
            "Detectamos um novo\u{a0}acesso",
            "Ungewöhnliche Anmeldung",
            "actividad sospechosa",
            "connexion inhabituelle",
            "Your password will expire",
            "Senha expira hoje",
            "Photos and videos will be deleted",
            "fotos und videos",
            "Quota exceeded",
            "payment declined",
            "Zahlung fehlgeschlagen",
            "pagamento recusado",
            "pago rechazado",
            "Pakket in afwachting",
            "colis en attente",
        ];
        for t in account {
            assert!(ACCOUNT.is_match(t.as_bytes()), "pattern: {t}");
            assert!(
                ACCOUNT_KEY
                    .as_ref()
                    .is_some_and(|k| k.is_match(t.as_bytes())),
                "keyword: {t}"
            );
        }
        let prize = [
            "You've been selected",
            "You have\r\n won",
            "claim your gift",
            "200 Free Spins",
            "gratis spins",
            "Carte cadeau",
            "cartão presente",
            "Sie haben gewonnen",
            "você ganhou",
            "has ganado",
            "vous avez gagné",
            "je hebt gewonnen",
            "No Deposit bonus",
            "ohne Einzahlung",
            "sin depósito",
            "Willkommensbonus",
            "receive 500 USDT",
            "relief fund of USD 2 million",
        ];
        for t in prize {
            assert!(PRIZE.is_match(t.as_bytes()), "pattern: {t}");
            assert!(
                PRIZE_KEY.as_ref().is_some_and(|k| k.is_match(t.as_bytes())),
                "keyword: {t}"
            );
        }
    }

    fn scan(from: &str, subject: &str, body: &str) -> Vec<String> {
        let raw = format!(
            "From: {from}\r\nSubject: {subject}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        Lures.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn lures_with_a_link_elsewhere() {
        let link = r#"<a href="https://secure-check.example.net/x">here</a>"#;
        for (subject, body, want) in [
            (
                "Action required",
                format!("<p>Your account has been\r\n <b>suspended</b>. Click {link}</p>"),
                vec!["LURE_ACCOUNT"],
            ),
            (
                "Aviso",
                format!("Detectamos um novo acesso a sua conta. {link}"),
                vec!["LURE_ACCOUNT"],
            ),
            (
                "Ihr Paket",
                format!("Ihr Paket konnte nicht zugestellt werden. {link}"),
                vec!["LURE_ACCOUNT"],
            ),
            (
                "Congratulations",
                format!("You have won! Claim your reward {link}"),
                vec!["LURE_PRIZE"],
            ),
            ("Minutes", format!("The meeting notes are {link}"), vec![]),
            (
                "Airdrop",
                format!("You are eligible to claim 500 USDT tokens {link}"),
                vec!["LURE_PRIZE"],
            ),
        ] {
            assert_eq!(
                scan("Service <no-reply@bank.example.com>", subject, &body),
                want,
                "{body}"
            );
        }
    }

    #[test]
    fn links_to_the_sender_itself_are_no_lure() {
        let body = r#"Unusual sign-in activity on your account: <a href="https://account.bank.example.com/review">review</a>"#;
        assert!(scan("Bank <alerts@mail.bank.example.com>", "Security", body).is_empty());
        assert!(
            scan(
                "Bank <alerts@mail.bank.example.com>",
                "Security",
                "Unusual sign-in activity, no link."
            )
            .is_empty()
        );
    }

    #[test]
    fn replies_elsewhere_lead_away_too() {
        let raw = "From: Mr Smith <smith@bank.example.com>\r\nReply-To: claims@other-desk.example.net\r\nSubject: Fund\r\n\r\nYou are the beneficiary of USD 4.5 million.\r\n";
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        Lures.run(&task, &mut r);
        assert!(r.has("LURE_PRIZE"));
    }

    #[test]
    fn long_text_is_bounded() {
        let body = format!(
            "{} Your account has been suspended <a href=\"https://x.example.net/\">x</a>",
            "word ".repeat(20_000)
        );
        assert!(scan("a@b.example.com", "x", &body).is_empty());
    }
}
