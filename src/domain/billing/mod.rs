//! Billing (SPEC §2): Stripe subscriptions, entitlements derived from them,
//! and the owner's billing operations. Stripe's webhooks arrive through
//! [`crate::inbound::stripe`].
//!
//! - [`entitlement`]: plan, access and channel suspensions as a function of
//!   subscriptions, trial and clock.
//! - [`subscriptions`]: Stripe's subscription object as stored, and the
//!   ordering rule (watermark) for applying it.
//! - [`owner`]: customer, Checkout, portal, plan changes, invoices.
//! - [`reconcile`]: the time-driven sweep and the reconciliation with Stripe.

pub mod entitlement;
pub mod owner;
pub mod reconcile;
pub mod subscriptions;
