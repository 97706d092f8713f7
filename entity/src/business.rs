//! `businesses`: the tenants.

use super::enums::BusinessStatus;
use sea_orm::entity::prelude::*;

/// A business (tenant). `owner_id` is unique: one business per owner.
/// `manager_id` is a single nullable column, so a business has at most one
/// manager by construction (SPEC §1).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "businesses")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub name: String,
    #[sea_orm(unique)]
    pub owner_id: Uuid,
    /// Key of the plan catalogue (configuration), e.g. `trial`, `growth`.
    pub plan: String,
    pub status: BusinessStatus,
    pub trial_ends_at: DateTimeUtc,
    /// Last company number handed out (`COMP001` is 1).
    pub company_seq: i64,
    pub manager_id: Option<Uuid>,
    pub stripe_customer_id: Option<String>,
    pub stripe_account_id: Option<String>,
    /// When the entitlement next changes by time alone (trial end, grace
    /// end, trial reminder); the billing sweep re-evaluates it then.
    pub recheck_at: Option<DateTimeUtc>,
    /// When the "trial ends soon" reminder was queued.
    pub trial_notice_sent_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Number of the business's latest event (`business_events.seq`);
    /// bumped in the transaction of each change that records one.
    pub event_seq: i64,
    /// An admin's request limit for the business's users and keys, per
    /// minute; `None`: the configured default.
    pub api_rate_limit_per_minute: Option<i32>,
    /// The plan an admin granted (`free` or `enterprise`); it stands until
    /// an admin grants another (SPEC §2).
    pub granted_plan: Option<String>,
    /// The channel limit of a granted `enterprise` plan; `None` is
    /// unlimited. Meaningless for other plans.
    pub granted_channel_limit: Option<i32>,
}

impl ActiveModelBehavior for ActiveModel {}
