//! `mxguard serve`: the long-running daemon. Starts every enabled front end
//! in one tokio runtime, sharing one store and one DNS resolver: the milter
//! (over the scan service) and the policy server, plus the store's purge
//! of expired entries. SIGHUP reloads the config and maps, SIGTERM/SIGINT
//! stop it after sessions in flight.

use crate::parts::{self, Wanted};
use crate::settings::{Globals, format_errors};
use mxguard_auth::config::{ArcConfig, DkimSigningConfig, DmarcReportConfig};
use mxguard_core::shared::Shared;
use mxguard_scan::Services;
use mxguard_scan::checks::bayes::ClassifierConfig;
use mxguard_store::Store;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// How long in-flight sessions get to finish after SIGTERM.
const DRAIN: Duration = Duration::from_secs(10);

pub fn run(globals: &Globals) -> Result<ExitCode, String> {
    mxguard_net::memory::cap_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mxguard")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(globals))
}

/// Raises the descriptor limit and logs it; the limit caps must fit in.
fn raise_nofile() -> u64 {
    match mxguard_net::fd::raise_nofile_limit() {
        Ok(l) => {
            match l.raised_from {
                Some(from) => tracing::info!(
                    "file descriptor limit raised from {from} to {} (the hard limit)",
                    l.soft
                ),
                None => tracing::info!("file descriptor limit: {} (hard limit {})", l.soft, l.hard),
            }
            l.soft
        }
        Err(e) => {
            tracing::warn!("cannot read or raise the file descriptor limit (RLIMIT_NOFILE): {e}");
            mxguard_net::fd::get_nofile().map_or(1024, |(soft, _)| soft)
        }
    }
}

/// Lowers the connection caps of the enabled servers to fit in `nofile`.
fn fit_descriptor_caps(config: &mut mxguard_core::config::Config, nofile: u64) {
    let mut caps: Vec<(&str, &mut usize)> = Vec::new();
    if config.milter.enabled {
        caps.push(("milter.max_sessions", &mut config.milter.max_sessions));
    }
    if config.policy.enabled {
        caps.push(("policy.max_connections", &mut config.policy.max_connections));
    }
    for m in mxguard_net::fd::fit_caps(nofile, &mut caps) {
        tracing::warn!("{m}");
    }
}

fn score_greylist(
    config: &mxguard_core::config::Config,
    store: &Arc<dyn Store>,
) -> mxguard_scan::greylist::ScoreGreylist {
    mxguard_scan::greylist::ScoreGreylist::new(
        store.clone(),
        &config.greylist,
        config.policy.store_failure,
    )
}

async fn serve(globals: &Globals) -> Result<ExitCode, String> {
    let nofile = raise_nofile();
    let mut loaded = globals.load_config()?;
    fit_descriptor_caps(&mut loaded.config, nofile);
    let config = &loaded.config;
    let store: Arc<dyn Store> = crate::store_cmd::open(&config.store)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = Vec::new();
    // The classifier first: its model handle is one of the checks' services.
    let classifier = if Wanted::serve(config).pipeline {
        let (classifier, classifier_tasks) = crate::classifier::Classifier::start(
            config.section::<ClassifierConfig>(),
            store.clone(),
            stop_rx.clone(),
        )
        .await;
        Some((Arc::new(classifier), classifier_tasks))
    } else {
        None
    };
    // The ban engine ([ban]): jails reading logs, the journal and our own
    // events; bans in the store (`ban:<ip>`, read by reject_banned_client).
    let ban_config = config.section::<mxguard_ban::config::BanConfig>().clone();
    let ban_engine = if ban_config.enabled {
        let engine = mxguard_ban::engine::Engine::start(
            &ban_config,
            store.clone(),
            &mxguard_ban::engine::build_actions,
            stop_rx.clone(),
        )
        .await?;
        tracing::info!(jails = engine.jails.len(), "ban engine started");
        Some(engine)
    } else {
        None
    };
    // From here on the engine's actions have started (firewall sets and
    // rules): every way out of the front ends, an error included (one that
    // cannot bind), comes back here to stop them.
    let result = serve_front_ends(
        globals,
        nofile,
        &loaded,
        store,
        (&stop_tx, stop_rx),
        tasks,
        classifier,
        &ban_config,
        ban_engine.as_ref(),
    )
    .await;
    if let Some(engine) = ban_engine {
        // Already sent on a normal stop; on an early error the jails'
        // tasks learn it here.
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), engine.join()).await;
    }
    result
}

/// The classifier task handles `serve` starts first.
type StartedClassifier = Option<(
    Arc<crate::classifier::Classifier>,
    Vec<tokio::task::JoinHandle<()>>,
)>;

