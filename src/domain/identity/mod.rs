//! Accounts and signing in (SPEC §5 "Registration", "Sessions").
//!
//! - [`signup`]: email → 6-digit code → password → business on trial.
//! - [`sessions`]: password login, access and refresh tokens (rotation,
//!   reuse detection), logout.
//! - [`recovery`]: forgotten and changed passwords.
//! - [`magic_link`]: sign-in links by email.
//! - [`oauth`]: Google (OpenID Connect) and Facebook sign-in and linking.
//! - [`one_time`]: hashed single-use tokens behind links and exchanges.
//! - [`users`]: the signed-in account.
//! - [`quota`]: per-address limits on emailed requests.

pub mod magic_link;
pub mod oauth;
pub mod one_time;
pub mod quota;
pub mod recovery;
pub mod sessions;
pub mod signup;
pub mod users;
