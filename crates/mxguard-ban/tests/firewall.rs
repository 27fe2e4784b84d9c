//! The firewall actions against real firewalls: nftables, iptables+ipset
//! and ufw, each in its own pair of network namespaces joined by a veth
//! pair with IPv4 and IPv6 addresses. A TCP listener lives in the server
//! namespace, where the action runs its programs (`netns` option, i.e.
//! `ip netns exec`); the client connects from the other. Banned: its
//! connections time out (the SYN is dropped). Unbanned: they work again.
//! Nothing runs in the machine's own namespace but `ip netns` itself.
//!
//! Needs root and network namespaces; skips with a message otherwise. The
//! programs come from `scripts/peers.sh install` (nftables, iptables,
//! ipset, ufw, iproute2).

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mxguard_ban::actions::{self, Action, Ban};

/// The jail's port, and one it does not cover (must stay open).
const JAIL_PORT: u16 = 2525;
const OTHER_PORT: u16 = 2526;
/// Long enough for a veth round trip many times over; a dropped SYN
/// waits the whole time.
const CONNECT_WAIT: Duration = Duration::from_millis(800);

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ))
    }
}

fn have(program: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| PathBuf::from(d).join(program).exists())
}

/// Two namespaces, `<name>-s` (server, firewall) and `<name>-c` (client),
/// joined by a veth pair; deleted on drop.
struct Pair {
    srv: String,
    cli: String,
    srv4: IpAddr,
    cli4: IpAddr,
    srv6: IpAddr,
    cli6: IpAddr,
    stop: Arc<AtomicBool>,
}

impl Pair {
    /// `None` (with the reason printed) when this machine cannot do it.
    fn new(tag: &str, k: u8, programs: &[&str]) -> Option<Pair> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP firewall test {tag}: needs root (network namespaces and firewalls)");
            return None;
        }
        if let Some(p) = programs.iter().find(|p| !have(p)) {
            eprintln!(
                "SKIP firewall test {tag}: `{p}` is not installed; run scripts/peers.sh install"
            );
            return None;
        }
        let name = format!("mxg-{tag}-{}", std::process::id());
        let pair = Pair {
            srv: format!("{name}-s"),
            cli: format!("{name}-c"),
            srv4: format!("10.231.{k}.1").parse().unwrap(),
            cli4: format!("10.231.{k}.2").parse().unwrap(),
            srv6: format!("fd00:231:{k}::1").parse().unwrap(),
            cli6: format!("fd00:231:{k}::2").parse().unwrap(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        if let Err(e) = run(&["ip", "netns", "add", &pair.srv]) {
            eprintln!("SKIP firewall test {tag}: no network namespaces here: {e}");
            return None;
        }
        run(&["ip", "netns", "add", &pair.cli]).unwrap();
        let (s, c) = (pair.srv.as_str(), pair.cli.as_str());
        // Made inside the server namespace, its peer moved to the client's:
        // the root namespace never holds either end.
        run(&[
            "ip", "-n", s, "link", "add", "mxs", "type", "veth", "peer", "name", "mxc", "netns", c,
        ])
        .unwrap();
        for (ns, dev, v4, v6) in [
            (s, "mxs", pair.srv4, pair.srv6),
            (c, "mxc", pair.cli4, pair.cli6),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                dev,
            ])
            .unwrap();
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ])
            .unwrap();
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]).unwrap();
            run(&["ip", "-n", ns, "link", "set", dev, "up"]).unwrap();
        }
        pair.listen();
        Some(pair)
    }

    /// Listeners on both ports and both addresses in the server namespace,
    /// answering `220 ok` to every connection.
    fn listen(&self) {
        let addrs: Vec<SocketAddr> = [self.srv4, self.srv6]
            .into_iter()
            .flat_map(|ip| [JAIL_PORT, OTHER_PORT].map(|p| SocketAddr::new(ip, p)))
            .collect();
        let listeners = in_netns(&self.srv, move || {
            addrs
                .iter()
                .map(|a| TcpListener::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}")))
                .collect::<Vec<_>>()
        });
        for l in listeners {
            let stop = self.stop.clone();
            l.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            use std::io::Write;
                            let _ = s.set_nonblocking(false);
                            let _ = s.write_all(b"220 ok\r\n");
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
    }

    /// What a connection from the client to `ip:port` meets.
    fn reach(&self, ip: IpAddr, port: u16) -> Reach {
        let addr = SocketAddr::new(ip, port);
        in_netns(&self.cli, move || {
            match TcpStream::connect_timeout(&addr, CONNECT_WAIT) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    let mut buf = [0u8; 8];
                    match s.read(&mut buf) {
                        Ok(n) if buf[..n].starts_with(b"220") => Reach::Open,
                        other => Reach::Other(format!("connected, then {other:?}")),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Reach::Dropped,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Reach::Refused,
                Err(e) => Reach::Other(e.to_string()),
            }
        })
    }

    /// Asserts what the client meets on the jail's port over IPv4 and
    /// IPv6, and that the other port stays open.
    #[track_caller]
    fn expect(&self, v4: Reach, v6: Reach, when: &str) {
        assert_eq!(self.reach(self.srv4, JAIL_PORT), v4, "IPv4, {when}");
        assert_eq!(self.reach(self.srv6, JAIL_PORT), v6, "IPv6, {when}");
        assert_eq!(
            self.reach(self.srv4, OTHER_PORT),
            Reach::Open,
            "IPv4 other port, {when}"
        );
    }

    fn in_srv(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec", &self.srv];
        all.extend_from_slice(args);
        run(&all)
    }

    fn options(&self, extra: &str) -> toml::Table {
        format!("port = {JAIL_PORT}\nnetns = \"{}\"\n{extra}", self.srv)
            .parse()
            .unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = run(&["ip", "netns", "del", &self.srv]);
        let _ = run(&["ip", "netns", "del", &self.cli]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.srv));
    }
}

