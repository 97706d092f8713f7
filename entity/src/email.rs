//! `email_outbox` and `email_attempts`: every email Switchboard sends, queued
//! durably and delivered by a worker with retries.

/// `email_outbox`: one queued message.
pub mod outbox {
    use sea_orm::entity::prelude::*;

    /// A message. `status` is `pending`, `sent` or `failed`; its delivery
    /// is an `email.deliver` task of the job runner (`jobs`), which owns the
    /// schedule, the lease and the retries.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub to_address: String,
        /// Template name (`verification_code`, `password_reset`, …).
        pub template: String,
        pub subject: String,
        /// Plaintext bodies of messages queued before bodies were sealed
        /// (migration 8); empty for every later message, and blanked once
        /// a message is sent.
        pub text_body: String,
        pub html_body: String,
        pub status: String,
        pub attempts: i32,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub sent_at: Option<DateTimeUtc>,
        /// The body (`{"text", "html"}` JSON) sealed under the vault's keys
        /// (AES-256-GCM envelope, bound to this row's id); all `None` once
        /// the message is sent, so no live link or code stays at rest (a
        /// failed message keeps its seal until it is purged).
        pub body_ciphertext: Option<Vec<u8>>,
        pub body_nonce: Option<Vec<u8>>,
        pub body_wrapped_dek: Option<Vec<u8>>,
        pub body_dek_nonce: Option<Vec<u8>>,
        pub body_key_id: Option<String>,
        pub body_version: Option<i32>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `email_attempts`: one delivery attempt of a message.
pub mod attempt {
    use sea_orm::entity::prelude::*;

    /// An attempt and how it ended (`sent` or `error`).
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub email_id: Uuid,
        pub attempted_at: DateTimeUtc,
        pub outcome: String,
        pub error: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// `email_requests`: one row per code, reset or magic-link request, counted
/// per address and kind for abuse limits.
pub mod request {
    use sea_orm::entity::prelude::*;

    /// A request for an emailed code or link.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Normalised address.
        pub email: String,
        /// `registration`, `password_reset` or `magic_link`.
        pub kind: String,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
