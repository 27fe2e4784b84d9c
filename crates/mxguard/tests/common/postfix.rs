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
    let mut args = vec![
        "--server",
        "127.0.0.1:25",
        "--from",
        from,
        "--to",
        to,
        "--body",
        body,
        "--timeout",
        "30",
    ];
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
