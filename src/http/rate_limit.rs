//! Rate limits with tower-governor (GCRA): `/v1/auth/*` allows
//! `rate_limit.auth_per_minute` requests per client (SPEC §5: 10/min),
//! refilled evenly; beyond it, 429 `rate_limited` with `Retry-After`. The
//! client is the address [`super::client_ip`] resolved (trusted proxies
//! honoured), an IPv6 client counted by its /64.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::response::IntoResponse;
use governor::middleware::NoOpMiddleware;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use super::client_ip::{ClientAddr, rate_key};
use crate::config::RateLimitConfig;
use crate::error::Error;

/// The rate-limit key of a request: its resolved client address
/// ([`ClientAddr`]), IPv6 by /64 ([`rate_key`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        req.extensions()
            .get::<ClientAddr>()
            .map(|c| rate_key(c.0))
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The layer for `/v1/auth/*`. Its limiter state is pruned every minute.
pub fn auth_layer(
    config: &RateLimitConfig,
) -> GovernorLayer<ClientIp, NoOpMiddleware<governor::clock::QuantaInstant>, Body> {
    let per_minute = u64::from(config.auth_per_minute.max(1));
    let governor: Arc<GovernorConfig<ClientIp, NoOpMiddleware<governor::clock::QuantaInstant>>> =
        Arc::new(
            GovernorConfigBuilder::default()
                .key_extractor(ClientIp)
                .period(Duration::from_nanos(60_000_000_000 / per_minute))
                .burst_size(config.auth_per_minute.max(1))
                .finish()
                .unwrap_or_else(|| unreachable!("period and burst are positive")),
        );
    // Prune idle clients every minute, until the router (and limiter) is gone.
    let limiter = Arc::downgrade(governor.limiter());
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match limiter.upgrade() {
                    Some(limiter) => limiter.retain_recent(),
                    None => break,
                }
            }
        });
    }
    GovernorLayer::new(governor).error_handler(too_many)
}

fn too_many(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
        )
        .with_detail(format!("Retry in {wait_time} s."))
        .with_retry_after(wait_time.max(1))
        .into_response(),
        GovernorError::UnableToExtractKey => {
            Error::internal("rate limiter could not find the client IP").into_response()
        }
        GovernorError::Other { code, msg, .. } => {
            Error::new(code, "rate_limited", "Request refused")
                .with_detail(msg.unwrap_or_default())
                .into_response()
        }
    }
}

/// The per-principal limit of an authenticated request, as its headers say
/// it (IETF draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy:
/// "api";q=100;w=60` and `RateLimit: "api";r=42;t=18`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests allowed per window (`q`).
    pub limit: u32,
    /// Requests left now (`r`).
    pub remaining: u32,
    /// Seconds until the quota is whole again (`t`); on a refusal, until
    /// the next request is allowed.
    pub reset_secs: u64,
    /// Whether this request was refused.
    pub exceeded: bool,
}

impl RateInfo {
    /// Writes `RateLimit-Policy` and `RateLimit` (and `Retry-After` on a
    /// refusal) into `headers`.
    pub fn write_headers(&self, headers: &mut axum::http::HeaderMap) {
        let policy = format!("\"api\";q={};w=60", self.limit);
        let state = format!("\"api\";r={};t={}", self.remaining, self.reset_secs);
        for (name, value) in [("ratelimit-policy", policy), ("ratelimit", state)] {
            if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
        if self.exceeded {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(self.reset_secs.max(1)),
            );
        }
    }

    /// 429 `rate_limited` when the request was refused.
    pub fn refused(&self) -> Option<Error> {
        self.exceeded.then(|| {
            Error::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
            )
            .with_detail(format!(
                "At most {} requests a minute for this user or API key; retry in {} s.",
                self.limit,
                self.reset_secs.max(1)
            ))
            .with_retry_after(self.reset_secs.max(1))
        })
    }
}

