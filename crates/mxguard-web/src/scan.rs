//! `POST /checkv2` (and `/check`, `/symbols`): a message scanned by the one
//! scan service the milter uses, its envelope from rspamd's request
//! headers, the reply in rspamd's `/checkv2` JSON with the milter block
//! the milter would apply.

use crate::api::{Api, Reply, Req, error, json};
use hyper::StatusCode;
use mxguard_core::Envelope;
use mxguard_scan::milter_headers::MilterBlock;
use mxguard_scan::{ScanInput, ScanOutcome};
use serde_json::{Map, Value, json};
use std::net::IpAddr;

/// The envelope from rspamd's headers: `IP`, `Helo`, `From`, `Rcpt` (one
/// header per recipient, or comma-separated), `User`, `Queue-Id`,
/// `Hostname` (the client's resolved name). A malformed `IP` is an error:
/// scanning without it would silently change the verdict.
pub fn envelope(req: &Req) -> Result<Envelope, String> {
    let one = |name: &str| {
        req.header(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let ip = match one("ip") {
        None => None,
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
            format!("the IP header `{s}` is not an IP address (send the client's address, like 192.0.2.1)")
        })?),
    };
    let mut rcpts = Vec::new();
    for v in req.headers.get_all("rcpt") {
        let v = v
            .to_str()
            .map_err(|_| "a Rcpt header is not ASCII text".to_string())?;
        rcpts.extend(
            v.split(',')
                .map(|r| mxguard_core::envelope::strip_path(r).to_string())
                .filter(|r| !r.is_empty()),
        );
    }
    Ok(Envelope {
        ip,
        hostname: one("hostname"),
        helo: one("helo"),
        mail_from: one("from").map(|f| mxguard_core::envelope::strip_path(&f).to_string()),
        rcpts,
        user: one("user"),
        queue_id: one("queue-id"),
        daemon_name: None,
    })
}

pub async fn scan(api: &Api, req: &Req) -> Reply {
    let Some(scanner) = &api.backend.scanner else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no scan pipeline runs: enable [milter] (the API scans through the milter's scan service)",
        );
    };
    let compressed = req
        .header("compression")
        .or_else(|| req.header("content-encoding"))
        .filter(|v| !v.eq_ignore_ascii_case("identity"));
    if let Some(c) = compressed {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!(
                "compressed bodies ({c}) are not supported: send the message as it is (rspamc without --compressed)"
            ),
        );
    }
    if req.body.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "the body is empty: POST the message (header, blank line, body)",
        );
    }
    let envelope = match envelope(req) {
        Ok(e) => e,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let started = std::time::Instant::now();
    let outcome = scanner
        .scan_message(ScanInput {
            envelope: &envelope,
            raw: &req.body,
            mta_name: req.header("mta-name"),
        })
        .await;
    json(
        StatusCode::OK,
        &reply(&outcome, started.elapsed().as_secs_f64()),
    )
}

/// rspamd's `/checkv2` reply for an outcome.
pub fn reply(outcome: &ScanOutcome, seconds: f64) -> Value {
    let v = &outcome.verdict;
    let mut symbols = Map::new();
    for (name, s) in &v.symbols {
        let mut o = Map::new();
        o.insert("name".into(), name.clone().into());
        o.insert("score".into(), s.score.into());
        o.insert("metric_score".into(), s.score.into());
        if let Some(d) = &s.description {
            o.insert("description".into(), d.clone().into());
        }
        if !s.options.is_empty() {
            o.insert("options".into(), s.options.clone().into());
        }
        symbols.insert(name.clone(), Value::Object(o));
    }
    let mut out = json!({
        "is_skipped": v.is_skipped,
        "score": v.score,
        "required_score": v.required_score,
        "action": v.action.as_str(),
        "symbols": symbols,
        "messages": v.messages,
        "time_real": seconds,
        "milter": milter(&outcome.milter),
    });
    if let Some(f) = &v.forced_by
        && let Some(o) = out.as_object_mut()
    {
        o.insert("forced_by".into(), f.clone().into());
    }
    out
}

/// rspamd's milter block: `add_headers` maps a name to `{value, order}`
/// (an array of those for a name added more than once); `remove_headers`
/// maps a name to the copy to remove (0: all).
pub fn milter(block: &MilterBlock) -> Value {
    let mut add = Map::new();
    for h in &block.add_headers {
        let mut one = Map::new();
        one.insert("value".into(), h.value.clone().into());
        if let Some(order) = h.order {
            one.insert("order".into(), order.into());
        }
        let one = Value::Object(one);
        match add.get_mut(&h.name) {
            None => {
                add.insert(h.name.clone(), one);
            }
            Some(Value::Array(a)) => a.push(one),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, one]);
            }
        }
    }
    let mut remove = Map::new();
    for r in &block.remove_headers {
        remove.insert(r.name.clone(), r.index.into());
    }
    json!({ "add_headers": add, "remove_headers": remove })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mxguard_scan::milter_headers::{AddHeader, RemoveHeader};

    #[test]
    fn milter_block_in_rspamd_shape() {
        let block = MilterBlock {
            add_headers: vec![
                AddHeader {
                    name: "X-Spam".into(),
                    value: "Yes".into(),
                    order: None,
                },
                AddHeader {
                    name: "DKIM-Signature".into(),
                    value: "a".into(),
                    order: Some(0),
                },
                AddHeader {
                    name: "DKIM-Signature".into(),
                    value: "b".into(),
                    order: Some(0),
                },
            ],
            remove_headers: vec![RemoveHeader {
                name: "X-Spam".into(),
                index: 0,
            }],
        };
        assert_eq!(
            milter(&block),
            json!({
                "add_headers": {
                    "X-Spam": {"value": "Yes"},
                    "DKIM-Signature": [{"value": "a", "order": 0}, {"value": "b", "order": 0}],
                },
                "remove_headers": {"X-Spam": 0},
            })
        );
    }
}
