//! The test data the integration tests read: $MXGUARD_TESTDATA, or
//! ../shared/testdata beside the repository.
#![allow(dead_code)] // each test binary uses some of these

use std::path::{Path, PathBuf};

pub fn testdata() -> PathBuf {
    std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/testdata"
            ))
        })
}

/// Every file under the test data's `subs`, in a stable order (none when
/// absent).
pub fn files(root: &Path, subs: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = subs.iter().rev().map(|s| root.join(s)).collect();
    while let Some(p) = dirs.pop() {
        if p.is_file() {
            out.push(p);
        } else if let Ok(entries) = std::fs::read_dir(&p) {
            let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            entries.sort_by(|a, b| b.cmp(a));
            dirs.extend(entries);
        }
    }
    out
}
