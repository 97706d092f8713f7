//! End-customer payments and the purchase log (SPEC §3 "Purchase"): a
//! business (its owner, or its n8n workflow with an API key) asks an end
//! customer to pay; Stripe Checkout takes the payment as a destination
//! charge to the business's connected account (Stripe docs: Connect,
//! "Destination charges"); Stripe's events move the purchase on.
//!
//! - [`create`]: validates (whole positive minor units up to
//!   `billing.purchase_max_amount`, a currency Stripe knows, the company
//!   and channel of the business), requires an `enabled` connected account
//!   (409 `connect_not_enabled`), records the purchase `no_payment_link`,
//!   creates the Checkout Session (`application_fee_amount` from
//!   `billing.application_fee_bps`) and moves it to `payment_link_sent`.
//! - [`apply`]: `checkout.session.completed` (paid) → `paid`,
//!   `checkout.session.expired` → `expired`, `charge.refunded` → `refunded`.
//!   Statuses only move forward (`no_payment_link` < `payment_link_sent` <
//!   `paid` | `expired` < `refunded`): a late `expired` after `paid`
//!   changes nothing, a refund that arrives before the payment is not
//!   undone by it, so any order and any duplicates end in the in-order
//!   state.
//! - Every change of status is an event: `purchase.created`,
//!   `purchase.payment_link_sent`, `purchase.paid`, `purchase.expired`,
//!   `purchase.refunded`.

use chrono::{DateTime, Utc};
use entity::purchase;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Billing;
use super::connect::{self, State};
use crate::domain::events::{self, kind};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::validate;
use crate::error::{Error, Result};
use crate::integrations::stripe::connect::DestinationCharge;

/// Where a purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStatus {
    /// Recorded; no payment link yet (Stripe did not answer).
    NoPaymentLink,
    /// The customer has a payment link.
    PaymentLinkSent,
    /// Paid.
    Paid,
    /// The link expired unpaid.
    Expired,
    /// Paid, then refunded.
    Refunded,
}

impl PurchaseStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::NoPaymentLink => "no_payment_link",
            PurchaseStatus::PaymentLinkSent => "payment_link_sent",
            PurchaseStatus::Paid => "paid",
            PurchaseStatus::Expired => "expired",
            PurchaseStatus::Refunded => "refunded",
        }
    }

    fn parse(s: &str) -> PurchaseStatus {
        match s {
            "payment_link_sent" => PurchaseStatus::PaymentLinkSent,
            "paid" => PurchaseStatus::Paid,
            "expired" => PurchaseStatus::Expired,
            "refunded" => PurchaseStatus::Refunded,
            _ => PurchaseStatus::NoPaymentLink,
        }
    }

    /// How far along it is; a purchase only moves to a higher rank.
    fn rank(self) -> u8 {
        match self {
            PurchaseStatus::NoPaymentLink => 0,
            PurchaseStatus::PaymentLinkSent => 1,
            PurchaseStatus::Paid | PurchaseStatus::Expired => 2,
            PurchaseStatus::Refunded => 3,
        }
    }

    /// The event kind of reaching this status.
    fn event(self) -> &'static str {
        match self {
            PurchaseStatus::NoPaymentLink => kind::PURCHASE_CREATED,
            PurchaseStatus::PaymentLinkSent => kind::PURCHASE_PAYMENT_LINK_SENT,
            PurchaseStatus::Paid => kind::PURCHASE_PAID,
            PurchaseStatus::Expired => kind::PURCHASE_EXPIRED,
            PurchaseStatus::Refunded => kind::PURCHASE_REFUNDED,
        }
    }
}

/// Where the customer came from (a TikTok lead talks over WhatsApp but is
/// `tiktok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeadSource {
    /// WhatsApp.
    Whatsapp,
    /// Telegram.
    Telegram,
    /// Instagram.
    Instagram,
    /// Facebook.
    Facebook,
    /// Email.
    Email,
    /// A TikTok ad.
    Tiktok,
    /// The business's website.
    Website,
    /// Anything else.
    Other,
}

impl LeadSource {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadSource::Whatsapp => "whatsapp",
            LeadSource::Telegram => "telegram",
            LeadSource::Instagram => "instagram",
            LeadSource::Facebook => "facebook",
            LeadSource::Email => "email",
            LeadSource::Tiktok => "tiktok",
            LeadSource::Website => "website",
            LeadSource::Other => "other",
        }
    }

    fn parse(s: &str) -> LeadSource {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).unwrap_or(LeadSource::Other)
    }
}

