//! The running ban engine: every enabled jail with its filter, sources
//! and actions, inside `serve`.
//!
//! One task per jail reads its sources (files polled every 250 ms,
//! journal entries and mxguard's own events as they come), runs the
//! filter and counts failures; one housekeeping task lifts ended bans
//! every second and, every `sync_interval`, applies bans other hosts (or
//! `mxguard ban add`) wrote to the shared store. File positions are saved
//! in the store (`banpos:<jail>:<path>`) every few seconds and at stop,
//! so a restart goes on where it stopped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mxguard_store::{Durability, Store};
use tokio::sync::{mpsc, watch};

use crate::actions::{Action, ActionError, Ban};
use crate::config::{ActionConfig, BanConfig};
use crate::filter::Filter;
use crate::follow::{Follower, Position, Start};
use crate::ignore::IgnoreList;
use crate::jail::{Jail, JailSettings, Outcome};
use crate::journal::{self, Journal};
use crate::line;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `smtp` action: the ban record itself is what the policy server's
/// `reject_banned_client` (and the milter at connect) read, so there is
/// nothing more to do; it exists so a jail can name it alone.
pub struct SmtpAction;

impl Action for SmtpAction {
    fn name(&self) -> &str {
        "smtp"
    }
    fn start(&self, _: &[Ban]) -> Result<(), ActionError> {
        Ok(())
    }
    fn ban(&self, _: &Ban) -> Result<(), ActionError> {
        Ok(())
    }
    fn unban(&self, _: &Ban) -> Result<(), ActionError> {
        Ok(())
    }
    fn stop(&self) -> Result<(), ActionError> {
        Ok(())
    }
}

/// Builds a jail's actions from its config.
pub type ActionBuilder =
    dyn Fn(&JailSettings, &[ActionConfig]) -> Result<Vec<Box<dyn Action>>, String> + Send + Sync;

/// The jail's actions: `smtp` (the store's `ban:<ip>`, which the milter
/// and the policy server read, needs nothing more) and the firewall kinds
/// of [`crate::actions::build`]. The jail's `port` and `protocol` are
/// copied into a firewall action's options when it names none, since the
/// firewall rule is made at start, before any ban carries them; not into
/// a `command` action's, which gets them per ban (`<port>`, `<protocol>`)
/// and refuses them as options.
pub fn build_actions(
    jail: &JailSettings,
    configs: &[ActionConfig],
) -> Result<Vec<Box<dyn Action>>, String> {
    configs
        .iter()
        .map(|c| {
            if c.kind == "smtp" {
                return Ok(Box::new(SmtpAction) as Box<dyn Action>);
            }
            let mut options = c.options.clone();
            options.remove("kind");
            if c.kind == "command" {
                return crate::actions::build(&c.kind, &options, &jail.name)
                    .map_err(|e| format!("[ban.jails.{}] {e}", jail.name));
            }
            if !jail.ports.is_empty() && !options.contains_key("port") {
                options.insert("port".into(), toml::Value::String(jail.ports.join(",")));
            }
            if !options.contains_key("protocol") {
                options.insert(
                    "protocol".into(),
                    toml::Value::String(jail.protocol.clone()),
                );
            }
            crate::actions::build(&c.kind, &options, &jail.name)
                .map_err(|e| format!("[ban.jails.{}] {e}", jail.name))
        })
        .collect()
}

/// Sends mxguard's own events (`policy_reject`, `rate_limit`,
/// `milter_reject`, `sasl_failure`) to the jails that count them.
#[derive(Clone, Default)]
pub struct Events {
    routes: Arc<HashMap<String, Vec<mpsc::Sender<IpAddr>>>>,
}

impl Events {
    /// Reports one event of `kind` by `ip`; never waits (a full queue
    /// drops the event: the engine is behind, and the front end must not
    /// be slowed by it).
    pub fn report(&self, kind: &str, ip: IpAddr) {
        if let Some(txs) = self.routes.get(kind) {
            for tx in txs {
                let _ = tx.try_send(ip);
            }
        }
    }
}

