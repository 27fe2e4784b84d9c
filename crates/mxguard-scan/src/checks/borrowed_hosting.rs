//! Mail built on borrowed, anonymous infrastructure: the pictures of an
//! HTML message kept on a public image-sharing site, and links to
//! serverless app endpoints. A sender with a business to run shows its
//! pictures from its own site or its mailing provider's CDN, and links to
//! its own domain; a lure sent from throw-away domains puts its pictures
//! where anyone can upload one without an account (so the sending domain
//! can be burnt without losing them), and its landing page on a free
//! serverless endpoint that takes a minute to deploy and has no domain to
//! take down.
//!
//! Reads the message model's URL view ([`Mail::urls`](mxguard_message::Mail::urls)),
//! already built for the URL checks: one pass over at most [`MAX_URLS`]
//! URLs, ASCII comparisons of the host and registrable domain only.

use super::Check;
use crate::Task;
use mxguard_core::config::Section;
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};

const GROUP: &str = "url";

/// URLs looked at per message: the mechanism shows in the first ones.
const MAX_URLS: usize = 256;

/// Public image-sharing sites where anyone uploads a picture without an
/// account, and free logo, icon and clip-art sites a lure hotlinks a
/// brand's logo from, by registrable domain. Not general CDNs or mailing
/// providers' image hosts, which legitimate newsletters use every day.
const IMAGE_SHARING: &[&str] = &[
    "imgur.com",
    "imgur.io",
    "zupimages.net",
    "imgbox.com",
    "gyazo.com",
    "imgchest.com",
    "pbrd.co",
    "postimg.cc",
    "postimages.org",
    "ibb.co",
    "imgbb.com",
    "prnt.sc",
    "prntscr.com",
    "tinypic.com",
    "photobucket.com",
    "imageshack.com",
    "imageshack.us",
    "freeimage.host",
    "iili.io",
    "imagebam.com",
    "pixhost.to",
    "gifyu.com",
    "lensdump.com",
    "imagevenue.com",
    "funkyimg.com",
    "snipboard.io",
    "seeklogo.com",
    "freebiesupply.com",
    "icons8.com",
    "cryptologos.cc",
    "softicons.com",
    "getvecta.com",
    "logos-world.net",
    "1000logos.net",
    "worldvectorlogo.com",
    "freepnglogos.com",
    "pngimg.com",
    "pngwing.com",
    "similarpng.com",
    "pngtree.com",
    "cleanpng.com",
    "kindpng.com",
    "pngegg.com",
    "pngitem.com",
    "stickpng.com",
    "seekpng.com",
    "clipartmax.com",
];

/// Hosts of the same kind whose registrable domain also serves other
/// things: Wikimedia's file store (logos hotlinked from Wikipedia) and
/// Clearbit's logo service.
const IMAGE_SHARING_HOSTS: &[&str] = &["upload.wikimedia.org", "logo.clearbit.com"];

/// Host suffixes of serverless and app-platform endpoints (Google Cloud
/// Run, Cloud Functions, App Engine, Firebase Dynamic Links): a landing
/// page deployed in a minute under the platform's name.
const SERVERLESS_SUFFIXES: &[&str] = &[
    ".run.app",
    ".cloudfunctions.net",
    ".appspot.com",
    ".page.link",
];

/// File extensions of page furniture (pictures, style, scripts): a
/// picture kept on an app platform says nothing about where a click goes.
const FURNITURE: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "svg", "css", "js", "ico", "woff", "woff2",
];

/// `[borrowed_hosting]`: on by default; `enabled = false` leaves the check out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BorrowedHostingConfig {
    pub enabled: bool,
}

impl Default for BorrowedHostingConfig {
    fn default() -> Self {
        BorrowedHostingConfig { enabled: true }
    }
}

impl Section for BorrowedHostingConfig {
    const KEY: &'static str = "borrowed_hosting";
}

pub struct BorrowedHosting;

