//! Billing through Stripe's wire format: the owner API (Checkout, portal,
//! plan changes with the 409 rule, cancel/resume, invoices) against the
//! local server in `stripe_fake`, webhook signatures, the event ledger
//! (duplicates, failures and retries), every entitlement transition with
//! suspension reasons and automatic restore, the sweep job and the
//! reconciliation command.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{Duration, Utc};
use entity::billing::subscription;
use entity::enums::{BusinessStatus, ChannelStatus};
use entity::inbound_event;
use entity::{business, channel};
use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::{Config, StripeConfig};
use uuid::Uuid;

use crate::common::{Resp, TestApp, email, into_resp, test_config};
use crate::stripe_fake::{self, FakeStripe};

/// The endpoint secret Stripe signs with now.
pub const WHSEC: &str = "whsec_test_current";
/// The secret being rolled out (both are configured).
pub const WHSEC_OLD: &str = "whsec_test_previous";

/// The Stripe price of `plan` in the test catalogue.
pub fn price(plan: &str) -> String {
    format!("price_{plan}_monthly")
}

/// Test configuration with Stripe at `stripe_url` and prices for the paid plans.
pub async fn billing_config(dir: &std::path::Path, stripe_url: &str) -> Config {
    let mut config = test_config(dir).await;
    for plan in ["single", "double", "growth", "special"] {
        if let Some(p) = config.plans.get_mut(plan) {
            p.stripe_price_id = Some(price(plan));
        }
    }
    config.stripe = Some(StripeConfig {
        secret_key: SecretString::from("sk_test_switchboard".to_owned()),
        api_base: stripe_url.to_owned(),
        webhook_secrets: Some(SecretString::from(format!("{WHSEC_OLD}, {WHSEC}"))),
        success_url: None,
        cancel_url: None,
        portal_return_url: None,
        timeout_secs: 10,
        connect_webhook_secrets: None,
        connect_country: "US".into(),
        connect_return_url: None,
    });
    // Tests run the sweep themselves; reconciliation only when asked.
    config.billing.sweep_interval_secs = 3600;
    config.billing.reconcile_interval_hours = 0;
    config
}

/// An app wired to a fake Stripe.
pub struct BillingApp {
    pub app: TestApp,
    pub stripe: FakeStripe,
    clock: AtomicI64,
}

impl BillingApp {
    pub async fn spawn() -> BillingApp {
        let stripe = FakeStripe::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = billing_config(dir.path(), &stripe.url).await;
        BillingApp::with(TestApp::spawn_with(dir, config).await, stripe)
    }

    pub fn with(app: TestApp, stripe: FakeStripe) -> BillingApp {
        BillingApp {
            app,
            stripe,
            clock: AtomicI64::new(Utc::now().timestamp() + 1),
        }
    }

