//! The secret vault (SPEC §3 "Integration secret"): every token and key of
//! a business's connections, envelope-encrypted ([`crate::crypto`]), listed
//! masked, revealed only through an audited action, rotated under a new
//! key-encryption key, and crypto-shredded on delete.

pub mod secrets;
