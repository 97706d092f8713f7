//! Sign-in with Google (OpenID Connect) and Facebook (OAuth 2.0), and the
//! sign-in methods of an account.
//!
//! `start` keeps state, nonce and PKCE verifier server-side (state hashed,
//! 10 minutes, single use), binds the request to the browser that started it
//! (a random value set as a cookie, whose hash is stored with the state:
//! RFC 9700 §4.7, so a callback link replayed into another browser, the
//! login CSRF and the link CSRF, fails) and sends the browser to the
//! provider. `callback` checks that browser, consumes the state, lets the
//! provider client verify everything, then signs in: a linked identity
//! signs in its user; otherwise an owner account with the same email is
//! linked only when the provider verifies the address (Google does; the
//! Graph API's email is not treated as verified) and never an admin's or a
//! manager's (sign in with the existing method, then link); otherwise a new
//! owner with a business on trial is created. The browser then goes to the
//! front end with a one-time code that `exchange` turns into tokens, so
//! tokens never travel in URLs.
//!
//! Linking (and so the link's `start`) needs a recent authentication; every
//! link is announced by email listing the account's sign-in methods, each
//! provider with a single-use link that removes it ([`remove_by_token`]).

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use entity::enums::{Role, TokenPurpose};
use entity::oauth::{identity, state as oauth_state};
use entity::user;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::tokens::{digest_eq, opaque_token, sha256_hex};
use crate::domain::identity::Identity;
use crate::domain::identity::sessions::{self, TokenPair};
use crate::domain::tenancy::access::Caller;
use crate::domain::{identity::one_time, identity::users, tenancy::businesses, validate};
use crate::error::{Error, Result};
use crate::integrations::{self, Authorization, ExternalIdentity};
use crate::mail::templates;

/// Lifetime of a pending authorization request.
pub const STATE_TTL_SECS: i64 = 600;
/// Lifetime of the one-time exchange code.
pub const EXCHANGE_TTL_SECS: u64 = 120;
/// Lifetime of the removal links in security emails (7 days).
pub const REMOVAL_LINK_TTL_SECS: u64 = 7 * 24 * 3600;

/// An external sign-in provider (a way to authenticate a user; the
/// systems a business connects are [`crate::integrations::System`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignInProvider {
    /// Google, through OpenID Connect.
    Google,
    /// Facebook, through OAuth 2.0 and the Graph API.
    Facebook,
}

impl SignInProvider {
    /// The stored and path form.
    pub fn as_str(self) -> &'static str {
        match self {
            SignInProvider::Google => "google",
            SignInProvider::Facebook => "facebook",
        }
    }

    /// The name people know it by.
    pub fn label(self) -> &'static str {
        match self {
            SignInProvider::Google => "Google",
            SignInProvider::Facebook => "Facebook",
        }
    }
}

fn not_configured(provider: SignInProvider) -> Error {
    Error::new(
        StatusCode::NOT_FOUND,
        "provider_not_configured",
        "This sign-in provider is not configured",
    )
    .with("provider", provider.as_str())
}

/// The provider's configuration, or 404 `provider_not_configured`.
fn configured<T>(config: Option<&T>, provider: SignInProvider) -> Result<&T> {
    config.ok_or_else(|| not_configured(provider))
}

fn oauth_failed(detail: String) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "oauth_failed",
        "Sign-in with the provider failed",
    )
    .with_detail(detail)
}

fn invalid_state() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_state",
        "Unknown, used or expired sign-in request",
    )
    .with_detail("Start the sign-in again.")
}

fn other_browser() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_state",
        "This sign-in was started in another browser",
    )
    .with_detail("Start the sign-in again in this browser.")
}

/// The name of the cookie binding an authorization request to the browser
/// that started it (one per provider).
pub fn browser_cookie(provider: SignInProvider) -> String {
    format!("sb_oauth_{}", provider.as_str())
}

/// An authorization request as `start` made it: where to send the browser,
/// and the value to set in its [`browser_cookie`] (HttpOnly, `SameSite=Lax`,
/// for [`STATE_TTL_SECS`]).
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The cookie's value (random, 256 bits; only its SHA-256 is stored).
    pub browser_secret: String,
}

/// `{public_url}/v1/auth/oauth/{provider}/callback`.
pub fn redirect_uri(ctx: &Identity<'_>, provider: SignInProvider) -> String {
    format!(
        "{}/v1/auth/oauth/{}/callback",
        ctx.config.public_base(),
        provider.as_str()
    )
}

