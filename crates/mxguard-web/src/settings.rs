//! What an admin tunes: symbols and their scores, action thresholds, the
//! multimap map files. Reads show what the running pipeline uses; writes
//! go to the overrides file ([`crate::overrides`]) or the map file itself,
//! validated first, then the daemon reloads so every front end uses them
//! at once. Only map files the config names can be read or written: a map
//! is asked for by its number in `/maps`, never by a path.

use crate::api::{Api, Reply, Req, error, json, text};
use crate::overrides::{self, ACTION_KEYS, Overrides, SymbolScore};
use hyper::StatusCode;
use mxguard_core::Action;
use mxguard_core::config::Threshold;
use mxguard_core::maps::{LineError, MapData};
use mxguard_scan::checks::multimap::{IpList, MapType, MultimapConfig, MultimapList, NameList};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// `GET /symbols`: every symbol the pipeline knows, grouped, with its
/// weight now (config and saved overrides applied).
pub fn symbols(api: &Api) -> Reply {
    let Some(scanner) = &api.backend.scanner else {
        return json(StatusCode::OK, &Vec::<Value>::new());
    };
    let pipeline = scanner.pipeline();
    let table = pipeline.symbols();
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut names: Vec<&str> = table.names().collect();
    names.sort_unstable();
    for name in names {
        if let Some(d) = table.get(name) {
            groups.entry(d.group.clone()).or_default().push(json!({
                "symbol": d.name,
                "weight": d.weight,
                "description": d.description,
                "group": d.group,
            }));
        }
    }
    let out: Vec<Value> = groups
        .into_iter()
        .map(|(g, rules)| json!({"group": g, "rules": rules}))
        .collect();
    json(StatusCode::OK, &out)
}

fn action_key(a: Action) -> Option<&'static str> {
    match a {
        Action::Reject => Some("reject"),
        Action::RewriteSubject => Some("rewrite_subject"),
        Action::AddHeader => Some("add_header"),
        Action::Greylist => Some("greylist"),
        _ => None,
    }
}

/// `GET /actions`: `[{"action": "reject", "value": 15.0}, …]`; `null` for
/// an action that is off.
pub fn actions(api: &Api) -> Reply {
    let config = api.backend.config.get();
    let a = &config.actions;
    let out = json!([
        {"action": "reject", "value": a.reject.0},
        {"action": "rewrite subject", "value": a.rewrite_subject.0},
        {"action": "add header", "value": a.add_header.0},
        {"action": "greylist", "value": a.greylist.0},
    ]);
    json(StatusCode::OK, &out)
}

/// Reads the JSON body of a save, with a 400 naming what is wrong.
fn body_json(req: &Req, shape: &str) -> Result<Value, Reply> {
    serde_json::from_slice(&req.body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON ({e}); send {shape}"),
        )
    })
}

fn threshold(v: &Value, what: &str) -> Result<Threshold, String> {
    match v {
        Value::Null | Value::Bool(false) => Ok(Threshold(None)),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|f| Threshold(Some(f)))
            .ok_or_else(|| format!("{what}: {n} is not a finite number")),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| Threshold(Some(f)))
            .ok_or_else(|| format!("{what}: `{s}` is not a number")),
        other => Err(format!(
            "{what}: {other} is not a score (a number, or null/false for off)"
        )),
    }
}

const ACTIONS_SHAPE: &str = "[{\"action\": \"reject\", \"value\": 15}, …], {\"reject\": 15, \"add_header\": 6, …} or rspamd's [reject, rewrite_subject, add_header, greylist] numbers (null or false turns an action off)";

/// The order of rspamd's numeric `/saveactions` body, as its controller
/// reads it (`src/controller.c`) and its web UI posts it: four thresholds.
const NUMERIC_ORDER: [&str; 4] = ["reject", "rewrite_subject", "add_header", "greylist"];

/// The three-number body of rspamd's web UI before `rewrite_subject` had
/// a slider (still posted by integrations written then); rewrite_subject
/// keeps its value.
const NUMERIC_ORDER_OLD: [&str; 3] = ["reject", "add_header", "greylist"];

