//! A DNS server on loopback answering from a conformance suite's zone
//! data, so the suites run through the same resolver path as the daemon
//! (`mxguard_dns::Dns` -> hickory -> UDP), not through a cache shortcut.
//! A name absent from the zone is NXDOMAIN; a name with records of other
//! types is NODATA; `Timeout` never answers; `ServFail` answers SERVFAIL.

#![allow(dead_code)]

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use mxguard_core::config::{DnsConfig, Millis};
use mxguard_dns::Dns;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::UdpSocket;

#[derive(Debug, Clone)]
pub enum Rec {
    /// One TXT record: its strings.
    Txt(Vec<Vec<u8>>),
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Mx(u16, String),
    Ptr(String),
    Cname(String),
    /// "TXT: NONE": the name has no TXT record (and SPF ones are not
    /// served as TXT).
    NoTxt,
    /// Queries not answered by a record listed before it time out.
    Timeout,
    ServFail,
}

#[derive(Debug, Default, Clone)]
pub struct Zone {
    pub names: HashMap<String, Vec<Rec>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Zone {
    pub fn add(&mut self, name: &str, rec: Rec) {
        self.names.entry(key(name)).or_default().push(rec);
    }

    /// Splits a TXT value into 255-byte strings.
    pub fn add_txt(&mut self, name: &str, value: &[u8]) {
        let parts = if value.is_empty() {
            vec![Vec::new()]
        } else {
            value.chunks(255).map(<[u8]>::to_vec).collect()
        };
        self.add(name, Rec::Txt(parts));
    }
}

enum Answer {
    Records(Vec<Record>),
    NxDomain,
    ServFail,
    Silence,
}

/// Labels as they are: the suites have names with `:`, `/` and spaces.
fn fqdn(name: &str) -> Option<Name> {
    Name::from_labels(name.trim_end_matches('.').split('.').map(str::as_bytes)).ok()
}

fn answer(zone: &Zone, qname: &str, qtype: RecordType) -> Answer {
    let mut out = Vec::new();
    let mut name = key(qname);
    for _ in 0..8 {
        let Some(recs) = zone.names.get(&name) else {
            return if out.is_empty() {
                Answer::NxDomain
            } else {
                Answer::Records(out)
            };
        };
        let owner = match fqdn(&name) {
            Some(n) => n,
            None => return Answer::ServFail,
        };
        let mut seen = false;
        let mut next = None;
        for r in recs {
            let rdata = match (r, qtype) {
                (Rec::Timeout, _) if !seen => return Answer::Silence,
                (Rec::ServFail, _) if !seen => return Answer::ServFail,
                (Rec::Txt(parts), RecordType::TXT) => Some(RData::TXT(TXT::from_bytes(
                    parts.iter().map(Vec::as_slice).collect(),
                ))),
                (Rec::A(a), RecordType::A) => Some(RData::A(A(*a))),
                (Rec::Aaaa(a), RecordType::AAAA) => Some(RData::AAAA(AAAA(*a))),
                (Rec::Mx(p, n), RecordType::MX) => fqdn(n).map(|n| RData::MX(MX::new(*p, n))),
                (Rec::Ptr(n), RecordType::PTR) => fqdn(n).map(|n| RData::PTR(PTR(n))),
                (Rec::Cname(n), t) if t != RecordType::CNAME => {
                    next = Some(key(n));
                    fqdn(n).map(|n| RData::CNAME(CNAME(n)))
                }
                _ => None,
            };
            if let Some(rd) = rdata {
                seen = true;
                out.push(Record::from_rdata(owner.clone(), 300, rd));
            }
        }
        match next {
            Some(n) => name = n,
            None => return Answer::Records(out),
        }
    }
    Answer::Records(out)
}

/// Serves `zone` on a fresh loopback UDP port until the runtime ends.
pub async fn serve(zone: Zone) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind a UDP port");
    let addr = sock.local_addr().expect("local address");
    let zone = Arc::new(zone);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let Some(query) = q.queries.first().cloned() else {
                continue;
            };
            let mut resp = Message::response(q.metadata.id, q.metadata.op_code);
            resp.metadata.message_type = MessageType::Response;
            resp.metadata.recursion_desired = q.metadata.recursion_desired;
            resp.metadata.recursion_available = true;
            resp.metadata.authoritative = true;
            resp.add_query(query.clone());
            // The labels as sent, not `to_ascii`, which escapes `:` and spaces.
            let qname = query
                .name()
                .iter()
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(".");
            match answer(&zone, &qname, query.query_type()) {
                Answer::Silence => continue,
                Answer::NxDomain => resp.metadata.response_code = ResponseCode::NXDomain,
                Answer::ServFail => resp.metadata.response_code = ResponseCode::ServFail,
                Answer::Records(r) => {
                    resp.add_answers(r);
                }
            }
            let mut bytes = resp.to_vec().unwrap_or_default();
            if bytes.len() > 512 && q.edns.is_none() {
                resp.metadata.truncation = true;
                resp.answers.clear();
                bytes = resp.to_vec().unwrap_or_default();
            }
            let _ = sock.send_to(&bytes, peer).await;
        }
    });
    addr
}

/// A resolver that asks only `server`, with a short time-out so the
/// suites' TIMEOUT cases stay quick, and no cache across scenarios.
pub fn dns(server: SocketAddr) -> Dns {
    Dns::new(&DnsConfig {
        nameservers: vec![server.to_string()],
        timeout: Millis(300),
        attempts: 1,
        cache_size: 0,
        ..DnsConfig::default()
    })
    .expect("a resolver for the test server")
}

/// `MXGUARD_TESTDATA/<sub>`, or `None` (the caller says it skips).
pub fn testdata(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("MXGUARD_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
        });
    let p = base.join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is absent (set MXGUARD_TESTDATA)", p.display());
        None
    }
}

pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// LF line ends to CRLF, as mail travels.
pub fn crlf(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + s.len() / 20);
    let mut prev = 0u8;
    for &b in s {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
