//! HTML rules (rspamd's `html.lua` family): what the HTML of a message does
//! that a reader does not see or that ordinary mail has no use for.
//!
//! Each HTML part is read once by a small tag scanner ([`scan_html`])
//! that keeps a bounded element stack with the style each element gives
//! its text (hidden, zero or tiny font, text colour, background), so text
//! a reader cannot see is counted apart from text one can. Links are read
//! with their entities decoded, so `&#104;ttp` hides nothing.
//!
//! Symbols: forms that post elsewhere or ask for a password (HTML_FORM,
//! HTML_FORM_PASSWORD); hidden, zero-size or same-colour text (HTML_HIDDEN_TEXT,
//! ZERO_FONT, R_WHITE_ON_WHITE); a short HTML part that is a linked image
//! (HTML_SHORT_LINK_IMG_1/2/3) and image mail with almost no text
//! (R_EMPTY_IMAGE); links written to hide their target (R_SUSPICIOUS_URL),
//! `javascript:` links (HTML_JAVASCRIPT_LINK), `data:` URLs (HAS_DATA_URI,
//! DATA_URI_OBFU for HTML or script inside), a link text whose scheme is not
//! the target's (HTTP_TO_HTTPS, HTTPS_TO_HTTP) and a meta refresh to a URL
//! (HTML_META_REFRESH_URL). A link text that names another domain than its
//! target is the phishing check's (PHISHING), not this one's.
//!
//! Limits: at most `max_parts` HTML parts and `max_bytes` of each are read,
//! at most [`MAX_TAGS`] tags and [`MAX_LINKS`] links per message, an
//! element stack of [`MAX_DEPTH`]; an attribute value is read up to
//! [`MAX_ATTR`] bytes. Anything past a limit is not looked at (never a
//! panic, never unbounded work).

use super::{Check, contains_short, find_short};
use crate::Task;
use crate::lead_text::head as truncate;
use mail_parser::PartType;
use memchr::memmem::Finder;
use mxguard_core::config::{Problems, Section};
use mxguard_core::{ScanResults, SymbolDef};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Tags read per message, all HTML parts together.
pub const MAX_TAGS: usize = 20_000;
/// Links (`<a href>`, `<area href>`, form actions) looked at per message.
pub const MAX_LINKS: usize = 512;
/// Open elements tracked; deeper ones inherit their parent's style.
pub const MAX_DEPTH: usize = 256;
/// Longest attribute value read, in bytes.
pub const MAX_ATTR: usize = 4096;

/// `[html_rules]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HtmlRulesConfig {
    pub enabled: bool,
    /// HTML parts read per message.
    pub max_parts: usize,
    /// Bytes read of each HTML part.
    pub max_bytes: usize,
    /// Hidden characters (not white space) from which HTML_HIDDEN_TEXT fires.
    pub hidden_text_min: usize,
    /// Characters in a zero-size font from which ZERO_FONT fires.
    pub zero_font_min: usize,
    /// Characters in the background's colour from which R_WHITE_ON_WHITE
    /// fires: above a few words, which old newsletters' layouts leave
    /// invisible by mistake; hidden content is longer.
    pub same_colour_min: usize,
    /// Visible characters below which a message with images is R_EMPTY_IMAGE.
    pub empty_image_max_text: usize,
}

impl Default for HtmlRulesConfig {
    fn default() -> Self {
        HtmlRulesConfig {
            enabled: true,
            max_parts: 16,
            max_bytes: 512 * 1024,
            hidden_text_min: 300,
            zero_font_min: 20,
            same_colour_min: 150,
            empty_image_max_text: 50,
        }
    }
}

impl Section for HtmlRulesConfig {
    const KEY: &'static str = "html_rules";

    fn validate(&self, problems: &mut Problems) {
        if self.max_bytes == 0 {
            problems.at(
                "max_bytes",
                "must be above 0 (set enabled = false to turn the HTML rules off)",
            );
        }
    }
}

pub struct HtmlRules {
    config: HtmlRulesConfig,
}

impl HtmlRules {
    pub fn new(config: &HtmlRulesConfig) -> HtmlRules {
        HtmlRules {
            config: config.clone(),
        }
    }
}

const GROUP: &str = "html";

