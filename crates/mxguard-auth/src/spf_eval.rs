//! RFC 7208 `check_host()`, complete: every mechanism (`all`, `include`,
//! `a`, `mx`, `ptr`, `ip4`, `ip6`, `exists`), `redirect=` and `exp=`,
//! macros with their transformers, the strict record syntax (a broken
//! record is permerror), the 10 DNS-mechanism limit, the 2 void-lookup
//! limit, 10 MX and 10 PTR names per mechanism. Every lookup goes through
//! [`Dns`].

use crate::results::AuthResult;
use mxguard_dns::Dns;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::sync::Arc;

const MAX_DNS_MECHANISMS: u32 = 10;
const MAX_VOID_LOOKUPS: u32 = 2;
const MAX_NAMES: usize = 10;
/// Includes and redirects nest at most this deep (the lookup limit stops
/// loops first; this bounds the recursion itself).
const MAX_DEPTH: u32 = 12;

/// The outcome of `check_host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub result: AuthResult,
    /// The `exp=` text of a fail, when the record gives one.
    pub explanation: Option<String>,
}

/// What stays the same through one evaluation.
pub struct Context<'a> {
    pub ip: IpAddr,
    pub sender: &'a str,
    pub helo: &'a str,
    pub receiver: &'a str,
}

struct State {
    lookups: u32,
    voids: u32,
}

enum Stop {
    Result(AuthResult),
}

type Step<T> = Result<T, Stop>;

fn perm<T>() -> Step<T> {
    Err(Stop::Result(AuthResult::PermError))
}

fn temp<T>() -> Step<T> {
    Err(Stop::Result(AuthResult::TempError))
}

/// `check_host(ip, domain, sender)`. An IPv4-mapped IPv6 client is
/// treated as its IPv4 address.
pub async fn check_host(dns: &Dns, ctx: &Context<'_>, domain: &str) -> Outcome {
    let ip = match ctx.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ctx.ip, IpAddr::V4),
        v4 => v4,
    };
    let ctx = Context { ip, ..*ctx };
    let mut st = State {
        lookups: 0,
        voids: 0,
    };
    let domain = domain.trim_end_matches('.');
    // 4.3: a malformed domain gives none.
    if !valid_domain(domain) || !domain.contains('.') || domain.contains(['[', ']']) {
        return Outcome {
            result: AuthResult::None,
            explanation: None,
        };
    }
    match evaluate(dns, &ctx, domain.to_string(), &mut st, 0).await {
        Ok(o) => o,
        Err(Stop::Result(r)) => Outcome {
            result: r,
            explanation: None,
        },
    }
}

/// A domain name as mail carries it: a name DNS can ask, no white space.
fn valid_domain(d: &str) -> bool {
    valid_query_name(d) && !d.contains(char::is_whitespace)
}

/// A name DNS can ask: labels of 1..=63 bytes, at most 253 in all. A
/// label may hold any octet (RFC 2181 11), so a macro-expanded target
/// with `%_` spaces or `:` and `/` is asked as it is (RFC 7208 7.1).
fn valid_query_name(d: &str) -> bool {
    let d = d.trim_end_matches('.');
    !d.is_empty() && d.len() <= 253 && d.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    fn result(self) -> AuthResult {
        match self {
            Qualifier::Pass => AuthResult::Pass,
            Qualifier::Fail => AuthResult::Fail,
            Qualifier::SoftFail => AuthResult::SoftFail,
            Qualifier::Neutral => AuthResult::Neutral,
        }
    }
}

