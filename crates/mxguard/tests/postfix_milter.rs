//! The milter through real Postfix: what an SMTP client sees, and what is
//! delivered to the mailbox.

mod common;

use common::GTUBE;
use common::postfix::{self, MAILBOX, message_with, swaks, wait_for_mail};
use std::time::Duration;

fn config(milter_port: u16, extra: &str) -> String {
    format!(
        "[milter]\nlisten = \"127.0.0.1:{milter_port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [actions]\nreject = 15\nrewrite_subject = 8\nadd_header = 6\ngreylist = 4\n\
         [header_anomalies]\nenabled = false\n\
         [[rules]]\nname = \"T_GREY\"\ntarget = \"subject\"\npattern = \"greylist-me\"\nscore = 5.0\n\
         [[rules]]\nname = \"T_HEADER\"\ntarget = \"subject\"\npattern = \"add-header-me\"\nscore = 7.0\n\
         [[rules]]\nname = \"T_REWRITE\"\ntarget = \"subject\"\npattern = \"rewrite-me\"\nscore = 9.0\n{extra}"
    )
}

fn mailbox() -> String {
    std::fs::read_to_string(MAILBOX).unwrap_or_default()
}

#[test]
fn verdicts_through_postfix() {
    let dir = tempfile::tempdir().unwrap();
    let senders = dir.path().join("senders.map");
    std::fs::write(
        &senders,
        "@blocked.example REJECT Sender blocked by policy\n",
    )
    .unwrap();
    let port = postfix::free_port();
    let extra = format!(
        "[[multimap]]\nname = \"BAD_SENDER\"\ntype = \"from\"\nmap = \"{}\"\nprefilter = true\n",
        senders.display()
    );
    let daemon = postfix::daemon(&config(port, &extra), port);
    let _postfix = postfix::configure(None, Some(port));

    // GTUBE: 554 5.7.1 with the text, nothing delivered.
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: gtube"],
        GTUBE,
    );
    assert!(!ok, "{t}");
    assert!(
        t.contains("554 5.7.1") && t.contains("Gtube pattern"),
        "{t}"
    );

    // Ham: delivered, with the verdict headers, and a forged flag removed.
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: hello there", "X-Spam-Flag: YES"],
        "ham body",
    );
    assert!(ok, "{t}");
    let m = message_with("ham body");
    assert!(m.contains("X-Spam-Status: No, score="), "{m}");
    assert!(m.contains("X-Spamd-Result: default: False ["), "{m}");
    assert!(
        !m.contains("X-Spam-Flag"),
        "the sender's forged X-Spam-Flag is gone:\n{m}"
    );

    // A blocklisted sender is refused at MAIL FROM, before any data.
    let (ok, t) = swaks(
        "x@blocked.example",
        "root@localhost",
        &["Subject: hi"],
        "blocked body",
    );
    assert!(!ok, "{t}");
    let mail_line = t
        .lines()
        .position(|l| l.contains("MAIL FROM:"))
        .expect("MAIL FROM in transcript");
    let reply = t
        .lines()
        .skip(mail_line + 1)
        .find(|l| l.starts_with("<~") || l.starts_with("<**"))
        .unwrap_or("");
    assert!(
        reply.contains("5.7.1") && reply.contains("Sender blocked by policy"),
        "rejected at MAIL FROM: {reply}\n{t}"
    );
    assert!(!t.contains("DATA"), "no DATA was sent: {t}");

    // Greylist-scored mail: 451 at end of data.
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: greylist-me"],
        "grey body",
    );
    assert!(!ok, "{t}");
    assert!(t.contains("451 4.7.1"), "{t}");

    // add_header-scored mail: delivered with X-Spam-Flag: YES.
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: add-header-me"],
        "flag body",
    );
    assert!(ok, "{t}");
    let m = message_with("flag body");
    assert!(m.contains("X-Spam-Flag: YES"), "{m}");
    assert!(
        m.contains("X-Spam-Status: Yes, score=7.00 required=15.00"),
        "{m}"
    );
    assert!(
        m.contains("T_HEADER(7.00)"),
        "X-Spamd-Result lists the symbols: {m}"
    );

    // rewrite_subject: the Subject is prefixed.
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: rewrite-me now"],
        "rewrite body",
    );
    assert!(ok, "{t}");
    let m = message_with("rewrite body");
    assert!(m.contains("Subject: ***SPAM*** rewrite-me now"), "{m}");
    assert_eq!(m.matches("Subject:").count(), 1, "{m}");

    assert!(!mailbox().contains("grey body") && !mailbox().contains("blocked body"));
    drop(daemon);
}

