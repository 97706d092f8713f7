//! Entitlements: what a business may use, derived from its subscriptions,
//! its trial and the clock, and applied to its plan, status and channels
//! (SPEC §2).
//!
//! [`evaluate`] is a pure function of (business, subscriptions, now), and
//! [`apply`] makes the stored state equal to it: the channel suspensions are
//! a function of the entitlement and the channels' creation order, never of
//! the history that led there. That is why any delivery order of Stripe
//! events ends in the same state.
//!
//! Rules:
//! - A live subscription (`trialing`, `active`, `past_due`) decides the plan
//!   (through its price); `past_due` keeps access for the grace period
//!   (`billing.grace_hours`, 3 days) from the start of the unpaid period,
//!   when Stripe attempted the renewal charge, then restricts.
//! - A live subscription at a price no plan names (an admin's custom
//!   `enterprise` price) is on the plan the admin granted.
//! - No live subscription: a `free` plan an admin granted stands (until an
//!   admin grants another); during the trial the business is on `trial`;
//!   a plan set with no subscription history stands; otherwise
//!   (`canceled`, `unpaid`, `incomplete_expired`, trial over) the business
//!   is restricted.
//! - Restricted: every channel is suspended with reason
//!   `subscription_required`. With access: channels beyond the plan's limit,
//!   newest first, are suspended with reason `over_plan_limit` and the
//!   business is `over_limit`. A channel whose reason no longer holds goes
//!   back to the status it had before; channels suspended for any other
//!   reason are never touched.

use chrono::{DateTime, Duration, Utc};
use entity::billing::subscription;
use entity::enums::{BusinessStatus, ChannelStatus};
use entity::{business, channel, user};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter,
};
use serde::Serialize;
use uuid::Uuid;

use super::subscriptions::SubscriptionState;
use crate::config::BillingConfig;
use crate::domain::billing::plans::{FREE, PlanCatalogue, TRIAL};
use crate::error::{Error, Result};
use crate::mail::Mailer;
use crate::mail::templates;

/// Suspension reason: more channels than the plan allows.
pub const OVER_PLAN_LIMIT: &str = "over_plan_limit";
/// Suspension reason: no paying subscription (trial over, payment lapsed).
pub const SUBSCRIPTION_REQUIRED: &str = "subscription_required";

/// Whether a Stripe status keeps a subscription in force.
pub fn is_live(status: &str) -> bool {
    matches!(status, "trialing" | "active" | "past_due")
}

pub use super::subscriptions::is_terminal;

/// What the business may use now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlement {
    /// Plan id of the catalogue.
    pub plan: String,
    /// False: restricted (reading and billing only).
    pub access: bool,
    /// End of the `past_due` grace period, while in it.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// When the entitlement next changes by time alone.
    pub recheck_at: Option<DateTime<Utc>>,
    /// Whether the "trial ends soon" reminder is due now.
    pub trial_notice_due: bool,
}

/// The timings of [`evaluate`], from `billing.*` configuration.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `past_due` grace period.
    pub grace: Duration,
    /// Lead time of the trial reminder.
    pub trial_notice: Duration,
}

impl Timings {
    /// From the configuration.
    pub fn from_config(config: &BillingConfig) -> Timings {
        Timings {
            grace: Duration::hours(i64::from(config.grace_hours)),
            trial_notice: Duration::hours(i64::from(config.trial_notice_hours)),
        }
    }
}

/// What re-evaluating a business needs: the plan catalogue, the billing
/// timings, and where its notices go. The composition root builds it
/// (`Services::rules`).
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The plan catalogue.
    pub plans: &'a PlanCatalogue,
    /// Grace period, trial reminder lead.
    pub billing: &'a BillingConfig,
    /// Where notices are queued (in the caller's transaction).
    pub mailer: &'a Mailer,
    /// Base of the links in notices (`{public_base}/billing`).
    pub public_base: &'a str,
    /// Where the follow-up of suspended or restored channels is queued
    /// (their WhatsApp sessions stop or start), in the caller's transaction.
    pub jobs: &'a crate::jobs::Queue,
}

impl Rules<'_> {
    fn billing_url(&self) -> String {
        format!("{}/billing", self.public_base)
    }

    /// The timings of [`settle`].
    pub fn timings(&self) -> Timings {
        Timings::from_config(self.billing)
    }
}

/// The subscription that decides: the newest live one, else the newest.
pub fn current(subs: &[subscription::Model]) -> Option<&subscription::Model> {
    let key = |s: &&subscription::Model| (s.stripe_created, s.stripe_subscription_id.clone());
    subs.iter()
        .filter(|s| is_live(&s.status))
        .max_by_key(key)
        .or_else(|| subs.iter().max_by_key(key))
}