#[derive(Debug, Clone)]
enum Mechanism {
    All,
    Include(String),
    A(Option<String>, u8, u8),
    Mx(Option<String>, u8, u8),
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

struct Record {
    terms: Vec<(Qualifier, Mechanism)>,
    redirect: Option<String>,
    exp: Option<String>,
}

/// What a name publishes for SPF, read once per DNS answer (kept beside
/// it in the resolver's cache, see [`Dns::txt_parsed`]): a sender's record
/// is asked for every message it sends, and its parse depends on the
/// record alone (macros are expanded per evaluation).
enum Published {
    /// No `v=spf1` record.
    Nothing,
    /// Several `v=spf1` records (4.5), or one that does not parse: permerror.
    Broken,
    Record(Record),
}

fn read_published(txt: &[String]) -> Published {
    let mut found = txt.iter().filter(|t| {
        t.get(..6).is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
            && (t.len() == 6 || t.as_bytes()[6] == b' ')
    });
    match (found.next(), found.next()) {
        (None, _) => Published::Nothing,
        (Some(text), None) => parse_record(text).map_or(Published::Broken, Published::Record),
        (Some(_), Some(_)) => Published::Broken,
    }
}

/// The SPF record of `domain`, parsed: `Ok(None)` when there is none.
async fn fetch(dns: &Dns, domain: &str) -> Step<Option<Arc<Published>>> {
    let published = match dns.txt_parsed(domain, read_published).await {
        Ok(p) => p,
        Err(_) => return temp(),
    };
    match *published {
        Published::Nothing => Ok(None),
        Published::Broken => perm(),
        Published::Record(_) => Ok(Some(published)),
    }
}

fn parse_cidr(s: &str, max: u8) -> Step<u8> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return perm();
    }
    match s.parse::<u8>() {
        Ok(n) if n <= max => Ok(n),
        _ => perm(),
    }
}

/// `domain-spec` with optional `/n` and `//n6`.
/// A slash starts a CIDR length only when only digits follow it (a
/// domain-spec may hold slashes and colons itself).
fn split_dual_cidr(v: &str) -> Step<(&str, u8, u8)> {
    let digits_after = |i: usize, skip: usize| {
        let tail = &v[i + skip..];
        !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit())
    };
    let (rest, c6) = match v.rfind("//") {
        Some(i) if digits_after(i, 2) => (&v[..i], parse_cidr(&v[i + 2..], 128)?),
        Some(i)
            if v.ends_with("//") || v[i + 2..].bytes().all(|b| b.is_ascii_digit() || b == b'/') =>
        {
            return perm();
        }
        _ => (v, 128),
    };
    let (dom, c4) = match rest.rfind('/') {
        Some(i) if i + 1 < rest.len() && rest[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            (&rest[..i], parse_cidr(&rest[i + 1..], 32)?)
        }
        Some(i) if i + 1 == rest.len() => return perm(),
        _ => (rest, 32),
    };
    Ok((dom, c4, c6))
}

/// Checks a `domain-spec`'s syntax: a valid macro-string, ending in a
/// macro or in a top label that is not all digits.
fn check_domain_spec(spec: &str) -> Step<()> {
    if spec.is_empty() {
        return perm();
    }
    check_macro_string(spec)?;
    // c, r and t are for explanation text only (7.3).
    if spec.contains("%{c")
        || spec.contains("%{r")
        || spec.contains("%{t")
        || spec.contains("%{C")
        || spec.contains("%{R")
        || spec.contains("%{T")
    {
        return perm();
    }
    if spec.ends_with('}') {
        return Ok(());
    }
    let trimmed = spec.strip_suffix('.').unwrap_or(spec);
    let Some((_, top)) = trimmed.rsplit_once('.') else {
        return perm();
    };
    let ok = !top.is_empty()
        && top.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !top.starts_with('-')
        && !top.ends_with('-')
        && top.bytes().any(|b| b.is_ascii_alphabetic());
    if ok { Ok(()) } else { perm() }
}

