//! Billing (SPEC §2): Stripe subscriptions, entitlements derived from them,
//! and the owner's billing operations. Stripe's webhooks arrive through
//! [`crate::inbound::stripe`].
//!
//! - [`plans`]: the plan catalogue (configuration) and its lookups.
//! - [`entitlement`]: plan, access and channel suspensions as a function of
//!   subscriptions, trial and clock.
//! - [`subscriptions`]: Stripe's subscription object as stored, and the
//!   ordering rule (watermark) for applying it.
//! - [`customer`]: the business as a Stripe customer: its customer object,
//!   Checkout and portal sessions, plan changes, cancel and resume, the
//!   summary and invoices.
//! - [`reconcile`]: the time-driven sweep and the reconciliation with Stripe.
//! - [`connect`]: the business's Stripe Connect Express account: creation,
//!   onboarding links, the state derived from Stripe's fields, removal.
//! - [`grants`]: the admin's plan grants (`free`, `enterprise` with a
//!   custom limit and price).
//! - [`purchases`]: end-customer payments (destination charges through
//!   Checkout) and the purchase log.

pub mod connect;
pub mod customer;
pub mod entitlement;
pub mod grants;
pub mod plans;
pub mod purchases;
pub mod reconcile;
pub mod subscriptions;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::integrations::stripe::StripeApi;

/// What the business's Stripe side needs, and nothing else (no keys, no
/// authorization, no sign-in): the database, the Stripe client (`None`
/// while billing is not configured), the entitlement rules and the
/// configuration (Stripe URLs, billing timings). The composition root
/// builds it (`Services::billing`).
#[derive(Clone, Copy)]
pub struct Billing<'a> {
    /// The database pool.
    pub db: &'a DatabaseConnection,
    /// Stripe; `None` answers 503 `billing_unavailable`.
    pub stripe: Option<&'a StripeApi>,
    /// The plan catalogue.
    pub plans: &'a plans::PlanCatalogue,
    /// Plans, timings and notices of entitlement changes.
    pub rules: entitlement::Rules<'a>,
    /// Stripe's URLs and the billing settings.
    pub config: &'a Config,
}
