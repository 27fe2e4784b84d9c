//! Learning through the store: idempotency, unlearn and relearn, restarts,
//! and learning while scanning.

use mxguard_learn::persist::{self, Class, Learner, Sample};
use mxguard_learn::{Model, ModelHandle};
use mxguard_store::{EmbeddedStore, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

fn spam(i: usize) -> Sample {
    Sample::from_raw(
        format!(
            "From: promo{i}@deals.example\r\nMessage-ID: <s{i}@deals.example>\r\nSubject: Cheap pills {i}\r\n\r\nBuy cheap pills now, best price, click http://pills.example/{i}\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn ham(i: usize) -> Sample {
    Sample::from_raw(
        format!(
            "From: bob@team.example\r\nMessage-ID: <h{i}@team.example>\r\nSubject: Release notes {i}\r\n\r\nThe build passed; the release notes are attached for review.\r\n"
        )
        .as_bytes(),
    )
    .unwrap()
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir).unwrap())
}

/// Learns spam 0..n, then ham 0..n.
async fn learn_spam_then_ham(learner: &Learner, n: usize) {
    let spams: Vec<Sample> = (0..n).map(spam).collect();
    learner.learn(&spams, Class::Spam).await.unwrap();
    let hams: Vec<Sample> = (0..n).map(ham).collect();
    learner.learn(&hams, Class::Ham).await.unwrap();
}

async fn model(store: &dyn Store) -> Model {
    let blob = store.get(persist::MODEL_KEY).await.unwrap().unwrap();
    Model::from_bytes(&blob, true).unwrap()
}

#[tokio::test]
async fn learn_is_idempotent_relearn_moves_unlearn_forgets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let learner = Learner::new(store.clone(), 16);
    let spams: Vec<Sample> = (0..5).map(spam).collect();
    let hams: Vec<Sample> = (0..5).map(ham).collect();

    let r = learner.learn(&spams, Class::Spam).await.unwrap();
    assert_eq!(r.learned, 5);
    let r = learner.learn(&hams, Class::Ham).await.unwrap();
    assert_eq!(r.learned, 5);
    let m1 = model(&*store).await;
    assert_eq!((m1.spam_learns, m1.ham_learns), (5, 5));

    // The same messages again (and a duplicate inside one batch): no change.
    let mut again = spams.clone();
    again.push(spams[0].clone());
    let r = learner.learn(&again, Class::Spam).await.unwrap();
    assert_eq!((r.learned, r.unchanged), (0, 6));
    assert_eq!(
        model(&*store).await,
        m1,
        "learning twice must not change the model"
    );

    // The same message with an extra Received line is the same message.
    let relayed = Sample::from_raw(
        b"Received: from relay.example by mx.example; Mon, 1 Jan 2024 00:00:00 +0000\r\nFrom: promo0@deals.example\r\nMessage-ID: <s0@deals.example>\r\nSubject: Cheap pills 0\r\n\r\nBuy cheap pills now, best price, click http://pills.example/0\r\n",
    )
    .unwrap();
    assert_eq!(relayed.digest, spams[0].digest);
    assert_eq!(
        learner
            .learn(&[relayed], Class::Spam)
            .await
            .unwrap()
            .unchanged,
        1
    );

    // Relearn one spam as ham: the counts move and so does its probability.
    let before = m1.probability(&spams[1].features);
    let r = learner.learn(&spams[1..2], Class::Ham).await.unwrap();
    assert_eq!(r.relearned, 1);
    let m2 = model(&*store).await;
    assert_eq!((m2.spam_learns, m2.ham_learns), (4, 6));
    let after = m2.probability(&spams[1].features);
    assert!(after < before, "relearned as ham: {before} -> {after}");
    // Exactly as if it had been learned as ham in the first place.
    let dir2 = tempfile::tempdir().unwrap();
    let other = Learner::new(open(dir2.path()), 16);
    let mut as_spam = spams.clone();
    let moved = as_spam.remove(1);
    let mut as_ham = hams.clone();
    as_ham.push(moved);
    other.learn(&as_ham, Class::Ham).await.unwrap();
    other.learn(&as_spam, Class::Spam).await.unwrap();
    let m_other = model(&*other.store().clone()).await;
    assert_eq!(
        m2.probability(&spams[1].features),
        m_other.probability(&spams[1].features)
    );
    assert_eq!(m2, m_other, "relearn is exact and order does not matter");
    assert_eq!(
        learner.learned_as(&spams[1].digest).await.unwrap(),
        Some(Class::Ham)
    );

    // Unlearn: forgotten whatever the class; unknown messages are reported.
    let r = learner
        .unlearn(&[spams[1].clone(), spams[2].clone(), spam(99)])
        .await
        .unwrap();
    assert_eq!((r.unlearned, r.not_found), (2, 1));
    let m3 = model(&*store).await;
    assert_eq!((m3.spam_learns, m3.ham_learns), (3, 5));
    // Exactly as if they had never been learned.
    let dir3 = tempfile::tempdir().unwrap();
    let third = Learner::new(open(dir3.path()), 16);
    third
        .learn(
            &[spams[0].clone(), spams[3].clone(), spams[4].clone()],
            Class::Spam,
        )
        .await
        .unwrap();
    third.learn(&hams, Class::Ham).await.unwrap();
    assert_eq!(m3, model(&**third.store()).await, "unlearn is exact");
    assert_eq!(learner.learned_as(&spams[2].digest).await.unwrap(), None);
    // And learning it again counts again.
    assert_eq!(
        learner
            .learn(&spams[2..3], Class::Spam)
            .await
            .unwrap()
            .learned,
        1
    );

    let counters = mxguard_store::Counters::new(store.clone())
        .all()
        .await
        .unwrap();
    assert_eq!(counters.get("learned_spam"), Some(&6));
    assert_eq!(counters.get("learned_ham"), Some(&6));
    assert_eq!(counters.get("unlearned"), Some(&2));
    assert_eq!(counters.get("relearned"), Some(&1));
}

