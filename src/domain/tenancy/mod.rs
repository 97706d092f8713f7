//! Tenants and who may reach them (SPEC §1, §3).
//!
//! - [`access`]: the one place a caller becomes allowed into a business
//!   (casbin decision included).
//! - [`businesses`]: the tenant itself.
//! - [`companies`]: a business's companies.
//! - [`managers`]: manager accounts and their assignments (at most one per
//!   business).
//! - [`stats`]: platform statistics for admins.

pub mod access;
pub mod businesses;
pub mod companies;
pub mod managers;
pub mod stats;
