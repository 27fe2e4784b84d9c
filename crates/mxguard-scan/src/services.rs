//! What checks may use besides the message, handed to them when the
//! pipeline is built ([`build_checks`](crate::checks::build_checks)), never
//! reached through globals: so a test builds a pipeline over a silent DNS
//! server or a manual clock, and a reload keeps the daemon's one resolver,
//! store and model.

use mxguard_learn::ModelHandle;
use mxguard_store::{Clock, Store, SystemClock};
use std::sync::Arc;

#[derive(Clone)]
pub struct Services {
    /// The daemon's one DNS resolver (`[dns]`); `None` where nothing may
    /// resolve (`config check`, some tests): checks that need it stay silent.
    pub resolver: Option<Arc<mxguard_dns::Dns>>,
    /// The store (greylisting, reputation); `None` for `mxguard scan`
    /// without a data directory.
    pub store: Option<Arc<dyn Store>>,
    /// The classifier's model, loaded and refreshed by the binary; without
    /// it BAYES_* stay silent.
    pub classifier: Option<Arc<ModelHandle>>,
    /// Where time-based decisions read the time.
    pub clock: Arc<dyn Clock>,
    /// The URL feeds (openphish, phishtank) the checks read: one registry
    /// for the daemon's life, so a reload keeps each feed's set; `serve`
    /// refreshes them ([`mxguard_feeds::Feeds::run`]).
    pub feeds: Arc<mxguard_feeds::Feeds>,
}

impl Default for Services {
    fn default() -> Self {
        Services {
            resolver: None,
            store: None,
            classifier: None,
            clock: Arc::new(SystemClock),
            feeds: Arc::new(mxguard_feeds::Feeds::new()),
        }
    }
}
