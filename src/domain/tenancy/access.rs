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
    /// The business the caller owns (from the access token), if any.
    pub owned_business: Option<Uuid>,
}

fn no_business() -> Error {
    Error::new(
        axum::http::StatusCode::FORBIDDEN,
        "no_business",
        "This account owns no business",
    )
    .with_detail("Use the admin or manager endpoints, under /v1/admin or /v1/manager.")
}

/// Id of the business the caller owns, if the policy lets an owner do
/// `action` on `object`: no database round trip, since ownership is fixed at
/// registration and carried by the signed access token. Lookups that follow
/// must be scoped by this id (they are: every finder takes it).
/// 403 `no_business` for accounts that own none (admins, managers).
pub fn own_business_id(
    state: &AppState,
    caller: Caller,
    object: Object,
    action: Action,
) -> Result<Uuid> {
    let business_id = caller.owned_business.ok_or_else(no_business)?;
    if state
        .authz
        .enforce(Role::Owner, Domain::Business(business_id), object, action)?
    {
        Ok(business_id)
    } else {
        Err(Error::forbidden())
    }
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
        .ok_or_else(no_business)?;
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
    Ok(scoped(state, caller, business_id, object, action).await?.0)
}

/// Like [`business`], also returning the role that granted the action (for
/// the audit log).
pub async fn scoped(
    state: &AppState,
    caller: Caller,
    business_id: Uuid,
    object: Object,
    action: Action,
) -> Result<(business::Model, Role)> {
    let business = business::Entity::find_by_id(business_id)
        .one(&state.db)
        .await?
        .ok_or_else(Error::not_found)?;
    let role = granting_role(state, caller, &business, object, action)?;
    Ok((business, role))
}

fn authorize(
    state: &AppState,
    caller: Caller,
    business: business::Model,
    object: Object,
    action: Action,
) -> Result<business::Model> {
    granting_role(state, caller, &business, object, action)?;
    Ok(business)
}

fn granting_role(
    state: &AppState,
    caller: Caller,
    business: &business::Model,
    object: Object,
    action: Action,
) -> Result<Role> {
    let roles = roles_in_business(caller.user_id, caller.role, business);
    if roles.is_empty() {
        return Err(Error::not_found());
    }
    for role in roles {
        if state
            .authz
            .enforce(role, Domain::Business(business.id), object, action)?
        {
            return Ok(role);
        }
    }
    Err(Error::forbidden())
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
