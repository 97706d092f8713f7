//! `users`: every person who signs in (owners, managers, admins).

use super::enums::Role;
use sea_orm::entity::prelude::*;

/// A user account. `email` is stored lower-cased, so its unique index is
/// case-insensitive on every database.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    /// PHC string (argon2id); `None` for accounts without a password yet.
    pub password_hash: Option<String>,
    pub full_name: String,
    pub role: Role,
    pub email_verified_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Access tokens issued before this instant are refused (logout
    /// everywhere, password reset or change, role change); `None`: none.
    pub sessions_valid_after: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
