//! The business as a Stripe customer: its customer (created once),
//! Checkout and portal sessions, plan changes with the downgrade rule
//! (SPEC §2), cancel and resume at period end, the subscription summary and
//! the invoice list.
//!
//! Stripe calls are never made inside a database write transaction. The
//! state Stripe answers with is applied at once as fetched (authoritative)
//! state, so the owner sees the change without waiting for the webhook,
//! which then finds nothing new.

use axum::http::StatusCode;
use chrono::{DateTime, Duration, TimeZone, Utc};
use entity::billing::subscription;
use entity::enums::{BusinessStatus, Platform};
use entity::inbound_event;
use entity::{business, channel, user};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use stripe_shared::Subscription;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::billing::Billing;
use crate::domain::billing::entitlement::{self, Timings, is_live};
use crate::domain::billing::plans::{PlanView, TRIAL};
use crate::domain::billing::subscriptions::{self, SubscriptionState, Version};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::tenancy::businesses::{Usage, channel_count};
use crate::domain::validate;
use crate::error::{Error, Result};
use crate::integrations::stripe::{StripeApi, customer_idempotency_key};

/// Stripe refuses a Checkout `subscription_data.trial_end` less than 48
/// hours ahead (Stripe API: checkout/sessions/create).
const MIN_CHECKOUT_TRIAL: Duration = Duration::hours(48);

/// A Stripe-hosted page to send the browser to.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostedSession {
    /// Stripe's session id (`cs_…`, `bps_…`).
    pub id: String,
    /// The page's URL.
    pub url: String,
}

/// The Stripe subscription in force, as last synchronised.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDetails {
    /// Stripe subscription id (`sub_…`).
    pub id: String,
    /// Stripe's status (`trialing`, `active`, `past_due`, `canceled`, `unpaid`, …).
    pub status: String,
    /// End of the current billing period (renewal date).
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether it ends at the end of the period instead of renewing.
    pub cancel_at_period_end: bool,
    /// End of Stripe's trial, if any.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub trial_end: Option<DateTime<Utc>>,
}

/// `GET /v1/billing/subscription`: plan, entitlement and usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct BillingSummary {
    /// The plan in force.
    pub plan: PlanView,
    /// Business status (`active`, `restricted`, `over_limit`, …).
    pub status: BusinessStatus,
    /// End of the trial.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub trial_ends_at: DateTime<Utc>,
    /// End of the `past_due` grace period, while in it.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// The Stripe subscription, if there is or was one.
    pub subscription: Option<SubscriptionDetails>,
    /// Channel usage against the plan.
    pub channels: Usage,
}

/// An invoice as `GET /v1/billing/invoices` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoiceView {
    /// Stripe invoice id (`in_…`).
    pub id: String,
    /// Invoice number, once finalised.
    pub number: Option<String>,
    /// `draft`, `open`, `paid`, `uncollectible` or `void`.
    pub status: Option<String>,
    /// Amount due, minor units.
    pub amount_due: i64,
    /// Amount paid, minor units.
    pub amount_paid: i64,
    /// Total, minor units.
    pub total: i64,
    /// ISO 4217 currency, lower case.
    pub currency: String,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created: DateTime<Utc>,
    /// Stripe-hosted page of the invoice.
    pub hosted_invoice_url: Option<String>,
    /// PDF download.
    pub invoice_pdf: Option<String>,
}

/// A page of invoices, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvoicePage {
    /// The invoices.
    pub data: Vec<InvoiceView>,
    /// Pass as `starting_after` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// A channel the owner must remove before a downgrade.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelToRemove {
    /// Channel id.
    pub id: Uuid,
    /// Company.
    pub company_id: Uuid,
    /// Platform.
    pub platform: Platform,
    /// Display name.
    pub account_name: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

/// The Stripe client, or 503 `billing_unavailable` when this deployment
/// has no Stripe key.
pub(super) fn stripe<'a>(ctx: &Billing<'a>) -> Result<&'a StripeApi> {
    ctx.stripe.ok_or_else(|| {
        Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "billing_unavailable",
            "Billing is not configured",
        )
        .with_detail("This deployment has no Stripe key (SWITCHBOARD_STRIPE__SECRET_KEY).")
    })
}

fn ts(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().unwrap_or_default()
}

