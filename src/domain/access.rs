//! Who is calling and on which business they may act. Every tenant-scoped
//! handler starts here: the business comes back only if the casbin policy
//! allows the caller's roles in it, and a business the caller has no role in
//! answers 404, exactly like one that does not exist (SPEC §5).

use entity::business;
use entity::enums::Role;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::authz::{Action, Domain, Object, roles_in_business};
use crate::error::{Error, Result};
use crate::state::AppState;

/// The authenticated caller, from a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub user_id: Uuid,
    /// Platform role.
    pub role: Role,
}

/// The business the caller owns, if the policy lets its owner do `action` on
/// `object`. 403 `no_business` for accounts that own none (admins, managers).
pub async fn own_business(
    state: &AppState,
    caller: Caller,
    object: Object,
    action: Action,
) -> Result<business::Model> {
    let business = business::Entity::find()
        .filter(business::Column::OwnerId.eq(caller.user_id))
        .one(&state.db)
        .await?
        .ok_or_else(|| {
            Error::new(
                axum::http::StatusCode::FORBIDDEN,
                "no_business",
                "This account owns no business",
            )
            .with_detail("Use the admin or manager endpoints, under /v1/admin or /v1/manager.")
        })?;
    authorize(state, caller, business, object, action)
}

/// Business `business_id`, if the caller holds a role in it that may do
/// `action` on `object`. 404 when it does not exist or the caller has no
/// role there; 403 when they have a role the policy does not allow.
pub async fn business(
    state: &AppState,
    caller: Caller,
    business_id: Uuid,
    object: Object,
    action: Action,
) -> Result<business::Model> {
    let business = business::Entity::find_by_id(business_id)
        .one(&state.db)
        .await?
        .ok_or_else(Error::not_found)?;
    authorize(state, caller, business, object, action)
}

fn authorize(
    state: &AppState,
    caller: Caller,
    business: business::Model,
    object: Object,
    action: Action,
) -> Result<business::Model> {
    let roles = roles_in_business(caller.user_id, caller.role, &business);
    if roles.is_empty() {
        return Err(Error::not_found());
    }
    if state
        .authz
        .enforce_any(&roles, Domain::Business(business.id), object, action)?
    {
        Ok(business)
    } else {
        Err(Error::forbidden())
    }
}

/// Platform-wide permission of the caller's role, else 403.
pub fn platform(state: &AppState, caller: Caller, object: Object, action: Action) -> Result<()> {
    if state
        .authz
        .enforce(caller.role, Domain::Platform, object, action)?
    {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}
