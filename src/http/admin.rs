//! `/v1/admin/*`: platform staff. Every handler asks the enforcer.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{Auth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::audit::{self, Actor, AuditFilter, AuditView, Outcome, RequestMeta};
use crate::domain::pagination::{Page, PageQuery, PageRequest};
use crate::domain::tenancy::access;
use crate::domain::tenancy::businesses::{self, BusinessView, RateLimitView};
use crate::domain::tenancy::managers::{self, ManagerView};
use crate::domain::tenancy::stats::{self, PlatformStats};
use crate::domain::validate::Email;
use crate::error::{Problem, Result};
use crate::jobs::admin::{self as jobs_admin, JobState, JobView};
use crate::state::AppState;
use entity::enums::Role;

/// Body of `POST /v1/admin/managers`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateManager {
    /// The manager's email; a set-password link is sent there.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
    )]
    pub email: String,
    /// Their full name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
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
#[utoipa::path(get, path = "/v1/admin/businesses", operation_id = "admin_list_businesses", tag = "admin", security(("bearer" = [])), params(PageQuery),
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
    meta: RequestMeta,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<BusinessView>>> {
    access::platform(&state.authz, caller, Object::Business, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    admin_read(
        &state,
        caller,
        meta,
        None,
        "admin.businesses.list",
        "businesses",
    )
    .await?;
    Ok(Json(
        businesses::list(&state.db, &state.plans, None, page).await?,
    ))
}

/// One business.
#[utoipa::path(get, path = "/v1/admin/businesses/{id}", operation_id = "admin_get_business", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")),
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
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<Json<BusinessView>> {
    access::platform(&state.authz, caller, Object::Business, Action::List)?;
    let (b, _) = access::business(
        &state.db,
        &state.authz,
        caller,
        id,
        Object::Business,
        Action::Read,
    )
    .await?;
    admin_read(
        &state,
        caller,
        meta,
        Some(b.id),
        "admin.business.read",
        &format!("business/{}", b.id),
    )
    .await?;
    Ok(Json(businesses::view(&state.db, &state.plans, b).await?))
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
    meta: RequestMeta,
    Json(body): Json<CreateManager>,
) -> Result<(StatusCode, Json<ManagerView>)> {
    access::platform(&state.authz, caller, Object::Manager, Action::Create)?;
    let email = Email::parse("email", &body.email)?;
    let actor = Actor::user(caller, Role::Admin, meta);
    Ok((
        StatusCode::CREATED,
        Json(managers::create(&state.identity(), &actor, &email, &body.full_name).await?),
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
    meta: RequestMeta,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<ManagerView>>> {
    access::platform(&state.authz, caller, Object::Manager, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    admin_read(
        &state,
        caller,
        meta,
        None,
        "admin.managers.list",
        "managers",
    )
    .await?;
    Ok(Json(managers::list(&state.identity(), page).await?))
}

/// Assign a manager to a business (replacing any other: at most one).
#[utoipa::path(put, path = "/v1/admin/businesses/{id}/manager", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Business id")), request_body = AssignManager,
    responses(
        (status = 200, body = BusinessView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such business, or no user has that `manager_id`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`not_a_manager`: the user is not a manager account", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn assign_manager(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<AssignManager>,
) -> Result<Json<BusinessView>> {
    let (b, scope) = access::business(
        &state.db,
        &state.authz,
        caller,
        id,
        Object::ManagerAssignment,
        Action::Update,
    )
    .await?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    Ok(Json(
        managers::assign(&state.db, &state.plans, &actor, b, body.manager_id).await?,
    ))
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
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let (b, scope) = access::business(
        &state.db,
        &state.authz,
        caller,
        id,
        Object::ManagerAssignment,
        Action::Update,
    )
    .await?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    managers::unassign(&state.db, &actor, b).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Records an admin's read (SPEC: every admin action is audited).
pub(crate) async fn admin_read(
    state: &AppState,
    caller: crate::domain::tenancy::access::Caller,
    meta: RequestMeta,
    business: Option<Uuid>,
    action: &str,
    target: &str,
) -> Result<()> {
    let actor = Actor::user(caller, Role::Admin, meta);
    audit::record(
        &state.db,
        &actor,
        business,
        action,
        target,
        Outcome::Success,
        serde_json::json!({}),
    )
    .await
}

/// Query of `GET /v1/admin/audit`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminAuditQuery {
    /// Only this business.
    pub business_id: Option<Uuid>,
    /// Only this actor (user id).
    pub actor_id: Option<Uuid>,
    /// Only this action, e.g. `secret.reveal`.
    pub action: Option<String>,
    /// At or after this time (RFC 3339).
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this time (RFC 3339).
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// The platform's audit log, filtered (cursor pagination, oldest first).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])), params(AdminAuditQuery),
    responses(
        (status = 200, body = Page<AuditView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Query(q): Query<AdminAuditQuery>,
) -> Result<Json<Page<AuditView>>> {
    access::platform(&state.authz, caller, Object::Audit, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let filter = AuditFilter {
        business_id: q.business_id,
        actor_id: q.actor_id,
        action: q.action,
        from: q.from,
        to: q.to,
    };
    let result = audit::list(&state.db, &filter, page).await?;
    admin_read(&state, caller, meta, None, "admin.audit.list", "audit_log").await?;
    Ok(Json(result))
}

/// Platform statistics: businesses by plan and status, trials ending within
/// 7 days, managers with their assigned counts.
#[utoipa::path(get, path = "/v1/admin/stats", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, body = PlatformStats),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn platform_stats(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
) -> Result<Json<PlatformStats>> {
    access::platform(&state.authz, caller, Object::Stats, Action::Read)?;
    admin_read(&state, caller, meta, None, "admin.stats.read", "stats").await?;
    Ok(Json(stats::platform(&state.db).await?))
}

/// Query of `GET /v1/admin/jobs`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// Only tasks of this kind, e.g. `email.deliver`.
    pub kind: Option<String>,
    /// Only tasks in this state.
    pub state: Option<JobState>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Background tasks of the job runner: queued, running, retrying and
/// failed ones (finished one-off tasks are deleted), oldest first.
#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin", security(("bearer" = [])), params(JobsQuery),
    responses(
        (status = 200, body = Page<JobView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Query(q): Query<JobsQuery>,
) -> Result<Json<Page<JobView>>> {
    access::platform(&state.authz, caller, Object::Job, Action::List)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let result = jobs_admin::list(&state.db, q.kind.as_deref(), q.state, page).await?;
    admin_read(&state, caller, meta, None, "admin.jobs.list", "jobs").await?;
    Ok(Json(result))
}

/// Run a failed (or retrying) task again now, with a fresh count of attempts.
#[utoipa::path(post, path = "/v1/admin/jobs/{id}/retry", tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, body = JobView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`job_not_retryable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry_job(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<Json<JobView>> {
    access::platform(&state.authz, caller, Object::Job, Action::Update)?;
    let actor = Actor::user(caller, Role::Admin, meta);
    let result = jobs_admin::retry(&state.db, id).await;
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::Failure
    };
    audit::record(
        &state.db,
        &actor,
        None,
        "admin.job.retry",
        &format!("job/{id}"),
        outcome,
        serde_json::json!({}),
    )
    .await?;
    let view = result?;
    state.jobs.wake();
    Ok(Json(view))
}

/// Body of `PUT /v1/admin/businesses/{id}/rate-limit`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRateLimit {
    /// Requests per minute per user and per API key of the business,
    /// 1..=100000; `null` restores the platform default.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(default, deserialize_with = "super::extract::optional_whole_number")]
    pub per_minute: Option<u32>,
}

/// Set a business's request limit (per user and per API key, per minute).
/// Applies within seconds on every instance.
#[utoipa::path(put, path = "/v1/admin/businesses/{id}/rate-limit", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Business id")), request_body = SetRateLimit,
    responses(
        (status = 200, body = RateLimitView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_rate_limit(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRateLimit>,
) -> Result<Json<RateLimitView>> {
    access::platform(&state.authz, caller, Object::Business, Action::List)?;
    let (b, scope) = access::business(
        &state.db,
        &state.authz,
        caller,
        id,
        Object::Business,
        Action::Update,
    )
    .await?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    let view = businesses::set_rate_limit(&state.db, &actor, b, body.per_minute).await?;
    state.api_limits.forget(id);
    Ok(Json(view))
}