impl Check for BorrowedHosting {
    fn name(&self) -> &'static str {
        "borrowed_hosting"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        vec![
            SymbolDef::new(
                "HTML_IMAGE_SHARING",
                2.0,
                GROUP,
                "The HTML shows or links pictures kept on a public image-sharing or logo site (imgur, zupimages, Wikimedia's file store, ...)",
            ),
            SymbolDef::new(
                "URL_SERVERLESS_APP",
                2.0,
                GROUP,
                "A link to a serverless or app-platform endpoint (*.run.app, *.cloudfunctions.net, *.appspot.com, *.page.link)",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        let urls = task.urls();
        let (mut image, mut serverless) = (None, None);
        for url in urls.iter().take(MAX_URLS) {
            // A picture link in a plain text part is a person sharing a
            // photo; in HTML it is the message's own furniture.
            if image.is_none()
                && url.in_html
                && (IMAGE_SHARING.contains(&url.domain.as_str())
                    || IMAGE_SHARING_HOSTS.contains(&url.host.as_str()))
            {
                image = Some(url.host.as_str());
            }
            if serverless.is_none()
                && SERVERLESS_SUFFIXES
                    .iter()
                    .any(|s| url.host.len() > s.len() && url.host.ends_with(s))
                && !is_furniture(&url.url)
            {
                serverless = Some(url.host.as_str());
            }
            if image.is_some() && serverless.is_some() {
                break;
            }
        }
        if let Some(d) = image {
            results.insert("HTML_IMAGE_SHARING", vec![d.to_string()]);
        }
        if let Some(h) = serverless {
            results.insert(
                "URL_SERVERLESS_APP",
                vec![h.chars().take(100).collect::<String>()],
            );
        }
    }
}

/// Whether the URL's path ends in a picture, style sheet or script.
fn is_furniture(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let path = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .split_once('/')
        .map_or("", |(_, p)| p);
    let Some((_, ext)) = path.rsplit_once('.') else {
        return false;
    };
    !ext.contains('/') && FURNITURE.iter().any(|f| ext.eq_ignore_ascii_case(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn scan(content_type: &str, body: &str) -> Vec<String> {
        let raw = format!(
            "From: a@example.com\r\nSubject: hi\r\nContent-Type: {content_type}; charset=utf-8\r\n\r\n{body}\r\n"
        );
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 20);
        let mut r = ScanResults::default();
        BorrowedHosting.run(&task, &mut r);
        let mut names: Vec<String> = r.hits.into_iter().map(|h| h.name).collect();
        names.sort();
        names
    }

    #[test]
    fn pictures_on_an_image_sharing_site() {
        assert_eq!(
            scan(
                "text/html",
                r#"<a href="https://shop.example/x"><img src="https://i.imgur.com/AbCd123.png"></a>"#
            ),
            vec!["HTML_IMAGE_SHARING"]
        );
        assert_eq!(
            scan(
                "text/html",
                r#"<img src="https://zupimages.net/up/24/12/jq33.png">"#
            ),
            vec!["HTML_IMAGE_SHARING"]
        );
        // A brand's logo hotlinked from Wikipedia's file store; a link to
        // an article is not a picture.
        assert_eq!(
            scan(
                "text/html",
                r#"<img src="https://upload.wikimedia.org/wikipedia/commons/a/a1/Logo.svg">"#
            ),
            vec!["HTML_IMAGE_SHARING"]
        );
        assert!(
            scan(
                "text/html",
                r#"<a href="https://en.wikipedia.org/wiki/Mail">see</a>"#
            )
            .is_empty()
        );
        // A person sharing a photo in plain text.
        assert!(
            scan(
                "text/plain",
                "look: http://i4.photobucket.com/albums/y1/a.jpg"
            )
            .is_empty()
        );
        // A newsletter's own CDN, and a look-alike name that is another domain.
        assert!(
            scan(
                "text/html",
                r#"<img src="https://cdn.shop.example/a.png"><img src="https://notimgur.com.example/a.png">"#
            )
            .is_empty()
        );
    }

    #[test]
    fn links_to_serverless_endpoints() {
        assert_eq!(
            scan(
                "text/html",
                r#"<a href="https://b-a4qxna7jwq-rj.a.run.app/login">Entrar</a>"#
            ),
            vec!["URL_SERVERLESS_APP"]
        );
        assert_eq!(
            scan(
                "text/plain",
                "Open https://southamerica-east1-x-365616.cloudfunctions.net/track?id=1"
            ),
            vec!["URL_SERVERLESS_APP"]
        );
        // Pictures and style kept there are furniture; the bare platform
        // name is the platform's own site.
        assert!(
            scan(
                "text/html",
                r#"<img src="https://x.appspot.com/logo.PNG?v=2"><a href="https://run.app/">run</a>"#
            )
            .is_empty()
        );
    }

    #[test]
    fn furniture_by_extension() {
        assert!(is_furniture("https://a.example/x/logo.png"));
        assert!(is_furniture("https://a.example/s.css?v=1#x"));
        assert!(!is_furniture("https://a.example/login.php"));
        assert!(!is_furniture("https://a.example/"));
        assert!(!is_furniture("https://a.example"));
        assert!(!is_furniture("https://a.example/v1.2/login"));
    }
}
