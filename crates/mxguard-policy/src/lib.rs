//! mxguard-policy: the Postfix policy delegation server.
//!
//! It owns the policy protocol, the per-stage restriction lists in Postfix's
//! vocabulary (access maps, client/HELO/sender checks, DNS lists, tarpit,
//! rate limits), and postgrey-compatible greylisting. State (greylist
//! triplets, counters) lives in the Store; it never parses message content.

pub mod access;
pub mod engine;
pub mod greylist;
pub mod protocol;
pub mod server;
pub mod whitelist;