impl Check for HtmlRules {
    fn name(&self) -> &'static str {
        "html_rules"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let s = |n: &str, w: f64, d: &str| SymbolDef::new(n, w, GROUP, d);
        vec![
            s(
                "HTML_FORM",
                2.0,
                "HTML form that sends credentials or personal data to a web address",
            ),
            s(
                "HTML_FORM_PASSWORD",
                4.0,
                "HTML has a form with a password field",
            ),
            s(
                "HTML_HIDDEN_TEXT",
                2.0,
                "Much HTML text hidden (display:none, visibility:hidden)",
            ),
            s("ZERO_FONT", 1.0, "HTML text in a zero or one-pixel font"),
            s(
                "R_WHITE_ON_WHITE",
                4.0,
                "HTML text in the colour of its background",
            ),
            s(
                "HTML_SHORT_LINK_IMG_1",
                2.0,
                "Short HTML part (under 1 KiB) with a linked image",
            ),
            s(
                "HTML_SHORT_LINK_IMG_2",
                1.0,
                "Short HTML part (under 1.5 KiB) with a linked image",
            ),
            s(
                "HTML_SHORT_LINK_IMG_3",
                0.5,
                "Short HTML part (under 2 KiB) with a linked image",
            ),
            s(
                "R_EMPTY_IMAGE",
                2.0,
                "Images and almost no text in the message",
            ),
            s(
                "R_SUSPICIOUS_URL",
                5.0,
                "Link target written to hide it: entities or %-escapes in scheme or host, a numeric host",
            ),
            s("HTML_JAVASCRIPT_LINK", 0.5, "A javascript: link"),
            s("HAS_DATA_URI", 0.0, "A data: URL in a link or image"),
            s("DATA_URI_OBFU", 3.0, "A data: URL carrying HTML or script"),
            s(
                "HTTP_TO_HTTPS",
                0.5,
                "Link text shows an https URL, the target is http",
            ),
            s(
                "HTTPS_TO_HTTP",
                0.5,
                "Link text shows an http URL, the target is https",
            ),
            s(
                "HTML_META_REFRESH_URL",
                1.0,
                "HTML meta refresh that sends the reader to a URL",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        let mut found = Found::default();
        let mut budget = Budget {
            tags: MAX_TAGS,
            links: MAX_LINKS,
        };
        let mut html_parts = 0;
        let mut plain_text = 0usize;
        for part in &task.message.parts {
            match &part.body {
                PartType::Html(h) if html_parts < self.config.max_parts => {
                    html_parts += 1;
                    let h = truncate(h, self.config.max_bytes);
                    scan_html(h, &mut budget, &mut found);
                }
                PartType::Text(t) if plain_text <= self.config.empty_image_max_text => {
                    plain_text += t
                        .bytes()
                        .filter(|c| !c.is_ascii_whitespace())
                        .take(self.config.empty_image_max_text + 1)
                        .count();
                }
                _ => {}
            }
        }
        if html_parts == 0 {
            return;
        }
        let c = &self.config;
        if let Some(action) = found.form_action.take() {
            results.insert("HTML_FORM", vec![action]);
        }
        if found.password_input {
            results.insert("HTML_FORM_PASSWORD", vec![]);
        }
        if found.hidden_chars >= c.hidden_text_min {
            results.insert("HTML_HIDDEN_TEXT", vec![found.hidden_chars.to_string()]);
        }
        if found.zero_font_chars >= c.zero_font_min {
            results.insert("ZERO_FONT", vec![found.zero_font_chars.to_string()]);
        }
        if found.same_colour_chars >= c.same_colour_min {
            results.insert(
                "R_WHITE_ON_WHITE",
                vec![found.same_colour_chars.to_string()],
            );
        }
        if let Some(size) = found.short_link_img {
            let name = match size {
                0..1024 => "HTML_SHORT_LINK_IMG_1",
                1024..1536 => "HTML_SHORT_LINK_IMG_2",
                _ => "HTML_SHORT_LINK_IMG_3",
            };
            results.insert(name, vec![]);
        }
        let has_image = found.images > 0
            || task
                .attachments()
                .any(|a| a.declared_type.is_some_and(|t| t.starts_with("image/")));
        if has_image
            && found.visible_chars + plain_text <= c.empty_image_max_text
            && found.images > 0
        {
            results.insert("R_EMPTY_IMAGE", vec![]);
        }
        for (flag, name) in [
            (&found.suspicious_url, "R_SUSPICIOUS_URL"),
            (&found.javascript_link, "HTML_JAVASCRIPT_LINK"),
            (&found.data_uri, "HAS_DATA_URI"),
            (&found.data_uri_obfu, "DATA_URI_OBFU"),
            (&found.http_to_https, "HTTP_TO_HTTPS"),
            (&found.https_to_http, "HTTPS_TO_HTTP"),
            (&found.meta_refresh, "HTML_META_REFRESH_URL"),
        ] {
            if let Some(option) = flag {
                results.insert(name, vec![option.clone()]);
            }
        }
    }
}

/// What is left of the per-message limits.
pub struct Budget {
    pub tags: usize,
    pub links: usize,
}

/// What the HTML parts of a message showed.
#[derive(Debug, Default)]
pub struct Found {
    pub visible_chars: usize,
    pub hidden_chars: usize,
    pub zero_font_chars: usize,
    pub same_colour_chars: usize,
    pub images: usize,
    /// Size of the smallest HTML part with an image inside a link, when under 2 KiB.
    pub short_link_img: Option<usize>,
    pub form_action: Option<String>,
    pub password_input: bool,
    /// The action of the form being read, until one of its inputs asks for
    /// credentials or personal data.
    open_form: Option<String>,
    pub suspicious_url: Option<String>,
    pub javascript_link: Option<String>,
    pub data_uri: Option<String>,
    pub data_uri_obfu: Option<String>,
    pub http_to_https: Option<String>,
    pub https_to_http: Option<String>,
    pub meta_refresh: Option<String>,
}

/// The style an open element gives the text inside it.
#[derive(Debug, Clone, Copy, Default)]
struct Style {
    hidden: bool,
    zero_font: bool,
    colour: Option<u32>,
    background: Option<u32>,
    /// The background may come from a style sheet or an image this scan
    /// does not read (a `class`, a `background` image): no colour is
    /// then compared with the default white page.
    background_unknown: bool,
}

struct Open<'h> {
    name: &'h str,
    style: Style,
}

