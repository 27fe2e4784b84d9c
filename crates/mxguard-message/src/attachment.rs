//! What an attachment really is: its type detected from its first bytes
//! ([`Detected`]), and its file name made safe to log and compare
//! ([`safe_file_name`]).
//!
//! The declared content type and file name are the sender's word; the
//! magic bytes are not. A check that wants to know whether a "photo.jpg"
//! is a Windows program compares the two.

/// A file type recognised by its magic bytes (the common carriers of
/// malware and the common images); `Unknown` for anything else, text
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detected {
    /// ZIP archive, and what is built on it (OOXML office files, JAR, APK).
    Zip,
    Pdf,
    /// Windows executable (`MZ`: PE or DOS).
    Exe,
    Elf,
    Rar,
    SevenZip,
    Gzip,
    /// OLE compound file: legacy office documents (.doc, .xls, .ppt, .msi).
    Ole,
    Png,
    Jpeg,
    Gif,
    Unknown,
}

/// Magic numbers, longest first where one is a prefix of another.
const MAGIC: &[(&[u8], Detected)] = &[
    (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", Detected::Ole),
    (b"\x89PNG\r\n\x1A\n", Detected::Png),
    (b"Rar!\x1A\x07", Detected::Rar),
    (b"7z\xBC\xAF\x27\x1C", Detected::SevenZip),
    (b"GIF87a", Detected::Gif),
    (b"GIF89a", Detected::Gif),
    (b"%PDF-", Detected::Pdf),
    (b"PK\x03\x04", Detected::Zip),
    (b"PK\x05\x06", Detected::Zip),
    (b"PK\x07\x08", Detected::Zip),
    (b"\x7FELF", Detected::Elf),
    (b"\xFF\xD8\xFF", Detected::Jpeg),
    (b"\x1F\x8B", Detected::Gzip),
    (b"MZ", Detected::Exe),
];

impl Detected {
    /// The type of these bytes by their first bytes.
    pub fn of(bytes: &[u8]) -> Detected {
        MAGIC
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map_or(Detected::Unknown, |&(_, d)| d)
    }

    /// The usual media type of the detected type; `None` for `Unknown`.
    pub fn media_type(self) -> Option<&'static str> {
        Some(match self {
            Detected::Zip => "application/zip",
            Detected::Pdf => "application/pdf",
            Detected::Exe => "application/x-msdownload",
            Detected::Elf => "application/x-executable",
            Detected::Rar => "application/vnd.rar",
            Detected::SevenZip => "application/x-7z-compressed",
            Detected::Gzip => "application/gzip",
            Detected::Ole => "application/x-ole-storage",
            Detected::Png => "image/png",
            Detected::Jpeg => "image/jpeg",
            Detected::Gif => "image/gif",
            Detected::Unknown => return None,
        })
    }

    /// A program that runs when opened (Windows or ELF).
    pub fn is_executable(self) -> bool {
        matches!(self, Detected::Exe | Detected::Elf)
    }
}

/// Longest file name kept, in bytes.
pub const MAX_NAME: usize = 255;

/// A declared file name as something safe to show and compare: the last
/// component after any `/` or `\` (a name is not a path), without NULs
/// and other control characters, at most [`MAX_NAME`] bytes; `None` when
/// nothing is left.
pub fn safe_file_name(declared: &str) -> Option<String> {
    let base = declared.rsplit(['/', '\\']).next().unwrap_or(declared);
    let mut out = String::with_capacity(base.len().min(MAX_NAME));
    for c in base.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_NAME {
            break;
        }
        out.push(c);
    }
    let trimmed = out.trim();
    match trimmed.len() {
        0 => None,
        n if n == out.len() => Some(out),
        _ => Some(trimmed.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes() {
        for (bytes, want) in [
            (&b"PK\x03\x04rest"[..], Detected::Zip),
            (b"%PDF-1.7\n", Detected::Pdf),
            (b"MZ\x90\x00", Detected::Exe),
            (b"\x7FELF\x02\x01", Detected::Elf),
            (b"Rar!\x1A\x07\x01\x00", Detected::Rar),
            (b"7z\xBC\xAF\x27\x1C\x00", Detected::SevenZip),
            (b"\x1F\x8B\x08", Detected::Gzip),
            (b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\x00", Detected::Ole),
            (b"\x89PNG\r\n\x1A\n\x00", Detected::Png),
            (b"\xFF\xD8\xFF\xE0", Detected::Jpeg),
            (b"GIF89a\x01", Detected::Gif),
            (b"GIF87a", Detected::Gif),
            (b"hello", Detected::Unknown),
            (b"", Detected::Unknown),
            (b"M", Detected::Unknown),
            (b"PK", Detected::Unknown),
        ] {
            assert_eq!(Detected::of(bytes), want, "{bytes:?}");
        }
        assert_eq!(Detected::Exe.media_type(), Some("application/x-msdownload"));
        assert_eq!(Detected::Unknown.media_type(), None);
        assert!(Detected::Elf.is_executable() && !Detected::Pdf.is_executable());
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(safe_file_name("a.pdf").as_deref(), Some("a.pdf"));
        assert_eq!(
            safe_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            safe_file_name("C:\\Users\\x\\invoice.pdf.exe").as_deref(),
            Some("invoice.pdf.exe")
        );
        assert_eq!(
            safe_file_name("invoice.pdf\0.exe").as_deref(),
            Some("invoice.pdf.exe")
        );
        assert_eq!(safe_file_name(" a\r\n.txt ").as_deref(), Some("a.txt"));
        assert_eq!(safe_file_name("dir/"), None);
        assert_eq!(safe_file_name("\0\0"), None);
        let long = safe_file_name(&"\u{e9}".repeat(1000)).unwrap();
        assert!(long.len() <= MAX_NAME && long.chars().all(|c| c == '\u{e9}'));
    }
}
