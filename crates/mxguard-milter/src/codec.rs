//! The Sendmail/Postfix milter protocol, version 6: packets both ways.
//!
//! Every packet is a frame: a 4-byte big-endian length, then that many bytes,
//! the first of which is the command (MTA to milter) or reply (milter to
//! MTA) code. Strings inside are NUL-terminated. Decoding never panics and
//! never allocates more than the frame it was given: a length above the
//! configured maximum is an error, not an allocation. NUL bytes inside
//! strings cannot be represented on the wire; the encoder drops them.

use std::fmt;
use std::net::IpAddr;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 6;

/// Frames longer than this are refused (the length field counts the code byte).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024 * 1024;

/// The most macros, or MAIL/RCPT arguments, one command packet may carry.
/// An MTA sends a handful; a packet of a million tiny ones would cost tens
/// of bytes of bookkeeping per byte received, so past this it is malformed.
pub const MAX_PACKET_ITEMS: usize = 1024;

/// Command codes, MTA to milter (`SMFIC_*`).
pub mod cmd {
    pub const ABORT: u8 = b'A';
    pub const BODY: u8 = b'B';
    pub const CONNECT: u8 = b'C';
    pub const MACRO: u8 = b'D';
    pub const BODYEOB: u8 = b'E';
    pub const HELO: u8 = b'H';
    pub const QUIT_NC: u8 = b'K';
    pub const HEADER: u8 = b'L';
    pub const MAIL: u8 = b'M';
    pub const EOH: u8 = b'N';
    pub const OPTNEG: u8 = b'O';
    pub const QUIT: u8 = b'Q';
    pub const RCPT: u8 = b'R';
    pub const DATA: u8 = b'T';
    pub const UNKNOWN: u8 = b'U';
}

/// Reply codes, milter to MTA (`SMFIR_*`).
pub mod rep {
    pub const ADDRCPT: u8 = b'+';
    pub const DELRCPT: u8 = b'-';
    pub const ADDRCPT_PAR: u8 = b'2';
    pub const SHUTDOWN: u8 = b'4';
    pub const ACCEPT: u8 = b'a';
    pub const REPLBODY: u8 = b'b';
    pub const CONTINUE: u8 = b'c';
    pub const DISCARD: u8 = b'd';
    pub const CHGFROM: u8 = b'e';
    pub const CONN_FAIL: u8 = b'f';
    pub const ADDHEADER: u8 = b'h';
    pub const INSHEADER: u8 = b'i';
    pub const CHGHEADER: u8 = b'm';
    pub const OPTNEG: u8 = b'O';
    pub const PROGRESS: u8 = b'p';
    pub const QUARANTINE: u8 = b'q';
    pub const REJECT: u8 = b'r';
    pub const SKIP: u8 = b's';
    pub const TEMPFAIL: u8 = b't';
    pub const REPLYCODE: u8 = b'y';
}

/// Actions the milter may take at end of message (`SMFIF_*`).
pub mod action {
    pub const ADD_HEADERS: u32 = 0x01;
    pub const CHANGE_BODY: u32 = 0x02;
    pub const ADD_RCPT: u32 = 0x04;
    pub const DEL_RCPT: u32 = 0x08;
    pub const CHANGE_HEADERS: u32 = 0x10;
    pub const QUARANTINE: u32 = 0x20;
    pub const CHANGE_FROM: u32 = 0x40;
    pub const ADD_RCPT_PAR: u32 = 0x80;
    /// The milter may send the macro lists it wants in its OPTNEG reply.
    pub const SET_SYMLIST: u32 = 0x100;
    pub const ALL: u32 = 0x1ff;
}

/// Protocol steps to skip and replies that will not be sent (`SMFIP_*`).
pub mod proto {
    pub const NO_CONNECT: u32 = 1 << 0;
    pub const NO_HELO: u32 = 1 << 1;
    pub const NO_MAIL: u32 = 1 << 2;
    pub const NO_RCPT: u32 = 1 << 3;
    pub const NO_BODY: u32 = 1 << 4;
    pub const NO_HDRS: u32 = 1 << 5;
    pub const NO_EOH: u32 = 1 << 6;
    /// No reply per header (`SMFIP_NOHREPL`, also called `SMFIP_NR_HDR`).
    pub const NR_HDR: u32 = 1 << 7;
    pub const NO_UNKNOWN: u32 = 1 << 8;
    pub const NO_DATA: u32 = 1 << 9;
    /// The MTA understands SKIP replies to body chunks.
    pub const SKIP: u32 = 1 << 10;
    /// The MTA also sends recipients that it rejected itself.
    pub const RCPT_REJ: u32 = 1 << 11;
    pub const NR_CONN: u32 = 1 << 12;
    pub const NR_HELO: u32 = 1 << 13;
    pub const NR_MAIL: u32 = 1 << 14;
    pub const NR_RCPT: u32 = 1 << 15;
    pub const NR_DATA: u32 = 1 << 16;
    pub const NR_UNKN: u32 = 1 << 17;
    pub const NR_EOH: u32 = 1 << 18;
    pub const NR_BODY: u32 = 1 << 19;
    /// Header values are sent and taken with their leading space.
    pub const HDR_LEADSPC: u32 = 1 << 20;
    pub const MDS_256K: u32 = 1 << 28;
    pub const MDS_1M: u32 = 1 << 29;
}

