//! Phrase matching for the language checks (lures): words at an ASCII
//! word start, case-insensitive, any run of white space between the words
//! of a phrase, and "a word of A, then within [`NEAR`] bytes of the same
//! sentence a word of B".
//!
//! Why not a regex set: `A[^.!?]{0,50}B` under Unicode case folding made
//! the lazy DFA build a new state for nearly every byte of text that held
//! several A words (each pending A is a counter), so it thrashed its cache
//! and cost a fifth of the whole scan. Here one aho-corasick pass finds
//! the first token of every word, the rest of a word is checked in place,
//! and the rules look at the few hits: linear in the text, no allocation
//! beyond the hit list, which is bounded by [`MAX_HITS`].
//!
//! Case: ASCII letters fold in ASCII, other letters by their one-letter
//! upper and lower case (ä/Ä, é/É); the phrases are written in lower case.
//!
//! The same pass also reports plain terms ([`PhraseSet::with_terms`]):
//! every occurrence, ASCII case-insensitive, for a check that weighs terms
//! itself (`risky_offers`), so the text is read once for all of them.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

/// Bytes between the end of an A word and the start of a B word, none of
/// them `.`, `!` or `?`: words of one sentence.
pub const NEAR: usize = 50;

/// Word hits kept per text: a hostile text made of keywords costs at most
/// this many, and the rules stop looking there.
pub const MAX_HITS: usize = 4096;

/// One rule of a family. Words are lower case; a space in a word stands
/// for one or more white space characters; a word ending in a space must
/// be followed by white space.
pub enum Rule {
    /// One of `words`, at an ASCII word start when `start_boundary`,
    /// followed by a word end when `end_boundary`.
    Phrase {
        words: &'static [&'static str],
        start_boundary: bool,
        end_boundary: bool,
    },
    /// A word of `a` at a word start, then within [`NEAR`] bytes of one
    /// sentence a word of `b` (at a word start when `b_boundary`, followed
    /// by a word end when `end_boundary`).
    Near {
        a: &'static [&'static str],
        b: &'static [&'static str],
        b_boundary: bool,
        end_boundary: bool,
    },
}

/// Rules grouped in families, compiled once.
pub struct PhraseSet {
    /// The automaton: its match lists, for the states where the walk
    /// ([`PhraseSet::walk`], our own loop over [`Table`]: aho-corasick's
    /// overlapping iterator keeps the state in memory and returns at every
    /// match) stops.
    finder: DFA,
    /// [`PhraseSet::finder`]'s transitions, as the walk reads them.
    table: Table,
    /// Per aho-corasick pattern: the words that start with its token.
    token_words: Vec<Vec<u32>>,
    /// Per word: its tokens after the first.
    rests: Vec<Vec<String>>,
    /// Per aho-corasick pattern: the plain terms it is.
    pattern_terms: Vec<Vec<u32>>,
    rules: Vec<Compiled>,
    /// Texts shorter than twice this (plus the longest pattern) are
    /// walked in one lane ([`PhraseSet::walk`]); tests set it to 0.
    lane_min: usize,
    /// Bytes walked before their matches are read ([`CHUNK`]; tests
    /// make it small).
    chunk: usize,
}

/// See [`PhraseSet::chunk`]: the body texts read (8 KiB at most) are one
/// chunk.
const CHUNK: usize = 16 * 1024;

/// Bytes a lane must have for a text to be walked as two.
const LANE_MIN: usize = 64;

/// Scratch space of [`PhraseSet::scan`], reused across calls.
#[derive(Default)]
pub struct Scratch {
    hits: Vec<Hit>,
    events: Vec<(u32, u32)>,
    later: Vec<(u32, u32)>,
}

/// An occurrence of a plain term ([`PhraseSet::with_terms`]): the term's
/// index and its byte range in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermHit {
    pub term: u32,
    pub start: u32,
    pub end: u32,
}

enum Compiled {
    Phrase {
        family: usize,
        words: Vec<u32>,
        start_boundary: bool,
        end_boundary: bool,
    },
    Near {
        family: usize,
        a: Vec<u32>,
        b: Vec<u32>,
        b_boundary: bool,
        end_boundary: bool,
    },
}

