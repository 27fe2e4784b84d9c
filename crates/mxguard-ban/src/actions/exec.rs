//! Running a firewall program or a command: no shell, a time limit that
//! kills the whole process group, bounded output capture (a program that
//! prints without end must not fill our memory), and stdin written from
//! its own thread so a large `nft -f -` batch cannot deadlock on a full
//! pipe.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ActionCounters, ActionError};

/// Bytes kept of each of stdout and stderr.
const CAPTURE_LIMIT: usize = 64 * 1024;
/// How long output is still read after the program exits (a background
/// child it left may hold the pipe open for ever).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Where programs are looked for besides `PATH`: daemons often run with a
/// PATH that lacks the sbin directories the firewall tools live in.
const SBIN: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// `name` as given when it holds a `/`, else the first executable of that
/// name on `PATH` or in the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a finished program left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The first lines of stderr (or stdout when stderr is empty), for
    /// error messages.
    pub fn excerpt(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(6)
            .collect();
        if lines.is_empty() {
            "no output".into()
        } else {
            lines.join(" | ")
        }
    }
}

/// A program run the same way every time: through `ip netns exec` when a
/// namespace is configured, in the C locale (so messages we recognise are
/// in English), within a time limit.
#[derive(Debug, Clone)]
pub struct Tool {
    /// What error messages call it (`nft`, `ipset`, …).
    pub name: String,
    /// The program and the arguments put before each call's own.
    prefix: Vec<String>,
    timeout: Duration,
    c_locale: bool,
}

impl Tool {
    /// Finds `program` (a name or a path), or says which package provides it.
    pub fn new(
        program: &str,
        package: &str,
        netns: Option<&str>,
        timeout: Duration,
    ) -> Result<Tool, String> {
        let path = find_program(program).ok_or_else(|| {
            format!(
                "`{program}` was not found on PATH or in /usr/sbin; install the {package} package (apt-get install {package})"
            )
        })?;
        let mut prefix = Vec::new();
        if let Some(ns) = netns {
            let ip = find_program("ip").ok_or(
                "`netns` needs the `ip` program, which was not found; install iproute2 (apt-get install iproute2)",
            )?;
            prefix.extend([
                ip.display().to_string(),
                "netns".into(),
                "exec".into(),
                ns.into(),
            ]);
        }
        prefix.push(path.display().to_string());
        Ok(Tool {
            name: program.rsplit('/').next().unwrap_or(program).to_string(),
            prefix,
            timeout,
            c_locale: true,
        })
    }

    /// A command as configured: the user's program, their environment.
    pub fn command(argv0: &str, timeout: Duration) -> Result<Tool, String> {
        let path = find_program(argv0).ok_or_else(|| {
            format!("program `{argv0}` was not found (looked on PATH and in /usr/sbin); write its full path")
        })?;
        Ok(Tool {
            name: argv0.to_string(),
            prefix: vec![path.display().to_string()],
            timeout,
            c_locale: false,
        })
    }

    /// Runs with `args`; `Err` only when it could not run or ran out of
    /// time (counted in `counters.timed_out`). A non-zero exit is an `Ok`
    /// for the caller to judge.
    pub fn run(
        &self,
        args: &[String],
        stdin: Option<Vec<u8>>,
        counters: &ActionCounters,
    ) -> Result<Output, ActionError> {
        let shown = || {
            let mut s = self.name.clone();
            for a in args.iter().take(8) {
                s.push(' ');
                s.push_str(a);
            }
            if args.len() > 8 {
                s.push_str(" …");
            }
            s
        };
        let mut cmd = Command::new(&self.prefix[0]);
        cmd.args(&self.prefix[1..])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so the time limit kills what it started too.
            .process_group(0);
        if self.c_locale {
            cmd.env("LC_ALL", "C");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ActionError(format!("`{}` could not be started: {e}", shown())))?;
        if let (Some(mut pipe), Some(data)) = (child.stdin.take(), stdin) {
            std::thread::spawn(move || {
                // A program that exits early closes the pipe; its exit status says why.
                let _ = pipe.write_all(&data);
            });
        }
        let (tx, rx) = mpsc::channel();
        for (stream, is_err) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                false,
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                true,
            ),
        ] {
            let Some(mut stream) = stream else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let room = CAPTURE_LIMIT.saturating_sub(kept.len());
                            kept.extend_from_slice(&buf[..n.min(room)]);
                        }
                    }
                }
                let _ = tx.send((is_err, kept));
            });
        }
        drop(tx);
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => {
                    kill_group(child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    counters.timed_out.fetch_add(1, Ordering::Relaxed);
                    return Err(ActionError(format!(
                        "`{}` did not finish within {:?} and was killed; check that it does not wait for input, or raise `timeout`",
                        shown(),
                        self.timeout
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => {
                    return Err(ActionError(format!("waiting for `{}`: {e}", shown())));
                }
            }
        };
        let mut out = Output {
            status,
            stdout: String::new(),
            stderr: String::new(),
        };
        let drain_until = Instant::now() + DRAIN_GRACE;
        for _ in 0..2 {
            let left = drain_until.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, bytes)) => out.stderr = String::from_utf8_lossy(&bytes).into_owned(),
                Ok((false, bytes)) => out.stdout = String::from_utf8_lossy(&bytes).into_owned(),
                Err(_) => break,
            }
        }
        Ok(out)
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it touches no memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_without_a_shell_and_captures_output() {
        let counters = ActionCounters::default();
        let t = Tool::command("echo", Duration::from_secs(5)).unwrap();
        let out = t
            .run(&["a;b".into(), "$HOME".into()], None, &counters)
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, "a;b $HOME\n");
    }

    #[test]
    fn stdin_reaches_the_program_and_big_output_is_bounded() {
        let counters = ActionCounters::default();
        let t = Tool::command("cat", Duration::from_secs(10)).unwrap();
        let data = vec![b'x'; 1 << 20];
        let out = t.run(&[], Some(data), &counters).unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), CAPTURE_LIMIT);
    }

    #[test]
    fn the_time_limit_kills_the_program_and_its_children() {
        let counters = ActionCounters::default();
        let t = Tool::command("sh", Duration::from_millis(300)).unwrap();
        let started = Instant::now();
        let e = t
            .run(
                &["-c".into(), "sleep 30 & sleep 30".into()],
                None,
                &counters,
            )
            .unwrap_err();
        assert!(e.0.contains("killed"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(counters.timed_out.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn missing_programs_name_the_package() {
        let e = Tool::new(
            "mxguard-no-such-tool",
            "nftables",
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("apt-get install nftables"), "{e}");
    }
}
