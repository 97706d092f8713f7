//! `registrations`: email verification codes of sign-ups in progress.

use sea_orm::entity::prelude::*;

/// One emailed 6-digit code. Only its keyed hash is stored.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "registrations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub email: String,
    /// HMAC-SHA256 of the code under the server's token key, hex.
    pub code_hash: String,
    /// Failed verification attempts so far.
    pub attempts: i32,
    pub expires_at: DateTimeUtc,
    /// Set once the code was verified (single use).
    pub verified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
