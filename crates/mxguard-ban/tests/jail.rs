//! Jails against the real embedded store: counting to maxretry within
//! findtime, ignoreip, bantime.increment, permanent bans, restart with
//! restore (active bans re-applied through `Action::start`, expired ones
//! not), and two jails on one shared store seeing each other's bans.
//!
//! The action here only records what it was asked (the firewall actions
//! and their network-namespace test are the `fw` branch's).

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use mxguard_ban::actions::{Action, ActionError, Ban};
use mxguard_ban::ignore::IgnoreList;
use mxguard_ban::jail::{Increment, Jail, JailSettings, Outcome, ban_key};
use mxguard_store::{Clock, EmbeddedStore, ManualClock, Store};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Action for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn start(&self, active: &[Ban]) -> Result<(), ActionError> {
        let mut ips: Vec<String> = active.iter().map(|b| b.addr.to_string()).collect();
        ips.sort();
        self.0
            .lock()
            .unwrap()
            .push(format!("start {}", ips.join(",")));
        Ok(())
    }
    fn ban(&self, ban: &Ban) -> Result<(), ActionError> {
        let t = ban
            .remaining
            .map_or("permanent".to_string(), |d| d.as_secs().to_string());
        self.0.lock().unwrap().push(format!("ban {} {t}", ban.addr));
        Ok(())
    }
    fn unban(&self, ban: &Ban) -> Result<(), ActionError> {
        self.0.lock().unwrap().push(format!("unban {}", ban.addr));
        Ok(())
    }
    fn stop(&self) -> Result<(), ActionError> {
        Ok(())
    }
}

