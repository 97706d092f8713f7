//! `/v1/businesses/{business_id}/secrets`: the integration-secret vault.
//! Owner, the assigned manager and admins (casbin policy); another business
//! answers 404. Values are write-only except through the audited, rate
//! limited `reveal`.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{AnyAuth, Auth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::tenancy::access::{self, BusinessScope, Principal};
use crate::domain::vault::secrets::{self, SecretMetadata, SecretView, System};
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Body of `PUT …/secrets/{provider}/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The secret value (write-only), 1 to 16,384 characters (at most 64
    /// KiB).
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 16384)]
    pub value: SecretString,
    /// Non-secret metadata.
    #[serde(default, deserialize_with = "super::extract::object")]
    pub metadata: SecretMetadata,
}

/// Answer of `POST …/reveal`.
#[derive(Serialize, ToSchema)]
pub struct RevealedSecret {
    /// System.
    pub provider: System,
    /// Name.
    pub name: String,
    /// The plaintext value.
    pub value: String,
}

/// The business's secrets, masked (never plaintext).
///
/// API keys: `secrets:read`.
#[utoipa::path(get, path = "/v1/businesses/{business_id}/secrets", tag = "secrets", security(("bearer" = [])),
    params(("business_id" = Uuid, Path, description = "Business id"), PageQuery),
    responses(
        (status = 200, body = Page<SecretView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_secrets(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(business_id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<SecretView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = secret_scope(&state, principal, business_id, Action::List).await?;
    Ok(Json(secrets::list(state.vault(), &scope, page).await?))
}

/// Create or replace a secret. The value is sealed with a fresh data key.
///
/// API keys: `secrets:write`.
#[utoipa::path(put, path = "/v1/businesses/{business_id}/secrets/{provider}/{name}", tag = "secrets", security(("bearer" = [])),
    params(("business_id" = Uuid, Path, description = "Business id"), ("provider" = System, Path, description = "The outside system the secret belongs to"), ("name" = String, Path, description = "Name: 1..=64 of a-z 0-9 _ . -", pattern = r"^[a-z0-9_.-]{1,64}$")),
    request_body = PutSecret,
    responses(
        (status = 200, body = SecretView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`concurrent_write`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn put_secret(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path((business_id, provider, name)): Path<(Uuid, System, String)>,
    Json(body): Json<PutSecret>,
) -> Result<Json<SecretView>> {
    let scope = secret_scope(&state, principal, business_id, Action::Update).await?;
    let actor = Actor::acting(principal, &scope, meta);
    Ok(Json(
        secrets::put(
            state.vault(),
            &actor,
            &scope,
            provider,
            &name,
            body.value,
            body.metadata,
        )
        .await?,
    ))
}

/// Reveal a secret's plaintext. Audited; limited per user
/// (`rate_limit.reveal_per_minute`, default 10/min). People only: no API
/// key reveals a secret.
#[utoipa::path(post, path = "/v1/businesses/{business_id}/secrets/{provider}/{name}/reveal", tag = "secrets", security(("bearer" = [])),
    params(("business_id" = Uuid, Path, description = "Business id"), ("provider" = System, Path, description = "The outside system the secret belongs to"), ("name" = String, Path, description = "Name: 1..=64 of a-z 0-9 _ . -", pattern = r"^[a-z0-9_.-]{1,64}$")),
    responses(
        (status = 200, body = RevealedSecret),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`secret_integrity_failure`: the ciphertext failed authentication", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reveal_secret(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path((business_id, provider, name)): Path<(Uuid, System, String)>,
) -> Result<Json<RevealedSecret>> {
    let scope = secret_scope(&state, caller.into(), business_id, Action::Reveal).await?;
    if let Err(not_until) = state.reveal_limiter.check_key(&caller.user_id) {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        return Err(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many reveals",
        )
        .with_detail("Secret reveals are limited per user.")
        .with_retry_after(wait.as_secs().max(1)));
    }
    let actor = Actor::acting(caller.into(), &scope, meta);
    let value = secrets::reveal(state.vault(), &actor, &scope, provider, &name).await?;
    Ok(Json(RevealedSecret {
        provider,
        name,
        value: value.expose_secret().to_owned(),
    }))
}

/// Destroy a secret (crypto-shredding: its wrapped data key goes with it).
///
/// API keys: `secrets:write`.
#[utoipa::path(delete, path = "/v1/businesses/{business_id}/secrets/{provider}/{name}", tag = "secrets", security(("bearer" = [])),
    params(("business_id" = Uuid, Path, description = "Business id"), ("provider" = System, Path, description = "The outside system the secret belongs to"), ("name" = String, Path, description = "Name: 1..=64 of a-z 0-9 _ . -", pattern = r"^[a-z0-9_.-]{1,64}$")),
    responses(
        (status = 204, description = "Destroyed"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_secret(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path((business_id, provider, name)): Path<(Uuid, System, String)>,
) -> Result<StatusCode> {
    let scope = secret_scope(&state, principal, business_id, Action::Delete).await?;
    let actor = Actor::acting(principal, &scope, meta);
    secrets::delete(&state.db, &actor, &scope, provider, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's scope in business `business_id` for `action` on its
/// secrets (404 without a role there, 403 when the role may not).
async fn secret_scope(
    state: &AppState,
    principal: Principal,
    business_id: Uuid,
    action: Action,
) -> Result<BusinessScope> {
    let (_, scope) = access::business(
        &state.db,
        &state.authz,
        principal,
        business_id,
        Object::Secret,
        action,
    )
    .await?;
    Ok(scope)
}
