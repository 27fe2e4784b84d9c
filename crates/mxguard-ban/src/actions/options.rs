//! Reading an action's options table: typed values, unknown keys refused
//! (a misspelt `persit = true` must not silently tear the firewall down at
//! stop), and the keys every firewall kind shares.

use std::time::Duration;

use mxguard_core::config::Millis;

/// Keys [`Common`] reads; each kind adds its own.
pub const COMMON_KEYS: &[&str] = &[
    "port",
    "protocol",
    "blocktype",
    "persist",
    "netns",
    "timeout",
];

/// Where service names (`smtp`, `submission`) are looked up.
const SERVICES: &str = "/etc/services";

/// Refuses keys outside `allowed`, naming them and the keys there are.
pub fn check_keys(table: &toml::Table, allowed: &[&str]) -> Result<(), String> {
    let unknown: Vec<&str> = table
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k) && *k != "kind")
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown key{} {}; the keys are {}",
            if unknown.len() > 1 { "s" } else { "" },
            unknown
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", "),
            allowed.join(", ")
        ))
    }
}

pub fn string(table: &toml::Table, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("`{key}` must be a string, not {}", v.type_str())),
    }
}

pub fn boolean(table: &toml::Table, key: &str, default: bool) -> Result<bool, String> {
    match table.get(key) {
        None => Ok(default),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(v) => Err(format!(
            "`{key}` must be true or false, not {}",
            v.type_str()
        )),
    }
}

pub fn integer(table: &toml::Table, key: &str, default: i64) -> Result<i64, String> {
    match table.get(key) {
        None => Ok(default),
        Some(toml::Value::Integer(i)) => Ok(*i),
        Some(v) => Err(format!("`{key}` must be an integer, not {}", v.type_str())),
    }
}

/// `30` (seconds), `"10s"`, `"500ms"`; zero is refused (every run would
/// be killed at once).
pub fn duration(table: &toml::Table, key: &str, default: Duration) -> Result<Duration, String> {
    let bad = || {
        format!("`{key}` must be a duration like 30 (seconds), \"10s\" or \"500ms\", above zero")
    };
    let d = match table.get(key) {
        None => return Ok(default),
        Some(toml::Value::Integer(i)) if *i > 0 => Duration::from_secs(*i as u64),
        Some(toml::Value::String(s)) => Millis::parse(s).ok_or_else(bad)?.as_duration(),
        Some(_) => return Err(bad()),
    };
    if d.is_zero() { Err(bad()) } else { Ok(d) }
}

/// A command line: an array of arguments as written, or a string split at
/// white space with `'…'` and `"…"` grouping (no escapes, no expansion:
/// nothing here is a shell).
pub fn argv(table: &toml::Table, key: &str) -> Result<Option<Vec<String>>, String> {
    let args: Vec<String> = match table.get(key) {
        None => return Ok(None),
        Some(toml::Value::String(s)) => split_command(s).map_err(|e| format!("`{key}`: {e}"))?,
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "`{key}`: every argument must be a string, not {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(format!(
                "`{key}` must be a command line (a string or an array of strings), not {}",
                v.type_str()
            ));
        }
    };
    if args.first().is_none_or(|a: &String| a.is_empty()) {
        return Err(format!(
            "`{key}` is empty; write the program and its arguments"
        ));
    }
    Ok(Some(args))
}

fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("the quote {q} is not closed"));
    }
    if in_arg {
        args.push(cur);
    }
    Ok(args)
}

/// Jail names become nftables set and chain names and ipset names (at
/// most 31 bytes with `mxg-` and `-6`), so they are kept to letters,
/// digits, `-` and `_`.
pub fn check_jail_name(jail: &str) -> Result<(), String> {
    let ok = !jail.is_empty()
        && jail.len() <= 25
        && jail.starts_with(|c: char| c.is_ascii_alphanumeric())
        && jail
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "jail name `{jail}` cannot name a firewall set: use 1 to 25 letters, digits, `-` or `_`, starting with a letter or digit"
        ))
    }
}

