//! The `mxguard` command line as a user meets it.

mod common;

use common::{GTUBE, mxguard, text};

#[test]
fn gtube_is_rejected_from_stdin_and_file() {
    let msg = format!("From: a@example.net\r\nSubject: test\r\n\r\n{GTUBE}\r\n");
    let out = mxguard(&["scan", "-"], Some(msg.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("Action: reject"), "{s}");
    assert!(s.contains("Symbol: GTUBE"), "{s}");
    assert!(s.contains("Message: Gtube pattern"), "{s}");

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("gtube.eml");
    std::fs::write(&f, &msg).unwrap();
    let out = mxguard(
        &[
            "scan",
            "--json",
            "--ip",
            "192.0.2.7",
            "--helo",
            "mx.example.net",
            "--from",
            "a@example.net",
            "--rcpt",
            "b@example.org",
            f.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "reject");
    assert_eq!(v["messages"]["smtp_message"], "Gtube pattern");
    assert_eq!(v["symbols"]["GTUBE"]["name"], "GTUBE");
    assert!(v["required_score"].as_f64().unwrap() > 0.0);
    assert!(
        v.get("file").is_none(),
        "single-file runs carry no file field"
    );
}

#[test]
fn unreadable_input_is_an_error_and_others_still_scan() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok.eml");
    std::fs::write(&ok, "Subject: hi\r\n\r\nbody\r\n").unwrap();
    let missing = dir.path().join("missing.eml");
    let out = mxguard(
        &[
            "scan",
            "--json",
            ok.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("missing.eml"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

fn write_config(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("mxguard.toml");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn config_check_reports_every_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[actions]\nrejct = 12\n\n[[multimap]]\nname = \"BL\"\ntype = \"ipp\"\nmap = \"x\"\n",
    );
    let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    let file = cfg.display().to_string();
    assert!(
        err.contains(&format!("{file}:2:1: actions.rejct: unknown field `rejct`")),
        "{err}"
    );
    assert!(err.contains("did you mean `reject`"), "{err}");
    assert!(
        err.contains(&format!(
            "{file}:6:8: multimap[0].type: unknown variant `ipp`"
        )),
        "{err}"
    );

    // A map file that does not exist is named with the key's line.
    let cfg = write_config(
        dir.path(),
        "[[multimap]]\nname = \"BL\"\ntype = \"ip\"\nmap = \"/nonexistent/bl.map\"\n",
    );
    let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{file}:4:7: multimap[0].map")),
        "{err}"
    );
    assert!(err.contains("/nonexistent/bl.map"), "{err}");

    // And scan refuses to run with a broken config, saying why.
    let out = mxguard(
        &["-c", cfg.to_str().unwrap(), "scan", "-"],
        Some(b"Subject: x\r\n\r\n"),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("multimap[0].map"));
}

#[test]
fn config_check_refuses_numbers_out_of_range_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[symbols.MISSING_MID]\nscore = nan\n\n[policy]\nmynetworks = [\"10.0.0.0/40\"]\n\n[greylist]\nmax_age = 0\nipv4_prefix = 33\n\n[dns]\nattempts = 4294967295\n",
    );
    let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let file = cfg.display().to_string();
    for want in [
        ":2:9: symbols.MISSING_MID.score: NaN is not a finite number",
        ":5:15: policy.mynetworks[0]: `10.0.0.0/40`: prefix /40 is longer than the 32 bits",
        ":8:11: greylist.max_age: 0 forgets every triplet at once",
        ":9:15: greylist.ipv4_prefix: 33 is outside 0..=32",
        ":12:12: dns.attempts: 4294967295 is outside 1..=5",
    ] {
        assert!(err.contains(&format!("{file}{want}")), "{want}\n{err}");
    }
    assert!(err.contains("5 error(s)"), "{err}");

    // An action threshold of inf is refused before the rest is checked.
    let cfg = write_config(dir.path(), "[actions]\nreject = inf\n");
    let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!(
            "{file}:2:10: actions.reject: invalid value: floating point `inf`"
        )),
        "{err}"
    );
}

