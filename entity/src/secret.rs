//! `integration_secrets`: every token and key of a business's connections,
//! sealed by envelope encryption (see the root crate's `crypto`).

use sea_orm::entity::prelude::*;

/// One integration secret. `(business_id, provider, name)` is unique. The
/// plaintext exists nowhere in the row. `hint_ciphertext` seals, under the
/// secret's own data key, the last four characters shown in lists (empty
/// for values shorter than 12 characters); `None` until computed.
#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integration_secrets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub business_id: Uuid,
    pub provider: String,
    pub name: String,
    /// AES-256-GCM ciphertext (tag appended) of the value under the DEK.
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    /// The DEK, wrapped by the key-encryption key `key_id`.
    pub wrapped_dek: Vec<u8>,
    pub dek_nonce: Vec<u8>,
    pub key_id: String,
    /// Envelope format version.
    pub version: i32,
    /// Non-secret metadata (status, expiry, …), a JSON object.
    pub metadata: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub updated_by: Option<Uuid>,
    pub hint_ciphertext: Option<Vec<u8>>,
    pub hint_nonce: Option<Vec<u8>>,
}

impl ActiveModelBehavior for ActiveModel {}
