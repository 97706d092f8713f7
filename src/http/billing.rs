//! `/v1/billing/*`: the owner's subscription (plans, Checkout, portal, plan
//! changes, cancel/resume, summary, invoices), and `POST /v1/webhooks/stripe`,
//! where Stripe delivers events (authenticated by signature, not by token).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Auth, Json, Query};
use crate::authz::{Action, Object};
use crate::domain::billing::customer::{self, BillingSummary, HostedSession, InvoicePage};
use crate::domain::billing::plans::PlanView;
use crate::domain::pagination::page_limit;
use crate::domain::tenancy::access;
use crate::error::{Problem, Result};
use crate::inbound::stripe as webhook;
use crate::state::AppState;

/// Body naming a plan of the catalogue.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanChoice {
    #[schema(pattern = r"^[a-z][a-z0-9_]{0,31}$")]
    /// Plan id, e.g. `growth` (see `GET /v1/billing/plans`).
    pub plan: String,
}

/// Query of `GET /v1/billing/invoices`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvoiceQuery {
    /// Invoices per page, 1..=100 (default 10).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page (an invoice id).
    #[param(pattern = r"^in_[A-Za-z0-9_]{1,252}$")]
    pub starting_after: Option<String>,
}

/// Answer to a delivery from another system (Stripe, WAHA).
#[derive(Serialize, ToSchema)]
pub struct WebhookReceipt {
    /// `processed`, `duplicate` or `ignored`.
    pub outcome: String,
}

impl From<crate::inbound::Outcome> for WebhookReceipt {
    fn from(o: crate::inbound::Outcome) -> WebhookReceipt {
        WebhookReceipt {
            outcome: o.as_str().to_owned(),
        }
    }
}

/// The `Stripe-Signature` header of a delivery, if readable.
pub(super) fn stripe_signature(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
}

/// The plan catalogue (public).
#[utoipa::path(get, path = "/v1/billing/plans", tag = "billing",
    responses((status = 200, body = Vec<PlanView>)))]
pub async fn list_plans(State(state): State<AppState>) -> Json<Vec<PlanView>> {
    Json(state.plans.list())
}

/// Start a subscription: a Stripe Checkout Session (mode `subscription`) for
/// `plan`; send the browser to `url`. During the trial, Stripe's trial ends
/// when ours does.
#[utoipa::path(post, path = "/v1/billing/checkout-session", tag = "billing", security(("bearer" = [])), request_body = PlanChoice,
    responses(
        (status = 200, body = HostedSession),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`subscription_exists`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`plan_not_purchasable` or unknown plan", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn checkout_session(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<PlanChoice>,
) -> Result<Json<HostedSession>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        customer::checkout_session(&state.billing(), &scope, &body.plan).await?,
    ))
}

/// A Stripe customer-portal session (payment methods, invoices, plan).
#[utoipa::path(post, path = "/v1/billing/portal-session", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = HostedSession),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn portal_session(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<HostedSession>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        customer::portal_session(&state.billing(), &scope).await?,
    ))
}

/// Change plan. An upgrade applies at once and Stripe prorates; a downgrade
/// below the channels in use is refused with 409 `downgrade_below_usage`
/// listing the channels to remove first.
#[utoipa::path(post, path = "/v1/billing/change-plan", tag = "billing", security(("bearer" = [])), request_body = PlanChoice,
    responses(
        (status = 200, body = BillingSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`downgrade_below_usage` (with `channels`, `remove_at_least`) or `no_subscription`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_plan(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<PlanChoice>,
) -> Result<Json<BillingSummary>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        customer::change_plan(&state.billing(), &scope, &body.plan).await?,
    ))
}

/// Cancel at the end of the paid period (access continues until then).
#[utoipa::path(post, path = "/v1/billing/cancel", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = BillingSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_subscription`", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<BillingSummary>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        customer::set_cancel(&state.billing(), &scope, true).await?,
    ))
}

/// Take back a cancellation at period end.
#[utoipa::path(post, path = "/v1/billing/resume", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = BillingSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`no_subscription`", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<BillingSummary>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Update)?;
    Ok(Json(
        customer::set_cancel(&state.billing(), &scope, false).await?,
    ))
}

/// Plan, Stripe status, current period end, cancel at period end, grace and
/// channel usage.
#[utoipa::path(get, path = "/v1/billing/subscription", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, body = BillingSummary),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn subscription(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<BillingSummary>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Read)?;
    Ok(Json(customer::summary(&state.billing(), &scope).await?))
}

/// The business's invoices from Stripe, newest first.
#[utoipa::path(get, path = "/v1/billing/invoices", tag = "billing", security(("bearer" = [])), params(InvoiceQuery),
    responses(
        (status = 200, body = InvoicePage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: a bad `limit`, or a `starting_after` that is not an invoice of this business", body = Problem, content_type = "application/problem+json"),
        (status = 502, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invoices(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Query(q): Query<InvoiceQuery>,
) -> Result<Json<InvoicePage>> {
    let scope = access::own_scope(&state.authz, caller, Object::Billing, Action::Read)?;
    let limit = page_limit(q.limit, 10)?;
    Ok(Json(
        customer::invoices(&state.billing(), &scope, limit, q.starting_after.as_deref()).await?,
    ))
}

/// Stripe event delivery. Verified by `Stripe-Signature` over the raw body
/// before anything is parsed; processed exactly once in any order.
#[utoipa::path(post, path = "/v1/webhooks/stripe", tag = "billing",
    params(("Stripe-Signature" = String, Header, description = "`t=…,v1=…` (Stripe docs: webhooks/signatures)")),
    request_body(content = Object, description = "A Stripe event", content_type = "application/json"),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 400, description = "`signature_missing`, `signature_malformed`, `signature_mismatch`, `signature_expired` or `invalid_event`", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`webhook_processing_failed`: recorded; Stripe retries", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`webhooks_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stripe_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReceipt>> {
    let outcome = webhook::receive(&state, stripe_signature(&headers), &body).await?;
    Ok(Json(outcome.into()))
}
