//! `mxguard ban`: test a filter on a log (fail2ban-regex's job), and the
//! jails' state — status, add, remove — in fail2ban-client's spirit.
//!
//! `status`, `add` and `remove` go through a running `serve`'s control
//! socket (its jails ban and unban, so their firewall actions run); with
//! no `serve`, they work on the store directly and `serve` applies what
//! they wrote at its next start.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use mxguard_ban::config::{BanConfig, parse_time};
use mxguard_ban::filter::{self, Filter};
use mxguard_ban::ignore::IgnoreList;
use mxguard_ban::jail::{Jail, JailSettings, all_bans};
use mxguard_ban::tester;
use mxguard_store::{Counters, EmbeddedStore, Store};

use crate::settings::Globals;

#[derive(Subcommand)]
pub enum BanCommand {
    /// Run a filter over a log file: lines read, matched per rule, hosts.
    Test {
        /// A built-in filter (sshd, postfix, dovecot, postfix-flood) with an
        /// optional mode (postfix:aggressive), a [ban.filters] name, or a
        /// fail2ban filter .conf (path, options as file.conf[mode=ddos]).
        filter: String,
        /// The log file to read (- for standard input).
        logfile: PathBuf,
        /// Print every matching line.
        #[arg(long)]
        print_matches: bool,
        /// One JSON object per matching line, then a summary object.
        #[arg(long)]
        json: bool,
    },
    /// The jails; with a jail, its counts and banned addresses.
    Status {
        jail: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Ban an address by hand.
    Add {
        ip: IpAddr,
        /// The jail it is banned in (default: manual).
        #[arg(long, default_value = "manual")]
        jail: String,
        /// How long (600, 10m, 1h, 1d; -1 = permanent). Default: the jail's
        /// bantime, or 1h.
        #[arg(long, allow_hyphen_values = true)]
        time: Option<String>,
    },
    /// Lift a ban by hand, or every ban with --all.
    Remove {
        ip: Option<IpAddr>,
        #[arg(long)]
        all: bool,
    },
}

pub fn run(globals: &Globals, cmd: BanCommand) -> Result<ExitCode, String> {
    match cmd {
        BanCommand::Test {
            filter,
            logfile,
            print_matches,
            json,
        } => test(globals, &filter, &logfile, print_matches, json),
        BanCommand::Status { jail, json } => status(globals, jail.as_deref(), json),
        BanCommand::Add { ip, jail, time } => add(globals, ip, &jail, time.as_deref()),
        BanCommand::Remove { ip, all } => remove(globals, ip, all),
    }
}

fn ban_config(globals: &Globals) -> Result<(BanConfig, PathBuf), String> {
    let loaded = globals.load_config()?;
    Ok((
        loaded.config.section::<BanConfig>().clone(),
        loaded.config.store.data_dir.clone(),
    ))
}

fn build_filter(globals: &Globals, spec: &str) -> Result<Box<dyn Filter>, String> {
    let (path_part, options) = filter::conf::split_options(spec);
    if path_part.ends_with(".conf") || path_part.contains('/') {
        let loaded =
            filter::conf::load(std::path::Path::new(path_part), &options).map_err(|e| e.0)?;
        return filter::custom::Custom::new(path_part, &loaded.definition)
            .map(|f| Box::new(f) as Box<dyn Filter>)
            .map_err(|e| e.0);
    }
    let (name, _) = filter::split_spec(spec);
    if filter::BUILTIN.iter().any(|(n, _)| *n == name) {
        return filter::builtin(spec).map_err(|e| e.0);
    }
    let (cfg, _) = ban_config(globals)?;
    match cfg.filters.get(name) {
        Some(def) => mxguard_ban::config::build_custom(name, def),
        None => filter::builtin(spec).map_err(|e| e.0),
    }
}

fn test(
    globals: &Globals,
    spec: &str,
    logfile: &PathBuf,
    print: bool,
    json: bool,
) -> Result<ExitCode, String> {
    let mut f = build_filter(globals, spec)?;
    let input: Box<dyn std::io::BufRead> = if logfile.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(logfile)
            .map_err(|e| format!("cannot read {}: {e}", logfile.display()))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = tester::run(f.as_mut(), input, |n, line, hit| {
        if json {
            let m = tester::Match {
                line: n,
                host: &hit.host.text,
                user: hit.user.as_deref(),
                time: line.time.map(|t| t.to_string()),
                attempts: hit.attempts,
            };
            let _ = writeln!(out, "{}", serde_json::to_string(&m).unwrap_or_default());
        } else if print {
            let _ = writeln!(out, "{n}: {} | {}", hit.host.text, line.raw);
        }
    })
    .map_err(|e| format!("reading {}: {e}", logfile.display()))?;
    if json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&serde_json::json!({"summary": summary})).unwrap_or_default()
        );
    } else {
        if print {
            let _ = writeln!(out);
        }
        let _ = write!(out, "{}", tester::text(&summary));
    }
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn open(data_dir: &std::path::Path) -> Result<Arc<dyn Store>, String> {
    EmbeddedStore::open(data_dir)
        .map(|s| Arc::new(s) as Arc<dyn Store>)
        .map_err(|e| {
            if e.kind() == mxguard_store::ErrorKind::InUse {
                format!("{e}\n(while `mxguard serve` runs, `mxguard ban status|add|remove` cannot open the store yet: stop serve, or wait for its control socket)")
            } else {
                e.to_string()
            }
        })
}

