//! Manager accounts and their assignment to businesses (SPEC §1): an admin
//! creates a manager, who sets a password through an emailed link; a business
//! has at most one manager (one nullable column), a manager any number of
//! businesses; unassignment removes access at once (roles are read from the
//! database on every request).

use std::collections::HashMap;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use entity::enums::{Role, TokenPurpose};
use entity::{business, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::billing::plans::PlanCatalogue;
use crate::domain::identity::Identity;
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::businesses::{self, BusinessView};
use crate::domain::validate::{self, Email, Password};
use crate::domain::{identity::one_time, identity::users};
use crate::error::{Error, Result};
use crate::mail::templates;

/// A manager account.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagerView {
    /// User id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Whether they have set a password yet.
    pub activated: bool,
    /// Businesses assigned to them.
    pub assigned_businesses: u64,
    /// Account creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

/// Creates a manager account (no password) and emails a set-password link.
/// 409 `email_taken` when the address has an account.
pub async fn create(
    ctx: &Identity<'_>,
    actor: &Actor,
    email: &Email,
    full_name: &str,
) -> Result<ManagerView> {
    let full_name = validate::name("full_name", full_name, validate::NAME_MAX)?;
    let now = Utc::now();
    let txn = crate::db::begin_write(ctx.db).await?;
    let manager = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(None),
        full_name: Set(full_name),
        role: Set(Role::Manager),
        email_verified_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        sessions_valid_after: Set(None),
    }
    .insert(&txn)
    .await
    .map_err(users::email_taken)?;
    let ttl = ctx.config.auth.set_password_ttl_secs;
    let token = one_time::create(
        &txn,
        TokenPurpose::SetPassword,
        Some(manager.id),
        email.as_str(),
        ttl,
    )
    .await?;
    audit::record(
        &txn,
        actor,
        None,
        "manager.create",
        &format!("user/{}", manager.id),
        Outcome::Success,
        json!({ "email": manager.email }),
    )
    .await?;
    let url = format!("{}/set-password?token={token}", ctx.config.public_base());
    ctx.mailer
        .enqueue(
            &txn,
            email.as_str(),
            templates::set_password(&url, ttl / 3600),
        )
        .await?;
    txn.commit().await?;
    Ok(ManagerView {
        id: manager.id,
        email: manager.email,
        full_name: manager.full_name,
        activated: false,
        assigned_businesses: 0,
        created_at: manager.created_at,
    })
}

/// Sets a password from an emailed set-password token; the email is thereby
/// verified and every existing session of the account ends.
pub async fn set_password(ctx: &Identity<'_>, token: &str, password: Password) -> Result<()> {
    let user = one_time::consume_for_user(ctx.db, TokenPurpose::SetPassword, token).await?;
    crate::domain::identity::recovery::store_password(ctx, user, password, false).await
}

/// A page of manager accounts with their assigned counts.
pub async fn list(ctx: &Identity<'_>, page: PageRequest) -> Result<Page<ManagerView>> {
    let mut q = user::Entity::find()
        .filter(user::Column::Role.eq(Role::Manager))
        .order_by_asc(user::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(user::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(ctx.db).await?;
    // One grouped count for the page, not one query per manager.
    let ids: Vec<Uuid> = rows.iter().map(|m| m.id).collect();
    let counts: HashMap<Uuid, i64> = business::Entity::find()
        .select_only()
        .column(business::Column::ManagerId)
        .column_as(business::Column::Id.count(), "n")
        .filter(business::Column::ManagerId.is_in(ids))
        .group_by(business::Column::ManagerId)
        .into_tuple::<(Uuid, i64)>()
        .all(ctx.db)
        .await?
        .into_iter()
        .collect();
    Ok(Page::from_rows(
        rows,
        page,
        |m| m.id,
        |m| ManagerView {
            assigned_businesses: counts.get(&m.id).copied().unwrap_or(0).max(0) as u64,
            activated: m.password_hash.is_some(),
            id: m.id,
            email: m.email,
            full_name: m.full_name,
            created_at: m.created_at,
        },
    ))
}

/// Makes `manager_id` the manager of `b`, replacing any other. 404 when
/// no user has that id; 422 `not_a_manager` when the user is not a
/// manager account.
pub async fn assign(
    db: &DatabaseConnection,
    plans: &PlanCatalogue,
    actor: &Actor,
    b: business::Model,
    manager_id: Uuid,
) -> Result<BusinessView> {
    let manager = user::Entity::find_by_id(manager_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found().with_detail("No user has that manager_id"))?;
    if manager.role != Role::Manager {
        return Err(Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_a_manager",
            "That user is not a manager",
        )
        .with("manager_id", manager_id.to_string()));
    }
    let previous = b.manager_id;
    let txn = crate::db::begin_write(db).await?;
    let mut active = b.into_active_model();
    active.manager_id = Set(Some(manager_id));
    active.updated_at = Set(Utc::now());
    let b = active.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(b.id),
        "manager.assign",
        &format!("user/{manager_id}"),
        Outcome::Success,
        json!({ "previous_manager_id": previous }),
    )
    .await?;
    txn.commit().await?;
    businesses::view(db, plans, b).await
}

/// Removes the manager of `b` (idempotent; recorded only when one was
/// assigned).
pub async fn unassign(db: &DatabaseConnection, actor: &Actor, b: business::Model) -> Result<()> {
    let Some(previous) = b.manager_id else {
        return Ok(());
    };
    let txn = crate::db::begin_write(db).await?;
    let business_id = b.id;
    let mut active = b.into_active_model();
    active.manager_id = Set(None);
    active.updated_at = Set(Utc::now());
    active.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(business_id),
        "manager.unassign",
        &format!("user/{previous}"),
        Outcome::Success,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Creates an admin account (CLI bootstrap). 409 `email_taken` if it exists.
pub async fn create_admin(
    ctx: &Identity<'_>,
    email: &Email,
    full_name: &str,
    password: Password,
) -> Result<Uuid> {
    let full_name = validate::name("full_name", full_name, validate::NAME_MAX)?;
    let hash = ctx.passwords.hash(password.0).await?;
    let now = Utc::now();
    let admin = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(Some(hash)),
        full_name: Set(full_name),
        role: Set(Role::Admin),
        email_verified_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        sessions_valid_after: Set(None),
    }
    .insert(ctx.db)
    .await
    .map_err(users::email_taken)?;
    Ok(admin.id)
}