/// Starts a sign-in (or, with `link`, the linking of a provider to the
/// signed-in caller's account, which needs a recent authentication: 401
/// `reauthentication_required`); returns the provider URL to send the
/// browser to and the value of the cookie that binds the request to that
/// browser.
pub async fn start(
    ctx: &Identity<'_>,
    provider: SignInProvider,
    login_hint: Option<&str>,
    link: Option<Caller>,
) -> Result<Started> {
    if let Some(caller) = link {
        caller.require_recent_auth(ctx.config.auth.reauth_window_secs)?;
    }
    let link_user = link.map(|c| c.user_id);
    let redirect = redirect_uri(ctx, provider);
    let auth: Authorization = match provider {
        SignInProvider::Google => {
            let config = configured(ctx.config.google.as_ref(), provider)?;
            integrations::google::authorize(config, ctx.oidc, &redirect, login_hint)
                .await
                .map_err(|e| oauth_failed(e.to_string()))?
        }
        SignInProvider::Facebook => {
            let config = configured(ctx.config.facebook.as_ref(), provider)?;
            integrations::facebook::authorize(config, &redirect)
                .map_err(|e| oauth_failed(e.to_string()))?
        }
    };
    let now = Utc::now();
    let browser_secret = opaque_token();
    oauth_state::ActiveModel {
        id: Set(Uuid::now_v7()),
        provider: Set(provider.as_str().to_owned()),
        state_hash: Set(sha256_hex(&auth.state)),
        pkce_verifier: Set(auth.pkce_verifier),
        nonce: Set(auth.nonce),
        link_user_id: Set(link_user),
        expires_at: Set(now + Duration::seconds(STATE_TTL_SECS)),
        used_at: Set(None),
        created_at: Set(now),
        browser_hash: Set(Some(sha256_hex(&browser_secret))),
    }
    .insert(ctx.db)
    .await?;
    Ok(Started {
        url: auth.url,
        browser_secret,
    })
}

/// Completes a sign-in from the provider's redirect, in the browser that
/// started it (`browser_secret`: its [`browser_cookie`]); returns the
/// one-time exchange code for the front end. 400 `invalid_state` for an
/// unknown, used or expired request, or one started in another browser.
pub async fn callback(
    ctx: &Identity<'_>,
    provider: SignInProvider,
    code: &str,
    state_param: &str,
    browser_secret: Option<&str>,
) -> Result<String> {
    let now = Utc::now();
    let pending = oauth_state::Entity::find()
        .filter(oauth_state::Column::StateHash.eq(sha256_hex(state_param)))
        .filter(oauth_state::Column::Provider.eq(provider.as_str()))
        .one(ctx.db)
        .await?
        .ok_or_else(invalid_state)?;
    if pending.used_at.is_some() || pending.expires_at <= now {
        return Err(invalid_state());
    }
    let same_browser = match (browser_secret, pending.browser_hash.as_deref()) {
        (Some(secret), Some(stored)) => digest_eq(&sha256_hex(secret), stored),
        _ => false,
    };
    if !same_browser {
        return Err(other_browser());
    }
    let consumed = oauth_state::Entity::update_many()
        .col_expr(oauth_state::Column::UsedAt, Expr::value(now))
        .filter(oauth_state::Column::Id.eq(pending.id))
        .filter(oauth_state::Column::UsedAt.is_null())
        .exec(ctx.db)
        .await?;
    if consumed.rows_affected != 1 {
        return Err(invalid_state());
    }
    let redirect = redirect_uri(ctx, provider);
    let external = match provider {
        SignInProvider::Google => {
            let config = configured(ctx.config.google.as_ref(), provider)?;
            let nonce = pending.nonce.as_deref().ok_or_else(invalid_state)?;
            integrations::google::finish(
                config,
                ctx.oidc,
                &redirect,
                code,
                &pending.pkce_verifier,
                nonce,
            )
            .await
            .map_err(|e| oauth_failed(e.to_string()))?
        }
        SignInProvider::Facebook => {
            let config = configured(ctx.config.facebook.as_ref(), provider)?;
            integrations::facebook::finish(config, &redirect, code, &pending.pkce_verifier)
                .await
                .map_err(|e| oauth_failed(e.to_string()))?
        }
    };
    let txn = crate::db::begin_write(ctx.db).await?;
    let user = resolve_user(ctx, &txn, provider, &external, pending.link_user_id).await?;
    let exchange = one_time::create(
        &txn,
        TokenPurpose::OauthExchange,
        Some(user.id),
        &user.email,
        EXCHANGE_TTL_SECS,
    )
    .await?;
    txn.commit().await?;
    Ok(exchange)
}

