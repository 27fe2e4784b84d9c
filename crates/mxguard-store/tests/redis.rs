//! The Redis backend against real redis-server processes on loopback: the
//! conformance suite over TCP, over a unix socket and on a three-node
//! Redis Cluster, then what only Redis has (ACL users and databases, a
//! read replica, key prefixes, slots spread over the cluster, Redis going
//! away and coming back, store copy both ways).

#[macro_use]
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use mxguard_store::copy::{self, Item};
use mxguard_store::{EmbeddedStore, ErrorKind, RedisOptions, RedisStore, RedisTls, Store};
use redis_server::{RedisServer, TlsFiles, shared_cluster, shared_server, start_tls};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Redis keeps its own clock: tests sleep, in units this long.
const UNIT: Duration = Duration::from_millis(200);

fn options(urls: Vec<String>, test: &str) -> RedisOptions {
    RedisOptions {
        key_prefix: format!("t{}:{test}:", std::process::id()),
        timeout: Duration::from_secs(5),
        ..RedisOptions::new(urls)
    }
}

fn harness(store: RedisStore) -> conformance::Harness {
    conformance::Harness {
        store: Arc::new(store),
        clock: None,
        unit: UNIT,
        _keep: Box::new(()),
    }
}

async fn tcp(test: &str) -> conformance::Harness {
    let s = shared_server();
    harness(
        RedisStore::connect(options(vec![s.url()], &format!("tcp:{test}")))
            .await
            .unwrap(),
    )
}

async fn unix(test: &str) -> conformance::Harness {
    let s = shared_server();
    harness(
        RedisStore::connect(options(vec![s.unix_url()], &format!("unix:{test}")))
            .await
            .unwrap(),
    )
}

async fn cluster(test: &str) -> conformance::Harness {
    let c = shared_cluster();
    harness(RedisStore::connect(options(c.urls(), test)).await.unwrap())
}

/// One TLS server shared by the conformance tests over TLS: it requires a
/// client certificate, as Redis does by default.
fn shared_tls() -> &'static (TlsFiles, RedisServer, u16) {
    static S: std::sync::OnceLock<(TlsFiles, RedisServer, u16)> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let files = TlsFiles::make();
        let (server, port) = start_tls(&files, "yes");
        (files, server, port)
    })
}

fn client_tls(files: &TlsFiles) -> RedisTls {
    RedisTls {
        ca_file: Some(files.path("ca.pem")),
        cert_file: Some(files.path("client.pem")),
        key_file: Some(files.path("client.key")),
        insecure: false,
    }
}

async fn tls(test: &str) -> conformance::Harness {
    let (files, _, port) = shared_tls();
    harness(
        RedisStore::connect(RedisOptions {
            tls: client_tls(files),
            ..options(
                vec![format!("rediss://127.0.0.1:{port}/0")],
                &format!("tls:{test}"),
            )
        })
        .await
        .unwrap(),
    )
}

mod over_tls {
    use super::conformance;
    conformance_tests!(super::tls);
}

mod over_tcp {
    use super::conformance;
    conformance_tests!(super::tcp);
}

mod over_unix_socket {
    use super::conformance;
    conformance_tests!(super::unix);
}

mod on_a_cluster {
    use super::conformance;
    conformance_tests!(super::cluster);
}

#[tokio::test]
async fn acl_user_password_and_database_number() {
    let server = RedisServer::start_with(&[
        "--user", "default", "off", "--user", "mx", "on", ">s3cret", "~*", "&*", "+@all",
    ]);
    let url = format!("redis://mx:s3cret@127.0.0.1:{}/3", server.port);
    let s = RedisStore::connect(RedisOptions::new(vec![url]))
        .await
        .unwrap();
    s.set("grey:k", b"v", None).await.unwrap();
    assert!(!s.describe().contains("s3cret"), "{}", s.describe());
    // The key is in database 3, for that user.
    let out = server.cli(&[
        "--user", "mx", "--pass", "s3cret", "-n", "3", "GET", "grey:k",
    ]);
    assert_eq!(out.trim(), "v");
    let out = server.cli(&[
        "--user", "mx", "--pass", "s3cret", "-n", "0", "EXISTS", "grey:k",
    ]);
    assert_eq!(out.trim(), "0");

    let bad = format!("redis://mx:wrong@127.0.0.1:{}/3", server.port);
    let e = RedisStore::connect(RedisOptions::new(vec![bad]))
        .await
        .expect_err("a wrong password is refused");
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    let m = e.to_string();
    assert!(!m.contains("wrong"), "the password is not shown: {m}");
    assert!(
        m.contains(&format!("127.0.0.1:{}", server.port)),
        "names the server: {m}"
    );
    assert!(m.contains("password"), "says what to check: {m}");
}

