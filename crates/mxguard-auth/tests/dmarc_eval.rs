//! DMARC evaluation through a DNS server on loopback: policy discovery by
//! the tree walk (`sp`, `np` for a name that does not exist), both record
//! forms, testing mode, `pct=0`, alignment modes, DNS failure and broken
//! records, with SPF and DKIM results given as the checks would.

mod common;

use common::{Rec, Zone};
use mxguard_auth::Verifier;
use mxguard_auth::dkim::DkimVerdict;
use mxguard_auth::dmarc::{self, Policy};
use mxguard_auth::results::AuthResult;
use mxguard_auth::spf::{Identity, SpfVerdict};

fn spf(result: AuthResult, domain: &str) -> SpfVerdict {
    SpfVerdict {
        result,
        domain: domain.into(),
        identity: Identity::MailFrom,
        checked: format!("a@{domain}"),
    }
}

fn dkim(result: AuthResult, domain: &str) -> DkimVerdict {
    DkimVerdict {
        result,
        domain: domain.into(),
        selector: "s".into(),
        identity: String::new(),
        reason: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_alignment_and_failures() {
    let mut z = Zone::default();
    z.add_txt(
        "_dmarc.example.com",
        b"v=DMARC1; p=reject; sp=quarantine; np=reject; adkim=s",
    );
    z.add("www.example.com", Rec::A("192.0.2.1".parse().unwrap()));
    z.add_txt("_dmarc.old.example", b"v=DMARC1; p=quarantine; pct=0");
    z.add_txt("_dmarc.testing.example", b"v=DMARC1; p=reject; t=y");
    z.add_txt("_dmarc.broken.example", b"v=DMARC1; p=maybe");
    z.add("_dmarc.slow.example", Rec::Timeout);
    z.add_txt("_dmarc.none.example", b"v=DMARC1; p=none");
    let server = common::serve(z).await;
    let dns = common::dns(server);
    let v = Verifier::new(&dns);
    let eval = |from: &str, s: Option<SpfVerdict>, d: Vec<DkimVerdict>| {
        let v = v.clone();
        let from = vec![from.to_string()];
        async move { dmarc::evaluate(&v, &from, s.as_ref(), &d).await }
    };

    // Relaxed SPF alignment: a subdomain's pass aligns with its parent.
    let r = eval(
        "example.com",
        Some(spf(AuthResult::Pass, "bounce.example.com")),
        vec![],
    )
    .await;
    assert_eq!(r.result, AuthResult::Pass, "{r:?}");
    assert!(r.spf_aligned);
    // adkim=s: a subdomain's DKIM pass does not align; no SPF: fail, p=reject.
    let r = eval(
        "example.com",
        None,
        vec![dkim(AuthResult::Pass, "mail.example.com")],
    )
    .await;
    assert_eq!(
        (r.result, r.policy),
        (AuthResult::Fail, Some(Policy::Reject)),
        "{r:?}"
    );
    // Another organisation's pass never aligns.
    let r = eval(
        "example.com",
        Some(spf(AuthResult::Pass, "example.net")),
        vec![],
    )
    .await;
    assert_eq!(r.result, AuthResult::Fail);
    // An existing subdomain without its own record: sp.
    let r = eval("www.example.com", None, vec![]).await;
    assert_eq!(r.policy, Some(Policy::Quarantine), "{r:?}");
    // A subdomain that does not exist (NXDOMAIN): np (RFC 9989).
    let r = eval("ghost.example.com", None, vec![]).await;
    assert_eq!(r.policy, Some(Policy::Reject), "{r:?}");
    // The older form's pct=0: the policy one step lower, every time.
    let r = eval("old.example", None, vec![]).await;
    assert_eq!(
        (r.result, r.published, r.policy),
        (
            AuthResult::Fail,
            Some(Policy::Quarantine),
            Some(Policy::None)
        )
    );
    assert!(r.lowered);
    // Testing mode: reject applied as quarantine.
    let r = eval("testing.example", None, vec![]).await;
    assert_eq!(r.policy, Some(Policy::Quarantine));
    // A broken record, a DNS time-out, no record at all.
    assert_eq!(
        eval("broken.example", None, vec![]).await.result,
        AuthResult::PermError
    );
    assert_eq!(
        eval("slow.example", None, vec![]).await.result,
        AuthResult::TempError
    );
    assert_eq!(
        eval("nothing.example", None, vec![]).await.result,
        AuthResult::None
    );
    // An aligned DKIM temporary error: neither pass nor fail.
    let r = eval(
        "none.example",
        None,
        vec![dkim(AuthResult::TempError, "none.example")],
    )
    .await;
    assert_eq!(r.result, AuthResult::TempError);
    // Two author domains: the failing one is not hidden by the passing one.
    let both = vec!["none.example".to_string(), "example.com".to_string()];
    let r = dmarc::evaluate(&v, &both, Some(&spf(AuthResult::Pass, "none.example")), &[]).await;
    assert_eq!(
        (r.result, r.from_domain.as_str()),
        (AuthResult::Fail, "example.com"),
        "{r:?}"
    );
}
