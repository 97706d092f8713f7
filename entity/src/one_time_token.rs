//! `one_time_tokens`: single-use secrets sent by email (set-password links,
//! registration completion).

use super::enums::TokenPurpose;
use sea_orm::entity::prelude::*;

/// One single-use token, stored as its SHA-256 hash.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "one_time_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub purpose: TokenPurpose,
    /// The user it acts for, when one exists already.
    pub user_id: Option<Uuid>,
    /// The email it is bound to.
    pub email: String,
    #[sea_orm(unique)]
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