#[tokio::test]
async fn bad_urls_are_refused_with_what_to_write() {
    let e = RedisStore::open(RedisOptions::new(vec![
        "redis://127.0.0.1:notaport/0".into(),
    ]))
    .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Open, "{e}");
    assert!(e.to_string().contains("[store] url"), "{e}");
    let e = RedisStore::open(RedisOptions::new(vec![])).expect_err("refused");
    assert!(e.to_string().contains("[store] url"), "{e}");
}

#[tokio::test]
async fn key_prefix_namespaces_every_key() {
    let server = shared_server();
    let s = RedisStore::connect(RedisOptions {
        key_prefix: format!("ns{}:", std::process::id()),
        ..RedisOptions::new(vec![server.url()])
    })
    .await
    .unwrap();
    s.set("ban:192.0.2.1", b"1", None).await.unwrap();
    s.list_push("history", b"h", 10).await.unwrap();
    s.incr("counter:scanned", 1, None).await.unwrap();
    let raw = server.cli(&["GET", &format!("ns{}:ban:192.0.2.1", std::process::id())]);
    assert_eq!(raw.trim(), "1");
    assert_eq!(
        s.scan_prefix("", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec!["ban:192.0.2.1", "counter:scanned"],
        "listed without the prefix, and only this namespace"
    );
}

#[tokio::test]
async fn a_cluster_spreads_keys_over_its_masters() {
    let c = shared_cluster();
    let s = RedisStore::connect(options(c.urls(), "spread"))
        .await
        .unwrap();
    for i in 0..300 {
        s.set(&format!("grey:192.0.2.{i}/a@b/c@d"), b"1", None)
            .await
            .unwrap();
    }
    for n in &c.nodes {
        let size: u64 = n.cli(&["DBSIZE"]).trim().parse().unwrap();
        assert!(size >= 30, "node {} holds {size} keys: not spread", n.port);
    }
    assert_eq!(s.scan_prefix("grey:", 1000).await.unwrap().len(), 300);
}

#[tokio::test]
async fn reads_go_to_the_replica_and_writes_to_the_primary() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
    let s = RedisStore::connect(RedisOptions {
        read_url: Some(replica.url()),
        ..RedisOptions::new(vec![primary.url()])
    })
    .await
    .unwrap();
    assert!(
        s.describe().contains(&replica.port.to_string()),
        "{}",
        s.describe()
    );
    s.set("k", b"v", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get("k").await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "never replicated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With the primary gone, reads still work (from the replica), writes fail.
    let mut primary = primary;
    primary.stop();
    let e = s.set("k2", b"v", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(
        e.to_string().contains(&primary.port.to_string()),
        "names the primary: {e}"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await; // past the back-off
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// Redis killed under load, then started again: every operation ends
/// within the timeout (plus scheduling slack), failures are backend
/// errors, `writable` says so during the back-off, nothing panics, and
/// the store works again by itself once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_mid_load_then_back() {
    let mut server = RedisServer::start();
    let timeout = Duration::from_millis(300);
    let s = Arc::new(
        RedisStore::connect(RedisOptions {
            timeout,
            ..RedisOptions::new(vec![server.url()])
        })
        .await
        .unwrap(),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (s, stop) = (s.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut slowest) = (0u64, 0u64, Duration::ZERO);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = match i % 3 {
                    0 => s
                        .incr(&format!("rate:{w}"), 1, Some(Duration::from_secs(60)))
                        .await
                        .map(|_| ()),
                    1 => s
                        .get_many(&["ban:192.0.2.1", "greyawl:192.0.2"])
                        .await
                        .map(|_| ()),
                    _ => s.list_push("history", b"row", 100).await,
                };
                slowest = slowest.max(t.elapsed());
                match r {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                i += 1;
            }
            (ok, failed, slowest)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s2 = s.clone();
    let _server = tokio::task::spawn_blocking(move || {
        server.stop();
        std::thread::sleep(Duration::from_millis(1500));
        // While down, at some point in the back-off writable says why.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut saw = false;
        while Instant::now() < deadline && !saw {
            saw = s2.writable().is_err();
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(saw, "writable never reported the outage");
        server.restart();
        server
    })
    .await
    .unwrap();
    // Back within the longest back-off (2 s) and a reconnect.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        if s.set("probe", b"1", None).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.writable().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        let (o, f, slowest) = w.await.expect("no worker panicked");
        ok += o;
        failed += f;
        assert!(
            slowest < timeout + Duration::from_millis(700),
            "an operation took {slowest:?}, past the {timeout:?} timeout"
        );
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    assert!(s.errors() > 0, "failures are counted");
    assert_eq!(s.incr("after", 1, None).await.unwrap(), 1, "works after");
}

/// Redis never started: `open` succeeds (serve starts), operations fail
/// fast with an error naming the server, and work once it is up.
#[tokio::test]
async fn a_store_opened_while_redis_is_down_connects_later() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.stop();
    let s = RedisStore::open(RedisOptions {
        timeout: Duration::from_millis(300),
        ..RedisOptions::new(vec![url])
    })
    .unwrap();
    let e = s.get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains(&server.port.to_string()), "{e}");
    let t = Instant::now();
    let e2 = s.get("k").await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "fails fast in the back-off: {e2}"
    );
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.set("k", b"v", None).await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
}

/// embedded → Redis → embedded keeps every key, value, list order and TTL.
async fn copy_round_trip(urls: Vec<String>, test: &str) {
    let dir = tempfile::tempdir().unwrap();
    let src = EmbeddedStore::open(&dir.path().join("a")).unwrap();
    src.set(
        "grey:1.2.3.4/a@b/c@d",
        b"{\"first\":1}",
        Some(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    src.set(
        "greyawl:1.2.3",
        b"{\"count\":5}",
        Some(Duration::from_secs(86_400 * 35)),
    )
    .await
    .unwrap();
    src.set("bayes:model", &vec![7u8; 100_000], None)
        .await
        .unwrap();
    src.incr("counter:scanned", 42, None).await.unwrap();
    src.set("gone", b"x", Some(Duration::from_millis(1)))
        .await
        .unwrap();
    for i in 0..20u8 {
        src.list_push("history", &[i], 10).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = src.export().unwrap();
    assert_eq!(before.len(), 5, "{before:?}");

    let redis = RedisStore::connect(options(urls, test)).await.unwrap();
    let c = copy::import(&redis, &before).await.unwrap();
    assert_eq!((c.values, c.lists, c.list_items), (4, 1, 10));
    let mid = redis.export().await.unwrap();
    same_items(&before, &mid);

    let back = EmbeddedStore::open(&dir.path().join("b")).unwrap();
    copy::import(&back, &mid).await.unwrap();
    let after = back.export().unwrap();
    same_items(&before, &after);
    assert_eq!(
        back.list_range("history", 0, 3).await.unwrap(),
        vec![vec![19], vec![18], vec![17]],
        "newest first"
    );
}

/// Same keys, values and lists; expiries within a second of each other.
fn same_items(a: &[Item], b: &[Item]) {
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (
                Item::Value {
                    key: k1,
                    value: v1,
                    expires: e1,
                },
                Item::Value {
                    key: k2,
                    value: v2,
                    expires: e2,
                },
            ) => {
                assert_eq!((k1, v1), (k2, v2));
                match (e1, e2) {
                    (None, None) => {}
                    (Some(t1), Some(t2)) => {
                        let d = t1.duration_since(*t2).unwrap_or_else(|e| e.duration());
                        assert!(d < Duration::from_secs(1), "{k1}: expiry moved by {d:?}");
                    }
                    _ => panic!("{k1}: expiry {e1:?} became {e2:?}"),
                }
            }
            (x, y) => assert_eq!(x, y),
        }
    }
}

#[tokio::test]
async fn store_copy_round_trip_keeps_keys_and_ttls() {
    copy_round_trip(vec![shared_server().url()], "copy").await;
}

#[tokio::test]
async fn store_copy_round_trip_through_a_cluster() {
    copy_round_trip(shared_cluster().urls(), "copy").await;
}

/// What a user gets wrong with TLS is told apart: the wrong CA, no client
/// certificate where Redis asks for one, TLS keys without a rediss:// URL;
/// and `tls_insecure` connects without any CA.
#[tokio::test]
async fn tls_failures_name_the_key_to_fix() {
    let (files, server, port) = shared_tls();
    let url = format!("rediss://127.0.0.1:{port}/0");
    let connect = |tls: RedisTls| {
        let url = url.clone();
        async move {
            RedisStore::connect(RedisOptions {
                tls,
                timeout: Duration::from_secs(5),
                ..RedisOptions::new(vec![url])
            })
            .await
        }
    };

    // The server's certificate is not signed by the CA given.
    let e = connect(RedisTls {
        ca_file: Some(files.path("other-ca.pem")),
        ..client_tls(files)
    })
    .await
    .expect_err("a server signed by another CA is refused");
    let m = e.to_string();
    assert_eq!(e.kind(), ErrorKind::Backend, "{m}");
    assert!(
        m.contains(&format!("127.0.0.1:{port}")) && m.contains("tls_ca_file"),
        "names the server and the key to fix: {m}"
    );

    // Redis asks for a client certificate and none is given.
    let e = connect(RedisTls {
        cert_file: None,
        key_file: None,
        ..client_tls(files)
    })
    .await
    .expect_err("no client certificate where Redis requires one");
    let m = e.to_string();
    assert!(m.contains("tls_cert_file"), "says what to give: {m}");

    // A missing CA file is an open error naming the key and the file.
    let e = connect(RedisTls {
        ca_file: Some(files.path("missing.pem")),
        ..client_tls(files)
    })
    .await
    .expect_err("a missing CA file is refused");
    assert_eq!(e.kind(), ErrorKind::Open, "{e}");
    assert!(
        e.to_string().contains("[store] tls_ca_file") && e.to_string().contains("missing.pem"),
        "{e}"
    );

    // TLS settings on a plain URL are a mistake, said at open.
    let e = RedisStore::open(RedisOptions {
        tls: client_tls(files),
        ..RedisOptions::new(vec![server.url()])
    })
    .expect_err("TLS keys without rediss://");
    assert!(e.to_string().contains("rediss://"), "{e}");

    // Insecure: no CA given (the system's CAs do not know ours), still
    // connects; the same without insecure does not.
    let s = connect(RedisTls {
        ca_file: None,
        insecure: true,
        ..client_tls(files)
    })
    .await
    .expect("tls_insecure connects without a CA");
    s.set("tls:insecure", b"1", None).await.unwrap();
    assert_eq!(server.cli(&["GET", "tls:insecure"]).trim(), "1");
    let e = connect(RedisTls {
        ca_file: None,
        ..client_tls(files)
    })
    .await
    .expect_err("the system's CAs do not trust the test CA");
    assert!(e.to_string().contains("tls_ca_file"), "{e}");
}

/// A server that does not ask for client certificates takes a client
/// with the CA file alone; what it stores is what redis-cli reads over
/// the plain port.
#[tokio::test]
async fn tls_with_a_ca_file_only() {
    let files = TlsFiles::make();
    let (server, port) = start_tls(&files, "no");
    let s = RedisStore::connect(RedisOptions {
        tls: RedisTls {
            ca_file: Some(files.path("ca.pem")),
            ..RedisTls::default()
        },
        ..RedisOptions::new(vec![format!("rediss://localhost:{port}/2")])
    })
    .await
    .expect("TLS with a CA file");
    s.set("grey:tls", b"ok", None).await.unwrap();
    assert_eq!(server.cli(&["-n", "2", "GET", "grey:tls"]).trim(), "ok");
}
