//! Score greylisting with state: what the `greylist` action means once a
//! message has been seen before.
//!
//! Without state, a message scoring in the greylist band (between
//! `[actions] greylist` and `add_header`) is answered 451 at every attempt
//! and never delivered. As rspamd's greylist module does, the first attempt
//! is deferred and remembered; a retry once `[greylist] delay` has passed is
//! delivered, marked with an `X-Greylist` header; a retry too early is
//! deferred again; entries expire.
//!
//! # The key
//!
//! `sgrey:` + hex SHA-256 over, in order, each field prefixed by its
//! length: a version tag, the envelope sender (lower-cased, angle brackets
//! stripped), the number of envelope recipients and the recipients
//! (lower-cased, sorted, duplicates dropped), then the message body (the
//! bytes after the first empty line, CRLF read as LF).
//!
//! Why these and only these: a real MTA retries the same queue file, so the
//! envelope and the body are identical at every attempt, while the header
//! block is not (our own MTA puts a fresh `Received:` line with a new queue
//! id on top of every attempt, and a relay may add trace fields), so no
//! header is hashed. Recipients are sorted because an MTA may list them in
//! another order on the retry. The client address is left out, unlike the
//! triplet greylisting of the policy server: large senders retry from
//! another address of their pool, and the body already ties the key to one
//! message (rspamd's body hash leaves the address out too). A different
//! message differs in its body or its envelope, so it gets its own key.
//!
//! # Lifetimes (the policy server's `[greylist]` options, same meaning)
//!
//! - `delay`: how long after the first attempt a retry is deferred;
//! - `retry_window`: a retry later than this after the first attempt starts
//!   over (the pending entry lives that long in the store);
//! - `max_age`: a message that passed is remembered this long after it was
//!   last seen, so a resend of it passes at once.
//!
//! The decision ([`decide`]) is a pure function of the stored entry, the
//! time and the config, so it is tested with any clock; [`ScoreGreylist`]
//! reads and writes the entry in the [`Store`].

use mxguard_core::config::{GreylistConfig, StoreFailure};
use mxguard_core::envelope::strip_path;
use mxguard_core::{Action, Envelope, SymbolResult, Verdict};
use mxguard_net::burst::{Burst, Report};
use mxguard_store::{Clock, Store, StoreError, SystemClock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

/// The store key prefix: distinct from the policy server's `grey:` triplets.
pub const KEY_PREFIX: &str = "sgrey:";

/// The header a delivered message gets (the policy server's name for it).
pub const HEADER: &str = "X-Greylist";

/// The symbol that says what score greylisting did (rspamd's name), with
/// weight 0: it explains, it does not score.
pub const SYMBOL: &str = "GREYLIST";

/// Bumped when the key composition changes, so old entries are not reused.
const KEY_VERSION: &[u8] = b"mxguard-score-greylist-1";

/// What the store keeps per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Unix seconds of the first attempt (of the current round).
    pub first: u64,
    /// Unix seconds of the latest attempt.
    pub last: u64,
    /// Whether a retry has passed: later attempts pass at once.
    pub passed: bool,
}

/// The answer for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Defer (451); a retry passes in `remaining` seconds.
    Defer { remaining: u64 },
    /// Deliver. `delayed`: seconds since the first attempt, on the first
    /// pass; `None` for a message that had passed before.
    Pass { delayed: Option<u64> },
}

/// A decision and what to store for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub decision: Decision,
    pub entry: Entry,
    /// How long the stored entry lives.
    pub ttl: Duration,
}

