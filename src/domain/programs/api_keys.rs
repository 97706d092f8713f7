//! API keys: how a business's programs (its n8n workflows, its scripts)
//! call the API. A key is `sb_live_` followed by 32 random bytes in base62
//! (43 characters), shown once when created; the database keeps its first
//! [`LOOKUP_LEN`] characters after `sb_live_` (unique, to find it) and the
//! SHA-256 of the whole key (a key has 256 bits of entropy, so a fast hash
//! cannot be searched; compared in constant time). A key acts only in its
//! business, with its scopes ([`crate::authz::Scope`]); revoked or expired,
//! it authenticates nothing from the next request on. Creating a key needs
//! a recent sign-in, and only people create, list and revoke keys: a key
//! never manages keys.

use chrono::{DateTime, Duration, Utc};
use entity::api_key;
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens::{digest_eq, sha256_hex};
use crate::authz::{Scope, Scopes};
use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::{BusinessScope, Caller, KeyCaller};
use crate::domain::validate;
use crate::error::{Error, Result};

/// What every key starts with (so scanners and people recognise one).
pub const KEY_PREFIX: &str = "sb_live_";
/// Characters after [`KEY_PREFIX`] kept to find a key (62^12 ≈ 3·10^21).
pub const LOOKUP_LEN: usize = 12;
/// Longest key name.
pub const NAME_MAX: usize = 100;
/// How often `last_used_at` is written at most (it would otherwise cost a
/// write per request).
const LAST_USED_RESOLUTION_SECS: i64 = 60;

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A new key: `sb_live_` + 32 random bytes in base62.
fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    // A leading zero byte would shorten the encoding; the length stays at
    // least 43 characters either way, and the lookup takes the first 12.
    let body = base_x::encode(BASE62, &bytes);
    format!("{KEY_PREFIX}{body:0>43}")
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// Key id.
    pub id: Uuid,
    /// The business it acts in.
    pub business_id: Uuid,
    /// Its name.
    pub name: String,
    /// `sb_live_` and the first characters, then `…`.
    pub masked: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Who created it.
    pub created_by: Option<Uuid>,
    /// When it was created.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (to the minute).
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: the only time the key itself is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key: send it as `Authorization: Bearer sb_live_…`. Store it now;
    /// it cannot be shown again.
    pub key: String,
    /// The key as lists will show it.
    #[serde(flatten)]
    pub view: ApiKeyView,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("key", &"[redacted]")
            .field("view", &self.view)
            .finish()
    }
}

fn scopes_of(row: &api_key::Model) -> Vec<Scope> {
    serde_json::from_str(&row.scopes).unwrap_or_default()
}

impl From<api_key::Model> for ApiKeyView {
    fn from(row: api_key::Model) -> ApiKeyView {
        ApiKeyView {
            scopes: scopes_of(&row),
            masked: format!("{KEY_PREFIX}{}…", row.prefix),
            id: row.id,
            business_id: row.business_id,
            name: row.name,
            created_by: row.created_by,
            created_at: row.created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// What a new key is asked for with.
pub struct NewKey {
    /// 1..=100 characters.
    pub name: String,
    /// At least one; duplicates count once.
    pub scopes: Vec<Scope>,
    /// A future instant, or none.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates a key in `scope`'s business for `caller`, who must have signed
/// in recently (`reauth_window_secs`; 401 `reauthentication_required`).
/// Recorded as `api_key.create`. 422 for an empty name or scope list or a
/// past expiry.
pub async fn create(
    db: &DatabaseConnection,
    actor: &Actor,
    scope: &BusinessScope,
    caller: Caller,
    reauth_window_secs: u64,
    new: NewKey,
) -> Result<CreatedApiKey> {
    caller.require_recent_auth(reauth_window_secs)?;
    let name = validate::name("name", &new.name, NAME_MAX)?;
    let mut scopes = new.scopes;
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(Error::invalid_field("scopes", "give at least one scope"));
    }
    let now = Utc::now();
    if new.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::invalid_field("expires_at", "must be in the future"));
    }
    let key = generate();
    let prefix = key[KEY_PREFIX.len()..KEY_PREFIX.len() + LOOKUP_LEN].to_owned();
    let txn = crate::db::begin_write(db).await?;
    let row = api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        business_id: Set(scope.id()),
        name: Set(name),
        prefix: Set(prefix),
        secret_hash: Set(sha256_hex(&key)),
        scopes: Set(serde_json::to_string(&scopes).map_err(Error::internal)?),
        created_by: Set(Some(caller.user_id)),
        created_at: Set(now),
        expires_at: Set(new.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        "api_key.create",
        &format!("api_key/{}", row.id),
        Outcome::Success,
        json!({ "name": row.name, "scopes": scopes, "expires_at": row.expires_at }),
    )
    .await?;
    txn.commit().await?;
    Ok(CreatedApiKey {
        key,
        view: row.into(),
    })
}

/// Filters of a key list.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyFilter {
    /// Only this business's keys.
    pub business_id: Option<Uuid>,
    /// Revoked keys too.
    pub include_revoked: bool,
}

