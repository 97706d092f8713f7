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
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use stripe_shared::Subscription;
use uuid::Uuid;

use crate::domain::billing::entitlement::is_terminal;
use crate::domain::plans::PlanCatalogue;
use crate::error::{Error, Result};
use crate::integrations::stripe::BUSINESS_METADATA_KEY;

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

/// Stores `s` for `business_id` unless it is older than what is stored (see
/// the module docs). Call inside the business's locked write transaction.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    plans: &PlanCatalogue,
    business_id: Uuid,
    s: &SubscriptionState,
    version: Version,
) -> Result<Applied> {
    let now = Utc::now();
    let plan = s.price_id.as_deref().and_then(|p| plans.plan_for_price(p));
    let existing = subscription::Entity::find()
        .filter(subscription::Column::StripeSubscriptionId.eq(&s.id))
        .one(txn)
        .await?;
    let (stamp, authoritative) = match version {
        Version::Event(t) => (t, false),
        Version::Fetched(t) => (t, true),
    };
    let Some(row) = existing else {
        subscription::ActiveModel {
            id: Set(Uuid::now_v7()),
            business_id: Set(business_id),
            stripe_subscription_id: Set(s.id.clone()),
            stripe_customer_id: Set(s.customer.clone()),
            price_id: Set(s.price_id.clone()),
            plan: Set(plan),
            status: Set(s.status.clone()),
            current_period_start: Set(s.current_period_start),
            current_period_end: Set(s.current_period_end),
            cancel_at_period_end: Set(s.cancel_at_period_end),
            trial_end: Set(s.trial_end),
            stripe_created: Set(s.created),
            watermark: Set(stamp),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(txn)
        .await?;
        return Ok(Applied::Changed);
    };
    let same = row.status == s.status
        && row.price_id == s.price_id
        && row.plan == plan
        && row.current_period_start == s.current_period_start
        && row.current_period_end == s.current_period_end
        && row.cancel_at_period_end == s.cancel_at_period_end
        && row.trial_end == s.trial_end
        && row.business_id == business_id;
    if is_terminal(&row.status) && !is_terminal(&s.status) {
        return Ok(Applied::Stale);
    }
    if !authoritative {
        if stamp < row.watermark {
            return Ok(Applied::Stale);
        }
        if stamp == row.watermark && !same {
            return Ok(Applied::Ambiguous);
        }
    }
    let watermark = Ord::max(row.watermark, stamp);
    if same && watermark == row.watermark {
        return Ok(Applied::Unchanged);
    }
    let mut a: subscription::ActiveModel = row.into();
    a.business_id = Set(business_id);
    a.price_id = Set(s.price_id.clone());
    a.plan = Set(plan);
    a.status = Set(s.status.clone());
    a.current_period_start = Set(s.current_period_start);
    a.current_period_end = Set(s.current_period_end);
    a.cancel_at_period_end = Set(s.cancel_at_period_end);
    a.trial_end = Set(s.trial_end);
    a.watermark = Set(watermark);
    a.updated_at = Set(now);
    a.update(txn).await?;
    Ok(if same {
        Applied::Unchanged
    } else {
        Applied::Changed
    })
}