#[test]
fn config_check_warns_about_skipped_map_lines() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("ip.map");
    std::fs::write(&map, "192.0.2.1\nnot-an-address\n10.0.0.0/40\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[multimap]]\nname = \"BL\"\ntype = \"ip\"\nmap = \"{}\"\n",
            map.display()
        ),
    );
    let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:2: ", map.display())), "{err}");
    assert!(err.contains("line skipped"), "{err}");
    assert!(
        err.contains(&format!(
            "{}:3: `10.0.0.0/40`: prefix /40 is longer than the 32 bits",
            map.display()
        )),
        "{err}"
    );
}

#[test]
fn config_dump_prints_effective_config_that_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "[actions]\nreject = false\nadd_header = 10\ngreylist = 20\n[[rules]]\nname = \"R_DUMP\"\ntarget = \"subject\"\npattern = \"dump me\"\n",
    );
    let out = mxguard(
        &[
            "-c",
            cfg.to_str().unwrap(),
            "--data-dir",
            "/tmp/mxg-x",
            "config",
            "dump",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dumped = text(&out.stdout);
    assert!(dumped.contains("reject = false"), "{dumped}");
    assert!(dumped.contains("add_header = 10.0"), "{dumped}");
    assert!(dumped.contains("data_dir = \"/tmp/mxg-x\""), "{dumped}");
    // Every section is printed, the checks' registered ones included,
    // at their defaults when the file leaves them out.
    for section in [
        "[store]",
        "[scan]",
        "[milter]",
        "[policy]",
        "[greylist]",
        "[dns]",
        "[classifier]",
        "[gtube]",
        "[headers]",
        "[[rules]]",
    ] {
        assert!(dumped.contains(section), "{section} missing: {dumped}");
    }
    assert!(dumped.contains("name = \"R_DUMP\""), "{dumped}");
    let again = write_config(dir.path(), &dumped);
    let out = mxguard(&["config", "check", again.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "dump must load back: {}",
        text(&out.stderr)
    );
}

#[test]
fn multimap_blacklist_and_whitelist_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let bl = dir.path().join("senders.map");
    std::fs::write(
        &bl,
        "# senders\n@spam.example REJECT go away\ngood@partner.example OK\n",
    )
    .unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[[multimap]]\nname = \"SENDER_LIST\"\ntype = \"from\"\nmap = \"{}\"\nprefilter = true\nscore = 4.0\n",
            bl.display()
        ),
    );
    let c = cfg.to_str().unwrap();
    let msg = format!("Subject: x\r\n\r\n{GTUBE}\r\n");
    let out = mxguard(
        &["-c", c, "scan", "--json", "--from", "x@spam.example", "-"],
        Some(msg.as_bytes()),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "reject");
    assert_eq!(v["messages"]["smtp_message"], "go away");
    assert_eq!(v["symbols"]["SENDER_LIST"]["options"][0], "x@spam.example");
    // The whitelist accepts before GTUBE runs.
    let out = mxguard(
        &[
            "-c",
            c,
            "scan",
            "--json",
            "--from",
            "good@partner.example",
            "-",
        ],
        Some(msg.as_bytes()),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["action"], "no action");
    assert_eq!(v["is_skipped"], true);
    assert!(v["symbols"].get("GTUBE").is_none());
}

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mxguard.toml");
    let loaded = mxguard_core::config::load_file(&path, &mxguard_scan::sections())
        .unwrap_or_else(|e| panic!("{e:?}"));
    let lists = loaded
        .config
        .section::<mxguard_scan::checks::multimap::MultimapList>();
    assert_eq!(lists.0.len(), 3);
    assert_eq!(loaded.config.scan.map_check_interval.0, 1);
}

