//! Who may do what. Three levels: none, read (`password`) and admin
//! (`enable_password`). A request gets its level from, in this order: the
//! control socket (admin: the socket's mode is the check), a `secure_ip`
//! client address (admin), the `Password` header, a session cookie made
//! by `/auth`, or, with no password set at all, admin on a listener only
//! this host reaches (config validation refuses any other).
//!
//! Writes made with an ambient credential (a cookie, a client address)
//! must prove they were not forged by another site: a session's writes
//! carry its CSRF token in `X-CSRF-Token`, and an address-granted write is
//! refused when the browser says it came from another site (`Origin`,
//! `Sec-Fetch-Site`). A `Password` header is not ambient: another site
//! cannot make a browser send it.
//!
//! Failed passwords are counted per client (an IPv6 client by its /64);
//! past `max_login_failures` within `login_window` the client gets 429,
//! even with the right password, until the window ends.

use crate::config::WebConfig;
use hyper::HeaderMap;
use mxguard_core::iptable::{IpTable, canonical, parse_network};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "mxguard_session";
/// The header a session's writes carry their CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Clients tracked by the failed-login limiter; past it, expired entries
/// are dropped, and if none is, unknown clients are refused (fail closed).
const MAX_TRACKED: usize = 10_000;
/// Browser sessions alive at once; the oldest goes first past it.
const MAX_SESSIONS: usize = 1_000;
/// Passwords verified recently (by SHA-256 of what was sent): argon2 costs
/// tens of milliseconds, too much for every rspamc request.
const MAX_VERIFIED: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Read,
    Admin,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::Read => "read",
            Level::Admin => "admin",
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The client's address: the peer, or behind a trusted proxy the
    /// address it forwarded for. `None` on the control socket.
    pub ip: Option<IpAddr>,
    /// The unix control socket (admin).
    pub control: bool,
}

/// How the level was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    ControlSocket,
    SecureIp,
    NoPassword,
    Password,
    Session,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    /// No credential where one is needed (401).
    Unauthorized(String),
    /// A wrong credential, too low a level, or a forged write (403).
    Forbidden(String),
    /// Too many failed logins from this client (429); seconds to wait.
    TooMany(u64),
}

pub struct Access {
    config: WebConfig,
    secure: IpTable<()>,
    proxies: IpTable<()>,
    verified: Mutex<HashMap<[u8; 32], Level>>,
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    limiter: Mutex<HashMap<IpAddr, Failures>>,
    failed_logins: AtomicU64,
    limited_logins: AtomicU64,
}

#[derive(Debug, Clone)]
struct Session {
    level: Level,
    csrf: String,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Access {
    /// Networks in the config were validated at load; one that does not
    /// parse here is skipped.
    pub fn new(config: &WebConfig) -> Access {
        let table = |list: &[String]| {
            let mut t = IpTable::default();
            for n in list {
                if let Ok(net) = parse_network(n) {
                    t.insert(net, ());
                }
            }
            t
        };
        Access {
            secure: table(&config.secure_ip),
            proxies: table(&config.trusted_proxies),
            config: config.clone(),
            verified: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            limiter: Mutex::new(HashMap::new()),
            failed_logins: AtomicU64::new(0),
            limited_logins: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &WebConfig {
        &self.config
    }

    /// Failed password checks since start.
    pub fn failed_logins(&self) -> u64 {
        self.failed_logins.load(Ordering::Relaxed)
    }

    /// Requests answered 429 by the login limiter since start.
    pub fn limited_logins(&self) -> u64 {
        self.limited_logins.load(Ordering::Relaxed)
    }

    /// The client behind `peer`: `X-Forwarded-For` is read only when the
    /// peer is a trusted proxy, right to left, skipping trusted proxies.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.proxies.lookup(peer).is_none() {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for") {
            let Ok(s) = value.to_str() else { return peer };
            for hop in s.split(',').rev() {
                let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                    return client;
                };
                client = canonical(ip);
                if self.proxies.lookup(client).is_none() {
                    return client;
                }
            }
        }
        client
    }

