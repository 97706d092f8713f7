//! Operators' endpoints: `GET /metrics` (Prometheus text) and `GET
//! /health/detailed` (database, migrations, job runner, outbox, inbound
//! ledger, event streams, reachability of each configured external system,
//! version and build). Neither is public: `/metrics` needs the metrics
//! token (or is served on the separate `metrics.bind` address) and does not
//! exist otherwise; `/health/detailed` answers admins, or the metrics
//! token.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use super::extract::{Json, bearer_of};
use crate::authz::{Action, Object};
use crate::domain::tenancy::access;
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Whether the request carries the configured metrics token.
fn has_metrics_token(state: &AppState, headers: &HeaderMap) -> bool {
    let (Some(token), Some(presented)) = (state.config.metrics.token.as_ref(), bearer_of(headers))
    else {
        return false;
    };
    let expected = token.expose_secret().as_bytes();
    expected.len() == presented.len() && bool::from(expected.ct_eq(presented.as_bytes()))
}

fn no_such_route() -> Error {
    Error::new(StatusCode::NOT_FOUND, "route_not_found", "No such route")
}

/// `GET /metrics` on the API's address: the metrics token, else 404.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !has_metrics_token(&state, &headers) {
        return no_such_route().into_response();
    }
    metrics_unguarded(State(state)).await
}

/// `GET /metrics` on the private `metrics.bind` address.
pub async fn metrics_unguarded(State(state): State<AppState>) -> Response {
    match crate::telemetry::render(&state).await {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        None => Error::internal("the metrics recorder is not installed").into_response(),
    }
}

/// One external system, as last probed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reachability {
    /// `stripe`, `google`, `facebook`, `smtp`.
    pub system: String,
    /// Whether it answered (any HTTP answer; an SMTP greeting).
    pub reachable: bool,
    /// What failed, if it did not.
    pub error: Option<String>,
    /// How long the probe took, in milliseconds.
    pub latency_ms: u64,
    /// When it was probed.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub checked_at: DateTime<Utc>,
}

/// The detailed health view.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailedHealth {
    /// `ok`, or `degraded` when something below is wrong.
    pub status: &'static str,
    /// The binary's version.
    pub version: &'static str,
    /// The commit it was built from.
    pub build: &'static str,
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// Database round trip, in milliseconds (`null`: unreachable).
    pub database_latency_ms: Option<f64>,
    /// Migrations not yet applied.
    pub pending_migrations: Option<usize>,
    /// Open and idle pool connections.
    pub pool: [u64; 2],
    /// Seconds the oldest due task has waited.
    pub jobs_due_lag_secs: f64,
    /// Tasks by state (`queued`, `running`, `retrying`, `failed`).
    #[schema(value_type = Object)]
    pub jobs: serde_json::Map<String, serde_json::Value>,
    /// Emails waiting to be sent.
    pub outbox_pending: i64,
    /// Inbound webhook events not yet processed, by source.
    #[schema(value_type = Object)]
    pub inbound_unprocessed: serde_json::Map<String, serde_json::Value>,
    /// Businesses with an open event stream on this instance.
    pub event_stream_feeds: usize,
    /// Each configured external system (probed at most once a minute).
    pub external: Vec<Reachability>,
}

/// How long a probe result is reused.
const PROBE_TTL: Duration = Duration::from_secs(60);
/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The last probes of the external systems, reused for [`PROBE_TTL`].
#[derive(Default)]
pub struct Probes {
    last: Mutex<Option<(Instant, Vec<Reachability>)>>,
}

async fn probe_http(system: &str, url: String) -> Reachability {
    let started = Instant::now();
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let result = match client {
        Ok(c) => c.get(&url).send().await.map(|_| ()).map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "request failed".to_owned()
            }
        }),
        Err(e) => Err(e.to_string()),
    };
    reach(system, started, result)
}

async fn probe_tcp(system: &str, host: String, port: u16) -> Reachability {
    let started = Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| "timed out".to_owned())
        .and_then(|r| r.map(|_| ()).map_err(|_| "could not connect".to_owned()));
    reach(system, started, result)
}

fn reach(system: &str, started: Instant, result: std::result::Result<(), String>) -> Reachability {
    Reachability {
        system: system.to_owned(),
        reachable: result.is_ok(),
        error: result.err(),
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        checked_at: Utc::now(),
    }
}

