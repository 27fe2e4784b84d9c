//! clamd's INSTREAM command, written here rather than taken from a crate:
//! it is a few lines, and owning it lets every step obey the check's
//! deadline and every reply be treated as hostile.
//!
//! Protocol (clamd(8)): send `zINSTREAM\0`, then the data as chunks, each
//! a 4-byte big-endian length and that many bytes, then a zero length.
//! clamd answers one line ended by `\0`: `stream: OK`, `stream: <name>
//! FOUND` or `<text> ERROR`. When the stream outgrows clamd's
//! `StreamMaxLength` it answers `INSTREAM size limit exceeded. ERROR` and
//! closes while we may still be writing, so the reply is read while
//! writing, and a failed write still looks for that reply.

use std::fmt;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// clamd's default TCP port.
pub const DEFAULT_PORT: u16 = 3310;
/// Bytes per INSTREAM chunk; clamd reads chunks of any size up to its
/// `StreamMaxLength`, this keeps our writes small.
const CHUNK: usize = 64 * 1024;
/// A reply longer than this is not clamd's.
pub const MAX_REPLY: usize = 1024;
/// A virus name longer than this is cut.
const MAX_NAME: usize = 128;

/// One clamd to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// A unix socket, e.g. `/run/clamav/clamd.ctl`.
    Unix(PathBuf),
    /// `host:port` (port 3310 when left out); `[v6]:port` for IPv6.
    Tcp { host: String, port: u16 },
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Server::Unix(p) => write!(f, "{}", p.display()),
            Server::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Server::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Server {
    /// One entry of rspamd's `servers`: a path (starts with `/`) is a unix
    /// socket, anything else `host[:port]`.
    pub fn parse(s: &str) -> Result<Server, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty server entry".to_string());
        }
        if s.starts_with('/') {
            return Ok(Server::Unix(PathBuf::from(s)));
        }
        let bad = || {
            format!(
                "`{s}` is neither a unix socket path (starting with /) nor host:port \
                 (like 127.0.0.1:3310 or [::1]:3310)"
            )
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad()),
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 address, no port.
            (s, None)
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
        if !host_ok {
            return Err(bad());
        }
        Ok(Server::Tcp {
            host: host.to_string(),
            port,
        })
    }

    /// rspamd's `servers` string: entries separated by commas, semicolons
    /// or white space.
    pub fn parse_list(s: &str) -> Result<Vec<Server>, String> {
        s.split([',', ';', ' ', '\t', '\n'])
            .filter(|e| !e.trim().is_empty())
            .map(Server::parse)
            .collect()
    }
}

/// What clamd said about one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Clean,
    /// The signature's name, reduced to safe characters.
    Found(String),
    /// clamd could not scan it (`... ERROR`).
    Error(String),
    /// `INSTREAM size limit exceeded`: larger than clamd's `StreamMaxLength`.
    SizeLimit,
}

/// Why a scan gave no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Connecting, writing or reading failed (clamd down, restarting, reset).
    Io(String),
    /// No answer before the check's deadline.
    Timeout,
    /// Something that is not clamd's reply.
    Garbage(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "{e}"),
            Failure::Timeout => write!(f, "no answer within the time-out"),
            Failure::Garbage(e) => write!(f, "unexpected reply: {e}"),
        }
    }
}

/// A reply's text for a log line: printable ASCII, cut short.
fn shown(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .take(80)
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            }
        })
        .collect();
    if bytes.len() > 80 {
        format!("{s}…")
    } else {
        s
    }
}

