//! The report mail (RFC 7489 section 7.2.1.1, RFC 9990 section 5.1): the
//! gzipped XML as an `application/gzip` attachment named
//! `submitter!domain!begin!end.xml.gz`, the Subject
//! `Report Domain: <domain> Submitter: <submitter> Report-ID: <<id>>`, and a
//! short text part for people.

use super::period::rfc5322_date;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// Everything the mail needs besides the XML.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub org_name: &'a str,
    /// The report's sender (config `email`).
    pub from: &'a str,
    pub to: &'a [String],
    /// The submitter domain (config `domain`).
    pub submitter: &'a str,
    /// The reporting (policy) domain.
    pub domain: &'a str,
    pub report_id: &'a str,
    pub begin: u64,
    pub end: u64,
    /// When the mail is written (Date:).
    pub now: u64,
}

/// `submitter!domain!begin!end.xml.gz`.
pub fn file_name(submitter: &str, domain: &str, begin: u64, end: u64) -> String {
    format!("{submitter}!{domain}!{begin}!{end}.xml.gz")
}

/// The RFC's Subject.
pub fn subject(domain: &str, submitter: &str, report_id: &str) -> String {
    format!("Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>")
}

/// gzip of the XML.
pub fn gzip(xml: &str) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(
        Vec::with_capacity(xml.len() / 4 + 64),
        Compression::default(),
    );
    e.write_all(xml.as_bytes())?;
    e.finish()
}

/// Standard base64 in lines of 76 characters, CRLF-terminated.
pub fn base64_lines(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 38 + 8);
    let mut line = 0;
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        line += 4;
        if line == 76 {
            out.push_str("\r\n");
            line = 0;
        }
    }
    if line > 0 {
        out.push_str("\r\n");
    }
    out
}

/// A display name as a quoted string, or nothing if it is not plain ASCII.
fn display_name(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '"' && *c != '\\')
        .collect();
    let clean = clean.trim();
    (!clean.is_empty() && clean.len() == name.trim().len()).then(|| format!("\"{clean}\""))
}

/// The whole message, CRLF line ends, ready for DATA (before dot-stuffing).
pub fn build(env: &Envelope, gz: &[u8]) -> Vec<u8> {
    let name = file_name(env.submitter, env.domain, env.begin, env.end);
    let boundary = format!("=_mxguard_dmarc_{}_{}", env.begin, env.now);
    let from = match display_name(env.org_name) {
        Some(n) => format!("{n} <{}>", env.from),
        None => env.from.to_string(),
    };
    let mut m = String::with_capacity(gz.len() * 4 / 3 + 2048);
    m.push_str(&format!("From: {from}\r\n"));
    m.push_str("To: ");
    for (i, to) in env.to.iter().enumerate() {
        if i > 0 {
            m.push_str(",\r\n ");
        }
        m.push_str(to);
    }
    m.push_str("\r\n");
    m.push_str(&format!(
        "Subject: {}\r\n",
        subject(env.domain, env.submitter, env.report_id)
    ));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(env.now)));
    m.push_str(&format!("Message-ID: <{}>\r\n", env.report_id));
    m.push_str("Auto-Submitted: auto-generated\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a DMARC aggregate report in MIME format.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str("Content-Type: text/plain; charset=us-ascii\r\n");
    m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
    m.push_str(&format!(
        "DMARC aggregate report for {} from {} ({}), covering {} to {} (UTC).\r\n\r\n",
        env.domain,
        env.submitter,
        from,
        rfc5322_date(env.begin),
        rfc5322_date(env.end)
    ));
    m.push_str(&format!("--{boundary}\r\n"));
    m.push_str(&format!(
        "Content-Type: application/gzip; name=\"{name}\"\r\n"
    ));
    m.push_str("Content-Transfer-Encoding: base64\r\n");
    m.push_str(&format!(
        "Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
    ));
    m.push_str(&base64_lines(gz));
    m.push_str(&format!("--{boundary}--\r\n"));
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            file_name(
                "mx.example.org",
                "example.com",
                1_796_515_200,
                1_796_601_599
            ),
            "mx.example.org!example.com!1796515200!1796601599.xml.gz"
        );
        assert_eq!(
            subject(
                "example.com",
                "mx.example.org",
                "2026-12-06.example.com@mx.example.org"
            ),
            "Report Domain: example.com Submitter: mx.example.org Report-ID: <2026-12-06.example.com@mx.example.org>"
        );
    }

    #[test]
    fn base64_known_values() {
        assert_eq!(base64_lines(b""), "");
        assert_eq!(base64_lines(b"f"), "Zg==\r\n");
        assert_eq!(base64_lines(b"fo"), "Zm8=\r\n");
        assert_eq!(base64_lines(b"foobar"), "Zm9vYmFy\r\n");
        let long = base64_lines(&[0u8; 120]);
        assert!(long.lines().all(|l| l.len() <= 76));
        assert_eq!(long.lines().next().map(str::len), Some(76));
    }

    #[test]
    fn message_shape() {
        let to = vec!["a@example.com".to_string(), "b@example.net".to_string()];
        let env = Envelope {
            org_name: "Example \"Org\"\r\nBcc: x@evil",
            from: "postmaster@mx.example.org",
            to: &to,
            submitter: "mx.example.org",
            domain: "example.com",
            report_id: "id@mx.example.org",
            begin: 0,
            end: 86_399,
            now: 90_000,
        };
        let m = String::from_utf8(build(&env, b"gz")).unwrap_or_default();
        // A hostile org name never makes a header of its own.
        assert!(m.starts_with("From: postmaster@mx.example.org\r\n"), "{m}");
        assert!(!m.contains("\r\nBcc:"));
        assert!(m.contains("Subject: Report Domain: example.com Submitter: mx.example.org Report-ID: <id@mx.example.org>\r\n"));
        assert!(m.contains("filename=\"mx.example.org!example.com!0!86399.xml.gz\""));
        assert!(m.contains("Content-Type: application/gzip"));
        assert!(m.contains("To: a@example.com,\r\n b@example.net\r\n"));
        assert!(!m.replace("\r\n", "").contains('\n'));
    }
}
