//! Operators' endpoints and what every response carries: `/metrics` only
//! with its token (or nowhere), `/health/detailed` for admins or that
//! token, security headers, CORS for configured origins only, and the docs
//! page working under its content security policy (in Chromium).
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, email, into_resp, test_config};

const TOKEN: &str = "metrics-token-0123456789abcdefghijkl";

async fn app_with(configure: impl FnOnce(&mut switchboard::config::Config)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    configure(&mut config);
    TestApp::spawn_with(dir, config).await
}

#[tokio::test]
async fn metrics_exist_only_behind_their_token_and_count_by_route_template() {
    let closed = TestApp::spawn().await;
    let r = closed.get("/metrics", None).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "no token configured: no metrics"
    );

    let app = app_with(|c| c.metrics.token = Some(TOKEN.to_owned().into())).await;
    let owner = app.owner(&email("measured"), "Measured").await;
    let company = app.company(&owner, "Counted").await;
    app.get(&format!("/v1/companies/{company}"), Some(&owner))
        .await;
    for token in [None, Some("wrong-token-wrong-token-wrong-token!")] {
        let r = app.get("/metrics", token).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    let r = into_resp(
        app.client
            .get(app.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text;
    for needle in [
        "http_requests_total{method=\"GET\",route=\"/v1/companies/{id}\",status=\"200\"}",
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/companies\"",
        "jobs{kind=\"billing.sweep\"",
        "jobs_due_lag_seconds",
        "email_outbox_pending",
        "db_pool_connections",
        "jobs_finished_total{kind=\"email.deliver\",outcome=\"success\"}",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    assert!(!text.contains(&company), "ids never label a series");

    // A separate private address serves it without a token.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let private =
        app_with(|c| c.metrics.bind = Some(format!("127.0.0.1:{port}").parse().unwrap())).await;
    private.get("/health", None).await;
    let mut got = None;
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            got = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(got.unwrap().contains("http_requests_total"));
    assert_eq!(
        private.get("/metrics", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_detailed_health_view_is_for_admins_and_the_metrics_token() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app_with(|c| {
        c.metrics.token = Some(TOKEN.to_owned().into());
        c.stripe = Some(switchboard::config::StripeConfig {
            secret_key: "sk_test_x".to_owned().into(),
            api_base: format!("http://127.0.0.1:{dead}"),
            webhook_secrets: None,
            success_url: None,
            cancel_url: None,
            portal_return_url: None,
            timeout_secs: 5,
            connect_webhook_secrets: None,
            connect_country: "US".into(),
            connect_return_url: None,
        });
    })
    .await;
    assert_eq!(
        app.get("/health/detailed", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let owner = app.owner(&email("curious"), "Curious").await;
    assert_eq!(
        app.get("/health/detailed", Some(&owner)).await.status,
        StatusCode::FORBIDDEN
    );
    let admin = app.admin(&email("ops")).await;
    let r = app.get("/health/detailed", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(r.body["build"].as_str().unwrap().len() >= 7);
    assert_eq!(r.body["pending_migrations"], 0);
    assert!(r.body["database_latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        r.body["jobs"]["queued"].as_i64().unwrap() >= 1,
        "{}",
        r.text
    );
    let stripe = &r.body["external"][0];
    assert_eq!(stripe["system"], "stripe");
    assert_eq!(stripe["reachable"], false, "nothing listens there");
    assert_eq!(r.body["status"], "degraded");
    let checked = stripe["checked_at"].clone();
    // Probed at most once a minute: the next answer reuses the probe.
    let r = into_resp(
        app.client
            .get(app.url("/health/detailed"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["external"][0]["checked_at"], checked);
}

#[tokio::test]
async fn every_answer_carries_security_headers_and_hsts_behind_https() {
    let app = TestApp::spawn().await;
    let r = app.get("/v1/billing/plans", None).await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["referrer-policy"], "no-referrer");
    assert_eq!(
        r.headers["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(
        r.headers.get("strict-transport-security").is_none(),
        "http: no HSTS"
    );
    let r = app.get("/v1/companies", None).await;
    assert_eq!(r.headers["x-content-type-options"], "nosniff", "errors too");
    let docs = into_resp(app.client.get(app.url("/docs/")).send().await.unwrap()).await;
    let policy = docs.headers["content-security-policy"].to_str().unwrap();
    // Only the page's own scripts: `default-src 'self'` governs them.
    assert!(
        policy.starts_with("default-src 'self'") && !policy.contains("script-src"),
        "{policy}"
    );
    let secure = app_with(|c| c.public_url = "https://api.example.com".into()).await;
    let r = secure.get("/health", None).await;
    assert_eq!(
        r.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = app_with(|c| c.cors.allowed_origins = vec!["https://app.example.com".into()]).await;
    let preflight = |origin: &'static str| {
        let app = &app;
        async move {
            app.client
                .request(reqwest::Method::OPTIONS, app.url("/v1/companies"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization,content-type,idempotency-key",
                )
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://app.example.com").await;
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("idempotency-key")
    );
    let evil = preflight("https://evil.example.net").await;
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .get(app.url("/v1/billing/plans"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("ratelimit")
    );
    let _ = json!({});
}

#[tokio::test]
async fn the_docs_page_renders_offline_under_its_content_security_policy() {
    if !crate::common::has_chromium() {
        return;
    }
    let app = TestApp::spawn().await;
    let mut browser = crate::browser::Browser::open(&app.url("/docs/")).await;
    browser
        .wait_for(
            "Swagger UI rendered the document's operations",
            "document.body.innerText.includes('Switchboard API') && document.querySelector('.opblock') !== null",
            std::time::Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        browser.csp_violations().await,
        Vec::<String>::new(),
        "no CSP violation"
    );
}