#[derive(Debug, PartialEq)]
enum Reach {
    Open,
    Dropped,
    Refused,
    Other(String),
}
use Reach::{Dropped, Open, Refused};

/// Runs `f` on a thread that joined network namespace `ns` (the namespace
/// is per thread; the test's own threads stay where they are).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns on an open namespace file; it changes only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

fn ban(ip: IpAddr, prefix: u8, secs: Option<u64>) -> Ban {
    Ban {
        addr: ip,
        prefix,
        jail: "fwtest".into(),
        remaining: secs.map(Duration::from_secs),
        ports: vec![JAIL_PORT.to_string()],
        protocol: "tcp".into(),
    }
}

fn host(ip: IpAddr) -> Ban {
    ban(ip, if ip.is_ipv4() { 32 } else { 128 }, Some(3600))
}

/// The steps every firewall kind passes: ban and unban per family,
/// start with active bans, stop.
fn ban_unban_restart_stop(p: &Pair, action: &dyn Action) {
    action.start(&[]).unwrap();
    p.expect(Open, Open, "after start with no bans");

    action.ban(&host(p.cli4)).unwrap();
    p.expect(Dropped, Open, "IPv4 client banned");
    action.ban(&host(p.cli6)).unwrap();
    p.expect(Dropped, Dropped, "both banned");
    // Banning again (a longer ban time, say) is not an error.
    action.ban(&host(p.cli6)).unwrap();
    action.unban(&host(p.cli4)).unwrap();
    p.expect(Open, Dropped, "IPv4 unbanned");
    action.unban(&host(p.cli6)).unwrap();
    p.expect(Open, Open, "both unbanned");
    // Unbanning what is not banned (expired meanwhile) is not an error.
    action.unban(&host(p.cli6)).unwrap();

    // A ban of someone else leaves the client alone.
    action.ban(&host("10.231.250.9".parse().unwrap())).unwrap();
    p.expect(Open, Open, "another address banned");

    // A restart re-applies the store's active bans, and only those.
    action.start(&[host(p.cli6)]).unwrap();
    p.expect(Open, Dropped, "restarted with the IPv6 client banned");
    action.start(&[host(p.cli4), host(p.cli6)]).unwrap();
    p.expect(Dropped, Dropped, "restarted with both banned");

    action.stop().unwrap();
    p.expect(Open, Open, "after stop");
}

/// Asserts the root namespace has no mxguard table: the tests never touch
/// the machine's own firewall.
fn root_firewall_untouched() {
    if let Ok(rules) = run(&["nft", "list", "tables"]) {
        assert!(
            !rules.contains("mxguard"),
            "root namespace has a mxguard table: {rules}"
        );
    }
}