fn check_macro_string(s: &str) -> Step<()> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(0x21..=0x7e).contains(&c) {
            return perm();
        }
        if c == b'%' {
            match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let Some(end) = s[i..].find('}') else {
                        return perm();
                    };
                    parse_macro(&s[i + 2..i + end])?;
                    i += end + 1;
                }
                _ => return perm(),
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// `letter [digits] [r] [delimiters]`.
fn parse_macro(m: &str) -> Step<(char, Option<usize>, bool, Vec<char>)> {
    let mut chars = m.chars();
    let Some(letter) = chars.next() else {
        return perm();
    };
    if !"slodiphcrtvSLODIPHCRTV".contains(letter) {
        return perm();
    }
    let rest: String = chars.collect();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let mut tail = &rest[digits.len()..];
    let keep = if digits.is_empty() {
        None
    } else {
        match digits.parse::<usize>() {
            Ok(0) | Err(_) => return perm(),
            Ok(n) => Some(n.min(128)),
        }
    };
    let reverse = tail.starts_with(['r', 'R']);
    if reverse {
        tail = &tail[1..];
    }
    if !tail.chars().all(|c| ".-+,/_=".contains(c)) {
        return perm();
    }
    Ok((letter, keep, reverse, tail.chars().collect()))
}

fn parse_record(text: &str) -> Step<Record> {
    let mut r = Record {
        terms: Vec::new(),
        redirect: None,
        exp: None,
    };
    for term in text.split(' ').skip(1).filter(|t| !t.is_empty()) {
        if !term.is_ascii() {
            return perm();
        }
        // A modifier: name=value, name starting with a letter.
        if let Some((name, value)) = term.split_once('=')
            && !name.contains([':', '/'])
        {
            if name.is_empty()
                || !name.starts_with(|c: char| c.is_ascii_alphabetic())
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return perm();
            }
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if r.redirect.is_some() {
                        return perm();
                    }
                    check_domain_spec(value)?;
                    r.redirect = Some(value.to_string());
                }
                "exp" => {
                    if r.exp.is_some() {
                        return perm();
                    }
                    check_domain_spec(value)?;
                    r.exp = Some(value.to_string());
                }
                _ => check_macro_string(value)?,
            }
            continue;
        }
        let (q, rest) = match term.as_bytes()[0] {
            b'+' => (Qualifier::Pass, &term[1..]),
            b'-' => (Qualifier::Fail, &term[1..]),
            b'~' => (Qualifier::SoftFail, &term[1..]),
            b'?' => (Qualifier::Neutral, &term[1..]),
            _ => (Qualifier::Pass, term),
        };
        let (name, value) = match rest.find([':', '/']) {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        let m = match name.to_ascii_lowercase().as_str() {
            "all" if value.is_none() => Mechanism::All,
            "include" => {
                let d = value
                    .and_then(|v| v.strip_prefix(':'))
                    .ok_or(Stop::Result(AuthResult::PermError))?;
                check_domain_spec(d)?;
                Mechanism::Include(d.to_string())
            }
            "exists" => {
                let d = value
                    .and_then(|v| v.strip_prefix(':'))
                    .ok_or(Stop::Result(AuthResult::PermError))?;
                check_domain_spec(d)?;
                Mechanism::Exists(d.to_string())
            }
            "a" | "mx" => {
                let v = value.unwrap_or_default();
                let (dom, c4, c6) = if let Some(d) = v.strip_prefix(':') {
                    let (dom, c4, c6) = split_dual_cidr(d)?;
                    check_domain_spec(dom)?;
                    (Some(dom.to_string()), c4, c6)
                } else if v.is_empty() {
                    (None, 32, 128)
                } else {
                    let (dom, c4, c6) = split_dual_cidr(v)?;
                    if !dom.is_empty() {
                        return perm();
                    }
                    (None, c4, c6)
                };
                if name.eq_ignore_ascii_case("a") {
                    Mechanism::A(dom, c4, c6)
                } else {
                    Mechanism::Mx(dom, c4, c6)
                }
            }
            "ptr" => match value {
                None => Mechanism::Ptr(None),
                Some(v) => {
                    let d = v
                        .strip_prefix(':')
                        .ok_or(Stop::Result(AuthResult::PermError))?;
                    check_domain_spec(d)?;
                    Mechanism::Ptr(Some(d.to_string()))
                }
            },
            "ip4" => {
                let v = value
                    .and_then(|v| v.strip_prefix(':'))
                    .ok_or(Stop::Result(AuthResult::PermError))?;
                let (addr, cidr) = match v.split_once('/') {
                    Some((a, c)) => (a, parse_cidr(c, 32)?),
                    None => (v, 32),
                };
                let a: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| Stop::Result(AuthResult::PermError))?;
                Mechanism::Ip4(a, cidr)
            }
            "ip6" => {
                let v = value
                    .and_then(|v| v.strip_prefix(':'))
                    .ok_or(Stop::Result(AuthResult::PermError))?;
                let (addr, cidr) = match v.rsplit_once('/') {
                    Some((a, c)) if !c.contains(':') => (a, parse_cidr(c, 128)?),
                    _ => (v, 128),
                };
                let a: Ipv6Addr = addr
                    .parse()
                    .map_err(|_| Stop::Result(AuthResult::PermError))?;
                Mechanism::Ip6(a, cidr)
            }
            _ => return perm(),
        };
        r.terms.push((q, m));
    }
    Ok(r)
}

