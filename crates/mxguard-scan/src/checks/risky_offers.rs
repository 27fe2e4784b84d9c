//! Offers that are unsolicited wherever they land: online-casino bonuses
//! and crypto giveaways. Both are how a lure pays today: a casino
//! "welcome bonus with free spins" from a throw-away domain is an
//! affiliate's or a fraudster's sign-up funnel, and an "airdrop to claim"
//! or a wallet to connect is how crypto drainers empty a wallet. A
//! person writing about a casino or a wallet names one idea; an offer
//! stacks several (a casino, free spins, a deposit bonus), so the rules
//! want two distinct ideas of a family, or one that only an offer uses
//! (an airdrop, a seed phrase).
//!
//! LURE_PRIZE (`lures`) reads prize sentences in general; these read
//! what the prize is, from the subject's first
//! [`crate::lead_text::MAX_SUBJECT_TERMS`] bytes and the first
//! [`crate::lead_text::MAX_PART`] bytes of each text part
//! ([`crate::lead_text::MAX_TEXT`] in all), ASCII case-insensitive, no
//! regex and no copy of the text. The terms are found in the same
//! automaton pass as the lures' phrases ([`Task::lead_hits`]); this check
//! takes them leftmost-longest, one term where several overlap.

use super::Check;
use crate::Task;
use crate::lead_text::{MAX_SUBJECT_TERMS, head, lead_texts};
use crate::phrases::TermHit;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;

const GROUP: &str = "phishing";

/// The ideas a term stands for: two terms of one idea count once.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Idea {
    Casino,
    FreeSpins,
    DepositBonus,
    WelcomeBonus,
    Slots,
    Betting,
    /// An idea only a crypto giveaway or drainer uses.
    CryptoStrong,
    Claim,
    /// Something a wallet holds or does.
    CryptoAsset,
    /// The crypto world by name.
    Crypto,
}

/// (term, idea, whole word): a term is matched at a word start; a whole
/// word must end there too (`eth`, not `method`; `nft`, not `nfts`'s
/// cousins elsewhere). Lower case; matched ASCII case-insensitively.
const TERMS: &[(&str, Idea, bool)] = &[
    ("casino", Idea::Casino, false),
    ("kasino", Idea::Casino, false),
    ("cassino", Idea::Casino, false),
    ("free spin", Idea::FreeSpins, false),
    ("freispiel", Idea::FreeSpins, false),
    ("giros gratis", Idea::FreeSpins, true),
    ("rodadas grátis", Idea::FreeSpins, true),
    ("rodadas gratis", Idea::FreeSpins, true),
    ("tours gratuits", Idea::FreeSpins, true),
    ("gratis spins", Idea::FreeSpins, true),
    ("giri gratis", Idea::FreeSpins, true),
    ("no deposit", Idea::DepositBonus, true),
    ("no-deposit", Idea::DepositBonus, true),
    ("ohne einzahlung", Idea::DepositBonus, true),
    ("sans dépôt", Idea::DepositBonus, true),
    ("sin depósito", Idea::DepositBonus, true),
    ("sem depósito", Idea::DepositBonus, true),
    ("deposit bonus", Idea::DepositBonus, false),
    ("einzahlungsbonus", Idea::DepositBonus, false),
    ("first deposit", Idea::DepositBonus, true),
    ("ersten einzahlung", Idea::DepositBonus, false),
    ("primeiro depósito", Idea::DepositBonus, true),
    ("premier dépôt", Idea::DepositBonus, true),
    ("welcome bonus", Idea::WelcomeBonus, false),
    ("willkommensbonus", Idea::WelcomeBonus, false),
    ("bonus de bienvenue", Idea::WelcomeBonus, true),
    ("bono de bienvenida", Idea::WelcomeBonus, true),
    ("bônus de boas-vindas", Idea::WelcomeBonus, true),
    ("welkomstbonus", Idea::WelcomeBonus, false),
    ("welcome package", Idea::WelcomeBonus, false),
    ("willkommenspaket", Idea::WelcomeBonus, false),
    ("slot game", Idea::Slots, false),
    ("slot machine", Idea::Slots, false),
    ("online slots", Idea::Slots, true),
    ("spielautomat", Idea::Slots, false),
    ("tragamonedas", Idea::Slots, false),
    ("sportwetten", Idea::Betting, false),
    ("sports betting", Idea::Betting, true),
    ("apostas esportivas", Idea::Betting, true),
    ("apuestas deportivas", Idea::Betting, true),
    ("paris sportifs", Idea::Betting, true),
    ("wagering requirement", Idea::Betting, false),
    ("airdrop", Idea::CryptoStrong, false),
    ("seed phrase", Idea::CryptoStrong, false),
    ("recovery phrase", Idea::CryptoStrong, false),
    ("secret phrase", Idea::CryptoStrong, false),
    ("connect your wallet", Idea::CryptoStrong, true),
    ("connect wallet", Idea::CryptoStrong, true),
    ("walletconnect", Idea::CryptoStrong, true),
    ("claim", Idea::Claim, false),
    ("resgat", Idea::Claim, false),
    ("einlösen", Idea::Claim, true),
    ("reclam", Idea::Claim, false),
    ("réclamer", Idea::Claim, true),
    ("token", Idea::CryptoAsset, false),
    ("wallet", Idea::CryptoAsset, false),
    ("nft", Idea::CryptoAsset, false),
    ("staking", Idea::CryptoAsset, true),
    ("mint", Idea::CryptoAsset, true),
    ("crypto", Idea::Crypto, false),
    ("krypto", Idea::Crypto, false),
    ("bitcoin", Idea::Crypto, false),
    ("ethereum", Idea::Crypto, false),
    ("blockchain", Idea::Crypto, false),
    ("usdt", Idea::Crypto, true),
    ("usdc", Idea::Crypto, true),
    ("btc", Idea::Crypto, true),
    ("eth", Idea::Crypto, true),
    ("xrp", Idea::Crypto, true),
    ("web3", Idea::Crypto, true),
    ("defi", Idea::Crypto, true),
];

