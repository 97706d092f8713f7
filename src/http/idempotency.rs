//! The `Idempotency-Key` header on `POST`s (see
//! [`crate::domain::programs::idempotency`] for the rules). A middleware
//! around the API's routes: it finds the principal from the bearer
//! credential (an access token or an API key; a request that cannot be
//! authenticated runs as it is and its handler answers 401), claims the
//! key, and stores or replays the answer. A replayed answer carries
//! `Idempotent-Replayed: true`.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::domain::programs::idempotency::{Claim, Stored};
use crate::domain::programs::{api_keys, idempotency};
use crate::domain::validate;
use crate::error::Error;
use crate::state::AppState;

/// The request header (Stripe's name; IETF draft-ietf-httpapi-idempotency-key-header).
pub const HEADER: &str = "idempotency-key";
pub use crate::domain::programs::idempotency::KEY_MAX;

fn bad_key() -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
        "The Idempotency-Key header is malformed",
    )
    .with_detail(format!("1 to {KEY_MAX} visible ASCII characters."))
}

/// The principal of a request as the idempotency store names it, if its
/// credential is valid.
async fn principal(state: &AppState, bearer: Option<String>) -> Option<String> {
    let bearer = bearer?;
    let bearer = bearer.strip_prefix("Bearer ")?.trim();
    if api_keys::looks_like_key(bearer) {
        let key = api_keys::authenticate(&state.db, bearer).await.ok()?;
        return Some(format!("api_key:{}", key.key_id));
    }
    let grant = state.tokens.verify(bearer)?;
    Some(format!("user:{}", grant.user_id))
}

/// SHA-256 of what makes two requests the same one.
fn fingerprint(method: &Method, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_str().as_bytes());
    h.update([0]);
    h.update(path_and_query.as_bytes());
    h.update([0]);
    h.update(body);
    hex::encode(h.finalize())
}

fn replay(stored: Stored) -> Response {
    let mut response = (
        StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        stored.body,
    )
        .into_response();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Whether an answer means the request ran (and so is kept for replay).
fn ran(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::UNAUTHORIZED
        || status == StatusCode::FORBIDDEN)
}

/// The middleware (see the module docs).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw.to_str() {
        Ok(k)
            if !k.is_empty()
                && k.len() <= KEY_MAX
                && validate::matches(idempotency::KEY_PATTERN, k) =>
        {
            k.to_owned()
        }
        _ => return bad_key().into_response(),
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(principal) = principal(&state, bearer).await else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let body: Bytes = match to_bytes(body, super::BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return Error::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large",
            )
            .into_response();
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let print = fingerprint(&parts.method, &path, &body);
    match idempotency::claim(&state.db, &principal, &key, &print).await {
        Err(e) => e.into_response(),
        Ok(Claim::Replay(stored)) => replay(stored),
        Ok(Claim::Mismatch) => Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "This Idempotency-Key was used with another request",
        )
        .with_detail("Use a new key for a new request.")
        .into_response(),
        Ok(Claim::InProgress) => Error::conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still running; retry in a moment",
        )
        .with_retry_after(1)
        .into_response(),
        Ok(Claim::Proceed) => {
            let response = next.run(Request::from_parts(parts, Body::from(body))).await;
            let status = response.status();
            if !ran(status) {
                if let Err(e) = idempotency::release(&state.db, &principal, &key).await {
                    tracing::error!(error = %e, "could not release an idempotency key");
                }
                return response;
            }
            let (parts, body) = response.into_parts();
            let Ok(bytes) = to_bytes(body, usize::MAX).await else {
                return Error::internal("could not read the response to store it").into_response();
            };
            let headers = [header::CONTENT_TYPE, header::LOCATION]
                .iter()
                .filter_map(|h| {
                    parts
                        .headers
                        .get(h)
                        .and_then(|v| v.to_str().ok())
                        .map(|v| (h.as_str().to_owned(), v.to_owned()))
                })
                .collect();
            let stored = Stored {
                status: status.as_u16(),
                body: bytes.to_vec(),
                headers,
            };
            if let Err(e) = idempotency::complete(&state.db, &principal, &key, &stored).await {
                tracing::error!(error = %e, "could not store an idempotent answer");
            }
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}
