//! Shared helpers for the binary's integration tests.
#![allow(dead_code)]

/// One clamd helper for every crate's tests: the scan crate's.
#[path = "../../../mxguard-scan/tests/support/clamd.rs"]
pub mod clamd;
pub mod dkimpy;
pub mod dns;
/// One dnsmasq helper for every crate's tests: the DNS crate's.
#[path = "../../../mxguard-dns/tests/support/dnsmasq.rs"]
mod dnsmasq_support;
pub mod postfix;

use std::path::PathBuf;
use std::process::{Command, Output};

/// Third-party test data: `MXGUARD_TESTDATA`, default `../shared/testdata`
/// beside the repository. `None` (with a plain message) when absent.
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: third-party test data not found at {} (set MXGUARD_TESTDATA); this test did not run",
            dir.display()
        );
        None
    }
}

pub fn mxguard(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mxguard"));
    cmd.args(args)
        .env("MXGUARD_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run mxguard");
    let mut pipe = child.stdin.take().expect("stdin");
    if let Some(data) = stdin {
        // mxguard may exit before reading it all (e.g. a config error is
        // found first): a broken pipe is its answer, not a test failure.
        if let Err(e) = pipe.write_all(data) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
    }
    drop(pipe);
    child.wait_with_output().expect("wait for mxguard")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