/// The link being read: its target and the text shown for it.
struct Link {
    href: String,
    text: String,
    has_img: bool,
}

static COMMENT_END: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"-->"));
static END_TAG: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"</"));

/// Elements that have no content and no end tag.
#[cfg(test)]
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose content is not text a reader sees.
#[cfg(test)]
const RAW_TEXT: &[&str] = &["script", "style", "title", "template", "head", "xml"];

/// The elements the scan treats apart, told from a tag's name once (ASCII
/// case ignored) instead of by comparing the name with each list and each
/// element the scan knows, tag after tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    A,
    Area,
    Img,
    Form,
    Input,
    Meta,
    Body,
    Font,
    /// Raw text (`script`, `style`, `title`, `template`, `xml`): skipped
    /// to its end tag, spelt here in lower case.
    Raw(&'static str),
    /// `head`: raw text by the list, but its elements are looked at.
    Head,
    /// Any other void element (`br`, `hr`, `link`...).
    Void,
    Other,
}

impl Tag {
    fn of(name: &str) -> Tag {
        let b = name.as_bytes();
        if b.len() > 8 {
            return Tag::Other;
        }
        let mut low = [0u8; 8];
        for (d, c) in low.iter_mut().zip(b) {
            *d = c.to_ascii_lowercase();
        }
        match &low[..b.len()] {
            b"a" => Tag::A,
            b"area" => Tag::Area,
            b"img" => Tag::Img,
            b"form" => Tag::Form,
            b"input" => Tag::Input,
            b"meta" => Tag::Meta,
            b"body" => Tag::Body,
            b"font" => Tag::Font,
            b"head" => Tag::Head,
            b"script" => Tag::Raw("script"),
            b"style" => Tag::Raw("style"),
            b"title" => Tag::Raw("title"),
            b"template" => Tag::Raw("template"),
            b"xml" => Tag::Raw("xml"),
            b"base" | b"br" | b"col" | b"embed" | b"hr" | b"link" | b"param" | b"source"
            | b"track" | b"wbr" => Tag::Void,
            _ => Tag::Other,
        }
    }

    /// An element with no content and no end tag.
    fn is_void(self) -> bool {
        matches!(
            self,
            Tag::Area | Tag::Img | Tag::Input | Tag::Meta | Tag::Void
        )
    }
}

