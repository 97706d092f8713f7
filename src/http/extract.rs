//! Request extractors that speak problem+json: JSON bodies, path and query
//! parameters (axum's rejections rewrapped with stable codes), and the
//! authenticated caller from `Authorization: Bearer <JWT>`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::audit::RequestMeta;
use crate::domain::programs::api_keys;
use crate::domain::tenancy::access::{Caller, Principal};
use crate::error::Error;
use crate::state::AppState;

/// A JSON body (request) or JSON response. Rejections: 415
/// `unsupported_media_type`, 400 `malformed_json`, 413 `payload_too_large`,
/// 422 `invalid_body` (not an object, unknown field, wrong type, bad enum
/// value, missing field).
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<Object<T>>::from_request(req, state).await {
            Ok(axum::Json(Object(v))) => Ok(Json(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// An optional JSON body: `None` when the request has no body at all, or
/// the body is JSON `null` (what the document's optional body allows);
/// otherwise read exactly as [`Json`] reads it (same rejections).
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let has_type = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        let (parts, body) = req.into_parts();
        let bytes =
            axum::body::Bytes::from_request(Request::from_parts(parts.clone(), body), state)
                .await
                .map_err(|r| {
                    Error::new(
                        r.status(),
                        "invalid_body",
                        "The request body could not be read",
                    )
                    .with_detail(r.body_text())
                })?;
        if bytes.is_empty() && !has_type {
            return Ok(OptionalJson(None));
        }
        if has_type && bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(None));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| OptionalJson(Some(v)))
    }
}

/// Maps axum's JSON rejection to our problem codes.
pub fn json_rejection(rejection: JsonRejection) -> Error {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            Error::new(StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON")
                .with_detail(detail)
        }
        JsonRejection::JsonDataError(_) => Error::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "The JSON body does not match the expected shape",
        )
        .with_detail(detail),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The request body is too large",
        ),
        other => Error::new(
            other.status(),
            "invalid_body",
            "The request body could not be read",
        )
        .with_detail(detail),
    }
}

/// A struct read from a JSON object only. serde's derived structs also
/// accept a JSON array of their fields in order (`[null, null]` for a
/// two-field struct), which the API document does not allow and a client
/// never means; bodies and nested objects go through this instead.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// `#[serde(deserialize_with = "object")]` for a struct nested in a body:
/// read from a JSON object only (see [`Json`]).
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    Object::deserialize(deserializer).map(|o| o.0)
}

/// A signed whole number written as a JSON integer or as a number with no
/// fraction (`12` or `12.0`: JSON Schema's `integer` is both); anything
/// else (`12.5`, a string) is refused. Amounts stay integers end to end.
pub fn whole_i64<'de, D>(deserializer: D) -> Result<i64, D::Error>
where
    D: Deserializer<'de>,
{
    let n = serde_json::Number::deserialize(deserializer)?;
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && (-9.0e15..=9.0e15).contains(f))
                .map(|f| f as i64)
        })
        .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number, got {n}")))
}

/// `#[serde(default, deserialize_with = "optional_whole_number")]` for an
/// optional integer field: JSON Schema's `integer` is any number whose
/// fraction is zero (`5.0` is 5; JSON Schema 2020-12 validation §6.1.1),
/// which serde's integer types refuse. Missing or `null` is `None`; a
/// fraction, a negative or an out-of-range number is an error (422).
pub fn optional_whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let Some(n) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = n.as_u64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=9.0e15).contains(f))
            .map(|f| f as u64)
    });
    whole
        .and_then(|v| T::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!("expected a whole number in range, got {n}"))
        })
}

/// Bytes reserved for a JSON response before serializing: a page of a few
/// items fits, where axum's 128 bytes took four reallocations.
const RESPONSE_CAPACITY: usize = 4096;

impl<T: Serialize> IntoResponse for Json<T> {
    /// `application/json`; a value that cannot be serialized (a map with
    /// non-string keys) is a 500 `internal_error`, logged.
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(RESPONSE_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => Error::internal(e).into_response(),
        }
    }
}

