//! What a verified Stripe event becomes before its transaction: the
//! [`Item`] the writer commits and the writer's verdict ([`Step`]). Plain
//! data, so the application state can hold the writer's handle.

use uuid::Uuid;

use crate::domain::billing::entitlement::Notice;
use crate::domain::billing::subscriptions::{SubscriptionState, Version};
use crate::inbound::Outcome;

/// The effect an event asks for, worked out before the transaction.
#[derive(Default, Clone)]
pub struct Effect {
    /// Customer the event concerns.
    pub customer: Option<String>,
    /// Business named by our metadata or `client_reference_id`.
    pub hint: Option<Uuid>,
    /// Subscription state to apply.
    pub sub: Option<(SubscriptionState, Version)>,
    /// Subscription to fetch from Stripe first.
    pub fetch: Option<String>,
    /// The customer was deleted in Stripe.
    pub customer_deleted: bool,
    /// Notice to send.
    pub notice: Option<Notice>,
    /// What the event says of an end-customer purchase.
    pub purchase: Option<crate::domain::billing::purchases::Update>,
    /// Whether the type is one we act on.
    pub known: bool,
}

/// A verified event, ready to commit.
pub struct Item {
    /// Stripe's event id (`evt_…`).
    pub id: String,
    /// Stripe's event type.
    pub kind: String,
    /// Stripe's `created`, Unix seconds.
    pub created: i64,
    /// What the event asks for.
    pub effect: Effect,
}

/// The writer's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Committed (or a duplicate, or ignored).
    Done(Outcome),
    /// Same second as the stored state but different: fetch subscription
    /// `.0` from Stripe and submit the fetched state. Nothing was written.
    Ambiguous(String),
}

/// The Stripe source's writer.
pub type StripeWriter = crate::inbound::writer::Writer<Item, Step>;
