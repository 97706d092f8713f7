//! `api_keys`: keys a business's programs call the API with.

use sea_orm::entity::prelude::*;

/// One API key. The key itself (`sb_live_…`) is shown once at creation;
/// the row keeps its lookup `prefix` (the first characters after
/// `sb_live_`, unique) and the SHA-256 of the whole key. `scopes` is a JSON
/// array of scope names. A key with `revoked_at` set, or `expires_at` past,
/// authenticates nothing.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    pub name: String,
    #[sea_orm(unique)]
    pub prefix: String,
    pub secret_hash: String,
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub expires_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