    /// A strictly increasing event time (Stripe's `created`), from now on.
    pub fn tick(&self) -> i64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Posts `body` with `signature` as Stripe would.
    pub async fn deliver_raw(&self, body: &str, signature: Option<&str>) -> Resp {
        let mut req = self
            .app
            .client
            .post(self.app.url("/v1/webhooks/stripe"))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned());
        if let Some(s) = signature {
            req = req.header("Stripe-Signature", s);
        }
        into_resp(req.send().await.unwrap()).await
    }

    /// Signs `event` with the current secret and delivers it.
    pub async fn deliver(&self, event: &Value) -> Resp {
        let body = event.to_string();
        let sig = stripe_fake::signature(&body, &[WHSEC], Utc::now().timestamp());
        self.deliver_raw(&body, Some(&sig)).await
    }

    /// A `customer.subscription.updated` for the subscription as the fake
    /// holds it after `f`.
    pub async fn stripe_changes(&self, sub_id: &str, f: impl FnOnce(&mut Value)) -> Resp {
        let sub = self.stripe.update_subscription(sub_id, f);
        let r = self
            .deliver(&stripe_fake::event(
                "customer.subscription.updated",
                sub,
                self.tick(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r
    }

    /// Owner registers, buys `plan` through Checkout; returns (token,
    /// business id, subscription id).
    pub async fn subscriber(&self, plan: &str) -> (String, Uuid, String) {
        let token = self.app.owner(&email("payer"), "Paying Co").await;
        let bid: Uuid = self.app.business_id(&token).await.parse().unwrap();
        let sub = self.subscribe(&token, plan).await;
        (token, bid, sub)
    }

    /// Checkout for `plan`, paid, and the `checkout.session.completed` event delivered.
    pub async fn subscribe(&self, token: &str, plan: &str) -> String {
        let r = self
            .app
            .post(
                "/v1/billing/checkout-session",
                Some(token),
                json!({ "plan": plan }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let session_id = r.body["id"].as_str().unwrap().to_owned();
        let (session, sub) = self.stripe.complete_checkout(&session_id);
        let r = self
            .deliver(&stripe_fake::event(
                "checkout.session.completed",
                session,
                self.tick(),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["outcome"], "processed");
        sub["id"].as_str().unwrap().to_owned()
    }

    pub async fn business(&self, id: Uuid) -> business::Model {
        business::Entity::find_by_id(id)
            .one(&self.app.app.state.db)
            .await
            .unwrap()
            .unwrap()
    }

    /// Channels oldest first.
    pub async fn channels(&self, id: Uuid) -> Vec<channel::Model> {
        channel::Entity::find()
            .filter(channel::Column::BusinessId.eq(id))
            .order_by_asc(channel::Column::CreatedAt)
            .order_by_asc(channel::Column::Id)
            .all(&self.app.app.state.db)
            .await
            .unwrap()
    }

    /// `n` channels in a new company.
    pub async fn add_channels(&self, token: &str, n: usize) -> Vec<String> {
        let company = self.app.company(token, "Shop").await;
        let mut ids = Vec::new();
        for _ in 0..n {
            let r = self.app.channel(token, &company, "telegram").await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
            ids.push(r.body["id"].as_str().unwrap().to_owned());
        }
        ids
    }

    pub async fn sweep(&self) {
        switchboard::domain::billing::reconcile::sweep(&self.app.app.state.billing())
            .await
            .unwrap();
    }

    pub async fn ledger(&self) -> Vec<inbound_event::Model> {
        inbound_event::Entity::find()
            .all(&self.app.app.state.db)
            .await
            .unwrap()
    }

    /// (status, suspended_reason) of each channel, oldest first.
    pub async fn channel_states(&self, id: Uuid) -> Vec<(ChannelStatus, Option<String>)> {
        self.channels(id)
            .await
            .into_iter()
            .map(|c| (c.status, c.suspended_reason))
            .collect()
    }
}

/// Waits (up to 10 s) for an email to `to` whose subject contains `needle`.
pub async fn wait_for_subject(app: &TestApp, to: &str, needle: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app
        .app
        .state
        .mailer
        .messages_to(to)
        .iter()
        .any(|m| m.subject.contains(needle))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no email to {to} about {needle:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn set_price(sub: &mut Value, plan: &str) {
    sub["items"]["data"][0]["price"]["id"] = json!(price(plan));
}

fn running() -> (ChannelStatus, Option<String>) {
    (ChannelStatus::Disconnected, None)
}

fn suspended(reason: &str) -> (ChannelStatus, Option<String>) {
    (ChannelStatus::Suspended, Some(reason.to_owned()))
}

#[tokio::test]
async fn checkout_portal_plan_changes_cancel_resume_and_invoices_speak_stripe() {
    let b = BillingApp::spawn().await;
    let token = b.app.owner(&email("buyer"), "Buyer Co").await;
    let bid: Uuid = b.app.business_id(&token).await.parse().unwrap();

    // The catalogue is public and says what can be bought.
    let plans = b.app.get("/v1/billing/plans", None).await;
    assert_eq!(plans.status, StatusCode::OK);
    let growth = plans
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "growth")
        .unwrap();
    assert_eq!(growth["channel_limit"], 4);
    assert_eq!(growth["price_minor"], 4999);
    assert_eq!(growth["purchasable"], true);

    // Plans that cannot be bought.
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "free"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "plan_not_purchasable")
    );
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "platinum"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.is_problem());

    // Checkout: customer created once, with the idempotency key and metadata.
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "double"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://checkout.stripe.com/")
    );
    let again = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "double"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let customers = b.stripe.requests_to("POST", "/v1/customers");
    assert_eq!(customers.len(), 1, "the customer is created once");
    assert_eq!(
        customers[0].idempotency_key.as_deref(),
        Some(switchboard::integrations::stripe::customer_idempotency_key(bid).as_str())
    );
    assert_eq!(
        customers[0].param("metadata[business_id]"),
        Some(bid.to_string().as_str())
    );
    assert_eq!(
        customers[0].authorization.as_deref(),
        Some("Bearer sk_test_switchboard")
    );
    let customer_id = b.business(bid).await.stripe_customer_id.unwrap();

    let session_id = r.body["id"].as_str().unwrap();
    let params = b.stripe.checkout_session_params(session_id).unwrap();
    let p = |k: &str| stripe_fake::param(&params, k).map(str::to_owned);
    assert_eq!(p("mode").as_deref(), Some("subscription"));
    assert_eq!(p("customer").as_deref(), Some(customer_id.as_str()));
    assert_eq!(p("client_reference_id"), Some(bid.to_string()));
    assert_eq!(p("line_items[0][price]"), Some(price("double")));
    assert_eq!(p("line_items[0][quantity]").as_deref(), Some("1"));
    assert_eq!(
        p("subscription_data[metadata][business_id]"),
        Some(bid.to_string())
    );
    // Still in trial: Stripe's trial ends when ours does.
    let trial_ends_at = b.business(bid).await.trial_ends_at.timestamp();
    assert_eq!(
        p("subscription_data[trial_end]"),
        Some(trial_ends_at.to_string())
    );

    // Paying and the webhook: the plan follows the subscription.
    let (session, sub) = b.stripe.complete_checkout(session_id);
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let r = b
        .deliver(&stripe_fake::event(
            "checkout.session.completed",
            session,
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let s = b.app.get("/v1/billing/subscription", Some(&token)).await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(s.body["plan"]["id"], "double");
    assert_eq!(s.body["status"], "active");
    assert_eq!(s.body["subscription"]["id"], sub_id.as_str());
    assert_eq!(s.body["subscription"]["status"], "trialing");
    assert_eq!(s.body["subscription"]["cancel_at_period_end"], false);
    assert!(s.body["subscription"]["current_period_end"].is_string());
    assert_eq!(s.body["channels"], json!({"used": 0, "limit": 2}));

    // A second Checkout while subscribed is refused.
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "growth"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "subscription_exists")
    );

    // Portal.
    let r = b
        .app
        .post("/v1/billing/portal-session", Some(&token), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(
        r.body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://billing.stripe.com/")
    );
    let portal = b.stripe.requests_to("POST", "/v1/billing_portal/sessions");
    assert_eq!(portal[0].param("customer"), Some(customer_id.as_str()));

    // Upgrade: at once, prorated and invoiced now.
    let ids = b.add_channels(&token, 2).await;
    let r = b
        .app
        .post(
            "/v1/billing/change-plan",
            Some(&token),
            json!({"plan": "growth"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "growth");
    assert_eq!(r.body["channels"]["limit"], 4);
    let update = b
        .stripe
        .requests_to("POST", &format!("/v1/subscriptions/{sub_id}"));
    let last = update.last().unwrap();
    assert_eq!(
        last.param("items[0][price]"),
        Some(price("growth").as_str())
    );
    assert_eq!(last.param("proration_behavior"), Some("always_invoice"));
    let item_id = sub["items"]["data"][0]["id"].as_str().unwrap();
    assert_eq!(last.param("items[0][id]"), Some(item_id));
    assert_eq!(
        b.stripe.subscription(&sub_id).unwrap()["items"]["data"][0]["price"]["id"],
        price("growth").as_str()
    );

    // Downgrade below usage: 409 listing the newest channels to remove.
    let more = b.add_channels(&token, 2).await;
    let calls_before = b.stripe.requests().len();
    let r = b
        .app
        .post(
            "/v1/billing/change-plan",
            Some(&token),
            json!({"plan": "single"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "downgrade_below_usage")
    );
    assert_eq!(r.body["used"], 4);
    assert_eq!(r.body["limit"], 1);
    assert_eq!(r.body["remove_at_least"], 3);
    let listed: Vec<&str> = r.body["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        vec![more[1].as_str(), more[0].as_str(), ids[1].as_str()]
    );
    assert_eq!(
        b.stripe.requests().len(),
        calls_before,
        "nothing was sent to Stripe"
    );
    assert_eq!(
        b.stripe.subscription(&sub_id).unwrap()["items"]["data"][0]["price"]["id"],
        price("growth").as_str()
    );

    // Removing enough makes the downgrade possible; no proration (no refunds).
    for id in [&more[1], &more[0], &ids[1]] {
        let r = b
            .app
            .call(
                reqwest::Method::DELETE,
                &format!("/v1/channels/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    }
    let r = b
        .app
        .post(
            "/v1/billing/change-plan",
            Some(&token),
            json!({"plan": "single"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["plan"]["id"], "single");
    let last = b
        .stripe
        .requests_to("POST", &format!("/v1/subscriptions/{sub_id}"))
        .pop()
        .unwrap();
    assert_eq!(last.param("proration_behavior"), Some("none"));

    // Cancel at period end, then resume.
    let r = b
        .app
        .post("/v1/billing/cancel", Some(&token), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["subscription"]["cancel_at_period_end"], true);
    assert_eq!(
        b.stripe.subscription(&sub_id).unwrap()["cancel_at_period_end"],
        true
    );
    assert_eq!(
        r.body["status"], "active",
        "access continues until the period ends"
    );
    let r = b
        .app
        .post("/v1/billing/resume", Some(&token), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["subscription"]["cancel_at_period_end"], false);
    assert_eq!(
        b.stripe.subscription(&sub_id).unwrap()["cancel_at_period_end"],
        false
    );

    // Invoices, newest first, paginated.
    let made: Vec<String> = (0..3)
        .map(|i| {
            b.stripe
                .add_invoice(&customer_id, Some(&sub_id), 999 + i, "paid")["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let page1 = b
        .app
        .get("/v1/billing/invoices?limit=2", Some(&token))
        .await;
    assert_eq!(page1.status, StatusCode::OK, "{}", page1.text);
    let got: Vec<&str> = page1.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![made[2].as_str(), made[1].as_str()]);
    assert_eq!(page1.body["data"][0]["amount_paid"], 1001);
    assert_eq!(page1.body["data"][0]["currency"], "usd");
    assert_eq!(page1.body["data"][0]["status"], "paid");
    let cursor = page1.body["next_cursor"].as_str().unwrap();
    let page2 = b
        .app
        .get(
            &format!("/v1/billing/invoices?limit=2&starting_after={cursor}"),
            Some(&token),
        )
        .await;
    let got: Vec<&str> = page2.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![made[0].as_str()]);
    assert!(page2.body["next_cursor"].is_null());
    let bad = b
        .app
        .get("/v1/billing/invoices?limit=0", Some(&token))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad = b
        .app
        .get(
            "/v1/billing/invoices?starting_after=../../v1/customers",
            Some(&token),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // An id Stripe does not know is the caller's mistake, not Stripe's
    // failure (Stripe answers 400 resource_missing on `starting_after`).
    let unknown = b
        .app
        .get("/v1/billing/invoices?starting_after=in_0", Some(&token))
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.text
    );
    assert_eq!(unknown.body["errors"][0]["field"], "starting_after");
}

#[tokio::test]
async fn billing_is_owner_only_and_unconfigured_billing_says_so() {
    let b = BillingApp::spawn().await;
    let admin = b.app.admin(&email("admin")).await;
    for (method, path) in [
        ("GET", "/v1/billing/subscription"),
        ("POST", "/v1/billing/cancel"),
        ("POST", "/v1/billing/portal-session"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = b.app.call(m.clone(), path, None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let r = b.app.call(m, path, Some(&admin), Some(json!({}))).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::FORBIDDEN, "no_business"),
            "{method} {path}"
        );
    }
    // No subscription yet: plan changes have nothing to change.
    let token = b.app.owner(&email("nosub"), "No Sub").await;
    for path in [
        "/v1/billing/change-plan",
        "/v1/billing/cancel",
        "/v1/billing/resume",
    ] {
        let r = b
            .app
            .post(path, Some(&token), json!({"plan": "growth"}))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::CONFLICT, "no_subscription"),
            "{path}"
        );
    }
    let r = b.app.get("/v1/billing/invoices", Some(&token)).await;
    assert_eq!(r.body["data"], json!([]), "no customer, no invoices");

    // Without Stripe configuration.
    let plain = TestApp::spawn().await;
    let token = plain.owner(&email("plain"), "Plain").await;
    let r = plain
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "growth"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "billing_unavailable")
    );
    let r = plain.post("/v1/webhooks/stripe", None, json!({})).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "webhooks_unavailable")
    );
    let s = plain.get("/v1/billing/subscription", Some(&token)).await;
    assert_eq!(s.body["plan"]["id"], "trial");
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let b = BillingApp::spawn().await;
    let token = b.app.owner(&email("sig"), "Sig Co").await;
    let bid: Uuid = b.app.business_id(&token).await.parse().unwrap();
    // Give the business a customer so the event would apply.
    let r = b
        .app
        .post("/v1/billing/portal-session", Some(&token), json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let customer = b.business(bid).await.stripe_customer_id.unwrap();
    let sub = b
        .stripe
        .create_subscription(&customer, &price("growth"), "active");
    let event = stripe_fake::event("customer.subscription.created", sub, b.tick());
    let body = event.to_string();
    let now = Utc::now().timestamp();

    let cases: Vec<(&str, Option<String>, String)> = vec![
        (
            "wrong secret",
            Some(stripe_fake::signature(&body, &["whsec_attacker"], now)),
            body.clone(),
        ),
        (
            // A minute past the 300 s tolerance either way: the cases run
            // one after another, and the server's clock moves on meanwhile.
            "stale timestamp",
            Some(stripe_fake::signature(&body, &[WHSEC], now - 360)),
            body.clone(),
        ),
        (
            "future timestamp",
            Some(stripe_fake::signature(&body, &[WHSEC], now + 360)),
            body.clone(),
        ),
        (
            "altered body",
            Some(stripe_fake::signature(&body, &[WHSEC], now)),
            body.replace("\"active\"", "\"trialing\""),
        ),
        ("missing header", None, body.clone()),
        ("no v1", Some(format!("t={now}")), body.clone()),
        (
            "v0 only",
            Some(format!("t={now},v0={}", "ab".repeat(32))),
            body.clone(),
        ),
        ("garbage", Some("nonsense".into()), body.clone()),
    ];
    for (name, sig, payload) in &cases {
        let r = b.deliver_raw(payload, sig.as_deref()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert!(r.is_problem(), "{name}");
        let expected = match *name {
            "wrong secret" | "altered body" => "signature_mismatch",
            "stale timestamp" | "future timestamp" => "signature_expired",
            "missing header" => "signature_missing",
            _ => "signature_malformed",
        };
        assert_eq!(r.code(), expected, "{name}");
    }
    assert!(b.ledger().await.is_empty(), "nothing recorded");
    let subs = subscription::Entity::find()
        .count(&b.app.app.state.db)
        .await
        .unwrap();
    assert_eq!(subs, 0, "nothing applied");
    assert_eq!(b.business(bid).await.plan, "trial");

    // During a secret roll Stripe sends one v1 per secret; either one configured is enough.
    let rolled = stripe_fake::signature(&body, &["whsec_retired_elsewhere", WHSEC_OLD], now);
    let r = b.deliver_raw(&body, Some(&rolled)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["outcome"], "processed");
    assert_eq!(b.business(bid).await.plan, "growth");
    // The same delivery again is a no-op.
    let r = b.deliver_raw(&body, Some(&rolled)).await;
    assert_eq!(r.body["outcome"], "duplicate");
    assert_eq!(b.ledger().await.len(), 1);

    // Signed but not an event: 400, nothing lost silently.
    let junk = "{\"hello\":1}";
    let r = b
        .deliver_raw(junk, Some(&stripe_fake::signature(junk, &[WHSEC], now)))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "invalid_event")
    );
}

#[tokio::test]
async fn unknown_types_are_acknowledged_and_processing_failures_answer_5xx_for_retry() {
    let b = BillingApp::spawn().await;
    let r = b
        .deliver(&stripe_fake::event(
            "charge.refunded",
            stripe_fake::fixture("charge"),
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["outcome"], "ignored");

    // checkout.session.completed re-fetches the subscription; Stripe is down.
    let token = b.app.owner(&email("retry"), "Retry Co").await;
    let bid: Uuid = b.app.business_id(&token).await.parse().unwrap();
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "growth"}),
        )
        .await;
    let (session, _) = b.stripe.complete_checkout(r.body["id"].as_str().unwrap());
    let event = stripe_fake::event("checkout.session.completed", session, b.tick());
    b.stripe.fail_next(50);
    let r = b.deliver(&event).await;
    assert_eq!(
        (r.status, r.code()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "webhook_processing_failed"
        )
    );
    let row = inbound_event::Entity::find_by_id((
        "stripe".to_owned(),
        event["id"].as_str().unwrap().to_owned(),
    ))
    .one(&b.app.app.state.db)
    .await
    .unwrap()
    .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    assert!(row.last_error.is_some());
    assert_eq!(b.business(bid).await.plan, "trial", "nothing applied");
    let r = b.deliver(&event).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    b.stripe.fail_next(0);

    // Stripe's retry succeeds and the ledger shows the history.
    let r = b.deliver(&event).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["outcome"], "processed");
    let row = inbound_event::Entity::find_by_id((
        "stripe".to_owned(),
        event["id"].as_str().unwrap().to_owned(),
    ))
    .one(&b.app.app.state.db)
    .await
    .unwrap()
    .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("done", 3));
    assert_eq!(row.business_id, Some(bid));
    assert_eq!(b.business(bid).await.plan, "growth");
    let r = b.deliver(&event).await;
    assert_eq!(r.body["outcome"], "duplicate");
}

#[tokio::test]
async fn stripe_downgrade_suspends_newest_channels_and_restores_them_by_itself() {
    let b = BillingApp::spawn().await;
    let (token, bid, sub) = b.subscriber("growth").await;
    let ids = b.add_channels(&token, 4).await;
    // One channel was connected: it must come back connected.
    let mut c = channel::Entity::find_by_id(ids[2].parse::<Uuid>().unwrap())
        .one(&b.app.app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    c.status = Set(ChannelStatus::Connected);
    c.update(&b.app.app.state.db).await.unwrap();

    // Portal downgrade to `single` (1 channel): the 3 newest are suspended.
    b.stripe_changes(&sub, |s| set_price(s, "single")).await;
    let connected = (ChannelStatus::Connected, None);
    assert_eq!(
        b.channel_states(bid).await,
        vec![
            running(),
            suspended("over_plan_limit"),
            suspended("over_plan_limit"),
            suspended("over_plan_limit")
        ]
    );
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("single", BusinessStatus::OverLimit)
    );
    let r = b
        .app
        .channel(&token, &b.app.company(&token, "Other").await, "email")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "plan_limit_reached")
    );

    // Back up to growth: all come back, each to its previous status.
    b.stripe_changes(&sub, |s| set_price(s, "growth")).await;
    assert_eq!(
        b.channel_states(bid).await,
        vec![running(), running(), connected.clone(), running()]
    );
    assert_eq!(b.business(bid).await.status, BusinessStatus::Active);

    // Down to double (2): the 2 newest suspended; a channel suspended for
    // another reason is never touched.
    b.stripe_changes(&sub, |s| set_price(s, "double")).await;
    assert_eq!(
        b.channel_states(bid).await,
        vec![
            running(),
            running(),
            suspended("over_plan_limit"),
            suspended("over_plan_limit")
        ]
    );
    // Removing channels until usage fits restores the rest by itself.
    let r = b
        .app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/channels/{}", ids[3]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(b.business(bid).await.status, BusinessStatus::OverLimit);
    let r = b
        .app
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/channels/{}", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        b.channel_states(bid).await,
        vec![running(), connected.clone()]
    );
    assert_eq!(b.business(bid).await.status, BusinessStatus::Active);

    let mut held = channel::Entity::find_by_id(ids[1].parse::<Uuid>().unwrap())
        .one(&b.app.app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    held.status = Set(ChannelStatus::Suspended);
    held.suspended_reason = Set(Some("abuse_review".into()));
    held.update(&b.app.app.state.db).await.unwrap();
    b.stripe_changes(&sub, |s| set_price(s, "single")).await;
    b.stripe_changes(&sub, |s| set_price(s, "growth")).await;
    assert_eq!(
        b.channel_states(bid).await,
        vec![suspended("abuse_review"), connected]
    );
}

