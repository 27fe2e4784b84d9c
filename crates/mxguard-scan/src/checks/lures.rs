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
//! [`MAX_TEXT`] in all, read in place (no copy); one pass of
//! [`crate::phrases::PhraseSet`] over each text (aho-corasick over the
//! phrases' words, then the near-word rules on the hits), linear in the
//! text. The pass is shared with `risky_offers` ([`Task::lead_hits`]).

use super::Check;
use crate::Task;
use crate::phrases::Rule;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::domain::organisational;
use serde::{Deserialize, Serialize};

pub use crate::lead_text::{MAX_PART, MAX_TEXT};

/// Words at a word start, within one sentence (see [`crate::phrases::NEAR`]).
const fn near(a: &'static [&'static str], b: &'static [&'static str]) -> Rule {
    Rule::Near {
        a,
        b,
        b_boundary: true,
        end_boundary: false,
    }
}

/// Phrases at a word start.
const fn phrase(words: &'static [&'static str]) -> Rule {
    Rule::Phrase {
        words,
        start_boundary: true,
        end_boundary: false,
    }
}

/// An account, mailbox or wallet that is threatened, verified, accessed
/// or about to lose something; a payment that failed; a parcel held. One
/// family per entry, in [`ACCOUNT_NAMES`]' order.
const ACCOUNT: [&[Rule]; 7] = [
    // Something of the reader's is suspended, locked, limited.
    &[near(
        &[
            "account", "mailbox", "wallet", "konto", "postfach", "conta", "cuenta", "compte",
            "rekening",
        ],
        &[
            "suspend",
            "locked",
            "lock ",
            "limited",
            "restricted",
            "disabled",
            "deactivat",
            "terminat",
            "blocked",
            "frozen",
            "freez",
            "on hold",
            "gesperrt",
            "eingeschränkt",
            "eingeschrankt",
            "bloquead",
            "suspens",
            "suspendu",
            "bloqué",
            "bloque",
            "geblokkeerd",
            "opgeschort",
        ],
    )],
    // Verify / confirm / update what it wants.
    &[near(
        &[
            "verify",
            "confirm",
            "validate",
            "reactivate",
            "re-activate",
            "unlock",
            "restore",
            "bestätigen",
            "verifizieren",
            "aktualisieren",
            "confirme",
            "atualize",
            "verifique",
            "confirmar",
            "actualice",
            "vérifier",
            "vérifiez",
            "confirmer",
            "confirmez",
            "bevestig",
            "verifieer",
        ],
        &[
            "account",
            "identity",
            "information",
            "details",
            "wallet",
            "password",
            "mailbox",
            "payment",
            "billing",
            "card",
            "konto",
            "daten",
            "identität",
            "zahlung",
            "conta",
            "dados",
            "cadastro",
            "cuenta",
            "datos",
            "identidad",
            "compte",
            "identité",
            "coordonnées",
            "gegevens",
            "rekening",
            "angaben",
            "informações",
        ],
    )],
    // A sign-in or activity nobody asked for.
    &[
        near_phrase(),
        Rule::Phrase {
            words: &["novo acesso"],
            start_boundary: true,
            end_boundary: true,
        },
        Rule::Phrase {
            words: &[
                "actividad sospechosa",
                "actividad inusual",
                "connexion inhabituelle",
            ],
            start_boundary: false,
            end_boundary: false,
        },
    ],
    // A password that expires.
    &[phrase(&[
        "password expire",
        "password will expire",
        "passwort läuft",
        "passwort abgelaufen",
        "senha expira",
        "senha vence",
    ])],
    // A mailbox or cloud storage that is full; photos to be deleted.
    &[
        near(
            &[
                "mailbox",
                "storage",
                "quota",
                "speicherplatz",
                "armazenamento",
                "almacenamiento",
                "stockage",
            ],
            &[
                "full", "exceeded", "almost", "voll", "cheio", "lleno", "plein",
            ],
        ),
        phrase(&[
            "photos and videos deleted",
            "photos and videos removed",
            "photos and videos will be deleted",
            "photos and videos will be removed",
            "photos & videos deleted",
            "photos & videos removed",
            "photos & videos will be deleted",
            "photos & videos will be removed",
        ]),
        Rule::Phrase {
            words: &["fotos und videos", "fotos e vídeos", "fotos y vídeos"],
            start_boundary: false,
            end_boundary: false,
        },
    ],
    // A payment that failed.
    &[
        near(
            &["payment", "billing"],
            &["declined", "failed", "expired", "unsuccessful"],
        ),
        Rule::Near {
            a: &["zahlung"],
            b: &["fehlgeschlagen", "abgelehnt"],
            b_boundary: false,
            end_boundary: false,
        },
        phrase(&[
            "pagamento recusado",
            "pagamento pendente",
            "pago rechazado",
            "pago pendiente",
        ]),
    ],
    // A parcel held until the reader acts or pays.
    &[near(
        &[
            "parcel",
            "shipment",
            "delivery",
            "paket",
            "pakket",
            "encomenda",
            "entrega",
            "colis",
            "livraison",
            "paquete",
            "envío",
        ],
        &[
            "pending",
            "on hold",
            "held",
            "failed",
            "unable",
            "suspended",
            "retida",
            "pendente",
            "bloquead",
            "taxad",
            "zugestellt",
            "afwachting",
            "en attente",
            "retenu",
            "suspendid",
            "fallid",
            "detenid",
            "retenid",
        ],
    )],
];

