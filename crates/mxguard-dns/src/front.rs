//! A small map in front of hickory's cache, for answers asked again and
//! again (one sender's SPF record, its `_dmarc` record, a DNS list's
//! NXDOMAIN). A hit in hickory's own cache still builds a wire name,
//! boxes two futures, checks the special-use names, hashes the query into
//! its concurrent cache and copies the message: about ten thousand
//! instructions, and the authentication checks ask two or three names per
//! message. Here a hit is one hash of the name as given and a copy of the
//! records.
//!
//! It never answers longer than hickory would: an entry lives for the
//! time hickory said its answer is valid (found records: until the
//! smallest TTL, capped at `positive_max_ttl`; "no records": the SOA's
//! negative TTL within the `negative_*_ttl` bounds, or `negative_min_ttl`
//! when the server sent no SOA). Failures (time-outs, SERVFAIL) are never
//! kept: the next question goes to the wire as before. With `cache_size =
//! 0` it is off, like hickory's.
//!
//! An entry may also hold what a caller made of its records (a parsed
//! SPF or DMARC record, see [`crate::Dns::txt_parsed`]): made once per
//! answer, gone with it, so it never outlives the TTL either.

use hickory_resolver::proto::rr::{RData, RecordType};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a caller made of an entry's records (any type; one per entry).
pub(crate) type Parsed = Arc<dyn Any + Send + Sync>;

/// What a name held for one record type: the records (possibly none),
/// until when, and what was made of them.
#[derive(Clone)]
struct Entry {
    records: Arc<[RData]>,
    until: Instant,
    parsed: Option<Parsed>,
}

/// A cached answer: its records, and what was made of them if anything.
pub(crate) struct Hit {
    pub(crate) records: Arc<[RData]>,
    pub(crate) parsed: Option<Parsed>,
}

impl Hit {
    /// No records, nothing cached.
    pub(crate) fn empty() -> Hit {
        Hit {
            records: Arc::from(Vec::new()),
            parsed: None,
        }
    }
}

/// The answers of one record type, by name as asked (no final dot).
type ByName = HashMap<Box<str>, Entry>;

/// The front cache: one map per record type, so a look-up hashes the name
/// as the caller wrote it (no key is built).
pub(crate) struct FrontCache {
    capacity: usize,
    positive_max: Duration,
    negative_min: Duration,
    negative_max: Duration,
    maps: Mutex<Vec<(RecordType, ByName)>>,
}

