//! mxguard-net: the listener every front end binds (milter, policy server,
//! later the HTTP API): `host:port` for TCP, or an absolute path for a unix
//! socket with a given mode. It knows nothing of the protocols on top.
//!
//! Also what every server needs around its accept loop: [`accept`] (back-off
//! when accept fails), [`fd`] (the descriptor limit and the caps that must
//! fit in it), [`burst`] (logging a repeated fault once per burst),
//! [`memory`] (giving memory back after a burst of connections) and
//! [`drain`] (shutdown).

pub mod accept;
pub mod burst;
pub mod fd;
pub mod memory;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// An accepted connection, whichever the listener.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {
    /// Acknowledges the bytes received so far at once, instead of when the
    /// kernel's delayed-ACK timer fires (up to 40 ms on Linux). For a
    /// protocol where the peer sends a packet that gets no reply and then,
    /// Nagle's algorithm on, a second small one: the second waits in the
    /// peer's kernel until the first is acknowledged. Call it when the
    /// connection owes the peer no reply and is about to wait for more
    /// bytes. TCP on Linux: `TCP_QUICKACK`; a no-op for everything else.
    fn ack_now(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream for TcpStream {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn ack_now(&self) -> io::Result<()> {
        // Not sticky: the kernel goes back to delaying ACKs by itself, so
        // this is asked for each time it matters.
        socket2::SockRef::from(self).set_tcp_quickack(true)
    }
}

impl Stream for UnixStream {}

impl Stream for tokio::io::DuplexStream {}

impl<T: Stream + ?Sized> Stream for Box<T> {
    fn ack_now(&self) -> io::Result<()> {
        (**self).ack_now()
    }
}

/// Lets a server's connection tasks finish after it stopped accepting:
/// waits up to `grace` for them, then aborts the rest and returns how many
/// were cut (0 when all finished). The milter and the policy server drain
/// alike through this.
pub async fn drain(conns: &mut tokio::task::JoinSet<()>, grace: std::time::Duration) -> usize {
    let finished =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if finished.is_ok() {
        return 0;
    }
    let cut = conns.len();
    conns.shutdown().await;
    cut
}

/// A bound listener, so `mxguard serve` reports a bind error at start-up and
/// tests can bind port 0.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// `host:port`, or an absolute path for a unix socket created with
    /// permissions `mode`. A stale socket at that path is replaced; any
    /// other kind of file there is an error.
    pub async fn bind(listen: &str, mode: u32) -> io::Result<Listener> {
        if listen.starts_with('/') {
            let path = PathBuf::from(listen);
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                use std::os::unix::fs::FileTypeExt;
                if meta.file_type().is_socket() {
                    std::fs::remove_file(&path)?;
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{listen} exists and is not a socket"),
                    ));
                }
            }
            let l = UnixListener::bind(&path)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            Ok(Listener::Unix(l, path))
        } else {
            Ok(Listener::Tcp(TcpListener::bind(listen).await?))
        }
    }

    /// The TCP address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// The next connection and a name for its peer (for logs).
    pub async fn accept(&self) -> io::Result<(Box<dyn Stream>, String)> {
        match self {
            Listener::Tcp(t) => {
                let (s, peer) = t.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Box::new(s), peer.to_string()))
            }
            Listener::Unix(u, _) => Ok((Box::new(u.accept().await?.0), "unix".to_string())),
        }
    }
}

impl Drop for Listener {
    /// A unix socket file is removed when its listener goes away.
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn tcp_and_unix_listeners() {
        let t = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
        assert!(t.local_addr().unwrap().port() > 0);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let p = path.to_str().unwrap();
        let u = Listener::bind(p, 0o660).await.unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o660
        );
        drop(u);
        assert!(!path.exists(), "the socket file goes with its listener");
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(
            Listener::bind(p, 0o660).await.is_err(),
            "a regular file is never replaced"
        );
    }

    /// `ack_now` reaches the socket through the boxed stream `accept`
    /// returns: TCP_QUICKACK is accepted on TCP, and a unix socket ignores it.
    #[tokio::test]
    async fn ack_now_on_accepted_connections() {
        let l = Listener::bind("127.0.0.1:0", 0o666).await.unwrap();
        let (client, accepted) =
            tokio::join!(TcpStream::connect(l.local_addr().unwrap()), l.accept());
        let _client = client.unwrap();
        accepted.unwrap().0.ack_now().unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let u = Listener::bind(path.to_str().unwrap(), 0o600).await.unwrap();
        let (client, accepted) = tokio::join!(UnixStream::connect(&path), u.accept());
        let _client = client.unwrap();
        accepted.unwrap().0.ack_now().unwrap();
    }
}
