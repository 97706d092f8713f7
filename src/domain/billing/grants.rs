//! The admin's plan grants (SPEC §2): `free`, "granted by an admin only",
//! and `enterprise`, "admin-set, Stripe subscription with a custom price",
//! here with a custom channel limit too.
//!
//! A grant is recorded on the business (`granted_plan`,
//! `granted_channel_limit`) and stands until an admin grants another; the
//! entitlement reads it (see [`super::entitlement`]):
//!
//! - `free`: the business's live subscriptions are canceled in Stripe at
//!   once (the business stops paying), and with no live subscription the
//!   granted `free` plan is in force, trial or not.
//! - `enterprise`: the custom price is made by Stripe from the item's
//!   `price_data` on the configured product (`plans.enterprise.
//!   stripe_product_id`). A live subscription is moved to it (prorated onto
//!   the next invoice); otherwise one is created, invoiced rather than
//!   charged to a card. A subscription at a price no plan names is on the
//!   granted plan, so the business is on `enterprise` as soon as Stripe's
//!   answer is stored, with the granted limit.
//!
//! Stripe is called first, under idempotency keys derived from the business
//! and its event counter (unchanged until a grant commits), so a grant
//! retried after a failure reuses what Stripe already made; then one locked
//! transaction stores the grant and Stripe's answer, settles the
//! entitlement (channels suspended or restored as the new limit says) and
//! writes the audit record.

use axum::http::StatusCode;
use chrono::Utc;
use entity::billing::subscription;
use entity::business;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::json;
use stripe_shared::Subscription;

use super::customer::{self, BillingSummary};
use super::entitlement::{self, is_live};
use super::plans::{ENTERPRISE, FREE};
use super::subscriptions::{self, SubscriptionState, Version};
use super::{Billing, purchases};
use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::tenancy::access::BusinessScope;
use crate::error::{Error, Result};
use crate::integrations::stripe::billing::CustomPrice;

/// Days an enterprise invoice is due after it is sent (Stripe requires
/// `days_until_due` with `collection_method=send_invoice`).
pub const ENTERPRISE_DAYS_UNTIL_DUE: u32 = 30;

/// Largest custom price per interval, in minor units: Stripe's limit of
/// eight digits (99,999,999).
pub const MAX_UNIT_AMOUNT: i64 = 99_999_999;

/// Largest custom channel limit.
pub const MAX_CHANNEL_LIMIT: u32 = 10_000;

/// How often an enterprise price is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    /// Every month.
    Month,
    /// Every year.
    Year,
}

/// An `enterprise` price: `unit_amount` minor units of `currency` per
/// `interval`.
#[derive(Debug, Clone)]
pub struct EnterprisePrice {
    /// Minor units, 1..=[`MAX_UNIT_AMOUNT`].
    pub unit_amount: i64,
    /// ISO 4217 code (any case).
    pub currency: String,
    /// Billing interval.
    pub interval: Interval,
}

/// What an admin grants.
#[derive(Debug, Clone)]
pub enum PlanGrant {
    /// The `free` plan: no subscription, the catalogue's limit.
    Free,
    /// The `enterprise` plan at a custom price, with a custom channel limit
    /// (`None`: the catalogue's, unlimited by default).
    Enterprise {
        /// 1..=[`MAX_CHANNEL_LIMIT`], or `None`.
        channel_limit: Option<u32>,
        /// The custom price.
        price: EnterprisePrice,
    },
}

impl PlanGrant {
    fn plan(&self) -> &'static str {
        match self {
            PlanGrant::Free => FREE,
            PlanGrant::Enterprise { .. } => ENTERPRISE,
        }
    }
}

