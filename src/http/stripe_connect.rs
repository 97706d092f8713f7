//! `/v1/connect/*`: the business's Stripe Connect Express account, so its
//! own customers pay it through the platform (owner only; managers see
//! its state through `GET /v1/manager/businesses/{id}`); the Connect
//! webhook endpoint, `POST /v1/webhooks/stripe/connect`; and the browser
//! route Stripe's onboarding falls back to when its link expired,
//! `GET /connect/stripe/refresh/{token}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::billing::WebhookReceipt;
use super::extract::{Auth, Json, OptionalJson};
use crate::authz::{Action, Object};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::billing::connect::{self, ConnectedAccountView};
use crate::domain::tenancy::access;
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/connect/account` (optional).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnectedAccount {
    /// The business's country (ISO 3166-1 alpha-2, e.g. `US`); default
    /// the deployment's `stripe.connect_country`.
    #[schema(pattern = "^[A-Z]{2}$")]
    pub country: Option<String>,
}

/// A single-use Stripe link.
#[derive(Serialize, ToSchema)]
pub struct StripeLink {
    /// Send the person here.
    pub url: String,
    /// When it stops working (RFC 3339), for onboarding links (minutes).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<String>,
}

impl From<crate::integrations::stripe::connect::Link> for StripeLink {
    fn from(l: crate::integrations::stripe::connect::Link) -> StripeLink {
        StripeLink {
            url: l.url,
            expires_at: l.expires_at.and_then(|t| {
                chrono::DateTime::from_timestamp(t, 0)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }),
        }
    }
}

/// What removing the account did at Stripe.
#[derive(Serialize, ToSchema)]
pub struct RemovedAccount {
    /// The account that was connected.
    pub stripe_account_id: String,
    /// `deleted` (Stripe deleted it) or `rejected` (Stripe keeps it, with
    /// a balance, but it no longer works for the platform).
    pub outcome: String,
}

/// Create the business's Stripe Connect Express account, or return the one
/// it has (200). Retried and concurrent calls make one account (Stripe's
/// `Idempotency-Key`). Next: `POST /v1/connect/onboarding-link`.
#[utoipa::path(post, path = "/v1/connect/account", tag = "connect", security(("bearer" = [])),
    request_body(content = Option<NewConnectedAccount>, content_type = "application/json"),
    responses(
        (status = 200, description = "The account the business already has", body = ConnectedAccountView),
        (status = 201, description = "Created", body = ConnectedAccountView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`country`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_account(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
    OptionalJson(body): OptionalJson<NewConnectedAccount>,
) -> Result<(StatusCode, Json<ConnectedAccountView>)> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    let country = body.and_then(|b| b.country);
    let (view, created) =
        connect::create_account(&state.billing(), &actor, &scope, country.as_deref()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

/// The business's connected account and where it stands, from Stripe's
/// own fields: `onboarding_required`, `pending_verification`, `restricted`
/// (with `disabled_reason`, `currently_due`, `past_due`), `enabled`,
/// `rejected`. Kept current by Stripe's `account.updated` events.
#[utoipa::path(get, path = "/v1/connect/account", tag = "connect", security(("bearer" = [])),
    responses(
        (status = 200, body = ConnectedAccountView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`no_connected_account`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_account(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<ConnectedAccountView>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Read)?;
    Ok(Json(connect::get(&state.billing(), &scope).await?))
}

/// Disconnect the business's account: Stripe deletes it (Express accounts
/// with a zero balance) or, where Stripe refuses, rejects it; Switchboard
/// forgets it. Refused with 409 `purchases_open` while customers hold
/// payment links to it. The owner only.
#[utoipa::path(delete, path = "/v1/connect/account", tag = "connect", security(("bearer" = [])),
    responses(
        (status = 200, body = RemovedAccount),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`no_connected_account`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`purchases_open`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_account(
    State(state): State<AppState>,
    Auth(caller): Auth,
    meta: RequestMeta,
) -> Result<Json<RemovedAccount>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    let actor = Actor::acting(caller.into(), &scope, meta);
    let (stripe_account_id, deleted) = connect::remove(&state.billing(), &actor, &scope).await?;
    Ok(Json(RemovedAccount {
        stripe_account_id,
        outcome: if deleted { "deleted" } else { "rejected" }.into(),
    }))
}

/// A Stripe-hosted onboarding link (an Account Link, valid for minutes).
/// When it expires Stripe sends the person to a Switchboard link that
/// makes a fresh one (valid 7 days; each call here replaces it).
#[utoipa::path(post, path = "/v1/connect/onboarding-link", tag = "connect", security(("bearer" = [])),
    responses(
        (status = 200, body = StripeLink),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`no_connected_account`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn onboarding_link(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<StripeLink>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        connect::onboarding_link(&state.billing(), &scope)
            .await?
            .into(),
    ))
}

/// A login link to the account's Express dashboard (payouts, balances).
/// 409 `onboarding_incomplete` until the onboarding form is submitted.
#[utoipa::path(post, path = "/v1/connect/login-link", tag = "connect", security(("bearer" = [])),
    responses(
        (status = 200, body = StripeLink),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`no_connected_account`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`onboarding_incomplete`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_link(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<StripeLink>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        connect::login_link(&state.billing(), &scope).await?.into(),
    ))
}

/// Stripe Connect event delivery (the Connect endpoint: events of
/// connected accounts, with `account`). Verified by `Stripe-Signature`
/// with the Connect endpoint's secret before anything is parsed; processed
/// exactly once in any order.
#[utoipa::path(post, path = "/v1/webhooks/stripe/connect", tag = "connect",
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…` (Stripe docs: webhooks/signatures)")),
    request_body(content = Object, description = "A Stripe event of a connected account", content_type = "application/json"),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 400, description = "`signature_missing`, `signature_malformed`, `signature_mismatch`, `signature_expired` or `invalid_event`", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`webhook_processing_failed`: recorded; Stripe retries", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`webhooks_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn connect_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReceipt>> {
    let signature = super::billing::stripe_signature(&headers);
    let outcome = crate::inbound::stripe::connect::receive(&state, signature, &body).await?;
    Ok(Json(outcome.into()))
}

/// The browser routes (outside the API document).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/connect/stripe/refresh/{token}",
        axum::routing::get(refresh),
    )
}

/// Where Stripe sends the person whose onboarding link expired: a fresh
/// link, by a 303 redirect; a token that opens nothing is 404.
async fn refresh(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Result<Response> {
    match connect::refresh_link(&state.billing(), &token).await? {
        Some(link) => Ok((
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, link.url),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response()),
        None => Err(crate::error::Error::not_found()),
    }
}
