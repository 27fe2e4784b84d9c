//! The Postfix policy protocol and the restriction engine behind it: the
//! input is the byte stream of one connection, cut into lines as the server
//! cuts it; every finished request is decided by an engine with access
//! maps, HELO and sender checks, rate limits and greylisting (no DNS).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_fuzz::MemoryStore;
use mxguard_policy::engine::Engine;
use mxguard_policy::protocol::RequestBuilder;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

struct World {
    runtime: tokio::runtime::Runtime,
    engine: Engine,
    store: Arc<MemoryStore>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mxguard-fuzz-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let client = write("client", "192.0.2.0/24 REJECT listed\n10.1 OK\n[2001:db8::]/32 DUNNO\n");
        let helo = write("helo", "bad.example REJECT\n.example.net DEFER_IF_PERMIT try later\n");
        let sender = write("sender", "spam@example.com REJECT\nexample.org OK\nuser@ DISCARD\n");
        let recipient = write("recipient", "postmaster@ OK\n/^abuse@/ REJECT\n");
        let wl = write("whitelist_clients", "# comment\n.example.com\n/^mail\\d+\\./\n198.51.100.0/24\n");
        let wlr = write("whitelist_recipients", "postmaster@\nabuse@example.org\n");
        let config = format!(
            "[policy.restrictions]\n\
             client = [\"check_client_access {client}\", \"rate_limit client_ip 1000/1m DEFER\"]\n\
             helo = [\"reject_invalid_helo_hostname\", \"reject_non_fqdn_helo_hostname\", \"check_helo_access {helo}\"]\n\
             sender = [\"reject_non_fqdn_sender\", \"check_sender_access {sender}\", \"rate_limit sender 1000/1h REJECT slow\"]\n\
             recipient = [\"reject_banned_client\", \"check_recipient_access {recipient}\", \"permit_sasl_authenticated\", \"greylist\"]\n\
             [greylist]\ndelay = 0\nwhitelist_clients = [\"{wl}\"]\nwhitelist_recipients = [\"{wlr}\"]\n"
        );
        let loaded = mxguard_core::config::LoadedConfig {
            config: mxguard_core::config::load_str(&config, "fuzz.toml", &mxguard_scan::sections()).expect("fuzz config"),
            ..Default::default()
        };
        let store = Arc::new(MemoryStore::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let engine = {
            let _guard = runtime.enter();
            Engine::new(&loaded, store.clone(), None).expect("fuzz engine").0
        };
        World { runtime, engine, store }
    })
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let w = world();
    if RUNS.fetch_add(1, Ordering::Relaxed) % 10_000 == 0 {
        w.store.clear();
    }
    let mut builder = RequestBuilder::default();
    w.runtime.block_on(async {
        for line in data.split(|&b| b == b'\n') {
            match builder.line(line) {
                Ok(Some(request)) => {
                    let answer = w.engine.decide(&request).await;
                    let block = mxguard_policy::protocol::answer(&answer);
                    assert!(block.ends_with("\n\n"));
                    assert_eq!(block.matches('\n').count(), 2, "{block:?}");
                }
                Ok(None) => {}
                // The server closes the connection here.
                Err(_) => break,
            }
        }
        // Let write-behind tasks finish so they do not pile up across inputs.
        tokio::task::yield_now().await;
    });
});
