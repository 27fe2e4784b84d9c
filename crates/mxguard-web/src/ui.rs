//! The web UI's files, built into the binary so the UI works offline and
//! needs no CDN or build step. The UI is one page (`ui/index.html`) whose
//! script uses relative URLs only, so it works under any path prefix a
//! reverse proxy adds.
//!
//! What the UI asks of the API (rspamd's controller shapes unless noted):
//! `auth` (`read_only`; a `csrf` field switches the UI to the cookie
//! session and an `X-CSRF-Token` header on writes, otherwise the password
//! rides in `Password:`), `stat`, `graph?type=`, `actions`, `saveactions`
//! (`[{action, value}]` as `/actions` lists them, null = off), `maps`,
//! `getmap`/`savemap` (`Map:` header, text body), `symbols`, `savesymbols`
//! (`[{name, value}]`), `checkv2`, `learnspam`, `learnham`, `history`,
//! `historyreset`, `statreset`, `errors`; mxguard's own: `greylist` and `bans`
//! (JSON arrays of objects), `greylist/delete` (`{"key": …}`) and
//! `bans/delete` (`{"ip": …}`); `logout` (POST) when a session is used.

/// One built-in file: its name under the UI's root, its content type, its bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/style.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../ui/favicon.svg"),
    ),
];

/// The UI file for a request path relative to the UI's root (`""`, `"/"` and
/// `"index.html"` are the page itself), with its content type; `None` for
/// anything else, so the router can answer 404 or try an API route.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let name = path.trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, ctype, bytes)| (*ctype, *bytes))
}

/// Every built-in file name, for a router that registers one route per file.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(n, _, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_served_at_the_root_and_by_name() {
        let (ctype, root) = asset("/").expect("root");
        assert!(ctype.starts_with("text/html"));
        assert_eq!(asset("").unwrap().1, root);
        assert_eq!(asset("index.html").unwrap().1, root);
        assert!(std::str::from_utf8(root).unwrap().contains("app.js"));
    }

    #[test]
    fn each_file_has_its_content_type_and_unknown_paths_are_none() {
        assert!(asset("/app.js").unwrap().0.starts_with("text/javascript"));
        assert!(asset("style.css").unwrap().0.starts_with("text/css"));
        assert_eq!(asset("favicon.svg").unwrap().0, "image/svg+xml");
        assert!(asset("stat").is_none());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("app.js/").is_none());
    }

    /// A leading slash in the page would break the UI under a path prefix.
    #[test]
    fn the_ui_uses_relative_urls_only() {
        for name in asset_names() {
            let text = String::from_utf8_lossy(asset(name).unwrap().1);
            for bad in ["src=\"/", "href=\"/", "fetch(\"/", "api(\"/", "url(/"] {
                assert!(!text.contains(bad), "{name} has an absolute URL ({bad})");
            }
            // No CDN: the only absolute URL allowed is SVG's namespace name.
            let outside = text
                .replace("http://www.w3.org/2000/svg", "")
                .contains("://");
            assert!(!outside, "{name} refers to another host");
        }
        let js = String::from_utf8_lossy(asset("app.js").unwrap().1);
        assert!(
            !js.contains("innerHTML"),
            "app.js must build the DOM from text nodes"
        );
    }
}
