//! `/v1/admin/businesses/{id}/…` changes platform staff make to any
//! business (SPEC §1: admins do "everything, on every business"; SPEC §2:
//! `free` and `enterprise` are granted by an admin): the plan grant, and
//! the business's companies and channels. Each change is audited in its own
//! transaction with the admin as actor; reads go through the manager
//! routes (`/v1/manager/businesses/{id}/companies`, `…/channels`), which
//! admins may call too.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::companies::{CreateCompany, UpdateCompany};
use super::extract::{Auth, Json, Path};
use crate::authz::{Action, Object};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::billing::customer::BillingSummary;
use crate::domain::billing::grants::{self, EnterprisePrice, Interval, PlanGrant};
use crate::domain::channels::{self, ChannelView};
use crate::domain::tenancy::access::{self, BusinessScope, Caller};
use crate::domain::tenancy::companies::{self, CompanyView};
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Body of `PUT /v1/admin/businesses/{id}/plan`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPlan {
    /// The plan to grant.
    pub plan: GrantedPlan,
    /// `enterprise` only: channels allowed, 1..=10000; absent: the
    /// catalogue's (unlimited by default).
    #[schema(minimum = 1, maximum = 10000)]
    #[serde(default, deserialize_with = "super::extract::optional_whole_number")]
    pub channel_limit: Option<u32>,
    /// `enterprise` only, and required there: the custom price.
    pub price: Option<GrantPrice>,
}

/// A plan an admin grants.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantedPlan {
    /// No subscription (live ones are canceled in Stripe at once), the
    /// catalogue's channel limit (1); takes no `channel_limit` or `price`.
    Free,
    /// A Stripe subscription at a custom `price` (an existing one is moved
    /// to it, prorated; otherwise one is created and invoiced, due in 30
    /// days), with a custom `channel_limit`.
    Enterprise,
}

/// A custom price.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantPrice {
    /// Whole minor units of `currency` per interval, 1..=99999999 (Stripe's
    /// limit); never a decimal.
    #[schema(minimum = 1, maximum = 99999999)]
    #[serde(deserialize_with = "super::extract::whole_i64")]
    pub unit_amount: i64,
    /// ISO 4217 code Stripe takes, any case.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// `month` (default) or `year`.
    pub interval: Option<PriceInterval>,
}

/// How often a custom price is billed.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriceInterval {
    /// Monthly.
    Month,
    /// Yearly.
    Year,
}

/// The admin's scope in business `id` for `action` on `object`, after the
/// platform check (403 for anyone but staff), and the actor to audit.
async fn staff_scope(
    state: &AppState,
    caller: Caller,
    meta: RequestMeta,
    id: Uuid,
    object: Object,
    action: Action,
) -> Result<(BusinessScope, Actor)> {
    access::platform(&state.authz, caller, Object::Business, Action::List)?;
    let (_, scope) = access::business(&state.db, &state.authz, caller, id, object, action).await?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    Ok((scope, actor))
}

