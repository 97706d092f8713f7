//! The signed-in user's own account (`/v1/me`).

use chrono::{DateTime, Utc};
use entity::enums::Role;
use entity::{business, user};
use sea_orm::DatabaseConnection;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::tenancy::access::Caller;
use crate::domain::validate;
use crate::error::{Error, Result};

/// A user as they see themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeView {
    /// User id.
    pub id: Uuid,
    /// Email, lower-cased.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Platform role.
    pub role: Role,
    /// When the email was verified.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub email_verified_at: Option<DateTime<Utc>>,
    /// The business this user owns, if any.
    pub business_id: Option<Uuid>,
    /// Account creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

/// The account `user_id`. An access token can outlive its account: then
/// 401 `invalid_token`.
pub async fn account<C: sea_orm::ConnectionTrait>(
    db: &C,
    user_id: uuid::Uuid,
) -> Result<user::Model> {
    user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::unauthorized("invalid_token", "The account no longer exists"))
}

async fn view(db: &DatabaseConnection, user: user::Model) -> Result<MeView> {
    let business_id = business::Entity::find()
        .filter(business::Column::OwnerId.eq(user.id))
        .one(db)
        .await?
        .map(|b| b.id);
    Ok(MeView {
        id: user.id,
        email: user.email,
        full_name: user.full_name,
        role: user.role,
        email_verified_at: user.email_verified_at,
        business_id,
        created_at: user.created_at,
    })
}

/// The caller's account.
pub async fn me(db: &DatabaseConnection, caller: Caller) -> Result<MeView> {
    let user = account(db, caller.user_id).await?;
    view(db, user).await
}

/// Changes the caller's full name.
pub async fn update_me(
    db: &DatabaseConnection,
    caller: Caller,
    full_name: Option<&str>,
) -> Result<MeView> {
    let user = account(db, caller.user_id).await?;
    let mut active = user.into_active_model();
    if let Some(name) = validate::optional_name("full_name", full_name, validate::NAME_MAX)? {
        active.full_name = Set(name);
    }
    active.updated_at = Set(Utc::now());
    let user = active.update(db).await?;
    view(db, user).await
}

/// Maps an insert of a user row: a unique violation on `email` becomes 409
/// `email_taken`; anything else stays as it is.
pub fn email_taken(err: sea_orm::DbErr) -> Error {
    Error::unique_violation_as(err, "email_taken", "An account with this email exists")
}
