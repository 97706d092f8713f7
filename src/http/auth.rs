//! `/v1/auth/*`: registration, login, refresh, logout (here or everywhere),
//! re-authentication, set/forgot/reset/change password, magic links, and the
//! confirmations of emailed security links (email change, removing a
//! sign-in method).
//! Rate limited per client IP (see [`super::rate_limit`]).

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Auth, Json};
use crate::domain::identity::sessions::{self, AccessToken, TokenPair};
use crate::domain::identity::signup::{self, Completion};
use crate::domain::identity::{email_change, oauth};
use crate::domain::validate::{self, Email, Password};
use crate::domain::{identity::magic_link, identity::recovery, tenancy::managers};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/auth/register/start`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterStart {
    /// Address to verify.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
    )]
    pub email: String,
}

/// Answer of `POST /v1/auth/register/start`.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    /// What happens next.
    pub message: String,
    /// Lifetime of the emailed code, in seconds.
    pub expires_in: u64,
}

/// Body of `POST /v1/auth/register/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterVerify {
    /// Address the code was sent to.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
    )]
    pub email: String,
    /// The 6-digit code.
    #[schema(pattern = r"^[0-9]{6}$")]
    pub code: String,
}

/// Answer of `POST /v1/auth/register/verify`.
#[derive(Serialize, ToSchema)]
pub struct RegistrationToken {
    /// Single-use token for `POST /v1/auth/register/complete`.
    pub registration_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
}

/// Body of `POST /v1/auth/register/complete`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterComplete {
    /// From `register/verify`.
    #[schema(min_length = 1, max_length = 512)]
    pub registration_token: String,
    /// 10 to 128 characters.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 128)]
    pub password: SecretString,
    /// The owner's full name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub full_name: String,
    /// The new business's name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub business_name: String,
}

/// Body of `POST /v1/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// Account email.
    pub email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Body of `POST /v1/auth/refresh` and `POST /v1/auth/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The current refresh token.
    #[schema(min_length = 1, max_length = 512)]
    pub refresh_token: String,
}

/// Body of `POST /v1/auth/password/set`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// Token from the emailed link.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
    /// The new password, 10 to 128 characters.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 128)]
    pub password: SecretString,
}

/// Start registration: emails a 6-digit code (10 minutes).
///
/// Answers 202 whether or not the address already has an account.
#[utoipa::path(post, path = "/v1/auth/register/start", tag = "auth", request_body = RegisterStart,
    responses(
        (status = 202, body = Accepted),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_start(
    State(state): State<AppState>,
    Json(body): Json<RegisterStart>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let email = Email::parse("email", &body.email)?;
    signup::start(&state.identity(), &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If the address can register, a verification code is on its way.".into(),
            expires_in: state.config.auth.code_ttl_secs,
        }),
    ))
}

/// Verify the emailed code; returns a registration token.
#[utoipa::path(post, path = "/v1/auth/register/verify", tag = "auth", request_body = RegisterVerify,
    responses(
        (status = 200, body = RegistrationToken),
        (status = 400, description = "`invalid_code`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`code_attempts_exceeded` or `rate_limited`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_verify(
    State(state): State<AppState>,
    Json(body): Json<RegisterVerify>,
) -> Result<Json<RegistrationToken>> {
    let email = Email::parse("email", &body.email)?;
    let token = signup::verify(&state.identity(), &email, body.code.trim()).await?;
    Ok(Json(RegistrationToken {
        registration_token: token,
        expires_in: state.config.auth.registration_token_ttl_secs,
    }))
}

/// Finish registration: creates the owner and a business on a 7-day trial.
#[utoipa::path(post, path = "/v1/auth/register/complete", tag = "auth", request_body = RegisterComplete,
    responses(
        (status = 201, body = TokenPair),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_complete(
    State(state): State<AppState>,
    Json(body): Json<RegisterComplete>,
) -> Result<(StatusCode, Json<TokenPair>)> {
    let password = Password::parse("password", body.password)?;
    let pair = signup::complete(
        &state.identity(),
        Completion {
            registration_token: body.registration_token,
            password,
            full_name: body.full_name,
            business_name: body.business_name,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(pair)))
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<Json<TokenPair>> {
    Ok(Json(
        sessions::login(&state.identity(), &body.email, body.password).await?,
    ))
}

/// Exchange a refresh token for a new pair (rotation).
///
/// Reusing a consumed refresh token revokes its whole family.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "`invalid_refresh_token` or `refresh_token_reused`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(
        sessions::refresh(
            &state.identity(),
            validate::token("refresh_token", &body.refresh_token)?,
        )
        .await?,
    ))
}

/// Sign out: revokes the refresh token's family. Idempotent.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> Result<StatusCode> {
    sessions::logout(
        &state.identity(),
        validate::token("refresh_token", &body.refresh_token)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a password from an emailed set-password link (new manager accounts).
#[utoipa::path(post, path = "/v1/auth/password/set", tag = "auth", request_body = SetPassword,
    responses(
        (status = 204, description = "Password set; sign in with it"),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_set(
    State(state): State<AppState>,
    Json(body): Json<SetPassword>,
) -> Result<StatusCode> {
    let password = Password::parse("password", body.password)?;
    managers::set_password(&state.identity(), &body.token, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/auth/password/forgot` and `POST /v1/auth/magic-link`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailOnly {
    /// Account email.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
    )]
    pub email: String,
}

/// Body of `POST /v1/auth/password/reset`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// Token from the emailed reset link.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
    /// The new password, 10 to 128 characters.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 128)]
    pub password: SecretString,
}