#[tokio::test]
async fn the_model_survives_a_restart_and_scanners_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let probe = spam(1000);
    let p_before;
    {
        let store = open(dir.path());
        let learner = Learner::new(store.clone(), 16);
        learn_spam_then_ham(&learner, 20).await;
        p_before = model(&*store).await.probability(&probe.features);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let store = open(dir.path());
    let status = persist::status(&*store).await.unwrap();
    assert_eq!((status.spam_learns, status.ham_learns), (20, 20));
    assert_eq!(status.version, 2);
    assert!(status.bytes > 100 && status.nonzero > 10, "{status:?}");
    assert!(status.silent_because(200).unwrap().contains("needs 200"));
    assert_eq!(status.silent_because(20), None);

    let handle = ModelHandle::empty();
    assert!(handle.current().is_none());
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    assert!(
        !persist::refresh(&handle, &*store).await.unwrap(),
        "unchanged: no reload"
    );
    let m = handle.current().unwrap();
    assert!(!m.can_learn(), "scanners do not hold the learning state");
    assert_eq!(m.probability(&probe.features), p_before);
    assert!(p_before > 0.5);

    // Scanners load the scanning copy: the members' mean weights only.
    assert!(
        status.scan_bytes > 100 && status.scan_bytes * 3 < status.bytes,
        "{status:?}"
    );

    // A learner after the restart continues the same model.
    let learner = Learner::new(store.clone(), 16);
    learner.learn(&[ham(500)], Class::Ham).await.unwrap();
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    assert_eq!(handle.current().unwrap().ham_learns, 21);
    let learned = model(&*store).await;
    assert_eq!(
        handle.current().unwrap().margin(&probe.features),
        learned.margin(&probe.features)
    );
}

