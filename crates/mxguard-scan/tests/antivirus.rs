//! The antivirus check against a real clamd (started by the test with
//! ClamAV's test signatures): EICAR attached, clam.exe inside a zip, a
//! clean message, server fail-over, whole-message mode, the whitelist,
//! clamd's StreamMaxLength, clamd stopped (accept and tempfail) and a
//! clamd that accepts but never answers, each bounded by the time-out.
//! Then the X-Virus-Check header through the scan service's milter block.

#[path = "support/clamd.rs"]
mod clamd;

use clamd::{CLAM_EXE_SIG, Clamd, EICAR_SIG, TESTFILES, eicar, with_attachment};
use mxguard_core::config::{LoadedConfig, load_str};
use mxguard_core::shared::Shared;
use mxguard_core::{Action, Envelope, Verdict};
use mxguard_scan::{Pipeline, ScanInput, ScanService, Services};
use mxguard_store::{Counters, EmbeddedStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn envelope() -> Envelope {
    Envelope {
        ip: Some("192.0.2.25".parse().unwrap()),
        helo: Some("mail.example.com".into()),
        mail_from: Some("sender@example.com".into()),
        rcpts: vec!["root@localhost".into()],
        ..Default::default()
    }
}

/// A pipeline from `toml` (the antivirus section and whatever else).
fn pipeline(toml: &str) -> Pipeline {
    let config = load_str(toml, "test.toml", &mxguard_scan::sections())
        .unwrap_or_else(|e| panic!("config: {e:?}"));
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    match Pipeline::new(&loaded, &Services::default()) {
        Ok((p, warnings)) => {
            assert!(warnings.is_empty(), "{warnings:?}");
            p
        }
        Err(e) => panic!("pipeline: {e:?}"),
    }
}

fn av(servers: &str, extra: &str) -> String {
    format!(
        "[antivirus.clamav]\ntype = \"clamav\"\nservers = \"{servers}\"\nsymbol = \"CLAM_VIRUS\"\n\
         action = \"reject\"\nmessage = '${{SCANNER}}: virus found: \"${{VIRUS}}\"'\ntimeout = \"3s\"\n{extra}\n"
    )
}

async fn scan(p: &Pipeline, raw: &[u8]) -> Verdict {
    p.scan(&envelope(), raw).await
}

fn options(v: &Verdict, symbol: &str) -> Vec<String> {
    v.symbols
        .get(symbol)
        .map(|s| s.options.clone())
        .unwrap_or_default()
}

fn clean_message() -> Vec<u8> {
    with_attachment(
        "report.txt",
        "text/plain",
        b"Quarterly figures attached, nothing to see here.\r\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clamd_finds_viruses_and_passes_clean_mail() {
    if !clamd::available() {
        return;
    }
    let clamd = Clamd::start("1M");
    let eicar_mail = with_attachment("eicar.com", "application/octet-stream", &eicar());
    let zip = std::fs::read(Path::new(TESTFILES).join("clam.zip")).unwrap();
    let zip_mail = with_attachment("invoice.zip", "application/zip", &zip);

    for servers in [clamd.unix(), clamd.tcp()] {
        let p = pipeline(&av(&servers, ""));
        let v = scan(&p, &eicar_mail).await;
        assert_eq!(options(&v, "CLAM_VIRUS"), [EICAR_SIG], "{servers}: {v:?}");
        assert_eq!(v.action, Action::Reject, "{servers}");
        assert_eq!(
            v.smtp_message(),
            Some(format!("clamav: virus found: \"{EICAR_SIG}\"").as_str())
        );
        assert!(!v.symbols.contains_key("CLAM_VIRUS_FAIL"));

        let v = scan(&p, &zip_mail).await;
        assert_eq!(
            options(&v, "CLAM_VIRUS"),
            [CLAM_EXE_SIG],
            "{servers}: {v:?}"
        );
        assert_eq!(v.action, Action::Reject);

        let v = scan(&p, &clean_message()).await;
        assert!(!v.symbols.contains_key("CLAM_VIRUS"), "{v:?}");
        assert!(!v.symbols.contains_key("CLAM_VIRUS_FAIL"), "{v:?}");
        assert_ne!(v.action, Action::Reject);
    }

    // A dead server first in the list: the next one answers.
    let dead = clamd.dir.path().join("nobody-home.sock");
    let p = pipeline(&av(
        &format!("{}, {}", dead.display(), clamd.unix()),
        "retransmits = 1",
    ));
    for _ in 0..3 {
        let v = scan(&p, &eicar_mail).await;
        assert_eq!(options(&v, "CLAM_VIRUS"), [EICAR_SIG], "{v:?}");
        assert!(!v.symbols.contains_key("CLAM_VIRUS_FAIL"), "{v:?}");
    }

    // Without an action: the symbol and its weight, no forced reject.
    let toml = format!(
        "[antivirus.clamav]\nservers = [\"{}\"]\nscore = 4.5\n",
        clamd.unix()
    );
    let v = scan(&pipeline(&toml), &eicar_mail).await;
    assert_eq!(v.symbols["CLAM_VIRUS"].score, 4.5);
    assert!(v.forced_by.is_none(), "{v:?}");

    // The whole message in one stream: clamd finds the attachment itself.
    let p = pipeline(&av(&clamd.unix(), "scan_mime_parts = false"));
    assert_eq!(
        options(&scan(&p, &zip_mail).await, "CLAM_VIRUS"),
        [CLAM_EXE_SIG]
    );

    // EICAR in the message's text: sent only with scan_text_mime.
    let mut in_text = b"From: a@example.com\r\nSubject: t\r\n\r\n".to_vec();
    in_text.extend_from_slice(&eicar());
    in_text.extend_from_slice(b"\r\n");
    let v = scan(&pipeline(&av(&clamd.unix(), "")), &in_text).await;
    assert!(!v.symbols.contains_key("CLAM_VIRUS"), "{v:?}");
    let v = scan(
        &pipeline(&av(&clamd.unix(), "scan_text_mime = true")),
        &in_text,
    )
    .await;
    assert_eq!(options(&v, "CLAM_VIRUS"), [EICAR_SIG]);

    // Larger than max_size: not sent.
    let p = pipeline(&av(&clamd.unix(), "max_size = 10"));
    let v = scan(&p, &eicar_mail).await;
    assert!(
        v.symbols.is_empty() || !v.symbols.contains_key("CLAM_VIRUS"),
        "{v:?}"
    );

    // Whitelist: the client's network is not scanned; a signature name is
    // ignored.
    let wl = clamd.dir.path().join("antivirus.wl");
    std::fs::write(&wl, "# clients\n192.0.2.0/24\n").unwrap();
    let p = pipeline(&av(
        &clamd.unix(),
        &format!("whitelist = \"{}\"", wl.display()),
    ));
    assert!(
        !scan(&p, &eicar_mail)
            .await
            .symbols
            .contains_key("CLAM_VIRUS")
    );
    std::fs::write(&wl, format!("{EICAR_SIG}\n")).unwrap();
    let p = pipeline(&av(
        &clamd.unix(),
        &format!("whitelist = \"{}\"", wl.display()),
    ));
    assert!(
        !scan(&p, &eicar_mail)
            .await
            .symbols
            .contains_key("CLAM_VIRUS")
    );
    assert_eq!(
        options(&scan(&p, &zip_mail).await, "CLAM_VIRUS"),
        [CLAM_EXE_SIG]
    );

    // Beyond clamd's StreamMaxLength (1M here): a failure, not a crash,
    // and clamd still serves the next message.
    let big: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big_mail = with_attachment("big.bin", "application/octet-stream", &big);
    let p = pipeline(&av(&clamd.unix(), "on_failure = \"tempfail\""));
    let v = scan(&p, &big_mail).await;
    let fail = options(&v, "CLAM_VIRUS_FAIL");
    assert!(
        fail.len() == 1 && fail[0].contains("StreamMaxLength"),
        "{v:?}"
    );
    assert_eq!(v.action, Action::SoftReject);
    assert_eq!(
        options(&scan(&p, &eicar_mail).await, "CLAM_VIRUS"),
        [EICAR_SIG]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clamd_stopped_gives_the_fail_symbol_and_the_chosen_action() {
    if !clamd::available() {
        return;
    }
    let mut clamd = Clamd::start("25M");
    let eicar_mail = with_attachment("eicar.com", "application/octet-stream", &eicar());
    // Counted in the store, as the scan service's own counters are.
    let store_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(store_dir.path()).unwrap());
    let counted = {
        let config = load_str(
            &av(&format!("{}, {}", clamd.unix(), clamd.tcp()), ""),
            "test.toml",
            &mxguard_scan::sections(),
        )
        .unwrap();
        let loaded = LoadedConfig {
            config,
            ..Default::default()
        };
        let services = Services {
            store: Some(store.clone()),
            ..Services::default()
        };
        Pipeline::new(&loaded, &services).unwrap().0
    };
    let counters = Counters::new(store.clone());
    let accept = pipeline(&av(&format!("{}, {}", clamd.unix(), clamd.tcp()), ""));
    let tempfail = pipeline(&av(
        &format!("{}, {}", clamd.unix(), clamd.tcp()),
        "on_failure = \"tempfail\"",
    ));
    assert_eq!(
        options(&scan(&accept, &eicar_mail).await, "CLAM_VIRUS"),
        [EICAR_SIG]
    );
    assert!(
        scan(&counted, &eicar_mail)
            .await
            .symbols
            .contains_key("CLAM_VIRUS")
    );
    clamd.stop();
    assert!(
        scan(&counted, &eicar_mail)
            .await
            .symbols
            .contains_key("CLAM_VIRUS_FAIL")
    );
    // The counts are written behind the answer.
    let until = Instant::now() + Duration::from_secs(5);
    while counters.get("antivirus:fail").await.unwrap() < 1 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(counters.get("antivirus:virus").await.unwrap(), 1);
    assert_eq!(counters.get("antivirus:fail").await.unwrap(), 1);

    let started = Instant::now();
    let v = scan(&accept, &eicar_mail).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(v.symbols.contains_key("CLAM_VIRUS_FAIL"), "{v:?}");
    assert!(!v.symbols.contains_key("CLAM_VIRUS"));
    assert_ne!(v.action, Action::SoftReject);
    assert_ne!(v.action, Action::Reject);

    let v = scan(&tempfail, &eicar_mail).await;
    assert!(v.symbols.contains_key("CLAM_VIRUS_FAIL"), "{v:?}");
    assert_eq!(v.action, Action::SoftReject);
    assert_eq!(v.forced_by.as_deref(), Some("CLAM_VIRUS_FAIL"));
    assert!(
        v.smtp_message()
            .is_some_and(|m| m.contains("try again later"))
    );

    // A clean message while clamd is down fails the same way: unscanned.
    let v = scan(&tempfail, &clean_message()).await;
    assert_eq!(v.action, Action::SoftReject, "{v:?}");

    // No attachment to scan: nothing to fail.
    let plain = b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n";
    let v = scan(&tempfail, plain).await;
    assert!(!v.symbols.contains_key("CLAM_VIRUS_FAIL"), "{v:?}");
}

/// A clamd that accepts connections and reads, but never answers: the
/// scan ends at the check's time-out with the fail symbol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_clamd_is_bounded_by_the_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("silent.sock");
    let unix = tokio::net::UnixListener::bind(&sock).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let sink = |mut s: Box<dyn tokio::io::AsyncRead + Unpin + Send>| async move {
        let mut b = vec![0u8; 65536];
        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut b).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::spawn(async move {
        while let Ok((s, _)) = unix.accept().await {
            tokio::spawn(sink(Box::new(s)));
        }
    });
    tokio::spawn(async move {
        while let Ok((s, _)) = tcp.accept().await {
            tokio::spawn(sink(Box::new(s)));
        }
    });
    let mail = with_attachment("a.bin", "application/octet-stream", b"some bytes");
    for (servers, on_failure, action) in [
        (sock.display().to_string(), "accept", None),
        (
            format!("127.0.0.1:{port}"),
            "tempfail",
            Some(Action::SoftReject),
        ),
    ] {
        let toml = format!(
            "[antivirus.clamav]\nservers = \"{servers}\"\ntimeout = \"700ms\"\non_failure = \"{on_failure}\"\n"
        );
        let p = pipeline(&toml);
        let started = Instant::now();
        let v = scan(&p, &mail).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(650), "{took:?}");
        assert!(took < Duration::from_millis(1_150), "{took:?}");
        let fail = options(&v, "CLAM_VIRUS_FAIL");
        assert!(fail.len() == 1 && fail[0].contains("700 ms"), "{v:?}");
        assert!(!v.symbols.contains_key("ANTIVIRUS_TIMEOUT"), "{v:?}");
        if let Some(a) = action {
            assert_eq!(v.action, a);
        } else {
            assert_ne!(v.action, Action::SoftReject);
        }
        assert_eq!(p.check_timeouts(), 0, "the check stopped itself");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_virus_check_header_through_the_milter_block() {
    if !clamd::available() {
        return;
    }
    let clamd = Clamd::start("25M");
    // As the admin's rspamd setup writes it (x-virus routine).
    let toml = format!(
        "{}\n[milter.headers]\nvirus = true\nvirus_header = \"X-Virus-Check\"\nvirus_symbols = [\"CLAM_VIRUS\"]\n",
        av(&clamd.unix(), "")
    );
    let config = load_str(&toml, "test.toml", &mxguard_scan::sections()).unwrap();
    let loaded = LoadedConfig {
        config,
        ..Default::default()
    };
    let (p, _) = Pipeline::new(&loaded, &Services::default()).unwrap();
    let service = ScanService::new(Arc::new(Shared::new(p)), 2);
    let env = envelope();
    let zip = std::fs::read(Path::new(TESTFILES).join("clam.zip")).unwrap();
    let raw = with_attachment("invoice.zip", "application/zip", &zip);
    let out = service
        .scan_message(ScanInput {
            envelope: &env,
            raw: &raw,
            mta_name: Some("mx.test"),
        })
        .await;
    let header: Vec<_> = out
        .milter
        .add_headers
        .iter()
        .filter(|h| h.name == "X-Virus-Check")
        .map(|h| h.value.clone())
        .collect();
    assert_eq!(header, [CLAM_EXE_SIG], "{:?}", out.milter);

    let clean = clean_message();
    let out = service
        .scan_message(ScanInput {
            envelope: &env,
            raw: &clean,
            mta_name: Some("mx.test"),
        })
        .await;
    assert!(
        !out.milter
            .add_headers
            .iter()
            .any(|h| h.name == "X-Virus-Check"),
        "{:?}",
        out.milter
    );
}

#[test]
fn config_errors_name_the_key() {
    let bad =
        "[antivirus.clamav]\ntype = \"sophos\"\nservers = \"host:99999\"\naction = \"rejekt\"\n";
    let e = format!(
        "{:?}",
        load_str(bad, "mxguard.toml", &mxguard_scan::sections()).unwrap_err()
    );
    for needle in [
        "antivirus.clamav.type",
        "antivirus.clamav.servers",
        "antivirus.clamav.action",
        "mxguard.toml",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
    let empty = "[antivirus.clamav]\nsymbol = \"CLAM_VIRUS\"\n";
    let e = format!(
        "{:?}",
        load_str(empty, "mxguard.toml", &mxguard_scan::sections()).unwrap_err()
    );
    assert!(e.contains("no servers"), "{e}");
    // The default config has no antivirus and builds without clamd.
    let p = pipeline("");
    assert!(p.symbols().get("CLAM_VIRUS").is_none());
}

/// The real admin's rspamd `antivirus.conf` (../shared/testdata), key for
/// key as TOML under `[antivirus.clamav]`: every key they wrote is one of
/// ours and means the same.
#[test]
fn the_admins_rspamd_antivirus_conf_maps_key_for_key() {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let file = dir.join("user-setups/rspamd-clamav/rspamd/local.d/antivirus.conf");
    let Ok(ucl) = std::fs::read_to_string(&file) else {
        eprintln!(
            "SKIPPED: {} not found (set MXGUARD_TESTDATA); this test did not run",
            file.display()
        );
        return;
    };
    // `clamav { key = value; ... }`: the block's name is the section's.
    let (name, body) = ucl.split_once('{').expect("a scanner block");
    let mut toml = format!("[antivirus.{}]\n", name.trim());
    for line in body.lines() {
        let line = line.trim().trim_end_matches(';');
        if line.is_empty() || line == "}" || line.starts_with('#') {
            continue;
        }
        toml.push_str(line);
        toml.push('\n');
    }
    let config = load_str(&toml, "antivirus.toml", &mxguard_scan::sections())
        .unwrap_or_else(|e| panic!("{toml}\n{e:?}"));
    let av = &config
        .section::<mxguard_scan::checks::antivirus::AntivirusConfig>()
        .0["clamav"];
    assert_eq!(av.kind, "clamav");
    assert_eq!(av.symbol, "CLAM_VIRUS");
    assert_eq!(av.action.as_deref(), Some("reject"));
    assert_eq!(av.message, "${SCANNER}: virus found: \"${VIRUS}\"");
    assert_eq!(
        av.servers.parse().unwrap(),
        [mxguard_scan::checks::antivirus::clamd::Server::Unix(
            "/run/clamd.scan/clamd.sock".into()
        )]
    );
    assert_eq!(
        av.whitelist.as_ref().map(|w| w.get_ref().clone()),
        Some("/etc/rspamd/local.d/antivirus.wl".into())
    );
}
