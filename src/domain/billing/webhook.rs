//! Stripe webhook ingestion: verify, then process each event exactly once,
//! in any order (SPEC §5; Stripe docs: webhooks, "Handle duplicate events",
//! "Event ordering").
//!
//! - The signature is checked over the raw body before anything is parsed
//!   ([`super::signature`]); a bad one changes nothing.
//! - The event then goes to the webhook writer ([`super::ingest`]), which
//!   commits it (grouped with concurrent deliveries) together with its id in
//!   the `stripe_events` ledger, so a duplicate finds it `done` and is a
//!   no-op, and a failure rolls both back. The failure is then recorded
//!   (`failed`, attempts, error) and answered 5xx so Stripe retries.
//! - Subscription state obeys the per-subscription watermark
//!   ([`super::subscriptions`]); events that carry no subscription state
//!   (`checkout.session.completed`, `invoice.*`) re-fetch the subscription
//!   from Stripe, and the fetched state is the truth as of now.
//! - Every effect ends in [`super::entitlement::settle`], a function of the
//!   stored state: any order and any number of duplicates converge.
//!
//! Handled: `checkout.session.completed`, `customer.subscription.created`,
//! `…updated`, `…deleted`, `…paused`, `…resumed`, `…trial_will_end`,
//! `invoice.paid`, `invoice.payment_failed`, `customer.created`,
//! `customer.deleted`. Other types are acknowledged and recorded, without
//! effect.

use axum::http::StatusCode;
use chrono::Utc;
use entity::billing::stripe_event;
use entity::business;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, IntoActiveModel};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::domain::billing::entitlement::{self, is_terminal};
use crate::domain::billing::ingest::{Item, Step, ledger_conflict, ledger_row};
use crate::domain::billing::signature;
use crate::domain::billing::subscriptions::{self, SubscriptionState, Version};
use crate::error::{Error, Result};
use crate::integrations::stripe::{BUSINESS_METADATA_KEY, StripeApi};
use crate::mail::templates;
use crate::state::AppState;

/// What happened to a delivery that was accepted (answered 200).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its effect is committed.
    Processed,
    /// Already processed: nothing done.
    Duplicate,
    /// A type Switchboard does not act on (or no business of ours): recorded.
    Ignored,
}

impl Outcome {
    /// Lower-case name for the response body.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Processed => "processed",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    /// Set on Connect events: they concern a connected account's own
    /// objects, never a business's subscription to Switchboard.
    #[serde(default)]
    account: Option<String>,
    id: String,
    #[serde(rename = "type")]
    type_: String,
    created: i64,
    #[serde(borrow)]
    data: Data<'a>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(borrow)]
    object: &'a RawValue,
}

#[derive(Deserialize)]
struct CustomerObject {
    id: String,
    #[serde(default)]
    metadata: std::collections::HashMap<String, String>,
}

/// A billing notice an event calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Notice {
    TrialEnding,
    PaymentFailed,
}

/// The effect an event asks for, worked out before the transaction.
#[derive(Default, Clone)]
pub(super) struct Effect {
    /// Customer the event concerns.
    pub(super) customer: Option<String>,
    /// Business named by our metadata or `client_reference_id`.
    pub(super) hint: Option<Uuid>,
    /// Subscription state to apply.
    pub(super) sub: Option<(SubscriptionState, Version)>,
    /// Subscription to fetch from Stripe first.
    pub(super) fetch: Option<String>,
    /// The customer was deleted in Stripe.
    pub(super) customer_deleted: bool,
    /// Notice to send.
    pub(super) notice: Option<Notice>,
    /// Whether the type is one we act on.
    pub(super) known: bool,
}

