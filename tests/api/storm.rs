//! Webhook storm: 1,000 Stripe events for 50 businesses, shuffled, with 30%
//! duplicates, delivered concurrently, end in exactly the state that
//! delivering them once each in order reaches; every event is in the
//! ledger once, none lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, Utc};
use entity::billing::subscription;
use entity::enums::{BusinessStatus, ChannelStatus, CompanyKind, CompanyStatus, Platform, Role};
use entity::inbound_event;
use entity::{business, channel, company, user};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::billing::{WHSEC, billing_config, price};
use crate::common::TestApp;
use crate::stripe_fake::{self, FakeStripe};

const BUSINESSES: usize = 50;
const EVENTS_PER_BUSINESS: usize = 20;
const CHANNELS: usize = 4;

/// Inserts a business on `growth` with Stripe customer `customer` and
/// `CHANNELS` channels (oldest first), its trial over.
async fn seed(app: &TestApp, customer: &str) -> Uuid {
    let db = &app.app.state.db;
    let now = Utc::now();
    let owner = Uuid::now_v7();
    user::ActiveModel {
        id: Set(owner),
        email: Set(format!("{customer}@storm.test")),
        password_hash: Set(None),
        full_name: Set("Storm Owner".into()),
        role: Set(Role::Owner),
        email_verified_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        sessions_valid_after: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let id = Uuid::now_v7();
    business::ActiveModel {
        id: Set(id),
        name: Set(format!("Storm {customer}")),
        owner_id: Set(owner),
        plan: Set("growth".into()),
        status: Set(BusinessStatus::Active),
        trial_ends_at: Set(now - Duration::days(1)),
        company_seq: Set(1),
        manager_id: Set(None),
        stripe_customer_id: Set(Some(customer.to_owned())),
        stripe_account_id: Set(None),
        recheck_at: Set(None),
        trial_notice_sent_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        event_seq: Set(0),
        api_rate_limit_per_minute: Set(None),
        granted_plan: Set(None),
        granted_channel_limit: Set(None),
    }
    .insert(db)
    .await
    .unwrap();
    let company_id = Uuid::now_v7();
    company::ActiveModel {
        id: Set(company_id),
        business_id: Set(id),
        code: Set("COMP001".into()),
        name: Set("Shop".into()),
        kind: Set(CompanyKind::Product),
        shop_type: Set(None),
        status: Set(CompanyStatus::Active),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .unwrap();
    for i in 0..CHANNELS {
        let created = now + Duration::milliseconds(i as i64);
        channel::ActiveModel {
            id: Set(Uuid::now_v7()),
            business_id: Set(id),
            company_id: Set(company_id),
            platform: Set(Platform::Telegram),
            status: Set(if i % 2 == 0 {
                ChannelStatus::Connected
            } else {
                ChannelStatus::Disconnected
            }),
            account_id: Set(None),
            account_name: Set(Some(format!("channel {i}"))),
            last_error: Set(None),
            error_count: Set(0),
            suspended_reason: Set(None),
            suspended_from: Set(None),
            config: Set(json!({})),
            created_at: Set(created),
            updated_at: Set(created),
        }
        .insert(db)
        .await
        .unwrap();
    }
    id
}

/// Everything billing decides, per Stripe customer (business ids differ between apps).
type Snapshot = BTreeMap<
    String,
    (
        String,
        BusinessStatus,
        Vec<Value>,
        Vec<(ChannelStatus, Option<String>)>,
    ),
>;

async fn snapshot(app: &TestApp) -> Snapshot {
    let db = &app.app.state.db;
    let mut out = BTreeMap::new();
    for b in business::Entity::find().all(db).await.unwrap() {
        let Some(customer) = b.stripe_customer_id.clone() else {
            continue;
        };
        let subs: Vec<Value> = subscription::Entity::find()
            .filter(subscription::Column::BusinessId.eq(b.id))
            .order_by_asc(subscription::Column::StripeSubscriptionId)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                json!([
                    s.stripe_subscription_id,
                    s.status,
                    s.price_id,
                    s.plan,
                    s.cancel_at_period_end,
                    s.current_period_start,
                    s.current_period_end,
                    s.trial_end
                ])
            })
            .collect();
        let channels = channel::Entity::find()
            .filter(channel::Column::BusinessId.eq(b.id))
            .order_by_asc(channel::Column::CreatedAt)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.status, c.suspended_reason))
            .collect();
        out.insert(customer, (b.plan, b.status, subs, channels));
    }
    out
}

