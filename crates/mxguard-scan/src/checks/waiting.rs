//! The part of a check that waits: on DNS, the store, a TCP or unix peer
//! (clamd), a feed set. Cheap CPU checks stay synchronous
//! ([`Check::run`](super::Check::run), called inline); a check that waits
//! also implements [`Waiting`] and hands it out through
//! [`Check::waiting`](super::Check::waiting).
//!
//! Life of a waiting check in one scan (see `docs/ARCHITECTURE.md`):
//! started together with every other waiting check whose dependencies are
//! done, once the inline checks have run; polled concurrently inside the
//! scan's own future (no task per check); bounded by its own
//! [`Waiting::timeout`] and by `[scan] scan_timeout` for the whole scan.
//! A check that does not finish in time gets its [`Waiting::timeout_symbol`]
//! instead of a result, and the rest of the verdict stands. A check that
//! panics (while its future is built or polled) is logged, counted and
//! skipped. Checks named in [`Waiting::after`] run first and their typed
//! values reach the dependant through [`Outputs`].

use crate::Task;
use mxguard_core::ScanResults;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future borrowing the task; no macro crate needed.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A check's typed result, readable by the checks that run after it.
pub type Value = Arc<dyn Any + Send + Sync>;

/// The asynchronous entry of a check.
pub trait Waiting: Send + Sync {
    /// How long this check may wait on one message.
    fn timeout(&self) -> Duration;

    /// The symbol a message gets when this check did not finish within its
    /// time-out or the scan's deadline, rspamd-like: `<CHECK>_TIMEOUT`, or
    /// the check's own DNS-failure symbol (`R_SPF_DNSFAIL`). It must be one
    /// of the check's [`symbols`](super::Check::symbols) (weight 0 unless
    /// configured), or the pipeline refuses to build.
    fn timeout_symbol(&self) -> &'static str;

    /// The names ([`Check::name`](super::Check::name)) of the checks this
    /// one runs after, to read their values. An unknown name or a cycle is
    /// a build error. Inline checks are always done before any waiting
    /// check starts, so naming one only documents the order.
    fn after(&self) -> &'static [&'static str] {
        &[]
    }

    /// The test. `deps` holds the values of the checks named in
    /// [`after`](Waiting::after) that finished with one (a dependency that
    /// timed out, panicked or gave no value is absent).
    fn run<'a>(&'a self, task: &'a Task<'_>, deps: Outputs) -> BoxFuture<'a, Output>;
}

/// What a waiting check found: its symbols, and a typed value for the
/// checks that run after it.
#[derive(Default)]
pub struct Output {
    pub results: ScanResults,
    pub value: Option<Value>,
}

impl Output {
    pub fn new(results: ScanResults) -> Output {
        Output {
            results,
            value: None,
        }
    }

    /// Attaches the value dependants read with [`Outputs::get`].
    pub fn with_value<T: Any + Send + Sync>(mut self, value: T) -> Output {
        self.value = Some(Arc::new(value));
        self
    }
}

/// The values of finished checks, by check name.
#[derive(Default, Clone)]
pub struct Outputs {
    values: HashMap<&'static str, Value>,
}

impl Outputs {
    pub(crate) fn insert(&mut self, check: &'static str, value: Value) {
        self.values.insert(check, value);
    }

    pub(crate) fn value(&self, check: &str) -> Option<Value> {
        self.values.get(check).cloned()
    }

    /// The value `check` produced, if it finished with a value of type `T`.
    pub fn get<T: Any + Send + Sync>(&self, check: &str) -> Option<&T> {
        self.values.get(check)?.downcast_ref::<T>()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
