//! HTML reduced to text: the output of mail-parser 0.11's
//! `decoders::html::html_to_text`, byte for byte, computed faster.
//!
//! mail-parser's function walks every byte through its state machine. The
//! bytes of a tag after its name, of a comment, and of `<head>`, `<style>`,
//! `<script>` and `<template>` content change nothing that is used later,
//! so they are skipped with `memchr` to the next byte that matters (on
//! corpus-dev most HTML bytes are such). Text and tag names go through the
//! same state machine as mail-parser's, unchanged.

use mail_parser::decoders::html::add_html_token;

/// The bytes that end a token of text outside tags (`<`, white space, and
/// the `&` and `;` of entities); inside a word every other byte only
/// extends it, so the walk takes such runs whole.
const ENDS_TEXT_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    let stops = b"< \t\r\n&;";
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

/// mail-parser's `add_html_token` for the token `source[start..end]`,
/// which starts and ends at ASCII bytes: a word is pushed as the `&str` it
/// is (mail-parser validates every token's UTF-8 again), a character
/// reference goes to mail-parser's decoder.
fn add_token(result: &mut String, source: &str, start: usize, end: usize, add_space: bool) {
    let token = &source.as_bytes()[start..end];
    let reference = token.len() >= 2 && token[0] == b'&' && token[token.len() - 1] == b';';
    match source.get(start..end) {
        Some(word) if !reference => {
            if add_space {
                result.push(' ');
            }
            result.push_str(word);
        }
        _ => add_html_token(result, token, add_space),
    }
}