impl FrontCache {
    pub(crate) fn new(
        capacity: usize,
        positive_max: Duration,
        negative_min: Duration,
        negative_max: Duration,
    ) -> FrontCache {
        FrontCache {
            capacity,
            positive_max,
            negative_min,
            negative_max,
            maps: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn positive_max(&self) -> Duration {
        self.positive_max
    }

    /// The records cached for `name` (with or without its final dot), if
    /// still valid at `now`.
    pub(crate) fn get(&self, name: &str, rtype: RecordType, now: Instant) -> Option<Hit> {
        if self.capacity == 0 {
            return None;
        }
        let key = name.strip_suffix('.').unwrap_or(name);
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let (_, map) = maps.iter().find(|(t, _)| *t == rtype)?;
        let e = map.get(key)?;
        (now < e.until).then(|| Hit {
            records: e.records.clone(),
            parsed: e.parsed.clone(),
        })
    }

    /// Keeps `parsed` beside the entry of `name` while that entry still
    /// holds `records` (the very answer it was made from: a newer answer
    /// in between keeps nothing).
    pub(crate) fn attach(
        &self,
        name: &str,
        rtype: RecordType,
        records: &Arc<[RData]>,
        parsed: Parsed,
    ) {
        if self.capacity == 0 {
            return;
        }
        let key = name.strip_suffix('.').unwrap_or(name);
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let Some((_, map)) = maps.iter_mut().find(|(t, _)| *t == rtype) else {
            return;
        };
        if let Some(e) = map.get_mut(key)
            && Arc::ptr_eq(&e.records, records)
        {
            e.parsed = Some(parsed);
        }
    }

    /// Keeps found records until `valid_until` (hickory's), at most
    /// `positive_max_ttl` from now.
    pub(crate) fn found(
        &self,
        name: &str,
        rtype: RecordType,
        records: Arc<[RData]>,
        valid_until: Instant,
        now: Instant,
    ) {
        let until = valid_until.min(now + self.positive_max);
        self.insert(name, rtype, records, until, now);
    }

    /// Keeps "no records" for the SOA's negative TTL (`None`: no SOA),
    /// within the configured bounds. Returns the (empty) records kept.
    pub(crate) fn none(
        &self,
        name: &str,
        rtype: RecordType,
        negative_ttl: Option<u32>,
        now: Instant,
    ) -> Arc<[RData]> {
        let ttl = match negative_ttl {
            Some(t) => Duration::from_secs(u64::from(t))
                .clamp(self.negative_min, self.negative_max.max(self.negative_min)),
            None => self.negative_min,
        };
        let records: Arc<[RData]> = Arc::from(Vec::new());
        self.insert(name, rtype, records.clone(), now + ttl, now);
        records
    }

    fn insert(
        &self,
        name: &str,
        rtype: RecordType,
        records: Arc<[RData]>,
        until: Instant,
        now: Instant,
    ) {
        if self.capacity == 0 || until <= now {
            return;
        }
        let key = name.strip_suffix('.').unwrap_or(name);
        let mut maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = maps.iter().map(|(_, m)| m.len()).sum();
        if total >= self.capacity {
            // Full: drop what expired; if that frees nothing worth having
            // (under a quarter), start over. Bounded memory whatever the
            // names asked, and a sweep per quarter of the capacity at most.
            for (_, m) in maps.iter_mut() {
                m.retain(|_, e| e.until > now);
            }
            let left: usize = maps.iter().map(|(_, m)| m.len()).sum();
            if left > self.capacity - self.capacity / 4 {
                maps.iter_mut().for_each(|(_, m)| m.clear());
            }
        }
        let map = match maps.iter().position(|(t, _)| *t == rtype) {
            Some(i) => &mut maps[i].1,
            None => {
                maps.push((rtype, HashMap::new()));
                let last = maps.len() - 1;
                &mut maps[last].1
            }
        };
        map.insert(
            key.into(),
            Entry {
                records,
                until,
                parsed: None,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let maps = self.maps.lock().unwrap_or_else(|p| p.into_inner());
        maps.iter().map(|(_, m)| m.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::TXT;

    fn cache(capacity: usize) -> FrontCache {
        FrontCache::new(
            capacity,
            Duration::from_secs(3600),
            Duration::from_secs(60),
            Duration::from_secs(600),
        )
    }

    fn txt(s: &str) -> Arc<[RData]> {
        Arc::from(vec![RData::TXT(TXT::new(vec![s.to_string()]))])
    }

    #[test]
    fn an_entry_lives_as_long_as_hickory_said_and_no_longer() {
        let c = cache(16);
        let now = Instant::now();
        c.found(
            "example.com.",
            RecordType::TXT,
            txt("v=spf1 -all"),
            now + Duration::from_secs(300),
            now,
        );
        // The final dot does not matter; the type does.
        assert!(c.get("example.com", RecordType::TXT, now).is_some());
        assert!(c.get("example.com.", RecordType::TXT, now).is_some());
        assert!(c.get("example.com", RecordType::A, now).is_none());
        let later = now + Duration::from_secs(300);
        assert!(c.get("example.com", RecordType::TXT, later).is_none());
        // A TTL over positive_max_ttl is cut to it.
        let capped = cache(16);
        capped.found(
            "long.test",
            RecordType::TXT,
            txt("x"),
            now + Duration::from_secs(86_400),
            now,
        );
        let hour = now + Duration::from_secs(3600);
        assert!(capped.get("long.test", RecordType::TXT, hour).is_none());
        // Valid for no time at all (TTL 0): not kept.
        c.found("zero.test", RecordType::TXT, txt("x"), now, now);
        assert!(c.get("zero.test", RecordType::TXT, now).is_none());
    }

    #[test]
    fn negative_answers_within_the_bounds() {
        let c = cache(16);
        let now = Instant::now();
        c.none("nosoa.test", RecordType::TXT, None, now);
        let got = c.get("nosoa.test", RecordType::TXT, now).unwrap();
        assert!(got.records.is_empty());
        assert!(
            c.get("nosoa.test", RecordType::TXT, now + Duration::from_secs(60))
                .is_none(),
            "no SOA: the floor"
        );
        c.none("short.test", RecordType::TXT, Some(5), now);
        assert!(
            c.get("short.test", RecordType::TXT, now + Duration::from_secs(59))
                .is_some(),
            "raised to the floor"
        );
        c.none("long.test", RecordType::TXT, Some(86_400), now);
        assert!(
            c.get("long.test", RecordType::TXT, now + Duration::from_secs(600))
                .is_none(),
            "cut to the cap"
        );
        // No floor: a negative answer without an SOA is not kept.
        let off = FrontCache::new(16, Duration::from_secs(60), Duration::ZERO, Duration::ZERO);
        off.none("x.test", RecordType::TXT, None, now);
        assert!(off.get("x.test", RecordType::TXT, now).is_none());
    }

    #[test]
    fn what_was_made_of_an_answer_stays_with_that_answer_only() {
        let c = cache(16);
        let now = Instant::now();
        let until = now + Duration::from_secs(300);
        let first = txt("v=spf1 -all");
        c.found("a.test", RecordType::TXT, first.clone(), until, now);
        assert!(
            c.get("a.test", RecordType::TXT, now)
                .unwrap()
                .parsed
                .is_none()
        );
        c.attach("a.test.", RecordType::TXT, &first, Arc::new(7u32));
        let hit = c.get("a.test", RecordType::TXT, now).unwrap();
        assert_eq!(
            hit.parsed.unwrap().downcast::<u32>().ok().as_deref(),
            Some(&7)
        );
        // A newer answer drops it, and a parse of the older one is not
        // attached to the newer.
        let second = txt("v=spf1 +all");
        c.found("a.test", RecordType::TXT, second, until, now);
        assert!(
            c.get("a.test", RecordType::TXT, now)
                .unwrap()
                .parsed
                .is_none()
        );
        c.attach("a.test", RecordType::TXT, &first, Arc::new(8u32));
        assert!(
            c.get("a.test", RecordType::TXT, now)
                .unwrap()
                .parsed
                .is_none()
        );
        // Nothing to attach to: nothing kept.
        c.attach("b.test", RecordType::TXT, &first, Arc::new(9u32));
        assert!(c.get("b.test", RecordType::TXT, now).is_none());
    }

    #[test]
    fn memory_stays_bounded_and_size_zero_is_off() {
        let c = cache(100);
        let now = Instant::now();
        for i in 0..10_000 {
            c.none(&format!("n{i}.test"), RecordType::TXT, None, now);
            assert!(c.len() <= 100, "{}", c.len());
        }
        // The newest answer is always kept.
        assert!(c.get("n9999.test", RecordType::TXT, now).is_some());
        let off = cache(0);
        off.none("a.test", RecordType::TXT, None, now);
        assert!(off.get("a.test", RecordType::TXT, now).is_none());
        assert_eq!(off.len(), 0);
    }
}
