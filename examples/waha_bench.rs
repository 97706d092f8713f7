//! Benchmark (not a test): WAHA webhook ingestion. Starts the real app in
//! process (release build; SQLite in a temporary directory, or a fresh
//! database on the PostgreSQL server of `DATABASE_URL=postgres://…`) and the
//! local WAHA server (`tests/api/waha_fake.rs`); seeds `--businesses`
//! businesses (default 10) on the unlimited plan, signs their owners in,
//! makes `--channels` WhatsApp channels each (default 10) and connects them
//! through the API, so every session has its own key and webhook. Then
//! posts `--events` signed deliveries per session (default 100: one
//! `session.status` `WORKING`, the rest `message`), sessions interleaved,
//! over `--connections` keep-alive connections (default 64); then the same
//! deliveries again (all duplicates).
//!
//! Reports events/s, p50, p99 and max per round as markdown rows, and
//! checks that every first delivery answered 200 `processed`, every replay
//! `duplicate`, that the ledger (`inbound_events`, source `waha`) holds
//! each event exactly once and every channel is `connected`. Exits
//! non-zero otherwise. The load generator shares the process and cores.
//! Target (issue): ≥ 5,000 events/s on SQLite.
//!
//! Run with `benches/waha.sh` (SQLite, then PostgreSQL), or:
//! `cargo run --release --example waha_bench -- [--businesses N] [--channels N] [--events N] [--connections N]`.

#[allow(dead_code)] // the tests use more of it than the benchmark does
#[path = "../tests/api/waha_fake.rs"]
mod waha_fake;

#[path = "support/pg.rs"]
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Parser;
use entity::enums::{BusinessStatus, ChannelStatus, Role};
use entity::{business, channel, inbound_event, user};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::{Config, WahaConfig};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "WAHA webhook ingestion benchmark")]
struct Args {
    /// Businesses seeded.
    #[arg(long, default_value_t = 10)]
    businesses: usize,
    /// WhatsApp channels (sessions) per business.
    #[arg(long, default_value_t = 10)]
    channels: usize,
    /// Deliveries per session.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Concurrent keep-alive connections posting deliveries.
    #[arg(long, default_value_t = 64)]
    connections: usize,
}

const PASSWORD: &str = "bench password 1";

