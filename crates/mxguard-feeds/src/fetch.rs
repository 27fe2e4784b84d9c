//! Getting a feed's bytes: a file (a path or `file://`), or an HTTP/1.1
//! GET over `http://` or `https://` (TLS by rustls, certificates checked
//! against the system's roots). A minimal client on purpose: one request
//! per connection, `identity` encoding, `Content-Length`, chunked or
//! read-to-close bodies, at most [`MAX_REDIRECTS`] redirects, and every
//! read bounded by the feed's size limit and time-out.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Redirects followed at most per fetch.
pub const MAX_REDIRECTS: usize = 5;
/// Longest response header block read, in bytes.
const MAX_HEAD: u64 = 64 * 1024;

/// Where a feed comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    Http(String),
    File(PathBuf),
}

impl Source {
    /// `http://…`, `https://…`, `file:///path` or an absolute path.
    pub fn parse(s: &str) -> Result<Source, String> {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Url::parse(s)?;
            Ok(Source::Http(s.to_string()))
        } else if let Some(p) = s.strip_prefix("file://") {
            Source::parse(p)
        } else if s.starts_with('/') {
            Ok(Source::File(PathBuf::from(s)))
        } else {
            Err(format!(
                "`{s}` is not a feed source: use an http:// or https:// URL, file:///path or an absolute path"
            ))
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Http(u) => f.write_str(u),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Size and time bounds of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes.
    pub max_size: u64,
    /// The whole fetch: connect, TLS, request, redirects, body.
    pub timeout: Duration,
}

/// The parts of an http(s) URL a GET needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query, `/` at least.
    target: String,
}

impl Url {
    fn parse(s: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("`{s}` is not a usable feed URL: {why}");
        let (tls, rest) = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            _ => return Err(bad("only http:// and https:// are fetched")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?))
            }
            _ => (authority, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("no host"));
        }
        let tail = tail.split('#').next().unwrap_or_default();
        let target = if tail.starts_with('/') {
            tail.to_string()
        } else {
            format!("/{tail}")
        };
        Ok(Url {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            target,
        })
    }

    /// The URL a `Location` value points to from here.
    fn join(&self, location: &str) -> Result<Url, String> {
        if location.contains("://") {
            return Url::parse(location);
        }
        let mut next = self.clone();
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.tls { "https" } else { "http" };
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        next.target = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = self.target.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{location}")
        };
        Ok(next)
    }
}

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// The TLS client configuration, built once (reading the system's roots).
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static TLS: OnceLock<Result<tokio_rustls::TlsConnector, String>> = OnceLock::new();
    TLS.get_or_init(|| {
        use rustls_platform_verifier::BuilderVerifierExt;
        use tokio_rustls::rustls;
        // rustls is built with ring alone here, its default provider.
        let config = rustls::ClientConfig::builder()
            .with_platform_verifier()
            .map_err(|e| format!("cannot read the system's certificate roots: {e}"))?
            .with_no_client_auth();
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    })
    .clone()
}

/// The bytes of `source`, within `limits`.
pub async fn fetch(source: &Source, limits: Limits) -> Result<Vec<u8>, String> {
    match source {
        Source::File(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                mxguard_core::files::read_bounded(&path, limits.max_size)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .await
            .map_err(|e| format!("file read failed: {e}"))?
        }
        Source::Http(url) => match tokio::time::timeout(limits.timeout, get(url, limits)).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no complete answer from {url} within {:?} (the feed's fetch_timeout)",
                limits.timeout
            )),
        },
    }
}

