//! Auth routes allow 10 requests per minute per client IP (SPEC §5).

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, test_config};

#[tokio::test]
async fn auth_routes_answer_429_with_retry_after_past_ten_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.rate_limit.auth_per_minute = 10;
    let app = TestApp::spawn_with(dir, config).await;
    // A new address each time: the per-account backoff stays out of it.
    let body = |i: usize| json!({ "email": format!("nobody{i}@example.com"), "password": "whatever-password" });
    for i in 0..10 {
        let r = app.post("/v1/auth/login", None, body(i)).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "request {i} is within the limit"
        );
    }
    let r = app.post("/v1/auth/login", None, body(10)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.is_problem());
    assert_eq!(r.code(), "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=6).contains(&retry),
        "one request refills every 6 s, got {retry}"
    );
    // Other auth routes share the client's budget; the rest of the API does not.
    let r = app
        .post(
            "/v1/auth/register/start",
            None,
            json!({ "email": "x@example.com" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.get("/health", None).await.status, StatusCode::OK);
}
