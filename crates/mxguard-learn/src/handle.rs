//! The scanners' view of the model: an `Arc` swapped in when a newer model
//! is loaded, so a scan never waits for the store or for a learner.

use crate::Model;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Shared by every scanner of a process. Cheap to read: [`current`] is a
/// read lock and an `Arc` clone; the store is read only by
/// [`refresh`](crate::persist::refresh), which the binary calls at most
/// every `[classifier] refresh_interval`.
///
/// [`current`]: ModelHandle::current
#[derive(Debug, Default)]
pub struct ModelHandle {
    model: RwLock<Option<Arc<Model>>>,
    /// The store's model version this model came from (-1: none).
    version: AtomicI64,
}

impl ModelHandle {
    /// A handle with no model yet: the classifier is silent.
    pub fn empty() -> Arc<ModelHandle> {
        Arc::new(ModelHandle {
            model: RwLock::new(None),
            version: AtomicI64::new(-1),
        })
    }

    /// The model to score with, if any.
    pub fn current(&self) -> Option<Arc<Model>> {
        self.model.read().ok().and_then(|m| m.clone())
    }

    /// The store version of the current model (-1 when none was loaded).
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::Acquire)
    }

    /// Installs a model (from the store, or from a learner in this process).
    pub fn set(&self, model: Arc<Model>, version: i64) {
        if let Ok(mut m) = self.model.write() {
            *m = Some(model);
            self.version.store(version, Ordering::Release);
        }
    }
}
