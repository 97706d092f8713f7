//! `/v1/business`: the caller's own business.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::Query;
use super::extract::{AnyAuth, Auth, Json};
use crate::authz::{Action, Object};
use crate::domain::audit::{self, AuditFilter, AuditView};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::tenancy::access;
use crate::domain::tenancy::businesses::{self, BusinessView};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `PATCH /v1/business`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateBusiness {
    /// New name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub name: Option<String>,
}

/// The caller's business: plan, status, trial end and channel usage.
///
/// API keys: `business:read`.
#[utoipa::path(get, path = "/v1/business", tag = "business", security(("bearer" = [])),
    responses(
        (status = 200, body = BusinessView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`no_business`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_business(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
) -> Result<Json<BusinessView>> {
    let (b, _) = access::own_business(
        &state.db,
        &state.authz,
        principal,
        Object::Business,
        Action::Read,
    )
    .await?;
    Ok(Json(businesses::view(&state.db, &state.plans, b).await?))
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
    let (b, _) = access::own_business(
        &state.db,
        &state.authz,
        caller,
        Object::Business,
        Action::Update,
    )
    .await?;
    Ok(Json(
        businesses::update(&state.db, &state.plans, b, body.name.as_deref()).await?,
    ))
}

/// What happened to the caller's business: secret writes, reveals (managers'
/// included), deletions, manager assignments, admin actions. Oldest first.
///
/// API keys: `audit:read`.
#[utoipa::path(get, path = "/v1/business/audit", tag = "business", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<AuditView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`no_business`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn business_audit(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<AuditView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = access::own_scope(&state.authz, principal, Object::Audit, Action::List)?;
    let filter = AuditFilter {
        business_id: Some(scope.id()),
        ..AuditFilter::default()
    };
    let page = audit::list(&state.db, &filter, page).await?;
    Ok(Json(page.map(AuditView::for_owner)))
}
