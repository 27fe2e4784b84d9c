//! The HTML scan as it was before the tag-kind dispatch, the counting
//! of visible bytes by blocks, the attribute-less shortcut of `style_of`
//! and the byte-wise host cut of `target` (scan-speed6), kept for the
//! tests: the scan must find the same on any input. Only the functions
//! that changed are here; the rest are the parent's.

use super::{
    Budget, COMMENT_END, Found, Link, MAX_ATTR, MAX_DEPTH, Open, PERSONAL_FIELDS, RAW_TEXT, Style,
    VOID, apply_css, attr, attributes, close, decode_entities, end_link, has_scheme, host_of,
    is_numeric_host, parse_colour, same_colour, skip_raw_text, tag_end, truncate,
};
use crate::checks::{contains_short, find_short};

/// Reads one HTML part, adding what it shows to `found`.
pub(super) fn scan_html(html: &str, budget: &mut Budget, found: &mut Found) {
    let b = html.as_bytes();
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut link: Option<Link> = None;
    let mut body_style = Style::default();
    let mut pos = 0;
    while pos < b.len() {
        let Some(lt) = memchr::memchr(b'<', &b[pos..]).map(|p| pos + p) else {
            text(&html[pos..], &stack, body_style, &mut link, found);
            break;
        };
        if lt > pos {
            text(&html[pos..lt], &stack, body_style, &mut link, found);
        }
        pos = lt + 1;
        if b[pos..].starts_with(b"!--") {
            pos = COMMENT_END
                .find(&b[pos + 3..])
                .map_or(b.len(), |p| pos + 3 + p + 3);
            continue;
        }
        let Some(gt) = tag_end(b, pos) else {
            break;
        };
        let inner = &html[pos..gt];
        pos = gt + 1;
        if budget.tags == 0 {
            break;
        }
        budget.tags -= 1;
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, inner),
        };
        let name_end = inner
            .bytes()
            .position(|c| c.is_ascii_whitespace() || c == b'/')
            .unwrap_or(inner.len());
        let name = &inner[..name_end];
        if name.is_empty() || !name.as_bytes()[0].is_ascii_alphabetic() {
            continue;
        }
        let attrs = &inner[name_end..];
        if closing {
            close(name, html.len(), &mut stack, &mut link, found);
            continue;
        }
        if let Some(raw) = RAW_TEXT.iter().find(|t| name.eq_ignore_ascii_case(t)) {
            // Skip to the end tag: nothing inside is shown as text. The
            // head's elements (meta, title) are looked at on the way.
            if *raw == "head" {
                continue;
            }
            pos = skip_raw_text(b, pos, raw);
            continue;
        }
        let parent = stack.last().map_or(body_style, |o| o.style);
        let style = style_of(name, attrs, parent);
        element(name, attrs, html.len(), budget, &mut link, found);
        if name.eq_ignore_ascii_case("body") {
            body_style = style;
            continue;
        }
        let self_closing = attrs.trim_end().ends_with('/');
        if self_closing || VOID.iter().any(|v| name.eq_ignore_ascii_case(v)) {
            continue;
        }
        if stack.len() < MAX_DEPTH {
            stack.push(Open { name, style });
        }
    }
    if let Some(l) = link.take() {
        end_link(l, html.len(), found);
    }
}