    /// The level a request has, for a route that needs `need` and writes
    /// when `write`.
    pub async fn check(
        &self,
        client: &Client,
        headers: &HeaderMap,
        need: Level,
        write: bool,
    ) -> Result<(Level, Via), Denied> {
        if client.control {
            return Ok((Level::Admin, Via::ControlSocket));
        }
        let ip = client.ip;
        if let Some(ip) = ip
            && self.secure.lookup(ip).is_some()
        {
            if write {
                refuse_cross_site(headers)?;
            }
            return Ok((Level::Admin, Via::SecureIp));
        }
        if let Some(given) = headers.get("password") {
            let level = self.password_level(ip, given.as_bytes()).await?;
            return enough(level, need, Via::Password);
        }
        let open = if !self.config.has_password() {
            Level::Admin
        } else if self.config.password.is_empty() {
            // Only enable_password is set: reads are open.
            Level::Read
        } else {
            Level::None
        };
        if let Some(token) = cookie(headers, COOKIE) {
            // A stale cookie (expired, or from before a restart) where no
            // credential is needed is no credential at all.
            let Some(session) = self.session(token) else {
                if open >= need {
                    if write {
                        refuse_cross_site(headers)?;
                    }
                    return Ok((open, Via::NoPassword));
                }
                return Err(Denied::Unauthorized(
                    "the session has expired: log in again".into(),
                ));
            };
            if write {
                let sent = headers
                    .get(CSRF_HEADER)
                    .map(|v| v.as_bytes())
                    .unwrap_or_default();
                if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
                    return Err(Denied::Forbidden(
                        "CSRF token missing or wrong: send the X-CSRF-Token header with the csrf value /auth gave".into(),
                    ));
                }
            }
            return enough(session.level, need, Via::Session);
        }
        if open >= need {
            if write {
                refuse_cross_site(headers)?;
            }
            return Ok((open, Via::NoPassword));
        }
        Err(Denied::Unauthorized(format!(
            "this needs the {} in the Password header",
            if need == Level::Admin {
                "enable_password"
            } else {
                "password"
            }
        )))
    }

    /// Checks a `Password` header: the admin hash first, then the read one.
    async fn password_level(&self, ip: Option<IpAddr>, given: &[u8]) -> Result<Level, Denied> {
        let key = ip.map(limiter_key);
        let now = Instant::now();
        if let Some(k) = key
            && let Some(wait) = self.locked(k, now)
        {
            self.limited_logins.fetch_add(1, Ordering::Relaxed);
            return Err(Denied::TooMany(wait));
        }
        let digest: [u8; 32] = Sha256::digest(given).into();
        let cached = self
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(&digest).copied());
        let level = match cached {
            Some(l) => l,
            None => {
                let (admin, read) = (
                    self.config.enable_password.clone(),
                    self.config.password.clone(),
                );
                let given = given.to_vec();
                // argon2 takes tens of milliseconds of CPU: off the workers.
                tokio::task::spawn_blocking(move || {
                    if !admin.is_empty() && crate::password::verify(&admin, &given) {
                        Level::Admin
                    } else if !read.is_empty() && crate::password::verify(&read, &given) {
                        if admin.is_empty() {
                            Level::Admin
                        } else {
                            Level::Read
                        }
                    } else {
                        Level::None
                    }
                })
                .await
                .unwrap_or(Level::None)
            }
        };
        if level == Level::None {
            self.failed_logins.fetch_add(1, Ordering::Relaxed);
            if let Some(k) = key {
                self.failed(k, now);
            }
            return Err(Denied::Forbidden("wrong password".into()));
        }
        if cached.is_none()
            && let Ok(mut v) = self.verified.lock()
        {
            if v.len() >= MAX_VERIFIED {
                v.clear();
            }
            v.insert(digest, level);
        }
        Ok(level)
    }

    /// Seconds the client must wait, if it is locked out.
    fn locked(&self, key: IpAddr, now: Instant) -> Option<u64> {
        let map = self.limiter.lock().ok()?;
        let window = Duration::from_secs(self.config.login_window.0);
        match map.get(&key) {
            Some(f) if f.count >= self.config.max_login_failures => {
                let elapsed = now.saturating_duration_since(f.since);
                (elapsed < window).then(|| (window - elapsed).as_secs().max(1))
            }
            Some(_) => None,
            // Untracked while the table is full: refused, not forgotten.
            None if map.len() >= MAX_TRACKED => Some(window.as_secs().max(1)),
            None => None,
        }
    }

    fn failed(&self, key: IpAddr, now: Instant) {
        let Ok(mut map) = self.limiter.lock() else {
            return;
        };
        let window = Duration::from_secs(self.config.login_window.0);
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            map.retain(|_, f| now.saturating_duration_since(f.since) < window);
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let f = map.entry(key).or_insert(Failures {
            count: 0,
            since: now,
        });
        if now.saturating_duration_since(f.since) >= window {
            *f = Failures {
                count: 0,
                since: now,
            };
        }
        f.count = f.count.saturating_add(1);
    }

    /// Starts a browser session at `level`: the cookie value and the CSRF
    /// token its writes must carry.
    pub fn login(&self, level: Level) -> (String, String) {
        let token = random_hex();
        let csrf = random_hex();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Ok(mut s) = self.sessions.lock() {
            s.retain(|_, v| v.expires > now);
            if s.len() >= MAX_SESSIONS
                && let Some(oldest) = s.iter().min_by_key(|(_, v)| v.expires).map(|(k, _)| *k)
            {
                s.remove(&oldest);
            }
            s.insert(
                digest,
                Session {
                    level,
                    csrf: csrf.clone(),
                    expires: now + Duration::from_secs(self.config.session_lifetime.0),
                },
            );
        }
        (token, csrf)
    }

    fn session(&self, token: &str) -> Option<Session> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let s = self.sessions.lock().ok()?;
        s.get(&digest)
            .filter(|v| v.expires > Instant::now())
            .cloned()
    }

    /// The CSRF token of the session in `headers`, if any.
    pub fn csrf_of(&self, headers: &HeaderMap) -> Option<String> {
        self.session(cookie(headers, COOKIE)?).map(|s| s.csrf)
    }

    /// Ends the session in `headers`, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Ok(mut s) = self.sessions.lock() {
                s.remove(&digest);
            }
        }
    }
}