async fn post(client: &reqwest::Client, url: &str, body: &str) -> (StatusCode, Value) {
    let sig = stripe_fake::signature(body, &[WHSEC], Utc::now().timestamp());
    let res = client
        .post(url)
        .header("content-type", "application/json")
        .header("Stripe-Signature", sig)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_shuffled_duplicated_concurrent_events_ends_as_in_order_delivery() {
    let stripe = FakeStripe::start().await;
    let spawn = || async {
        let dir = tempfile::tempdir().unwrap();
        let config = billing_config(dir.path(), &stripe.url).await;
        TestApp::spawn_with(dir, config).await
    };
    let (in_order, storm) = (spawn().await, spawn().await);
    let mut rng = StdRng::seed_from_u64(0x5717_2026);
    let plans = ["single", "double", "growth", "special"];
    let now = Utc::now().timestamp();
    let base = now - 10_000;
    let mut events: Vec<(i64, Value)> = Vec::new();
    for i in 0..BUSINESSES {
        let customer = format!("cus_storm{i:03}");
        seed(&in_order, &customer).await;
        seed(&storm, &customer).await;
        let mut sub = stripe.create_subscription(&customer, &price("growth"), "active");
        let sub_id = sub["id"].as_str().unwrap().to_owned();
        let ends_canceled = i % 5 == 0;
        let refetches = i % 5 == 1;
        for k in 0..EVENTS_PER_BUSINESS {
            let created = base + (k as i64) * 10 + rng.random_range(0..5);
            let last = k == EVENTS_PER_BUSINESS - 1;
            let kind = if k == 0 {
                "customer.subscription.created"
            } else if last && ends_canceled {
                "customer.subscription.deleted"
            } else if refetches && k % 7 == 3 {
                "invoice.paid"
            } else if k % 9 == 4 {
                "charge.succeeded"
            } else {
                "customer.subscription.updated"
            };
            let status = if last && ends_canceled {
                "canceled"
            } else {
                ["active", "active", "past_due", "trialing", "active"][rng.random_range(0..5)]
            };
            sub["status"] = json!(status);
            sub["items"]["data"][0]["price"]["id"] =
                json!(price(plans[rng.random_range(0..plans.len())]));
            // A recent renewal: past_due is within its grace period.
            sub["items"]["data"][0]["current_period_start"] = json!(now - 3600 - k as i64);
            sub["items"]["data"][0]["current_period_end"] = json!(now + 30 * 86_400 - k as i64);
            sub["cancel_at_period_end"] = json!(rng.random_bool(0.2));
            sub["trial_end"] = if status == "trialing" {
                json!(now + 86_400)
            } else {
                Value::Null
            };
            let object = match kind {
                "invoice.paid" => stripe.add_invoice(&customer, Some(&sub_id), 999, "paid"),
                "charge.succeeded" => stripe_fake::fixture("charge"),
                _ => sub.clone(),
            };
            events.push((created, stripe_fake::event(kind, object, created)));
        }
        // Stripe's current state is the last state the events describe.
        let final_state = sub.clone();
        stripe.update_subscription(&sub_id, move |s| *s = final_state);
    }
    assert_eq!(events.len(), 1000);

    // In order, once each.
    let mut ordered = events.clone();
    ordered.sort_by_key(|(created, e)| (*created, e["id"].as_str().unwrap().to_owned()));
    let url = in_order.url("/v1/webhooks/stripe");
    for (_, e) in &ordered {
        let (status, body) = post(&in_order.client, &url, &e.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // Shuffled, 30% duplicated, 16 at a time.
    let mut deliveries: Vec<String> = events.iter().map(|(_, e)| e.to_string()).collect();
    for _ in 0..300 {
        let pick = deliveries[rng.random_range(0..1000)].clone();
        deliveries.push(pick);
    }
    deliveries.shuffle(&mut rng);
    let queue = Arc::new(std::sync::Mutex::new(deliveries));
    let url = storm.url("/v1/webhooks/stripe");
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (queue, url, client) = (queue.clone(), url.clone(), storm.client.clone());
        workers.push(tokio::spawn(async move {
            let mut outcomes = BTreeMap::<String, usize>::new();
            loop {
                let Some(body) = queue.lock().unwrap().pop() else {
                    return outcomes;
                };
                let (status, reply) = post(&client, &url, &body).await;
                assert_eq!(status, StatusCode::OK, "{reply}");
                *outcomes
                    .entry(reply["outcome"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }));
    }
    let mut outcomes = BTreeMap::<String, usize>::new();
    for w in workers {
        for (k, v) in w.await.unwrap() {
            *outcomes.entry(k).or_default() += v;
        }
    }
    assert_eq!(outcomes.values().sum::<usize>(), 1300);
    assert_eq!(
        outcomes.get("duplicate").copied().unwrap_or(0),
        300,
        "{outcomes:?}"
    );

    // Concurrent deliveries were committed in groups; one at a time, alone.
    let grouped = storm.app.state.inbound.stripe.stats();
    assert!(grouped.batches < grouped.events, "{grouped:?}");
    let alone = in_order.app.state.inbound.stripe.stats();
    assert_eq!(alone.batches, alone.events, "{alone:?}");

    // Same final state.
    let (a, b) = (snapshot(&in_order).await, snapshot(&storm).await);
    assert_eq!(a.len(), BUSINESSES);
    for (customer, state) in &a {
        assert_eq!(Some(state), b.get(customer), "{customer}");
    }
    // …and a state worth comparing: plans, over-limit and restricted businesses.
    let statuses: Vec<BusinessStatus> = a.values().map(|s| s.1).collect();
    assert!(statuses.contains(&BusinessStatus::OverLimit));
    assert!(statuses.contains(&BusinessStatus::Restricted));
    assert!(statuses.contains(&BusinessStatus::Active));
    assert!(a.values().any(|s| {
        s.3.iter()
            .any(|c| c.1.as_deref() == Some("over_plan_limit"))
    }));

    // Every event once in each ledger, done; none lost.
    for app in [&in_order, &storm] {
        let rows = inbound_event::Entity::find()
            .all(&app.app.state.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1000);
        assert!(rows.iter().all(|r| r.status == "done" && r.attempts == 1));
    }
}

/// Events delivered while the writer is held up are committed as one batch;
/// when one of them cannot be written (a trigger refuses its subscription),
/// the batch is retried event by event: that event alone answers 500 and is
/// recorded `failed`, every other one commits, and Stripe's retry of the
/// failed one succeeds once the cause is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_fails_alone_and_its_batchmates_commit() {
    const N: usize = 16;
    let stripe = FakeStripe::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = billing_config(dir.path(), &stripe.url).await;
    let app = TestApp::spawn_with(dir, config).await;
    let db = &app.app.state.db;
    let now = Utc::now().timestamp();
    let mut businesses = Vec::new();
    let mut events = Vec::new();
    for i in 0..N {
        let customer = format!("cus_batch{i:02}");
        businesses.push(seed(&app, &customer).await);
        let sub = stripe.create_subscription(&customer, &price("double"), "active");
        events.push(stripe_fake::event("customer.subscription.created", sub, now - 60).to_string());
    }
    let poison: Value = serde_json::from_str(&events[N / 2]).unwrap();
    let poison_sub = poison["data"]["object"]["id"].as_str().unwrap().to_owned();
    let poison_event = poison["id"].as_str().unwrap().to_owned();
    let sqlite = app.app.state.config.is_sqlite();
    let (create, drop) = if sqlite {
        (
            format!(
                "CREATE TRIGGER poison BEFORE INSERT ON subscriptions \
                 WHEN NEW.stripe_subscription_id = '{poison_sub}' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            ),
            "DROP TRIGGER poison".to_owned(),
        )
    } else {
        (
            format!(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.stripe_subscription_id = '{poison_sub}' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql; \
                 CREATE TRIGGER poison BEFORE INSERT ON subscriptions \
                 FOR EACH ROW EXECUTE FUNCTION poison()"
            ),
            "DROP TRIGGER poison ON subscriptions; DROP FUNCTION poison()".to_owned(),
        )
    };
    use sea_orm::ConnectionTrait;
    db.execute_unprepared(&create).await.unwrap();

    // Hold the writer up (the database's write lock on SQLite, the ledger
    // table on PostgreSQL) while every delivery queues behind it.
    let blocker = switchboard::db::begin_write(db).await.unwrap();
    if !sqlite {
        blocker
            .execute_unprepared("LOCK TABLE inbound_events IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
    }
    let url = app.url("/v1/webhooks/stripe");
    let deliveries: Vec<_> = events
        .iter()
        .map(|body| {
            let (client, url, body) = (app.client.clone(), url.clone(), body.clone());
            tokio::spawn(async move { post(&client, &url, &body).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    blocker.commit().await.unwrap();
    let mut replies = Vec::new();
    for d in deliveries {
        replies.push(d.await.unwrap());
    }
    let stats = app.app.state.inbound.stripe.stats();
    assert!(stats.batches < stats.events, "not grouped: {stats:?}");

    for (i, (status, reply)) in replies.iter().enumerate() {
        if i == N / 2 {
            assert_eq!(*status, StatusCode::INTERNAL_SERVER_ERROR, "{reply}");
            assert_eq!(reply["code"], "webhook_processing_failed");
        } else {
            assert_eq!(*status, StatusCode::OK, "{reply}");
            assert_eq!(reply["outcome"], "processed");
        }
    }
    let plan = |id: Uuid| async move {
        business::Entity::find_by_id(id)
            .one(db)
            .await
            .unwrap()
            .unwrap()
            .plan
    };
    for (i, id) in businesses.iter().enumerate() {
        let expected = if i == N / 2 { "growth" } else { "double" };
        assert_eq!(plan(*id).await, expected, "business {i}");
    }
    let ledger = inbound_event::Entity::find().all(db).await.unwrap();
    assert_eq!(ledger.len(), N);
    for row in &ledger {
        let expected = if row.event_id == poison_event {
            ("failed", 1)
        } else {
            ("done", 1)
        };
        assert_eq!(
            (row.status.as_str(), row.attempts),
            expected,
            "{}",
            row.event_id
        );
    }

    // The cause goes away; Stripe's retry succeeds.
    db.execute_unprepared(&drop).await.unwrap();
    let (status, reply) = post(&app.client, &url, &events[N / 2]).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (StatusCode::OK, Some("processed"))
    );
    assert_eq!(plan(businesses[N / 2]).await, "double");
    let row = inbound_event::Entity::find_by_id(("stripe".to_owned(), poison_event))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status.as_str(), row.attempts), ("done", 2));
}
