//! `business_events`: what changed in each business, in commit order.

use sea_orm::entity::prelude::*;

/// One event: `seq` numbers the business's events in the order their
/// changes committed (gapless per business); `id` is its global id (the
/// `webhook-id` of its deliveries); `type` is dotted (`channel.created`);
/// `data` is its JSON payload.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "business_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub business_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    #[sea_orm(unique)]
    pub id: Uuid,
    #[sea_orm(column_name = "type")]
    pub event_type: String,
    #[sea_orm(column_type = "Text")]
    pub data: String,
    pub occurred_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