fn enough(level: Level, need: Level, via: Via) -> Result<(Level, Via), Denied> {
    if level >= need {
        Ok((level, via))
    } else {
        Err(Denied::Forbidden(
            "the read-only password cannot change anything: log in with the enable_password".into(),
        ))
    }
}

/// Refuses a write a browser says another site started.
fn refuse_cross_site(headers: &HeaderMap) -> Result<(), Denied> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
        return Err(Denied::Forbidden(
            "cross-site request refused: writes come from this UI or a client with the Password header".into(),
        ));
    }
    if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin == "null" || !origin_host.eq_ignore_ascii_case(host) {
            return Err(Denied::Forbidden(format!(
                "cross-site request refused: Origin {origin} is not this host ({host})"
            )));
        }
    }
    Ok(())
}

/// The limiter counts an IPv6 client by its /64 (one host owns a /64).
fn limiter_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => mxguard_core::iptable::mask(IpAddr::V6(v6), 64),
        v4 => v4,
    }
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v.trim())
        })
}

/// 32 random bytes in hex, from the OS.
fn random_hex() -> String {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: a session token that cannot be guessed cannot
        // be made; a hash of the time and address space is the fallback
        // so the UI still works, logged loudly.
        tracing::error!("web: the OS gave no random bytes; session tokens are weak");
        let seed = format!("{:?}{:p}", Instant::now(), &b);
        b = Sha256::digest(seed.as_bytes()).into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn config(read: &str, admin: &str) -> WebConfig {
        WebConfig {
            password: if read.is_empty() {
                String::new()
            } else {
                crate::password::hash(read).unwrap()
            },
            enable_password: if admin.is_empty() {
                String::new()
            } else {
                crate::password::hash(admin).unwrap()
            },
            max_login_failures: 3,
            ..WebConfig::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const WEB: Client = Client {
        ip: Some(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7))),
        control: false,
    };

    #[tokio::test]
    async fn two_passwords_two_levels() {
        let a = Access::new(&config("reader", "admin"));
        let read = headers(&[("password", "reader")]);
        let admin = headers(&[("password", "admin")]);
        assert_eq!(
            a.check(&WEB, &read, Level::Read, false).await.unwrap().0,
            Level::Read
        );
        assert!(matches!(
            a.check(&WEB, &read, Level::Admin, true).await,
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(
            a.check(&WEB, &admin, Level::Admin, true).await.unwrap().0,
            Level::Admin
        );
        assert!(matches!(
            a.check(&WEB, &HeaderMap::new(), Level::Read, false).await,
            Err(Denied::Unauthorized(_))
        ));
    }

    #[tokio::test]
    async fn failures_lock_the_client_out_even_with_the_right_password() {
        let a = Access::new(&config("reader", "admin"));
        for _ in 0..3 {
            assert!(matches!(
                a.check(&WEB, &headers(&[("password", "guess")]), Level::Read, false)
                    .await,
                Err(Denied::Forbidden(_))
            ));
        }
        assert!(matches!(
            a.check(&WEB, &headers(&[("password", "admin")]), Level::Read, false)
                .await,
            Err(Denied::TooMany(_))
        ));
        // Another client is not locked out.
        let other = Client {
            ip: Some("192.0.2.8".parse().unwrap()),
            control: false,
        };
        assert!(
            a.check(
                &other,
                &headers(&[("password", "admin")]),
                Level::Read,
                false
            )
            .await
            .is_ok()
        );
        assert_eq!(a.failed_logins(), 3);
    }

    #[tokio::test]
    async fn session_writes_need_the_csrf_token() {
        let a = Access::new(&config("reader", "admin"));
        let (token, csrf) = a.login(Level::Admin);
        let cookie = format!("{COOKIE}={token}");
        let no_token = headers(&[("cookie", &cookie)]);
        assert!(a.check(&WEB, &no_token, Level::Read, false).await.is_ok());
        assert!(matches!(
            a.check(&WEB, &no_token, Level::Admin, true).await,
            Err(Denied::Forbidden(_))
        ));
        let forged = headers(&[("cookie", &cookie), ("x-csrf-token", "00")]);
        assert!(a.check(&WEB, &forged, Level::Admin, true).await.is_err());
        let good = headers(&[("cookie", &cookie), ("x-csrf-token", &csrf)]);
        assert!(a.check(&WEB, &good, Level::Admin, true).await.is_ok());
        a.logout(&good);
        assert!(a.check(&WEB, &good, Level::Read, false).await.is_err());
    }

    #[tokio::test]
    async fn no_password_is_open_but_not_cross_site() {
        let a = Access::new(&WebConfig::default());
        assert!(
            a.check(&WEB, &HeaderMap::new(), Level::Admin, true)
                .await
                .is_ok()
        );
        let forged = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:11337"),
        ]);
        assert!(matches!(
            a.check(&WEB, &forged, Level::Admin, true).await,
            Err(Denied::Forbidden(_))
        ));
        let same = headers(&[
            ("origin", "http://127.0.0.1:11337"),
            ("host", "127.0.0.1:11337"),
        ]);
        assert!(a.check(&WEB, &same, Level::Admin, true).await.is_ok());
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let a = Access::new(&WebConfig {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..WebConfig::default()
        });
        let h = headers(&[("x-forwarded-for", "198.51.100.1, 203.0.113.9")]);
        assert_eq!(
            a.client_ip("127.0.0.1".parse().unwrap(), &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            a.client_ip("192.0.2.1".parse().unwrap(), &h),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
