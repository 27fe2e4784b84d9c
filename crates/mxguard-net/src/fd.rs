//! File descriptors: every connection holds one, so the servers' caps must
//! fit in the process's limit with room left for the rest.
//!
//! systemd and most shells start a service with a soft RLIMIT_NOFILE of
//! 1,024 and a much higher hard limit. `mxguard serve` raises the soft
//! limit to the hard one at start ([`raise_nofile_limit`]), then lowers
//! the servers' connection caps if together they would still not fit
//! ([`fit_caps`]), keeping [`RESERVE`] descriptors for the store, DNS
//! queries, map reloads, logs and the runtime. Past a cap, each server
//! says what it does; it never reaches "Too many open files".

use std::io;

/// Descriptors kept out of the connection caps: the store's file and
/// directory, one socket per DNS query in flight, map files being
/// reloaded, stdio and logs, the runtime's epoll and wake-up descriptors,
/// and the few connections the policy server serves past its cap while
/// the idle ones it closed to make room go.
pub const RESERVE: u64 = 256;

/// Linux's default `fs.nr_open`: the most a hard limit of "unlimited" can
/// be raised to.
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// The descriptor limit after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit now in force: how many descriptors the process may open.
    pub soft: u64,
    pub hard: u64,
    /// The soft limit before, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
// `rlim_t` is u64 here but not on every target: the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let (soft, hard) = get_nofile()?;
    let target = if hard == libc::RLIM_INFINITY as u64 {
        NR_OPEN_DEFAULT
    } else {
        hard
    };
    if soft >= target {
        return Ok(NofileLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    set_nofile(target, hard)?;
    let (now, hard) = get_nofile()?;
    Ok(NofileLimit {
        soft: now,
        hard,
        raised_from: Some(soft),
    })
}

/// The soft and hard RLIMIT_NOFILE.
#[allow(clippy::unnecessary_cast)]
pub fn get_nofile() -> io::Result<(u64, u64)> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((l.rlim_cur as u64, l.rlim_max as u64))
}

#[allow(clippy::unnecessary_cast)]
fn set_nofile(soft: u64, hard: u64) -> io::Result<()> {
    let l = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lowers connection caps (`(config key, cap)`) that together with
/// [`RESERVE`] would not fit in `limit` descriptors, in proportion, each
/// to at least 1. Returns one message per cap lowered, for the log.
pub fn fit_caps(limit: u64, caps: &mut [(&str, &mut usize)]) -> Vec<String> {
    let wanted: u64 = caps.iter().map(|(_, c)| **c as u64).sum();
    let room = limit.saturating_sub(RESERVE);
    if wanted <= room {
        return Vec::new();
    }
    let all: Vec<String> = caps.iter().map(|(k, c)| format!("{k} = {c}")).collect();
    let mut messages = Vec::new();
    for (key, cap) in caps.iter_mut() {
        let fitted = ((**cap as u64 * room) / wanted).max(1) as usize;
        if fitted < **cap {
            messages.push(format!(
                "{key} lowered from {} to {fitted}: {} would need more than the {limit} file \
                 descriptors this process may open ({RESERVE} are kept for the store, DNS and \
                 maps); raise the hard limit (LimitNOFILE= in the systemd unit, or ulimit -Hn) \
                 or lower the caps in the config",
                **cap,
                all.join(" and ")
            ));
            **cap = fitted;
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_that_fit_are_kept() {
        let (mut milter, mut policy) = (500, 500);
        let m = fit_caps(
            524_288,
            &mut [
                ("milter.max_sessions", &mut milter),
                ("policy.max_connections", &mut policy),
            ],
        );
        assert!(m.is_empty());
        assert_eq!((milter, policy), (500, 500));
    }

    #[test]
    fn caps_past_the_limit_are_lowered_together_with_the_reserve_kept() {
        let (mut milter, mut policy) = (500, 1000);
        let m = fit_caps(
            1024,
            &mut [
                ("milter.max_sessions", &mut milter),
                ("policy.max_connections", &mut policy),
            ],
        );
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(milter as u64 + policy as u64 + RESERVE <= 1024);
        assert_eq!((milter, policy), (256, 512), "in proportion");
        assert!(
            m[1].contains("policy.max_connections lowered from 1000 to 512"),
            "{}",
            m[1]
        );
        assert!(m[1].contains("LimitNOFILE"), "{}", m[1]);
        // A limit below the reserve still leaves each server one connection.
        let mut one = 10;
        fit_caps(100, &mut [("policy.max_connections", &mut one)]);
        assert_eq!(one, 1);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = get_nofile().unwrap();
        let low = hard.min(512);
        set_nofile(low, hard).unwrap();
        let l = raise_nofile_limit().unwrap();
        assert_eq!(l.soft, hard.min(NR_OPEN_DEFAULT).max(low));
        assert_eq!(l.raised_from, (l.soft > low).then_some(low));
    }
}
