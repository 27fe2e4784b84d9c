//! `rua` values: which addresses a report goes to.
//!
//! Only `mailto:` URIs are used (the only transport RFC 7489 and RFC 9990
//! define for aggregate reports). Anything else is dropped with a reason
//! the caller logs: another scheme, a malformed or overlong address, a
//! size suffix that does not parse, more URIs than [`MAX_URIS`], and
//! duplicates. A `!size` suffix (RFC 7489 section 6.2: digits with an
//! optional k/m/g/t unit) limits the report mail's size for that address
//! under RFC 7489; DMARCbis dropped size limits, so its records' limits
//! are parsed but not applied (see [`Destination::limit_for`]).

use super::RecordForm;
use crate::config::plain_address;

/// At most this many URIs of one record are used (RFC 9990 asks receivers
/// to cap them; two is what domains need, more is abuse).
pub const MAX_URIS: usize = 5;
/// URIs beyond this many in one record are not even looked at.
const MAX_LOOKED_AT: usize = 50;

/// One usable `rua` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The mailbox, lowercased domain.
    pub address: String,
    /// The `!size` limit in bytes, if any.
    pub size_limit: Option<u64>,
}

impl Destination {
    /// The domain part of the address.
    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The size limit that applies under the record's RFC: RFC 7489's
    /// `!size`; none for DMARCbis, which removed it.
    pub fn limit_for(&self, form: RecordForm) -> Option<u64> {
        match form {
            RecordForm::Rfc7489 => self.size_limit,
            RecordForm::DmarcBis => None,
        }
    }
}

/// A URI that was not used, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub uri: String,
    pub reason: String,
}

/// Splits a raw `rua=` tag value into its URIs.
pub fn split(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The destinations of a record's `rua` URIs, and those dropped.
pub fn parse(uris: &[String]) -> (Vec<Destination>, Vec<Dropped>) {
    let mut ok: Vec<Destination> = Vec::new();
    let mut dropped = Vec::new();
    // A raw value may still hold commas if the caller did not split.
    for uri in uris.iter().flat_map(|raw| split(raw)).take(MAX_LOOKED_AT) {
        {
            let shown: String = uri.chars().take(200).filter(|c| !c.is_control()).collect();
            let drop = |reason: &str| Dropped {
                uri: shown.clone(),
                reason: reason.to_string(),
            };
            if ok.len() >= MAX_URIS {
                dropped.push(drop(&format!(
                    "more than {MAX_URIS} report addresses; the rest are ignored"
                )));
                continue;
            }
            match parse_one(&uri) {
                Ok(d) if ok.iter().any(|o| o.address == d.address) => {
                    dropped.push(drop("the same address twice"));
                }
                Ok(d) => ok.push(d),
                Err(reason) => dropped.push(drop(&reason)),
            }
        }
    }
    (ok, dropped)
}

fn parse_one(uri: &str) -> Result<Destination, String> {
    if uri.len() > 512 {
        return Err("longer than 512 characters".into());
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("not a URI (no scheme); only mailto: is used".into());
    };
    if !scheme.eq_ignore_ascii_case("mailto") {
        return Err(format!(
            "the {scheme}: scheme is not supported; only mailto: is used"
        ));
    }
    // `!` is the size separator; a literal `!` in an address must be %21.
    let (addr, size) = match rest.rsplit_once('!') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let size_limit = match size {
        Some(s) => Some(parse_size(s).ok_or_else(|| {
            format!("the size limit `!{s}` is not digits with an optional k, m, g or t")
        })?),
        None => None,
    };
    if addr.contains('?') {
        return Err("mailto: header fields (?…) are not allowed in rua".into());
    }
    let address = percent_decode(addr).ok_or("bad %-escape in the address")?;
    let address = match address.rsplit_once('@') {
        Some((l, d)) => format!("{l}@{}", d.trim_end_matches('.').to_ascii_lowercase()),
        None => return Err("no @ in the address".into()),
    };
    if address.len() > 254 || !plain_address(&address) {
        return Err("not a plain mail address".into());
    }
    Ok(Destination {
        address,
        size_limit,
    })
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], Some(c.to_ascii_lowercase())),
        _ => (s, None),
    };
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        None => 1,
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        Some('t') => 1 << 40,
        Some(_) => return None,
    };
    n.checked_mul(mult)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_and_sized() {
        let (ok, dropped) = parse(&v(&[
            "mailto:dmarc@Example.COM",
            "MAILTO:rua@reports.example.net!10m",
            "mailto:small@example.org!500",
            "mailto:k@example.org!2k",
        ]));
        assert!(dropped.is_empty(), "{dropped:?}");
        assert_eq!(ok[0].address, "dmarc@example.com");
        assert_eq!(ok[0].size_limit, None);
        assert_eq!(ok[1].size_limit, Some(10 << 20));
        assert_eq!(ok[2].size_limit, Some(500));
        assert_eq!(ok[3].size_limit, Some(2048));
        assert_eq!(ok[1].domain(), "reports.example.net");
        assert_eq!(ok[1].limit_for(RecordForm::Rfc7489), Some(10 << 20));
        assert_eq!(ok[1].limit_for(RecordForm::DmarcBis), None);
    }

    #[test]
    fn odd_values_dropped_with_reasons() {
        let (ok, dropped) = parse(&v(&[
            "https://example.com/report",
            "dmarc@example.com",
            "mailto:",
            "mailto:noat.example.com",
            "mailto:a@example.com!10x",
            "mailto:a@example.com!",
            "mailto:a b@example.com",
            "mailto:a@example.com?subject=hi",
            "mailto:a%2@example.com",
            "mailto:a@exa_mple..com",
            "mailto:good@example.com",
            "mailto:GOOD@example.com",
            "mailto:good@EXAMPLE.com",
        ]));
        assert_eq!(ok.len(), 2, "{ok:?}");
        let reasons: Vec<_> = dropped.iter().map(|d| d.reason.as_str()).collect();
        assert!(reasons[0].contains("https: scheme"), "{reasons:?}");
        assert!(reasons[1].contains("no scheme"));
        assert!(reasons.iter().any(|r| r.contains("size limit")));
        assert!(reasons.iter().any(|r| r.contains("header fields")));
        assert!(reasons.iter().any(|r| r.contains("%-escape")));
        assert!(reasons.iter().any(|r| r.contains("same address twice")));
        assert_eq!(dropped.len(), 11);
    }

    #[test]
    fn raw_tag_value_and_caps() {
        let raw = "mailto:a@x.example, mailto:b@x.example,,mailto:c@x.example";
        assert_eq!(split(raw).len(), 3);
        let (ok, _) = parse(&[raw.to_string()]);
        assert_eq!(ok.len(), 3);
        let many: Vec<_> = (0..20).map(|i| format!("mailto:r{i}@x.example")).collect();
        let (ok, dropped) = parse(&many);
        assert_eq!(ok.len(), MAX_URIS);
        assert_eq!(dropped.len(), 20 - MAX_URIS);
        // %21 is a literal '!' in the address, not a size.
        let (ok, _) = parse(&v(&["mailto:a%21b@x.example!1k"]));
        assert_eq!(ok[0].address, "a!b@x.example");
        assert_eq!(ok[0].size_limit, Some(1024));
    }
}