/// The purchasable plan `plan` and its Stripe price: 422 otherwise.
fn price_of<'a>(ctx: &Billing<'a>, plan: &str) -> Result<&'a str> {
    if !ctx.plans.contains(plan) {
        return Err(Error::invalid_field(
            "plan",
            "unknown plan; see GET /v1/billing/plans",
        ));
    }
    ctx.plans.price_of(plan).ok_or_else(|| {
        Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plan_not_purchasable",
            "This plan cannot be bought",
        )
        .with_detail("It has no Stripe price: it is granted by an admin or has a custom price.")
        .with("plan", plan.to_owned())
    })
}

async fn load(ctx: &Billing<'_>, business_id: Uuid) -> Result<business::Model> {
    business::Entity::find_by_id(business_id)
        .one(ctx.db)
        .await?
        .ok_or_else(Error::not_found)
}

async fn subscriptions_of(
    ctx: &Billing<'_>,
    business_id: Uuid,
) -> Result<Vec<subscription::Model>> {
    Ok(subscription::Entity::find()
        .filter(subscription::Column::BusinessId.eq(business_id))
        .all(ctx.db)
        .await?)
}

/// The live subscription (`trialing`, `active`, `past_due`): 409
/// `no_subscription` when there is none.
async fn live_subscription(ctx: &Billing<'_>, business_id: Uuid) -> Result<subscription::Model> {
    let subs = subscriptions_of(ctx, business_id).await?;
    entitlement::current(&subs)
        .filter(|s| is_live(&s.status))
        .cloned()
        .ok_or_else(|| {
            Error::conflict("no_subscription", "There is no subscription in force; start one with POST /v1/billing/checkout-session.")
        })
}

