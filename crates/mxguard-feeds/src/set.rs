//! The compact set a feed becomes ([`UrlSet`]), the URL normalisation both
//! the feed's entries and the message's URLs go through ([`keys`]), and
//! the two published formats read into it ([`Format`]).
//!
//! Normalisation, so that a listed URL matches however a mail writes it:
//!
//! - the scheme is dropped (`http://` and `https://` name the same site for
//!   a phishing list); a URL without one (`www.example.com/x`) is read as
//!   host and path;
//! - `&amp;` is read as `&` (URLs taken from HTML source);
//! - user info (`user@`) is dropped; the host is lowercased, its trailing
//!   dot dropped, and a default port (`:80`, `:443`) dropped;
//! - the fragment (`#…`) is dropped; trailing `/` of the path are dropped
//!   (`example.com/` is `example.com`); path and query keep their case and
//!   their percent-encoding as written.
//!
//! A feed entry is kept under its whole key (`host/path?query`). A
//! message's URL matches when its whole key, its key without the query, or
//! its host alone is in the set: an entry without a path lists the whole
//! host, an entry without a query lists the page whatever its query.

use sha2::{Digest, Sha256};

/// At most this many entries are kept from one feed (the feed's size
/// limit bounds them first in practice: openphish publishes a few
/// thousand, phishtank some tens of thousands).
pub const MAX_ENTRIES: usize = 4_000_000;

/// The published format of a feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// openphish's `feed.txt`: one URL per line.
    OpenPhish,
    /// phishtank's `online-valid.csv` (a header line naming a `url`
    /// column) or `online-valid.json` (an array of objects with `url`);
    /// which one is told by the first byte.
    PhishTank,
}

