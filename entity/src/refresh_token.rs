//! `refresh_tokens`: opaque refresh tokens, hashed, grouped in rotation families.

use sea_orm::entity::prelude::*;

/// One refresh token. A family starts at login; each refresh consumes the
/// current member (`used_at`) and adds the next. Presenting a used member
/// revokes the whole family (OAuth 2.0 Security BCP, refresh token rotation).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    /// SHA-256 of the token, hex.
    #[sea_orm(unique)]
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// When the user last proved who they are (password, provider, emailed
    /// link) in this family; refreshes carry it on. `None` on families made
    /// before it was recorded: their `created_at` counts.
    pub auth_time: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
