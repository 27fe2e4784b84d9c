//! A tiny reverse proxy for the browser tests: serves `PREFIX/...` by asking
//! the backend for `/...`, as nginx's `location /rspamd/ { proxy_pass
//! http://127.0.0.1:11337/; }` does, so the UI is tested under a path prefix.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The proxy's port; it stops accepting when dropped.
pub struct PrefixProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    outside: Arc<AtomicUsize>,
}

impl PrefixProxy {
    /// How many requests asked for a path outside the prefix.
    pub fn outside(&self) -> usize {
        self.outside.load(Ordering::SeqCst)
    }
}

impl Drop for PrefixProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Starts a proxy that maps `prefix` (e.g. `/rspamd`) onto 127.0.0.1:`backend`.
/// Requests outside the prefix get 404, as they would from a real proxy.
pub fn start(prefix: &'static str, backend: u16) -> PrefixProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let outside = Arc::new(AtomicUsize::new(0));
    let counted = outside.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            if let Ok(conn) = conn {
                let counted = counted.clone();
                std::thread::spawn(move || {
                    if let Ok(false) = serve(conn, prefix, backend) {
                        counted.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        }
    });
    PrefixProxy {
        port,
        stop,
        outside,
    }
}

/// One request per connection: the head is rewritten (path without the
/// prefix, `Connection: close`), the body passed on, the answer copied back.
/// `false` when the path was outside the prefix.
fn serve(client: TcpStream, prefix: &str, backend: u16) -> std::io::Result<bool> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim_end().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                length = v.trim().parse().unwrap_or(0);
            }
            if k == "connection" || k == "keep-alive" {
                continue;
            }
        }
        head.push(h);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let Some(rest) = target.strip_prefix(prefix) else {
        let msg = format!("not under {prefix}");
        client.write_all(
            format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            )
            .as_bytes(),
        )?;
        return Ok(false);
    };
    let path = if rest.is_empty() { "/" } else { rest };
    let mut up = TcpStream::connect(("127.0.0.1", backend))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for h in head {
        req.push_str(&h);
    }
    req.push_str("Connection: close\r\n\r\n");
    up.write_all(req.as_bytes())?;
    up.write_all(&body)?;
    std::io::copy(&mut up, &mut client)?;
    Ok(true)
}
