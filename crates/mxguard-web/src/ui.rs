//! The web UI's files, built into the binary.
