//! The model in the store, and learning through it.
//!
//! Keys (see `mxguard_store` for the naming rules):
//!
//! | key | value |
//! |---|---|
//! | `bayes:model` | the serialised [`Model`], the learners' state: every member's weights and AdaGrad sums |
//! | `bayes:scan` | the version it belongs to (u64, little-endian), then the model's scanning copy: the members' mean weights only (about a sixth of the size), what scanners load |
//! | `bayes:version` | a counter, incremented after each model write |
//! | `bayes:msg:<digest>` | the message's class (`s`/`h`) and features: it is learned |
//! | `bayes:lock` | a short-lived learner lock (an `incr` with a TTL) |
//! | `counter:learned_spam`, `counter:learned_ham`, `counter:unlearned`, `counter:relearned` | learn operations |
//!
//! A scanner loads `bayes:scan` once and then reads only `bayes:version`,
//! at most once per refresh interval: zero store round trips per message. A
//! learner takes the lock, reads the version (and the model only when
//! another process changed it), reads the batch's message records in one
//! `get_many`, writes the records, updates the model, then writes the
//! model, its scanning copy stamped with the version to come, and the new
//! version, one after the other. A scanning copy stamped older than
//! `bayes:version` (a crash between the writes, or a learner that writes
//! only `bayes:model`, such as a release before the copy existed) is not
//! used: scanners read `bayes:model` instead.
//!
//! The model is online and so order-dependent: learning a folder of spam
//! and then a folder of ham would leave it leaning ham. So every learned
//! message's features are kept in its record, and the model is rebuilt
//! from all records, each member in its own fixed pseudo-random order
//! derived from the digests, when a
//! batch moves or forgets messages, or when the messages learned
//! incrementally since the last rebuild reach 10% of all learned ones.
//! Small batches (autolearn, a user's learn_spam) are learned incrementally
//! in between. The model is thus, up to the last 10%, a function of the set
//! of learned messages: learning is idempotent, relearn and unlearn are
//! exact. A record costs about 4 bytes per feature (~1 KB per message). The lock keeps learners on several hosts sharing one
//! Redis from losing each other's updates; a learner that dies holding it
//! loses it after [`LOCK_TTL`].

use crate::{Digest, Features, Model, ModelHandle};
use mxguard_store::{Counters, Store, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub const MODEL_KEY: &str = "bayes:model";
pub const SCAN_KEY: &str = "bayes:scan";
pub const VERSION_KEY: &str = "bayes:version";
pub const LOCK_KEY: &str = "bayes:lock";
pub const MSG_PREFIX: &str = "bayes:msg:";
/// A learner holding the lock longer than this (a crash) loses it.
pub const LOCK_TTL: Duration = Duration::from_secs(60);
/// How long a learner waits for another one before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A learning error: the store failed, or the stored model is unusable.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnError(pub String);

impl std::fmt::Display for LearnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LearnError {}

impl From<StoreError> for LearnError {
    fn from(e: StoreError) -> Self {
        LearnError(e.to_string())
    }
}

impl From<crate::model::ModelError> for LearnError {
    fn from(e: crate::model::ModelError) -> Self {
        LearnError(e.to_string())
    }
}

/// Spam or ham.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Spam,
    Ham,
}

impl Class {
    pub fn is_spam(self) -> bool {
        self == Class::Spam
    }

    fn tag(self) -> &'static [u8; 1] {
        match self {
            Class::Spam => b"s",
            Class::Ham => b"h",
        }
    }

    fn from_tag(b: &[u8]) -> Option<Class> {
        match b {
            b"s" => Some(Class::Spam),
            b"h" => Some(Class::Ham),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Spam => "spam",
            Class::Ham => "ham",
        }
    }
}

/// One message, ready to learn: its digest and features.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub digest: Digest,
    pub features: Features,
}

impl Sample {
    /// From a parsed message (the scanner's parse can be reused), with the
    /// envelope sender when it is known and the message has no Return-Path
    /// yet (a message in transit, e.g. autolearn in `serve`).
    pub fn from_message(m: &mail_parser::Message<'_>, envelope_sender: Option<&str>) -> Sample {
        let text = mxguard_message::text::text_parts(m);
        Sample {
            digest: Digest::of(m),
            features: crate::extract_with_text(m, &text, envelope_sender),
        }
    }

    /// Parses raw bytes (a leading mbox `From ` line is ignored). `None`
    /// when the bytes are not a message.
    pub fn from_raw(raw: &[u8]) -> Option<Sample> {
        Sample::from_raw_with_sender(raw, None)
    }

