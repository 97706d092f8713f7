//! `inbound_events`: the ledger of every inbound webhook, by source and the
//! source's own event id (see the root crate's `inbound`).

use sea_orm::entity::prelude::*;

/// A ledger row. `source` is `stripe` (later `waha`, `telegram`, `meta`,
/// …); `event_id` is the source's id of the event (Stripe's `evt_…`).
/// `status` is `done` (its effect, if any, is committed in the same
/// transaction as this row, so a duplicate is a no-op) or `failed`
/// (processing failed; the source's retry processes it again). `event_created` is the source's own timestamp.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub business_id: Option<Uuid>,
    pub event_created: DateTimeUtc,
    pub received_at: DateTimeUtc,
    pub processed_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
