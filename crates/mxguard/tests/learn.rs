//! `mxguard learn`, `mxguard stats`, `mxguard eval` and BAYES_* in `mxguard
//! scan`, as an admin uses them.

mod common;

use common::{mxguard, text};
use std::path::Path;

fn write_corpus(dir: &Path, n: usize) {
    let spam = dir.join("spam");
    let ham = dir.join("ham");
    std::fs::create_dir_all(&spam).unwrap();
    std::fs::create_dir_all(&ham).unwrap();
    for i in 0..n {
        std::fs::write(
            spam.join(format!("{i}.eml")),
            format!(
                "From: promo{i}@deals.example\r\nMessage-ID: <s{i}@deals.example>\r\nSubject: Cheap pills offer {i}\r\n\r\nBuy cheap pills now, best price, click http://pills.example/{i}\r\n"
            ),
        )
        .unwrap();
        std::fs::write(
            ham.join(format!("{i}.eml")),
            format!(
                "From: bob@team.example\r\nMessage-ID: <h{i}@team.example>\r\nSubject: Release notes {i}\r\n\r\nThe build passed; the release notes are attached for review.\r\n"
            ),
        )
        .unwrap();
    }
    // An mbox with two more spam messages.
    std::fs::write(
        dir.join("spam.mbox"),
        "From a@b Mon Jan  1 00:00:00 2024\nFrom: x@deals.example\nMessage-ID: <m1@deals.example>\nSubject: pills\n\nCheap pills\n\nFrom a@b Mon Jan  1 00:00:00 2024\nFrom: y@deals.example\nMessage-ID: <m2@deals.example>\nSubject: pills\n\nMore cheap pills\n",
    )
    .unwrap();
}

