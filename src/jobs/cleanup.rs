//! Periodic purge of dead rows: expired sign-up codes, one-time tokens,
//! OAuth states and refresh tokens, and per-email request counters past
//! their window, once they are a day past use. Nothing here is needed after
//! expiry; keeping it would only grow the tables and the data held.

use std::time::Duration;

use chrono::Utc;
use entity::email::request;
use entity::oauth::state as oauth_state;
use entity::{one_time_token, refresh_token, registration};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::sync::watch;

use crate::state::AppState;

/// How long past expiry a row is kept (for support and debugging).
pub const GRACE: chrono::Duration = chrono::Duration::days(1);
/// Time between purges.
const EVERY: Duration = Duration::from_secs(3600);
/// Delay of the first purge after start.
const FIRST: Duration = Duration::from_secs(60);

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
                    .lt(cutoff - chrono::Duration::seconds(crate::domain::quota::WINDOW_SECS)),
            )
            .exec(db)
            .await?
            .rows_affected,
    })
}

/// Purges hourly until `stop` turns true. The first purge waits a minute:
/// nothing is urgent (rows are already a day past expiry) and start-up
/// stays quick.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST;
    loop {
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        if *stop.borrow() {
            return;
        }
        match purge(&state).await {
            Ok(p) if p != Purged::default() => tracing::info!(?p, "purged expired rows"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "purge failed"),
        }
        wait = EVERY;
    }
}