fn in_v4(ip: IpAddr, net: Ipv4Addr, cidr: u8) -> bool {
    let IpAddr::V4(ip) = ip else { return false };
    if cidr == 0 {
        return true;
    }
    let mask = u32::MAX << (32 - u32::from(cidr));
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: IpAddr, net: Ipv6Addr, cidr: u8) -> bool {
    let IpAddr::V6(ip) = ip else { return false };
    if cidr == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(cidr));
    u128::from(ip) & mask == u128::from(net) & mask
}

fn count_lookup(st: &mut State) -> Step<()> {
    st.lookups += 1;
    if st.lookups > MAX_DNS_MECHANISMS {
        perm()
    } else {
        Ok(())
    }
}

fn count_void(st: &mut State, empty: bool) -> Step<()> {
    if empty {
        st.voids += 1;
        if st.voids > MAX_VOID_LOOKUPS {
            return perm();
        }
    }
    Ok(())
}

/// Expands a macro-string (RFC 7208 7). `exp` allows c, r, t.
async fn expand(dns: &Dns, ctx: &Context<'_>, domain: &str, s: &str, exp: bool) -> Step<String> {
    let (local, sender_domain) = match ctx.sender.rsplit_once('@') {
        Some((l, d)) => (if l.is_empty() { "postmaster" } else { l }, d),
        None => ("postmaster", ctx.sender),
    };
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.as_bytes().first() {
            Some(b'%') => {
                out.push('%');
                rest = &after[1..];
            }
            Some(b'_') => {
                out.push(' ');
                rest = &after[1..];
            }
            Some(b'-') => {
                out.push_str("%20");
                rest = &after[1..];
            }
            Some(b'{') => {
                let Some(end) = after.find('}') else {
                    return perm();
                };
                let (letter, keep, reverse, delims) = parse_macro(&after[1..end])?;
                let value = match letter.to_ascii_lowercase() {
                    's' => format!("{local}@{sender_domain}"),
                    'l' => local.to_string(),
                    'o' => sender_domain.to_string(),
                    'd' => domain.to_string(),
                    'i' => match ctx.ip {
                        IpAddr::V4(v) => v.to_string(),
                        IpAddr::V6(v) => v
                            .octets()
                            .iter()
                            .flat_map(|b| [b >> 4, b & 0xf])
                            .map(|n| format!("{n:x}"))
                            .collect::<Vec<_>>()
                            .join("."),
                    },
                    'p' => validated_name(dns, ctx.ip, domain).await,
                    'v' => if ctx.ip.is_ipv4() { "in-addr" } else { "ip6" }.to_string(),
                    'h' => ctx.helo.to_string(),
                    'c' if exp => ctx.ip.to_string(),
                    'r' if exp => ctx.receiver.to_string(),
                    't' if exp => std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs())
                        .to_string(),
                    _ => return perm(),
                };
                let delims: Vec<char> = if delims.is_empty() { vec!['.'] } else { delims };
                let mut parts: Vec<&str> = value.split(|c| delims.contains(&c)).collect();
                if reverse {
                    parts.reverse();
                }
                if let Some(n) = keep
                    && parts.len() > n
                {
                    parts = parts.split_off(parts.len() - n);
                }
                let joined = parts.join(".");
                if letter.is_ascii_uppercase() {
                    for b in joined.bytes() {
                        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                            out.push(b as char);
                        } else {
                            out.push_str(&format!("%{b:02X}"));
                        }
                    }
                } else {
                    out.push_str(&joined);
                }
                rest = &after[end + 1..];
            }
            _ => return perm(),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A domain-spec after expansion, cut from the left to 253 bytes (7.3).
