//! Several MX hosts sharing one Redis (`[store] url`), as a provider runs
//! them: two `mxguard serve` policy servers, and the CLI's learn, scan,
//! history and `store copy` against the same Redis.

mod common;

#[path = "../../mxguard-store/tests/support/redis_server.rs"]
mod redis_server;

use common::{mxguard, text};
use redis_server::RedisServer;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `mxguard serve` with only its policy server, killed when dropped.
struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn redis_config(redis: &RedisServer, extra: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\ntimeout = \"500ms\"\n{extra}",
        redis.url()
    )
}

fn serve(dir: &Path, name: &str, redis: &RedisServer) -> Serve {
    let port = common::postfix::free_port();
    let cfg = write_config(
        dir,
        name,
        &format!(
            "[milter]\nenabled = false\n[policy]\nlisten = \"127.0.0.1:{port}\"\nmynetworks = []\n\
             store_failure = \"defer\"\n\
             [policy.restrictions]\nclient = [\"reject_banned_client\"]\n\
             [greylist]\ndelay = 1\nsender_pools = false\n{}",
            redis_config(redis, "")
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(["-c", &cfg, "serve"])
        .env("MXGUARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mxguard serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve { child, port }
}

/// One policy request (Postfix's delegation protocol), its action.
fn ask(port: u16, state: &str, client: &str, sender: &str, rcpt: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\n\
         client_address={client}\nclient_name=mx.example.org\nhelo_name=mx.example.org\n\
         sender={sender}\nrecipient={rcpt}\ninstance=1.{client}\n\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end()
        .strip_prefix("action=")
        .unwrap_or(&line)
        .to_string()
}

#[test]
fn two_policy_servers_share_greylisting_and_bans() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), "a", &redis);
    let b = serve(dir.path(), "b", &redis);

    // Greylisted by A…
    let first = ask(
        a.port,
        "RCPT",
        "192.0.2.10",
        "alice@example.org",
        "bob@example.net",
    );
    assert!(first.starts_with("DEFER_IF_PERMIT"), "{first}");
    // …an early retry through B is still deferred (the same triplet)…
    let early = ask(
        b.port,
        "RCPT",
        "192.0.2.10",
        "alice@example.org",
        "bob@example.net",
    );
    assert!(early.starts_with("DEFER_IF_PERMIT"), "{early}");
    std::thread::sleep(Duration::from_millis(1500));
    // …and the retry after the delay passes through B.
    let retry = ask(
        b.port,
        "RCPT",
        "192.0.2.10",
        "alice@example.org",
        "bob@example.net",
    );
    assert!(
        !retry.starts_with("DEFER"),
        "B knew the triplet A saw: {retry}"
    );
    // A triplet B never saw from a new client is greylisted by A.
    let other = ask(
        a.port,
        "RCPT",
        "198.51.100.7",
        "carol@example.org",
        "bob@example.net",
    );
    assert!(other.starts_with("DEFER_IF_PERMIT"), "{other}");

    // A ban record (as the ban engine on A writes it) is refused by B at
    // connect.
    assert_eq!(
        redis
            .cli(&[
                "SET",
                "ban:203.0.113.9",
                "{\"reason\":\"test\"}",
                "EX",
                "600"
            ])
            .trim(),
        "OK"
    );
    let banned = ask(b.port, "CONNECT", "203.0.113.9", "", "");
    assert!(banned.starts_with("554 5.7.1"), "{banned}");
    let banned_a = ask(a.port, "CONNECT", "203.0.113.9", "", "");
    assert!(banned_a.starts_with("554 5.7.1"), "{banned_a}");
    let fine = ask(b.port, "CONNECT", "203.0.113.10", "", "");
    assert_eq!(fine, "DUNNO");
}