#[test]
fn recorded_scans_fill_history_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), "[store]\nhistory_size = 2\n");
    let c = cfg.to_str().unwrap();
    let d = data.to_str().unwrap();
    let msgs = [
        format!("Subject: one\r\nMessage-ID: <1@x>\r\n\r\n{GTUBE}\r\n"),
        "Subject: two\r\n\r\nhello\r\n".to_string(),
        "Subject: three\r\n\r\nhello\r\n".to_string(),
    ];
    for m in &msgs {
        let out = mxguard(
            &[
                "-c",
                c,
                "--data-dir",
                d,
                "scan",
                "--record",
                "--ip",
                "192.0.2.1",
                "-",
            ],
            Some(m.as_bytes()),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = mxguard(&["-c", c, "--data-dir", d, "history", "--json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "history_size = 2 keeps the last two");
    assert_eq!(rows[0]["subject"], "three");
    assert_eq!(rows[1]["subject"], "two");
    assert_eq!(rows[0]["ip"], "192.0.2.1");
    let out = mxguard(&["-c", c, "--data-dir", d, "stats"], None);
    let s = text(&out.stdout);
    assert!(
        s.lines()
            .any(|l| l.starts_with("scanned") && l.ends_with(" 3")),
        "{s}"
    );
    assert!(
        s.lines()
            .any(|l| l.starts_with("action:reject") && l.ends_with(" 1")),
        "{s}"
    );
    assert!(
        s.lines()
            // No Date, Message-ID, From or To: 6.5, add header.
            .any(|l| l.starts_with("action:add header") && l.ends_with(" 2")),
        "{s}"
    );
}

#[test]
fn every_toml_example_in_the_readme_is_valid() {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 3);
    for b in blocks {
        // The binary's sections: the checks', [report] and the HTTP API's [web].
        let sections = mxguard_scan::sections()
            .with::<mxguard_report::config::ReportSchedule>()
            .with::<mxguard_web::WebConfig>()
            .with::<mxguard_ban::config::BanConfig>();
        if let Err(e) = mxguard_core::config::load_str(b, "README.md", &sections) {
            panic!("README example does not load: {e:?}\n{b}");
        }
    }
}

#[test]
fn a_symlink_loop_in_a_scanned_directory_ends() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.eml"), "Subject: a\r\n\r\nx\r\n").unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
    let out = mxguard(&["scan", "--json", dir.path().to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

/// A directory is scanned in name order, depth first, hidden entries left
/// out, symbolic links to files followed and plain files taken by their
/// listing's type (no stat call each).
#[test]
fn a_scanned_directory_is_walked_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("b")).unwrap();
    for name in ["c.eml", "a.eml", "b/2", "b/10", ".hidden", "b/.x"] {
        std::fs::write(d.join(name), format!("Subject: {name}\r\n\r\nx\r\n")).unwrap();
    }
    std::os::unix::fs::symlink(d.join("a.eml"), d.join("d-link")).unwrap();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "y".repeat(300_000));
    std::fs::write(d.join("e.eml"), &big).unwrap();
    let out = mxguard(&["scan", "--json", d.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let files: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = v["file"].as_str().unwrap().to_string();
            f.strip_prefix(d.to_str().unwrap()).unwrap().to_string()
        })
        .collect();
    assert_eq!(
        files,
        ["/a.eml", "/b/10", "/b/2", "/c.eml", "/d-link", "/e.eml"]
    );
}

/// Every key that names a file `serve` reads: `config check` refuses the
/// config when the file is missing, at the key's line, as `serve` does.
#[test]
fn config_check_refuses_every_missing_file_serve_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let m = missing.display();
    let cases = [
        (
            format!("[[multimap]]\nname = \"BL\"\ntype = \"ip\"\nmap = \"{m}\"\n"),
            "multimap[0].map",
            4,
        ),
        (
            format!("[[rule_tables]]\ntarget = \"header\"\npath = \"{m}\"\n"),
            "rule_tables[0].path",
            3,
        ),
        (
            format!("[greylist]\nwhitelist_clients = [\"{m}\"]\n"),
            "greylist.whitelist_clients[0]",
            2,
        ),
        (
            format!("[greylist]\nwhitelist_recipients = [\"{m}\"]\n"),
            "greylist.whitelist_recipients[0]",
            2,
        ),
        (
            format!("[policy.restrictions]\nclient = [\"check_client_access hash:{m}\"]\n"),
            "policy.restrictions.client[0]",
            2,
        ),
        (
            format!("[policy.restrictions]\nhelo = [\"check_helo_access {m}\"]\n"),
            "policy.restrictions.helo[0]",
            2,
        ),
        (
            format!("[policy.restrictions]\nsender = [\"check_sender_access {m}\"]\n"),
            "policy.restrictions.sender[0]",
            2,
        ),
        (
            format!(
                "[policy.restrictions]\nrecipient = [\"permit_mynetworks\", \"check_recipient_access {m}\"]\n"
            ),
            "policy.restrictions.recipient[1]",
            2,
        ),
        (
            format!(
                "[dkim_signing]\nenabled = true\n[dkim_signing.domain.\"example.com\"]\nselector = \"dkim\"\npath = \"{m}\"\n"
            ),
            "dkim_signing.domain.example.com.path",
            5,
        ),
        (
            format!(
                "[arc]\nenabled = true\n[arc.domain.\"example.org\"]\nkeys = [{{ selector = \"arc\", path = \"{m}\" }}]\n"
            ),
            "arc.domain.example.org.keys[0]",
            4,
        ),
    ];
    for (body, key, line) in cases {
        let cfg = write_config(dir.path(), &body);
        let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}: {err}");
        let at = format!("{}:{line}:", cfg.display());
        assert!(
            err.lines()
                .any(|l| l.contains(&at) && l.contains(key) && l.contains(&m.to_string())),
            "{key} at line {line}:\n{err}"
        );
    }
}

