//! Business rules, independent of HTTP: plans and entitlements, sign-up and
//! sessions, tenants, companies, channels and manager assignment. Every
//! lookup of a tenant-owned row takes the business it must belong to.

pub mod access;
pub mod audit;
pub mod billing;
pub mod businesses;
pub mod channels;
pub mod companies;
pub mod magic_link;
pub mod managers;
pub mod oauth;
pub mod one_time;
pub mod pagination;
pub mod plans;
pub mod quota;
pub mod recovery;
pub mod secrets;
pub mod sessions;
pub mod signup;
pub mod stats;
pub mod users;
pub mod validate;