/// The front ends, the API and the periodic tasks, until SIGTERM/SIGINT;
/// the ban engine is `serve`'s to stop, whatever this returns.
#[allow(clippy::too_many_arguments)]
async fn serve_front_ends(
    globals: &Globals,
    nofile: u64,
    loaded: &mxguard_core::config::LoadedConfig,
    store: Arc<dyn Store>,
    (stop_tx, stop_rx): (&watch::Sender<bool>, watch::Receiver<bool>),
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
    classifier: StartedClassifier,
    ban_config: &mxguard_ban::config::BanConfig,
    ban_engine: Option<&mxguard_ban::engine::Engine>,
) -> Result<ExitCode, String> {
    let config = &loaded.config;
    // The API's and the CLI's way to the bans: through the running jails
    // (their actions run); with the engine off, over the store alone.
    let ban_api: Arc<dyn mxguard_web::Bans> = Arc::new(crate::ban_api::EngineBans::new(
        ban_engine
            .as_ref()
            .map_or_else(Vec::new, |e| e.jails.clone()),
        store.clone(),
        ban_config.clone(),
    ));
    // mxguard's own events (policy rejects, rate-limit hits) feed the jails
    // that count them, without a log round trip.
    let policy_events: Option<mxguard_policy::engine::EventHook> = ban_engine.as_ref().map(|e| {
        let events = e.events.clone();
        Arc::new(move |kind: &'static str, ip: std::net::IpAddr| events.report(kind, ip))
            as mxguard_policy::engine::EventHook
    });

    let services = Services {
        store: Some(store.clone()),
        classifier: classifier.as_ref().map(|(c, _)| c.handle.clone()),
        ..Services::default()
    };
    let built = parts::build(loaded, store.clone(), &services, Wanted::serve(config))
        .map_err(|e| format_errors(&e))?;
    for w in &built.warnings {
        tracing::warn!("{w}");
    }

    // The HTTP API scans through the milter's scan service and learns
    // into the classifier's model handle.
    let mut web_scanner = None;
    let web_classifier = classifier.as_ref().map(|(c, _)| c.handle.clone());
    let milter = if let (Some(pipeline), Some((classifier, classifier_tasks))) =
        (built.pipeline, classifier)
    {
        let signing = Arc::new(Shared::new(built.signing.flatten()));
        let pipeline = Arc::new(Shared::new(pipeline));
        let server = mxguard_milter::MilterServer::bind(&config.milter)
            .await
            .map_err(|e| {
                format!(
                    "milter: cannot listen on {} ([milter] listen): {e}",
                    config.milter.listen
                )
            })?;
        tracing::info!(listen = %config.milter.listen, "milter listening");
        let greylist = Arc::new(Shared::new(score_greylist(config, &store)));
        let scanner = Arc::new(
            crate::scanner::service(
                pipeline.clone(),
                config,
                store.clone(),
                classifier,
                greylist.clone(),
            )
            .with_signing(signing.clone()),
        );
        web_scanner = Some(scanner.clone());
        // The milter's rejects feed the jails counting `milter_reject`.
        let scanner: Arc<dyn mxguard_milter::Scanner> = match &ban_engine {
            Some(e) => Arc::new(crate::ban_api::ReportingScanner {
                inner: scanner,
                events: e.events.clone(),
            }),
            None => scanner,
        };
        let milter_config = server.config();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = server.run(scanner, shutdown).await {
                tracing::error!("milter: {e}");
            }
        }));
        // After the milter's sessions: autolearn learns what they queued.
        tasks.extend(classifier_tasks);
        Some((pipeline, milter_config, greylist, signing))
    } else {
        None
    };

    let policy = if let Some(engine) = built.engine {
        let engine = match &policy_events {
            Some(hook) => engine.with_events(hook.clone()),
            None => engine,
        };
        let engine = Arc::new(Shared::new(engine));
        let mode = mxguard_core::config::parse_mode(&config.policy.socket_mode).unwrap_or(0o666);
        let listener = mxguard_policy::server::Listener::bind(&config.policy.listen, mode)
            .await
            .map_err(|e| {
                format!(
                    "policy: cannot listen on {} ([policy] listen): {e}",
                    config.policy.listen
                )
            })?;
        tracing::info!(listen = %config.policy.listen, "policy server listening");
        tasks.push(tokio::spawn(mxguard_policy::server::serve(
            listener,
            engine.clone(),
            mxguard_policy::server::Limits::from_config(&config.policy),
            stop_rx.clone(),
        )));
        Some(engine)
    } else {
        None
    };
    // The HTTP API and the control socket ([web]).
    let (web_config, mut reloads) = match crate::web::start(
        config,
        store.clone(),
        web_scanner,
        web_classifier,
        Some(ban_api),
        stop_rx.clone(),
    )
    .await?
    {
        Some(w) => {
            tasks.extend(w.tasks);
            (Some(w.config), Some(w.reloads))
        }
        None => (None, None),
    };
    if tasks.is_empty() {
        return Err("nothing to serve: every front end is disabled in the config".into());
    }
    // DMARC aggregate reports: yesterday's unsent ones at start, then daily.
    if config.section::<DmarcReportConfig>().sending() {
        let dns = mxguard_dns::Dns::new(&config.dns).map_err(|e| format!("[dns]: {e}"))?;
        // The report mail is DKIM-signed as the reporting domain with the
        // keys of [dkim_signing], when it has some for that domain.
        let sign: Option<Arc<mxguard_auth::report::SignFn>> = if config
            .section::<DmarcReportConfig>()
            .sign
        {
            match mxguard_auth::sign::Outbound::new(
                config.section::<DkimSigningConfig>(),
                config.section::<ArcConfig>(),
            ) {
                Ok(Some(outbound)) if config.section::<DkimSigningConfig>().enabled => {
                    // Aligned with the report's From: (`email`).
                    let r = &config.section::<DmarcReportConfig>();
                    let domain = r
                        .email
                        .rsplit_once('@')
                        .map_or_else(|| r.domain.clone(), |(_, d)| d.to_ascii_lowercase());
                    Some(Arc::new(move |raw: &[u8]| {
                        outbound
                            .sign_own(&domain, raw)
                            .unwrap_or_else(|| Err("DKIM signing is off".into()))
                    }))
                }
                Ok(_) => {
                    tracing::info!(
                        "DMARC reports: [dkim_signing] is off; the relay must sign the report mail"
                    );
                    None
                }
                Err(e) => return Err(format!("[dkim_signing]: {e:?}")),
            }
        } else {
            None
        };
        let reporter = mxguard_auth::report::Reporter::new(
            store.clone(),
            Arc::new(dns),
            config.section::<DmarcReportConfig>().clone(),
            sign,
        );
        tasks.push(tokio::spawn(reporter.run(stop_rx.clone())));
    }
    // The mail-log report, mailed daily when [report] is enabled.
    if config
        .section::<crate::report_schedule::ReportSchedule>()
        .enabled
    {
        tasks.push(tokio::spawn(crate::report_schedule::run(
            config
                .section::<crate::report_schedule::ReportSchedule>()
                .clone(),
            config.store.data_dir.clone(),
            stop_rx.clone(),
        )));
    }
    // The URL feeds the checks registered ([phishing] openphish/phishtank):
    // fetched now, then whenever their refresh_interval has passed; kept
    // across reloads (a reload registers into the same `services.feeds`).
    tasks.push(tokio::spawn(
        services
            .feeds
            .clone()
            .run(Duration::from_secs(1), stop_rx.clone()),
    ));
    // Expired entries stay in the file until purged.
    tasks.push(tokio::spawn(crate::purge::run(
        store.clone(),
        crate::purge::Schedule::default(),
        stop_rx.clone(),
    )));

    let mut hup = signal(SignalKind::hangup()).map_err(|e| e.to_string())?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    // SIGHUP and the HTTP API (after a saved change) reload alike.
    let reload = || -> Result<(), String> {
        let wanted = Wanted {
            pipeline: milter.is_some(),
            engine: policy.is_some(),
        };
        let mut new = globals.load_config()?;
        fit_descriptor_caps(&mut new.config, nofile);
        let built =
            parts::build(&new, store.clone(), &services, wanted).map_err(|e| format_errors(&e))?;
        for w in &built.warnings {
            tracing::warn!("{w}");
        }
        if let (Some((pipeline, milter_config, greylist, signing)), Some(p)) =
            (&milter, built.pipeline)
        {
            pipeline.replace(p);
            signing.replace(built.signing.flatten());
            greylist.replace(score_greylist(&new.config, &store));
            milter_config.replace(new.config.milter.clone());
            tracing::info!("milter: configuration reloaded");
        }
        if let (Some(p), Some(e)) = (&policy, built.engine) {
            p.replace(match &policy_events {
                Some(hook) => e.with_events(hook.clone()),
                None => e,
            });
            tracing::info!("policy: configuration reloaded");
        }
        if let Some(c) = &web_config {
            c.replace(new.config);
        }
        Ok(())
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                if let Err(e) = reload() {
                    tracing::error!("reload refused, keeping the running configuration: {e}");
                }
            }
            Some(answer) = async {
                match &mut reloads {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let result = reload();
                if let Err(e) = &result {
                    tracing::error!("reload asked by the HTTP API refused, keeping the running configuration: {e}");
                }
                let _ = answer.send(result);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    tracing::info!("stopping: finishing sessions in flight");
    let _ = stop_tx.send(true);
    // Each server cuts its own stragglers (and logs it) before this does.
    let drain = DRAIN
        .max(config.milter.shutdown_grace.as_duration() + Duration::from_secs(1))
        .max(mxguard_policy::server::SHUTDOWN_GRACE + Duration::from_secs(1));
    let _ = tokio::time::timeout(drain, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    Ok(ExitCode::SUCCESS)
}