/// A word found in the text: which, and its byte range.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    word: u32,
    start: usize,
    end: usize,
}

impl PhraseSet {
    /// Compiles `families`, each a list of rules. The phrases are constants
    /// of the calling check; a failure to build is a bug its tests catch.
    #[cfg(test)]
    pub fn new(families: &[&[Rule]]) -> Result<PhraseSet, String> {
        PhraseSet::with_terms(families, &[])
    }

    /// Compiles `families`, each a list of rules, and `terms` found in the
    /// same pass: each a literal pattern (a space is one space), matched
    /// with ASCII case folding only, every occurrence reported by
    /// [`PhraseSet::scan`]. The phrases and terms are constants of the
    /// calling checks; a failure to build is a bug their tests catch.
    pub fn with_terms(families: &[&[Rule]], terms: &[&str]) -> Result<PhraseSet, String> {
        let mut words: Vec<&'static str> = Vec::new();
        let mut id = |w: &'static str| -> u32 {
            match words.iter().position(|x| *x == w) {
                Some(i) => i as u32,
                None => {
                    words.push(w);
                    (words.len() - 1) as u32
                }
            }
        };
        let mut rules = Vec::new();
        for (family, list) in families.iter().enumerate() {
            for rule in list.iter() {
                rules.push(match rule {
                    Rule::Phrase {
                        words,
                        start_boundary,
                        end_boundary,
                    } => Compiled::Phrase {
                        family,
                        words: sorted(words.iter().map(|w| id(w)).collect()),
                        start_boundary: *start_boundary,
                        end_boundary: *end_boundary,
                    },
                    Rule::Near {
                        a,
                        b,
                        b_boundary,
                        end_boundary,
                    } => Compiled::Near {
                        family,
                        a: sorted(a.iter().map(|w| id(w)).collect()),
                        b: sorted(b.iter().map(|w| id(w)).collect()),
                        b_boundary: *b_boundary,
                        end_boundary: *end_boundary,
                    },
                });
            }
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut token_words: Vec<Vec<u32>> = Vec::new();
        let mut rests = Vec::new();
        for (i, word) in words.iter().enumerate() {
            if *word != word.to_lowercase() || word.starts_with(' ') || word.is_empty() {
                return Err(format!(
                    "phrase word {word:?}: lower case, no leading space"
                ));
            }
            let mut tokens = word.split(' ');
            let first = tokens.next().unwrap_or_default();
            rests.push(tokens.map(str::to_string).collect());
            for variant in case_variants(first) {
                match patterns.iter().position(|p| *p == variant) {
                    Some(p) => token_words[p].push(i as u32),
                    None => {
                        patterns.push(variant);
                        token_words.push(vec![i as u32]);
                    }
                }
            }
        }
        let mut pattern_terms: Vec<Vec<u32>> = vec![Vec::new(); patterns.len()];
        for (i, term) in terms.iter().enumerate() {
            if term.is_empty() {
                return Err("empty term".to_string());
            }
            match patterns.iter().position(|p| p == term) {
                Some(p) => pattern_terms[p].push(i as u32),
                None => {
                    patterns.push(term.to_string());
                    token_words.push(Vec::new());
                    pattern_terms.push(vec![i as u32]);
                }
            }
        }
        // A full DFA: the overlapping search visits every byte, and a few
        // hundred short words make a small table. No prefilter: the walk
        // visits every byte anyway, and only dead and match states are
        // special without one.
        let finder = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&patterns)
            .map_err(|e| e.to_string())?;
        Ok(PhraseSet {
            table: Table::new(&finder)?,
            finder,
            token_words,
            rests,
            pattern_terms,
            rules,
            lane_min: LANE_MIN,
            chunk: CHUNK,
        })
    }

    /// Marks in `found` (one flag per family) the families with a rule
    /// that matches `text`.
    #[cfg(test)]
    pub fn find(&self, text: &str, found: &mut [bool]) {
        self.scan(text, found, 0, &mut Vec::new(), &mut Scratch::default());
    }

    /// Marks in `found` (one flag per family) the families with a rule
    /// that matches `text`, and in the same pass every occurrence of a
    /// plain term that ends within `text[..term_end]`, appended to `terms`
    /// in the order found. `hits` is scratch space, reused across calls.
    pub fn scan(
        &self,
        text: &str,
        found: &mut [bool],
        term_end: usize,
        terms: &mut Vec<TermHit>,
        scratch: &mut Scratch,
    ) {
        let Scratch {
            hits,
            events,
            later,
        } = scratch;
        hits.clear();
        // Past MAX_HITS words the rules stop looking; terms are still
        // collected (they are bounded by the text: a few per byte).
        let mut words_full = false;
        let aut = &self.finder;
        // The text is walked a chunk at a time, each chunk's matches read
        // before the next is walked: the events of a hostile text (a huge
        // subject of one-byte terms) stay bounded by the chunk.
        let mut state = self.table.start;
        let mut base = 0;
        'text: for chunk in text.as_bytes().chunks(self.chunk) {
            state = self.walk(chunk, base, state, events, later);
            base += chunk.len();
            for &(end, id) in events.iter() {
                let sid = self.table.state(id);
                if !aut.is_match(sid) {
                    // The dead state: not reached by an unanchored search.
                    break 'text;
                }
                let end = end as usize;
                for i in 0..aut.match_len(sid) {
                    let id = aut.match_pattern(sid, i);
                    let start = end - aut.pattern_len(id);
                    let pattern = id.as_usize();
                    if !words_full {
                        for &word in &self.token_words[pattern] {
                            if let Some(word_end) =
                                rest_matches(text, end, &self.rests[word as usize])
                            {
                                hits.push(Hit {
                                    word,
                                    start,
                                    end: word_end,
                                });
                            }
                        }
                        words_full = hits.len() >= MAX_HITS;
                    }
                    if end <= term_end {
                        for &term in &self.pattern_terms[pattern] {
                            terms.push(TermHit {
                                term,
                                start: start as u32,
                                end: end as u32,
                            });
                        }
                    } else if words_full {
                        break 'text;
                    }
                }
            }
        }
        if hits.is_empty() {
            return;
        }
        hits.sort_unstable_by_key(|h| (h.start, h.end));
        let bytes = text.as_bytes();
        for rule in &self.rules {
            match rule {
                Compiled::Phrase {
                    family,
                    words,
                    start_boundary,
                    end_boundary,
                } => {
                    if found[*family] {
                        continue;
                    }
                    found[*family] = hits.iter().any(|h| {
                        contains(words, h.word)
                            && (!start_boundary || boundary(bytes, h.start))
                            && (!end_boundary || boundary(bytes, h.end))
                    });
                }
                Compiled::Near {
                    family,
                    a,
                    b,
                    b_boundary,
                    end_boundary,
                } => {
                    if found[*family] {
                        continue;
                    }
                    found[*family] = hits.iter().any(|first| {
                        contains(a, first.word)
                            && boundary(bytes, first.start)
                            && near_second(hits, bytes, first.end, b, *b_boundary, *end_boundary)
                    });
                }
            }
        }
    }

    /// The overlapping search (aho-corasick's `find_overlapping_iter`)
    /// over `bytes`, a chunk of a text that starts at `base` with the
    /// automaton in state `from`; returns the state at its end. Into
    /// `events`, in text order, the end offset and the [`Table`] id
    /// of every byte where the automaton is in a special state (a match,
    /// or the dead state, which an unanchored search never reaches).
    ///
    /// A long text is walked as two lanes in one loop: each byte's next
    /// state waits on a table load that waits on the state before, so one
    /// lane leaves the core idle between loads, and two independent lanes
    /// nearly halve the time. The second lane starts `max_len - 1` bytes
    /// before the middle and reports only ends past it: the state at a
    /// byte is the longest pattern prefix ending there, at most `max_len`
    /// bytes, so from the middle on the second lane is in the state a
    /// single walk would be in, with the same matches in the same order.
    fn walk(
        &self,
        bytes: &[u8],
        base: usize,
        from: u32,
        events: &mut Vec<(u32, u32)>,
        later: &mut Vec<(u32, u32)>,
    ) -> u32 {
        events.clear();
        later.clear();
        let table = &self.table;
        let (classes, next, special) = (&table.classes, &table.next[..], table.first_special);
        let step = |id: u32, byte: u8| next[(id + u32::from(classes[byte as usize])) as usize];
        let middle = bytes.len() / 2;
        let warm = self.finder.max_pattern_len().saturating_sub(1);
        if middle < warm + self.lane_min {
            let mut id = from;
            for (at, &byte) in bytes.iter().enumerate() {
                id = step(id, byte);
                if id >= special {
                    events.push(((base + at + 1) as u32, id));
                }
            }
            return id;
        }
        let second_from = middle - warm;
        let (first, second) = (&bytes[..middle], &bytes[second_from..]);
        let (mut a, mut b) = (from, table.start);
        for (at, (&x, &y)) in first.iter().zip(second).enumerate() {
            a = step(a, x);
            b = step(b, y);
            if a >= special {
                events.push(((base + at + 1) as u32, a));
            }
            if b >= special && at >= warm {
                later.push(((base + second_from + at + 1) as u32, b));
            }
        }
        for (at, &y) in second.iter().enumerate().skip(first.len()) {
            b = step(b, y);
            if b >= special {
                later.push(((base + second_from + at + 1) as u32, b));
            }
        }
        events.append(later);
        b
    }
}