/// The (action, value) pairs a `/saveactions` body names, in any of its
/// three shapes; a shape error names the item at fault. A number in the
/// numeric form is a threshold and `null` turns the action off (what
/// rspamd's UI sends for an empty field), as in the other forms.
fn action_pairs(body: &Value) -> Result<Vec<(String, Value)>, String> {
    match body {
        Value::Object(m) => Ok(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Value::Array(items) if items.is_empty() => Err(format!(
            "the list is empty, nothing to save: send {ACTIONS_SHAPE}"
        )),
        Value::Array(items) if items.iter().any(|v| v.is_number() || v.is_null()) => {
            let order: &[&str] = match items.len() {
                4 => &NUMERIC_ORDER,
                3 => &NUMERIC_ORDER_OLD,
                n => {
                    return Err(format!(
                        "a list of numbers must have 4 (reject, rewrite_subject, add_header, greylist) or 3 (reject, add_header, greylist), not {n}"
                    ));
                }
            };
            items
                .iter()
                .zip(order)
                .enumerate()
                .map(|(i, (v, name))| match v {
                    Value::Number(_) | Value::Null => Ok((name.to_string(), v.clone())),
                    other => Err(format!(
                        "item {i} ({name}) is {other}: in a list of numbers each item is a number, or null for off"
                    )),
                })
                .collect()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let name = item.get("action").and_then(Value::as_str);
                match (name, item.get("value")) {
                    (Some(name), Some(value)) => Ok((name.to_string(), value.clone())),
                    _ => Err(format!(
                        "item {i} has no \"action\" and \"value\": send {ACTIONS_SHAPE}"
                    )),
                }
            })
            .collect(),
        _ => Err(format!("send {ACTIONS_SHAPE}")),
    }
}

/// `POST /saveactions`: the thresholds, as `/actions` lists them, as an
/// object, or as rspamd's list of numbers; the rest keep their value.
pub async fn save_actions(api: &Api, req: &Req) -> Reply {
    let body = match body_json(req, ACTIONS_SHAPE) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let pairs = match action_pairs(&body) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let data_dir = api.backend.config.get().store.data_dir.clone();
    let mut o = match overrides::load(&data_dir) {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let before = o.clone();
    for (name, value) in pairs {
        let Some(key) = Action::parse(&name).and_then(action_key) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "`{name}` has no threshold: the actions with one are {}",
                    ACTION_KEYS.join(", ")
                ),
            );
        };
        match threshold(&value, &format!("actions.{key}")) {
            Ok(t) => {
                o.actions.insert(key.to_string(), t);
            }
            Err(m) => return error(StatusCode::BAD_REQUEST, &m),
        }
    }
    commit(api, &data_dir, &before, &o).await
}

/// `POST /savesymbols`: `[{"name": "SYMBOL", "value": 2.5}, …]`.
pub async fn save_symbols(api: &Api, req: &Req) -> Reply {
    const SHAPE: &str = "[{\"name\": \"SYMBOL\", \"value\": 2.5}, …]";
    let body = match body_json(req, SHAPE) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Value::Array(items) = body else {
        return error(StatusCode::BAD_REQUEST, &format!("send {SHAPE}"));
    };
    let pipeline = api.backend.scanner.as_ref().map(|s| s.pipeline());
    let data_dir = api.backend.config.get().store.data_dir.clone();
    let mut o = match overrides::load(&data_dir) {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let before = o.clone();
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("item {i} has no \"name\": send {SHAPE}"),
            );
        };
        if let Some(p) = &pipeline
            && p.symbols().get(name).is_none()
        {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("unknown symbol `{name}`: GET /symbols lists the symbols there are"),
            );
        }
        let score = match item
            .get("value")
            .map(|v| threshold(v, &format!("symbols.{name}.score")))
        {
            Some(Ok(Threshold(Some(s)))) => s,
            Some(Err(m)) => return error(StatusCode::BAD_REQUEST, &m),
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("item {i} ({name}) has no numeric \"value\": send {SHAPE}"),
                );
            }
        };
        o.symbols.insert(name.to_string(), SymbolScore { score });
    }
    commit(api, &data_dir, &before, &o).await
}

/// Saves the overrides and reloads; if the daemon refuses the result, the
/// previous file is put back (and reloaded) so nothing half-applied stays.
async fn commit(api: &Api, data_dir: &Path, before: &Overrides, after: &Overrides) -> Reply {
    if let Err(e) = overrides::save(data_dir, after) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    if let Err(e) = api.reload().await {
        let restored = overrides::save(data_dir, before);
        let _ = api.reload().await;
        api.note_error("config", format!("saved overrides refused: {e}"));
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "the configuration with this change does not load, nothing changed{}: {e}",
                if restored.is_ok() {
                    ""
                } else {
                    " (and the previous overrides could not be restored)"
                }
            ),
        );
    }
    json(StatusCode::OK, &json!({"success": true}))
}

fn lists(api: &Api) -> Vec<MultimapConfig> {
    api.backend.config.get().section::<MultimapList>().0.clone()
}

/// `GET /maps`: the multimap map files, by number.
pub fn maps(api: &Api) -> Reply {
    let out: Vec<Value> = lists(api)
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let path = m.map.get_ref();
            let editable = std::fs::metadata(path).is_ok_and(|md| !md.permissions().readonly());
            json!({
                "map": i,
                "uri": path.display().to_string(),
                "description": format!("multimap {} ({:?})", m.name, m.kind).to_lowercase(),
                "symbol": m.name,
                "editable": editable,
            })
        })
        .collect();
    json(StatusCode::OK, &out)
}

