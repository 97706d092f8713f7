//! Idempotent `POST`s with Stripe's semantics (Stripe API reference,
//! "Idempotent requests"): a `POST` sent with an `Idempotency-Key` runs
//! once per principal and key; sent again with the same request, it
//! replays the stored status and body; with another request under the same
//! key, 422 `idempotency_key_reused`; while the first is still running, 409
//! `idempotency_in_progress`. Only answers of a request that ran are kept
//! (not 5xx, 429, or 401/403 before it ran): a retry after those runs
//! again. Keys are scoped per principal (a user, or an API key) and kept
//! `idempotency.retention_hours` (24), then purged by the job runner.
//!
//! The claim is an insert under the primary key `(principal, key)`, so of
//! two concurrent requests with one key exactly one runs (on PostgreSQL as
//! on SQLite). A claim left by a process that died mid-request expires
//! after [`LOCK_SECS`] and the next retry takes it over.

use chrono::{Duration, Utc};
use entity::idempotency_key;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use crate::error::Result;

/// How long a running request holds its key before a retry may take over.
pub const LOCK_SECS: i64 = 60;
/// An `Idempotency-Key` (at most [`KEY_MAX`] characters): visible ASCII,
/// spaces inside only (a field value's surrounding white space is not
/// part of it, RFC 9110 §5.5).
pub const KEY_PATTERN: &str = r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$";
/// Longest `Idempotency-Key` (Stripe allows 255 characters).
pub const KEY_MAX: usize = 255;

/// A stored answer to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Headers worth replaying (`content-type`, `location`).
    pub headers: Vec<(String, String)>,
}

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Run it: this request now holds the key.
    Proceed,
    /// Answer with what the first request answered.
    Replay(Stored),
    /// The key was used with another request: 422.
    Mismatch,
    /// The first request is still running: 409.
    InProgress,
}

fn lock_until() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::seconds(LOCK_SECS)
}

/// Claims `key` of `principal` for a request with `fingerprint`.
pub async fn claim(
    db: &DatabaseConnection,
    principal: &str,
    key: &str,
    fingerprint: &str,
) -> Result<Claim> {
    let now = Utc::now();
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        principal: Set(principal.to_owned()),
        key: Set(key.to_owned()),
        fingerprint: Set(fingerprint.to_owned()),
        state: Set("in_progress".into()),
        response_status: Set(None),
        response_body: Set(None),
        response_headers: Set(None),
        created_at: Set(now),
        locked_until: Set(lock_until()),
    })
    .on_conflict(
        OnConflict::columns([
            idempotency_key::Column::Principal,
            idempotency_key::Column::Key,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    if inserted == 1 {
        return Ok(Claim::Proceed);
    }
    let Some(row) = idempotency_key::Entity::find_by_id((principal.to_owned(), key.to_owned()))
        .one(db)
        .await?
    else {
        // Purged between the insert and the read: claim it again.
        return Box::pin(claim(db, principal, key, fingerprint)).await;
    };
    if row.fingerprint != fingerprint {
        return Ok(Claim::Mismatch);
    }
    if row.state == "completed" {
        let headers: Vec<(String, String)> = row
            .response_headers
            .as_deref()
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        return Ok(Claim::Replay(Stored {
            status: row
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200),
            body: row.response_body.unwrap_or_default(),
            headers,
        }));
    }
    if row.locked_until > now {
        return Ok(Claim::InProgress);
    }
    // The first request's process died: take the key over, once.
    let taken = idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::LockedUntil,
            Expr::value(lock_until()),
        )
        .filter(idempotency_key::Column::Principal.eq(principal))
        .filter(idempotency_key::Column::Key.eq(key))
        .filter(idempotency_key::Column::State.eq("in_progress"))
        .filter(idempotency_key::Column::LockedUntil.lte(now))
        .exec(db)
        .await?;
    Ok(if taken.rows_affected == 1 {
        Claim::Proceed
    } else {
        Claim::InProgress
    })
}

/// Stores the answer of the request that holds the key.
pub async fn complete(
    db: &DatabaseConnection,
    principal: &str,
    key: &str,
    stored: &Stored,
) -> Result<()> {
    let headers = serde_json::to_string(&stored.headers).map_err(crate::error::Error::internal)?;
    idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::State, Expr::value("completed"))
        .col_expr(
            idempotency_key::Column::ResponseStatus,
            Expr::value(i32::from(stored.status)),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(stored.body.clone()),
        )
        .col_expr(
            idempotency_key::Column::ResponseHeaders,
            Expr::value(headers),
        )
        .filter(idempotency_key::Column::Principal.eq(principal))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Gives the key back (the request did not run, or failed on our side): a
/// retry runs again.
pub async fn release(db: &DatabaseConnection, principal: &str, key: &str) -> Result<()> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::Principal.eq(principal))
        .filter(idempotency_key::Column::Key.eq(key))
        .filter(idempotency_key::Column::State.eq("in_progress"))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes keys older than `retention` (the cleanup job).
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<u64> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(Utc::now() - retention))
        .exec(db)
        .await?
        .rows_affected)
}
