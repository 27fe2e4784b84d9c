//! The DMARC check's verdict as a report [`Evaluation`]: the one place the
//! verification vocabulary is turned into the reports'.

use super::{
    Alignment, Discovery, Disposition, DkimAuth, DkimResult, Evaluation, Override, OverrideKind,
    Policy, PublishedPolicy, RecordForm, SpfAuth, SpfResult, SpfScope,
};
use crate::dkim::DkimVerdict;
use crate::dmarc::{self, DmarcVerdict};
use crate::results::AuthResult;
use crate::spf::{Identity, SpfVerdict};
use std::net::IpAddr;

/// What the scan knows beside the verdicts.
pub struct Context<'a> {
    pub time: u64,
    pub source_ip: IpAddr,
    /// MAIL FROM's domain, or the HELO name when MAIL FROM is empty.
    pub envelope_from: &'a str,
    pub envelope_to: Option<&'a str>,
    /// The policy was applied (the message was rejected or quarantined as
    /// it asks); `false` when `[dmarc.actions]` leaves it to the score.
    pub enforced: bool,
    /// A trusted ARC sealer's pass forgave the failure.
    pub arc_override: Option<&'a str>,
}

/// `None` when there is nothing to report: no record was found (no `rua`
/// to send to), or the evaluation did not reach pass or fail.
pub fn evaluation(
    v: &DmarcVerdict,
    spf: Option<&SpfVerdict>,
    dkim: &[DkimVerdict],
    cx: &Context<'_>,
) -> Option<Evaluation> {
    let (found_at, record) = v.record.as_ref()?;
    if !matches!(v.result, AuthResult::Pass | AuthResult::Fail) {
        return None;
    }
    // A record with DMARCbis-only tags is reported in the RFC 9990 form.
    let form = if record.np.is_some() || record.testing {
        RecordForm::DmarcBis
    } else {
        RecordForm::Rfc7489
    };
    let mut overrides = Vec::new();
    let disposition = if v.result == AuthResult::Pass {
        Disposition::Pass
    } else if let Some(sealer) = cx.arc_override {
        overrides.push(Override {
            kind: OverrideKind::TrustedForwarder,
            comment: Some(format!("ARC pass sealed by {sealer}")),
        });
        Disposition::None
    } else {
        if v.lowered {
            overrides.push(Override {
                kind: if record.testing {
                    OverrideKind::Other
                } else {
                    OverrideKind::SampledOut
                },
                comment: record.testing.then(|| "t=y (testing)".to_string()),
            });
        }
        match (cx.enforced, v.policy) {
            (true, Some(dmarc::Policy::Reject)) => Disposition::Reject,
            (true, Some(dmarc::Policy::Quarantine)) => Disposition::Quarantine,
            (false, Some(dmarc::Policy::Reject | dmarc::Policy::Quarantine)) => {
                overrides.push(Override {
                    kind: OverrideKind::LocalPolicy,
                    comment: Some("left to the spam score".into()),
                });
                Disposition::None
            }
            _ => Disposition::None,
        }
    };
    Some(Evaluation {
        time: cx.time,
        source_ip: cx.source_ip,
        header_from: v.from_domain.clone(),
        envelope_from: cx.envelope_from.to_ascii_lowercase(),
        envelope_to: cx.envelope_to.map(str::to_ascii_lowercase),
        spf: spf
            .map(|s| SpfAuth {
                domain: s.domain.clone(),
                scope: match s.identity {
                    Identity::MailFrom => SpfScope::Mfrom,
                    Identity::Helo => SpfScope::Helo,
                },
                result: spf_result(s.result),
            })
            .into_iter()
            .collect(),
        dkim: dkim
            .iter()
            .filter(|d| !d.domain.is_empty())
            .map(|d| DkimAuth {
                domain: d.domain.clone(),
                selector: d.selector.clone(),
                result: dkim_result(d.result),
            })
            .collect(),
        spf_aligned: v.spf_aligned,
        dkim_aligned: v.dkim_aligned,
        policy: PublishedPolicy {
            domain: found_at.clone(),
            form,
            p: policy(record.p.unwrap_or(dmarc::Policy::None)),
            sp: record.sp.map(policy),
            np: record.np.map(policy),
            pct: (form == RecordForm::Rfc7489).then_some(record.pct),
            testing: record.testing,
            adkim: alignment(record.adkim),
            aspf: alignment(record.aspf),
            fo: None,
            rua: record.rua.clone(),
            discovery: match form {
                RecordForm::DmarcBis => Discovery::Treewalk,
                RecordForm::Rfc7489 => Discovery::Psl,
            },
        },
        disposition,
        overrides,
    })
}

