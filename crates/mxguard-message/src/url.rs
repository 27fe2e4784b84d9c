//! URLs written in text or HTML source: `http://`, `https://` and bare
//! `www.` hosts ([`scan`]), and what a host looks like once its user info
//! and trailing punctuation are taken off ([`split_userinfo`],
//! [`trim_host`]).
//!
//! One scanner for the classifier's URL features and the message model's
//! URL view, so both see the same URLs. It looks for the scheme with a
//! substring search and reads the host with a byte loop; no regex, no
//! allocation.

/// A URL found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'t> {
    /// Where the URL starts: its scheme, or the `www.` of a bare host.
    pub start: usize,
    /// The host as written, user info included (`user@host`), at most 255
    /// bytes; it ends where [`Found::host_end`] says.
    pub host: &'t str,
    /// The byte after the host.
    pub host_end: usize,
}

/// Longest host read, in bytes (a DNS name is at most 253).
const MAX_HOST: usize = 255;

/// Calls `found` for each URL in `t`, first every `http(s)://` URL, then
/// every bare `www.` host, until `max` were found or `found` returns false.
/// Returns how many were found.
pub fn scan<'t>(t: &'t str, max: usize, mut found: impl FnMut(Found<'t>) -> bool) -> usize {
    let b = t.as_bytes();
    let mut n = 0;
    for p in memchr::memmem::find_iter(b, b"://") {
        if n >= max {
            return n;
        }
        let scheme = if p >= 5 && b[p - 5..p].eq_ignore_ascii_case(b"https") {
            Some(p - 5)
        } else if p >= 4 && b[p - 4..p].eq_ignore_ascii_case(b"http") {
            Some(p - 4)
        } else {
            None
        };
        let Some(start) = scheme else {
            continue;
        };
        let hs = p + 3;
        let end = host_end(b, hs);
        if end > hs {
            n += 1;
            if !found(Found {
                start,
                host: &t[hs..end],
                host_end: end,
            }) {
                return n;
            }
        }
    }
    // Schemes written with character references (`&#104;ttps://`,
    // `https&#58;//`): HTML shows them as links, so they are links. Only
    // text that has a numeric reference at all is searched again.
    if n < max && memchr::memmem::find(b, b"&#").is_some() {
        for p in memchr::memmem::find_iter(b, b"//") {
            if n >= max {
                return n;
            }
            let Some(start) = encoded_scheme_start(b, p) else {
                continue;
            };
            let hs = p + 2;
            let end = host_end(b, hs);
            if end > hs {
                n += 1;
                if !found(Found {
                    start,
                    host: &t[hs..end],
                    host_end: end,
                }) {
                    return n;
                }
            }
        }
    }
    let mut i = 0;
    while n < max {
        let Some(p) = memchr::memchr2(b'w', b'W', &b[i..]) else {
            break;
        };
        let s = i + p;
        i = s + 1;
        if b.len() >= s + 5
            && b[s..s + 4].eq_ignore_ascii_case(b"www.")
            && (s == 0
                || !(b[s - 1].is_ascii_alphanumeric() || matches!(b[s - 1], b'/' | b'.' | b'@')))
        {
            let end = host_end(b, s);
            if end > s + 4 {
                n += 1;
                if !found(Found {
                    start: s,
                    host: &t[s..end],
                    host_end: end,
                }) {
                    return n;
                }
            }
            i = end.max(i);
        }
    }
    n
}

/// Where an `http:` or `https:` scheme written with at least one
/// character reference starts, for the `//` at `slashes`. A scheme written
/// plainly is left to the first pass of [`scan`].
fn encoded_scheme_start(b: &[u8], slashes: usize) -> Option<usize> {
    let mut encoded = false;
    let mut e = slashes;
    match b.get(e.wrapping_sub(1)) {
        Some(b':') => e -= 1,
        Some(b';') => {
            let (s, c) = reference_before(b, e)?;
            if c != ':' {
                return None;
            }
            encoded = true;
            e = s;
        }
        _ => return None,
    }
    // The scheme's letters, read backwards, at most five.
    let mut letters = [0u8; 5];
    let mut n = 0;
    while n < letters.len() && e > 0 {
        let (s, c) = if b[e - 1] == b';' {
            match reference_before(b, e) {
                Some((s, c)) => {
                    encoded = true;
                    (s, c)
                }
                None => break,
            }
        } else {
            (e - 1, b[e - 1] as char)
        };
        if !c.is_ascii_alphabetic() {
            break;
        }
        letters[letters.len() - 1 - n] = c.to_ascii_lowercase() as u8;
        n += 1;
        e = s;
        let scheme = &letters[letters.len() - n..];
        if encoded && (scheme == b"https" || (scheme == b"http" && !next_is_letter(b, e))) {
            return Some(e);
        }
    }
    None
}

/// Whether a letter (plain) ends just before `e`: `xhttp:` is no scheme
/// start at `h`, and `https` is read whole before `http` is accepted.
fn next_is_letter(b: &[u8], e: usize) -> bool {
    e > 0 && b[e - 1].is_ascii_alphabetic()
}

/// The numeric character reference (`&#104;`, `&#x68;`) or `&colon;`
/// ending at `end` (its `;` at `end - 1`): where it starts and the
/// character.
fn reference_before(b: &[u8], end: usize) -> Option<(usize, char)> {
    let semi = end.checked_sub(1)?;
    let from = semi.saturating_sub(12);
    let amp = from + memchr::memrchr(b'&', &b[from..semi])?;
    let body = std::str::from_utf8(&b[amp + 1..semi]).ok()?;
    let c = if let Some(num) = body.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(n)?
    } else if body.eq_ignore_ascii_case("colon") {
        ':'
    } else {
        return None;
    };
    Some((amp, c))
}

