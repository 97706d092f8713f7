//! Sessions: password login (with the per-account backoff of
//! [`super::throttle`]), refresh-token rotation with reuse detection, logout
//! and logout everywhere, re-authentication for sensitive changes (SPEC §5;
//! OAuth 2.0 Security BCP §4.14 on refresh token rotation).
//!
//! Every family of refresh tokens remembers when its user last proved who
//! they are (`auth_time`: a password, a provider or an emailed link); access
//! tokens carry it, and sensitive changes ask for it to be recent
//! ([`crate::domain::tenancy::access::Caller::require_recent_auth`]).
//! A refresh carries the family's time on, so a stolen refresh token never
//! makes a fresh authentication.

use chrono::{DateTime, Duration, Utc};
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
use crate::domain::identity::{Identity, throttle, users};
use crate::domain::tenancy::access::Caller;
use crate::domain::validate::Email;
use crate::error::{Error, Result};

/// What a successful sign-in returns. Its `Debug` shows no token.
#[derive(Serialize, ToSchema)]
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

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[redacted]")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .finish()
    }
}

/// A fresh access token after re-authentication (the refresh token is
/// unchanged). Its `Debug` shows no token.
#[derive(Serialize, ToSchema)]
pub struct AccessToken {
    /// JWT to send as `Authorization: Bearer …`, good for sensitive changes
    /// for `auth.reauth_window_secs`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

fn invalid_refresh() -> Error {
    Error::unauthorized("invalid_refresh_token", "The refresh token is not valid")
}

/// Starts a new refresh-token family for `user`, who has just proved who
/// they are, inside `db` (a transaction or the pool) and signs an access
/// token.
pub async fn issue<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    user: &user::Model,
) -> Result<TokenPair> {
    issue_in_family(ctx, db, user, Uuid::now_v7(), Utc::now()).await
}

async fn owned_business<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<Option<Uuid>> {
    Ok(entity::business::Entity::find()
        .filter(entity::business::Column::OwnerId.eq(user_id))
        .select_only()
        .column(entity::business::Column::Id)
        .into_tuple::<Uuid>()
        .one(db)
        .await?)
}

async fn issue_in_family<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    user: &user::Model,
    family_id: Uuid,
    auth_time: DateTime<Utc>,
) -> Result<TokenPair> {
    let owned = owned_business(db, user.id).await?;
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
        auth_time: Set(Some(auth_time)),
    }
    .insert(db)
    .await?;
    Ok(TokenPair {
        access_token: ctx
            .tokens
            .issue(user.id, user.role, owned, auth_time.timestamp())?,
        token_type: "Bearer",
        expires_in: ctx.tokens.ttl_secs(),
        refresh_token: refresh,
        refresh_expires_in: ttl,
    })
}

/// Password login. 401 `invalid_credentials` alike for an unknown email and a
/// wrong password, after the same argon2 work (no account enumeration); 429
/// `login_throttled` alike for both while the address's failures have
/// paused password sign-in ([`super::throttle`]).
pub async fn login(ctx: &Identity<'_>, email: &str, password: SecretString) -> Result<TokenPair> {
    let fail = || Error::unauthorized("invalid_credentials", "Email or password is incorrect");
    let key = throttle::account_key(email);
    throttle::check(ctx.db, &key).await?;
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
        throttle::failed(ctx, &key, user.as_ref()).await?;
        return Err(fail());
    }
    let user = user.ok_or_else(fail)?;
    throttle::succeeded(ctx.db, &key).await?;
    issue(ctx, ctx.db, &user).await
}

/// A fresh access token for the signed-in caller who gives their password
/// again (for sensitive changes); the refresh token and its family are
/// unchanged. 401 `invalid_credentials` for a wrong password (counted like a
/// failed sign-in); 409 `password_not_set` for an account without one (sign
/// in again with a linked provider instead).
pub async fn reauthenticate(
    ctx: &Identity<'_>,
    caller: Caller,
    password: SecretString,
) -> Result<AccessToken> {
    let user = users::account(ctx.db, caller.user_id).await?;
    let Some(hash) = user.password_hash.clone() else {
        return Err(Error::conflict(
            "password_not_set",
            "This account has no password; sign in again with a linked provider or an emailed link",
        ));
    };
    let key = throttle::account_key(&user.email);
    throttle::check(ctx.db, &key).await?;
    if !ctx.passwords.verify(password, Some(hash)).await? {
        throttle::failed(ctx, &key, Some(&user)).await?;
        return Err(Error::unauthorized(
            "invalid_credentials",
            "The password is incorrect",
        ));
    }
    throttle::succeeded(ctx.db, &key).await?;
    let owned = owned_business(ctx.db, user.id).await?;
    Ok(AccessToken {
        access_token: ctx
            .tokens
            .issue(user.id, user.role, owned, Utc::now().timestamp())?,
        token_type: "Bearer",
        expires_in: ctx.tokens.ttl_secs(),
    })
}

/// Signs the caller out everywhere: every access token issued until now is
/// refused from the next request on, every refresh token revoked.
pub async fn logout_all(ctx: &Identity<'_>, caller: Caller) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    crate::auth::sessions::end_all(&txn, caller.user_id).await?;
    txn.commit().await?;
    ctx.sessions.forget(caller.user_id);
    Ok(())
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
    // Families from before `auth_time` was kept count as never authenticated.
    let auth_time = token.auth_time.unwrap_or(DateTime::UNIX_EPOCH);
    let pair = issue_in_family(ctx, &txn, &user, token.family_id, auth_time).await?;
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

/// Logout: revokes the family of the presented token. Unknown tokens are
/// accepted silently, so logout is idempotent and reveals nothing. The
/// access tokens of that family live out their (short) lifetime; to end them
/// at once, [`logout_all`].
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