fn policy(p: dmarc::Policy) -> Policy {
    match p {
        dmarc::Policy::None => Policy::None,
        dmarc::Policy::Quarantine => Policy::Quarantine,
        dmarc::Policy::Reject => Policy::Reject,
    }
}

fn alignment(a: dmarc::Alignment) -> Alignment {
    match a {
        dmarc::Alignment::Relaxed => Alignment::Relaxed,
        dmarc::Alignment::Strict => Alignment::Strict,
    }
}

fn spf_result(r: AuthResult) -> SpfResult {
    match r {
        AuthResult::Pass => SpfResult::Pass,
        AuthResult::Fail => SpfResult::Fail,
        AuthResult::SoftFail => SpfResult::Softfail,
        AuthResult::Neutral => SpfResult::Neutral,
        AuthResult::None => SpfResult::None,
        AuthResult::TempError => SpfResult::Temperror,
        AuthResult::PermError => SpfResult::Permerror,
    }
}

fn dkim_result(r: AuthResult) -> DkimResult {
    match r {
        AuthResult::Pass => DkimResult::Pass,
        AuthResult::Fail | AuthResult::SoftFail => DkimResult::Fail,
        AuthResult::Neutral => DkimResult::Neutral,
        AuthResult::None => DkimResult::None,
        AuthResult::TempError => DkimResult::Temperror,
        AuthResult::PermError => DkimResult::Permerror,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dmarc::Record;

    fn verdict(result: AuthResult, txt: &str) -> DmarcVerdict {
        DmarcVerdict {
            result,
            from_domain: "mail.example.com".into(),
            published: Some(dmarc::Policy::Reject),
            policy: Some(dmarc::Policy::Reject),
            lowered: false,
            spf_aligned: result == AuthResult::Pass,
            dkim_aligned: false,
            reason: None,
            record: Some(("example.com".into(), Record::parse(txt).unwrap())),
        }
    }

    fn cx(enforced: bool) -> Context<'static> {
        Context {
            time: 1_700_000_000,
            source_ip: "192.0.2.1".parse().unwrap(),
            envelope_from: "Example.COM",
            envelope_to: Some("mx.test"),
            enforced,
            arc_override: None,
        }
    }

    #[test]
    fn pass_fail_and_local_policy_dispositions() {
        let rfc = "v=DMARC1; p=reject; rua=mailto:d@example.com";
        let e = evaluation(&verdict(AuthResult::Pass, rfc), None, &[], &cx(true)).unwrap();
        assert_eq!(e.disposition, Disposition::Pass);
        assert_eq!(e.policy.domain, "example.com");
        assert_eq!(e.policy.form, RecordForm::Rfc7489);
        assert_eq!(e.policy.pct, Some(100));
        assert_eq!(e.policy.rua, vec!["mailto:d@example.com".to_string()]);
        assert_eq!(e.envelope_from, "example.com");
        let e = evaluation(&verdict(AuthResult::Fail, rfc), None, &[], &cx(true)).unwrap();
        assert_eq!(e.disposition, Disposition::Reject);
        let e = evaluation(&verdict(AuthResult::Fail, rfc), None, &[], &cx(false)).unwrap();
        assert_eq!(e.disposition, Disposition::None);
        assert_eq!(e.overrides[0].kind, OverrideKind::LocalPolicy);
        let bis = "v=DMARC1; p=reject; np=reject; rua=mailto:d@example.com";
        let e = evaluation(&verdict(AuthResult::Fail, bis), None, &[], &cx(true)).unwrap();
        assert_eq!(e.policy.form, RecordForm::DmarcBis);
        assert_eq!(e.policy.pct, None);
    }

    #[test]
    fn nothing_to_report_without_a_record_or_a_result() {
        let mut v = verdict(AuthResult::Fail, "v=DMARC1; p=none");
        v.result = AuthResult::TempError;
        assert!(evaluation(&v, None, &[], &cx(true)).is_none());
        v.result = AuthResult::Fail;
        v.record = None;
        assert!(evaluation(&v, None, &[], &cx(true)).is_none());
    }
}