fn now(clock: &ManualClock) -> u64 {
    clock.now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn jail(settings: JailSettings, store: Arc<dyn Store>, rec: &Recorder, ignore: &[&str]) -> Jail {
    let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
    Jail::new(
        settings,
        IgnoreList::new(&ignore, false).unwrap(),
        store,
        vec![Box::new(rec.clone())],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxretry_findtime_ignoreip_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    let rec = Recorder::default();
    let j = jail(
        JailSettings::new("sshd"),
        store.clone(),
        &rec,
        &["192.0.2.0/28"],
    );
    let a = ip("198.51.100.7");

    // Two failures, then findtime passes: the count starts over.
    assert_eq!(
        j.failure(a, 1, now(&clock)).await.unwrap(),
        Outcome::Counted(1)
    );
    assert_eq!(
        j.failure(a, 1, now(&clock)).await.unwrap(),
        Outcome::Counted(2)
    );
    clock.advance(Duration::from_secs(601));
    assert_eq!(
        j.failure(a, 1, now(&clock)).await.unwrap(),
        Outcome::Counted(1)
    );
    assert_eq!(
        j.failure(a, 1, now(&clock)).await.unwrap(),
        Outcome::Counted(2)
    );
    let Outcome::Banned(r) = j.failure(a, 1, now(&clock)).await.unwrap() else {
        panic!("third failure within findtime bans")
    };
    assert_eq!((r.jail.as_str(), r.count), ("sshd", 1));
    assert_eq!(r.until, Some(now(&clock) + 3600));
    assert_eq!(rec.take(), ["ban 198.51.100.7 3600"]);
    // The key the policy server reads.
    assert!(store.get(&ban_key(a)).await.unwrap().is_some());
    assert_eq!(
        j.failure(a, 1, now(&clock)).await.unwrap(),
        Outcome::AlreadyBanned
    );

    // ignoreip: never counted.
    for _ in 0..5 {
        assert_eq!(
            j.failure(ip("192.0.2.3"), 1, now(&clock)).await.unwrap(),
            Outcome::Ignored
        );
    }
    // attempts count as several failures.
    let b = ip("2001:db8::66");
    assert!(matches!(
        j.failure(b, 3, now(&clock)).await.unwrap(),
        Outcome::Banned(_)
    ));
    rec.take();

    // Expiry: the store forgets, the actions are told.
    clock.advance(Duration::from_secs(3601));
    assert!(store.get(&ban_key(a)).await.unwrap().is_none());
    let mut lifted = j.expire(now(&clock)).await;
    lifted.sort();
    assert_eq!(lifted, [a, b]);
    let mut calls = rec.take();
    calls.sort();
    assert_eq!(calls, ["unban 198.51.100.7", "unban 2001:db8::66"]);

    let s = j.status().await;
    assert_eq!((s.currently_banned, s.total_banned), (0, 2));
    assert_eq!(s.total_failed, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_multipliers_maxtime_and_overalljails() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    let rec = Recorder::default();
    let mut s = JailSettings::new("postfix");
    s.maxretry = 1;
    s.bantime = 600;
    s.increment = Some(Increment {
        factor: 1.0,
        multipliers: vec![1, 2, 4, 8],
        maxtime: 3000,
        overalljails: true,
    });
    let j = jail(s, store.clone(), &rec, &[]);
    let a = ip("203.0.113.9");
    let mut times = Vec::new();
    for _ in 0..5 {
        let Outcome::Banned(r) = j.failure(a, 1, now(&clock)).await.unwrap() else {
            panic!()
        };
        times.push(r.until.unwrap() - r.since);
        clock.advance(Duration::from_secs(3001));
        j.expire(now(&clock)).await;
    }
    // 600, ×2, ×4, ×8 capped at maxtime 3000, stays there.
    assert_eq!(times, [600, 1200, 2400, 3000, 3000]);

    // overalljails: a ban in another jail counts.
    let mut s2 = JailSettings::new("sshd");
    s2.maxretry = 1;
    s2.bantime = 100;
    s2.increment = Some(Increment {
        factor: 1.0,
        multipliers: Vec::new(),
        maxtime: 0,
        overalljails: true,
    });
    let other = jail(s2.clone(), store.clone(), &rec, &[]);
    let Outcome::Banned(r) = other.failure(a, 1, now(&clock)).await.unwrap() else {
        panic!()
    };
    // five earlier bans: 100 × 2^5.
    assert_eq!(r.until.unwrap() - r.since, 3200);
    // Per jail (overalljails = false): this jail's own count only.
    clock.advance(Duration::from_secs(4000));
    other.expire(now(&clock)).await;
    s2.name = "dovecot".into();
    if let Some(i) = s2.increment.as_mut() {
        i.overalljails = false;
    }
    let per_jail = jail(s2, store.clone(), &rec, &[]);
    let Outcome::Banned(r) = per_jail.failure(a, 1, now(&clock)).await.unwrap() else {
        panic!()
    };
    assert_eq!(r.until.unwrap() - r.since, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_active_bans_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let (a, b, p) = (ip("198.51.100.1"), ip("198.51.100.2"), ip("198.51.100.3"));
    let half = ip("198.51.100.4");
    {
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
        let mut short = JailSettings::new("sshd");
        short.maxretry = 1;
        let j = jail(short, store.clone(), &rec, &[]);
        j.failure(a, 1, now(&clock)).await.unwrap();
        j.ban(b, now(&clock), Some(60)).await.unwrap();
        j.ban(p, now(&clock), Some(-1)).await.unwrap();
        let mut three = JailSettings::new("sshd");
        three.name = "sshd".into();
        let j3 = jail(three, store.clone(), &rec, &[]);
        j3.failure(half, 1, now(&clock)).await.unwrap();
        j3.failure(half, 1, now(&clock)).await.unwrap();
        j.stop().await;
    }
    rec.take();
    // Down for two minutes: b's 60 s ban ended meanwhile.
    clock.advance(Duration::from_secs(120));
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    let j = jail(JailSettings::new("sshd"), store.clone(), &rec, &[]);
    let restored = j.restore(now(&clock)).await.unwrap();
    assert_eq!(restored.len(), 2);
    assert_eq!(rec.take(), ["start 198.51.100.1,198.51.100.3"]);
    assert!(j.is_banned(a) && j.is_banned(p) && !j.is_banned(b));
    // The fail count of `half` survived the restart: one more bans.
    assert!(matches!(
        j.failure(half, 1, now(&clock)).await.unwrap(),
        Outcome::Banned(_)
    ));
    // Permanent stays after a day; unban by hand lifts it.
    clock.advance(Duration::from_secs(86_400));
    assert!(!j.expire(now(&clock)).await.contains(&p));
    assert!(j.unban(p, now(&clock)).await.unwrap());
    assert!(store.get(&ban_key(p)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_store_see_the_same_ban() {
    // Two engines sharing a store (as two `serve` on one Redis will): one
    // bans, the other applies the ban at its next sync, and lifts it
    // when the first unbans.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open_with_clock(dir.path(), clock.clone()).unwrap());
    let (rec1, rec2) = (Recorder::default(), Recorder::default());
    let mut s = JailSettings::new("postfix");
    s.maxretry = 1;
    let host1 = jail(s.clone(), store.clone(), &rec1, &[]);
    let host2 = jail(s, store.clone(), &rec2, &[]);
    let a = ip("192.0.2.77");
    host1.failure(a, 1, now(&clock)).await.unwrap();
    assert_eq!(host2.sync(now(&clock)).await.unwrap(), (1, 0));
    assert_eq!(rec2.take(), ["ban 192.0.2.77 3600"]);
    assert!(host2.is_banned(a));
    assert_eq!(
        host2.sync(now(&clock)).await.unwrap(),
        (0, 0),
        "applied once"
    );
    host1.unban(a, now(&clock)).await.unwrap();
    assert_eq!(host2.sync(now(&clock)).await.unwrap(), (0, 1));
    assert_eq!(rec2.take(), ["unban 192.0.2.77"]);

    // Two jails, one address: the longer ban keeps the record; the
    // shorter jail lifts only its own actions when its ban ends, and a
    // sync does not lift what the other jail still holds.
    let (rec3, rec4) = (Recorder::default(), Recorder::default());
    let mut long = JailSettings::new("sshd");
    long.maxretry = 1;
    long.bantime = -1;
    let mut short = JailSettings::new("dovecot");
    short.maxretry = 1;
    short.bantime = 60;
    let long = jail(long, store.clone(), &rec3, &[]);
    let short = jail(short, store.clone(), &rec4, &[]);
    let b = ip("192.0.2.78");
    long.failure(b, 1, now(&clock)).await.unwrap();
    short.failure(b, 1, now(&clock)).await.unwrap();
    let v = store.get(&ban_key(b)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&v).contains("\"jail\":\"sshd\""));
    clock.advance(Duration::from_secs(61));
    assert_eq!(short.expire(now(&clock)).await, [b]);
    assert_eq!(short.sync(now(&clock)).await.unwrap(), (0, 0));
    assert!(long.is_banned(b) && store.get(&ban_key(b)).await.unwrap().is_some());

    // What the embedded store allows: one process (one open) per file. A
    // second `serve` on the same data directory is refused, naming it.
    let second = EmbeddedStore::open(dir.path());
    let Err(err) = second else {
        panic!("the embedded store is single-process")
    };
    assert_eq!(err.kind(), mxguard_store::ErrorKind::InUse, "{err}");
}

/// Engine::start runs a jail's actions' `start` (firewall sets, rules)
/// before the next jail is built: when a later jail fails, the ones
/// already started are stopped before the error goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_stops_the_jails_already_started() {
    struct Marks(Arc<Mutex<Vec<String>>>);
    impl Action for Marks {
        fn name(&self) -> &str {
            "marks"
        }
        fn start(&self, _: &[Ban]) -> Result<(), ActionError> {
            self.0.lock().unwrap().push("start".into());
            Ok(())
        }
        fn ban(&self, _: &Ban) -> Result<(), ActionError> {
            Ok(())
        }
        fn unban(&self, _: &Ban) -> Result<(), ActionError> {
            Ok(())
        }
        fn stop(&self) -> Result<(), ActionError> {
            self.0.lock().unwrap().push("stop".into());
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(&dir.path().join("db")).unwrap());
    let log = dir.path().join("auth.log");
    // `a` is built first (the jails are in name order); `b`'s log path is
    // compressed, which the follower refuses after b's actions started.
    let cfg: mxguard_ban::config::BanConfig = toml::from_str(&format!(
        "enabled = true\n[jails.a]\nfilter = \"sshd\"\nlogpath = [\"{}\"]\n\
         [jails.b]\nfilter = \"sshd\"\nlogpath = [\"{}\"]\n",
        log.display(),
        dir.path().join("old.log.gz").display()
    ))
    .unwrap();
    let marks = Arc::new(Mutex::new(Vec::new()));
    let m = marks.clone();
    let builder = move |_: &JailSettings,
                        _: &[mxguard_ban::config::ActionConfig]|
          -> Result<Vec<Box<dyn Action>>, String> {
        Ok(vec![Box::new(Marks(m.clone()))])
    };
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let started = mxguard_ban::engine::Engine::start(&cfg, store, &builder, stop_rx).await;
    let err = started.err().expect("jail b's log path is compressed");
    assert!(err.contains("[ban.jails.b]"), "{err}");
    let marks = marks.lock().unwrap().clone();
    assert_eq!(
        marks.iter().filter(|m| *m == "start").count(),
        2,
        "{marks:?}"
    );
    assert_eq!(
        marks.iter().filter(|m| *m == "stop").count(),
        2,
        "{marks:?}"
    );
}
