//! MIME and attachment rules (rspamd's `mime_types` module): attachments
//! whose name, declared type and real type (magic bytes) tell a program
//! dressed as a document, archives that carry programs or other archives,
//! encrypted archives, file names that hide their extension, and MIME
//! structure ordinary mail programs do not write.
//!
//! Symbols: MIME_BAD_EXTENSION (a dangerous extension, also inside a
//! zip), MIME_EXE (a program by its bytes), MIME_DOUBLE_BAD_EXTENSION
//! (`invoice.pdf.exe`), MIME_BAD_ATTACHMENT (the extension says one type,
//! the bytes another), MIME_TYPE_MISMATCH (the declared content type says
//! one type, the bytes another), MIME_ARCHIVE_IN_ARCHIVE,
//! MIME_ENCRYPTED_ARCHIVE, MIME_ARCHIVE_PASSWORD_HINT (an archive that
//! cannot be read and a text that gives its password), MIME_BAD_UNICODE
//! (bidirectional or invisible characters in a file name),
//! MIME_HTML_ATTACHMENT (an HTML or SVG file attached: a login page that
//! runs locally), MIME_MA_MISSING_TEXT / MIME_MA_MISSING_HTML
//! (multipart/alternative without its text or HTML version) and
//! R_BAD_CTE_7BIT (a text part declared 7bit with 8-bit bytes).
//! MIME_HTML_ONLY is the header check's.
//!
//! Limits: at most `max_attachments` attachments and `max_archive_entries`
//! zip entries (all archives together) per message, ZIP central
//! directories only (nothing is decompressed), at most
//! [`MAX_CTE_BYTES`] of a part read for 8-bit bytes, the first
//! [`MAX_HINT_TEXT`] bytes of each text part searched for a password.

pub mod zip;

use super::Check;
use crate::Task;
use mail_parser::{MimeHeaders, PartType};
use mxguard_core::config::{Problems, Section};
use mxguard_core::{ScanResults, SymbolDef};
use mxguard_message::attachment::Detected;
use serde::{Deserialize, Serialize};

/// Bytes of a part read to find an 8-bit byte under a 7bit declaration.
pub const MAX_CTE_BYTES: usize = 256 * 1024;
/// Bytes of each text part searched for a password hint.
pub const MAX_HINT_TEXT: usize = 16 * 1024;

/// `[mime_types]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MimeTypesConfig {
    pub enabled: bool,
    /// Extensions of files that run when opened (without the dot).
    pub bad_extensions: Vec<String>,
    /// Extensions of archives and disk images.
    pub archive_extensions: Vec<String>,
    /// Attachments looked at per message.
    pub max_attachments: usize,
    /// Zip entries read per message, all archives together.
    pub max_archive_entries: usize,
}

const BAD_EXTENSIONS: &[&str] = &[
    "exe",
    "scr",
    "pif",
    "com",
    "bat",
    "cmd",
    "vbs",
    "vbe",
    "js",
    "jse",
    "wsf",
    "wsh",
    "ws",
    "hta",
    "lnk",
    "cpl",
    "msi",
    "msp",
    "msc",
    "jar",
    "ps1",
    "psm1",
    "reg",
    "dll",
    "iso",
    "img",
    "vhd",
    "vhdx",
    "application",
    "gadget",
    "scf",
    "chm",
    "inf",
    "sct",
    "shb",
    "xll",
    "appx",
    "msix",
    "appref-ms",
    "library-ms",
    "settingcontent-ms",
    "ace",
    "arj",
];

const ARCHIVE_EXTENSIONS: &[&str] = &[
    "zip", "rar", "7z", "gz", "tgz", "bz2", "xz", "tar", "ace", "arj", "cab", "iso", "img", "lzh",
    "z", "r00", "r01", "uue",
];

impl Default for MimeTypesConfig {
    fn default() -> Self {
        MimeTypesConfig {
            enabled: true,
            bad_extensions: BAD_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            archive_extensions: ARCHIVE_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
            max_attachments: 64,
            max_archive_entries: 1000,
        }
    }
}

