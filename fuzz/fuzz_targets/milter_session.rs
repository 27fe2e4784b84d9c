//! A whole milter session: the input is what the MTA side writes on the
//! socket (negotiation, macros, envelope, headers, body chunks, end of
//! message, abort, quit, in any order and any framing), answered by the
//! server's session code over the scan service. The MTA side reads every
//! reply; the session must end when the input ends, without a panic, hang
//! or memory blow-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_core::shared::Shared;
use mxguard_milter::Scanner;
use mxguard_scan::{Pipeline, ScanService};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    runtime: tokio::runtime::Runtime,
    scanner: Arc<dyn Scanner>,
    config: Arc<Shared<mxguard_core::config::MilterConfig>>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = mxguard_core::config::load_str(
            "[milter]\nmax_message_size = \"256K\"\n[[rules]]\nname = \"FUZZ\"\ntarget = \"subject\"\npattern = \"spam\"\nscore = 20\n",
            "fuzz.toml",
            &mxguard_scan::sections(),
        )
        .expect("fuzz config");
        let milter = config.milter.clone();
        let (pipeline, _) = Pipeline::from_config(config).expect("fuzz pipeline");
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            scanner: Arc::new(ScanService::new(Arc::new(Shared::new(pipeline)), 1)),
            config: Arc::new(Shared::new(milter)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.runtime.block_on(async {
        let (mta, server) = tokio::io::duplex(1 << 16);
        let (mut from_milter, mut to_milter) = tokio::io::split(mta);
        let session = mxguard_milter::server::serve_connection(
            server,
            "fuzz",
            w.scanner.clone(),
            w.config.clone(),
        );
        let write = async move {
            // The server may stop reading (a malformed packet ends the
            // session): a failed write is the MTA seeing the close.
            let _ = to_milter.write_all(data).await;
            let _ = to_milter.shutdown().await;
        };
        let read = async move {
            let mut sink = Vec::new();
            let _ = from_milter.read_to_end(&mut sink).await;
        };
        tokio::join!(session, write, read);
    });
});
