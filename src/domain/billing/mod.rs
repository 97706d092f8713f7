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

pub mod customer;
pub mod entitlement;
pub mod plans;
pub mod reconcile;
pub mod subscriptions;