/// Reads one HTML part, adding what it shows to `found`.
pub fn scan_html(html: &str, budget: &mut Budget, found: &mut Found) {
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
        let tag = Tag::of(name);
        match tag {
            // The head's elements (meta, title) are looked at on the way.
            Tag::Head => continue,
            // Skip to the end tag: nothing inside is shown as text.
            Tag::Raw(raw) => {
                pos = skip_raw_text(b, pos, raw);
                continue;
            }
            _ => {}
        }
        let parent = stack.last().map_or(body_style, |o| o.style);
        let style = style_of(tag, attrs, parent);
        element(tag, attrs, html.len(), budget, &mut link, found);
        if tag == Tag::Body {
            body_style = style;
            continue;
        }
        if tag.is_void() || attrs.trim_end().ends_with('/') {
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

/// The `>` that ends the tag whose content starts at `from`, outside quotes.
fn tag_end(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    // Only `>` and quotes matter: the bytes between are skipped by memchr.
    while let Some(p) = memchr::memchr3(b'>', b'"', b'\'', &b[i..]) {
        i += p;
        let c = b[i];
        if c == b'>' {
            return Some(i);
        }
        if i > from && matches!(b[i - 1], b'=' | b' ') {
            match memchr::memchr(c, &b[i + 1..]) {
                Some(q) => {
                    i += 1 + q + 1;
                    continue;
                }
                // An unclosed quote: the tag ends at the next `>` after all.
                None => return memchr::memchr(b'>', &b[from..]).map(|p| from + p),
            }
        }
        i += 1;
    }
    None
}

/// The position after the end tag of a raw-text element (`</script>`).
fn skip_raw_text(b: &[u8], from: usize, name: &str) -> usize {
    let mut i = from;
    while let Some(p) = END_TAG.find(&b[i..]) {
        let s = i + p + 2;
        if b.len() >= s + name.len() && b[s..s + name.len()].eq_ignore_ascii_case(name.as_bytes()) {
            return memchr::memchr(b'>', &b[s..]).map_or(b.len(), |g| s + g + 1);
        }
        i = s;
    }
    b.len()
}

fn close(
    name: &str,
    part_len: usize,
    stack: &mut Vec<Open<'_>>,
    link: &mut Option<Link>,
    found: &mut Found,
) {
    if name.eq_ignore_ascii_case("a")
        && let Some(l) = link.take()
    {
        end_link(l, part_len, found);
    }
    // Pop to the matching element if it is near the top; a stray end tag
    // changes nothing.
    if let Some(i) = stack
        .iter()
        .rev()
        .take(16)
        .position(|o| o.name.eq_ignore_ascii_case(name))
    {
        let keep = stack.len() - 1 - i;
        stack.truncate(keep);
    }
}

/// Counts the characters of `t` (not white space) by how they are shown.
fn text(t: &str, stack: &[Open<'_>], body: Style, link: &mut Option<Link>, found: &mut Found) {
    let style = stack.last().map_or(body, |o| o.style);
    let n = visible_bytes(t.as_bytes());
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

/// The bytes of `t` that are not ASCII white space, counted 64 at a time
/// into a byte-wide sum with a test the compiler turns into vector compares
/// (`is_ascii_whitespace` in a filter is a branch per byte).
fn visible_bytes(t: &[u8]) -> usize {
    let mut n = 0;
    for block in t.chunks(64) {
        let mut white = 0u8;
        for &c in block {
            // \t \n \x0C \r or space: 9..=13 without 11, or 32.
            white += u8::from((c == b' ') | ((c.wrapping_sub(9) < 5) & (c != 11)));
        }
        n += block.len() - usize::from(white);
    }
    n
}

/// Text colour equal (or nearly) to the background the HTML sets.
fn same_colour(colour: Option<u32>, background: Option<u32>) -> bool {
    // Only a background the HTML sets counts: the page's default white is
    // often covered by a style sheet or an image this scan does not see.
    let Some(c) = colour else {
        return false;
    };
    let Some(bg) = background else {
        return false;
    };
    let d = |shift: u32| ((c >> shift) & 0xFF).abs_diff((bg >> shift) & 0xFF);
    d(16) <= 8 && d(8) <= 8 && d(0) <= 8
}

/// The style element `tag` with `attrs` gives its content, inherited from `parent`.
fn style_of(tag: Tag, attrs: &str, parent: Style) -> Style {
    let mut s = parent;
    // Most tags have no attributes. (Only a shortcut: attribute text of
    // other white space, which `str::trim` would also take off, has no
    // attribute name the loop below knows.)
    if attrs.bytes().all(|c| c.is_ascii_whitespace()) {
        return s;
    }
    let font = tag == Tag::Font;
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

/// Applies the declarations of an inline style that hide text or colour it.
fn apply_css(css: &str, s: &mut Style) {
    for decl in css.split(';').take(64) {
        let Some((prop, value)) = decl.split_once(':') else {
            continue;
        };
        let prop = prop.trim();
        // `trim_end_matches("!important")` without a searcher per call.
        let mut value = value.trim();
        while let Some(v) = value.strip_suffix("!important") {
            value = v;
        }
        let value = value.trim();
        if (prop.eq_ignore_ascii_case("display") && value.eq_ignore_ascii_case("none"))
            || (prop.eq_ignore_ascii_case("visibility") && value.eq_ignore_ascii_case("hidden"))
        {
            s.hidden = true;
        } else if prop.eq_ignore_ascii_case("font-size") {
            s.zero_font = is_tiny_size(value);
        } else if prop.eq_ignore_ascii_case("color") {
            if let Some(c) = parse_colour(value) {
                s.colour = Some(c);
            }
        } else if prop.eq_ignore_ascii_case("background-color")
            || prop.eq_ignore_ascii_case("background")
            || prop.eq_ignore_ascii_case("background-image")
        {
            if value
                .as_bytes()
                .windows(4)
                .any(|w| w.eq_ignore_ascii_case(b"url("))
            {
                s.background = None;
                s.background_unknown = true;
            } else if let Some(c) = value.split_whitespace().find_map(parse_colour) {
                s.background = Some(c);
                s.background_unknown = false;
            }
        }
    }
}

/// A font size of at most one pixel (or point): `0`, `0px`, `1px`, `0.5pt`, `0em`.
fn is_tiny_size(v: &str) -> bool {
    let num: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = v[num.len()..].trim();
    match num.parse::<f64>() {
        Ok(0.0) => true,
        Ok(n) => n <= 1.0 && (unit.eq_ignore_ascii_case("px") || unit.eq_ignore_ascii_case("pt")),
        Err(_) => false,
    }
}

/// `#rgb`, `#rrggbb`, `rgb(r, g, b)` or a common colour name, as 0xRRGGBB.
fn parse_colour(v: &str) -> Option<u32> {
    let v = v.trim();
    if let Some(hex) = v.strip_prefix('#') {
        let hex = hex.get(..6.min(hex.len()))?;
        return match hex.len() {
            3 => {
                let n = u32::from_str_radix(hex, 16).ok()?;
                let (r, g, b) = ((n >> 8) & 0xF, (n >> 4) & 0xF, n & 0xF);
                Some(((r * 17) << 16) | ((g * 17) << 8) | (b * 17))
            }
            6 => u32::from_str_radix(hex, 16).ok(),
            _ => None,
        };
    }
    let lower = v.to_ascii_lowercase();
    if let Some(args) = lower
        .strip_prefix("rgb(")
        .or_else(|| lower.strip_prefix("rgba("))
    {
        let mut n = args
            .trim_end_matches(')')
            .split(',')
            .map(|x| x.trim().parse::<u32>().ok().map(|x| x.min(255)));
        let (r, g, b) = (n.next()??, n.next()??, n.next()??);
        return Some((r << 16) | (g << 8) | b);
    }
    Some(match lower.as_str() {
        "white" => 0xFF_FF_FF,
        "black" => 0,
        "red" => 0xFF_00_00,
        "green" => 0x00_80_00,
        "blue" => 0x00_00_FF,
        "yellow" => 0xFF_FF_00,
        "gray" | "grey" => 0x80_80_80,
        "silver" => 0xC0_C0_C0,
        "navy" => 0x00_00_80,
        "snow" => 0xFF_FA_FA,
        "whitesmoke" => 0xF5_F5_F5,
        "ghostwhite" => 0xF8_F8_FF,
        "ivory" => 0xFF_FF_F0,
        _ => return None,
    })
}

/// Input names that ask for credentials or personal data (a search or
/// weather form asks for none; an e-mail address alone is what newsletter
/// subscribe and forward forms ask for).
const PERSONAL_FIELDS: &[&str] = &[
    "pass", "pwd", "login", "user", "account", "card", "cvv", "cvc", "ssn", "pin", "iban", "expir",
    "otp",
];

/// Looks at an element that matters whatever its content: links, images,
/// forms, inputs, meta refresh.
fn element(
    tag: Tag,
    attrs: &str,
    part_len: usize,
    budget: &mut Budget,
    link: &mut Option<Link>,
    found: &mut Found,
) {
    if tag == Tag::Img {
        found.images += 1;
        if let Some(l) = link {
            l.has_img = true;
        }
        if let Some(src) = attr(attrs, "src") {
            target(src, budget, found);
        }
    } else if tag == Tag::A || tag == Tag::Area {
        if let Some(l) = link.take() {
            end_link(l, part_len, found);
        }
        if let Some(href) = attr(attrs, "href") {
            target(href, budget, found);
            if tag == Tag::A {
                *link = Some(Link {
                    href: decode_entities(href).into_owned(),
                    text: String::new(),
                    has_img: false,
                });
            }
        }
    } else if tag == Tag::Form {
        let action = attr(attrs, "action").map(decode_entities);
        if let Some(a) = &action {
            target(a, budget, found);
        }
        let shown = action
            .as_deref()
            .map(|a| a.trim())
            .filter(|a| has_scheme(a, "http") || has_scheme(a, "https") || has_scheme(a, "data"));
        found.open_form = shown.map(|a| host_of(a).to_string());
    } else if tag == Tag::Input {
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
    } else if tag == Tag::Meta
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

/// The link is done: its text's scheme against its target's, and an image
/// inside it in a short part.
fn end_link(l: Link, part_len: usize, found: &mut Found) {
    if l.has_img && part_len < 2048 {
        found.short_link_img = Some(found.short_link_img.map_or(part_len, |s| s.min(part_len)));
    }
    let text = decode_entities(l.text.trim());
    let text = text.trim();
    let href = l.href.trim();
    // Only a text that is itself a URL says which scheme the reader expects.
    if has_scheme(text, "https") && has_scheme(href, "http") && found.http_to_https.is_none() {
        found.http_to_https = Some(host_of(href).to_string());
    } else if has_scheme(text, "http") && has_scheme(href, "https") && found.https_to_http.is_none()
    {
        found.https_to_http = Some(host_of(href).to_string());
    }
}

/// `url` begins with `scheme:` (and, for http and https, exactly that scheme).
fn has_scheme(url: &str, scheme: &str) -> bool {
    url.len() > scheme.len()
        && url.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        && url.as_bytes()[scheme.len()] == b':'
}

/// The host of an absolute URL, for a symbol's option (at most 100 bytes).
fn host_of(url: &str) -> &str {
    let rest = find_short(url, "://").map_or(url, |i| &url[i + 3..]);
    let end = rest
        .bytes()
        .position(|c| matches!(c, b'/' | b'?' | b'#' | b'\\'))
        .unwrap_or(rest.len());
    truncate(&rest[..end], 100)
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
    // After the last `@`, before the first `:` (`rsplit('@')` and
    // `split(':')` by memchr, without a searcher each).
    let host = memchr::memrchr(b'@', host.as_bytes()).map_or(host, |i| &host[i + 1..]);
    let host = memchr::memchr(b':', host.as_bytes()).map_or(host, |i| &host[..i]);
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

/// A host that is one number (decimal `3232235777`, hex `0xC0A80001`) or
/// dotted with hex or octal parts: an IP address written to hide it.
fn is_numeric_host(h: &str) -> bool {
    if h.is_empty() {
        return false;
    }
    let labels = || h.split('.');
    let numeric = |l: &str| {
        !l.is_empty()
            && (l.bytes().all(|c| c.is_ascii_digit())
                || l.as_bytes()
                    .get(..2)
                    .is_some_and(|p| p.eq_ignore_ascii_case(b"0x"))
                    && l.len() > 2
                    && l.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit))
    };
    // Most hosts fail at their first label: no list of labels is built.
    if !labels().all(numeric) {
        return false;
    }
    // A plain dotted quad of decimals is an IP host, the URL rules' business.
    let plain = labels().count() == 4
        && labels()
            .all(|l| l.len() <= 3 && !(l.len() > 1 && l.starts_with('0')) && !l.starts_with("0x"));
    !plain
}

/// Reads attribute `name` from a tag's attribute text: its value without
/// quotes, at most [`MAX_ATTR`] bytes; `Some("")` for an attribute with
/// no value.
pub fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    attributes(attrs)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| truncate(v, MAX_ATTR))
}

/// The `(name, value)` pairs of a tag's attribute text, values without
/// their quotes; nothing is copied.
pub fn attributes(attrs: &str) -> Attributes<'_> {
    Attributes { attrs, i: 0 }
}

pub struct Attributes<'a> {
    attrs: &'a str,
    i: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let attrs = self.attrs;
        let b = attrs.as_bytes();
        let mut i = self.i;
        while i < b.len() {
            while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
                i += 1;
            }
            let ns = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'/') {
                i += 1;
            }
            let key = &attrs[ns..i];
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = "";
            if i < b.len() && b[i] == b'=' {
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                    let q = b[i];
                    let vs = i + 1;
                    let ve = memchr::memchr(q, &b[vs..]).map_or(b.len(), |p| vs + p);
                    value = &attrs[vs..ve];
                    i = (ve + 1).min(b.len());
                } else {
                    let vs = i;
                    while i < b.len() && !b[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = &attrs[vs..i];
                }
            }
            if !key.is_empty() {
                self.i = i;
                return Some((key, value));
            }
            if i < b.len() {
                // A stray character: step over it whole.
                i += 1;
                while i < b.len() && !attrs.is_char_boundary(i) {
                    i += 1;
                }
            }
        }
        self.i = b.len();
        None
    }
}

