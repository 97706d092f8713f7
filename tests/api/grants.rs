//! The admin's plan grants (`PUT /v1/admin/businesses/{id}/plan`, SPEC §2)
//! against the local Stripe server: `enterprise` at a custom price and
//! channel limit (an existing subscription moved to it, or a new invoiced
//! one), `free` (live subscriptions canceled in Stripe), the entitlement
//! following at once, the grant surviving later Stripe events and the
//! trial's end, bad input, Stripe failing; and the admin's changes to any
//! business's companies and channels, each audited.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use chrono::{Duration, Utc};
use entity::enums::{BusinessStatus, ChannelStatus};
use reqwest::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::billing::{BillingApp, billing_config};
use crate::common::{TestApp, email};
use crate::stripe_fake::FakeStripe;

/// The Stripe product of the enterprise plan's custom prices.
const PRODUCT: &str = "prod_enterprise_custom";

/// An app on the local Stripe server whose catalogue can grant `enterprise`.
async fn spawn() -> BillingApp {
    let stripe = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = billing_config(dir.path(), &stripe.url).await;
    config
        .plans
        .get_mut("enterprise")
        .expect("enterprise is in the default catalogue")
        .stripe_product_id = Some(PRODUCT.into());
    BillingApp::with(TestApp::spawn_with(dir, config).await, stripe)
}

fn enterprise(limit: Option<u32>, amount: i64) -> Value {
    let mut body = json!({
        "plan": "enterprise",
        "price": { "unit_amount": amount, "currency": "USD" },
    });
    if let Some(l) = limit {
        body["channel_limit"] = json!(l);
    }
    body
}

async fn grant(b: &BillingApp, token: &str, bid: Uuid, body: Value) -> crate::common::Resp {
    b.app
        .call(
            Method::PUT,
            &format!("/v1/admin/businesses/{bid}/plan"),
            Some(token),
            Some(body),
        )
        .await
}

