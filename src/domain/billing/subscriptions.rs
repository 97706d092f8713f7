//! Stripe subscriptions as Switchboard stores them: the fields entitlements
//! need, taken from Stripe's subscription object, and the ordering rule that
//! keeps an older event from overwriting a newer state.
//!
//! Ordering: each row keeps a watermark, the `created` second of the newest
//! event applied. An event older than the watermark is stale and ignored;
//! one in the same second with a different state cannot be ordered by its
//! timestamp, so the caller re-fetches the subscription from Stripe and
//! applies that (authoritative) state. `canceled` and `incomplete_expired`
//! are final in Stripe, so no event moves a subscription out of them.

use chrono::{DateTime, TimeZone, Utc};
use entity::billing::subscription;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use stripe_shared::Subscription;
use uuid::Uuid;

use crate::domain::billing::plans::PlanCatalogue;
use crate::error::{Error, Result};
use crate::integrations::stripe::BUSINESS_METADATA_KEY;

/// Whether a Stripe status is final: Stripe never revives such a subscription.
pub fn is_terminal(status: &str) -> bool {
    matches!(status, "canceled" | "incomplete_expired")
}

/// The part of a Stripe subscription Switchboard acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// `sub_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: String,
    /// Stripe's status spelling.
    pub status: String,
    /// Price of the first item (Switchboard sells one item per subscription).
    pub price_id: Option<String>,
    /// Start of the current period (on the item since API 2025-03-31).
    pub current_period_start: Option<DateTime<Utc>>,
    /// End of the current period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Cancels at the end of the period.
    pub cancel_at_period_end: bool,
    /// End of Stripe's trial.
    pub trial_end: Option<DateTime<Utc>>,
    /// Creation time in Stripe.
    pub created: DateTime<Utc>,
    /// `metadata.business_id`, set by our Checkout Sessions.
    pub business_id: Option<Uuid>,
}

fn ts(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

impl From<&Subscription> for SubscriptionState {
    fn from(s: &Subscription) -> Self {
        let item = s.items.data.first();
        SubscriptionState {
            id: s.id.to_string(),
            customer: s.customer.id().to_string(),
            status: s.status.as_str().to_owned(),
            price_id: item.map(|i| i.price.id.to_string()),
            current_period_start: item.and_then(|i| ts(i.current_period_start)),
            current_period_end: item.and_then(|i| ts(i.current_period_end)),
            cancel_at_period_end: s.cancel_at_period_end || s.cancel_at.is_some(),
            trial_end: s.trial_end.and_then(ts),
            created: ts(s.created).unwrap_or_default(),
            business_id: s
                .metadata
                .get(BUSINESS_METADATA_KEY)
                .and_then(|v| v.parse().ok()),
        }
    }
}

/// Parses a subscription object (a webhook's `data.object`) with
/// async-stripe's types; 400 `invalid_event` when it is not one.
pub fn parse(json: &str) -> Result<SubscriptionState> {
    let s: Subscription = miniserde::json::from_str(json).map_err(|_| {
        Error::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_event",
            "The event's object is not a Stripe subscription",
        )
    })?;
    Ok(SubscriptionState::from(&s))
}

/// The outcome of [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored (new row or changed fields).
    Changed,
    /// Already the stored state.
    Unchanged,
    /// Older than the stored state, or reviving a final one: ignored.
    Stale,
    /// Same second as the stored state but different: re-fetch from Stripe.
    Ambiguous,
}

/// How sure we are of a state's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// From an event created at this Unix second.
    Event(i64),
    /// Fetched from Stripe just now (at this Unix second): the truth as of now.
    Fetched(i64),
}

/// What [`decide`] concluded, with the row to store when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub applied: Applied,
    /// The row to insert or update (`Changed`, or `Unchanged` with a newer
    /// watermark); `None` when nothing is to be written.
    pub row: Option<subscription::Model>,
}

