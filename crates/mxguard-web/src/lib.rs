//! mxguard-web: the HTTP API and the web UI, served by `serve` on
//! `127.0.0.1:11337` by default. The routes and JSON shapes are rspamd's,
//! so `rspamc` and integrations written for rspamd work; the UI is built
//! into the binary (`ui/`), no CDN.

pub mod ui;
