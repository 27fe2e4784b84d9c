//! `mxguard store check [--repair]`: is the store file sound, and if not,
//! keep what can still be read. The work is in `mxguard_store::check`.
//! `mxguard store copy`: every key from one store to another (embedded
//! and Redis, either way), in `mxguard_store::copy`. And [`open`], which
//! every command uses to open the store the config names.

use crate::settings::Globals;
use clap::Subcommand;
use mxguard_core::config::StoreConfig;
use mxguard_store::check::{self, Checked, Contents, Repaired};
use mxguard_store::copy::{self, AnyStore};
use mxguard_store::{EmbeddedStore, RedisOptions, RedisStore, RedisTls, Store};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The store `[store]` names: Redis when `url` is set, else the embedded
/// store in `data_dir`. Opening Redis connects on first use (inside the
/// caller's tokio runtime), so this does not wait for it.
pub fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, String> {
    Ok(match redis_options(config) {
        Some(o) => Arc::new(RedisStore::open(o).map_err(|e| e.to_string())?),
        None => Arc::new(EmbeddedStore::open(&config.data_dir).map_err(|e| e.to_string())?),
    })
}

/// `[store]`'s Redis settings, if it names Redis.
pub fn redis_options(config: &StoreConfig) -> Option<RedisOptions> {
    let url = config.url.as_ref()?;
    Some(RedisOptions {
        urls: url.urls(),
        read_url: config.read_url.clone(),
        timeout: config.timeout.as_duration(),
        key_prefix: config.key_prefix.clone(),
        tls: redis_tls(config),
    })
}

/// `[store]`'s TLS settings (for rediss:// URLs).
fn redis_tls(config: &StoreConfig) -> RedisTls {
    RedisTls {
        ca_file: config.tls_ca_file.clone(),
        cert_file: config.tls_cert_file.clone(),
        key_file: config.tls_key_file.clone(),
        insecure: config.tls_insecure,
    }
}

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Verify every page of the store file (mxguard serve must be stopped).
    /// Exit status 0 if sound, 1 if damaged.
    Check {
        /// If damaged: copy every entry that can still be read into a new
        /// file, keep the damaged one as mxguard.redb.damaged-<time>, and
        /// put the new one in its place.
        #[arg(long)]
        repair: bool,
    },
    /// Copy every key (values, lists, expiry times) from one store to
    /// another: a data directory, or a Redis URL (redis://, rediss://,
    /// unix://; Redis Cluster nodes separated by commas). Stop mxguard
    /// serve first. A Redis store uses [store] timeout and key_prefix (and the
    /// tls_* keys for rediss://).
    Copy {
        #[arg(long, value_name = "DIR|URL")]
        from: String,
        #[arg(long, value_name = "DIR|URL")]
        to: String,
        /// Copy into a store that already holds keys (they are kept, and
        /// overwritten where the source has the same key).
        #[arg(long)]
        merge: bool,
    },
}

/// A `--from`/`--to` argument: a Redis URL or a data directory.
async fn open_any(spec: &str, config: &StoreConfig) -> Result<AnyStore, String> {
    if mxguard_core::config::STORE_URL_SCHEMES
        .iter()
        .any(|s| spec.starts_with(s))
    {
        let urls = spec.split(',').map(|u| u.trim().to_string()).collect();
        let options = RedisOptions {
            urls,
            read_url: None,
            timeout: config.timeout.as_duration(),
            key_prefix: config.key_prefix.clone(),
            tls: if spec.contains("rediss://") {
                redis_tls(config)
            } else {
                RedisTls::default()
            },
        };
        let s = RedisStore::connect(options)
            .await
            .map_err(|e| e.to_string())?;
        Ok(AnyStore::Redis(Box::new(s)))
    } else {
        let s = EmbeddedStore::open(Path::new(spec)).map_err(|e| e.to_string())?;
        Ok(AnyStore::Embedded(s))
    }
}

fn copy_stores(globals: &Globals, from: &str, to: &str, merge: bool) -> Result<ExitCode, String> {
    let loaded = globals.load_config()?;
    let config = &loaded.config.store;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async {
        let src = open_any(from, config).await?;
        let dst = open_any(to, config).await?;
        if !merge && !dst.is_empty().await.map_err(|e| e.to_string())? {
            return Err(format!(
                "{} already holds keys: copying into it would mix two installs' state; give an empty store, or --merge to copy anyway",
                dst.store().describe()
            ));
        }
        let items = src.export().await.map_err(|e| e.to_string())?;
        let done = copy::import(dst.store(), &items)
            .await
            .map_err(|e| format!("copying into {}: {e}", dst.store().describe()))?;
        println!(
            "copied {} values and {} lists ({} items) from {} to {}{}",
            done.values,
            done.lists,
            done.list_items,
            src.store().describe(),
            dst.store().describe(),
            if done.expired > 0 {
                format!("; {} expired during the copy and were left out", done.expired)
            } else {
                String::new()
            }
        );
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run(globals: &Globals, cmd: StoreCommand) -> Result<ExitCode, String> {
    let repair = match cmd {
        StoreCommand::Check { repair } => repair,
        StoreCommand::Copy { from, to, merge } => return copy_stores(globals, &from, &to, merge),
    };
    let loaded = globals.load_config()?;
    let dir = &loaded.config.store.data_dir;
    let path = dir.join("mxguard.redb");
    // Refusals (serve holds the file, no store there) say what to do.
    let refused = |e: mxguard_store::StoreError| e.to_string();
    if !repair {
        return match check::check(dir).map_err(refused)? {
            Checked::Sound(c) => {
                println!("{}: sound ({})", path.display(), describe(&c));
                Ok(ExitCode::SUCCESS)
            }
            Checked::Damaged(what) => {
                println!("{what}");
                Ok(ExitCode::FAILURE)
            }
        };
    }
    match check::repair(dir).map_err(refused)? {
        Repaired::NothingToDo(c) => {
            println!(
                "{}: sound ({}); nothing to repair",
                path.display(),
                describe(&c)
            );
        }
        Repaired::Salvaged {
            damage,
            kept,
            skipped,
            damaged_file,
        } => {
            println!("{damage}");
            println!(
                "repaired: {} now holds what could be read ({}); {skipped} damaged part(s) skipped",
                path.display(),
                describe(&kept)
            );
            println!(
                "the damaged file is kept as {} (delete it once mxguard runs well)",
                damaged_file.display()
            );
            println!(
                "entries on damaged pages are lost: greylisted senders are greylisted again; if `mxguard stats` shows no classifier model, learn it again (mxguard learn)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(c: &Contents) -> String {
    format!(
        "{} values, {} lists holding {} items",
        c.values, c.lists, c.list_items
    )
}
