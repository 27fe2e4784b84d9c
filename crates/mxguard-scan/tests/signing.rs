//! DKIM signing through the real scan service: only mail the final verdict
//! delivers is signed, and the signature goes to the top of the message
//! (milter block order 0), with a key made by the real keygen.

use mxguard_auth::config::{ArcConfig, DkimSigningConfig};
use mxguard_auth::keygen::{self, Request};
use mxguard_auth::keys::KeyKind;
use mxguard_auth::sign::Outbound;
use mxguard_core::config::{LoadedConfig, load_str};
use mxguard_core::shared::Shared;
use mxguard_core::{Action, Envelope};
use mxguard_scan::{Pipeline, ScanInput, ScanService, Services};
use std::sync::Arc;

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

fn service(dir: &std::path::Path) -> ScanService {
    let g = keygen::generate(&Request {
        domain: "example.com".into(),
        selector: "ed".into(),
        kind: KeyKind::Ed25519,
        bits: 0,
        out_dir: dir.to_path_buf(),
        force: false,
    })
    .unwrap();
    let text = format!(
        "[dkim_signing]\nenabled = true\n[dkim_signing.domain.\"example.com\"]\nselector = \"ed\"\npath = \"{}\"\n",
        g.path.display()
    );
    let loaded = LoadedConfig {
        config: load_str(&text, "test.toml", &mxguard_scan::checks::sections()).unwrap(),
        text,
        ..Default::default()
    };
    let (pipeline, _) = Pipeline::new(&loaded, &Services::default()).unwrap();
    let outbound = Outbound::new(
        loaded.config.section::<DkimSigningConfig>(),
        loaded.config.section::<ArcConfig>(),
    )
    .unwrap();
    assert!(outbound.is_some());
    ScanService::new(Arc::new(Shared::new(pipeline)), 2)
        .with_signing(Arc::new(Shared::new(outbound)))
}

fn envelope(user: Option<&str>) -> Envelope {
    Envelope {
        ip: Some("203.0.113.9".parse().unwrap()),
        user: user.map(String::from),
        mail_from: Some("joe@example.com".into()),
        rcpts: vec!["ann@dest.example".into()],
        ..Envelope::default()
    }
}

fn message(body: &str) -> Vec<u8> {
    format!(
        "From: Joe <joe@example.com>\r\nTo: ann@dest.example\r\nSubject: report\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn only_delivered_outbound_mail_is_signed_at_the_top() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let raw = message("the figures");

    let env = envelope(Some("joe@example.com"));
    let out = s
        .scan_message(ScanInput {
            envelope: &env,
            raw: &raw,
            mta_name: Some("mx.test"),
        })
        .await;
    assert_eq!(out.verdict.action, Action::NoAction);
    let sigs: Vec<_> = out
        .milter
        .add_headers
        .iter()
        .filter(|h| h.name == "DKIM-Signature")
        .collect();
    assert_eq!(sigs.len(), 1, "{:?}", out.milter);
    assert_eq!(sigs[0].order, Some(0), "inserted at the top");
    assert!(sigs[0].value.contains("d=example.com") && sigs[0].value.contains("s=ed"));

    // The same sender, not authenticated and not local: inbound, unsigned.
    let env = envelope(None);
    let out = s
        .scan_message(ScanInput {
            envelope: &env,
            raw: &raw,
            mta_name: Some("mx.test"),
        })
        .await;
    assert!(
        !out.milter
            .add_headers
            .iter()
            .any(|h| h.name == "DKIM-Signature")
    );

    // Authenticated but rejected: not signed.
    let env = envelope(Some("joe@example.com"));
    let raw = message(GTUBE);
    let out = s
        .scan_message(ScanInput {
            envelope: &env,
            raw: &raw,
            mta_name: Some("mx.test"),
        })
        .await;
    assert_eq!(out.verdict.action, Action::Reject);
    assert!(
        !out.milter
            .add_headers
            .iter()
            .any(|h| h.name == "DKIM-Signature")
    );
}
