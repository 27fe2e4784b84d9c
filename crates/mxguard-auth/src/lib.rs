//! mxguard-auth: email authentication, inbound and outbound.
//!
//! [`report`]: DMARC aggregate reports (RFC 7489 section 7.2 and RFC 9990):
//! each inbound DMARC evaluation is counted in the store, and once per
//! period a report per reporting domain is built, gzip-attached and sent
//! by SMTP to the domain's `rua` addresses, exactly once.

pub mod report;
