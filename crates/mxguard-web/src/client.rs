//! The CLI's way to a running `serve`: one HTTP/1.0 request over the unix
//! control socket (blocking; the CLI has no runtime for this). When the
//! socket is missing or nobody listens, [`ClientError::NotRunning`] tells
//! the caller to use the store directly.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Largest reply read: a history page or a stat is far smaller.
const MAX_REPLY: u64 = 64 << 20;

#[derive(Debug)]
pub enum ClientError {
    /// No `serve` behind the socket.
    NotRunning,
    Failed(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning => f.write_str("mxguard serve is not running"),
            ClientError::Failed(m) => f.write_str(m),
        }
    }
}

/// A reply: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, and rspamd's `{"error": …}` as an `Err`.
    pub fn json(&self) -> Result<serde_json::Value, String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).map_err(|e| {
            format!(
                "mxguard serve answered {} with a body that is not JSON: {e}",
                self.status
            )
        })?;
        if (200..300).contains(&self.status) {
            Ok(v)
        } else {
            Err(format!(
                "mxguard serve answered {}: {}",
                self.status,
                v.get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no reason given")
            ))
        }
    }
}

/// Sends one request to the control socket at `socket`.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let mut s = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning);
        }
        Err(e) => {
            return Err(ClientError::Failed(format!(
                "cannot connect to {}: {e}",
                socket.display()
            )));
        }
    };
    let failed = |e: std::io::Error| {
        ClientError::Failed(format!(
            "talking to mxguard serve on {}: {e}",
            socket.display()
        ))
    };
    s.set_read_timeout(Some(timeout)).map_err(failed)?;
    s.set_write_timeout(Some(timeout)).map_err(failed)?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        if k.contains(['\r', '\n']) || v.contains(['\r', '\n']) {
            return Err(ClientError::Failed(format!(
                "header {k} holds a line break"
            )));
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(failed)?;
    s.write_all(body).map_err(failed)?;
    let mut reply = Vec::new();
    s.take(MAX_REPLY).read_to_end(&mut reply).map_err(failed)?;
    parse_reply(&reply).ok_or_else(|| {
        ClientError::Failed(format!(
            "mxguard serve on {} sent a reply that is not HTTP",
            socket.display()
        ))
    })
}

fn parse_reply(reply: &[u8]) -> Option<Answer> {
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&reply[..end]).ok()?;
    let status: u16 = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let mut body = reply[end + 4..].to_vec();
    let len = head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    if let Some(n) = len {
        body.truncate(n);
    }
    Some(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse() {
        let a = parse_reply(
            b"HTTP/1.0 403 Forbidden\r\nContent-Length: 15\r\n\r\n{\"error\":\"no\"}\n--",
        )
        .unwrap();
        assert_eq!(a.status, 403);
        assert_eq!(a.json().unwrap_err(), "mxguard serve answered 403: no");
        assert!(parse_reply(b"garbage").is_none());
    }

    #[test]
    fn missing_socket_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let r = request(
            &dir.path().join("none.sock"),
            "GET",
            "/stat",
            &[],
            b"",
            Duration::from_secs(1),
        );
        assert!(matches!(r, Err(ClientError::NotRunning)));
    }
}
