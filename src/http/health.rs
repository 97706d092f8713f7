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

/// Readiness: the database answers and every migration is applied. A
/// failure names its reason (`database_unreachable`, `migrations_pending`)
/// and nothing more; the error itself goes to the log.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "`not_ready`, with `reason`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Health>> {
    crate::db::ready(&state.db).await.map_err(|not_ready| {
        tracing::warn!(reason = not_ready.reason, detail = %not_ready.detail, "not ready");
        Error::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", "Not ready")
            .with("reason", not_ready.reason)
    })?;
    Ok(Json(Health { status: "ok" }))
}
