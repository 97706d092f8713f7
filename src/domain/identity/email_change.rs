//! Moving an account to a new email address. The signed-in user asks, with
//! a recent authentication (a stolen access token alone cannot redirect the
//! account's sign-in links and resets); a single-use link goes to the new
//! address, and following it moves the account there (the address is then
//! verified) and tells the old address. Links and resets already sent to
//! the old address stop working, since they are bound to it.

use chrono::Utc;
use entity::enums::TokenPurpose;
use entity::user;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use crate::domain::identity::{Identity, one_time, quota, users};
use crate::domain::tenancy::access::Caller;
use crate::domain::validate::Email;
use crate::error::{Error, Result};
use crate::mail::templates;

/// Lifetime of the confirmation link (1 hour).
pub const CONFIRM_TTL_SECS: u64 = 3600;

/// Emails a confirmation link to `new` for the caller's account. 401
/// `reauthentication_required` without a recent authentication; 422 when
/// `new` is the current address; 429 `too_many_requests` past the per-email
/// limit. Answers alike whether or not `new` has an account (it gets no
/// link then; the move could not complete).
pub async fn request(ctx: &Identity<'_>, caller: Caller, new: &Email) -> Result<()> {
    caller.require_recent_auth(ctx.config.auth.reauth_window_secs)?;
    let account = users::account(ctx.db, caller.user_id).await?;
    if account.email == new.as_str() {
        return Err(Error::invalid_field(
            "email",
            "this is already the account's address",
        ));
    }
    let txn = crate::db::begin_write(ctx.db).await?;
    quota::take(
        &txn,
        new.as_str(),
        "email_change",
        ctx.config.auth.email_requests_per_hour,
    )
    .await?;
    let taken = user::Entity::find()
        .filter(user::Column::Email.eq(new.as_str()))
        .one(&txn)
        .await?
        .is_some();
    if !taken {
        let token = one_time::create(
            &txn,
            TokenPurpose::EmailChange,
            Some(account.id),
            new.as_str(),
            CONFIRM_TTL_SECS,
        )
        .await?;
        let url = format!("{}/confirm-email?token={token}", ctx.config.public_base());
        ctx.mailer
            .enqueue(
                &txn,
                new.as_str(),
                templates::email_change(&url, CONFIRM_TTL_SECS / 60),
            )
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Moves the account to the address a confirmation link was sent to. 400
/// `invalid_token` for a bad, used or expired link; 409 `email_taken` when
/// the address got an account meanwhile.
pub async fn confirm(ctx: &Identity<'_>, token: &str) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    let row = one_time::consume(&txn, TokenPurpose::EmailChange, token).await?;
    let user_id = row.user_id.ok_or_else(one_time::invalid_token)?;
    let account = users::account(&txn, user_id).await?;
    let old = account.email.clone();
    let now = Utc::now();
    let mut active = account.into_active_model();
    active.email = Set(row.email.clone());
    active.email_verified_at = Set(Some(now));
    active.updated_at = Set(now);
    active.update(&txn).await.map_err(users::email_taken)?;
    ctx.mailer
        .enqueue(&txn, &old, templates::email_changed(&row.email))
        .await?;
    txn.commit().await?;
    Ok(())
}
