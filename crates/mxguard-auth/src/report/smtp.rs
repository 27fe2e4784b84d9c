//! A minimal SMTP client for handing reports to the local relay (RFC 5321):
//! EHLO, MAIL, RCPT, DATA, QUIT. No TLS and no AUTH: the relay is local
//! (Postfix on loopback by default), and it does the delivery.
//!
//! The send is split at the one point that matters for "never twice":
//! everything up to the 354 reply to DATA can fail without the message
//! being accepted, so a failure there is safe to retry. [`Session::finish`]
//! sends the body and the final dot; only if the connection breaks after
//! that, before the reply, is the outcome unknown ([`SmtpError::Unknown`]).

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

/// Per command (RFC 5321 4.5.3.2 allows far more; a local relay answers
/// at once, and a hung one must not hold the reporter).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest reply line read; longer is a broken peer.
const MAX_LINE: usize = 4096;
/// Most lines of one reply.
const MAX_REPLY_LINES: usize = 100;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpError {
    /// Not accepted: nothing was delivered, a later try may work (a
    /// connection failure, a 4xx or 5xx reply before or to the final dot).
    NotSent(String),
    /// The connection broke after the final dot, before the reply: the
    /// relay may or may not have taken the message.
    Unknown(String),
}

impl std::fmt::Display for SmtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SmtpError::NotSent(m) => write!(f, "not sent: {m}"),
            SmtpError::Unknown(m) => write!(f, "outcome unknown: {m}"),
        }
    }
}

/// A reply: code and text of its last line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// A session after DATA's 354: ready for the message.
pub struct Session {
    relay: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Recipients the relay refused (address, reply).
    pub refused: Vec<(String, String)>,
}

async fn read_reply(reader: &mut BufReader<OwnedReadHalf>, relay: &str) -> Result<Reply, String> {
    let mut line = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        line.clear();
        let n = timeout(
            COMMAND_TIMEOUT,
            (&mut *reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line),
        )
        .await
        .map_err(|_| {
            format!(
                "{relay} did not answer within {}s",
                COMMAND_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("reading from {relay}: {e}"))?;
        if n == 0 {
            return Err(format!("{relay} closed the connection"));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let code = text
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .ok_or_else(|| format!("{relay} sent a malformed reply: {:.100}", text))?;
        if text.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: text.get(4..).unwrap_or("").to_string(),
            });
        }
    }
    Err(format!(
        "{relay} sent a reply of more than {MAX_REPLY_LINES} lines"
    ))
}

async fn command(
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
    relay: &str,
    line: &str,
) -> Result<Reply, String> {
    timeout(
        COMMAND_TIMEOUT,
        writer.write_all(format!("{line}\r\n").as_bytes()),
    )
    .await
    .map_err(|_| format!("writing to {relay} timed out"))?
    .map_err(|e| format!("writing to {relay}: {e}"))?;
    read_reply(reader, relay).await
}

/// Opens a session and sends the envelope; stops after DATA's 354.
/// Recipients the relay refuses are listed in [`Session::refused`]; if it
/// refuses all of them, nothing is sent.
pub async fn open(
    relay: &str,
    helo: &str,
    from: &str,
    to: &[String],
) -> Result<Session, SmtpError> {
    let not_sent = SmtpError::NotSent;
    let stream = timeout(COMMAND_TIMEOUT, TcpStream::connect(relay))
        .await
        .map_err(|_| not_sent(format!("connecting to {relay} timed out")))?
        .map_err(|e| not_sent(format!("cannot connect to {relay}: {e}")))?;
    let (r, mut writer) = stream.into_split();
    let mut reader = BufReader::new(r);
    let greeting = read_reply(&mut reader, relay).await.map_err(not_sent)?;
    if greeting.code != 220 {
        return Err(not_sent(format!(
            "{relay} greeted with {} {}",
            greeting.code, greeting.text
        )));
    }
    let expect = |r: Reply, want: u16, what: &str| -> Result<Reply, SmtpError> {
        if r.code == want {
            Ok(r)
        } else {
            Err(not_sent(format!(
                "{relay} answered {what} with {} {}",
                r.code, r.text
            )))
        }
    };
    let r = command(&mut reader, &mut writer, relay, &format!("EHLO {helo}"))
        .await
        .map_err(not_sent)?;
    expect(r, 250, "EHLO")?;
    let r = command(
        &mut reader,
        &mut writer,
        relay,
        &format!("MAIL FROM:<{from}>"),
    )
    .await
    .map_err(not_sent)?;
    expect(r, 250, "MAIL FROM")?;
    let mut refused = Vec::new();
    for rcpt in to {
        let r = command(
            &mut reader,
            &mut writer,
            relay,
            &format!("RCPT TO:<{rcpt}>"),
        )
        .await
        .map_err(not_sent)?;
        if r.code != 250 && r.code != 251 {
            refused.push((rcpt.clone(), format!("{} {}", r.code, r.text)));
        }
    }
    if refused.len() == to.len() {
        let _ = command(&mut reader, &mut writer, relay, "QUIT").await;
        return Err(not_sent(format!(
            "{relay} refused every recipient: {}",
            refused
                .iter()
                .map(|(a, r)| format!("{a} ({r})"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let r = command(&mut reader, &mut writer, relay, "DATA")
        .await
        .map_err(not_sent)?;
    expect(r, 354, "DATA")?;
    Ok(Session {
        relay: relay.to_string(),
        reader,
        writer,
        refused,
    })
}

/// The message with CRLF line ends and dot-stuffing, plus the final dot.
pub fn data_block(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
        prev = b;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

impl Session {
    /// Sends the body and the final dot, and reads the verdict.
    pub async fn finish(mut self, message: &[u8]) -> Result<Reply, SmtpError> {
        let block = data_block(message);
        let relay = self.relay.clone();
        // A failure while writing: the dot may have gone out with the
        // last bytes, so this is already "unknown".
        timeout(COMMAND_TIMEOUT, self.writer.write_all(&block))
            .await
            .map_err(|_| SmtpError::Unknown(format!("writing the message to {relay} timed out")))?
            .map_err(|e| SmtpError::Unknown(format!("writing the message to {relay}: {e}")))?;
        let reply = read_reply(&mut self.reader, &relay)
            .await
            .map_err(SmtpError::Unknown)?;
        let _ = command(&mut self.reader, &mut self.writer, &relay, "QUIT").await;
        if reply.code == 250 {
            Ok(reply)
        } else {
            // A reply refusing the message: it was not taken.
            Err(SmtpError::NotSent(format!(
                "{relay} refused the message: {} {}",
                reply.code, reply.text
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_and_line_ends() {
        assert_eq!(
            data_block(b"a\n.b\r\n..c\nd"),
            b"a\r\n..b\r\n...c\r\nd\r\n.\r\n"
        );
        assert_eq!(data_block(b".\r\n"), b"..\r\n.\r\n");
    }
}
