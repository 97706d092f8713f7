//! `/v1/admin/*`: platform staff. Every handler asks the enforcer.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{Auth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::access;
use crate::domain::businesses::{self, BusinessView};
use crate::domain::managers::{self, ManagerView};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::validate::Email;
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/admin/managers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateManager {
    /// The manager's email; a set-password link is sent there.
    pub email: String,
    /// Their full name.
    pub full_name: String,
}

/// Body of `PUT /v1/admin/businesses/{id}/manager`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignManager {
    /// A manager account's user id.
    pub manager_id: Uuid,
}

/// Every business (cursor pagination).
#[utoipa::path(get, path = "/v1/admin/businesses", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<BusinessView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_businesses(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BusinessView>>> {
    access::platform(&state, caller, Object::Business, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(businesses::list(&state, None, page).await?))
}

/// One business.
#[utoipa::path(get, path = "/v1/admin/businesses/{id}", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")),
    responses(
        (status = 200, body = BusinessView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_business(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<BusinessView>> {
    access::platform(&state, caller, Object::Business, Action::List)?;
    let b = access::business(&state, caller, id, Object::Business, Action::Read).await?;
    Ok(Json(businesses::view(&state, b).await?))
}

/// Create a manager account and email them a set-password link.
#[utoipa::path(post, path = "/v1/admin/managers", tag = "admin", security(("bearer" = [])), request_body = CreateManager,
    responses(
        (status = 201, body = ManagerView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_manager(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<CreateManager>,
) -> Result<(StatusCode, Json<ManagerView>)> {
    access::platform(&state, caller, Object::Manager, Action::Create)?;
    let email = Email::parse("email", &body.email)?;
    Ok((
        StatusCode::CREATED,
        Json(managers::create(&state, &email, &body.full_name).await?),
    ))
}

/// Manager accounts with their assigned-business counts.
#[utoipa::path(get, path = "/v1/admin/managers", tag = "admin", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<ManagerView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_managers(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<ManagerView>>> {
    access::platform(&state, caller, Object::Manager, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(managers::list(&state, page).await?))
}

/// Assign a manager to a business (replacing any other: at most one).
#[utoipa::path(put, path = "/v1/admin/businesses/{id}/manager", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")), request_body = AssignManager,
    responses(
        (status = 200, body = BusinessView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`not_a_manager`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn assign_manager(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<AssignManager>,
) -> Result<Json<BusinessView>> {
    let b = access::business(
        &state,
        caller,
        id,
        Object::ManagerAssignment,
        Action::Update,
    )
    .await?;
    Ok(Json(managers::assign(&state, b, body.manager_id).await?))
}

/// Remove a business's manager; they lose access at once.
#[utoipa::path(delete, path = "/v1/admin/businesses/{id}/manager", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")),
    responses(
        (status = 204, description = "Unassigned"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unassign_manager(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let b = access::business(
        &state,
        caller,
        id,
        Object::ManagerAssignment,
        Action::Update,
    )
    .await?;
    managers::unassign(&state, b).await?;
    Ok(StatusCode::NO_CONTENT)
}
