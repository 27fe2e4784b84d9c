//! The binary's side of the HTTP API (`mxguard_web`): starting it in
//! `serve` over the milter's scan service, the reload it asks for after a
//! saved change (the same path as SIGHUP), and the control-socket client
//! the CLI uses while `serve` runs.

use crate::settings::Globals;
use mxguard_core::config::Config;
use mxguard_core::shared::Shared;
use mxguard_scan::ScanService;
use mxguard_store::Store;
use mxguard_web::client::{self, Answer, ClientError};
use mxguard_web::{Api, Backend, WebConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A reload asked for by the API, answered with its outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// Asks `serve`'s main loop to reload, as SIGHUP does, and waits for it.
struct Reloader(mpsc::Sender<ReloadRequest>);

impl mxguard_web::Control for Reloader {
    fn reload(&self) -> mxguard_web::api::BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            self.0
                .send(tx)
                .await
                .map_err(|_| "mxguard is stopping".to_string())?;
            rx.await.map_err(|_| "mxguard is stopping".to_string())?
        })
    }
}

/// What `serve` keeps of the running API.
pub struct Started {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Reloads the API asks for; `serve`'s loop answers them.
    pub reloads: mpsc::Receiver<ReloadRequest>,
    /// The config the API reads, replaced by `serve` on every reload.
    pub config: Arc<Shared<Config>>,
}

/// Binds `[web] listen` and the control socket and serves both until
/// `stop`; `/bans` answers through `bans` (the running ban engine).
pub async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    scanner: Option<Arc<ScanService>>,
    classifier: Option<Arc<mxguard_learn::ModelHandle>>,
    bans: Option<Arc<dyn mxguard_web::Bans>>,
    stop: watch::Receiver<bool>,
) -> Result<Option<Started>, String> {
    let web = config.section::<WebConfig>().clone();
    if !web.enabled {
        return Ok(None);
    }
    let (tx, reloads) = mpsc::channel(4);
    let shared = Arc::new(Shared::new(config.clone()));
    let api = Arc::new(Api::new(
        Backend {
            scanner,
            store,
            config: shared.clone(),
            classifier,
            control: Some(Arc::new(Reloader(tx))),
            bans,
        },
        &web,
    ));
    let mut tasks = Vec::new();
    match mxguard_net::Listener::bind(&web.listen, 0o660).await {
        Ok(listener) => {
            tracing::info!(listen = %web.listen, "HTTP API listening");
            tasks.push(tokio::spawn(mxguard_web::server::serve(
                listener,
                api.clone(),
                false,
                stop.clone(),
            )));
        }
        // The default port taken (another mxguard, a test run) must not
        // stop the mail path: the API is off, loudly. A listen address the
        // admin chose is theirs to fix: serve stops.
        Err(e)
            if web.listen == mxguard_web::config::DEFAULT_LISTEN
                && e.kind() == std::io::ErrorKind::AddrInUse =>
        {
            tracing::error!(
                "web: cannot listen on {} (the default [web] listen): {e}; the HTTP API is off (the control socket still works): set [web] listen to a free address, or [web] enabled = false",
                web.listen
            );
        }
        Err(e) => {
            return Err(format!(
                "web: cannot listen on {} ([web] listen): {e}",
                web.listen
            ));
        }
    }
    if let Some(path) = web.control_socket_path(&config.store.data_dir) {
        let p = path.display().to_string();
        match mxguard_net::Listener::bind(&p, 0o600).await {
            Ok(listener) => {
                tracing::info!(socket = %p, "control socket listening");
                tasks.push(tokio::spawn(mxguard_web::server::serve(
                    listener, api, true, stop,
                )));
            }
            // The default socket in a data directory that does not exist
            // (a Redis-only install, a test) must not stop the mail path:
            // the CLI then works on the store, loudly. A socket the admin
            // chose is theirs to fix: serve stops.
            Err(e) if web.control_socket == mxguard_web::config::DEFAULT_CONTROL_SOCKET => {
                tracing::error!(
                    "web: cannot create the control socket {p} (the default [web] control_socket, in [store] data_dir): {e}; the CLI will not reach this serve: create the data directory or set [web] control_socket"
                );
            }
            Err(e) => {
                return Err(format!(
                    "web: cannot create the control socket {p} ([web] control_socket): {e}"
                ));
            }
        }
    }
    Ok(Some(Started {
        tasks,
        reloads,
        config: shared,
    }))
}

/// The control socket `serve` would listen on, per the config.
pub fn control_socket(globals: &Globals) -> Result<Option<std::path::PathBuf>, String> {
    let loaded = globals.load_config()?;
    let web = loaded.config.section::<WebConfig>();
    Ok(web.control_socket_path(&loaded.config.store.data_dir))
}

/// One request to a running `serve` over its control socket; `Ok(None)`
/// when none runs (the caller uses the store itself).
pub fn ask(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Option<Answer>, String> {
    match client::request(
        socket,
        method,
        path,
        headers,
        body,
        Duration::from_secs(300),
    ) {
        Ok(a) => Ok(Some(a)),
        Err(ClientError::NotRunning) => Ok(None),
        Err(ClientError::Failed(m)) => Err(m),
    }
}

/// [`ask`] on the configured control socket.
pub fn via_serve(
    globals: &Globals,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Option<Answer>, String> {
    match control_socket(globals)? {
        Some(socket) => ask(&socket, method, path, &[], body),
        None => Ok(None),
    }
}
