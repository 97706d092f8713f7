//! `/v1/auth/oauth/*` (browser redirects and the code exchange) and
//! `/v1/me/sign-in-methods` (list, link, unlink).

use axum::extract::State;
use axum::http::{StatusCode, header};
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

/// Start signing in with a provider: redirects to it (state, nonce and PKCE
/// kept server-side).
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
    let url = oauth::start(&state.identity(), provider, hint.as_deref(), None).await?;
    Ok(redirect(&url))
}

/// The provider's redirect back: completes the sign-in and sends the
/// browser to the front end with a one-time `code` for
/// `POST /v1/auth/oauth/exchange`.
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
    let exchange = oauth::callback(&state.identity(), provider, &code, &state_param).await?;
    let frontend = state.config.oauth_frontend_url();
    let separator = if frontend.contains('?') { '&' } else { '?' };
    Ok(redirect(&format!("{frontend}{separator}code={exchange}")))
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
/// browser to; the callback links instead of signing in.
#[utoipa::path(post, path = "/v1/me/sign-in-methods/{provider}", tag = "me", security(("bearer" = [])),
    params(("provider" = SignInProvider, Path, description = "`google` or `facebook`")),
    responses(
        (status = 200, body = AuthorizationUrl),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`provider_not_configured`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_method(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Path(provider): Path<SignInProvider>,
) -> Result<Json<AuthorizationUrl>> {
    let url = oauth::start(&state.identity(), provider, None, Some(caller.user_id)).await?;
    Ok(Json(AuthorizationUrl {
        authorization_url: url,
    }))
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
