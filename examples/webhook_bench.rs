//! Benchmark (not a test): Stripe webhook ingestion. Starts the real app in
//! process (release build; SQLite in a temporary directory, or a fresh
//! database on the PostgreSQL server of `DATABASE_URL=postgres://…`), seeds
//! `--businesses` businesses (default 1,000; each with a Stripe customer, one
//! company and two connected channels), then posts signed
//! `customer.subscription.updated` events built from Stripe's published
//! fixtures (`tests/fixtures/stripe/fixtures3.json`) over `--connections`
//! keep-alive connections (default 64), in `--waves` waves (default 3) of one
//! event per business. Each wave moves every subscription to another price
//! (growth → double → single → growth …) with a later `created`, so every
//! event changes the stored subscription and the entitlement (plan, and on
//! `single` one of the two channels is suspended over the plan limit).
//!
//! Reports events/s, p50, p99 and max latency per wave and combined as
//! markdown table rows, checks that every response was 200
//! `{"outcome":"processed"}` and that the ledger (`inbound_events`) holds one
//! `done` row per event sent, and that the businesses' plans and suspended
//! channels are those the last wave asks for. Exits non-zero on any error.
//! The load generator runs in the same process (same tokio runtime, same
//! cores) as the server.
//! Target (issue): ≥ 2,000 events/s on SQLite.
//!
//! With `--purchases`, the events are end-customer payments instead: each
//! business has an enabled connected account and one purchase with a
//! payment link; wave 1 is `checkout.session.completed` (paid), wave 2
//! `charge.refunded`, later waves `checkout.session.expired` (too late:
//! no change). The state check counts the purchases' final statuses.
//! Target (issue "Businesses get paid"): ≥ 5,000 events/s on SQLite.
//!
//! With `--purchases --create N`, no events: N purchases are asked for
//! through `POST /v1/purchases` (each business's owner in turn, over the
//! same connections) against the test suite's local Stripe server
//! (`tests/api/stripe_fake/`, in process, answering at once), and the
//! latency of each answer is reported; the check is that every answer was
//! 201 `payment_link_sent`, Stripe got N Checkout Sessions and the log
//! holds N more purchases.
//!
//! Run with `benches/webhooks.sh` (SQLite, then PostgreSQL), or:
//! `cargo run --release --example webhook_bench -- [--businesses N] [--waves N] [--connections N] [--pool N] [--purchases]`.

#[path = "support/pg.rs"]
mod pg;
#[path = "../tests/api/stripe_fake/mod.rs"]
mod stripe_fake;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::Bytes;
use chrono::Utc;
use clap::Parser;
use entity::enums::{BusinessStatus, ChannelStatus, CompanyKind, CompanyStatus, Platform, Role};
use entity::inbound_event;
use entity::{business, channel, company, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, TransactionTrait};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::{Config, StripeConfig};
use switchboard::inbound::stripe::signature;
use uuid::Uuid;

const WEBHOOK_SECRET: &str = "whsec_bench";
const DAY: i64 = 86_400;
/// Prices the waves cycle through, with their plans' channel limits 4, 2, 1.
const PRICES: [(&str, &str); 3] = [
    ("growth", "price_growth"),
    ("double", "price_double"),
    ("single", "price_single"),
];
const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/stripe/fixtures3.json"
);

#[derive(Parser)]
#[command(about = "Stripe webhook ingestion benchmark")]
struct Args {
    /// Businesses seeded; one event per business per wave.
    #[arg(long, default_value_t = 1000)]
    businesses: usize,
    /// Waves of events (each changes every business's subscription again).
    #[arg(long, default_value_t = 3)]
    waves: usize,
    /// Concurrent keep-alive connections posting events.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Database pool size (`database_max_connections`); default: the
    /// configuration's default.
    #[arg(long)]
    pool: Option<u32>,
    /// Purchase events (paid, refunded, late expiries) instead of
    /// subscription changes.
    #[arg(long)]
    purchases: bool,
    /// With `--purchases`: create this many purchases through the API
    /// (local Stripe server) instead of posting events.
    #[arg(long, default_value_t = 0)]
    create: usize,
}

