//! The config loader: any text gives a config or a list of errors with
//! positions inside the text, never a panic, hang or stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = mxguard_core::config::load_str(text, "fuzz.toml", &mxguard_scan::sections()) {
        assert!(!errors.is_empty());
        for e in &errors {
            let _ = e.to_string();
        }
    }
});
