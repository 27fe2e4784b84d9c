//! The order of the waiting checks (checked once, when the pipeline is
//! built) and their run in one scan: every check whose dependencies are
//! done is started, all of them are polled together inside the scan's
//! future, each bounded by its time-out and all by the scan's deadline.

use crate::Task;
use crate::checks::{Check, Output, Outputs};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mxguard_core::ScanResults;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::time::Instant;

/// The waiting checks of a pipeline and what each one waits for.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    /// Index into the pipeline's checks.
    check: usize,
    /// Indices into `nodes`.
    deps: Vec<usize>,
}

/// Failures the pipeline counts, never fatal.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    pub panics: AtomicU64,
    pub timeouts: AtomicU64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
}

enum Finish {
    Finished(Output),
    Panicked,
    TimedOut,
}

impl Plan {
    /// Orders the waiting checks. Errors name the checks: a dependency on
    /// a check that is not in the pipeline, a cycle, a time-out symbol the
    /// check does not declare.
    pub fn build(checks: &[Box<dyn Check>]) -> Result<Plan, Vec<String>> {
        let mut errors = Vec::new();
        let by_name: HashMap<&str, usize> = checks
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name(), i))
            .collect();
        let waiting: Vec<usize> = (0..checks.len())
            .filter(|&i| checks[i].waiting().is_some())
            .collect();
        let node_of: HashMap<usize, usize> =
            waiting.iter().enumerate().map(|(n, &c)| (c, n)).collect();
        let mut nodes = Vec::new();
        for &i in &waiting {
            let check = &checks[i];
            let Some(w) = check.waiting() else { continue };
            let symbol = w.timeout_symbol();
            if !check.symbols().iter().any(|d| d.name == symbol) {
                errors.push(format!(
                    "check `{}` gives `{symbol}` on time-out but does not declare that symbol",
                    check.name()
                ));
            }
            let mut deps = Vec::new();
            for &name in w.after() {
                match by_name.get(name) {
                    None => {
                        let mut known: Vec<&str> = by_name.keys().copied().collect();
                        known.sort_unstable();
                        errors.push(format!(
                            "check `{}` runs after `{name}`, which is not a check of this \
                             pipeline (enabled: {})",
                            check.name(),
                            known.join(", ")
                        ));
                    }
                    Some(d) => {
                        if let Some(&n) = node_of.get(d) {
                            deps.push(n);
                        }
                    }
                }
            }
            nodes.push(Node { check: i, deps });
        }
        // Kahn's order: what cannot be ordered is in or behind a cycle.
        let mut done = vec![false; nodes.len()];
        loop {
            let ready: Vec<usize> = (0..nodes.len())
                .filter(|&n| !done[n] && nodes[n].deps.iter().all(|&d| done[d]))
                .collect();
            if ready.is_empty() {
                break;
            }
            for n in ready {
                done[n] = true;
            }
        }
        let stuck: Vec<&str> = (0..nodes.len())
            .filter(|&n| !done[n])
            .map(|n| checks[nodes[n].check].name())
            .collect();
        if !stuck.is_empty() {
            errors.push(format!(
                "checks wait for each other in a cycle: {} (see each one's `after`)",
                stuck.join(", ")
            ));
        }
        if errors.is_empty() {
            Ok(Plan { nodes })
        } else {
            Err(errors)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Runs the waiting checks into `results`. At `deadline` every check
    /// not finished (or not started) gets its time-out symbol. Returns the
    /// typed values the checks produced.
    pub async fn run(
        &self,
        checks: &[Box<dyn Check>],
        task: &Task<'_>,
        results: &mut ScanResults,
        deadline: Instant,
        failures: &Failures,
    ) -> Outputs {
        let mut state = vec![State::Pending; self.nodes.len()];
        let mut outputs = Outputs::default();
        let mut running = FuturesUnordered::new();
        loop {
            for (n, node) in self.nodes.iter().enumerate() {
                if state[n] != State::Pending || node.deps.iter().any(|&d| state[d] != State::Done)
                {
                    continue;
                }
                let check = checks[node.check].as_ref();
                let Some(w) = check.waiting() else {
                    state[n] = State::Done;
                    continue;
                };
                let mut deps = Outputs::default();
                for &d in &node.deps {
                    let name = checks[self.nodes[d].check].name();
                    if let Some(v) = outputs.value(name) {
                        deps.insert(name, v);
                    }
                }
                // Building the future runs the check's code too.
                match catch_unwind(AssertUnwindSafe(|| w.run(task, deps))) {
                    Err(_) => {
                        panicked(check, failures);
                        state[n] = State::Done;
                    }
                    Ok(fut) => {
                        state[n] = State::Running;
                        let limit = w.timeout();
                        running.push(async move {
                            let end =
                                tokio::time::timeout(limit, AssertUnwindSafe(fut).catch_unwind());
                            let finish = match end.await {
                                Err(_) => Finish::TimedOut,
                                Ok(Err(_)) => Finish::Panicked,
                                Ok(Ok(out)) => Finish::Finished(out),
                            };
                            (n, finish)
                        });
                    }
                }
            }
            if running.is_empty() {
                break;
            }
            let Ok(Some((n, finish))) = tokio::time::timeout_at(deadline, running.next()).await
            else {
                break;
            };
            state[n] = State::Done;
            let check = checks[self.nodes[n].check].as_ref();
            match finish {
                Finish::Finished(out) => {
                    merge(results, out.results);
                    if let Some(v) = out.value {
                        outputs.insert(check.name(), v);
                    }
                }
                Finish::Panicked => panicked(check, failures),
                Finish::TimedOut => timed_out(check, results, failures, "its time-out"),
            }
        }
        drop(running);
        for (n, node) in self.nodes.iter().enumerate() {
            if state[n] != State::Done {
                let check = checks[node.check].as_ref();
                timed_out(
                    check,
                    results,
                    failures,
                    "the scan's deadline ([scan] scan_timeout)",
                );
            }
        }
        outputs
    }
}

fn panicked(check: &dyn Check, failures: &Failures) {
    failures.panics.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        check = check.name(),
        "check failed on this message and was skipped"
    );
}

fn timed_out(check: &dyn Check, results: &mut ScanResults, failures: &Failures, what: &str) {
    failures.timeouts.fetch_add(1, Ordering::Relaxed);
    if let Some(w) = check.waiting() {
        tracing::debug!(check = check.name(), "check did not finish within {what}");
        results.insert(w.timeout_symbol(), vec![]);
    }
}

/// Adds one check's findings to the scan's.
fn merge(results: &mut ScanResults, found: ScanResults) {
    for hit in found.hits {
        results.insert_scaled(&hit.name, hit.factor, hit.options);
    }
    if let Some(f) = found.forced {
        results.force(f.action, f.message, &f.symbol);
    }
}