/// The stages a milter can ask macros for in its OPTNEG reply (`SMFIM_*`).
pub mod macro_stage {
    pub const CONNECT: u32 = 0;
    pub const HELO: u32 = 1;
    pub const MAIL: u32 = 2;
    pub const RCPT: u32 = 3;
    pub const DATA: u32 = 4;
    pub const EOM: u32 = 5;
    pub const EOH: u32 = 6;
}

/// Why bytes could not be decoded (or a reply could not be built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The length field says more than the maximum frame size.
    FrameTooLarge { len: u64, max: usize },
    /// A length field of zero: there is not even a code byte.
    EmptyFrame,
    /// A command code this protocol does not define.
    UnknownCommand(u8),
    /// A reply code this protocol does not define.
    UnknownReply(u8),
    /// The frame's data does not have the shape its code requires.
    Malformed { code: u8, what: &'static str },
    /// An SMTP reply that Postfix would refuse (code, enhanced code).
    BadSmtpReply(String),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes is over the {max}-byte limit")
            }
            CodecError::EmptyFrame => f.write_str("frame of length 0"),
            CodecError::UnknownCommand(c) => write!(f, "unknown command {}", show_code(*c)),
            CodecError::UnknownReply(c) => write!(f, "unknown reply {}", show_code(*c)),
            CodecError::Malformed { code, what } => {
                write!(f, "malformed {} packet: {what}", show_code(*code))
            }
            CodecError::BadSmtpReply(s) => write!(f, "bad SMTP reply: {s}"),
        }
    }
}

impl std::error::Error for CodecError {}

fn show_code(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("'{}'", c as char)
    } else {
        format!("0x{c:02x}")
    }
}

/// One frame split off a buffer: `(code, data, bytes used)`.
pub type Frame<'a> = (u8, &'a [u8], usize);

/// Splits one frame off the front of `buf`, or `None` when `buf` does not
/// hold a whole frame yet.
pub fn decode_frame(buf: &[u8], max_frame: usize) -> Result<Option<Frame<'_>>, CodecError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 {
        return Err(CodecError::EmptyFrame);
    }
    if len > max_frame {
        return Err(CodecError::FrameTooLarge {
            len: len as u64,
            max: max_frame,
        });
    }
    match buf.get(4..4 + len) {
        Some(frame) => Ok(Some((frame[0], &frame[1..], 4 + len))),
        None => Ok(None),
    }
}

/// The length a frame's header would announce, without the 4 length bytes.
/// Encoders call this and then patch the length in place.
fn begin(out: &mut Vec<u8>, code: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, code]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    if s.contains(&0) {
        out.extend(s.iter().copied().filter(|&b| b != 0));
    } else {
        out.extend_from_slice(s);
    }
    out.push(0);
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A cursor over a frame's data.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    code: u8,
}

impl<'a> Cursor<'a> {
    fn new(code: u8, data: &'a [u8]) -> Self {
        Cursor { data, pos: 0, code }
    }
    fn err(&self, what: &'static str) -> CodecError {
        CodecError::Malformed {
            code: self.code,
            what,
        }
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        let b = self
            .data
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.err(what))?;
        self.pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        let b = self
            .data
            .get(self.pos..self.pos + 2)
            .ok_or_else(|| self.err(what))?;
        self.pos += 2;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn byte(&mut self, what: &'static str) -> Result<u8, CodecError> {
        let b = *self.data.get(self.pos).ok_or_else(|| self.err(what))?;
        self.pos += 1;
        Ok(b)
    }
    /// A NUL-terminated string (the NUL is consumed, not returned).
    fn cstr(&mut self, what: &'static str) -> Result<&'a [u8], CodecError> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let end = memchr::memchr(0, rest).ok_or_else(|| self.err(what))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }
    fn string(&mut self, what: &'static str) -> Result<String, CodecError> {
        self.cstr(what).map(lossy)
    }
    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
    /// Every remaining NUL-terminated string; at least one.
    fn strings(&mut self, what: &'static str) -> Result<Vec<String>, CodecError> {
        let mut v = vec![self.string(what)?];
        while !self.at_end() {
            if v.len() == MAX_PACKET_ITEMS {
                return Err(self.err("more arguments in one packet than any MTA sends"));
            }
            v.push(self.string(what)?);
        }
        Ok(v)
    }
}

/// Appends a whole HEADER packet, as [`Command::Header`] encodes, from
/// borrowed parts (the load generator sends each header of a message
/// many times).
pub fn encode_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    let at = begin(out, cmd::HEADER);
    put_header(out, name, value);
    finish(out, at);
}

/// Appends a whole BODY packet, as [`Command::Body`] encodes.
pub fn encode_body(out: &mut Vec<u8>, chunk: &[u8]) {
    let at = begin(out, cmd::BODY);
    out.extend_from_slice(chunk);
    finish(out, at);
}

fn put_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    put_str(out, name.as_bytes());
    put_str(out, value);
}

