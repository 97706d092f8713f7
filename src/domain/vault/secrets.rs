//! The integration-secret vault ("SystemData", SPEC §3): every token and key
//! of a business's connections, sealed with envelope encryption
//! ([`crate::crypto`]), listed only masked, revealed only through an audited
//! action, destroyed by crypto-shredding (the wrapped data key goes with the
//! row). Later channel and deletion work store and destroy secrets through
//! this module only.

use chrono::{DateTime, Utc};
use entity::secret;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::crypto::{Binding, CryptoError, Keyring, Sealed};
use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::validate;
use crate::error::{Error, Result};
pub use crate::integrations::System;

/// Longest secret value in characters, so at most 64 KiB of UTF-8
/// (certificates and JSON credentials fit).
pub const VALUE_MAX_CHARS: usize = 16_384;
/// Longest secret name.
pub const NAME_MAX: usize = 64;
/// Shortest value whose last four characters are shown in lists.
pub const LAST4_MIN_CHARS: usize = 12;

/// A secret name's pattern: 1..=[`NAME_MAX`] of `a-z 0-9 _ . -`.
pub const NAME_PATTERN: &str = r"^[a-z0-9_.-]{1,64}$";
/// A status's pattern: no control characters (the length is `maxLength`).
pub const STATUS_PATTERN: &str = validate::TEXT_PATTERN;
/// Longest status.
pub const STATUS_MAX: usize = 32;

/// A secret name matching [`NAME_PATTERN`].
pub fn parse_name(raw: &str) -> Result<String> {
    if validate::matches(NAME_PATTERN, raw) {
        Ok(raw.to_owned())
    } else {
        Err(Error::invalid_field(
            "name",
            format!("1 to {NAME_MAX} characters of a-z, 0-9, `_`, `.`, `-`"),
        ))
    }
}

/// Non-secret facts stored beside a secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretMetadata {
    /// Free-form status, e.g. `active`, `expired` (≤ 32 characters, no
    /// control characters).
    #[schema(max_length = 32, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub status: Option<String>,
    /// When the credential expires, if it does.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A secret as lists show it: never the value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    /// The outside system it belongs to (`waha`, `telegram`, …).
    pub provider: String,
    /// Name.
    pub name: String,
    /// `••••` followed by the last four characters (only for values of at
    /// least 12 characters; shorter ones show `••••` alone). The four
    /// characters are stored sealed under the secret's own data key, never
    /// in plaintext.
    pub masked: String,
    /// Status and expiry.
    pub metadata: SecretMetadata,
    /// Id of the key-encryption key wrapping its data key.
    pub key_id: String,
    /// Last write.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
    /// Who wrote it last.
    pub updated_by: Option<Uuid>,
}

impl SecretView {
    /// The view of `s`; its hint is opened with `keyring` (a hint that is
    /// missing or does not open shows `••••` alone).
    fn of(keyring: &Keyring, s: secret::Model) -> SecretView {
        let hint = match (&s.hint_ciphertext, &s.hint_nonce) {
            (Some(ct), Some(nonce)) => keyring
                .open_hint(&binding_of(&s), &sealed_of(&s), ct, nonce)
                .ok()
                .and_then(|h| String::from_utf8(h.to_vec()).ok())
                .unwrap_or_default(),
            _ => String::new(),
        };
        let metadata = serde_json::from_value(s.metadata).unwrap_or_default();
        SecretView {
            masked: format!("••••{hint}"),
            provider: s.provider,
            name: s.name,
            metadata,
            key_id: s.key_id,
            updated_at: s.updated_at,
            updated_by: s.updated_by,
        }
    }
}

fn sealed_of(s: &secret::Model) -> Sealed {
    Sealed {
        ciphertext: s.ciphertext.clone(),
        nonce: s.nonce.clone(),
        wrapped_dek: s.wrapped_dek.clone(),
        dek_nonce: s.dek_nonce.clone(),
        key_id: s.key_id.clone(),
        version: s.version,
    }
}