/// One request, ready to post: a signed Stripe event, or (with a bearer
/// token) a purchase to create.
struct Delivery {
    body: Bytes,
    signature: String,
    bearer: Option<String>,
}

/// Latencies and wall time of one round.
struct Round {
    label: String,
    wall: Duration,
    latencies: Vec<Duration>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.businesses == 0 || args.waves == 0 || args.connections == 0 {
        bail!("--businesses, --waves and --connections must be at least 1");
    }
    if args.create > 0 && !args.purchases {
        bail!("--create needs --purchases");
    }
    let dir = tempfile::tempdir()?;
    let pg_base = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"));
    let (database, database_url) = match &pg_base {
        Some(base) => ("postgres", pg::fresh_pg_database(base).await?),
        None => (
            "sqlite",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
        ),
    };
    let result = run(&args, &dir, database, database_url.clone()).await;
    if let Some(base) = &pg_base {
        pg::drop_pg_database(base, &database_url).await?;
    }
    result
}

async fn run(
    args: &Args,
    dir: &tempfile::TempDir,
    database: &str,
    database_url: String,
) -> anyhow::Result<()> {
    // The local Stripe server, for purchases made through the API.
    let fake = if args.create > 0 {
        Some(stripe_fake::FakeStripe::start().await)
    } else {
        None
    };
    let mut config = Config {
        bind: "127.0.0.1:0".parse()?,
        database_url,
        dev_keys_path: dir.path().join("keys.json"),
        ..Config::default()
    };
    config.stripe = Some(StripeConfig {
        secret_key: SecretString::from("sk_test_bench".to_owned()),
        // Never called by events: they carry their state.
        api_base: fake
            .as_ref()
            .map_or_else(|| "http://127.0.0.1:9".into(), |f| f.url.clone()),
        webhook_secrets: Some(SecretString::from(WEBHOOK_SECRET.to_owned())),
        success_url: None,
        cancel_url: None,
        portal_return_url: None,
        timeout_secs: 5,
        connect_webhook_secrets: None,
        connect_country: "US".into(),
        connect_return_url: None,
    });
    for (plan, price) in PRICES {
        config
            .plans
            .get_mut(plan)
            .with_context(|| format!("plan {plan} missing from the catalogue"))?
            .stripe_price_id = Some(price.into());
    }
    config.billing.reconcile_interval_hours = 0;
    config.billing.sweep_interval_secs = 3600;
    config.rate_limit.auth_per_minute = 1_000_000;
    config.rate_limit.api_per_minute = 1_000_000;
    if let Some(pool) = args.pool {
        config.database_max_connections = pool;
    }
    let pool = config.database_max_connections;

    let state = switchboard::app::build_state(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let app = switchboard::app::spawn(state, listener)?;
    let url = format!("http://{}/v1/webhooks/stripe", app.addr);

    let seeded = Instant::now();
    let customers = seed(&app.state.db, args.businesses).await?;
    if args.purchases {
        seed_purchases(&app.state.db).await?;
    }
    println!(
        "{database}: seeded {} businesses (1 company, 2 connected channels each) in {:.1?}; pool {pool} connections",
        customers.len(),
        seeded.elapsed()
    );

    let clients = warm_clients(&app.addr.to_string(), args.connections).await?;
    if let Some(fake) = &fake {
        let result = create_purchases(&app, &clients, fake, args.create, database).await;
        app.stop().await?;
        return result;
    }
    let fixtures: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURES)?)?;
    let base = Utc::now().timestamp();
    let mut rounds = Vec::new();
    let mut errors = 0usize;
    for wave in 0..args.waves {
        // Signed just before the wave: signatures stay valid 300 s.
        let deliveries = if args.purchases {
            build_purchase_wave(&fixtures, &app.state.db, wave, base).await?
        } else {
            build_wave(&fixtures, &customers, wave, base)?
        };
        let (round, errs) =
            post_all(&clients, &url, deliveries, format!("wave {}", wave + 1)).await;
        errors += errs;
        rounds.push(round);
    }
    let sent = args.businesses * args.waves;

    println!();
    println!("| database | round | events | wall | events/s | p50 | p99 | max |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &rounds {
        print_row(database, r);
    }
    if rounds.len() > 1 {
        let all = Round {
            label: "all waves".into(),
            wall: rounds.iter().map(|r| r.wall).sum(),
            latencies: rounds.iter().flat_map(|r| r.latencies.clone()).collect(),
        };
        print_row(database, &all);
    }
    println!();

    let db = &app.state.db;
    let rows = inbound_event::Entity::find().count(db).await?;
    let done = inbound_event::Entity::find()
        .filter(inbound_event::Column::Status.eq("done"))
        .count(db)
        .await?;
    let ledger_ok = rows == sent as u64 && done == sent as u64;
    println!(
        "ledger check: {done} of {rows} inbound_events rows done, {sent} events sent: {}",
        if ledger_ok { "OK" } else { "MISMATCH" }
    );
    if args.purchases {
        let expected = if args.waves >= 2 { "refunded" } else { "paid" };
        let right = entity::purchase::Entity::find()
            .filter(entity::purchase::Column::Status.eq(expected))
            .count(db)
            .await?;
        let state_ok = right == args.businesses as u64;
        println!(
            "state check: purchases {expected} {right}/{}: {}",
            args.businesses,
            if state_ok { "OK" } else { "MISMATCH" }
        );
        println!("errors: {errors}");
        app.stop().await?;
        if errors > 0 || !ledger_ok || !state_ok {
            bail!("{database}: {errors} errors, ledger ok: {ledger_ok}, state ok: {state_ok}");
        }
        return Ok(());
    }
    // The last wave put business i on PRICES[(i + waves - 1) % 3].
    let last_plan = |i: usize| PRICES[(i + args.waves - 1) % PRICES.len()].0;
    let mut state_ok = true;
    let mut counts = Vec::new();
    for (plan, _) in PRICES {
        let on_plan = business::Entity::find()
            .filter(business::Column::Plan.eq(plan))
            .count(db)
            .await?;
        let expected = (0..args.businesses)
            .filter(|&i| last_plan(i) == plan)
            .count() as u64;
        state_ok &= on_plan == expected;
        counts.push(format!("{plan} {on_plan}/{expected}"));
    }
    let suspended = channel::Entity::find()
        .filter(channel::Column::Status.eq(ChannelStatus::Suspended))
        .count(db)
        .await?;
    let expected_suspended = (0..args.businesses)
        .filter(|&i| last_plan(i) == "single")
        .count() as u64;
    state_ok &= suspended == expected_suspended;
    println!(
        "state check: businesses per plan (actual/expected) {}; channels suspended over the limit {suspended}/{expected_suspended}: {}",
        counts.join(", "),
        if state_ok { "OK" } else { "MISMATCH" }
    );
    println!("errors: {errors}");
    app.stop().await?;
    if errors > 0 || !ledger_ok || !state_ok {
        bail!("{database}: {errors} errors, ledger ok: {ledger_ok}, state ok: {state_ok}");
    }
    Ok(())
}