async fn link<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    provider: SignInProvider,
    external: &ExternalIdentity,
    user: &user::Model,
) -> Result<()> {
    identity::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        provider: Set(provider.as_str().to_owned()),
        subject: Set(external.subject.clone()),
        email: Set(external.email.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await
    .map_err(|e| {
        Error::unique_violation_as(
            e,
            "provider_already_linked",
            "This account already has a sign-in method of this provider; unlink it first",
        )
    })?;
    let methods = method_lines(ctx, db, user.id).await?;
    ctx.mailer
        .enqueue(
            db,
            &user.email,
            templates::sign_in_method_linked(provider.label(), &methods),
        )
        .await?;
    Ok(())
}

/// The account's sign-in methods for a security email: the password (if
/// set) and each linked provider with a fresh single-use link removing it
/// ([`REMOVAL_LINK_TTL_SECS`]), made through `db` (the change's
/// transaction).
pub(crate) async fn method_lines<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    user_id: Uuid,
) -> Result<Vec<templates::MethodLine>> {
    let user = users::account(db, user_id).await?;
    let mut lines = Vec::new();
    if user.password_hash.is_some() {
        lines.push(templates::MethodLine {
            label: "Password".into(),
            detail: None,
            remove_url: None,
        });
    }
    for i in identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id))
        .order_by_asc(identity::Column::Id)
        .all(db)
        .await?
    {
        let token = one_time::create_for_subject(
            db,
            TokenPurpose::RemoveSignInMethod,
            user.id,
            &user.email,
            REMOVAL_LINK_TTL_SECS,
            i.id,
        )
        .await?;
        let label = match i.provider.as_str() {
            "google" => "Google",
            "facebook" => "Facebook",
            other => other,
        };
        lines.push(templates::MethodLine {
            label: label.to_owned(),
            detail: i.email,
            remove_url: Some(format!(
                "{}/remove-sign-in-method?token={token}",
                ctx.config.public_base()
            )),
        });
    }
    Ok(lines)
}

/// Removes the sign-in method named by a removal link's token (from a
/// security email) and signs the account out everywhere, since whoever added
/// the method may hold sessions. 400 `invalid_token` for a bad, used or
/// expired token; 409 `last_sign_in_method` when nothing else would remain
/// (the token stays usable); a method already gone counts as removed.
pub async fn remove_by_token(ctx: &Identity<'_>, token: &str) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    let (row, identity_id) =
        one_time::consume_subject(&txn, TokenPurpose::RemoveSignInMethod, token).await?;
    let user_id = row.user_id.ok_or_else(one_time::invalid_token)?;
    // The account's row lock first, as `unlink` takes it.
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(user_id))
        .exec(&txn)
        .await?;
    let current = methods_of(&txn, user_id).await?;
    let exists = identity::Entity::find_by_id(identity_id)
        .filter(identity::Column::UserId.eq(user_id))
        .one(&txn)
        .await?
        .is_some();
    if exists {
        if current.len() <= 1 {
            txn.rollback().await?;
            return Err(Error::conflict(
                "last_sign_in_method",
                "This is the account's only way to sign in; set a password first (forgot password)",
            ));
        }
        identity::Entity::delete_by_id(identity_id)
            .exec(&txn)
            .await?;
    }
    crate::auth::sessions::end_all(&txn, user_id).await?;
    txn.commit().await?;
    ctx.sessions.forget(user_id);
    Ok(())
}

async fn resolve_user<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    provider: SignInProvider,
    external: &ExternalIdentity,
    link_user: Option<Uuid>,
) -> Result<user::Model> {
    let linked = identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider.as_str()))
        .filter(identity::Column::Subject.eq(external.subject.as_str()))
        .one(db)
        .await?;
    if let Some(linked) = linked {
        if link_user.is_some_and(|u| u != linked.user_id) {
            return Err(Error::conflict(
                "identity_linked_elsewhere",
                "This provider account already signs in another Switchboard account",
            ));
        }
        return user::Entity::find_by_id(linked.user_id)
            .one(db)
            .await?
            .ok_or_else(|| Error::internal("identity of a missing user"));
    }
    if let Some(user_id) = link_user {
        let user = users::account(db, user_id).await?;
        link(ctx, db, provider, external, &user).await?;
        return Ok(user);
    }
    let email = external
        .email
        .as_deref()
        .ok_or_else(|| oauth_failed("The provider did not share an email address".into()))?;
    let email = validate::Email::parse("email", email)?;
    let existing = user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?;
    match existing {
        Some(user) if external.email_verified && user.role == Role::Owner => {
            link(ctx, db, provider, external, &user).await?;
            Ok(user)
        }
        Some(user) if user.role != Role::Owner => Err(Error::conflict(
            "link_required",
            "An account uses this email; sign in with its existing method, then link the provider from the account",
        )),
        Some(_) => Err(Error::conflict(
            "email_unverified",
            "An account uses this email, but the provider has not verified it; sign in with the existing method, then link the provider from the account",
        )),
        None => create_owner(ctx, db, provider, external, &email).await,
    }
}

