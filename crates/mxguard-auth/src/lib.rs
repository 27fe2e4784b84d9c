//! Email authentication for mxguard, on mail-auth: verification of inbound
//! mail (SPF, DKIM, DMARC, ARC); outbound, DKIM signing, ARC sealing and
//! key generation; and [`report`], DMARC aggregate reports (RFC 7489
//! section 7.2 and RFC 9990): each inbound DMARC evaluation is counted in
//! the store, and once per period a report per reporting domain is built,
//! gzip-attached and sent by SMTP to the domain's `rua` addresses, once.

pub mod keygen;
pub mod keys;
pub mod report;
pub mod seal;
pub mod sign;