/// A purchase in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurchaseView {
    /// Purchase id.
    pub id: Uuid,
    /// Company it is for.
    pub company_id: Uuid,
    /// Channel the customer talks on, if given.
    pub channel_id: Option<Uuid>,
    /// The business's own reference of the end customer.
    pub customer_ref: String,
    /// What is bought.
    pub description: String,
    /// Integer minor units of `currency`.
    pub amount: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// The platform's fee, minor units.
    pub application_fee_amount: i64,
    /// Where the customer came from.
    pub lead_source: LeadSource,
    /// Where it stands.
    pub status: PurchaseStatus,
    /// The payment page (Stripe Checkout), once there is one.
    pub payment_url: Option<String>,
    /// Stripe's Checkout Session id.
    pub stripe_checkout_session_id: Option<String>,
    /// Stripe's PaymentIntent id, once paid.
    pub stripe_payment_intent_id: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<purchase::Model> for PurchaseView {
    fn from(p: purchase::Model) -> Self {
        PurchaseView {
            id: p.id,
            company_id: p.company_id,
            channel_id: p.channel_id,
            customer_ref: p.customer_ref,
            description: p.description,
            amount: p.amount,
            currency: p.currency,
            application_fee_amount: p.application_fee_amount,
            lead_source: LeadSource::parse(&p.lead_source),
            status: PurchaseStatus::parse(&p.status),
            payment_url: p.payment_url,
            stripe_checkout_session_id: p.stripe_checkout_session_id,
            stripe_payment_intent_id: p.stripe_payment_intent_id,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A payment to ask for.
pub struct NewPurchase {
    /// Company of the business.
    pub company_id: Uuid,
    /// Channel of that company, if the customer talks on one.
    pub channel_id: Option<Uuid>,
    /// The business's reference of the end customer (≤ 200 characters).
    pub customer_ref: String,
    /// What is bought (≤ 200 characters; the customer sees it).
    pub description: String,
    /// Whole minor units, positive.
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Where the customer came from.
    pub lead_source: LeadSource,
}

/// A three-letter currency code (ISO 4217), lower or upper case.
pub const CURRENCY_PATTERN: &str = "^[A-Za-z]{3}$";

/// `raw` as the lower-case ISO 4217 code Stripe takes; 422 naming `field`
/// otherwise.
pub(super) fn currency_of(field: &str, raw: &str) -> Result<String> {
    use std::str::FromStr;
    let code = raw.to_ascii_lowercase();
    let known = validate::matches(CURRENCY_PATTERN, raw)
        && !matches!(
            stripe_types::Currency::from_str(&code),
            Ok(stripe_types::Currency::Unknown(_))
        );
    if known {
        Ok(code)
    } else {
        Err(Error::invalid_field(
            field,
            "an ISO 4217 currency Stripe takes, e.g. usd or EUR",
        ))
    }
}

/// Asks the end customer for a payment (201 with the payment link). See
/// the module docs for the refusals.
pub async fn create(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    input: NewPurchase,
) -> Result<PurchaseView> {
    let customer_ref = validate::name("customer_ref", &input.customer_ref, validate::NAME_MAX)?;
    let description = validate::name("description", &input.description, validate::NAME_MAX)?;
    let max = ctx.config.billing.purchase_max_amount;
    if input.amount <= 0 || input.amount > max {
        return Err(Error::invalid_field(
            "amount",
            format!("a whole number of minor units from 1 to {max}"),
        ));
    }
    let currency = currency_of("currency", &input.currency)?;
    crate::domain::tenancy::companies::find(ctx.db, scope, input.company_id).await?;
    if let Some(channel_id) = input.channel_id {
        let c = crate::domain::channels::find(ctx.db, scope, channel_id).await?;
        if c.company_id != input.company_id {
            return Err(Error::invalid_field(
                "channel_id",
                "a channel of the purchase's company",
            ));
        }
    }
    let stripe = super::customer::stripe(ctx)?;
    let account = connect::find(ctx.db, scope.id()).await?;
    let Some(account) = account.filter(|a| a.state == State::Enabled.as_str()) else {
        return Err(Error::conflict(
            "connect_not_enabled",
            "The business cannot take payments yet: its Stripe connected account must be enabled (GET /v1/connect/account says what is missing).",
        ));
    };
    let fee = i64::try_from(
        i128::from(input.amount) * i128::from(ctx.config.billing.application_fee_bps) / 10_000,
    )
    .unwrap_or(0);
    let now = Utc::now();
    let row = purchase::ActiveModel {
        id: Set(Uuid::now_v7()),
        business_id: Set(scope.id()),
        company_id: Set(input.company_id),
        channel_id: Set(input.channel_id),
        customer_ref: Set(customer_ref),
        description: Set(description),
        amount: Set(input.amount),
        currency: Set(currency),
        application_fee_amount: Set(fee),
        lead_source: Set(input.lead_source.as_str().to_owned()),
        status: Set(PurchaseStatus::NoPaymentLink.as_str().to_owned()),
        stripe_account_id: Set(account.stripe_account_id.clone()),
        stripe_checkout_session_id: Set(None),
        stripe_payment_intent_id: Set(None),
        payment_url: Set(None),
        status_at: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let txn = crate::db::begin_write(ctx.db).await?;
    let p = row.insert(&txn).await?;
    record(&txn, &p, None).await?;
    txn.commit().await?;
    let base = ctx.config.public_base();
    let session = stripe
        .create_destination_checkout(&DestinationCharge {
            purchase_id: p.id,
            business_id: scope.id(),
            destination: &account.stripe_account_id,
            description: &p.description,
            amount: p.amount,
            currency: &p.currency,
            application_fee_amount: fee,
            success_url: &format!("{base}/pay/done"),
            cancel_url: &format!("{base}/pay/cancelled"),
        })
        .await
        .map_err(|e| e.with("purchase_id", p.id.to_string()))?;
    let txn = crate::db::begin_write(ctx.db).await?;
    let current = purchase::Entity::find_by_id(p.id)
        .one(&txn)
        .await?
        .ok_or_else(Error::not_found)?;
    let from = PurchaseStatus::parse(&current.status);
    let mut active: purchase::ActiveModel = current.into();
    active.stripe_checkout_session_id = Set(Some(session.id.to_string()));
    active.payment_url = Set(session.url.clone());
    if from == PurchaseStatus::NoPaymentLink {
        active.status = Set(PurchaseStatus::PaymentLinkSent.as_str().to_owned());
    }
    active.updated_at = Set(Utc::now());
    let p = active.update(&txn).await?;
    if from == PurchaseStatus::NoPaymentLink {
        record(&txn, &p, Some(from)).await?;
    }
    txn.commit().await?;
    Ok(p.into())
}

async fn record<C: ConnectionTrait>(
    db: &C,
    p: &purchase::Model,
    from: Option<PurchaseStatus>,
) -> Result<()> {
    let (event_type, data) = event_of(p, from)?;
    events::record(db, p.business_id, event_type, data).await?;
    Ok(())
}

/// The event of purchase `p` reaching its status from `from`: its kind
/// (`purchase.paid`, …) and data (the purchase as the API shows it, with
/// `from`).
pub fn event_of(
    p: &purchase::Model,
    from: Option<PurchaseStatus>,
) -> Result<(&'static str, serde_json::Value)> {
    let status = PurchaseStatus::parse(&p.status);
    let mut data = serde_json::to_value(PurchaseView::from(p.clone())).map_err(Error::internal)?;
    data["from"] = serde_json::to_value(from).unwrap_or_default();
    Ok((status.event(), data))
}

/// Purchase `id` of the scope's business, or 404.
pub async fn get(ctx: &Billing<'_>, scope: &BusinessScope, id: Uuid) -> Result<PurchaseView> {
    purchase::Entity::find_by_id(id)
        .filter(purchase::Column::BusinessId.eq(scope.id()))
        .one(ctx.db)
        .await?
        .map(Into::into)
        .ok_or_else(Error::not_found)
}

/// Filters of the purchase log.
#[derive(Debug, Default, Clone)]
pub struct PurchaseFilter {
    /// Only this status.
    pub status: Option<PurchaseStatus>,
    /// Only this company's.
    pub company_id: Option<Uuid>,
    /// Only this channel's.
    pub channel_id: Option<Uuid>,
    /// Only this lead source.
    pub lead_source: Option<LeadSource>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
}

/// A page of the scope's business's purchases matching `filter`, oldest
/// first.
pub async fn list(
    ctx: &Billing<'_>,
    scope: &BusinessScope,
    filter: &PurchaseFilter,
    page: PageRequest,
) -> Result<Page<PurchaseView>> {
    let rows = batch(ctx.db, scope.id(), filter, page.after, page.limit + 1).await?;
    Ok(Page::from_rows(rows, page, |p| p.id, PurchaseView::from))
}

/// The export's columns, in order (amounts in integer minor units, like
/// the API; times RFC 3339).
pub const EXPORT_COLUMNS: [&str; 14] = [
    "id",
    "created_at",
    "updated_at",
    "status",
    "amount_minor",
    "currency",
    "application_fee_minor",
    "customer_ref",
    "description",
    "lead_source",
    "company_id",
    "channel_id",
    "stripe_checkout_session_id",
    "stripe_payment_intent_id",
];

/// `value` safe to open in a spreadsheet: a cell that starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return would run as a formula, so it
/// gets a leading `'` (OWASP: CSV injection).
pub fn spreadsheet_safe(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

/// One purchase as an export row ([`EXPORT_COLUMNS`]).
pub fn export_row(p: &purchase::Model) -> [String; 14] {
    let t = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    [
        p.id.to_string(),
        t(p.created_at),
        t(p.updated_at),
        p.status.clone(),
        p.amount.to_string(),
        p.currency.clone(),
        p.application_fee_amount.to_string(),
        spreadsheet_safe(&p.customer_ref).into_owned(),
        spreadsheet_safe(&p.description).into_owned(),
        p.lead_source.clone(),
        p.company_id.to_string(),
        p.channel_id.map(|c| c.to_string()).unwrap_or_default(),
        p.stripe_checkout_session_id.clone().unwrap_or_default(),
        p.stripe_payment_intent_id.clone().unwrap_or_default(),
    ]
}

/// Up to `limit` purchases of business `business_id` matching `filter`
/// after `after`, oldest first (the export reads the log in such batches).
pub async fn batch(
    db: &sea_orm::DatabaseConnection,
    business_id: Uuid,
    filter: &PurchaseFilter,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<purchase::Model>> {
    let mut q = purchase::Entity::find().filter(purchase::Column::BusinessId.eq(business_id));
    if let Some(s) = filter.status {
        q = q.filter(purchase::Column::Status.eq(s.as_str()));
    }
    if let Some(c) = filter.company_id {
        q = q.filter(purchase::Column::CompanyId.eq(c));
    }
    if let Some(c) = filter.channel_id {
        q = q.filter(purchase::Column::ChannelId.eq(c));
    }
    if let Some(l) = filter.lead_source {
        q = q.filter(purchase::Column::LeadSource.eq(l.as_str()));
    }
    if let Some(t) = filter.created_from {
        q = q.filter(purchase::Column::CreatedAt.gte(t));
    }
    if let Some(t) = filter.created_to {
        q = q.filter(purchase::Column::CreatedAt.lt(t));
    }
    if let Some(after) = after {
        q = q.filter(purchase::Column::Id.gt(after));
    }
    Ok(q.order_by_asc(purchase::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// What a Stripe event says of a purchase.
#[derive(Debug, Clone)]
pub struct Update {
    /// The purchase, when the event names it (metadata `purchase_id`).
    pub purchase_id: Option<Uuid>,
    /// The PaymentIntent the event concerns.
    pub payment_intent: Option<String>,
    /// The status it moves the purchase to.
    pub to: PurchaseStatus,
    /// The event's `created`, Unix seconds.
    pub at: i64,
}

/// What [`advance`] did to a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// Anything changed (the status, or the PaymentIntent learnt).
    pub changed: bool,
    /// The status it left, when it moved forward (then an event is due).
    pub from: Option<PurchaseStatus>,
}

/// Applies `u` to purchase `p` as it stands: `p` moves to `u.to` if that is
/// further along (statuses only move forward, so any order of events ends
/// in the in-order state, and a duplicate changes nothing); the
/// PaymentIntent is recorded when learnt. The caller applies the events of
/// one purchase one after the other, from its newest row (the Stripe
/// batch holds the business's row lock).
pub fn advance(p: &mut purchase::Model, u: &Update, now: DateTime<Utc>) -> Advance {
    let from = PurchaseStatus::parse(&p.status);
    let forward = u.to.rank() > from.rank();
    let learns = p.stripe_payment_intent_id.is_none() && u.payment_intent.is_some();
    if learns {
        p.stripe_payment_intent_id.clone_from(&u.payment_intent);
    }
    if forward {
        p.status = u.to.as_str().to_owned();
        p.status_at = u.at;
    }
    if forward || learns {
        p.updated_at = now;
    }
    Advance {
        changed: forward || learns,
        from: forward.then_some(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        use PurchaseStatus::*;
        assert!(Paid.rank() > PaymentLinkSent.rank());
        assert_eq!(
            Paid.rank(),
            Expired.rank(),
            "paid and expired exclude each other"
        );
        assert!(Refunded.rank() > Paid.rank());
        for s in [NoPaymentLink, PaymentLinkSent, Paid, Expired, Refunded] {
            assert_eq!(PurchaseStatus::parse(s.as_str()), s);
        }
    }

    #[test]
    fn currencies_are_iso_codes_stripe_takes() {
        assert_eq!(currency_of("currency", "usd").unwrap(), "usd");
        assert_eq!(currency_of("currency", "EUR").unwrap(), "eur");
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        for risky in ["+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_safe(risky).starts_with('\''), "{risky:?}");
        }
        assert_eq!(spreadsheet_safe("Rye bread"), "Rye bread");
        for bad in ["xyz", "us", "usdd", "", "12a", "u$d"] {
            assert!(currency_of("currency", bad).is_err(), "{bad}");
        }
    }
}