/// A signature name safe for headers, logs and SMTP replies.
fn safe_name(name: &str) -> String {
    name.chars()
        .take(MAX_NAME)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '+' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Parses one reply (without its `\0`). Anything that is not one of
/// clamd's three shapes is [`Failure::Garbage`].
pub fn parse_reply(raw: &[u8]) -> Result<Reply, Failure> {
    if raw.len() > MAX_REPLY {
        return Err(Failure::Garbage(format!(
            "{} bytes, more than a clamd reply: {}",
            raw.len(),
            shown(raw)
        )));
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(Failure::Garbage(shown(raw)));
    };
    let text = text.trim_end_matches(['\0', '\n', '\r']).trim();
    if text.is_empty() {
        return Err(Failure::Garbage("an empty reply".to_string()));
    }
    if let Some(rest) = text.strip_suffix(" ERROR") {
        if rest.contains("size limit exceeded") {
            return Ok(Reply::SizeLimit);
        }
        return Ok(Reply::Error(shown(rest.as_bytes())));
    }
    // `stream: ...` (or `<id>: stream: ...` in an IDSESSION).
    let Some(body) = text
        .strip_prefix("stream: ")
        .or_else(|| text.split_once(": stream: ").map(|(_, b)| b))
    else {
        return Err(Failure::Garbage(shown(raw)));
    };
    if body == "OK" {
        return Ok(Reply::Clean);
    }
    match body.strip_suffix(" FOUND") {
        Some(name) if !name.trim().is_empty() => Ok(Reply::Found(safe_name(name.trim()))),
        _ => Err(Failure::Garbage(shown(raw))),
    }
}

/// Sends `data` with zINSTREAM on an open connection and reads the reply,
/// all before `deadline`.
pub async fn instream<S>(stream: S, data: &[u8], deadline: Instant) -> Result<Reply, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        writer.write_all(b"zINSTREAM\0").await?;
        for chunk in data.chunks(CHUNK) {
            // CHUNK fits in a u32.
            writer
                .write_all(&(chunk.len() as u32).to_be_bytes())
                .await?;
            writer.write_all(chunk).await?;
        }
        writer.write_all(&0u32.to_be_bytes()).await?;
        writer.flush().await?;
        // The half stays open: clamd replies on the same connection.
        Ok::<_, std::io::Error>(writer)
    };
    let read = read_reply(&mut reader);
    tokio::pin!(write, read);
    let mut write_error: Option<std::io::Error> = None;
    let mut writing = true;
    let mut _writer = None;
    let outcome = tokio::time::timeout_at(deadline, async {
        loop {
            tokio::select! {
                w = &mut write, if writing => {
                    writing = false;
                    match w {
                        Ok(wr) => _writer = Some(wr),
                        Err(e) => write_error = Some(e),
                    }
                }
                r = &mut read => return r,
            }
        }
    })
    .await;
    match outcome {
        Err(_) => Err(Failure::Timeout),
        Ok(Ok((bytes, false))) if bytes.is_empty() => Err(Failure::Io(match write_error {
            Some(e) => format!("write failed: {e}"),
            None => "connection closed without a reply".to_string(),
        })),
        Ok(Ok((bytes, _))) => parse_reply(&bytes),
        Ok(Err(e)) => Err(Failure::Io(match write_error {
            Some(w) => format!("write failed: {w}"),
            None => format!("read failed: {e}"),
        })),
    }
}

/// Reads up to the first `\0` (or end of stream), refusing more than
/// [`MAX_REPLY`] bytes; says whether the `\0` came.
async fn read_reply<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<(Vec<u8>, bool)> {
    let mut reply = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok((reply, false));
        }
        let got = &buf[..n];
        if let Some(end) = memchr::memchr(0, got) {
            reply.extend_from_slice(&got[..end]);
            return Ok((reply, true));
        }
        reply.extend_from_slice(got);
        if reply.len() > MAX_REPLY {
            // parse_reply refuses it and names its length.
            return Ok((reply, false));
        }
    }
}