/// A HEADER packet's name (lossily UTF-8) and value, borrowed from the
/// packet: the server writes them straight into the message instead of
/// copying each into a [`Command::Header`] first.
pub fn decode_header(data: &[u8]) -> Result<(std::borrow::Cow<'_, str>, &[u8]), CodecError> {
    let mut c = Cursor::new(cmd::HEADER, data);
    let name = String::from_utf8_lossy(c.cstr("header name without NUL")?);
    let value = c.cstr("header value without NUL")?;
    Ok((name, value))
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The address family in a CONNECT packet (`SMFIA_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `'U'`: unknown; no port or address follow.
    Unknown,
    /// `'L'`: a unix socket; the address is its path.
    Unix,
    /// `'4'`
    Inet,
    /// `'6'`
    Inet6,
}

impl Family {
    pub fn code(self) -> u8 {
        match self {
            Family::Unknown => b'U',
            Family::Unix => b'L',
            Family::Inet => b'4',
            Family::Inet6 => b'6',
        }
    }
    fn from_code(c: u8) -> Option<Family> {
        Some(match c {
            b'U' => Family::Unknown,
            b'L' => Family::Unix,
            b'4' => Family::Inet,
            b'6' => Family::Inet6,
            _ => return None,
        })
    }
}

/// Option negotiation, both ways. The MTA offers a version, the actions it
/// allows and the protocol flags it understands; the milter answers with
/// the subset it wants, and the macros it wants at each stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OptNeg {
    pub version: u32,
    /// `action::*` bits.
    pub actions: u32,
    /// `proto::*` bits.
    pub protocol: u32,
    /// `(macro_stage::*, "name {name} ...")`; only in the milter's reply.
    pub macros: Vec<(u32, String)>,
}

impl OptNeg {
    fn decode(code: u8, data: &[u8]) -> Result<OptNeg, CodecError> {
        let mut c = Cursor::new(code, data);
        let version = c.u32("version missing")?;
        let actions = c.u32("actions missing")?;
        let protocol = c.u32("protocol flags missing")?;
        let mut macros = Vec::new();
        while !c.at_end() {
            let stage = c.u32("macro stage cut short")?;
            macros.push((stage, c.string("macro list without NUL")?));
        }
        Ok(OptNeg {
            version,
            actions,
            protocol,
            macros,
        })
    }
    fn encode_body(&self, out: &mut Vec<u8>) {
        put_u32(out, self.version);
        put_u32(out, self.actions);
        put_u32(out, self.protocol);
        for (stage, list) in &self.macros {
            put_u32(out, *stage);
            put_str(out, list.as_bytes());
        }
    }
}

/// A packet from the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `'O'`
    OptNeg(OptNeg),
    /// `'D'`: macros for the command `stage` (a command code) that follows.
    /// Names are as sent, e.g. `i` or `{client_addr}`.
    Macro {
        stage: u8,
        pairs: Vec<(String, String)>,
    },
    /// `'C'`: the SMTP client. `port` and `address` are 0 and empty for
    /// [`Family::Unknown`].
    Connect {
        hostname: String,
        family: Family,
        port: u16,
        address: String,
    },
    /// `'H'`: the HELO/EHLO argument.
    Helo(String),
    /// `'M'`: the sender as given (`<a@b>`), then ESMTP arguments.
    Mail(Vec<String>),
    /// `'R'`: the recipient as given (`<a@b>`), then ESMTP arguments.
    Rcpt(Vec<String>),
    /// `'T'`
    Data,
    /// `'L'`: one header. Folded values carry their newlines; the leading
    /// space is there only when `HDR_LEADSPC` was negotiated.
    Header { name: String, value: Vec<u8> },
    /// `'N'`
    Eoh,
    /// `'B'`: a body chunk, CRLF line endings.
    Body(Vec<u8>),
    /// `'E'`: end of message, possibly with a last body chunk.
    EndOfMessage(Vec<u8>),
    /// `'A'`: forget the current message; the connection stays.
    Abort,
    /// `'Q'`
    Quit,
    /// `'K'`: this SMTP session is over, another follows on this connection.
    QuitNc,
    /// `'U'`: an SMTP command the MTA did not know.
    Unknown(Vec<u8>),
}

impl Command {
    pub fn code(&self) -> u8 {
        match self {
            Command::OptNeg(_) => cmd::OPTNEG,
            Command::Macro { .. } => cmd::MACRO,
            Command::Connect { .. } => cmd::CONNECT,
            Command::Helo(_) => cmd::HELO,
            Command::Mail(_) => cmd::MAIL,
            Command::Rcpt(_) => cmd::RCPT,
            Command::Data => cmd::DATA,
            Command::Header { .. } => cmd::HEADER,
            Command::Eoh => cmd::EOH,
            Command::Body(_) => cmd::BODY,
            Command::EndOfMessage(_) => cmd::BODYEOB,
            Command::Abort => cmd::ABORT,
            Command::Quit => cmd::QUIT,
            Command::QuitNc => cmd::QUIT_NC,
            Command::Unknown(_) => cmd::UNKNOWN,
        }
    }

    /// Decodes a frame's data given its code.
    pub fn decode(code: u8, data: &[u8]) -> Result<Command, CodecError> {
        let mut c = Cursor::new(code, data);
        Ok(match code {
            cmd::OPTNEG => Command::OptNeg(OptNeg::decode(code, data)?),
            cmd::MACRO => {
                let stage = c.byte("macro stage missing")?;
                let mut pairs = Vec::new();
                while !c.at_end() {
                    if pairs.len() == MAX_PACKET_ITEMS {
                        return Err(c.err("more macros in one packet than any MTA sends"));
                    }
                    let name = c.string("macro name without NUL")?;
                    let value = c.string("macro value without NUL")?;
                    pairs.push((name, value));
                }
                Command::Macro { stage, pairs }
            }
            cmd::CONNECT => {
                let hostname = c.string("host name without NUL")?;
                let family = Family::from_code(c.byte("address family missing")?)
                    .ok_or_else(|| c.err("unknown address family"))?;
                let (port, address) = if family == Family::Unknown {
                    (0, String::new())
                } else {
                    let port = c.u16("port missing")?;
                    (port, c.string("address without NUL")?)
                };
                Command::Connect {
                    hostname,
                    family,
                    port,
                    address,
                }
            }
            cmd::HELO => Command::Helo(c.string("HELO name without NUL")?),
            cmd::MAIL => Command::Mail(c.strings("sender without NUL")?),
            cmd::RCPT => Command::Rcpt(c.strings("recipient without NUL")?),
            cmd::DATA => Command::Data,
            cmd::HEADER => {
                let (name, value) = decode_header(data)?;
                Command::Header {
                    name: name.into_owned(),
                    value: value.to_vec(),
                }
            }
            cmd::EOH => Command::Eoh,
            cmd::BODY => Command::Body(data.to_vec()),
            cmd::BODYEOB => Command::EndOfMessage(data.to_vec()),
            cmd::ABORT => Command::Abort,
            cmd::QUIT => Command::Quit,
            cmd::QUIT_NC => Command::QuitNc,
            cmd::UNKNOWN => {
                // The command line, a C string: it ends at the first NUL
                // (tolerate a missing one), as libmilter reads it.
                let raw = c.rest();
                let line = raw.split(|&b| b == 0).next().unwrap_or(raw);
                Command::Unknown(line.to_vec())
            }
            other => return Err(CodecError::UnknownCommand(other)),
        })
    }

    /// Appends the whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = begin(out, self.code());
        match self {
            Command::OptNeg(o) => o.encode_body(out),
            Command::Macro { stage, pairs } => {
                out.push(*stage);
                for (n, v) in pairs {
                    put_str(out, n.as_bytes());
                    put_str(out, v.as_bytes());
                }
            }
            Command::Connect {
                hostname,
                family,
                port,
                address,
            } => {
                put_str(out, hostname.as_bytes());
                out.push(family.code());
                if *family != Family::Unknown {
                    out.extend_from_slice(&port.to_be_bytes());
                    put_str(out, address.as_bytes());
                }
            }
            Command::Helo(s) => put_str(out, s.as_bytes()),
            Command::Mail(args) | Command::Rcpt(args) => {
                for a in args {
                    put_str(out, a.as_bytes());
                }
            }
            Command::Header { name, value } => put_header(out, name, value),
            Command::Body(b) | Command::EndOfMessage(b) => out.extend_from_slice(b),
            Command::Unknown(b) => put_str(out, b),
            Command::Data | Command::Eoh | Command::Abort | Command::Quit | Command::QuitNc => {}
        }
        finish(out, at);
    }

    /// The frame as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// A packet from the milter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `'O'`
    OptNeg(OptNeg),
    /// `'c'`: go on to the next stage.
    Continue,
    /// `'a'`: accept (the connection at connect/HELO, else the message).
    Accept,
    /// `'r'`: reject with the MTA's default 5xx text.
    Reject,
    /// `'t'`: tempfail with the MTA's default 4xx text.
    Tempfail,
    /// `'d'`: accept and silently drop the message.
    Discard,
    /// `'f'`: drop the SMTP connection.
    ConnFail,
    /// `'4'`: 421, close the SMTP session.
    Shutdown,
    /// `'s'`: send no more body chunks.
    Skip,
    /// `'p'`: still working; restarts the MTA's time-out.
    Progress,
    /// `'y'`: an SMTP reply, e.g. `554 5.7.1 text`, possibly multi-line
    /// (`554-5.7.1 a\r\n554 5.7.1 b`). Build it with [`Reply::smtp`].
    ReplyCode(String),
    /// `'q'`: put the message on hold with this reason.
    Quarantine(String),
    /// `'h'`: append a header.
    AddHeader { name: String, value: Vec<u8> },
    /// `'i'`: insert a header at `index` (0 is the top).
    InsHeader {
        index: u32,
        name: String,
        value: Vec<u8>,
    },
    /// `'m'`: change the `index`th (from 1) header of that name; an empty
    /// value deletes it.
    ChgHeader {
        index: u32,
        name: String,
        value: Vec<u8>,
    },
    /// `'+'`
    AddRcpt(String),
    /// `'2'`: add a recipient with ESMTP arguments.
    AddRcptPar { rcpt: String, args: Option<String> },
    /// `'-'`
    DelRcpt(String),
    /// `'e'`: change the envelope sender, optionally with ESMTP arguments.
    ChgFrom { from: String, args: Option<String> },
    /// `'b'`: a chunk of the replacement body.
    ReplBody(Vec<u8>),
}

impl Reply {
    pub fn code(&self) -> u8 {
        match self {
            Reply::OptNeg(_) => rep::OPTNEG,
            Reply::Continue => rep::CONTINUE,
            Reply::Accept => rep::ACCEPT,
            Reply::Reject => rep::REJECT,
            Reply::Tempfail => rep::TEMPFAIL,
            Reply::Discard => rep::DISCARD,
            Reply::ConnFail => rep::CONN_FAIL,
            Reply::Shutdown => rep::SHUTDOWN,
            Reply::Skip => rep::SKIP,
            Reply::Progress => rep::PROGRESS,
            Reply::ReplyCode(_) => rep::REPLYCODE,
            Reply::Quarantine(_) => rep::QUARANTINE,
            Reply::AddHeader { .. } => rep::ADDHEADER,
            Reply::InsHeader { .. } => rep::INSHEADER,
            Reply::ChgHeader { .. } => rep::CHGHEADER,
            Reply::AddRcpt(_) => rep::ADDRCPT,
            Reply::AddRcptPar { .. } => rep::ADDRCPT_PAR,
            Reply::DelRcpt(_) => rep::DELRCPT,
            Reply::ChgFrom { .. } => rep::CHGFROM,
            Reply::ReplBody(_) => rep::REPLBODY,
        }
    }

    /// True for the replies that end a stage (the MTA stops waiting).
    /// Modifications and PROGRESS are not final.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Reply::OptNeg(_)
                | Reply::Continue
                | Reply::Accept
                | Reply::Reject
                | Reply::Tempfail
                | Reply::Discard
                | Reply::ConnFail
                | Reply::Shutdown
                | Reply::Skip
                | Reply::ReplyCode(_)
        )
    }

    /// An SMTP reply: `code` 4xx or 5xx, `enhanced` like `5.7.1` (its class
    /// must match the code's first digit), `text` may span lines (`\n`),
    /// which become a multi-line reply. `%` is doubled, as Sendmail and
    /// Postfix expect; control characters are dropped.
    pub fn smtp(code: u16, enhanced: &str, text: &str) -> Result<Reply, CodecError> {
        smtp_reply(code, enhanced, text).map(Reply::ReplyCode)
    }

    pub fn decode(code: u8, data: &[u8]) -> Result<Reply, CodecError> {
        let mut c = Cursor::new(code, data);
        Ok(match code {
            rep::OPTNEG => Reply::OptNeg(OptNeg::decode(code, data)?),
            rep::CONTINUE => Reply::Continue,
            rep::ACCEPT => Reply::Accept,
            rep::REJECT => Reply::Reject,
            rep::TEMPFAIL => Reply::Tempfail,
            rep::DISCARD => Reply::Discard,
            rep::CONN_FAIL => Reply::ConnFail,
            rep::SHUTDOWN => Reply::Shutdown,
            rep::SKIP => Reply::Skip,
            rep::PROGRESS => Reply::Progress,
            rep::REPLYCODE => Reply::ReplyCode(c.string("reply text without NUL")?),
            rep::QUARANTINE => Reply::Quarantine(c.string("reason without NUL")?),
            rep::ADDHEADER => {
                let name = c.string("header name without NUL")?;
                let value = c.cstr("header value without NUL")?.to_vec();
                Reply::AddHeader { name, value }
            }
            rep::INSHEADER | rep::CHGHEADER => {
                let index = c.u32("header index missing")?;
                let name = c.string("header name without NUL")?;
                let value = c.cstr("header value without NUL")?.to_vec();
                if code == rep::INSHEADER {
                    Reply::InsHeader { index, name, value }
                } else {
                    Reply::ChgHeader { index, name, value }
                }
            }
            rep::ADDRCPT => Reply::AddRcpt(c.string("recipient without NUL")?),
            rep::DELRCPT => Reply::DelRcpt(c.string("recipient without NUL")?),
            rep::ADDRCPT_PAR | rep::CHGFROM => {
                let addr = c.string("address without NUL")?;
                let args = if c.at_end() {
                    None
                } else {
                    Some(c.string("ESMTP arguments without NUL")?)
                };
                if code == rep::CHGFROM {
                    Reply::ChgFrom { from: addr, args }
                } else {
                    Reply::AddRcptPar { rcpt: addr, args }
                }
            }
            rep::REPLBODY => Reply::ReplBody(data.to_vec()),
            other => return Err(CodecError::UnknownReply(other)),
        })
    }

    /// Appends the whole frame.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = begin(out, self.code());
        match self {
            Reply::OptNeg(o) => o.encode_body(out),
            Reply::ReplyCode(s) | Reply::Quarantine(s) | Reply::AddRcpt(s) | Reply::DelRcpt(s) => {
                put_str(out, s.as_bytes())
            }
            Reply::AddHeader { name, value } => {
                put_str(out, name.as_bytes());
                put_str(out, value);
            }
            Reply::InsHeader { index, name, value } | Reply::ChgHeader { index, name, value } => {
                put_u32(out, *index);
                put_str(out, name.as_bytes());
                put_str(out, value);
            }
            Reply::AddRcptPar { rcpt: a, args } | Reply::ChgFrom { from: a, args } => {
                put_str(out, a.as_bytes());
                if let Some(args) = args {
                    put_str(out, args.as_bytes());
                }
            }
            Reply::ReplBody(b) => out.extend_from_slice(b),
            Reply::Continue
            | Reply::Accept
            | Reply::Reject
            | Reply::Tempfail
            | Reply::Discard
            | Reply::ConnFail
            | Reply::Shutdown
            | Reply::Skip
            | Reply::Progress => {}
        }
        finish(out, at);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// Formats an SMTP reply for REPLYCODE; see [`Reply::smtp`].
pub fn smtp_reply(code: u16, enhanced: &str, text: &str) -> Result<String, CodecError> {
    if !(400..600).contains(&code) {
        return Err(CodecError::BadSmtpReply(format!(
            "code {code} is not 4xx or 5xx"
        )));
    }
    let class = char::from(b'0' + (code / 100) as u8);
    let parts: Vec<&str> = enhanced.split('.').collect();
    let enhanced_ok = parts.len() == 3
        && parts[0].len() == 1
        && parts[0].starts_with(class)
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !enhanced_ok {
        return Err(CodecError::BadSmtpReply(format!(
            "enhanced code `{enhanced}` does not match {code} (expected {class}.x.y)"
        )));
    }
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            l.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
                .replace('%', "%%")
        })
        .collect();
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(&format!("{code}{sep}{enhanced}"));
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line.trim_end());
        }
    }
    Ok(out)
}

/// Parses a CONNECT address into an IP, accepting Sendmail's `IPv6:` prefix
/// and brackets.
pub fn parse_ip(address: &str) -> Option<IpAddr> {
    let a = address.trim();
    let a = a.strip_prefix('[').unwrap_or(a);
    let a = a.strip_suffix(']').unwrap_or(a);
    let a = a
        .strip_prefix("IPv6:")
        .or_else(|| a.strip_prefix("ipv6:"))
        .unwrap_or(a);
    a.parse().ok()
}

/// Decodes every whole command frame in `buf`, for tests and tools.
pub fn decode_commands(mut buf: &[u8], max_frame: usize) -> Result<Vec<Command>, CodecError> {
    let mut v = Vec::new();
    while let Some((code, data, used)) = decode_frame(buf, max_frame)? {
        v.push(Command::decode(code, data)?);
        buf = &buf[used..];
    }
    Ok(v)
}

/// Decodes every whole reply frame in `buf`, for tests and tools.
pub fn decode_replies(mut buf: &[u8], max_frame: usize) -> Result<Vec<Reply>, CodecError> {
    let mut v = Vec::new();
    while let Some((code, data, used)) = decode_frame(buf, max_frame)? {
        v.push(Reply::decode(code, data)?);
        buf = &buf[used..];
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd_round_trip(c: Command) -> Vec<u8> {
        let bytes = c.to_bytes();
        let back = decode_commands(&bytes, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(back, vec![c]);
        bytes
    }

    fn reply_round_trip(r: Reply) -> Vec<u8> {
        let bytes = r.to_bytes();
        let back = decode_replies(&bytes, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(back, vec![r]);
        bytes
    }

    /// `len(4, BE) code data`
    fn frame(code: u8, data: &[u8]) -> Vec<u8> {
        let mut v = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        v.push(code);
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn optneg_command_known_bytes() {
        let c = Command::OptNeg(OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0x1fffff,
            macros: vec![],
        });
        let bytes = cmd_round_trip(c);
        assert_eq!(
            bytes,
            [
                0, 0, 0, 13, b'O', 0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn optneg_reply_with_macro_lists() {
        let r = Reply::OptNeg(OptNeg {
            version: 6,
            actions: action::ADD_HEADERS | action::CHANGE_HEADERS,
            protocol: proto::NR_HDR | proto::NO_EOH,
            macros: vec![
                (macro_stage::CONNECT, "j {client_addr}".into()),
                (macro_stage::EOM, "i".into()),
            ],
        });
        let bytes = reply_round_trip(r);
        let mut want = vec![0, 0, 0, 6, 0, 0, 0, 0x11, 0, 0, 0, 0xc0];
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(b"j {client_addr}\0");
        want.extend_from_slice(&[0, 0, 0, 5]);
        want.extend_from_slice(b"i\0");
        assert_eq!(bytes, frame(b'O', &want));
    }

    #[test]
    fn macro_known_bytes() {
        let c = Command::Macro {
            stage: b'C',
            pairs: vec![
                ("j".into(), "mx.test".into()),
                ("{client_addr}".into(), "192.0.2.1".into()),
            ],
        };
        let bytes = cmd_round_trip(c);
        assert_eq!(
            bytes,
            frame(b'D', b"Cj\0mx.test\0{client_addr}\x00192.0.2.1\0")
        );
        // A macro packet with only the stage is valid (no macros defined).
        cmd_round_trip(Command::Macro {
            stage: b'T',
            pairs: vec![],
        });
    }

    #[test]
    fn connect_all_families() {
        let c = Command::Connect {
            hostname: "mail.example.com".into(),
            family: Family::Inet,
            port: 25,
            address: "192.0.2.1".into(),
        };
        let bytes = cmd_round_trip(c);
        assert_eq!(
            bytes,
            frame(b'C', b"mail.example.com\x004\x00\x19192.0.2.1\0")
        );
        cmd_round_trip(Command::Connect {
            hostname: "[2001:db8::1]".into(),
            family: Family::Inet6,
            port: 40000,
            address: "2001:db8::1".into(),
        });
        cmd_round_trip(Command::Connect {
            hostname: "localhost".into(),
            family: Family::Unix,
            port: 0,
            address: "/run/x.sock".into(),
        });
        let u = cmd_round_trip(Command::Connect {
            hostname: "unknown".into(),
            family: Family::Unknown,
            port: 0,
            address: String::new(),
        });
        assert_eq!(u, frame(b'C', b"unknown\0U"));
        assert!(matches!(
            Command::decode(b'C', b"h\0X\0\0a\0"),
            Err(CodecError::Malformed { .. })
        ));
        assert!(Command::decode(b'C', b"h\x004\x00").is_err());
    }

    #[test]
    fn envelope_commands() {
        assert_eq!(
            cmd_round_trip(Command::Helo("client.example".into())),
            frame(b'H', b"client.example\0")
        );
        assert_eq!(
            cmd_round_trip(Command::Mail(vec![
                "<a@example.com>".into(),
                "SIZE=100".into()
            ])),
            frame(b'M', b"<a@example.com>\0SIZE=100\0")
        );
        assert_eq!(
            cmd_round_trip(Command::Rcpt(vec!["<b@example.org>".into()])),
            frame(b'R', b"<b@example.org>\0")
        );
        assert_eq!(cmd_round_trip(Command::Data), frame(b'T', b""));
        assert!(Command::decode(b'M', b"").is_err());
        assert!(Command::decode(b'R', b"<x>").is_err());
        assert!(Command::decode(b'H', b"no-nul").is_err());
    }

    #[test]
    fn content_commands() {
        assert_eq!(
            cmd_round_trip(Command::Header {
                name: "Subject".into(),
                value: b"hello\n\tworld".to_vec()
            }),
            frame(b'L', b"Subject\0hello\n\tworld\0")
        );
        // 8-bit header values stay bytes.
        cmd_round_trip(Command::Header {
            name: "Subject".into(),
            value: vec![0xe9, b'x'],
        });
        assert_eq!(cmd_round_trip(Command::Eoh), frame(b'N', b""));
        assert_eq!(
            cmd_round_trip(Command::Body(b"line\r\n\0binary".to_vec())),
            frame(b'B', b"line\r\n\0binary")
        );
        assert_eq!(
            cmd_round_trip(Command::EndOfMessage(vec![])),
            frame(b'E', b"")
        );
        cmd_round_trip(Command::EndOfMessage(b"last chunk".to_vec()));
        assert!(Command::decode(b'L', b"Subject\0no-nul").is_err());
        assert!(Command::decode(b'L', b"Subject").is_err());
    }

    #[test]
    fn session_commands() {
        assert_eq!(cmd_round_trip(Command::Abort), frame(b'A', b""));
        assert_eq!(cmd_round_trip(Command::Quit), frame(b'Q', b""));
        assert_eq!(cmd_round_trip(Command::QuitNc), frame(b'K', b""));
        assert_eq!(
            cmd_round_trip(Command::Unknown(b"XFOO bar".to_vec())),
            frame(b'U', b"XFOO bar\0")
        );
        assert_eq!(
            Command::decode(b'U', b"XFOO").unwrap(),
            Command::Unknown(b"XFOO".to_vec())
        );
        // Found by fuzzing: bytes after an inner NUL did not survive a
        // round trip; the line ends at the first NUL.
        let c = Command::decode(b'U', b"XFOO\0bar\0").unwrap();
        assert_eq!(c, Command::Unknown(b"XFOO".to_vec()));
        assert_eq!(cmd_round_trip(c), frame(b'U', b"XFOO\0"));
        assert_eq!(
            Command::decode(b'z', b""),
            Err(CodecError::UnknownCommand(b'z'))
        );
    }

    #[test]
    fn simple_replies_known_bytes() {
        for (r, code) in [
            (Reply::Continue, b'c'),
            (Reply::Accept, b'a'),
            (Reply::Reject, b'r'),
            (Reply::Tempfail, b't'),
            (Reply::Discard, b'd'),
            (Reply::ConnFail, b'f'),
            (Reply::Shutdown, b'4'),
            (Reply::Skip, b's'),
            (Reply::Progress, b'p'),
        ] {
            assert_eq!(reply_round_trip(r), [0, 0, 0, 1, code]);
        }
        assert_eq!(
            Reply::decode(b'Z', b""),
            Err(CodecError::UnknownReply(b'Z'))
        );
    }

    #[test]
    fn replycode_single_and_multi_line() {
        let r = Reply::smtp(554, "5.7.1", "Spam message rejected").unwrap();
        assert_eq!(
            reply_round_trip(r),
            frame(b'y', b"554 5.7.1 Spam message rejected\0")
        );
        let r = Reply::smtp(451, "4.7.1", "Try again later\nwe are busy").unwrap();
        assert_eq!(
            r,
            Reply::ReplyCode("451-4.7.1 Try again later\r\n451 4.7.1 we are busy".into())
        );
        reply_round_trip(r);
        // '%' is doubled; CR and other controls are dropped.
        assert_eq!(
            smtp_reply(550, "5.7.0", "100% spam\r").unwrap(),
            "550 5.7.0 100%% spam"
        );
        assert_eq!(smtp_reply(421, "4.3.2", "").unwrap(), "421 4.3.2");
        assert!(smtp_reply(250, "2.0.0", "ok").is_err());
        assert!(smtp_reply(554, "4.7.1", "class mismatch").is_err());
        assert!(smtp_reply(554, "5.7", "short").is_err());
        assert!(smtp_reply(554, "5.x.1", "letters").is_err());
    }

    #[test]
    fn message_modifications_known_bytes() {
        assert_eq!(
            reply_round_trip(Reply::Quarantine("spam".into())),
            frame(b'q', b"spam\0")
        );
        assert_eq!(
            reply_round_trip(Reply::AddHeader {
                name: "X-Spam-Flag".into(),
                value: b"YES".to_vec()
            }),
            frame(b'h', b"X-Spam-Flag\0YES\0")
        );
        assert_eq!(
            reply_round_trip(Reply::InsHeader {
                index: 0,
                name: "Authentication-Results".into(),
                value: b"mx; spf=pass".to_vec()
            }),
            frame(b'i', b"\0\0\0\0Authentication-Results\0mx; spf=pass\0")
        );
        assert_eq!(
            reply_round_trip(Reply::ChgHeader {
                index: 2,
                name: "X-Spam-Flag".into(),
                value: vec![]
            }),
            frame(b'm', b"\0\0\0\x02X-Spam-Flag\0\0")
        );
        assert_eq!(
            reply_round_trip(Reply::AddRcpt("<c@example.com>".into())),
            frame(b'+', b"<c@example.com>\0")
        );
        assert_eq!(
            reply_round_trip(Reply::DelRcpt("<c@example.com>".into())),
            frame(b'-', b"<c@example.com>\0")
        );
        assert_eq!(
            reply_round_trip(Reply::AddRcptPar {
                rcpt: "<d@example.com>".into(),
                args: Some("NOTIFY=NEVER".into())
            }),
            frame(b'2', b"<d@example.com>\0NOTIFY=NEVER\0")
        );
        assert_eq!(
            reply_round_trip(Reply::ChgFrom {
                from: "<bounce@example.com>".into(),
                args: None
            }),
            frame(b'e', b"<bounce@example.com>\0")
        );
        reply_round_trip(Reply::ChgFrom {
            from: "<>".into(),
            args: Some("SIZE=1".into()),
        });
        assert_eq!(
            reply_round_trip(Reply::ReplBody(b"new body\r\n".to_vec())),
            frame(b'b', b"new body\r\n")
        );
        assert!(Reply::decode(b'm', b"\0\0").is_err());
        assert!(Reply::decode(b'h', b"Name\0value").is_err());
    }

    #[test]
    fn nul_in_strings_is_dropped_not_framed() {
        let r = Reply::AddHeader {
            name: "X-A".into(),
            value: b"a\0b".to_vec(),
        };
        assert_eq!(r.to_bytes(), frame(b'h', b"X-A\0ab\0"));
    }

    #[test]
    fn frames_limits_and_partial_input() {
        let bytes = Command::Helo("x".into()).to_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(decode_frame(&bytes[..cut], DEFAULT_MAX_FRAME), Ok(None));
        }
        assert_eq!(decode_frame(&[0, 0, 0, 0], 10), Err(CodecError::EmptyFrame));
        // 0xffffffff is refused from the header alone, without allocating.
        assert_eq!(
            decode_frame(&[0xff, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME),
            Err(CodecError::FrameTooLarge {
                len: 0xffff_ffff,
                max: DEFAULT_MAX_FRAME
            })
        );
        let big = (DEFAULT_MAX_FRAME as u32 + 1).to_be_bytes();
        assert!(matches!(
            decode_frame(&big, DEFAULT_MAX_FRAME),
            Err(CodecError::FrameTooLarge { .. })
        ));
        // Two frames back to back.
        let mut two = Command::Data.to_bytes();
        two.extend(Command::Eoh.to_bytes());
        assert_eq!(
            decode_commands(&two, 100).unwrap(),
            [Command::Data, Command::Eoh]
        );
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            parse_ip("IPv6:2001:db8::1"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse_ip("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(parse_ip("/run/sock"), None);
    }
}