fn binding_of(s: &secret::Model) -> Binding<'_> {
    Binding {
        business_id: s.business_id,
        secret_id: s.id,
        provider: &s.provider,
        name: &s.name,
    }
}

fn target(provider: &str, name: &str) -> String {
    format!("{provider}/{name}")
}

async fn find<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    provider: System,
    name: &str,
) -> Result<Option<secret::Model>> {
    Ok(secret::Entity::find()
        .filter(secret::Column::BusinessId.eq(scope.id()))
        .filter(secret::Column::Provider.eq(provider.as_str()))
        .filter(secret::Column::Name.eq(name))
        .one(db)
        .await?)
}

/// What sealing and opening secrets needs: the database and the keyring.
#[derive(Clone, Copy)]
pub struct Vault<'a> {
    /// Where the sealed secrets are.
    pub db: &'a DatabaseConnection,
    /// The key-encryption keys.
    pub keyring: &'a Keyring,
}

/// The last four characters of `plaintext` when it has at least
/// [`LAST4_MIN_CHARS`], else nothing (four characters of a short value would
/// reveal too much of it).
fn hint_of(plaintext: &str) -> String {
    let chars: Vec<char> = plaintext.chars().collect();
    if chars.len() >= LAST4_MIN_CHARS {
        chars[chars.len() - 4..].iter().collect()
    } else {
        String::new()
    }
}