fn fit_domain(mut d: String) -> String {
    while d.trim_end_matches('.').len() > 253 {
        match d.split_once('.') {
            Some((_, rest)) => d = rest.to_string(),
            None => break,
        }
    }
    d.trim_end_matches('.').to_string()
}

/// `%{p}`: a PTR name of the client that resolves back to it, preferring
/// `domain` or its subdomains; "unknown" when there is none.
async fn validated_name(dns: &Dns, ip: IpAddr, domain: &str) -> String {
    let Ok(names) = dns.ptr(ip).await else {
        return "unknown".into();
    };
    let mut found = None;
    for n in names.into_iter().take(MAX_NAMES) {
        if let Ok(addrs) = dns.addresses(&n).await
            && addrs.contains(&ip)
        {
            if n.eq_ignore_ascii_case(domain)
                || n.to_ascii_lowercase()
                    .ends_with(&format!(".{}", domain.to_ascii_lowercase()))
            {
                return n;
            }
            found.get_or_insert(n);
        }
    }
    found.unwrap_or_else(|| "unknown".into())
}

async fn target(dns: &Dns, ctx: &Context<'_>, domain: &str, spec: &Option<String>) -> Step<String> {
    match spec {
        None => Ok(domain.to_string()),
        Some(s) => {
            let d = fit_domain(expand(dns, ctx, domain, s, false).await?);
            if valid_query_name(&d) { Ok(d) } else { perm() }
        }
    }
}

/// Addresses of `name` of the client's family, counting a void answer.
async fn addresses_of(
    dns: &Dns,
    ip: IpAddr,
    name: &str,
    st: &mut State,
    void: bool,
) -> Step<Vec<IpAddr>> {
    let r: Result<Vec<IpAddr>, _> = match ip {
        IpAddr::V4(_) => dns
            .a(name)
            .await
            .map(|v| v.into_iter().map(IpAddr::V4).collect()),
        IpAddr::V6(_) => dns
            .aaaa(name)
            .await
            .map(|v| v.into_iter().map(IpAddr::V6).collect()),
    };
    match r {
        Ok(v) => {
            if void {
                count_void(st, v.is_empty())?;
            }
            Ok(v)
        }
        Err(_) => temp(),
    }
}

fn matches(ip: IpAddr, addr: IpAddr, c4: u8, c6: u8) -> bool {
    match addr {
        IpAddr::V4(a) => in_v4(ip, a, c4),
        IpAddr::V6(a) => in_v6(ip, a, c6),
    }
}