/// Scanners load the scanning copy while it is current, the learners'
/// model when the copy is missing or older (a crash between the writes, a
/// store written by a release without the copy), and a format-1 model of
/// that release keeps scoring until the next learn rebuilds it.
#[tokio::test]
async fn scanners_read_the_scanning_copy_only_while_it_is_current() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let learner = Learner::new(store.clone(), 16);
    learn_spam_then_ham(&learner, 5).await;
    let probe = spam(1000);
    let learned = model(&*store).await;
    assert_eq!(learned.members(), mxguard_learn::model::MEMBERS);

    // The copy is what scanners read: the learners' model can be garbage.
    let good_model = store.get(persist::MODEL_KEY).await.unwrap().unwrap();
    store
        .set(persist::MODEL_KEY, b"garbage", None)
        .await
        .unwrap();
    let handle = ModelHandle::empty();
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    assert_eq!(
        handle.current().unwrap().margin(&probe.features),
        learned.margin(&probe.features)
    );

    // A release without the copy learned since (it wrote a format-1 model
    // and moved the version): the copy is older, scanners read the model.
    let format1 = include_bytes!("data/model-format1.bin");
    store.set(persist::MODEL_KEY, format1, None).await.unwrap();
    store.incr(persist::VERSION_KEY, 1, None).await.unwrap();
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    let old = handle.current().unwrap();
    assert_eq!((old.spam_learns, old.ham_learns, old.bits()), (10, 10, 12));
    let status = persist::status(&*store).await.unwrap();
    assert!(
        status.scan_note.as_deref().unwrap_or("").contains("older"),
        "{status:?}"
    );
    assert!(status.error.is_none(), "format 1 still scores: {status:?}");

    // The next learn rebuilds four members from the learned messages and
    // writes a current copy again.
    let r = learner.learn(&[ham(77)], Class::Ham).await.unwrap();
    assert_eq!(r.learned, 1);
    let rebuilt = model(&*store).await;
    assert_eq!(rebuilt.members(), mxguard_learn::model::MEMBERS);
    assert_eq!((rebuilt.spam_learns, rebuilt.ham_learns), (5, 6));
    let status = persist::status(&*store).await.unwrap();
    assert_eq!(status.scan_note, None, "{status:?}");
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    assert_eq!(
        handle.current().unwrap().margin(&probe.features),
        rebuilt.margin(&probe.features)
    );
    assert_ne!(
        good_model,
        store.get(persist::MODEL_KEY).await.unwrap().unwrap()
    );
}

#[tokio::test]
async fn a_corrupt_model_is_an_error_for_scanners_and_rebuilt_by_learning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .set(persist::MODEL_KEY, b"garbage", None)
        .await
        .unwrap();
    store.incr(persist::VERSION_KEY, 1, None).await.unwrap();
    let handle = ModelHandle::empty();
    assert!(persist::refresh(&handle, &*store).await.is_err());
    assert!(handle.current().is_none());
    let status = persist::status(&*store).await.unwrap();
    assert!(status.error.is_some());
    // Learning recovers: the model is rebuilt from the learned messages
    // (the records are the truth), and scanners can load it again.
    let r = Learner::new(store.clone(), 16)
        .learn(&[spam(1)], Class::Spam)
        .await
        .unwrap();
    assert_eq!(r.learned, 1);
    assert_eq!(model(&*store).await.spam_learns, 1);
    assert!(persist::refresh(&handle, &*store).await.unwrap());
    assert_eq!(handle.current().unwrap().spam_learns, 1);
    // The lock was released: a later learner is not stuck.
    assert!(store.get(persist::LOCK_KEY).await.unwrap().is_none());
}

