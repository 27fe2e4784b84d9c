//! Checks that wait, through the real pipeline and the real scan service:
//! a DNS lookup against a name server that never answers, time-outs and
//! the scan's deadline, dependency order with typed values, panics while
//! polling, and a thousand concurrent scans with a slow check.

use mxguard_auth::config::{ArcVerifyConfig, DkimConfig, DmarcConfig, SpfConfig};
use mxguard_core::config::{Config, LoadedConfig, Millis, load_str};
use mxguard_core::shared::Shared;
use mxguard_core::{Envelope, ScanResults, SymbolDef, Verdict};
use mxguard_scan::checks::{BoxFuture, BuildReport, Check, Output, Outputs, Waiting, build_checks};
use mxguard_scan::{Pipeline, ScanInput, ScanService, Services, Task};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A subject rule, so an inline check's symbol is there to stand.
const CONFIG: &str = r#"
[[rules]]
name = "SUBJ_HELLO"
target = "subject"
pattern = "hello"
"#;

const MSG: &[u8] = b"From: a@example.com\r\nSubject: hello there\r\n\r\nbody\r\n";

fn loaded(scan_timeout_ms: u64) -> LoadedConfig {
    let mut config: Config = load_str(CONFIG, "test.toml", &mxguard_scan::sections()).unwrap();
    config.scan.scan_timeout = Millis(scan_timeout_ms);
    // Only the test's own waiting checks: the authentication checks, built
    // whenever a resolver is given, would wait on the silent server too.
    config.set_section(SpfConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(DkimConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(DmarcConfig {
        enabled: false,
        ..Default::default()
    });
    config.set_section(ArcVerifyConfig {
        enabled: false,
        ..Default::default()
    });
    LoadedConfig {
        config,
        ..Default::default()
    }
}

/// The configured checks plus the test's own.
fn pipeline(
    loaded: &LoadedConfig,
    services: &Services,
    extra: Vec<Box<dyn Check>>,
) -> Result<Pipeline, Vec<String>> {
    let mut report = BuildReport::default();
    let mut checks = build_checks(&loaded.config, services, &mut report);
    assert!(report.errors.is_empty());
    checks.extend(extra);
    Pipeline::with_checks(loaded, checks)
        .map(|(p, _)| p)
        .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
}

fn def(name: &str) -> SymbolDef {
    SymbolDef::new(name, 0.0, "test", name)
}

/// A waiting check built from a closure over the task and the values of
/// the checks it runs after.
type Body = dyn for<'a> Fn(&'a Task<'_>, Outputs) -> BoxFuture<'a, Output> + Send + Sync;

fn body<F>(f: F) -> Box<Body>
where
    F: for<'a> Fn(&'a Task<'_>, Outputs) -> BoxFuture<'a, Output> + Send + Sync + 'static,
{
    Box::new(f)
}

struct Probe {
    name: &'static str,
    symbols: Vec<&'static str>,
    timeout: Duration,
    timeout_symbol: &'static str,
    after: &'static [&'static str],
    body: Box<Body>,
}

impl Check for Probe {
    fn name(&self) -> &'static str {
        self.name
    }
    fn symbols(&self) -> Vec<SymbolDef> {
        self.symbols.iter().map(|s| def(s)).collect()
    }
    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

impl Waiting for Probe {
    fn timeout(&self) -> Duration {
        self.timeout
    }
    fn timeout_symbol(&self) -> &'static str {
        self.timeout_symbol
    }
    fn after(&self) -> &'static [&'static str] {
        self.after
    }
    fn run<'a>(&'a self, task: &'a Task<'_>, deps: Outputs) -> BoxFuture<'a, Output> {
        (self.body)(task, deps)
    }
}

fn hit(symbol: &str, options: Vec<String>) -> Output {
    let mut r = ScanResults::default();
    r.insert(symbol, options);
    Output::new(r)
}

/// A check that sleeps, then hits `symbol`.
fn sleeper(name: &'static str, symbol: &'static str, sleep: Duration, timeout: Duration) -> Probe {
    Probe {
        name,
        symbols: vec![symbol, "SLEEPER_TIMEOUT"],
        timeout,
        timeout_symbol: "SLEEPER_TIMEOUT",
        after: &[],
        body: body(move |_, _| {
            Box::pin(async move {
                tokio::time::sleep(sleep).await;
                hit(symbol, vec![])
            })
        }),
    }
}

