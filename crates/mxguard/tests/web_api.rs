//! The HTTP API of `mxguard serve` against its real clients: Debian's
//! `rspamc` (rspamd 3.4) for scans, learning and stats, and plain HTTP for
//! what must be refused (no password, the read-only password, a forged
//! CSRF token, brute force, oversized and malformed requests). Also the
//! CLI reaching a running serve over the control socket.
//!
//! `rspamc` comes from `scripts/peers.sh install` (package rspamd).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const READ_PW: &str = "reader-secret";
const ADMIN_PW: &str = "admin-secret";

/// `mxguard serve` with the API on, stopped (SIGTERM) when dropped.
struct Serve {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn config(&self) -> PathBuf {
        self.dir.path().join("mxguard.toml")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `mxguard -c <config> ARGS`.
    fn mxguard(&self, args: &[&str]) -> std::process::Output {
        let config = self.config();
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        common::mxguard(&all, None)
    }

    fn rspamc(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("rspamc")
            .arg("-h")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rspamc is missing: run scripts/peers.sh install (package rspamd)");
        (
            out.status.success(),
            format!("{}{}", common::text(&out.stdout), common::text(&out.stderr)),
        )
    }

    fn http(&self, request: &str, body: &[u8]) -> Reply {
        http(self.port, request, body)
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// One request (`request`: the request line and headers, without the
/// final blank line; Content-Length and Connection: close are added).
fn http(port: u16, request: &str, body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = request.replace('\n', "\r\n");
    if !req.ends_with("\r\n") {
        req.push_str("\r\n");
    }
    req.push_str(&format!(
        "Host: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) and close before taking the whole body.
    let _ = s.write_all(body);
    raw_reply(&mut s)
}

fn raw_reply(s: &mut TcpStream) -> Reply {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP reply: {text:?}"));
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn pw_hash(password: &str) -> String {
    let out = common::mxguard(&["pw"], Some(format!("{password}\n").as_bytes()));
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    let h = common::text(&out.stdout).trim().to_string();
    assert!(h.starts_with("$argon2id$"), "{h}");
    h
}

/// The config every test starts from: the API on a free port with both
/// passwords, the milter on another, no policy server, no DNS checks (the
/// verdicts must not depend on the network), a small body limit.
fn base_config(extra: &str) -> String {
    let milter = common::postfix::free_port();
    format!(
        r#"
[store]
data_dir = "DATA_DIR"
[milter]
listen = "127.0.0.1:{milter}"
[policy]
enabled = false
[spf]
enabled = false
[dkim]
enabled = false
[dmarc]
enabled = false
[arc_verify]
enabled = false
[web]
listen = "127.0.0.1:PORT"
password = "{read}"
enable_password = "{admin}"
max_body = "256K"
max_headers = 50
max_login_failures = 4
{extra}
"#,
        read = pw_hash(READ_PW),
        admin = pw_hash(ADMIN_PW),
    )
}

fn start(config: &str) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let port = common::postfix::free_port();
    let data = dir.path().join("data");
    let config = config
        .replace("DATA_DIR", &data.display().to_string())
        .replace("PORT", &port.to_string());
    std::fs::write(dir.path().join("mxguard.toml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args([
            "-c",
            dir.path().join("mxguard.toml").to_str().unwrap(),
            "serve",
        ])
        .env("MXGUARD_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start mxguard serve");
    let serve = Serve { child, dir, port };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mxguard serve did not listen on {port}: {}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serve
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content.replace('\n', "\r\n")).unwrap();
    p
}

fn gtube(dir: &Path) -> PathBuf {
    write(
        dir,
        "gtube.eml",
        &format!(
            "From: Spammer <spam@example.com>\nTo: you@example.org\nSubject: buy now\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <gtube-1@example.com>\n\nHello\n{}\n",
            common::GTUBE
        ),
    )
}

fn ham(dir: &Path, n: u32) -> PathBuf {
    write(
        dir,
        &format!("ham{n}.eml"),
        &format!(
            "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: minutes of meeting {n}\nDate: Mon, 7 Dec 2026 10:00:00 +0000\nMessage-ID: <ham-{n}@example.com>\n\nHi Bob,\nthe minutes of meeting {n} are below. See you on Thursday.\n"
        ),
    )
}

/// The lines rspamc's `symbols` and `mxguard scan` print alike.
fn verdict_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            l.starts_with("Action:")
                || l.starts_with("Spam:")
                || l.starts_with("Score:")
                || l.starts_with("Symbol:")
        })
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn rspamc_scans_learns_and_reads_stats_like_mxguard_scan() {
    let serve = start(&base_config(""));
    let files = tempfile::tempdir().unwrap();
    let spam = gtube(files.path());
    let ham1 = ham(files.path(), 1);

    for file in [&spam, &ham1] {
        let (ok, out) = serve.rspamc(&[
            "-P",
            READ_PW,
            "-i",
            "192.0.2.10",
            "--helo",
            "mx.example.com",
            "-F",
            "spam@example.com",
            "-r",
            "you@example.org",
            "symbols",
            file.to_str().unwrap(),
        ]);
        assert!(ok, "rspamc symbols failed: {out}\n{}", serve.log());
        let scan = serve.mxguard(&[
            "scan",
            "--ip",
            "192.0.2.10",
            "--helo",
            "mx.example.com",
            "--from",
            "spam@example.com",
            "--rcpt",
            "you@example.org",
            file.to_str().unwrap(),
        ]);
        let scanned = common::text(&scan.stdout);
        assert!(!verdict_lines(&out).is_empty(), "{out}");
        assert_eq!(
            verdict_lines(&out),
            verdict_lines(&scanned),
            "rspamc (through serve) and mxguard scan disagree:\n{out}\n---\n{scanned}"
        );
    }
    let (_, out) = serve.rspamc(&["-P", READ_PW, "symbols", spam.to_str().unwrap()]);
    assert!(out.contains("Action: reject"), "{out}");
    assert!(out.contains("GTUBE"), "{out}");

    // The history has the envelope rspamc sent.
    let h = serve
        .http(&format!("GET /history HTTP/1.1\nPassword: {READ_PW}"), b"")
        .json();
    let rows = h["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["ip"] == "192.0.2.10" && r["sender_smtp"] == "spam@example.com"),
        "{h}"
    );

    // Learning needs the admin password.
    let (ok, out) = serve.rspamc(&["-P", READ_PW, "learn_spam", spam.to_str().unwrap()]);
    assert!(
        !ok || out.contains("read-only password cannot"),
        "a read-only learn must be refused: {out}"
    );
    let (ok, out) = serve.rspamc(&["-P", ADMIN_PW, "learn_spam", spam.to_str().unwrap()]);
    assert!(ok && out.contains("success = true"), "{out}");
    let (ok, out) = serve.rspamc(&["-P", ADMIN_PW, "learn_ham", ham1.to_str().unwrap()]);
    assert!(ok && out.contains("success = true"), "{out}");

    let (ok, out) = serve.rspamc(&["-P", READ_PW, "stat"]);
    assert!(ok, "{out}");
    let scanned: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Messages scanned: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no scanned count in: {out}"));
    // The history and counters are written behind the answer.
    assert!(scanned >= 2, "{out}");
    assert!(out.contains("Messages learned: 2"), "{out}");
    assert!(out.contains("Messages with action reject:"), "{out}");

    // The CLI reaches the running serve instead of failing on the store lock.
    let h = serve.mxguard(&["history", "-n", "5"]);
    assert!(h.status.success(), "{}", common::text(&h.stderr));
    assert!(
        common::text(&h.stdout).contains("192.0.2.10"),
        "{}",
        common::text(&h.stdout)
    );
    let s = serve.mxguard(&["stats"]);
    assert!(s.status.success(), "{}", common::text(&s.stderr));
    let stats = common::text(&s.stdout);
    assert!(stats.contains("action:reject"), "{stats}");
    assert!(
        stats.contains("learned spam                   1"),
        "{stats}"
    );
    let ham2 = ham(files.path(), 2);
    let l = serve.mxguard(&["learn", "--ham", ham2.to_str().unwrap()]);
    assert!(l.status.success(), "{}", common::text(&l.stderr));
    assert!(
        common::text(&l.stdout).contains("ham: 1 learned"),
        "{}",
        common::text(&l.stdout)
    );

    // Prometheus text.
    let m = serve.http(&format!("GET /metrics HTTP/1.1\nPassword: {READ_PW}"), b"");
    assert_eq!(m.status, 200);
    assert!(
        m.body.contains("# TYPE mxguard_scanned_total counter"),
        "{}",
        m.body
    );
    assert!(
        m.body
            .contains("mxguard_classifier_learns{class=\"ham\"} 2"),
        "{}",
        m.body
    );
}

#[test]
fn writes_are_refused_without_admin_rights_and_saved_changes_apply_everywhere() {
    let serve = start(&base_config(""));
    let save = |extra: &str| {
        serve.http(
            &format!("POST /saveactions HTTP/1.1\nContent-Type: application/json\n{extra}"),
            br#"{"add_header": 3.5}"#,
        )
    };
    assert_eq!(save("").status, 401, "no password");
    let r = save(&format!("Password: {READ_PW}"));
    assert_eq!(r.status, 403, "read-only: {}", r.body);
    assert!(r.body.contains("read-only"), "{}", r.body);

    // A browser session: /auth with the admin password gives a cookie and
    // a CSRF token; writes with the cookie need the token.
    let auth = serve.http(&format!("GET /auth HTTP/1.1\nPassword: {ADMIN_PW}"), b"");
    assert_eq!(auth.status, 200, "{}", auth.body);
    let cookie = auth.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("SameSite=Strict") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let token = cookie.split(';').next().unwrap().to_string();
    let csrf = auth.json()["csrf"].as_str().unwrap().to_string();
    assert_eq!(auth.json()["read_only"], false);
    let r = save(&format!("Cookie: {token}"));
    assert_eq!(r.status, 403, "cookie without CSRF token: {}", r.body);
    let r = save(&format!(
        "Cookie: {token}\nX-CSRF-Token: {}",
        "0".repeat(64)
    ));
    assert_eq!(r.status, 403, "forged CSRF token: {}", r.body);
    let r = save(&format!(
        "Cookie: {token}\nX-CSRF-Token: {csrf}\nOrigin: http://evil.example"
    ));
    assert_eq!(
        r.status, 200,
        "the token is the proof, whatever the Origin: {}",
        r.body
    );

    // The new threshold is in force: in /actions, in the overrides file,
    // and in `mxguard scan` (another front end, another process).
    let a = serve
        .http(&format!("GET /actions HTTP/1.1\nPassword: {READ_PW}"), b"")
        .json();
    assert!(
        a.as_array()
            .unwrap()
            .iter()
            .any(|x| x["action"] == "add header" && x["value"] == 3.5),
        "{a}"
    );
    let saved = std::fs::read_to_string(serve.data().join("overrides.toml")).unwrap();
    assert!(saved.contains("add_header = 3.5"), "{saved}");

    // A symbol score: the next scan through the API and `mxguard scan` use it.
    let files = tempfile::tempdir().unwrap();
    let msg = ham(files.path(), 3);
    let before = serve.http(
        &format!("POST /checkv2 HTTP/1.1\nPassword: {READ_PW}"),
        &std::fs::read(&msg).unwrap(),
    );
    let before = before.json();
    let symbols = before["symbols"].as_object().unwrap();
    let (name, _) = symbols
        .iter()
        .next()
        .unwrap_or_else(|| panic!("the message fires no symbol: {before}"));
    let body = format!(r#"[{{"name": "{name}", "value": 7.25}}]"#);
    let r = serve.http(
        &format!("POST /savesymbols HTTP/1.1\nPassword: {ADMIN_PW}"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let after = serve
        .http(
            &format!("POST /checkv2 HTTP/1.1\nPassword: {READ_PW}"),
            &std::fs::read(&msg).unwrap(),
        )
        .json();
    assert_eq!(after["symbols"][name.as_str()]["score"], 7.25, "{after}");
    let scan = serve.mxguard(&["scan", "--json", msg.to_str().unwrap()]);
    let offline: serde_json::Value = serde_json::from_slice(&scan.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(&scan.stderr)));
    assert_eq!(
        offline["symbols"][name.as_str()]["score"],
        7.25,
        "{offline}"
    );

    // Bad values are refused with the reason, and nothing changes.
    let r = serve.http(
        &format!("POST /saveactions HTTP/1.1\nPassword: {ADMIN_PW}"),
        br#"{"reject": -4}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("actions.reject") && r.body.contains("negative"),
        "{}",
        r.body
    );
    let r = serve.http(
        &format!("POST /savesymbols HTTP/1.1\nPassword: {ADMIN_PW}"),
        br#"[{"name": "NO_SUCH_SYMBOL", "value": 1}]"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("unknown symbol"), "{}", r.body);
    let saved = std::fs::read_to_string(serve.data().join("overrides.toml")).unwrap();
    assert!(!saved.contains("NO_SUCH_SYMBOL"), "{saved}");

    // The saved overrides survive a restart: the file is read at start.
    let check = serve.mxguard(&["config", "check"]);
    assert!(check.status.success(), "{}", common::text(&check.stderr));
}

#[test]
fn brute_force_is_slowed_and_bad_requests_get_4xx_while_serving_on() {
    let serve = start(&base_config(""));
    let ping = || {
        let r = serve.http("GET /ping HTTP/1.1", b"");
        assert_eq!((r.status, r.body.as_str()), (200, "pong\r\n"));
    };
    // Oversized body (max_body = 256K): 413 naming the limit.
    let big = vec![b'a'; 300 * 1024];
    let r = serve.http(
        &format!("POST /checkv2 HTTP/1.1\nPassword: {READ_PW}"),
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("max_body"), "{}", r.body);
    ping();
    // Chunked, with no Content-Length: still bounded.
    let mut s = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /checkv2 HTTP/1.1\r\nHost: x\r\nPassword: {READ_PW}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..10 {
        let chunk = vec![b'b'; 32 * 1024];
        if write!(s, "{:x}\r\n", chunk.len()).is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    assert_eq!(raw_reply(&mut s).status, 413);
    ping();

    // Too many header fields (max_headers = 50): 431.
    let many: String = (0..80).map(|i| format!("X-H{i}: v\n")).collect();
    let r = serve.http(&format!("GET /ping HTTP/1.1\n{many}"), b"");
    assert_eq!(r.status, 431, "{}", r.body);
    ping();

    // Garbage: 400.
    let mut s = TcpStream::connect(("127.0.0.1", serve.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    ping();

    // Malformed envelope header and unknown path: 4xx naming what is wrong.
    let r = serve.http(
        &format!("POST /checkv2 HTTP/1.1\nPassword: {READ_PW}\nIP: 300.1.1.1"),
        b"Subject: x\r\n\r\nbody\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("IP header"), "{}", r.body);
    let r = serve.http(
        &format!("GET /nothing-here HTTP/1.1\nPassword: {READ_PW}"),
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = serve.http(&format!("POST /checkv2 HTTP/1.1\nPassword: {READ_PW}"), b"");
    assert_eq!(r.status, 400, "{}", r.body);
    ping();

    // Brute force: past max_login_failures (4) the client gets 429.
    for i in 0..4 {
        let r = serve.http(&format!("GET /stat HTTP/1.1\nPassword: guess{i}"), b"");
        assert_eq!(r.status, 403, "{}", r.body);
    }
    let r = serve.http(&format!("GET /stat HTTP/1.1\nPassword: {ADMIN_PW}"), b"");
    assert_eq!(
        r.status, 429,
        "locked out, even with the right password: {}",
        r.body
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");

    ping();
}

#[test]
fn no_password_on_an_open_address_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mxguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\ndata_dir = \"{}\"\n[policy]\nenabled = false\n[web]\nlisten = \"0.0.0.0:{}\"\n",
            dir.path().join("data").display(),
            common::postfix::free_port()
        ),
    )
    .unwrap();
    for args in [vec!["config", "check"], vec!["serve"]] {
        let mut all = vec!["-c", cfg.to_str().unwrap()];
        all.extend(args);
        let out = common::mxguard(&all, None);
        assert!(!out.status.success());
        let err = common::text(&out.stderr);
        assert!(
            err.contains("web.listen") && err.contains("no password is set"),
            "{err}"
        );
    }
}

/// rspamd's web UI (and integrations written against it) post
/// `/saveactions` as a bare list of numbers in rspamd's fixed order —
/// `[reject, rewrite_subject, add_header, greylist]`, `null` for off — or,
/// before rewrite_subject had a field, `[reject, add_header, greylist]`.
/// `rspamc` has no working command for it (3.4's `add_action` is listed
/// but not parsed), so this is plain HTTP, and rspamc shows the result.
#[test]
fn saveactions_takes_rspamds_list_of_numbers_and_refuses_malformed_ones() {
    let serve = start(&base_config(""));
    let save = |body: &[u8]| {
        serve.http(
            &format!(
                "POST /saveactions HTTP/1.1\nPassword: {ADMIN_PW}\nContent-Type: application/json"
            ),
            body,
        )
    };
    let actions = || {
        let a = serve
            .http(&format!("GET /actions HTTP/1.1\nPassword: {READ_PW}"), b"")
            .json();
        a.as_array()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x["action"].as_str().unwrap().to_string(),
                    x["value"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let want = |v: [serde_json::Value; 4]| {
        ["reject", "rewrite subject", "add header", "greylist"]
            .iter()
            .map(|s| s.to_string())
            .zip(v)
            .collect::<Vec<_>>()
    };
    use serde_json::json;

    let r = save(b"[21.5, null, 5.5, 2.5]");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        actions(),
        want([json!(21.5), json!(null), json!(5.5), json!(2.5)])
    );
    let saved = std::fs::read_to_string(serve.data().join("overrides.toml")).unwrap();
    assert!(
        saved.contains("reject = 21.5") && saved.contains("rewrite_subject = false"),
        "{saved}"
    );
    // The scan through rspamc (another client, the scan route) uses it.
    let files = tempfile::tempdir().unwrap();
    let msg = ham(files.path(), 7);
    let (ok, out) = serve.rspamc(&["-P", READ_PW, "symbols", msg.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("Score:") && l.trim_end().ends_with("/ 21.50")),
        "rspamc does not show the saved reject threshold:\n{out}"
    );

    // The older three-number form: rewrite_subject keeps its value.
    let r = save(b"[18, 6, 3]");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        actions(),
        want([json!(18.0), json!(null), json!(6.0), json!(3.0)])
    );

    // Malformed lists: 400 naming what is wrong, nothing changed.
    let before = std::fs::read_to_string(serve.data().join("overrides.toml")).unwrap();
    for (body, says) in [
        (&b"[15, 6]"[..], "not 2"),
        (b"[15, 6, 4, 2, 1]", "not 5"),
        (b"[15, \"x\", 6, 4]", "item 1 (rewrite_subject)"),
        (b"[15, true, 6, 4]", "item 1 (rewrite_subject)"),
        (b"[]", "empty"),
        (b"[15, 6, 4", "not JSON"),
        (b"[-3, null, 6, 4]", "negative"),
    ] {
        let r = save(body);
        assert_eq!(
            r.status,
            400,
            "{} was taken: {}",
            String::from_utf8_lossy(body),
            r.body
        );
        assert!(
            r.body.contains(says),
            "{}: the error does not say `{says}`: {}",
            String::from_utf8_lossy(body),
            r.body
        );
    }
    let after = std::fs::read_to_string(serve.data().join("overrides.toml")).unwrap();
    assert_eq!(before, after, "a refused save changed the overrides");
    assert_eq!(
        actions(),
        want([json!(18.0), json!(null), json!(6.0), json!(3.0)])
    );
    // And the server keeps serving.
    let r = serve.http("GET /ping HTTP/1.1", b"");
    assert_eq!(r.status, 200);
}