/// Scanners keep scoring from memory while a learner writes new models and a
/// refresher swaps them in; every scan sees a complete model.
#[test]
fn learning_while_scanning() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(async { open(dir.path()) });
    let handle = ModelHandle::empty();
    let learner = Arc::new(Learner::new(store.clone(), 16).with_handle(handle.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicUsize::new(0));
    let probes: Vec<Sample> = (0..50)
        .map(|i| {
            if i % 2 == 0 {
                spam(5000 + i)
            } else {
                ham(5000 + i)
            }
        })
        .collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (handle, stop, scans, probes) =
                (handle.clone(), stop.clone(), scans.clone(), &probes);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for p in probes {
                        if let Some(m) = handle.current() {
                            let x = m.probability(&p.features);
                            assert!((0.0..=1.0).contains(&x));
                        }
                        scans.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // A second handle refreshed from the store, as another process would.
        let other = ModelHandle::empty();
        rt.block_on(async {
            for round in 0..20 {
                let batch: Vec<Sample> = (0..10).map(|i| spam(round * 10 + i)).collect();
                learner.learn(&batch, Class::Spam).await.unwrap();
                let batch: Vec<Sample> = (0..10).map(|i| ham(round * 10 + i)).collect();
                learner.learn(&batch, Class::Ham).await.unwrap();
                persist::refresh(&other, &*store).await.unwrap();
                assert_eq!(other.version(), handle.version());
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
    let m = handle.current().unwrap();
    assert_eq!((m.spam_learns, m.ham_learns), (200, 200));
    assert_eq!(handle.version(), 40);
    assert!(scans.load(Ordering::Relaxed) > 100);
    assert!(m.probability(&probes[0].features) > 0.5);
    assert!(m.probability(&probes[1].features) < 0.5);
}

/// Two learners on one store (as two hosts sharing Redis would be) do not
/// lose each other's updates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_learners_do_not_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a = Arc::new(Learner::new(store.clone(), 16));
    let b = Arc::new(Learner::new(store.clone(), 16));
    let ta = tokio::spawn(async move {
        for i in 0..10 {
            a.learn(&[spam(i)], Class::Spam).await.unwrap();
        }
    });
    let tb = tokio::spawn(async move {
        for i in 0..10 {
            b.learn(&[ham(i)], Class::Ham).await.unwrap();
        }
    });
    ta.await.unwrap();
    tb.await.unwrap();
    let m = model(&*store).await;
    assert_eq!((m.spam_learns, m.ham_learns), (10, 10));
}

/// After an upgrade that changes the tokeniser, the stored model and the
/// records are another version's: learning the same messages again relearns
/// them with the new features and rebuilds a usable model, instead of
/// failing or calling them "already learned".
#[tokio::test]
async fn learning_again_after_a_tokeniser_change_rebuilds_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let spams: Vec<Sample> = (0..5).map(spam).collect();
    let hams: Vec<Sample> = (0..5).map(ham).collect();
    {
        let learner = Learner::new(store.clone(), 16);
        learner.learn(&spams, Class::Spam).await.unwrap();
        learner.learn(&hams, Class::Ham).await.unwrap();
    }
    // Make everything stored look like the previous tokeniser's: the
    // version byte of each record, and the model's tokeniser field.
    let older = (mxguard_learn::model::TOKENIZER_VERSION - 1) as u8;
    for (k, mut v) in store
        .scan_prefix(persist::MSG_PREFIX, usize::MAX)
        .await
        .unwrap()
    {
        v[1] = older;
        store.set(&k, &v, None).await.unwrap();
    }
    let mut blob = store.get(persist::MODEL_KEY).await.unwrap().unwrap();
    blob[8..12].copy_from_slice(&(older as u32).to_le_bytes());
    store.set(persist::MODEL_KEY, &blob, None).await.unwrap();
    assert!(Model::from_bytes(&blob, true).is_err());

    // A new learner (a new process): the spam are learned again, not
    // "unchanged", and the model is rebuilt from the current records only.
    let learner = Learner::new(store.clone(), 16);
    let r = learner.learn(&spams, Class::Spam).await.unwrap();
    assert_eq!((r.learned, r.unchanged), (5, 0), "{r:?}");
    let m = model(&*store).await;
    assert_eq!((m.spam_learns, m.ham_learns), (5, 0));
    let r = learner.learn(&hams, Class::Ham).await.unwrap();
    assert_eq!(r.learned, 5, "{r:?}");
    let m = model(&*store).await;
    assert_eq!((m.spam_learns, m.ham_learns), (5, 5));
    // And now they are current: learning again changes nothing.
    let r = learner.learn(&hams, Class::Ham).await.unwrap();
    assert_eq!(r.unchanged, 5, "{r:?}");
}
