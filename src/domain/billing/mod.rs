//! Billing (SPEC §2, issue "Stripe subscriptions"): Stripe subscriptions,
//! the webhook ledger, entitlements derived from them, and the owner's
//! billing operations.
//!
//! - [`entitlement`]: plan, access and channel suspensions as a function of
//!   subscriptions, trial and clock.
//! - [`subscriptions`]: Stripe's subscription object as stored, and the
//!   ordering rule (watermark) for applying it.
//! - [`signature`]: `Stripe-Signature` verification.
//! - [`webhook`]: exactly-once, order-independent event processing.
//! - [`ingest`]: the webhook writer, committing verified events in groups.
//! - [`owner`]: customer, Checkout, portal, plan changes, invoices.
//! - [`reconcile`]: the time-driven sweep and the reconciliation with Stripe.

pub mod entitlement;
pub mod ingest;
pub mod owner;
pub mod reconcile;
pub mod signature;
pub mod subscriptions;
pub mod webhook;
