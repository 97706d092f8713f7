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
//! - [`throttle`]: per-account backoff after failed password sign-ins.
//! - [`email_change`]: moving an account to a new address.

pub mod email_change;
pub mod magic_link;
pub mod oauth;
pub mod one_time;
pub mod quota;
pub mod recovery;
pub mod sessions;
pub mod signup;
pub mod throttle;
pub mod users;

use sea_orm::DatabaseConnection;

use crate::auth::passwords::PasswordHasherPool;
use crate::auth::sessions::SessionCache;
use crate::auth::tokens::TokenSigner;
use crate::config::Config;
use crate::mail::Mailer;

/// What accounts and signing in need, and nothing else (no plans, keys,
/// Stripe or authorization): the database, the token signer and the
/// sessions' memo, password hashing, the mailer, the OpenID discovery cache
/// and the configuration (sign-in settings, links, OAuth providers). The
/// composition root builds it (`Services::identity`).
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    /// The database pool.
    pub db: &'a DatabaseConnection,
    /// Access tokens and code hashes.
    pub tokens: &'a TokenSigner,
    /// Which sessions are alive (dropped from it when they end).
    pub sessions: &'a SessionCache,
    /// Discovered OpenID provider metadata.
    pub oidc: &'a crate::integrations::google::Discovery,
    /// argon2id on the blocking pool.
    pub passwords: &'a PasswordHasherPool,
    /// Outgoing email (queued in the caller's transaction).
    pub mailer: &'a Mailer,
    /// Sign-in settings (`auth`), public links, OAuth providers, trial.
    pub config: &'a Config,
}
