//! The organisational (registrable) domain of a host name, by the public
//! suffix list: the one answer every caller shares (the policy server's
//! sender pools, URL domains, DMARC alignment).
//!
//! The list is the `psl` crate's built-in copy of Mozilla's Public Suffix
//! List (ICANN and private sections, as the list's own test vectors use
//! it), compiled into the binary: no file to load, no I/O, no allocation
//! besides the lowercased answer.

use std::borrow::Cow;
use std::net::IpAddr;

/// The registrable domain of `host`, lowercased, without a trailing dot:
/// `mx1.web.de` → `web.de`, `a.b.example.co.uk` → `example.co.uk`.
///
/// Given back lowercased as written (trailing dot removed) when there is
/// no registrable domain to take: an IP address or address literal
/// (`[192.0.2.1]`), a name that is itself a public suffix (`co.uk`), a
/// name under a top-level domain the list does not know (`mx.corp.internal`:
/// the list's default `*` rule would make `corp.internal` of it, but a
/// private namespace is not evidence that two hosts share an owner), and
/// a malformed name (empty labels, a leading dot).
pub fn organisational(host: &str) -> String {
    let lower = lowercase_trimmed(host);
    if !is_plain_name(&lower) {
        return lower.into_owned();
    }
    match psl::domain(lower.as_bytes()) {
        Some(d) if d.suffix().is_known() => {
            // A suffix of `lower`, so it starts on a character boundary.
            let start = lower.len() - d.as_bytes().len();
            match lower.get(start..) {
                Some(domain) => domain.to_string(),
                None => lower.into_owned(),
            }
        }
        _ => lower.into_owned(),
    }
}

/// Whether `host` is a name under a suffix the public suffix list knows
/// (`paypal.com`, `www.example.co.uk`), as opposed to a file name
/// (`report.pdf`), an address or a bare word: what makes a link's text
/// look like a place on the web.
pub fn has_known_suffix(host: &str) -> bool {
    let lower = lowercase_trimmed(host);
    is_plain_name(&lower)
        && lower.contains('.')
        && psl::domain(lower.as_bytes()).is_some_and(|d| d.suffix().is_known())
}

/// Whether `host` ends in a suffix the public suffix list knows, the
/// suffix itself included (`iki.fi`, `github.io`, `example.com`), as a
/// name mail can be addressed to must: `correios`, `atendimento.net-2`
/// are not.
pub fn ends_in_known_suffix(host: &str) -> bool {
    let lower = lowercase_trimmed(host);
    is_plain_name(&lower)
        && lower.contains('.')
        && psl::suffix(lower.as_bytes()).is_some_and(|s| s.is_known())
}

/// `host` lowercased without its trailing dot, borrowed when it needs no
/// change (most names arrive lowercased): no allocation on the way.
fn lowercase_trimmed(host: &str) -> Cow<'_, str> {
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if trimmed
        .bytes()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        Cow::Owned(trimmed.to_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// A dotted name with no empty label that is not an address.
fn is_plain_name(lower: &str) -> bool {
    // Only a name ending in a digit (IPv4) or holding a colon (IPv6) can
    // parse as an address: the parse is skipped for the rest.
    let maybe_address =
        lower.contains(':') || lower.as_bytes().last().is_some_and(u8::is_ascii_digit);
    !lower.is_empty()
        && !lower.starts_with('[')
        && !lower.starts_with('.')
        && !lower.ends_with('.')
        && !lower.as_bytes().windows(2).any(|pair| pair == b"..")
        && (!maybe_address || lower.parse::<IpAddr>().is_err())
}

#[cfg(test)]
mod tests {
    use super::organisational;

    #[test]
    fn registrable_domains() {
        for (host, want) in [
            ("mx1.web.de", "web.de"),
            ("mx2.web.de", "web.de"),
            ("web.de", "web.de"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("mail-a1.outbound.protection.outlook.com", "outlook.com"),
            ("www.example.com.au", "example.com.au"),
            // Trailing dot and case.
            ("MX1.Web.DE.", "web.de"),
            ("Mail.EXAMPLE.com", "example.com"),
            // Private-section suffixes count, as the list's tests use them.
            ("foo.blogspot.com", "foo.blogspot.com"),
        ] {
            assert_eq!(organisational(host), want, "{host}");
        }
    }

    #[test]
    fn no_registrable_domain_gives_the_name_back() {
        for (host, want) in [
            ("192.0.2.1", "192.0.2.1"),
            ("2001:DB8::1", "2001:db8::1"),
            ("[192.0.2.1]", "[192.0.2.1]"),
            ("[IPv6:2001:db8::1]", "[ipv6:2001:db8::1]"),
            ("co.uk", "co.uk"),
            ("com", "com"),
            ("localhost", "localhost"),
            ("mx.corp.INTERNAL", "mx.corp.internal"),
            ("a.b.example.example", "a.b.example.example"),
            (".example.com", ".example.com"),
            ("a..example.com", "a..example.com"),
            ("", ""),
            (".", ""),
        ] {
            assert_eq!(organisational(host), want, "{host:?}");
        }
    }

    #[test]
    fn known_suffixes() {
        use super::has_known_suffix;
        for yes in ["paypal.com", "WWW.Example.co.uk.", "mx1.web.de"] {
            assert!(has_known_suffix(yes), "{yes}");
        }
        for no in [
            "report.pdf",
            "index.html",
            "com",
            "co.uk",
            "192.0.2.1",
            "a..com",
            "word",
        ] {
            assert!(!has_known_suffix(no), "{no}");
        }
    }

    #[test]
    fn hostile_names_do_not_panic() {
        let long = "a.".repeat(10_000) + "com";
        assert_eq!(organisational(&long), "a.com");
        for s in [
            "\0.com",
            "\u{e9}t\u{e9}.FR",
            "x.\u{130}.com",
            "...",
            "[",
            "]",
        ] {
            let _ = organisational(s);
        }
        // Unicode case folding may change a name's length: still a suffix.
        assert_eq!(organisational("\u{130}X.example.COM"), "example.com");
    }
}
