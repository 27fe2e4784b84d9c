//! What hostile MIME costs the parse in memory and allocations, counted by
//! this test binary's allocator (one test, so nothing else allocates
//! meanwhile). Before the parse had limits, tiny header fields cost 30
//! times their size, empty parts 47 times, nested multiparts 18 times (in
//! 400k allocations), an address list 24 times; a message now costs at most
//! twice its size plus a constant, in a bounded number of allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
            PEAK.fetch_max(live, Relaxed);
            COUNT.fetch_add(1, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let live = if new_size >= layout.size() {
                LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size()
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed) - (layout.size() - new_size)
            };
            PEAK.fetch_max(live, Relaxed);
            COUNT.fetch_add(1, Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated above what was live before, and allocations made,
/// while `raw` is parsed and the result dropped.
fn cost(raw: &[u8]) -> (usize, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let count = COUNT.load(Relaxed);
    drop(std::hint::black_box(mxguard_message::parse(raw)));
    (PEAK.load(Relaxed) - base, COUNT.load(Relaxed) - count)
}

#[test]
fn hostile_mime_costs_a_bounded_multiple_of_its_size() {
    const MB: usize = 1 << 20;
    let mut shapes: Vec<(&str, Vec<u8>)> = Vec::new();

    let mut raw = b"a:b\n".repeat(2 * MB);
    raw.extend(b"\nx\n");
    shapes.push(("tiny header fields", raw));

    let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n".to_vec();
    raw.extend(b"--b\n\nx\n".repeat(MB));
    raw.extend(b"--b--\n");
    shapes.push(("empty parts", raw));

    let mut raw = Vec::new();
    for i in 0..100_000 {
        raw.extend(format!("Content-Type: multipart/mixed; boundary={i}\n\n--{i}\n").bytes());
    }
    raw.extend(b"\nx\n");
    for i in (0..100_000).rev() {
        raw.extend(format!("--{i}--\n").bytes());
    }
    shapes.push(("nested multiparts", raw));

    let mut raw = b"To: ".to_vec();
    raw.extend(b"a,".repeat(4 * MB));
    raw.extend(b"\n\nx\n");
    shapes.push(("one long address list", raw));

    let mut raw = Vec::new();
    for _ in 0..400 {
        raw.extend(b"References: ");
        raw.extend(b"<a>".repeat(7000));
        raw.push(b'\n');
    }
    raw.extend(b"\nx\n");
    shapes.push(("many id lists", raw));

    // An ordinary big message, for scale: a 6 MiB attachment.
    let mut raw = b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\
        Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
        .to_vec();
    raw.extend(b"QUJDRA==\n".repeat(MB));
    raw.extend(b"--b--\n");
    shapes.push(("a base64 attachment", raw));

    let mut over = Vec::new();
    for (name, raw) in &shapes {
        let (peak, allocations) = cost(raw);
        eprintln!(
            "{name}: {} bytes, peak {peak} bytes ({:.2}x), {allocations} allocations",
            raw.len(),
            peak as f64 / raw.len() as f64
        );
        if peak > 2 * raw.len() + 8 * MB || allocations > 100_000 {
            over.push(format!(
                "{name}: peak {peak} bytes, {allocations} allocations"
            ));
        }
    }
    assert!(over.is_empty(), "over the bound: {over:#?}");
}
