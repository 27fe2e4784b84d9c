//! Hostile input never panics the pipeline.

use mxguard_core::Envelope;
use mxguard_scan::Pipeline;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_scan_without_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (p, _) = Pipeline::from_config(Default::default()).unwrap();
        let v = p.scan(&Envelope::default(), &raw);
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
        let v = p.scan(&Envelope::default(), raw.as_bytes());
        prop_assert!(v.score.is_finite());
        prop_assert_eq!(p.check_failures(), 0);
    }
}