fn evaluate<'a>(
    dns: &'a Dns,
    ctx: &'a Context<'a>,
    domain: String,
    st: &'a mut State,
    depth: u32,
) -> Pin<Box<dyn Future<Output = Step<Outcome>> + Send + 'a>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return perm();
        }
        let Some(published) = fetch(dns, &domain).await? else {
            return Err(Stop::Result(AuthResult::None));
        };
        let Published::Record(record) = &*published else {
            return perm();
        };
        for (q, m) in &record.terms {
            let hit = match m {
                Mechanism::All => true,
                Mechanism::Ip4(net, c) => in_v4(ctx.ip, *net, *c),
                Mechanism::Ip6(net, c) => in_v6(ctx.ip, *net, *c),
                Mechanism::Include(spec) => {
                    count_lookup(st)?;
                    let t = target(dns, ctx, &domain, &Some(spec.clone())).await?;
                    match evaluate(dns, ctx, t, st, depth + 1).await {
                        Ok(o) => match o.result {
                            AuthResult::Pass => true,
                            AuthResult::TempError => return temp(),
                            AuthResult::PermError | AuthResult::None => return perm(),
                            _ => false,
                        },
                        Err(Stop::Result(AuthResult::TempError)) => return temp(),
                        Err(Stop::Result(AuthResult::None | AuthResult::PermError)) => {
                            return perm();
                        }
                        Err(Stop::Result(_)) => false,
                    }
                }
                Mechanism::A(spec, c4, c6) => {
                    count_lookup(st)?;
                    let t = target(dns, ctx, &domain, spec).await?;
                    let addrs = addresses_of(dns, ctx.ip, &t, st, true).await?;
                    addrs.iter().any(|a| matches(ctx.ip, *a, *c4, *c6))
                }
                Mechanism::Mx(spec, c4, c6) => {
                    count_lookup(st)?;
                    let t = target(dns, ctx, &domain, spec).await?;
                    let hosts = match dns.mx(&t).await {
                        Ok(h) => h,
                        Err(_) => return temp(),
                    };
                    count_void(st, hosts.is_empty())?;
                    if hosts.len() > MAX_NAMES {
                        return perm();
                    }
                    let mut hit = false;
                    for h in hosts {
                        if !valid_domain(&h) {
                            continue;
                        }
                        let addrs = addresses_of(dns, ctx.ip, &h, st, false).await?;
                        if addrs.iter().any(|a| matches(ctx.ip, *a, *c4, *c6)) {
                            hit = true;
                            break;
                        }
                    }
                    hit
                }
                Mechanism::Ptr(spec) => {
                    count_lookup(st)?;
                    let t = target(dns, ctx, &domain, spec).await?.to_ascii_lowercase();
                    let names = dns.ptr(ctx.ip).await.unwrap_or_default();
                    count_void(st, names.is_empty())?;
                    let mut hit = false;
                    for n in names.into_iter().take(MAX_NAMES) {
                        let n = n.to_ascii_lowercase();
                        if (n == t || n.ends_with(&format!(".{t}")))
                            && let Ok(addrs) = addresses_of(dns, ctx.ip, &n, st, false).await
                            && addrs.contains(&ctx.ip)
                        {
                            hit = true;
                            break;
                        }
                    }
                    hit
                }
                Mechanism::Exists(spec) => {
                    count_lookup(st)?;
                    let t = target(dns, ctx, &domain, &Some(spec.clone())).await?;
                    let found = match dns.a(&t).await {
                        Ok(v) => v,
                        Err(_) => return temp(),
                    };
                    count_void(st, found.is_empty())?;
                    !found.is_empty()
                }
            };
            if hit {
                let mut explanation = None;
                if *q == Qualifier::Fail
                    && let Some(exp) = &record.exp
                {
                    explanation = explain(dns, ctx, &domain, exp).await;
                }
                return Ok(Outcome {
                    result: q.result(),
                    explanation,
                });
            }
        }
        if let Some(spec) = &record.redirect {
            count_lookup(st)?;
            let t = target(dns, ctx, &domain, &Some(spec.clone())).await?;
            return match evaluate(dns, ctx, t, st, depth + 1).await {
                Err(Stop::Result(AuthResult::None)) => perm(),
                other => other,
            };
        }
        Ok(Outcome {
            result: AuthResult::Neutral,
            explanation: None,
        })
    })
}

/// The `exp=` text; any problem means no explanation (6.2).
async fn explain(dns: &Dns, ctx: &Context<'_>, domain: &str, spec: &str) -> Option<String> {
    let name = fit_domain(expand(dns, ctx, domain, spec, false).await.ok()?);
    if !valid_query_name(&name) {
        return None;
    }
    let txt = dns.txt(&name).await.ok()?;
    let [text] = txt.as_slice() else { return None };
    if !text.is_ascii() {
        return None;
    }
    expand(dns, ctx, domain, text, true).await.ok()
}
