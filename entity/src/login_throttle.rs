//! `login_throttles`: failed password sign-ins per account, for the
//! per-account backoff beside the per-IP limit.

use sea_orm::entity::prelude::*;

/// Failures of one account key (SHA-256 of the lower-cased email, hex; kept
/// alike whether or not an account has that email, so the backoff reveals
/// nothing). `locked_until` set: no password is checked before it.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "login_throttles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_key: String,
    pub failures: i32,
    pub locked_until: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
