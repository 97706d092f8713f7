//! `webhook_endpoints` and `webhook_deliveries`: a business's own endpoints
//! for outgoing webhooks, and each delivery to them.

/// `webhook_endpoints`: one endpoint.
pub mod endpoint {
    use sea_orm::entity::prelude::*;

    /// An endpoint receiving the business's events. `event_types` is a JSON
    /// array of event types (empty: every type). The signing secrets (the
    /// current one, and the previous one during a roll's grace period) are
    /// sealed together under the vault's keys (`secret_*`, an envelope bound
    /// to this row). `enabled` false: nothing is delivered, and
    /// `disabled_reason` says why.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_endpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub business_id: Uuid,
        #[sea_orm(column_type = "Text")]
        pub url: String,
        pub description: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub event_types: String,
        pub enabled: bool,
        pub disabled_reason: Option<String>,
        pub secret_ciphertext: Vec<u8>,
        pub secret_nonce: Vec<u8>,
        pub secret_wrapped_dek: Vec<u8>,
        pub secret_dek_nonce: Vec<u8>,
        pub secret_key_id: String,
        pub secret_version: i32,
        /// Deliveries that failed for good in a row (reset by a success).
        pub consecutive_failures: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `webhook_deliveries`: one event to one endpoint.
pub mod delivery {
    use sea_orm::entity::prelude::*;

    /// A delivery: `pending` (its `webhook.deliver` task is queued or
    /// retrying), `succeeded` (a 2xx answer) or `failed` (retries exhausted).
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_deliveries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub endpoint_id: Uuid,
        pub business_id: Uuid,
        pub event_id: Uuid,
        pub event_seq: i64,
        pub event_type: String,
        pub state: String,
        pub attempts: i32,
        pub last_attempt_at: Option<DateTimeUtc>,
        pub last_status: Option<i32>,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