/// A destination port or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    One(u16),
    Range(u16, u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    /// Every protocol; only without ports.
    All,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::All => "all",
        }
    }
}

/// What a matching packet meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Silently dropped: the client waits for its time-out.
    Drop,
    /// Refused at once (TCP reset, ICMP port unreachable otherwise).
    Reject,
}

/// The options every firewall kind shares.
#[derive(Debug, Clone)]
pub struct Common {
    /// Empty: every port.
    pub ports: Vec<Port>,
    pub protocol: Protocol,
    pub block: Block,
    /// Leave the firewall objects and bans in place at stop.
    pub persist: bool,
    /// Run the firewall programs inside this network namespace
    /// (`ip netns exec`): for services living in one, and for the tests.
    pub netns: Option<String>,
    /// Time limit of each program run.
    pub timeout: Duration,
}

impl Common {
    pub fn from_options(table: &toml::Table) -> Result<Common, String> {
        let protocol = match string(table, "protocol")?.as_deref() {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("all") => Protocol::All,
            Some(other) => {
                return Err(format!(
                    "`protocol = \"{other}\"`: write \"tcp\", \"udp\" or \"all\""
                ));
            }
        };
        let ports = match table.get("port") {
            None => Vec::new(),
            Some(v) => parse_ports(v, protocol)?,
        };
        if protocol == Protocol::All && !ports.is_empty() {
            return Err(
                "`port` needs `protocol = \"tcp\"` or `\"udp\"`: ports of \"all\" protocols mean nothing"
                    .into(),
            );
        }
        let block = match string(table, "blocktype")?.as_deref() {
            None | Some("drop") => Block::Drop,
            Some("reject") => Block::Reject,
            Some(other) => {
                return Err(format!(
                    "`blocktype = \"{other}\"`: write \"drop\" or \"reject\""
                ));
            }
        };
        let netns = string(table, "netns")?;
        if let Some(ns) = &netns {
            let ok = !ns.is_empty()
                && ns.len() <= 64
                && ns.starts_with(|c: char| c.is_ascii_alphanumeric())
                && ns
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !ok {
                return Err(format!(
                    "`netns = \"{ns}\"` is not a network namespace name (letters, digits, `-`, `_`, `.`)"
                ));
            }
        }
        Ok(Common {
            ports,
            protocol,
            block,
            persist: boolean(table, "persist", false)?,
            netns,
            timeout: duration(table, "timeout", Duration::from_secs(30))?,
        })
    }
}

/// `"smtp,submission,1000:1010"`, `["smtp", 465]`, `25`, or `"all"`
/// (every port, as is leaving `port` out).
fn parse_ports(v: &toml::Value, protocol: Protocol) -> Result<Vec<Port>, String> {
    let words: Vec<String> = match v {
        toml::Value::String(s) => s.split(',').map(|w| w.trim().to_string()).collect(),
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.trim().to_string()),
                toml::Value::Integer(n) => Ok(n.to_string()),
                other => Err(format!(
                    "`port`: each port must be a number or a service name, not {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "`port` must be like \"smtp,submission\" or [25, 587], not {}",
                other.type_str()
            ));
        }
    };
    if words.len() == 1 && matches!(words[0].as_str(), "all" | "any" | "0:65535" | "1:65535") {
        return Ok(Vec::new());
    }
    let services = std::fs::read_to_string(SERVICES).unwrap_or_default();
    let mut ports = Vec::new();
    for w in words {
        if w.is_empty() {
            return Err("`port` has an empty entry; write ports separated by commas".into());
        }
        // `a-b` is a range only between numbers: service names hold dashes.
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let range = w
            .split_once(':')
            .or_else(|| w.split_once('-').filter(|(a, b)| digits(a) && digits(b)));
        let port = match range {
            Some((a, b)) => {
                let (a, b) = (
                    one_port(a, &services, protocol)?,
                    one_port(b, &services, protocol)?,
                );
                if a > b {
                    return Err(format!("`port`: range {w} runs backwards; write {b}:{a}"));
                }
                Port::Range(a, b)
            }
            None => Port::One(one_port(&w, &services, protocol)?),
        };
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    Ok(ports)
}

