//! `/v1/manager/*`: read-only views of the businesses assigned to the
//! calling manager. Another business answers 404.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::channels::ListChannels;
use super::companies::ListCompanies;
use super::extract::{Auth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::audit;
use crate::domain::channels::{self, ChannelView};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::tenancy::access::{self, BusinessScope, Caller};
use crate::domain::tenancy::businesses::{self, BusinessView};
use crate::domain::tenancy::companies::{self, CompanyView};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// The businesses assigned to the calling manager.
#[utoipa::path(get, path = "/v1/manager/businesses", operation_id = "manager_list_businesses", tag = "manager", security(("bearer" = [])), params(PageQuery),
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
    access::platform(&state.authz, caller, Object::AssignedBusiness, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(Json(
        businesses::list(&state.db, &state.plans, Some(caller.user_id), page).await?,
    ))
}

/// An assigned business as its manager sees it.
#[derive(Serialize, ToSchema)]
pub struct ManagedBusinessView {
    /// Plan, status, trial end, channel usage, manager.
    #[serde(flatten)]
    pub business: BusinessView,
    /// Latest recorded activity: the last audit record about the business,
    /// or its last change, whichever is later.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub last_activity_at: DateTime<Utc>,
    /// The Stripe subscription: status and renewal date (`current_period_end`).
    pub subscription: Option<crate::domain::billing::customer::SubscriptionDetails>,
    /// The business's Stripe Connect account and its state (read only).
    pub connect: Option<crate::domain::billing::connect::ConnectedAccountView>,
}

/// One assigned business: plan, status, trial end, channel usage, last
/// activity, subscription status and renewal date.
#[utoipa::path(get, path = "/v1/manager/businesses/{id}", operation_id = "manager_get_business", tag = "manager", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")),
    responses(
        (status = 200, body = ManagedBusinessView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_business(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
) -> Result<Json<ManagedBusinessView>> {
    let (b, scope) = access::business(
        &state.db,
        &state.authz,
        caller,
        id,
        Object::Business,
        Action::Read,
    )
    .await?;
    let audited = audit::last_activity(&state.db, b.id).await?;
    let last_activity_at = audited.map_or(b.updated_at, |a| a.max(b.updated_at));
    let subscription =
        crate::domain::billing::customer::subscription_details(&state.billing(), &scope).await?;
    let connect = crate::domain::billing::connect::find(&state.db, b.id)
        .await?
        .map(Into::into);
    Ok(Json(ManagedBusinessView {
        business: businesses::view(&state.db, &state.plans, b).await?,
        last_activity_at,
        subscription,
        connect,
    }))
}

/// Companies of an assigned business.
#[utoipa::path(get, path = "/v1/manager/businesses/{id}/companies", operation_id = "manager_list_companies", tag = "manager", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id"), ListCompanies),
    responses(
        (status = 200, body = Page<CompanyView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_companies(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<ListCompanies>,
) -> Result<Json<Page<CompanyView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = assigned_scope(&state, caller, id, Object::Company).await?;
    Ok(Json(
        companies::list(&state.read, &scope, q.status, page).await?,
    ))
}

/// Channels of an assigned business.
#[utoipa::path(get, path = "/v1/manager/businesses/{id}/channels", operation_id = "manager_list_channels", tag = "manager", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id"), ListChannels),
    responses(
        (status = 200, body = Page<ChannelView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_channels(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(id): Path<Uuid>,
    Query(q): Query<ListChannels>,
) -> Result<Json<Page<ChannelView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = assigned_scope(&state, caller, id, Object::Channel).await?;
    Ok(Json(
        channels::list(&state.read, &scope, q.filter(), page).await?,
    ))
}

/// The caller's scope in business `id` to list its `object`s (404 without a
/// role there, 403 when the role may not).
async fn assigned_scope(
    state: &AppState,
    caller: Caller,
    id: Uuid,
    object: Object,
) -> Result<BusinessScope> {
    let (_, scope) =
        access::business(&state.db, &state.authz, caller, id, object, Action::List).await?;
    Ok(scope)
}
