//! `/v1/purchases`: the business asks its end customers for payments (a
//! Stripe Checkout link, paid to its connected account) and reads the
//! purchase log. API keys: `purchases:write` to create (how an n8n
//! workflow asks for a payment link in a conversation), `purchases:read`
//! to read.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{AnyAuth, Json, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::billing::purchases::{
    self, LeadSource, NewPurchase, PurchaseFilter, PurchaseStatus, PurchaseView,
};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access;
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/purchases`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePurchase {
    /// Company of the business the purchase is for.
    pub company_id: Uuid,
    /// Channel of that company the customer talks on.
    pub channel_id: Option<Uuid>,
    /// The business's own reference of the end customer (a phone number,
    /// a chat id, an order number; at most 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub customer_ref: String,
    /// What is bought, as the customer sees it on the payment page (at
    /// most 200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub description: String,
    /// Whole minor units of `currency` (cents for USD, yen for JPY), from 1
    /// to `billing.purchase_max_amount` (100000000 unless configured);
    /// never a decimal.
    #[schema(minimum = 1, maximum = 100000000)]
    #[serde(deserialize_with = "super::extract::whole_i64")]
    pub amount: i64,
    /// ISO 4217 code, e.g. `usd`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
    /// Where the customer came from.
    pub lead_source: LeadSource,
}

/// Query of `GET /v1/purchases`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListPurchases {
    /// Only this status.
    pub status: Option<PurchaseStatus>,
    /// Only this company's.
    pub company_id: Option<Uuid>,
    /// Only this channel's.
    pub channel_id: Option<Uuid>,
    /// Only this lead source.
    pub lead_source: Option<LeadSource>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

/// Ask an end customer for a payment: a Stripe Checkout link whose charge
/// goes to the business's connected account (the platform's commission
/// from configuration), answered with `payment_url` and status
/// `payment_link_sent`. Stripe's events then move it to `paid`, `expired`
/// or `refunded`. Accepts `Idempotency-Key`.
///
/// API keys: `purchases:write`.
#[utoipa::path(post, path = "/v1/purchases", tag = "purchases", security(("bearer" = [])), request_body = CreatePurchase,
    responses(
        (status = 201, body = PurchaseView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The company or channel is not the business's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`connect_not_enabled`: the connected account cannot take payments yet", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (`amount`, `currency`, `customer_ref`, `description`, `channel_id`) or `invalid_body`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`stripe_error` or `stripe_unavailable` (the purchase stays `no_payment_link`; `purchase_id` names it)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`billing_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_purchase(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Json(body): Json<CreatePurchase>,
) -> Result<(StatusCode, Json<PurchaseView>)> {
    let scope = access::own_scope(&state.authz, principal, Object::Purchase, Action::Create)?;
    let view = purchases::create(
        &state.billing(),
        &scope,
        NewPurchase {
            company_id: body.company_id,
            channel_id: body.channel_id,
            customer_ref: body.customer_ref,
            description: body.description,
            amount: body.amount,
            currency: body.currency,
            lead_source: body.lead_source,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// The purchase log, oldest first, filtered by status, company, channel,
/// lead source and creation time.
///
/// API keys: `purchases:read`.
#[utoipa::path(get, path = "/v1/purchases", tag = "purchases", security(("bearer" = [])), params(ListPurchases),
    responses(
        (status = 200, body = Page<PurchaseView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_purchases(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<ListPurchases>,
) -> Result<Json<Page<PurchaseView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = access::own_scope(&state.authz, principal, Object::Purchase, Action::List)?;
    let filter = PurchaseFilter {
        status: q.status,
        company_id: q.company_id,
        channel_id: q.channel_id,
        lead_source: q.lead_source,
        created_from: q.created_from,
        created_to: q.created_to,
    };
    Ok(Json(
        purchases::list(&state.billing(), &scope, &filter, page).await?,
    ))
}

/// Query of `GET /v1/purchases/export.csv`: the list's filters.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportPurchases {
    /// Only this status.
    pub status: Option<PurchaseStatus>,
    /// Only this company's.
    pub company_id: Option<Uuid>,
    /// Only this channel's.
    pub channel_id: Option<Uuid>,
    /// Only this lead source.
    pub lead_source: Option<LeadSource>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
}

/// Rows read per database round trip while exporting.
const EXPORT_BATCH: u64 = 500;

/// The business's purchases as CSV (RFC 4180, a header row, oldest first),
/// streamed as they are read: amounts in integer minor units, times RFC
/// 3339; a value a spreadsheet would run as a formula (`=`, `+`, `-`, `@`,
/// tab, carriage return first) starts with `'`. The list's filters apply.
///
/// API keys: `purchases:read`.
#[utoipa::path(get, path = "/v1/purchases/export.csv", tag = "purchases", security(("bearer" = [])), params(ExportPurchases),
    responses(
        (status = 200, description = "The purchases, as CSV", content_type = "text/csv", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn export_purchases(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<ExportPurchases>,
) -> Result<axum::response::Response> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let scope = access::own_scope(&state.authz, principal, Object::Purchase, Action::List)?;
    let filter = PurchaseFilter {
        status: q.status,
        company_id: q.company_id,
        channel_id: q.channel_id,
        lead_source: q.lead_source,
        created_from: q.created_from,
        created_to: q.created_to,
    };
    enum Step {
        Header,
        After(Option<Uuid>),
        Done,
    }
    let (db, business) = (state.db.clone(), scope.id());
    let rows = futures_util::stream::unfold(Step::Header, move |step| {
        let (db, filter) = (db.clone(), filter.clone());
        async move {
            let (records, next) = match step {
                Step::Done => return None,
                Step::Header => (
                    vec![purchases::EXPORT_COLUMNS.map(str::to_owned)],
                    Step::After(None),
                ),
                Step::After(after) => {
                    match purchases::batch(&db, business, &filter, after, EXPORT_BATCH).await {
                        Err(e) => {
                            tracing::error!(error = %e, "purchase export failed");
                            let err = std::io::Error::other("the export failed");
                            return Some((Err(err), Step::Done));
                        }
                        Ok(batch) if batch.is_empty() => return None,
                        Ok(batch) => {
                            let next = if (batch.len() as u64) < EXPORT_BATCH {
                                Step::Done
                            } else {
                                Step::After(batch.last().map(|p| p.id))
                            };
                            (batch.iter().map(purchases::export_row).collect(), next)
                        }
                    }
                }
            };
            let mut out = csv::Writer::from_writer(Vec::new());
            for r in &records {
                if let Err(e) = out.write_record(r) {
                    return Some((Err(std::io::Error::other(e)), Step::Done));
                }
            }
            match out.into_inner() {
                Ok(bytes) => Some((Ok(axum::body::Bytes::from(bytes)), next)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), Step::Done)),
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"purchases.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        axum::body::Body::from_stream(rows),
    )
        .into_response())
}

/// One purchase of the business.
///
/// API keys: `purchases:read`.
#[utoipa::path(get, path = "/v1/purchases/{id}", tag = "purchases", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Purchase id")),
    responses(
        (status = 200, body = PurchaseView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_purchase(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Json<PurchaseView>> {
    let scope = access::own_scope(&state.authz, principal, Object::Purchase, Action::Read)?;
    Ok(Json(purchases::get(&state.billing(), &scope, id).await?))
}
