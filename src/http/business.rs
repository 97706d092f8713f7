//! `/v1/business`: the caller's own business.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Auth, Json};
use crate::authz::{Action, Object};
use crate::domain::access;
use crate::domain::businesses::{self, BusinessView};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `PATCH /v1/business`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBusiness {
    /// New name.
    pub name: Option<String>,
}

/// The caller's business: plan, status, trial end and channel usage.
#[utoipa::path(get, path = "/v1/business", tag = "business", security(("bearer" = [])),
    responses(
        (status = 200, body = BusinessView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`no_business`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_business(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<BusinessView>> {
    let b = access::own_business(&state, caller, Object::Business, Action::Read).await?;
    Ok(Json(businesses::view(&state, b).await?))
}

/// Rename the caller's business.
#[utoipa::path(patch, path = "/v1/business", tag = "business", security(("bearer" = [])), request_body = UpdateBusiness,
    responses(
        (status = 200, body = BusinessView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`no_business`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_business(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<UpdateBusiness>,
) -> Result<Json<BusinessView>> {
    let b = access::own_business(&state, caller, Object::Business, Action::Update).await?;
    Ok(Json(
        businesses::update(&state, b, body.name.as_deref()).await?,
    ))
}
