//! Password hashing under a login flood: a login that cannot start hashing
//! within `auth.hash_wait_ms` answers 503 `auth_overloaded` with
//! `Retry-After` (known and unknown emails alike) instead of queueing, and
//! signing in works again once hashing is free.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{PASSWORD, TestApp, email, test_config};

#[tokio::test]
async fn a_login_that_cannot_start_hashing_in_time_answers_503_and_later_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.auth.hash_concurrency = Some(1);
    config.auth.hash_wait_ms = 100;
    let app = TestApp::spawn_with(dir, config).await;
    let known = email("flooded");
    app.register(&known, "Flood Co").await;

    // 16 logins at once, half for an unknown address: one hash at a time
    // (tens of milliseconds each) cannot serve them all within 100 ms.
    let logins = (0..16).map(|i| {
        let who = if i % 2 == 0 {
            known.clone()
        } else {
            email("nobody")
        };
        let app = &app;
        async move {
            let started = Instant::now();
            let r = app
                .post(
                    "/v1/auth/login",
                    None,
                    json!({ "email": who, "password": PASSWORD }),
                )
                .await;
            (i % 2 == 0, r, started.elapsed())
        }
    });
    let results = futures::future::join_all(logins).await;
    let mut overloaded = [0, 0];
    for (is_known, r, took) in &results {
        match r.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.code(), "auth_overloaded", "{}", r.text);
                assert!(r.is_problem());
                let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(retry >= 1);
                assert!(
                    *took < Duration::from_millis(100) + Duration::from_secs(2),
                    "answered soon after the wait: {took:?}"
                );
                overloaded[usize::from(*is_known)] += 1;
            }
            StatusCode::OK => assert!(is_known, "{}", r.text),
            StatusCode::UNAUTHORIZED => assert!(!is_known, "{}", r.text),
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert!(
        overloaded[0] + overloaded[1] >= 1,
        "the flood met the bounded wait: {overloaded:?}"
    );

    // Once hashing is free, signing in works.
    app.login(&known).await;
}
