//! `companies`: what a business runs; channels hang off them.

use super::enums::{CompanyKind, CompanyStatus};
use sea_orm::entity::prelude::*;

/// A company. `(business_id, code)` is unique.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "companies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    /// Public per-business code: `COMP001`, `COMP002`, …
    pub code: String,
    pub name: String,
    pub kind: CompanyKind,
    pub shop_type: Option<String>,
    pub status: CompanyStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
