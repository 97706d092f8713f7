//! `/v1/webhook-endpoints`: the business's endpoints for outgoing webhooks
//! (Standard Webhooks), their secrets and delivery logs. Owners, and API
//! keys with `webhooks:read` / `webhooks:write`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{AnyAuth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::events::EventType;
use crate::domain::events::webhooks::{
    self, DeliveryView, EndpointInput, EndpointView, EndpointWithSecret,
};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::tenancy::access::{self, BusinessScope, Principal};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/webhook-endpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Where events are posted: an `http(s)` URL on the public internet.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://(([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?|(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
    )]
    pub url: String,
    /// What it is for (≤ 200 characters).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub description: Option<String>,
    /// Event types to receive; empty or absent: every type.
    pub event_types: Option<Vec<EventType>>,
}

/// Body of `PATCH /v1/webhook-endpoints/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpoint {
    /// A new URL.
    #[schema(
        max_length = 2048,
        pattern = r"^https?://(([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?|(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
    )]
    pub url: Option<String>,
    /// A new description (empty clears it).
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub description: Option<String>,
    /// New event types (empty: every type).
    pub event_types: Option<Vec<EventType>>,
    /// `false` stops deliveries; `true` resumes them (and clears the reason
    /// an endpoint was disabled for).
    pub enabled: Option<bool>,
}

fn names(types: Option<Vec<EventType>>) -> Option<Vec<String>> {
    types.map(|t| t.into_iter().map(|e| e.as_str().to_owned()).collect())
}

async fn scope(state: &AppState, principal: Principal, action: Action) -> Result<BusinessScope> {
    access::own_scope(&state.authz, principal, Object::WebhookEndpoint, action)
}

/// Add an endpoint. Its signing secret is in this answer only: store it.
///
/// API keys: `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "webhooks", security(("bearer" = [])), request_body = CreateEndpoint,
    responses(
        (status = 201, body = EndpointWithSecret),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad or non-public URL, an unknown event type", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Json(body): Json<CreateEndpoint>,
) -> Result<(StatusCode, Json<EndpointWithSecret>)> {
    let scope = scope(&state, principal, Action::Create).await?;
    let actor = Actor::acting(principal, &scope, meta);
    let input = EndpointInput {
        url: Some(body.url),
        description: body.description,
        event_types: names(body.event_types),
        enabled: None,
    };
    let created = webhooks::create(&state.endpoints(), &actor, &scope, input).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The business's endpoints, oldest first.
///
/// API keys: `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "webhooks", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<EndpointView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<EndpointView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = scope(&state, principal, Action::List).await?;
    Ok(Json(webhooks::list(&state.db, &scope, page).await?))
}

/// One endpoint.
///
/// API keys: `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, body = EndpointView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Json<EndpointView>> {
    let scope = scope(&state, principal, Action::Read).await?;
    Ok(Json(webhooks::get(&state.db, &scope, id).await?))
}

/// Change an endpoint (URL, description, event types, enabled).
///
/// API keys: `webhooks:write`.
#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")), request_body = UpdateEndpoint,
    responses(
        (status = 200, body = EndpointView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateEndpoint>,
) -> Result<Json<EndpointView>> {
    let scope = scope(&state, principal, Action::Update).await?;
    let actor = Actor::acting(principal, &scope, meta);
    let input = EndpointInput {
        url: body.url,
        description: body.description,
        event_types: names(body.event_types),
        enabled: body.enabled,
    };
    Ok(Json(
        webhooks::update(&state.endpoints(), &actor, &scope, id, input).await?,
    ))
}

/// Delete an endpoint and its delivery log.
///
/// API keys: `webhooks:write`.
#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let scope = scope(&state, principal, Action::Delete).await?;
    let actor = Actor::acting(principal, &scope, meta);
    webhooks::delete(&state.db, &actor, &scope, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Make a new signing secret (in this answer only). The previous secret
/// keeps signing beside it for 24 hours, so receivers can switch without
/// missing a delivery.
///
/// API keys: `webhooks:write`.
#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/roll-secret", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, body = EndpointWithSecret),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn roll_secret(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<Json<EndpointWithSecret>> {
    let scope = scope(&state, principal, Action::Update).await?;
    let actor = Actor::acting(principal, &scope, meta);
    Ok(Json(
        webhooks::roll_secret(&state.endpoints(), &actor, &scope, id).await?,
    ))
}

/// An endpoint's delivery log: each event sent to it, its attempts and
/// outcome, oldest first.
///
/// API keys: `webhooks:read`.
#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), PageQuery),
    responses(
        (status = 200, body = Page<DeliveryView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<DeliveryView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = scope(&state, principal, Action::List).await?;
    Ok(Json(
        webhooks::deliveries(&state.db, &scope, id, page).await?,
    ))
}