/// Grants `grant` to the scope's business (see the module docs) and answers
/// its billing summary. Errors: 422 for a limit or price out of range or a
/// currency Stripe does not take; 409 `plan_not_configured` when the
/// catalogue lacks the plan (or, for `enterprise`, its Stripe product); 503
/// `billing_unavailable` when Stripe is needed but not configured; 502 when
/// Stripe fails (nothing is stored; retrying is safe).
pub async fn grant(
    ctx: &Billing<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    grant: PlanGrant,
) -> Result<BillingSummary> {
    let plan = grant.plan();
    if !ctx.plans.contains(plan) {
        return Err(not_configured(plan, "the plan catalogue has no such plan"));
    }
    let business_id = scope.id();
    let b = business::Entity::find_by_id(business_id)
        .one(ctx.db)
        .await?
        .ok_or_else(Error::not_found)?;
    let live: Vec<subscription::Model> = subscription::Entity::find()
        .filter(subscription::Column::BusinessId.eq(business_id))
        .all(ctx.db)
        .await?
        .into_iter()
        .filter(|s| is_live(&s.status))
        .collect();
    // One key per grant: the event counter moves when a grant commits.
    let key = format!("switchboard-grant-{business_id}-{}", b.event_seq);
    let (fetched, limit, detail) = match &grant {
        PlanGrant::Free => {
            let mut canceled = Vec::with_capacity(live.len());
            for s in &live {
                let api = customer::stripe(ctx)?;
                canceled.push(api.cancel_now(&s.stripe_subscription_id).await?);
            }
            let ids: Vec<&str> = live
                .iter()
                .map(|s| s.stripe_subscription_id.as_str())
                .collect();
            (canceled, None, json!({ "plan": FREE, "canceled": ids }))
        }
        PlanGrant::Enterprise {
            channel_limit,
            price,
        } => {
            let (limit, currency) = check_enterprise(*channel_limit, price)?;
            let product = ctx.plans.product_of(ENTERPRISE).ok_or_else(|| {
                not_configured(
                    ENTERPRISE,
                    "custom prices need the plan's Stripe product: set plans.enterprise.stripe_product_id (SWITCHBOARD_PLANS__ENTERPRISE__STRIPE_PRODUCT_ID)",
                )
            })?;
            let api = customer::stripe(ctx)?;
            let custom = CustomPrice {
                product,
                currency: &currency,
                unit_amount: price.unit_amount,
                yearly: price.interval == Interval::Year,
            };
            let sub = match entitlement::current(&live) {
                Some(current) => {
                    let item = api.first_item_id(&current.stripe_subscription_id).await?;
                    api.move_to_custom_price(&key, &current.stripe_subscription_id, &item, custom)
                        .await?
                }
                None => {
                    let customer = customer::ensure_customer(ctx, scope).await?;
                    api.create_custom_subscription(
                        &key,
                        &customer,
                        business_id,
                        custom,
                        ENTERPRISE_DAYS_UNTIL_DUE,
                    )
                    .await?
                }
            };
            let detail = json!({
                "plan": ENTERPRISE,
                "channel_limit": limit,
                "unit_amount": price.unit_amount,
                "currency": currency,
                "interval": match price.interval { Interval::Month => "month", Interval::Year => "year" },
                "stripe_subscription_id": sub.id.as_str(),
            });
            (vec![sub], limit, detail)
        }
    };
    store(ctx, actor, scope, plan, limit, &fetched, detail).await?;
    customer::summary(ctx, scope).await
}

/// Checks an enterprise grant's limit and price; the limit as stored and
/// the currency in Stripe's spelling.
fn check_enterprise(
    channel_limit: Option<u32>,
    price: &EnterprisePrice,
) -> Result<(Option<i32>, String)> {
    let limit = match channel_limit {
        None => None,
        Some(l) if (1..=MAX_CHANNEL_LIMIT).contains(&l) => i32::try_from(l).ok(),
        Some(_) => {
            return Err(Error::invalid_field(
                "channel_limit",
                format!("between 1 and {MAX_CHANNEL_LIMIT}, or absent for the plan's own"),
            ));
        }
    };
    if !(1..=MAX_UNIT_AMOUNT).contains(&price.unit_amount) {
        return Err(Error::invalid_field(
            "price.unit_amount",
            format!("whole minor units between 1 and {MAX_UNIT_AMOUNT}"),
        ));
    }
    let currency = purchases::currency_of("price.currency", &price.currency)?;
    Ok((limit, currency))
}

/// Stores the grant and Stripe's answer, settles the entitlement and
/// audits, in one transaction under the business's lock.
async fn store(
    ctx: &Billing<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    plan: &str,
    limit: Option<i32>,
    fetched: &[Subscription],
    detail: serde_json::Value,
) -> Result<()> {
    let business_id = scope.id();
    let txn = crate::db::begin_write(ctx.db).await?;
    if !entitlement::lock_business(&txn, business_id).await? {
        return Err(Error::not_found());
    }
    let b = business::Entity::find_by_id(business_id)
        .one(&txn)
        .await?
        .ok_or_else(Error::not_found)?;
    let now = Utc::now();
    let mut row = b.into_active_model();
    row.granted_plan = Set(Some(plan.to_owned()));
    row.granted_channel_limit = Set(limit);
    row.updated_at = Set(now);
    row.update(&txn).await?;
    for s in fetched {
        subscriptions::apply(
            &txn,
            ctx.plans,
            business_id,
            &SubscriptionState::from(s),
            Version::Fetched(now.timestamp()),
        )
        .await?;
    }
    let change = entitlement::apply(&ctx.rules, &txn, business_id, now).await?;
    let mut detail = detail;
    detail["suspended"] = json!(change.suspended);
    detail["restored"] = json!(change.restored);
    audit::record(
        &txn,
        actor,
        Some(business_id),
        "business.plan_granted",
        &format!("business/{business_id}"),
        Outcome::Success,
        detail,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

fn not_configured(plan: &str, why: &str) -> Error {
    Error::new(
        StatusCode::CONFLICT,
        "plan_not_configured",
        "This plan cannot be granted here",
    )
    .with_detail(why.to_owned())
    .with("plan", plan.to_owned())
}
