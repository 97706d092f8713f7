//! End-customer payments against the local Stripe server: a purchase is a
//! Checkout Session whose charge goes to the business's connected account;
//! Stripe's events (platform endpoint) move the log on, in any order; bad
//! amounts and currencies are refused with the field.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use rand::seq::SliceRandom;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::common::{TestApp, email};
use crate::connect::{WHSEC, WHSEC_CONNECT, app_with_stripe};
use crate::stripe_fake::connect::{self as fake_connect, connect_event};
use crate::stripe_fake::{FakeStripe, event};

/// Signs and posts `event` to the platform endpoint.
async fn deliver(app: &TestApp, event: &Value) -> (u16, Value) {
    crate::connect::deliver_to(app, "/v1/webhooks/stripe", event, WHSEC).await
}

/// An owner whose business has an enabled connected account; returns the
/// owner's token, a company and the account id.
async fn paid_business(app: &TestApp, stripe: &FakeStripe, who: &str) -> (String, String, String) {
    let owner = app.owner(&email(who), "Shop").await;
    let company = app.company(&owner, "Shop").await;
    let r = app
        .call(Method::POST, "/v1/connect/account", Some(&owner), None)
        .await;
    let account = r.body["stripe_account_id"].as_str().unwrap().to_owned();
    let a = stripe.update_account(&account, fake_connect::enabled);
    let now = chrono::Utc::now().timestamp() + 1;
    let (status, _) = crate::connect::deliver(
        app,
        &connect_event("account.updated", &account, a, now),
        WHSEC_CONNECT,
    )
    .await;
    assert_eq!(status, 200);
    (owner, company, account)
}