/// Redis stopped under a policy server: answers keep coming within the
/// timeout, by `store_failure = "defer"`; once Redis is back, greylisting
/// works again without a restart.
#[test]
fn a_policy_server_answers_by_store_failure_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = serve(dir.path(), "a", &redis);
    let ok = ask(
        a.port,
        "RCPT",
        "192.0.2.20",
        "x@example.org",
        "y@example.net",
    );
    assert!(
        ok.starts_with("DEFER_IF_PERMIT 4.2.0") || ok.starts_with("DEFER_IF_PERMIT"),
        "{ok}"
    );

    redis.stop();
    for i in 0..20 {
        let t = Instant::now();
        let r = ask(
            a.port,
            "RCPT",
            &format!("192.0.2.{}", 30 + i),
            "x@example.org",
            "y@example.net",
        );
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "answer {i} took {:?}",
            t.elapsed()
        );
        assert!(
            r.starts_with("DEFER_IF_PERMIT"),
            "store_failure = defer: {r}"
        );
    }
    redis.restart();
    // Greylisting keeps state again: a first attempt, then its retry passes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ask(
            a.port,
            "RCPT",
            "192.0.2.99",
            "x@example.org",
            "y@example.net",
        );
        assert!(r.starts_with("DEFER"), "{r}");
        if redis.cli(&["DBSIZE"]).trim() != "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no greylist state written after Redis came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let r = ask(
        a.port,
        "RCPT",
        "192.0.2.99",
        "x@example.org",
        "y@example.net",
    );
    assert!(!r.starts_with("DEFER"), "recovered: {r}");
}

/// The corpus of tests/learn.rs: spam and ham far apart.
fn write_corpus(dir: &Path, n: usize) {
    let (spam, ham) = (dir.join("spam"), dir.join("ham"));
    std::fs::create_dir_all(&spam).unwrap();
    std::fs::create_dir_all(&ham).unwrap();
    for i in 0..n {
        std::fs::write(
            spam.join(format!("{i}.eml")),
            format!(
                "From: promo{i}@deals.example\r\nMessage-ID: <s{i}@deals.example>\r\nSubject: Cheap pills offer {i}\r\n\r\nBuy cheap pills now, best price, click http://pills.example/{i}\r\n"
            ),
        )
        .unwrap();
        std::fs::write(
            ham.join(format!("{i}.eml")),
            format!(
                "From: bob@team.example\r\nMessage-ID: <h{i}@team.example>\r\nSubject: Release notes {i}\r\n\r\nThe build passed; the release notes are attached for review.\r\n"
            ),
        )
        .unwrap();
    }
}

