//! Operational metrics in Prometheus' text format (`metrics` facade,
//! `metrics-exporter-prometheus`): per-route request counts and latency
//! histograms by route template (never by raw path, so ids do not explode
//! the series), the job runner's outcomes and queue, the inbound-webhook
//! ledger, the email outbox, the event stream's subscribers and the
//! database pool. Counters and histograms are recorded as things happen;
//! the gauges of stored state are read from the database at each scrape.
//!
//! One recorder serves the process (the `metrics` facade has one global
//! recorder): every app of a test process shares it.
//!
//! Who may scrape: `GET /metrics` answers only with `Authorization: Bearer
//! <metrics.token>`, or on the separate `metrics.bind` address (for a
//! private network); with neither configured it does not exist (404).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

/// Latency buckets in seconds: from a cached read to a slow external call.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder handle, installed on first use (`None` if another
/// recorder was installed first).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("job_duration_seconds".into()), &BUCKETS)
                })
                .ok()
                .and_then(|b| b.install_recorder().ok())
        })
        .as_ref()
}

/// Middleware: counts each request and records its latency, by method,
/// route template and status.
pub async fn http_layer(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
    response
}

/// Records a finished task: `outcome` is `success`, `retry` or `failed`.
pub fn job_finished(kind: &str, outcome: &'static str, seconds: f64) {
    metrics::counter!("jobs_finished_total", "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!("job_duration_seconds", "kind" => kind.to_owned()).record(seconds);
}

async fn rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_default()
}

/// Reads the gauges of stored state into the recorder: tasks by kind and
/// state, the oldest due task's lag, pending emails, unprocessed inbound
/// webhook events per source, open event streams, the database pool.
pub async fn refresh_gauges(state: &crate::state::AppState) {
    let db = &state.db;
    for row in rows(
        db,
        "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state",
    )
    .await
    {
        if let (Ok(kind), Ok(st), Ok(n)) = (
            row.try_get_by_index::<String>(0),
            row.try_get_by_index::<String>(1),
            row.try_get_by_index::<i64>(2),
        ) {
            metrics::gauge!("jobs", "kind" => kind, "state" => st).set(n as f64);
        }
    }
    let lag = crate::jobs::admin::due_lag_secs(db).await.unwrap_or(0.0);
    metrics::gauge!("jobs_due_lag_seconds").set(lag);
    for row in rows(
        db,
        "SELECT count(*) FROM email_outbox WHERE status = 'pending'",
    )
    .await
    {
        if let Ok(n) = row.try_get_by_index::<i64>(0) {
            metrics::gauge!("email_outbox_pending").set(n as f64);
        }
    }
    for row in rows(
        db,
        "SELECT source, count(*) FROM inbound_events WHERE status <> 'done' GROUP BY source",
    )
    .await
    {
        if let (Ok(source), Ok(n)) = (
            row.try_get_by_index::<String>(0),
            row.try_get_by_index::<i64>(1),
        ) {
            metrics::gauge!("inbound_events_unprocessed", "source" => source).set(n as f64);
        }
    }
    metrics::gauge!("event_stream_feeds").set(state.hub.feeds() as f64);
    let (size, idle) = pool_use(db);
    metrics::gauge!("db_pool_connections").set(size as f64);
    metrics::gauge!("db_pool_idle_connections").set(idle as f64);
}

/// The pool's open and idle connections.
pub fn pool_use(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        sea_orm::DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => (0, 0),
    }
}

/// The scrape: gauges refreshed, then everything in Prometheus' text
/// format.
pub async fn render(state: &crate::state::AppState) -> Option<String> {
    let handle = handle()?;
    refresh_gauges(state).await;
    handle.run_upkeep();
    Some(handle.render())
}
