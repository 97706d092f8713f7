//! What the authentication extractors learn about a request that its
//! response needs: who the principal is, for the per-principal rate limit
//! (`RateLimit`/`RateLimit-Policy` headers on every answer, IETF
//! draft-ietf-httpapi-ratelimit-headers) and, for a program with an API
//! key, the audit record of every change it makes (`api_key.request`:
//! method, route, status), so each key use that changes something is
//! attributable to the key.
//!
//! [`layer`] puts an empty [`Slot`] in the request's extensions and reads it
//! back when the response is ready; [`record`], called by the extractors,
//! applies the limit and fills the slot.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::rate_limit::RateInfo;
use crate::domain::audit::{self, Actor, Outcome, RequestMeta};
use crate::domain::tenancy::access::Principal;
use crate::error::Error;
use crate::state::AppState;

/// What is known of the request once it is authenticated.
#[derive(Debug, Clone, Copy)]
struct Known {
    principal: Principal,
    rate: RateInfo,
}

/// The request's slot (a request extension).
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Known>>>);

impl Slot {
    fn set(&self, known: Known) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(known);
    }

    fn take(&self) -> Option<Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Applies the per-principal limit to an authenticated request: 429
/// `rate_limited` with `Retry-After` and the rate-limit headers past it;
/// otherwise the headers go on the response ([`layer`]).
pub(crate) async fn record(
    parts: &Parts,
    state: &AppState,
    principal: Principal,
) -> Result<(), Error> {
    let business = match principal {
        Principal::User(c) => c.owned_business,
        Principal::Key(k) => Some(k.business_id),
    };
    let rate = state
        .api_limits
        .check(&state.db, &principal.key(), business)
        .await?;
    if let Some(slot) = parts.extensions.get::<Slot>() {
        slot.set(Known { principal, rate });
    }
    rate.refused().map_or(Ok(()), Err)
}

/// Middleware around the authenticated routes (see the module docs).
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let slot = Slot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| request.uri().path().to_owned());
    let meta = RequestMeta {
        client_ip: request
            .extensions()
            .get::<super::client_ip::ClientAddr>()
            .map(|c| c.0.to_string()),
        request_id: request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let mut response = next.run(request).await;
    let Some(known) = slot.take() else {
        return response;
    };
    known.rate.write_headers(response.headers_mut());
    if let Principal::Key(key) = known.principal
        && !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        let status = response.status();
        let outcome = if status.is_success() {
            Outcome::Success
        } else if status.as_u16() == 401 || status.as_u16() == 403 {
            Outcome::Denied
        } else {
            Outcome::Failure
        };
        let actor = Actor {
            user_id: Some(key.key_id),
            role: "api_key",
            meta,
        };
        if let Err(e) = audit::record(
            &state.db,
            &actor,
            Some(key.business_id),
            "api_key.request",
            &format!("{method} {route}"),
            outcome,
            json!({ "status": status.as_u16() }),
        )
        .await
        {
            // The change itself is done and answered; the missing record
            // is an operator's problem, said loudly.
            tracing::error!(key = %key.key_id, error = %e, "could not record an API key's request");
        }
    }
    response
}