/// Decodes the character references a link may hide behind: `&#104;`,
/// `&#x68;`, and the named ones that matter in URLs.
/// Borrowed when there is none (most links): no copy.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '#')
            .map_or(rest.len(), |p| p + 1);
        let body = &rest[1..end];
        let decoded = if let Some(num) = body.strip_prefix('#') {
            let n = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => num.parse::<u32>().ok(),
            };
            n.and_then(char::from_u32)
        } else {
            match body.to_ascii_lowercase().as_str() {
                "amp" => Some('&'),
                "colon" => Some(':'),
                "sol" => Some('/'),
                "period" => Some('.'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "nbsp" => Some(' '),
                _ => None,
            }
        };
        match decoded {
            Some(c) if end > 1 => {
                out.push(c);
                rest = rest[end..].strip_prefix(';').unwrap_or(&rest[end..]);
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod reference;

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;
    use proptest::prelude::*;

    /// Found by the mime fuzz target: a label whose second byte is inside
    /// a multi-byte character was sliced at byte 2.
    #[test]
    fn numeric_host_check_takes_any_utf8_label() {
        assert!(!is_numeric_host("a\u{c0}dJaN.example"));
        assert!(!is_numeric_host("\u{c0}"));
        assert!(is_numeric_host("0xC0A80001"));
        assert!(!is_numeric_host("0x"));
    }

    fn html_msg(html: &str) -> String {
        format!("From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n")
    }

    fn names(raw: &str) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 30);
        let mut r = ScanResults::default();
        HtmlRules::new(&HtmlRulesConfig::default()).run(&task, &mut r);
        r.hits.iter().map(|h| h.name.clone()).collect()
    }

    fn body(words: usize) -> String {
        "Plenty of ordinary visible words here. ".repeat(words)
    }

    #[test]
    fn an_ordinary_newsletter_has_none() {
        let html = format!(
            "<html><head><title>News</title><style>p {{ color: #fff }}</style></head>\
             <body bgcolor=\"#ffffff\"><div style=\"display:none\">preview text</div>\
             <table style=\"background-color:#000000\"><tr><td style=\"color:#ffffff\">White on black</td></tr></table>\
             <p>{}</p><a href=\"https://news.example.com/a\">https://news.example.com/a</a>\
             <img src=\"https://news.example.com/logo.png\"></body></html>",
            body(10)
        );
        assert!(
            names(&html_msg(&html)).is_empty(),
            "{:?}",
            names(&html_msg(&html))
        );
    }

    #[test]
    fn forms_and_passwords() {
        let html = format!(
            "<p>{}</p><form action=\"https://evil.example/post.php\" method=post>\
             <input type=hidden name=user value=x><input type=text name=u><input type=\"password\" name=p></form>",
            body(5)
        );
        assert_eq!(names(&html_msg(&html)), ["HTML_FORM", "HTML_FORM_PASSWORD"]);
    }

    #[test]
    fn newsletter_forms_are_not_credential_forms() {
        let html = format!(
            "<p>{}</p><form action=\"https://news.example.com/sub\" method=post>\
             <input type=hidden name=user value=list><input type=text name=email>\
             <input type=text name=q></form>",
            body(5)
        );
        assert!(names(&html_msg(&html)).is_empty());
    }

    #[test]
    fn hidden_zero_font_and_same_colour_text() {
        let filler = "bayes poison words ".repeat(30);
        let html = format!(
            "<p>{}</p><div style=\"DISPLAY: none !important\"><p>{filler}</p></div>\
             <span style=\"font-size:0px\">zero font text hidden here</span>\
             <table bgcolor=white><tr><td><font color=\"#FFF\">{filler}</font></td></tr></table>",
            body(5)
        );
        assert_eq!(
            names(&html_msg(&html)),
            ["HTML_HIDDEN_TEXT", "ZERO_FONT", "R_WHITE_ON_WHITE"]
        );
        // Closed elements stop hiding.
        let html = format!(
            "<div style=\"display:none\">x</div><p>{}</p><span style=\"font-size:0\"></span>{}",
            body(5),
            body(20)
        );
        assert!(names(&html_msg(&html)).is_empty());
    }

    #[test]
    fn image_only_and_short_linked_image() {
        let html =
            "<a href=\"https://shop.example/x\"><img src=\"https://shop.example/i.jpg\"></a>";
        assert_eq!(
            names(&html_msg(html)),
            ["HTML_SHORT_LINK_IMG_1", "R_EMPTY_IMAGE"]
        );
        let html = format!("{html}<!-- {} -->", "x".repeat(1200));
        assert_eq!(
            names(&html_msg(&html)),
            ["HTML_SHORT_LINK_IMG_2", "R_EMPTY_IMAGE"]
        );
    }

    #[test]
    fn obfuscated_script_and_data_links() {
        let t = body(5);
        for (html, want) in [
            (
                "<a href=\"&#104;&#116;&#116;&#112;://evil.example/\">x</a>",
                "R_SUSPICIOUS_URL",
            ),
            (
                "<a href=\"http://ev%69l.example/\">x</a>",
                "R_SUSPICIOUS_URL",
            ),
            ("<a href=\"http://3232235777/\">x</a>", "R_SUSPICIOUS_URL"),
            (
                "<a href=\"http://0xC0.0xA8.0.1/\">x</a>",
                "R_SUSPICIOUS_URL",
            ),
            (
                "<a href=\" javascript:alert(1)\">x</a>",
                "HTML_JAVASCRIPT_LINK",
            ),
            (
                "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">x</a>",
                "DATA_URI_OBFU",
            ),
            (
                "<a href=\"http://plain.example/\">https://bank.example/</a>",
                "HTTP_TO_HTTPS",
            ),
            (
                "<meta http-equiv=\"refresh\" content=\"0; url=https://evil.example/\">",
                "HTML_META_REFRESH_URL",
            ),
        ] {
            let got = names(&html_msg(&format!("<p>{t}</p>{html}")));
            assert!(got.contains(&want.to_string()), "{html}: {got:?}");
        }
        // A plain IP host is not an obfuscation; an image as data: is only noted.
        let got = names(&html_msg(&format!(
            "<p>{t}</p><a href=\"http://192.0.2.1/\">x</a><img src=\"data:image/png;base64,AA\">"
        )));
        assert_eq!(got, ["HAS_DATA_URI"]);
    }

    #[test]
    fn attributes_and_entities() {
        assert_eq!(attr(" a=1 href = 'x y' b", "href"), Some("x y"));
        assert_eq!(attr(" hidden", "hidden"), Some(""));
        assert_eq!(attr(" HREF=x>", "href"), Some("x>"));
        assert_eq!(attr("=== \"", "href"), None);
        assert_eq!(
            decode_entities("&#x68;t&#116;p&colon;//a&amp;b &bogus; &"),
            "http://a&b &bogus; &"
        );
        assert_eq!(parse_colour("#FfF"), Some(0xFFFFFF));
        assert_eq!(parse_colour("rgb(255, 0, 300)"), Some(0xFF00FF));
        assert_eq!(parse_colour("#12"), None);
        assert!(is_tiny_size("0") && is_tiny_size("1px") && !is_tiny_size("12px"));
        assert!(!is_tiny_size("1em"));
    }

    #[test]
    fn limits_hold_on_huge_input() {
        let mut budget = Budget {
            tags: 100,
            links: 5,
        };
        let mut found = Found::default();
        let html = "<div><a href=\"http://a.example/\"><img src=x>".repeat(10_000);
        scan_html(&html, &mut budget, &mut found);
        assert_eq!(budget.tags, 0);
        assert!(found.images <= 100);
        // Deep nesting stays within the stack bound.
        let mut budget = Budget {
            tags: MAX_TAGS,
            links: MAX_LINKS,
        };
        scan_html(
            &"<div style=\"display:none\">".repeat(5000),
            &mut budget,
            &mut found,
        );
    }

    #[test]
    fn tag_kinds_follow_the_lists() {
        let names = [
            "a",
            "A",
            "area",
            "ArEa",
            "img",
            "IMG",
            "form",
            "input",
            "meta",
            "body",
            "font",
            "head",
            "HEAD",
            "script",
            "Script",
            "style",
            "title",
            "template",
            "TEMPLATE",
            "xml",
            "base",
            "br",
            "Br",
            "col",
            "embed",
            "hr",
            "link",
            "param",
            "source",
            "track",
            "wbr",
            "div",
            "span",
            "abbr",
            "scripts",
            "templates",
            "i\u{f1}",
            "\u{c0}",
            "ab",
            "b",
            "",
        ];
        for name in names {
            let tag = Tag::of(name);
            let raw = RAW_TEXT.iter().find(|t| name.eq_ignore_ascii_case(t));
            match tag {
                Tag::Head => assert_eq!(raw, Some(&"head")),
                Tag::Raw(r) => assert_eq!(raw, Some(&r), "{name}"),
                _ => assert_eq!(raw, None, "{name}"),
            }
            assert_eq!(
                tag.is_void(),
                VOID.iter().any(|v| name.eq_ignore_ascii_case(v)),
                "{name}"
            );
            for (t, n) in [
                (Tag::A, "a"),
                (Tag::Area, "area"),
                (Tag::Img, "img"),
                (Tag::Form, "form"),
                (Tag::Input, "input"),
                (Tag::Meta, "meta"),
                (Tag::Body, "body"),
                (Tag::Font, "font"),
            ] {
                assert_eq!(tag == t, name.eq_ignore_ascii_case(n), "{name} {n}");
            }
        }
    }

    /// Every byte, alone and in runs across the 64-byte blocks.
    #[test]
    fn visible_bytes_counts_as_the_filter() {
        let old = |t: &[u8]| t.iter().filter(|c| !c.is_ascii_whitespace()).count();
        for c in 0..=255u8 {
            for len in [0, 1, 63, 64, 65, 200] {
                let t = vec![c; len];
                assert_eq!(visible_bytes(&t), old(&t), "{c} x {len}");
            }
        }
        let mixed: Vec<u8> = (0..1000u32).map(|i| (i * 37 % 256) as u8).collect();
        for start in 0..70 {
            assert_eq!(visible_bytes(&mixed[start..]), old(&mixed[start..]));
        }
    }

    /// Pieces of HTML that reach every branch of the scan, in any order.
    const PIECES: &[&str] = &[
        "<a href=\"http://x.example/p\">",
        "<A HREF='https://u@h.example:8080/'>",
        "</a>",
        "</A>",
        "<area href=http://0x7f.1/>",
        "<img src=\"http://i.example/i.png\">",
        "<IMG SRC=x>",
        "<img src=\"data:image/svg+xml;base64,AA\">",
        "<a href=\"&#104;ttp://e.example/\">",
        "<a href=\" javascript:void(0)\">",
        "<a href=\"http://ev%69l.example/\">",
        "<a href=\"http://3232235777/\">",
        "<a href=\"http://a\\b.example/\">",
        "<form action=\"https://f.example/p\">",
        "<FORM action=data:text/html,x>",
        "</form>",
        "<input type=password name=p>",
        "<input type=hidden name=user>",
        "<Input name=Card>",
        "<input type=text name=q/>",
        "<meta http-equiv=refresh content=\"0; URL='http://m.example/'\">",
        "<META HTTP-EQUIV=\"Refresh\" content=\"5\">",
        "<body bgcolor=\"#000\">",
        "<BODY>",
        "<font color=white>",
        "<FONT COLOR=\"#fffffe\" size=0>",
        "</font>",
        "<head>",
        "</head>",
        "<title>t</title>",
        "<script>var a='<b>';</script>",
        "<STYLE>p{}</style>",
        "<template>",
        "<xml>",
        "</xml>",
        "<br>",
        "<BR/>",
        "<hr >",
        "<link rel=x>",
        "<wbr>",
        "<div>",
        "</div>",
        "<div style=\"display:none\">",
        "<span style=\"font-size:0px\">",
        "</span>",
        "<td style=\"color:#fff; background-color:#fff\">",
        "<td class=c>",
        "</td>",
        "<p hidden>",
        "</p>",
        "<table background=x.png>",
        "<divx>",
        "<!-- c -->",
        "<!--",
        "<",
        ">",
        "</",
        "<1>",
        "<a",
        "=\"",
        "'",
        "https://shown.example/",
        "http://t.example/",
        "text",
        " ",
        "\t\n",
        "\x0b\x0c\r",
        "words words words",
        "<p \u{b}\u{a0}>",
        "<font \u{3000}>",
        "&amp;",
        "&#x68;",
        "\u{e9}t\u{e9}",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The scan finds what the scan before the tag-kind dispatch found.
        #[test]
        fn scan_matches_the_reference(
            pieces in prop::collection::vec(prop::sample::select(PIECES), 0..80),
            tags in 0usize..100,
            links in 0usize..20,
        ) {
            let html = pieces.concat();
            for (tags, links) in [(MAX_TAGS, MAX_LINKS), (tags, links)] {
                let (mut b1, mut f1) = (Budget { tags, links }, Found::default());
                let (mut b2, mut f2) = (Budget { tags, links }, Found::default());
                scan_html(&html, &mut b1, &mut f1);
                reference::scan_html(&html, &mut b2, &mut f2);
                prop_assert_eq!(format!("{f1:?}"), format!("{f2:?}"));
                prop_assert_eq!((b1.tags, b1.links), (b2.tags, b2.links));
            }
        }

        #[test]
        fn scan_matches_the_reference_on_any_string(s in "\\PC{0,300}") {
            let (mut b1, mut f1) = (Budget { tags: MAX_TAGS, links: MAX_LINKS }, Found::default());
            let (mut b2, mut f2) = (Budget { tags: MAX_TAGS, links: MAX_LINKS }, Found::default());
            scan_html(&s, &mut b1, &mut f1);
            reference::scan_html(&s, &mut b2, &mut f2);
            prop_assert_eq!(format!("{f1:?}"), format!("{f2:?}"));
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_html(s in "(<[a-z/!\"'= -]{0,12}>|[a-z&#;:%\"'<>=/ ]{0,12}){0,40}") {
            let mut budget = Budget { tags: MAX_TAGS, links: MAX_LINKS };
            let mut found = Found::default();
            scan_html(&s, &mut budget, &mut found);
            let _ = names(&html_msg(&s));
        }

        #[test]
        fn never_panics_on_any_string(s in "\\PC{0,200}") {
            let mut budget = Budget { tags: MAX_TAGS, links: MAX_LINKS };
            let mut found = Found::default();
            scan_html(&s, &mut budget, &mut found);
            let _ = attr(&s, "href");
            let _ = decode_entities(&s);
            let _ = parse_colour(&s);
            let _ = is_tiny_size(&s);
        }
    }
}
