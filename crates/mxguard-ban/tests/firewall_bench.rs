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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
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
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            action.start(&active).unwrap();
            times.push(t.elapsed());
        }
        let count = if kind == "nftables" {
            let a = run(&[
                "ip", "netns", "exec", &ns, "nft", "list", "set", "inet", "mxguard", "bench_v4",
            ]);
            let b = run(&[
                "ip", "netns", "exec", &ns, "nft", "list", "set", "inet", "mxguard", "bench_v6",
            ]);
            (a + &b).matches(" timeout ").count()
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
            "  mxguard {kind:9} start (one batch):        {:>9.3} s",
            median(times).as_secs_f64()
        );
        action.stop().unwrap();
    }

    // fail2ban's way: one process per ban, in the namespace (no
    // `ip netns exec` per call, so only the firewall program is counted).
    let per_ban = in_netns(&ns, move || {
        let nets: Vec<String> = active
            .iter()
            .map(|b| {
                let full = if b.addr.is_ipv4() { 32 } else { 128 };
                if b.prefix == full {
                    b.addr.to_string()
                } else {
                    format!("{}/{}", b.addr, b.prefix)
                }
            })
            .collect();
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
            "nft add table inet f2b && nft add set inet f2b v4 '{ type ipv4_addr; flags interval,timeout; }' && nft add set inet f2b v6 '{ type ipv6_addr; flags interval,timeout; }'",
        );
        let t = Instant::now();
        for (net, b) in nets.iter().zip(&active) {
            let set = if b.addr.is_ipv4() { "v4" } else { "v6" };
            let ok = Command::new("nft")
                .args([
                    "add",
                    "element",
                    "inet",
                    "f2b",
                    set,
                    &format!("{{ {net} timeout 3600s }}"),
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok, "nft add element {net}");
        }
        let nft = t.elapsed();
        sh(
            "ipset create f2b4 hash:net timeout 0 && ipset create f2b6 hash:net family inet6 timeout 0",
        );
        let t = Instant::now();
        for (net, b) in nets.iter().zip(&active) {
            let set = if b.addr.is_ipv4() { "f2b4" } else { "f2b6" };
            let ok = Command::new("ipset")
                .args(["add", set, net, "timeout", "3600"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "ipset add {net}");
        }
        (nft, t.elapsed())
    });
    println!(
        "  one `nft add element` per ban (fail2ban):   {:>9.3} s",
        per_ban.0.as_secs_f64()
    );
    println!(
        "  one `ipset add` per ban (fail2ban):         {:>9.3} s",
        per_ban.1.as_secs_f64()
    );
}
