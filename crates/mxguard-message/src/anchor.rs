//! Links of an HTML source as a reader sees them: each `<a href>` with the
//! text shown for it ([`anchors`]), for checks that compare the two (a link
//! whose text shows one site and whose target is another is phishing's
//! oldest trick).
//!
//! A byte loop with `memchr`, no DOM: tags inside the link's text are
//! skipped, the common character references are decoded, and every output
//! is bounded ([`MAX_ANCHORS`], [`MAX_HREF`], [`MAX_TEXT`]), whatever the
//! input.

/// At most this many links are read from one HTML source.
pub const MAX_ANCHORS: usize = 1024;
/// Longest `href` kept, in bytes (longer ones are cut).
pub const MAX_HREF: usize = 2048;
/// Longest visible text kept per link, in bytes.
pub const MAX_TEXT: usize = 512;

/// One `<a href=…>text</a>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The `href` value, character references decoded, trimmed.
    pub href: String,
    /// The text between the tags: inner tags removed, character references
    /// decoded, white space collapsed, trimmed.
    pub text: String,
}

/// The links of `html`, in order, at most [`MAX_ANCHORS`].
pub fn anchors(html: &str) -> Vec<Anchor> {
    let b = html.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while out.len() < MAX_ANCHORS {
        let Some(p) = memchr::memchr(b'<', &b[pos..]) else {
            break;
        };
        let lt = pos + p;
        pos = lt + 1;
        // `<a` followed by white space.
        if !(b.len() > lt + 2
            && b[lt + 1].eq_ignore_ascii_case(&b'a')
            && b[lt + 2].is_ascii_whitespace())
        {
            continue;
        }
        let Some(gt) = tag_end(b, lt + 2) else {
            break;
        };
        let attrs = &html[lt + 2..gt];
        pos = gt + 1;
        let Some(href) = attribute(attrs, "href") else {
            continue;
        };
        // The text runs to `</a`, or to the next `<a ` (unclosed links).
        let (text_end, next) = text_end(b, pos);
        let text = visible_text(&html[pos..text_end]);
        pos = next;
        let mut href = decode_references(href.trim());
        truncate(&mut href, MAX_HREF);
        out.push(Anchor { href, text });
    }
    out
}

/// The `>` that ends a tag whose attributes start at `from`, quotes
/// respected.
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    // From quote to quote with `memchr`: only `>`, `"` and `'` matter
    // outside quotes, only the closing quote inside.
    let mut i = from;
    while i < b.len() {
        let at = i + memchr::memchr3(b'>', b'"', b'\'', &b[i..])?;
        if b[at] == b'>' {
            return Some(at);
        }
        let quote = b[at];
        i = at + 1 + memchr::memchr(quote, &b[at + 1..])? + 1;
    }
    None
}

/// Where a link's text ends, and where reading goes on.
fn text_end(b: &[u8], from: usize) -> (usize, usize) {
    let mut i = from;
    while let Some(p) = memchr::memchr(b'<', &b[i..]) {
        let lt = i + p;
        let rest = &b[lt + 1..];
        if rest.len() >= 2 && rest[0] == b'/' && rest[1].eq_ignore_ascii_case(&b'a') {
            let after = rest.get(2).copied().unwrap_or(b'>');
            if after == b'>' || after.is_ascii_whitespace() {
                return (lt, lt + 1);
            }
        }
        if rest.len() >= 2 && rest[0].eq_ignore_ascii_case(&b'a') && rest[1].is_ascii_whitespace() {
            return (lt, lt);
        }
        i = lt + 1;
    }
    (b.len(), b.len())
}

/// The value of attribute `name` in a tag's attribute text.
fn attribute<'t>(attrs: &'t str, name: &str) -> Option<&'t str> {
    let b = attrs.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let key = &attrs[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            if i == start {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let vs = i + 1;
                let ve = memchr::memchr(q, &b[vs..]).map_or(b.len(), |p| vs + p);
                i = ve + 1;
                &attrs[vs..ve]
            }
            _ => {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                &attrs[vs..i]
            }
        };
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
    None
}