/// A device, a FIFO or a file over `[scan] max_map_size` as a map is a
/// quick error naming the key and the file, not a hang.
#[test]
fn config_check_refuses_maps_that_are_not_bounded_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.map");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    let big = dir.path().join("big.map");
    std::fs::write(&big, "192.0.2.1\n".repeat(200)).unwrap();
    for (map, extra, what) in [
        ("/dev/zero".to_string(), "", "character device"),
        (fifo.display().to_string(), "", "FIFO"),
        (
            big.display().to_string(),
            "[scan]\nmax_map_size = \"1k\"\n",
            "over the limit of 1024 bytes",
        ),
    ] {
        let cfg = write_config(
            dir.path(),
            &format!("{extra}[[multimap]]\nname = \"BL\"\ntype = \"ip\"\nmap = \"{map}\"\n"),
        );
        let out = mxguard(&["config", "check", cfg.to_str().unwrap()], None);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("multimap[0].map") && err.contains(&map) && err.contains(what),
            "{what}: {err}"
        );
    }
    // The config itself: a device is refused, not read forever.
    let out = mxguard(&["config", "check", "/dev/zero"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("character device"));
}

/// Logs to a pipe carry no colour codes; `--log-format json` gives one
/// JSON object per line with level, target, message and fields.
#[test]
fn logs_are_plain_text_off_a_terminal_and_json_on_request() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("ip.map");
    std::fs::write(&map, "not-an-address\n").unwrap();
    let port = common::postfix::free_port();
    let cfg = write_config(
        dir.path(),
        &format!(
            "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n\
             [store]\ndata_dir = \"{}\"\n\
             [[multimap]]\nname = \"BL\"\ntype = \"ip\"\nmap = \"{}\"\n",
            dir.path().join("data").display(),
            map.display()
        ),
    );
    let serve = |format: &[&str]| -> String {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mxguard"))
            .args(format)
            .args(["-c", cfg.to_str().unwrap(), "serve"])
            .env("MXGUARD_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mxguard serve");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let mut log = String::new();
                let _ = child.stderr.take().unwrap().read_to_string(&mut log);
                panic!("serve did not listen on {port}: {log}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let stopped = Command::new("kill")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(stopped.success());
        let out = child.wait_with_output().unwrap();
        text(&out.stderr)
    };

    // The default format: text.
    let log = serve(&[]);
    assert!(log.contains("milter listening"), "{log}");
    assert!(log.contains("line skipped"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a pipe: {log:?}");

    let log = serve(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let listening = lines
        .iter()
        .find(|v| v["message"] == "milter listening")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(listening["level"], "INFO");
    assert!(
        listening["target"].as_str().unwrap().starts_with("mxguard"),
        "{listening}"
    );
    assert_eq!(listening["listen"], format!("127.0.0.1:{port}"));
    let skipped = lines
        .iter()
        .find(|v| v["level"] == "WARN")
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        skipped["message"]
            .as_str()
            .unwrap()
            .contains("line skipped"),
        "{skipped}"
    );
}