/// A page of the business's secrets, masked, ordered by creation.
pub async fn list(
    vault: Vault<'_>,
    scope: &BusinessScope,
    page: PageRequest,
) -> Result<Page<SecretView>> {
    let Vault { db, keyring } = vault;
    let mut q = secret::Entity::find()
        .filter(secret::Column::BusinessId.eq(scope.id()))
        .order_by_asc(secret::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(secret::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(
        rows,
        page,
        |s| s.id,
        |s| SecretView::of(keyring, s),
    ))
}

/// Creates or replaces a secret (a fresh data key every time) and records
/// `secret.write` in the same transaction.
pub async fn put(
    vault: Vault<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    provider: System,
    name: &str,
    value: SecretString,
    metadata: SecretMetadata,
) -> Result<SecretView> {
    let Vault { db, keyring } = vault;
    let name = parse_name(name)?;
    let plaintext = value.expose_secret();
    if plaintext.is_empty() || plaintext.chars().count() > VALUE_MAX_CHARS {
        return Err(Error::invalid_field(
            "value",
            format!("1 to {VALUE_MAX_CHARS} characters"),
        ));
    }
    if metadata
        .status
        .as_ref()
        .is_some_and(|s| s.chars().count() > STATUS_MAX || !validate::matches(STATUS_PATTERN, s))
    {
        return Err(Error::invalid_field(
            "metadata.status",
            "at most 32 printable characters",
        ));
    }
    let metadata_json = serde_json::to_value(&metadata).map_err(Error::internal)?;
    let now = Utc::now();
    let business_id = scope.id();
    let txn = crate::db::begin_write(db).await?;
    let existing = find(&txn, scope, provider, &name).await?;
    let id = existing.as_ref().map_or_else(Uuid::now_v7, |s| s.id);
    let binding = Binding {
        business_id,
        secret_id: id,
        provider: provider.as_str(),
        name: &name,
    };
    let sealed = keyring
        .seal(&binding, plaintext.as_bytes())
        .map_err(Error::internal)?;
    let (hint_ciphertext, hint_nonce) = keyring
        .seal_hint(&binding, &sealed, hint_of(plaintext).as_bytes())
        .map_err(Error::internal)?;
    let created = existing.is_none();
    let row = secret::Model {
        id,
        business_id,
        provider: provider.as_str().to_owned(),
        name: name.clone(),
        ciphertext: sealed.ciphertext,
        nonce: sealed.nonce,
        wrapped_dek: sealed.wrapped_dek,
        dek_nonce: sealed.dek_nonce,
        key_id: sealed.key_id,
        version: sealed.version,
        metadata: metadata_json,
        created_at: existing.map_or(now, |e| e.created_at),
        updated_at: now,
        updated_by: actor.user_id,
        hint_ciphertext: Some(hint_ciphertext),
        hint_nonce: Some(hint_nonce),
    };
    let model = store(&txn, row, created).await?;
    crate::domain::events::record(
        &txn,
        business_id,
        crate::domain::events::kind::SECRET_WRITTEN,
        json!({ "provider": provider.as_str(), "name": name, "created": created }),
    )
    .await?;
    audit::record(
        &txn,
        actor,
        Some(business_id),
        "secret.write",
        &target(provider.as_str(), &name),
        Outcome::Success,
        json!({ "created": created, "key_id": model.key_id }),
    )
    .await?;
    txn.commit().await?;
    Ok(SecretView::of(keyring, model))
}

/// Seals the list hint of every secret that has none yet (secrets stored
/// before hints were sealed; run at start-up). Each row is written only if
/// it still holds the envelope that was read, so a concurrent write keeps
/// its own hint. Returns how many were filled; a secret that does not open
/// is left for the reveal path to report.
pub async fn fill_hints(vault: Vault<'_>) -> Result<u64> {
    let Vault { db, keyring } = vault;
    let rows = secret::Entity::find()
        .filter(secret::Column::HintCiphertext.is_null())
        .all(db)
        .await?;
    let mut filled = 0;
    for row in rows {
        let binding = binding_of(&row);
        let sealed = sealed_of(&row);
        let Ok(plaintext) = keyring.open(&binding, &sealed) else {
            continue;
        };
        let hint = hint_of(&String::from_utf8_lossy(&plaintext));
        let Ok((ct, nonce)) = keyring.seal_hint(&binding, &sealed, hint.as_bytes()) else {
            continue;
        };
        let res = secret::Entity::update_many()
            .col_expr(secret::Column::HintCiphertext, Expr::value(ct))
            .col_expr(secret::Column::HintNonce, Expr::value(nonce))
            .filter(secret::Column::Id.eq(row.id))
            .filter(secret::Column::HintCiphertext.is_null())
            .filter(secret::Column::Ciphertext.eq(row.ciphertext.clone()))
            .exec(db)
            .await?;
        filled += res.rows_affected;
    }
    Ok(filled)
}

/// Writes `row` whole: inserted when `created`, else over the stored secret
/// of the same id. A concurrent first write of the same name that won the
/// insert is 409 `concurrent_write` (a PUT again replaces it).
async fn store<C: ConnectionTrait>(
    txn: &C,
    row: secret::Model,
    created: bool,
) -> Result<secret::Model> {
    let active = row.into_active_model().reset_all();
    if !created {
        return Ok(active.update(txn).await?);
    }
    active.insert(txn).await.map_err(|e| {
        Error::unique_violation_as(
            e,
            "concurrent_write",
            "The secret was written concurrently; retry",
        )
    })
}

/// 500 `secret_integrity_failure`: the stored secret did not open. Recorded
/// as a security event (`secret.decrypt_failed`) before answering.
async fn integrity_failure(
    db: &DatabaseConnection,
    actor: &Actor,
    row: &secret::Model,
    err: CryptoError,
) -> Error {
    tracing::error!(
        security = true,
        business_id = %row.business_id,
        secret_id = %row.id,
        key_id = %row.key_id,
        error = %err,
        "secret failed to decrypt"
    );
    if let Err(e) = audit::record(
        db,
        actor,
        Some(row.business_id),
        "secret.decrypt_failed",
        &target(&row.provider, &row.name),
        Outcome::Failure,
        json!({ "error": err.to_string(), "key_id": row.key_id }),
    )
    .await
    {
        tracing::error!(error = %e, "could not record the decryption failure");
    }
    Error::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "secret_integrity_failure",
        "The stored secret could not be decrypted",
    )
    .with_detail(format!(
        "{err}. The event was recorded; the secret must be written again."
    ))
}