#[test]
fn nftables_drops_banned_clients_over_ipv4_and_ipv6() {
    let Some(p) = Pair::new("nft", 1, &["ip", "nft"]) else {
        return;
    };
    let action = actions::build("nftables", &p.options(""), "fwtest").unwrap();
    ban_unban_restart_stop(&p, action.as_ref());
    let tables = p.in_srv(&["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("mxguard"), "stop left the table: {tables}");

    // Ranges, and addresses inside them.
    action.start(&[]).unwrap();
    let range4 = ban(p.cli4, 24, Some(3600));
    action.ban(&range4).unwrap();
    p.expect(Dropped, Open, "IPv4 /24 banned");
    action.ban(&host(p.cli4)).unwrap();
    action.unban(&host(p.cli4)).unwrap();
    p.expect(
        Dropped,
        Open,
        "the /24 still holds after the address inside it is unbanned",
    );
    action.unban(&range4).unwrap();
    p.expect(Open, Open, "the /24 unbanned");
    // A range replaces the ranges it covers; one inside a banned range
    // adds nothing (nftables refuses overlapping intervals).
    action.ban(&ban(p.cli6, 80, Some(3600))).unwrap();
    let range6 = ban(p.cli6, 64, Some(3600));
    action.ban(&range6).unwrap();
    action.ban(&ban(p.cli6, 96, Some(3600))).unwrap();
    let nets = p
        .in_srv(&["nft", "list", "set", "inet", "mxguard", "fwtest_v6_nets"])
        .unwrap();
    assert!(
        nets.contains("fd00:231:1::/64") && !nets.contains("/80") && !nets.contains("/96"),
        "{nets}"
    );
    p.expect(Open, Dropped, "IPv6 /64 banned");
    action.ban(&host(p.cli6)).unwrap();
    action.unban(&range6).unwrap();
    p.expect(Open, Dropped, "the address ban outlives the range's unban");
    action.unban(&host(p.cli6)).unwrap();
    p.expect(Open, Open, "both unbanned");

    // The kernel lifts a ban on time, without mxguard.
    action.ban(&ban(p.cli4, 32, Some(2))).unwrap();
    p.expect(Dropped, Open, "two-second ban");
    std::thread::sleep(Duration::from_millis(2300));
    p.expect(Open, Open, "two-second ban over");

    // What it made: one table of its own, per-jail sets and chain.
    action.ban(&host(p.cli4)).unwrap();
    let table = p
        .in_srv(&["nft", "list", "table", "inet", "mxguard"])
        .unwrap();
    assert!(table.contains("flags interval,timeout"), "{table}");
    assert!(
        table.contains("ip saddr @fwtest_v4_nets tcp dport 2525 drop"),
        "{table}"
    );
    assert!(table.contains("hook input priority filter - 1"), "{table}");
    assert!(
        table.contains("ip saddr @fwtest_v4 tcp dport 2525 drop"),
        "{table}"
    );
    assert!(table.contains("10.231.1.2 timeout 1h"), "{table}");
    action.stop().unwrap();

    // persist = true: bans outlive mxguard.
    let persistent = actions::build("nftables", &p.options("persist = true"), "fwtest").unwrap();
    persistent.start(&[host(p.cli4)]).unwrap();
    persistent.stop().unwrap();
    p.expect(Dropped, Open, "persisted after stop");
    // A second jail shares the table; stopping one leaves the other.
    let other = actions::build("nftables", &p.options(""), "fwother").unwrap();
    other.start(&[host(p.cli6)]).unwrap();
    p.expect(Dropped, Dropped, "two jails");
    other.stop().unwrap();
    p.expect(
        Dropped,
        Open,
        "the other jail stopped, the persistent one kept",
    );

    // Left-overs with another definition (an older layout, a hand edit)
    // are replaced at start, not an error.
    p.in_srv(&[
        "nft",
        "add set inet mxguard fwold_v6 { type ipv6_addr; flags interval; }",
    ])
    .unwrap();
    let old = actions::build("nftables", &p.options(""), "fwold").unwrap();
    old.start(&[host(p.cli6)]).unwrap();
    p.expect(Dropped, Dropped, "started over a set of another definition");
    old.stop().unwrap();
    p.expect(Dropped, Open, "the persistent jail is still there");

    // reject: refused at once instead of a time-out.
    let reject =
        actions::build("nftables", &p.options("blocktype = \"reject\""), "fwtest").unwrap();
    reject.start(&[host(p.cli6)]).unwrap();
    p.expect(Open, Refused, "rejected");
    reject.stop().unwrap();
    p.expect(Open, Open, "stopped");

    let (_, failed, timed_out) = action.counters().unwrap().snapshot();
    assert_eq!((failed, timed_out), (0, 0));
    root_firewall_untouched();
}

#[test]
fn iptables_and_ipset_drop_banned_clients_over_ipv4_and_ipv6() {
    let Some(p) = Pair::new("ipt", 2, &["ip", "iptables", "ip6tables", "ipset"]) else {
        return;
    };
    let action = actions::build("iptables", &p.options(""), "fwtest").unwrap();
    ban_unban_restart_stop(&p, action.as_ref());
    let sets = p.in_srv(&["ipset", "list", "-n"]).unwrap();
    assert!(sets.trim().is_empty(), "stop left sets: {sets}");
    let rules = p.in_srv(&["iptables", "-S", "INPUT"]).unwrap();
    assert!(!rules.contains("mxguard"), "stop left a rule: {rules}");

    action.start(&[]).unwrap();
    let range = ban(p.cli4, 24, Some(3600));
    action.ban(&range).unwrap();
    action.ban(&host(p.cli4)).unwrap();
    action.unban(&range).unwrap();
    p.expect(Dropped, Open, "the address ban outlives the range's unban");
    action.unban(&host(p.cli4)).unwrap();
    p.expect(Open, Open, "both unbanned");

    action.ban(&ban(p.cli6, 128, Some(2))).unwrap();
    p.expect(Open, Dropped, "two-second ban");
    std::thread::sleep(Duration::from_millis(2300));
    p.expect(Open, Open, "two-second ban over");

    // Longer than ipset's timeout limit (about 24.8 days): no kernel
    // expiry, lifted by the engine's unban.
    action.ban(&ban(p.cli4, 32, Some(90 * 86400))).unwrap();
    let rules = p.in_srv(&["iptables", "-S", "INPUT"]).unwrap();
    assert!(
        rules.contains("-p tcp -m multiport --dports 2525 -m set --match-set mxg-fwtest-4 src -m comment --comment mxguard-fwtest -j DROP"),
        "{rules}"
    );
    p.expect(Dropped, Open, "a 90-day ban");
    let persistent = actions::build("iptables", &p.options("persist = true"), "fwtest").unwrap();
    persistent
        .start(&[ban(p.cli4, 32, Some(90 * 86400))])
        .unwrap();
    persistent.stop().unwrap();
    p.expect(Dropped, Open, "persisted after stop");
    action.stop().unwrap();
    p.expect(Open, Open, "stopped");

    let (_, failed, timed_out) = action.counters().unwrap().snapshot();
    assert_eq!((failed, timed_out), (0, 0));
}

/// ufw in a namespace: `ip netns exec` mounts /etc/netns/<ns>/* over
/// /etc/*, so ufw there reads and writes a copy of /etc/ufw and
/// /etc/default, never the machine's.
#[test]
fn ufw_drops_banned_clients_over_ipv4_and_ipv6() {
    let Some(p) = Pair::new("ufw", 3, &["ip", "ufw", "iptables", "ip6tables"]) else {
        return;
    };
    let etc = PathBuf::from(format!("/etc/netns/{}", p.srv));
    std::fs::create_dir_all(etc.join("default")).unwrap();
    run(&["cp", "-a", "/etc/ufw", etc.join("ufw").to_str().unwrap()]).unwrap();
    run(&[
        "cp",
        "-a",
        "/etc/default/.",
        etc.join("default").to_str().unwrap(),
    ])
    .unwrap();
    // Its sysctl settings would be applied at enable: not needed here.
    std::fs::write(etc.join("ufw/sysctl.conf"), "").unwrap();
    let root_conf = std::fs::read_to_string("/etc/ufw/ufw.conf").unwrap();
    p.in_srv(&["ufw", "default", "allow", "incoming"]).unwrap();
    p.in_srv(&["ufw", "--force", "enable"]).unwrap();
    assert_eq!(
        std::fs::read_to_string("/etc/ufw/ufw.conf").unwrap(),
        root_conf,
        "ufw in the namespace changed the machine's ufw.conf"
    );

    let action = actions::build("ufw", &p.options(""), "fwtest").unwrap();
    ban_unban_restart_stop(&p, action.as_ref());
    let added = p.in_srv(&["ufw", "show", "added"]).unwrap();
    assert!(
        !added.contains("mxguard-fwtest"),
        "stop left rules: {added}"
    );

    // A start drops the rules of bans that ended while mxguard was down.
    action.start(&[host(p.cli4), host(p.cli6)]).unwrap();
    p.expect(Dropped, Dropped, "both banned");
    let started = Instant::now();
    action.start(&[host(p.cli6)]).unwrap();
    eprintln!(
        "ufw: restart with one stale rule took {:?}",
        started.elapsed()
    );
    p.expect(Open, Dropped, "restarted with the IPv4 ban over");
    let added = p.in_srv(&["ufw", "show", "added"]).unwrap();
    assert!(
        added.contains(
            "ufw deny from fd00:231:3::2 to any port 2525 proto tcp comment 'mxguard-fwtest'"
        ),
        "{added}"
    );
    assert!(!added.contains("10.231.3.2"), "{added}");
    let persistent = actions::build("ufw", &p.options("persist = true"), "fwtest").unwrap();
    persistent.start(&[host(p.cli6)]).unwrap();
    persistent.stop().unwrap();
    p.expect(Open, Dropped, "persisted after stop");
    action.stop().unwrap();
    p.expect(Open, Open, "stopped");

    let (_, failed, timed_out) = action.counters().unwrap().snapshot();
    assert_eq!((failed, timed_out), (0, 0));
    assert_eq!(
        std::fs::read_to_string("/etc/ufw/ufw.conf").unwrap(),
        root_conf
    );
}