pub struct Engine {
    pub jails: Vec<Arc<Jail>>,
    pub events: Events,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Sources {
    files: Vec<Follower>,
    journal: Option<(Journal, mpsc::Receiver<String>)>,
    events: Option<mpsc::Receiver<IpAddr>>,
}

fn pos_key(jail: &str, path: &std::path::Path) -> String {
    format!("banpos:{jail}:{}", path.display())
}

impl Engine {
    /// Builds every enabled jail, restores its bans (`Action::start`) and
    /// starts reading. Errors name the jail and key at fault.
    pub async fn start(
        cfg: &BanConfig,
        store: Arc<dyn Store>,
        actions: &ActionBuilder,
        stop: watch::Receiver<bool>,
    ) -> Result<Engine, String> {
        let mut jails = Vec::new();
        let mut routes: HashMap<String, Vec<mpsc::Sender<IpAddr>>> = HashMap::new();
        let mut tasks = Vec::new();
        // A jail whose actions started is in `jails` at once: when a later
        // step or jail fails, those actions are stopped before the error
        // goes back (no firewall rules left with nothing managing them).
        let built = Self::start_jails(
            cfg,
            &store,
            actions,
            &stop,
            &mut jails,
            &mut routes,
            &mut tasks,
        )
        .await;
        if let Err(e) = built {
            for t in &tasks {
                t.abort();
            }
            for j in &jails {
                j.stop().await;
            }
            return Err(e);
        }
        let sync_every = cfg.sync_interval.seconds().unwrap_or(5).max(1) as u64;
        tasks.push(tokio::spawn(housekeeping(jails.clone(), sync_every, stop)));
        Ok(Engine {
            jails,
            events: Events {
                routes: Arc::new(routes),
            },
            tasks,
        })
    }

