//! Greylisting through real Postfix: the first delivery attempt is
//! deferred by mxguard's policy service, a retry after the delay is
//! delivered with an X-Greylist header.

mod common;

use common::postfix;
use std::time::Duration;

#[test]
fn first_attempt_deferred_retry_after_delay_delivered() {
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nenabled = false\n[policy]\nlisten = \"127.0.0.1:{port}\"\nmynetworks = []\n[greylist]\ndelay = 3\nsender_pools = false\n[store]\ndata_dir = \"DATA_DIR\"\n"
    );
    let _daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(Some(port), None);

    let (ok, transcript) = postfix::swaks(
        "alice@sender.example",
        "root@localhost",
        &["Subject: greylist test"],
        "first try",
    );
    assert!(!ok, "the first attempt must not be accepted:\n{transcript}");
    // postgrey's answer: 4.2.0 (Postfix sends etrn_domain) and its help URL.
    assert!(
        transcript.contains("450 4.2.0") || transcript.contains("451 4.2.0"),
        "{transcript}"
    );
    assert!(
        transcript.contains("Greylisted, see http://postgrey.schweikert.ch/help/localhost.html"),
        "{transcript}"
    );

    std::thread::sleep(Duration::from_secs(4));
    let (ok, transcript) = postfix::swaks(
        "alice@sender.example",
        "root@localhost",
        &["Subject: greylist test"],
        "second try",
    );
    assert!(ok, "the retry after the delay is accepted:\n{transcript}");
    let mbox = postfix::wait_for_mail("second try");
    assert!(mbox.contains("X-Greylist: delayed "), "{mbox}");
    assert!(
        !mbox.contains("first try"),
        "the deferred attempt was not delivered"
    );
}
