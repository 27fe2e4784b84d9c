//! Loopback ports for the real peers tests start (Redis, clamd, Postfix,
//! chromedriver, serve). One file, included with `#[path]` by each crate's
//! test support; each includer passes its own band, as its counter is its
//! own and one test binary may include two of them.

use std::sync::atomic::{AtomicU32, Ordering};

/// A loopback TCP port nobody listens on, from `band` (a base such as
/// 20_000; the next 3,000 ports are the band). Taken below Linux's
/// ephemeral range (32768–60999), so the source port of another test's
/// outgoing connection can never claim it between this call and the bind
/// of the peer it is for; never handed out twice through one `next`
/// (tests run on parallel threads); the start depends on the pid so test
/// binaries run side by side by hand do not collide either.
pub fn free_port_in(band: u32, next: &AtomicU32) -> u16 {
    let start = band + (std::process::id() % 100) * 25;
    let _ = next.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = next.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "free_port: no free port left below 32768");
        let port = port as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
