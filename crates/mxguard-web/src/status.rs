//! The read routes about what happened: `/auth`, `/stat`, `/graph`, `/pie`,
//! `/history`, `/counters`, `/ready`, in rspamd's JSON shapes. Counts come
//! from the store's counters (every front end's scans); the graph, pie
//! slices per period and symbol hit counts come from the history rows
//! (`[store] history_size` of them).

use crate::access::{Level, Via};
use crate::api::{Api, Reply, Req, error, json, set_header};
use hyper::StatusCode;
use mxguard_core::Action;
use mxguard_store::{Counters, History, HistoryRow};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The actions rspamd's stat and graph list, in its order.
pub const ACTIONS: [Action; 6] = [
    Action::Reject,
    Action::SoftReject,
    Action::RewriteSubject,
    Action::AddHeader,
    Action::Greylist,
    Action::NoAction,
];

pub async fn ready(api: &Api) -> Reply {
    let mut why = Vec::new();
    if api.backend.scanner.is_none() {
        why.push("no scan pipeline ([milter] is disabled)".to_string());
    }
    if let Err(e) = api.backend.store.writable() {
        why.push(format!("the store cannot write: {e}"));
    }
    if why.is_empty() {
        json(StatusCode::OK, &json!({"success": true}))
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"success": false, "error": why.join("; ")}),
        )
    }
}

/// rspamd's `/auth`: who you are and a few numbers. Authenticated by the
/// `Password` header, it also starts a browser session: a SameSite cookie
/// and the CSRF token the UI sends with every write.
pub async fn auth(api: &Api, req: &Req, (level, via): (Level, Via)) -> Reply {
    let counters = Counters::new(api.backend.store.clone())
        .all()
        .await
        .unwrap_or_default();
    let scanned = counters.get("scanned").copied().unwrap_or(0);
    let learned = learned(api).await;
    let mut body = json!({
        "auth": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": api.uptime(),
        "error_count": api.errors().len(),
        "scanned": scanned,
        "learned": learned,
        "read_only": level < Level::Admin,
    });
    let mut cookie = None;
    match via {
        Via::Password => {
            let (token, csrf) = api.access.login(level);
            body["csrf"] = csrf.into();
            let secure = req
                .header("x-forwarded-proto")
                .is_some_and(|p| p.eq_ignore_ascii_case("https"));
            cookie = Some(format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                crate::access::COOKIE,
                api.access.config().session_lifetime.0,
                if secure { "; Secure" } else { "" }
            ));
        }
        Via::Session => {
            if let Some(csrf) = api.access.csrf_of(&req.headers) {
                body["csrf"] = csrf.into();
            }
        }
        _ => {}
    }
    let mut r = json(StatusCode::OK, &body);
    if let Some(c) = cookie {
        set_header(&mut r, "set-cookie", &c);
    }
    r
}

async fn learned(api: &Api) -> u64 {
    mxguard_learn::persist::status(&*api.backend.store)
        .await
        .map(|s| s.spam_learns + s.ham_learns)
        .unwrap_or(0)
}

/// rspamd's `/stat` (what `rspamc stat` prints), plus mxguard's every
/// counter under `counters` and the classifier's state.
pub async fn stat(api: &Api, _req: &Req, level: Level) -> Reply {
    match stat_value(api, level).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => {
            api.note_error("store", format!("/stat: {e}"));
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("cannot read the counters: {e}"),
            )
        }
    }
}

