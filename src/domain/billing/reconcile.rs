//! Time-driven and drift-repairing billing work.
//!
//! - [`sweep`]: businesses whose entitlement changes by time alone (trial
//!   end, grace end, trial reminder) carry `recheck_at`; the sweep
//!   re-evaluates those that are due. Driven by the database, so a restart
//!   loses nothing and several instances can share it.
//! - [`reconcile`]: re-reads every subscription of every customer from
//!   Stripe, applies it as authoritative state and re-evaluates the
//!   business, reporting what changed (missed or failed webhooks, manual
//!   edits in the Stripe dashboard).

use chrono::Utc;
use entity::business;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::billing::Billing;
use crate::domain::billing::customer::{apply_fetched, stripe};
use crate::domain::billing::entitlement::{self, Change};
use crate::domain::tenancy::access::BusinessScope;
use crate::error::Result;

/// Businesses re-evaluated per sweep query.
const SWEEP_BATCH: u64 = 200;

/// Re-evaluates every business whose `recheck_at` has passed; returns the
/// changes made.
pub async fn sweep(ctx: &Billing<'_>) -> Result<Vec<Change>> {
    let mut changes = Vec::new();
    loop {
        let now = Utc::now();
        let due: Vec<Uuid> = business::Entity::find()
            .select_only()
            .column(business::Column::Id)
            .filter(business::Column::RecheckAt.lte(now))
            .order_by_asc(business::Column::RecheckAt)
            .limit(SWEEP_BATCH)
            .into_tuple()
            .all(ctx.db)
            .await?;
        let full = due.len() as u64 == SWEEP_BATCH;
        for id in due {
            let change = entitlement::refresh(ctx.db, &ctx.rules, id).await?;
            if !change.is_empty() {
                changes.push(change);
            }
        }
        if !full {
            return Ok(changes);
        }
    }
}

/// What a reconciliation found and repaired.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Businesses with a Stripe customer that were checked.
    pub businesses_checked: u64,
    /// Subscriptions read from Stripe.
    pub subscriptions_seen: u64,
    /// Subscriptions whose stored state differed and was repaired.
    pub subscriptions_repaired: u64,
    /// Businesses whose plan, status or channels changed.
    pub changes: Vec<Change>,
    /// Businesses that could not be checked, with the reason.
    pub errors: Vec<(Uuid, String)>,
}

/// Re-reads every customer's subscriptions from Stripe and repairs drift.
/// 503 `billing_unavailable` without Stripe configuration.
pub async fn reconcile(ctx: &Billing<'_>) -> Result<Report> {
    let api = stripe(ctx)?;
    let mut report = Report::default();
    let customers: Vec<(Uuid, Option<String>)> = business::Entity::find()
        .select_only()
        .column(business::Column::Id)
        .column(business::Column::StripeCustomerId)
        .filter(business::Column::StripeCustomerId.is_not_null())
        .order_by_asc(business::Column::Id)
        .into_tuple()
        .all(ctx.db)
        .await?;
    for (business_id, customer) in customers {
        let Some(customer) = customer else { continue };
        report.businesses_checked += 1;
        let subs = match api.list_subscriptions(&customer).await {
            Ok(subs) => subs,
            Err(e) => {
                report.errors.push((business_id, e.to_string()));
                continue;
            }
        };
        report.subscriptions_seen += subs.len() as u64;
        match apply_fetched(ctx, &BusinessScope::platform(business_id), &subs).await {
            Ok((repaired, change)) => {
                report.subscriptions_repaired += repaired;
                if !change.is_empty() {
                    report.changes.push(change);
                }
            }
            // Deleted meanwhile: nothing to repair.
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