fn invalid_event(what: &str) -> Error {
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
    let tolerance = i64::try_from(state.config.billing.webhook_tolerance_secs).unwrap_or(300);
    signature::verify(signature, body, &state.webhook_secrets, Utc::now().timestamp(), tolerance)
        .map_err(|e| {
            Error::new(StatusCode::BAD_REQUEST, e.code(), "Invalid Stripe signature").with_detail(
                "The Stripe-Signature header does not sign this body with a configured endpoint secret within the tolerance.",
            )
        })?;
    let env: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| invalid_event(&format!("{e}")))?;
    match process(state, stripe, &env).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            if let Err(record) = record_failure(state, &env, &e).await {
                tracing::error!(error = %record, event = %env.id, "could not record a failed Stripe event");
            }
            tracing::warn!(event = %env.id, kind = %env.type_, code = e.code(), "Stripe event processing failed");
            if e.status().is_client_error() {
                Err(e)
            } else {
                Err(Error::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "webhook_processing_failed",
                    "The event could not be processed",
                )
                .with_detail("Recorded for retry; Stripe will deliver it again."))
            }
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
    let mut effect = effect_of(env)?;
    // Stripe calls happen before the write transaction, never inside it;
    // a duplicate of an event already done is not worth a call. (Without a
    // call ahead, the ledger read in the transaction spots duplicates.)
    if effect.fetch.is_some() {
        let seen = stripe_event::Entity::find_by_id(env.id.clone())
            .one(&state.db)
            .await?;
        if seen.is_some_and(|e| e.status == "done") {
            return Ok(Outcome::Duplicate);
        }
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
    match state.ingest.submit(state, item(effect.clone())).await? {
        Step::Done(outcome) => Ok(outcome),
        Step::Ambiguous(id) => {
            effect.sub = Some(fetch(stripe, &id).await?);
            match state.ingest.submit(state, item(effect)).await? {
                Step::Done(outcome) => Ok(outcome),
                Step::Ambiguous(_) => Err(Error::internal("a fetched state was ambiguous")),
            }
        }
    }
}

/// Subscription `id` as Stripe has it now: authoritative state.
async fn fetch(stripe: &StripeApi, id: &str) -> Result<(SubscriptionState, Version)> {
    let s = stripe.retrieve_subscription(id).await?;
    Ok((
        SubscriptionState::from(&s),
        Version::Fetched(Utc::now().timestamp()),
    ))
}

/// Queues `notice` for the owner of `b` (at `to`) in `txn`. A payment
/// failure on a subscription that has already ended says nothing.
pub(super) async fn send_notice<C: ConnectionTrait>(
    state: &AppState,
    txn: &C,
    b: &business::Model,
    to: &str,
    notice: Notice,
    sub: Option<&SubscriptionState>,
) -> Result<()> {
    let billing_url = state.config.billing_url();
    let message = match notice {
        Notice::TrialEnding => {
            let end = sub.and_then(|s| s.trial_end).unwrap_or(b.trial_ends_at);
            let days = entitlement::days_left(end, Utc::now());
            templates::subscription_trial_ending(days, &billing_url)
        }
        Notice::PaymentFailed => {
            if sub.is_some_and(|s| is_terminal(&s.status)) {
                return Ok(());
            }
            let days = (i64::from(state.config.billing.grace_hours) + 23) / 24;
            templates::payment_failed(days, &billing_url)
        }
    };
    state.mailer.enqueue(txn, to, message).await?;
    Ok(())
}

/// Marks the event `failed` (unless a concurrent delivery finished it),
/// counting the attempt and keeping the error for operators.
async fn record_failure(state: &AppState, env: &Envelope<'_>, error: &Error) -> Result<()> {
    let message = format!("{}: {}", error.code(), error.status());
    let row = stripe_event::Model {
        status: "failed".into(),
        last_error: Some(message.clone()),
        processed_at: None,
        ..ledger_row(&env.id, &env.type_, env.created, None, Utc::now())
    };
    let txn = crate::db::begin_write(&state.db).await?;
    stripe_event::Entity::insert(row.into_active_model().reset_all())
        .on_conflict(
            ledger_conflict("failed")
                .value(stripe_event::Column::LastError, message)
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