#[test]
fn a_blocklisted_client_is_refused_before_data() {
    let dir = tempfile::tempdir().unwrap();
    let ips = dir.path().join("ip.map");
    std::fs::write(&ips, "127.0.0.0/8\n").unwrap();
    let port = postfix::free_port();
    let extra = format!(
        "[[multimap]]\nname = \"BAD_CLIENT\"\ntype = \"ip\"\nmap = \"{}\"\nprefilter = true\naction = \"reject\"\nmessage = \"Client blocked\"\n",
        ips.display()
    );
    let _daemon = postfix::daemon(&config(port, &extra), port);
    let _postfix = postfix::configure(None, Some(port));
    let (ok, t) = swaks(
        "a@sender.example",
        "root@localhost",
        &["Subject: hi"],
        "client body",
    );
    assert!(!ok, "{t}");
    // Postfix answers a milter's reject at connect with its own 554 text.
    assert!(t.contains("<** 554") || t.contains("Client blocked"), "{t}");
    assert!(!t.contains("354"), "never got to DATA: {t}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!mailbox().contains("client body"));
}

#[test]
fn fifty_concurrent_sessions_each_get_their_verdict() {
    let port = postfix::free_port();
    let _daemon = postfix::daemon(&config(port, ""), port);
    let _postfix = postfix::configure(None, Some(port));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let spam = i % 2 == 0;
                let body = if spam {
                    format!("{GTUBE} n{i}")
                } else {
                    format!("ham number {i} end")
                };
                let (ok, t) = swaks(
                    "a@sender.example",
                    "root@localhost",
                    &[&format!("Subject: concurrent {i}")],
                    &body,
                );
                (i, spam, ok, t)
            })
        })
        .collect();
    for h in handles {
        let (i, spam, ok, t) = h.join().unwrap();
        if spam {
            assert!(
                !ok && t.contains("554 5.7.1"),
                "session {i} (GTUBE) must be rejected: {t}"
            );
        } else {
            assert!(ok, "session {i} (ham) must be accepted: {t}");
        }
    }
    for i in (1..50).step_by(2) {
        wait_for_mail(&format!("ham number {i} end"));
    }
    let m = mailbox();
    for i in (0..50).step_by(2) {
        assert!(
            !m.contains(&format!("concurrent {i}\n")),
            "GTUBE message {i} was delivered"
        );
    }
}

/// Postfix as the sending MTA too: mail submitted with `sendmail` goes out
/// through its own SMTP client (a `greyrelay` transport) to a second smtpd
/// on 127.0.0.2:2525, which has the same milter. Postfix refuses to connect
/// to its own `inet_interfaces` address ("loops back to myself") or to a
/// server greeting with its own name, hence the other address and the
/// client's other host name. Removed again when dropped.
struct SendingPostfix;

const RECEIVER_HOST: &str = "127.0.0.2";
const RECEIVER_PORT: u16 = 2525;
const RECEIVER: &str = "127.0.0.2:2525";

impl SendingPostfix {
    fn configure() -> SendingPostfix {
        for args in [
            &["-M", "greyrelay/unix=greyrelay unix - - n - - smtp"][..],
            &["-P", "greyrelay/unix/myhostname=sender.test"],
            &[
                "-M",
                &format!("{RECEIVER}/inet={RECEIVER} inet n - n - - smtpd"),
            ],
            &[
                "-P",
                &format!("pickup/unix/content_filter=greyrelay:[{RECEIVER_HOST}]:{RECEIVER_PORT}"),
            ],
        ] {
            postconf(args);
        }
        postfix_reload();
        SendingPostfix
    }
}

impl Drop for SendingPostfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("postsuper")
            .args(["-d", "ALL"])
            .output();
        for args in [
            &["-PX", "pickup/unix/content_filter"][..],
            &["-MX", "greyrelay/unix"],
            &["-MX", &format!("{RECEIVER}/inet")],
        ] {
            postconf(args);
        }
        postfix_reload();
    }
}

