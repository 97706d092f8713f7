//! The newcomer's whole journey through the API.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, email};

#[tokio::test]
async fn newcomer_flow_register_to_logout() {
    let app = TestApp::spawn().await;
    let mail = email("newcomer");

    // Register: code read from the dev mailbox.
    let pair = app.register(&mail, "Acme Flowers").await;
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);

    // Login with the new password.
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail.to_uppercase(), "password": crate::common::PASSWORD }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "login is case-insensitive on email: {}",
        r.text
    );
    let access = r.body["access_token"].as_str().unwrap().to_owned();
    let refresh1 = r.body["refresh_token"].as_str().unwrap().to_owned();

    // The business is on a 7-day trial with one channel allowed.
    let r = app.get("/v1/business", Some(&access)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Acme Flowers");
    assert_eq!(r.body["plan"]["id"], "trial");
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["channels"], json!({ "used": 0, "limit": 1 }));
    let trial_end =
        chrono::DateTime::parse_from_rfc3339(r.body["trial_ends_at"].as_str().unwrap()).unwrap();
    let days = (trial_end.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_hours();
    assert!(
        (167..=168).contains(&days),
        "trial ends in 7 days, got {days} h"
    );

    // Company, numbered COMP001.
    let r = app
        .post(
            "/v1/companies",
            Some(&access),
            json!({ "name": "Shop", "kind": "hybrid" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["code"], "COMP001");
    let company = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/companies",
            Some(&access),
            json!({ "name": "Second", "kind": "service" }),
        )
        .await;
    assert_eq!(r.body["code"], "COMP002");

    // First channel fits the trial's limit of 1.
    let r = app.channel(&access, &company, "whatsapp").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "disconnected");

    // Second channel is refused with the plan's numbers.
    let r = app.channel(&access, &company, "telegram").await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED, "{}", r.text);
    assert!(r.is_problem());
    assert_eq!(r.code(), "plan_limit_reached");
    assert_eq!(r.body["plan"], "trial");
    assert_eq!(r.body["limit"], 1);
    assert_eq!(r.body["used"], 1);

    let r = app.get("/v1/business", Some(&access)).await;
    assert_eq!(r.body["channels"], json!({ "used": 1, "limit": 1 }));

    // Refresh rotation: a new pair, the old refresh token is spent.
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let refresh2 = r.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh1, refresh2);
    let access2 = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/me", Some(&access2)).await.status,
        StatusCode::OK
    );

    // Reuse detection: presenting the spent token revokes the family, so
    // the newest token of the family dies too.
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh1 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "refresh_token_reused");
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh2 }),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "family revoked: {}",
        r.text
    );

    // Logout revokes a fresh session's refresh token.
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": crate::common::PASSWORD }),
        )
        .await;
    let refresh3 = r.body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh3 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({ "refresh_token": refresh3 }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_failures_do_not_reveal_whether_the_email_exists() {
    let app = TestApp::spawn().await;
    let mail = email("known");
    app.register(&mail, "Known Ltd").await;
    let wrong_password = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": mail, "password": "not the password at all" }),
        )
        .await;
    let unknown = app
        .post(
            "/v1/auth/login",
            None,
            json!({ "email": email("unknown"), "password": "not the password at all" }),
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.body, unknown.body);
}

#[tokio::test]
async fn registration_code_is_single_use_and_attempts_are_limited() {
    let app = TestApp::spawn().await;
    let mail = email("codes");
    app.post("/v1/auth/register/start", None, json!({ "email": mail }))
        .await;
    let code = app.last_code(&mail).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in (1..5).rev() {
        let r = app
            .post(
                "/v1/auth/register/verify",
                None,
                json!({ "email": mail, "code": wrong }),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.code(), "invalid_code");
        assert_eq!(r.body["attempts_remaining"], remaining);
    }
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": mail, "code": wrong }),
        )
        .await;
    assert_eq!(r.code(), "invalid_code");
    // Five wrong attempts: even the right code is now refused.
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": mail, "code": code }),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "code_attempts_exceeded");

    // A new code works once.
    app.post("/v1/auth/register/start", None, json!({ "email": mail }))
        .await;
    let code = app.last_code(&mail).await;
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": mail, "code": code }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app
        .post(
            "/v1/auth/register/verify",
            None,
            json!({ "email": mail, "code": code }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "single use");
}