/// Connects to `server` and scans `data`, all before `deadline`.
pub async fn scan(server: &Server, data: &[u8], deadline: Instant) -> Result<Reply, Failure> {
    let io = |what: &str, e: std::io::Error| Failure::Io(format!("{what} {server}: {e}"));
    match server {
        Server::Unix(path) => {
            let conn = tokio::time::timeout_at(deadline, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| Failure::Timeout)?
                .map_err(|e| io("cannot connect to", e))?;
            instream(conn, data, deadline).await
        }
        Server::Tcp { host, port } => {
            let conn = tokio::time::timeout_at(
                deadline,
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| io("cannot connect to", e))?;
            let _ = conn.set_nodelay(true);
            instream(conn, data, deadline).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::duplex;

    #[test]
    fn server_entries() {
        assert_eq!(
            Server::parse("/run/clamav/clamd.ctl"),
            Ok(Server::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            Server::parse("127.0.0.1:3311"),
            Ok(Server::Tcp {
                host: "127.0.0.1".into(),
                port: 3311
            })
        );
        assert_eq!(
            Server::parse("clamd.local"),
            Ok(Server::Tcp {
                host: "clamd.local".into(),
                port: 3310
            })
        );
        assert_eq!(
            Server::parse("[::1]:99").map(|s| s.to_string()),
            Ok("[::1]:99".to_string())
        );
        assert_eq!(
            Server::parse("::1").map(|s| s.to_string()),
            Ok("[::1]:3310".to_string())
        );
        for bad in [
            "host:0",
            "host:99999",
            "host:x",
            "a b",
            "[::1",
            "[::1]x",
            "",
            "h/st:1",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad}");
        }
        let list = Server::parse_list("/run/a.sock, 127.0.0.1:3310;10.0.0.2").unwrap();
        assert_eq!(list.len(), 3);
    }

    #[test]
    fn clamd_replies() {
        assert_eq!(parse_reply(b"stream: OK"), Ok(Reply::Clean));
        assert_eq!(parse_reply(b"stream: OK\n"), Ok(Reply::Clean));
        assert_eq!(
            parse_reply(b"stream: Win.Test.EICAR_HDB-1 FOUND"),
            Ok(Reply::Found("Win.Test.EICAR_HDB-1".into()))
        );
        assert_eq!(
            parse_reply(b"1: stream: Eicar-Signature FOUND"),
            Ok(Reply::Found("Eicar-Signature".into()))
        );
        assert_eq!(
            parse_reply(b"INSTREAM size limit exceeded. ERROR"),
            Ok(Reply::SizeLimit)
        );
        assert_eq!(
            parse_reply(b"stream: Can't allocate memory ERROR"),
            Ok(Reply::Error("stream: Can't allocate memory".into()))
        );
    }

    #[test]
    fn hostile_replies_are_failures_not_panics() {
        for bad in [
            &b""[..],
            b"\0",
            b"hello",
            b"stream:",
            b"stream: FOUND",
            b"stream:  FOUND",
            b"stream: \xff\xfe FOUND",
            b"\xff\xff\xff",
            b"OK",
            b"stream: OKAY",
        ] {
            assert!(
                matches!(parse_reply(bad), Err(Failure::Garbage(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'A'; MAX_REPLY + 1];
        match parse_reply(&long) {
            Err(Failure::Garbage(e)) => assert!(e.len() < 200, "{e}"),
            other => panic!("{other:?}"),
        }
        // A name made to inject headers or SMTP lines comes out inert.
        let Ok(Reply::Found(name)) = parse_reply(b"stream: Evil\r\nX-Spam: no; \"quote\" FOUND")
        else {
            panic!()
        };
        assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name}");
        let huge = format!("stream: {} FOUND", "V".repeat(900));
        let Ok(Reply::Found(name)) = parse_reply(huge.as_bytes()) else {
            panic!()
        };
        assert_eq!(name.len(), MAX_NAME);
    }

    /// A fake clamd over an in-memory pipe: checks the bytes we send and
    /// answers `reply`, raw.
    async fn against(
        reply: &'static [u8],
        data: &[u8],
        close_early: bool,
    ) -> Result<Reply, Failure> {
        let (ours, mut theirs) = duplex(1 << 16);
        let peer = tokio::spawn(async move {
            let mut got = Vec::new();
            if !close_early {
                let mut cmd = [0u8; 10];
                theirs.read_exact(&mut cmd).await.unwrap();
                assert_eq!(&cmd, b"zINSTREAM\0");
                loop {
                    let mut len = [0u8; 4];
                    theirs.read_exact(&mut len).await.unwrap();
                    let len = u32::from_be_bytes(len) as usize;
                    if len == 0 {
                        break;
                    }
                    assert!(len <= CHUNK);
                    let mut chunk = vec![0u8; len];
                    theirs.read_exact(&mut chunk).await.unwrap();
                    got.extend_from_slice(&chunk);
                }
            }
            theirs.write_all(reply).await.unwrap();
            drop(theirs);
            got
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let r = instream(ours, data, deadline).await;
        let got = peer.await.unwrap();
        if !close_early {
            assert_eq!(got, data);
        }
        r
    }

    #[tokio::test]
    async fn framing_and_replies_over_a_pipe() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        assert_eq!(
            against(b"stream: OK\0", &data, false).await,
            Ok(Reply::Clean)
        );
        assert_eq!(
            against(b"stream: X FOUND\0trailing", b"abc", false).await,
            Ok(Reply::Found("X".into()))
        );
        assert_eq!(against(b"stream: OK", b"", false).await, Ok(Reply::Clean));
        // The peer answers before reading anything and closes: the reply
        // still counts, however much is left to write.
        let big = vec![7u8; 1 << 20];
        assert_eq!(
            against(b"INSTREAM size limit exceeded. ERROR\0", &big, true).await,
            Ok(Reply::SizeLimit)
        );
        assert!(matches!(
            against(b"", b"abc", false).await,
            Err(Failure::Io(_))
        ));
        assert!(matches!(
            against(b"\x00\x01garbage", b"abc", false).await,
            Err(Failure::Garbage(_))
        ));
    }

    #[tokio::test]
    async fn endless_reply_without_terminator_is_cut() {
        let (ours, mut theirs) = duplex(1 << 16);
        tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            let _ = theirs.read(&mut sink).await;
            let junk = [b'x'; 4096];
            while theirs.write_all(&junk).await.is_ok() {}
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        let r = instream(ours, b"abc", deadline).await;
        assert!(matches!(r, Err(Failure::Garbage(_))), "{r:?}");
    }

    #[tokio::test]
    async fn a_silent_peer_is_bounded_by_the_deadline() {
        let (ours, _theirs) = duplex(1 << 16);
        let started = std::time::Instant::now();
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(
            instream(ours, b"abc", deadline).await,
            Err(Failure::Timeout)
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