/// The end of a host starting at `from`: letters, digits, `.-_@%` and any
/// non-ASCII character, at most [`MAX_HOST`] bytes, never inside a
/// character.
fn host_end(b: &[u8], from: usize) -> usize {
    let mut e = from;
    while e < b.len() && e - from < MAX_HOST {
        let c = b[e];
        if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'@' | b'%') || c >= 0x80 {
            e += 1;
        } else {
            break;
        }
    }
    // The length cap may stop inside a multi-byte character: end before it.
    while e > from && e < b.len() && b[e] & 0xC0 == 0x80 {
        e -= 1;
    }
    e
}

/// The user info of a host as written (`bank.example@evil.example`: the
/// phishing trick) and the host after it. The last `@` separates them.
pub fn split_userinfo(host: &str) -> (Option<&str>, &str) {
    match memchr::memrchr(b'@', host.as_bytes()) {
        Some(i) => (Some(&host[..i]), &host[i + 1..]),
        None => (None, host),
    }
}

/// A host without the dots and hyphens a sentence puts after it
/// (`see www.example.com.`).
pub fn trim_host(host: &str) -> &str {
    let mut end = host.len();
    while end > 0 && matches!(host.as_bytes()[end - 1], b'.' | b'-') {
        end -= 1;
    }
    &host[..end]
}

/// Longest URL kept, in bytes.
pub const MAX_URL: usize = 2048;

/// The end of the URL whose host ends at `host_end`: its path, query and
/// fragment run to white space, a quote, `<`, `>` or a control character,
/// at most [`MAX_URL`] bytes from `start`, without the punctuation a
/// sentence puts after a URL (a host's trailing dot included).
pub fn url_end(t: &str, start: usize, host_end: usize) -> usize {
    let b = t.as_bytes();
    let limit = b.len().min(start.saturating_add(MAX_URL));
    let mut e = host_end.min(limit);
    while e < limit {
        let c = b[e];
        if c <= b' ' || c == 0x7f || matches!(c, b'"' | b'\'' | b'<' | b'>' | b'`') {
            break;
        }
        e += 1;
    }
    while e > host_end && e < b.len() && b[e] & 0xC0 == 0x80 {
        e -= 1;
    }
    while e > start && matches!(b[e - 1], b'.' | b',' | b';' | b':' | b'!' | b'?' | b')') {
        e -= 1;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(t: &str, max: usize) -> Vec<&str> {
        let mut v = Vec::new();
        scan(t, max, |f| {
            v.push(f.host);
            true
        });
        v
    }

    #[test]
    fn schemes_and_bare_hosts() {
        let t = "see https://a.example/x and HTTP://B.example, ftp://c.example \
                 www.d.example. x.www.e.example mailto:f@www.g.example";
        assert_eq!(hosts(t, 10), ["a.example", "B.example", "www.d.example."]);
        assert_eq!(hosts(t, 1), ["a.example"]);
        let mut seen = 0;
        assert_eq!(
            scan(t, 10, |_| {
                seen += 1;
                false
            }),
            1
        );
        assert_eq!(seen, 1);
    }

    #[test]
    fn url_ends_and_starts() {
        let t = "(see https://user@a.example/p?q=1#f), or www.b.example/x.";
        let mut v = Vec::new();
        scan(t, 10, |f| {
            v.push(&t[f.start..url_end(t, f.start, f.host_end)]);
            true
        });
        assert_eq!(v, ["https://user@a.example/p?q=1#f", "www.b.example/x"]);
        assert_eq!(
            split_userinfo("user@a.example"),
            (Some("user"), "a.example")
        );
        assert_eq!(split_userinfo("a.example"), (None, "a.example"));
        assert_eq!(trim_host("a.example.-"), "a.example");
    }

    #[test]
    fn schemes_written_with_character_references() {
        let t = "<a href=\"&#104;ttps://a.example/x\">a</a> \
                 <a href='&#x68;&#x74;&#x74;&#x70;&#x3a;//b.example/'>b</a> \
                 <a href=\"http&colon;//c.example\">c</a> \
                 <a href=\"https&#58;//d.example\">d</a> \
                 plain https://e.example and &#104;ttp://f.example &#38;&#59; \
                 x&#104;ttpz://g.example &#104;ttp:/h.example";
        let mut v = Vec::new();
        scan(t, 10, |f| {
            v.push((f.host, &t[f.start..f.start + 2]));
            true
        });
        assert_eq!(
            v,
            [
                ("e.example", "ht"),
                ("a.example", "&#"),
                ("b.example", "&#"),
                ("c.example", "ht"),
                ("d.example", "ht"),
                ("f.example", "&#"),
            ]
        );
        // Hostile: references with no end, huge numbers, at the start.
        for t in [
            "&#;//x",
            ";//x",
            "&#99999999999;//x",
            "&#x;&#;//",
            "//&#104;",
        ] {
            scan(t, 10, |_| true);
        }
    }

    #[test]
    fn long_hosts_are_cut_at_a_character_boundary() {
        let t = format!("http://{}", "\u{e9}".repeat(300));
        let h = hosts(&t, 1);
        assert!(h[0].len() <= MAX_HOST && !h[0].is_empty());
        let t = format!("http://a.example/{}", "\u{e9}".repeat(3000));
        let end = url_end(&t, 0, 16);
        assert!(end <= MAX_URL && t.is_char_boundary(end));
    }
}
