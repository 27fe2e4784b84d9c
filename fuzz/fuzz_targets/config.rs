//! The config loader: any text gives a config or a list of errors with
//! positions inside the text, never a panic, hang or stack overflow. The
//! checks' registered sections are read as the binary reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_core::config::Registry;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static SECTIONS: OnceLock<Registry> = OnceLock::new();
    let sections = SECTIONS.get_or_init(mxguard_scan::sections);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = mxguard_core::config::load_str(text, "fuzz.toml", sections) {
        assert!(!errors.is_empty());
        for e in &errors {
            let _ = e.to_string();
        }
    }
});