/// The normalised keys of a URL, most to least specific: whole, without
/// the query, host alone (duplicates left out). `None` for a URL with no
/// host.
pub fn keys(url: &str) -> Option<Vec<String>> {
    let url = url.trim();
    let url = if url.contains("&amp;") {
        std::borrow::Cow::Owned(url.replace("&amp;", "&"))
    } else {
        std::borrow::Cow::Borrowed(url)
    };
    let lower_start: String = url.chars().take(8).collect::<String>().to_ascii_lowercase();
    let rest = if lower_start.starts_with("https://") {
        &url[8..]
    } else if lower_start.starts_with("http://") {
        &url[7..]
    } else {
        &url[..]
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let mut host = authority.to_lowercase();
    for port in [":80", ":443"] {
        if let Some(h) = host.strip_suffix(port) {
            host = h.to_string();
        }
    }
    while host.ends_with('.') {
        host.pop();
    }
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
    {
        return None;
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let path = path.trim_end_matches('/');
    let mut out = Vec::with_capacity(3);
    if !query.is_empty() {
        out.push(format!("{host}{path}?{query}"));
    }
    if !path.is_empty() {
        out.push(format!("{host}{path}"));
    }
    out.push(host);
    Some(out)
}

/// A key's hash: the first 8 bytes of its SHA-256. At a few million
/// entries the chance that an unlisted URL collides with one is below one
/// in a million million per lookup.
fn hash(key: &str) -> u64 {
    let d = Sha256::digest(key.as_bytes());
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// A feed in memory: the sorted hashes of its entries' keys, 8 bytes an
/// entry.
#[derive(Debug, Default, Clone)]
pub struct UrlSet {
    hashes: Vec<u64>,
}

/// What parsing a feed found.
#[derive(Debug)]
pub struct Parsed {
    pub set: UrlSet,
    /// Lines or records that held no usable URL.
    pub skipped: usize,
}

impl UrlSet {
    /// The set of these URLs (their whole keys).
    pub fn from_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> UrlSet {
        let mut hashes: Vec<u64> = urls
            .into_iter()
            .filter_map(|u| keys(u).and_then(|k| k.into_iter().next()))
            .map(|k| hash(&k))
            .take(MAX_ENTRIES)
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        UrlSet { hashes }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `url` is listed (see the module's normalisation).
    pub fn contains(&self, url: &str) -> bool {
        if self.hashes.is_empty() {
            return false;
        }
        keys(url).is_some_and(|keys| {
            keys.iter()
                .any(|k| self.hashes.binary_search(&hash(k)).is_ok())
        })
    }

    /// Reads a feed's bytes. A feed with no URL at all is an error (a
    /// truncated or error page is not taken for an empty list).
    pub fn parse(format: Format, bytes: &[u8]) -> Result<Parsed, String> {
        let text = String::from_utf8_lossy(bytes);
        let (urls, skipped) = match format {
            Format::OpenPhish => lines(&text),
            Format::PhishTank => {
                if text.trim_start().starts_with('[') {
                    json(&text)?
                } else {
                    csv(&text)?
                }
            }
        };
        let set = UrlSet::from_urls(urls.iter().map(|s| s.as_ref()));
        if set.is_empty() {
            return Err(format!(
                "no URL found in {} bytes ({skipped} lines or records skipped)",
                bytes.len()
            ));
        }
        Ok(Parsed { set, skipped })
    }
}

type Urls<'t> = Vec<std::borrow::Cow<'t, str>>;

/// openphish: one URL a line; `#` comments and blank lines skipped.
fn lines(text: &str) -> (Urls<'_>, usize) {
    let mut urls = Vec::new();
    let mut skipped = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains(char::is_whitespace) || keys(line).is_none() {
            skipped += 1;
            continue;
        }
        urls.push(line.into());
    }
    (urls, skipped)
}

/// phishtank's JSON: `[{"url": …, …}, …]`; other fields ignored.
fn json(text: &str) -> Result<(Urls<'_>, usize), String> {
    #[derive(serde::Deserialize)]
    struct Entry {
        url: Option<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(text)
        .map_err(|e| format!("not phishtank's JSON (an array of objects with `url`): {e}"))?;
    let mut skipped = 0;
    let urls = entries
        .into_iter()
        .filter_map(|e| {
            let u = e.url.filter(|u| keys(u).is_some());
            if u.is_none() {
                skipped += 1;
            }
            u.map(Into::into)
        })
        .collect();
    Ok((urls, skipped))
}

/// phishtank's CSV: a header line with a `url` column, then one record a
/// line, fields quoted with `"` when they hold commas (`""` inside).
fn csv(text: &str) -> Result<(Urls<'_>, usize), String> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .map(fields)
        .ok_or("empty CSV: phishtank's CSV starts with a header line naming a `url` column")?;
    let column = header
        .iter()
        .position(|f| f.trim().eq_ignore_ascii_case("url"))
        .ok_or(
            "the CSV's header line has no `url` column (phishtank's online-valid.csv has one)",
        )?;
    let mut urls = Vec::new();
    let mut skipped = 0;
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        match fields(line).into_iter().nth(column) {
            Some(u) if keys(&u).is_some() => urls.push(u),
            _ => skipped += 1,
        }
    }
    Ok((urls, skipped))
}

/// The fields of one CSV line.
fn fields(line: &str) -> Vec<std::borrow::Cow<'_, str>> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            // Quoted: up to a `"` not doubled.
            let mut value = String::new();
            let mut r = q;
            loop {
                match r.find('"') {
                    Some(i) if r[i + 1..].starts_with('"') => {
                        value.push_str(&r[..=i]);
                        r = &r[i + 2..];
                    }
                    Some(i) => {
                        value.push_str(&r[..i]);
                        r = &r[i + 1..];
                        break;
                    }
                    None => {
                        value.push_str(r);
                        r = "";
                        break;
                    }
                }
            }
            out.push(value.into());
            match r.find(',') {
                Some(i) => rest = &r[i + 1..],
                None => return out,
            }
        } else {
            match rest.find(',') {
                Some(i) => {
                    out.push(rest[..i].into());
                    rest = &rest[i + 1..];
                }
                None => {
                    out.push(rest.into());
                    return out;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(
            keys("HTTPS://User@WWW.Example.COM.:443/Login/?a=1&amp;b=2#top").unwrap(),
            [
                "www.example.com/Login?a=1&b=2",
                "www.example.com/Login",
                "www.example.com"
            ]
        );
        assert_eq!(keys("http://example.com/").unwrap(), ["example.com"]);
        assert_eq!(
            keys("www.example.com:8080/x").unwrap(),
            ["www.example.com:8080/x", "www.example.com:8080"]
        );
        assert_eq!(keys("https://"), None);
        assert_eq!(keys("http://@/"), None);
    }

    #[test]
    fn listed_pages_hosts_and_queries() {
        let set = UrlSet::from_urls([
            "https://evil.example/paypal/login.php",
            "http://whole-host.example/",
            "https://q.example/a?id=7",
        ]);
        assert_eq!(set.len(), 3);
        for url in [
            "http://evil.example/paypal/login.php",
            "https://EVIL.example/paypal/login.php/?utm=x#f",
            "https://whole-host.example/any/page",
            "https://q.example/a?id=7",
        ] {
            assert!(set.contains(url), "{url}");
        }
        for url in [
            "https://evil.example/",
            "https://evil.example/paypal",
            "https://other.example/paypal/login.php",
            "https://q.example/a?id=8",
            "https://q.example/a",
        ] {
            assert!(!set.contains(url), "{url}");
        }
    }

    #[test]
    fn the_published_formats() {
        let openphish = b"https://a.example/x\n\n# comment\nnot a url line\nhttp://b.example/\n";
        let p = UrlSet::parse(Format::OpenPhish, openphish).unwrap();
        assert_eq!((p.set.len(), p.skipped), (2, 1));
        assert!(p.set.contains("https://b.example/y"));

        let csv = "phish_id,url,phish_detail_url,submission_time,verified,verification_time,online,target\n\
            1,https://c.example/login,http://www.phishtank.com/phish_detail.php?phish_id=1,2024,yes,2024,yes,Other\n\
            2,\"https://d.example/a,b?x=\"\"y\"\"\",http://x,2024,yes,2024,yes,Other\n\
            3\n";
        let p = UrlSet::parse(Format::PhishTank, csv.as_bytes()).unwrap();
        assert_eq!((p.set.len(), p.skipped), (2, 1));
        assert!(p.set.contains("http://c.example/login"));
        assert!(p.set.contains("https://d.example/a,b?x=\"y\""));

        let json = br#"[{"phish_id":1,"url":"https://e.example/x","online":"yes"},{"phish_id":2},{"url":"http://f.example/"}]"#;
        let p = UrlSet::parse(Format::PhishTank, json).unwrap();
        assert_eq!((p.set.len(), p.skipped), (2, 1));
        assert!(p.set.contains("https://e.example/x"));
        assert!(p.set.contains("https://f.example/z"));
    }

    #[test]
    fn broken_feeds_are_errors() {
        assert!(UrlSet::parse(Format::OpenPhish, b"").is_err());
        assert!(UrlSet::parse(Format::OpenPhish, b"<html>503</html>").is_err());
        assert!(UrlSet::parse(Format::PhishTank, b"id,name\n1,x\n").is_err());
        assert!(UrlSet::parse(Format::PhishTank, b"[{\"url\": 3}").is_err());
        assert!(UrlSet::parse(Format::PhishTank, b"\xff\xfe,,,\"\n\"").is_err());
    }
}