    /// [`from_raw`](Self::from_raw) for a message in transit, whose
    /// envelope sender stands in for the Return-Path it does not have yet.
    pub fn from_raw_with_sender(raw: &[u8], envelope_sender: Option<&str>) -> Option<Sample> {
        let raw = crate::corpus::strip_mbox_line(raw);
        let m = mxguard_message::parse(raw)?;
        if m.headers().is_empty() {
            return None;
        }
        Some(Sample::from_message(&m, envelope_sender))
    }
}

/// What a learn or unlearn call did, message by message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnReport {
    /// Learned for the first time.
    pub learned: usize,
    /// Was learned as the other class; moved.
    pub relearned: usize,
    /// Already learned as this class (or twice in this batch): no change.
    pub unchanged: usize,
    /// Forgotten (unlearn).
    pub unlearned: usize,
    /// Unlearn of a message that was never learned.
    pub not_found: usize,
}

impl LearnReport {
    fn changed(&self) -> bool {
        self.learned + self.relearned + self.unlearned > 0
    }
}

/// Learns into the store. One per process is enough; it keeps the last
/// model it wrote so a run of learn calls does not re-read the blob.
pub struct Learner {
    store: Arc<dyn Store>,
    bits: u8,
    cache: tokio::sync::Mutex<Option<(i64, Model)>>,
    /// Scanners in this process see a new model at once.
    handle: Option<Arc<ModelHandle>>,
}

impl Learner {
    /// `bits` sizes a new model's table (an existing model keeps its own).
    pub fn new(store: Arc<dyn Store>, bits: u8) -> Learner {
        Learner {
            store,
            bits,
            cache: tokio::sync::Mutex::new(None),
            handle: None,
        }
    }