    /// The jails of `cfg`, each pushed to `jails` as soon as its actions
    /// have started, its reader task to `tasks`.
    async fn start_jails(
        cfg: &BanConfig,
        store: &Arc<dyn Store>,
        actions: &ActionBuilder,
        stop: &watch::Receiver<bool>,
        jails: &mut Vec<Arc<Jail>>,
        routes: &mut HashMap<String, Vec<mpsc::Sender<IpAddr>>>,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> Result<(), String> {
        let now = unix_now();
        for (name, jc) in cfg.jails.iter().filter(|(_, j)| j.enabled) {
            let settings = cfg.settings(name, jc)?;
            let filter = cfg.build_filter(name, jc)?;
            let mut ignore = cfg.ignoreip.clone();
            ignore.extend(jc.ignoreip.iter().cloned());
            let ignore = IgnoreList::new(&ignore, jc.ignoreself.unwrap_or(cfg.ignoreself))
                .map_err(|e| format!("[ban.jails.{name}] {e}"))?;
            let acts = actions(&settings, &jc.actions)?;
            let jail = Arc::new(Jail::new(settings, ignore, store.clone(), acts));
            jail.restore(now)
                .await
                .map_err(|e| format!("[ban.jails.{name}] restoring bans: {e}"))?;
            jails.push(jail.clone());
            let mut files = Vec::new();
            for path in &jc.logpath {
                let start = match store.get(&pos_key(name, path)).await {
                    Ok(Some(v)) => {
                        serde_json::from_slice::<Position>(&v).map_or(Start::End, Start::At)
                    }
                    _ if jc.from_start => Start::Beginning,
                    _ => Start::End,
                };
                files.push(
                    Follower::new(path, start)
                        .map_err(|e| format!("[ban.jails.{name}] logpath: {e}"))?,
                );
                if !path.exists() {
                    tracing::warn!(jail = %name, path = %path.display(), "log file does not exist yet: waiting for it");
                }
            }
            let journal = match &jc.journal {
                Some(unit) => {
                    let (tx, rx) = mpsc::channel(65_536);
                    let j =
                        Journal::spawn("journalctl", &journal::follow_args(unit, &[]), move |l| {
                            tx.blocking_send(l).is_ok()
                        })
                        .map_err(|e| format!("[ban.jails.{name}] journal: {e}"))?;
                    Some((j, rx))
                }
                None => None,
            };
            let events = if jc.events.is_empty() {
                None
            } else {
                let (tx, rx) = mpsc::channel(65_536);
                for kind in &jc.events {
                    routes.entry(kind.clone()).or_default().push(tx.clone());
                }
                Some(rx)
            };
            let sources = Sources {
                files,
                journal,
                events,
            };
            tasks.push(tokio::spawn(run_jail(
                jail.clone(),
                filter,
                sources,
                store.clone(),
                stop.clone(),
            )));
            tracing::info!(jail = %name, "ban jail started");
        }
        Ok(())
    }

    /// Waits for the tasks (after `stop`), then stops the actions.
    pub async fn join(self) {
        for t in self.tasks {
            let _ = t.await;
        }
        for j in &self.jails {
            j.stop().await;
        }
    }
}

async fn count(jail: &Jail, ip: IpAddr, attempts: u32) {
    match jail.failure(ip, attempts, unix_now()).await {
        Ok(
            Outcome::Banned(_) | Outcome::Counted(_) | Outcome::Ignored | Outcome::AlreadyBanned,
        ) => {}
        Err(e) => tracing::error!(jail = %jail.name(), %ip, "counting a failure: {e}"),
    }
}

async fn run_jail(
    jail: Arc<Jail>,
    mut filter: Box<dyn Filter>,
    mut sources: Sources,
    store: Arc<dyn Store>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    let mut unresolved: u64 = 0;
    loop {
        let mut hits = Vec::new();
        tokio::select! {
            _ = tick.tick() => {
                ticks = ticks.wrapping_add(1);
                for f in &mut sources.files {
                    let r = f.poll(|l| {
                        if let Some(hit) = filter.process(&line::parse(l)) {
                            hits.push(hit);
                        }
                    });
                    if let Err(e) = r {
                        tracing::warn!(jail = %jail.name(), path = %f.path().display(), "reading the log: {e}");
                    }
                }
                if ticks.is_multiple_of(20) {
                    save_positions(&jail, &sources.files, store.as_ref()).await;
                }
            }
            Some(l) = recv_journal(&mut sources.journal) => {
                if let Some(hit) = filter.process(&line::parse(&l)) {
                    hits.push(hit);
                }
            }
            Some(ip) = recv_event(&mut sources.events) => count(&jail, ip, 1).await,
            _ = stop.changed() => break,
        }
        for hit in hits {
            match hit.host.ip {
                Some(ip) => count(&jail, ip, hit.attempts).await,
                None => {
                    unresolved += 1;
                    if unresolved.is_power_of_two() {
                        tracing::info!(jail = %jail.name(), host = %hit.host.text, unresolved,
                            "failure of a host name, not an address: not banned (names are not resolved)");
                    }
                }
            }
        }
    }
    save_positions(&jail, &sources.files, store.as_ref()).await;
}

async fn recv_journal(j: &mut Option<(Journal, mpsc::Receiver<String>)>) -> Option<String> {
    match j {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_event(e: &mut Option<mpsc::Receiver<IpAddr>>) -> Option<IpAddr> {
    match e {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn save_positions(jail: &Jail, files: &[Follower], store: &dyn Store) {
    for f in files {
        if let Some(p) = f.position() {
            let v = serde_json::to_vec(&p).unwrap_or_default();
            let key = pos_key(jail.name(), f.path());
            let _ = store
                .set_many(&[(&key, &v)], None, Durability::Relaxed)
                .await;
        }
    }
}

async fn housekeeping(jails: Vec<Arc<Jail>>, sync_every: u64, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        n += 1;
        let now = unix_now();
        for j in &jails {
            j.expire(now).await;
            if n.is_multiple_of(sync_every)
                && let Err(e) = j.sync(now).await
            {
                tracing::warn!(jail = %j.name(), "reading bans from the store: {e}");
            }
        }
    }
}
