//! `jobs`: the durable job runner's tasks (see the root crate's `jobs`).

use sea_orm::entity::prelude::*;

/// One task. `state` is `queued` (due at `run_at`), `running` (a worker
/// holds it until `lease_until`), `retrying` (failed, due again at
/// `run_at`) or `failed` (gave up after `max_attempts`; `last_error` says
/// why). A finished one-off task is deleted; a recurring one goes back to
/// `queued` at its next time. `dedup_key` is unique: enqueuing a key that
/// is already present changes nothing. `payload` is the task's JSON.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub kind: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub state: String,
    #[sea_orm(unique)]
    pub dedup_key: Option<String>,
    pub run_at: DateTimeUtc,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<DateTimeUtc>,
    pub worker: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