async fn get(url: &str, limits: Limits) -> Result<Vec<u8>, String> {
    let mut url = Url::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        match get_once(&url, limits).await? {
            Answer::Body(b) => return Ok(b),
            Answer::Redirect(location) => url = url.join(&location)?,
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

async fn get_once(url: &Url, limits: Limits) -> Result<Answer, String> {
    let at = format!("{}:{}", url.host, url.port);
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {at}: {e}"))?;
    let stream: Box<dyn Conn> = if url.tls {
        use tokio_rustls::rustls::pki_types::ServerName;
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| format!("`{}` is not a TLS server name: {e}", url.host))?;
        Box::new(
            tls_connector()?
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {at} failed: {e}"))?,
        )
    } else {
        Box::new(tcp)
    };
    let mut stream = BufReader::new(stream);
    let host = if (url.tls && url.port == 443) || (!url.tls && url.port == 80) {
        url.host.clone()
    } else {
        at.clone()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mxguard/{}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        url.target,
        env!("CARGO_PKG_VERSION")
    );
    stream
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request to {at}: {e}"))?;

    // Status line and header fields.
    let mut head = Vec::new();
    let mut status = 0u16;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut location = None;
    let mut first = true;
    loop {
        let line = read_line(&mut stream, &mut head, MAX_HEAD).await?;
        if line.is_empty() {
            break;
        }
        if first {
            first = false;
            status = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .filter(|_| line.starts_with("HTTP/1."))
                .ok_or_else(|| format!("{at} did not answer HTTP/1.x: `{}`", clip(&line)))?;
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "location" => location = Some(value.to_string()),
            _ => {}
        }
    }
    match status {
        200 => {}
        301 | 302 | 303 | 307 | 308 => {
            return location
                .map(Answer::Redirect)
                .ok_or_else(|| format!("{at} answered {status} without a Location"));
        }
        s => return Err(format!("{at} answered HTTP {s} for {}", url.target)),
    }
    let too_big = |n: u64| {
        format!(
            "the feed from {at} is over {} bytes ({n}); raise max_feed_size",
            limits.max_size
        )
    };
    let mut body = Vec::new();
    if chunked {
        loop {
            let line = read_line(&mut stream, &mut head, 1024).await?;
            let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size from {at}"))?;
            if size == 0 {
                break;
            }
            let total = body.len() as u64 + size;
            if total > limits.max_size {
                return Err(too_big(total));
            }
            let start = body.len();
            body.resize(total as usize, 0);
            stream
                .read_exact(&mut body[start..])
                .await
                .map_err(|e| format!("the answer from {at} broke off: {e}"))?;
            read_line(&mut stream, &mut head, 1024).await?;
        }
    } else if let Some(n) = length {
        if n > limits.max_size {
            return Err(too_big(n));
        }
        body.resize(n as usize, 0);
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("the answer from {at} broke off: {e}"))?;
    } else {
        (&mut stream)
            .take(limits.max_size + 1)
            .read_to_end(&mut body)
            .await
            .map_err(|e| format!("the answer from {at} broke off: {e}"))?;
        if body.len() as u64 > limits.max_size {
            return Err(too_big(body.len() as u64));
        }
    }
    Ok(Answer::Body(body))
}

/// One line (CRLF or LF) of at most `max` bytes, without its ending.
async fn read_line(
    stream: &mut BufReader<Box<dyn Conn>>,
    buf: &mut Vec<u8>,
    max: u64,
) -> Result<String, String> {
    buf.clear();
    let n = (&mut *stream)
        .take(max)
        .read_until(b'\n', buf)
        .await
        .map_err(|e| format!("read failed: {e}"))?;
    if n == 0 {
        return Err("the connection closed before the answer was complete".into());
    }
    if buf.last() != Some(&b'\n') {
        return Err(format!("an answer line over {max} bytes"));
    }
    let line = String::from_utf8_lossy(buf);
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn clip(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_urls() {
        assert_eq!(
            Source::parse("file:///var/lib/feed.txt").unwrap(),
            Source::File("/var/lib/feed.txt".into())
        );
        assert!(Source::parse("feed.txt").is_err());
        assert!(Source::parse("ftp://x/").is_err());
        let u = Url::parse("https://Example.com:8443/a/b?x=1#f").unwrap();
        assert_eq!((u.tls, u.port, u.target.as_str()), (true, 8443, "/a/b?x=1"));
        let u = Url::parse("http://127.0.0.1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.target.as_str()),
            ("127.0.0.1", 80, "/")
        );
        assert_eq!(u.join("/c").unwrap().target, "/c");
        assert_eq!(
            Url::parse("http://h/a/b")
                .unwrap()
                .join("c")
                .unwrap()
                .target,
            "/a/c"
        );
        assert!(u.join("https://other.example/x").unwrap().tls);
        assert!(Url::parse("http://:80/").is_err());
        assert!(Url::parse("http://u@h/").is_err());
    }
}