/// Text with tags removed, references decoded and white space collapsed.
fn visible_text(inner: &str) -> String {
    let mut plain = String::with_capacity(inner.len().min(MAX_TEXT * 2));
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() && plain.len() < MAX_TEXT * 4 {
        match memchr::memchr(b'<', &b[i..]) {
            Some(p) => {
                plain.push_str(&inner[i..i + p]);
                let t = i + p;
                i = tag_end(b, t + 1).map_or(b.len(), |e| e + 1);
            }
            None => {
                plain.push_str(&inner[i..]);
                break;
            }
        }
    }
    let decoded = decode_references(&plain);
    let mut out = String::with_capacity(decoded.len().min(MAX_TEXT));
    for word in decoded.split(|c: char| c.is_whitespace() || is_invisible(c)) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.len() >= MAX_TEXT {
            break;
        }
    }
    truncate(&mut out, MAX_TEXT);
    out
}

/// Characters that show nothing: a sender hides them inside a shown URL.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
    )
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// Decodes numeric character references and the named ones links use.
pub fn decode_references(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let end = after
            .char_indices()
            .take(12)
            .find(|&(_, c)| c == ';')
            .map(|(i, _)| i);
        let decoded = end.and_then(|e| reference(&after[..e]).map(|c| (c, e)));
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn reference(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let n = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(n);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "period" => '.',
        "sol" => '/',
        "colon" => ':',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(html: &str) -> Vec<(String, String)> {
        anchors(html)
            .into_iter()
            .map(|a| (a.href, a.text))
            .collect()
    }

    #[test]
    fn tag_ends_as_a_byte_walk_finds_them() {
        fn walk(b: &[u8], from: usize) -> Option<usize> {
            let mut quote = 0u8;
            for (i, &c) in b.iter().enumerate().skip(from) {
                if quote != 0 {
                    if c == quote {
                        quote = 0;
                    }
                } else if c == b'"' || c == b'\'' {
                    quote = c;
                } else if c == b'>' {
                    return Some(i);
                }
            }
            None
        }
        // Every string of up to 6 bytes over the bytes that matter.
        let alphabet = [b'>', b'"', b'\'', b'a'];
        for len in 0..=6u32 {
            for n in 0..4usize.pow(len) {
                let s: Vec<u8> = (0..len).map(|k| alphabet[n / 4usize.pow(k) % 4]).collect();
                for from in 0..=s.len() {
                    assert_eq!(tag_end(&s, from), walk(&s, from), "{s:?} {from}");
                }
            }
        }
    }

    #[test]
    fn links_and_their_text() {
        let html = r#"<p>Hi <A HREF="https://evil.example/login?a=1&amp;b=2" class=x>
            <b>www.paypal.com</b></A> and <a name=top>x</a>
            <a href='http://ok.example/'>ok&#46;example</a><a href=bare.example>unclosed
            <a target=_blank href = "https://t.example/x" >Click&nbsp;here</a >"#;
        assert_eq!(
            pairs(html),
            [
                (
                    "https://evil.example/login?a=1&b=2".to_string(),
                    "www.paypal.com".to_string()
                ),
                ("http://ok.example/".into(), "ok.example".into()),
                ("bare.example".into(), "unclosed".into()),
                ("https://t.example/x".into(), "Click here".into()),
            ]
        );
    }

    #[test]
    fn invisible_characters_do_not_split_a_shown_url() {
        let html = "<a href=\"https://evil.example\">pay\u{200b}pal.com</a>";
        assert_eq!(anchors(html)[0].text, "pay pal.com");
    }

    #[test]
    fn hostile_sources_are_bounded() {
        for html in [
            "<a ".to_string(),
            "<a href=\"".to_string(),
            "<a href=x>".repeat(5000),
            format!(
                "<a href=\"{}\">{}</a>",
                "h".repeat(10_000),
                "t ".repeat(10_000)
            ),
            "&#xffffffff;&#99999999999;&;&amp".to_string(),
            "<a\thref=x>\u{e9}".repeat(3) + &"\u{e9}".repeat(4000),
        ] {
            let a = anchors(&html);
            assert!(a.len() <= MAX_ANCHORS);
            assert!(
                a.iter()
                    .all(|a| a.href.len() <= MAX_HREF && a.text.len() <= MAX_TEXT)
            );
            let _ = decode_references(&html);
        }
    }
}
