//! The worker side of the job runner: claims due tasks under a lease, runs
//! them, and records the outcome.
//!
//! - **Claim**: one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING *`
//!   takes due tasks (`queued`/`retrying` with `run_at` passed, or
//!   `running` with an expired lease) and marks them `running`, leased to
//!   this worker until `now + jobs.lease_secs`. On PostgreSQL the inner
//!   select is `FOR UPDATE SKIP LOCKED`, so instances sharing the database
//!   never claim one task twice; SQLite runs one writer at a time, which
//!   makes the statement atomic by itself.
//! - **Lease**: a running task's lease is renewed every third of its
//!   length. A worker that dies (kill -9) stops renewing; once the lease
//!   has expired any worker takes the task again (attempts count on).
//! - **Outcome**: success deletes a one-off task and reschedules a
//!   recurring one; failure retries after [`Policy::backoff`] until the
//!   kind's `max_attempts`, then leaves it `failed` with its last error
//!   (recurring tasks instead wait for their next time). Every write of an
//!   outcome is conditional on the lease still being this worker's, so a
//!   worker that lost its lease changes nothing.
//! - **Stop**: claiming stops; running tasks get `jobs.shutdown_grace_secs`
//!   to finish, then are cancelled and their leases released, so another
//!   process takes them at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Query};
use sea_orm::{
    ColumnTrait, Condition, DatabaseBackend, DatabaseConnection, EntityTrait, Order, QueryFilter,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::queue::{Policy, Queue, Task, state};
use crate::config::JobsConfig;

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Kept as the task's `last_error` (never put secrets here).
    pub message: String,
    /// No retry can help (bad payload, unknown kind): fail at once.
    pub permanent: bool,
}

impl Failure {
    /// A failure that a later attempt may not repeat.
    pub fn transient(message: impl std::fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl std::fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
            permanent: true,
        }
    }
}

impl From<sea_orm::DbErr> for Failure {
    fn from(e: sea_orm::DbErr) -> Failure {
        Failure::transient(format!("database: {e}"))
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Failure {
        Failure::transient(e.code())
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>>;
type Handler = Arc<dyn Fn(String) -> BoxFuture + Send + Sync>;

/// What runs each kind of task.
#[derive(Default, Clone)]
pub struct Handlers(HashMap<&'static str, Handler>);

impl Handlers {
    /// Runs tasks of `T::KIND` with `run`, given the decoded payload.
    pub fn add<T, F, Fut>(&mut self, run: F) -> &mut Self
    where
        T: Task,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        let run = Arc::new(run);
        self.0.insert(
            T::KIND,
            Arc::new(move |payload: String| -> BoxFuture {
                let run = Arc::clone(&run);
                Box::pin(async move {
                    let task: T = serde_json::from_str(&payload)
                        .map_err(|e| Failure::permanent(format!("bad payload: {e}")))?;
                    run(task).await
                })
            }),
        );
        self
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.0.keys().copied().collect()
    }
}

/// One worker: claims and runs tasks of the kinds it has handlers for.
pub struct Runner {
    db: DatabaseConnection,
    queue: Queue,
    handlers: Arc<Handlers>,
    config: JobsConfig,
    worker: String,
}

/// Cancels the task it holds when dropped (a cancelled runner cancels the
/// task it was running).
struct AbortOnDrop(tokio::task::JoinHandle<Result<(), Failure>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runner {
    /// A worker over `db` with `handlers`; its id names it in `jobs.worker`.
    pub fn new(
        db: DatabaseConnection,
        queue: Queue,
        handlers: Handlers,
        config: JobsConfig,
    ) -> Runner {
        Runner {
            db,
            queue,
            handlers: Arc::new(handlers),
            config,
            worker: format!("{}:{}", std::process::id(), Uuid::new_v4().simple()),
        }
    }

    /// This worker's id (`{pid}:{random}`).
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.lease_secs)
    }

    /// Schedules the recurring kinds, then claims and runs tasks until
    /// `stop` turns true; then stops gracefully (see the module docs).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.schedule_recurring().await {
            tracing::error!(error = %e, "scheduling recurring tasks failed");
        }
        let this = Arc::new(self);
        let mut running: JoinSet<()> = JoinSet::new();
        let mut ids: HashMap<tokio::task::Id, Uuid> = HashMap::new();
        let concurrency = this.config.concurrency as usize;
        let poll = Duration::from_millis(this.config.poll_ms);
        loop {
            if *stop.borrow() {
                break;
            }
            let free = concurrency.saturating_sub(running.len());
            let mut claimed = 0;
            if free > 0 {
                match this.claim(free as u64).await {
                    Ok(tasks) => {
                        claimed = tasks.len();
                        for task in tasks {
                            let id = task.id;
                            let me = Arc::clone(&this);
                            let handle = running.spawn(async move { me.execute(task).await });
                            ids.insert(handle.id(), id);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "claiming tasks failed"),
                }
            }
            if claimed > 0 && claimed == free {
                // More may be due; look again once a slot frees.
                if let Some(Ok(id)) = running
                    .join_next_with_id()
                    .await
                    .map(|r| r.map(|(id, ())| id))
                {
                    ids.remove(&id);
                }
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                () = this.queue.woken() => {}
                () = tokio::time::sleep(poll) => {}
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    if let Ok((id, ())) = done {
                        ids.remove(&id);
                    }
                }
            }
        }
        // Stopping: running tasks may finish within the grace period.
        let grace = tokio::time::sleep(Duration::from_secs(this.config.shutdown_grace_secs));
        tokio::pin!(grace);
        loop {
            tokio::select! {
                done = running.join_next_with_id() => match done {
                    None => break,
                    Some(Ok((id, ()))) => { ids.remove(&id); }
                    Some(Err(e)) => { ids.remove(&e.id()); }
                },
                () = &mut grace => {
                    running.abort_all();
                    while running.join_next().await.is_some() {}
                    let left: Vec<Uuid> = ids.values().copied().collect();
                    if let Err(e) = this.release(&left).await {
                        tracing::error!(error = %e, "releasing leases at stop failed");
                    }
                    break;
                }
            }
        }
    }

