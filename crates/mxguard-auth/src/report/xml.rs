//! The report's XML, in the form the domain's record calls for.
//!
//! Written here rather than with mail-auth's `Report::to_xml`: that one
//! only writes the RFC 9990 form (the `dmarc-2.0` namespace, no `pct`,
//! `testing`), so its output is not valid against RFC 7489's schema, and
//! it writes an empty `<dkim>`/`<spf>` for a result it does not know,
//! which neither schema allows. Both forms below are checked in the tests:
//! the RFC 7489 one against the appendix C schema with xmllint, both by
//! mail-auth's report parser.
//!
//! RFC 7489 form: no namespace (as reports are sent in practice; the
//! schema's target namespace applies only to the root, its elements are
//! unqualified), `version` 1.0, `pct`, `sp` and `fo` always given (their
//! defaults when absent), disposition `pass` reported as `none`, IPv6 source
//! addresses written in full (the schema's pattern has no `::` form), at
//! least one `<spf>` (`none` for the MAIL FROM domain when SPF was not
//! checked).
//!
//! RFC 9990 form: `xmlns="urn:ietf:params:xml:ns:dmarc-2.0"`, version 1.0,
//! `generator`, `np`, `testing` and `discovery_method`, no `pct`.

use super::store::DomainDay;
use super::{
    Alignment, Discovery, Disposition, DkimResult, OverrideKind, Policy, RecordForm, SpfResult,
    SpfScope,
};
use std::fmt::Write;
use std::net::IpAddr;

/// The reporter's side of `<report_metadata>`.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub org_name: String,
    pub email: String,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    pub begin: u64,
    pub end: u64,
    pub errors: Vec<String>,
}

/// The DMARCbis namespace (RFC 9990).
pub const NAMESPACE_2: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// Escapes text for element content; drops characters XML 1.0 forbids.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn policy(p: Policy) -> &'static str {
    match p {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
    }
}

fn alignment(a: Alignment) -> &'static str {
    match a {
        Alignment::Relaxed => "r",
        Alignment::Strict => "s",
    }
}

fn dkim_result(r: DkimResult) -> &'static str {
    match r {
        DkimResult::None => "none",
        DkimResult::Pass => "pass",
        DkimResult::Fail => "fail",
        DkimResult::Policy => "policy",
        DkimResult::Neutral => "neutral",
        DkimResult::Temperror => "temperror",
        DkimResult::Permerror => "permerror",
    }
}

fn spf_result(r: SpfResult) -> &'static str {
    match r {
        SpfResult::None => "none",
        SpfResult::Neutral => "neutral",
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::Softfail => "softfail",
        SpfResult::Temperror => "temperror",
        SpfResult::Permerror => "permerror",
    }
}

fn override_kind(k: OverrideKind) -> &'static str {
    match k {
        OverrideKind::Forwarded => "forwarded",
        OverrideKind::SampledOut => "sampled_out",
        OverrideKind::TrustedForwarder => "trusted_forwarder",
        OverrideKind::MailingList => "mailing_list",
        OverrideKind::LocalPolicy => "local_policy",
        OverrideKind::Other => "other",
    }
}

fn pass_fail(b: bool) -> &'static str {
    if b { "pass" } else { "fail" }
}

/// An IP for `<source_ip>`: IPv6 in full for RFC 7489's pattern.
fn source_ip(ip: IpAddr, form: RecordForm) -> String {
    match (ip, form) {
        (IpAddr::V6(v6), RecordForm::Rfc7489) => {
            let s = v6.segments();
            s.iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":")
        }
        _ => ip.to_string(),
    }
}

