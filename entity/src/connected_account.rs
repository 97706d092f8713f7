//! `connected_accounts`: each business's Stripe Connect Express account
//! (see the root crate's `domain::billing::connect`).

use sea_orm::entity::prelude::*;

/// A business's connected account as Stripe last described it. `state` is
/// derived from the flags and requirements (`onboarding_required`,
/// `pending_verification`, `restricted`, `enabled`, `rejected`); the lists
/// are JSON arrays of Stripe's requirement names. `version_at` (Unix
/// seconds) and `version_event` (the event id; none for a fetch) are the
/// watermark of that description. The refresh token (SHA-256, hex) opens
/// the route that makes a fresh onboarding link, until it expires.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connected_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub business_id: Uuid,
    pub stripe_account_id: String,
    pub state: String,
    pub charges_enabled: bool,
    pub payouts_enabled: bool,
    pub details_submitted: bool,
    pub disabled_reason: Option<String>,
    pub currently_due: Json,
    pub past_due: Json,
    pub pending_verification: Json,
    pub version_at: i64,
    pub version_event: Option<String>,
    pub refresh_token_hash: Option<String>,
    pub refresh_token_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