/// aho-corasick's DFA copied into a table [`PhraseSet::walk`] reads from
/// registers: aho-corasick keeps its table behind an accessor whose
/// bounds and fields the walk reloaded at every byte, with a row per state
/// padded to a power of two. Here a state's id is its row's offset (no
/// multiply), rows hold one entry per byte class, and the special states
/// (matches; the dead state, never reached) come last, so one compare
/// tells them.
struct Table {
    /// Byte → class, the column in a row.
    classes: [u8; 256],
    /// Row-major next states, each an offset into this table.
    next: Vec<u32>,
    /// Ids from here on are special states.
    first_special: u32,
    start: u32,
    /// Row width: the number of classes.
    stride: u32,
    /// Per row: aho-corasick's state, for its match list.
    states: Vec<StateID>,
}

impl Table {
    /// Every state reachable from the unanchored start state, breadth
    /// first, then renumbered with the special ones last.
    fn new(aut: &DFA) -> Result<Table, String> {
        let start = aut.start_state(Anchored::No).map_err(|e| e.to_string())?;
        // aho-corasick's state ids are offsets into its own table: vectors
        // indexed by them tell the states seen and their rows here, with
        // no hashing (the build is part of every process's start).
        let mut seen: Vec<bool> = Vec::new();
        let mut visit = |sid: StateID| {
            let i = sid.as_usize();
            if i >= seen.len() {
                seen.resize(i + 1, false);
            }
            !std::mem::replace(&mut seen[i], true)
        };
        visit(start);
        let mut found = vec![start];
        let mut i = 0;
        while let Some(&sid) = found.get(i) {
            i += 1;
            for byte in 0..=255u8 {
                let next = aut.next_state(Anchored::No, sid, byte);
                if visit(next) {
                    found.push(next);
                }
            }
        }
        let (mut states, special): (Vec<StateID>, Vec<StateID>) =
            found.into_iter().partition(|&sid| !aut.is_special(sid));
        let first_special_row = states.len();
        states.extend(special);
        let mut row_of = vec![u32::MAX; seen.len()];
        for (row, sid) in states.iter().enumerate() {
            row_of[sid.as_usize()] = row as u32;
        }
        // Per byte, the row each state goes to; bytes with the same column
        // share a class, numbered in the columns' sorted order.
        let columns: Vec<Vec<u32>> = (0..=255u8)
            .map(|byte| {
                states
                    .iter()
                    .map(|&sid| row_of[aut.next_state(Anchored::No, sid, byte).as_usize()])
                    .collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..256).collect();
        order.sort_by(|&x, &y| columns[x].cmp(&columns[y]));
        let mut classes = [0u8; 256];
        let mut representatives: Vec<usize> = Vec::new();
        for (k, &byte) in order.iter().enumerate() {
            if k == 0 || columns[byte] != columns[order[k - 1]] {
                representatives.push(byte);
            }
            classes[byte] = (representatives.len() - 1) as u8;
        }
        let stride = representatives.len();
        if states.len().saturating_mul(stride) > u32::MAX as usize {
            return Err("the phrase automaton is too large".to_string());
        }
        let mut next = vec![0u32; states.len() * stride];
        for (class, &byte) in representatives.iter().enumerate() {
            for (row, &to) in columns[byte].iter().enumerate() {
                next[row * stride + class] = to * stride as u32;
            }
        }
        Ok(Table {
            classes,
            next,
            first_special: (first_special_row * stride) as u32,
            start: row_of[start.as_usize()] * stride as u32,
            stride: stride as u32,
            states,
        })
    }

    /// aho-corasick's state for a special state's id.
    fn state(&self, id: u32) -> StateID {
        self.states[(id / self.stride) as usize]
    }
}

/// Whether a hit of `b` starts within [`NEAR`] bytes after `from`, with no
/// sentence end between.
fn near_second(
    hits: &[Hit],
    bytes: &[u8],
    from: usize,
    b: &[u32],
    b_boundary: bool,
    end_boundary: bool,
) -> bool {
    let limit = from + NEAR;
    let first = hits.partition_point(|h| h.start < from);
    hits[first..]
        .iter()
        .take_while(|h| h.start <= limit)
        .any(|h| {
            contains(b, h.word)
                && (!b_boundary || boundary(bytes, h.start))
                && (!end_boundary || boundary(bytes, h.end))
                && memchr::memchr3(b'.', b'!', b'?', &bytes[from..h.start]).is_none()
        })
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v.dedup();
    v
}

fn contains(words: &[u32], word: u32) -> bool {
    words.binary_search(&word).is_ok()
}

/// An ASCII word boundary at byte `i`, as regex's `(?-u:\b)`.
fn boundary(bytes: &[u8], i: usize) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let before = i > 0 && word(bytes[i - 1]);
    let after = bytes.get(i).is_some_and(|&b| word(b));
    before != after
}