/// An unasked-for sign-in: an adjective, then what happened.
const fn near_phrase() -> Rule {
    phrase(&[
        "unusual sign-in",
        "unusual sign in",
        "unusual signin",
        "unusual log-in",
        "unusual log in",
        "unusual login",
        "unusual activity",
        "unusual access",
        "suspicious sign-in",
        "suspicious sign in",
        "suspicious signin",
        "suspicious log-in",
        "suspicious log in",
        "suspicious login",
        "suspicious activity",
        "suspicious access",
        "unfamiliar sign-in",
        "unfamiliar sign in",
        "unfamiliar signin",
        "unfamiliar log-in",
        "unfamiliar log in",
        "unfamiliar login",
        "unfamiliar activity",
        "unfamiliar access",
        "unauthorised sign-in",
        "unauthorised sign in",
        "unauthorised signin",
        "unauthorised log-in",
        "unauthorised log in",
        "unauthorised login",
        "unauthorised activity",
        "unauthorised access",
        "unauthorized sign-in",
        "unauthorized sign in",
        "unauthorized signin",
        "unauthorized log-in",
        "unauthorized log in",
        "unauthorized login",
        "unauthorized activity",
        "unauthorized access",
        "unrecognised sign-in",
        "unrecognised sign in",
        "unrecognised signin",
        "unrecognised log-in",
        "unrecognised log in",
        "unrecognised login",
        "unrecognised activity",
        "unrecognised access",
        "unrecognized sign-in",
        "unrecognized sign in",
        "unrecognized signin",
        "unrecognized log-in",
        "unrecognized log in",
        "unrecognized login",
        "unrecognized activity",
        "unrecognized access",
        "ungewöhnliche anmeld",
        "ungewöhnliche aktivit",
        "verdächtige anmeld",
        "verdächtige aktivit",
        "acesso suspeit",
        "acesso incomum",
        "atividade suspeit",
        "atividade incomum",
    ])
}

/// Something for nothing: one family.
const PRIZE: [&[Rule]; 1] = [&[
    phrase(&[
        "you've won",
        "you've been selected",
        "you have won",
        "you have been selected",
        "claim your reward",
        "claim your prize",
        "claim your gift",
        "claim your bonus",
        "free spins",
        "freispiele",
        "gratis spins",
        "airdrop",
        "giveaway",
        "gift card",
        "gutschein",
        "cadeaukaart",
        "carte cadeau",
        "cartão presente",
        "sie haben gewonnen",
        "você ganhou",
        "has ganado",
        "vous avez gagné",
        "je hebt gewonnen",
        // Casino bonuses.
        "casino",
        "no deposit",
        "ohne einzahlung",
        "sem depósito",
        "sin depósito",
        "welcome bonus",
        "willkommensbonus",
        // Gift cards in more languages.
        "geschenkkarte",
        "tarjeta regalo",
        "tarjeta de regalo",
        "buono regalo",
        "cadeaubon",
        "vale-presente",
        // "You have been selected" in more languages.
        "sie wurden ausgewählt",
        "você foi selecionado",
        "você foi selecionada",
        "has sido seleccionado",
        "has sido seleccionada",
        "vous avez été sélectionné",
        "je bent geselecteerd",
    ]),
    // Tokens for nothing.
    Rule::Near {
        a: &[
            "claim",
            "eligible",
            "receive",
            "allocation",
            "airdrop",
            "reward",
            "bonus",
        ],
        b: &[
            "token", "tokens", "usdt", "usdc", "xrp", "eth", "btc", "bitcoin", "crypto",
        ],
        b_boundary: true,
        end_boundary: true,
    },
    // Advance fee: a fund or inheritance waiting for the reader.
    Rule::Near {
        a: &[
            "beneficiary",
            "compensation",
            "inheritance",
            "unclaimed",
            "relief fund",
            "donation",
        ],
        b: &["$", "usd", "eur", "€", "million"],
        b_boundary: false,
        end_boundary: false,
    },
]];