/// Counts the characters of `t` (not white space) by how they are shown.
fn text(t: &str, stack: &[Open<'_>], body: Style, link: &mut Option<Link>, found: &mut Found) {
    let style = stack.last().map_or(body, |o| o.style);
    let n = t.bytes().filter(|c| !c.is_ascii_whitespace()).count();
    if n == 0 {
        return;
    }
    if let Some(l) = link
        && l.text.len() < 512
    {
        l.text.push_str(truncate(t, 512 - l.text.len()));
    }
    if style.hidden {
        found.hidden_chars += n;
    } else if style.zero_font {
        found.zero_font_chars += n;
    } else if same_colour(
        style.colour,
        match (style.background, style.background_unknown) {
            (Some(bg), false) => Some(bg),
            _ => None,
        },
    ) {
        found.same_colour_chars += n;
    } else {
        found.visible_chars += n;
    }
}

/// The style `name` with `attrs` gives its content, inherited from `parent`.
fn style_of(name: &str, attrs: &str, parent: Style) -> Style {
    let mut s = parent;
    if attrs.trim().is_empty() {
        return s;
    }
    let font = name.eq_ignore_ascii_case("font");
    let (mut unknown_bg, mut bgcolor, mut css) = (false, None, None);
    for (key, value) in attributes(attrs) {
        let is = |k: &str| key.eq_ignore_ascii_case(k);
        if is("hidden") {
            s.hidden = true;
        } else if is("class") || is("background") {
            unknown_bg = true;
        } else if is("bgcolor") {
            bgcolor = parse_colour(value).or(bgcolor);
        } else if is("style") {
            css = Some(value);
        } else if font && is("color") {
            if let Some(c) = parse_colour(value) {
                s.colour = Some(c);
            }
        } else if font && is("size") && value.trim() == "0" {
            s.zero_font = true;
        }
    }
    if unknown_bg {
        s.background_unknown = true;
        s.background = None;
    }
    if let Some(c) = bgcolor {
        s.background = Some(c);
        s.background_unknown = false;
    }
    if let Some(css) = css {
        apply_css(truncate(css, MAX_ATTR), &mut s);
    }
    s
}

/// Looks at an element that matters whatever its content: links, images,
/// forms, inputs, meta refresh.
fn element(
    name: &str,
    attrs: &str,
    part_len: usize,
    budget: &mut Budget,
    link: &mut Option<Link>,
    found: &mut Found,
) {
    let is = |t: &str| name.eq_ignore_ascii_case(t);
    if is("img") {
        found.images += 1;
        if let Some(l) = link {
            l.has_img = true;
        }
        if let Some(src) = attr(attrs, "src") {
            target(src, budget, found);
        }
    } else if is("a") || is("area") {
        if let Some(l) = link.take() {
            end_link(l, part_len, found);
        }
        if let Some(href) = attr(attrs, "href") {
            target(href, budget, found);
            if is("a") {
                *link = Some(Link {
                    href: decode_entities(href).into_owned(),
                    text: String::new(),
                    has_img: false,
                });
            }
        }
    } else if is("form") {
        let action = attr(attrs, "action").map(decode_entities);
        if let Some(a) = &action {
            target(a, budget, found);
        }
        let shown = action
            .as_deref()
            .map(|a| a.trim())
            .filter(|a| has_scheme(a, "http") || has_scheme(a, "https") || has_scheme(a, "data"));
        found.open_form = shown.map(|a| host_of(a).to_string());
    } else if is("input") {
        let password =
            attr(attrs, "type").is_some_and(|t| t.trim().eq_ignore_ascii_case("password"));
        if password {
            found.password_input = true;
        }
        // A hidden input asks the reader for nothing.
        let hidden = attr(attrs, "type").is_some_and(|t| t.trim().eq_ignore_ascii_case("hidden"));
        let personal = password
            || !hidden
                && attr(attrs, "name").is_some_and(|n| {
                    let n = n.to_ascii_lowercase();
                    PERSONAL_FIELDS.iter().any(|f| n.contains(f))
                });
        if personal && found.form_action.is_none() {
            found.form_action = found.open_form.clone();
        }
    } else if is("meta")
        && attr(attrs, "http-equiv").is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"))
        && let Some(content) = attr(attrs, "content")
    {
        let lower = content.to_ascii_lowercase();
        if let Some(i) = lower.find("url=") {
            let url = content[i + 4..].trim().trim_matches(['\'', '"']);
            if found.meta_refresh.is_none() {
                found.meta_refresh = Some(host_of(url).to_string());
            }
        }
    }
}

/// Looks at a link, image or form target: how it is written and its scheme.
fn target(raw: &str, budget: &mut Budget, found: &mut Found) {
    if budget.links == 0 {
        return;
    }
    budget.links -= 1;
    let decoded = decode_entities(raw);
    let url = decoded.trim_start_matches(|c: char| c.is_whitespace() || c.is_control());
    if has_scheme(url, "javascript") || has_scheme(url, "vbscript") {
        found
            .javascript_link
            .get_or_insert_with(|| truncate(url, 40).to_string());
        return;
    }
    if has_scheme(url, "data") {
        let head = truncate(&url[5..], 64).to_ascii_lowercase();
        found
            .data_uri
            .get_or_insert_with(|| head.split([',', ';']).next().unwrap_or("").to_string());
        if (head.starts_with("text/html")
            || head.starts_with("application/x-javascript")
            || head.starts_with("application/javascript")
            || head.starts_with("text/javascript")
            || head.starts_with("image/svg"))
            && found.data_uri_obfu.is_none()
        {
            found.data_uri_obfu = Some(head.split([',', ';']).next().unwrap_or("").to_string());
        }
        return;
    }
    if !(has_scheme(url, "http") || has_scheme(url, "https")) {
        return;
    }
    // Scheme and host as written in the source: entities or %-escapes there
    // serve only to hide the target from a filter.
    let raw = raw.trim_start();
    let host_written = find_short(raw, "//").map(|i| {
        let rest = &raw[i + 2..];
        let end = rest
            .bytes()
            .position(|c| matches!(c, b'/' | b'?' | b'#'))
            .unwrap_or(rest.len());
        (&raw[..i], &rest[..end])
    });
    let host = host_of(url);
    let host = host.rsplit('@').next().unwrap_or(host);
    let host = host.split(':').next().unwrap_or(host);
    let obfuscated = match host_written {
        Some((scheme, h)) => {
            contains_short(scheme, "&#") || contains_short(h, "&#") || h.contains('%')
        }
        None => contains_short(raw, "&#"),
    } || url.contains('\\')
        || is_numeric_host(host);
    if obfuscated && found.suspicious_url.is_none() {
        found.suspicious_url = Some(host.to_string());
    }
}
