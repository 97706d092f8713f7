//! Who is calling and on which business they may act. Every tenant-scoped
//! handler starts here: a [`BusinessScope`] comes back only if the casbin
//! policy allows one of the caller's roles in that business (or, for a
//! program with an API key, one of its key's scopes in the key's business),
//! and a business the caller has no role in answers 404, exactly like one
//! that does not exist (SPEC §5).
//!
//! Every finder of a tenant-owned table takes a `&BusinessScope`, and a
//! scope is minted only here (or by [`BusinessScope::platform`] for the
//! platform's own work: jobs and verified webhooks), so an unscoped lookup
//! of a company, channel or secret cannot be written, and a business id and
//! a resource id cannot be swapped.

use entity::business;
use entity::enums::Role;
use sea_orm::{DatabaseConnection, EntityTrait};
use uuid::Uuid;

use crate::authz::{Action, Authz, Domain, Object, Scopes, roles_in_business};
use crate::error::{Error, Result};

/// The authenticated caller, from a verified access token whose session is
/// alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// User id.
    pub user_id: Uuid,
    /// Platform role, as the database holds it now.
    pub role: Role,
    /// The business the caller owns (from the access token), if any.
    pub owned_business: Option<Uuid>,
    /// When the caller last proved who they are (Unix seconds; 0: unknown).
    pub auth_time: i64,
}

impl Caller {
    /// Ok when the caller authenticated within `window_secs` (password,
    /// provider or emailed link, or `POST /v1/auth/reauthenticate`); else 401
    /// `reauthentication_required` with `max_age`, and a `WWW-Authenticate`
    /// challenge per RFC 9470 (OAuth 2.0 Step Up Authentication).
    pub fn require_recent_auth(&self, window_secs: u64) -> Result<()> {
        let age = chrono::Utc::now().timestamp() - self.auth_time;
        if (0..=i64::try_from(window_secs).unwrap_or(i64::MAX)).contains(&age) {
            return Ok(());
        }
        Err(Error::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "reauthentication_required",
            "Sign in again to make this change",
        )
        .with_detail(format!(
            "This change needs a sign-in within the last {window_secs} s: POST /v1/auth/reauthenticate with your password, or sign in again with a linked provider."
        ))
        .with("max_age", window_secs)
        .with_header(
            axum::http::header::WWW_AUTHENTICATE,
            format!("Bearer error=\"insufficient_user_authentication\", error_description=\"A more recent authentication is required\", max_age={window_secs}"),
        ))
    }
}

/// A program calling with an API key: the key, its business and scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCaller {
    /// The key's id.
    pub key_id: Uuid,
    /// The business the key belongs to (the only one it can reach).
    pub business_id: Uuid,
    /// What it may do there.
    pub scopes: Scopes,
}

/// Whoever is calling: a signed-in person or a program with an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// A person, through an access token.
    User(Caller),
    /// A program, through an API key.
    Key(KeyCaller),
}

impl From<Caller> for Principal {
    fn from(caller: Caller) -> Principal {
        Principal::User(caller)
    }
}

impl From<KeyCaller> for Principal {
    fn from(key: KeyCaller) -> Principal {
        Principal::Key(key)
    }
}

impl Principal {
    /// A stable name of the principal for per-principal records (limits,
    /// idempotency keys): `user:{id}` or `api_key:{id}`.
    pub fn key(&self) -> String {
        match self {
            Principal::User(c) => format!("user:{}", c.user_id),
            Principal::Key(k) => format!("api_key:{}", k.key_id),
        }
    }
}

/// What granted a [`BusinessScope`]: a role the caller holds there, or the
/// calling API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// A role (`owner`, `manager`, `admin`; the platform's own work acts as
    /// `admin`).
    Role(Role),
    /// One of the key's scopes.
    ApiKey,
}

/// Proof that the caller may act in one business: minted by the access
/// checks below after the casbin decision, and taken by every finder of a
/// tenant-owned table. Carries what granted the action (for the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessScope {
    business_id: Uuid,
    grant: Grant,
}

impl BusinessScope {
    /// The business this scope is for.
    pub fn id(&self) -> Uuid {
        self.business_id
    }

    /// What granted the action.
    pub fn grant(&self) -> Grant {
        self.grant
    }

    /// A scope for work the platform does on its own behalf on business
    /// `business_id`: background jobs and verified inbound webhooks, never a
    /// request's caller (those go through the checks below).
    pub(crate) fn platform(business_id: Uuid) -> BusinessScope {
        BusinessScope {
            business_id,
            grant: Grant::Role(Role::Admin),
        }
    }
}