pub async fn stat_value(api: &Api, level: Level) -> Result<Value, String> {
    let counters = Counters::new(api.backend.store.clone())
        .all()
        .await
        .map_err(|e| e.to_string())?;
    let get = |k: &str| counters.get(k).copied().unwrap_or(0);
    let mut actions = Map::new();
    let (mut spam, mut ham) = (0i64, 0i64);
    for a in ACTIONS
        .iter()
        .chain([Action::Discard, Action::Quarantine].iter())
    {
        let n = get(&format!("action:{}", a.as_str()));
        actions.insert(a.as_str().into(), n.into());
        if a.is_spam() {
            spam += n;
        } else {
            ham += n;
        }
    }
    let status = mxguard_learn::persist::status(&*api.backend.store)
        .await
        .ok();
    let (spam_learns, ham_learns) = status
        .as_ref()
        .map_or((0, 0), |s| (s.spam_learns, s.ham_learns));
    let statfiles: Vec<Value> = [("BAYES_SPAM", spam_learns), ("BAYES_HAM", ham_learns)]
        .iter()
        .map(|(sym, n)| {
            json!({
                "symbol": sym,
                "type": "mxguard",
                "revision": n,
                "users": 1,
                "languages": 0,
                "size": status.as_ref().map_or(0, |s| s.bytes),
                "total": status.as_ref().map_or(0, |s| 1u64 << s.bits),
                "used": status.as_ref().map_or(0, |s| s.nonzero),
            })
        })
        .collect();
    let config = api.backend.config.get();
    let min_learns = config
        .section::<mxguard_scan::checks::bayes::ClassifierConfig>()
        .min_learns;
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": api.uptime(),
        "read_only": level < Level::Admin,
        "scanned": get("scanned"),
        "learned": spam_learns + ham_learns,
        "actions": actions,
        "spam_count": spam,
        "ham_count": ham,
        "connections": 0,
        "control_connections": 0,
        "total_learns": spam_learns + ham_learns,
        "statfiles": statfiles,
        "classifier": {
            "spam_learns": spam_learns,
            "ham_learns": ham_learns,
            "state": status.as_ref().map(|s| s.silent_because(min_learns).unwrap_or_else(|| "active".into())),
        },
        "counters": counters,
    }))
}

/// The history rows, newest first (all the store keeps).
pub async fn rows(api: &Api) -> Result<Vec<HistoryRow>, String> {
    let size = api.backend.config.get().store.history_size as usize;
    History::new(api.backend.store.clone(), size)
        .recent(size.max(1))
        .await
        .map_err(|e| e.to_string())
}