/// End of the grace period of a `past_due` subscription: Stripe charges a
/// renewal at the start of the period, so the debt dates from there.
pub fn grace_end(sub: &subscription::Model, t: Timings) -> DateTime<Utc> {
    sub.current_period_start.unwrap_or(sub.stripe_created) + t.grace
}

/// The entitlement of `b` with `subs` at `now` (see the module rules).
pub fn evaluate(
    b: &business::Model,
    subs: &[subscription::Model],
    now: DateTime<Utc>,
    t: Timings,
) -> Entitlement {
    let mut e = Entitlement {
        plan: b.plan.clone(),
        access: true,
        grace_ends_at: None,
        recheck_at: None,
        trial_notice_due: false,
    };
    match current(subs) {
        Some(sub) if is_live(&sub.status) => {
            // A price no plan names (a custom enterprise price) is on the
            // plan an admin granted, else keeps the plan set.
            if let Some(plan) = sub.plan.as_ref().or(b.granted_plan.as_ref()) {
                e.plan = plan.clone();
            }
            if sub.status == "past_due" {
                let end = grace_end(sub, t);
                e.access = now < end;
                if e.access {
                    e.grace_ends_at = Some(end);
                    e.recheck_at = Some(end);
                }
            }
        }
        _ if b.granted_plan.as_deref() == Some(FREE) => e.plan = FREE.to_owned(),
        last => {
            let granted = last.is_none() && b.plan != TRIAL;
            if !granted {
                if let Some(sub) = last
                    && let Some(plan) = &sub.plan
                {
                    e.plan = plan.clone();
                }
                if now < b.trial_ends_at {
                    e.plan = TRIAL.to_owned();
                    let notice_at = b.trial_ends_at - t.trial_notice;
                    let notice_pending = b.trial_notice_sent_at.is_none();
                    e.trial_notice_due = notice_pending && now >= notice_at;
                    e.recheck_at = Some(if notice_pending && now < notice_at {
                        notice_at
                    } else {
                        b.trial_ends_at
                    });
                } else {
                    e.access = false;
                }
            }
        }
    }
    e
}

/// What [`apply`] changed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Change {
    /// Business.
    pub business_id: Uuid,
    /// Plan before and after, when it changed.
    pub plan: Option<(String, String)>,
    /// Status before and after, when it changed.
    pub status: Option<(BusinessStatus, BusinessStatus)>,
    /// Channels suspended now.
    pub suspended: u32,
    /// Channels restored now.
    pub restored: u32,
}

impl Change {
    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.plan.is_none() && self.status.is_none() && self.suspended == 0 && self.restored == 0
    }
}

/// Takes the business row's write lock as the transaction's first statement
/// (a row lock on PostgreSQL; SQLite's `BEGIN IMMEDIATE` already holds the
/// database's): every change to a business's entitlement is serialised.
/// False when the business does not exist.
pub async fn lock_business<C: ConnectionTrait>(txn: &C, business_id: Uuid) -> Result<bool> {
    let locked = business::Entity::update_many()
        .col_expr(
            business::Column::UpdatedAt,
            Expr::col(business::Column::UpdatedAt),
        )
        .filter(business::Column::Id.eq(business_id))
        .exec(txn)
        .await?;
    Ok(locked.rows_affected == 1)
}

/// The channel columns [`settle`] decides.
pub const CHANNEL_COLUMNS: [channel::Column; 4] = [
    channel::Column::Status,
    channel::Column::SuspendedReason,
    channel::Column::SuspendedFrom,
    channel::Column::UpdatedAt,
];

/// The business columns [`settle`] decides.
pub const BUSINESS_COLUMNS: [business::Column; 5] = [
    business::Column::Plan,
    business::Column::Status,
    business::Column::RecheckAt,
    business::Column::TrialNoticeSentAt,
    business::Column::UpdatedAt,
];

/// What [`settle`] decided for one business: the rows to write and the
/// notices to send. Pure data; [`apply`] and the webhook batch write it.
#[derive(Debug, Default)]
pub struct Settlement {
    /// What changed (for reports).
    pub change: Change,
    /// The business row to store, when any of its columns changed.
    pub business: Option<business::Model>,
    /// Channel rows whose status or suspension changed.
    pub channels: Vec<channel::Model>,
    /// The business has just become restricted: tell the owner.
    pub restricted_notice: bool,
    /// The trial reminder is due: days left to say.
    pub trial_notice_days: Option<i64>,
}

