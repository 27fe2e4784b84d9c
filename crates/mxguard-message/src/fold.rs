//! Text as a reader sees it, for matching names a sender disguises: the
//! look-alike letters, styled letters, accents, invisible characters and
//! overlays that make "Ρаураl" or "𝐏𝐚𝐲𝐏𝐚𝐥" read as "paypal" on screen
//! while no word filter matches them ([`skeleton`]), and what kind of
//! disguise a short text carries ([`disguise`]).
//!
//! A small fixed table, not Unicode's full confusables list: the letters
//! phishing uses are Cyrillic and Greek look-alikes of Latin, the
//! Mathematical Alphanumeric Symbols, fullwidth forms and accented Latin.
//! No allocation beyond the answer, bounded by the caller's `max`.

/// How a short text (a subject, a display name) is disguised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disguise {
    /// Three or more letters or digits from the Mathematical Alphanumeric
    /// Symbols, fullwidth or enclosed forms (`𝐅𝐑𝐄𝐄`): styled to escape
    /// word filters, since a mail client has bold of its own.
    StyledLetters,
    /// A word that mixes Latin letters with Cyrillic or Greek look-alikes
    /// of Latin ones (`МеtaМask`).
    MixedScript,
    /// Invisible characters, variation selectors or tag characters after
    /// a letter (`Tr\u{E0139}ust`), or strike-through overlays on letters.
    HiddenMarks,
}

impl Disguise {
    pub fn as_str(self) -> &'static str {
        match self {
            Disguise::StyledLetters => "styled letters",
            Disguise::MixedScript => "mixed script",
            Disguise::HiddenMarks => "hidden marks",
        }
    }
}

/// Characters of a text looked at by [`disguise`].
const MAX_DISGUISE_CHARS: usize = 4096;

/// The disguise of `text`, if it has one (the first found, in the order of
/// [`Disguise`]'s variants is not promised).
pub fn disguise(text: &str) -> Option<Disguise> {
    if text.is_ascii() {
        return None;
    }
    let mut styled = 0usize;
    let (mut latin, mut lookalike) = (false, false);
    let mut prev_letter = false;
    for c in text.chars().take(MAX_DISGUISE_CHARS) {
        if is_hidden_mark(c) || is_overlay(c) {
            if prev_letter {
                return Some(Disguise::HiddenMarks);
            }
            continue;
        }
        if styled_ascii(c).is_some() {
            styled += 1;
            if styled >= 3 {
                return Some(Disguise::StyledLetters);
            }
        }
        if c.is_alphanumeric() {
            prev_letter = true;
            if c.is_ascii_alphabetic() {
                latin = true;
            } else if lookalike_latin(c).is_some() {
                lookalike = true;
            }
        } else {
            if latin && lookalike {
                return Some(Disguise::MixedScript);
            }
            prev_letter = false;
            latin = false;
            lookalike = false;
        }
    }
    (latin && lookalike).then_some(Disguise::MixedScript)
}

/// `text` folded to what it shows: lowercase, look-alike and styled
/// letters as their ASCII letter, accents dropped, invisible characters,
/// variation selectors, tags and combining marks removed; other
/// characters lowercased as they are. At most `max` bytes.
pub fn skeleton(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() >= max {
            break;
        }
        if is_hidden_mark(c) || is_combining(c) {
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if let Some(a) = styled_ascii(c)
            .or_else(|| lookalike_latin(c))
            .or_else(|| unaccented(c))
        {
            out.push(a.to_ascii_lowercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    while out.len() > max {
        out.pop();
    }
    out
}

/// Characters that show nothing (or nothing on their own).
fn is_hidden_mark(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{FE00}'..='\u{FE0E}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Combining overlays that strike letters through (`e̷`).
fn is_overlay(c: char) -> bool {
    matches!(c, '\u{0334}'..='\u{0338}' | '\u{20D2}'..='\u{20D3}')
}

fn is_combining(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE0F}'
    )
}

/// The ASCII letter or digit a styled form stands for: Mathematical
/// Alphanumeric Symbols (U+1D400–U+1D7FF), fullwidth forms, circled and
/// squared Latin letters.
fn styled_ascii(c: char) -> Option<char> {
    let n = c as u32;
    let from = |base: u32, offset: u32| char::from_u32(base + offset);
    match n {
        // 13 alphabets of 52 letters (A–Z, a–z), some code points unassigned
        // (their letters are in the Letterlike block; those are not mapped).
        0x1D400..=0x1D6A3 => {
            let i = (n - 0x1D400) % 52;
            if i < 26 {
                from(b'A' as u32, i)
            } else {
                from(b'a' as u32, i - 26)
            }
        }
        // Dotless i and j.
        0x1D6A4 => Some('i'),
        0x1D6A5 => Some('j'),
        // Five styles of digits 0–9.
        0x1D7CE..=0x1D7FF => from(b'0' as u32, (n - 0x1D7CE) % 10),
        // Fullwidth ASCII.
        0xFF10..=0xFF19 => from(b'0' as u32, n - 0xFF10),
        0xFF21..=0xFF3A => from(b'A' as u32, n - 0xFF21),
        0xFF41..=0xFF5A => from(b'a' as u32, n - 0xFF41),
        // Circled, parenthesised and squared letters.
        0x24B6..=0x24CF => from(b'A' as u32, n - 0x24B6),
        0x24D0..=0x24E9 => from(b'a' as u32, n - 0x24D0),
        0x1F130..=0x1F149 => from(b'A' as u32, n - 0x1F130),
        0x1F150..=0x1F169 => from(b'A' as u32, n - 0x1F150),
        0x1F170..=0x1F189 => from(b'A' as u32, n - 0x1F170),
        _ => None,
    }
}

/// The Latin letter a Cyrillic or Greek letter is drawn like, for the
/// letters that are drawn the same in common fonts.
fn lookalike_latin(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic.
        'а' => 'a',
        'А' => 'A',
        'в' | 'В' => 'B',
        'е' | 'ё' => 'e',
        'Е' | 'Ё' => 'E',
        'к' | 'К' => 'K',
        'м' | 'М' => 'M',
        'н' | 'Н' => 'H',
        'о' => 'o',
        'О' => 'O',
        'р' => 'p',
        'Р' => 'P',
        'с' => 'c',
        'С' => 'C',
        'т' | 'Т' => 'T',
        'у' => 'y',
        'У' => 'Y',
        'х' => 'x',
        'Х' => 'X',
        'ѕ' => 's',
        'Ѕ' => 'S',
        'і' => 'i',
        'І' => 'I',
        'ј' => 'j',
        'Ј' => 'J',
        'ԁ' => 'd',
        'һ' => 'h',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ӏ' => 'l',
        // Greek.
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'ο' => 'o',
        'Ρ' => 'P',
        'ρ' => 'p',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        'ν' => 'v',
        'ι' => 'i',
        _ => return None,
    })
}

