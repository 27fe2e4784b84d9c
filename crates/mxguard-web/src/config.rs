//! `[web]`: the HTTP API's listener, its two passwords and its bounds.

use mxguard_core::config::{ByteSize, Problems, Seconds, Section};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// rspamd's controller is on 11334; mxguard takes the next free port after
/// its milter (11336), so both can run side by side.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11337";
/// The control socket's default: `control.sock` in `[store] data_dir`.
pub const DEFAULT_CONTROL_SOCKET: &str = "control.sock";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the API and the UI from `mxguard serve`.
    pub enabled: bool,
    /// `host:port`, or an absolute path for a unix socket.
    pub listen: String,
    /// argon2id hash (`mxguard pw`) of the read password: every read route.
    /// Empty: reads need no password.
    pub password: String,
    /// argon2id hash of the admin password: every route, writes included.
    /// Empty: `password` (if set) grants writes too, as in rspamd.
    pub enable_password: String,
    /// Networks whose clients skip the password (full access). Empty by
    /// default: a reverse proxy on this host would otherwise make every
    /// visitor an admin.
    pub secure_ip: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed: the client is the
    /// address the last trusted proxy saw.
    pub trusted_proxies: Vec<String>,
    /// The unix control socket the CLI uses while `serve` runs (mode 0600:
    /// whoever may open it is admin); relative to `[store] data_dir`;
    /// empty: none.
    pub control_socket: String,
    /// Largest request body (a message to scan or learn, a map file).
    pub max_body: ByteSize,
    /// Most header fields in a request.
    pub max_headers: usize,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Longest a request may take to arrive (header and body).
    pub request_timeout: Seconds,
    /// Failed logins per client within `login_window` before it gets 429.
    pub max_login_failures: u32,
    pub login_window: Seconds,
    /// How long a browser session (cookie) lives.
    pub session_lifetime: Seconds,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: DEFAULT_LISTEN.to_string(),
            password: String::new(),
            enable_password: String::new(),
            secure_ip: Vec::new(),
            trusted_proxies: Vec::new(),
            control_socket: DEFAULT_CONTROL_SOCKET.to_string(),
            max_body: ByteSize(50 << 20),
            max_headers: 100,
            max_connections: 256,
            request_timeout: Seconds(60),
            max_login_failures: 5,
            login_window: Seconds(60),
            session_lifetime: Seconds(12 * 3600),
        }
    }
}

impl WebConfig {
    /// Whether the listener can be reached from this host only.
    pub fn listens_locally(&self) -> bool {
        if self.listen.starts_with('/') {
            return true;
        }
        self.listen
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback())
    }

    /// Whether any password is set.
    pub fn has_password(&self) -> bool {
        !self.password.is_empty() || !self.enable_password.is_empty()
    }

    /// The control socket's path, or `None` when disabled.
    pub fn control_socket_path(&self, data_dir: &Path) -> Option<PathBuf> {
        if self.control_socket.is_empty() {
            return None;
        }
        let p = Path::new(&self.control_socket);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        })
    }
}

impl Section for WebConfig {
    const KEY: &'static str = "web";

    fn validate(&self, problems: &mut Problems) {
        if !self.listen.starts_with('/') && self.listen.parse::<SocketAddr>().is_err() {
            problems.at(
                "listen",
                format!(
                    "`{}` is not an address: write ip:port like 127.0.0.1:11337 or [::1]:11337, or an absolute unix socket path",
                    self.listen
                ),
            );
        }
        for (key, hash) in [
            ("password", &self.password),
            ("enable_password", &self.enable_password),
        ] {
            if !hash.is_empty()
                && let Err(e) = crate::password::check_hash(hash)
            {
                problems.at(key, e);
            }
        }
        if self.enabled && !self.has_password() && !self.listens_locally() {
            problems.at(
                "listen",
                format!(
                    "{} can be reached from other hosts and no password is set: set password and enable_password (hashes from `mxguard pw`) or listen on 127.0.0.1",
                    self.listen
                ),
            );
        }
        for (key, list) in [
            ("secure_ip", &self.secure_ip),
            ("trusted_proxies", &self.trusted_proxies),
        ] {
            for (i, n) in list.iter().enumerate() {
                if let Err(e) = mxguard_core::iptable::parse_network(n) {
                    problems.at(format!("{key}[{i}]"), e);
                }
            }
        }
        if self.max_body.0 < 1024 {
            problems.at("max_body", "at least 1K: a message must fit");
        }
        if !(8..=10_000).contains(&self.max_headers) {
            problems.at("max_headers", "between 8 and 10000 header fields");
        }
        if self.max_connections == 0 {
            problems.at("max_connections", "at least 1");
        }
        if self.request_timeout.0 == 0 {
            problems.at("request_timeout", "at least 1 second");
        }
        if self.max_login_failures == 0 {
            problems.at("max_login_failures", "at least 1");
        }
        if self.login_window.0 == 0 {
            problems.at("login_window", "at least 1 second");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &WebConfig) -> Vec<String> {
        let mut p = Problems::of("web");
        c.validate(&mut p);
        p.into_vec()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn defaults_are_valid_and_local() {
        let c = WebConfig::default();
        assert!(c.listens_locally());
        assert!(problems(&c).is_empty(), "{:?}", problems(&c));
    }

    #[test]
    fn open_listen_without_password_is_refused() {
        let c = WebConfig {
            listen: "0.0.0.0:11337".into(),
            ..WebConfig::default()
        };
        let p = problems(&c);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("no password is set"), "{p:?}");
        let with = WebConfig {
            password: crate::password::hash("x").unwrap(),
            ..c
        };
        assert!(problems(&with).is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let c = WebConfig {
            listen: "localhost".into(),
            password: "plain".into(),
            secure_ip: vec!["10.0.0.0/33".into()],
            ..WebConfig::default()
        };
        let p = problems(&c);
        assert!(p.iter().any(|m| m.starts_with("listen:")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("password:")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("secure_ip[0]:")), "{p:?}");
    }
}