async fn create_owner<C: ConnectionTrait>(
    ctx: &Identity<'_>,
    db: &C,
    provider: SignInProvider,
    external: &ExternalIdentity,
    email: &validate::Email,
) -> Result<user::Model> {
    let now = Utc::now();
    let name = external
        .name
        .as_deref()
        .and_then(|n| validate::name("full_name", n, validate::NAME_MAX).ok())
        .unwrap_or_else(|| {
            email
                .as_str()
                .split('@')
                .next()
                .unwrap_or("Owner")
                .to_owned()
        });
    let user = user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(None),
        full_name: Set(name.clone()),
        role: Set(Role::Owner),
        // Only a provider that verifies addresses verifies this one.
        email_verified_at: Set(external.email_verified.then_some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        sessions_valid_after: Set(None),
    }
    .insert(db)
    .await
    .map_err(users::email_taken)?;
    let business_name: String = format!("{name}'s business")
        .chars()
        .take(validate::NAME_MAX)
        .collect();
    businesses::new_on_trial(ctx.config, user.id, business_name, now)
        .insert(db)
        .await?;
    identity::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user.id),
        provider: Set(provider.as_str().to_owned()),
        subject: Set(external.subject.clone()),
        email: Set(external.email.clone()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(user)
}

/// Turns a one-time exchange code into tokens (single use, 2 minutes).
pub async fn exchange(ctx: &Identity<'_>, code: &str) -> Result<TokenPair> {
    let txn = crate::db::begin_write(ctx.db).await?;
    let user = one_time::consume_for_user(&txn, TokenPurpose::OauthExchange, code).await?;
    let pair = sessions::issue(ctx, &txn, &user).await?;
    txn.commit().await?;
    Ok(pair)
}

/// One way to sign in to an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignInMethod {
    /// `password`, `google` or `facebook`.
    pub method: String,
    /// The provider account's email, for providers.
    pub email: Option<String>,
    /// When it was linked (account creation for the password).
    pub linked_at: chrono::DateTime<Utc>,
}

/// The caller's sign-in methods.
pub async fn methods(ctx: &Identity<'_>, caller: Caller) -> Result<Vec<SignInMethod>> {
    methods_of(ctx.db, caller.user_id).await
}

async fn methods_of<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<Vec<SignInMethod>> {
    let user = users::account(db, user_id).await?;
    let mut methods = Vec::new();
    if user.password_hash.is_some() {
        methods.push(SignInMethod {
            method: "password".into(),
            email: Some(user.email.clone()),
            linked_at: user.created_at,
        });
    }
    for i in identity::Entity::find()
        .filter(identity::Column::UserId.eq(user.id))
        .order_by_asc(identity::Column::Id)
        .all(db)
        .await?
    {
        methods.push(SignInMethod {
            method: i.provider,
            email: i.email,
            linked_at: i.created_at,
        });
    }
    Ok(methods)
}

/// Unlinks a provider. 409 `last_sign_in_method` when nothing else would
/// remain; 404 when it is not linked.
pub async fn unlink(ctx: &Identity<'_>, caller: Caller, provider: SignInProvider) -> Result<()> {
    let txn = crate::db::begin_write(ctx.db).await?;
    // Take the account's row lock first (PostgreSQL; SQLite's BEGIN
    // IMMEDIATE already serialises writers), so concurrent unlinks decide on
    // what the other left: the last method can never go.
    user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(caller.user_id))
        .exec(&txn)
        .await?;
    let current = methods_of(&txn, caller.user_id).await?;
    if !current.iter().any(|m| m.method == provider.as_str()) {
        return Err(Error::not_found());
    }
    if current.len() <= 1 {
        return Err(Error::conflict(
            "last_sign_in_method",
            "This is the account's only way to sign in; add another first",
        ));
    }
    identity::Entity::delete_many()
        .filter(identity::Column::UserId.eq(caller.user_id))
        .filter(identity::Column::Provider.eq(provider.as_str()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(())
}