#[tokio::test]
async fn trial_end_restricts_and_a_subscription_restores() {
    let b = BillingApp::spawn().await;
    let owner_email = email("trialist");
    let token = b.app.owner(&owner_email, "Trial Co").await;
    let bid: Uuid = b.app.business_id(&token).await.parse().unwrap();
    let ids = b.add_channels(&token, 1).await;

    // The reminder three days before the end, once.
    let mut a = b.business(bid).await.into_active_model();
    a.trial_ends_at = Set(Utc::now() + Duration::hours(50));
    a.recheck_at = Set(Some(Utc::now() - Duration::seconds(1)));
    a.update(&b.app.app.state.db).await.unwrap();
    b.sweep().await;
    b.sweep().await;
    wait_for_subject(&b.app, &owner_email, "trial ends in 3 days").await;
    let reminders = entity::email::outbox::Entity::find()
        .filter(entity::email::outbox::Column::ToAddress.eq(owner_email.to_lowercase()))
        .filter(entity::email::outbox::Column::Template.eq("trial_ending"))
        .count(&b.app.app.state.db)
        .await
        .unwrap();
    assert_eq!(reminders, 1, "one reminder");
    assert_eq!(
        b.business(bid).await.recheck_at.map(|t| t.timestamp()),
        Some(b.business(bid).await.trial_ends_at.timestamp())
    );

    // The trial ends: restricted, channels suspended with the reason, notice sent.
    let mut a = b.business(bid).await.into_active_model();
    a.trial_ends_at = Set(Utc::now() - Duration::seconds(1));
    a.recheck_at = Set(Some(Utc::now() - Duration::seconds(1)));
    a.update(&b.app.app.state.db).await.unwrap();
    b.sweep().await;
    let biz = b.business(bid).await;
    assert_eq!(biz.status, BusinessStatus::Restricted);
    assert_eq!(biz.recheck_at, None);
    assert_eq!(
        b.channel_states(bid).await,
        vec![suspended("subscription_required")]
    );
    wait_for_subject(&b.app, &owner_email, "paused").await;
    let company = b.app.company(&token, "Later").await;
    let r = b.app.channel(&token, &company, "email").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "subscription_required")
    );
    // Reading and billing still work.
    assert_eq!(
        b.app.get("/v1/channels", Some(&token)).await.status,
        StatusCode::OK
    );

    // Subscribing restores.
    b.subscribe(&token, "single").await;
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("single", BusinessStatus::Active)
    );
    assert_eq!(b.channel_states(bid).await, vec![running()]);
    let _ = ids;
}