/// The terms, for the shared automaton ([`crate::lead_text`]); a term's
/// index is its index in [`TERMS`].
pub(crate) fn term_words() -> Vec<&'static str> {
    TERMS.iter().map(|t| t.0).collect()
}

/// The ideas found in a text, as bits of [`Idea`]'s discriminants.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Ideas(u32);

impl Ideas {
    fn add(&mut self, idea: Idea) {
        self.0 |= 1 << idea as u32;
    }

    fn has(self, idea: Idea) -> bool {
        self.0 & (1 << idea as u32) != 0
    }

    fn gambling(self) -> usize {
        [
            Idea::Casino,
            Idea::FreeSpins,
            Idea::DepositBonus,
            Idea::WelcomeBonus,
            Idea::Slots,
            Idea::Betting,
        ]
        .iter()
        .filter(|i| self.has(**i))
        .count()
    }

    /// An airdrop or a wallet to connect; or a claim of a crypto asset
    /// named as crypto.
    fn crypto_giveaway(self) -> bool {
        self.has(Idea::CryptoStrong)
            || (self.has(Idea::Claim) && self.has(Idea::CryptoAsset) && self.has(Idea::Crypto))
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Adds the ideas of `text` given every occurrence of a term in it
/// (`hits`, any order): leftmost-longest, as a search that takes the
/// earliest term, the longest of those starting there, and goes on after
/// its end; then a term at a word start (and end, for a whole word) counts.
fn ideas_in(text: &[u8], hits: &mut [TermHit], ideas: &mut Ideas) {
    hits.sort_unstable_by_key(|h| (h.start, Reverse(h.end)));
    let mut next = 0;
    for h in hits.iter() {
        let (start, end) = (h.start as usize, h.end as usize);
        if start < next {
            continue;
        }
        next = end;
        let Some(&(_, idea, whole)) = TERMS.get(h.term as usize) else {
            continue;
        };
        if start > 0 && text.get(start - 1).is_some_and(|&b| is_word_byte(b)) {
            continue;
        }
        if whole && text.get(end).is_some_and(|&b| is_word_byte(b)) {
            continue;
        }
        ideas.add(idea);
    }
}

/// `[risky_offers]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskyOffersConfig {
    pub enabled: bool,
}

impl Default for RiskyOffersConfig {
    fn default() -> Self {
        RiskyOffersConfig { enabled: true }
    }
}

impl Section for RiskyOffersConfig {
    const KEY: &'static str = "risky_offers";
}

pub struct RiskyOffers;

impl Check for RiskyOffers {
    fn name(&self) -> &'static str {
        "risky_offers"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "GAMBLING_OFFER",
                2.0,
                GROUP,
                "An online-casino offer: two of casino, free spins, deposit or welcome bonus, slots, betting",
            ),
            SymbolDef::new(
                "CRYPTO_GIVEAWAY",
                1.5,
                GROUP,
                "A crypto giveaway: an airdrop, a seed phrase or a wallet to connect, or crypto tokens to claim",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let mut ideas = Ideas::default();
        let terms = &task.lead_hits().terms;
        if !terms.is_empty() {
            let parts = task.text_parts();
            let subject = task.message.subject().map(|s| head(s, MAX_SUBJECT_TERMS));
            let texts: Vec<&str> = lead_texts(subject, &parts).collect();
            let mut hits = Vec::new();
            for group in terms.chunk_by(|a, b| a.0 == b.0) {
                let Some(text) = texts.get(group[0].0 as usize) else {
                    continue;
                };
                hits.clear();
                hits.extend(group.iter().map(|(_, h)| *h));
                ideas_in(text.as_bytes(), &mut hits, &mut ideas);
            }
        }
        let gambling = ideas.gambling();
        if gambling >= 2 {
            results.insert("GAMBLING_OFFER", vec![gambling.to_string()]);
        }
        if ideas.crypto_giveaway() {
            results.insert("CRYPTO_GIVEAWAY", vec![]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    /// The ideas of `text` through the scan's shared automaton.
    fn ideas(text: &str) -> Ideas {
        let mut found = [false; crate::checks::lures::FAMILIES];
        let mut hits = Vec::new();
        crate::lead_text::language().scan(
            text,
            &mut found,
            text.len(),
            &mut hits,
            &mut Default::default(),
        );
        let mut i = Ideas::default();
        ideas_in(text.as_bytes(), &mut hits, &mut i);
        i
    }

    /// The check as it was before its terms joined the lures' automaton:
    /// its own leftmost-longest automaton over the terms.
    fn reference(text: &str) -> Ideas {
        use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
        use std::sync::LazyLock;
        static AUTOMATON: LazyLock<AhoCorasick> = LazyLock::new(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::DFA))
                .build(TERMS.iter().map(|t| t.0))
                .unwrap()
        });
        let text = text.as_bytes();
        let mut ideas = Ideas::default();
        for m in AUTOMATON.find_iter(text) {
            let (_, idea, whole) = TERMS[m.pattern().as_usize()];
            if m.start() > 0 && is_word_byte(text[m.start() - 1]) {
                continue;
            }
            if whole && text.get(m.end()).is_some_and(|&b| is_word_byte(b)) {
                continue;
            }
            ideas.add(idea);
        }
        ideas
    }

