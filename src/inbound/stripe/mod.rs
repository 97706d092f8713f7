//! The Stripe source: `POST /v1/webhooks/stripe`. Verify, then process
//! each event exactly once, in any order (SPEC §5; Stripe docs: webhooks,
//! "Handle duplicate events", "Event ordering").
//!
//! - The signature is checked over the raw body before anything is parsed
//!   ([`signature`]); a bad one changes nothing and is answered 400.
//! - The event then goes to the source's writer ([`crate::inbound::writer`]),
//!   which commits it ([`commit`], grouped with concurrent deliveries)
//!   together with its row in the ledger (source `stripe`), so a duplicate
//!   finds it `done` and is a no-op, and a failure rolls both back. The
//!   failure is then recorded (`failed`, attempts, error) and answered 5xx
//!   so Stripe retries.
//! - Subscription state obeys the per-subscription watermark
//!   ([`crate::domain::billing::subscriptions`]); events that carry no
//!   subscription state (`checkout.session.completed`, `invoice.*`)
//!   re-fetch the subscription from Stripe, and the fetched state is the
//!   truth as of now.
//! - Every effect ends in [`crate::domain::billing::entitlement::settle`], a
//!   function of the stored state: any order and any number of duplicates
//!   converge.
//!
//! Handled: `checkout.session.completed`, `customer.subscription.created`,
//! `…updated`, `…deleted`, `…paused`, `…resumed`, `…trial_will_end`,
//! `invoice.paid`, `invoice.payment_failed`, `customer.created`,
//! `customer.deleted`; and, for end-customer purchases,
//! `checkout.session.completed` / `…async_payment_succeeded` /
//! `…expired` of payment-mode sessions and `charge.refunded`
//! ([`crate::domain::billing::purchases`], in the same group commit as
//! the rest, under the business's row lock). Other types are acknowledged
//! and recorded, without effect. Connect events (they carry `account`) concern a connected
//! account's own objects, never a business's subscription: recorded here
//! without effect; Stripe sends them to the Connect endpoint, whose source
//! is [`connect`].

pub mod commit;
pub mod connect;
pub mod event;
pub mod signature;

use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use self::event::{Effect, Item, Step};
use crate::domain::billing::entitlement::Notice;
use crate::domain::billing::purchases::{self, PurchaseStatus};
use crate::domain::billing::subscriptions::{self, SubscriptionState, Version};
use crate::error::{Error, Result};
use crate::inbound::{Outcome, ledger};
use crate::integrations::stripe::{BUSINESS_METADATA_KEY, StripeApi};
use crate::state::AppState;

/// A Stripe event as both endpoints read it (the platform's and Connect's).
#[derive(Deserialize)]
pub(super) struct Envelope<'a> {
    /// Set on Connect events: they concern a connected account's own
    /// objects, never a business's subscription to Switchboard.
    #[serde(default)]
    pub(super) account: Option<String>,
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) type_: String,
    pub(super) created: i64,
    #[serde(borrow)]
    pub(super) data: Data<'a>,
}

/// An event's `data`.
#[derive(Deserialize)]
pub(super) struct Data<'a> {
    /// `data.object`, raw.
    #[serde(borrow)]
    pub(super) object: &'a RawValue,
}

/// Checks `signature` over the raw `body` with any of `secrets` (within
/// `billing.webhook_tolerance_secs`), then reads the event's envelope.
/// 400 for a bad signature or body: nothing is changed.
pub(super) fn verified<'a>(
    state: &AppState,
    secrets: &[secrecy::SecretString],
    signature: Option<&str>,
    body: &'a [u8],
) -> Result<Envelope<'a>> {
    let tolerance = i64::try_from(state.config.billing.webhook_tolerance_secs).unwrap_or(300);
    signature::verify(signature, body, secrets, Utc::now().timestamp(), tolerance).map_err(|e| {
        Error::new(StatusCode::BAD_REQUEST, e.code(), "Invalid Stripe signature").with_detail(
            "The Stripe-Signature header does not sign this body with a configured endpoint secret within the tolerance.",
        )
    })?;
    serde_json::from_slice(body).map_err(|e| invalid_event(&format!("{e}")))
}

