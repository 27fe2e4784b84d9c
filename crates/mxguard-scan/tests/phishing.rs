//! The phishing check in the pipeline with its feeds served over HTTP by a
//! server on loopback (written here), refreshed by the same refresher
//! `serve` runs: a URL added to the feed is found by the same pipeline,
//! without a rebuild; while the server answers 500 the last good copy
//! stays in use.

use mxguard_core::Envelope;
use mxguard_core::config::{LoadedConfig, load_str};
use mxguard_scan::{Pipeline, Services};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `body` (or the status in `status` when not 200) to every GET.
async fn feed_server(state: Arc<Mutex<(u16, String)>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut b = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                let (status, body) = state.lock().unwrap().clone();
                let out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(out.as_bytes()).await;
            });
        }
    });
    addr
}

const MESSAGE: &[u8] =
    b"From: a@example.org\r\nSubject: your account\r\nContent-Type: text/html\r\n\r\n\
    <p><a href=\"https://login.bad-host.net/verify?id=1\">Verify now</a></p>\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_feed_is_used_by_the_running_pipeline() {
    let state = Arc::new(Mutex::new((
        200,
        "https://first.bad-host.net/x\n".to_string(),
    )));
    let addr = feed_server(state.clone()).await;
    let config = load_str(
        &format!(
            "[phishing]\nopenphish_enabled = true\nopenphish_map = \"http://{addr}/feed.txt\"\nrefresh_interval = 60\n"
        ),
        "t.toml",
        &mxguard_scan::sections(),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    let services = Services::default();
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let pipeline = Pipeline::new(&loaded, &services)
        .map_err(|e| format!("{e:?}"))
        .unwrap()
        .0;
    let env = Envelope::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let feeds = services.feeds.clone();
    tokio::spawn(feeds.clone().run(Duration::from_millis(50), stop_rx));

    // The config allows 60 s at least; the test asks the registry for the
    // same feed with a short interval (as a reload would with a new one),
    // so the refresher fetches every few milliseconds.
    let feed = services
        .feeds
        .feed(
            "phishing.openphish_map",
            &format!("http://{addr}/feed.txt"),
            mxguard_feeds::Format::OpenPhish,
            Duration::from_millis(10),
            mxguard_feeds::Limits {
                max_size: 1 << 20,
                timeout: Duration::from_secs(5),
            },
        )
        .unwrap();
    // The first fetch: the message's URL is not listed.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = pipeline.scan(&env, MESSAGE).await;
        assert!(!v.symbols.contains_key("PHISHED_OPENPHISH"), "{v:?}");
        // A probe message with the first URL tells when the feed is in.
        let probe = pipeline
            .scan(&env, b"Subject: p\r\n\r\nhttps://first.bad-host.net/x\r\n")
            .await;
        if probe.symbols.contains_key("PHISHED_OPENPHISH") {
            break;
        }
        assert!(Instant::now() < deadline, "the feed never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The publisher fails: nothing changes for the scan.
    state.lock().unwrap().0 = 500;
    let deadline = Instant::now() + Duration::from_secs(5);
    while feed.failures() < 2 {
        assert!(Instant::now() < deadline, "the refresher never tried again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let probe = pipeline
        .scan(&env, b"Subject: p\r\n\r\nhttps://first.bad-host.net/x\r\n")
        .await;
    assert!(
        probe.symbols.contains_key("PHISHED_OPENPHISH"),
        "last good copy kept"
    );

    // The feed changes: the same pipeline uses it.
    *state.lock().unwrap() = (200, "https://login.bad-host.net/verify\n".to_string());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = pipeline.scan(&env, MESSAGE).await;
        if let Some(s) = v.symbols.get("PHISHED_OPENPHISH") {
            assert_eq!(s.options, ["https://login.bad-host.net/verify?id=1"]);
            assert_eq!(s.score, 7.0);
            break;
        }
        assert!(Instant::now() < deadline, "the changed feed was never used");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
}