/// `/graph?type=hourly|daily|weekly|monthly`: one series per action (in
/// rspamd's order), each point `{x: unix time of the bucket, y: messages in
/// it}`, from the history rows.
pub async fn graph(api: &Api, req: &Req) -> Reply {
    let kind = req.query("type").unwrap_or("hourly");
    let (step, points) = match kind {
        "hourly" => (60u64, 60u64),
        "daily" => (15 * 60, 96),
        "weekly" => (3600, 168),
        "monthly" => (6 * 3600, 120),
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown graph type `{other}`: use hourly, daily, weekly or monthly"),
            );
        }
    };
    let rows = match rows(api).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let now = crate::api::unix_now() as u64;
    let end = now - now % step + step;
    let start = end - step * points;
    let mut series = vec![vec![0u64; points as usize]; ACTIONS.len()];
    for r in &rows {
        let t = r.time as u64;
        if t < start || t >= end {
            continue;
        }
        let bucket = ((t - start) / step) as usize;
        let a = Action::parse(&r.action).unwrap_or(Action::NoAction);
        let i = ACTIONS.iter().position(|x| *x == a).unwrap_or(0);
        if let Some(s) = series.get_mut(i).and_then(|s| s.get_mut(bucket)) {
            *s += 1;
        }
    }
    let out: Vec<Vec<Value>> = series
        .iter()
        .map(|s| {
            s.iter()
                .enumerate()
                .map(|(i, y)| json!({"x": start + i as u64 * step, "y": y}))
                .collect()
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// `/pie`: messages per action since the counters were reset.
pub async fn pie(api: &Api) -> Reply {
    let counters = match Counters::new(api.backend.store.clone()).all().await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let counts: Vec<(Action, i64)> = ACTIONS
        .iter()
        .map(|a| {
            (
                *a,
                counters
                    .get(&format!("action:{}", a.as_str()))
                    .copied()
                    .unwrap_or(0),
            )
        })
        .collect();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let out: Vec<Value> = counts
        .iter()
        .map(|(a, n)| {
            json!({
                "action": a.as_str(),
                "value": n,
                "data": if total > 0 { *n as f64 * 100.0 / total as f64 } else { 0.0 },
            })
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// `NAME(score)` as the history keeps a symbol.
fn split_symbol(s: &str) -> (String, f64) {
    match s.strip_suffix(')').and_then(|x| x.rsplit_once('(')) {
        Some((name, score)) => (name.to_string(), score.parse().unwrap_or(0.0)),
        None => (s.to_string(), 0.0),
    }
}

/// `/history`: rspamd's version 2 rows, newest first; `from` and `to`
/// (row indices) page through them. `?format=mxguard` gives the store's
/// rows as they are (the CLI uses it).
pub async fn history(api: &Api, req: &Req) -> Reply {
    let rows = match rows(api).await {
        Ok(r) => r,
        Err(e) => {
            api.note_error("store", format!("/history: {e}"));
            return error(StatusCode::SERVICE_UNAVAILABLE, &e);
        }
    };
    let from: usize = req.query("from").and_then(|v| v.parse().ok()).unwrap_or(0);
    let to: usize = req
        .query("to")
        .and_then(|v| v.parse().ok())
        .unwrap_or(rows.len());
    let page = rows.get(from.min(rows.len())..to.clamp(from.min(rows.len()), rows.len()));
    let page = page.unwrap_or_default();
    if req.query("format") == Some("mxguard") {
        return json(StatusCode::OK, &json!({ "rows": page }));
    }
    let out: Vec<Value> = page
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut symbols = Map::new();
            for s in &r.symbols {
                let (name, score) = split_symbol(s);
                symbols.insert(
                    name.clone(),
                    json!({"name": name, "score": score, "metric_score": score}),
                );
            }
            json!({
                "id": r.queue_id.clone().unwrap_or_else(|| format!("{}", from + i)),
                "unix_time": r.time,
                "action": r.action,
                "score": r.score,
                "required_score": r.required_score,
                "symbols": symbols,
                "ip": r.ip,
                "sender_smtp": r.from,
                "rcpt_smtp": r.rcpts,
                "subject": r.subject,
                "message-id": r.message_id,
                "size": r.size,
                "time_real": r.scan_time_ms / 1000.0,
                "scan_time": r.scan_time_ms / 1000.0,
            })
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({ "version": 2, "total": rows.len(), "rows": out }),
    )
}

/// `/counters`: rspamd's symbol hit counts (`symbol`, `weight`, `hits`,
/// `frequency` per message), from the history rows. `?format=mxguard`
/// gives the store's named counters instead.
pub async fn counters(api: &Api, req: &Req) -> Reply {
    if req.query("format") == Some("mxguard") {
        return match Counters::new(api.backend.store.clone()).all().await {
            Ok(c) => json(StatusCode::OK, &c),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        };
    }
    let rows = match rows(api).await {
        Ok(r) => r,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    for r in &rows {
        for s in &r.symbols {
            *hits.entry(split_symbol(s).0).or_default() += 1;
        }
    }
    let scanner_symbols = api.backend.scanner.as_ref().map(|s| s.pipeline());
    let out: Vec<Value> = hits
        .iter()
        .map(|(name, n)| {
            let weight = scanner_symbols
                .as_ref()
                .and_then(|p| p.symbols().get(name).map(|d| d.weight))
                .unwrap_or(0.0);
            json!({
                "symbol": name,
                "weight": weight,
                "hits": n,
                "frequency": if rows.is_empty() { 0.0 } else { *n as f64 / rows.len() as f64 },
                "time": 0,
            })
        })
        .collect();
    json(StatusCode::OK, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_symbols_split() {
        assert_eq!(split_symbol("GTUBE(0.00)"), ("GTUBE".into(), 0.0));
        assert_eq!(split_symbol("A(B)(-1.5)"), ("A(B)".into(), -1.5));
        assert_eq!(split_symbol("PLAIN"), ("PLAIN".into(), 0.0));
    }
}
