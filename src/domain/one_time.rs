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
use crate::error::{Error, Result};

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

/// Consumes a live token of `purpose`. 400 `invalid_token` when it is
/// unknown, of another purpose, expired or already used; of two concurrent
/// consumptions exactly one succeeds.
pub async fn consume<C: ConnectionTrait>(
    db: &C,
    purpose: TokenPurpose,
    presented: &str,
) -> Result<one_time_token::Model> {
    let invalid = || {
        Error::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_token",
            "The token is invalid or expired",
        )
    };
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