fn config(dir: &Path, min_learns: u64) -> String {
    let c = dir.join("mxguard.toml");
    std::fs::write(
        &c,
        format!(
            "[store]\ndata_dir = \"{}\"\n[classifier]\nmin_learns = {min_learns}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    c.display().to_string()
}

#[test]
fn learn_twice_relearn_unlearn_and_stats() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path(), 12);
    let cfg = config(dir.path(), 10);
    let p = |s: &str| dir.path().join(s).display().to_string();

    // Before any learning: stats say why the classifier is silent.
    let out = mxguard(&["-c", &cfg, "stats"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("learned spam                   0"), "{s}");
    assert!(
        s.contains("silent: needs 10 learned messages of each class"),
        "{s}"
    );

    let out = mxguard(
        &[
            "-c",
            &cfg,
            "learn",
            "--spam",
            &p("spam"),
            &p("spam.mbox"),
            "--ham",
            &p("ham"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("spam: 14 learned, 0 moved from ham, 0 already learned"),
        "{s}"
    );
    assert!(s.contains("ham: 12 learned"), "{s}");

    // Learning the same messages again changes nothing.
    let out = mxguard(
        &["-c", &cfg, "learn", "--spam", &p("spam"), &p("spam.mbox")],
        None,
    );
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("spam: 0 learned, 0 moved from ham, 14 already learned"),
        "{}",
        text(&out.stdout)
    );

    // Relearn one ham as spam: it moves.
    let out = mxguard(&["-c", &cfg, "learn", "--spam", &p("ham/0.eml")], None);
    assert!(
        text(&out.stdout).contains("spam: 0 learned, 1 moved from ham, 0 already learned"),
        "{}",
        text(&out.stdout)
    );

    let out = mxguard(&["-c", &cfg, "stats"], None);
    let s = text(&out.stdout);
    assert!(s.contains("learned spam                   15"), "{s}");
    assert!(s.contains("learned ham                    11"), "{s}");
    assert!(s.contains("state                          active"), "{s}");
    assert!(s.contains("model size"), "{s}");
    assert!(
        s.contains("learned_spam                     15"),
        "learn counters: {s}"
    );
    assert!(s.contains("relearned                        1"), "{s}");

    // The classifier now speaks in scans.
    let msg = "From: promo99@deals.example\r\nSubject: Cheap pills offer\r\n\r\nBuy cheap pills now, best price\r\n";
    let out = mxguard(&["-c", &cfg, "scan", "--json", "-"], Some(msg.as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sym = &v["symbols"]["BAYES_SPAM"];
    assert!(sym["score"].as_f64().unwrap() > 4.0, "{v}");
    assert!(sym["options"][0].as_str().unwrap().ends_with('%'));

    // Unlearn.
    let out = mxguard(
        &[
            "-c",
            &cfg,
            "learn",
            "--unlearn",
            &p("ham/0.eml"),
            &p("ham/1.eml"),
        ],
        None,
    );
    assert!(
        text(&out.stdout).contains("unlearn: 2 forgotten, 0 were not learned"),
        "{}",
        text(&out.stdout)
    );
    let s = text(&mxguard(&["-c", &cfg, "stats"], None).stdout);
    assert!(
        s.contains("learned spam                   14")
            && s.contains("learned ham                    10"),
        "{s}"
    );
    assert!(s.contains("active"), "{s}");
}

#[test]
fn below_min_learns_the_classifier_is_silent() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path(), 5);
    let cfg = config(dir.path(), 200);
    let p = |s: &str| dir.path().join(s).display().to_string();
    let out = mxguard(
        &[
            "-c",
            &cfg,
            "learn",
            "--spam",
            &p("spam"),
            "--ham",
            &p("ham"),
        ],
        None,
    );
    assert!(out.status.success());
    let msg =
        "From: promo99@deals.example\r\nSubject: Cheap pills offer\r\n\r\nBuy cheap pills now\r\n";
    let out = mxguard(&["-c", &cfg, "scan", "--json", "-"], Some(msg.as_bytes()));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["symbols"].get("BAYES_SPAM").is_none(), "{v}");
    let s = text(&mxguard(&["-c", &cfg, "stats"], None).stdout);
    assert!(
        s.contains(
            "silent: needs 200 learned messages of each class (min_learns), has 5 spam and 5 ham"
        ),
        "{s}"
    );
}

#[test]
fn eval_cross_validates_and_prints_folds() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path(), 20);
    let cfg = config(dir.path(), 10);
    let p = |s: &str| dir.path().join(s).display().to_string();
    let out = mxguard(
        &[
            "-c",
            &cfg,
            "eval",
            "--spam",
            &p("spam"),
            "--ham",
            &p("ham"),
            "--folds",
            "4",
            "--seed",
            "3",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("1-AUC%") && s.contains("FN%@FP≤0.1%"), "{s}");
    for f in ["1 ", "2 ", "3 ", "4 ", "all "] {
        assert!(s.lines().any(|l| l.starts_with(f)), "fold {f}: {s}");
    }
    let all = s.lines().find(|l| l.starts_with("all")).unwrap();
    assert!(all.contains("40/40") || all.contains("20/20"), "{all}");

    let out = mxguard(
        &[
            "-c",
            &cfg,
            "eval",
            "--spam",
            &p("spam"),
            "--ham",
            &p("ham"),
            "--folds",
            "4",
            "--seed",
            "3",
            "--print-folds",
        ],
        None,
    );
    let s = text(&out.stdout);
    assert_eq!(s.lines().count(), 40);
    let again = text(
        &mxguard(
            &[
                "-c",
                &cfg,
                "eval",
                "--spam",
                &p("spam"),
                "--ham",
                &p("ham"),
                "--folds",
                "4",
                "--seed",
                "3",
                "--print-folds",
            ],
            None,
        )
        .stdout,
    );
    assert_eq!(s, again, "fold assignment is reproducible");
    for f in 1..=4 {
        let spam = s
            .lines()
            .filter(|l| l.starts_with(&format!("{f}\tspam\t")))
            .count();
        assert_eq!(spam, 5, "stratified: {s}");
    }

    // A fixed split.
    let out = mxguard(
        &[
            "-c",
            &cfg,
            "eval",
            "--train-spam",
            &p("spam"),
            "--train-ham",
            &p("ham"),
            "--test-spam",
            &p("spam.mbox"),
            "--test-ham",
            &p("ham/0.eml"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1/2"), "{}", text(&out.stdout));
}

/// Autolearn in `mxguard serve`: messages whose verdict (without the
/// classifier's own symbols) is clear enough are learned, the rest not;
/// what is queued when serve stops is learned before it exits.
#[test]
fn serve_autolearns_clear_verdicts_through_the_milter() {
    use mxguard_milter::client::{Client, MessageSpec, postfix_offer};
    let dir = tempfile::tempdir().unwrap();
    let port = common::postfix::free_port();
    let data = dir.path().join("data");
    let cfg_text = format!(
        "[milter]\nlisten = \"127.0.0.1:{port}\"\n[policy]\nenabled = false\n\
         [store]\ndata_dir = \"{}\"\n\
         [classifier]\nautolearn = true\nautolearn_spam_threshold = 10\nautolearn_ham_threshold = -1\n\
         [actions]\nreject = 50\nadd_header = 40\ngreylist = false\nrewrite_subject = false\n\
         [[rules]]\nname = \"T_PILLS\"\ntarget = \"subject\"\npattern = \"/pills/i\"\nscore = 12.0\n\
         [[rules]]\nname = \"T_RELEASE\"\ntarget = \"subject\"\npattern = \"/release notes/i\"\nscore = -2.0\n",
        data.display()
    );
    let cfg = dir.path().join("mxguard.toml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let daemon = common::postfix::daemon(&cfg_text, port);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect_tcp(&format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        c.negotiate(postfix_offer()).await.unwrap();
        c.connect("client.example", "192.0.2.7".parse().unwrap(), 40000)
            .await
            .unwrap();
        c.helo("client.example").await.unwrap();
        let subjects = [
            "Cheap pills offer",      // 12: spam
            "Release notes 1.2",      // -2: ham
            "Lunch on Friday?",       // 0: neither
            "More pills, best price", // spam
            "Release notes 1.3",      // ham
        ];
        for (i, subject) in subjects.iter().enumerate() {
            let raw = format!(
                "From: sender{i}@example.net\r\nTo: user@example.org\r\nMessage-ID: <auto{i}@example.net>\r\n\
                 Subject: {subject}\r\n\r\nBody of message {i}.\r\n"
            );
            let spec = MessageSpec::from_raw("sender@example.net", &["user@example.org"], raw.as_bytes());
            c.message(&spec).await.unwrap();
        }
        c.quit().await.unwrap();
    });
    // Stop serve (SIGTERM): the queued messages are learned before it exits.
    drop(daemon);

    let out = mxguard(&["-c", cfg.to_str().unwrap(), "stats"], None);
    let stats = text(&out.stdout);
    assert!(out.status.success(), "{stats}{}", text(&out.stderr));
    let count = |what: &str| {
        stats
            .lines()
            .find(|l| l.trim_start().starts_with(what))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_else(|| panic!("no '{what}' line in stats:\n{stats}"))
            .to_string()
    };
    assert_eq!(count("learned spam"), "2", "{stats}");
    assert_eq!(count("learned ham"), "2", "{stats}");
}
