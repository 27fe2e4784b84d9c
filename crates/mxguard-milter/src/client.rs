//! The MTA's side of the milter protocol, the way Postfix speaks it: option
//! negotiation, macros before each command, commands skipped or left
//! without reply as negotiated, messages split into headers and 64 KiB body
//! chunks. For tests, the load generator and checking a milter by hand (it
//! also talks to rspamd's milter proxy).

use crate::codec::{
    Command, DEFAULT_MAX_FRAME, Family, OptNeg, PROTOCOL_VERSION, Reply, action, cmd, encode_body,
    encode_header, proto,
};
use crate::stream::{FrameReader, ReadError};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Postfix's body chunk size.
pub const BODY_CHUNK: usize = 65535;

/// What Postfix 3.x offers with `milter_protocol = 6`: every action and
/// every protocol step, no-reply and leading-space flag.
pub fn postfix_offer() -> OptNeg {
    OptNeg {
        version: PROTOCOL_VERSION,
        actions: action::ALL,
        protocol: 0x001f_ffff,
        macros: Vec::new(),
    }
}

#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    Read(ReadError),
    /// The milter closed the connection.
    Closed,
    /// The milter answered something the protocol does not allow here.
    Unexpected(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Read(e) => e.fmt(f),
            ClientError::Closed => f.write_str("the milter closed the connection"),
            ClientError::Unexpected(s) => write!(f, "unexpected reply: {s}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<ReadError> for ClientError {
    fn from(e: ReadError) -> Self {
        ClientError::Read(e)
    }
}

/// The milter's answer to one command: modifications and PROGRESS packets
/// (at end of message), then the final reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub modifications: Vec<Reply>,
    pub progress: u32,
    pub reply: Reply,
}

/// One message to send, as Postfix would pass it on.
#[derive(Debug, Clone, Default)]
pub struct MessageSpec {
    /// Envelope sender without brackets; empty for the null sender.
    pub mail_from: String,
    /// Envelope recipients without brackets.
    pub rcpts: Vec<String>,
    /// Headers in order; values as in the message after the colon (leading
    /// space included), folded lines joined with `\n`.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body with CRLF line endings.
    pub body: Vec<u8>,
    /// Sent as macro `i` from RCPT on.
    pub queue_id: Option<String>,
    /// Sent as `{auth_authen}` with MAIL.
    pub auth_user: Option<String>,
}

impl MessageSpec {
    /// Splits a message file (LF or CRLF; an mbox `From ` first line is
    /// skipped) into headers and body, the way Postfix would send them.
    pub fn from_raw(mail_from: &str, rcpts: &[&str], raw: &[u8]) -> MessageSpec {
        let (headers, body) = split_message(raw);
        MessageSpec {
            mail_from: mail_from.to_string(),
            rcpts: rcpts.iter().map(|r| r.to_string()).collect(),
            headers,
            body,
            ..MessageSpec::default()
        }
    }
}

/// `(headers, body)`: headers as [`MessageSpec::headers`], body with CRLF.
pub fn split_message(raw: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let mut first = true;
    let body_start = loop {
        if pos >= raw.len() {
            break raw.len();
        }
        let end = raw[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(raw.len(), |i| pos + i + 1);
        let mut content = &raw[pos..end];
        if let Some(c) = content.strip_suffix(b"\n") {
            content = c;
        }
        if let Some(c) = content.strip_suffix(b"\r") {
            content = c;
        }
        if first && content.starts_with(b"From ") {
            first = false;
            pos = end;
            continue;
        }
        first = false;
        if content.is_empty() {
            break end;
        }
        if matches!(content[0], b' ' | b'\t') {
            if let Some((_, v)) = headers.last_mut() {
                v.push(b'\n');
                v.extend_from_slice(content);
                pos = end;
                continue;
            }
            break pos;
        }
        match content.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 && content[..colon].iter().all(|b| b.is_ascii_graphic()) => {
                let name = String::from_utf8_lossy(&content[..colon]).into_owned();
                headers.push((name, content[colon + 1..].to_vec()));
                pos = end;
            }
            _ => break pos,
        }
    };
    (headers, crlf(&raw[body_start..]))
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

/// How a message transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The command whose reply decided (`cmd::MAIL`, `cmd::RCPT`,
    /// `cmd::DATA`, `cmd::HEADER`, `cmd::BODY`, `cmd::BODYEOB`), or
    /// `cmd::CONNECT`/`cmd::HELO` for a connection-level answer.
    pub stage: u8,
    pub reply: Reply,
    pub modifications: Vec<Reply>,
    pub progress: u32,
    /// Recipients the milter refused, with its reply.
    pub rejected_rcpts: Vec<(String, Reply)>,
}