fn has(v: &Verdict, symbol: &str) -> bool {
    v.symbols.contains_key(symbol)
}

/// A name server that reads queries and never answers.
fn silent_dns() -> (std::net::UdpSocket, String) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    (sock, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_waiting_on_a_silent_name_server_gives_its_timeout_symbol() {
    let (_server, addr) = silent_dns();
    let mut dns_config = Config::default().dns;
    dns_config.nameservers = vec![addr];
    dns_config.timeout = Millis(5_000);
    dns_config.attempts = 2;
    let resolver = Arc::new(mxguard_dns::Dns::new(&dns_config).unwrap());
    let services = Services {
        resolver: Some(resolver),
        ..Services::default()
    };
    let dns = services.resolver.clone().unwrap();
    let lookups = Arc::new(AtomicUsize::new(0));
    let started = lookups.clone();
    let probe = Probe {
        name: "dns_probe",
        symbols: vec!["DNS_PROBE_FOUND", "DNS_PROBE_DNSFAIL"],
        timeout: Duration::from_millis(300),
        timeout_symbol: "DNS_PROBE_DNSFAIL",
        after: &[],
        body: body(move |_, _| {
            let (dns, started) = (dns.clone(), started.clone());
            Box::pin(async move {
                started.fetch_add(1, Ordering::SeqCst);
                match dns.a("probe.example.com").await {
                    Ok(_) => hit("DNS_PROBE_FOUND", vec![]),
                    Err(e) => hit("DNS_PROBE_DNSFAIL", vec![e.to_string()]),
                }
            })
        }),
    };
    let l = loaded(30_000);
    let p = pipeline(&l, &services, vec![Box::new(probe)]).unwrap();
    let env = Envelope::default();
    let t = Instant::now();
    let v = p.scan(&env, MSG).await;
    let took = t.elapsed();
    assert_eq!(lookups.load(Ordering::SeqCst), 1, "the lookup was made");
    assert!(has(&v, "DNS_PROBE_DNSFAIL"), "{v:?}");
    assert!(
        v.symbols["DNS_PROBE_DNSFAIL"].options.is_empty(),
        "the time-out, not an answer from the resolver: {v:?}"
    );
    assert!(!has(&v, "DNS_PROBE_FOUND"));
    assert!(has(&v, "SUBJ_HELLO"), "the inline rule stands: {v:?}");
    // The resolver would wait 10 s (5 s x 2 attempts); the check's
    // time-out is 300 ms.
    assert!(took < Duration::from_secs(5), "held for {took:?}");
    assert_eq!(p.check_timeouts(), 1);
}

#[tokio::test]
async fn the_scan_deadline_ends_every_unfinished_check() {
    // Each check may take 10 s; the scan only 200 ms. The dependant never
    // starts and gets its own time-out symbol too.
    let slow = sleeper(
        "slow",
        "SLOW_DONE",
        Duration::from_secs(10),
        Duration::from_secs(10),
    );
    let fast = sleeper(
        "fast",
        "FAST_DONE",
        Duration::from_millis(1),
        Duration::from_secs(10),
    );
    let after_slow = Probe {
        name: "after_slow",
        symbols: vec!["AFTER_DONE", "AFTER_TIMEOUT"],
        timeout: Duration::from_secs(10),
        timeout_symbol: "AFTER_TIMEOUT",
        after: &["slow"],
        body: body(|_, _| Box::pin(async { hit("AFTER_DONE", vec![]) })),
    };
    let l = loaded(200);
    let p = pipeline(
        &l,
        &Services::default(),
        vec![Box::new(slow), Box::new(fast), Box::new(after_slow)],
    )
    .unwrap();
    let env = Envelope::default();
    let t = Instant::now();
    let v = p.scan(&env, MSG).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(has(&v, "FAST_DONE") && has(&v, "SUBJ_HELLO"), "{v:?}");
    assert!(has(&v, "SLEEPER_TIMEOUT") && !has(&v, "SLOW_DONE"), "{v:?}");
    assert!(has(&v, "AFTER_TIMEOUT") && !has(&v, "AFTER_DONE"), "{v:?}");
    assert_eq!(p.check_timeouts(), 2);
}

/// What an SPF-like check hands a DMARC-like one.
#[derive(Debug, PartialEq)]
struct SpfValue {
    pass: bool,
    domain: String,
}

#[tokio::test]
async fn dependants_run_after_their_dependencies_and_read_typed_values() {
    let order = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let o1 = order.clone();
    let spf = Probe {
        name: "spf",
        symbols: vec!["SPF_PASS", "SPF_TIMEOUT"],
        timeout: Duration::from_secs(5),
        timeout_symbol: "SPF_TIMEOUT",
        after: &[],
        body: body(move |task, _| {
            let o1 = o1.clone();
            let domain = task.header_values("from").join("");
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                o1.lock().unwrap().push("spf");
                hit("SPF_PASS", vec![]).with_value(SpfValue { pass: true, domain })
            })
        }),
    };
    let o2 = order.clone();
    let dmarc = Probe {
        name: "dmarc",
        symbols: vec!["DMARC_ALIGNED", "DMARC_NO_SPF", "DMARC_TIMEOUT"],
        timeout: Duration::from_secs(5),
        timeout_symbol: "DMARC_TIMEOUT",
        // `rules` is inline: always done before, only documents the order.
        after: &["spf", "rules"],
        body: body(move |_, deps| {
            let o2 = o2.clone();
            Box::pin(async move {
                o2.lock().unwrap().push("dmarc");
                match deps.get::<SpfValue>("spf") {
                    Some(s) if s.pass => hit("DMARC_ALIGNED", vec![s.domain.clone()]),
                    _ => hit("DMARC_NO_SPF", vec![]),
                }
            })
        }),
    };
    let l = loaded(30_000);
    // The dependant is registered first: the order comes from `after`.
    let p = pipeline(
        &l,
        &Services::default(),
        vec![Box::new(dmarc), Box::new(spf)],
    )
    .unwrap();
    let env = Envelope::default();
    let v = p.scan(&env, MSG).await;
    assert_eq!(*order.lock().unwrap(), ["spf", "dmarc"]);
    assert_eq!(
        v.symbols["DMARC_ALIGNED"].options,
        ["a@example.com"],
        "{v:?}"
    );
    assert!(has(&v, "SPF_PASS") && has(&v, "SUBJ_HELLO"));
}