    /// Publishes every model this learner writes to `handle`.
    pub fn with_handle(mut self, handle: Arc<ModelHandle>) -> Learner {
        self.handle = Some(handle);
        self
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Learns `samples` as `class`. Idempotent per message (by digest): a
    /// message already learned as `class` is left alone, one learned as the
    /// other class is moved.
    pub async fn learn(&self, samples: &[Sample], class: Class) -> Result<LearnReport, LearnError> {
        let items: Vec<(Digest, Option<&Features>)> = samples
            .iter()
            .map(|s| (s.digest, Some(&s.features)))
            .collect();
        self.apply(&items, Some(class)).await
    }

    /// Forgets messages learned before, whatever their class (exactly: the
    /// model is rebuilt without them).
    pub async fn unlearn(&self, samples: &[Sample]) -> Result<LearnReport, LearnError> {
        let items: Vec<(Digest, Option<&Features>)> = samples
            .iter()
            .map(|s| (s.digest, Some(&s.features)))
            .collect();
        self.apply(&items, None).await
    }

    /// How a message is learned now, if at all.
    pub async fn learned_as(&self, digest: &Digest) -> Result<Option<Class>, LearnError> {
        Ok(self
            .store
            .get(&record_key(digest))
            .await?
            .and_then(|v| decode_record(&v).map(|r| r.0)))
    }

    async fn apply(
        &self,
        items: &[(Digest, Option<&Features>)],
        class: Option<Class>,
    ) -> Result<LearnReport, LearnError> {
        let report = LearnReport::default();
        if items.is_empty() {
            return Ok(report);
        }
        let mut lock = Lock::acquire(&*self.store).await?;
        let r = self.apply_locked(items, class, report).await;
        lock.release().await;
        r
    }

    async fn apply_locked(
        &self,
        items: &[(Digest, Option<&Features>)],
        class: Option<Class>,
        mut report: LearnReport,
    ) -> Result<LearnReport, LearnError> {
        let mut cache = self.cache.lock().await;
        let version = read_version(&*self.store).await?;
        // A stored model this mxguard cannot use (another tokeniser or
        // format version, or corrupt) is rebuilt from the learned messages,
        // which are the truth; records of another tokeniser count as not
        // learned, so learning the folders again after an upgrade works.
        let mut unusable = false;
        let mut model = match cache.take() {
            Some((v, m)) if v == version => m,
            _ => match self.store.get(MODEL_KEY).await? {
                Some(b) => Model::from_bytes(&b, true).unwrap_or_else(|e| {
                    tracing::warn!("{e}; rebuilding it from the learned messages");
                    unusable = true;
                    Model::new(self.bits)
                }),
                None => Model::new(self.bits),
            },
        };
        // Current records of the batch, in one round trip per 512.
        let keys: Vec<String> = items.iter().map(|(d, _)| record_key(d)).collect();
        // Per message: its class, and whether its stored features are this
        // tokeniser's.
        let mut records: HashMap<Digest, Option<(Class, bool)>> =
            HashMap::with_capacity(items.len());
        for (chunk_keys, chunk_items) in keys.chunks(512).zip(items.chunks(512)) {
            let refs: Vec<&str> = chunk_keys.iter().map(String::as_str).collect();
            let values = self.store.get_many(&refs).await?;
            for ((d, _), v) in chunk_items.iter().zip(values) {
                let record = v.and_then(|v| decode_record(&v));
                records.insert(*d, record.map(|(c, f)| (c, f.is_some())));
            }
        }
        // What changes; `records` tracks changes within the batch too.
        let mut writes: Vec<(Digest, Option<(Class, &Features)>)> = Vec::new();
        for (d, f) in items {
            let before = records.get(d).copied().flatten();
            match (class, before, f) {
                (Some(c), None | Some((_, false)), Some(f)) => {
                    report.learned += 1;
                    writes.push((*d, Some((c, *f))));
                }
                (Some(c), Some((b, true)), _) if b == c => report.unchanged += 1,
                (Some(c), Some(_), Some(f)) => {
                    report.relearned += 1;
                    writes.push((*d, Some((c, *f))));
                }
                (None, Some(_), _) => {
                    report.unlearned += 1;
                    writes.push((*d, None));
                }
                (None, None, _) => report.not_found += 1,
                _ => continue,
            }
            records.insert(*d, class.map(|c| (c, true)));
        }
        if !report.changed() {
            if !unusable {
                *cache = Some((version, model));
            }
            return Ok(report);
        }
        // The records first: a rebuild reads them back.
        let encoded: Vec<(String, Option<Vec<u8>>)> = writes
            .iter()
            .map(|(d, w)| (record_key(d), w.map(|(c, f)| encode_record(c, f))))
            .collect();
        write_records(&*self.store, &encoded).await?;

        let total = model.spam_learns + model.ham_learns + report.learned as u64;
        let rebuild = unusable
            || report.relearned + report.unlearned > 0
            || (model.since_rebuild + report.learned as u64) * 10 >= total
            || !model.can_learn();
        if rebuild {
            // The old learners' state goes before the new one is built: two
            // at once would double a learner's peak memory.
            let bits = model.bits();
            drop(model);
            model = self.rebuild(bits).await?;
        } else {
            // New messages, one online step each, in digest order.
            let mut new: Vec<&(Digest, Option<(Class, &Features)>)> = writes.iter().collect();
            new.sort_by_key(|w| w.0);
            for (_, w) in new {
                if let Some((c, f)) = w {
                    model.learn(f, c.is_spam());
                    model.since_rebuild += 1;
                }
            }
        }
        let blob = model.to_bytes();
        self.store.set(MODEL_KEY, &blob, None).await?;
        let scanning = model.for_scanning();
        let scan_blob = scanning.to_bytes();
        let stamp = version + 1;
        self.store
            .set(SCAN_KEY, &stamped(stamp, &scan_blob), None)
            .await?;
        let counters = Counters::new(self.store.clone());
        let mut counts: Vec<(&str, usize)> = vec![
            ("unlearned", report.unlearned),
            ("relearned", report.relearned),
        ];
        if let Some(c) = class {
            counts.push((
                if c.is_spam() {
                    "learned_spam"
                } else {
                    "learned_ham"
                },
                report.learned + report.relearned,
            ));
        }
        for (name, n) in counts {
            if n > 0 {
                counters.incr(name, n as i64).await?;
            }
        }
        let new_version = self.store.incr(VERSION_KEY, 1, None).await?;
        if new_version != stamp {
            // Another writer moved the version (a learner whose lock
            // expired): stamp the copy with the version it now belongs to.
            tracing::warn!(
                "classifier: the model version moved from {version} to {new_version} while learning; another learner held the lock too long"
            );
            self.store
                .set(SCAN_KEY, &stamped(new_version, &scan_blob), None)
                .await?;
        }
        if let Some(h) = &self.handle {
            h.set(Arc::new(scanning), new_version);
        }
        *cache = Some((new_version, model));
        Ok(report)
    }

    /// A new model from every stored message: the first member learns
    /// them in digest order (a fixed pseudo-random order), each other
    /// member in its own order derived from the digests, so the same set of
    /// learned messages always gives the same model, whatever order they
    /// were learned in.
    async fn rebuild(&self, bits: u8) -> Result<Model, LearnError> {
        let rows = self.store.scan_prefix(MSG_PREFIX, usize::MAX).await?;
        let mut learned: Vec<(u64, Class, Features)> = Vec::with_capacity(rows.len());
        let mut stale = 0usize;
        // Keys are `bayes:msg:<hex digest>`: key order is digest order.
        for (key, v) in &rows {
            match decode_record(v) {
                Some((c, Some(f))) => learned.push((order_key(key), c, f)),
                _ => stale += 1,
            }
        }
        drop(rows);
        if stale > 0 {
            tracing::warn!(
                "classifier: {stale} learned messages were stored by another tokeniser version and are left out; learn them again"
            );
        }
        let samples: Vec<(&Features, bool)> =
            learned.iter().map(|(_, c, f)| (f, c.is_spam())).collect();
        let model = Model::learned_from(bits, &samples, |member| {
            let mut order: Vec<usize> = (0..learned.len()).collect();
            if member > 0 {
                let salt = crate::hash::fmix64(member as u64);
                order.sort_by_key(|&i| crate::hash::fmix64(learned[i].0 ^ salt));
            }
            order
        });
        Ok(model)
    }
}

/// 64 bits of a record key's digest, to order members' passes by.
fn order_key(key: &str) -> u64 {
    let hex = key.strip_prefix(MSG_PREFIX).unwrap_or(key);
    u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16)
        .unwrap_or_else(|_| crate::hash::hash_bytes(0, key.as_bytes()))
}

