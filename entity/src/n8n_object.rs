//! `n8n_objects`: what Switchboard made in n8n (see the root crate's
//! `domain::automation`).

use sea_orm::entity::prelude::*;

/// An object in n8n. `kind` is `workflow`, `credential` or `tag`;
/// `purpose` says what it is for (`telegram_ingress`, `telegram_bot`,
/// `waha_reply`, `business_tag`); `n8n_id` is n8n's id, unique per kind.
/// `channel_id` is set for objects that serve one channel; `active` is
/// whether Switchboard last left the workflow active.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "n8n_objects")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    pub channel_id: Option<Uuid>,
    pub kind: String,
    pub purpose: String,
    pub n8n_id: String,
    pub active: bool,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
