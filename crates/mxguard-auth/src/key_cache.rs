//! DKIM and ARC public keys, parsed once per DNS answer. mail-auth asks
//! the resolver for a signature's `<selector>._domainkey.<domain>` record
//! and parses it (tags, base64, the key's DER prefix) for every signature
//! it checks, though one sender's key signs thousands of messages; a hit
//! in hickory's cache alone costs about ten thousand instructions. Its
//! TXT cache hook keeps what it parsed, here, until the answer's own
//! expiry (hickory's, within `[dns]`'s TTL bounds), capped at
//! `positive_max_ttl` like the resolver's front cache, bounded by `[dns]
//! cache_size` entries and off when that is 0. Lookups that fail are
//! never inserted (mail-auth returns before caching them).

use mail_auth::{ResolverCache, Txt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Parsed `_domainkey` (and ATPS) records by query name.
pub(crate) struct KeyCache {
    capacity: usize,
    longest: Duration,
    map: Mutex<HashMap<Box<str>, (Txt, Instant)>>,
}

impl KeyCache {
    /// `capacity` entries at most (0: off), none kept past `longest`.
    pub(crate) fn new(capacity: usize, longest: Duration) -> KeyCache {
        KeyCache {
            capacity,
            longest,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, (Txt, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ResolverCache<Box<str>, Txt> for KeyCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map();
        let (txt, until) = map.get(name)?;
        (Instant::now() < *until).then(|| txt.clone())
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map().remove(name).map(|(txt, _)| txt)
    }

    fn insert(&self, key: Box<str>, value: Txt, valid_until: Instant) {
        let now = Instant::now();
        let until = valid_until.min(now + self.longest);
        if self.capacity == 0 || until <= now {
            return;
        }
        let mut map = self.map();
        if map.len() >= self.capacity {
            // Full: drop what expired; if that frees under a quarter,
            // start over (bounded memory whatever the names signed with).
            map.retain(|_, (_, u)| *u > now);
            if map.len() > self.capacity - self.capacity / 4 {
                map.clear();
            }
        }
        map.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::Error;

    /// Any value: the cache never looks inside.
    fn txt() -> Txt {
        Txt::Error(Error::ParseError)
    }

    #[test]
    fn kept_until_the_answer_expires_and_no_longer_than_the_cap() {
        let c = KeyCache::new(8, Duration::from_secs(3600));
        let now = Instant::now();
        c.insert(
            "s._domainkey.a.test.".into(),
            txt(),
            now + Duration::from_secs(300),
        );
        assert!(c.get("s._domainkey.a.test.").is_some());
        assert!(c.get("s._domainkey.b.test.").is_none());
        // Valid for no time at all: not kept.
        c.insert("gone.test.".into(), txt(), now);
        assert!(c.get("gone.test.").is_none());
        // Longer than the cap: cut to it.
        let short = KeyCache::new(8, Duration::ZERO);
        short.insert("s.test.".into(), txt(), now + Duration::from_secs(300));
        assert!(short.get("s.test.").is_none());
        assert!(c.remove("s._domainkey.a.test.").is_some());
        assert!(c.get("s._domainkey.a.test.").is_none());
    }

    #[test]
    fn bounded_and_size_zero_is_off() {
        let c = KeyCache::new(100, Duration::from_secs(3600));
        let until = Instant::now() + Duration::from_secs(300);
        for i in 0..10_000u32 {
            c.insert(format!("k{i}.test.").into(), txt(), until);
            assert!(c.map().len() <= 100);
        }
        assert!(c.get("k9999.test.").is_some(), "the newest is kept");
        let off = KeyCache::new(0, Duration::from_secs(3600));
        off.insert("a.test.".into(), txt(), until);
        assert!(off.get("a.test.").is_none());
        assert!(off.map().is_empty());
    }
}