/// Decides one attempt at `now` (Unix seconds).
///
/// A new message, one whose pending entry is older than `retry_window`, a
/// passed one unseen for longer than `max_age`, or an entry dated in the
/// future (clock stepped back, or a forged value) starts over: deferred,
/// even with a zero delay, as the policy server does.
pub fn decide(entry: Option<Entry>, now: u64, cfg: &GreylistConfig) -> Step {
    let (delay, window, max_age) = (cfg.delay.0, cfg.retry_window.0, cfg.max_age.0);
    let live = entry.filter(|e| {
        e.first <= now
            && if e.passed {
                now.saturating_sub(e.last) <= max_age
            } else {
                now - e.first <= window
            }
    });
    let Some(e) = live else {
        return Step {
            decision: Decision::Defer { remaining: delay },
            entry: Entry {
                first: now,
                last: now,
                passed: false,
            },
            ttl: Duration::from_secs(window.max(1)),
        };
    };
    let age = now - e.first;
    let passed = Entry {
        first: e.first,
        last: now,
        passed: true,
    };
    if e.passed {
        return Step {
            decision: Decision::Pass { delayed: None },
            entry: passed,
            ttl: Duration::from_secs(max_age.max(1)),
        };
    }
    if age < delay {
        return Step {
            decision: Decision::Defer {
                remaining: delay - age,
            },
            entry: Entry { last: now, ..e },
            // The entry dies when the retry window closes, as it would
            // have without this attempt.
            ttl: Duration::from_secs((window - age).max(1)),
        };
    }
    Step {
        decision: Decision::Pass { delayed: Some(age) },
        entry: passed,
        ttl: Duration::from_secs(max_age.max(1)),
    }
}

/// The store key of a message: see the module documentation for what is
/// hashed and why.
pub fn key(envelope: &Envelope, raw: &[u8]) -> String {
    let mut h = Sha256::new();
    // Length-prefixed, so no two envelopes run into the same bytes.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(KEY_VERSION);
    let sender = envelope.mail_from.as_deref().map(strip_path).unwrap_or("");
    field(sender.to_ascii_lowercase().as_bytes());
    let mut rcpts: Vec<String> = envelope
        .rcpts
        .iter()
        .map(|r| strip_path(r).to_ascii_lowercase())
        .collect();
    rcpts.sort_unstable();
    rcpts.dedup();
    field(&(rcpts.len() as u64).to_le_bytes());
    for r in &rcpts {
        field(r.as_bytes());
    }
    // The body, CRLF read as LF: a front end handing over LF-only bytes
    // (a file, the HTTP API) hashes as the milter's CRLF wire form does.
    let mut rest = body(raw);
    while let Some(cr) = memchr::memchr(b'\r', rest) {
        let (chunk, tail) = rest.split_at(cr);
        h.update(chunk);
        // The CR of a CRLF is dropped (its LF follows); a bare CR is kept.
        if !tail.starts_with(b"\r\n") {
            h.update(b"\r");
        }
        rest = tail.get(1..).unwrap_or_default();
    }
    h.update(rest);
    let digest = h.finalize();
    let mut k = String::with_capacity(KEY_PREFIX.len() + 64);
    k.push_str(KEY_PREFIX);
    for b in digest {
        let _ = write!(k, "{b:02x}");
    }
    k
}

/// The bytes after the header block's end (the first empty line); empty
/// when there is none.
fn body(raw: &[u8]) -> &[u8] {
    if let Some(rest) = raw
        .strip_prefix(b"\r\n")
        .or_else(|| raw.strip_prefix(b"\n"))
    {
        return rest;
    }
    let mut from = 0;
    while let Some(nl) = memchr::memchr(b'\n', raw.get(from..).unwrap_or_default()) {
        let after = from + nl + 1;
        let tail = raw.get(after..).unwrap_or_default();
        if let Some(b) = tail
            .strip_prefix(b"\r\n")
            .or_else(|| tail.strip_prefix(b"\n"))
        {
            return b;
        }
        from = after;
    }
    &[]
}

/// What score greylisting did to one message, for the verdict and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 451 and remembered.
    Deferred { remaining: u64 },
    /// Delivered: a retry after the delay, or a message that passed before.
    Passed { delayed: Option<u64> },
    /// The store failed; `deferred` tells whether the message is still
    /// answered 451 (`[policy] store_failure = "defer"`) or delivered
    /// unchecked (`"dunno"`).
    StoreDown { deferred: bool },
}

