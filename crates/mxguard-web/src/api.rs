//! The router: one table from method and path to the route, the level it
//! needs and whether it writes; the [`Backend`] the binary hands the API
//! (the one scan service, the store, the running config); and the reply
//! helpers every route uses (rspamd's `{"error": "…"}` on failure).

use crate::access::{Access, Client, Denied, Level, Via};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Method, Response, StatusCode};
use mxguard_core::config::Config;
use mxguard_core::shared::Shared;
use mxguard_learn::ModelHandle;
use mxguard_learn::persist::Learner;
use mxguard_scan::ScanService;
use mxguard_scan::checks::bayes::ClassifierConfig;
use mxguard_store::Store;
use serde::Serialize;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub type Reply = Response<Full<Bytes>>;
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the running daemon does for the API besides what the crates give:
/// the binary implements it (`serve`).
pub trait Control: Send + Sync {
    /// Rebuilds the running configuration as SIGHUP does (the saved
    /// overrides and map files included), so a change takes effect at once
    /// in every front end; `Err` says why the running one was kept.
    fn reload(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// One ban, as the ban engine lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Ban {
    pub ip: String,
    /// The jail (or mxguard's own event source) that banned it.
    pub jail: String,
    /// Unix time the ban started.
    pub since: f64,
    /// Unix time it ends; `None`: until removed.
    pub until: Option<f64>,
    pub reason: String,
}

/// The ban engine as the API sees it; the binary adapts the engine to it.
pub trait Bans: Send + Sync {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Ban>, String>>;
    /// Lifts the ban on `ip`; `Ok(false)` when it was not banned.
    fn unban(&self, ip: IpAddr) -> BoxFuture<'_, Result<bool, String>>;
    /// `mxguard ban status [JAIL]`'s numbers, as JSON: without a jail the
    /// list of jails, with one its counts and banned addresses; `Ok(None)`
    /// for a jail that is not running.
    fn status(
        &self,
        jail: Option<String>,
    ) -> BoxFuture<'_, Result<Option<serde_json::Value>, String>>;
    /// Bans `ip` by hand in `jail` (its actions run) for `time` seconds
    /// (negative: permanent; `None`: the jail's bantime); the ban record.
    fn ban(
        &self,
        ip: IpAddr,
        jail: String,
        time: Option<i64>,
    ) -> BoxFuture<'_, Result<serde_json::Value, String>>;
}

/// What the API works on, handed over by the binary.
pub struct Backend {
    /// The one scan service the milter uses; `None` when `serve` runs no
    /// scan pipeline (`[milter] enabled = false`): the scan routes say so.
    pub scanner: Option<Arc<ScanService>>,
    pub store: Arc<dyn Store>,
    /// The running config, replaced on reload.
    pub config: Arc<Shared<Config>>,
    /// The classifier's model handle: what is learned here is scanned with
    /// at once.
    pub classifier: Option<Arc<ModelHandle>>,
    pub control: Option<Arc<dyn Control>>,
    pub bans: Option<Arc<dyn Bans>>,
}

/// One error the API met, for `/errors` (newest last, bounded).
#[derive(Debug, Clone, Serialize)]
pub struct ErrorRow {
    pub ts: f64,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
}

const MAX_ERRORS: usize = 200;

pub struct Api {
    pub backend: Backend,
    pub access: Access,
    pub(crate) started: Instant,
    pub(crate) learner: Learner,
    errors: Mutex<VecDeque<ErrorRow>>,
    /// Replies by status class (1xx..5xx → 0..4).
    replies: [AtomicU64; 5],
}

/// A request, read whole (the body within `[web] max_body`).
pub struct Req {
    pub method: Method,
    /// The path, percent-decoding not applied (no route needs it).
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub client: Client,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Ping,
    Healthy,
    Ready,
    Scan,
    Auth,
    Logout,
    Stat,
    StatReset,
    Graph,
    Pie,
    History,
    HistoryReset,
    Errors,
    Symbols,
    Actions,
    Maps,
    GetMap,
    Counters,
    Metrics,
    LearnSpam,
    LearnHam,
    Unlearn,
    SaveActions,
    SaveSymbols,
    SaveMap,
    Greylist,
    GreylistDelete,
    BanList,
    Unban,
    BanStatus,
    BanAdd,
}

/// The route for a method and path, the level it needs and whether it
/// writes. rspamd's clients use GET or POST loosely for its controller
/// commands (`rspamc stat_reset` sends GET), so only the scan routes and
/// `/symbols` look at the method.
pub fn route(method: &Method, path: &str) -> Option<(Route, Level, bool)> {
    use Route::*;
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let post = method == Method::POST;
    let r = match path {
        "/ping" => (Ping, Level::None, false),
        "/healthy" => (Healthy, Level::None, false),
        "/ready" => (Ready, Level::None, false),
        "/checkv2" | "/check" if post => (Scan, Level::Read, false),
        "/symbols" if post => (Scan, Level::Read, false),
        "/symbols" => (Symbols, Level::Read, false),
        "/auth" => (Auth, Level::Read, false),
        "/logout" => (Logout, Level::None, false),
        "/stat" => (Stat, Level::Read, false),
        "/graph" => (Graph, Level::Read, false),
        "/pie" => (Pie, Level::Read, false),
        "/history" => (History, Level::Read, false),
        "/errors" => (Errors, Level::Read, false),
        "/actions" => (Actions, Level::Read, false),
        "/maps" => (Maps, Level::Read, false),
        "/getmap" => (GetMap, Level::Read, false),
        "/counters" => (Counters, Level::Read, false),
        "/metrics" => (Metrics, Level::Read, false),
        "/greylist" => (Greylist, Level::Read, false),
        "/bans" => (BanList, Level::Read, false),
        "/bans/status" => (BanStatus, Level::Read, false),
        "/statreset" => (StatReset, Level::Admin, true),
        "/historyreset" => (HistoryReset, Level::Admin, true),
        "/learnspam" => (LearnSpam, Level::Admin, true),
        "/learnham" => (LearnHam, Level::Admin, true),
        "/unlearn" => (Unlearn, Level::Admin, true),
        "/saveactions" => (SaveActions, Level::Admin, true),
        "/savesymbols" => (SaveSymbols, Level::Admin, true),
        "/savemap" => (SaveMap, Level::Admin, true),
        "/greylist/delete" => (GreylistDelete, Level::Admin, true),
        "/bans/delete" | "/unban" => (Unban, Level::Admin, true),
        "/bans/add" => (BanAdd, Level::Admin, true),
        _ => return None,
    };
    Some(r)
}

impl Api {
    pub fn new(backend: Backend, web: &crate::WebConfig) -> Api {
        let bits = backend
            .config
            .get()
            .section::<ClassifierConfig>()
            .table_bits;
        let mut learner = Learner::new(backend.store.clone(), bits);
        if let Some(h) = &backend.classifier {
            learner = learner.with_handle(h.clone());
        }
        Api {
            access: Access::new(web),
            started: Instant::now(),
            learner,
            errors: Mutex::new(VecDeque::new()),
            replies: Default::default(),
            backend,
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Req) -> Reply {
        let reply = self.dispatch(&req).await;
        let class = (reply.status().as_u16() / 100).clamp(1, 5) as usize - 1;
        self.replies[class].fetch_add(1, Ordering::Relaxed);
        reply
    }

    async fn dispatch(&self, req: &Req) -> Reply {
        let Some((route, need, write)) = route(&req.method, &req.path) else {
            return self.asset(req);
        };
        let granted = if need == Level::None {
            (Level::None, Via::NoPassword)
        } else {
            match self
                .access
                .check(&req.client, &req.headers, need, write)
                .await
            {
                Ok(g) => g,
                Err(d) => return denied(d),
            }
        };
        use Route::*;
        match route {
            Ping => text(StatusCode::OK, "text/plain", "pong\r\n"),
            Healthy => json(StatusCode::OK, &serde_json::json!({"success": true})),
            Ready => crate::status::ready(self).await,
            Scan => crate::scan::scan(self, req).await,
            Auth => crate::status::auth(self, req, granted).await,
            Logout => {
                self.access.logout(&req.headers);
                let mut r = json(StatusCode::OK, &serde_json::json!({"success": true}));
                set_header(
                    &mut r,
                    "set-cookie",
                    &format!(
                        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
                        crate::access::COOKIE
                    ),
                );
                r
            }
            Stat => crate::status::stat(self, req, granted.0).await,
            StatReset => crate::state::stat_reset(self, req).await,
            Graph => crate::status::graph(self, req).await,
            Pie => crate::status::pie(self).await,
            History => crate::status::history(self, req).await,
            HistoryReset => crate::state::history_reset(self).await,
            Errors => json(StatusCode::OK, &self.errors()),
            Symbols => crate::settings::symbols(self),
            Actions => crate::settings::actions(self),
            Maps => crate::settings::maps(self),
            GetMap => crate::settings::get_map(self, req),
            Counters => crate::status::counters(self, req).await,
            Metrics => crate::metrics::metrics(self).await,
            LearnSpam => {
                crate::learn::learn(self, req, Some(mxguard_learn::persist::Class::Spam)).await
            }
            LearnHam => {
                crate::learn::learn(self, req, Some(mxguard_learn::persist::Class::Ham)).await
            }
            Unlearn => crate::learn::learn(self, req, None).await,
            SaveActions => crate::settings::save_actions(self, req).await,
            SaveSymbols => crate::settings::save_symbols(self, req).await,
            SaveMap => crate::settings::save_map(self, req).await,
            Greylist => crate::state::greylist(self, req).await,
            GreylistDelete => crate::state::greylist_delete(self, req).await,
            BanList => crate::state::bans(self).await,
            Unban => crate::state::unban(self, req).await,
            BanStatus => crate::state::ban_status(self, req).await,
            BanAdd => crate::state::ban_add(self, req).await,
        }
    }

    /// The UI's files for GET; anything else is an unknown path.
    fn asset(&self, req: &Req) -> Reply {
        if req.method == Method::GET || req.method == Method::HEAD {
            let path = req.path.trim_start_matches('/');
            let path = if path.is_empty() { "index.html" } else { path };
            if let Some((kind, bytes)) = crate::ui::asset(path) {
                let mut r = Response::new(Full::new(Bytes::from_static(bytes)));
                set_header(&mut r, "content-type", kind);
                set_header(&mut r, "x-content-type-options", "nosniff");
                set_header(&mut r, "x-frame-options", "DENY");
                return r;
            }
        }
        error(
            StatusCode::NOT_FOUND,
            &format!(
                "unknown path {} {}: see the API list in README (rspamd's routes: /checkv2, /stat, /history, …)",
                req.method, req.path
            ),
        )
    }

    /// Remembers an error for `/errors` and logs it.
    pub fn note_error(&self, kind: &'static str, message: String) {
        tracing::warn!("web: {kind}: {message}");
        if let Ok(mut e) = self.errors.lock() {
            if e.len() >= MAX_ERRORS {
                e.pop_front();
            }
            e.push_back(ErrorRow {
                ts: unix_now(),
                kind,
                message,
            });
        }
    }

    pub fn errors(&self) -> Vec<ErrorRow> {
        self.errors
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Replies sent by status class, `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub fn replies(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.replies[i].load(Ordering::Relaxed))
    }

    pub fn uptime(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Asks the daemon to rebuild its configuration; without a control
    /// (tests of the API alone) the change waits for the next reload.
    pub async fn reload(&self) -> Result<(), String> {
        match &self.backend.control {
            Some(c) => c.reload().await,
            None => Ok(()),
        }
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    set_header(&mut r, "content-type", "application/json");
    r
}

/// rspamd's error shape: `{"error": "…"}` with the status.
pub fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

pub fn text(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    set_header(&mut r, "content-type", content_type);
    r
}

pub fn set_header(r: &mut Reply, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

pub fn denied(d: Denied) -> Reply {
    match d {
        Denied::Unauthorized(m) => error(StatusCode::UNAUTHORIZED, &m),
        Denied::Forbidden(m) => error(StatusCode::FORBIDDEN, &m),
        Denied::TooMany(wait) => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("too many failed logins from this address: try again in {wait} s"),
            );
            set_header(&mut r, "retry-after", &wait.to_string());
            r
        }
    }
}

/// Whether the reply is JSON (tests and the CLI client).
pub fn is_json(r: &Reply) -> bool {
    r.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}
