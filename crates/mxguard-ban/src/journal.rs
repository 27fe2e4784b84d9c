//! The systemd journal as a log source: `journalctl -o json --follow
//! --lines=0 -u UNIT`, one JSON object a line, turned into a syslog-like
//! line without a time stamp (`HOST IDENT[PID]: MESSAGE`), the form the
//! filters read (as fail2ban's journal lines).
//!
//! journalctl runs as a child process (no libsystemd binding: nothing to
//! link, and the journal's own reader stays the one parsing its files).
//! A machine without it gets a message saying what to install or which
//! source to use instead.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// One journal entry as a line the filters read, or `None` for an entry
/// without a message.
pub fn entry_to_line(json: &str) -> Option<String> {
    let v: Value = serde_json::from_str(json).ok()?;
    let message = match v.get("MESSAGE")? {
        Value::String(s) => s.clone(),
        // Non-UTF-8 messages come as byte arrays.
        Value::Array(bytes) => {
            let b: Vec<u8> = bytes
                .iter()
                .filter_map(|x| x.as_u64().map(|n| n as u8))
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        }
        _ => return None,
    };
    let host = v
        .get("_HOSTNAME")
        .and_then(Value::as_str)
        .unwrap_or("localhost");
    let ident = v
        .get("SYSLOG_IDENTIFIER")
        .and_then(Value::as_str)
        .or_else(|| v.get("_COMM").and_then(Value::as_str))
        .unwrap_or("unknown");
    let pid = v
        .get("SYSLOG_PID")
        .or_else(|| v.get("_PID"))
        .and_then(Value::as_str);
    // One line: a message with newlines would otherwise look like several.
    let message = message.replace(['\n', '\r'], " ");
    Some(match pid {
        Some(pid) => format!("{host} {ident}[{pid}]: {message}"),
        None => format!("{host} {ident}: {message}"),
    })
}

/// The journal follower: the child and a reader thread feeding `each`.
pub struct Journal {
    child: Child,
}

/// The arguments for following `unit` (and any extra `journalctl`
/// matches such as `_COMM=sshd`).
pub fn follow_args(unit: &str, matches: &[String]) -> Vec<String> {
    let mut a = vec![
        "-o".into(),
        "json".into(),
        "--follow".into(),
        "--lines=0".into(),
        "-u".into(),
        unit.into(),
    ];
    a.extend(matches.iter().cloned());
    a
}

impl Journal {
    /// Starts `program args…` (normally `journalctl`), and a thread that
    /// hands each entry's line to `each` until the child ends or `each`
    /// returns false.
    pub fn spawn(
        program: &str,
        args: &[String],
        mut each: impl FnMut(String) -> bool + Send + 'static,
    ) -> Result<Journal, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "{program} not found: a jail reading the systemd journal needs it \
                         (apt-get install systemd), or give the jail a logpath instead"
                    )
                } else {
                    format!("cannot run {program}: {e}")
                }
            })?;
        let stdout = child.stdout.take().ok_or("journalctl has no stdout")?;
        std::thread::Builder::new()
            .name("ban-journal".into())
            .spawn(move || {
                let reader = BufReader::with_capacity(64 * 1024, stdout);
                for line in reader.split(b'\n') {
                    let Ok(line) = line else { break };
                    if line.len() > 1 << 20 {
                        continue;
                    }
                    if let Some(l) = entry_to_line(&String::from_utf8_lossy(&line))
                        && !each(l)
                    {
                        break;
                    }
                }
            })
            .map_err(|e| format!("cannot start the journal reader: {e}"))?;
        Ok(Journal { child })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_lines() {
        let l = entry_to_line(r#"{"MESSAGE":"Failed password for root from 192.0.2.1 port 22 ssh2","SYSLOG_IDENTIFIER":"sshd","_PID":"77","_HOSTNAME":"mx1"}"#).unwrap();
        assert_eq!(
            l,
            "mx1 sshd[77]: Failed password for root from 192.0.2.1 port 22 ssh2"
        );
        let parsed = crate::line::parse(&l);
        assert_eq!((parsed.daemon, parsed.pid), ("sshd", Some("77")));
        let l = entry_to_line(r#"{"MESSAGE":[104,105,255],"SYSLOG_IDENTIFIER":"x"}"#).unwrap();
        assert_eq!(l, "localhost x: hi\u{fffd}");
        assert!(entry_to_line(r#"{"PRIORITY":"6"}"#).is_none());
        assert!(entry_to_line("not json").is_none());
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let e = Journal::spawn("/nonexistent/journalctl", &[], |_| true)
            .err()
            .unwrap();
        assert!(e.contains("not found") && e.contains("logpath"), "{e}");
    }
}
