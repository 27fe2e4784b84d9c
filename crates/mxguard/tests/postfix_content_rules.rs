//! Content rules through real Postfix: the client's HELO and reverse-DNS
//! name reach the hfilter rules through the milter macros, and the header
//! anomaly rules see the message Postfix hands over. Postfix's XCLIENT
//! plays a public client from loopback.

mod common;

use common::postfix::{self, message_with};
use std::process::{Command, Stdio};

fn postconf(setting: &str) {
    let out = Command::new("postconf")
        .args(["-e", setting])
        .stdin(Stdio::null())
        .output()
        .expect("postconf");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("postfix")
        .arg("reload")
        .stdin(Stdio::null())
        .output()
        .expect("postfix reload");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
}

/// Leaves XCLIENT off again for the other Postfix tests, even on a panic.
struct XclientOff;
impl Drop for XclientOff {
    fn drop(&mut self) {
        postconf("smtpd_authorized_xclient_hosts =");
    }
}

/// Sends through Postfix as the client `xclient` describes, saying `helo`.
fn send(xclient: &str, helo: &str, headers: &[&str], body: &str) -> String {
    let mut args = vec![
        "--server",
        "127.0.0.1:25",
        "--from",
        "news@sender.example",
        "--to",
        "root@localhost",
        "--xclient",
        xclient,
        "--helo",
        helo,
        "--body",
        body,
        "--timeout",
        "30",
    ];
    for h in headers {
        args.push("--header");
        args.push(h);
    }
    let out = Command::new("swaks")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("swaks");
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{t}");
    t
}

#[test]
fn helo_client_name_and_header_anomalies_reach_the_verdict() {
    let port = postfix::free_port();
    let config = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [spf]\nenabled = false\n[dkim]\nenabled = false\n[dmarc]\nenabled = false\n[arc_verify]\nenabled = false\n"
    );
    let daemon = postfix::daemon(&config, port);
    let _postfix = postfix::configure(None, Some(port));
    postconf("smtpd_authorized_xclient_hosts = 127.0.0.0/8");
    let _off = XclientOff;

    // A bare-IP HELO from a client without reverse DNS, dated two days
    // ahead: 3 + 2.5 + 4 = 9.5, add header.
    let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(2 * 86400);
    let date = format!("Date: {}", rfc2822(ahead));
    send(
        "ADDR=81.2.69.160 NAME=[UNAVAILABLE]",
        "81.2.69.160",
        &["Subject: quarterly figures", &date],
        "bare helo body",
    );
    let m = message_with("bare helo body");
    for s in [
        "HFILTER_HELO_BAREIP",
        "HFILTER_HOSTNAME_UNKNOWN",
        "DATE_IN_FUTURE",
    ] {
        assert!(m.contains(s), "{s} missing:\n{m}");
    }
    assert!(m.contains("X-Spam-Flag: YES"), "{m}");

    // The same from a named server with a proper HELO: none of them.
    send(
        "ADDR=81.2.69.161 NAME=mail.sender.example",
        "mail.sender.example",
        &["Subject: quarterly figures"],
        "proper helo body",
    );
    let m = message_with("proper helo body");
    assert!(m.contains("X-Spamd-Result"), "{m}");
    for s in ["HFILTER_", "DATE_IN_FUTURE", "X-Spam-Flag: YES"] {
        assert!(!m.contains(s), "{s} present:\n{m}");
    }
    drop(daemon);
}

/// RFC 2822 date of a time, in UTC.
fn rfc2822(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d} {} {y} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