/// One signed delivery, ready to post.
struct Delivery {
    url: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.businesses == 0 || args.channels == 0 || args.events == 0 || args.connections == 0 {
        bail!("every count must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let (database, database_url) = match std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(base) => ("postgres", pg::fresh_pg_database(&base).await?),
        None => (
            "sqlite",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
        ),
    };
    let waha = waha_fake::FakeWaha::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut config = Config {
        bind: format!("127.0.0.1:{port}").parse()?,
        public_url: format!("http://127.0.0.1:{port}"),
        database_url,
        dev_keys_path: dir.path().join("keys.json"),
        ..Config::default()
    };
    config.waha = Some(WahaConfig {
        base_url: waha.url.clone(),
        api_key: SecretString::from(waha_fake::API_KEY),
        timeout_secs: 10,
    });
    config.rate_limit.auth_per_minute = 1_000_000;
    config.rate_limit.api_per_minute = 1_000_000;
    config.billing.sweep_interval_secs = 3600;
    config.billing.reconcile_interval_hours = 0;
    config.jobs.poll_ms = 20;
    let state = switchboard::app::build_state(config.clone()).await?;
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let app = switchboard::app::spawn(state, listener)?;
    let base = config.public_url.clone();
    let db = app.state.db.clone();

    let started = Instant::now();
    let emails = seed(&app.state, args.businesses).await?;
    let http = reqwest::Client::new();
    let mut sessions = Vec::new();
    for email in &emails {
        let token = post(
            &http,
            &base,
            "/v1/auth/login",
            None,
            json!({ "email": email, "password": PASSWORD }),
        )
        .await?["access_token"]
            .as_str()
            .context("token")?
            .to_owned();
        let company = post(
            &http,
            &base,
            "/v1/companies",
            Some(&token),
            json!({ "name": "Shop", "kind": "product" }),
        )
        .await?["id"]
            .as_str()
            .context("company")?
            .to_owned();
        for _ in 0..args.channels {
            let id = post(
                &http,
                &base,
                "/v1/channels",
                Some(&token),
                json!({ "company_id": company, "platform": "whatsapp" }),
            )
            .await?["id"]
                .as_str()
                .context("channel")?
                .to_owned();
            post(
                &http,
                &base,
                &format!("/v1/channels/{id}/connect"),
                Some(&token),
                json!({}),
            )
            .await?;
            sessions.push(format!("sb_{}", id.replace('-', "")));
        }
    }
    let waha_rows = async || -> anyhow::Result<u64> {
        Ok(inbound_event::Entity::find()
            .filter(inbound_event::Column::Source.eq("waha"))
            .count(&db)
            .await?)
    };
    // Each session's own STARTING and SCAN_QR_CODE reports are in.
    let deadline = Instant::now() + Duration::from_secs(120);
    while waha_rows().await? < 2 * sessions.len() as u64 {
        if Instant::now() > deadline {
            bail!("the sessions did not all report");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = waha_rows().await?;
    println!(
        "{database}: {} sessions connected and waiting for a scan in {:.1?}",
        sessions.len(),
        started.elapsed()
    );

    // The deliveries, sessions interleaved.
    let t0 = waha_fake::now_ms() + 10_000;
    let mut deliveries = Vec::with_capacity(sessions.len() * args.events);
    for j in 0..args.events {
        for s in &sessions {
            let env = if j == 0 {
                waha.envelope(
                    s,
                    "session.status",
                    t0,
                    json!({ "name": s, "status": "WORKING" }),
                )
            } else {
                waha.envelope(
                    s,
                    "message",
                    t0 + j as i64,
                    json!({ "id": format!("false_15550001111@c.us_{j:020}"), "timestamp": t0 / 1000, "from": "15550001111@c.us", "fromMe": false, "body": format!("message {j}"), "hasMedia": false, "ack": 1, "ackName": "SERVER" }),
                )
            };
            let body = serde_json::to_vec(&env)?;
            let headers = waha.headers(s, &body, t0);
            deliveries.push(Delivery {
                url: format!("{base}/v1/webhooks/waha/{s}"),
                body,
                headers,
            });
        }
    }
    let deliveries = Arc::new(deliveries);
    println!();
    println!("| database | round | events | wall | events/s | p50 | p99 | max |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    let first = post_all(&deliveries, args.connections, "processed").await?;
    row(database, "first deliveries", &first);
    let replay = post_all(&deliveries, args.connections, "duplicate").await?;
    row(database, "replayed (duplicates)", &replay);
    println!();

    let sent = deliveries.len() as u64;
    let rows = waha_rows().await? - before;
    let connected = channel::Entity::find()
        .filter(channel::Column::Status.eq(ChannelStatus::Connected))
        .count(&db)
        .await?;
    let wrong = first.wrong + replay.wrong;
    println!(
        "ledger: {rows} new rows for {sent} events; channels connected {connected}/{}; unexpected answers {wrong}",
        sessions.len()
    );
    app.stop().await?;
    if let Ok(base) = std::env::var("DATABASE_URL")
        && database == "postgres"
    {
        pg::drop_pg_database(&base, &config.database_url).await?;
    }
    if rows != sent || connected != sessions.len() as u64 || wrong > 0 {
        bail!("{database}: check failed");
    }
    Ok(())
}

struct Round {
    wall: Duration,
    latencies: Vec<Duration>,
    wrong: usize,
}

fn row(database: &str, label: &str, r: &Round) {
    let mut l = r.latencies.clone();
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 - 1.0) * p).round() as usize];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {database} | {label} | {} | {:.2} s | {:.0} | {} | {} | {} |",
        l.len(),
        r.wall.as_secs_f64(),
        l.len() as f64 / r.wall.as_secs_f64(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(l[l.len() - 1]),
    );
}

/// Posts every delivery over `connections` workers, each its own
/// keep-alive connection; counts answers other than 200 `{outcome}`.
async fn post_all(
    deliveries: &Arc<Vec<Delivery>>,
    connections: usize,
    outcome: &'static str,
) -> anyhow::Result<Round> {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (deliveries, next) = (deliveries.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            let mut latencies = Vec::new();
            let mut wrong = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = deliveries.get(i) else { break };
                let t = Instant::now();
                let mut req = http.post(&d.url).body(d.body.clone());
                for (k, v) in &d.headers {
                    req = req.header(k, v);
                }
                let res = req.send().await?;
                let ok = res.status() == 200;
                let body: Value = res.json().await.unwrap_or(Value::Null);
                latencies.push(t.elapsed());
                if !ok || body["outcome"] != outcome {
                    wrong += 1;
                }
            }
            anyhow::Ok((latencies, wrong))
        }));
    }
    let mut round = Round {
        wall: Duration::ZERO,
        latencies: Vec::new(),
        wrong: 0,
    };
    for w in workers {
        let (l, wrong) = w.await??;
        round.latencies.extend(l);
        round.wrong += wrong;
    }
    round.wall = start.elapsed();
    Ok(round)
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = http.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await?;
    if !res.status().is_success() {
        bail!("{path}: {} {}", res.status(), res.text().await?);
    }
    Ok(res.json().await?)
}

/// Inserts `n` owners (one password) and their businesses on the
/// unlimited plan; returns the owners' emails.
async fn seed(state: &switchboard::state::AppState, n: usize) -> anyhow::Result<Vec<String>> {
    let hash = state.passwords.hash(SecretString::from(PASSWORD)).await?;
    let now = Utc::now();
    let mut emails = Vec::new();
    for i in 0..n {
        let owner = Uuid::now_v7();
        let id = Uuid::now_v7();
        let email = format!("owner{i}@waha-bench.test");
        user::Entity::insert(user::ActiveModel {
            id: Set(owner),
            email: Set(email.clone()),
            password_hash: Set(Some(hash.clone())),
            full_name: Set(format!("Owner {i}")),
            role: Set(Role::Owner),
            email_verified_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            sessions_valid_after: Set(None),
        })
        .exec(&state.db)
        .await?;
        business::Entity::insert(business::ActiveModel {
            id: Set(id),
            name: Set(format!("Bench {i}")),
            owner_id: Set(owner),
            plan: Set("enterprise".into()),
            status: Set(BusinessStatus::Active),
            trial_ends_at: Set(now + chrono::Duration::days(7)),
            company_seq: Set(0),
            manager_id: Set(None),
            stripe_customer_id: Set(None),
            stripe_account_id: Set(None),
            recheck_at: Set(None),
            trial_notice_sent_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            event_seq: Set(0),
            api_rate_limit_per_minute: Set(None),
            granted_plan: Set(None),
            granted_channel_limit: Set(None),
        })
        .exec(&state.db)
        .await?;
        emails.push(email);
    }
    Ok(emails)
}