type Limiter = governor::RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    governor::clock::DefaultClock,
    governor::middleware::StateInformationMiddleware,
>;

/// How long an admin's per-business limit is remembered per process.
const OVERRIDE_RECHECK_MS: i64 = 10_000;

/// The per-principal request limit of the API: `rate_limit.api_per_minute`
/// per user and per API key (SPEC §5: 100/min), or the business's own limit
/// when an admin set one (`PUT /v1/admin/businesses/{id}/rate-limit`). GCRA
/// (governor), refilled evenly. Counted per process: instances sharing a
/// database each count their own requests (see README, "Limits").
pub struct ApiLimits {
    default_per_minute: u32,
    limiters: std::sync::Mutex<std::collections::HashMap<u32, Arc<Limiter>>>,
    overrides: crate::memo::Memo<uuid::Uuid, (u32, i64)>,
}

impl ApiLimits {
    /// `default_per_minute` unless a business says otherwise.
    pub fn new(default_per_minute: u32) -> ApiLimits {
        ApiLimits {
            default_per_minute: default_per_minute.max(1),
            limiters: Default::default(),
            overrides: crate::memo::Memo::new(65_536),
        }
    }

    fn limiter(&self, per_minute: u32) -> Arc<Limiter> {
        let mut limiters = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        limiters
            .entry(per_minute)
            .or_insert_with(|| {
                let quota = governor::Quota::per_minute(
                    std::num::NonZeroU32::new(per_minute).unwrap_or(std::num::NonZeroU32::MIN),
                );
                let limiter = Arc::new(
                    governor::RateLimiter::keyed(quota)
                        .with_middleware::<governor::middleware::StateInformationMiddleware>(),
                );
                prune_every_minute(Arc::downgrade(&limiter));
                limiter
            })
            .clone()
    }

    /// The limit that applies to a principal of `business` (per minute).
    async fn per_minute<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        business: Option<uuid::Uuid>,
    ) -> Result<u32, Error> {
        let Some(business) = business else {
            return Ok(self.default_per_minute);
        };
        let now = chrono::Utc::now().timestamp_millis();
        if let Some((limit, read_at)) = self.overrides.get(&business)
            && now - read_at < OVERRIDE_RECHECK_MS
        {
            return Ok(limit);
        }
        use sea_orm::{EntityTrait, QuerySelect};
        let set: Option<Option<i32>> = entity::business::Entity::find_by_id(business)
            .select_only()
            .column(entity::business::Column::ApiRateLimitPerMinute)
            .into_tuple()
            .one(db)
            .await?;
        let limit = set
            .flatten()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(self.default_per_minute);
        self.overrides.insert(business, (limit, now), |(_, at)| {
            now - at < OVERRIDE_RECHECK_MS
        });
        Ok(limit)
    }

    /// Forgets what is remembered of `business`'s limit (an admin changed it).
    pub fn forget(&self, business: uuid::Uuid) {
        self.overrides.remove(&business);
    }

    /// Counts one request of `principal` (acting for `business`, if any).
    pub async fn check<C: sea_orm::ConnectionTrait>(
        &self,
        db: &C,
        principal: &str,
        business: Option<uuid::Uuid>,
    ) -> Result<RateInfo, Error> {
        let limit = self.per_minute(db, business).await?;
        let limiter = self.limiter(limit);
        let period_ms = 60_000 / u64::from(limit);
        Ok(match limiter.check_key(&principal.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                RateInfo {
                    limit,
                    remaining,
                    reset_secs: (u64::from(limit - remaining.min(limit)) * period_ms)
                        .div_ceil(1000),
                    exceeded: false,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                RateInfo {
                    limit,
                    remaining: 0,
                    reset_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                    exceeded: true,
                }
            }
        })
    }
}

fn prune_every_minute(limiter: std::sync::Weak<Limiter>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                match limiter.upgrade() {
                    Some(limiter) => limiter.retain_recent(),
                    None => break,
                }
            }
        });
    }
}
