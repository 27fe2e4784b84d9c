//! Reading whole frames from an async stream.
//!
//! The buffer grows by at most [`READ_CHUNK`] per read, so a peer that
//! announces a huge (but allowed) frame and then sends nothing costs no more
//! memory than what it really sent. Reads are cancel-safe: dropping a
//! pending `read_*` future loses no bytes.

use crate::codec::{CodecError, Command, Reply, decode_frame};
use std::fmt;
use std::io;
use std::ops::Range;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most the buffer grows by in one read.
pub const READ_CHUNK: usize = 64 * 1024;

/// Why no frame could be read.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// The bytes were not a valid packet.
    Codec(CodecError),
    /// The peer closed the connection in the middle of a frame.
    TruncatedFrame,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "read error: {e}"),
            ReadError::Codec(e) => e.fmt(f),
            ReadError::TruncatedFrame => f.write_str("connection closed in the middle of a packet"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<CodecError> for ReadError {
    fn from(e: CodecError) -> Self {
        ReadError::Codec(e)
    }
}

/// Frames from a stream; the stream itself stays reachable for writing.
pub struct FrameReader<S> {
    inner: S,
    buf: Vec<u8>,
    start: usize,
    max_frame: usize,
}

impl<S: AsyncRead + Unpin> FrameReader<S> {
    pub fn new(inner: S, max_frame: usize) -> Self {
        FrameReader {
            inner,
            buf: Vec::new(),
            start: 0,
            max_frame,
        }
    }

    /// The stream, for writing replies.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The stream, for socket options.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Whether the next `read_*` will wait for the peer: no whole frame
    /// (nor a bad one, which fails without reading) is buffered.
    pub fn needs_read(&self) -> bool {
        matches!(
            decode_frame(&self.buf[self.start..], self.max_frame),
            Ok(None)
        )
    }

    /// Reads the next MTA command; `None` when the peer closed cleanly
    /// between frames.
    pub async fn read_command(&mut self) -> Result<Option<Command>, ReadError> {
        match self.next_frame().await? {
            None => Ok(None),
            Some((code, range)) => Ok(Some(Command::decode(code, &self.buf[range])?)),
        }
    }

    /// Reads the next milter reply; `None` when the peer closed cleanly.
    pub async fn read_reply(&mut self) -> Result<Option<Reply>, ReadError> {
        match self.next_frame().await? {
            None => Ok(None),
            Some((code, range)) => Ok(Some(Reply::decode(code, &self.buf[range])?)),
        }
    }

    /// Reads the next frame without decoding it: its code and where its
    /// data lies in [`FrameReader::buffered`] (valid until the next read).
    pub async fn read_frame(&mut self) -> Result<Option<(u8, Range<usize>)>, ReadError> {
        self.next_frame().await
    }

    /// The bytes read and not yet consumed, and the frames already split
    /// off until the next read.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    async fn next_frame(&mut self) -> Result<Option<(u8, Range<usize>)>, ReadError> {
        loop {
            if let Some((code, data, used)) = decode_frame(&self.buf[self.start..], self.max_frame)?
            {
                let data_start = self.start + used - data.len();
                let range = data_start..self.start + used;
                self.start += used;
                return Ok(Some((code, range)));
            }
            // Not a whole frame: move the partial one to the front and read.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            if self.buf.capacity() > 4 * READ_CHUNK && self.buf.len() < READ_CHUNK {
                self.buf.shrink_to(2 * READ_CHUNK);
            }
            self.buf.reserve(READ_CHUNK);
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::TruncatedFrame)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn frames_split_across_reads() {
        let (mut a, b) = tokio::io::duplex(7);
        let mut bytes = Command::Helo("client.example".into()).to_bytes();
        bytes.extend(Command::Body(vec![b'x'; 1000]).to_bytes());
        let writer = tokio::spawn(async move {
            a.write_all(&bytes).await.unwrap();
        });
        let mut r = FrameReader::new(b, 1 << 20);
        assert_eq!(
            r.read_command().await.unwrap(),
            Some(Command::Helo("client.example".into()))
        );
        assert_eq!(
            r.read_command().await.unwrap(),
            Some(Command::Body(vec![b'x'; 1000]))
        );
        writer.await.unwrap();
        assert!(r.read_command().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn truncated_and_oversized_frames() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 9, b'H', b'x']).await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, 1 << 20);
        assert!(matches!(
            r.read_command().await,
            Err(ReadError::TruncatedFrame)
        ));

        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0x10, 0, 0, 0, b'B']).await.unwrap();
        let mut r = FrameReader::new(b, 1 << 20);
        assert!(matches!(
            r.read_command().await,
            Err(ReadError::Codec(CodecError::FrameTooLarge { .. }))
        ));
    }
}
