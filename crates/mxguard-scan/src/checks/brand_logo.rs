//! A brand's logo hotlinked from a stranger's site. A lure that signs as
//! a brand (FROM_NAME_BRAND_MISMATCH) shows that brand's logo, and its
//! sender has no copy of its own: it links the picture wherever a search
//! found it (a partner's WordPress uploads, a shop's CDN, a press page).
//! The brand's own mail serves its logo from its own or its mailing
//! provider's hosts under its own name, and passes the From check anyway.
//!
//! So: From's display name borrows a brand (FROM_NAME_BRAND_MISMATCH of
//! [`super::impersonation`], which runs before this check and gives the
//! brand as its first option; with `[impersonation]` off this one finds
//! nothing), and an HTML picture's path names the same brand from a host
//! that carries none of the brand's tokens, by the same brand list and
//! matching. Only the few messages that borrow a brand are read further.

use super::Check;
use super::impersonation::{Impersonation, ImpersonationConfig};
use crate::Task;
use mxguard_core::config::{Config, Section};
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "phishing";

/// URLs looked at per message.
const MAX_URLS: usize = 256;

/// Bytes of a URL's path read for a brand's name.
const MAX_PATH: usize = 256;

/// Extensions of pictures.
const PICTURES: &[&str] = &["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"];

/// `[brand_logo]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrandLogoConfig {
    pub enabled: bool,
}

impl Default for BrandLogoConfig {
    fn default() -> Self {
        BrandLogoConfig { enabled: true }
    }
}

impl Section for BrandLogoConfig {
    const KEY: &'static str = "brand_logo";
}

pub struct BrandLogo {
    brands: Impersonation,
}

impl BrandLogo {
    pub fn new(config: &Config) -> BrandLogo {
        BrandLogo {
            brands: Impersonation::new(config.section::<ImpersonationConfig>()),
        }
    }
}

/// The path of a URL when it ends in a picture's extension, its
/// separators made spaces (`.../2020-Partners-Ledger.png` → `2020
/// Partners Ledger png`).
fn picture_path_words(url: &str) -> Option<String> {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let after_scheme = after_scheme.trim_start_matches('/');
    let path = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map(|(_, p)| p)?;
    let path = crate::lead_text::head(path, MAX_PATH);
    let (_, ext) = path.rsplit_once('.')?;
    if !PICTURES.iter().any(|p| ext.eq_ignore_ascii_case(p)) {
        return None;
    }
    Some(
        path.chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect(),
    )
}

impl Check for BrandLogo {
    fn name(&self) -> &'static str {
        "brand_logo"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![SymbolDef::new(
            "BRAND_LOGO_HOTLINKED",
            1.0,
            GROUP,
            "From's display name borrows a brand whose logo the HTML shows from a host that is not the brand's",
        )]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed || task.message.parts.is_empty() {
            return;
        }
        // The brand FROM_NAME_BRAND_MISMATCH found (the impersonation
        // check runs before this one and leaves the brand and domain as
        // its options): nothing is read again for the other messages.
        let Some(brand) = results
            .hits
            .iter()
            .find(|h| h.name == "FROM_NAME_BRAND_MISMATCH")
            .and_then(|h| h.options.first())
            .cloned()
        else {
            return;
        };
        let hotlinked = task
            .urls()
            .iter()
            .take(MAX_URLS)
            .filter(|u| u.in_html)
            .find(|u| {
                picture_path_words(&u.url).is_some_and(|words| {
                    self.brands.borrowed_brand(&words, &u.host).as_deref() == Some(brand.as_str())
                })
            });
        if let Some(url) = hotlinked {
            results.insert("BRAND_LOGO_HOTLINKED", vec![brand, url.host.clone()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    #[test]
    fn picture_paths() {
        assert_eq!(
            picture_path_words(
                "https://www.example.com/wp-content/uploads/2020-Partners-Ledger.png?x=1"
            )
            .as_deref(),
            Some("wp content uploads 2020 Partners Ledger png")
        );
        assert_eq!(
            picture_path_words("//cdn.example.net/ledger.jpg").as_deref(),
            Some("ledger jpg")
        );
        assert!(picture_path_words("https://www.example.com/ledger/update").is_none());
        assert!(picture_path_words("https://www.example.com/").is_none());
        assert!(picture_path_words("https://ledger.png").is_none());
    }

    fn scan(from: &str, img: &str) -> Vec<String> {
        let raw = format!(
            "From: {from}\r\nSubject: Security notice\r\nContent-Type: text/html\r\n\r\n<img src=\"{img}\"><p>Update your device</p>\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        let config = Config::default();
        Impersonation::new(config.section::<ImpersonationConfig>()).run(&task, &mut r);
        BrandLogo::new(&config).run(&task, &mut r);
        r.hits
            .into_iter()
            .map(|h| h.name)
            .filter(|n| n != "FROM_NAME_BRAND_MISMATCH")
            .collect()
    }

    #[test]
    fn a_borrowed_brand_with_its_logo_from_elsewhere() {
        let from = "Ledger <noreply@shop.example.com>";
        assert_eq!(
            scan(
                from,
                "https://www.example.org/wp-content/uploads/2020-Partners-Ledger.png"
            ),
            vec!["BRAND_LOGO_HOTLINKED"]
        );
        // The brand's own host, another brand's logo, no picture.
        assert!(scan(from, "https://cdn.ledger.com/img/ledger-logo.png").is_empty());
        assert!(scan(from, "https://www.example.org/uploads/paypal-logo.png").is_empty());
        assert!(scan(from, "https://www.example.org/ledger/live").is_empty());
        // The brand mailing from its own domain borrows nothing.
        assert!(
            scan(
                "Ledger <news@ledger.com>",
                "https://www.example.org/uploads/Ledger.png"
            )
            .is_empty()
        );
    }
}
