//! Per-account backoff after failed password sign-ins, beside the per-client
//! limit of the auth routes: rotating addresses (a botnet, an IPv6 block)
//! buys no extra guesses at one account.
//!
//! Failures are counted per address typed (SHA-256 of the lower-cased,
//! trimmed email), whether or not an account has it, so the backoff answers
//! alike for both and reveals nothing. From the `auth.login_failures_before_lock`-th
//! failure on, password sign-in to that address pauses for
//! `auth.login_lock_base_secs`, doubling with each further failure up to
//! `auth.login_lock_max_secs` (OWASP Authentication Cheat Sheet, "Account
//! Lockout": exponential, time-limited, never permanent). While paused, no
//! password is checked and the answer is 429 `login_throttled` with
//! `Retry-After`. A success clears the count. The first pause of a series
//! emails the account's owner (when there is one) with a reset link. Sign-in
//! links and linked providers are unaffected, so an attacker cannot lock the
//! owner out of every way in.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use entity::login_throttle;
use entity::user;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};

use crate::auth::tokens::sha256_hex;
use crate::domain::identity::Identity;
use crate::error::{Error, Result};
use crate::mail::templates;

/// The throttle key of an email as typed at sign-in.
pub fn account_key(email: &str) -> String {
    sha256_hex(&format!("login:{}", email.trim().to_lowercase()))
}

fn throttled(wait_secs: i64) -> Error {
    let wait = std::cmp::max(wait_secs, 1);
    Error::new(
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
        "Too many failed sign-ins for this account",
    )
    .with_detail(format!(
        "Password sign-in is paused; retry in {wait} s, or sign in with an emailed link."
    ))
    .with_retry_after(wait as u64)
}

/// 429 `login_throttled` while password sign-in to `key` is paused.
pub async fn check<C: ConnectionTrait>(db: &C, key: &str) -> Result<()> {
    let Some(row) = login_throttle::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
    else {
        return Ok(());
    };
    let now = Utc::now();
    match row.locked_until {
        Some(until) if until > now => Err(throttled((until - now).num_seconds() + 1)),
        _ => Ok(()),
    }
}

/// The pause after `failures` failures, if any.
fn pause(ctx: &Identity<'_>, failures: i32) -> Option<Duration> {
    let auth = &ctx.config.auth;
    let over = failures - i32::try_from(auth.login_failures_before_lock).unwrap_or(i32::MAX);
    if over < 0 {
        return None;
    }
    let secs = auth
        .login_lock_base_secs
        .saturating_mul(1u64 << over.min(20))
        .min(auth.login_lock_max_secs);
    Some(Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// Counts a failure for `key`; pauses password sign-in once the count
/// reaches the threshold, and at the first pause emails `user` (the account
/// with that address, if any).
pub async fn failed(ctx: &Identity<'_>, key: &str, user: Option<&user::Model>) -> Result<()> {
    use sea_orm::sea_query::ExprTrait;
    let txn = crate::db::begin_write(ctx.db).await?;
    let now = Utc::now();
    // Count atomically (concurrent failures each count), then read the
    // count this transaction holds the row at.
    login_throttle::Entity::insert(login_throttle::ActiveModel {
        account_key: Set(key.to_owned()),
        failures: Set(1),
        locked_until: Set(None),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(login_throttle::Column::AccountKey)
            .value(
                login_throttle::Column::Failures,
                Expr::col((login_throttle::Entity, login_throttle::Column::Failures)).add(1),
            )
            .value(login_throttle::Column::UpdatedAt, now)
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    let failures = login_throttle::Entity::find_by_id(key.to_owned())
        .one(&txn)
        .await?
        .map_or(1, |r| r.failures);
    let pause = pause(ctx, failures);
    if let Some(pause) = pause {
        login_throttle::Entity::update_many()
            .col_expr(
                login_throttle::Column::LockedUntil,
                Expr::value(now + pause),
            )
            .filter(login_throttle::Column::AccountKey.eq(key))
            .exec(&txn)
            .await?;
    }
    let first_pause = i64::from(failures) == i64::from(ctx.config.auth.login_failures_before_lock);
    if let (Some(pause), Some(user), true) = (pause, user, first_pause) {
        let reset = format!("{}/forgot-password", ctx.config.public_base());
        ctx.mailer
            .enqueue(
                &txn,
                &user.email,
                templates::sign_in_locked(failures, std::cmp::max(pause.num_minutes(), 1), &reset),
            )
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Clears `key`'s failures after a successful sign-in.
pub async fn succeeded<C: ConnectionTrait>(db: &C, key: &str) -> Result<()> {
    login_throttle::Entity::delete_by_id(key.to_owned())
        .exec(db)
        .await?;
    Ok(())
}