/// Works out what makes the stored state equal to [`evaluate`]'s verdict,
/// given the business, its subscriptions and its channels (any order; they
/// are ranked oldest first here). Pure. A business being deleted is left
/// alone.
pub fn settle(
    b: &business::Model,
    subs: &[subscription::Model],
    channels: &[channel::Model],
    plans: &PlanCatalogue,
    now: DateTime<Utc>,
    t: Timings,
) -> Settlement {
    let mut out = Settlement {
        change: Change {
            business_id: b.id,
            ..Change::default()
        },
        ..Settlement::default()
    };
    if b.status == BusinessStatus::Deleting {
        return out;
    }
    let e = evaluate(b, subs, now, t);
    let mut ranked: Vec<&channel::Model> = channels.iter().collect();
    ranked.sort_by_key(|c| (c.created_at, c.id));
    let limit = plans.limit_for(b, &e.plan);
    for (i, c) in ranked.iter().enumerate() {
        let desired = if !e.access {
            Some(SUBSCRIPTION_REQUIRED)
        } else if limit.is_some_and(|l| i >= l as usize) {
            Some(OVER_PLAN_LIMIT)
        } else {
            None
        };
        if let Some(row) = settle_channel(c, desired, now, &mut out.change) {
            out.channels.push(row);
        }
    }
    let status = if !e.access {
        BusinessStatus::Restricted
    } else if limit.is_some_and(|l| channels.len() > l as usize) {
        BusinessStatus::OverLimit
    } else {
        BusinessStatus::Active
    };
    if b.plan != e.plan {
        out.change.plan = Some((b.plan.clone(), e.plan.clone()));
    }
    if b.status != status {
        out.change.status = Some((b.status, status));
    }
    out.restricted_notice = status == BusinessStatus::Restricted && b.status != status;
    if e.trial_notice_due {
        out.trial_notice_days = Some(days_left(b.trial_ends_at, now));
    }
    let unchanged = b.plan == e.plan && b.status == status && b.recheck_at == e.recheck_at;
    if !unchanged || e.trial_notice_due {
        let mut row = b.clone();
        row.plan = e.plan.clone();
        row.status = status;
        row.recheck_at = e.recheck_at;
        if e.trial_notice_due {
            row.trial_notice_sent_at = Some(now);
        }
        if !out.change.is_empty() || e.trial_notice_due {
            row.updated_at = now;
        }
        out.business = Some(row);
    }
    out
}

/// The row of channel `c` once its entitlement suspension is `desired`
/// (`None`: none), counting the change; `None` when nothing changes.
/// Suspensions of other origins (not ours) are left alone; a restored
/// channel goes back to the status it was suspended from.
fn settle_channel(
    c: &channel::Model,
    desired: Option<&str>,
    now: DateTime<Utc>,
    change: &mut Change,
) -> Option<channel::Model> {
    let suspended = c.status == ChannelStatus::Suspended;
    let ours = suspended
        && matches!(
            c.suspended_reason.as_deref(),
            Some(OVER_PLAN_LIMIT | SUBSCRIPTION_REQUIRED)
        );
    if suspended && !ours {
        return None;
    }
    let current = if ours {
        c.suspended_reason.as_deref()
    } else {
        None
    };
    if current == desired {
        return None;
    }
    let mut row = c.clone();
    match desired {
        Some(reason) => {
            if !ours {
                row.suspended_from = Some(c.status);
                change.suspended += 1;
            }
            row.status = ChannelStatus::Suspended;
            row.suspended_reason = Some(reason.to_owned());
        }
        None => {
            row.status = c.suspended_from.unwrap_or(ChannelStatus::Disconnected);
            row.suspended_reason = None;
            row.suspended_from = None;
            change.restored += 1;
        }
    }
    row.updated_at = now;
    Some(row)
}

/// The events `settlement` records, given the channels as they were before
/// it: one `channel.status_changed` per channel it suspends or restores,
/// and `business.updated` when the plan or status changed.
pub fn events_of(
    settlement: &Settlement,
    before: &[channel::Model],
) -> Vec<(&'static str, serde_json::Value)> {
    use crate::domain::events::kind;
    let mut out = Vec::new();
    for row in &settlement.channels {
        let from = before.iter().find(|c| c.id == row.id).map(|c| c.status);
        out.push((
            kind::CHANNEL_STATUS_CHANGED,
            serde_json::json!({
                "id": row.id,
                "company_id": row.company_id,
                "from": from,
                "to": row.status,
                "reason": row.suspended_reason,
            }),
        ));
    }
    let change = &settlement.change;
    if change.plan.is_some() || change.status.is_some() {
        out.push((
            kind::BUSINESS_UPDATED,
            serde_json::json!({
                "plan": change.plan.as_ref().map(|(f, t)| serde_json::json!({ "from": f, "to": t })),
                "status": change.status.map(|(f, t)| serde_json::json!({ "from": f, "to": t })),
            }),
        ));
    }
    out
}

/// Queues the notices of `settlement` to `owner_email` in `txn`.
pub async fn send_notices<C: ConnectionTrait>(
    rules: &Rules<'_>,
    txn: &C,
    settlement: &Settlement,
    owner_email: &str,
) -> Result<()> {
    let billing_url = rules.billing_url();
    if settlement.restricted_notice {
        rules
            .mailer
            .enqueue(txn, owner_email, templates::restricted(&billing_url))
            .await?;
    }
    if let Some(days) = settlement.trial_notice_days {
        rules
            .mailer
            .enqueue(
                txn,
                owner_email,
                templates::trial_ending(days, &billing_url),
            )
            .await?;
    }
    Ok(())
}

