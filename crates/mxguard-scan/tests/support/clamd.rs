//! A real clamd for tests, started on a temporary unix socket and a
//! loopback port with a signature database made at run time from ClamAV's
//! own test files (Debian's `clamav-testfiles`): an MD5 signature of
//! clam.exe and a body signature of the EICAR test string, so no official
//! database and no freshclam. Included by the scan crate's and the
//! binary's tests (`#[path]`), so there is one copy.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// ClamAV's test files, read at run time (never copied into the repo).
pub const TESTFILES: &str = "/usr/share/clamav-testfiles";
/// What clamd calls the two local signatures (it appends `.UNOFFICIAL`).
pub const EICAR_SIG: &str = "Local.Test.EICAR.NDB.UNOFFICIAL";
pub const CLAM_EXE_SIG: &str = "Local.Test.ClamExe.HDB.UNOFFICIAL";

/// The EICAR test string, put together here so that the source file
/// itself does not match it.
pub fn eicar() -> Vec<u8> {
    let mut s = String::from(r"X5O!P%@AP[4\PZX54(P^)7CC)7}$");
    s.push_str("EICAR-STANDARD-");
    s.push_str("ANTIVIRUS-TEST-FILE!$H+H*");
    s.into_bytes()
}

fn clamd_binary() -> Option<PathBuf> {
    ["/usr/sbin/clamd", "/usr/bin/clamd", "/usr/local/sbin/clamd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Whether clamd and ClamAV's test files are installed; says plainly that
/// the test skips when not.
pub fn available() -> bool {
    if clamd_binary().is_none() {
        eprintln!(
            "SKIPPED: clamd is not installed (apt-get install clamav-daemon); this test did not run"
        );
        return false;
    }
    if !Path::new(TESTFILES).join("clam.exe").exists() {
        eprintln!(
            "SKIPPED: ClamAV's test files are not installed (apt-get install clamav-testfiles); this test did not run"
        );
        return false;
    }
    true
}

// Each helper file stands alone in some test binaries, so each loads it.
#[allow(clippy::duplicate_mod)]
#[path = "../../../mxguard-core/tests/support/ports.rs"]
mod ports;

/// A loopback port nobody listens on (see `ports.rs`), from this helper's band.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    ports::free_port_in(26_000, &NEXT)
}

/// A running clamd; stopped when dropped.
pub struct Clamd {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub port: u16,
}

impl Clamd {
    /// Starts clamd with `StreamMaxLength` `stream_max` (e.g. "1M") and
    /// waits until it answers.
    pub fn start(stream_max: &str) -> Clamd {
        let dir = tempfile::Builder::new()
            .prefix("mxguard-clamd")
            .tempdir()
            .expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let exe = std::fs::read(Path::new(TESTFILES).join("clam.exe")).expect("read clam.exe");
        let md5 = Command::new("md5sum")
            .arg(Path::new(TESTFILES).join("clam.exe"))
            .output()
            .expect("md5sum");
        let md5 = String::from_utf8_lossy(&md5.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(md5.len(), 32, "md5sum of clam.exe");
        std::fs::write(
            db.join("local.hdb"),
            format!("{md5}:{}:Local.Test.ClamExe.HDB\n", exe.len()),
        )
        .unwrap();
        let hex: String = b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(
            db.join("local.ndb"),
            format!("Local.Test.EICAR.NDB:0:*:{hex}\n"),
        )
        .unwrap();
        let socket = dir.path().join("clamd.sock");
        let port = free_port();
        let conf = dir.path().join("clamd.conf");
        let mut f = std::fs::File::create(&conf).unwrap();
        write!(
            f,
            "DatabaseDirectory {db}\nLocalSocket {sock}\nTCPSocket {port}\nTCPAddr 127.0.0.1\n\
             Foreground yes\nLogFile {log}\nStreamMaxLength {stream_max}\n",
            db = db.display(),
            sock = socket.display(),
            log = dir.path().join("clamd.log").display(),
        )
        .unwrap();
        drop(f);
        // clamd drops to its `User` when started as root; as root without
        // `User` it stays root, which reads the temp dir either way.
        let child = Command::new(clamd_binary().expect("clamd"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start clamd");
        let mut clamd = Clamd {
            child: Some(child),
            dir,
            socket,
            port,
        };
        clamd.wait_ready();
        clamd
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let log =
                    std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default();
                panic!("clamd exited at start ({status}):\n{log}");
            }
            let ping = std::os::unix::net::UnixStream::connect(&self.socket).and_then(|mut s| {
                use std::io::Read;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"zPING\0")?;
                let mut b = [0u8; 16];
                let n = s.read(&mut b)?;
                Ok(b[..n].starts_with(b"PONG"))
            });
            let tcp = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if ping.unwrap_or(false) && tcp {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("clamd did not answer within 30 s");
    }

    /// `servers` for the unix socket.
    pub fn unix(&self) -> String {
        self.socket.display().to_string()
    }

    /// `servers` for the TCP port.
    pub fn tcp(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops clamd now (the socket file may stay behind, as after a crash).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A multipart message with one attachment, base64-encoded.
pub fn with_attachment(name: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b64 = String::new();
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(57) {
        for c in chunk.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            b64.push(T[(n >> 18) as usize & 63] as char);
            b64.push(T[(n >> 12) as usize & 63] as char);
            b64.push(if c.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            b64.push(if c.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        b64.push_str("\r\n");
    }
    format!(
        "From: sender@example.com\r\nTo: root@localhost\r\nSubject: the file you asked for\r\n\
         Message-ID: <av-test@example.com>\r\nDate: Mon, 7 Dec 2026 06:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XYZ\"\r\n\r\n\
         --XYZ\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n\
         --XYZ\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}--XYZ--\r\n"
    )
    .into_bytes()
}
