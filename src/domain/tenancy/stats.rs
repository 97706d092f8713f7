//! Platform statistics for admins: businesses by plan and by status, trials
//! ending soon, managers with their assigned counts.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, Utc};
use entity::enums::{BusinessStatus, Role};
use entity::{business, user};
use sea_orm::DatabaseConnection;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::billing::plans::TRIAL;
use crate::error::Result;

/// Days ahead counted as "trial ending soon".
pub const TRIAL_ENDING_DAYS: i64 = 7;

/// A manager and how many businesses they look after.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagerLoad {
    /// User id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Businesses assigned.
    pub assigned_businesses: u64,
}

/// `GET /v1/admin/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformStats {
    /// Businesses in all.
    pub businesses: u64,
    /// Count per plan id.
    pub by_plan: BTreeMap<String, u64>,
    /// Count per effective status (a lapsed trial counts as `restricted`).
    pub by_status: BTreeMap<String, u64>,
    /// Trials ending within the next 7 days (not yet ended).
    pub trials_ending_within_7_days: u64,
    /// Every manager with their assigned count.
    pub managers: Vec<ManagerLoad>,
}

fn status_key(s: BusinessStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Computes the statistics with grouped queries.
pub async fn platform(db: &DatabaseConnection) -> Result<PlatformStats> {
    let now = Utc::now();
    let by_plan: BTreeMap<String, u64> = business::Entity::find()
        .select_only()
        .column(business::Column::Plan)
        .column_as(business::Column::Id.count(), "n")
        .group_by(business::Column::Plan)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(p, n)| (p, n.max(0) as u64))
        .collect();
    let mut by_status: BTreeMap<String, u64> = business::Entity::find()
        .select_only()
        .column(business::Column::Status)
        .column_as(business::Column::Id.count(), "n")
        .group_by(business::Column::Status)
        .into_tuple::<(BusinessStatus, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(s, n)| (status_key(s), n.max(0) as u64))
        .collect();
    let lapsed = business::Entity::find()
        .filter(business::Column::Status.eq(BusinessStatus::Active))
        .filter(business::Column::Plan.eq(TRIAL))
        .filter(business::Column::TrialEndsAt.lte(now))
        .count(db)
        .await?;
    if lapsed > 0 {
        let active = by_status
            .entry(status_key(BusinessStatus::Active))
            .or_default();
        *active = active.saturating_sub(lapsed);
        *by_status
            .entry(status_key(BusinessStatus::Restricted))
            .or_default() += lapsed;
    }
    let trials_ending = business::Entity::find()
        .filter(business::Column::Plan.eq(TRIAL))
        .filter(business::Column::TrialEndsAt.gt(now))
        .filter(business::Column::TrialEndsAt.lte(now + Duration::days(TRIAL_ENDING_DAYS)))
        .count(db)
        .await?;
    let counts: HashMap<Uuid, i64> = business::Entity::find()
        .select_only()
        .column(business::Column::ManagerId)
        .column_as(business::Column::Id.count(), "n")
        .filter(business::Column::ManagerId.is_not_null())
        .group_by(business::Column::ManagerId)
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?
        .into_iter()
        .collect();
    let managers = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Manager))
        .order_by_asc(user::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(|m| ManagerLoad {
            assigned_businesses: counts.get(&m.id).copied().unwrap_or(0).max(0) as u64,
            id: m.id,
            email: m.email,
            full_name: m.full_name,
        })
        .collect();
    Ok(PlatformStats {
        businesses: by_plan.values().sum(),
        by_plan,
        by_status,
        trials_ending_within_7_days: trials_ending,
        managers,
    })
}