/// The map a request names: header `Map` (rspamd's) or `?map=`.
fn chosen(api: &Api, req: &Req) -> Result<MultimapConfig, Reply> {
    let Some(id) = req.header("map").or_else(|| req.query("map")) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "which map? send its number from /maps in the Map header",
        ));
    };
    let lists = lists(api);
    id.trim()
        .parse::<usize>()
        .ok()
        .and_then(|i| lists.get(i).cloned())
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                &format!("no map number `{id}`: /maps lists {} of them", lists.len()),
            )
        })
}

/// `GET /getmap`: a map file's content.
pub fn get_map(api: &Api, req: &Req) -> Reply {
    let m = match chosen(api, req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let cap = api.backend.config.get().scan.max_map_size.0;
    match mxguard_core::files::read_bounded(m.map.get_ref(), cap) {
        Ok(bytes) => text(StatusCode::OK, "text/plain; charset=utf-8", bytes),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("{}: {e}", m.map.get_ref().display()),
        ),
    }
}

/// `POST /savemap`: a map file's new content, parsed as the list will
/// parse it; a bad line refuses the whole save (with every bad line named).
pub async fn save_map(api: &Api, req: &Req) -> Reply {
    let m = match chosen(api, req) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let path = m.map.get_ref().clone();
    let cap = api.backend.config.get().scan.max_map_size.0;
    if req.body.len() as u64 > cap {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the map is {} bytes, over [scan] max_map_size ({cap})",
                req.body.len()
            ),
        );
    }
    let Ok(text) = std::str::from_utf8(&req.body) else {
        return error(StatusCode::BAD_REQUEST, "the map is not UTF-8 text");
    };
    let mut errors: Vec<LineError> = Vec::new();
    if m.kind == MapType::Ip {
        let _ = IpList::parse(&path, text, &mut errors);
    } else {
        let _ = NameList::parse(&path, text, &mut errors);
    }
    if !errors.is_empty() {
        let lines: Vec<String> = errors
            .iter()
            .take(20)
            .map(|e| format!("line {}: {}", e.line, e.message))
            .collect();
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "{}: {} bad line(s), nothing saved: {}",
                path.display(),
                errors.len(),
                lines.join("; ")
            ),
        );
    }
    let bytes = req.body.to_vec();
    let target = path.clone();
    let written =
        tokio::task::spawn_blocking(move || overrides::write_atomically(&target, &bytes)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            api.note_error("map", e.clone());
            return error(StatusCode::INTERNAL_SERVER_ERROR, &e);
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
    // Maps reload on change by themselves; the reload makes it immediate.
    if let Err(e) = api.reload().await {
        api.note_error(
            "config",
            format!("reload after saving {}: {e}", path.display()),
        );
    }
    json(StatusCode::OK, &json!({"success": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(body: &str) -> Result<Vec<(String, Value)>, String> {
        action_pairs(&serde_json::from_str(body).unwrap())
    }

    #[test]
    fn four_numbers_are_rspamds_order_and_null_is_off() {
        let p = pairs("[15, null, 6.5, 4]").unwrap();
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, NUMERIC_ORDER);
        assert_eq!(p[0].1, json!(15));
        assert_eq!(p[1].1, Value::Null);
        assert_eq!(p[2].1, json!(6.5));
        assert_eq!(p[3].1, json!(4));
    }

    #[test]
    fn three_numbers_leave_rewrite_subject_alone() {
        let p = pairs("[20, 7, 3]").unwrap();
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["reject", "add_header", "greylist"]);
    }

    #[test]
    fn malformed_lists_name_the_fault() {
        let e = pairs("[15, 6]").unwrap_err();
        assert!(e.contains("not 2"), "{e}");
        let e = pairs("[15, \"x\", 6, 4]").unwrap_err();
        assert!(e.contains("item 1 (rewrite_subject)"), "{e}");
        let e = pairs("[15, {\"action\": \"reject\", \"value\": 1}, 6, 4]").unwrap_err();
        assert!(e.contains("item 1"), "{e}");
        let e = pairs("[]").unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = pairs("[{\"action\": \"reject\"}]").unwrap_err();
        assert!(e.contains("item 0"), "{e}");
        let e = pairs("\"reject\"").unwrap_err();
        assert!(e.starts_with("send "), "{e}");
    }

    #[test]
    fn the_object_and_listed_forms_still_parse() {
        let p = pairs("{\"add_header\": 3.5}").unwrap();
        assert_eq!(p, vec![("add_header".to_string(), json!(3.5))]);
        let p = pairs("[{\"action\": \"add header\", \"value\": 5}]").unwrap();
        assert_eq!(p, vec![("add header".to_string(), json!(5))]);
    }
}
