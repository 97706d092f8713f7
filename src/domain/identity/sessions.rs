//! Sessions: password login, refresh-token rotation with reuse detection,
//! logout (SPEC §5; OAuth 2.0 Security BCP §4.14 on refresh token rotation).

use chrono::{Duration, Utc};
use entity::{refresh_token, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
};
use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens::{opaque_token, sha256_hex};
use crate::domain::identity::Identity;
use crate::domain::validate::Email;
use crate::error::{Error, Result};

/// What a successful sign-in returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime in seconds.
    pub expires_in: u64,
    /// Opaque, single-use token for `POST /v1/auth/refresh`.
    pub refresh_token: String,
    /// Refresh-token lifetime in seconds.
    pub refresh_expires_in: u64,
}

fn invalid_refresh() -> Error {
    Error::unauthorized("invalid_refresh_token", "The refresh token is not valid")
}

/// Starts a new refresh-token family for `user` inside `db` (a transaction
/// or the pool) and signs an access token.
pub async fn issue<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    user: &user::Model,
) -> Result<TokenPair> {
    issue_in_family(ctx, db, user, Uuid::now_v7()).await
}

async fn issue_in_family<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    user: &user::Model,
    family_id: Uuid,
) -> Result<TokenPair> {
    let owned = entity::business::Entity::find()
        .filter(entity::business::Column::OwnerId.eq(user.id))
        .select_only()
        .column(entity::business::Column::Id)
        .into_tuple::<Uuid>()
        .one(db)
        .await?;
    let refresh = opaque_token();
    let ttl = ctx.config.auth.refresh_token_ttl_secs;
    let now = Utc::now();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        family_id: Set(family_id),
        token_hash: Set(sha256_hex(&refresh)),
        expires_at: Set(now + Duration::seconds(ttl as i64)),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(TokenPair {
        access_token: ctx.tokens.issue(user.id, user.role, owned)?,
        token_type: "Bearer",
        expires_in: ctx.tokens.ttl_secs(),
        refresh_token: refresh,
        refresh_expires_in: ttl,
    })
}

/// Password login. 401 `invalid_credentials` alike for an unknown email and a
/// wrong password, after the same argon2 work (no account enumeration).
pub async fn login(ctx: &Identity<'_>, email: &str, password: SecretString) -> Result<TokenPair> {
    let fail = || Error::unauthorized("invalid_credentials", "Email or password is incorrect");
    // A malformed email cannot exist; still spend the hashing work.
    let user = match Email::parse("email", email) {
        Ok(email) => {
            user::Entity::find()
                .filter(user::Column::Email.eq(email.as_str()))
                .one(ctx.db)
                .await?
        }
        Err(_) => None,
    };
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    if !ctx.passwords.verify(password, hash).await? {
        return Err(fail());
    }
    let user = user.ok_or_else(fail)?;
    issue(ctx, ctx.db, &user).await
}

/// Rotates a refresh token: the presented one is consumed and a new one of
/// the same family returned. Presenting a consumed or revoked token revokes
/// the whole family (401 `refresh_token_reused`).
pub async fn refresh(ctx: &Identity<'_>, presented: &str) -> Result<TokenPair> {
    let hash = sha256_hex(presented);
    let token = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(ctx.db)
        .await?
        .ok_or_else(invalid_refresh)?;
    let now = Utc::now();
    if token.used_at.is_some() || token.revoked_at.is_some() {
        revoke_family(ctx.db, token.family_id).await?;
        return Err(reused());
    }
    if token.expires_at <= now {
        return Err(invalid_refresh());
    }
    let txn = crate::db::begin_write(ctx.db).await?;
    // Consume atomically: of two concurrent uses, exactly one wins; the
    // other is a reuse.
    let consumed = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(token.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if consumed.rows_affected != 1 {
        txn.rollback().await?;
        revoke_family(ctx.db, token.family_id).await?;
        return Err(reused());
    }
    let user = user::Entity::find_by_id(token.user_id)
        .one(&txn)
        .await?
        .ok_or_else(invalid_refresh)?;
    let pair = issue_in_family(ctx, &txn, &user, token.family_id).await?;
    txn.commit().await?;
    Ok(pair)
}

fn reused() -> Error {
    Error::unauthorized(
        "refresh_token_reused",
        "This refresh token was already used; every session of its family is now signed out",
    )
}

/// Revokes every live token of a family.
pub async fn revoke_family<C: ConnectionTrait>(db: &C, family_id: Uuid) -> Result<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Revokes every live refresh token of a user (password set or changed).
pub async fn revoke_user<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Logout: revokes the family of the presented token. Unknown tokens are
/// accepted silently, so logout is idempotent and reveals nothing.
pub async fn logout(ctx: &Identity<'_>, presented: &str) -> Result<()> {
    if let Some(token) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(sha256_hex(presented)))
        .one(ctx.db)
        .await?
    {
        revoke_family(ctx.db, token.family_id).await?;
    }
    Ok(())
}
