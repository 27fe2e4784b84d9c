//! State an admin may clear: the counters (`/statreset`), the history
//! (`/historyreset`), greylist entries (policy triplets `grey:` and score
//! greylisting's `sgrey:`) and bans (through the [`crate::Bans`] the binary
//! gives).

use crate::api::{Api, Reply, Req, error, json};
use hyper::StatusCode;
use mxguard_store::{COUNTER_PREFIX, HISTORY_KEY};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Greylist keys by prefix: the policy server's triplets and score
/// greylisting's messages.
pub const GREYLIST_PREFIXES: [&str; 2] = ["grey:", "sgrey:"];
/// Most entries listed per prefix.
const MAX_LISTED: usize = 1000;

/// `/statreset`: answers the counters as `/stat` did, then clears them.
pub async fn stat_reset(api: &Api, _req: &Req) -> Reply {
    let stat = match crate::status::stat_value(api, crate::access::Level::Admin).await {
        Ok(v) => v,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let store = &api.backend.store;
    let keys = match store.scan_prefix(COUNTER_PREFIX, 100_000).await {
        Ok(k) => k,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    for (k, _) in keys {
        if let Err(e) = store.delete(&k).await {
            api.note_error("store", format!("statreset: {e}"));
            return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
        }
    }
    json(StatusCode::OK, &stat)
}

pub async fn history_reset(api: &Api) -> Reply {
    match api.backend.store.delete(HISTORY_KEY).await {
        Ok(_) => json(StatusCode::OK, &json!({"success": true})),
        Err(e) => {
            api.note_error("store", format!("historyreset: {e}"));
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

/// `GET /greylist`: `[{key, kind, value}]` (the stored JSON, or text).
pub async fn greylist(api: &Api, _req: &Req) -> Reply {
    let mut out = Vec::new();
    for prefix in GREYLIST_PREFIXES {
        match api.backend.store.scan_prefix(prefix, MAX_LISTED).await {
            Ok(entries) => {
                for (k, v) in entries {
                    let value = serde_json::from_slice::<Value>(&v)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&v).into()));
                    out.push(json!({
                        "key": k,
                        "kind": if prefix == "grey:" { "triplet" } else { "score" },
                        "value": value,
                    }));
                }
            }
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        }
    }
    json(StatusCode::OK, &out)
}

/// `POST /greylist/delete` `{"key": "grey:…"}`: removes one entry.
pub async fn greylist_delete(api: &Api, req: &Req) -> Reply {
    let key = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("key").and_then(Value::as_str).map(str::to_string));
    let Some(key) = key else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"key\": \"…\"} with a key from GET /greylist",
        );
    };
    if !GREYLIST_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("`{key}` is not a greylist entry (keys start with grey: or sgrey:)"),
        );
    }
    match api.backend.store.delete(&key).await {
        Ok(true) => json(StatusCode::OK, &json!({"success": true})),
        Ok(false) => error(StatusCode::NOT_FOUND, &format!("no entry `{key}`")),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

fn no_bans() -> Reply {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the ban engine is not running in this serve",
    )
}

pub async fn bans(api: &Api) -> Reply {
    let Some(b) = &api.backend.bans else {
        return no_bans();
    };
    match b.list().await {
        Ok(list) => json(StatusCode::OK, &list),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// `POST /bans/delete` `{"ip": "192.0.2.1"}`.
pub async fn unban(api: &Api, req: &Req) -> Reply {
    let Some(b) = &api.backend.bans else {
        return no_bans();
    };
    let ip = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.get("ip").and_then(Value::as_str).map(str::to_string));
    let Some(ip) = ip else {
        return error(StatusCode::BAD_REQUEST, "send {\"ip\": \"192.0.2.1\"}");
    };
    let Ok(addr) = ip.trim().parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("`{ip}` is not an IP address"),
        );
    };
    match b.unban(addr).await {
        Ok(true) => json(StatusCode::OK, &json!({"success": true})),
        Ok(false) => error(StatusCode::NOT_FOUND, &format!("{addr} is not banned")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// `GET /bans/status[?jail=J]`: the jails, or one jail's counts.
pub async fn ban_status(api: &Api, req: &Req) -> Reply {
    let Some(b) = &api.backend.bans else {
        return no_bans();
    };
    let jail = req
        .query("jail")
        .filter(|j| !j.is_empty())
        .map(str::to_string);
    match b.status(jail.clone()).await {
        Ok(Some(v)) => json(StatusCode::OK, &v),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!(
                "no jail `{}` runs in this serve ([ban.jails] in the config)",
                jail.unwrap_or_default()
            ),
        ),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// `POST /bans/add` `{"ip": "192.0.2.1", "jail": "manual", "time": 3600}`
/// (`jail` and `time` optional; `time` < 0: permanent).
pub async fn ban_add(api: &Api, req: &Req) -> Reply {
    let Some(b) = &api.backend.bans else {
        return no_bans();
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "send {\"ip\": \"192.0.2.1\", \"jail\": \"manual\", \"time\": 3600}",
        );
    };
    let Some(addr) = body
        .get("ip")
        .and_then(Value::as_str)
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
    else {
        return error(StatusCode::BAD_REQUEST, "`ip` must be an IP address");
    };
    let jail = body
        .get("jail")
        .and_then(Value::as_str)
        .unwrap_or("manual")
        .to_string();
    let time = match body.get("time") {
        None | Some(Value::Null) => None,
        Some(t) => match t.as_i64() {
            Some(t) => Some(t),
            None => return error(StatusCode::BAD_REQUEST, "`time` must be whole seconds"),
        },
    };
    match b.ban(addr, jail, time).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}