fn one_port(w: &str, services: &str, protocol: Protocol) -> Result<u16, String> {
    if w.bytes().all(|b| b.is_ascii_digit()) {
        return match w.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("`port`: {w} is not a port (1 to 65535)")),
        };
    }
    let proto = match protocol {
        Protocol::Udp => "udp",
        _ => "tcp",
    };
    service_port(services, w, proto).ok_or_else(|| {
        format!("`port`: no {proto} service `{w}` in {SERVICES}; write its number instead")
    })
}

/// The port of a service name or alias in an /etc/services text.
fn service_port(services: &str, name: &str, proto: &str) -> Option<u16> {
    services.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut f = line.split_whitespace();
        let primary = f.next()?;
        let (port, p) = f.next()?.split_once('/')?;
        (p == proto && (primary == name || f.any(|alias| alias == name)))
            .then(|| port.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn ports_parse_from_strings_numbers_arrays_and_services() {
        let services = "smtp\t\t25/tcp\t\tmail\nsubmission\t587/tcp\n# x\n";
        assert_eq!(service_port(services, "mail", "tcp"), Some(25));
        assert_eq!(service_port(services, "submission", "udp"), None);
        let c = Common::from_options(&table("port = \"25, 1000:1010,25\"")).unwrap();
        assert_eq!(c.ports, vec![Port::One(25), Port::Range(1000, 1010)]);
        let c = Common::from_options(&table("port = [465, \"587\"]")).unwrap();
        assert_eq!(c.ports, vec![Port::One(465), Port::One(587)]);
        let c = Common::from_options(&table("port = \"all\"")).unwrap();
        assert!(c.ports.is_empty());
        for bad in [
            "port = \"0\"",
            "port = \"70000\"",
            "port = \"10:5\"",
            "port = \"no-such-service-here\"",
            "port = \"25,\"",
            "port = true",
            "port = 25\nprotocol = \"all\"",
            "protocol = \"icmp\"",
            "blocktype = \"tarpit\"",
            "netns = \"a b\"",
            "timeout = 0",
            "persist = \"yes\"",
        ] {
            let e = Common::from_options(&table(bad)).err();
            assert!(e.is_some(), "{bad} was accepted");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = check_keys(&table("persit = true"), COMMON_KEYS).unwrap_err();
        assert!(e.contains("`persit`") && e.contains("persist"), "{e}");
        assert!(check_keys(&table("kind = \"nftables\"\npersist = true"), COMMON_KEYS).is_ok());
    }

    #[test]
    fn command_lines_split_without_a_shell() {
        let t = table(r#"a = "notify --ip <ip> 'two words' \"x y\"z $HOME;rm""#);
        assert_eq!(
            argv(&t, "a").unwrap().unwrap(),
            ["notify", "--ip", "<ip>", "two words", "x yz", "$HOME;rm"]
        );
        assert!(argv(&table("a = \"x 'open\""), "a").is_err());
        assert!(argv(&table("a = \"  \""), "a").is_err());
        assert!(argv(&table("a = [\"x\", 1]"), "a").is_err());
    }

    #[test]
    fn jail_names_must_fit_firewall_names() {
        assert!(check_jail_name("postfix-flood-attack").is_ok());
        assert!(check_jail_name("sshd_2").is_ok());
        for bad in ["", "-x", "a b", "a;b", "x".repeat(26).as_str(), "é"] {
            assert!(check_jail_name(bad).is_err(), "{bad}");
        }
    }
}
