//! `cleanup.purge` (hourly, first a minute after start): deletes dead rows —
//! expired sign-up codes, one-time tokens, OAuth states and refresh tokens,
//! per-email request counters past their window, failed-sign-in counts idle
//! for a day — once they are a day past use, sent or failed emails (their
//! bodies are already erased) after `outbox_retention_days`, and stored
//! `Idempotency-Key` answers after `idempotency_retention_hours`. Nothing
//! here is needed after expiry; keeping it would only grow the tables and
//! the data held.

use chrono::Utc;
use entity::email::{outbox, request};
use entity::login_throttle;
use entity::oauth::state as oauth_state;
use entity::{one_time_token, refresh_token, registration};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use super::queue::{Task, kind};
use super::runner::Failure;

use crate::state::AppState;

/// How long past expiry a row is kept (for support and debugging).
pub const GRACE: chrono::Duration = chrono::Duration::days(1);
/// The hourly purge (recurring; no payload).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Purge;

impl Task for Purge {
    const KIND: &'static str = kind::CLEANUP_PURGE;
}

/// What a purge deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Sign-up codes.
    pub registrations: u64,
    /// One-time tokens (links, exchange codes).
    pub one_time_tokens: u64,
    /// Pending OAuth requests.
    pub oauth_states: u64,
    /// Refresh tokens.
    pub refresh_tokens: u64,
    /// Per-email request counters.
    pub email_requests: u64,
    /// Failed-sign-in counts.
    pub login_throttles: u64,
    /// Sent or failed emails past their retention.
    pub emails: u64,
    /// Idempotency keys past their retention.
    pub idempotency_keys: u64,
}

/// Deletes rows that expired more than [`GRACE`] ago.
pub async fn purge(state: &AppState) -> Result<Purged, sea_orm::DbErr> {
    let cutoff = Utc::now() - GRACE;
    let db = &state.db;
    Ok(Purged {
        registrations: registration::Entity::delete_many()
            .filter(registration::Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected,
        one_time_tokens: one_time_token::Entity::delete_many()
            .filter(one_time_token::Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected,
        oauth_states: oauth_state::Entity::delete_many()
            .filter(oauth_state::Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected,
        refresh_tokens: refresh_token::Entity::delete_many()
            .filter(refresh_token::Column::ExpiresAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected,
        email_requests: request::Entity::delete_many()
            .filter(
                request::Column::CreatedAt
                    .lt(cutoff
                        - chrono::Duration::seconds(crate::domain::identity::quota::WINDOW_SECS)),
            )
            .exec(db)
            .await?
            .rows_affected,
        login_throttles: login_throttle::Entity::delete_many()
            .filter(login_throttle::Column::UpdatedAt.lt(cutoff))
            .filter(
                sea_orm::Condition::any()
                    .add(login_throttle::Column::LockedUntil.is_null())
                    .add(login_throttle::Column::LockedUntil.lt(cutoff)),
            )
            .exec(db)
            .await?
            .rows_affected,
        emails: outbox::Entity::delete_many()
            .filter(outbox::Column::Status.is_in(["sent", "failed"]))
            .filter(
                outbox::Column::CreatedAt.lt(Utc::now()
                    - chrono::Duration::days(i64::from(state.config.outbox_retention_days))),
            )
            .exec(db)
            .await?
            .rows_affected,
        idempotency_keys: crate::domain::programs::idempotency::purge(
            db,
            chrono::Duration::hours(i64::from(state.config.idempotency_retention_hours)),
        )
        .await
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?,
    })
}

/// One purge, logged when it deleted anything.
pub async fn run(state: AppState) -> Result<(), Failure> {
    let p = purge(&state).await?;
    if p != Purged::default() {
        tracing::info!(?p, "purged expired rows");
    }
    Ok(())
}