/// Every spelling of `token` in upper and lower case of its non-ASCII
/// letters (aho-corasick folds ASCII itself).
fn case_variants(token: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for c in token.chars() {
        let upper = single(c.to_uppercase()).filter(|u| *u != c && !c.is_ascii());
        let mut next = Vec::with_capacity(out.len() * 2);
        for s in &out {
            let mut a = s.clone();
            a.push(c);
            next.push(a);
            if let Some(u) = upper {
                let mut b = s.clone();
                b.push(u);
                next.push(b);
            }
        }
        out = next;
    }
    out
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// Where the word ends when its `rest` tokens follow at `pos`, each
/// after one or more white space characters.
fn rest_matches(text: &str, mut pos: usize, rest: &[String]) -> Option<usize> {
    for token in rest {
        let tail = &text[pos..];
        let skipped: usize = tail
            .chars()
            .take_while(|c| c.is_whitespace())
            .map(char::len_utf8)
            .sum();
        if skipped == 0 {
            return None;
        }
        pos += skipped;
        pos = token_at(text, pos, token)?;
    }
    Some(pos)
}

/// Where `token` (lower case) ends when it is at `pos`, in any case.
fn token_at(text: &str, pos: usize, token: &str) -> Option<usize> {
    let mut chars = text[pos..].char_indices();
    for want in token.chars() {
        let (_, got) = chars.next()?;
        let got = if got.is_ascii() {
            got.to_ascii_lowercase()
        } else {
            single(got.to_lowercase()).unwrap_or(got)
        };
        if got != want {
            return None;
        }
    }
    Some(chars.next().map_or(text.len(), |(i, _)| pos + i))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeatable stream of pseudo-random numbers (an LCG) for the
    /// generated texts.
    fn numbers(mut seed: u64) -> impl FnMut() -> usize {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        }
    }

    fn set() -> PhraseSet {
        PhraseSet::new(&[
            &[Rule::Near {
                a: &["account", "konto"],
                b: &["suspend", "on hold", "gesperrt", "eingeschränkt"],
                b_boundary: true,
                end_boundary: false,
            }],
            &[Rule::Phrase {
                words: &["novo acesso", "lock "],
                start_boundary: true,
                end_boundary: true,
            }],
            &[Rule::Near {
                a: &["receive"],
                b: &["token", "tokens", "$"],
                b_boundary: false,
                end_boundary: true,
            }],
        ])
        .unwrap()
    }

    fn found(text: &str) -> [bool; 3] {
        let mut f = [false; 3];
        set().find(text, &mut f);
        f
    }

    #[test]
    fn near_words_in_one_sentence() {
        assert_eq!(
            found("Your ACCOUNT has been Suspended"),
            [true, false, false]
        );
        assert_eq!(found("Ihr Konto wurde EINGESCHRÄNKT"), [true, false, false]);
        assert_eq!(found("account is\r\n on \u{a0} hold"), [true, false, false]);
        // A sentence end between, too far apart, or no word start.
        assert_eq!(found("account. suspended"), [false; 3]);
        assert_eq!(
            found(&format!("account{}suspend", " x".repeat(30))),
            [false; 3]
        );
        assert_eq!(found("subaccount suspended"), [false; 3]);
        assert_eq!(found("account unsuspended"), [false; 3]);
        // Within the limit exactly.
        assert_eq!(
            found(&format!("account{}suspend", "x".repeat(49) + " ")),
            [true, false, false]
        );
    }

    #[test]
    fn phrases_need_white_space_and_boundaries() {
        assert_eq!(found("um novo\u{a0}acesso"), [false, true, false]);
        assert_eq!(found("um novoacesso"), [false; 3]);
        assert_eq!(found("um novo acessos"), [false; 3]);
        assert_eq!(found("screen lock  now"), [false, true, false]);
        assert_eq!(found("screen lock"), [false; 3]);
    }

    #[test]
    fn end_boundary_and_no_start_boundary() {
        assert_eq!(found("receive 5 tokens now"), [false, false, true]);
        assert_eq!(found("receive 5 tokenised"), [false; 3]);
        assert_eq!(found("receive US$500"), [false, false, true]);
    }

    /// A text of one-byte matches (a hostile subject) keeps its match
    /// list to a chunk, not the text.
    #[test]
    fn match_events_are_bounded_by_the_chunk() {
        let set = set();
        let text = "$".repeat(200_000);
        let mut scratch = Scratch::default();
        set.scan(&text, &mut [false; 3], 0, &mut Vec::new(), &mut scratch);
        assert!(scratch.events.len() >= CHUNK / 2);
        assert!(scratch.events.capacity() <= 2 * CHUNK);
    }

    #[test]
    fn hostile_texts_are_bounded() {
        let text = "account ".repeat(20_000);
        assert_eq!(found(&text), [false; 3]);
        let text = "é".repeat(10_000) + "ü";
        assert_eq!(found(&text), [false; 3]);
    }

    #[test]
    fn bad_words_are_refused() {
        assert!(
            PhraseSet::new(&[&[Rule::Phrase {
                words: &["Account"],
                start_boundary: true,
                end_boundary: false,
            }]])
            .is_err()
        );
    }

    /// The DFA walk must report what aho-corasick's own overlapping search
    /// reports, in the same order: the lure rules read hits in order, and an
    /// aho-corasick upgrade that changed which states are special would show
    /// here first.
    #[test]
    fn dfa_walk_finds_what_find_overlapping_iter_finds() {
        let terms = [
            "a", "aa", "ab", "b", "ba", "aab", "abab", "é", "aé", "éa", "b b", " ",
        ];
        let set = PhraseSet::with_terms(&[], &terms).unwrap();
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(terms)
            .unwrap();
        let alphabet = ["a", "A", "b", "B", " ", "é", "É", "x"];
        let mut next = numbers(99);
        let mut two_lanes = PhraseSet::with_terms(&[], &terms).unwrap();
        two_lanes.lane_min = 0;
        two_lanes.chunk = 13;
        for _ in 0..100_000 {
            let len = next() % 40;
            let s: String = (0..len)
                .map(|_| alphabet[next() % alphabet.len()])
                .collect();
            let want: Vec<_> = ac
                .find_overlapping_iter(&s)
                .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
                .collect();
            for set in [&set, &two_lanes] {
                let mut got = Vec::new();
                set.scan(&s, &mut [], s.len(), &mut got, &mut Scratch::default());
                let got: Vec<_> = got
                    .iter()
                    .map(|t| (t.term as usize, t.start as usize, t.end as usize))
                    .collect();
                assert_eq!(got, want, "{s:?}");
            }
        }
    }

    /// The lure rules and offer terms give the same families and terms
    /// walked in two lanes as in one, on texts made of their own words.
    #[test]
    fn two_lanes_find_what_one_lane_finds_with_the_real_tables() {
        use crate::checks::{lures, risky_offers};
        let families = lures::families();
        let words = risky_offers::term_words();
        let one = PhraseSet::with_terms(&families, &words).unwrap();
        let mut two = PhraseSet::with_terms(&families, &words).unwrap();
        two.lane_min = 0;
        two.chunk = 97;
        let mut vocabulary: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        for rule in families.iter().flat_map(|f| f.iter()) {
            match rule {
                Rule::Phrase { words, .. } => {
                    vocabulary.extend(words.iter().map(|w| w.to_string()))
                }
                Rule::Near { a, b, .. } => {
                    vocabulary.extend(a.iter().chain(b.iter()).map(|w| w.to_string()))
                }
            }
        }
        vocabulary.extend([" ", ". ", "x", "Ünd ", "\u{a0}", "ACCOUNT "].map(String::from));
        let mut next = numbers(7);
        let (mut seen_terms, mut seen_families) = (0, 0);
        for _ in 0..20_000 {
            let n = next() % 60;
            let text: String = (0..n)
                .map(|_| vocabulary[next() % vocabulary.len()].as_str())
                .collect();
            let term_end = next() % (text.len() + 1);
            let run = |set: &PhraseSet| {
                let mut found = vec![false; families.len()];
                let mut terms = Vec::new();
                set.scan(
                    &text,
                    &mut found,
                    term_end,
                    &mut terms,
                    &mut Scratch::default(),
                );
                (found, terms)
            };
            let (a, b) = (run(&one), run(&two));
            assert_eq!(a, b, "{text:?}");
            seen_terms += a.1.len();
            seen_families += a.0.iter().filter(|f| **f).count();
        }
        assert!(seen_terms > 10_000, "the texts hold terms: {seen_terms}");
        assert!(
            seen_families > 1_000,
            "the texts hold lures: {seen_families}"
        );
    }

    /// The copied table visits aho-corasick's own states: the same special
    /// states at the same bytes as a walk of aho-corasick's DFA, on the
    /// real tables and on bytes of every value.
    #[test]
    fn the_table_walks_as_aho_corasick_s_dfa() {
        let set = crate::lead_text::language();
        let aut = &set.finder;
        let mut next = numbers(3);
        let words = ["account ", "verify", "free ", "Bitcoin", "$", "Konto ", "é"];
        let (mut events, mut later) = (Vec::new(), Vec::new());
        let mut specials = 0;
        for _ in 0..5_000 {
            let mut text = Vec::new();
            for _ in 0..next() % 80 {
                match next() % 3 {
                    0 => text.push((next() % 256) as u8),
                    _ => text.extend_from_slice(words[next() % words.len()].as_bytes()),
                }
            }
            let mut want = Vec::new();
            let mut sid = aut.start_state(Anchored::No).unwrap();
            for (at, &byte) in text.iter().enumerate() {
                sid = aut.next_state(Anchored::No, sid, byte);
                if aut.is_special(sid) {
                    want.push((at + 1, sid));
                }
            }
            set.walk(&text, 0, set.table.start, &mut events, &mut later);
            let got: Vec<_> = events
                .iter()
                .map(|&(end, id)| (end as usize, set.table.state(id)))
                .collect();
            assert_eq!(got, want, "{text:?}");
            specials += want.len();
        }
        assert!(specials > 10_000, "matches were walked: {specials}");
    }
}