/// Prints `ban status`'s JSON (`[{"jail", "banned"}]` or one jail's
/// object) as fail2ban-client does, or as JSON.
fn print_status(v: &serde_json::Value, jail: Option<&str>, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    let count = |k: &str| v.get(k).and_then(|n| n.as_i64()).unwrap_or(0);
    let words = |k: &str| {
        v.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    match jail {
        None => {
            let names: Vec<&str> = v
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["jail"].as_str()).collect())
                .unwrap_or_default();
            println!("Number of jails: {}", names.len());
            println!("Jail list: {}", names.join(", "));
        }
        Some(name) => {
            println!("Status for the jail: {name}");
            println!("|- Filter");
            println!("|  |- Currently failed: {}", count("currently_failed"));
            println!("|  |- Total failed:     {}", count("total_failed"));
            println!("|  `- File list:        {}", words("files"));
            println!("`- Actions");
            println!("   |- Currently banned: {}", count("currently_banned"));
            println!("   |- Total banned:     {}", count("total_banned"));
            println!("   `- Banned IP list:   {}", words("banned"));
        }
    }
}

fn status(globals: &Globals, jail: Option<&str>, json: bool) -> Result<ExitCode, String> {
    let path = match jail {
        Some(j) => format!("/bans/status?jail={}", query_escape(j)),
        None => "/bans/status".to_string(),
    };
    if let Some(answer) = crate::web::via_serve(globals, "GET", &path, b"")? {
        print_status(&answer.json()?, jail, json);
        return Ok(ExitCode::SUCCESS);
    }
    let (cfg, dir) = ban_config(globals)?;
    let store = open(&dir)?;
    let rt = runtime()?;
    let bans = rt.block_on(all_bans(store.as_ref()))?;
    let counters = Counters::new(store.clone());
    let mut by_jail: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in cfg.jails.keys() {
        by_jail.entry(name.clone()).or_default();
    }
    for (ip, r) in &bans {
        by_jail
            .entry(r.jail.clone())
            .or_default()
            .push(ip.to_string());
    }
    let v = match jail {
        None => serde_json::Value::Array(
            by_jail
                .iter()
                .map(|(j, ips)| serde_json::json!({"jail": j, "banned": ips.len()}))
                .collect(),
        ),
        Some(name) => {
            let Some(ips) = by_jail.get(name) else {
                return Err(format!(
                    "no jail `{name}`: configured are {}",
                    cfg.jails.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            };
            let get = |k: &str| {
                rt.block_on(counters.get(&format!("ban:{name}:{k}")))
                    .unwrap_or(0)
            };
            let failed = rt
                .block_on(store.scan_prefix(&format!("banfail:{name}:"), 1_000_000))
                .map(|v| v.len())
                .unwrap_or(0);
            let files: Vec<String> = cfg.jails.get(name).map_or_else(Vec::new, |j| {
                let mut f: Vec<String> =
                    j.logpath.iter().map(|p| p.display().to_string()).collect();
                if let Some(u) = &j.journal {
                    f.push(format!("journal unit {u}"));
                }
                f
            });
            serde_json::json!({"jail": name, "currently_failed": failed, "total_failed": get("failed"),
                "files": files, "currently_banned": ips.len(), "total_banned": get("banned"), "banned": ips})
        }
    };
    print_status(&v, jail, json);
    Ok(ExitCode::SUCCESS)
}

fn jail_for(cfg: &BanConfig, name: &str, store: Arc<dyn Store>) -> Result<Jail, String> {
    let settings = match cfg.jails.get(name) {
        Some(j) => cfg.settings(name, j)?,
        None => JailSettings::new(name),
    };
    // By hand: no ignoreip, no actions (serve applies it from the store).
    Ok(Jail::new(
        settings,
        IgnoreList::default(),
        store,
        Vec::new(),
    ))
}

fn add(globals: &Globals, ip: IpAddr, jail: &str, time: Option<&str>) -> Result<ExitCode, String> {
    let (cfg, dir) = ban_config(globals)?;
    let secs = time
        .map(parse_time)
        .transpose()
        .map_err(|e| format!("--time: {e}"))?;
    let via = serde_json::json!({"ip": ip.to_string(), "jail": jail, "time": secs});
    let rec = match crate::web::via_serve(globals, "POST", "/bans/add", via.to_string().as_bytes())?
    {
        Some(answer) => serde_json::from_value::<mxguard_ban::jail::BanRecord>(answer.json()?)
            .map_err(|e| format!("mxguard serve sent a ban record this build cannot read: {e}"))?,
        None => {
            let store = open(&dir)?;
            let j = jail_for(&cfg, jail, store)?;
            runtime()?.block_on(j.ban(ip, mxguard_ban::engine::unix_now(), secs))?
        }
    };
    match rec.until {
        Some(u) => println!(
            "{ip} banned in {} until {u} (Unix time), ban #{}",
            rec.jail, rec.count
        ),
        None => println!(
            "{ip} banned in {} permanently, ban #{}",
            rec.jail, rec.count
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// `ban remove` through a running `serve`; `Ok(None)` when none runs.
fn remove_via_serve(
    globals: &Globals,
    ip: Option<IpAddr>,
    all: bool,
) -> Result<Option<ExitCode>, String> {
    let targets: Vec<(IpAddr, String)> = match (ip, all) {
        (Some(ip), false) => vec![(ip, String::new())],
        (None, true) => {
            let Some(answer) = crate::web::via_serve(globals, "GET", "/bans", b"")? else {
                return Ok(None);
            };
            serde_json::from_value::<Vec<serde_json::Value>>(answer.json()?)
                .map_err(|e| format!("mxguard serve sent a ban list this build cannot read: {e}"))?
                .iter()
                .filter_map(|b| {
                    Some((
                        b["ip"].as_str()?.parse().ok()?,
                        b["jail"].as_str().unwrap_or_default().to_string(),
                    ))
                })
                .collect()
        }
        _ => return Err("give an address or --all (not both)".into()),
    };
    for (ip, jail) in &targets {
        let body = serde_json::json!({"ip": ip.to_string()}).to_string();
        let Some(answer) = crate::web::via_serve(globals, "POST", "/bans/delete", body.as_bytes())?
        else {
            return Ok(None);
        };
        if answer.status == 404 {
            return Err(format!("{ip} is not banned"));
        }
        answer.json()?;
        if jail.is_empty() {
            println!("{ip} unbanned");
        } else {
            println!("{ip} unbanned ({jail})");
        }
    }
    if targets.is_empty() {
        println!("no bans");
    }
    Ok(Some(ExitCode::SUCCESS))
}

fn remove(globals: &Globals, ip: Option<IpAddr>, all: bool) -> Result<ExitCode, String> {
    if let Some(code) = remove_via_serve(globals, ip, all)? {
        return Ok(code);
    }
    let (cfg, dir) = ban_config(globals)?;
    let store = open(&dir)?;
    let rt = runtime()?;
    let bans = rt.block_on(all_bans(store.as_ref()))?;
    let targets: Vec<(IpAddr, String)> = match (ip, all) {
        (Some(ip), false) => match bans.iter().find(|(b, _)| *b == ip) {
            Some((ip, r)) => vec![(*ip, r.jail.clone())],
            None => return Err(format!("{ip} is not banned")),
        },
        (None, true) => bans.iter().map(|(ip, r)| (*ip, r.jail.clone())).collect(),
        _ => return Err("give an address or --all (not both)".into()),
    };
    let now = mxguard_ban::engine::unix_now();
    for (ip, jail) in &targets {
        let j = jail_for(&cfg, jail, store.clone())?;
        rt.block_on(j.unban(*ip, now))?;
        println!("{ip} unbanned ({jail})");
    }
    if targets.is_empty() {
        println!("no bans");
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a jail name for the query string.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
