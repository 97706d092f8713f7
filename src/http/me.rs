//! `/v1/me`: the signed-in user's own account.

use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Auth, Json};
use crate::domain::identity::users::{self, MeView};
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `PATCH /v1/me`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// New full name.
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