fn insufficient_scope(object: Object, action: Action) -> Error {
    Error::forbidden()
        .with_detail("The API key's scopes do not allow this; a key never manages keys, billing, accounts or deletion.")
        .with("object", format!("{object:?}").to_lowercase())
        .with("action", format!("{action:?}").to_lowercase())
}

/// The scope of the key's business if one of its scopes lets it do
/// `action` on `object` there; else 403.
fn key_scope(
    authz: &Authz,
    key: KeyCaller,
    object: Object,
    action: Action,
) -> Result<BusinessScope> {
    for scope in key.scopes.iter() {
        if authz.enforce(scope, Domain::Business(key.business_id), object, action)? {
            return Ok(BusinessScope {
                business_id: key.business_id,
                grant: Grant::ApiKey,
            });
        }
    }
    Err(insufficient_scope(object, action))
}

fn no_business() -> Error {
    Error::new(
        axum::http::StatusCode::FORBIDDEN,
        "no_business",
        "This account owns no business",
    )
    .with_detail("Use the admin or manager endpoints, under /v1/admin or /v1/manager.")
}

/// The scope of the caller's own business (the one a user owns, or an API
/// key's), if the policy lets its owner (or one of the key's scopes) do
/// `action` on `object`: no database round trip, since ownership is fixed at
/// registration and carried by the signed access token (a key's business by
/// the key). 403 `no_business` for accounts that own none (admins,
/// managers); 403 `forbidden` for a key without the scope.
pub fn own_scope(
    authz: &Authz,
    principal: impl Into<Principal>,
    object: Object,
    action: Action,
) -> Result<BusinessScope> {
    let caller = match principal.into() {
        Principal::Key(key) => return key_scope(authz, key, object, action),
        Principal::User(caller) => caller,
    };
    let business_id = caller.owned_business.ok_or_else(no_business)?;
    if authz.enforce(Role::Owner, Domain::Business(business_id), object, action)? {
        Ok(BusinessScope {
            business_id,
            grant: Grant::Role(Role::Owner),
        })
    } else {
        Err(Error::forbidden())
    }
}

/// The caller's own business (as [`own_scope`]) and its scope.
pub async fn own_business(
    db: &DatabaseConnection,
    authz: &Authz,
    principal: impl Into<Principal>,
    object: Object,
    action: Action,
) -> Result<(business::Model, BusinessScope)> {
    let principal = principal.into();
    let scope = own_scope(authz, principal, object, action)?;
    let business = business::Entity::find_by_id(scope.id())
        .one(db)
        .await?
        .ok_or_else(no_business)?;
    Ok((business, scope))
}

/// Business `business_id` and its scope, if the caller holds a role in it
/// that may do `action` on `object` (the scope names that role, for the
/// audit log), or is a key of that business with a scope that may. 404 when
/// it does not exist or the caller has no role there (another business's
/// key included); 403 when they have a role the policy does not allow.
pub async fn business(
    db: &DatabaseConnection,
    authz: &Authz,
    principal: impl Into<Principal>,
    business_id: Uuid,
    object: Object,
    action: Action,
) -> Result<(business::Model, BusinessScope)> {
    let principal = principal.into();
    if let Principal::Key(key) = principal
        && key.business_id != business_id
    {
        return Err(Error::not_found());
    }
    let business = business::Entity::find_by_id(business_id)
        .one(db)
        .await?
        .ok_or_else(Error::not_found)?;
    match principal {
        Principal::Key(key) => Ok((business, key_scope(authz, key, object, action)?)),
        Principal::User(caller) => authorize(authz, caller, business, object, action),
    }
}

fn authorize(
    authz: &Authz,
    caller: Caller,
    business: business::Model,
    object: Object,
    action: Action,
) -> Result<(business::Model, BusinessScope)> {
    let role = granting_role(authz, caller, &business, object, action)?;
    let scope = BusinessScope {
        business_id: business.id,
        grant: Grant::Role(role),
    };
    Ok((business, scope))
}

fn granting_role(
    authz: &Authz,
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
        if authz.enforce(role, Domain::Business(business.id), object, action)? {
            return Ok(role);
        }
    }
    Err(Error::forbidden())
}

/// Platform-wide permission of the caller's role, else 403. (API keys reach
/// no platform route: those take a [`Caller`].)
pub fn platform(authz: &Authz, caller: Caller, object: Object, action: Action) -> Result<()> {
    if authz.enforce(caller.role, Domain::Platform, object, action)? {
        Ok(())
    } else {
        Err(Error::forbidden())
    }
}