impl Section for MimeTypesConfig {
    const KEY: &'static str = "mime_types";

    fn validate(&self, problems: &mut Problems) {
        for (key, list) in [
            ("bad_extensions", &self.bad_extensions),
            ("archive_extensions", &self.archive_extensions),
        ] {
            for (i, e) in list.iter().enumerate() {
                if e.is_empty() || e.contains(['.', ' ', '/']) {
                    problems.at(
                        format!("{key}[{i}]"),
                        format!("`{e}`: write an extension without its dot, e.g. \"exe\""),
                    );
                }
            }
        }
    }
}

pub struct MimeTypes {
    bad: Vec<String>,
    archives: Vec<String>,
    max_attachments: usize,
    max_entries: usize,
}

impl MimeTypes {
    pub fn new(config: &MimeTypesConfig) -> MimeTypes {
        let lower = |v: &[String]| v.iter().map(|e| e.to_ascii_lowercase()).collect();
        MimeTypes {
            bad: lower(&config.bad_extensions),
            archives: lower(&config.archive_extensions),
            max_attachments: config.max_attachments,
            max_entries: config.max_archive_entries,
        }
    }

    fn is_bad(&self, ext: &str) -> bool {
        self.bad.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }

    fn is_archive(&self, ext: &str) -> bool {
        self.archives.iter().any(|e| e.eq_ignore_ascii_case(ext))
    }
}

const GROUP: &str = "mime_types";

impl Check for MimeTypes {
    fn name(&self) -> &'static str {
        "mime_types"
    }

    fn symbols(&self) -> Vec<SymbolDef> {
        let s = |n: &str, w: f64, d: &str| SymbolDef::new(n, w, GROUP, d);
        vec![
            s(
                "MIME_BAD_EXTENSION",
                4.0,
                "A file that runs when opened (by its extension), attached or in an archive",
            ),
            s("MIME_EXE", 3.0, "An attached program (by its first bytes)"),
            s(
                "MIME_DOUBLE_BAD_EXTENSION",
                3.0,
                "A dangerous extension behind a harmless one (invoice.pdf.exe)",
            ),
            s(
                "MIME_BAD_ATTACHMENT",
                4.0,
                "The file name's extension says another type than the file's bytes",
            ),
            s(
                "MIME_TYPE_MISMATCH",
                2.0,
                "The declared content type says another type than the file's bytes",
            ),
            s(
                "MIME_ARCHIVE_IN_ARCHIVE",
                3.0,
                "An archive inside an archive",
            ),
            s("MIME_ENCRYPTED_ARCHIVE", 2.0, "An encrypted archive"),
            s(
                "MIME_ARCHIVE_PASSWORD_HINT",
                2.0,
                "An archive that cannot be scanned and a text that gives its password",
            ),
            s(
                "MIME_BAD_UNICODE",
                5.0,
                "A file name with bidirectional or invisible characters",
            ),
            s("MIME_HTML_ATTACHMENT", 2.0, "An HTML or SVG file attached"),
            s(
                "MIME_MA_MISSING_TEXT",
                2.0,
                "multipart/alternative without a text/plain part",
            ),
            s(
                "MIME_MA_MISSING_HTML",
                1.0,
                "multipart/alternative without a text/html part",
            ),
            s(
                "R_BAD_CTE_7BIT",
                3.5,
                "A text part declared 7bit that has 8-bit bytes",
            ),
        ]
    }

    fn run(&self, task: &Task<'_>, results: &mut ScanResults) {
        if !task.parsed {
            return;
        }
        self.structure(task, results);
        let mut entries_left = self.max_entries;
        let mut unreadable_archive = false;
        for a in task.attachments().take(self.max_attachments) {
            if a.declared_type == Some("message/rfc822") {
                continue;
            }
            if let Some(name) = a.name {
                self.file_name(name, false, results);
                let ext = extension(name);
                if let Some(expected) = ext.and_then(family_of_extension)
                    && let Some(actual) = family_of_detected(a.detected)
                    && !compatible(ext.unwrap_or(""), expected, actual)
                {
                    results.insert(
                        "MIME_BAD_ATTACHMENT",
                        vec![format!("{}:{:?}", clip(name), a.detected)],
                    );
                }
                if ext.is_some_and(|e| {
                    ["htm", "html", "shtml", "xhtml", "svg", "mht", "mhtml"]
                        .iter()
                        .any(|h| e.eq_ignore_ascii_case(h))
                }) {
                    results.insert("MIME_HTML_ATTACHMENT", vec![clip(name)]);
                }
            }
            if a.detected.is_executable() {
                results.insert("MIME_EXE", a.name.map(clip).into_iter().collect());
            }
            if let Some(declared) = a.declared_type
                && type_mismatch(declared, a.detected)
            {
                results.insert(
                    "MIME_TYPE_MISMATCH",
                    vec![format!("{declared}:{:?}", a.detected)],
                );
            }
            match a.detected {
                Detected::Zip => match zip::list(a.bytes, entries_left) {
                    Some(listing) => {
                        entries_left = entries_left.saturating_sub(listing.names.len());
                        let office = a.name.and_then(extension).is_some_and(is_office);
                        for inner in &listing.names {
                            if inner.ends_with('/') {
                                continue;
                            }
                            self.file_name(inner, true, results);
                            if !office && extension(inner).is_some_and(|e| self.is_archive(e)) {
                                results.insert("MIME_ARCHIVE_IN_ARCHIVE", vec![clip(inner)]);
                            }
                        }
                        if listing.encrypted {
                            results.insert("MIME_ENCRYPTED_ARCHIVE", vec![]);
                            unreadable_archive = true;
                        }
                    }
                    None => unreadable_archive = true,
                },
                Detected::Rar | Detected::SevenZip => unreadable_archive = true,
                _ => {}
            }
        }
        if unreadable_archive && password_hint(task) {
            results.insert("MIME_ARCHIVE_PASSWORD_HINT", vec![]);
        }
    }
}

