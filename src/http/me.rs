//! `/v1/me`: the signed-in user's own account.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Auth, Json};
use crate::domain::identity::email_change;
use crate::domain::identity::users::{self, MeView};
use crate::domain::validate::Email;
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `PATCH /v1/me`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// New full name.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub full_name: Option<String>,
}

/// The signed-in account.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = [])),
    responses(
        (status = 200, body = MeView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_me(State(state): State<AppState>, Auth(caller): Auth) -> Result<Json<MeView>> {
    Ok(Json(users::me(&state.db, caller).await?))
}

/// Change the signed-in account's profile.
#[utoipa::path(patch, path = "/v1/me", tag = "me", security(("bearer" = [])), request_body = UpdateMe,
    responses(
        (status = 200, body = MeView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<UpdateMe>,
) -> Result<Json<MeView>> {
    Ok(Json(
        users::update_me(&state.db, caller, body.full_name.as_deref()).await?,
    ))
}

/// Body of `POST /v1/me/email`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmail {
    /// The new address.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
    )]
    pub email: String,
}

/// Move the account to a new email address: a confirmation link goes to
/// the new address (`POST /v1/auth/email/confirm`). Needs a recent
/// authentication. Answers alike whether or not the address has an account.
#[utoipa::path(post, path = "/v1/me/email", tag = "me", security(("bearer" = [])), request_body = ChangeEmail,
    responses(
        (status = 202, description = "A confirmation link is on its way to the new address"),
        (status = 401, description = "`reauthentication_required` when the last sign-in is older than `auth.reauth_window_secs`", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`too_many_requests` (per address)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_email(
    State(state): State<AppState>,
    Auth(caller): Auth,
    Json(body): Json<ChangeEmail>,
) -> Result<StatusCode> {
    let email = Email::parse("email", &body.email)?;
    email_change::request(&state.identity(), caller, &email).await?;
    Ok(StatusCode::ACCEPTED)
}
