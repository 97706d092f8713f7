//! `/health` (liveness) and `/health/ready` (database reachable, migrations
//! applied).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::Json;
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Health answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "`not_ready`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Health>> {
    crate::db::ready(&state.db).await.map_err(|reason| {
        tracing::warn!(%reason, "not ready");
        Error::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready").with_detail(reason)
    })?;
    Ok(Json(Health { status: "ok" }))
}
