//! Businesses (tenants): their view with plan and channel usage, renaming,
//! and the platform-wide list.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use entity::business;
use entity::enums::BusinessStatus;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::Config;
use crate::domain::billing::entitlement::first_recheck;
use crate::domain::billing::plans::{PlanCatalogue, PlanView, TRIAL};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::validate;
use crate::error::Result;

/// Channel usage against the plan.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Usage {
    /// Channels that exist (SPEC §2: every non-deleted channel record).
    pub used: u64,
    /// Channels the plan allows; `null` is unlimited.
    pub limit: Option<u32>,
}

/// A business as its owner, manager or an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BusinessView {
    /// Business id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// The plan.
    pub plan: PlanView,
    /// Status; a trial past its end shows `restricted` (SPEC §2).
    pub status: BusinessStatus,
    /// End of the trial.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub trial_ends_at: DateTime<Utc>,
    /// Channel usage.
    pub channels: Usage,
    /// The assigned manager, if any.
    pub manager_id: Option<Uuid>,
    /// Owner's user id.
    pub owner_id: Uuid,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

/// A new business of `owner_id` named `name`, on a trial of
/// `auth.trial_days` from `now`, first re-checked by the billing sweep when
/// the trial reminder is due ([`first_recheck`]). Ready to insert.
pub fn new_on_trial(
    config: &Config,
    owner_id: Uuid,
    name: String,
    now: DateTime<Utc>,
) -> business::ActiveModel {
    let trial_ends_at = now + Duration::days(i64::from(config.auth.trial_days));
    business::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        owner_id: Set(owner_id),
        plan: Set(TRIAL.to_owned()),
        status: Set(BusinessStatus::Active),
        trial_ends_at: Set(trial_ends_at),
        company_seq: Set(0),
        manager_id: Set(None),
        stripe_customer_id: Set(None),
        stripe_account_id: Set(None),
        recheck_at: Set(Some(first_recheck(&config.billing, now, trial_ends_at))),
        trial_notice_sent_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        event_seq: Set(0),
        api_rate_limit_per_minute: Set(None),
        granted_plan: Set(None),
        granted_channel_limit: Set(None),
    }
}

/// The status that applies now: a lapsed trial is restricted even before the
/// background job records it.
pub fn effective_status(b: &business::Model, now: DateTime<Utc>) -> BusinessStatus {
    if b.status == BusinessStatus::Active && b.plan == TRIAL && now >= b.trial_ends_at {
        BusinessStatus::Restricted
    } else {
        b.status
    }
}

/// Channels of `business_id`.
pub async fn channel_count<C: ConnectionTrait>(db: &C, business_id: Uuid) -> Result<u64> {
    Ok(entity::channel::Entity::find()
        .filter(entity::channel::Column::BusinessId.eq(business_id))
        .count(db)
        .await?)
}

/// The view of `b`.
pub async fn view<C: ConnectionTrait>(
    db: &C,
    plans: &PlanCatalogue,
    b: business::Model,
) -> Result<BusinessView> {
    let used = channel_count(db, b.id).await?;
    Ok(view_with_usage(plans, b, used))
}

fn view_with_usage(plans: &PlanCatalogue, b: business::Model, used: u64) -> BusinessView {
    BusinessView {
        id: b.id,
        name: b.name.clone(),
        plan: plans.view_of(&b),
        status: effective_status(&b, Utc::now()),
        trial_ends_at: b.trial_ends_at,
        channels: Usage {
            used,
            limit: plans.limit_of(&b),
        },
        manager_id: b.manager_id,
        owner_id: b.owner_id,
        created_at: b.created_at,
        updated_at: b.updated_at,
    }
}

/// Renames a business.
pub async fn update(
    db: &DatabaseConnection,
    plans: &PlanCatalogue,
    b: business::Model,
    name: Option<&str>,
) -> Result<BusinessView> {
    let mut active = b.into_active_model();
    if let Some(name) = validate::optional_name("name", name, validate::NAME_MAX)? {
        active.name = Set(name);
    }
    active.updated_at = Set(Utc::now());
    let b = active.update(db).await?;
    view(db, plans, b).await
}

/// A page of businesses, optionally only those managed by `manager_id`.
pub async fn list(
    db: &DatabaseConnection,
    plans: &PlanCatalogue,
    manager_id: Option<Uuid>,
    page: PageRequest,
) -> Result<Page<BusinessView>> {
    let mut q = business::Entity::find().order_by_asc(business::Column::Id);
    if let Some(m) = manager_id {
        q = q.filter(business::Column::ManagerId.eq(m));
    }
    if let Some(after) = page.after {
        q = q.filter(business::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    // One grouped count for the whole page, not one query per business.
    let ids: Vec<Uuid> = rows.iter().map(|b| b.id).collect();
    let counts: HashMap<Uuid, i64> = entity::channel::Entity::find()
        .select_only()
        .column(entity::channel::Column::BusinessId)
        .column_as(entity::channel::Column::Id.count(), "n")
        .filter(entity::channel::Column::BusinessId.is_in(ids))
        .group_by(entity::channel::Column::BusinessId)
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    Ok(Page::from_rows(
        rows,
        page,
        |b| b.id,
        |b| {
            let used = counts.get(&b.id).copied().unwrap_or(0).max(0) as u64;
            view_with_usage(plans, b, used)
        },
    ))
}

/// The request limit of a business's users and keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RateLimitView {
    /// The business.
    pub business_id: Uuid,
    /// Requests per minute per user and per API key of the business; `null`:
    /// the platform default (`rate_limit.api_per_minute`).
    pub per_minute: Option<u32>,
}

/// Sets (or, with `None`, clears) business `b`'s request limit per user and
/// per key (SPEC §5: an admin may raise it). 1..=100,000 per minute.
/// Recorded as `business.rate_limit`.
pub async fn set_rate_limit(
    db: &sea_orm::DatabaseConnection,
    actor: &crate::domain::audit::Actor,
    b: business::Model,
    per_minute: Option<u32>,
) -> crate::error::Result<RateLimitView> {
    use sea_orm::{ActiveModelTrait, IntoActiveModel};
    if per_minute.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(crate::error::Error::invalid_field(
            "per_minute",
            "between 1 and 100000, or null for the default",
        ));
    }
    let txn = crate::db::begin_write(db).await?;
    let id = b.id;
    let mut active = b.into_active_model();
    active.api_rate_limit_per_minute = Set(per_minute.and_then(|n| i32::try_from(n).ok()));
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    crate::domain::audit::record(
        &txn,
        actor,
        Some(id),
        "business.rate_limit",
        &format!("business/{id}"),
        crate::domain::audit::Outcome::Success,
        serde_json::json!({ "per_minute": per_minute }),
    )
    .await?;
    txn.commit().await?;
    Ok(RateLimitView {
        business_id: id,
        per_minute,
    })
}
