//! The shared corpora's messages for the agreement tests (a rewritten
//! matcher against its reference on every real message), read from
//! `MXGUARD_TESTDATA` (default ../shared/testdata); a missing set is said
//! plainly and skipped.

use std::path::Path;

/// Calls `each` with every message of corpus-dev (ham, spam) and
/// phishing-dev.
pub(crate) fn for_each_message(mut each: impl FnMut(&Path, &[u8])) {
    let data = std::env::var("MXGUARD_TESTDATA").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata").into()
    });
    for dir in ["corpus-dev/ham", "corpus-dev/spam", "phishing-dev/spam"] {
        let Ok(entries) = std::fs::read_dir(Path::new(&data).join(dir)) else {
            eprintln!("skipped: {data}/{dir} not found (set MXGUARD_TESTDATA)");
            continue;
        };
        for e in entries.flatten() {
            if let Ok(raw) = std::fs::read(e.path()) {
                each(&e.path(), &raw);
            }
        }
    }
}
