//! The billing kinds: `billing.sweep` (every `billing.sweep_interval_secs`,
//! ends trials and grace periods that are due and sends trial reminders)
//! and `billing.reconcile` (every `billing.reconcile_interval_hours` while
//! Stripe is configured, re-reads every subscription from Stripe). Both
//! recur through the job runner, so their schedules survive restarts and
//! only one instance runs each at a time; running either twice in a row is
//! harmless.

use serde::{Deserialize, Serialize};

use super::queue::{Task, kind};
use super::runner::Failure;
use crate::domain::billing::reconcile;
use crate::state::AppState;

/// The entitlement sweep (recurring; no payload).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Sweep;

impl Task for Sweep {
    const KIND: &'static str = kind::BILLING_SWEEP;
}

/// The reconciliation with Stripe (recurring; no payload).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Reconcile;

impl Task for Reconcile {
    const KIND: &'static str = kind::BILLING_RECONCILE;
}

/// Runs one sweep and logs what changed.
pub async fn sweep(state: AppState) -> Result<(), Failure> {
    let changes = reconcile::sweep(&state.billing()).await?;
    for c in &changes {
        tracing::info!(business = %c.business_id, ?c.plan, ?c.status, c.suspended, c.restored, "entitlement changed");
    }
    Ok(())
}

/// Runs one reconciliation; a business that could not be checked fails the
/// run (retried, and visible to admins as the task's last error).
pub async fn reconcile(state: AppState) -> Result<(), Failure> {
    let r = reconcile::reconcile(&state.billing()).await?;
    tracing::info!(
        checked = r.businesses_checked,
        repaired = r.subscriptions_repaired,
        changed = r.changes.len(),
        errors = r.errors.len(),
        "reconciled subscriptions with Stripe"
    );
    if r.errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::transient(format!(
            "{} businesses could not be checked",
            r.errors.len()
        )))
    }
}
