//! A real DNS server for the tests: dnsmasq on a free loopback port,
//! serving the records given and NXDOMAIN for everything else.

#[allow(unused_imports)] // each test binary uses its own part of common
pub use super::dnsmasq_support::{Dnsmasq, dnsmasq};

/// A dnsmasq `txt-record` line, the value split into 255-byte strings.
pub fn txt_record(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("txt-record={name},{}\n", parts.join(","))
}
