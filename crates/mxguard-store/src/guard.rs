//! Catching redb's panics.
//!
//! redb trusts the pages it reads: a page damaged outside redb (a bad
//! sector, a stray write) makes it panic (an index out of range, an
//! `unreachable!`) instead of returning `Corrupted`. The store runs every
//! redb call on damaged-or-not data under [`catch`], so such a panic becomes
//! an error for that one request, never a dropped connection or a dead
//! writer thread.
//!
//! The default panic hook would print a message (and maybe a backtrace) to
//! stderr for each of them, one line per request. While a guarded call runs,
//! the hook installed here keeps the message for the caller instead, who
//! logs once per burst; panics anywhere else go to the previous hook as
//! before.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, PanicHookInfo, catch_unwind};
use std::sync::Once;

thread_local! {
    /// Depth of guarded calls on this thread.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// The last guarded panic's message and location.
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Installs the hook (once per process). Called when a store opens.
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
            if GUARDED.with(Cell::get) > 0 {
                LAST.with(|l| *l.borrow_mut() = Some(describe(info)));
            } else {
                previous(info);
            }
        }));
    });
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    match info.location() {
        Some(l) => format!("{message} at {}:{}", l.file(), l.line()),
        None => message,
    }
}

/// Runs `f`; a panic inside it becomes `Err` with its message and location.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.map_err(|payload| {
        LAST.with(|l| l.borrow_mut().take()).unwrap_or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_is_an_error_with_its_location() {
        install_hook();
        let e = catch(|| -> u32 { panic!("page out of range") }).unwrap_err();
        assert!(e.starts_with("page out of range at "), "{e}");
        assert!(e.contains("guard.rs"), "{e}");
        assert_eq!(catch(|| 7), Ok(7));
    }
}