/// How long an attempt waits for the store before `[policy] store_failure`
/// answers for it (the policy server's bound for its writes).
pub const STORE_WAIT: Duration = Duration::from_secs(5);

impl Outcome {
    /// For counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deferred { .. } => "deferred",
            Outcome::Passed { delayed: Some(_) } => "passed",
            Outcome::Passed { delayed: None } => "passed_again",
            Outcome::StoreDown { .. } => "store_down",
        }
    }
}

/// Score greylisting over a [`Store`], with an injected clock.
pub struct ScoreGreylist {
    store: Arc<dyn Store>,
    config: GreylistConfig,
    store_failure: StoreFailure,
    clock: Arc<dyn Clock>,
    /// Store faults, logged once per burst.
    faults: Mutex<Burst>,
}

impl ScoreGreylist {
    /// `store_failure` is `[policy] store_failure`: the same answer as the
    /// policy server's greylisting when the store fails.
    pub fn new(
        store: Arc<dyn Store>,
        config: &GreylistConfig,
        store_failure: StoreFailure,
    ) -> ScoreGreylist {
        ScoreGreylist::with_clock(store, config, store_failure, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<dyn Store>,
        config: &GreylistConfig,
        store_failure: StoreFailure,
        clock: Arc<dyn Clock>,
    ) -> ScoreGreylist {
        ScoreGreylist {
            store,
            config: config.clone(),
            store_failure,
            clock,
            faults: Mutex::new(Burst::default()),
        }
    }

    /// `[greylist] score_greylisting`: off keeps the stateless behaviour
    /// (451 at every attempt).
    pub fn enabled(&self) -> bool {
        self.config.score_greylisting
    }

    fn now(&self) -> u64 {
        self.clock
            .now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// For a verdict whose action is `greylist`: decides the attempt and
    /// writes the outcome into the verdict ([`ScoreGreylist::apply`]).
    /// `None` (verdict untouched) for any other action or when switched
    /// off. A store that fails or does not answer within [`STORE_WAIT`] is
    /// answered by `[policy] store_failure`: `dunno` delivers with a header
    /// saying greylisting was skipped, `defer` keeps the 451. Its errors
    /// are logged once per burst.
    pub async fn judge(
        &self,
        verdict: &mut Verdict,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Option<Outcome> {
        if verdict.action != Action::Greylist || !self.enabled() {
            return None;
        }
        let outcome = match tokio::time::timeout(STORE_WAIT, self.check(envelope, raw)).await {
            Ok(Ok(outcome)) => {
                self.store_works();
                outcome
            }
            Ok(Err(e)) => self.store_failed(&e),
            Err(_) => self.store_failed(&format!(
                "{} did not answer within {}s",
                self.store.describe(),
                STORE_WAIT.as_secs()
            )),
        };
        self.apply(outcome, verdict);
        Some(outcome)
    }

    fn store_failed(&self, e: &dyn std::fmt::Display) -> Outcome {
        let defer = self.store_failure == StoreFailure::Defer;
        let answer = if defer {
            "defer: greylist-band mail is answered 451"
        } else {
            "dunno: greylist-band mail is delivered with X-Greylist saying it was skipped"
        };
        match self.faults().fault() {
            Report::First => tracing::error!(
                "score greylisting: store: {e}; until it works again, policy.store_failure = \
                 {answer} (further errors counted, reported once a minute)"
            ),
            Report::Ongoing { count, since } => tracing::error!(
                store_errors = count,
                "score greylisting: store still failing, {count} errors in {}s; last: {e}",
                since.as_secs()
            ),
            Report::Quiet => {}
        }
        Outcome::StoreDown { deferred: defer }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Burst> {
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn store_works(&self) {
        if let Some(ended) = self.faults().clear() {
            tracing::warn!(
                store_errors = ended.count,
                "score greylisting: store working again after {} errors in {:.1}s",
                ended.count,
                ended.lasted.as_secs_f64()
            );
        }
    }

    /// Decides one attempt of a message that scored in the greylist band,
    /// and stores the entry before answering (a lost write costs only one
    /// more deferral). An unreadable stored value is taken as no entry.
    pub async fn check(&self, envelope: &Envelope, raw: &[u8]) -> Result<Outcome, StoreError> {
        self.store.writable()?;
        let key = key(envelope, raw);
        let stored = self
            .store
            .get(&key)
            .await?
            .and_then(|v| serde_json::from_slice::<Entry>(&v).ok());
        let step = decide(stored, self.now(), &self.config);
        let value = serde_json::to_vec(&step.entry).unwrap_or_default();
        self.store.set(&key, &value, Some(step.ttl)).await?;
        Ok(match step.decision {
            Decision::Defer { remaining } => Outcome::Deferred { remaining },
            Decision::Pass { delayed } => Outcome::Passed { delayed },
        })
    }

    /// Writes the outcome into a greylist verdict: the action (deliver or
    /// keep the 451), the `GREYLIST` symbol saying why, and the header for
    /// every front end to add to a delivered message.
    pub fn apply(&self, outcome: Outcome, verdict: &mut Verdict) {
        let (deliver, options, header) = match outcome {
            Outcome::Deferred { remaining } => (
                false,
                vec!["greylisted".to_string(), format!("retry in {remaining}s")],
                None,
            ),
            Outcome::Passed { delayed: Some(s) } => (
                true,
                vec!["pass".to_string(), format!("delayed {s}s")],
                Some(format!(
                    "delayed {s} seconds by mxguard (score greylisting)"
                )),
            ),
            Outcome::Passed { delayed: None } => (
                true,
                vec!["pass".to_string(), "seen before".to_string()],
                Some("passed by mxguard (score greylisting): delayed earlier".to_string()),
            ),
            Outcome::StoreDown { deferred } => (
                !deferred,
                vec!["store unavailable".to_string()],
                Some("skipped by mxguard: store unavailable".to_string()),
            ),
        };
        if deliver {
            verdict.action = Action::NoAction;
            if let Some(value) = header.filter(|_| self.config.x_greylist_header) {
                verdict.add_headers.push((HEADER.to_string(), value));
            }
        }
        verdict.symbols.insert(
            SYMBOL.to_string(),
            SymbolResult {
                name: SYMBOL.to_string(),
                score: 0.0,
                description: Some("score greylisting".to_string()),
                options,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::config::Seconds;
    use mxguard_store::{EmbeddedStore, ManualClock};
    use std::collections::BTreeMap;

    fn cfg() -> GreylistConfig {
        GreylistConfig {
            delay: Seconds(300),
            retry_window: Seconds(2 * 86400),
            max_age: Seconds(35 * 86400),
            ..GreylistConfig::default()
        }
    }

    fn env(from: &str, rcpts: &[&str]) -> Envelope {
        Envelope {
            ip: "192.0.2.1".parse().ok(),
            mail_from: Some(from.to_string()),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            ..Envelope::default()
        }
    }

    const MSG: &[u8] = b"Received: from a by mx.test (Postfix) id AAAA1\r\n\
        From: a@sender.example\r\nSubject: hello\r\n\r\nthe body\r\nline two\r\n";

    fn grey_verdict() -> Verdict {
        Verdict {
            action: Action::Greylist,
            score: 5.0,
            required_score: 15.0,
            symbols: BTreeMap::new(),
            messages: BTreeMap::new(),
            is_skipped: false,
            forced_by: None,
            add_headers: Vec::new(),
        }
    }

    #[test]
    fn decide_first_seen_too_early_after_delay_and_passed() {
        let c = cfg();
        let first = decide(None, 1000, &c);
        assert_eq!(first.decision, Decision::Defer { remaining: 300 });
        assert_eq!(first.ttl, Duration::from_secs(2 * 86400));
        let early = decide(Some(first.entry), 1100, &c);
        assert_eq!(early.decision, Decision::Defer { remaining: 200 });
        assert_eq!(early.entry.first, 1000, "an early retry keeps first-seen");
        assert_eq!(early.ttl, Duration::from_secs(2 * 86400 - 100));
        let pass = decide(Some(early.entry), 1300, &c);
        assert_eq!(pass.decision, Decision::Pass { delayed: Some(300) });
        assert!(pass.entry.passed);
        assert_eq!(pass.ttl, Duration::from_secs(35 * 86400));
        let again = decide(Some(pass.entry), 5000, &c);
        assert_eq!(again.decision, Decision::Pass { delayed: None });
        assert_eq!(again.entry.last, 5000);
    }

    #[test]
    fn decide_expired_and_future_entries_start_over() {
        let c = cfg();
        let pending = Entry {
            first: 1000,
            last: 1000,
            passed: false,
        };
        let late = decide(Some(pending), 1000 + 2 * 86400 + 1, &c);
        assert_eq!(late.decision, Decision::Defer { remaining: 300 });
        assert_eq!(late.entry.first, 1000 + 2 * 86400 + 1);
        let at_edge = decide(Some(pending), 1000 + 2 * 86400, &c);
        assert_eq!(
            at_edge.decision,
            Decision::Pass {
                delayed: Some(2 * 86400)
            }
        );
        let passed = Entry {
            passed: true,
            ..pending
        };
        let forgotten = decide(Some(passed), 1000 + 35 * 86400 + 1, &c);
        assert!(matches!(forgotten.decision, Decision::Defer { .. }));
        let future = Entry {
            first: 9000,
            last: 9000,
            passed: true,
        };
        assert_eq!(
            decide(Some(future), 1000, &c).decision,
            Decision::Defer { remaining: 300 }
        );
    }

    #[test]
    fn zero_delay_still_defers_the_first_attempt() {
        let c = GreylistConfig {
            delay: Seconds(0),
            ..cfg()
        };
        let first = decide(None, 10, &c);
        assert_eq!(first.decision, Decision::Defer { remaining: 0 });
        let retry = decide(Some(first.entry), 10, &c);
        assert_eq!(retry.decision, Decision::Pass { delayed: Some(0) });
    }

    #[test]
    fn key_ignores_headers_and_recipient_order_but_not_body_or_envelope() {
        let e = env("<A@Sender.example>", &["x@mx.test", "Y@mx.test"]);
        let k = key(&e, MSG);
        assert!(k.starts_with(KEY_PREFIX) && k.len() == KEY_PREFIX.len() + 64);
        // The retry through our MTA: a new Received line, another queue id.
        let retried = b"Received: from b by mx.test (Postfix) id BBBB2\r\n\
            Received: from a by mx.test (Postfix) id AAAA1\r\n\
            From: a@sender.example\r\nSubject: hello\r\n\r\nthe body\r\nline two\r\n";
        let reordered = env("a@sender.example", &["y@mx.test", "x@mx.test", "x@mx.test"]);
        assert_eq!(key(&reordered, retried), k);
        let lf = b"From: a@sender.example\nSubject: hello\n\nthe body\nline two\n";
        assert_eq!(key(&e, lf), k, "LF-only bytes hash as CRLF");
        let other_body = b"Subject: hello\r\n\r\nthe body\r\nline 2\r\n";
        assert_ne!(key(&e, other_body), k);
        assert_ne!(
            key(&env("b@sender.example", &["x@mx.test", "y@mx.test"]), MSG),
            k
        );
        assert_ne!(key(&env("a@sender.example", &["x@mx.test"]), MSG), k);
        // Fields do not run into each other.
        assert_ne!(
            key(&env("a@x", &["b@y"]), MSG),
            key(&env("a@xb@y", &[]), MSG)
        );
        // A bare CR is kept, not folded into the next byte.
        assert_ne!(key(&e, b"S: h\r\n\r\na\rb"), key(&e, b"S: h\r\n\r\nab"));
    }

    #[test]
    fn body_is_what_follows_the_first_empty_line() {
        assert_eq!(body(b"A: b\r\n\r\nbody\r\n\r\nmore"), b"body\r\n\r\nmore");
        assert_eq!(body(b"A: b\n\nbody"), b"body");
        assert_eq!(body(b"\r\nbody"), b"body");
        assert_eq!(body(b"A: b\r\nC: d\r\n"), b"");
        assert_eq!(body(b""), b"");
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<EmbeddedStore>,
        clock: Arc<ManualClock>,
        grey: ScoreGreylist,
    }

    fn fixture(c: GreylistConfig) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let store = Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
        let grey = ScoreGreylist::with_clock(store.clone(), &c, StoreFailure::Dunno, clock.clone());
        Fixture {
            _dir: dir,
            store,
            clock,
            grey,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn with_the_embedded_store_a_retry_after_the_delay_passes_with_the_header() {
        let f = fixture(cfg());
        let e = env("a@sender.example", &["root@mx.test"]);
        rt().block_on(async {
            let first = f.grey.check(&e, MSG).await.unwrap();
            assert_eq!(first, Outcome::Deferred { remaining: 300 });
            f.clock.advance(Duration::from_secs(120));
            let early = f.grey.check(&e, MSG).await.unwrap();
            assert_eq!(early, Outcome::Deferred { remaining: 180 });
            // A different message of the same sender is deferred on its own.
            let other = b"Subject: hello\r\n\r\nanother body\r\n";
            assert_eq!(
                f.grey.check(&e, other).await.unwrap(),
                Outcome::Deferred { remaining: 300 }
            );
            f.clock.advance(Duration::from_secs(180));
            let retried = [&b"Received: from x by mx.test id NEW\r\n"[..], MSG].concat();
            let pass = f.grey.check(&e, &retried).await.unwrap();
            assert_eq!(pass, Outcome::Passed { delayed: Some(300) });
            let mut v = grey_verdict();
            f.grey.apply(pass, &mut v);
            assert_eq!(v.action, Action::NoAction);
            assert_eq!(v.add_headers.len(), 1);
            assert_eq!(v.add_headers[0].0, "X-Greylist");
            assert!(v.add_headers[0].1.contains("delayed 300 seconds"), "{v:?}");
            assert_eq!(v.symbols[SYMBOL].options[0], "pass");
            // Resent later: passes at once.
            f.clock.advance(Duration::from_secs(86400));
            assert_eq!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Passed { delayed: None }
            );
        });
    }

    #[test]
    fn with_the_embedded_store_entries_expire() {
        let f = fixture(GreylistConfig {
            delay: Seconds(60),
            retry_window: Seconds(600),
            max_age: Seconds(3600),
            ..cfg()
        });
        let e = env("a@sender.example", &["root@mx.test"]);
        rt().block_on(async {
            assert!(matches!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Deferred { .. }
            ));
            let k = key(&e, MSG);
            assert!(f.store.get(&k).await.unwrap().is_some());
            f.clock.advance(Duration::from_secs(601));
            assert_eq!(
                f.store.get(&k).await.unwrap(),
                None,
                "pending entry expired"
            );
            assert_eq!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Deferred { remaining: 60 }
            );
            f.clock.advance(Duration::from_secs(60));
            assert_eq!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Passed { delayed: Some(60) }
            );
            f.clock.advance(Duration::from_secs(3601));
            assert_eq!(f.store.get(&k).await.unwrap(), None, "passed entry expired");
            assert_eq!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Deferred { remaining: 60 }
            );
        });
    }

    #[test]
    fn a_damaged_entry_starts_over() {
        let f = fixture(cfg());
        let e = env("a@sender.example", &["root@mx.test"]);
        rt().block_on(async {
            f.store
                .set(&key(&e, MSG), b"{not json", None)
                .await
                .unwrap();
            assert_eq!(
                f.grey.check(&e, MSG).await.unwrap(),
                Outcome::Deferred { remaining: 300 }
            );
        });
    }

    #[test]
    fn apply_keeps_the_451_when_deferred_or_the_store_fails_with_defer() {
        let f = fixture(cfg());
        for outcome in [
            Outcome::Deferred { remaining: 10 },
            Outcome::StoreDown { deferred: true },
        ] {
            let mut v = grey_verdict();
            f.grey.apply(outcome, &mut v);
            assert_eq!(v.action, Action::Greylist, "{outcome:?}");
            assert!(v.add_headers.is_empty());
            assert!(v.symbols.contains_key(SYMBOL));
        }
        let mut v = grey_verdict();
        f.grey.apply(Outcome::StoreDown { deferred: false }, &mut v);
        assert_eq!(v.action, Action::NoAction);
        assert!(v.add_headers[0].1.contains("skipped"), "{v:?}");
    }

    #[test]
    fn judge_touches_only_greylist_verdicts_and_only_when_on() {
        let f = fixture(cfg());
        let e = env("a@sender.example", &["root@mx.test"]);
        rt().block_on(async {
            let mut v = Verdict {
                action: Action::AddHeader,
                ..grey_verdict()
            };
            assert_eq!(f.grey.judge(&mut v, &e, MSG).await, None);
            assert!(v.symbols.is_empty() && v.action == Action::AddHeader);
            let mut v = grey_verdict();
            assert_eq!(
                f.grey.judge(&mut v, &e, MSG).await,
                Some(Outcome::Deferred { remaining: 300 })
            );
            assert_eq!(v.action, Action::Greylist);
            let off = ScoreGreylist::with_clock(
                f.store.clone(),
                &GreylistConfig {
                    score_greylisting: false,
                    ..cfg()
                },
                StoreFailure::Dunno,
                f.clock.clone(),
            );
            f.clock.advance(Duration::from_secs(301));
            let mut v = grey_verdict();
            assert_eq!(off.judge(&mut v, &e, MSG).await, None);
            assert_eq!(v.action, Action::Greylist, "off: 451 every time");
        });
    }

    #[test]
    fn a_full_disk_follows_store_failure() {
        let dir = tempfile::tempdir().unwrap();
        let faults = mxguard_store::DiskFaults::new();
        let store: Arc<dyn Store> = Arc::new(
            EmbeddedStore::open_with(
                dir.path(),
                mxguard_store::Options {
                    faults: Some(faults.clone()),
                    ..mxguard_store::Options::default()
                },
            )
            .unwrap(),
        );
        let e = env("a@sender.example", &["root@mx.test"]);
        rt().block_on(async {
            faults.fill();
            for (answer, action) in [
                (StoreFailure::Dunno, Action::NoAction),
                (StoreFailure::Defer, Action::Greylist),
            ] {
                let grey = ScoreGreylist::new(store.clone(), &cfg(), answer);
                let mut v = grey_verdict();
                let outcome = grey.judge(&mut v, &e, MSG).await;
                assert!(
                    matches!(outcome, Some(Outcome::StoreDown { .. })),
                    "{outcome:?}"
                );
                assert_eq!(v.action, action, "{answer:?}");
            }
        });
    }

    #[test]
    fn no_header_when_x_greylist_header_is_off() {
        let f = fixture(GreylistConfig {
            x_greylist_header: false,
            ..cfg()
        });
        let mut v = grey_verdict();
        f.grey.apply(Outcome::Passed { delayed: Some(5) }, &mut v);
        assert_eq!(v.action, Action::NoAction);
        assert!(v.add_headers.is_empty());
    }
}
