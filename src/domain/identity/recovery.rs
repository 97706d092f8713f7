//! Password recovery and change: "forgot password" emails a single-use
//! link (30 minutes); resetting with it sets the password and signs out
//! every session; a signed-in user changes the password by giving the
//! current one. Each change is confirmed by email.

use chrono::Utc;
use entity::enums::TokenPurpose;
use entity::user;
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use secrecy::SecretString;

use crate::domain::identity::Identity;
use crate::domain::tenancy::access::Caller;
use crate::domain::validate::{Email, Password};
use crate::domain::{identity::oauth, identity::one_time, identity::throttle, identity::users};
use crate::error::{Error, Result};
use crate::mail::templates;

/// Emails a reset link when the address has an account; answers alike
/// either way (no enumeration). Counted against the per-email limit.
pub async fn forgot(ctx: &Identity<'_>, email: &Email) -> Result<()> {
    let link = one_time::LinkEmail {
        kind: "password_reset",
        purpose: TokenPurpose::PasswordReset,
        ttl_secs: ctx.config.auth.password_reset_ttl_secs,
        path: "/reset-password",
        render: templates::password_reset,
    };
    one_time::email_link(ctx, email, link).await
}

/// Stores a new password for `user`: the email counts as verified (only its
/// owner could have acted on the emailed token or known the old password),
/// every session ends (refresh tokens revoked, access tokens refused from the
/// next request), and with `confirm` a "password changed" email listing the
/// account's sign-in methods, each provider with a removal link, is queued,
/// all in one transaction.
pub(crate) async fn store_password(
    ctx: &Identity<'_>,
    user: user::Model,
    password: Password,
    confirm: bool,
) -> Result<()> {
    let hash = ctx.passwords.hash(password.0).await?;
    let txn = crate::db::begin_write(ctx.db).await?;
    let email = user.email.clone();
    let user_id = user.id;
    let now = Utc::now();
    let mut active = user.into_active_model();
    active.password_hash = Set(Some(hash));
    active.email_verified_at = Set(Some(now));
    active.updated_at = Set(now);
    active.update(&txn).await?;
    crate::auth::sessions::end_all(&txn, user_id).await?;
    if confirm {
        let methods = oauth::method_lines(ctx, &txn, user_id).await?;
        ctx.mailer
            .enqueue(&txn, &email, templates::password_changed(&methods))
            .await?;
    }
    txn.commit().await?;
    ctx.sessions.forget(user_id);
    Ok(())
}

/// Sets a new password from a reset token; every refresh token of the
/// account is revoked. 400 `invalid_token` for a bad, used or expired one.
pub async fn reset(ctx: &Identity<'_>, token: &str, password: Password) -> Result<()> {
    let user = one_time::consume_for_user(ctx.db, TokenPurpose::PasswordReset, token).await?;
    store_password(ctx, user, password, true).await
}

/// Changes the signed-in user's password. 401 `invalid_credentials` when
/// `current` is wrong; every refresh token is revoked (sign in again).
pub async fn change(
    ctx: &Identity<'_>,
    caller: Caller,
    current: SecretString,
    new: Password,
) -> Result<()> {
    let user = users::account(ctx.db, caller.user_id).await?;
    let key = throttle::account_key(&user.email);
    throttle::check(ctx.db, &key).await?;
    if !ctx
        .passwords
        .verify(current, user.password_hash.clone())
        .await?
    {
        throttle::failed(ctx, &key, Some(&user)).await?;
        return Err(Error::unauthorized(
            "invalid_credentials",
            "The current password is incorrect",
        ));
    }
    throttle::succeeded(ctx.db, &key).await?;
    store_password(ctx, user, new, true).await
}