/// Whether `s` (of `version`) replaces `existing`, the stored row of the same
/// Stripe subscription (see the module docs). Pure.
pub fn decide(
    existing: Option<&subscription::Model>,
    plans: &PlanCatalogue,
    business_id: Uuid,
    s: &SubscriptionState,
    version: Version,
    now: DateTime<Utc>,
) -> Decision {
    let plan = s.price_id.as_deref().and_then(|p| plans.plan_for_price(p));
    let (stamp, authoritative) = match version {
        Version::Event(t) => (t, false),
        Version::Fetched(t) => (t, true),
    };
    let Some(row) = existing else {
        return Decision {
            applied: Applied::Changed,
            row: Some(subscription::Model {
                id: Uuid::now_v7(),
                business_id,
                stripe_subscription_id: s.id.clone(),
                stripe_customer_id: s.customer.clone(),
                price_id: s.price_id.clone(),
                plan,
                status: s.status.clone(),
                current_period_start: s.current_period_start,
                current_period_end: s.current_period_end,
                cancel_at_period_end: s.cancel_at_period_end,
                trial_end: s.trial_end,
                stripe_created: s.created,
                watermark: stamp,
                created_at: now,
                updated_at: now,
            }),
        };
    };
    let nothing = |applied| Decision { applied, row: None };
    // `row` with the state `s` describes (the fields an event may change).
    let with_state = |row: &subscription::Model| subscription::Model {
        business_id,
        price_id: s.price_id.clone(),
        plan: plan.clone(),
        status: s.status.clone(),
        current_period_start: s.current_period_start,
        current_period_end: s.current_period_end,
        cancel_at_period_end: s.cancel_at_period_end,
        trial_end: s.trial_end,
        ..row.clone()
    };
    let same = with_state(row) == *row;
    if is_terminal(&row.status) && !is_terminal(&s.status) {
        return nothing(Applied::Stale);
    }
    if !authoritative {
        if stamp < row.watermark {
            return nothing(Applied::Stale);
        }
        if stamp == row.watermark && !same {
            return nothing(Applied::Ambiguous);
        }
    }
    let watermark = Ord::max(row.watermark, stamp);
    if same && watermark == row.watermark {
        return nothing(Applied::Unchanged);
    }
    let updated = subscription::Model {
        watermark,
        updated_at: now,
        ..with_state(row)
    };
    Decision {
        applied: if same {
            Applied::Unchanged
        } else {
            Applied::Changed
        },
        row: Some(updated),
    }
}

/// Stores `s` for `business_id` unless it is older than what is stored (see
/// the module docs and [`decide`]). Call inside the business's locked write
/// transaction.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    plans: &PlanCatalogue,
    business_id: Uuid,
    s: &SubscriptionState,
    version: Version,
) -> Result<Applied> {
    let existing = subscription::Entity::find()
        .filter(subscription::Column::StripeSubscriptionId.eq(&s.id))
        .one(txn)
        .await?;
    let decision = decide(
        existing.as_ref(),
        plans,
        business_id,
        s,
        version,
        Utc::now(),
    );
    let changed = decision.applied == Applied::Changed;
    let stored = match (decision.row, existing.is_some()) {
        (Some(row), false) => Some(row.into_active_model().reset_all().insert(txn).await?),
        (Some(row), true) => Some(row.into_active_model().reset_all().update(txn).await?),
        (None, _) => None,
    };
    if let Some(s) = stored.filter(|_| changed) {
        crate::domain::events::record(
            txn,
            business_id,
            crate::domain::events::kind::SUBSCRIPTION_UPDATED,
            serde_json::json!({
                "stripe_subscription_id": s.stripe_subscription_id,
                "plan": s.plan,
                "status": s.status,
                "current_period_end": s.current_period_end,
                "cancel_at_period_end": s.cancel_at_period_end,
            }),
        )
        .await?;
    }
    Ok(decision.applied)
}