/// The audit records of `action` on business `bid`, oldest first.
async fn audited(b: &BillingApp, admin: &str, action: &str, bid: Uuid) -> Vec<Value> {
    let r = b
        .app
        .get(
            &format!("/v1/admin/audit?action={action}&business_id={bid}&limit=100"),
            Some(admin),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

fn states(channels: &[entity::channel::Model]) -> Vec<(ChannelStatus, Option<&str>)> {
    channels
        .iter()
        .map(|c| (c.status, c.suspended_reason.as_deref()))
        .collect()
}

const RUNNING: (ChannelStatus, Option<&str>) = (ChannelStatus::Disconnected, None);
const OVER: (ChannelStatus, Option<&str>) = (ChannelStatus::Suspended, Some("over_plan_limit"));

#[tokio::test]
async fn enterprise_moves_the_subscription_to_a_custom_price_and_its_limit_holds() {
    let b = spawn().await;
    let (owner, bid, sub) = b.subscriber("growth").await;
    b.add_channels(&owner, 4).await;
    let admin = b.app.admin(&email("admin")).await;

    // Owners and managers may not grant.
    for token in [&owner] {
        let r = grant(&b, token, bid, enterprise(Some(2), 150_000)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }

    let r = grant(&b, &admin, bid, enterprise(Some(2), 150_000)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "enterprise");
    assert_eq!(r.body["channels"], json!({ "used": 4, "limit": 2 }));
    assert_eq!(r.body["status"], "over_limit");

    // Stripe moved the one item to a price it made from price_data,
    // prorated, under an idempotency key.
    let updates: Vec<_> = b
        .stripe
        .requests_to("POST", &format!("/v1/subscriptions/{sub}"))
        .into_iter()
        .filter(|r| r.param("items[0][price_data][product]").is_some())
        .collect();
    assert_eq!(updates.len(), 1);
    let u = &updates[0];
    assert_eq!(u.param("items[0][price_data][product]"), Some(PRODUCT));
    assert_eq!(u.param("items[0][price_data][unit_amount]"), Some("150000"));
    assert_eq!(u.param("items[0][price_data][currency]"), Some("usd"));
    assert_eq!(
        u.param("items[0][price_data][recurring][interval]"),
        Some("month")
    );
    assert_eq!(u.param("proration_behavior"), Some("create_prorations"));
    assert!(u.idempotency_key.is_some());
    let remote = b.stripe.subscription(&sub).unwrap();
    assert_eq!(remote["items"]["data"][0]["price"]["unit_amount"], 150_000);

    // The entitlement followed at once: the two newest are suspended.
    assert_eq!(
        states(&b.channels(bid).await),
        vec![RUNNING, RUNNING, OVER, OVER]
    );
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("enterprise", BusinessStatus::OverLimit)
    );
    let company = b.app.company(&owner, "More").await;
    let r = b.app.channel(&owner, &company, "email").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "plan_limit_reached")
    );
    let r = b.app.get("/v1/business", Some(&owner)).await;
    assert_eq!(r.body["plan"]["channel_limit"], 2);

    let records = audited(&b, &admin, "business.plan_granted", bid).await;
    assert_eq!(records.len(), 1);
    let detail = &records[0]["detail"];
    assert_eq!(detail["plan"], "enterprise");
    assert_eq!(detail["channel_limit"], 2);
    assert_eq!(detail["unit_amount"], 150_000);
    assert_eq!(detail["stripe_subscription_id"], sub.as_str());
    assert_eq!(detail["suspended"], 2);

    // A later Stripe event about the subscription (its price is no plan's)
    // keeps the granted plan and limit.
    b.stripe_changes(&sub, |s| s["metadata"]["note"] = json!("renewed"))
        .await;
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("enterprise", BusinessStatus::OverLimit)
    );
    assert_eq!(
        states(&b.channels(bid).await),
        vec![RUNNING, RUNNING, OVER, OVER]
    );

    // A larger limit restores them; none means the catalogue's (unlimited).
    let r = grant(&b, &admin, bid, enterprise(Some(10), 200_000)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["channels"], json!({ "used": 4, "limit": 10 }));
    assert_eq!(r.body["status"], "active");
    assert_eq!(states(&b.channels(bid).await), vec![RUNNING; 4]);
    let r = grant(&b, &admin, bid, enterprise(None, 200_000)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["channels"]["limit"], Value::Null);
    let customer = b.stripe.subscription(&sub).unwrap()["customer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        b.stripe.subscriptions_of(&customer).len(),
        1,
        "each grant moved the one subscription, none was added"
    );
    assert_eq!(
        audited(&b, &admin, "business.plan_granted", bid)
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn enterprise_without_a_subscription_creates_an_invoiced_one() {
    let b = spawn().await;
    let owner = b.app.owner(&email("big"), "Big Co").await;
    let bid: Uuid = b.app.business_id(&owner).await.parse().unwrap();
    let admin = b.app.admin(&email("admin")).await;

    let body = json!({
        "plan": "enterprise",
        "channel_limit": 6,
        "price": { "unit_amount": 1_200_000, "currency": "eur", "interval": "year" },
    });
    let r = grant(&b, &admin, bid, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "enterprise");
    assert_eq!(r.body["channels"]["limit"], 6);
    assert_eq!(r.body["subscription"]["status"], "active");
    let customer = b.business(bid).await.stripe_customer_id.unwrap();
    assert_eq!(b.stripe.subscriptions_of(&customer).len(), 1);
    let created = b.stripe.requests_to("POST", "/v1/subscriptions");
    assert_eq!(created.len(), 1);
    let c = &created[0];
    assert_eq!(c.param("customer"), Some(customer.as_str()));
    assert_eq!(c.param("collection_method"), Some("send_invoice"));
    assert_eq!(c.param("days_until_due"), Some("30"));
    assert_eq!(c.param("items[0][price_data][product]"), Some(PRODUCT));
    assert_eq!(c.param("items[0][price_data][currency]"), Some("eur"));
    assert_eq!(
        c.param("items[0][price_data][recurring][interval]"),
        Some("year")
    );
    assert_eq!(
        c.param("metadata[business_id]"),
        Some(bid.to_string().as_str())
    );

    // The trial's end does not restrict a business on a live subscription.
    let mut a = b.business(bid).await.into_active_model();
    a.trial_ends_at = Set(Utc::now() - Duration::seconds(1));
    a.recheck_at = Set(Some(Utc::now() - Duration::seconds(1)));
    a.update(&b.app.app.state.db).await.unwrap();
    b.sweep().await;
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("enterprise", BusinessStatus::Active)
    );
}