#[tokio::test]
async fn past_due_keeps_access_for_the_grace_period_then_restricts() {
    let b = BillingApp::spawn().await;
    let (token, bid, sub) = b.subscriber("double").await;
    b.add_channels(&token, 2).await;
    let owner = b.app.get("/v1/me", Some(&token)).await.body["email"]
        .as_str()
        .unwrap()
        .to_owned();

    // Renewal failed just now: grace.
    let now = Utc::now().timestamp();
    b.stripe_changes(&sub, |s| {
        s["status"] = json!("past_due");
        s["items"]["data"][0]["current_period_start"] = json!(now - 3600);
    })
    .await;
    let s = b.app.get("/v1/billing/subscription", Some(&token)).await;
    assert_eq!(s.body["status"], "active");
    assert_eq!(s.body["subscription"]["status"], "past_due");
    assert!(s.body["grace_ends_at"].is_string());
    assert_eq!(b.channel_states(bid).await, vec![running(), running()]);
    let failed = b.stripe.add_invoice(
        &b.business(bid).await.stripe_customer_id.unwrap(),
        Some(&sub),
        1999,
        "open",
    );
    let r = b
        .deliver(&stripe_fake::event(
            "invoice.payment_failed",
            failed,
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    wait_for_subject(&b.app, &owner, "payment failed").await;

    // The grace period is over (the unpaid period began four days ago).
    b.stripe_changes(&sub, |s| {
        s["items"]["data"][0]["current_period_start"] = json!(now - 4 * 86_400);
    })
    .await;
    assert_eq!(b.business(bid).await.status, BusinessStatus::Restricted);
    assert_eq!(
        b.channel_states(bid).await,
        vec![
            suspended("subscription_required"),
            suspended("subscription_required")
        ]
    );

    // Paid: invoice.paid re-fetches the subscription, now active.
    b.stripe
        .update_subscription(&sub, |s| s["status"] = json!("active"));
    let paid = b.stripe.add_invoice(
        &b.business(bid).await.stripe_customer_id.unwrap(),
        Some(&sub),
        1999,
        "paid",
    );
    let r = b
        .deliver(&stripe_fake::event("invoice.paid", paid, b.tick()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(b.business(bid).await.status, BusinessStatus::Active);
    assert_eq!(b.channel_states(bid).await, vec![running(), running()]);

    // Grace also ends by the clock alone: the sweep restricts when due.
    b.stripe_changes(&sub, |s| {
        s["status"] = json!("past_due");
        s["items"]["data"][0]["current_period_start"] = json!(now - 3600);
    })
    .await;
    let biz = b.business(bid).await;
    assert_eq!(biz.status, BusinessStatus::Active);
    let due = biz.recheck_at.unwrap();
    assert!(
        due > Utc::now() + Duration::hours(70),
        "recheck at the end of grace"
    );
    let mut row = subscription::Entity::find()
        .filter(subscription::Column::StripeSubscriptionId.eq(&sub))
        .one(&b.app.app.state.db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.current_period_start = Set(Some(Utc::now() - Duration::hours(73)));
    row.update(&b.app.app.state.db).await.unwrap();
    let mut a = b.business(bid).await.into_active_model();
    a.recheck_at = Set(Some(Utc::now()));
    a.update(&b.app.app.state.db).await.unwrap();
    b.sweep().await;
    assert_eq!(b.business(bid).await.status, BusinessStatus::Restricted);
}

#[tokio::test]
async fn canceled_unpaid_and_expired_subscriptions_restrict() {
    let b = BillingApp::spawn().await;
    for status in ["canceled", "unpaid", "incomplete_expired"] {
        let (token, bid, sub) = b.subscriber("growth").await;
        b.add_channels(&token, 1).await;
        // Past our own trial, so nothing else grants access.
        let mut a = b.business(bid).await.into_active_model();
        a.trial_ends_at = Set(Utc::now() - Duration::days(1));
        a.update(&b.app.app.state.db).await.unwrap();
        let kind = if status == "canceled" {
            "customer.subscription.deleted"
        } else {
            "customer.subscription.updated"
        };
        let obj = b
            .stripe
            .update_subscription(&sub, |s| s["status"] = json!(status));
        let r = b.deliver(&stripe_fake::event(kind, obj, b.tick())).await;
        assert_eq!(r.status, StatusCode::OK, "{status}: {}", r.text);
        assert_eq!(
            b.business(bid).await.status,
            BusinessStatus::Restricted,
            "{status}"
        );
        assert_eq!(
            b.channel_states(bid).await,
            vec![suspended("subscription_required")],
            "{status}"
        );
    }

    // A canceled subscription never comes back from a late, older event.
    let (_, bid, sub) = b.subscriber("growth").await;
    let active = b.stripe.subscription(&sub).unwrap();
    let late = b.tick();
    let canceled = b
        .stripe
        .update_subscription(&sub, |s| s["status"] = json!("canceled"));
    let r = b
        .deliver(&stripe_fake::event(
            "customer.subscription.deleted",
            canceled,
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = b
        .deliver(&stripe_fake::event(
            "customer.subscription.updated",
            active,
            late,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let row = subscription::Entity::find()
        .filter(subscription::Column::StripeSubscriptionId.eq(&sub))
        .one(&b.app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "canceled");
    let _ = bid;
}

#[tokio::test]
async fn same_second_events_are_settled_by_fetching_from_stripe() {
    let b = BillingApp::spawn().await;
    let (_, bid, sub) = b.subscriber("growth").await;
    let t = b.tick();
    let single = b
        .stripe
        .update_subscription(&sub, |s| set_price(s, "single"));
    let double = b
        .stripe
        .update_subscription(&sub, |s| set_price(s, "double"));
    // Stripe's truth is `double`; the two events share a second and arrive reversed.
    let r = b
        .deliver(&stripe_fake::event(
            "customer.subscription.updated",
            double,
            t,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let fetches_before = b
        .stripe
        .requests_to("GET", &format!("/v1/subscriptions/{sub}"))
        .len();
    let r = b
        .deliver(&stripe_fake::event(
            "customer.subscription.updated",
            single,
            t,
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        b.stripe
            .requests_to("GET", &format!("/v1/subscriptions/{sub}"))
            .len(),
        fetches_before + 1
    );
    assert_eq!(b.business(bid).await.plan, "double");
}

#[tokio::test]
async fn the_billing_job_ends_trials_on_its_own_after_a_restart() {
    let stripe = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = billing_config(dir.path(), &stripe.url).await;
    let app = TestApp::spawn_with(tempfile::tempdir().unwrap(), config.clone()).await;
    let token = app.owner(&email("job"), "Job Co").await;
    let bid: Uuid = app.business_id(&token).await.parse().unwrap();
    let company = app.company(&token, "Shop").await;
    assert_eq!(
        app.channel(&token, &company, "telegram").await.status,
        StatusCode::CREATED
    );
    let db = app.app.state.db.clone();
    let mut a = business::Entity::find_by_id(bid)
        .one(&db)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    a.trial_ends_at = Set(Utc::now() - Duration::seconds(1));
    a.recheck_at = Set(Some(Utc::now() - Duration::seconds(1)));
    a.update(&db).await.unwrap();
    app.app.stop().await.unwrap();

    // A new process on the same database, with the job every second.
    config.billing.sweep_interval_secs = 1;
    let app = TestApp::spawn_with(dir, config).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let biz = business::Entity::find_by_id(bid)
            .one(&app.app.state.db)
            .await
            .unwrap()
            .unwrap();
        if biz.status == BusinessStatus::Restricted {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not end the trial"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ch = channel::Entity::find()
        .filter(channel::Column::BusinessId.eq(bid))
        .one(&app.app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ch.suspended_reason.as_deref(),
        Some("subscription_required")
    );
}

#[tokio::test]
async fn customer_deleted_in_stripe_cancels_and_a_new_checkout_makes_a_new_customer() {
    let b = BillingApp::spawn().await;
    let (token, bid, _sub) = b.subscriber("growth").await;
    let customer = b.business(bid).await.stripe_customer_id.unwrap();
    let mut obj = stripe_fake::fixture("customer");
    obj["id"] = json!(customer);
    obj["metadata"] = json!({ "business_id": bid.to_string() });
    let mut a = b.business(bid).await.into_active_model();
    a.trial_ends_at = Set(Utc::now() - Duration::days(1));
    a.update(&b.app.app.state.db).await.unwrap();
    let r = b
        .deliver(&stripe_fake::event("customer.deleted", obj, b.tick()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let biz = b.business(bid).await;
    assert_eq!(biz.stripe_customer_id, None);
    assert_eq!(biz.status, BusinessStatus::Restricted);
    let r = b
        .app
        .post(
            "/v1/billing/checkout-session",
            Some(&token),
            json!({"plan": "single"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let creates = b.stripe.requests_to("POST", "/v1/customers");
    assert_eq!(creates.len(), 2);
    assert_ne!(
        creates[0].idempotency_key, creates[1].idempotency_key,
        "a new key after a deletion"
    );
    assert_ne!(b.business(bid).await.stripe_customer_id.unwrap(), customer);
}

#[tokio::test]
async fn reconcile_command_repairs_drift_and_reports_it() {
    let b = BillingApp::spawn().await;
    let (token, bid, sub) = b.subscriber("growth").await;
    b.add_channels(&token, 3).await;
    // Changed in the Stripe dashboard; the webhook never arrived.
    b.stripe
        .update_subscription(&sub, |s| set_price(s, "single"));
    let config = &b.app.config;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.args(["billing", "reconcile"])
        .env("DATABASE_URL", &config.database_url)
        .env("SWITCHBOARD_DEV_KEYS_PATH", &config.dev_keys_path)
        .env("SWITCHBOARD_STRIPE__SECRET_KEY", "sk_test_switchboard")
        .env("SWITCHBOARD_STRIPE__API_BASE", &b.stripe.url)
        .env(
            "SWITCHBOARD_PLANS__SINGLE__STRIPE_PRICE_ID",
            price("single"),
        )
        .env(
            "SWITCHBOARD_PLANS__GROWTH__STRIPE_PRICE_ID",
            price("growth"),
        )
        .env(
            "SWITCHBOARD_PLANS__DOUBLE__STRIPE_PRICE_ID",
            price("double"),
        )
        .env("SWITCHBOARD_LOG", "warn");
    // Blocking wait off the test's runtime, which serves the fake Stripe.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("business {bid}: plan growth -> single status active -> over_limit suspended 2 restored 0")), "{stdout}");
    assert!(
        stdout.contains("repaired 1 subscriptions; 1 businesses changed; 0 errors"),
        "{stdout}"
    );
    let biz = b.business(bid).await;
    assert_eq!(
        (biz.plan.as_str(), biz.status),
        ("single", BusinessStatus::OverLimit)
    );
    // Nothing left to repair.
    let report = switchboard::domain::billing::reconcile::reconcile(&b.app.app.state.billing())
        .await
        .unwrap();
    assert_eq!(
        (report.subscriptions_repaired, report.changes.len()),
        (0, 0)
    );
}

#[tokio::test]
async fn the_assigned_manager_sees_subscription_status_and_renewal_but_changes_nothing() {
    let b = BillingApp::spawn().await;
    let (token, bid, sub) = b.subscriber("growth").await;
    let admin = b.app.admin(&email("boss")).await;
    let (manager_id, manager) = b.app.manager(&admin, &email("manny")).await;
    let r = b
        .app
        .call(
            reqwest::Method::PUT,
            &format!("/v1/admin/businesses/{bid}/manager"),
            Some(&admin),
            Some(json!({ "manager_id": manager_id })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let view = b
        .app
        .get(&format!("/v1/manager/businesses/{bid}"), Some(&manager))
        .await;
    assert_eq!(view.status, StatusCode::OK, "{}", view.text);
    assert_eq!(view.body["subscription"]["id"], sub.as_str());
    assert_eq!(view.body["subscription"]["status"], "trialing");
    let renewal = b.stripe.subscription(&sub).unwrap()["items"]["data"][0]["current_period_end"]
        .as_i64()
        .unwrap();
    let shown = chrono::DateTime::parse_from_rfc3339(
        view.body["subscription"]["current_period_end"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
    .timestamp();
    assert_eq!(shown, renewal);
    // Never billing changes: the owner routes are for the owner's business only.
    let r = b
        .app
        .post("/v1/billing/cancel", Some(&manager), json!({}))
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "no_business"));
    assert_eq!(
        b.stripe.subscription(&sub).unwrap()["cancel_at_period_end"],
        false
    );
    let _ = token;
}

#[tokio::test]
async fn trial_will_end_notifies_and_connect_events_do_not_touch_subscriptions() {
    let b = BillingApp::spawn().await;
    let (token, bid, sub) = b.subscriber("growth").await;
    let owner = b.app.get("/v1/me", Some(&token)).await.body["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let obj = b.stripe.subscription(&sub).unwrap();
    let r = b
        .deliver(&stripe_fake::event(
            "customer.subscription.trial_will_end",
            obj,
            b.tick(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    wait_for_subject(&b.app, &owner, "trial ends in").await;
    let notice = b
        .app
        .app
        .state
        .mailer
        .messages_to(&owner)
        .into_iter()
        .find(|m| m.subject.contains("trial ends in"))
        .unwrap();
    assert!(
        notice.text.contains("payment method is charged"),
        "{}",
        notice.text
    );

    // The same subscription id arriving on a connected account's event is
    // not the business's subscription: recorded, ignored.
    let canceled = b
        .stripe
        .update_subscription(&sub, |s| s["status"] = json!("canceled"));
    let mut connect = stripe_fake::event("customer.subscription.deleted", canceled, b.tick());
    connect["account"] = json!("acct_1Connected");
    let r = b.deliver(&connect).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["outcome"], "ignored");
    assert_eq!(b.business(bid).await.plan, "growth");
    assert_eq!(b.business(bid).await.status, BusinessStatus::Active);
}