    /// Creates each recurring kind's row if missing, brings a row's next run
    /// forward when the interval was shortened, and removes the rows of
    /// recurring kinds this configuration no longer runs.
    async fn schedule_recurring(&self) -> Result<(), sea_orm::DbErr> {
        let now = Utc::now();
        for (kind, policy) in self.queue.kinds() {
            let Some(every) = policy.every else { continue };
            let max = i32::try_from(policy.max_attempts).unwrap_or(i32::MAX);
            super::queue::insert(
                &self.db,
                kind,
                "null".to_owned(),
                Some(kind.to_owned()),
                now + policy.first_run,
                max,
            )
            .await?;
            let latest = now + every;
            job::Entity::update_many()
                .col_expr(job::Column::RunAt, Expr::value(latest))
                .filter(job::Column::DedupKey.eq(kind))
                .filter(job::Column::State.is_in([state::QUEUED, state::RETRYING]))
                .filter(job::Column::RunAt.gt(latest))
                .exec(&self.db)
                .await?;
        }
        let off: Vec<&str> = self
            .handlers
            .kinds()
            .into_iter()
            .filter(|k| self.queue.policy(k).is_none())
            .collect();
        if !off.is_empty() {
            job::Entity::delete_many()
                .filter(job::Column::Kind.is_in(off.clone()))
                .filter(job::Column::DedupKey.is_in(off))
                .filter(job::Column::State.ne(state::RUNNING))
                .exec(&self.db)
                .await?;
        }
        Ok(())
    }