/// An event's `created` (Unix seconds) as a time.
pub(super) fn created_at(created: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(created, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

#[derive(Deserialize)]
struct CustomerObject {
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

pub(super) fn invalid_event(what: &str) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_event",
        "Not a Stripe event",
    )
    .with_detail(what.to_owned())
}

/// Verifies and processes one delivery (`body` is the raw request body).
/// 400 for a bad signature or body (nothing changed), 503 when webhooks are
/// not configured, 500 `webhook_processing_failed` when processing failed
/// (recorded in the ledger for the retry).
pub async fn receive(state: &AppState, signature: Option<&str>, body: &[u8]) -> Result<Outcome> {
    let (Some(stripe), false) = (state.stripe.as_ref(), state.webhook_secrets.is_empty()) else {
        return Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_unavailable",
            "Stripe webhooks are not configured",
        ));
    };
    let env = verified(state, &state.webhook_secrets, signature, body)?;
    match process(state, stripe, &env).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let created = created_at(env.created);
            Err(ledger::failed(&state.db, SOURCE, &env.id, &env.type_, created, e, "Stripe").await)
        }
    }
}

fn effect_of(env: &Envelope<'_>) -> Result<Effect> {
    if env.account.is_some() {
        return Ok(Effect::default());
    }
    let object = env.data.object.get();
    let mut effect = Effect {
        known: true,
        ..Effect::default()
    };
    match env.type_.as_str() {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.deleted"
        | "customer.subscription.paused"
        | "customer.subscription.resumed"
        | "customer.subscription.trial_will_end" => {
            let s = subscriptions::parse(object)?;
            effect.customer = Some(s.customer.clone());
            effect.hint = s.business_id;
            if env.type_ == "customer.subscription.trial_will_end" && s.status == "trialing" {
                effect.notice = Some(Notice::TrialEnding);
            }
            effect.sub = Some((s, Version::Event(env.created)));
        }
        "checkout.session.completed" => {
            let cs: stripe_shared::CheckoutSession = miniserde::json::from_str(object)
                .map_err(|_| invalid_event("data.object is not a Checkout Session"))?;
            effect.customer = cs.customer.as_ref().map(|c| c.id().to_string());
            effect.hint = cs
                .client_reference_id
                .as_deref()
                .and_then(|r| r.parse().ok());
            effect.fetch = cs.subscription.as_ref().map(|s| s.id().to_string());
        }
        "invoice.paid" | "invoice.payment_failed" => {
            let inv: stripe_shared::Invoice = miniserde::json::from_str(object)
                .map_err(|_| invalid_event("data.object is not an invoice"))?;
            effect.customer = inv.customer.as_ref().map(|c| c.id().to_string());
            effect.fetch = inv
                .parent
                .as_ref()
                .and_then(|p| p.subscription_details.as_ref())
                .map(|d| d.subscription.id().to_string());
            if env.type_ == "invoice.payment_failed" {
                effect.notice = Some(Notice::PaymentFailed);
            }
        }
        "customer.created" | "customer.deleted" => {
            let c: CustomerObject = serde_json::from_str(object)
                .map_err(|_| invalid_event("data.object is not a customer"))?;
            effect.hint = c
                .metadata
                .get(BUSINESS_METADATA_KEY)
                .and_then(|v| v.parse().ok());
            effect.customer_deleted = env.type_ == "customer.deleted";
            effect.customer = Some(c.id);
        }
        _ => effect.known = false,
    }
    Ok(effect)
}

