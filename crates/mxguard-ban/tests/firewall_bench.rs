//! Benchmark driver, not a test (ignored; run by bench/ban-actions.sh):
//! how long `start` takes to apply BANS active bans (default 10,000, one
//! in ten IPv6, one in a hundred a /24) in a network namespace, against
//! the way fail2ban restores bans: one `nft add element` (or `ipset add`)
//! process per ban. Prints figures; asserts only that every ban landed.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mxguard_ban::actions::{self, Ban};

fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn bans(n: usize) -> Vec<Ban> {
    (0..n)
        .map(|i| {
            let (addr, prefix): (IpAddr, u8) = if i % 10 == 9 {
                (
                    format!("2001:db8:{:x}::{:x}", i / 65536, i % 65536)
                        .parse()
                        .unwrap(),
                    128,
                )
            } else if i % 100 == 50 {
                (
                    format!("100.{}.{}.0", 64 + (i / 256) % 64, i % 256)
                        .parse()
                        .unwrap(),
                    24,
                )
            } else {
                let k = i as u32 + (11 << 24);
                (IpAddr::V4(k.into()), 32)
            };
            Ban {
                addr,
                prefix,
                jail: "bench".into(),
                remaining: Some(Duration::from_secs(3600 + i as u64 % 600)),
                ports: vec![],
                protocol: "tcp".into(),
            }
        })
        .collect()
}

/// Runs `f` in a thread inside namespace `ns`; programs it starts run there too.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap();
        // SAFETY: setns on an open namespace file; it changes only this thread.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        f()
    })
    .join()
    .unwrap()
}

/// CPU time of this process's finished children (the firewall programs):
/// on a busy machine wall time also counts waiting for a core.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut r) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(r.ru_utime) + tv(r.ru_stime)
}

/// Wall and children's CPU time of `f`.
fn measure(f: impl FnOnce()) -> (Duration, Duration) {
    let (wall, cpu) = (Instant::now(), children_cpu());
    f();
    (wall.elapsed(), children_cpu() - cpu)
}

fn show((wall, cpu): (Duration, Duration), per: usize) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / per as f64;
    format!("{:>9.1} ms wall, {:>8.1} ms CPU", ms(wall), ms(cpu))
}

#[test]
#[ignore = "benchmark: run by bench/ban-actions.sh as root"]
fn start_with_many_active_bans() {
    let n: usize = std::env::var("BANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let ns = format!("mxg-bench-{}", std::process::id());
    run(&["ip", "netns", "add", &ns]);
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());
    let active = bans(n);
    let options: toml::Table = format!("port = \"25,587\"\nnetns = \"{ns}\"")
        .parse()
        .unwrap();
    println!(
        "{n} active bans ({} IPv6, {} /24), median of {runs} runs:",
        n / 10,
        n / 100
    );

    for kind in ["nftables", "iptables"] {
        let action = actions::build(kind, &options, "bench").unwrap();
        let mut times: Vec<_> = (0..runs)
            .map(|_| measure(|| action.start(&active).unwrap()))
            .collect();
        times.sort();
        let count = if kind == "nftables" {
            run(&[
                "ip", "netns", "exec", &ns, "nft", "list", "table", "inet", "mxguard",
            ])
            .matches(" timeout ")
            .count()
        } else {
            ["mxg-bench-4", "mxg-bench-6"]
                .iter()
                .map(|set| {
                    let list = run(&["ip", "netns", "exec", &ns, "ipset", "list", "-t", set]);
                    list.lines()
                        .find_map(|l| l.strip_prefix("Number of entries: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap()
                })
                .sum()
        };
        assert_eq!(count, n, "{kind}: every ban in the set");
        println!(
            "  mxguard {kind:9} start, one batch ({n} bans):  {}",
            show(times[runs / 2], 1)
        );
        // New bans on top of them: what the engine pays per ban.
        let extra: Vec<Ban> = (0..50u32)
            .map(|i| Ban {
                addr: IpAddr::V4(((198u32 << 24) | (18 << 16) | i).into()),
                prefix: 32,
                ..active[0].clone()
            })
            .collect();
        let took = measure(|| extra.iter().for_each(|b| action.ban(b).unwrap()));
        println!(
            "  mxguard {kind:9} ban() with {n} in the set:   {} per ban",
            show(took, extra.len())
        );
        action.stop().unwrap();
    }

    // fail2ban 1.0.2's way (action.d/nftables.conf, iptables-ipset.conf):
    // one shell command per ban (fail2ban runs actions with a shell), plain
    // sets without timeouts (`{ type ipv4_addr; }`, `hash:ip`), addresses
    // only (those sets take no ranges). Run inside the namespace (no
    // `ip netns exec` per call). PER_BAN limits it to the first bans.
    let per_ban_n: usize = std::env::var("PER_BAN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
        .min(n);
    let hosts: Vec<IpAddr> = active
        .iter()
        .filter(|b| b.prefix == if b.addr.is_ipv4() { 32 } else { 128 })
        .map(|b| b.addr)
        .take(per_ban_n)
        .collect();
    let count = hosts.len();
    let per_ban = in_netns(&ns, move || {
        let sh = |script: &str| {
            let ok = Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            assert!(ok, "{script}");
        };
        sh(
            "nft add table inet f2b-table && nft add set inet f2b-table addr-set-v4 \\{ type ipv4_addr\\; \\} && nft add set inet f2b-table addr-set-v6 \\{ type ipv6_addr\\; \\}",
        );
        let nft = measure(|| {
            for ip in &hosts {
                let set = if ip.is_ipv4() {
                    "addr-set-v4"
                } else {
                    "addr-set-v6"
                };
                sh(&format!(
                    "nft add element inet f2b-table {set} \\{{ {ip} \\}}"
                ));
            }
        });
        sh(
            "ipset -exist create f2b-4 hash:ip timeout 0 family inet && ipset -exist create f2b-6 hash:ip timeout 0 family inet6",
        );
        let ipset = measure(|| {
            for ip in &hosts {
                let set = if ip.is_ipv4() { "f2b-4" } else { "f2b-6" };
                sh(&format!("ipset -exist add {set} {ip} timeout 3600"));
            }
        });
        (nft, ipset)
    });
    println!(
        "  fail2ban nft add element, one per ban ({count}):   {}",
        show(per_ban.0, 1)
    );
    println!(
        "  fail2ban ipset add, one per ban ({count}):         {}",
        show(per_ban.1, 1)
    );
}
