//! Every stage and action of the restriction lists, over the socket.

mod common;

use common::{Client, rcpt, start};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn at<'a>(stage: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("protocol_state", stage),
        ("client_address", "192.0.2.50"),
        ("client_name", "mail.client.example"),
    ];
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_maps_at_every_stage() {
    let dir = tempfile::tempdir().unwrap();
    let w = |n: &str, body: &str| {
        let p = dir.path().join(n);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    };
    let client = w(
        "client",
        "192.0.2.50 REJECT client says no\n198.51.100 OK\n",
    );
    let helo = w("helo", "bad.helo.example 550 5.7.1 go away\n");
    let sender = w("sender", "spam.example REJECT\nlist@ DUNNO\n");
    let recipient = w("recipient", "closed@rcpt.example 450 4.2.1 mailbox busy\n");
    let config = format!(
        "[policy.restrictions]\nclient = [\"check_client_access hash:{client}\"]\nhelo = [\"check_helo_access {helo}\"]\nsender = [\"check_sender_access {sender}\"]\nrecipient = [\"check_recipient_access {recipient}\"]\ndata = [\"reject data stage says no\"]\nend_of_data = [\"defer later please\"]\n"
    );
    let s = start(&config).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.ask(&at("CONNECT", &[])).await, "REJECT client says no");
    let mut ok_client = at("CONNECT", &[]);
    ok_client[1] = ("client_address", "198.51.100.9");
    assert_eq!(
        c.ask(&ok_client).await,
        "DUNNO",
        "OK is never passed to Postfix as OK"
    );
    assert_eq!(
        c.ask(&at("EHLO", &[("helo_name", "bad.helo.example")]))
            .await,
        "550 5.7.1 go away"
    );
    assert_eq!(
        c.ask(&at("HELO", &[("helo_name", "fine.example")])).await,
        "DUNNO"
    );
    assert_eq!(
        c.ask(&at("MAIL", &[("sender", "x@sub.spam.example")]))
            .await,
        "REJECT"
    );
    assert_eq!(
        c.ask(&at("MAIL", &[("sender", "list@spam.example")])).await,
        "REJECT",
        "DUNNO on user@ is not reached: domain matches first"
    );
    assert_eq!(
        c.ask(&at("RCPT", &[("recipient", "closed@rcpt.example")]))
            .await,
        "450 4.2.1 mailbox busy"
    );
    assert_eq!(
        c.ask(&at("RCPT", &[("recipient", "open@rcpt.example")]))
            .await,
        "DUNNO"
    );
    assert_eq!(c.ask(&at("DATA", &[])).await, "REJECT data stage says no");
    assert_eq!(
        c.ask(&at("END-OF-MESSAGE", &[])).await,
        "DEFER later please"
    );
    assert_eq!(c.ask(&at("VRFY", &[])).await, "DUNNO");
}

