//! The billing job: every `billing.sweep_interval_secs` it ends trials and
//! grace periods that are due (and sends trial reminders), and once per
//! `billing.reconcile_interval_hours` it reconciles with Stripe. The time of
//! the last reconciliation is kept in `job_runs`, so the schedule survives
//! restarts; running it twice in a row is harmless.

use std::time::Duration;

use chrono::Utc;
use entity::billing::job_run;
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};
use tokio::sync::watch;

use crate::domain::billing::reconcile;
use crate::error::Result;
use crate::state::AppState;

/// `job_runs` name of the reconciliation.
pub const RECONCILE: &str = "billing.reconcile";

/// Whether a reconciliation is due now.
async fn reconcile_due(state: &AppState) -> Result<bool> {
    let hours = state.config.billing.reconcile_interval_hours;
    if hours == 0 || state.stripe.is_none() {
        return Ok(false);
    }
    let last = job_run::Entity::find_by_id(RECONCILE.to_owned())
        .one(&state.db)
        .await?;
    Ok(
        last.is_none_or(|r| {
            Utc::now() - r.last_run_at >= chrono::Duration::hours(i64::from(hours))
        }),
    )
}

/// Reconciles and records the run with its report.
pub async fn reconcile_and_record(state: &AppState) -> Result<reconcile::Report> {
    let report = reconcile::reconcile(state).await?;
    let summary = serde_json::to_string(&report).unwrap_or_default();
    job_run::Entity::insert(job_run::ActiveModel {
        name: Set(RECONCILE.to_owned()),
        last_run_at: Set(Utc::now()),
        last_report: Set(Some(summary.clone())),
    })
    .on_conflict(
        OnConflict::column(job_run::Column::Name)
            .update_columns([job_run::Column::LastRunAt, job_run::Column::LastReport])
            .to_owned(),
    )
    .exec_without_returning(&state.db)
    .await?;
    Ok(report)
}

async fn tick(state: &AppState) -> Result<()> {
    let changes = reconcile::sweep(state).await?;
    for c in &changes {
        tracing::info!(business = %c.business_id, ?c.plan, ?c.status, c.suspended, c.restored, "entitlement changed");
    }
    if reconcile_due(state).await? {
        let r = reconcile_and_record(state).await?;
        tracing::info!(
            checked = r.businesses_checked,
            repaired = r.subscriptions_repaired,
            changed = r.changes.len(),
            errors = r.errors.len(),
            "reconciled subscriptions with Stripe"
        );
    }
    Ok(())
}

/// Runs until `stop` turns true.
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.billing.sweep_interval_secs.max(1));
    loop {
        if let Err(e) = tick(&state).await {
            tracing::error!(code = e.code(), "billing job failed");
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(every) => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}
