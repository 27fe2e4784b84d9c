//! Email authentication for mxguard, on mail-auth: verification of inbound
//! mail (SPF, DKIM, DMARC, ARC) and, outbound, DKIM signing, ARC sealing
//! and key generation.

pub mod keygen;
pub mod keys;
pub mod seal;
pub mod sign;