/// Postfix's `defer` defers at once; `defer_if_permit` only if nothing in
/// Postfix's own list rejects: two answers, not one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defer_and_defer_if_permit_are_postfix_s_two_actions() {
    let config = "[policy.restrictions]\nhelo = [\"defer\"]\nsender = [\"defer_if_permit\"]\ndata = [\"DEFER_IF_PERMIT 4.7.1 not now\"]\nend_of_data = [\"defer 4.3.0 busy\"]\n";
    let s = start(config).await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.ask(&at("EHLO", &[])).await, "DEFER Try again later");
    assert_eq!(
        c.ask(&at("MAIL", &[])).await,
        "DEFER_IF_PERMIT Try again later"
    );
    assert_eq!(
        c.ask(&at("DATA", &[])).await,
        "DEFER_IF_PERMIT 4.7.1 not now"
    );
    assert_eq!(c.ask(&at("END-OF-MESSAGE", &[])).await, "DEFER 4.3.0 busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helo_and_sender_syntax_checks_and_the_first_decision_wins() {
    let config = "[policy.restrictions]\nhelo = [\"reject_invalid_helo_hostname\", \"reject_non_fqdn_helo_hostname\"]\nsender = [\"permit_sasl_authenticated\", \"reject_non_fqdn_sender\", \"reject final\"]\n";
    let s = start(config).await;
    let mut c = Client::connect(s.addr).await;
    assert!(
        c.ask(&at("EHLO", &[("helo_name", "bad_host!")]))
            .await
            .starts_with("501 5.5.2")
    );
    assert!(
        c.ask(&at("EHLO", &[("helo_name", "localhost")]))
            .await
            .starts_with("504 5.5.2")
    );
    assert_eq!(
        c.ask(&at("EHLO", &[("helo_name", "[192.0.2.1]")])).await,
        "DUNNO"
    );
    assert!(
        c.ask(&at("MAIL", &[("sender", "me@localhost")]))
            .await
            .starts_with("504 5.5.2 <me@localhost>")
    );
    assert_eq!(
        c.ask(&at(
            "MAIL",
            &[("sender", "me@localhost"), ("sasl_username", "me")]
        ))
        .await,
        "DUNNO"
    );
    assert_eq!(
        c.ask(&at("MAIL", &[("sender", "me@example.com")])).await,
        "REJECT final"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleep_delays_only_its_own_answer() {
    let s = start("[policy.restrictions]\nclient = [\"sleep 1\"]\nhelo = []\n").await;
    let slow = tokio::spawn({
        let addr = s.addr;
        async move {
            let mut c = Client::connect(addr).await;
            let t = Instant::now();
            let a = c.ask(&at("CONNECT", &[])).await;
            (a, t.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fast = Client::connect(s.addr).await;
    let t = Instant::now();
    assert_eq!(
        fast.ask(&at("EHLO", &[("helo_name", "x.example")])).await,
        "DUNNO"
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "another request is not held up by the tarpit"
    );
    let (a, took) = slow.await.unwrap();
    assert_eq!(a, "DUNNO");
    assert!(
        took >= Duration::from_secs(1),
        "the tarpit delayed its answer: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_count_per_key() {
    let s = start(
        "[policy.restrictions]\nsender = [\"rate_limit sender 3/1h REJECT 5.7.1 slow down\"]\n",
    )
    .await;
    let mut c = Client::connect(s.addr).await;
    for _ in 0..3 {
        assert_eq!(
            c.ask(&at("MAIL", &[("sender", "bulk@x.example")])).await,
            "DUNNO"
        );
    }
    assert_eq!(
        c.ask(&at("MAIL", &[("sender", "BULK@x.example")])).await,
        "REJECT 5.7.1 slow down"
    );
    assert_eq!(
        c.ask(&at("MAIL", &[("sender", "other@x.example")])).await,
        "DUNNO"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_clients_are_refused() {
    let s = start("[policy.restrictions]\nclient = [\"reject_banned_client\"]\n").await;
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.ask(&at("CONNECT", &[])).await, "DUNNO");
    s.store.set("ban:192.0.2.50", b"sshd", None).await.unwrap();
    assert!(
        c.ask(&at("CONNECT", &[]))
            .await
            .starts_with("554 5.7.1 Client host [192.0.2.50] is banned")
    );
}

/// The default recipient list (`reject_banned_client`, `permit_mynetworks`,
/// `greylist`) reads the ban record and the greylist state in one store
/// read: a banned client is still refused before greylisting, a whitelisted
/// one too, and the others are greylisted by what the read found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_list_refuses_banned_clients_before_greylisting() {
    let dir = tempfile::tempdir().unwrap();
    let wl = dir.path().join("clients");
    std::fs::write(&wl, "192.0.2.51\n").unwrap();
    let clock = mxguard_store::ManualClock::new();
    let s = common::start_with_clock(
        &format!(
            "[policy]\nmynetworks = []\n[greylist]\ndelay = 60\ngreylist_text = \"wait %s\"\nwhitelist_clients = [{:?}]\n",
            wl.display()
        ),
        clock.clone(),
    )
    .await;
    let mut c = Client::connect(s.addr).await;
    let req = |ip: &'static str, sender: &'static str| {
        vec![
            ("protocol_state", "RCPT"),
            ("client_address", ip),
            ("sender", sender),
            ("recipient", "rcpt@example.org"),
        ]
    };
    let first = c.ask(&req("192.0.2.50", "a@s.example")).await;
    assert_eq!(first, "DEFER_IF_PERMIT wait 60");
    assert_eq!(
        c.ask(&req("192.0.2.51", "a@s.example")).await,
        "DUNNO",
        "whitelisted"
    );
    s.store.set("ban:192.0.2.50", b"sshd", None).await.unwrap();
    s.store.set("ban:192.0.2.51", b"sshd", None).await.unwrap();
    for ip in ["192.0.2.50", "192.0.2.51"] {
        let a = c.ask(&req(ip, "b@s.example")).await;
        assert_eq!(a, format!("554 5.7.1 Client host [{ip}] is banned"));
    }
    // A retry of the first triplet, unbanned, 20 s later: the read found
    // the triplet the first attempt wrote.
    s.store.delete("ban:192.0.2.50").await.unwrap();
    clock.advance(std::time::Duration::from_secs(20));
    assert_eq!(
        c.ask(&req("192.0.2.50", "a@s.example")).await,
        "DEFER_IF_PERMIT wait 40"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_closes_only_that_connection() {
    let s = start("").await;
    let mut bad = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    bad.write_all(b"this line has no equals sign\n\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), bad.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the server closed the connection");
    let mut huge = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = huge.write_all(&vec![b'a'; 100_000]).await;
    let n = tokio::time::timeout(Duration::from_secs(2), huge.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "an endless line is refused");
    let mut good = Client::connect(s.addr).await;
    let a = good
        .ask(&rcpt("127.0.0.1", "a@b.example", "c@d.example"))
        .await;
    assert_eq!(a, "DUNNO", "other sessions carry on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_with_mode() {
    use mxguard_policy::server::{Listener, serve};
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.sock");
    let s = start("").await;
    let listener = Listener::bind(path.to_str().unwrap(), 0o660).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let shared = std::sync::Arc::new(mxguard_core::shared::Shared::new(
        mxguard_policy::engine::Engine::new(&Default::default(), s.store.clone(), None)
            .unwrap()
            .0,
    ));
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(serve(listener, shared, common::limits(), rx));
    let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"request=smtpd_access_policy\nprotocol_state=DATA\n\n")
        .await
        .unwrap();
    let mut line = String::new();
    stream.read_line(&mut line).await.unwrap();
    assert_eq!(line, "action=DUNNO\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_access_looks_up_the_name_before_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("client");
    std::fs::write(
        &map,
        "example.com REJECT by name\n192.0.2.0/24 OK\n198.51.100.0/24 WARN watched\n",
    )
    .unwrap();
    let s = start(&format!(
        "[policy.restrictions]\nclient = [\"check_client_access {}\", \"reject stopped here\"]\n",
        map.display()
    ))
    .await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.1"),
            ("client_name", "mail.example.com"),
        ])
        .await;
    assert_eq!(
        a, "REJECT by name",
        "as Postfix: the name and its parents first"
    );
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "192.0.2.1"),
            ("client_name", "unknown"),
        ])
        .await;
    assert_eq!(a, "DUNNO", "then the address");
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "198.51.100.5"),
            ("client_name", "unknown"),
        ])
        .await;
    assert_eq!(
        a, "REJECT stopped here",
        "WARN does not end the list, as in Postfix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warn_alone_is_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("client");
    std::fs::write(&map, "198.51.100.0/24 WARN watched\n").unwrap();
    let s = start(&format!(
        "[policy.restrictions]\nclient = [\"check_client_access {}\"]\n",
        map.display()
    ))
    .await;
    let mut c = Client::connect(s.addr).await;
    let a = c
        .ask(&[
            ("protocol_state", "CONNECT"),
            ("client_address", "198.51.100.5"),
        ])
        .await;
    assert_eq!(a, "WARN watched");
}