/// Grant a business `free`, or `enterprise` with a custom channel limit and
/// price. The entitlement follows at once: channels beyond the new limit
/// are suspended (newest first), channels within it restored. Audited as
/// `business.plan_granted`.
#[utoipa::path(put, path = "/v1/admin/businesses/{id}/plan", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id")), request_body = GrantPlan,
    responses(
        (status = 200, body = BillingSummary),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`plan_not_configured`: the catalogue lacks the plan, or `enterprise` its Stripe product", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`channel_limit`, `price`, `price.unit_amount`, `price.currency`) or `invalid_body`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused or failed; nothing was stored and retrying is safe", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`: Stripe is not configured", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn grant_plan(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<GrantPlan>,
) -> Result<Json<BillingSummary>> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Plan, Action::Update).await?;
    let grant = match (body.plan, body.price) {
        (GrantedPlan::Free, None) if body.channel_limit.is_none() => PlanGrant::Free,
        (GrantedPlan::Free, _) => {
            return Err(Error::invalid_field(
                if body.channel_limit.is_some() {
                    "channel_limit"
                } else {
                    "price"
                },
                "free takes no channel limit or price",
            ));
        }
        (GrantedPlan::Enterprise, None) => {
            return Err(Error::invalid_field(
                "price",
                "enterprise needs its custom price",
            ));
        }
        (GrantedPlan::Enterprise, Some(price)) => PlanGrant::Enterprise {
            channel_limit: body.channel_limit,
            price: EnterprisePrice {
                unit_amount: price.unit_amount,
                currency: price.currency,
                interval: match price.interval {
                    Some(PriceInterval::Year) => Interval::Year,
                    Some(PriceInterval::Month) | None => Interval::Month,
                },
            },
        },
    };
    Ok(Json(
        grants::grant(&state.billing(), &actor, &scope, grant).await?,
    ))
}

/// Create a company in any business (it gets that business's next code).
/// Audited as `company.create`.
#[utoipa::path(post, path = "/v1/admin/businesses/{id}/companies", operation_id = "admin_create_company", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id")), request_body = CreateCompany,
    responses(
        (status = 201, body = CompanyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_company(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<CreateCompany>,
) -> Result<(StatusCode, Json<CompanyView>)> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Company, Action::Create).await?;
    let company = companies::create(&state.db, &scope, body.into(), Some(&actor)).await?;
    Ok((StatusCode::CREATED, Json(company)))
}

/// Change a company of any business. Audited as `company.update`.
#[utoipa::path(patch, path = "/v1/admin/businesses/{id}/companies/{company_id}", operation_id = "admin_update_company", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id"), ("company_id" = Uuid, Path, description = "Company id")), request_body = UpdateCompany,
    responses(
        (status = 200, body = CompanyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such business, or the company is not its", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_company(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path((id, company_id)): Path<(Uuid, Uuid)>,
    Json(body): Json<UpdateCompany>,
) -> Result<Json<CompanyView>> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Company, Action::Update).await?;
    Ok(Json(
        companies::update(&state.db, &scope, company_id, body.into(), Some(&actor)).await?,
    ))
}

/// Delete a company of any business, and its channels. Audited as
/// `company.delete`.
#[utoipa::path(delete, path = "/v1/admin/businesses/{id}/companies/{company_id}", operation_id = "admin_delete_company", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id"), ("company_id" = Uuid, Path, description = "Company id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such business, or the company is not its", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_company(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path((id, company_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Company, Action::Delete).await?;
    companies::delete(&state.db, &scope, company_id, Some(&actor)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a channel to any business, under its plan's limit (402 as for its
/// owner). Audited as `channel.create`.
#[utoipa::path(post, path = "/v1/admin/businesses/{id}/channels", operation_id = "admin_create_channel", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id")), request_body = super::channels::CreateChannel,
    responses(
        (status = 201, body = ChannelView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`plan_limit_reached` or `subscription_required`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such business, or the company is not its", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_channel(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<super::channels::CreateChannel>,
) -> Result<(StatusCode, Json<ChannelView>)> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Channel, Action::Create).await?;
    let channel =
        channels::create(&state.db, &state.plans, &scope, body.into(), Some(&actor)).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// Delete a channel of any business (what connects it is removed in the
/// background, as for its owner). Audited as `channel.delete`.
#[utoipa::path(delete, path = "/v1/admin/businesses/{id}/channels/{channel_id}", operation_id = "admin_delete_channel", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id"), ("channel_id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such business, or the channel is not its", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_channel(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path((id, channel_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode> {
    let (scope, actor) =
        staff_scope(&state, caller, meta, id, Object::Channel, Action::Delete).await?;
    channels::delete(
        &state.db,
        &state.rules(),
        &state.jobs,
        &scope,
        channel_id,
        Some(&actor),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
