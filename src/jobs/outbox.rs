//! The outbox worker: delivers queued emails with retries.
//!
//! Each round claims due messages one by one with a conditional update that
//! sets a lease (`locked_until`), so several instances can share the queue
//! and a crashed worker's claim expires. A delivered message is marked
//! `sent`; a failure is recorded as an attempt and retried with exponential
//! backoff (base `outbox_retry_base_ms`, doubling, capped at one hour) until
//! `outbox_max_attempts`, then marked `failed`. Delivery is at-least-once:
//! only a crash between the SMTP server's acceptance and the `sent` mark can
//! repeat a message.

use std::time::Duration;

use chrono::Utc;
use entity::email::{attempt, outbox};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::state::AppState;

/// Messages claimed per round.
const BATCH: u64 = 20;
/// How long a claim lasts before another worker may take the message.
const LEASE_SECS: i64 = 120;
/// Idle polling interval (enqueues also wake the worker).
const POLL: Duration = Duration::from_millis(250);

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        match round(&state).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "outbox round failed"),
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = state.mailer.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One round: claims and delivers the due messages; returns how many.
pub async fn round(state: &AppState) -> Result<usize, sea_orm::DbErr> {
    let now = Utc::now();
    let free = Condition::any()
        .add(outbox::Column::LockedUntil.is_null())
        .add(outbox::Column::LockedUntil.lt(now));
    let due: Vec<Uuid> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::Status.eq("pending"))
        .filter(outbox::Column::NextAttemptAt.lte(now))
        .filter(free.clone())
        .order_by_asc(outbox::Column::NextAttemptAt)
        .limit(BATCH)
        .into_tuple()
        .all(&state.db)
        .await?;
    let mut delivered = 0;
    for id in due {
        let claimed = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::LockedUntil,
                Expr::value(now + chrono::Duration::seconds(LEASE_SECS)),
            )
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::Status.eq("pending"))
            .filter(free.clone())
            .exec(&state.db)
            .await?;
        if claimed.rows_affected != 1 {
            continue;
        }
        let Some(message) = outbox::Entity::find_by_id(id).one(&state.db).await? else {
            continue;
        };
        let result = state
            .mailer
            .deliver(
                &message.to_address,
                &message.subject,
                &message.text_body,
                &message.html_body,
            )
            .await;
        let attempted_at = Utc::now();
        let attempts = message.attempts + 1;
        let mut update = outbox::Entity::update_many()
            .col_expr(
                outbox::Column::Attempts,
                Expr::col(outbox::Column::Attempts).add(1),
            )
            .col_expr(
                outbox::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .filter(outbox::Column::Id.eq(id));
        let (outcome, error) = match &result {
            Ok(()) => {
                update = update
                    .col_expr(outbox::Column::Status, Expr::value("sent"))
                    .col_expr(outbox::Column::SentAt, Expr::value(attempted_at));
                delivered += 1;
                ("sent", None)
            }
            Err(e) => {
                tracing::warn!(email_id = %id, attempts, error = %e, "email delivery failed");
                let max = i32::try_from(state.config.outbox_max_attempts).unwrap_or(i32::MAX);
                update = if attempts >= max {
                    update.col_expr(outbox::Column::Status, Expr::value("failed"))
                } else {
                    let backoff = backoff_ms(state.config.outbox_retry_base_ms, attempts);
                    update.col_expr(
                        outbox::Column::NextAttemptAt,
                        Expr::value(attempted_at + chrono::Duration::milliseconds(backoff)),
                    )
                };
                update = update.col_expr(outbox::Column::LastError, Expr::value(e.clone()));
                ("error", Some(e.clone()))
            }
        };
        update.exec(&state.db).await?;
        attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            email_id: Set(id),
            attempted_at: Set(attempted_at),
            outcome: Set(outcome.to_owned()),
            error: Set(error),
        }
        .insert(&state.db)
        .await?;
    }
    Ok(delivered)
}

/// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)` ms, capped
/// at one hour.
fn backoff_ms(base: u64, attempts: i32) -> i64 {
    let doublings = Ord::min(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0), 20);
    let delay = base.saturating_mul(1u64 << doublings);
    i64::try_from(Ord::min(delay, 3_600_000)).unwrap_or(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_and_is_capped_at_an_hour() {
        assert_eq!(backoff_ms(5000, 1), 5000);
        assert_eq!(backoff_ms(5000, 2), 10_000);
        assert_eq!(backoff_ms(5000, 4), 40_000);
        assert_eq!(backoff_ms(5000, 30), 3_600_000);
    }
}
