//! The store's error: a kind for callers that branch on it, and a message
//! for people that names the store and says what to do.

use std::fmt;

/// What went wrong, for callers that react differently (the CLI, say, when
/// `mxguard serve` already holds the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Another process holds the store (redb locks its file).
    InUse,
    /// The store could not be opened or created (permissions, a file from
    /// a newer mxguard).
    Open,
    /// Stored data does not decode: a damaged file or a foreign writer.
    Corrupt,
    /// The request cannot be applied: `incr` on a non-integer or past
    /// `i64`, a value too large. Nothing was written.
    Invalid,
    /// The backend failed (I/O, disk full, lost connection).
    Backend,
    /// The store has shut down (its writer stopped).
    Closed,
}

/// A store operation failed. The message names the store and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: ErrorKind,
    message: String,
}

impl StoreError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}
