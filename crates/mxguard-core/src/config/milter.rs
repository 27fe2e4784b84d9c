//! `[milter]`: the milter front end's listener, limits and headers.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MilterConfig {
    /// `host:port` for TCP, or an absolute path for a unix socket.
    pub listen: String,
}

impl Default for MilterConfig {
    fn default() -> Self {
        MilterConfig {
            listen: "127.0.0.1:11336".to_string(),
        }
    }
}
