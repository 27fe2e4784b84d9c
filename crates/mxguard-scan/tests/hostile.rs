//! Hostile input never panics the pipeline.

use mxguard_core::Envelope;
use mxguard_scan::Pipeline;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_scan_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (p, _) = Pipeline::from_config(Default::default()).unwrap();
        let v = p.scan_blocking(&Envelope::default(), &raw);
        prop_assert!(v.score.is_finite());
        prop_assert_eq!(p.check_failures(), 0);
    }

    #[test]
    fn mime_shaped_garbage_scans_without_panic(
        boundary in "[a-z]{1,8}",
        parts in proptest::collection::vec("[ -~\r\n]{0,200}", 0..8),
        nested in 0usize..40,
    ) {
        let mut raw = String::new();
        for _ in 0..nested {
            raw.push_str(&format!("Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n--{boundary}\r\n"));
        }
        for p in &parts {
            raw.push_str(&format!("--{boundary}\r\nContent-Type: text/html; charset=bogus\r\nContent-Transfer-Encoding: base64\r\n\r\n{p}\r\n"));
        }
        let (p, _) = Pipeline::from_config(Default::default()).unwrap();
        let v = p.scan_blocking(&Envelope::default(), raw.as_bytes());
        prop_assert!(v.score.is_finite());
        prop_assert_eq!(p.check_failures(), 0);
    }
}

/// Issue 11's reproduction: 33,000 nested messages in 949 KB overflowed the
/// stack while the parsed tree was dropped, which aborts the process (the
/// milter and the policy server with it). Scanned on a thread with the
/// 2 MiB stack of the milter's blocking pool; the parse stops at its depth
/// limit and says so.
#[test]
fn depth_33000_message_scans_on_a_small_stack() {
    let verdict = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let mut raw = b"Content-Type:message/rfc822\n\n".repeat(33_000);
            raw.extend(b"x\n");
            let (p, _) = Pipeline::from_config(Default::default()).unwrap();
            let v = p.scan_blocking(&Envelope::default(), &raw);
            assert_eq!(p.check_failures(), 0);
            v
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(
        verdict.symbols.contains_key("MIME_TOO_DEEP"),
        "{:?}",
        verdict.symbols.keys()
    );
}

/// Many parts, many header fields and a huge address list: scanned, with
/// the symbol of the limit each reached.
#[test]
fn limits_of_the_parse_have_symbols() {
    let (p, _) = Pipeline::from_config(Default::default()).unwrap();
    let mut parts = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
    parts.extend(b"--b\n\nx\n".repeat(100_000));
    let mut headers = b"a:b\n".repeat(100_000);
    headers.extend(b"\nx\n");
    let mut to = b"To: ".to_vec();
    to.extend(b"a,".repeat(1 << 20));
    to.extend(b"\n\nx\n");
    for (raw, symbol) in [
        (parts, "MIME_TOO_MANY_PARTS"),
        (headers, "MIME_TOO_MANY_HEADERS"),
        (to, "MIME_HEADERS_TOO_LONG"),
    ] {
        let v = p.scan_blocking(&Envelope::default(), &raw);
        assert!(
            v.symbols.contains_key(symbol),
            "{symbol}: {:?}",
            v.symbols.keys()
        );
    }
}
