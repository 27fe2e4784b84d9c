//! `mxguard store check [--repair]` as an admin meets it.

mod common;

use common::{mxguard, text};
use mxguard_store::{EmbeddedStore, Store};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

fn fill(dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = EmbeddedStore::open(dir).unwrap();
        for i in 0..3000 {
            s.set(
                &format!("grey:{i:05}/a@example.org/b@example.net"),
                &[7; 40],
                None,
            )
            .await
            .unwrap();
        }
    });
}

/// 4 KiB of garbage over the first page in use at or after the middle.
fn damage_a_page_in_use(dir: &Path) {
    let file = dir.join("mxguard.redb");
    let original = std::fs::read(&file).unwrap();
    let mut page = original.len() / 2 / 4096;
    loop {
        assert!(page * 4096 < original.len(), "no page in use found");
        let mut f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.seek(SeekFrom::Start(page as u64 * 4096)).unwrap();
        f.write_all(&[0xa5; 4096]).unwrap();
        drop(f);
        if EmbeddedStore::open(dir).is_err() {
            return;
        }
        std::fs::write(&file, &original).unwrap();
        page += 1;
    }
}

#[test]
fn store_check_finds_damage_and_repair_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill(&data);
    let d = data.to_str().unwrap();

    let out = mxguard(&["--data-dir", d, "store", "check"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("mxguard.redb: sound (3000 values"), "{s}");

    damage_a_page_in_use(&data);
    let out = mxguard(&["--data-dir", d, "store", "check"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("is damaged") && s.contains("--repair"), "{s}");

    let out = mxguard(&["--data-dir", d, "store", "check", "--repair"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(s.contains("repaired: "), "{s}");
    assert!(s.contains(".damaged-"), "{s}");

    let out = mxguard(&["--data-dir", d, "store", "check"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sound"));
}

#[test]
fn store_check_refuses_while_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path());
    let _serving = EmbeddedStore::open(dir.path()).unwrap();
    let d = dir.path().to_str().unwrap();
    for args in [&["store", "check"][..], &["store", "check", "--repair"]] {
        let out = mxguard(&[&["--data-dir", d][..], args].concat(), None);
        assert_eq!(out.status.code(), Some(2));
        let e = text(&out.stderr);
        assert!(
            e.contains("in use") && e.contains("stop `mxguard serve`"),
            "{e}"
        );
    }
}
