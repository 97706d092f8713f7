//! `channel_connections`: what a channel is connected through in an outside
//! system (see the root crate's `domain::channels::whatsapp`).

use sea_orm::entity::prelude::*;

/// A channel's connection. `provider` is the outside system (`waha`);
/// `external_id` is Switchboard's object there (the WAHA session name),
/// unique per provider. `remote_status` is the system's last reported
/// status (WAHA: `STARTING`, `SCAN_QR_CODE`, `WORKING`, `FAILED`,
/// `STOPPED`); `status_at` (the system's timestamp, milliseconds) and
/// `status_event` (its event id) are the watermark of that report. The
/// page token opens the connect page of this connection only, until it
/// expires or the connection goes.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "channel_connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel_id: Uuid,
    pub business_id: Uuid,
    pub provider: String,
    pub external_id: String,
    pub remote_status: Option<String>,
    pub status_at: i64,
    pub status_event: Option<String>,
    /// SHA-256 (hex) of the connect page's token, while one is issued.
    pub page_token_hash: Option<String>,
    /// When that token stops opening the page.
    pub page_token_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