/// `mail_parser::decoders::html::html_to_text(input)`, faster.
pub fn html_to_text(input: &str) -> String {
    let mut result = String::with_capacity(input.len());
    let source = input;
    let input = input.as_bytes();

    let mut in_tag = false;
    let mut in_head = false;
    let mut in_style = false;
    let mut in_script = false;
    let mut in_template = false;
    let mut in_comment = false;

    let mut is_token_start = true;
    let mut is_after_space = false;
    let mut is_tag_close = false;
    let mut is_new_line = true;

    let mut token_start = 0;
    let mut token_end = 0;

    let mut tag_token_pos = 0;

    let mut pos = 0;
    while pos < input.len() {
        if in_comment {
            // Ends at the first `>` right after exactly two `-` (counted
            // from the comment's start, as mail-parser's counter does).
            let start = pos;
            loop {
                let Some(p) = memchr::memchr(b'>', &input[pos..]) else {
                    pos = input.len();
                    break;
                };
                let gt = pos + p;
                let dashes = input[start..gt]
                    .iter()
                    .rev()
                    .take(3)
                    .take_while(|&&c| c == b'-')
                    .count();
                pos = gt + 1;
                if dashes == 2 {
                    in_comment = false;
                    in_tag = false;
                    is_token_start = true;
                    break;
                }
            }
            continue;
        }
        if in_tag && tag_token_pos >= 2 {
            // Past the tag's name: only the next `<` or `>` matters.
            match memchr::memchr2(b'<', b'>', &input[pos..]) {
                Some(p) => pos += p,
                None => break,
            }
        } else if !in_tag && (in_head || in_style || in_script || in_template) {
            // Content that gives no text: only the next tag matters.
            match memchr::memchr(b'<', &input[pos..]) {
                Some(p) => pos += p,
                None => break,
            }
        }
        let ch = input[pos];
        pos += 1;
        let at = pos - 1;
        match ch {
            b'<' => {
                if !in_tag && !in_head && !in_style && !in_script && !in_template && !is_token_start
                {
                    add_token(
                        &mut result,
                        source,
                        token_start,
                        token_end + 1,
                        is_after_space,
                    );
                    is_after_space = false;
                }

                tag_token_pos = 0;
                in_tag = true;
                is_token_start = true;
                is_tag_close = false;
                continue;
            }
            b'>' if in_tag => {
                if tag_token_pos == 1 {
                    match input.get(token_start..token_end + 1) {
                        Some(tag)
                            if tag.eq_ignore_ascii_case(b"br")
                                || (tag.eq_ignore_ascii_case(b"p") && is_tag_close) =>
                        {
                            result.push('\n');
                            is_after_space = false;
                            is_new_line = true;
                        }
                        Some(tag) if tag.eq_ignore_ascii_case(b"head") => {
                            in_head = !is_tag_close;
                        }
                        Some(tag) if tag.eq_ignore_ascii_case(b"style") => {
                            in_style = !is_tag_close;
                        }
                        Some(tag) if tag.eq_ignore_ascii_case(b"script") => {
                            in_script = !is_tag_close;
                        }
                        Some(tag) if tag.eq_ignore_ascii_case(b"template") => {
                            in_template = !is_tag_close;
                        }
                        _ => (),
                    }
                }

                in_tag = false;
                is_token_start = true;

                continue;
            }
            b'/' if in_tag => {
                if tag_token_pos == 0 {
                    is_tag_close = true;
                }
                continue;
            }
            b'!' if in_tag && tag_token_pos == 0 => {
                if let Some(b"--") = input.get(at + 1..at + 3) {
                    in_comment = true;
                    continue;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => {
                if !in_tag && !in_head && !in_style && !in_script && !in_template {
                    if !is_token_start {
                        add_token(
                            &mut result,
                            source,
                            token_start,
                            token_end + 1,
                            is_after_space && !is_new_line,
                        );
                        is_new_line = false;
                    }
                    is_after_space = true;
                }

                is_token_start = true;

                continue;
            }
            b'&' if !in_tag && !is_token_start && !in_head => {
                if in_style || in_script || in_template {
                    continue;
                }
                add_token(
                    &mut result,
                    source,
                    token_start,
                    token_end + 1,
                    is_after_space && !is_new_line,
                );
                is_new_line = false;
                is_token_start = true;
                is_after_space = false;
            }
            b';' if !in_tag && !is_token_start && !in_head => {
                if in_style || in_script || in_template {
                    continue;
                }
                add_token(
                    &mut result,
                    source,
                    token_start,
                    at + 1,
                    is_after_space && !is_new_line,
                );
                is_token_start = true;
                is_after_space = false;
                is_new_line = false;
                continue;
            }
            _ => (),
        }
        if is_token_start {
            token_start = at;
            is_token_start = false;
            if in_tag {
                tag_token_pos += 1;
            }
        }
        token_end = at;
        if !in_tag && !in_head && !in_style && !in_script && !in_template {
            // The rest of a word of text: up to the next byte that ends a
            // token, every byte only moves the token's end.
            let run = input[pos..]
                .iter()
                .position(|&b| ENDS_TEXT_TOKEN[b as usize])
                .unwrap_or(input.len() - pos);
            if run > 0 {
                pos += run;
                token_end = pos - 1;
            }
        }
    }

    if !in_tag && !is_token_start && !in_head && !in_style && !in_script && !in_template {
        add_token(
            &mut result,
            source,
            token_start,
            token_end + 1,
            is_after_space && !is_new_line,
        );
    }

    result.shrink_to_fit();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::decoders::html::html_to_text as reference;

    #[test]
    fn same_text_as_mail_parser() {
        let cases = [
            "",
            "plain text &amp; more",
            "<html><head><title>t</title><style>p { x: 1 }</style></head><body><p>Hello <b>World</b>,<br>visit <a href=\"https://x.example/?a=1&b=2\" style='c:d'>here</a></p>&#x41;&#65;&nbsp;end</body></html>",
            "<!-- comment --> after <!---> x --> y <!----> z",
            "<!-- a -- > b --> c",
            "<a <b> c> d <br/> e </p> f <P>g</P>",
            "<script>if (a < b && c > d) { x = '</scr' + 'ipt>'; }</script>text",
            "<template><p>hidden</p></template>shown <head>h<x>y</head>z",
            "unclosed <a href=\"x",
            "unclosed comment <!-- forever",
            "<style>a{}</style",
            "a&b;c &amp;; ;; && <x a=b c=d e>f</x> g\r\n\th",
            "<<<>>> / ! -- &;",
            "<br><br/><BR >text<p/>more</p >x",
            "Grüße <b>Ä</b> 中文 &eacute;",
            "<div\tclass=x\nid=y>z</div>",
            "<!doctype html><html>ok</html>",
            "< a>b</ a>c",
            "<!-->x",
            "<!--->x-->y",
        ];
        for c in cases {
            assert_eq!(html_to_text(c), reference(c), "{c:?}");
        }
    }
}