async fn process(state: &AppState, stripe: &StripeApi, env: &Envelope<'_>) -> Result<Outcome> {
    let mut effect = match purchase_update(env)? {
        Some(update) => Effect {
            purchase: Some(update),
            known: true,
            ..Effect::default()
        },
        None => effect_of(env)?,
    };
    // Stripe calls happen before the write transaction, never inside it;
    // a duplicate of an event already done is not worth a call. (Without a
    // call ahead, the ledger read in the transaction spots duplicates.)
    if effect.fetch.is_some()
        && !ledger::done(&state.db, SOURCE, &[&env.id])
            .await?
            .is_empty()
    {
        return Ok(Outcome::Duplicate);
    }
    if let Some(id) = effect.fetch.take() {
        effect.sub = Some(fetch(stripe, &id).await?);
    }
    let item = |effect: Effect| Item {
        id: env.id.clone(),
        kind: env.type_.clone(),
        created: env.created,
        effect,
    };
    match submit(state, item(effect.clone())).await? {
        Step::Done(outcome) => Ok(outcome),
        Step::Ambiguous(id) => {
            effect.sub = Some(fetch(stripe, &id).await?);
            match submit(state, item(effect)).await? {
                Step::Done(outcome) => Ok(outcome),
                Step::Ambiguous(_) => Err(Error::internal("a fetched state was ambiguous")),
            }
        }
    }
}

/// What an event says of a purchase (end-customer payments, SPEC §3):
/// Checkout Sessions in `payment` mode naming a purchase in their
/// metadata (`completed` and paid → `paid`, `async_payment_succeeded` →
/// `paid`, `expired` → `expired`) and refunded charges (`charge.refunded`
/// → `refunded`, by the purchase in the charge's metadata, copied from its
/// PaymentIntent, or by the PaymentIntent). `None`: not a purchase event.
fn purchase_update(env: &Envelope<'_>) -> Result<Option<purchases::Update>> {
    #[derive(Deserialize)]
    struct Object {
        #[serde(default)]
        mode: Option<String>,
        #[serde(default)]
        metadata: std::collections::HashMap<String, String>,
        #[serde(default)]
        payment_status: Option<String>,
        #[serde(default)]
        payment_intent: Option<serde_json::Value>,
    }
    if env.account.is_some() {
        return Ok(None);
    }
    let kind = env.type_.as_str();
    let checkout = matches!(
        kind,
        "checkout.session.completed"
            | "checkout.session.async_payment_succeeded"
            | "checkout.session.expired"
    );
    if !checkout && kind != "charge.refunded" {
        return Ok(None);
    }
    let o: Object = serde_json::from_str(env.data.object.get())
        .map_err(|_| invalid_event("data.object is not a Checkout Session or charge"))?;
    let purchase_id = o.metadata.get("purchase_id").and_then(|v| v.parse().ok());
    let payment_intent = match &o.payment_intent {
        Some(serde_json::Value::String(id)) => Some(id.clone()),
        Some(serde_json::Value::Object(pi)) => {
            pi.get("id").and_then(|v| v.as_str()).map(str::to_owned)
        }
        _ => None,
    };
    let to = if checkout {
        if o.mode.as_deref() != Some("payment") || purchase_id.is_none() {
            return Ok(None);
        }
        match kind {
            "checkout.session.expired" => PurchaseStatus::Expired,
            _ if o.payment_status.as_deref() == Some("paid") => PurchaseStatus::Paid,
            // Completed but not paid yet (a delayed payment method): the
            // PaymentIntent is learnt, the status waits.
            _ => PurchaseStatus::PaymentLinkSent,
        }
    } else {
        if purchase_id.is_none() && payment_intent.is_none() {
            return Ok(None);
        }
        PurchaseStatus::Refunded
    };
    Ok(Some(purchases::Update {
        purchase_id,
        payment_intent,
        to,
        at: env.created,
    }))
}

/// Hands `item` to the source's writer (started with [`commit::commit`] on
/// first use) and waits for its verdict.
async fn submit(state: &AppState, item: Item) -> Result<Step> {
    let ctx = state.clone();
    state
        .inbound
        .stripe
        .submit(item, move |items| {
            let ctx = ctx.clone();
            Box::pin(async move { commit::commit(&ctx, items).await })
        })
        .await
}

/// Subscription `id` as Stripe has it now: authoritative state.
async fn fetch(stripe: &StripeApi, id: &str) -> Result<(SubscriptionState, Version)> {
    let s = stripe.retrieve_subscription(id).await?;
    Ok((
        SubscriptionState::from(&s),
        Version::Fetched(Utc::now().timestamp()),
    ))
}

/// The source's name in the ledger.
pub const SOURCE: &str = "stripe";