/// The plaintext of a secret. The `secret.reveal` record is committed before
/// the value is returned, so no reveal goes unrecorded.
pub async fn reveal(
    vault: Vault<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    provider: System,
    name: &str,
) -> Result<SecretString> {
    let Vault { db, keyring } = vault;
    let row = find(db, scope, provider, name)
        .await?
        .ok_or_else(Error::not_found)?;
    let plaintext = match keyring.open(&binding_of(&row), &sealed_of(&row)) {
        Ok(p) => p,
        Err(err) => return Err(integrity_failure(db, actor, &row, err).await),
    };
    let value = String::from_utf8(plaintext.to_vec())
        .map_err(|_| Error::internal("secret is not UTF-8"))?;
    audit::record(
        db,
        actor,
        Some(scope.id()),
        "secret.reveal",
        &target(&row.provider, &row.name),
        Outcome::Success,
        json!({ "key_id": row.key_id }),
    )
    .await?;
    Ok(SecretString::from(value))
}

/// The plaintext of a secret for the platform's own use (verifying a
/// webhook's signature, calling the system it belongs to), or `None` when
/// there is none. Not a reveal: nobody sees it, so it is not audited; a
/// secret that does not open is an integrity failure (audited, 500).
pub async fn open_for_platform(
    vault: Vault<'_>,
    scope: &BusinessScope,
    provider: System,
    name: &str,
) -> Result<Option<SecretString>> {
    let Vault { db, keyring } = vault;
    let Some(row) = find(db, scope, provider, name).await? else {
        return Ok(None);
    };
    let plaintext = match keyring.open(&binding_of(&row), &sealed_of(&row)) {
        Ok(p) => p,
        Err(err) => return Err(integrity_failure(db, &Actor::system(), &row, err).await),
    };
    let value = String::from_utf8(plaintext.to_vec())
        .map_err(|_| Error::internal("secret is not UTF-8"))?;
    Ok(Some(SecretString::from(value)))
}

/// Destroys a secret: the row and its wrapped data key go together
/// (crypto-shredding), recorded as `secret.delete` in the same transaction.
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    scope: &BusinessScope,
    provider: System,
    name: &str,
) -> Result<()> {
    let business_id = scope.id();
    let txn = crate::db::begin_write(db).await?;
    let res = secret::Entity::delete_many()
        .filter(secret::Column::BusinessId.eq(business_id))
        .filter(secret::Column::Provider.eq(provider.as_str()))
        .filter(secret::Column::Name.eq(name))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::not_found());
    }
    crate::domain::events::record(
        &txn,
        business_id,
        crate::domain::events::kind::SECRET_DELETED,
        json!({ "provider": provider.as_str(), "name": name }),
    )
    .await?;
    audit::record(
        &txn,
        actor,
        Some(business_id),
        "secret.delete",
        &target(provider.as_str(), name),
        Outcome::Success,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// What a rotation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RotationSummary {
    /// Data keys re-wrapped under the current key.
    pub rewrapped: u64,
    /// Already under the current key.
    pub already_current: u64,
    /// Could not be opened (unknown key, failed authentication).
    pub failed: u64,
}

