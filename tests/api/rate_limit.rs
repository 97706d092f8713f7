//! Auth routes allow 10 requests per minute per client IP (SPEC §5).
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

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

fn header(r: &crate::common::Resp, name: &str) -> String {
    r.headers
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", r.headers))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_user_and_key_has_its_own_budget_and_an_admin_can_raise_a_business_s() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.rate_limit.api_per_minute = 3;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&crate::common::email("busy"), "Busy").await;
    let key = app.api_key(&owner, &["business:read"]).await; // the owner's 1st
    // Two more within the minute, each telling what is left.
    for left in [1, 0] {
        let r = app.get("/v1/business", Some(&owner)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(header(&r, "ratelimit-policy"), "\"api\";q=3;w=60");
        let state = header(&r, "ratelimit");
        assert!(
            state.starts_with(&format!("\"api\";r={left};t=")),
            "{state}"
        );
    }
    let r = app.get("/v1/business", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "rate_limited");
    assert!(r.is_problem());
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "one request refills every 20 s: {retry}"
    );
    assert!(header(&r, "ratelimit").starts_with("\"api\";r=0;"));
    // The business's key counts apart.
    let r = app.get("/v1/business", Some(&key)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // An admin raises the business's limit: its callers get the new budget.
    let admin = app.admin(&crate::common::email("root")).await;
    let business = {
        let r = app.get("/v1/business", Some(&key)).await;
        r.body["id"].as_str().unwrap().to_owned()
    };
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/businesses/{business}/rate-limit"),
            Some(&admin),
            Some(json!({ "per_minute": 600 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["per_minute"], 600);
    let r = app.get("/v1/business", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(header(&r, "ratelimit-policy"), "\"api\";q=600;w=60");
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/businesses/{business}/rate-limit"),
            Some(&admin),
            Some(json!({ "per_minute": 0 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let audit = app
        .get("/v1/admin/audit?action=business.rate_limit", Some(&admin))
        .await;
    assert_eq!(audit.body["items"][0]["detail"]["per_minute"], 600);
}
