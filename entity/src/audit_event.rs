//! `audit_log`: append-only record of who did what to which business.

use sea_orm::entity::prelude::*;

/// One audited action. The table refuses UPDATE and DELETE (triggers), and
/// has no foreign keys, so records outlive what they describe.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub occurred_at: DateTimeUtc,
    /// Who acted; `None` for the system itself.
    pub actor_id: Option<Uuid>,
    /// The role they acted in (`owner`, `manager`, `admin`, `system`).
    pub actor_role: String,
    pub business_id: Option<Uuid>,
    /// Dotted action name, e.g. `secret.reveal`.
    pub action: String,
    /// What was acted on, e.g. `telegram/bot_token`.
    pub target: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    /// Extra facts (never secret values), a JSON object.
    pub detail: Json,
}

impl ActiveModelBehavior for ActiveModel {}
