//! mxguard-ban: the ban engine (fail2ban's job, inside `serve`).
//!
//! Log sources feed filters; a jail counts an address's failures within
//! `findtime` and, at `maxretry`, bans it for `bantime` through its
//! [`actions`]. Bans, fail counts and ban history live in the store, so a
//! restart re-applies active bans and every host sharing the store
//! enforces them.
//!
//! It must not: ban on text an attacker chose (host capture is anchored,
//! see the filters), or touch a firewall it was not configured to manage.

pub mod actions;
pub mod config;
pub mod engine;
pub mod filter;
pub mod follow;
pub mod host;
pub mod ignore;
pub mod jail;
pub mod journal;
pub mod line;
pub mod pattern;
pub mod tester;
