//! Stripe Connect onboarding, against the local Stripe server's Connect
//! side (`stripe_fake/connect.rs`): one account under concurrent creates,
//! onboarding and refresh links, the state from Stripe's own fields as
//! `account.updated` events arrive in any order, managers' read-only view,
//! and disconnecting.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::StripeConfig;

use crate::common::{TestApp, email, test_config};
use crate::stripe_fake::connect::{self as fake_connect, connect_event};
use crate::stripe_fake::{FakeStripe, signature};

pub(crate) const WHSEC: &str = "whsec_platform_endpoint_secret";
pub(crate) const WHSEC_CONNECT: &str = "whsec_connect_endpoint_secret";

pub(crate) async fn app_with_stripe() -> (TestApp, FakeStripe) {
    let fake = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    // Stripe's links come back to the public URL: the app's own address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.bind = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = format!("http://127.0.0.1:{port}");
    config.stripe = Some(stripe_config(&fake));
    (TestApp::spawn_with(dir, config).await, fake)
}

/// Billing and Connect on `fake`, with both endpoints' secrets.
fn stripe_config(fake: &FakeStripe) -> StripeConfig {
    StripeConfig {
        secret_key: SecretString::from("sk_test_connect"),
        api_base: fake.url.clone(),
        webhook_secrets: Some(SecretString::from(WHSEC)),
        success_url: None,
        cancel_url: None,
        portal_return_url: None,
        timeout_secs: 10,
        connect_webhook_secrets: Some(SecretString::from(WHSEC_CONNECT)),
        connect_country: "US".into(),
        connect_return_url: None,
    }
}

/// Delivers `event` to the Connect endpoint signed with `secret`.
pub(crate) async fn deliver(app: &TestApp, event: &Value, secret: &str) -> (u16, Value) {
    deliver_to(app, "/v1/webhooks/stripe/connect", event, secret).await
}