/// The base letter of an accented Latin letter (Latin-1 and Latin
/// Extended-A, the ones mail uses).
fn unaccented(c: char) -> Option<char> {
    Some(match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'À'..='Å' | 'Ā' | 'Ă' | 'Ą' => 'A',
        'ç' | 'ć' | 'č' => 'c',
        'Ç' | 'Ć' | 'Č' => 'C',
        'è'..='ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'È'..='Ë' | 'Ē' | 'Ė' | 'Ę' | 'Ě' => 'E',
        'ì'..='ï' | 'ī' | 'į' | 'ı' => 'i',
        'Ì'..='Ï' | 'Ī' | 'Į' | 'İ' => 'I',
        'ñ' | 'ń' | 'ň' => 'n',
        'Ñ' | 'Ń' | 'Ň' => 'N',
        'ò'..='ö' | 'ø' | 'ō' | 'ő' => 'o',
        'Ò'..='Ö' | 'Ø' | 'Ō' | 'Ő' => 'O',
        'ù'..='ü' | 'ū' | 'ů' | 'ű' => 'u',
        'Ù'..='Ü' | 'Ū' | 'Ů' | 'Ű' => 'U',
        'ý' | 'ÿ' => 'y',
        'Ý' | 'Ÿ' => 'Y',
        'ś' | 'š' => 's',
        'Ś' | 'Š' => 'S',
        'ź' | 'ż' | 'ž' => 'z',
        'Ź' | 'Ż' | 'Ž' => 'Z',
        'ł' => 'l',
        'Ł' => 'L',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skeletons() {
        for (text, want) in [
            ("PayPal", "paypal"),
            ("\u{1D40F}\u{1D41A}\u{1D432}", "pay"),
            ("МеtaМask", "metamask"),
            ("Tr\u{E0139}\u{E0139}ust Wa\u{E0139}llet", "trust wallet"),
            ("Fa\u{0337}lha na e\u{0337}ntrega", "falha na entrega"),
            ("Crédit Agricole", "credit agricole"),
            ("ＡＭＡＺＯＮ", "amazon"),
            ("Привет", "пpиbet"),
            ("中文", "中文"),
        ] {
            assert_eq!(skeleton(text, 100), want, "{text:?}");
        }
        assert!(skeleton(&"é".repeat(100), 11).len() <= 11);
    }

    #[test]
    fn disguises() {
        for (text, want) in [
            ("Your account", None),
            ("Grüße aus München", None),
            ("Привет, мир: hello world", None),
            ("Поздравляем с Новым годом", None),
            ("✔️ Uw pakketmelding 📦", None),
            ("μTorrent 3.6 released", None),
            (
                "\u{1D418}\u{1D40E}\u{1D414}\u{1D411} PHOTOS",
                Some(Disguise::StyledLetters),
            ),
            ("[Wallеt Suspеnded]", Some(Disguise::MixedScript)),
            (
                "Соngrаtulаtіоns yоur іtеm sоld",
                Some(Disguise::MixedScript),
            ),
            ("U\u{E0139}pgraded", Some(Disguise::HiddenMarks)),
            ("e\u{0337}ntrega", Some(Disguise::HiddenMarks)),
            ("Ac\u{200B}count", Some(Disguise::HiddenMarks)),
        ] {
            assert_eq!(disguise(text), want, "{text:?}");
        }
    }
}