fn body(company: &str, amount: Value) -> Value {
    json!({
        "company_id": company,
        "customer_ref": "+15550001111",
        "description": "Two loaves of rye",
        "amount": amount,
        "currency": "usd",
        "lead_source": "tiktok",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_customer_pays_the_business_and_the_log_follows() {
    let (app, stripe) = app_with_stripe().await;
    let (owner, company, account) = paid_business(&app, &stripe, "buyer").await;
    // n8n asks for the link with an API key.
    let key = app
        .api_key(&owner, &["purchases:write", "purchases:read"])
        .await;
    let r = app
        .post("/v1/purchases", Some(&key), body(&company, json!(1250)))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["status"], "payment_link_sent");
    assert_eq!(r.body["amount"], 1250);
    assert_eq!(r.body["currency"], "usd");
    assert_eq!(r.body["lead_source"], "tiktok");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let session = r.body["stripe_checkout_session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        r.body["payment_url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    // A destination charge to the connected account, for this purchase.
    let params = stripe.checkout_session_params(&session).unwrap();
    let p = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(p("mode"), Some("payment"));
    assert_eq!(
        p("payment_intent_data[transfer_data][destination]"),
        Some(account.as_str())
    );
    assert_eq!(
        p("payment_intent_data[application_fee_amount]"),
        None,
        "commission 0"
    );
    assert_eq!(p("line_items[0][price_data][unit_amount]"), Some("1250"));
    assert_eq!(p("line_items[0][price_data][currency]"), Some("usd"));
    assert_eq!(p("client_reference_id"), Some(id.as_str()));
    assert_eq!(
        p("payment_intent_data[metadata][purchase_id]"),
        Some(id.as_str())
    );

    // The account cannot be disconnected while the link is open.
    let r = app
        .call(Method::DELETE, "/v1/connect/account", Some(&owner), None)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "purchases_open"),
        "{}",
        r.text
    );

    // Paid; a late expiry changes nothing; then refunded.
    let now = chrono::Utc::now().timestamp();
    let paid = stripe.pay_checkout(&session);
    let (status, b) = deliver(&app, &event("checkout.session.completed", paid, now)).await;
    assert_eq!(
        (status, b["outcome"].as_str()),
        (200, Some("processed")),
        "{b}"
    );
    let r = app.get(&format!("/v1/purchases/{id}"), Some(&key)).await;
    assert_eq!(r.body["status"], "paid", "{}", r.text);
    assert!(
        r.body["stripe_payment_intent_id"]
            .as_str()
            .unwrap()
            .starts_with("pi_")
    );
    let mut late = stripe.expire_checkout(&session);
    late["status"] = json!("expired");
    deliver(&app, &event("checkout.session.expired", late, now + 1)).await;
    let r = app.get(&format!("/v1/purchases/{id}"), Some(&owner)).await;
    assert_eq!(r.body["status"], "paid", "a late expiry changes nothing");
    let refund = stripe.refunded_charge(&session);
    let (status, b) = deliver(&app, &event("charge.refunded", refund, now + 2)).await;
    assert_eq!(
        (status, b["outcome"].as_str()),
        (200, Some("processed")),
        "{b}"
    );
    let r = app.get(&format!("/v1/purchases/{id}"), Some(&owner)).await;
    assert_eq!(r.body["status"], "refunded");

    // The log, filtered; the events.
    let r = app
        .get(
            "/v1/purchases?status=refunded&lead_source=tiktok",
            Some(&key),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = app.get("/v1/purchases?status=paid", Some(&owner)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    let r = app.get("/v1/events", Some(&owner)).await;
    let kinds: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("purchase."))
        .collect();
    assert_eq!(
        kinds,
        [
            "purchase.created",
            "purchase.payment_link_sent",
            "purchase.paid",
            "purchase.refunded"
        ]
    );

    // Another business sees none of it.
    let (other, _, _) = paid_business(&app, &stripe, "other-shop").await;
    let r = app.get(&format!("/v1/purchases/{id}"), Some(&other)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/v1/purchases", Some(&other)).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 0);
    // A key without the scope.
    let reader = app.api_key(&owner, &["purchases:read"]).await;
    let r = app
        .post("/v1/purchases", Some(&reader), body(&company, json!(100)))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_purchases_are_refused_with_the_field() {
    let (app, stripe) = app_with_stripe().await;
    // Without an enabled connected account: 409.
    let owner = app.owner(&email("unpaid"), "Unpaid").await;
    let company = app.company(&owner, "Shop").await;
    let r = app
        .post("/v1/purchases", Some(&owner), body(&company, json!(100)))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (409, "connect_not_enabled"),
        "{}",
        r.text
    );

    let (owner, company, _) = paid_business(&app, &stripe, "strict").await;
    let before = stripe.requests_to("POST", "/v1/checkout/sessions").len();
    let max = switchboard::config::BillingConfig::default().purchase_max_amount;
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("zero", body(&company, json!(0)), 422, "validation_failed"),
        (
            "negative",
            body(&company, json!(-5)),
            422,
            "validation_failed",
        ),
        (
            "too much",
            body(&company, json!(max + 1)),
            422,
            "validation_failed",
        ),
        ("a float", body(&company, json!(12.5)), 422, "invalid_body"),
        ("a string", body(&company, json!("12")), 422, "invalid_body"),
        (
            "unknown currency",
            json!({"company_id": company, "customer_ref": "x", "description": "y", "amount": 100, "currency": "xyz", "lead_source": "other"}),
            422,
            "validation_failed",
        ),
        (
            "unknown lead source",
            json!({"company_id": company, "customer_ref": "x", "description": "y", "amount": 100, "currency": "usd", "lead_source": "billboard"}),
            422,
            "invalid_body",
        ),
        (
            "another business's company",
            body(&uuid::Uuid::now_v7().to_string(), json!(100)),
            404,
            "not_found",
        ),
    ];
    for (what, b, status, code) in cases {
        let r = app.post("/v1/purchases", Some(&owner), b).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{what}: {}",
            r.text
        );
    }
    // A channel of another company.
    let other_company = app.company(&owner, "Other").await;
    let channel = app.channel(&owner, &other_company, "whatsapp").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = body(&company, json!(100));
    b["channel_id"] = json!(channel);
    let r = app.post("/v1/purchases", Some(&owner), b).await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );
    assert_eq!(
        stripe.requests_to("POST", "/v1/checkout/sessions").len(),
        before,
        "nothing reached Stripe"
    );
    assert_eq!(
        entity::purchase::Entity::find()
            .count(&app.app.state.db)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_purchase_events_ends_in_the_in_order_states() {
    let (app, stripe) = app_with_stripe().await;
    let (owner, company, _) = paid_business(&app, &stripe, "storm").await;
    // 500 purchases: a third paid, a third paid then refunded, a third
    // expired.
    let mut expected = Vec::new();
    let mut events = Vec::new();
    let now = chrono::Utc::now().timestamp();
    for n in 0..500 {
        let r = app
            .post(
                "/v1/purchases",
                Some(&owner),
                body(&company, json!(100 + n)),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_owned();
        let session = r.body["stripe_checkout_session_id"]
            .as_str()
            .unwrap()
            .to_owned();
        match n % 3 {
            0 => {
                events.push(event(
                    "checkout.session.completed",
                    stripe.pay_checkout(&session),
                    now,
                ));
                expected.push((id, "paid"));
            }
            1 => {
                events.push(event(
                    "checkout.session.completed",
                    stripe.pay_checkout(&session),
                    now,
                ));
                events.push(event(
                    "charge.refunded",
                    stripe.refunded_charge(&session),
                    now + 5,
                ));
                expected.push((id, "refunded"));
            }
            _ => {
                events.push(event(
                    "checkout.session.expired",
                    stripe.expire_checkout(&session),
                    now,
                ));
                expected.push((id, "expired"));
            }
        }
    }
    // Shuffled, with 30% duplicates, 16 at a time.
    let mut deliveries = events.clone();
    let mut rng = rand::rng();
    for e in events.iter().take(events.len() * 3 / 10) {
        deliveries.push(e.clone());
    }
    deliveries.shuffle(&mut rng);
    let app_ref = &app;
    let answers: Vec<(u16, Value)> = futures::stream::iter(deliveries.iter())
        .map(|e| async move { deliver(app_ref, e).await })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    for (id, status) in &expected {
        let r = app.get(&format!("/v1/purchases/{id}"), Some(&owner)).await;
        assert_eq!(r.body["status"], *status, "{id}");
    }
    let ledger = entity::inbound_event::Entity::find()
        .filter(entity::inbound_event::Column::Source.eq("stripe"))
        .filter(entity::inbound_event::Column::EventType.ne("customer.created"))
        .count(&app.app.state.db)
        .await
        .unwrap();
    assert_eq!(
        ledger as usize,
        events.len(),
        "every event once in the ledger"
    );
}

use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_exports_as_csv_a_spreadsheet_cannot_run() {
    let (app, stripe) = app_with_stripe().await;
    let (owner, company, _) = paid_business(&app, &stripe, "export").await;
    for (n, customer) in [
        "=HYPERLINK(\"http://evil\")",
        "+15550001111",
        "Ann, \"the\" baker",
    ]
    .iter()
    .enumerate()
    {
        let mut b = body(&company, json!(100 + n));
        b["customer_ref"] = json!(customer);
        let r = app.post("/v1/purchases", Some(&owner), b).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let res = reqwest::Client::new()
        .get(app.url("/v1/purchases/export.csv"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = res.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "id");
    assert!(header.contains(&"amount_minor".to_owned()));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let refs: Vec<&str> = rows.iter().map(|r| &r[col("customer_ref")]).collect();
    assert_eq!(
        refs,
        [
            "'=HYPERLINK(\"http://evil\")",
            "'+15550001111",
            "Ann, \"the\" baker"
        ],
        "formulas neutralised, commas and quotes kept"
    );
    assert_eq!(&rows[1][col("amount_minor")], "101");
    // Filters apply; another business exports nothing of this one.
    let res = reqwest::Client::new()
        .get(app.url("/v1/purchases/export.csv?status=paid"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.text().await.unwrap().lines().count(),
        1,
        "the header only"
    );
    let (other, _, _) = paid_business(&app, &stripe, "export-other").await;
    let res = reqwest::Client::new()
        .get(app.url("/v1/purchases/export.csv"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap().lines().count(), 1);
}