impl Probes {
    /// The configured systems' reachability, probed now if the last probe
    /// is older than a minute.
    pub async fn get(&self, config: &crate::config::Config) -> Vec<Reachability> {
        if let Ok(last) = self.last.lock()
            && let Some((at, results)) = last.as_ref()
            && at.elapsed() < PROBE_TTL
        {
            return results.clone();
        }
        let mut probes = Vec::new();
        if let Some(s) = &config.stripe {
            probes.push(Box::pin(probe_http(
                "stripe",
                format!("{}/v1/", s.api_base.trim_end_matches('/')),
            ))
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Reachability> + Send>,
                >);
        }
        if let Some(g) = &config.google {
            probes.push(Box::pin(probe_http(
                "google",
                format!(
                    "{}/.well-known/openid-configuration",
                    g.issuer_url.trim_end_matches('/')
                ),
            )));
        }
        if let Some(f) = &config.facebook {
            probes.push(Box::pin(probe_http("facebook", f.graph_url.clone())));
        }
        if let Some(host) = &config.smtp_host {
            probes.push(Box::pin(probe_tcp("smtp", host.clone(), config.smtp_port)));
        }
        let results = futures_util::future::join_all(probes).await;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((Instant::now(), results.clone()));
        }
        results
    }
}

/// Everything an operator looks at first, in one answer. Admins, or the
/// metrics token.
#[utoipa::path(get, path = "/health/detailed", tag = "health", security(("bearer" = [])),
    responses(
        (status = 200, body = DetailedHealth),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn detailed(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<DetailedHealth>> {
    if !has_metrics_token(&state, &headers) {
        let caller = super::extract::caller_from_headers(&state, &headers).await?;
        access::platform(&state.authz, caller, Object::Stats, Action::Read)?;
    }
    Ok(Json(gather(&state).await))
}

async fn gather(state: &AppState) -> DetailedHealth {
    use sea_orm::ConnectionTrait;
    let db = &state.db;
    let started = Instant::now();
    let reachable = db.execute_unprepared("SELECT 1").await.is_ok();
    let latency = reachable.then(|| started.elapsed().as_secs_f64() * 1000.0);
    let pending = {
        use migration::MigratorTrait;
        migration::Migrator::get_pending_migrations(db)
            .await
            .ok()
            .map(|p| p.len())
    };
    crate::telemetry::refresh_gauges(state).await;
    let count = |sql: &'static str| async move {
        db.query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap_or_default()
    };
    let mut jobs = serde_json::Map::new();
    for row in count("SELECT state, count(*) FROM jobs GROUP BY state").await {
        if let (Ok(s), Ok(n)) = (
            row.try_get_by_index::<String>(0),
            row.try_get_by_index::<i64>(1),
        ) {
            jobs.insert(s, n.into());
        }
    }
    let mut inbound = serde_json::Map::new();
    for row in
        count("SELECT source, count(*) FROM inbound_events WHERE status <> 'done' GROUP BY source")
            .await
    {
        if let (Ok(s), Ok(n)) = (
            row.try_get_by_index::<String>(0),
            row.try_get_by_index::<i64>(1),
        ) {
            inbound.insert(s, n.into());
        }
    }
    let outbox_pending = count("SELECT count(*) FROM email_outbox WHERE status = 'pending'")
        .await
        .first()
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0);
    let lag = crate::jobs::admin::due_lag_secs(db).await.unwrap_or(0.0);
    let external = state.probes.get(&state.config).await;
    let (size, idle) = crate::telemetry::pool_use(db);
    let healthy =
        reachable && pending == Some(0) && lag < 60.0 && external.iter().all(|e| e.reachable);
    DetailedHealth {
        status: if healthy { "ok" } else { "degraded" },
        version: env!("CARGO_PKG_VERSION"),
        build: env!("BUILD_GIT_COMMIT"),
        database: if state.config.is_sqlite() {
            "sqlite"
        } else {
            "postgres"
        },
        database_latency_ms: latency,
        pending_migrations: pending,
        pool: [u64::from(size), idle as u64],
        jobs_due_lag_secs: lag,
        jobs,
        outbox_pending,
        inbound_unprocessed: inbound,
        event_stream_feeds: state.hub.feeds(),
        external,
    }
}