/// Runs a Postfix command that must succeed.
fn run_ok(cmd: &str, args: &[&str]) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn postconf(args: &[&str]) {
    run_ok("postconf", args);
}

fn postfix_reload() {
    run_ok("postfix", &["reload"]);
    std::thread::sleep(Duration::from_millis(500));
}

/// Submits a message to the sending side with `sendmail`.
fn submit(from: &str, to: &str, message: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("sendmail")
        .args(["-f", from, to])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run sendmail");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message.as_bytes())
        .expect("write to sendmail");
    assert!(child.wait().expect("wait for sendmail").success());
}

/// The queue id of the one deferred message whose reason contains `reason`.
fn deferred_with(reason: &str) -> Option<String> {
    let out = std::process::Command::new("postqueue")
        .arg("-j")
        .output()
        .expect("run postqueue -j");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|m| {
            m["queue_name"] == "deferred"
                && m["recipients"].as_array().is_some_and(|r| {
                    r.iter().any(|r| {
                        r["delay_reason"]
                            .as_str()
                            .is_some_and(|d| d.contains(reason))
                    })
                })
        })
        .and_then(|m| m["queue_id"].as_str().map(str::to_string))
}

/// How many times Postfix logged a deferral of `queue_id`.
fn deferrals(queue_id: &str) -> usize {
    std::fs::read_to_string("/var/log/postfix.log")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!(" {queue_id}: ")) && l.contains("status=deferred"))
        .count()
}

fn flush() {
    run_ok("postqueue", &["-f"]);
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Submits a message scoring 5 (T_GREY: in the greylist band) and waits
/// for the first attempt's 451; returns the sending side's queue id.
fn submit_greylist_band(body: &str) -> String {
    submit(
        "a@sender.example",
        "root@localhost",
        &format!("From: a@sender.example\nTo: root@localhost\nSubject: greylist-me\n\n{body}\n"),
    );
    let mut queue_id = None;
    wait_until("the first attempt's 451", || {
        queue_id = deferred_with("451 4.7.1");
        queue_id.is_some()
    });
    queue_id.unwrap_or_default()
}

#[test]
fn score_greylisting_switched_off_defers_every_attempt() {
    let port = postfix::free_port();
    let _daemon = postfix::daemon(
        &config(port, "[greylist]\ndelay = 1\nscore_greylisting = false\n"),
        port,
    );
    let _postfix = postfix::configure(None, Some(port));
    let _sender = SendingPostfix::configure();
    let queue_id = submit_greylist_band("stateless grey body");
    std::thread::sleep(Duration::from_secs(2));
    flush();
    wait_until("the retry's deferral", || deferrals(&queue_id) >= 2);
    assert!(deferred_with("451 4.7.1").is_some());
    assert!(!mailbox().contains("stateless grey body"));
}

#[test]
fn score_greylisting_defers_the_first_attempt_and_delivers_postfix_retry() {
    const DELAY: u64 = 4;
    let port = postfix::free_port();
    let _daemon = postfix::daemon(
        &config(port, &format!("[greylist]\ndelay = {DELAY}\n")),
        port,
    );
    let _postfix = postfix::configure(None, Some(port));
    let _sender = SendingPostfix::configure();

    let queue_id = submit_greylist_band("score grey retry body");
    let first_deferred = std::time::Instant::now();
    assert!(!mailbox().contains("score grey retry body"));

    // A retry at once, well before the delay: deferred again.
    flush();
    wait_until("the early retry's deferral", || deferrals(&queue_id) >= 2);
    assert!(
        first_deferred.elapsed() < Duration::from_secs(DELAY),
        "the early retry came too late to prove anything; the machine is too slow"
    );
    assert!(deferred_with("451 4.7.1").is_some());
    assert!(!mailbox().contains("score grey retry body"));

    // The retry after the delay is delivered, marked.
    std::thread::sleep(Duration::from_secs(DELAY + 1));
    flush();
    let m = message_with("score grey retry body");
    assert!(m.contains("X-Greylist: delayed"), "{m}");
    assert!(m.contains("score greylisting"), "{m}");
    assert!(m.contains("X-Spam-Status: No, score=5.00"), "{m}");
    assert_eq!(deferrals(&queue_id), 2, "delivered at the third attempt");
}