/// The business's Stripe customer, created on first use with the business
/// id in metadata and an idempotency key derived from the business id (and
/// the number of its customers deleted before, so a new customer after a
/// deletion gets a new key).
pub async fn ensure_customer(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<String> {
    let business_id = scope.id();
    customer_of(ctx, &load(ctx, business_id).await?).await
}

/// [`ensure_customer`] for a business already loaded.
async fn customer_of(ctx: &Billing<'_>, b: &business::Model) -> Result<String> {
    let business_id = b.id;
    if let Some(id) = &b.stripe_customer_id {
        return Ok(id.clone());
    }
    let owner = user::Entity::find_by_id(b.owner_id)
        .one(ctx.db)
        .await?
        .ok_or_else(Error::not_found)?;
    let deleted_before = inbound_event::Entity::find()
        .filter(inbound_event::Column::Source.eq("stripe"))
        .filter(inbound_event::Column::BusinessId.eq(business_id))
        .filter(inbound_event::Column::EventType.eq("customer.deleted"))
        .count(ctx.db)
        .await?;
    let key = match deleted_before {
        0 => customer_idempotency_key(business_id),
        n => format!("{}-{n}", customer_idempotency_key(business_id)),
    };
    let customer = stripe(ctx)?
        .create_customer(&key, business_id, &owner.email, &b.name)
        .await?;
    let id = customer.id.to_string();
    // Concurrent first uses share the idempotency key, hence the customer;
    // whichever stores it first wins and the others read it back.
    business::Entity::update_many()
        .col_expr(business::Column::StripeCustomerId, Expr::value(id.clone()))
        .filter(business::Column::Id.eq(business_id))
        .filter(business::Column::StripeCustomerId.is_null())
        .exec(ctx.db)
        .await?;
    Ok(load(ctx, business_id)
        .await?
        .stripe_customer_id
        .unwrap_or(id))
}

/// A Checkout Session for `plan` (subscription mode, `client_reference_id`
/// = business id). During our trial the subscription's trial ends when ours
/// does, so nobody pays twice (unless under 48 hours remain, which Stripe
/// does not accept; then billing starts at once). 409
/// `subscription_exists` when a subscription is already in force.
pub async fn checkout_session(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    plan: &str,
) -> Result<HostedSession> {
    let business_id = scope.id();
    let api = stripe(ctx)?;
    let price = price_of(ctx, plan)?;
    let subs = subscriptions_of(ctx, business_id).await?;
    if subs.iter().any(|s| is_live(&s.status)) {
        return Err(Error::conflict(
            "subscription_exists",
            "A subscription is already in force; use POST /v1/billing/change-plan.",
        ));
    }
    let b = load(ctx, business_id).await?;
    let customer = customer_of(ctx, &b).await?;
    let now = Utc::now();
    let trial_end =
        (b.plan == TRIAL && subs.is_empty() && b.trial_ends_at - now >= MIN_CHECKOUT_TRIAL)
            .then(|| b.trial_ends_at.timestamp());
    let stripe_cfg = ctx.config.stripe.as_ref();
    let billing_url = ctx.config.billing_url();
    let success = stripe_cfg
        .and_then(|c| c.success_url.clone())
        .unwrap_or_else(|| format!("{billing_url}/success?session_id={{CHECKOUT_SESSION_ID}}"));
    let cancel = stripe_cfg
        .and_then(|c| c.cancel_url.clone())
        .unwrap_or(billing_url);
    let session = api
        .create_checkout_session(&customer, business_id, price, trial_end, &success, &cancel)
        .await?;
    let url = session
        .url
        .ok_or_else(|| Error::internal("Stripe returned a Checkout Session without a URL"))?;
    Ok(HostedSession {
        id: session.id.to_string(),
        url,
    })
}

/// A customer-portal session (manage payment methods, invoices, plan).
pub async fn portal_session(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<HostedSession> {
    let api = stripe(ctx)?;
    let customer = ensure_customer(ctx, scope).await?;
    let return_url = ctx
        .config
        .stripe
        .as_ref()
        .and_then(|c| c.portal_return_url.clone())
        .unwrap_or_else(|| ctx.config.billing_url());
    let session = api.create_portal_session(&customer, &return_url).await?;
    Ok(HostedSession {
        id: session.id.to_string(),
        url: session.url,
    })
}

/// Stores `subs`, as fetched from Stripe just now (authoritative), and
/// re-evaluates the business, in one locked transaction. Returns how many
/// stored subscriptions changed and what changed for the business; 404
/// when the business is gone.
pub async fn apply_fetched(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    subs: &[Subscription],
) -> Result<(u64, entitlement::Change)> {
    let business_id = scope.id();
    let txn = crate::db::begin_write(ctx.db).await?;
    if !entitlement::lock_business(&txn, business_id).await? {
        return Err(Error::not_found());
    }
    let now = Utc::now();
    let mut repaired = 0;
    for s in subs {
        let applied = subscriptions::apply(
            &txn,
            ctx.plans,
            business_id,
            &SubscriptionState::from(s),
            Version::Fetched(now.timestamp()),
        )
        .await?;
        if applied == subscriptions::Applied::Changed {
            repaired += 1;
        }
    }
    let change = entitlement::apply(&ctx.rules, &txn, business_id, now).await?;
    txn.commit().await?;
    Ok((repaired, change))
}

/// Moves the subscription to `plan`. Upgrades apply at once, prorated and
/// invoiced now; a downgrade to fewer channels than are in use is refused
/// with 409 `downgrade_below_usage` listing the channels to remove first
/// (the newest ones, as a Stripe-side downgrade would suspend).
pub async fn change_plan(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    plan: &str,
) -> Result<BillingSummary> {
    let business_id = scope.id();
    let api = stripe(ctx)?;
    let price = price_of(ctx, plan)?;
    let sub = live_subscription(ctx, business_id).await?;
    if sub.price_id.as_deref() == Some(price) {
        return summary(ctx, scope).await;
    }
    let used = channel_count(ctx.db, business_id).await?;
    if let Some(limit) = ctx.plans.channel_limit(plan)
        && used > u64::from(limit)
    {
        let excess = used - u64::from(limit);
        let newest = channel::Entity::find()
            .filter(channel::Column::BusinessId.eq(business_id))
            .order_by_desc(channel::Column::CreatedAt)
            .order_by_desc(channel::Column::Id)
            .limit(excess)
            .all(ctx.db)
            .await?;
        let channels: Vec<ChannelToRemove> = newest
            .into_iter()
            .map(|c| ChannelToRemove {
                id: c.id,
                company_id: c.company_id,
                platform: c.platform,
                account_name: c.account_name,
                created_at: c.created_at,
            })
            .collect();
        return Err(Error::conflict(
            "downgrade_below_usage",
            format!(
                "The {plan} plan allows {limit} channel(s) and {used} are in use: remove at least {excess} first."
            ),
        )
        .with("plan", plan.to_owned())
        .with("limit", limit)
        .with("used", used)
        .with("remove_at_least", excess)
        .with("channels", serde_json::to_value(channels).map_err(Error::internal)?));
    }
    let current_plan = sub.plan.clone().unwrap_or_default();
    let upgrade = is_upgrade(ctx, &current_plan, plan);
    let item = api.first_item_id(&sub.stripe_subscription_id).await?;
    let updated = api
        .change_price(&sub.stripe_subscription_id, &item, price, upgrade)
        .await?;
    apply_fetched(ctx, scope, std::slice::from_ref(&updated)).await?;
    summary(ctx, scope).await
}

/// Whether `to` is worth more than `from`: a higher price, else more channels.
fn is_upgrade(ctx: &Billing<'_>, from: &str, to: &str) -> bool {
    let (a, b) = (ctx.plans.view(from), ctx.plans.view(to));
    match (a.price_minor, b.price_minor) {
        (Some(x), Some(y)) if x != y => y > x,
        _ => b.channel_limit.unwrap_or(u32::MAX) > a.channel_limit.unwrap_or(u32::MAX),
    }
}

/// Cancels at the end of the paid period (`cancel = true`) or takes that back.
pub async fn set_cancel(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    cancel: bool,
) -> Result<BillingSummary> {
    let business_id = scope.id();
    let api = stripe(ctx)?;
    let sub = live_subscription(ctx, business_id).await?;
    let updated = api
        .set_cancel_at_period_end(&sub.stripe_subscription_id, cancel)
        .await?;
    apply_fetched(ctx, scope, std::slice::from_ref(&updated)).await?;
    summary(ctx, scope).await
}

/// The subscription that decides the business's plan, if any (what a
/// manager sees: status and renewal date).
pub async fn subscription_details(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
) -> Result<Option<SubscriptionDetails>> {
    let business_id = scope.id();
    let subs = subscriptions_of(ctx, business_id).await?;
    Ok(entitlement::current(&subs).map(details))
}

fn details(s: &subscription::Model) -> SubscriptionDetails {
    SubscriptionDetails {
        id: s.stripe_subscription_id.clone(),
        status: s.status.clone(),
        current_period_end: s.current_period_end,
        cancel_at_period_end: s.cancel_at_period_end,
        trial_end: s.trial_end,
    }
}

/// Plan, entitlement, subscription and usage, from the database.
pub async fn summary(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<BillingSummary> {
    let business_id = scope.id();
    let b = load(ctx, business_id).await?;
    let subs = subscriptions_of(ctx, business_id).await?;
    let now = Utc::now();
    let t = Timings::from_config(&ctx.config.billing);
    let e = entitlement::evaluate(&b, &subs, now, t);
    let used = channel_count(ctx.db, business_id).await?;
    let status = crate::domain::tenancy::businesses::effective_status(&b, now);
    Ok(BillingSummary {
        plan: ctx.plans.view_of(&b),
        status,
        trial_ends_at: b.trial_ends_at,
        grace_ends_at: e.grace_ends_at,
        subscription: entitlement::current(&subs).map(details),
        channels: Usage {
            used,
            limit: ctx.plans.limit_of(&b),
        },
    })
}

/// A Stripe invoice id as `starting_after` takes it: `in_` and up to 252
/// of `A-Z a-z 0-9 _` (Stripe ids are at most 255 characters).
pub const INVOICE_ID_PATTERN: &str = r"^in_[A-Za-z0-9_]{1,252}$";

/// A page of the business's invoices from Stripe, newest first; empty
/// before the business has a Stripe customer. 422 for a `starting_after`
/// that is not an invoice id.
pub async fn invoices(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    limit: u64,
    starting_after: Option<&str>,
) -> Result<InvoicePage> {
    if starting_after.is_some_and(|after| !validate::matches(INVOICE_ID_PATTERN, after)) {
        return Err(Error::invalid_field("starting_after", "not an invoice id"));
    }
    let business_id = scope.id();
    let api = stripe(ctx)?;
    let b = load(ctx, business_id).await?;
    let Some(customer) = b.stripe_customer_id else {
        return Ok(InvoicePage {
            data: Vec::new(),
            next_cursor: None,
        });
    };
    let page = api
        .list_invoices(
            &customer,
            i64::try_from(limit).unwrap_or(100),
            starting_after,
        )
        .await?;
    let data: Vec<InvoiceView> = page
        .data
        .into_iter()
        .filter_map(|i| {
            Some(InvoiceView {
                id: i.id?.to_string(),
                number: i.number,
                status: i.status.map(|s| s.as_str().to_owned()),
                amount_due: i.amount_due,
                amount_paid: i.amount_paid,
                total: i.total,
                currency: i.currency.to_string(),
                created: ts(i.created),
                hosted_invoice_url: i.hosted_invoice_url,
                invoice_pdf: i.invoice_pdf,
            })
        })
        .collect();
    let next_cursor = if page.has_more {
        data.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(InvoicePage { data, next_cursor })
}
