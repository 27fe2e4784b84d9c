//! Giving memory back after a burst of connections.
//!
//! glibc's malloc keeps what many threads freed in its arenas: only the
//! top of each heap is returned to the system by itself, so one live
//! allocation above a freed region keeps all of it resident. Measured on
//! the policy server: 100 connections holding 2 MiB requests took RSS
//! from 14 to 379 MiB, and 278 MiB stayed after they closed; a
//! `malloc_trim(0)` brought it back to 15 MiB. So a server calls
//! [`Trimmer::closed`] as connections end, and when their number has
//! fallen to half of its peak or less, the freed pages are released.

use std::sync::Arc;
use std::time::Duration;

/// A drop smaller than this is not worth a trim.
const MIN_DROP: usize = 32;
/// Trims at most this often; a trim asked for meanwhile runs after it.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Decides when to give freed memory back, from the number of open
/// connections; the release itself is [`release_soon`]'s (one thread, at
/// most once per [`MIN_INTERVAL`]).
pub struct Trimmer {
    peak: usize,
}

impl Trimmer {
    pub fn start() -> Trimmer {
        Trimmer { peak: 0 }
    }

    /// A connection opened; `open` are open now.
    pub fn opened(&mut self, open: usize) {
        self.peak = self.peak.max(open);
    }

    /// A connection ended; `open` are open now. Once they have fallen to
    /// half their peak (by [`MIN_DROP`] at least), memory is released.
    /// Returns whether a release was asked for.
    pub fn closed(&mut self, open: usize) -> bool {
        if !trim_due(self.peak, open) {
            return false;
        }
        self.peak = open;
        release_soon();
        true
    }
}

fn trim_due(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= MIN_DROP && open * 2 <= peak
}

/// Asks for the memory freed by a large piece of work (the scan of a big
/// message) to be given back soon. Returns at once: one thread of the
/// process does the release, at most once per [`MIN_INTERVAL`], and a
/// request made meanwhile is served after it, so the last large scan of a
/// burst is always followed by a release.
pub fn release_soon() {
    /// Whether a release is asked for, and the release thread's wake-up.
    type Asked = Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>;
    static TRIM: std::sync::OnceLock<Option<Asked>> = std::sync::OnceLock::new();
    let trim = TRIM.get_or_init(|| {
        let shared = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let waiting = shared.clone();
        std::thread::Builder::new()
            .name("mxguard-trim".into())
            .spawn(move || {
                let (asked, wake) = &*waiting;
                loop {
                    {
                        let mut a = asked
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        while !*a {
                            a = wake
                                .wait(a)
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                        }
                        *a = false;
                    }
                    release_free_memory();
                    std::thread::sleep(MIN_INTERVAL);
                }
            })
            .ok()
            .map(|_| shared)
    });
    if let Some(shared) = trim {
        let (asked, wake) = &**shared;
        *asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        wake.notify_one();
    }
}

/// Caps glibc's malloc arenas at two per core, before the server's threads
/// start. glibc gives each new thread that meets a locked arena one of its
/// own, up to eight per core, and each keeps its own high-water mark:
/// measured under 200 milter sessions of corpus-dev, RSS climbed from 146
/// to 173 MiB over three minutes with the default (16 arenas on 2 cores)
/// and held at 56–66 MiB with 4 (docs/BENCHMARKS.md, soak). A no-op with
/// other allocators, and when `MALLOC_ARENA_MAX` is set (the admin's
/// choice wins).
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = i32::try_from(cores.saturating_mul(2)).unwrap_or(i32::MAX);
        // SAFETY: mallopt only sets a malloc tunable; M_ARENA_MAX is read
        // when a thread next needs an arena.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// Returns the memory freed in glibc's arenas to the system (a no-op with
/// other allocators).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases malloc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_connections_fall_to_half_their_peak() {
        let mut t = Trimmer::start();
        for open in 1..=100 {
            t.opened(open);
        }
        // Connections close one by one: a trim at half the peak, another
        // once 32 more have gone.
        let trims: Vec<usize> = (0..100).rev().filter(|&open| t.closed(open)).collect();
        assert_eq!(trims, vec![50, 18]);
        // Steady traffic of a few connections never trims.
        let mut t = Trimmer::start();
        for _ in 0..1000 {
            t.opened(5);
            assert!(!t.closed(4));
        }
    }
}
