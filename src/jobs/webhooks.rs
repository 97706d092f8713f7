//! `webhook.fan_out` and `webhook.deliver`: outgoing webhooks through the
//! job runner (the rules live in `domain::events::webhooks`). A delivery
//! that fails returns an error, so the runner retries it with backoff; the
//! last attempt disables the endpoint instead and ends the task.

use super::runner::Failure;
use crate::domain::events::webhooks::{self, Attempt, Deliver, FanOut};
use crate::state::AppState;

/// Makes one event's deliveries.
pub async fn fan_out(state: AppState, task: FanOut) -> Result<(), Failure> {
    webhooks::fan_out(&state.db, &state.jobs, &task).await?;
    Ok(())
}

/// One delivery attempt.
pub async fn deliver(state: AppState, task: Deliver) -> Result<(), Failure> {
    let handles = webhooks::Delivery {
        db: &state.db,
        keyring: &state.keyring,
        mailer: &state.mailer,
        allow_private: state.config.webhooks.allow_private_targets,
        max_attempts: i32::try_from(state.config.webhooks.max_attempts).unwrap_or(i32::MAX),
    };
    match webhooks::attempt(&handles, task.delivery_id).await? {
        Attempt::Settled | Attempt::Delivered | Attempt::GaveUp(_) => Ok(()),
        Attempt::Retry(error) => Err(Failure::transient(format!("delivery: {error}"))),
    }
}
