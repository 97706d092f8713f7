//! `channels`: messaging connections of a company, counted against the plan.

use super::enums::{ChannelStatus, Platform};
use sea_orm::entity::prelude::*;

/// A channel. `business_id` repeats the company's business so that the plan
/// count and tenant scoping are one indexed lookup.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channels")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    pub company_id: Uuid,
    pub platform: Platform,
    pub status: ChannelStatus,
    pub account_id: Option<String>,
    pub account_name: Option<String>,
    pub last_error: Option<String>,
    pub error_count: i32,
    /// Why the platform suspended it (`over_plan_limit`, `subscription_required`).
    pub suspended_reason: Option<String>,
    /// Status before the platform suspended it, restored when the reason goes away.
    pub suspended_from: Option<ChannelStatus>,
    /// Non-secret configuration (JSON object).
    pub config: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