/// Path parameters; a malformed one (e.g. not a UUID) is 400
/// `invalid_path_parameter`.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_path_parameter",
        "A path parameter is malformed",
    )
    .with_detail(rejection.body_text())
}

/// Query parameters; unknown or malformed ones are 400 `invalid_query`.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> Error {
    Error::new(
        StatusCode::BAD_REQUEST,
        "invalid_query",
        "A query parameter is malformed or unknown",
    )
    .with_detail(rejection.body_text())
}

/// The authenticated person. 401 `unauthenticated` without a bearer token,
/// 401 `invalid_token` for a bad or expired one, or one whose session ended
/// (signed out everywhere, password changed, account changed: see
/// [`crate::auth::sessions`]). The caller's role is the account's current
/// one. An API key is refused with 403 `api_key_not_allowed`: routes that
/// take `Auth` are for people (accounts, keys, billing, platform staff).
pub struct Auth(pub Caller);

/// A person or a program: [`Auth`]'s access tokens, or an API key
/// (`Authorization: Bearer sb_live_…`; 401 `invalid_api_key` when it is
/// unknown, revoked or expired). For the routes programs may use; what a
/// key may do there is its scopes' policy.
pub struct AnyAuth(pub Principal);

/// The bearer credential in `headers`, if any.
pub(crate) fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The person behind `headers`' access token (as [`Auth`] finds them), for
/// handlers that accept other credentials too.
pub(crate) async fn caller_from_headers(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, Error> {
    let token = bearer_of(headers).ok_or_else(|| {
        Error::unauthorized(
            "unauthenticated",
            "Send Authorization: Bearer <access token>",
        )
    })?;
    if api_keys::looks_like_key(token) {
        return Err(Error::new(
            StatusCode::FORBIDDEN,
            "api_key_not_allowed",
            "API keys cannot use this route",
        ));
    }
    user(state, token).await
}

/// The bearer credential of a request.
pub(crate) fn bearer(parts: &Parts) -> Result<&str, Error> {
    let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
        Error::unauthorized(
            "unauthenticated",
            "Send Authorization: Bearer <access token or API key>",
        )
    })?;
    header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| Error::unauthorized("invalid_token", "Expected a Bearer token"))
}

async fn user(state: &AppState, token: &str) -> Result<Caller, Error> {
    let grant = state.tokens.verify(token).ok_or_else(|| {
        Error::unauthorized("invalid_token", "The access token is invalid or expired")
    })?;
    let role = state.sessions.check(&state.db, &grant).await?;
    Ok(Caller {
        user_id: grant.user_id,
        role,
        owned_business: grant.owned_business,
        auth_time: grant.auth_time,
    })
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        if api_keys::looks_like_key(token) {
            return Err(Error::new(
                StatusCode::FORBIDDEN,
                "api_key_not_allowed",
                "API keys cannot use this route",
            )
            .with_detail("Accounts, API keys, billing, deletion and platform routes are for people: sign in instead."));
        }
        let caller = user(state, token).await?;
        super::context::record(parts, state, Principal::User(caller)).await?;
        Ok(Auth(caller))
    }
}

impl FromRequestParts<AppState> for AnyAuth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let principal = if api_keys::looks_like_key(token) {
            Principal::Key(api_keys::authenticate(&state.db, token).await?)
        } else {
            Principal::User(user(state, token).await?)
        };
        super::context::record(parts, state, principal).await?;
        Ok(AnyAuth(principal))
    }
}

/// The request's origin for the audit log: the client address resolved by
/// [`super::client_ip`] and the request id.
impl<S: Send + Sync> FromRequestParts<S> for RequestMeta {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Ok(RequestMeta {
            client_ip: parts
                .extensions
                .get::<super::client_ip::ClientAddr>()
                .map(|c| c.0.to_string()),
            request_id: parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }
}
