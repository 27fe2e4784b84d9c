//! The report as a mail: MIME multipart/alternative with the text and the
//! HTML (RFC 2045/2046), both quoted-printable so long lines survive SMTP.

use std::fmt::Write;

/// Quoted-printable (RFC 2045 6.7) with CRLF line ends and soft breaks
/// under 76 characters.
pub fn quoted_printable(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + s.len() / 8);
    for line in s.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut col = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let enc = match b {
                b'=' => true,
                b' ' | b'\t' => last,
                33..=126 => false,
                _ => true,
            };
            let width = if enc { 3 } else { 1 };
            if col + width > 75 {
                o.push_str("=\r\n");
                col = 0;
            }
            if enc {
                let _ = write!(o, "={b:02X}");
            } else {
                o.push(b as char);
            }
            col += width;
        }
        o.push_str("\r\n");
    }
    o
}

/// An RFC 2047 encoded-word for a header value when it is not plain ASCII.
pub fn header_value(s: &str) -> String {
    if s.bytes().all(|b| (32..127).contains(&b)) {
        return s.to_string();
    }
    let mut o = String::from("=?UTF-8?Q?");
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => o.push(b as char),
            b' ' => o.push('_'),
            _ => {
                let _ = write!(o, "={b:02X}");
            }
        }
    }
    o.push_str("?=");
    o
}

/// RFC 5322 date of a Unix time, in UTC.
pub fn rfc5322_date(unix: i64) -> String {
    let s = crate::date::Stamp::from_secs(unix);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]
        [unix.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        s.day,
        crate::date::MONTHS[s.month as usize - 1],
        s.year,
        s.hour,
        s.min,
        s.sec
    )
}

/// The whole message (headers and body, CRLF line ends).
pub fn message(
    from: &str,
    to: &[String],
    subject: &str,
    text: &str,
    html: &str,
    unix: i64,
) -> Vec<u8> {
    let boundary = format!("=_mxguard-report-{unix:x}-{:x}", text.len() ^ html.len());
    let host = from.rsplit('@').next().unwrap_or("localhost");
    let mut m = String::new();
    let _ = write!(
        m,
        "From: {from}\r\nTo: {}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <report-{unix}-{}@{host}>\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-generated\r\nContent-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
This is a multi-part message in MIME format.\r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}--{boundary}--\r\n",
        to.join(", "),
        header_value(subject),
        rfc5322_date(unix),
        std::process::id(),
        quoted_printable(text),
        quoted_printable(html),
    );
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_round_trip_rules() {
        let q = quoted_printable("a=b \nx\u{e9}");
        assert_eq!(q, "a=3Db=20\r\nx=C3=A9\r\n");
        let long = "x".repeat(200);
        assert!(quoted_printable(&long).lines().all(|l| l.len() <= 76));
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    }
}
