//! The daemon's parts that the config decides: the scan pipeline (with its
//! rule tables and multimap lists) and the policy engine (with its access
//! maps, whitelist files and DNS resolver).
//!
//! `serve` builds them at start and on SIGHUP; `config check` builds them
//! too, to meet every error `serve` would, without binding a socket or
//! opening the store. One function for both, so they cannot disagree again.

use mxguard_auth::config::{
    ArcConfig, ArcVerifyConfig, DkimConfig, DkimSigningConfig, DmarcConfig, SpfConfig,
};
use mxguard_core::config::{Config, ConfigError, LoadedConfig};
use mxguard_core::maps::LineError;
use mxguard_policy::engine::Engine;
use mxguard_scan::{Pipeline, Services};
use mxguard_store::{BoxFuture, Entries, ErrorKind, Purged, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Which parts to build.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub pipeline: bool,
    pub engine: bool,
}

impl Wanted {
    /// What `serve` runs: the pipeline for the milter, the engine for the
    /// policy server, each if enabled.
    pub fn serve(config: &Config) -> Wanted {
        Wanted {
            pipeline: config.milter.enabled,
            engine: config.policy.enabled,
        }
    }

    /// What `config check` builds: what `serve` runs, and the pipeline even
    /// with the milter off, since `mxguard scan` uses it.
    pub fn check(config: &Config) -> Wanted {
        Wanted {
            pipeline: true,
            ..Wanted::serve(config)
        }
    }
}

pub struct Parts {
    pub pipeline: Option<Pipeline>,
    /// DKIM signing and ARC sealing for the milter's scan service, built
    /// with the pipeline (keys read now, so a bad key stops `serve` and
    /// `config check`); `None` inside when neither is enabled.
    pub signing: Option<Option<mxguard_auth::sign::Outbound>>,
    pub engine: Option<Engine>,
    /// Map lines that were skipped.
    pub warnings: Vec<LineError>,
}

/// Builds the parts `wanted` names, reporting the errors of all of them
/// at once, in file order. Must run inside a tokio runtime (the DNS
/// resolver needs one). The engine keeps `store` for its requests; it does
/// not use it while being built. The pipeline's checks get `services`,
/// with the resolver the engine gets when one is built.
pub fn build(
    loaded: &LoadedConfig,
    store: Arc<dyn Store>,
    services: &Services,
    wanted: Wanted,
) -> Result<Parts, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let c = &loaded.config;
    // The authentication checks (SPF, DKIM, DMARC, ARC) wait on DNS too.
    let auth_checks = c.section::<SpfConfig>().enabled
        || c.section::<DkimConfig>().enabled
        || c.section::<DmarcConfig>().enabled
        || c.section::<ArcVerifyConfig>().enabled
        // So do the DNS lists, when any is configured.
        || c.section::<mxguard_scan::checks::rbl::RblConfig>().needs_dns();
    let needs_dns = (wanted.engine && Engine::needs_dns(c)) || (wanted.pipeline && auth_checks);
    let dns = if needs_dns {
        match mxguard_dns::Dns::new(&loaded.config.dns) {
            Ok(d) => Some(d),
            Err(e) => {
                let key = if loaded.config.dns.nameservers.is_empty() {
                    "dns"
                } else {
                    "dns.nameservers"
                };
                errors.push(loaded.error_at(None, key, &e));
                None
            }
        }
    } else {
        None
    };
    let pipeline = if wanted.pipeline {
        let services = Services {
            resolver: services
                .resolver
                .clone()
                .or_else(|| dns.clone().map(Arc::new)),
            ..services.clone()
        };
        match Pipeline::new(loaded, &services) {
            Ok((p, w)) => {
                warnings.extend(w);
                Some(p)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    } else {
        None
    };
    let signing = if wanted.pipeline {
        match mxguard_auth::sign::Outbound::new(
            loaded.config.section::<DkimSigningConfig>(),
            loaded.config.section::<ArcConfig>(),
        ) {
            Ok(o) => Some(o),
            Err(e) => {
                errors.extend(e.iter().map(|(key, m)| loaded.error_at_key(key, m)));
                None
            }
        }
    } else {
        None
    };
    let engine = if wanted.engine {
        match Engine::new(loaded, store, dns) {
            Ok((e, w)) => {
                warnings.extend(w);
                Some(e)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    } else {
        None
    };
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.position.map(|p| (p.line, p.column)));
        return Err(errors);
    }
    Ok(Parts {
        pipeline,
        signing,
        engine,
        warnings,
    })
}

/// The store `config check` hands the engine: the engine only keeps it,
/// and the real one may be held by a running `serve`. Every call fails.
pub struct NoStore;

impl NoStore {
    fn refuse<T>() -> mxguard_store::Result<T> {
        Err(StoreError::new(
            ErrorKind::Closed,
            "no store is open (mxguard config check)",
        ))
    }
}

impl Store for NoStore {
    fn describe(&self) -> String {
        "no store (mxguard config check)".into()
    }
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, mxguard_store::Result<Option<Vec<u8>>>> {
        Box::pin(async { Self::refuse() })
    }
    fn get_many<'a>(
        &'a self,
        _: &'a [&'a str],
    ) -> BoxFuture<'a, mxguard_store::Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async { Self::refuse() })
    }
    fn set<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8],
        _: Option<Duration>,
    ) -> BoxFuture<'a, mxguard_store::Result<()>> {
        Box::pin(async { Self::refuse() })
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, mxguard_store::Result<bool>> {
        Box::pin(async { Self::refuse() })
    }
    fn incr<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: Option<Duration>,
    ) -> BoxFuture<'a, mxguard_store::Result<i64>> {
        Box::pin(async { Self::refuse() })
    }
    fn list_push<'a>(
        &'a self,
        _: &'a str,
        _: &'a [u8],
        _: usize,
    ) -> BoxFuture<'a, mxguard_store::Result<()>> {
        Box::pin(async { Self::refuse() })
    }
    fn list_range<'a>(
        &'a self,
        _: &'a str,
        _: usize,
        _: usize,
    ) -> BoxFuture<'a, mxguard_store::Result<Vec<Vec<u8>>>> {
        Box::pin(async { Self::refuse() })
    }
    fn list_len<'a>(&'a self, _: &'a str) -> BoxFuture<'a, mxguard_store::Result<usize>> {
        Box::pin(async { Self::refuse() })
    }
    fn scan_prefix<'a>(
        &'a self,
        _: &'a str,
        _: usize,
    ) -> BoxFuture<'a, mxguard_store::Result<Entries>> {
        Box::pin(async { Self::refuse() })
    }
    fn purge_expired(&self, _: usize) -> BoxFuture<'_, mxguard_store::Result<Purged>> {
        Box::pin(async { Self::refuse() })
    }
}
