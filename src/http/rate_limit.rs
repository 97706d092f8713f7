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
