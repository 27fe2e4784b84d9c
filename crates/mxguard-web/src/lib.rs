//! mxguard-web: the HTTP API and the web UI, served by `serve` on
//! `127.0.0.1:11337` by default. The routes and JSON shapes are rspamd's,
//! so `rspamc` and integrations written for rspamd work; the UI is built
//! into the binary (`ui/`), no CDN.
//!
//! - [`config`]: the `[web]` section (listen, the two password hashes,
//!   `secure_ip`, trusted proxies, limits).
//! - [`password`]: argon2id hashes (`mxguard pw`) and their check.
//! - [`access`]: who may do what: client address behind a trusted proxy,
//!   `secure_ip`, the `Password` header, cookie sessions with a CSRF
//!   token, failed-login limits.
//! - [`server`]: the HTTP/1.1 server (hyper) with its bounds, on TCP and on
//!   the unix control socket.
//! - [`api`]: the router and the [`Backend`] the binary hands it; the
//!   routes live in [`scan`], [`status`], [`settings`], [`learn`] and
//!   [`state`].
//! - [`overrides`]: the one file where saved actions and symbol scores
//!   live (`<data_dir>/overrides.toml`).
//! - [`client`]: the blocking client the CLI uses to reach a running
//!   `serve` over the control socket.

pub mod access;
pub mod api;
pub mod client;
pub mod config;
pub mod learn;
pub mod metrics;
pub mod overrides;
pub mod password;
pub mod scan;
pub mod server;
pub mod settings;
pub mod state;
pub mod status;
pub mod ui;

pub use api::{Api, Backend, Ban, Bans, Control};
pub use config::WebConfig;