#[tokio::test]
async fn registering_a_taken_email_reveals_nothing_and_sends_no_code() {
    let app = TestApp::spawn().await;
    let mail = email("taken");
    app.register(&mail, "First").await;
    let before = app.app.state.mailer.messages_to(&mail).len();
    let r = app
        .post("/v1/auth/register/start", None, json!({ "email": mail }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let messages = app.wait_for_messages(&mail, before + 1).await;
    assert_eq!(messages.len(), before + 1);
    assert!(!messages.last().unwrap().text.contains("code is"));
    assert!(messages.last().unwrap().subject.contains("already have"));
}

#[tokio::test]
async fn companies_paginate_with_cursor_and_update() {
    let app = TestApp::spawn().await;
    let token = app.owner(&email("pages"), "Pages Inc").await;
    for i in 0..5 {
        app.company(&token, &format!("Company {i}")).await;
    }
    let mut codes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/companies?limit=2&cursor={c}"),
            None => "/v1/companies?limit=2".to_owned(),
        };
        let r = app.get(&path, Some(&token)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let items = r.body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        codes.extend(items.iter().map(|c| c["code"].as_str().unwrap().to_owned()));
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        codes,
        ["COMP001", "COMP002", "COMP003", "COMP004", "COMP005"]
    );

    let id = app.company(&token, "Renamed later").await;
    let r = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/companies/{id}"),
            Some(&token),
            Some(json!({ "name": "Renamed", "status": "inactive" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "Renamed");
    assert_eq!(r.body["status"], "inactive");
    let r = app.get("/v1/companies?status=inactive", Some(&token)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/companies/{id}"),
            Some(&token),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "suspension is the platform's"
    );
}

#[tokio::test]
async fn deleting_a_channel_frees_its_plan_slot_and_company_delete_cascades() {
    let app = TestApp::spawn().await;
    let token = app.owner(&email("slots"), "Slots").await;
    let company = app.company(&token, "One").await;
    let ch = app.channel(&token, &company, "telegram").await;
    assert_eq!(ch.status, StatusCode::CREATED);
    let id = ch.body["id"].as_str().unwrap();
    let r = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/channels/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/v1/channels/{id}"), Some(&token))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app.channel(&token, &company, "email").await;
    assert_eq!(r.status, StatusCode::CREATED, "slot freed: {}", r.text);

    let r = app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/companies/{company}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get("/v1/business", Some(&token)).await;
    assert_eq!(
        r.body["channels"]["used"], 0,
        "channels of a deleted company are gone"
    );
}

#[tokio::test]
async fn channel_list_filters_by_company_platform_and_status() {
    let app = TestApp::spawn().await;
    let token = app.owner(&email("filters"), "Filters").await;
    let business = app.business_id(&token).await;
    app.set_plan(&business, "growth").await;
    let a = app.company(&token, "A").await;
    let b = app.company(&token, "B").await;
    assert_eq!(
        app.channel(&token, &a, "whatsapp").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.channel(&token, &a, "telegram").await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.channel(&token, &b, "whatsapp").await.status,
        StatusCode::CREATED
    );
    let count = |r: crate::common::Resp| r.body["items"].as_array().unwrap().len();
    assert_eq!(
        count(
            app.get(&format!("/v1/channels?company_id={a}"), Some(&token))
                .await
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/v1/channels?platform=whatsapp", Some(&token))
                .await
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/v1/channels?status=disconnected", Some(&token))
                .await
        ),
        3
    );
    assert_eq!(
        count(app.get("/v1/channels?status=connected", Some(&token)).await),
        0
    );
    let r = app.get("/v1/business", Some(&token)).await;
    assert_eq!(r.body["channels"], json!({ "used": 3, "limit": 4 }));
}

#[tokio::test]
async fn an_ended_trial_requires_a_subscription_for_new_channels() {
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    let app = TestApp::spawn().await;
    let token = app.owner(&email("lapsed"), "Lapsed").await;
    let company = app.company(&token, "C").await;
    let id: uuid::Uuid = app.business_id(&token).await.parse().unwrap();
    let b = entity::business::Entity::find_by_id(id)
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    let mut active = b.into_active_model();
    active.trial_ends_at = Set(chrono::Utc::now() - chrono::Duration::minutes(1));
    active.update(&app.app.state.db).await.unwrap();

    let r = app.channel(&token, &company, "whatsapp").await;
    assert_eq!(r.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(r.code(), "subscription_required");
    let r = app.get("/v1/business", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "reading still works");
    assert_eq!(r.body["status"], "restricted");
}

#[tokio::test]
async fn me_can_be_read_and_renamed() {
    let app = TestApp::spawn().await;
    let mail = email("me");
    let token = app.owner(&mail, "Me Co").await;
    let r = app.get("/v1/me", Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["email"], mail);
    assert_eq!(r.body["role"], "owner");
    assert!(r.body["business_id"].is_string());
    assert!(r.body.get("password_hash").is_none());
    let r = app
        .call(
            reqwest::Method::PATCH,
            "/v1/me",
            Some(&token),
            Some(json!({ "full_name": "New Name" })),
        )
        .await;
    assert_eq!(r.body["full_name"], "New Name");
    let r = app
        .call(
            reqwest::Method::PATCH,
            "/v1/business",
            Some(&token),
            Some(json!({ "name": "Renamed Co" })),
        )
        .await;
    assert_eq!(r.body["name"], "Renamed Co");
}
