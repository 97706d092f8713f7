//! Registration (SPEC §5): email → 6-digit code (10 minutes, single use,
//! 5 attempts, stored as a keyed hash) → registration token → password, name
//! and business → a business on a 7-day trial owned by the new user.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use entity::enums::{Role, TokenPurpose};
use entity::{registration, user};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use crate::auth::tokens::{digest_eq, six_digit_code};
use crate::domain::identity::Identity;
use crate::domain::identity::sessions::{self, TokenPair};
use crate::domain::validate::{self, Email, Password};
use crate::domain::{identity::one_time, identity::quota, identity::users, tenancy::businesses};
use crate::error::{Error, Result};
use crate::mail::templates;

/// Step 1: emails a code. Answers the same whether or not the address is
/// taken (a taken address gets a "sign in instead" email), so it reveals
/// nothing. A taken address gets a pending registration too, with a code
/// that is sent nowhere and never accepted, so that step 2 answers a wrong
/// code alike for both (attempts counted and remaining). Any earlier pending
/// code of the address dies. The email is queued in the same transaction as
/// the code. 429 `too_many_requests` past the per-email limit.
pub async fn start(ctx: &Identity<'_>, email: &Email) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    quota::take(
        &txn,
        email.as_str(),
        "registration",
        ctx.config.auth.email_requests_per_hour,
    )
    .await?;
    let taken = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?
        .is_some();
    let code = six_digit_code();
    let id = Uuid::now_v7();
    let now = Utc::now();
    let ttl = ctx.config.auth.code_ttl_secs;
    registration::Entity::delete_many()
        .filter(registration::Column::Email.eq(email.as_str()))
        .filter(registration::Column::VerifiedAt.is_null())
        .exec(&txn)
        .await?;
    registration::ActiveModel {
        id: Set(id),
        email: Set(email.as_str().to_owned()),
        code_hash: Set(ctx.tokens.hash_code(id.as_bytes(), &code)),
        attempts: Set(0),
        expires_at: Set(now + Duration::seconds(ttl as i64)),
        verified_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let message = if taken {
        templates::already_registered()
    } else {
        templates::verification_code(&code, ttl / 60)
    };
    ctx.mailer.enqueue(&txn, email.as_str(), message).await?;
    txn.commit().await?;
    Ok(())
}

/// A verification code: six digits.
pub const CODE_PATTERN: &str = r"^[0-9]{6}$";

fn invalid_code() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_code",
        "The code is invalid or expired",
    )
}

/// Step 2: checks the code. Every attempt is counted before the comparison
/// (atomically), so parallel guesses cannot exceed the limit. Returns a
/// registration token for step 3.
pub async fn verify(ctx: &Identity<'_>, email: &Email, code: &str) -> Result<String> {
    if !validate::matches(CODE_PATTERN, code) {
        return Err(invalid_code());
    }
    let max = ctx.config.auth.code_max_attempts as i32;
    let now = Utc::now();
    let reg = registration::Entity::find()
        .filter(registration::Column::Email.eq(email.as_str()))
        .filter(registration::Column::VerifiedAt.is_null())
        .order_by_desc(registration::Column::Id)
        .one(ctx.db)
        .await?
        .ok_or_else(invalid_code)?;
    if reg.expires_at <= now {
        return Err(invalid_code());
    }
    let counted = registration::Entity::update_many()
        .col_expr(
            registration::Column::Attempts,
            Expr::col(registration::Column::Attempts).add(1),
        )
        .filter(registration::Column::Id.eq(reg.id))
        .filter(registration::Column::Attempts.lt(max))
        .filter(registration::Column::VerifiedAt.is_null())
        .exec(ctx.db)
        .await?;
    if counted.rows_affected != 1 {
        return Err(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "code_attempts_exceeded",
            "Too many wrong codes",
        )
        .with_detail("Ask for a new code."));
    }
    let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
    let matches = well_formed
        && digest_eq(
            &ctx.tokens.hash_code(reg.id.as_bytes(), code),
            &reg.code_hash,
        );
    // A taken address's code was sent nowhere: even a lucky guess is wrong.
    let taken = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(ctx.db)
        .await?
        .is_some();
    if !matches || taken {
        let remaining = max - (reg.attempts + 1);
        return Err(invalid_code().with("attempts_remaining", Ord::max(remaining, 0)));
    }
    let txn = crate::db::begin_write(ctx.db).await?;
    let marked = registration::Entity::update_many()
        .col_expr(registration::Column::VerifiedAt, Expr::value(now))
        .filter(registration::Column::Id.eq(reg.id))
        .filter(registration::Column::VerifiedAt.is_null())
        .exec(&txn)
        .await?;
    if marked.rows_affected != 1 {
        return Err(invalid_code());
    }
    let token = one_time::create(
        &txn,
        TokenPurpose::Registration,
        None,
        email.as_str(),
        ctx.config.auth.registration_token_ttl_secs,
    )
    .await?;
    txn.commit().await?;
    Ok(token)
}

/// What step 3 needs.
pub struct Completion {
    /// Token from step 2.
    pub registration_token: String,
    /// The new password.
    pub password: Password,
    /// The owner's full name.
    pub full_name: String,
    /// The business's name.
    pub business_name: String,
}

/// Step 3: creates the owner and the business on trial, signs them in.
/// 409 `email_taken` if the address was registered meanwhile.
pub async fn complete(ctx: &Identity<'_>, input: Completion) -> Result<TokenPair> {
    let full_name = validate::name("full_name", &input.full_name, validate::NAME_MAX)?;
    let business_name = validate::name("business_name", &input.business_name, validate::NAME_MAX)?;
    let password_hash = ctx.passwords.hash(input.password.0).await?;
    let now = Utc::now();
    let txn = crate::db::begin_write(ctx.db).await?;
    let token =
        one_time::consume(&txn, TokenPurpose::Registration, &input.registration_token).await?;
    let user_id = Uuid::now_v7();
    let user = user::ActiveModel {
        id: Set(user_id),
        email: Set(token.email.clone()),
        password_hash: Set(Some(password_hash)),
        full_name: Set(full_name),
        role: Set(Role::Owner),
        email_verified_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        sessions_valid_after: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(users::email_taken)?;
    businesses::new_on_trial(ctx.config, user_id, business_name, now)
        .insert(&txn)
        .await?;
    let pair = sessions::issue(ctx, &txn, &user).await?;
    txn.commit().await?;
    Ok(pair)
}
