//! The web UI in a real browser: `mxguard serve` with [web] on, driven by
//! Debian's headless Chromium through chromium-driver (WebDriver). A user
//! logs in read-only and sees the counters move after scans but no control
//! that writes; an admin changes an action threshold, a symbol score and a
//! map file and sees the next scan follow; the same pages work behind a
//! reverse proxy under `/rspamd/`. A screenshot of each page is kept under
//! target/ui-screenshots/.
//!
//! The test lives in the binary's crate because it starts the `mxguard`
//! executable; its WebDriver client and proxy are the web crate's test
//! support (crates/mxguard-web/tests/support/).

mod common;

#[path = "../../mxguard-web/tests/support/prefix_proxy.rs"]
mod prefix_proxy;
#[path = "../../mxguard-web/tests/support/webdriver.rs"]
mod webdriver;

use common::postfix;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use webdriver::{Browser, http};

const READ_PASSWORD: &str = "read-only passphrase";
const ADMIN_PASSWORD: &str = "admin passphrase";
const PAGES: [&str; 8] = [
    "status", "graph", "config", "symbols", "scan", "history", "errors", "blocks",
];
/// The controls only an admin may see (ids in ui/app.js).
const WRITE_CONTROLS: [(&str, &str); 6] = [
    ("status", "#reset-stats"),
    ("config", "#save-actions"),
    ("symbols", "#save-scores"),
    ("scan", "#learn-spam"),
    ("scan", "#learn-ham"),
    ("history", "#reset-history"),
];

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots")
}

/// `mxguard pw`: the argon2id hash of a passphrase read from stdin.
fn hash(password: &str) -> String {
    let out = common::mxguard(&["pw"], Some(format!("{password}\n").as_bytes()));
    assert!(
        out.status.success(),
        "mxguard pw failed: {}",
        common::text(&out.stderr)
    );
    let stdout = common::text(&out.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let hash = line.unwrap_or_default().trim().to_string();
    assert!(
        hash.starts_with("$argon2id$"),
        "mxguard pw printed no argon2id hash: {stdout:?}"
    );
    hash
}

/// The API scans through the milter's scan service, so the milter runs too
/// (on a free port; no MTA talks to it here). The policy server greylists
/// one triplet for the Greylist page.
fn config(port: u16, policy: u16, map: &Path) -> String {
    format!(
        "[milter]\nlisten = \"127.0.0.1:{milter}\"\n\
         [policy]\nlisten = \"127.0.0.1:{policy}\"\nmynetworks = []\n[greylist]\nsender_pools = false\n[store]\ndata_dir = \"DATA_DIR\"\n\
         [web]\nlisten = \"127.0.0.1:{port}\"\npassword = \"{ro}\"\nenable_password = \"{admin}\"\nsecure_ip = []\n\
         [dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"500ms\"\nattempts = 1\n\
         [header_anomalies]\nenabled = false\n\
         [spf]\nenabled = false\n[dkim]\nenabled = false\n[arc_verify]\nenabled = false\n[dmarc]\nenabled = false\n\
         [actions]\nreject = 15\nadd_header = 6\ngreylist = false\nrewrite_subject = false\n\
         [[rules]]\nname = \"SUBJ_LOTTERY\"\ntarget = \"subject\"\npattern = \"/you (have )?won/i\"\nscore = 4.0\n\
         [[multimap]]\nname = \"SENDER_BLOCKLIST\"\ntype = \"from\"\nsource = \"header\"\nmatch = \"subdomain\"\n\
         map = \"{map}\"\nscore = 10.0\n",
        milter = postfix::free_port(),
        ro = hash(READ_PASSWORD),
        admin = hash(ADMIN_PASSWORD),
        map = map.display(),
    )
}

/// One request in Postfix's policy delegation protocol, as smtpd sends it at RCPT.
fn policy_request(port: u16, client: &str, sender: &str, rcpt: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n\
         client_address={client}\nclient_name=unknown\nhelo_name=mx.sender.example\n\
         sender={sender}\nrecipient={rcpt}\ninstance=ui.1\n\n"
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).unwrap();
    answer.trim().to_string()
}

