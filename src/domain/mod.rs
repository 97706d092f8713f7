//! Business rules, independent of HTTP, grouped by capability. Every lookup
//! of a tenant-owned row takes the business it must belong to.
//!
//! - [`identity`]: accounts and signing in (sign-up, sessions, password
//!   recovery, magic links, OAuth sign-in, one-time tokens, per-email limits).
//! - [`tenancy`]: businesses, companies, managers, and who may reach which
//!   business ([`tenancy::access`]); platform statistics.
//! - [`channels`]: a business's messaging channels under its plan's limit,
//!   and their connections (WhatsApp through WAHA, Telegram bots).
//! - [`automation`]: what Switchboard makes in n8n, recorded per business
//!   and channel.
//! - [`billing`]: plans, Stripe subscriptions and the entitlements derived
//!   from them.
//! - [`vault`]: integration secrets, envelope-encrypted.
//! - [`programs`]: API keys for a business's programs, idempotent `POST`s.
//! - [`events`]: each business's event log, its live stream and its signed
//!   outgoing webhooks.
//! - Shared by all: [`audit`] (the append-only log), [`pagination`],
//!   [`validate`] (newtypes checked at the edge).

pub mod audit;
pub mod automation;
pub mod billing;
pub mod channels;
pub mod events;
pub mod identity;
pub mod pagination;
pub mod programs;
pub mod tenancy;
pub mod validate;
pub mod vault;
