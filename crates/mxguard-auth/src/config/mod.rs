//! The authentication config sections, owned here beside the code that
//! reads them: `[auth]`, `[spf]`, `[dkim]`, `[dmarc]`, `[arc_verify]`
//! (`verify.rs`), `[dkim_signing]`, `[arc]` (`signing.rs`) and
//! `[dmarc_reporting]` (`dmarc_report.rs`). [`register`] adds all eight to
//! a [`Registry`], so the loader reads and validates them with the rest of
//! the file; code reads one with `config.section::<T>()`.

mod dmarc_report;
mod signing;
mod verify;

pub use dmarc_report::{DmarcReportConfig, plain_address, plain_domain};
pub use signing::{
    ArcConfig, DEFAULT_SIGN_HEADERS, DkimSigningConfig, DomainKeys, KeySpec, Oversign,
    SignedHeader, UseDomain, keys_for, parse_sign_headers, with_maps,
};
pub use verify::{ArcVerifyConfig, AuthConfig, DkimConfig, DmarcActions, DmarcConfig, SpfConfig};

use mxguard_core::config::{Problems, Registry, Section};

/// Implements [`Section`] for a struct whose `validate` returns problems
/// keyed as the file writes them, so messages and positions stay those of
/// the file.
macro_rules! section {
    ($($ty:ty => $key:literal),* $(,)?) => {$(
        impl Section for $ty {
            const KEY: &'static str = $key;

            fn validate(&self, problems: &mut Problems) {
                problems.extend_file_keys(<$ty>::validate(self));
            }
        }
    )*};
}

section! {
    AuthConfig => "auth",
    SpfConfig => "spf",
    DkimConfig => "dkim",
    DmarcConfig => "dmarc",
    ArcVerifyConfig => "arc_verify",
    DkimSigningConfig => "dkim_signing",
    ArcConfig => "arc",
    DmarcReportConfig => "dmarc_reporting",
}

/// Adds the eight authentication sections to `registry`, in the order they
/// had as core fields, so an unknown top-level key's list of expected keys
/// reads as before.
pub fn register(registry: Registry) -> Registry {
    registry
        .with::<DkimSigningConfig>()
        .with::<ArcConfig>()
        .with::<DmarcReportConfig>()
        .with::<AuthConfig>()
        .with::<SpfConfig>()
        .with::<DkimConfig>()
        .with::<DmarcConfig>()
        .with::<ArcVerifyConfig>()
}

/// A DNS label (selector) or domain: letters, digits, `-`, `_` and dots,
/// no empty label, within DNS's lengths. One rule for every name a config
/// or `mxguard dkim keygen` takes.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
