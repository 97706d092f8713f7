//! `Idempotency-Key` on `POST`s, with Stripe's semantics: the same key and
//! request replay the first answer; another request under the key is 422;
//! a key still running is 409; keys belong to their principal; an answer
//! that did not run is not kept; concurrent requests make one object.
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Resp, TestApp, email, into_resp};

async fn post_with_key(app: &TestApp, token: &str, key: &str, path: &str, body: Value) -> Resp {
    into_resp(
        app.client
            .post(app.url(path))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn the_same_key_replays_the_first_answer_and_another_body_is_refused() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("idem"), "Idem").await;
    let body = json!({ "name": "Once", "kind": "product" });
    let first = post_with_key(&app, &owner, "create-once-1", "/v1/companies", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = post_with_key(&app, &owner, "create-once-1", "/v1/companies", body.clone()).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.text, first.text, "the same answer, byte for byte");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.headers["content-type"], "application/json");
    let list = app.get("/v1/companies", Some(&owner)).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "one company"
    );

    let other = post_with_key(
        &app,
        &owner,
        "create-once-1",
        "/v1/companies",
        json!({ "name": "Twice", "kind": "product" }),
    )
    .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency_key_reused");

    // Keys are per principal: another owner's same key is another key.
    let stranger = app.owner(&email("stranger"), "Stranger").await;
    let theirs = post_with_key(
        &app,
        &stranger,
        "create-once-1",
        "/v1/companies",
        body.clone(),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::CREATED);
    assert_ne!(theirs.body["id"], first.body["id"]);

    // A refused request was not run and is not kept: its retry runs.
    app.set_plan(&app.business_id(&owner).await, "trial").await;
    let company = first.body["id"].as_str().unwrap();
    let channel = |p: &str| json!({ "company_id": company, "platform": p });
    let r = post_with_key(&app, &owner, "chan-1", "/v1/channels", channel("telegram")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = post_with_key(&app, &owner, "chan-2", "/v1/channels", channel("whatsapp")).await;
    assert_eq!(
        r.status,
        StatusCode::PAYMENT_REQUIRED,
        "over the trial's one channel"
    );
    let r2 = post_with_key(&app, &owner, "chan-2", "/v1/channels", channel("whatsapp")).await;
    assert_eq!(r2.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        r2.headers["idempotent-replayed"], "true",
        "a 402 ran, and is kept"
    );

    // A malformed key is refused before anything runs.
    let r = post_with_key(
        &app,
        &owner,
        &"k".repeat(256),
        "/v1/companies",
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_idempotency_key");
    // API keys have keys of their own too.
    let key = app.api_key(&owner, &["companies:write"]).await;
    let r = post_with_key(&app, &key, "create-once-1", "/v1/companies", body.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r2 = post_with_key(&app, &key, "create-once-1", "/v1/companies", body).await;
    assert_eq!(r2.body["id"], r.body["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_make_one_object() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("race"), "Race").await;
    for round in 0..5 {
        let key = format!("race-{round}");
        let body = json!({ "name": format!("Raced {round}"), "kind": "service" });
        let answers = futures::future::join_all(
            (0..8).map(|_| post_with_key(&app, &owner, &key, "/v1/companies", body.clone())),
        )
        .await;
        let mut created = 0;
        let mut ids = std::collections::HashSet::new();
        for r in &answers {
            match r.status {
                StatusCode::CREATED => {
                    created += 1;
                    ids.insert(r.body["id"].as_str().unwrap().to_owned());
                }
                StatusCode::CONFLICT => assert_eq!(r.code(), "idempotency_in_progress"),
                other => panic!("round {round}: {other} {}", r.text),
            }
        }
        assert!(created >= 1, "round {round}: someone got the answer");
        assert_eq!(
            ids.len(),
            1,
            "round {round}: every 201 names the same company"
        );
    }
    let list = app.get("/v1/companies?limit=100", Some(&owner)).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        5,
        "one company per key"
    );
}

#[tokio::test]
async fn old_keys_are_purged_by_the_job_runner() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("old"), "Old").await;
    let r = post_with_key(
        &app,
        &owner,
        "aging",
        "/v1/companies",
        json!({ "name": "Aged", "kind": "product" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    use sea_orm::{EntityTrait, PaginatorTrait};
    let db = &app.app.state.db;
    let rows = entity::idempotency_key::Entity::find()
        .count(db)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    // Age it past the retention, then run the purge.
    entity::idempotency_key::Entity::update_many()
        .col_expr(
            entity::idempotency_key::Column::CreatedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::hours(25)),
        )
        .exec(db)
        .await
        .unwrap();
    let purged = switchboard::jobs::cleanup::purge(&app.app.state)
        .await
        .unwrap();
    assert_eq!(purged.idempotency_keys, 1);
    // The key is free again: the same request now makes a new object.
    let r2 = post_with_key(
        &app,
        &owner,
        "aging",
        "/v1/companies",
        json!({ "name": "Aged", "kind": "product" }),
    )
    .await;
    assert_eq!(r2.status, StatusCode::CREATED);
    assert_ne!(r2.body["id"], r.body["id"]);
}
