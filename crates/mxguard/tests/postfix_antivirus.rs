//! The antivirus check end to end: real Postfix, `mxguard serve` as its
//! milter, a real clamd with ClamAV's test signatures. An EICAR mail is
//! refused at SMTP with the configured message, clean mail is delivered,
//! and with clamd stopped mail still flows (`on_failure = "accept"`) with
//! the fail symbol in its headers.

mod common;

use common::clamd::{self, Clamd, EICAR_SIG, with_attachment};
use common::postfix::{self, message_with};
use std::process::{Command, Stdio};

/// Sends a whole message (headers included) with swaks.
fn send_raw(raw: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("message.eml");
    std::fs::write(&file, raw).unwrap();
    let data = format!("@{}", file.display());
    let out = Command::new("swaks")
        .args([
            "--server",
            "127.0.0.1:25",
            "--from",
            "sender@example.com",
            "--to",
            "root@localhost",
            "--data",
            &data,
            "--timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("swaks: run ./scripts/peers.sh install as root");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn eicar_is_rejected_at_smtp_with_the_configured_message() {
    if !clamd::available() {
        return;
    }
    let mut clamd = Clamd::start("25M");
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [antivirus.clamav]\ntype = \"clamav\"\nservers = \"{}\"\nsymbol = \"CLAM_VIRUS\"\naction = \"reject\"\n\
         message = '${{SCANNER}}: virus found: \"${{VIRUS}}\"'\ntimeout = \"3s\"\n",
        clamd.unix()
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));

    let eicar = with_attachment("eicar.com", "application/octet-stream", &clamd::eicar());
    let (ok, t) = send_raw(&eicar);
    assert!(!ok, "{t}");
    assert!(
        t.contains("554 5.7.1") && t.contains(&format!("clamav: virus found: \"{EICAR_SIG}\"")),
        "{t}"
    );

    let clean = with_attachment("notes.txt", "text/plain", b"clean-attachment-body\r\n");
    let (ok, t) = send_raw(&clean);
    assert!(ok, "{t}");
    let m = message_with("See the attachment.");
    assert!(!m.contains("CLAM_VIRUS"), "{m}");
    assert!(!m.contains("X-Virus-Check"), "{m}");

    // clamd down: the default is to accept, with the fail symbol shown.
    // (A file name no content rule minds: `.com` alone scores MIME_BAD_EXTENSION,
    // enough for score greylisting.)
    clamd.stop();
    let _ = std::fs::write(postfix::MAILBOX, "");
    let unscanned = with_attachment("sample.dat", "application/octet-stream", &clamd::eicar());
    let (ok, t) = send_raw(&unscanned);
    assert!(ok, "{t}");
    let m = message_with("See the attachment.");
    assert!(m.contains("CLAM_VIRUS_FAIL"), "{m}");
    drop(daemon);
}
