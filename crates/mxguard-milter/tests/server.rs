//! The milter server in process, driven by the crate's client the way
//! Postfix drives it, with a fake scanner whose verdicts the messages
//! choose (`X-Test-Action`, `X-Test-Score`, `X-Test-Sleep`, `X-Test-Message`
//! headers; `X-Test-Block` makes a scan wait until the test opens the
//! gate) and whose early checks block or allow fixed addresses. Its milter
//! block is the real one (`mxguard_scan::MilterBlock`) for the server's
//! live `[milter.headers]`.

use mxguard_core::config::MilterConfig;
use mxguard_core::shared::Shared;
use mxguard_core::{Action, Envelope, SmtpStage, SymbolResult, Verdict};
use mxguard_milter::client::{Client, MessageSpec, Outcome, postfix_offer};
use mxguard_milter::codec::{Command, OptNeg, Reply, action, cmd, proto};
use mxguard_milter::server::{MilterServer, WANTED_ACTIONS, WANTED_PROTOCOL};
use mxguard_milter::{Scanner, reply};
use mxguard_scan::{BoxFuture, MilterBlock, ScanInput, ScanOutcome};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Fake {
    scans: AtomicUsize,
    seen: Mutex<Vec<(Envelope, Vec<u8>)>>,
    /// Open (true) lets scans of `X-Test-Block` messages end.
    gate: std::sync::atomic::AtomicBool,
    /// The server's live config, for the milter block's header options.
    config: OnceLock<Arc<Shared<MilterConfig>>>,
}

impl Fake {
    fn open_gate(&self) {
        self.gate.store(true, Ordering::SeqCst);
    }