#[tokio::test]
async fn a_stripe_failure_stores_nothing_and_the_retry_reuses_the_key() {
    let b = spawn().await;
    let owner = b.app.owner(&email("flaky"), "Flaky Co").await;
    let bid: Uuid = b.app.business_id(&owner).await.parse().unwrap();
    let admin = b.app.admin(&email("admin")).await;
    // The owner's checkout makes the customer, so the failure below lands
    // on the subscription itself.
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&owner),
            json!({ "plan": "single" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let customer = b.business(bid).await.stripe_customer_id.unwrap();

    b.stripe.fail_next(1);
    let r = grant(&b, &admin, bid, enterprise(Some(3), 50_000)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text);
    assert!(r.is_problem());
    let biz = b.business(bid).await;
    assert_eq!((biz.plan.as_str(), biz.granted_plan), ("trial", None));
    assert!(
        audited(&b, &admin, "business.plan_granted", bid)
            .await
            .is_empty()
    );

    let r = grant(&b, &admin, bid, enterprise(Some(3), 50_000)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(b.stripe.subscriptions_of(&customer).len(), 1);
    let keys: Vec<_> = b
        .stripe
        .requests_to("POST", "/v1/subscriptions")
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    assert_eq!(keys.len(), 2, "the failed attempt and its retry");
    assert!(keys[0].is_some() && keys[0] == keys[1], "{keys:?}");
    let biz = b.business(bid).await;
    assert_eq!(biz.granted_plan.as_deref(), Some("enterprise"));
    assert_eq!(biz.granted_channel_limit, Some(3));
}

#[tokio::test]
async fn free_cancels_the_subscription_in_stripe_and_outlasts_the_trial() {
    let b = spawn().await;
    let (owner, bid, sub) = b.subscriber("double").await;
    b.add_channels(&owner, 2).await;
    let admin = b.app.admin(&email("admin")).await;

    let r = grant(&b, &admin, bid, json!({ "plan": "free" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "free");
    assert_eq!(r.body["channels"], json!({ "used": 2, "limit": 1 }));
    assert_eq!(b.stripe.subscription(&sub).unwrap()["status"], "canceled");
    assert_eq!(
        b.stripe
            .requests_to("DELETE", &format!("/v1/subscriptions/{sub}"))
            .len(),
        1
    );
    assert_eq!(states(&b.channels(bid).await), vec![RUNNING, OVER]);
    let records = audited(&b, &admin, "business.plan_granted", bid).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["detail"]["canceled"], json!([sub]));

    // Stripe's own deletion event changes nothing, and neither does the
    // trial's end: free stands until an admin grants another plan.
    let canceled = b.stripe.subscription(&sub).unwrap();
    let r = b
        .deliver(&crate::stripe_fake::event(
            "customer.subscription.deleted",
            canceled,
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut a = b.business(bid).await.into_active_model();
    a.trial_ends_at = Set(Utc::now() - Duration::seconds(1));
    a.recheck_at = Set(Some(Utc::now() - Duration::seconds(1)));
    a.update(&b.app.app.state.db).await.unwrap();
    b.sweep().await;
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("free", BusinessStatus::OverLimit)
    );
    assert_eq!(states(&b.channels(bid).await), vec![RUNNING, OVER]);

    // Granting free again is harmless: nothing left to cancel.
    let r = grant(&b, &admin, bid, json!({ "plan": "free" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        b.stripe
            .requests_to("DELETE", &format!("/v1/subscriptions/{sub}"))
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_grants_are_refused_with_the_field_and_change_nothing() {
    let b = spawn().await;
    let owner = b.app.owner(&email("strict"), "Strict Co").await;
    let bid: Uuid = b.app.business_id(&owner).await.parse().unwrap();
    let admin = b.app.admin(&email("admin")).await;
    let cases = [
        (
            enterprise(Some(0), 100),
            StatusCode::UNPROCESSABLE_ENTITY,
            "channel_limit",
        ),
        (
            enterprise(Some(10_001), 100),
            StatusCode::UNPROCESSABLE_ENTITY,
            "channel_limit",
        ),
        (
            enterprise(Some(2), 0),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price.unit_amount",
        ),
        (
            enterprise(Some(2), -5),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price.unit_amount",
        ),
        (
            enterprise(Some(2), 100_000_000),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price.unit_amount",
        ),
        (
            json!({ "plan": "enterprise", "price": { "unit_amount": 100, "currency": "xyz" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "price.currency",
        ),
    ];
    for (body, status, field) in cases {
        let r = grant(&b, &admin, bid, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.code(), "validation_failed", "{body}");
        assert!(r.text.contains(field), "{body} names {field}: {}", r.text);
    }
    // What a plan does not take, or needs.
    for (body, field) in [
        (
            json!({ "plan": "free", "channel_limit": 3 }),
            "channel_limit",
        ),
        (
            json!({ "plan": "free", "price": { "unit_amount": 100, "currency": "usd" } }),
            "price",
        ),
        (json!({ "plan": "enterprise", "channel_limit": 3 }), "price"),
    ] {
        let r = grant(&b, &admin, bid, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            "{body}: {}",
            r.text
        );
        assert!(r.text.contains(field), "{body} names {field}: {}", r.text);
    }
    // Decimals, unknown plans and fields are bodies that do not parse.
    for body in [
        json!({ "plan": "enterprise", "price": { "unit_amount": 12.5, "currency": "usd" } }),
        json!({ "plan": "growth" }),
        json!({ "plan": "free", "note": "x" }),
    ] {
        let r = grant(&b, &admin, bid, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {}", r.text);
        assert!(r.is_problem(), "{body}");
    }
    // An unknown business is 404.
    let r = grant(&b, &admin, Uuid::new_v4(), json!({ "plan": "free" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    assert!(b.stripe.requests_to("POST", "/v1/subscriptions").is_empty());
    let biz = b.business(bid).await;
    assert_eq!((biz.plan.as_str(), biz.granted_plan), ("trial", None));

    // Without the plan's Stripe product, enterprise cannot be priced.
    let plain = BillingApp::spawn().await;
    let owner = plain.app.owner(&email("plain"), "Plain Co").await;
    let pid: Uuid = plain.app.business_id(&owner).await.parse().unwrap();
    let admin = plain.app.admin(&email("admin")).await;
    let r = grant(&plain, &admin, pid, enterprise(Some(2), 100)).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "plan_not_configured"),
        "{}",
        r.text
    );
    assert!(r.text.contains("stripe_product_id"), "{}", r.text);
}

#[tokio::test]
async fn admins_change_any_business_s_companies_and_channels_and_each_change_is_audited() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("owner"), "Looked After").await;
    let bid = app.business_id(&owner).await;
    let other = app.owner(&email("other"), "Elsewhere").await;
    let other_company = app.company(&other, "Not Theirs").await;
    let admin = app.admin(&email("admin")).await;
    let (_, manager) = app.manager(&admin, &email("manager")).await;
    let base = format!("/v1/admin/businesses/{bid}");

    let r = app
        .post(
            &format!("{base}/companies"),
            Some(&admin),
            json!({ "name": "Staff Made", "kind": "service" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["code"], "COMP001");
    let company = r.body["id"].as_str().unwrap().to_owned();
    // The owner sees it as theirs, and the event log says so.
    let r = app
        .get(&format!("/v1/companies/{company}"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = app
        .call(
            Method::PATCH,
            &format!("{base}/companies/{company}"),
            Some(&admin),
            Some(json!({ "name": "Staff Renamed" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["name"], "Staff Renamed");

    let r = app
        .post(
            &format!("{base}/channels"),
            Some(&admin),
            json!({ "company_id": company, "platform": "telegram" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let channel = r.body["id"].as_str().unwrap().to_owned();
    // The trial's one channel is used: the limit binds staff too.
    let r = app
        .post(
            &format!("{base}/channels"),
            Some(&admin),
            json!({ "company_id": company, "platform": "email" }),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "plan_limit_reached")
    );

    // Another business's company or channel through this business: 404.
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("{base}/companies/{other_company}"),
            Some(json!({ "name": "x" })),
        ),
        (
            Method::DELETE,
            format!("{base}/companies/{other_company}"),
            None,
        ),
        (
            Method::POST,
            format!("{base}/channels"),
            Some(json!({ "company_id": other_company, "platform": "email" })),
        ),
    ] {
        let r = app.call(method.clone(), &path, Some(&admin), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.text
        );
    }
    let r = app
        .get(&format!("/v1/companies/{other_company}"), Some(&other))
        .await;
    assert_eq!(r.body["name"], "Not Theirs");

    // Owners and managers may not use the admin's routes.
    for token in [&owner, &manager] {
        let r = app
            .post(
                &format!("{base}/companies"),
                Some(token),
                json!({ "name": "Sneaky", "kind": "service" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    }

    let r = app
        .call(
            Method::DELETE,
            &format!("{base}/channels/{channel}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = app
        .call(
            Method::DELETE,
            &format!("{base}/companies/{company}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);

    // Each staff change: one audit record, the admin as actor.
    for action in [
        "company.create",
        "company.update",
        "channel.create",
        "channel.delete",
        "company.delete",
    ] {
        let r = app
            .get(
                &format!("/v1/admin/audit?action={action}&business_id={bid}&limit=100"),
                Some(&admin),
            )
            .await;
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{action}: {}", r.text);
        assert_eq!(items[0]["actor_role"], "admin", "{action}");
    }
    // The owner's own changes are not staff actions.
    let mine = app.company(&owner, "Owner Made").await;
    let r = app
        .get(
            &format!("/v1/admin/audit?action=company.create&business_id={bid}&limit=100"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let _ = mine;
    // The owner's event log shows the staff changes as any other.
    let r = app.get("/v1/events?limit=100", Some(&owner)).await;
    let types: Vec<&str> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    for t in [
        "company.created",
        "company.updated",
        "channel.created",
        "channel.deleted",
        "company.deleted",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
}
