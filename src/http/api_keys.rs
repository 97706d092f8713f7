//! `/v1/api-keys` (the owner's keys) and `/v1/admin/api-keys` (every key,
//! for admins). Only people reach these routes: a key never manages keys.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{Auth, Json, Path, Query};
use crate::authz::{Action, Object, Scope};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::programs::api_keys::{self, ApiKeyView, CreatedApiKey, KeyFilter, NewKey};
use crate::domain::tenancy::access;
use crate::error::{Problem, Result};
use crate::state::AppState;
use entity::enums::Role;

/// Body of `POST /v1/api-keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, 1..=100 characters (e.g. `n8n production`).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// What it may do (at least one).
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
    /// When it stops working (RFC 3339, in the future); never when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Query of the key lists.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListApiKeys {
    /// Revoked keys too (default: live ones only).
    pub include_revoked: Option<bool>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Query of `GET /v1/admin/api-keys`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminListApiKeys {
    /// Only this business's keys.
    pub business_id: Option<Uuid>,
    /// Revoked keys too (default: live ones only).
    pub include_revoked: Option<bool>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Create an API key for the business's programs. The key is in this
/// answer only: store it now. Needs a recent sign-in.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])), request_body = CreateApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 401, description = "`reauthentication_required` when the last sign-in is older than `auth.reauth_window_secs`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`api_key_not_allowed`, `no_business`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Json(body): Json<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    let scope = access::own_scope(&state.authz, caller, Object::ApiKey, Action::Create)?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    let created = api_keys::create(
        &state.db,
        &actor,
        &scope,
        caller,
        state.config.auth.reauth_window_secs,
        NewKey {
            name: body.name,
            scopes: body.scopes,
            expires_at: body.expires_at,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The business's API keys, masked, oldest first.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", security(("bearer" = [])), params(ListApiKeys),
    responses(
        (status = 200, body = Page<ApiKeyView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`api_key_not_allowed`, `no_business`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_api_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<ListApiKeys>,
) -> Result<Json<Page<ApiKeyView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = access::own_scope(&state.authz, caller, Object::ApiKey, Action::List)?;
    Ok(Json(
        api_keys::list(&state.db, &scope, q.include_revoked.unwrap_or(false), page).await?,
    ))
}

/// Revoke an API key of the business: refused from its very next request.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`api_key_not_allowed`, `no_business`", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_api_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let scope = access::own_scope(&state.authz, caller, Object::ApiKey, Action::Delete)?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    api_keys::revoke(&state.db, &actor, &scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every business's API keys (admins; audited).
#[utoipa::path(get, path = "/v1/admin/api-keys", tag = "admin", security(("bearer" = [])), params(AdminListApiKeys),
    responses(
        (status = 200, body = Page<ApiKeyView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_list_api_keys(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Query(q): Query<AdminListApiKeys>,
) -> Result<Json<Page<ApiKeyView>>> {
    access::platform(&state.authz, caller, Object::ApiKey, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    super::admin::admin_read(
        &state,
        caller,
        meta,
        q.business_id,
        "admin.api_keys.list",
        "api_keys",
    )
    .await?;
    let filter = KeyFilter {
        business_id: q.business_id,
        include_revoked: q.include_revoked.unwrap_or(false),
    };
    Ok(Json(api_keys::list_all(&state.db, filter, page).await?))
}

/// Revoke any business's API key (admins; audited).
#[utoipa::path(delete, path = "/v1/admin/api-keys/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Key id")),
    responses(
        (status = 204, description = "Revoked (or already revoked)"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn admin_revoke_api_key(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    access::platform(&state.authz, caller, Object::ApiKey, Action::Delete)?;
    let actor = Actor::user(caller, Role::Admin, meta);
    api_keys::revoke_any(&state.db, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