fn record_key(d: &Digest) -> String {
    format!("{MSG_PREFIX}{}", d.hex())
}

/// A message record: class tag, tokeniser version, feature count, then the
/// sorted feature hashes as delta varints.
fn encode_record(c: Class, f: &Features) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + f.len() * 4);
    out.extend_from_slice(c.tag());
    out.push(crate::model::TOKENIZER_VERSION as u8);
    varint(&mut out, f.len() as u64);
    let mut last = 0u32;
    for &h in &f.0 {
        varint(&mut out, (h - last) as u64);
        last = h;
    }
    out
}

/// The class, and the features when they were stored by this tokeniser
/// version and decode cleanly.
fn decode_record(b: &[u8]) -> Option<(Class, Option<Features>)> {
    let class = Class::from_tag(b.get(..1)?)?;
    let features = (|| {
        if *b.get(1)? != crate::model::TOKENIZER_VERSION as u8 {
            return None;
        }
        let mut pos = 2;
        let n = read_varint(b, &mut pos)? as usize;
        if n > 1 << 20 {
            return None;
        }
        let mut v = Vec::with_capacity(n);
        let mut last = 0u64;
        for i in 0..n {
            let d = read_varint(b, &mut pos)?;
            if i > 0 && d == 0 {
                return None;
            }
            last = last.checked_add(d).filter(|&x| x <= u32::MAX as u64)?;
            v.push(last as u32);
        }
        (pos == b.len()).then_some(Features(v))
    })();
    Some((class, features))
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*pos)?;
        *pos += 1;
        v |= ((x & 0x7F) as u64) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Loads the model into `handle` if the store holds a newer one: its
/// scanning copy when that is current, else the learners' model. One read
/// when nothing changed, two when it did. Returns true when it loaded.
pub async fn refresh(handle: &ModelHandle, store: &dyn Store) -> Result<bool, LearnError> {
    let version = read_version(store).await?;
    if version == handle.version() || version == 0 {
        return Ok(false);
    }
    let copy = store.get(SCAN_KEY).await?;
    let model = match scanning_copy(copy.as_deref(), version) {
        Ok(m) => m,
        Err(why) => {
            if copy.is_some() {
                tracing::info!("classifier: {why}; loading the learners' model instead");
            }
            let Some(blob) = store.get(MODEL_KEY).await? else {
                return Ok(false);
            };
            Model::from_bytes(&blob, false)?
        }
    };
    handle.set(Arc::new(model), version);
    Ok(true)
}

/// `bayes:scan`'s value: the version it belongs to, then the blob.
fn stamped(version: i64, blob: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + blob.len());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(blob);
    v
}

/// The scanning copy, if it is there, readable and not older than
/// `version`; otherwise why not.
fn scanning_copy(value: Option<&[u8]>, version: i64) -> Result<Model, String> {
    let value = value.ok_or("there is no scanners' copy")?;
    let (stamp, blob) = value
        .split_first_chunk::<8>()
        .ok_or("the scanners' copy is truncated")?;
    let stamp = i64::from_le_bytes(*stamp);
    if stamp < version {
        return Err(format!(
            "the scanners' copy is of version {stamp}, older than the model's {version}"
        ));
    }
    Model::from_bytes(blob, false).map_err(|e| format!("the scanners' copy: {e}"))
}

