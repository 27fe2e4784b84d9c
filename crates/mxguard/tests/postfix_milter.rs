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
