//! The store on a disk that fills up, as issue 11 found it: every later
//! write failed forever ("Previous I/O error occurred. Please close and
//! re-open the database") even after space was freed, with an ERROR line
//! per request. Now writes fail fast while the disk is full, reads keep
//! working, and writing works again by itself once space is freed; the log
//! has one line when it starts failing and one with the count when it
//! works again.
//!
//! With a simulated disk ([`DiskFaults`]) always, and on a real full tmpfs
//! when the test runs as root.

use mxguard_store::{DiskFaults, EmbeddedStore, ErrorKind, Options, Store, StoreError};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Every log line of this test binary (one global subscriber: the store
/// logs from its writer thread).
fn log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Capture(buf))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
}

struct Capture(&'static Mutex<Vec<u8>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines about the store in `dir` containing `text`.
fn lines_with(dir: &Path, text: &str) -> Vec<String> {
    let all = String::from_utf8_lossy(&log().lock().unwrap()).into_owned();
    let dir = dir.display().to_string();
    all.lines()
        .filter(|l| l.contains(&dir) && l.contains(text))
        .map(str::to_string)
        .collect()
}

fn fast_retries(faults: Option<Arc<DiskFaults>>) -> Options {
    Options {
        retry_first: Duration::from_millis(5),
        retry_max: Duration::from_millis(50),
        recovery_quiet: Duration::from_secs(5),
        faults,
        ..Options::default()
    }
}

/// Writes new keys (new pages) until one fails; returns its error.
async fn write_until_refused(s: &EmbeddedStore, tag: &str) -> StoreError {
    for i in 0..20_000 {
        if let Err(e) = s.set(&format!("{tag}:{i}"), &[0x5a; 1000], None).await {
            return e;
        }
    }
    panic!("the full disk never refused a write");
}

fn assert_disk_full_message(e: &StoreError, dir: &Path) {
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    let m = e.to_string();
    assert!(
        m.contains(&dir.join("mxguard.redb").display().to_string()),
        "names the file: {m}"
    );
    assert!(
        m.contains(&format!("free space on the disk holding {}", dir.display())),
        "says what to do: {m}"
    );
}

/// Polls until writes work again (the store retries by itself).
async fn until_writable(s: &EmbeddedStore) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = s.writable() {
        assert!(Instant::now() < deadline, "writes never worked again: {e}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Polls until `n` lines with `text` were logged for `dir`.
async fn until_logged(dir: &Path, text: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines_with(dir, text).len() < n {
        assert!(Instant::now() < deadline, "never logged {n} times: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_fast_on_a_full_disk_and_work_again_once_space_is_freed() {
    log();
    let dir = tempfile::tempdir().unwrap();
    let faults = DiskFaults::new();
    let s = EmbeddedStore::open_with(dir.path(), fast_retries(Some(faults.clone()))).unwrap();
    for i in 0..200 {
        s.set(&format!("before:{i}"), format!("{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    assert!(s.writable().is_ok());

    faults.fill();
    let e = write_until_refused(&s, "filling").await;
    assert_disk_full_message(&e, dir.path());
    assert!(faults.refused_writes() > 0);
    assert_disk_full_message(&s.writable().unwrap_err(), dir.path());
    // While full: writes fail at once (or after a retry that failed too;
    // one may land in space the file already had), never hang, and say
    // the same; reads keep working.
    let mut refused = 1;
    let mut i = 0;
    while refused < 20 {
        i += 1;
        assert!(i < 5_000, "the full disk took {i} writes");
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            s.set(&format!("while-full:{i}"), &[1; 1000], None),
        )
        .await
        .expect("a write on a full disk does not hang");
        if let Err(e) = r {
            assert_disk_full_message(&e, dir.path());
            refused += 1;
        }
    }
    for i in 0..200 {
        assert_eq!(
            s.get(&format!("before:{i}")).await.unwrap(),
            Some(format!("{i}").into_bytes())
        );
    }

    faults.free();
    until_writable(&s).await;
    s.set("after", b"1", None).await.unwrap();
    assert_eq!(s.get("after").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(s.get("before:7").await.unwrap().as_deref(), Some(&b"7"[..]));
    until_logged(dir.path(), "writes work again", 1).await;

    // One line when writing started failing, one with the count when it
    // worked again; not one per failed write.
    let failing = lines_with(dir.path(), "cannot write the store");
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert!(failing[0].contains("ERROR"), "{}", failing[0]);
    let again = lines_with(dir.path(), "writes work again");
    assert_eq!(again.len(), 1, "{again:#?}");
    let count: u64 = again[0]
        .split("writes work again; ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {}", again[0]));
    assert!(
        count >= refused,
        "{count} failed writes counted, {refused} seen: {}",
        again[0]
    );

    // A second burst is logged again.
    faults.fill();
    write_until_refused(&s, "second").await;
    faults.free();
    until_writable(&s).await;
    until_logged(dir.path(), "writes work again", 2).await;
    assert_eq!(lines_with(dir.path(), "cannot write the store").len(), 2);
    assert_eq!(lines_with(dir.path(), "writes work again").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_opens_on_a_full_disk_and_recovers_without_traffic() {
    log();
    let dir = tempfile::tempdir().unwrap();
    let faults = DiskFaults::new();
    {
        let s = EmbeddedStore::open(dir.path()).unwrap();
        s.set("kept", b"1", None).await.unwrap();
    }
    // A daemon starting on a disk that is already full.
    faults.fill();
    let s = EmbeddedStore::open_with(dir.path(), fast_retries(Some(faults.clone())))
        .expect("opening an existing store needs no new space");
    assert_eq!(s.get("kept").await.unwrap().as_deref(), Some(&b"1"[..]));
    let e = write_until_refused(&s, "k").await;
    assert_disk_full_message(&e, dir.path());
    // Space is freed while nothing writes: the store finds out by itself.
    faults.free();
    until_writable(&s).await;
    s.set("later", b"2", None).await.unwrap();
}

/// A real small filesystem: a 4 MiB tmpfs, filled with a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_full_tmpfs() {
    log();
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mount = tempfile::tempdir().unwrap();
    let Some(_mounted) = Tmpfs::mount(mount.path(), "4m") else {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    };
    let dir = mount.path().join("data");
    let options = fast_retries(None);
    let s = EmbeddedStore::open_with(&dir, options.clone()).unwrap();
    for i in 0..100 {
        s.set(&format!("before:{i}"), b"v", None).await.unwrap();
    }
    // Fill what is left.
    let filler = mount.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 64 * 1024]).is_ok() {}
        let _ = f.sync_all();
    }
    let e = write_until_refused(&s, "filling").await;
    assert_disk_full_message(&e, &dir);
    assert_eq!(s.get("before:5").await.unwrap().as_deref(), Some(&b"v"[..]));

    // Restarting on the full disk works too.
    drop(s);
    let s = EmbeddedStore::open_with(&dir, options).expect("opens on a full disk");
    assert_eq!(s.get("before:6").await.unwrap().as_deref(), Some(&b"v"[..]));
    let e = write_until_refused(&s, "still-full").await;
    assert_disk_full_message(&e, &dir);

    std::fs::remove_file(&filler).unwrap();
    until_writable(&s).await;
    s.set("after", b"1", None).await.unwrap();
    assert_eq!(s.get("after").await.unwrap().as_deref(), Some(&b"1"[..]));
    drop(s);
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Relaxed writes on a disk that fills up: they are acknowledged from
/// memory until a commit must reach the disk; when the durable commit owed
/// for them (the window's flush) is refused, they are lost as in a crash,
/// the log says so, and the store goes on as after any refused write:
/// durable data stays readable and writes work again once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relaxed_writes_lost_to_a_full_disk_are_logged_and_the_store_recovers() {
    log();
    let dir = tempfile::tempdir().unwrap();
    let faults = DiskFaults::new();
    let s = EmbeddedStore::open_with(
        dir.path(),
        Options {
            relaxed_window: Duration::from_millis(20),
            ..fast_retries(Some(faults.clone()))
        },
    )
    .unwrap();
    s.set("durable", b"1", None).await.unwrap();
    faults.fill();
    // Relaxed writes of new pages until the disk is asked for room (the
    // window's flush, or redb writing its cache out).
    let mut refused = false;
    for i in 0..20_000 {
        let key = format!("relaxed:{i}");
        if s.set_many(
            &[(&key, &[0x5a; 1000])],
            None,
            mxguard_store::Durability::Relaxed,
        )
        .await
        .is_err()
        {
            refused = true;
            break;
        }
        if s.writable().is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the full disk never refused");
    until_logged(dir.path(), "reopening loses the relaxed writes", 1).await;
    // Reads work again once the writer has reopened the file.
    let deadline = Instant::now() + Duration::from_secs(30);
    let durable = loop {
        match s.get("durable").await {
            Ok(v) => break v,
            Err(e) => assert!(Instant::now() < deadline, "reads never worked: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(durable.as_deref(), Some(&b"1"[..]));
    faults.free();
    until_writable(&s).await;
    s.set("after", b"1", None).await.unwrap();
    assert_eq!(s.get("after").await.unwrap().as_deref(), Some(&b"1"[..]));
}