/// Re-wraps every data key under the keyring's current (first) key.
/// Online and safe beside live traffic: each row is updated only if it still
/// holds the wrap that was read (a concurrent write keeps its own, already
/// current, wrap). Resumable and idempotent: rows already current are
/// skipped, so an interrupted run simply continues. Plaintexts are never
/// decrypted. `progress(done, total)` is called after each row.
pub async fn rotate<C: ConnectionTrait>(
    db: &C,
    keyring: &Keyring,
    mut progress: impl FnMut(u64, u64),
) -> Result<RotationSummary> {
    const BATCH: u64 = 200;
    let total = secret::Entity::find().count(db).await?;
    let mut summary = RotationSummary::default();
    let mut after: Option<Uuid> = None;
    let mut done = 0;
    loop {
        let mut q = secret::Entity::find()
            .order_by_asc(secret::Column::Id)
            .limit(BATCH);
        if let Some(a) = after {
            q = q.filter(secret::Column::Id.gt(a));
        }
        let rows = q.all(db).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        for row in rows {
            match keyring.rewrap(&binding_of(&row), &sealed_of(&row)) {
                Ok(None) => summary.already_current += 1,
                Ok(Some(new)) => {
                    let res = secret::Entity::update_many()
                        .col_expr(secret::Column::WrappedDek, Expr::value(new.wrapped_dek))
                        .col_expr(secret::Column::DekNonce, Expr::value(new.dek_nonce))
                        .col_expr(secret::Column::KeyId, Expr::value(new.key_id))
                        .filter(secret::Column::Id.eq(row.id))
                        .filter(secret::Column::KeyId.eq(row.key_id.as_str()))
                        .filter(secret::Column::WrappedDek.eq(row.wrapped_dek.clone()))
                        .exec(db)
                        .await?;
                    if res.rows_affected == 1 {
                        summary.rewrapped += 1;
                    } else {
                        // Rewritten meanwhile: a write always seals under the current key.
                        summary.already_current += 1;
                    }
                }
                Err(err) => {
                    summary.failed += 1;
                    tracing::error!(security = true, secret_id = %row.id, key_id = %row.key_id, error = %err, "rotation could not open a data key");
                    audit::record(
                        db,
                        &Actor::system(),
                        Some(row.business_id),
                        "secret.decrypt_failed",
                        &target(&row.provider, &row.name),
                        Outcome::Failure,
                        json!({ "error": err.to_string(), "key_id": row.key_id, "during": "rotation" }),
                    )
                    .await?;
                }
            }
            done += 1;
            progress(done, total.max(done));
        }
    }
    Ok(summary)
}

/// What one key-encryption key wraps: secrets, email bodies waiting to be
/// sent, webhook endpoints' signing secrets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeyUse {
    /// Integration secrets.
    pub secrets: u64,
    /// Pending email bodies.
    pub emails: u64,
    /// Webhook endpoints' signing secrets.
    pub webhook_secrets: u64,
}

/// What each key-encryption key wraps, by key id (ascending): what `keys
/// rotate` reports, and what must show only the current key before an old
/// one is removed from the keyring.
pub async fn count_by_key<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, KeyUse)>> {
    let secrets: Vec<(String, i64)> = secret::Entity::find()
        .select_only()
        .column(secret::Column::KeyId)
        .column_as(secret::Column::Id.count(), "n")
        .group_by(secret::Column::KeyId)
        .into_tuple()
        .all(db)
        .await?;
    let emails: Vec<(Option<String>, i64)> = entity::email::outbox::Entity::find()
        .select_only()
        .column(entity::email::outbox::Column::BodyKeyId)
        .column_as(entity::email::outbox::Column::Id.count(), "n")
        .filter(entity::email::outbox::Column::BodyKeyId.is_not_null())
        .group_by(entity::email::outbox::Column::BodyKeyId)
        .into_tuple()
        .all(db)
        .await?;
    let endpoints: Vec<(String, i64)> = entity::webhook::endpoint::Entity::find()
        .select_only()
        .column(entity::webhook::endpoint::Column::SecretKeyId)
        .column_as(entity::webhook::endpoint::Column::Id.count(), "n")
        .group_by(entity::webhook::endpoint::Column::SecretKeyId)
        .into_tuple()
        .all(db)
        .await?;
    let mut by_key: std::collections::BTreeMap<String, KeyUse> = Default::default();
    for (key, n) in secrets {
        by_key.entry(key).or_default().secrets = u64::try_from(n).unwrap_or(0);
    }
    for (key, n) in emails {
        if let Some(key) = key {
            by_key.entry(key).or_default().emails = u64::try_from(n).unwrap_or(0);
        }
    }
    for (key, n) in endpoints {
        by_key.entry(key).or_default().webhook_secrets = u64::try_from(n).unwrap_or(0);
    }
    Ok(by_key.into_iter().collect())
}
