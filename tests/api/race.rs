//! The plan limit under concurrency: 20 parallel channel creations at
//! limit 1 leave exactly one channel, on SQLite and (with `DATABASE_URL`)
//! PostgreSQL.

use reqwest::StatusCode;

use crate::common::{TestApp, email};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_channel_creations_at_limit_one_create_exactly_one() {
    let app = TestApp::spawn().await;
    // Several rounds, each a fresh business: one lucky interleaving must not
    // be what makes this pass.
    for round in 0..4 {
        race_round(&app, round).await;
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "a test helper: a panic is a failed test"
)]
async fn race_round(app: &TestApp, round: usize) {
    let token = app.owner(&email("race"), &format!("Racers {round}")).await;
    let company = app.company(&token, "Track").await;
    warm_up(app, &token).await;

    let attempts = (0..20).map(|i| {
        let token = token.clone();
        let company = company.clone();
        async move {
            let platform = ["whatsapp", "telegram", "instagram", "facebook"][i % 4];
            app.channel(&token, &company, platform).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = results
        .iter()
        .filter(|r| r.status == StatusCode::PAYMENT_REQUIRED && r.code() == "plan_limit_reached")
        .count();
    let others: Vec<_> = results
        .iter()
        .filter(|r| r.status != StatusCode::CREATED && r.status != StatusCode::PAYMENT_REQUIRED)
        .map(|r| format!("{} {}", r.status, r.text))
        .collect();
    assert!(others.is_empty(), "unexpected answers: {others:?}");
    assert_eq!(created, 1, "exactly one creation wins");
    assert_eq!(refused, 19);
    let r = app.get("/v1/channels", Some(&token)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_creations_at_limit_four_leave_exactly_four_and_distinct_company_codes() {
    let app = TestApp::spawn().await;
    let token = app.owner(&email("race4"), "Racers Four").await;
    let business = app.business_id(&token).await;
    app.set_plan(&business, "growth").await;
    warm_up(&app, &token).await;

    // Company codes stay distinct under concurrency.
    let companies = futures::future::join_all((0..10).map(|i| {
        let app = &app;
        let token = token.clone();
        async move { app.company(&token, &format!("C{i}")).await }
    }))
    .await;
    let r = app.get("/v1/companies?limit=100", Some(&token)).await;
    let mut codes: Vec<String> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_owned())
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 10);

    let results = futures::future::join_all((0..20).map(|i| {
        let app = &app;
        let token = token.clone();
        let company = companies[i % companies.len()].clone();
        async move { app.channel(&token, &company, "telegram").await }
    }))
    .await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        4,
        "{:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
}

/// Opens 20 keep-alive HTTP connections and fills the database pool, so the
/// racing requests start together instead of queueing behind connection
/// set-up (which would serialise them and hide a race).
async fn warm_up(app: &TestApp, token: &str) {
    for _ in 0..3 {
        let gets = (0..20).map(|_| app.get("/v1/channels", Some(token)));
        for r in futures::future::join_all(gets).await {
            assert_eq!(r.status, StatusCode::OK);
        }
    }
}