#[test]
fn a_cycle_an_unknown_dependency_or_an_undeclared_timeout_symbol_is_refused() {
    let l = loaded(30_000);
    let waits_for = |name: &'static str, after: &'static [&'static str]| Probe {
        name,
        symbols: vec!["X_TIMEOUT"],
        timeout: Duration::from_secs(1),
        timeout_symbol: "X_TIMEOUT",
        after,
        body: body(|_, _| Box::pin(async { Output::default() })),
    };
    let e = pipeline(
        &l,
        &Services::default(),
        vec![
            Box::new(waits_for("alpha", &["beta"])),
            Box::new(waits_for("beta", &["alpha"])),
        ],
    )
    .err()
    .unwrap();
    assert!(
        e[0].contains("cycle") && e[0].contains("alpha") && e[0].contains("beta"),
        "{e:?}"
    );

    let e = pipeline(
        &l,
        &Services::default(),
        vec![Box::new(waits_for("dmarc", &["spff"]))],
    )
    .err()
    .unwrap();
    assert!(e[0].contains("`dmarc` runs after `spff`"), "{e:?}");

    let mut undeclared = waits_for("clam", &[]);
    undeclared.timeout_symbol = "CLAM_TIMEOUT";
    let e = pipeline(&l, &Services::default(), vec![Box::new(undeclared)])
        .err()
        .unwrap();
    assert!(
        e[0].contains("`clam`") && e[0].contains("CLAM_TIMEOUT"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_check_panicking_while_polled_or_built_is_caught_and_counted() {
    let polled = Probe {
        name: "panics_polled",
        symbols: vec!["P_TIMEOUT"],
        timeout: Duration::from_secs(5),
        timeout_symbol: "P_TIMEOUT",
        after: &[],
        body: body(|_, _| {
            Box::pin(async {
                tokio::task::yield_now().await;
                let v: Vec<u8> = Vec::new();
                // A bug on hostile input, after an await.
                hit("NEVER", vec![v[3].to_string()])
            })
        }),
    };
    let built = Probe {
        name: "panics_built",
        symbols: vec!["B_TIMEOUT"],
        timeout: Duration::from_secs(5),
        timeout_symbol: "B_TIMEOUT",
        after: &[],
        body: body(|_, _| panic!("while building the future")),
    };
    let ok = sleeper(
        "ok",
        "OK_DONE",
        Duration::from_millis(1),
        Duration::from_secs(5),
    );
    let l = loaded(30_000);
    let p = pipeline(
        &l,
        &Services::default(),
        vec![Box::new(polled), Box::new(built), Box::new(ok)],
    )
    .unwrap();
    let env = Envelope::default();
    let v = p.scan(&env, MSG).await;
    assert!(has(&v, "OK_DONE") && has(&v, "SUBJ_HELLO"), "{v:?}");
    assert!(!has(&v, "P_TIMEOUT") && !has(&v, "B_TIMEOUT"), "{v:?}");
    assert_eq!(p.check_failures(), 2);
    assert_eq!(p.check_timeouts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_scans_with_a_slow_check_all_finish_without_holding_cpu_slots() {
    const SCANS: usize = 1000;
    const CPU_SLOTS: usize = 2;
    // How many scans are inside the slow check at once.
    let waiting = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let w = waiting.clone();
    let slow = Probe {
        name: "slow",
        symbols: vec!["SLOW_DONE", "SLOW_TIMEOUT"],
        timeout: Duration::from_secs(60),
        timeout_symbol: "SLOW_TIMEOUT",
        after: &[],
        body: body(move |_, _| {
            let w = w.clone();
            Box::pin(async move {
                let now = w.0.fetch_add(1, Ordering::SeqCst) + 1;
                w.1.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                w.0.fetch_sub(1, Ordering::SeqCst);
                hit("SLOW_DONE", vec![])
            })
        }),
    };
    let l = loaded(120_000);
    let p = pipeline(&l, &Services::default(), vec![Box::new(slow)]).unwrap();
    let service = Arc::new(ScanService::new(Arc::new(Shared::new(p)), CPU_SLOTS));
    // Every fourth message is big enough to leave the worker for its CPU phase.
    let big: Vec<u8> = [MSG, &b"x".repeat(64 * 1024)[..], b"\r\n"].concat();
    let big = Arc::new(big);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SCANS {
        let (service, big) = (service.clone(), big.clone());
        tasks.spawn(async move {
            let env = Envelope {
                queue_id: Some(format!("Q{i}")),
                ..Envelope::default()
            };
            let raw: &[u8] = if i % 4 == 0 { big.as_slice() } else { MSG };
            let out = service
                .scan_message(ScanInput {
                    envelope: &env,
                    raw,
                    mta_name: Some("mx.test"),
                })
                .await;
            (i, out)
        });
    }
    let mut answered = vec![false; SCANS];
    while let Some(done) = tasks.join_next().await {
        let (i, out) = done.unwrap();
        assert!(has(&out.verdict, "SLOW_DONE"), "{:?}", out.verdict);
        assert!(has(&out.verdict, "SUBJ_HELLO"));
        assert!(
            out.milter
                .add_headers
                .iter()
                .any(|h| h.name == "X-Spamd-Result" && h.value.contains("SLOW_DONE")),
            "{:?}",
            out.milter
        );
        answered[i] = true;
    }
    assert!(answered.iter().all(|a| *a), "every scan answered");
    let peak_cpu = service.cpu_phases().peak();
    assert!(
        (1..=CPU_SLOTS).contains(&peak_cpu),
        "CPU phases at once: {peak_cpu}"
    );
    // Waiting scans are not bounded by the CPU slots: far more than two
    // waited at once (serialised by the slots, that would take 100 s).
    let peak_waiting = waiting.1.load(Ordering::SeqCst);
    assert!(
        peak_waiting > 10 * CPU_SLOTS,
        "waiting at once: {peak_waiting}"
    );
}