/// The whole report document.
pub fn report(meta: &Metadata, day: &DomainDay) -> String {
    let form = day.form();
    let bis = form == RecordForm::DmarcBis;
    let mut x = String::with_capacity(1024 + day.rows.len() * 700);
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if bis {
        let _ = writeln!(x, "<feedback xmlns=\"{NAMESPACE_2}\">");
    } else {
        x.push_str("<feedback>\n");
    }
    x.push_str("  <version>1.0</version>\n");

    x.push_str("  <report_metadata>\n");
    let _ = writeln!(x, "    <org_name>{}</org_name>", escape(&meta.org_name));
    let _ = writeln!(x, "    <email>{}</email>", escape(&meta.email));
    if let Some(info) = &meta.extra_contact_info {
        let _ = writeln!(
            x,
            "    <extra_contact_info>{}</extra_contact_info>",
            escape(info)
        );
    }
    let _ = writeln!(x, "    <report_id>{}</report_id>", escape(&meta.report_id));
    let _ = writeln!(
        x,
        "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>",
        meta.begin, meta.end
    );
    if bis {
        // RFC 9990's schema has at most one <error>.
        if !meta.errors.is_empty() {
            let _ = writeln!(x, "    <error>{}</error>", escape(&meta.errors.join("; ")));
        }
        let _ = writeln!(
            x,
            "    <generator>mxguard {}</generator>",
            env!("CARGO_PKG_VERSION")
        );
    } else {
        for e in &meta.errors {
            let _ = writeln!(x, "    <error>{}</error>", escape(e));
        }
    }
    x.push_str("  </report_metadata>\n");

    let p = &day.policy;
    x.push_str("  <policy_published>\n");
    let _ = writeln!(x, "    <domain>{}</domain>", escape(&p.domain));
    if bis {
        let method = match p.discovery {
            Discovery::Psl => "psl",
            Discovery::Treewalk => "treewalk",
        };
        let _ = writeln!(x, "    <discovery_method>{method}</discovery_method>");
    }
    let _ = writeln!(x, "    <adkim>{}</adkim>", alignment(p.adkim));
    let _ = writeln!(x, "    <aspf>{}</aspf>", alignment(p.aspf));
    let _ = writeln!(x, "    <p>{}</p>", policy(p.p));
    let _ = writeln!(x, "    <sp>{}</sp>", policy(p.sp.unwrap_or(p.p)));
    if bis {
        if let Some(np) = p.np {
            let _ = writeln!(x, "    <np>{}</np>", policy(np));
        }
        let _ = writeln!(
            x,
            "    <testing>{}</testing>",
            if p.testing { "y" } else { "n" }
        );
        if let Some(fo) = &p.fo {
            let _ = writeln!(x, "    <fo>{}</fo>", escape(fo));
        }
    } else {
        let _ = writeln!(x, "    <pct>{}</pct>", p.pct.unwrap_or(100).min(100));
        let _ = writeln!(x, "    <fo>{}</fo>", escape(p.fo.as_deref().unwrap_or("0")));
    }
    x.push_str("  </policy_published>\n");

    for (row, count) in &day.rows {
        x.push_str("  <record>\n    <row>\n");
        let _ = writeln!(
            x,
            "      <source_ip>{}</source_ip>",
            source_ip(row.source_ip, form)
        );
        let _ = writeln!(x, "      <count>{count}</count>");
        let disposition = match (row.disposition, bis) {
            (Disposition::None, _) | (Disposition::Pass, false) => "none",
            (Disposition::Pass, true) => "pass",
            (Disposition::Quarantine, _) => "quarantine",
            (Disposition::Reject, _) => "reject",
        };
        let _ = writeln!(
            x,
            "      <policy_evaluated>\n        <disposition>{disposition}</disposition>\n        <dkim>{}</dkim>\n        <spf>{}</spf>",
            pass_fail(row.dkim_aligned),
            pass_fail(row.spf_aligned)
        );
        for o in &row.overrides {
            let _ = write!(
                x,
                "        <reason>\n          <type>{}</type>\n",
                override_kind(o.kind)
            );
            if let Some(c) = &o.comment {
                let _ = writeln!(x, "          <comment>{}</comment>", escape(c));
            }
            x.push_str("        </reason>\n");
        }
        x.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
        if let Some(to) = &row.envelope_to {
            let _ = writeln!(x, "      <envelope_to>{}</envelope_to>", escape(to));
        }
        let _ = writeln!(
            x,
            "      <envelope_from>{}</envelope_from>",
            escape(&row.envelope_from)
        );
        let _ = writeln!(
            x,
            "      <header_from>{}</header_from>",
            escape(&row.header_from)
        );
        x.push_str("    </identifiers>\n    <auth_results>\n");
        for d in &row.dkim {
            let _ = writeln!(
                x,
                "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>",
                escape(&d.domain),
                escape(&d.selector),
                dkim_result(d.result)
            );
        }
        let mut spf: Vec<_> = row
            .spf
            .iter()
            .map(|s| (s.domain.as_str(), s.scope, s.result))
            .collect();
        if spf.is_empty() {
            // RFC 7489: "There will always be at least one SPF result."
            let domain = if row.envelope_from.is_empty() {
                &row.header_from
            } else {
                &row.envelope_from
            };
            spf.push((domain, SpfScope::Mfrom, SpfResult::None));
        }
        for (domain, scope, result) in spf {
            let scope = match scope {
                SpfScope::Mfrom => "mfrom",
                SpfScope::Helo => "helo",
            };
            let _ = writeln!(
                x,
                "      <spf>\n        <domain>{}</domain>\n        <scope>{scope}</scope>\n        <result>{}</result>\n      </spf>",
                escape(domain),
                spf_result(result)
            );
        }
        x.push_str("    </auth_results>\n  </record>\n");
    }
    x.push_str("</feedback>\n");
    x
}