impl MimeTypes {
    /// A file name's own dangers: its extension, a double extension,
    /// bidirectional or invisible characters.
    fn file_name(&self, name: &str, in_archive: bool, results: &mut ScanResults) {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        if base.chars().any(is_bad_unicode) {
            results.insert("MIME_BAD_UNICODE", vec![clip(base)]);
        }
        let Some(ext) = extension(base) else {
            return;
        };
        if !self.is_bad(ext) {
            return;
        }
        let option = if in_archive {
            format!("in archive: {}", clip(base))
        } else {
            clip(base)
        };
        results.insert("MIME_BAD_EXTENSION", vec![option]);
        let stem = &base[..base.len() - ext.len() - 1];
        let padded = stem.ends_with("   ");
        let inner = extension(stem.trim_end());
        if padded || inner.is_some_and(|e| is_document_like(e) || self.is_bad(e)) {
            results.insert("MIME_DOUBLE_BAD_EXTENSION", vec![clip(base)]);
        }
    }

    /// multipart/alternative without one of its versions; a 7bit text part
    /// with 8-bit bytes.
    fn structure(&self, task: &Task<'_>, results: &mut ScanResults) {
        let m = &task.message;
        for part in m
            .parts
            .iter()
            .take(mxguard_message::parse::Limits::DEFAULT.max_parts)
        {
            match &part.body {
                PartType::Multipart(children) => {
                    let alternative = part.content_type().is_some_and(|ct| {
                        ct.ctype().eq_ignore_ascii_case("multipart")
                            && ct
                                .subtype()
                                .is_some_and(|s| s.eq_ignore_ascii_case("alternative"))
                    });
                    if !alternative {
                        continue;
                    }
                    let (mut text, mut html) = (false, false);
                    for &id in children.iter().take(64) {
                        match m.parts.get(id as usize).map(|p| &p.body) {
                            Some(PartType::Text(_)) => text = true,
                            Some(PartType::Html(_)) => html = true,
                            // An alternative may nest (text and a related HTML).
                            Some(PartType::Multipart(_)) => html = true,
                            _ => {}
                        }
                    }
                    if !text {
                        results.insert("MIME_MA_MISSING_TEXT", vec![]);
                    }
                    if !html {
                        results.insert("MIME_MA_MISSING_HTML", vec![]);
                    }
                }
                PartType::Text(_) | PartType::Html(_) => {
                    let seven_bit = part
                        .content_transfer_encoding()
                        .is_some_and(|c| c.trim().eq_ignore_ascii_case("7bit"));
                    if !seven_bit {
                        continue;
                    }
                    let (s, e) = (part.offset_body as usize, part.offset_end as usize);
                    let e = e.min(s.saturating_add(MAX_CTE_BYTES));
                    if let Some(raw) = task.raw.get(s..e)
                        && raw.iter().any(|&c| c >= 0x80)
                    {
                        results.insert("R_BAD_CTE_7BIT", vec![]);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Words that give an archive's password, in the languages phishing uses most.
const PASSWORD_WORDS: &[&str] = &[
    "password",
    "passwort",
    "kennwort",
    "mot de passe",
    "contraseña",
    "senha",
    "wachtwoord",
    "parola",
    "hasło",
    "пароль",
    "密码",
    "pass:",
    "pwd",
];

fn password_hint(task: &Task<'_>) -> bool {
    let subject = task.message.subject().unwrap_or("").to_lowercase();
    task.text_parts()
        .iter()
        .map(|t| {
            let mut end = t.len().min(MAX_HINT_TEXT);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            t[..end].to_lowercase()
        })
        .chain(std::iter::once(subject))
        .any(|t| PASSWORD_WORDS.iter().any(|w| t.contains(w)))
}

/// Bidirectional overrides and isolates, marks and invisible characters:
/// `gpj.exe` shown as `exe.jpg`.
fn is_bad_unicode(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// The extension of a file name (after its last dot), when it has one.
fn extension(name: &str) -> Option<&str> {
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty() && ext.len() <= 20 && !ext.contains(' ')).then_some(ext)
}

/// At most 100 bytes of a name, for a symbol's option.
fn clip(name: &str) -> String {
    name.chars().take(100).collect()
}

fn is_document_like(ext: &str) -> bool {
    [
        "pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "rtf", "jpg", "jpeg", "png",
        "gif", "csv", "odt", "htm", "html", "mp3", "mp4", "zip",
    ]
    .iter()
    .any(|e| e.eq_ignore_ascii_case(ext))
}

fn is_office(ext: &str) -> bool {
    [
        "docx", "docm", "xlsx", "xlsm", "pptx", "pptm", "odt", "ods", "odp", "jar", "apk", "epub",
        "xps", "vsdx",
    ]
    .iter()
    .any(|e| e.eq_ignore_ascii_case(ext))
}

/// Kinds of file that magic bytes tell apart; images are one kind (a PNG
/// named .jpg is a harmless mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Zip,
    Pdf,
    Program,
    Rar,
    SevenZip,
    Gzip,
    Ole,
    Image,
    /// No magic: text and everything else unknown.
    Plain,
}

fn family_of_detected(d: Detected) -> Option<Family> {
    Some(match d {
        Detected::Zip => Family::Zip,
        Detected::Pdf => Family::Pdf,
        Detected::Exe | Detected::Elf => Family::Program,
        Detected::Rar => Family::Rar,
        Detected::SevenZip => Family::SevenZip,
        Detected::Gzip => Family::Gzip,
        Detected::Ole => Family::Ole,
        Detected::Png | Detected::Jpeg | Detected::Gif => Family::Image,
        _ => return None,
    })
}

/// Whether a file named with `ext` (of `expected` kind) may be `actual`:
/// office documents come as OLE or as zip whatever their extension says
/// (a .docx saved as .doc, an encrypted .docx is OLE).
fn compatible(ext: &str, expected: Family, actual: Family) -> bool {
    let office = matches!(
        ext.to_ascii_lowercase().as_str(),
        "doc" | "xls" | "ppt" | "docx" | "xlsx" | "pptx" | "docm" | "xlsm" | "pptm"
    );
    expected == actual || (office && matches!(actual, Family::Ole | Family::Zip))
}

/// What a file with this extension must be, for the extensions whose
/// magic is known (others say nothing).
fn family_of_extension(ext: &str) -> Option<Family> {
    let e = ext.to_ascii_lowercase();
    Some(match e.as_str() {
        "pdf" => Family::Pdf,
        "doc" | "xls" | "ppt" | "msg" | "msi" => Family::Ole,
        "docx" | "xlsx" | "pptx" | "docm" | "xlsm" | "pptm" | "odt" | "ods" | "odp" | "zip"
        | "jar" | "apk" | "epub" => Family::Zip,
        "rar" => Family::Rar,
        "7z" => Family::SevenZip,
        "gz" | "tgz" => Family::Gzip,
        "png" | "jpg" | "jpeg" | "gif" => Family::Image,
        "exe" | "dll" | "scr" | "cpl" | "sys" => Family::Program,
        "txt" | "csv" | "htm" | "html" | "svg" | "rtf" | "ics" | "vcf" => Family::Plain,
        _ => return None,
    })
}

/// The declared type names a document, an image or text, and the bytes are
/// a program, an archive or another document format. Generic declarations
/// (`application/octet-stream`) and office types (senders get those wrong
/// between OLE and OOXML) say nothing.
fn type_mismatch(declared: &str, detected: Detected) -> bool {
    let Some(actual) = family_of_detected(detected) else {
        return false;
    };
    let expected = if declared.starts_with("image/") {
        if declared.contains("svg") || declared.contains("tif") || declared.contains("bmp") {
            Family::Plain
        } else {
            Family::Image
        }
    } else if declared == "application/pdf" {
        Family::Pdf
    } else if declared.starts_with("text/") {
        Family::Plain
    } else if matches!(
        declared,
        "application/zip" | "application/x-zip-compressed" | "application/x-zip"
    ) {
        Family::Zip
    } else {
        return false;
    };
    match expected {
        // Any magic under a text or svg type is suspect, images excepted
        // (an image declared as text is a sender's mistake).
        Family::Plain => actual != Family::Image,
        e => e != actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_core::Envelope;

    fn b64(b: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn with_attachment(text: &str, ctype: &str, name: &str, bytes: &[u8]) -> String {
        format!(
            "From: a@example.com\r\nSubject: doc\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\n{text}\r\n\
             --b\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            b64(bytes)
        )
    }

    fn names(raw: &str) -> Vec<String> {
        let env = Envelope::default();
        let task = Task::new(&env, raw.as_bytes(), 1 << 30);
        let mut r = ScanResults::default();
        MimeTypes::new(&MimeTypesConfig::default()).run(&task, &mut r);
        r.hits.iter().map(|h| h.name.clone()).collect()
    }

    #[test]
    fn ordinary_attachments_have_none() {
        for (ct, name, bytes) in [
            ("application/pdf", "report.pdf", &b"%PDF-1.4 x"[..]),
            ("image/jpeg", "photo.jpg", b"\xFF\xD8\xFF\xE0"),
            ("image/jpeg", "photo.jpg", b"\x89PNG\r\n\x1A\n"),
            ("application/msword", "a.doc", b"PK\x03\x04"),
            ("application/octet-stream", "data.bin", b"MZ?"),
            ("text/plain", "notes.txt", b"hello"),
        ] {
            let got = names(&with_attachment("see attached", ct, name, bytes));
            let want: &[&str] = if bytes.starts_with(b"MZ") {
                &["MIME_EXE"]
            } else {
                &[]
            };
            assert_eq!(got, want, "{name}");
        }
        let docx = zip::tests::zip(&[("word/document.xml", b"<x/>", false), ("x.zip", b"", false)]);
        assert!(
            names(&with_attachment(
                "x",
                "application/vnd.openxmlformats",
                "a.docx",
                &docx
            ))
            .is_empty()
        );
    }

    #[test]
    fn dangerous_names_and_types() {
        let got = names(&with_attachment(
            "x",
            "image/jpeg",
            "invoice.pdf.exe",
            b"MZ\x90\x00",
        ));
        assert_eq!(
            got,
            [
                "MIME_BAD_EXTENSION",
                "MIME_DOUBLE_BAD_EXTENSION",
                "MIME_EXE",
                "MIME_TYPE_MISMATCH"
            ]
        );
        let got = names(&with_attachment(
            "x",
            "application/pdf",
            "scan.pdf",
            b"PK\x03\x04x",
        ));
        assert_eq!(got, ["MIME_BAD_ATTACHMENT", "MIME_TYPE_MISMATCH"]);
        let got = names(&with_attachment(
            "x",
            "application/octet-stream",
            "doc\u{202E}fdp.scr",
            b"x",
        ));
        assert_eq!(got, ["MIME_BAD_UNICODE", "MIME_BAD_EXTENSION"]);
        let got = names(&with_attachment(
            "x",
            "text/html",
            "Payment.html",
            b"<html>",
        ));
        assert_eq!(got, ["MIME_HTML_ATTACHMENT"]);
        let got = names(&with_attachment(
            "x",
            "application/octet-stream",
            "a.txt     .exe",
            b"x",
        ));
        assert_eq!(got, ["MIME_BAD_EXTENSION", "MIME_DOUBLE_BAD_EXTENSION"]);
    }

    #[test]
    fn archives() {
        let z = zip::tests::zip(&[("readme.txt", b"hi", false), ("setup.exe", b"MZ", false)]);
        let got = names(&with_attachment("x", "application/zip", "files.zip", &z));
        assert_eq!(got, ["MIME_BAD_EXTENSION"]);
        let z = zip::tests::zip(&[("inner.zip", b"PK", false)]);
        let got = names(&with_attachment("x", "application/zip", "files.zip", &z));
        assert_eq!(got, ["MIME_ARCHIVE_IN_ARCHIVE"]);
        let z = zip::tests::zip(&[("doc.pdf", b"x", true)]);
        let got = names(&with_attachment(
            "The password is 1234",
            "application/zip",
            "f.zip",
            &z,
        ));
        assert_eq!(
            got,
            ["MIME_ENCRYPTED_ARCHIVE", "MIME_ARCHIVE_PASSWORD_HINT"]
        );
        let got = names(&with_attachment(
            "Passwort: 1234",
            "application/x-rar",
            "f.rar",
            b"Rar!\x1A\x07\x01\x00",
        ));
        assert_eq!(got, ["MIME_ARCHIVE_PASSWORD_HINT"]);
        let got = names(&with_attachment(
            "see attached",
            "application/x-rar",
            "f.rar",
            b"Rar!\x1A\x07\x01\x00",
        ));
        assert!(got.is_empty());
    }

    #[test]
    fn structure() {
        let alt_html_only = "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--b--\r\n";
        assert_eq!(names(alt_html_only), ["MIME_MA_MISSING_TEXT"]);
        let alt_text_only = "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(names(alt_text_only), ["MIME_MA_MISSING_HTML"]);
        let bad_cte = "From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 7bit\r\n\r\ncaf\u{e9}\r\n";
        assert_eq!(names(bad_cte), ["R_BAD_CTE_7BIT"]);
        let good_cte = "From: a@example.com\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: 8bit\r\n\r\ncaf\u{e9}\r\n";
        assert!(names(good_cte).is_empty());
    }

    #[test]
    fn many_attachments_and_entries_are_bounded() {
        let entries: Vec<(String, &[u8], bool)> = (0..3000)
            .map(|i| (format!("f{i}.exe"), &b""[..], false))
            .collect();
        let refs: Vec<(&str, &[u8], bool)> = entries
            .iter()
            .map(|(n, d, e)| (n.as_str(), *d, *e))
            .collect();
        let z = zip::tests::zip(&refs);
        let env = Envelope::default();
        let raw = with_attachment("x", "application/zip", "a.zip", &z);
        let task = Task::new(&env, raw.as_bytes(), 1 << 30);
        let mut r = ScanResults::default();
        MimeTypes::new(&MimeTypesConfig::default()).run(&task, &mut r);
        let hit = r
            .hits
            .iter()
            .find(|h| h.name == "MIME_BAD_EXTENSION")
            .unwrap();
        assert!(hit.options.len() <= 32);
    }
}
