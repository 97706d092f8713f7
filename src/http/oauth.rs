//! `/v1/auth/oauth/*` (browser redirects and the code exchange) and
//! `/v1/me/sign-in-methods` (list, link, unlink).
//!
//! The start of a sign-in or link sets a cookie binding the request to the
//! browser (`sb_oauth_{provider}`: random, `HttpOnly`, `SameSite=Lax` so the
//! provider's top-level redirect back carries it, `Secure` when the public
//! URL is https, path `/v1/auth/oauth`, 10 minutes); the callback requires
//! it and clears it (RFC 9700 §4.7).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Auth, Json, Path, Query};
use crate::domain::identity::oauth::{self, SignInMethod, SignInProvider};
use crate::domain::identity::sessions::TokenPair;
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Query of the start route.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StartQuery {
    /// Passed to the provider to preselect an account (OIDC `login_hint`).
    pub login_hint: Option<String>,
}

/// What the provider sends back to the callback (RFC 6749 §4.1.2).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// Authorization code.
    pub code: Option<String>,
    /// The state sent at the start.
    pub state: Option<String>,
    /// Set when the provider refused (e.g. `access_denied`).
    pub error: Option<String>,
}

/// Body of `POST /v1/auth/oauth/exchange`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRequest {
    /// The `code` the front end received after the callback.
    #[schema(min_length = 1, max_length = 512)]
    pub code: String,
}

/// Answer of the link route.
#[derive(Serialize, ToSchema)]
pub struct AuthorizationUrl {
    /// Send the browser here.
    pub authorization_url: String,
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

/// The `Set-Cookie` value binding a request to this browser; `None` value
/// clears it.
fn browser_cookie(state: &AppState, provider: SignInProvider, value: Option<&str>) -> String {
    let secure = state.config.public_url.starts_with("https://");
    let mut cookie = cookie::Cookie::build((
        oauth::browser_cookie(provider),
        value.unwrap_or("").to_owned(),
    ))
    .path("/v1/auth/oauth")
    .http_only(true)
    .secure(secure)
    .same_site(cookie::SameSite::Lax);
    cookie = match value {
        Some(_) => cookie.max_age(cookie::time::Duration::seconds(oauth::STATE_TTL_SECS)),
        None => cookie.max_age(cookie::time::Duration::ZERO),
    };
    cookie.build().to_string()
}

/// The value of this provider's binding cookie in the request, if sent.
fn presented_cookie(headers: &HeaderMap, provider: SignInProvider) -> Option<String> {
    let name = oauth::browser_cookie(provider);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| cookie::Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// Start signing in with a provider: redirects to it (state, nonce and PKCE
/// kept server-side) and sets the cookie that binds the sign-in to this
/// browser.
#[utoipa::path(get, path = "/v1/auth/oauth/{provider}/start", tag = "auth",
    params(("provider" = SignInProvider, Path, description = "`google` or `facebook`"), StartQuery),
    responses(
        (status = 303, description = "Redirect to the provider"),
        (status = 400, description = "`oauth_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`provider_not_configured`", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    Path(provider): Path<SignInProvider>,
    Query(q): Query<StartQuery>,
) -> Result<Response> {
    let hint = q.login_hint.filter(|h| !h.is_empty() && h.len() <= 254);
    let started = oauth::start(&state.identity(), provider, hint.as_deref(), None).await?;
    let mut response = redirect(&started.url);
    set_cookie(
        &mut response,
        &browser_cookie(&state, provider, Some(&started.browser_secret)),
    );
    Ok(response)
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(v) = header::HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The provider's redirect back: completes the sign-in and sends the
/// browser to the front end with a one-time `code` for
/// `POST /v1/auth/oauth/exchange`. Only in the browser that started it (its
/// cookie), else 400 `invalid_state`.
#[utoipa::path(get, path = "/v1/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = SignInProvider, Path, description = "`google` or `facebook`"), CallbackQuery),
    responses(
        (status = 303, description = "Redirect to the front end with `?code=`"),
        (status = 400, description = "`invalid_state`, `oauth_failed` or `oauth_denied`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`provider_not_configured`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`identity_linked_elsewhere`, `email_unverified`, `provider_already_linked`", body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<SignInProvider>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Result<Response> {
    if let Some(error) = q.error {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "oauth_denied",
            "The provider did not authorize the sign-in",
        )
        .with("provider_error", error));
    }
    let (Some(code), Some(state_param)) = (q.code, q.state) else {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "invalid_state",
            "Missing code or state",
        ));
    };
    let browser = presented_cookie(&headers, provider);
    let exchange = oauth::callback(
        &state.identity(),
        provider,
        &code,
        &state_param,
        browser.as_deref(),
    )
    .await?;
    let frontend = state.config.oauth_frontend_url();
    let separator = if frontend.contains('?') { '&' } else { '?' };
    let mut response = redirect(&format!("{frontend}{separator}code={exchange}"));
    set_cookie(&mut response, &browser_cookie(&state, provider, None));
    Ok(response)
}

/// Exchange the one-time code from the callback for tokens.
#[utoipa::path(post, path = "/v1/auth/oauth/exchange", tag = "auth", request_body = ExchangeRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn exchange(
    State(state): State<AppState>,
    Json(body): Json<ExchangeRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(oauth::exchange(&state.identity(), &body.code).await?))
}

/// The signed-in account's sign-in methods (password, providers).
#[utoipa::path(get, path = "/v1/me/sign-in-methods", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<SignInMethod>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_methods(
    State(state): State<AppState>,
    Auth(caller): Auth,
) -> Result<Json<Vec<SignInMethod>>> {
    Ok(Json(oauth::methods(&state.identity(), caller).await?))
}

/// Link a provider to the signed-in account: returns the URL to send the
/// browser to, and sets in this browser the cookie the callback requires
/// (call it from the browser that will follow the URL, with credentials);
/// the callback links instead of signing in. Needs a recent authentication.
#[utoipa::path(post, path = "/v1/me/sign-in-methods/{provider}", tag = "me", security(("bearer" = [])),
    params(("provider" = SignInProvider, Path, description = "`google` or `facebook`")),
    responses(
        (status = 200, body = AuthorizationUrl),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`reauthentication_required` when the last sign-in is older than `auth.reauth_window_secs`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`provider_not_configured`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_method(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(provider): Path<SignInProvider>,
) -> Result<Response> {
    let started = oauth::start(&state.identity(), provider, None, Some(caller)).await?;
    let mut response = Json(AuthorizationUrl {
        authorization_url: started.url,
    })
    .into_response();
    set_cookie(
        &mut response,
        &browser_cookie(&state, provider, Some(&started.browser_secret)),
    );
    Ok(response)
}

/// Unlink a provider, as long as another sign-in method remains.
#[utoipa::path(delete, path = "/v1/me/sign-in-methods/{provider}", tag = "me", security(("bearer" = [])),
    params(("provider" = SignInProvider, Path, description = "`google` or `facebook`")),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_sign_in_method`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlink_method(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(provider): Path<SignInProvider>,
) -> Result<StatusCode> {
    oauth::unlink(&state.identity(), caller, provider).await?;
    Ok(StatusCode::NO_CONTENT)
}