/// What `mxguard stats` shows about the classifier.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    pub version: i64,
    pub spam_learns: u64,
    pub ham_learns: u64,
    pub updates: u64,
    /// Serialised size of the model in the store (the learners' state).
    pub bytes: usize,
    /// Serialised size of its scanning copy (what scanners load).
    pub scan_bytes: usize,
    /// Why scanners read the learners' model instead of the copy, if
    /// they do.
    pub scan_note: Option<String>,
    pub nonzero: usize,
    pub bits: u8,
    /// The stored model could not be read (and why).
    pub error: Option<String>,
}

impl Status {
    /// Why the classifier is silent, or `None` when it scores.
    pub fn silent_because(&self, min_learns: u64) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        if self.spam_learns < min_learns || self.ham_learns < min_learns {
            return Some(format!(
                "silent: needs {min_learns} learned messages of each class (min_learns), has {} spam and {} ham",
                self.spam_learns, self.ham_learns
            ));
        }
        None
    }
}

pub async fn status(store: &dyn Store) -> Result<Status, LearnError> {
    let version = read_version(store).await?;
    let Some(blob) = store.get(MODEL_KEY).await? else {
        return Ok(Status {
            version,
            ..Default::default()
        });
    };
    let copy = store.get(SCAN_KEY).await?;
    let scan_bytes = copy.as_ref().map_or(0, |b| b.len());
    let scan_note = scanning_copy(copy.as_deref(), version).err();
    Ok(match Model::from_bytes(&blob, false) {
        Ok(m) => Status {
            version,
            spam_learns: m.spam_learns,
            ham_learns: m.ham_learns,
            updates: m.updates,
            bytes: blob.len(),
            scan_bytes,
            scan_note,
            nonzero: m.nonzero(),
            bits: m.bits(),
            error: None,
        },
        Err(e) => Status {
            version,
            bytes: blob.len(),
            error: Some(e.to_string()),
            ..Default::default()
        },
    })
}

async fn read_version(store: &dyn Store) -> Result<i64, LearnError> {
    Ok(store
        .get(VERSION_KEY)
        .await?
        .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok())
        .unwrap_or(0))
}

/// The learner lock: `incr` with a TTL; the first to get 1 holds it.
struct Lock<'a> {
    store: &'a dyn Store,
    held: bool,
}

impl<'a> Lock<'a> {
    async fn acquire(store: &'a dyn Store) -> Result<Lock<'a>, LearnError> {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(5);
        loop {
            if store.incr(LOCK_KEY, 1, Some(LOCK_TTL)).await? == 1 {
                return Ok(Lock { store, held: true });
            }
            if started.elapsed() > LOCK_WAIT {
                return Err(LearnError(format!(
                    "another learner has held the classifier lock ({LOCK_KEY}) for over {} s; it expires by itself within {} s",
                    LOCK_WAIT.as_secs(),
                    LOCK_TTL.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(200));
        }
    }
}

impl Lock<'_> {
    async fn release(&mut self) {
        if self.held {
            self.held = false;
            if let Err(e) = self.store.delete(LOCK_KEY).await {
                tracing::warn!("cannot release the classifier lock (it expires by itself): {e}");
            }
        }
    }
}

impl Drop for Lock<'_> {
    /// Only when the learning future was dropped midway.
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        // Release without blocking: delete is queued to the store's writer
        // as soon as the future is first polled, so poll it once here; a
        // backend that needs more (Redis) gets it done by the TTL at worst.
        let mut fut = self.store.delete(LOCK_KEY);
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let _ = fut.as_mut().poll(&mut cx);
    }
}

type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Writes (or deletes) message records concurrently, so the store can
/// commit them in few transactions.
async fn write_records(
    store: &dyn Store,
    records: &[(String, Option<Vec<u8>>)],
) -> Result<(), StoreError> {
    for chunk in records.chunks(1024) {
        let mut futs: Vec<StoreFuture<'_>> = Vec::with_capacity(chunk.len());
        for (key, value) in chunk {
            futs.push(match value {
                Some(v) => store.set(key, v, None),
                None => Box::pin(async move { store.delete(key).await.map(|_| ()) }),
            });
        }
        for r in join_all(&mut futs).await {
            r?;
        }
    }
    Ok(())
}

/// Runs futures concurrently (so the store can commit them together) and
/// returns their outputs in order.
async fn join_all<T>(futs: &mut [Pin<Box<dyn Future<Output = T> + Send + '_>>]) -> Vec<T> {
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