/// Learning on one host changes the score on another; history written by
/// both is seen by either; `store copy` moves it all to a data directory.
#[test]
fn learning_history_and_copy_through_one_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_corpus(d, 12);
    let extra = "[classifier]\nmin_learns = 10\n";
    let cfg_a = write_config(
        d,
        "a",
        (format!(
            "{}data_dir = \"{}\"\n",
            redis_config(&redis, ""),
            d.join("a-data").display()
        ) + extra)
            .as_str(),
    );
    let cfg_b = write_config(
        d,
        "b",
        (format!(
            "{}data_dir = \"{}\"\n",
            redis_config(&redis, ""),
            d.join("b-data").display()
        ) + extra)
            .as_str(),
    );
    let p = |s: &str| d.join(s).display().to_string();
    let out = mxguard(
        &[
            "-c",
            &cfg_a,
            "learn",
            "--spam",
            &p("spam"),
            "--ham",
            &p("ham"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !d.join("a-data/mxguard.redb").exists(),
        "nothing went to the embedded store"
    );

    // B scans with the model A learned.
    let msg = "From: promo99@deals.example\r\nSubject: Cheap pills offer\r\n\r\nBuy cheap pills now, best price\r\n";
    let out = mxguard(
        &["-c", &cfg_b, "scan", "--record", "--json", "-"],
        Some(msg.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["symbols"].get("BAYES_SPAM").is_some(),
        "B used A's model: {v}"
    );

    // History recorded through A and through B, seen by either.
    let ham = "From: bob@team.example\r\nSubject: notes\r\n\r\nThe build passed.\r\n";
    let out = mxguard(
        &["-c", &cfg_a, "scan", "--record", "-"],
        Some(ham.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for cfg in [&cfg_a, &cfg_b] {
        let out = mxguard(&["-c", cfg, "history", "--json"], None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0]["subject"], "notes");
        assert_eq!(rows[1]["subject"], "Cheap pills offer");
    }

    // Copy to a data directory and back into a fresh Redis database.
    let out = mxguard(
        &[
            "-c",
            &cfg_a,
            "store",
            "copy",
            "--from",
            &redis.url(),
            "--to",
            &p("copy"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("copied ") && s.contains("1 lists (2 items)"),
        "{s}"
    );
    let db5 = format!("redis://127.0.0.1:{}/5", redis.port);
    let out = mxguard(
        &[
            "-c",
            &cfg_a,
            "store",
            "copy",
            "--from",
            &p("copy"),
            "--to",
            &db5,
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        redis.cli(&["-n", "5", "DBSIZE"]).trim(),
        redis.cli(&["-n", "0", "DBSIZE"]).trim(),
        "every key came back"
    );
    // Into a store that holds keys: refused without --merge.
    let out = mxguard(
        &[
            "-c",
            &cfg_a,
            "store",
            "copy",
            "--from",
            &p("copy"),
            "--to",
            &db5,
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--merge"),
        "{}",
        text(&out.stderr)
    );
}

/// A `mxguard serve` with its HTTP API and control socket on, on Redis:
/// stopped (killed) when dropped.
struct ApiServe {
    child: Child,
    port: u16,
}

impl Drop for ApiServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The config of one API host on `redis_url`: its own data directory
/// (where its control socket is), the milter on a free port (the API scans
/// through its scan service), no policy server, no checks
/// that need the network, the classifier refreshed every second.
fn api_config(d: &Path, name: &str, redis_url: &str, port: u16) -> String {
    let data = d.join(format!("{name}-data"));
    std::fs::create_dir_all(&data).unwrap();
    write_config(
        d,
        name,
        &format!(
            "[store]\nurl = \"{redis_url}\"\ntimeout = \"2s\"\ndata_dir = \"{}\"\n\
             [milter]\nlisten = \"127.0.0.1:{milter}\"\n[policy]\nenabled = false\n\
             [spf]\nenabled = false\n[dkim]\nenabled = false\n[dmarc]\nenabled = false\n\
             [arc_verify]\nenabled = false\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\n\
             [classifier]\nmin_learns = 10\nrefresh_interval = 1\n",
            data.display(),
            milter = common::postfix::free_port(),
        ),
    )
}

fn api_serve(cfg: &str, port: u16, control: &Path) -> ApiServe {
    let child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(["-c", cfg, "serve"])
        .env("MXGUARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mxguard serve");
    let serve = ApiServe { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() || !control.exists() {
        assert!(
            Instant::now() < deadline,
            "serve did not listen on {port} and {}",
            control.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

/// `POST /checkv2` of `msg` to the API on `port`: rspamd's JSON reply.
fn checkv2(port: u16, msg: &str) -> serde_json::Value {
    use std::io::Read;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /checkv2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{msg}",
        msg.len()
    )
    .unwrap();
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// `mxguard learn` while serve runs on Redis goes through serve's control
/// socket (the CLI's own config names a Redis nobody listens on, so the
/// direct path would fail), and a second serve on the same Redis scores
/// with the new model once its refresh picks it up.
#[test]
fn learn_through_a_running_serve_reaches_another_serve_on_the_same_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_corpus(d, 12);
    let (port_a, port_b) = (common::postfix::free_port(), common::postfix::free_port());
    let cfg_a = api_config(d, "a", &redis.url(), port_a);
    let cfg_b = api_config(d, "b", &redis.url(), port_b);
    let _a = api_serve(&cfg_a, port_a, &d.join("a-data/control.sock"));
    let b = api_serve(&cfg_b, port_b, &d.join("b-data/control.sock"));

    let spam = "From: promo99@deals.example\r\nMessage-ID: <s99@deals.example>\r\nSubject: Cheap pills offer\r\n\r\nBuy cheap pills now, best price\r\n";
    let before = checkv2(b.port, spam);
    assert!(
        before["symbols"].get("BAYES_SPAM").is_none(),
        "nothing learned yet: {before}"
    );

    // The CLI finds A's control socket by A's data_dir; its store is a
    // Redis port with no server behind it.
    let dead = format!("redis://127.0.0.1:{}/0", redis_server::free_port());
    let cfg_cli = api_config(d, "a", &dead, port_a);
    let p = |s: &str| d.join(s).display().to_string();
    let out = mxguard(
        &[
            "-c",
            &cfg_cli,
            "learn",
            "--spam",
            &p("spam"),
            "--ham",
            &p("ham"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("spam: 12 learned") && said.contains("ham: 12 learned"),
        "{said}"
    );
    // A's model lives in Redis only.
    assert!(!d.join("a-data/mxguard.redb").exists());

    // B refreshes every second: the next scans find the model A learned.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = checkv2(b.port, spam);
        if v["symbols"].get("BAYES_SPAM").is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never scored with A's model: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ham = "From: bob@team.example\r\nMessage-ID: <h99@team.example>\r\nSubject: Release notes\r\n\r\nThe build passed; the release notes are attached for review.\r\n";
    let v = checkv2(b.port, ham);
    assert!(v["symbols"].get("BAYES_HAM").is_some(), "{v}");
}

/// `[store]`'s TLS keys reach the store every command opens: `mxguard scan
/// --record` and `history` over `rediss://` to a redis-server with
/// `--tls-port` that asks for a client certificate; a wrong CA file is
/// refused naming the key, and `config check` refuses TLS keys on a plain
/// URL.
#[test]
fn the_cli_reaches_redis_over_tls_with_the_store_tls_keys() {
    let files = redis_server::TlsFiles::make();
    let (redis, tls_port) = redis_server::start_tls(&files, "yes");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |ca: &str| {
        format!(
            "[store]\nurl = \"rediss://127.0.0.1:{tls_port}/0\"\ntimeout = \"2s\"\ndata_dir = \"{}\"\n\
             tls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            d.join("data").display(),
            files.path(ca).display(),
            files.path("client.pem").display(),
            files.path("client.key").display(),
        )
    };
    let good = write_config(d, "tls", &config("ca.pem"));
    let msg = "From: bob@team.example\r\nSubject: over tls\r\n\r\nThe build passed.\r\n";
    let out = mxguard(
        &["-c", &good, "scan", "--record", "-"],
        Some(msg.as_bytes()),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = mxguard(&["-c", &good, "history", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("over tls"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        redis.cli(&["LLEN", "history"]).trim(),
        "1",
        "the row is in the Redis behind the TLS port"
    );

    let wrong = write_config(d, "wrong", &config("other-ca.pem"));
    let out = mxguard(&["-c", &wrong, "history", "--json"], None);
    assert!(!out.status.success(), "a server from another CA is refused");
    assert!(
        text(&out.stderr).contains("tls_ca_file"),
        "{}",
        text(&out.stderr)
    );

    let plain = write_config(
        d,
        "plain",
        &format!(
            "[store]\nurl = \"{}\"\ntls_ca_file = \"{}\"\n",
            redis.url(),
            files.path("ca.pem").display()
        ),
    );
    let out = mxguard(&["config", "check", &plain], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("store.tls_ca_file"),
        "{}",
        text(&out.stderr)
    );
}
