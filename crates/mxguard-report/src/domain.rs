//! How pflogsumm names hosts, domains and addresses, so the tallies group
//! the same way its reports do.

/// The "host/domain" of a client or relay given as `name[addr]`: the name
/// cut to its last two labels (three under a two-letter country code with
/// a short second level, as `example.co.uk`), or the address when the name
/// is missing or `unknown`. Empty when nothing fits.
pub fn host_domain(s: &str, out: &mut String) {
    out.clear();
    let (name, addr) = split_name_addr(s);
    match name {
        None | Some("") | Some("unknown") => out.push_str(addr.unwrap_or("")),
        Some(name) => reduce(name, out),
    }
}

fn is_ipv4_prefix(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    for part in 0..4 {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            i += 1;
        }
        if i == start {
            return None;
        }
        if part < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

fn split_name_addr(s: &str) -> (Option<&str>, Option<&str>) {
    // "name[1.2.3.4]" (addresses in brackets, IPv4 first)
    if let Some(open) = memchr::memchr(b'[', s.as_bytes()) {
        let after = &s[open + 1..];
        if let Some(n) = is_ipv4_prefix(after)
            && after.as_bytes().get(n) == Some(&b']')
        {
            return (Some(&s[..open]), Some(&after[..n]));
        }
    }
    // "name/1.2.3.4" (old Postfix)
    if let Some(slash) = memchr::memchr(b'/', s.as_bytes()) {
        let after = &s[slash + 1..];
        let n = after
            .bytes()
            .take_while(|c| c.is_ascii_hexdigit() || *c == b'.' || *c == b':')
            .count();
        if n > 0 {
            return (Some(&s[..slash]), Some(&after[..n]));
        }
    }
    // "name[addr]" / "name(addr)" with an optional ":port" and nothing after.
    if let Some(open) = memchr::memchr3(b'[', b'(', b'/', s.as_bytes()) {
        let after = &s[open + 1..];
        let n = memchr::memchr2(b']', b')', after.as_bytes()).unwrap_or(after.len());
        if n > 0 && n < after.len() {
            let tail = &after[n + 1..];
            let tail = tail.strip_prefix(':').unwrap_or(tail);
            if tail.bytes().all(|c| c.is_ascii_digit()) {
                return (Some(&s[..open]), Some(&after[..n]));
            }
        }
    }
    (None, None)
}

/// "mach.host.dom" → "host.dom", "mach.host.co.uk" → "host.co.uk"
/// (lower-cased); anything shorter is kept as it is.
pub fn reduce(name: &str, out: &mut String) {
    // The last three dots, from the right: no label list allocated (this
    // runs for every client and delivery line).
    let dot_before = |end: usize| memchr::memrchr(b'.', &name.as_bytes()[..end]);
    let lower = |out: &mut String, tail: &str| {
        let start = out.len();
        out.push_str(tail);
        out[start..].make_ascii_lowercase();
    };
    let Some(d1) = dot_before(name.len()) else {
        out.push_str(name);
        return;
    };
    let last = &name[d1 + 1..];
    let d2 = dot_before(d1);
    let second = &name[d2.map_or(0, |d| d + 1)..d1];
    if let Some(d2) = d2 {
        // Three labels or more.
        if last.len() == 3 && !second.is_empty() {
            lower(out, &name[d2 + 1..]);
            return;
        }
        if let Some(d3) = dot_before(d2) {
            let third = &name[d3 + 1..d2];
            if last.len() == 2 && (2..=3).contains(&second.len()) && !third.is_empty() {
                lower(out, &name[d3 + 1..]);
                return;
            }
        }
    }
    out.push_str(name);
}

/// An address as pflogsumm keys it: the domain part (from the first `@`)
/// lower-cased, the local part kept.
pub fn address_key(addr: &str, out: &mut String) {
    out.clear();
    match memchr::memchr(b'@', addr.as_bytes()) {
        Some(at) => {
            out.push_str(addr);
            out[at..].make_ascii_lowercase();
        }
        None => out.push_str(addr),
    }
}

/// The domain of an address key (after the first `@`, which must not be
/// the first character), or None.
pub fn domain_of(addr: &str) -> Option<&str> {
    match memchr::memchr(b'@', addr.as_bytes()) {
        Some(at) if at > 0 && at + 1 < addr.len() => Some(&addr[at + 1..]),
        _ => None,
    }
}

/// pflogsumm's sort key for hosts and addresses: an IPv4 address by its
/// octets, anything else by its labels reversed (`com`, `example`, `user`).
/// Keys compare as sequences of numbers (octets or lower-cased
/// characters); ASCII keys, nearly all, are kept as bytes, a quarter of
/// the memory and compared with memcmp (sorting the address tables was
/// a tenth of a report's time).
pub fn sort_key(s: &str) -> SortKey {
    // ASCII up to the first space (nearly every key, and all of the
    // address tables' tens of thousands sorted at the end of a run): by
    // bytes, where the general path's char patterns cost ~1,700
    // instructions a key.
    let b = s.as_bytes();
    let n = b
        .iter()
        .position(|c| !c.is_ascii() || c.is_ascii_whitespace() || *c == 0x0b)
        .unwrap_or(b.len());
    if b.get(n).is_none_or(u8::is_ascii) {
        let first = &b[..n];
        if is_ipv4_prefix(&s[..n]) != Some(n) {
            // The labels from the right, each copied whole.
            let mut key = Vec::with_capacity(n);
            let mut end = n;
            for i in (0..n).rev() {
                if matches!(first[i], b'.' | b'@') {
                    key.extend_from_slice(&first[i + 1..end]);
                    end = i;
                }
            }
            key.extend_from_slice(&first[..end]);
            key.make_ascii_lowercase();
            return SortKey::Narrow(key);
        }
    }
    sort_key_chars(s)
}

/// [`sort_key`] by characters: any text.
fn sort_key_chars(s: &str) -> SortKey {
    let first = s.split(char::is_whitespace).next().unwrap_or("");
    if let Some(n) = is_ipv4_prefix(first)
        && n == first.len()
    {
        let octets: Vec<u32> = first.split('.').map(|o| o.parse().unwrap_or(0)).collect();
        // Three digits may say more than 255: kept as numbers then.
        return if octets.iter().all(|&o| o <= 255) {
            SortKey::Narrow(octets.iter().map(|&o| o as u8).collect())
        } else {
            SortKey::Wide(octets)
        };
    }
    if first.is_ascii() {
        let mut key = Vec::with_capacity(first.len());
        for part in first.rsplit(['.', '@']) {
            key.extend(part.bytes().map(|c| c.to_ascii_lowercase()));
        }
        return SortKey::Narrow(key);
    }
    let mut key = Vec::with_capacity(first.len());
    for part in first.rsplit(['.', '@']) {
        key.extend(
            part.chars()
                .map(|c| c.to_lowercase().next().unwrap_or(c) as u32),
        );
    }
    SortKey::Wide(key)
}

/// A [`sort_key`]: numbers under 256 as bytes, or any as u32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortKey {
    Narrow(Vec<u8>),
    Wide(Vec<u32>),
}

impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (SortKey::Narrow(a), SortKey::Narrow(b)) => a.cmp(b),
            (SortKey::Wide(a), SortKey::Wide(b)) => a.cmp(b),
            (SortKey::Narrow(a), SortKey::Wide(b)) => {
                a.iter().map(|&c| c as u32).cmp(b.iter().copied())
            }
            (SortKey::Wide(a), SortKey::Narrow(b)) => {
                a.iter().copied().cmp(b.iter().map(|&c| c as u32))
            }
        }
    }
}

impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hd(s: &str) -> String {
        let mut o = String::new();
        host_domain(s, &mut o);
        o
    }

    #[test]
    fn host_domains_as_pflogsumm_groups_them() {
        assert_eq!(hd("sender.example.com[192.168.1.1]"), "example.com");
        assert_eq!(hd("mail.Example.CO.UK[10.0.0.1]"), "example.co.uk");
        assert_eq!(hd("unknown[0.0.0.0]"), "0.0.0.0");
        assert_eq!(hd("unknown[fe80::1:2:3:4]"), "fe80::1:2:3:4");
        assert_eq!(hd("unknown[fe80::1:2:3:4] ehlo=2 quit=1"), "");
        assert_eq!(hd("unknown[0.0.0.0] ehlo=1 mail=1"), "0.0.0.0");
        assert_eq!(hd("example.com[1.2.3.4]"), "example.com");
        assert_eq!(hd("[216.245.194.173]:60591"), "216.245.194.173");
        assert_eq!(hd("foo[192.51.100.65]"), "foo");
        assert_eq!(
            hd("72-53-132-234.cpe.distributel.net[72.53.132.234]"),
            "distributel.net"
        );
    }

    /// The rule as first written (split into labels), as the oracle for
    /// the allocation-free scan.
    fn reduce_by_labels(name: &str) -> String {
        let labels: Vec<&str> = name.split('.').collect();
        let n = labels.len();
        let pick = if n >= 3 && labels[n - 1].len() == 3 && !labels[n - 2].is_empty() {
            &labels[n - 2..]
        } else if n >= 4
            && labels[n - 1].len() == 2
            && (2..=3).contains(&labels[n - 2].len())
            && !labels[n - 3].is_empty()
        {
            &labels[n - 3..]
        } else {
            return name.to_string();
        };
        pick.join(".").to_ascii_lowercase()
    }

    #[test]
    fn reduce_matches_the_label_rule() {
        for name in [
            "",
            ".",
            "..",
            "...",
            "com",
            "a.com",
            "A.B.COM",
            "x.a.b.com",
            ".com",
            "a..com",
            "..com",
            "a.b.c",
            "a.co.uk",
            "b.a.co.uk",
            "B.A.CO.UK",
            "x..co.uk",
            "x.a..uk",
            "x.a.com.uk",
            "x.a.comx.uk",
            "a.b.c.d.e",
            "mail.Ünï.example.com",
            "1.2.3.4",
        ] {
            let mut out = String::from("keep:");
            reduce(name, &mut out);
            assert_eq!(out, format!("keep:{}", reduce_by_labels(name)), "{name:?}");
        }
    }

    #[test]
    fn addresses() {
        let mut o = String::new();
        address_key("User@Example.COM", &mut o);
        assert_eq!(o, "User@example.com");
        assert_eq!(domain_of("a@b.c"), Some("b.c"));
        assert_eq!(domain_of("@b.c"), None);
        assert_eq!(domain_of("root"), None);
        assert!(sort_key("10.0.0.2") < sort_key("10.0.0.10"));
        assert!(sort_key("a@b.com") < sort_key("a@c.com"));
        // Narrow and wide keys compare as the numbers they hold.
        assert!(sort_key("é.com") > sort_key("z.com"));
        assert!(sort_key("1.2.3.300") > sort_key("1.2.3.255"));
        assert!(sort_key("ÿ.a") > sort_key("a.a"));
        assert!(sort_key("A@B.COM") == sort_key("a@b.com"));
    }

    #[test]
    fn sort_key_by_bytes_is_the_general_one() {
        for s in [
            "",
            " ",
            "user10@Sender.Example.com",
            "a@b@c.d",
            "from=<>",
            "10.0.0.2",
            "10.0.0.2 x",
            "1.2.3.300",
            "1.2.3.4.5",
            "1.2.3",
            "host\tname.example",
            "host\x0bname.example",
            "host\x0cname.example",
            "host\rname",
            "host\nname",
            "name.example\u{a0}rest",
            "name.example\u{85}rest",
            "name.example rest\u{e9}",
            "\u{e9}.com",
            "Ü@x.Y",
            "..@..",
            "@",
            "unknown[192.0.2.1]",
        ] {
            assert_eq!(sort_key(s), sort_key_chars(s), "{s:?}");
        }
    }
}
