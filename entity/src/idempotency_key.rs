//! `idempotency_keys`: the stored outcome of each `POST` sent with an
//! `Idempotency-Key`, per principal.

use sea_orm::entity::prelude::*;

/// One key of one principal (`user:{id}` or `api_key:{id}`). `fingerprint`
/// is the SHA-256 of the request (method, path, body); `state` is
/// `in_progress` (held until `locked_until`) or `completed` with the
/// response to replay (status, body, and the headers worth replaying as a
/// JSON object).
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub principal: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    pub fingerprint: String,
    pub state: String,
    pub response_status: Option<i32>,
    pub response_body: Option<Vec<u8>>,
    #[sea_orm(column_type = "Text", nullable)]
    pub response_headers: Option<String>,
    pub created_at: DateTimeUtc,
    pub locked_until: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
