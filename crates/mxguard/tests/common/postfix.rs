//! Real Postfix on loopback for end-to-end tests. Postfix owns port 25, so
//! every test that uses it holds a file lock for its whole run.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const MAILBOX: &str = "/var/mail/root";

/// Holds the Postfix lock; Postfix stays configured for this test until dropped.
pub struct PostfixGuard {
    _lock: File,
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}; run ./scripts/peers.sh install as root"))
}

fn flock(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own; blocks until the lock is ours.
    unsafe extern "C" {
        fn flock(fd: i32, op: i32) -> i32;
    }
    let rc = unsafe { flock(file.as_raw_fd(), 2) };
    assert_eq!(rc, 0, "cannot lock the Postfix test lock");
}

/// Configures Postfix with the given policy service and milter (either may
/// be absent), (re)starts it, and empties root's mailbox.
pub fn configure(policy_port: Option<u16>, milter_port: Option<u16>) -> PostfixGuard {
    assert!(
        Path::new("/usr/sbin/postfix").exists(),
        "Postfix is not installed: run ./scripts/peers.sh install as root"
    );
    let lock = File::create("/tmp/mxguard-postfix-tests.lock").expect("lock file");
    flock(&lock);
    let recipient = match policy_port {
        Some(p) => format!(
            "smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{p}, permit_mynetworks, reject_unauth_destination"
        ),
        None => "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination"
            .to_string(),
    };
    let milters = match milter_port {
        Some(p) => format!("smtpd_milters = inet:127.0.0.1:{p}"),
        None => "smtpd_milters =".to_string(),
    };
    let settings = [
        "maillog_file = /var/log/postfix.log",
        "myhostname = mx.test",
        "mydestination = mx.test, localhost",
        "inet_interfaces = loopback-only",
        "inet_protocols = ipv4",
        "milter_protocol = 6",
        "milter_default_action = tempfail",
        "non_smtpd_milters =",
        "smtpd_policy_service_timeout = 10s",
        "alias_maps = hash:/etc/aliases",
        &recipient,
        &milters,
    ];
    let out = run("postconf", &[&["-e"][..], &settings[..]].concat());
    assert!(
        out.status.success(),
        "postconf: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    run("newaliases", &[]);
    let running = run("postfix", &["status"]).status.success();
    let out = if running {
        run("postfix", &["reload"])
    } else {
        run("postfix", &["start"])
    };
    assert!(
        out.status.success(),
        "postfix start/reload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect("127.0.0.1:25").is_err() {
        assert!(
            Instant::now() < deadline,
            "Postfix did not start listening on 127.0.0.1:25"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Give a reloaded smtpd a moment to pick up the new settings.
    std::thread::sleep(Duration::from_millis(500));
    let _ = File::create(MAILBOX);
    PostfixGuard { _lock: lock }
}

/// Sends one message through Postfix with swaks; returns its transcript and exit status.
pub fn swaks(from: &str, to: &str, headers: &[&str], body: &str) -> (bool, String) {
    swaks_with(&["--server", "127.0.0.1:25"], from, to, headers, body)
}

/// [`swaks`] with its server and any further options (`--auth ...`,
/// `--xclient-addr ...`) in `extra`.
pub fn swaks_with(
    extra: &[&str],
    from: &str,
    to: &str,
    headers: &[&str],
    body: &str,
) -> (bool, String) {
    let mut args = extra.to_vec();
    args.extend([
        "--from",
        from,
        "--to",
        to,
        "--body",
        body,
        "--timeout",
        "30",
    ]);
    for h in headers {
        args.push("--header");
        args.push(h);
    }
    let out = run("swaks", &args);
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), transcript)
}

/// Where the SASL test service keeps its Cyrus configuration and users.
const SASL_DIR: &str = "/etc/postfix/sasl";

/// A submission-like smtpd on 127.0.0.1:`port` (a master.cf service of its
/// own, so port 25 and main.cf stay as every other test expects) that
/// authenticates clients by SASL (Cyrus, a sasldb of `users`) and accepts
/// XCLIENT from loopback (so a test can pose as a remote client). Removed,
/// with its files, when dropped. Hold the [`PostfixGuard`] longer.
pub struct SaslService {
    name: String,
    files: Vec<std::path::PathBuf>,
}

impl Drop for SaslService {
    fn drop(&mut self) {
        run("postconf", &["-MX", &self.name]);
        run("postfix", &["reload"]);
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

pub fn sasl_service(port: u16, users: &[(&str, &str)]) -> SaslService {
    assert!(
        Path::new("/usr/sbin/saslpasswd2").exists(),
        "saslpasswd2 is missing: run ./scripts/peers.sh install as root (package sasl2-bin)"
    );
    std::fs::create_dir_all(SASL_DIR).expect("create /etc/postfix/sasl");
    let db = format!("{SASL_DIR}/mxguard-test.sasldb");
    let conf = format!("{SASL_DIR}/mxguard-test.conf");
    let _ = std::fs::remove_file(&db);
    for (user, password) in users {
        let (login, realm) = user.split_once('@').unwrap_or((user, ""));
        let mut child = Command::new("saslpasswd2")
            .args(["-f", &db, "-p", "-c", "-u", realm, login])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run saslpasswd2");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "saslpasswd2 {user}");
    }
    // smtpd runs as the postfix user, which must read the user database.
    run("chgrp", &["postfix", &db]);
    run("chmod", &["0640", &db]);
    std::fs::write(
        &conf,
        format!("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: {db}\n"),
    )
    .expect("write the Cyrus SASL config");
    let name = format!("127.0.0.1:{port}/inet");
    let service = format!(
        "{name}=127.0.0.1:{port} inet n - n - - smtpd \
         -o smtpd_sasl_auth_enable=yes -o smtpd_sasl_type=cyrus \
         -o smtpd_sasl_path=mxguard-test -o cyrus_sasl_config_path={SASL_DIR} \
         -o smtpd_sasl_security_options=noanonymous -o smtpd_tls_security_level=none \
         -o smtpd_authorized_xclient_hosts=127.0.0.0/8 \
         -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject_unauth_destination"
    );
    let out = run("postconf", &["-M", &service]);
    assert!(
        out.status.success(),
        "postconf -M: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let guard = SaslService {
        name,
        files: vec![db.into(), conf.into()],
    };
    let out = run("postfix", &["reload"]);
    assert!(out.status.success(), "postfix reload");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Postfix did not listen on 127.0.0.1:{port} for the SASL service"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    guard
}

/// The delivered message (from root's mbox) whose text contains `needle`.
pub fn message_with(needle: &str) -> String {
    let mbox = wait_for_mail(needle);
    mbox.split("\nFrom ")
        .find(|m| m.contains(needle))
        .unwrap_or_default()
        .to_string()
}

/// Waits until root's mailbox holds a message containing `needle`.
pub fn wait_for_mail(needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mbox = std::fs::read_to_string(MAILBOX).unwrap_or_default();
        if mbox.contains(needle) {
            return mbox;
        }
        assert!(
            Instant::now() < deadline,
            "no mail containing {needle:?} was delivered; mailbox:\n{mbox}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `mxguard serve` as a child process, stopped (SIGTERM) when dropped.
pub struct Daemon {
    child: Child,
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

// Each helper file stands alone in some test binaries, so each loads it.
#[allow(clippy::duplicate_mod)]
#[path = "../../../mxguard-core/tests/support/ports.rs"]
mod ports;

/// A loopback port nobody listens on (see `ports.rs`), from this helper's band.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    ports::free_port_in(20_000, &NEXT)
}

/// Starts `mxguard serve` with this config (`DATA_DIR` is replaced by a
/// temporary directory) and waits for `port` to accept.
pub fn daemon(config: &str, port: u16) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("mxguard.toml");
    let config = config.replace("DATA_DIR", &dir.path().join("data").display().to_string());
    File::create(&cfg)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let log = dir.path().join("serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
        .args(["-c", cfg.to_str().unwrap(), "serve"])
        .stdin(Stdio::null())
        .stdout(File::create(&log).unwrap())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("start mxguard serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mxguard serve did not listen on {port}: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Daemon {
        child,
        log,
        _dir: dir,
    }
}

/// Sends a whole message (headers and body) through Postfix.
pub fn swaks_data(from: &str, to: &str, data: &Path) -> (bool, String) {
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1:25",
            "--from",
            from,
            "--to",
            to,
            "--timeout",
            "30",
        ])
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("swaks");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
