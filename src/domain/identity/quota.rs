//! Per-email limits on emailed codes and links (abuse protection beside the
//! per-IP limit of tower-governor): each request is counted in the database
//! whether or not the address has an account, so a refusal reveals nothing.

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use entity::email::request;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The window the limit applies to.
pub const WINDOW_SECS: i64 = 3600;

/// Counts a request of `kind` for `email`; 429 `too_many_requests` with
/// `Retry-After` once `per_hour` requests fall within the last hour.
pub async fn take<C: ConnectionTrait>(
    db: &C,
    email: &str,
    kind: &str,
    per_hour: u32,
) -> Result<()> {
    let now = Utc::now();
    let recent = request::Entity::find()
        .filter(request::Column::Email.eq(email))
        .filter(request::Column::Kind.eq(kind))
        .filter(request::Column::CreatedAt.gt(now - Duration::seconds(WINDOW_SECS)))
        .order_by_asc(request::Column::CreatedAt)
        .all(db)
        .await?;
    if recent.len() >= per_hour as usize {
        let oldest = recent.first().map_or(now, |r| r.created_at);
        let wait = (oldest + Duration::seconds(WINDOW_SECS) - now)
            .num_seconds()
            .max(1);
        return Err(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests for this address",
        )
        .with_detail(format!("At most {per_hour} per hour; retry in {wait} s."))
        .with_retry_after(wait as u64));
    }
    request::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.to_owned()),
        kind: Set(kind.to_owned()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(())
}