/// Posts `event` to `path` as Stripe does: JSON, signed with `secret`.
pub(crate) async fn deliver_to(
    app: &TestApp,
    path: &str,
    event: &Value,
    secret: &str,
) -> (u16, Value) {
    let payload = serde_json::to_string(event).unwrap();
    let t = chrono::Utc::now().timestamp();
    let res = reqwest::Client::new()
        .post(app.url(path))
        .header("Stripe-Signature", signature(&payload, &[secret], t))
        .header("Content-Type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn state(app: &TestApp, owner: &str) -> Value {
    let r = app.get("/v1/connect/account", Some(owner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_onboards_to_stripe_connect_and_disconnects() {
    let (app, stripe) = app_with_stripe().await;
    let mail = email("connect");
    let owner = app.owner(&mail, "Paid Bakery").await;
    let business = app.business_id(&owner).await;
    let r = app.get("/v1/connect/account", Some(&owner)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::NOT_FOUND, "no_connected_account")
    );

    // Ten parallel creates: one Stripe account, one answered 201.
    let calls = (0..10).map(|_| app.call(Method::POST, "/v1/connect/account", Some(&owner), None));
    let answers = futures::future::join_all(calls).await;
    let created = answers
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert!(
        answers
            .iter()
            .all(|r| r.status == StatusCode::CREATED || r.status == StatusCode::OK),
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(created, 1);
    let id = answers[0].body["stripe_account_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(answers.iter().all(|r| r.body["stripe_account_id"] == id));
    assert_eq!(stripe.accounts().len(), 1, "one account at Stripe");
    let creates = stripe.requests_to("POST", "/v1/accounts");
    let keys: std::collections::HashSet<_> =
        creates.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!(keys.len(), 1, "one idempotency key: {keys:?}");
    assert_eq!(creates[0].param("type"), Some("express"));
    assert_eq!(creates[0].param("country"), Some("US"));
    assert_eq!(creates[0].param("email"), Some(mail.as_str()));
    assert_eq!(
        creates[0].param("metadata[business_id]"),
        Some(business.as_str())
    );
    let a = state(&app, &owner).await;
    assert_eq!(a["state"], "onboarding_required", "{a}");
    assert_eq!(a["details_submitted"], false);
    let b = app.get("/v1/business", Some(&owner)).await;
    assert_eq!(b.status, StatusCode::OK);

    // A bad country.
    let other = app.owner(&email("connect-cc"), "Elsewhere").await;
    let r = app
        .post(
            "/v1/connect/account",
            Some(&other),
            json!({ "country": "usa" }),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );

    // The onboarding link, and the refresh route Stripe falls back to.
    let r = app
        .post("/v1/connect/onboarding-link", Some(&owner), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let first = r.body["url"].as_str().unwrap().to_owned();
    assert!(
        first.starts_with(&format!("https://connect.stripe.com/setup/e/{id}/")),
        "{first}"
    );
    assert!(r.body["expires_at"].is_string());
    let links = stripe.requests_to("POST", "/v1/account_links");
    let refresh = links[0].param("refresh_url").unwrap().to_owned();
    assert_eq!(links[0].param("type"), Some("account_onboarding"));
    assert_eq!(links[0].param("account"), Some(id.as_str()));
    assert!(
        refresh.starts_with(&app.url("/connect/stripe/refresh/")),
        "{refresh}"
    );
    assert!(links[0].param("return_url").unwrap().starts_with("http"));
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects.get(&refresh).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let fresh = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        fresh.starts_with("https://connect.stripe.com/setup/e/") && fresh != first,
        "{fresh}"
    );
    let res = no_redirects
        .get(app.url("/connect/stripe/refresh/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // No dashboard before onboarding is submitted.
    let r = app
        .post("/v1/connect/login-link", Some(&owner), json!({}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "onboarding_incomplete"),
        "{}",
        r.text
    );

    // Stripe's onboarding moves the account; its events move the state.
    let now = chrono::Utc::now().timestamp();
    for (n, (change, expected)) in [
        (
            fake_connect::pending_verification as fn(&mut Value),
            "pending_verification",
        ),
        (fake_connect::restricted, "restricted"),
        (fake_connect::enabled, "enabled"),
    ]
    .into_iter()
    .enumerate()
    {
        let account = stripe.update_account(&id, change);
        let event = connect_event("account.updated", &id, account, now + n as i64);
        let (status, body) = deliver(&app, &event, WHSEC_CONNECT).await;
        assert_eq!(
            (status, body["outcome"].as_str()),
            (200, Some("processed")),
            "{body}"
        );
        let a = state(&app, &owner).await;
        assert_eq!(a["state"], expected, "{a}");
        if expected == "restricted" {
            assert_eq!(a["disabled_reason"], "requirements.past_due");
            assert_eq!(a["currently_due"], json!(["external_account"]));
            assert_eq!(a["past_due"], json!(["external_account"]));
        }
    }
    let r = app
        .post("/v1/connect/login-link", Some(&owner), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://connect.stripe.com/express/")
    );

    // Each state change is an event.
    let events = app
        .get("/v1/events?type=connect.account_updated", Some(&owner))
        .await;
    let states: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["data"]["state"].as_str())
        .collect();
    assert_eq!(
        states,
        [
            "onboarding_required",
            "pending_verification",
            "restricted",
            "enabled"
        ]
    );

    // The business's manager sees the state, and changes nothing.
    let admin = app.admin(&email("connect-admin")).await;
    let (manager_id, manager) = app.manager(&admin, &email("connect-mgr")).await;
    let r = app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{business}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": manager_id })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = app
        .get(
            &format!("/v1/manager/businesses/{business}"),
            Some(&manager),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["connect"]["state"], "enabled", "{}", r.text);
    for (method, path) in [
        (Method::POST, "/v1/connect/account"),
        (Method::DELETE, "/v1/connect/account"),
        (Method::POST, "/v1/connect/onboarding-link"),
    ] {
        let r = app.call(method, path, Some(&manager), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }

    // Disconnect: Stripe refuses to delete an account with a balance, so
    // it is rejected; either way Switchboard forgets it.
    stripe.hold_balance(&id);
    let r = app
        .call(Method::DELETE, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["outcome"], "rejected");
    assert_eq!(
        stripe.account(&id).unwrap()["requirements"]["disabled_reason"],
        "rejected.other"
    );
    let r = app.get("/v1/connect/account", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A new account, without a balance: deleted at Stripe.
    let r = app
        .call(Method::POST, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let second = r.body["stripe_account_id"].as_str().unwrap().to_owned();
    let r = app
        .call(Method::DELETE, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(r.body["outcome"], "deleted", "{}", r.text);
    assert!(stripe.account(&second).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_events_in_any_order_settle_on_the_newest() {
    let (app, stripe) = app_with_stripe().await;
    let owner = app.owner(&email("connect-order"), "Ordered").await;
    let r = app
        .call(Method::POST, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["stripe_account_id"].as_str().unwrap().to_owned();
    let base = chrono::Utc::now().timestamp() + 10;
    let snapshots: Vec<Value> = [
        fake_connect::pending_verification as fn(&mut Value),
        fake_connect::restricted,
        fake_connect::enabled,
    ]
    .iter()
    .map(|f| stripe.update_account(&id, f))
    .collect();
    let events: Vec<Value> = snapshots
        .iter()
        .enumerate()
        .map(|(n, a)| connect_event("account.updated", &id, a.clone(), base + n as i64))
        .collect();
    // Newest first, then the older ones, then duplicates of each.
    let order = [2, 0, 1, 2, 1, 0];
    for &n in &order {
        let (status, body) = deliver(&app, &events[n], WHSEC_CONNECT).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(state(&app, &owner).await["state"], "enabled");
    let ledger = entity::inbound_event::Entity::find()
        .filter(entity::inbound_event::Column::Source.eq("stripe_connect"))
        .count(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(ledger, 3, "each event once in the ledger");

    // A tie: as old as the last applied, but saying something else. Stripe
    // is asked, and what it says now wins.
    let mut tie = snapshots[0].clone();
    tie["details_submitted"] = json!(false);
    stripe.update_account(&id, fake_connect::restricted);
    let (status, _) = deliver(
        &app,
        &connect_event("account.updated", &id, tie, base + 2),
        WHSEC_CONNECT,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(state(&app, &owner).await["state"], "restricted");

    // capability.updated: the account is read again.
    stripe.update_account(&id, fake_connect::enabled);
    let capability = json!({"id": "card_payments", "object": "capability", "account": id,
        "requested": true, "status": "active"});
    let (status, body) = deliver(
        &app,
        &connect_event("capability.updated", &id, capability, base + 3),
        WHSEC_CONNECT,
    )
    .await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("processed")),
        "{body}"
    );
    assert_eq!(state(&app, &owner).await["state"], "enabled");

    // Another platform's account: recorded, ignored.
    let stranger = connect_event(
        "account.updated",
        "acct_notours000000",
        snapshots[2].clone(),
        base,
    );
    let (status, body) = deliver(&app, &stranger, WHSEC_CONNECT).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );

    // Signed with the platform endpoint's secret, or not at all: 400,
    // nothing changes.
    let mut rejected = snapshots[0].clone();
    rejected["requirements"]["disabled_reason"] = json!("rejected.fraud");
    let forged = connect_event("account.updated", &id, rejected, base + 100);
    let (status, body) = deliver(&app, &forged, WHSEC).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("signature_mismatch")),
        "{body}"
    );
    let res = reqwest::Client::new()
        .post(app.url("/v1/webhooks/stripe/connect"))
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(state(&app, &owner).await["state"], "enabled");
    // Malformed, but signed.
    let (status, body) = deliver(&app, &json!({"id": "evt_x"}), WHSEC_CONNECT).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_event")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_stripe_connect_answers_503() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("connect-none"), "Unpaid").await;
    let r = app
        .call(Method::POST, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (503, "billing_unavailable"),
        "{}",
        r.text
    );
    let res = reqwest::Client::new()
        .post(app.url("/v1/webhooks/stripe/connect"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_account_gets_its_n8n_credential_and_loses_it_on_removal() {
    let Some(n8n) = crate::common::n8n() else {
        return;
    };
    let stripe = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.stripe = Some(stripe_config(&stripe));
    config.n8n = Some(n8n.config(None));
    config.jobs.poll_ms = 20;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("connect-n8n"), "Automated").await;
    let business: uuid::Uuid = app.business_id(&owner).await.parse().unwrap();
    let r = app
        .call(Method::POST, "/v1/connect/account", Some(&owner), None)
        .await;
    let id = r.body["stripe_account_id"].as_str().unwrap().to_owned();
    let recorded = async || {
        entity::n8n_object::Entity::find()
            .filter(entity::n8n_object::Column::BusinessId.eq(business))
            .filter(entity::n8n_object::Column::Purpose.eq("stripe_account"))
            .one(&app.app.state.db)
            .await
            .unwrap()
    };
    // Not before the account is enabled.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(recorded().await.is_none());
    let account = stripe.update_account(&id, fake_connect::enabled);
    let now = chrono::Utc::now().timestamp() + 1;
    let (status, _) = deliver(
        &app,
        &connect_event("account.updated", &id, account, now),
        WHSEC_CONNECT,
    )
    .await;
    assert_eq!(status, 200);
    let mut credential = None;
    for _ in 0..200 {
        credential = recorded().await;
        if credential.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let credential = credential.expect("the n8n credential for the connected account");
    assert_eq!(credential.kind, "credential");

    // Disconnected: the credential goes from n8n too.
    let r = app
        .call(Method::DELETE, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for _ in 0..200 {
        if recorded().await.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recorded().await.is_none());
    let (status, _) = n8n
        .call(
            Method::DELETE,
            &format!("/credentials/{}", credential.n8n_id),
            None,
        )
        .await;
    assert_eq!(status, 404, "Switchboard deleted it in n8n");
}