/// The account families, then the prize family. They are compiled once,
/// with the offer terms of `risky_offers`, into one set
/// ([`crate::lead_text::LeadHits`]: one pass over each text for both
/// checks). The phrases are constants of this module and a test builds
/// them; were they not to build, the check finds nothing rather than
/// stopping scans.
pub(crate) fn families() -> Vec<&'static [Rule]> {
    let mut families: Vec<&'static [Rule]> = ACCOUNT.to_vec();
    families.extend(PRIZE);
    families
}

/// Flags per family of [`families`]: the account families, then prize.
pub(crate) const FAMILIES: usize = ACCOUNT.len() + PRIZE.len();

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
        // The families found, in [`ACCOUNT`]'s order (the options), then prize.
        let found = task.lead_hits().families;
        let (account, prize) = found.split_at(ACCOUNT.len());
        if account.contains(&true) {
            results.insert(
                "LURE_ACCOUNT",
                ACCOUNT_NAMES
                    .iter()
                    .zip(account)
                    .filter(|(_, hit)| **hit)
                    .map(|(name, _)| name.to_string())
                    .collect(),
            );
        }
        if prize.contains(&true) {
            results.insert("LURE_PRIZE", vec![]);
        }
    }
}

/// The account families, in [`ACCOUNT`]'s order, for the options.
const ACCOUNT_NAMES: [&str; 7] = [
    "threat", "verify", "sign-in", "password", "storage", "payment", "parcel",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lead_text::lead_texts;
    use mxguard_core::Envelope;
    use std::sync::LazyLock;

    #[test]
    fn the_phrases_build() {
        assert!(crate::lead_text::LeadHits::built());
        assert_eq!(ACCOUNT.len(), ACCOUNT_NAMES.len());
    }

    /// The families the scan's set (lure rules and offer terms in one
    /// automaton) finds in `text`.
    fn families(text: &str) -> ([bool; 7], bool) {
        let mut found = [false; FAMILIES];
        crate::lead_text::language().find(text, &mut found);
        let mut account = [false; 7];
        account.copy_from_slice(&found[..7]);
        (account, found[7])
    }

    /// Every family's phrases in the case folding and white space lures use.
    #[test]
    fn every_family_matches_its_phrases() {
        let account = [
            ("Your ACCOUNT has been suspended", 0),
            ("please re-activate your wallet", 1),
            ("Bitte BESTÄTIGEN Sie Ihre Daten", 1),
            ("Vérifiez votre compte", 1),
            ("Bitte bestätigen Sie Ihre Angaben", 1),
            ("Detectamos um novo\u{a0}acesso", 2),
            ("Ungewöhnliche Anmeldung", 2),
            ("actividad sospechosa", 2),
            ("connexion inhabituelle", 2),
            ("Your password will expire", 3),
            ("Senha expira hoje", 3),
            ("Photos and videos will be deleted", 4),
            ("fotos und videos", 4),
            ("Quota exceeded", 4),
            ("payment declined", 5),
            ("Zahlung fehlgeschlagen", 5),
            ("pagamento recusado", 5),
            ("pago rechazado", 5),
            ("Pakket in afwachting", 6),
            ("colis en attente", 6),
        ];
        for (t, family) in account {
            let (found, _) = families(t);
            assert!(found[family], "{t}: {found:?}");
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
            "Herzlichen Glückwunsch, Sie wurden ausgewählt",
            "Parabéns, você foi selecionada",
            "receive 500 USDT",
            "relief fund of USD 2 million",
        ];
        for t in prize {
            assert!(families(t).1, "{t}");
        }
    }

    // The regex sets the phrase rules replaced, kept as the reference the
    // rules are checked against (same families on the same texts).
    /// Words of a phrase apart: up to 50 bytes within a sentence. A byte
    /// class, so the automaton stays small (a Unicode class repeated 50 times
    /// made the scan a third slower); the regexes run on bytes for it.
    const NEAR: &str = r"(?-u:[^.!?]){0,50}";

    /// An account, mailbox or wallet that is threatened, verified, accessed
    /// or about to lose something; a payment that failed; a parcel held.
    pub(super) fn account_patterns() -> Vec<String> {
        let b = r"(?-u:\b)";
        vec![
            // Something of the reader's is suspended, locked, limited.
            format!(
                r"{b}(account|mailbox|wallet|konto|postfach|conta|cuenta|compte|rekening){NEAR}{b}(suspend|locked|lock |limited|restricted|disabled|deactivat|terminat|blocked|frozen|freez|on hold|gesperrt|eingeschr[äa]nkt|bloquead|suspens|suspendu|bloqu[ée]|geblokkeerd|opgeschort)"
            ),
            // Verify / confirm / update what it wants.
            format!(
                r"{b}(verify|confirm|validate|reactivate|re-activate|unlock|restore|bestätigen|verifizieren|aktualisieren|confirme|atualize|verifique|confirmar|actualice|vérifie[rz]|confirme[rz]|bevestig|verifieer){NEAR}{b}(account|identity|information|details|wallet|password|mailbox|payment|billing|card|konto|daten|identität|zahlung|conta|dados|cadastro|cuenta|datos|identidad|compte|identité|coordonnées|gegevens|rekening|angaben|informações)"
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
                r"{b}(parcel|shipment|delivery|paket|pakket|encomenda|entrega|colis|livraison|paquete|envío){NEAR}{b}(pending|on hold|held|failed|unable|suspended|retida|pendente|bloquead|taxad|zugestellt|afwachting|en attente|retenu|suspendid|fallid|detenid|retenid)"
            ),
        ]
    }

    /// Something for nothing.
    pub(super) fn prize_patterns() -> Vec<String> {
        let b = r"(?-u:\b)";
        vec![
            format!(
                r"{b}you('ve| have) (won|been selected)|{b}claim your (reward|prize|gift|bonus)"
            ),
            format!(r"{b}(free spins|freispiele|gratis spins|airdrop|giveaway)"),
            format!(
                r"{b}(gift card|gutschein|cadeaukaart|carte cadeau|cartão presente|geschenkkarte|tarjeta regalo|tarjeta de regalo|buono regalo|cadeaubon|vale-presente)"
            ),
            format!(
                r"{b}(sie haben gewonnen|você ganhou|has ganado|vous avez gagné|je hebt gewonnen)"
            ),
            format!(
                r"{b}(sie wurden ausgewählt|você foi selecionad[oa]|has sido seleccionad[oa]|vous avez été sélectionné|je bent geselecteerd)"
            ),
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

    fn reference_set(patterns: Vec<String>) -> regex::bytes::RegexSet {
        regex::bytes::RegexSet::new(
            patterns
                .into_iter()
                .map(|p| format!("(?i){}", p.replace(' ', r"\s+"))),
        )
        .unwrap()
    }

    fn reference(text: &str) -> ([bool; 7], bool) {
        static SETS: LazyLock<(regex::bytes::RegexSet, regex::bytes::RegexSet)> =
            LazyLock::new(|| {
                (
                    reference_set(account_patterns()),
                    reference_set(prize_patterns()),
                )
            });
        let mut account = [false; 7];
        for i in SETS.0.matches(text.as_bytes()).iter() {
            account[i] = true;
        }
        (account, SETS.1.is_match(text.as_bytes()))
    }

    #[test]
    fn the_rules_agree_with_the_reference_regexes() {
        let texts = [
            "Your account has been  suspended today",
            "account. suspended",
            "subaccount suspended",
            "Your Konto wurde gesperrt, bitte bestätigen Sie Ihre Identität",
            "Unusual sign in from Berlin",
            "unusual  sign-in",
            "Your mailbox is almost full",
            "payment for order 55 was declined",
            "Zahlung ist leider fehlgeschlagen",
            "your parcel is on\thold",
            "You have won a prize",
            "you are eligible to receive 30 ETH now",
            "you are eligible to receive 30 ETHER now",
            "beneficiary of US$ 4,000,000",
            "novo acesso",
            "novo acessos",
            "screen lock  now",
            "wallet lock",
        ];
        for t in texts {
            assert_eq!(families(t), reference(t), "{t}");
        }
    }

    /// The same on every text part of the shared corpora, where present.
    #[test]
    fn the_rules_agree_with_the_reference_regexes_on_the_corpora() {
        let mut compared = 0;
        crate::test_corpus::for_each_message(|path, raw| {
            let env = Envelope::default();
            let task = Task::new(&env, raw, 1 << 22);
            let parts = task.text_parts();
            for t in lead_texts(task.message.subject(), &parts) {
                assert_eq!(families(t), reference(t), "{}: {t:?}", path.display());
                compared += 1;
            }
        });
        eprintln!("compared {compared} texts");
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