    async fn verdict_for(&self, env: &Envelope, raw: &[u8]) -> Verdict {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.seen.lock().unwrap().push((env.clone(), raw.to_vec()));
        if let Some(ms) = header_value(raw, "X-Test-Sleep").and_then(|v| v.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if header_value(raw, "X-Test-Block").is_some() {
            // Bounded, so a failed test cannot hang the runtime's shutdown.
            for _ in 0..2000 {
                if self.gate.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let action = header_value(raw, "X-Test-Action")
            .and_then(Action::parse)
            .unwrap_or(Action::NoAction);
        let score = header_value(raw, "X-Test-Score")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let message = header_value(raw, "X-Test-Message").map(|m| m.replace("\\n", "\n"));
        verdict(action, score, message.as_deref())
    }
}

fn verdict(action: Action, score: f64, message: Option<&str>) -> Verdict {
    let mut symbols = BTreeMap::new();
    symbols.insert(
        "TEST_SYM".to_string(),
        SymbolResult {
            name: "TEST_SYM".into(),
            score,
            description: None,
            options: vec!["opt".into()],
        },
    );
    let mut messages = BTreeMap::new();
    if let Some(m) = message {
        messages.insert("smtp_message".to_string(), m.to_string());
    }
    Verdict {
        action,
        score,
        required_score: 15.0,
        symbols,
        messages,
        is_skipped: false,
        forced_by: None,
        add_headers: Vec::new(),
    }
}

fn header_value<'a>(raw: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Scanner for Fake {
    fn early(&self, stage: SmtpStage, env: &Envelope) -> Option<Verdict> {
        let ip = env.ip.map(|i| i.to_string()).unwrap_or_default();
        match stage {
            SmtpStage::Connect if ip == "192.0.2.66" => {
                Some(verdict(Action::Reject, 0.0, Some("Client blocked")))
            }
            SmtpStage::Connect if ip == "192.0.2.77" => Some(verdict(Action::NoAction, 0.0, None)),
            SmtpStage::Helo if env.helo.as_deref() == Some("bad.helo") => {
                Some(verdict(Action::Reject, 0.0, None))
            }
            SmtpStage::MailFrom => match env.mail_from.as_deref() {
                Some("spammer@bad.example") => {
                    Some(verdict(Action::Reject, 0.0, Some("Sender blocked")))
                }
                Some("wl@good.example") => Some(verdict(Action::NoAction, 0.0, None)),
                _ => None,
            },
            SmtpStage::Rcpt => match env.rcpts.last().map(String::as_str) {
                Some("blocked@example.org") => Some(verdict(Action::Reject, 0.0, None)),
                Some("grey@example.org") => Some(verdict(Action::Greylist, 0.0, None)),
                Some("hold@example.org") => {
                    Some(verdict(Action::Quarantine, 0.0, Some("held by rcpt list")))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn scan<'a>(&'a self, input: ScanInput<'a>) -> BoxFuture<'a, ScanOutcome> {
        Box::pin(async move {
            let verdict = self.verdict_for(input.envelope, input.raw).await;
            let headers = self
                .config
                .get()
                .map(|c| c.get().headers.clone())
                .unwrap_or_default();
            let milter =
                MilterBlock::for_verdict(&headers, &verdict, input.envelope, input.mta_name);
            ScanOutcome { verdict, milter }
        })
    }
}

struct Running {
    addr: String,
    /// The live configuration, to reload.
    config: Arc<Shared<MilterConfig>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    fake: Arc<Fake>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
    }
}

fn test_config() -> MilterConfig {
    MilterConfig {
        listen: "127.0.0.1:0".into(),
        ..MilterConfig::default()
    }
}

async fn start(cfg: MilterConfig) -> Running {
    let server = MilterServer::bind(&cfg).await.unwrap();
    let addr: SocketAddr = server.local_addr().unwrap();
    let config = server.config();
    let fake = Arc::new(Fake::default());
    let _ = fake.config.set(config.clone());
    let (tx, rx) = oneshot::channel();
    let scanner: Arc<dyn Scanner> = fake.clone();
    let task = tokio::spawn(server.run(scanner, async {
        let _ = rx.await;
    }));
    Running {
        addr: addr.to_string(),
        config,
        stop: Some(tx),
        task,
        fake,
    }
}

async fn session(r: &Running, ip: &str) -> Client<TcpStream> {
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    c.negotiate(postfix_offer()).await.unwrap();
    let resp = c
        .connect("client.example", ip.parse().unwrap(), 40000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Continue);
    assert_eq!(
        c.helo("client.example").await.unwrap().unwrap().reply,
        Reply::Continue
    );
    c
}

fn msg(headers: &[(&str, &str)], body: &str) -> MessageSpec {
    MessageSpec {
        mail_from: "a@example.com".into(),
        rcpts: vec!["b@example.org".into()],
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), format!(" {v}").into_bytes()))
            .collect(),
        body: body.as_bytes().to_vec(),
        queue_id: Some("4ABC123".into()),
        auth_user: None,
    }
}

fn added(o: &Outcome, name: &str) -> Option<String> {
    o.modifications.iter().find_map(|r| match r {
        Reply::AddHeader { name: n, value } | Reply::InsHeader { name: n, value, .. }
            if n.eq_ignore_ascii_case(name) =>
        {
            Some(String::from_utf8_lossy(value).into_owned())
        }
        _ => None,
    })
}

/// Postfix buffers what gets no reply (VSTREAM) and writes it with the
/// next command that does: many packets reach the server in one read, and
/// a header may be split across two. The server must see the same
/// envelope and message, and answer the same, as with one write per
/// packet.
#[tokio::test]
async fn packets_written_together_as_postfix_does_give_the_same_answers() {
    let r = start(test_config()).await;
    let mut m = msg(
        &[
            ("Subject", "together"),
            ("X-Test-Score", "7"),
            ("X-Test-Action", "add header"),
        ],
        &"a body line that repeats\r\n".repeat(4000),
    );
    // Enough headers to pass Postfix's 4 KiB buffer mid-packet.
    for i in 0..120 {
        m.headers
            .push((format!("X-Filler-{i}"), format!(" value {i}").into_bytes()));
    }
    let mut outcomes = Vec::new();
    for buffered in [false, true] {
        let c = Client::connect_tcp(&r.addr).await.unwrap();
        let mut c = c.buffered(buffered);
        c.negotiate(postfix_offer()).await.unwrap();
        c.connect("client.example", "192.0.2.7".parse().unwrap(), 40000)
            .await
            .unwrap();
        c.helo("client.example").await.unwrap();
        // Two messages on the connection, ABORT between them.
        for _ in 0..2 {
            outcomes.push(c.message(&m).await.unwrap());
            c.abort().await.unwrap();
        }
        c.quit().await.unwrap();
    }
    let seen = r.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    for i in 1..4 {
        assert_eq!(
            format!("{:?}", seen[i].0),
            format!("{:?}", seen[0].0),
            "envelope of message {i}"
        );
        assert!(seen[i].1 == seen[0].1, "raw message {i} differs");
        assert_eq!(outcomes[i], outcomes[0], "answer to message {i}");
    }
    assert_eq!(outcomes[0].reply, Reply::Accept);
    assert!(added(&outcomes[0], "X-Spam-Flag").is_some());
    r.stop().await;
}

#[tokio::test]
async fn negotiation_asks_for_what_it_needs() {
    let r = start(test_config()).await;
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    let agreed = c.negotiate(postfix_offer()).await.unwrap();
    assert_eq!(agreed.version, 6);
    assert_eq!(agreed.actions, WANTED_ACTIONS);
    assert_eq!(agreed.protocol, WANTED_PROTOCOL);
    assert!(agreed.protocol & proto::NO_DATA != 0 && agreed.protocol & proto::NR_HDR != 0);
    assert!(agreed.protocol & proto::NO_CONNECT == 0 && agreed.protocol & proto::NO_BODY == 0);
    let stages: Vec<u32> = agreed.macros.iter().map(|(s, _)| *s).collect();
    assert_eq!(stages, [0, 2, 3, 5]);
    assert!(agreed.macros[0].1.contains("{client_addr}"));

    // An old MTA (version 2, few flags) gets only what it offered, and
    // every stage is answered.
    let mut old = Client::connect_tcp(&r.addr).await.unwrap();
    let agreed = old
        .negotiate(OptNeg {
            version: 2,
            actions: action::ADD_HEADERS,
            protocol: 0x7f,
            macros: vec![],
        })
        .await
        .unwrap();
    assert_eq!(agreed.version, 2);
    assert_eq!(agreed.actions, action::ADD_HEADERS);
    assert_eq!(agreed.protocol, proto::NO_EOH);
    assert!(agreed.macros.is_empty());
    old.connect("h", "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    let out = old
        .message(&msg(
            &[
                ("Subject", "x"),
                ("X-Test-Score", "7"),
                ("X-Test-Action", "add header"),
            ],
            "hi\r\n",
        ))
        .await
        .unwrap();
    assert_eq!(out.stage, cmd::BODYEOB);
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(added(&out, "X-Spam-Flag").as_deref(), Some("YES"));
    // Not granted: no CHGHEADER, no leading space.
    assert!(
        out.modifications
            .iter()
            .all(|m| matches!(m, Reply::AddHeader { .. }))
    );
    r.stop().await;
}

#[tokio::test]
async fn every_stage_builds_the_envelope_and_the_raw_message() {
    let r = start(test_config()).await;
    let mut c = session(&r, "192.0.2.1").await;
    // An unknown SMTP command is skipped by negotiation; sent anyway, it is
    // simply not answered (NR_UNKN).
    assert!(c.skips(cmd::UNKNOWN));
    let mut m = msg(&[], "");
    m.headers = vec![
        ("Received".into(), b" from x\n\tby y".to_vec()),
        ("Subject".into(), b" hi\n there".to_vec()),
        ("X-A".into(), b"b".to_vec()),
    ];
    m.body = b"body line\r\n\r\nend\r\n".to_vec();
    m.rcpts = vec!["b@example.org".into(), "c@example.org".into()];
    m.auth_user = Some("joe".into());
    let out = c.message(&m).await.unwrap();
    assert_eq!(out.reply, Reply::Accept);
    let seen = r.fake.seen.lock().unwrap().clone();
    let (env, raw) = &seen[0];
    assert_eq!(env.ip, Some("192.0.2.1".parse::<IpAddr>().unwrap()));
    assert_eq!(env.hostname.as_deref(), Some("client.example"));
    assert_eq!(env.helo.as_deref(), Some("client.example"));
    assert_eq!(env.mail_from.as_deref(), Some("a@example.com"));
    assert_eq!(env.rcpts, ["b@example.org", "c@example.org"]);
    assert_eq!(env.user.as_deref(), Some("joe"));
    assert_eq!(env.queue_id.as_deref(), Some("4ABC123"));
    assert_eq!(env.daemon_name.as_deref(), Some("mxtest"));
    assert_eq!(
        String::from_utf8_lossy(raw),
        "Received: from x\r\n\tby y\r\nSubject: hi\r\n there\r\nX-A:b\r\n\r\nbody line\r\n\r\nend\r\n"
    );
    // Authenticated: skip_authenticated leaves the headers alone.
    assert!(out.modifications.is_empty(), "{:?}", out.modifications);

    // The null sender and an unresolved client name.
    let mut c2 = Client::connect_tcp(&r.addr).await.unwrap();
    c2.negotiate(postfix_offer()).await.unwrap();
    c2.connect("unknown", "2001:db8::5".parse().unwrap(), 1)
        .await
        .unwrap();
    let mut bounce = msg(&[("Subject", "bounce")], "x\r\n");
    bounce.mail_from = String::new();
    c2.message(&bounce).await.unwrap();
    let seen = r.fake.seen.lock().unwrap().clone();
    let (env, _) = &seen[1];
    assert_eq!(env.mail_from.as_deref(), Some(""));
    assert_eq!(env.hostname, None);
    assert_eq!(env.helo, None);
    assert_eq!(env.ip, Some("2001:db8::5".parse::<IpAddr>().unwrap()));
    r.stop().await;
}

#[tokio::test]
async fn verdicts_become_the_right_replies() {
    let r = start(test_config()).await;
    let mut c = session(&r, "192.0.2.1").await;
    let cases: Vec<(Vec<(&str, &str)>, Reply)> = vec![
        (
            vec![("X-Test-Action", "reject"), ("X-Test-Score", "20")],
            Reply::ReplyCode("554 5.7.1 Spam message rejected".into()),
        ),
        (
            vec![
                ("X-Test-Action", "reject"),
                ("X-Test-Message", "No thanks\\nreally"),
            ],
            Reply::ReplyCode("554-5.7.1 No thanks\r\n554 5.7.1 really".into()),
        ),
        (
            vec![("X-Test-Action", "soft reject")],
            Reply::ReplyCode("451 4.7.1 Try again later".into()),
        ),
        (
            vec![
                ("X-Test-Action", "greylist"),
                ("X-Test-Message", "Greylisted"),
            ],
            Reply::ReplyCode("451 4.7.1 Greylisted".into()),
        ),
        (vec![("X-Test-Action", "discard")], Reply::Discard),
    ];
    for (headers, want) in cases {
        let out = c.message(&msg(&headers, "x\r\n")).await.unwrap();
        assert_eq!(out.stage, cmd::BODYEOB);
        assert_eq!(out.reply, want, "{headers:?}");
        assert!(out.modifications.is_empty());
        c.abort().await.unwrap();
    }

    // Quarantine: headers, QUARANTINE with the reason, ACCEPT.
    let out = c
        .message(&msg(
            &[("X-Test-Action", "quarantine"), ("X-Test-Score", "9.5")],
            "x\r\n",
        ))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(
        out.modifications
            .contains(&Reply::Quarantine("Quarantined by mxguard".into()))
    );
    assert_eq!(added(&out, "X-Spam-Flag").as_deref(), Some(" YES"));

    // Add header: the spam headers, rspamd's formats, leading space kept.
    let out = c
        .message(&msg(
            &[
                ("Subject", "hello"),
                ("X-Test-Action", "add header"),
                ("X-Test-Score", "7.25"),
            ],
            "x\r\n",
        ))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(added(&out, "X-Spam-Flag").as_deref(), Some(" YES"));
    assert_eq!(added(&out, "X-Spam-Level").as_deref(), Some(" *******"));
    assert_eq!(
        added(&out, "X-Spam-Status").as_deref(),
        Some(" Yes, score=7.25 required=15.00")
    );
    assert_eq!(
        added(&out, "X-Spamd-Result").as_deref(),
        Some(" default: False [7.25 / 15.00];\n\tTEST_SYM(7.25)[opt]")
    );

    // Rewrite subject.
    let out = c
        .message(&msg(
            &[
                ("Subject", "hello"),
                ("X-Test-Action", "rewrite subject"),
                ("X-Test-Score", "9"),
            ],
            "x\r\n",
        ))
        .await
        .unwrap();
    assert!(out.modifications.contains(&Reply::ChgHeader {
        index: 1,
        name: "Subject".into(),
        value: b" ***SPAM*** hello".to_vec()
    }));
    let out = c
        .message(&msg(&[("X-Test-Action", "rewrite subject")], "x\r\n"))
        .await
        .unwrap();
    assert!(out.modifications.contains(&Reply::AddHeader {
        name: "Subject".into(),
        value: b" ***SPAM***".to_vec()
    }));

    // No action: accepted with headers, no X-Spam-Flag.
    let out = c
        .message(&msg(&[("Subject", "ham")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(added(&out, "X-Spam-Flag"), None);
    assert_eq!(
        added(&out, "X-Spam-Status").as_deref(),
        Some(" No, score=0.00 required=15.00")
    );
    r.stop().await;
}

#[tokio::test]
async fn forged_spam_headers_are_deleted() {
    let r = start(test_config()).await;
    let mut c = session(&r, "192.0.2.1").await;
    let out = c
        .message(&msg(
            &[
                ("X-Spam-Flag", "NO"),
                ("Subject", "s"),
                ("x-spam-flag", "NO"),
                ("X-Spam-Status", "No"),
            ],
            "x\r\n",
        ))
        .await
        .unwrap();
    let dels: Vec<(u32, String)> = out
        .modifications
        .iter()
        .filter_map(|m| match m {
            Reply::ChgHeader { index, name, value } if value.is_empty() => {
                Some((*index, name.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        dels,
        [
            (2, "X-Spam-Flag".to_string()),
            (1, "X-Spam-Flag".to_string()),
            (1, "X-Spam-Status".to_string())
        ]
    );
    // Deletions come before the additions.
    let first_add = out
        .modifications
        .iter()
        .position(|m| matches!(m, Reply::AddHeader { .. }))
        .unwrap();
    assert!(first_add >= 3);
    r.stop().await;

    // skip_local: a client on 127.0.0.1 gets nothing added or deleted.
    let mut cfg = test_config();
    cfg.headers.skip_local = true;
    let r = start(cfg).await;
    let mut c = session(&r, "127.0.0.1").await;
    let out = c
        .message(&msg(
            &[("X-Spam-Flag", "NO"), ("X-Test-Action", "add header")],
            "x\r\n",
        ))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(out.modifications.is_empty());
    r.stop().await;
}

#[tokio::test]
async fn early_verdicts_answer_at_their_stage() {
    let r = start(test_config()).await;

    // A blocked client is refused at connect.
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    c.negotiate(postfix_offer()).await.unwrap();
    let resp = c
        .connect("x", "192.0.2.66".parse().unwrap(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        resp.reply,
        Reply::ReplyCode("554 5.7.1 Client blocked".into())
    );

    // A whitelisted client is accepted at connect (no scan follows).
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    c.negotiate(postfix_offer()).await.unwrap();
    let resp = c
        .connect("x", "192.0.2.77".parse().unwrap(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Accept);

    // A bad HELO.
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    c.negotiate(postfix_offer()).await.unwrap();
    c.connect("x", "192.0.2.1".parse().unwrap(), 1)
        .await
        .unwrap();
    let resp = c.helo("bad.helo").await.unwrap().unwrap();
    assert_eq!(
        resp.reply,
        Reply::ReplyCode("554 5.7.1 Spam message rejected".into())
    );

    let mut c = session(&r, "192.0.2.1").await;
    // A blocked sender is refused at MAIL FROM.
    let mut m = msg(&[("Subject", "x")], "x\r\n");
    m.mail_from = "spammer@bad.example".into();
    let out = c.message(&m).await.unwrap();
    assert_eq!(out.stage, cmd::MAIL);
    assert_eq!(
        out.reply,
        Reply::ReplyCode("554 5.7.1 Sender blocked".into())
    );
    c.abort().await.unwrap();

    // A whitelisted sender is accepted at MAIL FROM, unscanned.
    m.mail_from = "wl@good.example".into();
    let out = c.message(&m).await.unwrap();
    assert_eq!((out.stage, out.reply), (cmd::MAIL, Reply::Accept));
    c.abort().await.unwrap();

    // One refused recipient; the message goes on for the other.
    let mut m = msg(&[("Subject", "x")], "x\r\n");
    m.rcpts = vec![
        "blocked@example.org".into(),
        "ok@example.org".into(),
        "grey@example.org".into(),
    ];
    let out = c.message(&m).await.unwrap();
    assert_eq!(out.stage, cmd::BODYEOB);
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(
        out.rejected_rcpts,
        [
            (
                "blocked@example.org".to_string(),
                Reply::ReplyCode("554 5.7.1 Spam message rejected".into())
            ),
            (
                "grey@example.org".to_string(),
                Reply::ReplyCode("451 4.7.1 Try again later".into())
            )
        ]
    );
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 1);
    let seen = r.fake.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0.rcpts, ["ok@example.org"]);
    c.abort().await.unwrap();

    // A forced quarantine at RCPT is applied at end of message, unscanned.
    let mut m = msg(&[("Subject", "x")], "x\r\n");
    m.rcpts = vec!["hold@example.org".into()];
    let out = c.message(&m).await.unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(
        out.modifications
            .contains(&Reply::Quarantine("held by rcpt list".into()))
    );
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 1);
    r.stop().await;
}

#[tokio::test]
async fn connection_reuse_keeps_messages_apart() {
    let r = start(test_config()).await;
    let mut c = session(&r, "192.0.2.1").await;
    for i in 0..3 {
        let mut m = msg(
            &[
                ("Subject", &format!("n{i}")),
                ("X-Test-Score", &format!("{i}")),
            ],
            &format!("body {i}\r\n"),
        );
        m.queue_id = Some(format!("Q{i}"));
        m.rcpts = vec![format!("r{i}@example.org")];
        m.auth_user = (i == 0).then(|| "joe".to_string());
        let out = c.message(&m).await.unwrap();
        assert_eq!(out.reply, Reply::Accept);
        if i > 0 {
            assert_eq!(
                added(&out, "X-Spam-Status").unwrap(),
                format!(" No, score={i}.00 required=15.00")
            );
        }
        c.abort().await.unwrap();
    }
    let seen = r.fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (i, (env, raw)) in seen.iter().enumerate() {
        assert_eq!(env.rcpts, [format!("r{i}@example.org")]);
        assert_eq!(env.queue_id.as_deref(), Some(format!("Q{i}").as_str()));
        assert_eq!(
            env.user.is_some(),
            i == 0,
            "auth must not leak into message {i}"
        );
        assert!(String::from_utf8_lossy(raw).ends_with(&format!("body {i}\r\n")));
    }
    // QUIT_NC: a new SMTP session on the same connection.
    c.send(&Command::QuitNc).await.unwrap();
    let resp = c
        .connect("other.example", "192.0.2.9".parse().unwrap(), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Continue);
    c.message(&msg(&[("Subject", "after quit_nc")], "x\r\n"))
        .await
        .unwrap();
    let seen = r.fake.seen.lock().unwrap().clone();
    assert_eq!(seen[3].0.ip, Some("192.0.2.9".parse::<IpAddr>().unwrap()));
    assert_eq!(seen[3].0.helo, None);
    c.quit().await.unwrap();
    r.stop().await;
}

#[tokio::test]
async fn malformed_packet_closes_only_that_session() {
    let r = start(test_config()).await;
    let mut good = session(&r, "192.0.2.1").await;
    for garbage in [
        vec![0, 0, 0, 1, b'Z'],             // unknown command
        vec![0xff, 0xff, 0xff, 0xff, b'B'], // absurd length
        vec![0, 0, 0, 3, b'H', b'x', b'y'], // HELO without NUL
        vec![0, 0, 0, 0],                   // empty frame
    ] {
        let mut bad = session(&r, "192.0.2.2").await;
        bad.send_raw(&garbage).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), bad.read_reply())
            .await
            .expect("closed promptly");
        assert!(matches!(got, Ok(None) | Err(_)), "{got:?}");
    }
    let out = good
        .message(&msg(&[("Subject", "still fine")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_sessions_each_get_their_own_verdict() {
    let r = Arc::new(start(test_config()).await);
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = session(&r, &format!("192.0.2.{}", i + 1)).await;
            let mut results = Vec::new();
            for j in 0..4u32 {
                let score = f64::from(i) + f64::from(j) / 4.0;
                let action = if i % 2 == 0 {
                    "add header"
                } else {
                    "no action"
                };
                let out = c
                    .message(&msg(
                        &[
                            ("Subject", &format!("s{i}-{j}")),
                            ("X-Test-Score", &score.to_string()),
                            ("X-Test-Action", action),
                        ],
                        &"y".repeat((i * 100) as usize),
                    ))
                    .await
                    .unwrap();
                c.abort().await.unwrap();
                results.push((score, out));
            }
            (i, results)
        }));
    }
    for t in tasks {
        let (i, results) = t.await.unwrap();
        for (score, out) in results {
            assert_eq!(out.reply, Reply::Accept);
            let spam = if i % 2 == 0 { "Yes" } else { "No" };
            assert_eq!(
                added(&out, "X-Spam-Status").unwrap(),
                format!(" {spam}, score={score:.2} required=15.00"),
                "session {i}"
            );
        }
    }
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 200);
    Arc::try_unwrap(r).ok().unwrap().stop().await;
}

#[tokio::test]
async fn progress_while_a_scan_is_slow_and_tempfail_past_the_scan_timeout() {
    let mut cfg = test_config();
    cfg.progress_interval.0 = 100;
    cfg.scan_timeout.0 = 1500;
    let r = start(cfg).await;
    let mut c = session(&r, "192.0.2.1").await;
    let out = c
        .message(&msg(&[("X-Test-Sleep", "450")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(out.progress >= 3, "progress packets: {}", out.progress);

    let t = Instant::now();
    let out = c
        .message(&msg(&[("X-Test-Sleep", "3000")], "x\r\n"))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_millis(2500));
    assert_eq!(out.reply, reply::scan_failed_reply());
    assert_eq!(
        out.reply,
        Reply::ReplyCode("451 4.7.1 Message could not be scanned, try again later".into())
    );
    r.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_accepted_unscanned_or_tempfailed() {
    let mut cfg = test_config();
    cfg.max_message_size.0 = 200;
    let r = start(cfg).await;
    let mut c = session(&r, "192.0.2.1").await;
    let out = c
        .message(&msg(
            &[("Subject", "big"), ("X-Spam-Flag", "NO")],
            &"z".repeat(500),
        ))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(
        added(&out, "X-Mxguard-Unscanned")
            .unwrap()
            .contains("over the 200-byte limit")
    );
    // The forged flag still goes.
    assert!(out.modifications.iter().any(
        |m| matches!(m, Reply::ChgHeader { name, value, .. } if name == "X-Spam-Flag" && value.is_empty())
    ));
    // A small one on the same connection is scanned as usual.
    let out = c.message(&msg(&[("Subject", "small")], "z")).await.unwrap();
    assert!(added(&out, "X-Spam-Status").is_some());
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 1);
    r.stop().await;

    let mut cfg: MilterConfig = toml::from_str("oversize_action = \"tempfail\"").unwrap();
    cfg.listen = "127.0.0.1:0".into();
    cfg.max_message_size.0 = 200;
    let r = start(cfg).await;
    let mut c = session(&r, "192.0.2.1").await;
    let out = c
        .message(&msg(&[("Subject", "big")], &"z".repeat(500)))
        .await
        .unwrap();
    assert_eq!(
        out.reply,
        Reply::ReplyCode("451 4.3.4 Message too large to scan, try again later".into())
    );
    r.stop().await;
}

#[tokio::test]
async fn stage_timeouts_close_silent_connections() {
    let mut cfg = test_config();
    cfg.negotiate_timeout.0 = 200;
    cfg.command_timeout.0 = 300;
    let r = start(cfg).await;
    // Nothing at all after connecting.
    let mut c = Client::connect_tcp(&r.addr).await.unwrap();
    let t = Instant::now();
    assert!(matches!(c.read_reply().await, Ok(None) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(2));
    // Silent between commands.
    let mut c = session(&r, "192.0.2.1").await;
    let t = Instant::now();
    assert!(matches!(c.read_reply().await, Ok(None) | Err(_)));
    assert!(t.elapsed() >= Duration::from_millis(250) && t.elapsed() < Duration::from_secs(2));
    r.stop().await;
}

#[tokio::test]
async fn shutdown_lets_the_message_in_flight_finish() {
    let r = start(test_config()).await;
    let mut idle = session(&r, "192.0.2.1").await;
    let mut busy = session(&r, "192.0.2.2").await;
    // `busy` is inside a message (after MAIL) when the shutdown comes.
    busy.macros(cmd::MAIL, &[("{mail_addr}", "a@example.com")])
        .await
        .unwrap();
    let resp = busy
        .call(&Command::Mail(vec!["<a@example.com>".into()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Continue);
    let Running {
        addr,
        mut stop,
        task,
        ..
    } = r;
    stop.take().unwrap().send(()).unwrap();
    // The idle session is closed.
    let got = tokio::time::timeout(Duration::from_secs(5), idle.read_reply())
        .await
        .expect("idle session closed");
    assert!(matches!(got, Ok(None) | Err(_)));
    // No new connections.
    let t = Instant::now();
    while Client::connect_tcp(&addr).await.is_ok() {
        assert!(t.elapsed() < Duration::from_secs(5), "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The busy one finishes its message.
    let resp = busy
        .call(&Command::Rcpt(vec!["<b@example.org>".into()]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Continue);
    busy.call(&Command::Header {
        name: "Subject".into(),
        value: b" s".to_vec(),
    })
    .await
    .unwrap();
    busy.call(&Command::Body(b"x\r\n".to_vec())).await.unwrap();
    busy.send(&Command::EndOfMessage(vec![])).await.unwrap();
    let resp = busy.read_response().await.unwrap();
    assert_eq!(resp.reply, Reply::Accept);
    // ...and is then closed, and the server returns.
    assert!(matches!(busy.read_reply().await, Ok(None) | Err(_)));
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server returns")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_grace_is_bounded() {
    let mut cfg = test_config();
    cfg.shutdown_grace.0 = 300;
    let r = start(cfg).await;
    let mut busy = session(&r, "192.0.2.2").await;
    busy.call(&Command::Mail(vec!["<a@example.com>".into()]))
        .await
        .unwrap();
    let Running { mut stop, task, .. } = r;
    let t = Instant::now();
    stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server returns")
        .unwrap()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(matches!(busy.read_reply().await, Ok(None) | Err(_)));
}

#[tokio::test]
async fn unix_socket_with_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("milter.sock");
    let cfg = MilterConfig {
        listen: path.to_string_lossy().into_owned(),
        socket_mode: "0600".into(),
        ..MilterConfig::default()
    };
    // A stale socket file from an earlier run is replaced.
    let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
    drop(stale);
    let server = MilterServer::bind(&cfg).await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let fake = Arc::new(Fake::default());
    let _ = fake.config.set(server.config());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(fake.clone(), async {
        let _ = rx.await;
    }));
    let mut c = Client::connect_unix(&path).await.unwrap();
    c.negotiate(postfix_offer()).await.unwrap();
    c.send(&Command::Connect {
        hostname: "localhost".into(),
        family: mxguard_milter::codec::Family::Unix,
        port: 0,
        address: "/var/run/x".into(),
    })
    .await
    .unwrap();
    assert_eq!(c.read_response().await.unwrap().reply, Reply::Continue);
    let out = c
        .message(&msg(&[("Subject", "unix")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(fake.seen.lock().unwrap()[0].0.ip, None);
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(!path.exists(), "socket removed on shutdown");

    // Something that is not a socket is not replaced.
    std::fs::write(&path, b"data").unwrap();
    assert!(MilterServer::bind(&cfg).await.is_err());
}

#[tokio::test]
async fn bind_errors_are_reported() {
    let a = start(test_config()).await;
    let cfg = MilterConfig {
        listen: a.addr.clone(),
        ..MilterConfig::default()
    };
    assert!(MilterServer::bind(&cfg).await.is_err());
    let bad = MilterConfig {
        listen: "127.0.0.1:0".into(),
        socket_mode: "rw".into(),
        ..MilterConfig::default()
    };
    assert!(MilterServer::bind(&bad).await.is_err());
    a.stop().await;
}

/// Past `max_sessions`, a new connection is closed at once (Postfix then
/// applies milter_default_action) while the open sessions go on; once one
/// ends, a new connection is served.
#[tokio::test]
async fn connections_past_max_sessions_are_closed_at_once() {
    let mut cfg = test_config();
    cfg.max_sessions = 2;
    let r = start(cfg).await;
    let mut a = session(&r, "192.0.2.1").await;
    let mut b = session(&r, "192.0.2.2").await;
    for _ in 0..2 {
        let mut extra = Client::connect_tcp(&r.addr).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), extra.negotiate(postfix_offer()))
            .await
            .expect("closed at once, not left waiting");
        assert!(got.is_err(), "a third session was served: {got:?}");
    }
    for c in [&mut a, &mut b] {
        let out = c
            .message(&msg(&[("Subject", "fine")], "x\r\n"))
            .await
            .unwrap();
        assert_eq!(out.reply, Reply::Accept);
        assert!(added(&out, "X-Spam-Status").is_some());
    }
    a.quit().await.unwrap();
    // The server notices the QUIT shortly; then a new connection is served.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = loop {
        let mut c = Client::connect_tcp(&r.addr).await.unwrap();
        if c.negotiate(postfix_offer()).await.is_ok() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "no session served after one closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let resp = c
        .connect("client.example", "192.0.2.3".parse().unwrap(), 40000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.reply, Reply::Continue);
    let out = c
        .message(&msg(&[("Subject", "new")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    let out = b
        .message(&msg(&[("Subject", "still")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 4);
    r.stop().await;
}

/// The milter holds no scan slot of its own (the scan service bounds the
/// CPU work): with `max_scans = 1`, a scan that hangs past `scan_timeout`
/// is tempfailed and dropped, and another session's message meanwhile is
/// scanned at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_scan_is_dropped_at_the_scan_timeout_and_blocks_no_one() {
    let mut cfg = test_config();
    cfg.max_scans = 1;
    cfg.scan_timeout.0 = 400;
    cfg.progress_interval.0 = 100;
    let r = start(cfg).await;
    let mut a = session(&r, "192.0.2.1").await;
    let mut b = session(&r, "192.0.2.2").await;
    let hanging = tokio::spawn(async move {
        let t = Instant::now();
        let out = a
            .message(&msg(&[("X-Test-Block", "yes")], "x\r\n"))
            .await
            .unwrap();
        (out, t.elapsed())
    });
    scans_reach(&r, 1).await;
    let out = b
        .message(&msg(&[("Subject", "scanned")], "x\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(added(&out, "X-Spam-Status").is_some());
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 2);
    let (out, took) = hanging.await.unwrap();
    assert_eq!(out.reply, reply::scan_failed_reply());
    assert!(took >= Duration::from_millis(350), "{took:?}");
    assert!(out.progress >= 2, "progress packets: {}", out.progress);
    r.fake.open_gate();
    r.stop().await;
}

/// Waits (bounded) until the fake scanner has been called `n` times.
async fn scans_reach(r: &Running, n: usize) {
    for _ in 0..1000 {
        if r.fake.scans.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake scanner was not called {n} times");
}

/// With the memory budget held by a scan, a second large message waits for
/// room up to memory_wait and is tempfailed (451 4.3.2: the MTA keeps it and
/// retries), a small message still passes meanwhile, and a large message
/// that waits long enough is scanned once the room comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_holds_large_messages_back_and_lets_small_ones_through() {
    let mut cfg = test_config();
    // One scan of a message of max_message_size fits in seven eighths of
    // the budget; two do not.
    cfg.memory_budget.0 = 8 << 20;
    cfg.max_message_size.0 = 1 << 20;
    cfg.memory_wait.0 = 300;
    cfg.progress_interval.0 = 100;
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    let r = start(cfg.clone()).await;
    let large = "x".repeat(998) + "\r\n";
    let large = large.repeat(1000);

    // A: a large message whose scan holds its claim until the gate opens.
    let mut a = session(&r, "192.0.2.1").await;
    let held = msg(&[("X-Test-Block", "yes")], &large);
    let a = tokio::spawn(async move { a.message(&held).await.unwrap() });
    scans_reach(&r, 1).await;

    // B: as large; no room for its scan within memory_wait.
    let mut b = session(&r, "192.0.2.2").await;
    let out = b
        .message(&msg(&[("Subject", "large")], &large))
        .await
        .unwrap();
    assert_eq!(out.reply, reply::busy_reply());
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 1, "B was scanned");
    b.abort().await.unwrap();

    // C: a small message passes while A still holds its room.
    let mut c = session(&r, "192.0.2.3").await;
    let out = c
        .message(&msg(&[("Subject", "small")], "hello\r\n"))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert!(added(&out, "X-Spam-Status").is_some());
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 2);

    // D: with a long memory_wait, a large message waits for A's room...
    let mut longer = cfg.clone();
    longer.memory_wait.0 = 30_000;
    r.config.replace(longer);
    let mut d = session(&r, "192.0.2.4").await;
    let waiting = msg(&[("Subject", "waits")], &large);
    let mut d = tokio::spawn(async move { d.message(&waiting).await.unwrap() });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut d)
            .await
            .is_err(),
        "D was answered while A held the room"
    );
    // ...and is scanned once A's scan ends and gives it back.
    r.fake.open_gate();
    assert_eq!(a.await.unwrap().reply, Reply::Accept);
    let out = tokio::time::timeout(Duration::from_secs(20), d)
        .await
        .expect("D answered")
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    assert_eq!(r.fake.scans.load(Ordering::SeqCst), 3);

    // B's connection goes on: its retry is scanned now.
    let out = b
        .message(&msg(&[("Subject", "retry")], &large))
        .await
        .unwrap();
    assert_eq!(out.reply, Reply::Accept);
    r.stop().await;
}
