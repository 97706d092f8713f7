//! `/v1/companies`: companies of the caller's business.

use axum::extract::State;
use axum::http::StatusCode;
use entity::enums::{CompanyKind, CompanyStatus};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{AnyAuth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access;
use crate::domain::tenancy::companies::{self, CompanyChanges, CompanyView, NewCompany};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/companies`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCompany {
    /// Name, 1..=200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: String,
    /// `product`, `service` or `hybrid`.
    pub kind: CompanyKind,
    /// Free-form shop type, ≤ 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub shop_type: Option<String>,
}

/// Body of `PATCH /v1/companies/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCompany {
    /// New name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
    /// New kind.
    pub kind: Option<CompanyKind>,
    /// New shop type.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub shop_type: Option<String>,
    /// `active` or `inactive` (`suspended` is the platform's to set).
    pub status: Option<OwnerStatus>,
}

/// The statuses an owner may set on a company.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OwnerStatus {
    /// Operating.
    Active,
    /// Paused by its owner.
    Inactive,
}

impl From<OwnerStatus> for CompanyStatus {
    fn from(s: OwnerStatus) -> CompanyStatus {
        match s {
            OwnerStatus::Active => CompanyStatus::Active,
            OwnerStatus::Inactive => CompanyStatus::Inactive,
        }
    }
}

/// Query of `GET /v1/companies`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListCompanies {
    /// Only companies of this status.
    pub status: Option<CompanyStatus>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Create a company; it gets the business's next code (`COMP001`, …).
///
/// API keys: `companies:write`.
#[utoipa::path(post, path = "/v1/companies", tag = "companies", security(("bearer" = [])), request_body = CreateCompany,
    responses(
        (status = 201, body = CompanyView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_company(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Json(body): Json<CreateCompany>,
) -> Result<(StatusCode, Json<CompanyView>)> {
    let scope = access::own_scope(&state.authz, principal, Object::Company, Action::Create)?;
    let company = companies::create(&state.db, &scope, body.into(), None).await?;
    Ok((StatusCode::CREATED, Json(company)))
}

/// List the business's companies (cursor pagination).
///
/// API keys: `companies:read`.
#[utoipa::path(get, path = "/v1/companies", tag = "companies", security(("bearer" = [])), params(ListCompanies),
    responses(
        (status = 200, body = Page<CompanyView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_companies(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<ListCompanies>,
) -> Result<Json<Page<CompanyView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = access::own_scope(&state.authz, principal, Object::Company, Action::List)?;
    Ok(Json(
        companies::list(&state.read, &scope, q.status, page).await?,
    ))
}

/// One company of the business.
///
/// API keys: `companies:read`.
#[utoipa::path(get, path = "/v1/companies/{id}", tag = "companies", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 200, body = CompanyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_company(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Json<CompanyView>> {
    let scope = access::own_scope(&state.authz, principal, Object::Company, Action::Read)?;
    Ok(Json(companies::get(&state.read, &scope, id).await?))
}

/// Change a company.
///
/// API keys: `companies:write`.
#[utoipa::path(patch, path = "/v1/companies/{id}", tag = "companies", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Company id")), request_body = UpdateCompany,
    responses(
        (status = 200, body = CompanyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_company(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
    Json(body): Json<UpdateCompany>,
) -> Result<Json<CompanyView>> {
    let scope = access::own_scope(&state.authz, principal, Object::Company, Action::Update)?;
    Ok(Json(
        companies::update(&state.db, &scope, id, body.into(), None).await?,
    ))
}

/// Delete a company and its channels.
///
/// API keys: `companies:write`.
#[utoipa::path(delete, path = "/v1/companies/{id}", tag = "companies", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_company(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let scope = access::own_scope(&state.authz, principal, Object::Company, Action::Delete)?;
    companies::delete(&state.db, &scope, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<CreateCompany> for NewCompany {
    fn from(body: CreateCompany) -> NewCompany {
        NewCompany {
            name: body.name,
            kind: body.kind,
            shop_type: body.shop_type,
        }
    }
}

impl From<UpdateCompany> for CompanyChanges {
    fn from(body: UpdateCompany) -> CompanyChanges {
        CompanyChanges {
            name: body.name,
            kind: body.kind,
            shop_type: body.shop_type,
            status: body.status.map(Into::into),
        }
    }
}