fn greylist_keys(port: u16) -> Vec<String> {
    let (status, body) = http(
        port,
        "GET",
        "/greylist",
        &[("Password", READ_PASSWORD)],
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn message(from: &str, subject: &str) -> String {
    format!(
        "From: Sender <{from}>\r\nTo: user@example.org\r\nSubject: {subject}\r\n\
         Date: Mon, 07 Dec 2026 09:00:00 +0000\r\nMessage-ID: <{n}@example.net>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hello,\r\nthis is a plain message for the web UI test.\r\n",
        n = subject.len()
    )
}

/// Waits until `page` is drawn; panics with the UI's error message if it shows one.
fn open(b: &Browser, page: &str) {
    b.js("location.hash = arguments[0]", json!([page]));
    let state = b.wait_js(
        &format!("the {page} page"),
        &format!(
            "const m = document.getElementById('msg');\
             if (!m.hidden && m.className === 'error') return 'error: ' + m.textContent;\
             const main = document.getElementById('page');\
             if (main.dataset.ready !== '{page}') return null;\
             const bad = main.querySelector('.error');\
             return bad ? 'error: ' + bad.textContent : 'ok';"
        ),
    );
    assert_eq!(state, json!("ok"), "the {page} page shows an error");
}

fn login(b: &Browser, url: &str, password: &str) {
    b.goto(url);
    b.wait_js(
        "the login form",
        "return !document.getElementById('login').hidden",
    );
    let field = b.find("#password");
    b.type_into(&field, password);
    b.click(&b.find("#login button[type=submit]"));
    b.wait_js(
        "the logged-in page",
        "return !document.getElementById('nav').hidden",
    );
}

fn logout(b: &Browser) {
    b.click(&b.find("#logout"));
    b.wait_js(
        "the login form",
        "return !document.getElementById('login').hidden",
    );
}

fn counter(b: &Browser, name: &str) -> u64 {
    let text = b.text_of(&format!("#c-{name} b"));
    text.replace([',', ' '], "")
        .parse()
        .unwrap_or_else(|_| panic!("counter {name} shows {text:?}"))
}

/// Every visible, enabled control that is not marked as read-only-safe.
fn write_controls(b: &Browser) -> Value {
    b.js(
        "const shown = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';\
         const controls = [...document.querySelectorAll('button, input, select, textarea, [contenteditable]')]\
           .filter(e => shown(e) && !e.disabled && !e.readOnly && !e.hasAttribute('data-ro-ok'));\
         const marked = [...document.querySelectorAll('[data-write]')];\
         return [...new Set([...controls, ...marked])].map(e => e.outerHTML.slice(0, 160));",
        json!([]),
    )
}

/// Scans `msg` on the Scan page: the verdict's action, score and symbols.
fn scan_in_ui(b: &Browser, msg: &str) -> (String, f64, Vec<String>) {
    open(b, "scan");
    let area = b.find("#scan-text");
    b.js(
        "arguments[0].value = ''; document.getElementById('scan-result').replaceChildren();",
        json!([area.arg()]),
    );
    b.type_into(&area, msg);
    b.click(&b.find("#scan-btn"));
    let v = b.wait_js(
        "a verdict",
        "const m = document.getElementById('msg');\
         if (!m.hidden && m.className === 'error') return {error: m.textContent};\
         const v = document.getElementById('verdict'); if (!v) return null;\
         return {action: document.getElementById('verdict-action').textContent,\
                 score: document.getElementById('verdict-score').textContent,\
                 symbols: [...v.querySelectorAll('tr[data-symbol]')].map(r => r.dataset.symbol)};",
    );
    assert!(v.get("error").is_none(), "scan failed: {v}");
    (
        v["action"].as_str().unwrap().to_string(),
        v["score"]
            .as_str()
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap(),
        v["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    )
}

/// Waits for the UI's success message after a save.
fn saved(b: &Browser, what: &str) {
    let m = b.wait_js(
        what,
        "const m = document.getElementById('msg'); return m.hidden ? null : [m.className, m.textContent];",
    );
    assert_eq!(m[0], json!(""), "{what}: {}", m[1]);
    b.js("document.getElementById('msg').hidden = true", json!([]));
}

fn checkv2(port: u16, password: &str, msg: &str) -> Value {
    let (status, body) = http(
        port,
        "POST",
        "/checkv2",
        &[("Password", password)],
        msg.as_bytes(),
    );
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "POST /checkv2: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("/checkv2 is not JSON ({e}): {text}"))
}

#[test]
fn web_ui_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("sender_blocklist.map");
    std::fs::write(&map, "# senders refused by the admin\n").unwrap();
    let (port, policy) = (postfix::free_port(), postfix::free_port());
    let serve = postfix::daemon(&config(port, policy, &map), port);
    // A first delivery attempt is greylisted: one entry for the Greylist page.
    let answer = policy_request(policy, "192.0.2.10", "a@sender.example", "user@example.org");
    assert!(
        answer.contains("DEFER"),
        "the policy server did not greylist: {answer}"
    );
    let deadline = std::time::Instant::now() + webdriver::WAIT;
    while greylist_keys(port).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no greylist entry was stored"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let shots = screenshots();
    let b = Browser::start();
    let base = format!("http://127.0.0.1:{port}/");
    let plain = message("alice@partner.example", "Minutes of the meeting");
    let lottery = message("promo@lottery.example", "You have won a prize");
    let blocked = message("news@mail.spammer.example", "Weekly news");

    // Read-only: counters move with scans, and no write control anywhere.
    login(&b, &base, READ_PASSWORD);
    assert_eq!(b.text_of("#role"), "read-only");
    open(&b, "status");
    let (scanned, clean) = (counter(&b, "scanned"), counter(&b, "no-action"));
    for _ in 0..2 {
        assert_eq!(checkv2(port, READ_PASSWORD, &plain)["action"], "no action");
    }
    // The counters are written after the reply: refresh until they show both scans.
    b.wait("the scanned and no-action counters to rise by 2", || {
        b.click(&b.find("#refresh"));
        b.find("#page[data-ready='status']");
        let now = (counter(&b, "scanned"), counter(&b, "no-action"));
        (now == (scanned + 2, clean + 2)).then_some(())
    });
    for page in PAGES {
        open(&b, page);
        assert_eq!(
            write_controls(&b),
            json!([]),
            "read-only login shows write controls on {page}"
        );
        b.screenshot(&shots.join(format!("readonly-{page}.png")));
    }
    open(&b, "config");
    b.click(&b.find("#maps button"));
    b.find("pre#map-text");
    assert!(b.try_find("textarea#map-text").is_none());
    assert_eq!(write_controls(&b), json!([]), "the map viewer is writable");
    open(&b, "blocks");
    b.find("#greylist tr[data-key]");
    // And the API refuses a write made with this session, CSRF token and all.
    let status = b.js(
        "return fetch('saveactions', {method: 'POST', headers: {'X-CSRF-Token': S.csrf || ''},\
           body: JSON.stringify([{action: 'reject', value: 1}])}).then(r => r.status)",
        json!([]),
    );
    assert_eq!(status, json!(403), "a read-only session could write");
    open(&b, "history");
    assert!(
        b.js(
            "return document.querySelectorAll('#history tbody tr').length",
            json!([])
        )
        .as_u64()
            >= Some(2)
    );
    logout(&b);

    // Admin: the write controls are there, and each change shows in the next scan.
    login(&b, &base, ADMIN_PASSWORD);
    assert_eq!(b.text_of("#role"), "admin");
    for (page, control) in WRITE_CONTROLS {
        open(&b, page);
        assert!(
            b.try_find(control).is_some(),
            "admin sees no {control} on {page}"
        );
    }
    let (action, score, symbols) = scan_in_ui(&b, &lottery);
    assert_eq!(
        action, "no action",
        "before any change: {score} {symbols:?}"
    );
    assert!(symbols.contains(&"SUBJ_LOTTERY".to_string()), "{symbols:?}");
    assert!((4.0..6.0).contains(&score), "{score} {symbols:?}");

    // 1. The add-header threshold, from 6 down to 3.
    open(&b, "config");
    b.type_into(&b.find("input[name='add header']"), "3");
    b.click(&b.find("#save-actions"));
    saved(&b, "saving the action thresholds");
    let (action, _, _) = scan_in_ui(&b, &lottery);
    assert_eq!(action, "add header", "after add header = 3");
    open(&b, "config");
    assert_eq!(
        b.js(
            "return document.querySelector(\"input[name='add header']\").value",
            json!([])
        ),
        json!("3"),
        "the saved threshold is not shown back"
    );

    // 2. A symbol score: SUBJ_LOTTERY from 4 to 16, over the reject threshold.
    open(&b, "symbols");
    b.type_into(&b.find("#symbols-filter"), "LOTTERY");
    b.type_into(&b.find("input[data-symbol='SUBJ_LOTTERY']"), "16");
    b.click(&b.find("#save-scores"));
    saved(&b, "saving the symbol score");
    let (action, score, _) = scan_in_ui(&b, &lottery);
    assert_eq!(action, "reject", "after SUBJ_LOTTERY = 16 (score {score})");
    assert!(score >= 16.0, "{score}");

    // 3. A map entry: the sender's domain goes on the blocklist.
    let (action, _, symbols) = scan_in_ui(&b, &blocked);
    assert_eq!(action, "no action");
    assert!(!symbols.contains(&"SENDER_BLOCKLIST".to_string()));
    open(&b, "config");
    b.click(&b.find("#maps button"));
    let editor = b.find("textarea#map-text");
    b.js(
        "arguments[0].value += 'spammer.example\\n'",
        json!([editor.arg()]),
    );
    b.click(&b.find("#save-map"));
    saved(&b, "saving the map");
    assert!(
        std::fs::read_to_string(&map)
            .unwrap()
            .contains("spammer.example")
    );
    let (action, _, symbols) = b.wait("the map change in a scan", || {
        let v = scan_in_ui(&b, &blocked);
        v.2.contains(&"SENDER_BLOCKLIST".to_string()).then_some(v)
    });
    assert_eq!(action, "add header", "{symbols:?}");

    // Learning from the Scan page.
    b.click(&b.find("#learn-spam"));
    saved(&b, "learning as spam");

    // Greylist: the entry is removed from its page.
    open(&b, "blocks");
    let before = greylist_keys(port);
    b.click(&b.find("#greylist tr[data-key] button[data-write]"));
    saved(&b, "removing the greylist entry");
    assert_eq!(greylist_keys(port).len(), before.len() - 1, "{before:?}");
    open(&b, "blocks");
    assert!(b.try_find("#greylist tr[data-key]").is_none() || before.len() > 1);

    // History: filter and sort by score.
    open(&b, "history");
    b.type_into(&b.find("#history-filter"), "SUBJ_LOTTERY");
    let rows = b.js(
        "return [...document.querySelectorAll('#history tbody tr')].map(r => r.textContent)",
        json!([]),
    );
    let rows = rows.as_array().unwrap();
    assert!(
        rows.len() >= 3
            && rows
                .iter()
                .all(|r| r.as_str().unwrap().contains("SUBJ_LOTTERY")),
        "{rows:?}"
    );
    b.click(&b.find("#history th button[data-sort='score']"));
    for page in PAGES {
        open(&b, page);
        b.screenshot(&shots.join(format!("admin-{page}.png")));
    }

    // Resets, each after the page's confirmation dialog.
    open(&b, "history");
    b.click(&b.find("#reset-history"));
    b.accept_dialog();
    saved(&b, "resetting the history");
    open(&b, "history");
    assert_eq!(
        b.js(
            "return document.querySelectorAll('#history tbody tr td[colspan]').length",
            json!([])
        ),
        json!(1),
        "the history is not empty after its reset"
    );
    open(&b, "status");
    assert!(counter(&b, "scanned") > 0);
    b.click(&b.find("#reset-stats"));
    b.accept_dialog();
    saved(&b, "resetting the counters");
    b.wait("the scanned counter at 0 after the reset", || {
        (counter(&b, "scanned") == 0).then_some(())
    });
    logout(&b);

    // The same pages behind a reverse proxy under /rspamd/.
    let proxy = prefix_proxy::start("/rspamd", port);
    login(
        &b,
        &format!("http://127.0.0.1:{}/rspamd/", proxy.port),
        ADMIN_PASSWORD,
    );
    for page in PAGES {
        open(&b, page);
        b.screenshot(&shots.join(format!("prefix-{page}.png")));
    }
    let (action, _, _) = scan_in_ui(&b, &lottery);
    assert_eq!(action, "reject", "scan under the prefix");
    // A message uploaded as a file rather than pasted.
    let eml = dir.path().join("lottery.eml");
    std::fs::write(&eml, &lottery).unwrap();
    b.js("document.getElementById('scan-text').value = ''; document.getElementById('scan-result').replaceChildren()", json!([]));
    b.send_keys(&b.find("#scan-file"), eml.to_str().unwrap());
    b.click(&b.find("#scan-btn"));
    b.find("#verdict");
    assert_eq!(
        b.text_of("#verdict-action"),
        "reject",
        "the uploaded file's verdict"
    );
    // The session outlives a reload (cookie), and ends with the logout.
    b.goto(&format!("http://127.0.0.1:{}/rspamd/#history", proxy.port));
    b.wait_js(
        "the session after a reload",
        "return !document.getElementById('nav').hidden",
    );
    assert_eq!(b.text_of("#role"), "admin");
    open(&b, "history");
    logout(&b);
    b.goto(&format!("http://127.0.0.1:{}/rspamd/", proxy.port));
    b.wait_js(
        "the login form after logout",
        "return !document.getElementById('login').hidden",
    );
    assert_eq!(
        proxy.outside(),
        0,
        "the UI asked for URLs outside /rspamd/ (absolute paths)"
    );
    drop(b);
    drop(serve);
}
