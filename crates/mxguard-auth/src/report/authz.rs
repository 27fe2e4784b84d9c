//! External destinations: may this address receive the domain's reports?
//!
//! RFC 7489 section 7.1 (kept by RFC 9990 section 4): when a `rua`
//! address's organisational domain differs from the policy domain's, the
//! destination must publish `<policy-domain>._report._dmarc.<dest-domain>`
//! TXT starting with `v=DMARC1`; otherwise reports to it would let anyone
//! aim a domain's reports at a third party. (The record's own `rua=`
//! override is not followed: the address stays the one the policy named.)

use mxguard_dns::Dns;
use mxguard_message::domain::organisational;
use std::future::Future;
use std::pin::Pin;

/// A TXT lookup: records found (empty: none, or no such name) or a
/// failure. [`Dns`] in production; a table in unit tests.
pub trait TxtLookup: Send + Sync {
    fn txt<'a>(
        &'a self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + 'a>>;
}

impl TxtLookup for Dns {
    fn txt<'a>(
        &'a self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + 'a>> {
        Box::pin(async move { Dns::txt(self, name).await.map_err(|e| e.to_string()) })
    }
}

/// The decision for one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Same organisational domain as the policy: no record needed.
    Internal,
    /// External, and the destination published the record.
    Authorised,
    /// External without the record: dropped (with the name asked).
    NotAuthorised(String),
    /// The lookup failed: try the report again later.
    LookupFailed(String),
}

/// Whether `dest_domain` may receive `policy_domain`'s reports.
pub async fn check(dns: &dyn TxtLookup, policy_domain: &str, dest_domain: &str) -> Decision {
    let policy_domain = policy_domain.trim_end_matches('.').to_ascii_lowercase();
    let dest_domain = dest_domain.trim_end_matches('.').to_ascii_lowercase();
    if organisational(&policy_domain) == organisational(&dest_domain) {
        return Decision::Internal;
    }
    let name = format!("{policy_domain}._report._dmarc.{dest_domain}");
    if name.len() > 253 {
        return Decision::NotAuthorised(format!("{name} is longer than a DNS name can be"));
    }
    match dns.txt(&name).await {
        Err(e) => Decision::LookupFailed(e),
        Ok(records) => {
            let authorised = records.iter().any(|r| {
                let r = r.trim_start();
                // `v=DMARC1` ends the record or is followed by `;`.
                r.get(..8)
                    .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
                    && r.get(8..).is_some_and(|rest| {
                        let rest = rest.trim_start();
                        rest.is_empty() || rest.starts_with(';')
                    })
            });
            if authorised {
                Decision::Authorised
            } else {
                Decision::NotAuthorised(name)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A fixed table of TXT answers; a name mapped to `Err` fails.
    pub(crate) struct Table(pub HashMap<String, Result<Vec<String>, String>>);

    impl TxtLookup for Table {
        fn txt<'a>(
            &'a self,
            name: &'a str,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send + 'a>> {
            let answer = self.0.get(name).cloned().unwrap_or(Ok(Vec::new()));
            Box::pin(async move { answer })
        }
    }

    fn table(entries: &[(&str, Result<&[&str], &str>)]) -> Table {
        Table(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        v.map(|r| r.iter().map(|s| s.to_string()).collect())
                            .map_err(str::to_string),
                    )
                })
                .collect(),
        )
    }

    #[tokio::test]
    async fn decisions() {
        let t = table(&[
            (
                "example.com._report._dmarc.reports.example.net",
                Ok(&["v=DMARC1"]),
            ),
            (
                "example.com._report._dmarc.semi.example",
                Ok(&["v=dmarc1; rua=mailto:x@y.example"]),
            ),
            (
                "example.com._report._dmarc.wrong.example",
                Ok(&["v=DMARC10", "v=spf1 -all"]),
            ),
            ("example.com._report._dmarc.broken.example", Err("SERVFAIL")),
        ]);
        assert_eq!(
            check(&t, "example.com", "example.com").await,
            Decision::Internal
        );
        assert_eq!(
            check(&t, "mail.example.com", "Reports.Example.COM.").await,
            Decision::Internal
        );
        assert_eq!(
            check(&t, "example.com", "reports.example.net").await,
            Decision::Authorised
        );
        assert_eq!(
            check(&t, "example.com", "semi.example").await,
            Decision::Authorised
        );
        assert!(
            matches!(check(&t, "example.com", "wrong.example").await, Decision::NotAuthorised(n) if n == "example.com._report._dmarc.wrong.example")
        );
        assert!(matches!(
            check(&t, "example.com", "nothing.example").await,
            Decision::NotAuthorised(_)
        ));
        assert!(
            matches!(check(&t, "example.com", "broken.example").await, Decision::LookupFailed(e) if e == "SERVFAIL")
        );
    }
}