/// Postfix's stream buffer (`VSTREAM_BUFSIZE` in its `vstream.h`): a
/// buffered [`Client`] writes once this much is waiting.
pub const POSTFIX_STREAM_BUFFER: usize = 4096;

/// A milter client over any stream.
pub struct Client<S> {
    reader: FrameReader<S>,
    agreed: OptNeg,
    /// Commands written but not yet sent, when buffered
    /// ([`Client::buffered`]).
    pending: Vec<u8>,
    buffered: bool,
}

impl Client<TcpStream> {
    pub async fn connect_tcp(addr: &str) -> io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        Ok(Client::new(s))
    }
}

impl Client<UnixStream> {
    pub async fn connect_unix(path: &Path) -> io::Result<Self> {
        Ok(Client::new(UnixStream::connect(path).await?))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            reader: FrameReader::new(stream, DEFAULT_MAX_FRAME),
            agreed: OptNeg::default(),
            pending: Vec::new(),
            buffered: false,
        }
    }

    /// Writes as Postfix does: its milter client writes every command
    /// into a stream buffer (VSTREAM, 4 KiB) and the buffer reaches the
    /// socket when it is full or when a reply is read ("don't wait for one
    /// reply per header. This allows us to send multiple headers in one
    /// VSTREAM transaction", milter8.c). So the macros, the commands
    /// negotiated without a reply (headers, body chunks, ABORT) and the
    /// next command that gets one leave in one write. Unbuffered (the
    /// default, for tests that look at single packets) every command is
    /// written at once.
    pub fn buffered(mut self, on: bool) -> Self {
        self.buffered = on;
        self
    }

    /// Sends what waits in the buffer.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.pending.is_empty() {
            let r = self.reader.get_mut().write_all(&self.pending).await;
            self.pending.clear();
            r?;
        }
        Ok(())
    }

    /// Writes one command: into the buffer when buffered (sent once it
    /// holds [`POSTFIX_STREAM_BUFFER`] bytes or a reply is read), else at
    /// once.
    async fn write(&mut self, c: &Command) -> Result<(), ClientError> {
        self.write_with(|out| c.encode(out)).await
    }

    /// [`Client::write`] of the packet `encode` appends.
    async fn write_with(&mut self, encode: impl FnOnce(&mut Vec<u8>)) -> Result<(), ClientError> {
        if !self.buffered {
            let mut bytes = Vec::new();
            encode(&mut bytes);
            return self.send_raw(&bytes).await;
        }
        encode(&mut self.pending);
        if self.pending.len() >= POSTFIX_STREAM_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    /// [`Client::call`] for a packet given by its encoder.
    async fn call_with(
        &mut self,
        code: u8,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Option<Response>, ClientError> {
        if self.skips(code) {
            return Ok(None);
        }
        self.write_with(encode).await?;
        if self.answers(code) {
            Ok(Some(self.read_response().await?))
        } else {
            Ok(None)
        }
    }

    /// What the milter agreed to at negotiation.
    pub fn agreed(&self) -> &OptNeg {
        &self.agreed
    }

    /// Sends OPTNEG and reads the milter's choice.
    pub async fn negotiate(&mut self, offer: OptNeg) -> Result<OptNeg, ClientError> {
        self.send(&Command::OptNeg(offer)).await?;
        match self.reader.read_reply().await? {
            Some(Reply::OptNeg(o)) => {
                self.agreed = o.clone();
                Ok(o)
            }
            Some(other) => Err(ClientError::Unexpected(format!("{other:?} to OPTNEG"))),
            None => Err(ClientError::Closed),
        }
    }

    /// Writes one command, whatever was negotiated.
    pub async fn send(&mut self, c: &Command) -> Result<(), ClientError> {
        self.send_raw(&c.to_bytes()).await
    }

    /// Writes raw bytes (for tests of malformed input), after what waits
    /// in the buffer.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(bytes);
            return self.flush().await;
        }
        self.reader.get_mut().write_all(bytes).await?;
        Ok(())
    }

    /// Reads replies up to and including a final one.
    pub async fn read_response(&mut self) -> Result<Response, ClientError> {
        self.flush().await?;
        let mut modifications = Vec::new();
        let mut progress = 0;
        loop {
            match self.reader.read_reply().await? {
                None => return Err(ClientError::Closed),
                Some(Reply::Progress) => progress += 1,
                Some(Reply::OptNeg(_)) => {
                    return Err(ClientError::Unexpected("OPTNEG after negotiation".into()));
                }
                Some(r) if r.is_final() => {
                    return Ok(Response {
                        modifications,
                        progress,
                        reply: r,
                    });
                }
                Some(r) => modifications.push(r),
            }
        }
    }

    /// Whether the milter asked not to be sent this command.
    pub fn skips(&self, code: u8) -> bool {
        let flag = match code {
            cmd::CONNECT => proto::NO_CONNECT,
            cmd::HELO => proto::NO_HELO,
            cmd::MAIL => proto::NO_MAIL,
            cmd::RCPT => proto::NO_RCPT,
            cmd::DATA => proto::NO_DATA,
            cmd::HEADER => proto::NO_HDRS,
            cmd::EOH => proto::NO_EOH,
            cmd::BODY => proto::NO_BODY,
            cmd::UNKNOWN => proto::NO_UNKNOWN,
            _ => 0,
        };
        self.agreed.protocol & flag != 0
    }

    /// Whether the milter answers this command.
    pub fn answers(&self, code: u8) -> bool {
        let flag = match code {
            cmd::CONNECT => proto::NR_CONN,
            cmd::HELO => proto::NR_HELO,
            cmd::MAIL => proto::NR_MAIL,
            cmd::RCPT => proto::NR_RCPT,
            cmd::DATA => proto::NR_DATA,
            cmd::HEADER => proto::NR_HDR,
            cmd::EOH => proto::NR_EOH,
            cmd::BODY => proto::NR_BODY,
            cmd::UNKNOWN => proto::NR_UNKN,
            cmd::MACRO | cmd::ABORT | cmd::QUIT | cmd::QUIT_NC => return false,
            _ => 0,
        };
        self.agreed.protocol & flag == 0
    }

    /// Sends a command as Postfix would: not at all when the milter skips
    /// it; then waits for the answer when the milter gives one.
    pub async fn call(&mut self, c: &Command) -> Result<Option<Response>, ClientError> {
        self.call_with(c.code(), |out| c.encode(out)).await
    }

    /// Sends macros for the command `stage`.
    pub async fn macros(&mut self, stage: u8, pairs: &[(&str, &str)]) -> Result<(), ClientError> {
        if pairs.is_empty() {
            return Ok(());
        }
        self.write(&Command::Macro {
            stage,
            pairs: pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        })
        .await
    }

    /// The connect event with Postfix's macros.
    pub async fn connect(
        &mut self,
        hostname: &str,
        ip: IpAddr,
        port: u16,
    ) -> Result<Option<Response>, ClientError> {
        let addr = ip.to_string();
        self.macros(
            cmd::CONNECT,
            &[
                ("j", "mx.test"),
                ("{daemon_name}", "mxtest"),
                ("{client_addr}", &addr),
                ("{client_name}", hostname),
            ],
        )
        .await?;
        self.call(&Command::Connect {
            hostname: hostname.to_string(),
            family: if ip.is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            },
            port,
            address: addr,
        })
        .await
    }

    pub async fn helo(&mut self, name: &str) -> Result<Option<Response>, ClientError> {
        self.call(&Command::Helo(name.to_string())).await
    }

    /// One message transaction, MAIL to end of message, stopping where the
    /// milter decides (a refused recipient does not stop it while others
    /// remain).
    pub async fn message(&mut self, m: &MessageSpec) -> Result<Outcome, ClientError> {
        let mut outcome = Outcome {
            stage: cmd::MAIL,
            reply: Reply::Continue,
            modifications: Vec::new(),
            progress: 0,
            rejected_rcpts: Vec::new(),
        };
        let from = format!("<{}>", m.mail_from);
        let mut mail_macros: Vec<(&str, &str)> = vec![("{mail_addr}", &m.mail_from)];
        if let Some(u) = &m.auth_user {
            mail_macros.push(("{auth_authen}", u));
        }
        self.macros(cmd::MAIL, &mail_macros).await?;
        if let Some(r) = self.call(&Command::Mail(vec![from])).await?
            && r.reply != Reply::Continue
        {
            return Ok(ended(outcome, cmd::MAIL, r));
        }
        let mut accepted = 0;
        for rcpt in &m.rcpts {
            let mut rm: Vec<(&str, &str)> = vec![("{rcpt_addr}", rcpt)];
            if let Some(q) = &m.queue_id {
                rm.push(("i", q));
            }
            self.macros(cmd::RCPT, &rm).await?;
            match self.call(&Command::Rcpt(vec![format!("<{rcpt}>")])).await? {
                None => accepted += 1,
                Some(r) if r.reply == Reply::Continue => accepted += 1,
                Some(r) if r.reply == Reply::Accept => return Ok(ended(outcome, cmd::RCPT, r)),
                Some(r) => outcome.rejected_rcpts.push((rcpt.clone(), r.reply)),
            }
        }
        if accepted == 0 {
            let reply = outcome
                .rejected_rcpts
                .last()
                .map_or(Reply::Reject, |(_, r)| r.clone());
            outcome.stage = cmd::RCPT;
            outcome.reply = reply;
            return Ok(outcome);
        }
        if let Some(r) = self.call(&Command::Data).await?
            && r.reply != Reply::Continue
        {
            return Ok(ended(outcome, cmd::DATA, r));
        }
        // Postfix's smtpd hands the milter connection to cleanup here,
        // flushing its buffer first (milter8_send); cleanup writes the
        // content.
        self.flush().await?;
        let lead = self.agreed.protocol & proto::HDR_LEADSPC != 0;
        for (name, value) in &m.headers {
            let value = if lead { value } else { trim_start_ws(value) };
            if let Some(r) = self
                .call_with(cmd::HEADER, |out| encode_header(out, name, value))
                .await?
                && r.reply != Reply::Continue
            {
                return Ok(ended(outcome, cmd::HEADER, r));
            }
        }
        if let Some(r) = self.call(&Command::Eoh).await?
            && r.reply != Reply::Continue
        {
            return Ok(ended(outcome, cmd::EOH, r));
        }
        for chunk in m.body.chunks(BODY_CHUNK) {
            if let Some(r) = self
                .call_with(cmd::BODY, |out| encode_body(out, chunk))
                .await?
                && r.reply != Reply::Continue
            {
                if r.reply == Reply::Skip {
                    break;
                }
                return Ok(ended(outcome, cmd::BODY, r));
            }
        }
        if let Some(q) = &m.queue_id {
            self.macros(cmd::BODYEOB, &[("i", q)]).await?;
        }
        self.send(&Command::EndOfMessage(Vec::new())).await?;
        let r = self.read_response().await?;
        Ok(ended(outcome, cmd::BODYEOB, r))
    }

    /// ABORT: the MTA is done with this message (sent between messages;
    /// buffered, it leaves with the next command).
    pub async fn abort(&mut self) -> Result<(), ClientError> {
        self.write(&Command::Abort).await
    }

    /// QUIT (after what waits in the buffer), then closes the writing side.
    pub async fn quit(mut self) -> Result<(), ClientError> {
        self.send(&Command::Quit).await?;
        let _ = self.reader.get_mut().shutdown().await;
        Ok(())
    }

    /// The next reply, for tests that drive the protocol by hand.
    pub async fn read_reply(&mut self) -> Result<Option<Reply>, ClientError> {
        self.flush().await?;
        Ok(self.reader.read_reply().await?)
    }
}

fn ended(mut o: Outcome, stage: u8, r: Response) -> Outcome {
    o.stage = stage;
    o.reply = r.reply;
    o.modifications = r.modifications;
    o.progress = r.progress;
    o
}

fn trim_start_ws(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_postfix() {
        let raw =
            b"From a@b Mon Jan  1 00:00:00 2024\nSubject: hi\n there\nX-A:b\n\nbody\nline2\r\n";
        let (h, body) = split_message(raw);
        assert_eq!(
            h,
            vec![
                ("Subject".to_string(), b" hi\n there".to_vec()),
                ("X-A".to_string(), b"b".to_vec())
            ]
        );
        assert_eq!(body, b"body\r\nline2\r\n");
        // A line that is not a header starts the body.
        let (h, body) = split_message(b"A: 1\nnot a header\nmore\n");
        assert_eq!(h.len(), 1);
        assert_eq!(body, b"not a header\r\nmore\r\n");
        let (h, body) = split_message(b"");
        assert!(h.is_empty() && body.is_empty());
    }
}