    /// Claims up to `n` due tasks of the kinds this worker runs.
    pub async fn claim(&self, n: u64) -> Result<Vec<job::Model>, sea_orm::DbErr> {
        let now = Utc::now();
        let due = Condition::all()
            .add(job::Column::Kind.is_in(self.handlers.kinds()))
            .add(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(job::Column::State.is_in([state::QUEUED, state::RETRYING]))
                            .add(job::Column::RunAt.lte(now)),
                    )
                    .add(
                        Condition::all()
                            .add(job::Column::State.eq(state::RUNNING))
                            .add(job::Column::LeaseUntil.lt(now)),
                    ),
            );
        let mut pick = Query::select();
        pick.column(job::Column::Id)
            .from(job::Entity)
            .cond_where(due.clone())
            .order_by(job::Column::RunAt, Order::Asc)
            .limit(n);
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            pick.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(state::RUNNING))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::LeaseUntil, Expr::value(now + self.lease()))
            .col_expr(job::Column::Worker, Expr::value(self.worker.clone()))
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.in_subquery(pick))
            .filter(due)
            .exec_with_returning(&self.db)
            .await
    }

    /// Runs one claimed task, renewing its lease meanwhile, and records
    /// the outcome.
    async fn execute(&self, task: job::Model) {
        let started = std::time::Instant::now();
        let outcome = match self.handlers.0.get(task.kind.as_str()) {
            None => Err(Failure::permanent(format!("no handler for {}", task.kind))),
            Some(handler) => {
                let mut run = AbortOnDrop(tokio::spawn(handler(task.payload.clone())));
                let mut beat = tokio::time::interval(self.lease() / 3);
                beat.tick().await;
                loop {
                    tokio::select! {
                        joined = &mut run.0 => break match joined {
                            Ok(result) => result,
                            Err(e) if e.is_panic() => Err(Failure::transient("the task panicked")),
                            Err(_) => Err(Failure::transient("the task was cancelled")),
                        },
                        _ = beat.tick() => {
                            if let Err(e) = self.renew(task.id).await {
                                tracing::warn!(task = %task.id, error = %e, "lease renewal failed");
                            }
                        }
                    }
                }
            }
        };
        let label = match &outcome {
            Ok(()) => "success",
            Err(f) if f.permanent || task.attempts >= task.max_attempts => "failed",
            Err(_) => "retry",
        };
        crate::telemetry::job_finished(&task.kind, label, started.elapsed().as_secs_f64());
        if let Err(e) = self.finish(&task, outcome).await {
            // The lease expires and the task runs again.
            tracing::error!(task = %task.id, kind = %task.kind, error = %e, "recording a task's outcome failed");
        }
    }

    async fn renew(&self, id: Uuid) -> Result<(), sea_orm::DbErr> {
        job::Entity::update_many()
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Utc::now() + self.lease()),
            )
            .filter(job::Column::Id.eq(id))
            .filter(job::Column::Worker.eq(self.worker.clone()))
            .filter(job::Column::State.eq(state::RUNNING))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Condition: the task is still leased to this worker.
    fn mine(&self, id: Uuid) -> Condition {
        Condition::all()
            .add(job::Column::Id.eq(id))
            .add(job::Column::Worker.eq(self.worker.clone()))
            .add(job::Column::State.eq(state::RUNNING))
    }

    async fn finish(
        &self,
        task: &job::Model,
        outcome: Result<(), Failure>,
    ) -> Result<(), sea_orm::DbErr> {
        let now = Utc::now();
        let policy = self.queue.policy(&task.kind).copied();
        let recurring = policy.and_then(|p| p.every);
        let next = |at: DateTime<Utc>, state: &str, error: Option<String>, attempts: i32| {
            job::Entity::update_many()
                .col_expr(job::Column::State, Expr::value(state))
                .col_expr(job::Column::RunAt, Expr::value(at))
                .col_expr(job::Column::Attempts, Expr::value(attempts))
                .col_expr(job::Column::LastError, Expr::value(error))
                .col_expr(
                    job::Column::LeaseUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(job::Column::Worker, Expr::value(Option::<String>::None))
                .col_expr(job::Column::UpdatedAt, Expr::value(now))
                .filter(self.mine(task.id))
        };
        match (outcome, recurring) {
            (Ok(()), None) => {
                job::Entity::delete_many()
                    .filter(self.mine(task.id))
                    .exec(&self.db)
                    .await?;
            }
            (Ok(()), Some(every)) => {
                next(now + every, state::QUEUED, None, 0)
                    .exec(&self.db)
                    .await?;
            }
            (Err(failure), _) => {
                let attempts = u32::try_from(task.attempts).unwrap_or(0);
                let max = u32::try_from(task.max_attempts).unwrap_or(1);
                tracing::warn!(task = %task.id, kind = %task.kind, attempts, error = %failure.message, "task failed");
                let update = if failure.permanent || attempts >= max {
                    match recurring {
                        Some(every) => next(now + every, state::QUEUED, Some(failure.message), 0),
                        None => next(now, state::FAILED, Some(failure.message), task.attempts),
                    }
                } else {
                    let policy = policy.unwrap_or(Policy::once(max, Duration::from_secs(5)));
                    let delay = policy.backoff(attempts, rand::random::<f64>());
                    next(
                        now + delay,
                        state::RETRYING,
                        Some(failure.message),
                        task.attempts,
                    )
                };
                update.exec(&self.db).await?;
            }
        }
        Ok(())
    }

    /// Gives back the leases of `ids` (cancelled at stop): due now, the
    /// cancelled attempt not counted.
    async fn release(&self, ids: &[Uuid]) -> Result<(), sea_orm::DbErr> {
        if ids.is_empty() {
            return Ok(());
        }
        job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(state::QUEUED))
            .col_expr(job::Column::RunAt, Expr::value(Utc::now()))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).sub(1),
            )
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(job::Column::Worker, Expr::value(Option::<String>::None))
            .filter(job::Column::Id.is_in(ids.iter().copied()))
            .filter(job::Column::Worker.eq(self.worker.clone()))
            .filter(job::Column::State.eq(state::RUNNING))
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
