//! What admins see of the job runner: tasks by kind and state
//! (`GET /v1/admin/jobs`), and the retry of a failed or retrying task
//! (`POST /v1/admin/jobs/{id}/retry`). Finished one-off tasks are deleted,
//! so the list shows what is pending, running or failed.

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::queue::state;
use crate::domain::pagination::{Page, PageRequest};
use crate::error::{Error, Result};

/// A task's state, as the admin filter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its time.
    Queued,
    /// Leased by a worker.
    Running,
    /// Failed at least once; due again at `run_at`.
    Retrying,
    /// Gave up after its kind's maximum attempts.
    Failed,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => state::QUEUED,
            JobState::Running => state::RUNNING,
            JobState::Retrying => state::RETRYING,
            JobState::Failed => state::FAILED,
        }
    }

    fn parse(s: &str) -> JobState {
        match s {
            state::RUNNING => JobState::Running,
            state::RETRYING => JobState::Retrying,
            state::FAILED => JobState::Failed,
            _ => JobState::Queued,
        }
    }
}

/// One task as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Task id.
    pub id: Uuid,
    /// Kind, e.g. `email.deliver`, `billing.sweep`.
    pub kind: String,
    /// Where it stands.
    pub state: JobState,
    /// Attempts made so far (the current one included while running).
    pub attempts: i32,
    /// Attempts before a one-off task is `failed`.
    pub max_attempts: i32,
    /// When it is (or was) due.
    pub run_at: DateTime<Utc>,
    /// While running: when the worker's lease ends.
    pub lease_until: Option<DateTime<Utc>>,
    /// The worker holding it (`{pid}:{random}`), while running.
    pub worker: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// Its deduplication key, if any.
    pub dedup_key: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// Its last change.
    pub updated_at: DateTime<Utc>,
}

impl From<job::Model> for JobView {
    fn from(j: job::Model) -> JobView {
        JobView {
            id: j.id,
            kind: j.kind,
            state: JobState::parse(&j.state),
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            lease_until: j.lease_until,
            worker: j.worker,
            last_error: j.last_error,
            dedup_key: j.dedup_key,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// Tasks, optionally of one `kind` and one `state`, in id (creation) order.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    kind: Option<&str>,
    state: Option<JobState>,
    page: PageRequest,
) -> Result<Page<JobView>> {
    let mut q = job::Entity::find().order_by_asc(job::Column::Id);
    if let Some(kind) = kind {
        q = q.filter(job::Column::Kind.eq(kind));
    }
    if let Some(state) = state {
        q = q.filter(job::Column::State.eq(state.as_str()));
    }
    if let Some(after) = page.after {
        q = q.filter(job::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page, |j| j.id, JobView::from))
}

/// Makes failed or retrying task `id` due now with a fresh count of
/// attempts. Errors: 404 `not_found`; 409 `job_not_retryable` while it is
/// queued or running.
pub async fn retry<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<JobView> {
    let now = Utc::now();
    // RETURNING: the answer is the row as this update left it, even if a
    // worker claims the task a moment later.
    let updated = job::Entity::update_many()
        .col_expr(job::Column::State, Expr::value(state::QUEUED))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::State.is_in([state::FAILED, state::RETRYING]))
        .exec_with_returning(db)
        .await?;
    if let Some(row) = updated.into_iter().next() {
        return Ok(row.into());
    }
    let row = job::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(Error::not_found)?;
    Err(Error::conflict(
        "job_not_retryable",
        format!(
            "the task is {}; only failed or retrying tasks are retried",
            row.state
        ),
    ))
}

/// Seconds the oldest due task (queued or retrying, its time passed) has
/// waited: the runner's lag.
pub async fn due_lag_secs(db: &sea_orm::DatabaseConnection) -> Result<f64, sea_orm::DbErr> {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
    let now = chrono::Utc::now();
    let oldest: Option<chrono::DateTime<chrono::Utc>> = entity::job::Entity::find()
        .select_only()
        .column(entity::job::Column::RunAt)
        .filter(entity::job::Column::State.is_in(["queued", "retrying"]))
        .filter(entity::job::Column::RunAt.lte(now))
        .order_by_asc(entity::job::Column::RunAt)
        .into_tuple()
        .one(db)
        .await?;
    Ok(oldest.map_or(0.0, |t| (now - t).num_milliseconds() as f64 / 1000.0))
}