/// Body of `POST /v1/auth/password/change`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The current password.
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    /// The new password, 10 to 128 characters.
    #[schema(value_type = String, format = Password, min_length = 10, max_length = 128)]
    pub new_password: SecretString,
}

/// Body of `POST /v1/auth/magic-link/verify`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MagicLinkVerify {
    /// Token from the emailed sign-in link.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
}

/// Forgot password: emails a single-use reset link (30 minutes).
///
/// Always 202, whether or not the address has an account.
#[utoipa::path(post, path = "/v1/auth/password/forgot", tag = "auth", request_body = EmailOnly,
    responses(
        (status = 202, body = Accepted),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per IP) or `too_many_requests` (per email)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_forgot(
    State(state): State<AppState>,
    Json(body): Json<EmailOnly>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let email = Email::parse("email", &body.email)?;
    recovery::forgot(&state.identity(), &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If the address has an account, a reset link is on its way.".into(),
            expires_in: state.config.auth.password_reset_ttl_secs,
        }),
    ))
}

/// Reset the password with an emailed token; every session is signed out.
#[utoipa::path(post, path = "/v1/auth/password/reset", tag = "auth", request_body = ResetPassword,
    responses(
        (status = 204, description = "Password set; sign in with it"),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_reset(
    State(state): State<AppState>,
    Json(body): Json<ResetPassword>,
) -> Result<StatusCode> {
    let password = Password::parse("password", body.password)?;
    recovery::reset(&state.identity(), &body.token, password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the signed-in account's password (the current one is required);
/// every session is signed out.
#[utoipa::path(post, path = "/v1/auth/password/change", tag = "auth", security(("bearer" = [])), request_body = ChangePassword,
    responses(
        (status = 204, description = "Password changed; sign in again"),
        (status = 401, description = "`invalid_credentials` or no token", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn password_change(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<ChangePassword>,
) -> Result<StatusCode> {
    let new = Password::parse("new_password", body.new_password)?;
    recovery::change(&state.identity(), caller, body.current_password, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Email a single-use sign-in link (15 minutes).
///
/// Always 202, whether or not the address has an account.
#[utoipa::path(post, path = "/v1/auth/magic-link", tag = "auth", request_body = EmailOnly,
    responses(
        (status = 202, body = Accepted),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per IP) or `too_many_requests` (per email)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn magic_link_request(
    State(state): State<AppState>,
    Json(body): Json<EmailOnly>,
) -> Result<(StatusCode, Json<Accepted>)> {
    let email = Email::parse("email", &body.email)?;
    magic_link::request(&state.identity(), &email).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            message: "If the address has an account, a sign-in link is on its way.".into(),
            expires_in: state.config.auth.magic_link_ttl_secs,
        }),
    ))
}

/// Sign in with an emailed link's token.
#[utoipa::path(post, path = "/v1/auth/magic-link/verify", tag = "auth", request_body = MagicLinkVerify,
    responses(
        (status = 200, body = TokenPair),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn magic_link_verify(
    State(state): State<AppState>,
    Json(body): Json<MagicLinkVerify>,
) -> Result<Json<TokenPair>> {
    Ok(Json(
        magic_link::verify(&state.identity(), &body.token).await?,
    ))
}

/// Body of `POST /v1/auth/reauthenticate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reauthenticate {
    /// The account's password.
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Prove who you are again: a fresh access token good for sensitive changes
/// (linking a sign-in method, changing the email, creating API keys) for
/// `auth.reauth_window_secs`. The refresh token is unchanged. Accounts
/// without a password sign in again with a linked provider or an emailed
/// link instead.
#[utoipa::path(post, path = "/v1/auth/reauthenticate", tag = "auth", security(("bearer" = [])), request_body = Reauthenticate,
    responses(
        (status = 200, body = AccessToken),
        (status = 401, description = "`invalid_credentials` or no valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`password_not_set`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per client) or `login_throttled` (per account)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`auth_overloaded`: no password-hashing turn within `auth.hash_wait_ms`; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reauthenticate(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<Reauthenticate>,
) -> Result<Json<AccessToken>> {
    Ok(Json(
        sessions::reauthenticate(&state.identity(), caller, body.password).await?,
    ))
}

/// Sign out everywhere: every access token issued until now stops working
/// at once and every refresh token is revoked.
#[utoipa::path(post, path = "/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout_all(State(state): State<AppState>, Auth(caller): Auth) -> Result<StatusCode> {
    sessions::logout_all(&state.identity(), caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of the token-only confirmations (`sign-in-methods/remove`,
/// `email/confirm`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenOnly {
    /// The token from the emailed link.
    #[schema(min_length = 1, max_length = 512)]
    pub token: String,
}

/// Remove a sign-in method from the link in a security email ("a new
/// sign-in method was linked", "your password was changed"); every session
/// of the account is signed out.
#[utoipa::path(post, path = "/v1/auth/sign-in-methods/remove", tag = "auth", request_body = TokenOnly,
    responses(
        (status = 204, description = "Removed (or already gone); every session signed out"),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_sign_in_method`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn remove_sign_in_method(
    State(state): State<AppState>,
    Json(body): Json<TokenOnly>,
) -> Result<StatusCode> {
    oauth::remove_by_token(&state.identity(), &body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirm a new email address from the link sent to it; the account signs
/// in with it from now on, and the old address is told.
#[utoipa::path(post, path = "/v1/auth/email/confirm", tag = "auth", request_body = TokenOnly,
    responses(
        (status = 204, description = "The account's address changed"),
        (status = 400, description = "`invalid_token`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_email(
    State(state): State<AppState>,
    Json(body): Json<TokenOnly>,
) -> Result<StatusCode> {
    email_change::confirm(&state.identity(), &body.token).await?;
    Ok(StatusCode::NO_CONTENT)
}