/// A page of keys matching `filter`, oldest first.
async fn page(
    db: &DatabaseConnection,
    filter: KeyFilter,
    page: PageRequest,
) -> Result<Page<ApiKeyView>> {
    let mut q = api_key::Entity::find().order_by_asc(api_key::Column::Id);
    if let Some(b) = filter.business_id {
        q = q.filter(api_key::Column::BusinessId.eq(b));
    }
    if !filter.include_revoked {
        q = q.filter(api_key::Column::RevokedAt.is_null());
    }
    if let Some(after) = page.after {
        q = q.filter(api_key::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page, |k| k.id, ApiKeyView::from))
}

/// The keys of `scope`'s business (revoked ones with `include_revoked`).
pub async fn list(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    include_revoked: bool,
    req: PageRequest,
) -> Result<Page<ApiKeyView>> {
    page(
        db,
        KeyFilter {
            business_id: Some(scope.id()),
            include_revoked,
        },
        req,
    )
    .await
}

/// Every business's keys (admins).
pub async fn list_all(
    db: &DatabaseConnection,
    filter: KeyFilter,
    req: PageRequest,
) -> Result<Page<ApiKeyView>> {
    page(db, filter, req).await
}

/// Revokes key `id` of `scope`'s business (404 when it has no such key;
/// revoking twice is a no-op). Recorded as `api_key.revoke`.
pub async fn revoke(
    db: &DatabaseConnection,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<()> {
    revoke_where(db, actor, id, Some(scope.id())).await
}

/// Revokes any business's key `id` (admins). Recorded as `api_key.revoke`.
pub async fn revoke_any(db: &DatabaseConnection, actor: &Actor, id: Uuid) -> Result<()> {
    revoke_where(db, actor, id, None).await
}

async fn revoke_where(
    db: &DatabaseConnection,
    actor: &Actor,
    id: Uuid,
    business_id: Option<Uuid>,
) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    let mut q = api_key::Entity::find_by_id(id);
    if let Some(b) = business_id {
        q = q.filter(api_key::Column::BusinessId.eq(b));
    }
    let row = q.one(&txn).await?.ok_or_else(Error::not_found)?;
    if row.revoked_at.is_none() {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(api_key::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            actor,
            Some(row.business_id),
            "api_key.revoke",
            &format!("api_key/{id}"),
            Outcome::Success,
            json!({ "name": row.name }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

fn invalid_key() -> Error {
    Error::unauthorized(
        "invalid_api_key",
        "The API key is unknown, revoked or expired",
    )
}

/// Whether a bearer credential is an API key (rather than an access token).
pub fn looks_like_key(bearer: &str) -> bool {
    bearer.starts_with(KEY_PREFIX)
}

/// The caller behind a presented key: 401 `invalid_api_key` when it is
/// unknown, revoked or expired (checked on every request, so a revocation
/// applies to the very next one). Records the use (`last_used_at`, to the
/// minute).
pub async fn authenticate(db: &DatabaseConnection, presented: &str) -> Result<KeyCaller> {
    let body = presented
        .strip_prefix(KEY_PREFIX)
        .filter(|b| b.len() > LOOKUP_LEN && b.is_ascii())
        .ok_or_else(invalid_key)?;
    let row = api_key::Entity::find()
        .filter(api_key::Column::Prefix.eq(&body[..LOOKUP_LEN]))
        .one(db)
        .await?
        .ok_or_else(invalid_key)?;
    let now = Utc::now();
    let live = row.revoked_at.is_none() && row.expires_at.is_none_or(|t| t > now);
    if !digest_eq(&sha256_hex(presented), &row.secret_hash) || !live {
        return Err(invalid_key());
    }
    let stale = now - Duration::seconds(LAST_USED_RESOLUTION_SECS);
    if row.last_used_at.is_none_or(|t| t < stale) {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(row.id))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lt(stale)),
            )
            .exec(db)
            .await?;
    }
    Ok(KeyCaller {
        key_id: row.id,
        business_id: row.business_id,
        scopes: Scopes::of(scopes_of(&row)),
    })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn keys_are_long_base62_and_distinct() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        for k in [&a, &b] {
            assert!(k.starts_with(KEY_PREFIX));
            let body = &k[KEY_PREFIX.len()..];
            assert!(body.len() >= 43, "{k}");
            assert!(body.bytes().all(|c| c.is_ascii_alphanumeric()), "{k}");
        }
        // 32 random bytes are 256 bits: 43 base62 digits hold them.
        assert!(62f64.powi(43).log2() >= 256.0);
    }

    #[test]
    fn status_codes_are_what_the_docs_say() {
        assert_eq!(invalid_key().status(), StatusCode::UNAUTHORIZED);
    }
}
