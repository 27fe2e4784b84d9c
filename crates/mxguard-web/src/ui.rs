//! The web UI's files, built into the binary.

/// The UI file at `path` (relative, without the leading `/`): its
/// content type and bytes. `None` until the UI is built in.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let _ = path;
    None
}
