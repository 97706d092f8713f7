//! `email.deliver`: delivers one message of the email outbox. The message
//! is written to `email_outbox` with its task in the transaction of the
//! change that causes it ([`crate::mail::Mailer::enqueue`]); the runner
//! owns the schedule, lease and retries (`outbox_max_attempts`, backoff
//! from `outbox_retry_base_ms`). Each attempt is recorded in
//! `email_attempts`. Delivery is at-least-once: only a crash between the
//! SMTP server's acceptance and the `sent` mark can repeat a message.
//!
//! The body is opened from its seal only to deliver it, and erased in the
//! same write that marks the message `sent`. A message that failed for good
//! keeps its sealed body (so an admin can retry its task after an SMTP
//! outage) until the cleanup purges it with the other finished messages.

use chrono::Utc;
use entity::email::{attempt, outbox};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::runner::Failure;
use crate::state::AppState;

pub use crate::mail::DeliverEmail;

/// One delivery attempt; the runner retries an `Err`. A message already
/// sent (or gone) is done; a `failed` one is tried again (an admin retried
/// its task).
pub async fn deliver(state: AppState, task: DeliverEmail) -> Result<(), Failure> {
    let id = task.email_id;
    let Some(message) = outbox::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(());
    };
    if message.status == "sent" {
        return Ok(());
    }
    let body = match state.mailer.open(&message) {
        Ok(Some(body)) => body,
        Ok(None) => return Err(Failure::permanent("body erased")),
        Err(e) => {
            tracing::error!(security = true, email_id = %id, error = %e, "an email body failed to open");
            return Err(Failure::permanent(format!("body does not open: {e}")));
        }
    };
    let result = state
        .mailer
        .deliver(
            &message.to_address,
            &message.subject,
            &body.text,
            &body.html,
        )
        .await;
    let attempted_at = Utc::now();
    let attempts = message.attempts + 1;
    let max = i32::try_from(state.config.outbox_max_attempts).unwrap_or(i32::MAX);
    let mut update = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Attempts,
            Expr::col(outbox::Column::Attempts).add(1),
        )
        .filter(outbox::Column::Id.eq(id));
    let (outcome, error) = match &result {
        Ok(()) => {
            update = crate::mail::erase_body(update)
                .col_expr(outbox::Column::Status, Expr::value("sent"))
                .col_expr(outbox::Column::SentAt, Expr::value(attempted_at));
            ("sent", None)
        }
        Err(e) => {
            if attempts >= max {
                update = update.col_expr(outbox::Column::Status, Expr::value("failed"));
            }
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
    result.map_err(|e| Failure::transient(format!("smtp: {e}")))
}
