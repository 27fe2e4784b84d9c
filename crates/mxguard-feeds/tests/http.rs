//! Feeds fetched from a real HTTP server on loopback (a small one written
//! here, answering what the test sets): a feed is loaded, a failing fetch
//! (HTTP 500, a silent server, an oversize body) keeps the last good set,
//! and a changed feed is picked up by the refresher without a restart.

use mxguard_feeds::{Feeds, Format, Limits};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Clone)]
enum Reply {
    Ok(String),
    Chunked(String),
    Status(u16),
    Redirect(String),
    Silent,
}

struct Server {
    addr: String,
    reply: Arc<Mutex<Reply>>,
    hits: Arc<Mutex<usize>>,
}

impl Server {
    fn set(&self, r: Reply) {
        *self.reply.lock().unwrap() = r;
    }
    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

async fn server(first: Reply) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let reply = Arc::new(Mutex::new(first));
    let hits = Arc::new(Mutex::new(0));
    let (r, h) = (reply.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (r, h) = (r.clone(), h.clone());
            tokio::spawn(async move {
                // Read the request head.
                let mut buf = Vec::new();
                let mut b = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&b[..n]),
                    }
                }
                *h.lock().unwrap() += 1;
                let reply = r.lock().unwrap().clone();
                let out = match reply {
                    Reply::Ok(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ),
                    Reply::Chunked(body) => {
                        let mut s =
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
                        for piece in body.as_bytes().chunks(7) {
                            s += &format!(
                                "{:x}\r\n{}\r\n",
                                piece.len(),
                                String::from_utf8_lossy(piece)
                            );
                        }
                        s + "0\r\n\r\n"
                    }
                    Reply::Status(code) => {
                        format!("HTTP/1.1 {code} Oops\r\nContent-Length: 5\r\n\r\noops\n")
                    }
                    Reply::Redirect(to) => {
                        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n")
                    }
                    Reply::Silent => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                };
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Server { addr, reply, hits }
}

fn limits() -> Limits {
    Limits {
        max_size: 1 << 20,
        timeout: Duration::from_millis(800),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_keeps_the_last_good_set() {
    let s = server(Reply::Ok(
        "https://phish.example/login\nhttp://other.example/a/b\n".into(),
    ))
    .await;
    let feeds = Feeds::new();
    let feed = feeds
        .feed(
            "phishing.openphish_map",
            &format!("http://{}/feed.txt", s.addr),
            Format::OpenPhish,
            Duration::from_secs(3600),
            limits(),
        )
        .unwrap();
    assert!(
        feed.set().is_empty(),
        "URL feeds are fetched by the refresher, not at registration"
    );
    assert_eq!(feed.refresh().await.unwrap(), 2);
    assert!(feed.contains("http://phish.example/login/"));
    assert!(!feed.contains("http://phish.example/other"));

    for bad in [
        Reply::Status(500),
        Reply::Ok("<html>sorry</html>\n".into()),
        Reply::Silent,
    ] {
        s.set(bad);
        let started = Instant::now();
        let err = feed.refresh().await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "bounded by the time-out: {err}"
        );
        assert!(
            feed.contains("https://phish.example/login"),
            "kept after: {err}"
        );
        assert_eq!(feed.set().len(), 2);
    }
    assert_eq!((feed.fetches(), feed.failures()), (1, 3));

    // Over the size limit: refused, the old set kept.
    s.set(Reply::Ok("http://x.example/\n".repeat(100_000)));
    let err = feed.refresh().await.unwrap_err();
    assert!(err.contains("max_feed_size"), "{err}");
    assert!(feed.contains("https://phish.example/login"));

    // A chunked answer behind a redirect works.
    s.set(Reply::Redirect(format!("http://{}/moved.txt", s.addr)));
    let redirect_only = feed.refresh().await;
    assert!(
        redirect_only.is_err(),
        "redirect loop to itself ends: {redirect_only:?}"
    );
    s.set(Reply::Chunked("https://new.example/x\n".into()));
    assert_eq!(feed.refresh().await.unwrap(), 1);
    assert!(feed.contains("https://new.example/x"));
    assert!(!feed.contains("https://phish.example/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_feed_is_picked_up_without_a_restart() {
    let csv = |url: &str| {
        format!(
            "phish_id,url,phish_detail_url,online,target\n1,{url},http://d.example/1,yes,Other\n"
        )
    };
    let s = server(Reply::Ok(csv("https://first.example/p"))).await;
    let feeds = Arc::new(Feeds::new());
    let feed = feeds
        .feed(
            "phishing.phishtank_map",
            &format!("http://{}/data/online-valid.csv", s.addr),
            Format::PhishTank,
            Duration::from_millis(200),
            limits(),
        )
        .unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let runner = tokio::spawn(feeds.clone().run(Duration::from_millis(50), stop_rx));

    let wait_for = |url: &'static str| {
        let feed = feed.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !feed.contains(url) {
                assert!(Instant::now() < deadline, "{url} never loaded");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for("http://first.example/p").await;
    // The server fails for a while: the set stays.
    s.set(Reply::Status(500));
    let hits = s.hits();
    while s.hits() < hits + 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(feed.contains("http://first.example/p"));
    assert!(feed.failures() >= 1);
    // Then publishes a new list (JSON this time): picked up.
    s.set(Reply::Ok(
        r#"[{"url":"https://second.example/q","online":"yes"}]"#.into(),
    ));
    wait_for("https://second.example/q").await;
    assert!(!feed.contains("http://first.example/p"));

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(2), runner)
        .await
        .expect("the refresher stops")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_feeds_are_read_at_registration_and_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.txt");
    let feeds = Feeds::new();
    let missing = feeds.feed(
        "phishing.openphish_map",
        path.to_str().unwrap(),
        Format::OpenPhish,
        Duration::from_secs(60),
        limits(),
    );
    assert!(missing.err().unwrap().contains("feed.txt"));
    std::fs::write(&path, "https://a.example/x\n").unwrap();
    let feed = feeds
        .feed(
            "phishing.openphish_map",
            &format!("file://{}", path.display()),
            Format::OpenPhish,
            Duration::from_secs(60),
            limits(),
        )
        .unwrap();
    assert!(feed.contains("https://a.example/x"));
    std::fs::write(&path, "https://b.example/y\nhttps://c.example/z\n").unwrap();
    assert_eq!(feed.refresh().await.unwrap(), 2);
    assert!(feed.contains("https://c.example/z"));
    std::fs::write(&path, "").unwrap();
    assert!(feed.refresh().await.is_err());
    assert!(
        feed.contains("https://c.example/z"),
        "an emptied file keeps the last good set"
    );
    assert!(
        feeds
            .feed(
                "x",
                "/dev/zero",
                Format::OpenPhish,
                Duration::from_secs(1),
                limits()
            )
            .is_err()
    );
}
