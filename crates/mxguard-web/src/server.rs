//! The HTTP/1.1 server (hyper): one task per connection, at most `[web]
//! max_connections` of them (more wait in the listen queue), a time limit
//! on reading the request, a header-count limit (hyper answers 431 past
//! it), a body limit (413, checked on `Content-Length` before reading and
//! while reading a chunked body), and a drain on shutdown. Malformed
//! requests get hyper's 400; the server goes on serving.
//!
//! The same router runs on the unix control socket: there every request is
//! admin, and the socket file's mode (0600) decides who may connect.

use crate::access::Client;
use crate::api::{Api, Reply, Req, error};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mxguard_net::Listener;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long requests in flight get after shutdown is asked.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body: u64,
    pub max_headers: usize,
    pub max_connections: usize,
    pub request_timeout: Duration,
}

impl Limits {
    pub fn of(c: &crate::WebConfig) -> Limits {
        Limits {
            max_body: c.max_body.0,
            max_headers: c.max_headers,
            max_connections: c.max_connections.max(1),
            request_timeout: Duration::from_secs(c.request_timeout.0.max(1)),
        }
    }
}

/// Serves `listener` until `stop` turns true; `control` marks the unix
/// control socket (every request admin).
pub async fn serve(
    listener: Listener,
    api: Arc<Api>,
    control: bool,
    mut stop: watch::Receiver<bool>,
) {
    let limits = Limits::of(api.access.config());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut acceptor = mxguard_net::accept::Acceptor::new(if control { "control" } else { "web" });
    let mut conns = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            s = acceptor.accept(&listener) => s,
            _ = stop.changed() => break,
        };
        while conns.try_join_next().is_some() {}
        let peer_ip = peer.parse::<SocketAddr>().ok().map(|a| a.ip());
        let (api, stop) = (api.clone(), stop.clone());
        conns.spawn(async move {
            let _permit = permit;
            connection(stream, peer_ip, api, control, limits, stop).await;
        });
    }
    drop(listener);
    let cut = mxguard_net::drain(&mut conns, SHUTDOWN_GRACE).await;
    if cut > 0 {
        tracing::warn!("web: {cut} connection(s) cut at shutdown");
    }
}

async fn connection(
    stream: Box<dyn mxguard_net::Stream>,
    peer: Option<IpAddr>,
    api: Arc<Api>,
    control: bool,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let service = service_fn(move |req: Request<Incoming>| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(handle(&api, req, peer, control, limits).await) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("web: connection from {peer:?}: {e}");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Reads the request whole within the limits, then asks the router.
async fn handle(
    api: &Api,
    req: Request<Incoming>,
    peer: Option<IpAddr>,
    control: bool,
    limits: Limits,
) -> Reply {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(len) = declared
        && len > limits.max_body
    {
        return too_large(len, limits.max_body);
    }
    let read = tokio::time::timeout(
        limits.request_timeout,
        Limited::new(body, limits.max_body as usize).collect(),
    )
    .await;
    let body: Bytes = match read {
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                &format!(
                    "the request body did not arrive within {} s ([web] request_timeout)",
                    limits.request_timeout.as_secs()
                ),
            );
        }
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return too_large(limits.max_body + 1, limits.max_body);
            }
            return error(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the request body: {e}"),
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let client = Client {
        ip: peer.map(|p| api.access.client_ip(p, &parts.headers)),
        control,
    };
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    api.handle(Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        client,
    })
    .await
}

fn too_large(size: u64, max: u64) -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!("the request body ({size} bytes or more) is over [web] max_body ({max} bytes)"),
    )
}

/// `a=1&b=x%20y` into pairs, percent-decoded (`+` is a space).
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("type=daily&x=a%20b+c&bad=%zz&end=%4"),
            vec![
                ("type".into(), "daily".into()),
                ("x".into(), "a b c".into()),
                ("bad".into(), "%zz".into()),
                ("end".into(), "%4".into()),
            ]
        );
    }
}