/// Inserts `n` owners and businesses (with customer `cus_bench{i:05}`), one
/// company and two connected channels each, in one transaction. Returns the
/// customer ids in business order.
async fn seed(db: &sea_orm::DatabaseConnection, n: usize) -> anyhow::Result<Vec<String>> {
    const BATCH: usize = 500;
    let now = Utc::now();
    let mut users = Vec::with_capacity(n);
    let mut businesses = Vec::with_capacity(n);
    let mut companies = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(2 * n);
    let mut customers = Vec::with_capacity(n);
    for i in 0..n {
        let owner = Uuid::now_v7();
        let business = Uuid::now_v7();
        let company = Uuid::now_v7();
        let customer = format!("cus_bench{i:05}");
        users.push(user::ActiveModel {
            id: Set(owner),
            email: Set(format!("owner{i}@bench.test")),
            password_hash: Set(None),
            full_name: Set(format!("Owner {i}")),
            role: Set(Role::Owner),
            email_verified_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            sessions_valid_after: Set(None),
        });
        businesses.push(business::ActiveModel {
            id: Set(business),
            name: Set(format!("Bench {i}")),
            owner_id: Set(owner),
            plan: Set("growth".into()),
            status: Set(BusinessStatus::Active),
            trial_ends_at: Set(now + chrono::Duration::days(7)),
            company_seq: Set(1),
            manager_id: Set(None),
            stripe_customer_id: Set(Some(customer.clone())),
            stripe_account_id: Set(None),
            recheck_at: Set(None),
            trial_notice_sent_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            event_seq: Set(0),
            api_rate_limit_per_minute: Set(None),
            granted_plan: Set(None),
            granted_channel_limit: Set(None),
        });
        companies.push(company::ActiveModel {
            id: Set(company),
            business_id: Set(business),
            code: Set("COMP001".into()),
            name: Set(format!("Company {i}")),
            kind: Set(CompanyKind::Product),
            shop_type: Set(None),
            status: Set(CompanyStatus::Active),
            created_at: Set(now),
            updated_at: Set(now),
        });
        for platform in [Platform::Telegram, Platform::Whatsapp] {
            channels.push(channel::ActiveModel {
                id: Set(Uuid::now_v7()),
                business_id: Set(business),
                company_id: Set(company),
                platform: Set(platform),
                status: Set(ChannelStatus::Connected),
                account_id: Set(None),
                account_name: Set(Some(format!("{platform:?} {i}"))),
                last_error: Set(None),
                error_count: Set(0),
                suspended_reason: Set(None),
                suspended_from: Set(None),
                config: Set(json!({})),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
        customers.push(customer);
    }
    let txn = db.begin().await?;
    for chunk in users.chunks(BATCH) {
        user::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in businesses.chunks(BATCH) {
        business::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in companies.chunks(BATCH) {
        company::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in channels.chunks(BATCH) {
        channel::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(customers)
}

/// Gives every seeded business an enabled connected account and one
/// purchase (`payment_link_sent`, session `cs_bench{i}`).
async fn seed_purchases(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    const BATCH: usize = 500;
    let now = Utc::now();
    let companies = company::Entity::find().all(db).await?;
    let mut accounts = Vec::with_capacity(companies.len());
    let mut purchases = Vec::with_capacity(companies.len());
    for (i, c) in companies.iter().enumerate() {
        let acct = format!("acct_bench{i:05}");
        accounts.push(entity::connected_account::ActiveModel {
            business_id: Set(c.business_id),
            stripe_account_id: Set(acct.clone()),
            state: Set("enabled".into()),
            charges_enabled: Set(true),
            payouts_enabled: Set(true),
            details_submitted: Set(true),
            disabled_reason: Set(None),
            currently_due: Set(json!([])),
            past_due: Set(json!([])),
            pending_verification: Set(json!([])),
            version_at: Set(now.timestamp()),
            version_event: Set(None),
            refresh_token_hash: Set(None),
            refresh_token_expires_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
        purchases.push(entity::purchase::ActiveModel {
            id: Set(Uuid::now_v7()),
            business_id: Set(c.business_id),
            company_id: Set(c.id),
            channel_id: Set(None),
            customer_ref: Set(format!("+1555{i:07}")),
            description: Set("Bench order".into()),
            amount: Set(1999),
            currency: Set("usd".into()),
            application_fee_amount: Set(0),
            lead_source: Set("whatsapp".into()),
            status: Set("payment_link_sent".into()),
            stripe_account_id: Set(acct),
            stripe_checkout_session_id: Set(Some(format!("cs_bench{i:05}"))),
            stripe_payment_intent_id: Set(None),
            payment_url: Set(Some(format!(
                "https://checkout.stripe.com/c/pay/cs_bench{i:05}"
            ))),
            status_at: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
        });
    }
    let txn = db.begin().await?;
    for chunk in accounts.chunks(BATCH) {
        entity::connected_account::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    for chunk in purchases.chunks(BATCH) {
        entity::purchase::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The purchase events of wave `wave` (0-based), one per purchase, signed
/// now: paid (Checkout completed), then refunded (the charge), then late
/// expiries.
async fn build_purchase_wave(
    fixtures: &Value,
    db: &sea_orm::DatabaseConnection,
    wave: usize,
    base: i64,
) -> anyhow::Result<Vec<Delivery>> {
    let resources = &fixtures["resources"];
    let (Some(event), Some(session), Some(charge)) = (
        resources.get("event").cloned(),
        resources.get("checkout.session").cloned(),
        resources.get("charge").cloned(),
    ) else {
        bail!("{FIXTURES} lacks resources.event, checkout.session or charge");
    };
    let created = base + i64::try_from(wave)?;
    let t = Utc::now().timestamp();
    let purchases = entity::purchase::Entity::find().all(db).await?;
    let mut out = Vec::with_capacity(purchases.len());
    for (i, p) in purchases.iter().enumerate() {
        let metadata = json!({ "purchase_id": p.id, "business_id": p.business_id });
        let (kind, object) = match wave {
            0 | 2.. => {
                let mut s = session.clone();
                s["id"] = json!(p.stripe_checkout_session_id);
                s["mode"] = json!("payment");
                s["metadata"] = metadata;
                s["customer"] = Value::Null;
                s["subscription"] = Value::Null;
                if wave == 0 {
                    s["status"] = json!("complete");
                    s["payment_status"] = json!("paid");
                    s["payment_intent"] = json!(format!("pi_bench{i:05}"));
                    ("checkout.session.completed", s)
                } else {
                    s["status"] = json!("expired");
                    s["payment_status"] = json!("unpaid");
                    s["payment_intent"] = Value::Null;
                    ("checkout.session.expired", s)
                }
            }
            1 => {
                let mut c = charge.clone();
                c["id"] = json!(format!("ch_bench{i:05}"));
                c["payment_intent"] = json!(format!("pi_bench{i:05}"));
                c["metadata"] = metadata;
                c["refunded"] = json!(true);
                c["amount_refunded"] = c["amount"].clone();
                ("charge.refunded", c)
            }
        };
        let mut e = event.clone();
        e["id"] = json!(format!("evt_bench_p{wave}_{i}"));
        e["type"] = json!(kind);
        e["created"] = json!(created);
        e["livemode"] = json!(false);
        e["data"] = json!({ "object": object });
        let body = serde_json::to_vec(&e)?;
        let signature = signature::sign(&body, &[WEBHOOK_SECRET], t);
        out.push(Delivery {
            body: Bytes::from(body),
            signature,
            bearer: None,
        });
    }
    Ok(out)
}

/// The events of wave `wave` (0-based), one per customer, signed now: the
/// subscription of business `i` moves to `PRICES[(i + wave) % 3]`, event
/// `created` = `base + wave` (later than the previous wave's).
fn build_wave(
    fixtures: &Value,
    customers: &[String],
    wave: usize,
    base: i64,
) -> anyhow::Result<Vec<Delivery>> {
    let resources = &fixtures["resources"];
    let (Some(event), Some(sub)) = (
        resources.get("event").cloned(),
        resources.get("subscription").cloned(),
    ) else {
        bail!("{FIXTURES} lacks resources.event or resources.subscription");
    };
    let created = base + i64::try_from(wave)?;
    let t = Utc::now().timestamp();
    let mut out = Vec::with_capacity(customers.len());
    for (i, customer) in customers.iter().enumerate() {
        let sub_id = format!("sub_bench{i:05}");
        let (_, price) = PRICES[(i + wave) % PRICES.len()];
        let mut s = sub.clone();
        let mut item = s["items"]["data"][0].clone();
        item["id"] = json!(format!("si_bench{i:05}"));
        item["subscription"] = json!(sub_id);
        item["created"] = json!(base);
        item["metadata"] = json!({});
        item["discounts"] = json!([]);
        item["billing_thresholds"] = Value::Null;
        item["price"]["id"] = json!(price);
        item["plan"]["id"] = json!(price);
        item["quantity"] = json!(1);
        item["current_period_start"] = json!(base);
        item["current_period_end"] = json!(base + 30 * DAY);
        s["id"] = json!(sub_id);
        s["customer"] = json!(customer);
        s["status"] = json!("active");
        s["created"] = json!(base);
        s["start_date"] = json!(base);
        s["billing_cycle_anchor"] = json!(base);
        s["billing_cycle_anchor_config"] = Value::Null;
        s["billing_thresholds"] = Value::Null;
        s["cancel_at_period_end"] = json!(false);
        s["cancel_at"] = Value::Null;
        s["canceled_at"] = Value::Null;
        s["ended_at"] = Value::Null;
        s["trial_start"] = Value::Null;
        s["trial_end"] = Value::Null;
        s["metadata"] = json!({});
        s["pending_update"] = Value::Null;
        s["pause_collection"] = Value::Null;
        s["items"]["data"] = json!([item]);
        let mut e = event.clone();
        e["id"] = json!(format!("evt_bench_w{wave}_{i}"));
        e["type"] = json!("customer.subscription.updated");
        e["created"] = json!(created);
        e["livemode"] = json!(false);
        e["data"] = json!({ "object": s });
        let body = serde_json::to_vec(&e)?;
        let signature = signature::sign(&body, &[WEBHOOK_SECRET], t);
        out.push(Delivery {
            body: Bytes::from(body),
            signature,
            bearer: None,
        });
    }
    Ok(out)
}

/// One client (one keep-alive connection) per load task, connected before
/// timing starts.
/// Asks for `n` purchases through `POST /v1/purchases`, each seeded
/// business's owner in turn, prints the round and checks the outcome.
async fn create_purchases(
    app: &switchboard::app::RunningApp,
    clients: &[reqwest::Client],
    fake: &stripe_fake::FakeStripe,
    n: usize,
    database: &str,
) -> anyhow::Result<()> {
    let db = &app.state.db;
    let before = entity::purchase::Entity::find().count(db).await?;
    let companies = company::Entity::find().all(db).await?;
    let owners = business::Entity::find().all(db).await?;
    let now = Utc::now().timestamp();
    let mut tokens = std::collections::HashMap::new();
    for b in &owners {
        let token = app
            .state
            .tokens
            .issue(b.owner_id, Role::Owner, Some(b.id), now)?;
        tokens.insert(b.id, token);
    }
    let requests: Vec<Delivery> = (0..n)
        .map(|i| {
            let c = &companies[i % companies.len()];
            let body = json!({
                "company_id": c.id,
                "customer_ref": format!("+1555{i:07}"),
                "description": "Two loaves of rye bread",
                "amount": 1000 + (i % 5000) as i64,
                "currency": "usd",
                "lead_source": "whatsapp",
            });
            Delivery {
                body: Bytes::from(body.to_string()),
                signature: String::new(),
                bearer: tokens.get(&c.business_id).cloned(),
            }
        })
        .collect();
    let url = format!("http://{}/v1/purchases", app.addr);
    let (round, errors) = post_all(clients, &url, requests, "POST /v1/purchases".into()).await;
    println!();
    println!("| database | round | requests | wall | requests/s | p50 | p99 | max |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    print_row(database, &round);
    println!();
    let after = entity::purchase::Entity::find()
        .filter(entity::purchase::Column::Status.eq("payment_link_sent"))
        .count(db)
        .await?;
    let sessions = fake.requests_to("POST", "/v1/checkout/sessions").len();
    let ok = after == before + n as u64 && sessions == n;
    println!(
        "state check: {} purchases payment_link_sent (before {before}), {sessions} Checkout Sessions at Stripe, {n} asked: {}",
        after,
        if ok { "OK" } else { "MISMATCH" }
    );
    println!("errors: {errors}");
    if errors > 0 || !ok {
        bail!("{database}: {errors} errors, state ok: {ok}");
    }
    Ok(())
}

async fn warm_clients(addr: &str, n: usize) -> anyhow::Result<Vec<reqwest::Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()?,
        );
    }
    let health = format!("http://{addr}/health");
    let mut tasks = Vec::with_capacity(n);
    for c in &clients {
        let (c, url) = (c.clone(), health.clone());
        tasks.push(tokio::spawn(async move { c.get(url).send().await }));
    }
    for t in tasks {
        t.await??.error_for_status()?;
    }
    Ok(clients)
}

/// Posts every delivery over the clients concurrently (each task takes the
/// next undelivered event); returns the round and the number of errors.
async fn post_all(
    clients: &[reqwest::Client],
    url: &str,
    deliveries: Vec<Delivery>,
    label: String,
) -> (Round, usize) {
    let deliveries = Arc::new(deliveries);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for client in clients {
        let (client, url) = (client.clone(), url.to_owned());
        let (deliveries, next) = (deliveries.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = deliveries.get(i) else { break };
                let t0 = Instant::now();
                let outcome = post(&client, &url, d).await;
                latencies.push(t0.elapsed());
                if let Err(e) = outcome {
                    errors.push(format!("event {i}: {e}"));
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(deliveries.len());
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok((l, e)) => {
                latencies.extend(l);
                errors.extend(e);
            }
            Err(e) => errors.push(format!("load task failed: {e}")),
        }
    }
    let wall = started.elapsed();
    for e in errors.iter().take(10) {
        eprintln!("{label}: error: {e}");
    }
    if errors.len() > 10 {
        eprintln!("{label}: … and {} more errors", errors.len() - 10);
    }
    (
        Round {
            label,
            wall,
            latencies,
        },
        errors.len(),
    )
}

/// Posts one delivery; Ok only for 200 `{"outcome":"processed"}` (an
/// event) or 201 `payment_link_sent` (a purchase).
async fn post(client: &reqwest::Client, url: &str, d: &Delivery) -> anyhow::Result<()> {
    if let Some(token) = &d.bearer {
        let resp = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(d.body.clone())
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        let made = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned));
        if status != reqwest::StatusCode::CREATED || made.as_deref() != Some("payment_link_sent") {
            bail!("{status}: {text}");
        }
        return Ok(());
    }
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("stripe-signature", &d.signature)
        .body(d.body.clone())
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    let outcome = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["outcome"].as_str().map(str::to_owned));
    if status != reqwest::StatusCode::OK || outcome.as_deref() != Some("processed") {
        bail!("{status}: {text}");
    }
    Ok(())
}

fn print_row(database: &str, r: &Round) {
    let mut l = r.latencies.clone();
    l.sort_unstable();
    let pct = |q: f64| -> Duration {
        if l.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * l.len() as f64).ceil() as usize).clamp(1, l.len());
        l[rank - 1]
    };
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "| {database} | {} | {} | {:.2} s | {:.0} | {} | {} | {} |",
        r.label,
        l.len(),
        r.wall.as_secs_f64(),
        l.len() as f64 / r.wall.as_secs_f64(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(l.last().copied().unwrap_or_default()),
    );
}