    #[test]
    fn the_shared_pass_agrees_with_the_own_automaton() {
        for t in [
            "casino free spins",
            "free spinfree spin",
            "no-deposit no deposit bonus",
            "deposit bonusdeposit bonus",
            "claim token eth ethereum",
            "wallet walletconnect connect your wallet",
            "CASINOCASINO Casino",
            "sem depósitos sem depósito",
            "xethx eth. web3defi defi",
            "é\u{200B}casino\u{301} free spin",
        ] {
            assert_eq!(ideas(t), reference(t), "{t:?}");
        }
    }

    #[test]
    fn the_shared_pass_agrees_with_the_own_automaton_on_the_corpora() {
        let mut compared = 0;
        crate::test_corpus::for_each_message(|path, raw| {
            let env = Envelope::default();
            let task = Task::new(&env, raw, 1 << 22);
            let parts = task.text_parts();
            let subject = task.message.subject().map(|s| head(s, MAX_SUBJECT_TERMS));
            let mut old = Ideas::default();
            for t in lead_texts(subject, &parts) {
                old.0 |= reference(t).0;
            }
            let mut r = ScanResults::default();
            RiskyOffers.run(&task, &mut r);
            let names: Vec<String> = r.hits.into_iter().map(|h| h.name).collect();
            let want: Vec<&str> = [
                (old.gambling() >= 2).then_some("GAMBLING_OFFER"),
                old.crypto_giveaway().then_some("CRYPTO_GIVEAWAY"),
            ]
            .into_iter()
            .flatten()
            .collect();
            assert_eq!(names, want, "{}", path.display());
            compared += 1;
        });
        eprintln!("compared {compared} messages");
    }

    fn scan(subject: &str, body: &str) -> Vec<String> {
        let raw = format!(
            "From: a@example.com\r\nSubject: {subject}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        RiskyOffers.run(&task, &mut r);
        r.hits.into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn casino_offers() {
        assert_eq!(
            scan(
                "Your bonus",
                "<p>SAVANNA WINS <b>CASINO</b>: 500% Bonus + 500 Freispiele!</p>"
            ),
            vec!["GAMBLING_OFFER"]
        );
        assert_eq!(
            scan(
                "200 FREE SPINS Welcome Bonus Unlocked",
                "<a href=x>Sign up &amp; play</a>"
            ),
            vec!["GAMBLING_OFFER"]
        );
        // One idea is talk, not an offer; a word that contains a term is
        // another word.
        assert!(scan("Trip", "We went to the casino in Monte Carlo.").is_empty());
        assert!(
            scan(
                "Jackpot",
                "We hit the jackpot with the new hire; the casinos nearby closed."
            )
            .is_empty()
        );
        assert_eq!(ideas("occasional spinoffs").gambling(), 0);
    }

    #[test]
    fn crypto_giveaways() {
        assert_eq!(
            scan(
                "Claim Your BWB Airdrop Today",
                "Don't miss your chance to secure early airdrop points."
            ),
            vec!["CRYPTO_GIVEAWAY"]
        );
        assert_eq!(
            scan(
                "Welcome Bonus",
                "Claim 500 USDT token + 200 USDT coupon. Sign up and earn."
            ),
            vec!["CRYPTO_GIVEAWAY"]
        );
        // A claim and a token without crypto; a wallet in politics; the
        // method that contains "eth".
        assert!(scan("Insurance", "Please claim your parking token at the desk.").is_empty());
        assert!(
            scan(
                "News",
                "Donors are reaching into their wallets; few candidates can claim military experience."
            )
            .is_empty()
        );
        assert!(!ideas("the method of claiming the token").has(Idea::Crypto));
    }

    #[test]
    fn long_and_odd_text_is_safe() {
        let long = "casino ".repeat(20_000);
        assert!(scan("x", &long).is_empty(), "one idea however often");
        let _ = scan("\u{0}\u{FFFD}", "é\u{200B}casino\u{301} free spin");
    }
}