/// A billing notice a Stripe event calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The Stripe trial ends soon (`customer.subscription.trial_will_end`).
    TrialEnding,
    /// A payment failed (`invoice.payment_failed`).
    PaymentFailed,
}

/// Queues `notice` for the owner of `b` (at `to`) in `txn`. A payment
/// failure on a subscription that has already ended says nothing.
pub async fn send_notice<C: ConnectionTrait>(
    rules: &Rules<'_>,
    txn: &C,
    b: &business::Model,
    to: &str,
    notice: Notice,
    sub: Option<&SubscriptionState>,
) -> Result<()> {
    let billing_url = rules.billing_url();
    let message = match notice {
        Notice::TrialEnding => {
            let end = sub.and_then(|s| s.trial_end).unwrap_or(b.trial_ends_at);
            let days = days_left(end, Utc::now());
            templates::subscription_trial_ending(days, &billing_url)
        }
        Notice::PaymentFailed => {
            if sub.is_some_and(|s| is_terminal(&s.status)) {
                return Ok(());
            }
            let days = (i64::from(rules.billing.grace_hours) + 23) / 24;
            templates::payment_failed(days, &billing_url)
        }
    };
    rules.mailer.enqueue(txn, to, message).await?;
    Ok(())
}

/// Re-evaluates the business and stores the result ([`settle`]): plan,
/// status, re-check time, channel suspensions, and the billing notices the
/// change calls for (queued in the same transaction). Call inside a write
/// transaction that holds the business lock ([`lock_business`]).
pub async fn apply<C: ConnectionTrait>(
    rules: &Rules<'_>,
    txn: &C,
    business_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Change> {
    // A business gone or being deleted is left alone (as `settle` would).
    let Some(b) = business::Entity::find_by_id(business_id)
        .one(txn)
        .await?
        .filter(|b| b.status != BusinessStatus::Deleting)
    else {
        return Ok(Change {
            business_id,
            ..Change::default()
        });
    };
    let subs = subscription::Entity::find()
        .filter(subscription::Column::BusinessId.eq(business_id))
        .all(txn)
        .await?;
    let channels = channel::Entity::find()
        .filter(channel::Column::BusinessId.eq(business_id))
        .all(txn)
        .await?;
    let settlement = settle(&b, &subs, &channels, rules.plans, now, rules.timings());
    for row in &settlement.channels {
        let mut a = row.clone().into_active_model();
        CHANNEL_COLUMNS.into_iter().for_each(|c| a.reset(c));
        a.update(txn).await?;
    }
    if let Some(row) = &settlement.business {
        let mut a = row.clone().into_active_model();
        BUSINESS_COLUMNS.into_iter().for_each(|c| a.reset(c));
        a.update(txn).await?;
    }
    for (event_type, data) in events_of(&settlement, &channels) {
        crate::domain::events::record(txn, business_id, event_type, data).await?;
    }
    crate::domain::channels::whatsapp::follow(rules.jobs, txn, &settlement.channels).await?;
    crate::domain::channels::telegram::follow(rules.jobs, txn, &settlement.channels).await?;
    if (settlement.restricted_notice || settlement.trial_notice_days.is_some())
        && let Some(owner) = user::Entity::find_by_id(b.owner_id).one(txn).await?
    {
        send_notices(rules, txn, &settlement, &owner.email).await?;
    }
    Ok(settlement.change)
}

/// Locks and re-evaluates one business in its own write transaction.
pub async fn refresh(
    db: &DatabaseConnection,
    rules: &Rules<'_>,
    business_id: Uuid,
) -> Result<Change> {
    let txn = crate::db::begin_write(db).await?;
    if !lock_business(&txn, business_id).await? {
        return Err(Error::not_found());
    }
    let change = apply(rules, &txn, business_id, chrono::Utc::now()).await?;
    txn.commit().await?;
    Ok(change)
}

/// Whole days from `now` until `end`, rounded up, at least 1 (for notices).
pub fn days_left(end: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    Ord::max((end - now).num_hours() + 23, 24) / 24
}

/// First re-check time of a new business: when its trial reminder is due
/// (or the end of the trial, for a trial shorter than the reminder's lead).
pub fn first_recheck(
    config: &BillingConfig,
    now: DateTime<Utc>,
    trial_ends_at: DateTime<Utc>,
) -> DateTime<Utc> {
    let notice_at = trial_ends_at - Duration::hours(i64::from(config.trial_notice_hours));
    if notice_at > now { notice_at } else { now }
}
