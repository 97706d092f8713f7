//! Single-use tokens sent by email or handed to a client between steps
//! (registration completion, set-password links). Random 256-bit, stored as
//! SHA-256, bound to an email and a purpose, expiring, consumed atomically.

use chrono::{Duration, Utc};
use entity::enums::TokenPurpose;
use entity::one_time_token;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::auth::tokens::{opaque_token, sha256_hex};
use crate::domain::identity::Identity;
use crate::domain::identity::quota;
use crate::domain::validate::Email;
use crate::error::{Error, Result};
use crate::mail::Rendered;

/// Creates a token for `purpose`, valid `ttl_secs`; returns its plaintext,
/// which exists nowhere else.
pub async fn create<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    user_id: Option<Uuid>,
    email: &str,
    ttl_secs: u64,
) -> Result<String> {
    let token = opaque_token();
    let now = Utc::now();
    one_time_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        purpose: Set(purpose),
        user_id: Set(user_id),
        email: Set(email.to_owned()),
        token_hash: Set(sha256_hex(&token)),
        expires_at: Set(now + Duration::seconds(ttl_secs as i64)),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Like [`create`], for a token that acts on one thing (`subject`, e.g. a
/// linked identity): the plaintext is `{subject}.{random}` and its hash
/// covers both, so the subject cannot be swapped; [`consume_subject`] reads
/// it back.
pub async fn create_for_subject<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    user_id: Uuid,
    email: &str,
    ttl_secs: u64,
    subject: Uuid,
) -> Result<String> {
    let token = format!("{}.{}", subject.simple(), opaque_token());
    let now = Utc::now();
    one_time_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        purpose: Set(purpose),
        user_id: Set(Some(user_id)),
        email: Set(email.to_owned()),
        token_hash: Set(sha256_hex(&token)),
        expires_at: Set(now + Duration::seconds(ttl_secs as i64)),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// Consumes a token made by [`create_for_subject`]: its row and its subject.
pub async fn consume_subject<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    presented: &str,
) -> Result<(one_time_token::Model, Uuid)> {
    let subject = presented
        .split_once('.')
        .and_then(|(s, _)| Uuid::try_parse(s).ok())
        .ok_or_else(invalid_token)?;
    let token = consume(db, purpose, presented).await?;
    Ok((token, subject))
}

/// 400 `invalid_token`: unknown, of another purpose, expired or used.
pub fn invalid_token() -> Error {
    Error::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_token",
        "The token is invalid or expired",
    )
}

/// Consumes a live token of `purpose` that acts for a user, and returns that
/// user, who must still have the address the token was sent to; otherwise
/// 400 `invalid_token`.
pub async fn consume_for_user<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    presented: &str,
) -> Result<entity::user::Model> {
    let token = consume(db, purpose, presented).await?;
    let user_id = token.user_id.ok_or_else(invalid_token)?;
    entity::user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .filter(|u| u.email == token.email)
        .ok_or_else(invalid_token)
}

/// Consumes a live token of `purpose`. 400 `invalid_token` when it is
/// unknown, of another purpose, expired or already used; of two concurrent
/// consumptions exactly one succeeds.
pub async fn consume<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    presented: &str,
) -> Result<one_time_token::Model> {
    let invalid = invalid_token;
    let now = Utc::now();
    let token = one_time_token::Entity::find()
        .filter(one_time_token::Column::TokenHash.eq(sha256_hex(presented)))
        .filter(one_time_token::Column::Purpose.eq(purpose))
        .one(db)
        .await?
        .ok_or_else(invalid)?;
    if token.used_at.is_some() || token.expires_at <= now {
        return Err(invalid());
    }
    let res = one_time_token::Entity::update_many()
        .col_expr(one_time_token::Column::UsedAt, Expr::value(now))
        .filter(one_time_token::Column::Id.eq(token.id))
        .filter(one_time_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    if res.rows_affected != 1 {
        return Err(invalid());
    }
    Ok(token)
}

/// An emailed single-use link: what differs between "forgot password" and
/// "magic link".
pub struct LinkEmail {
    /// Counter kind for the per-email limit.
    pub kind: &'static str,
    /// Token purpose.
    pub purpose: TokenPurpose,
    /// Token lifetime in seconds.
    pub ttl_secs: u64,
    /// Front-end path the link opens, e.g. `/reset-password`.
    pub path: &'static str,
    /// The email, from the link URL and the lifetime in minutes.
    pub render: fn(&str, u64) -> Rendered,
}

/// Counts the request against the per-email limit, then, if the address has
/// an account, creates a token and queues the email with its link, all in
/// one transaction. Answers alike whether or not the account exists.
pub async fn email_link(ctx: &Identity<'_>, email: &Email, link: LinkEmail) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    quota::take(
        &txn,
        email.as_str(),
        link.kind,
        ctx.config.auth.email_requests_per_hour,
    )
    .await?;
    let user = entity::user::Entity::find()
        .filter(entity::user::Column::Email.eq(email.as_str()))
        .one(&txn)
        .await?;
    if let Some(user) = user {
        let token = create(
            &txn,
            link.purpose,
            Some(user.id),
            email.as_str(),
            link.ttl_secs,
        )
        .await?;
        let url = format!("{}{}?token={token}", ctx.config.public_base(), link.path);
        ctx.mailer
            .enqueue(
                &txn,
                email.as_str(),
                (link.render)(&url, link.ttl_secs / 60),
            )
            .await?;
    }
    txn.commit().await?;
    Ok(())
}
