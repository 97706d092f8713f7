//! Benchmark (not a test): the live event stream (`GET /v1/events/stream`)
//! with many subscribers on one business. Starts the real server as its own
//! process (the release binary beside this example, `switchboard serve`, in
//! a temporary directory: a fresh SQLite file, or a fresh database on the
//! PostgreSQL server of `DATABASE_URL=postgres://…`), registers an owner
//! through the API (the code read from the server's console mailbox), then:
//!
//! 1. opens one stream and creates a company, so the business's feed exists
//!    (baseline RSS of the server, `/proc/<pid>/status` `VmRSS`);
//! 2. opens `--subscribers` more streams (default 1,000), each on its own
//!    TCP connection, in two halves, waiting until every one has its `200`
//!    headers; RSS after each half: the second half's growth over its count
//!    is the server's memory per idle subscriber (one-time warm-up, such as
//!    the read pool's connections and page caches, falls in the first);
//! 3. creates `--changes` companies one after another (default 50,
//!    `--gap-ms` apart, default 100) and records, on every subscriber, when
//!    each `company.created` arrives. Latency is measured from the moment
//!    the `POST` was sent, so it is an upper bound of commit → delivery (it
//!    also holds the request's own work and the commit).
//!
//! Prints p50, p99 and max delivery latency, the delivered count (every
//! subscriber must get every change, else exit 1), and RSS per subscriber.
//! Client and server share this machine's cores; the client's own parsing
//! of 1,000 streams is inside the measured latency.
//! Targets (issue #13): p99 ≤ 100 ms; ≤ 20 KiB per idle subscriber.
//!
//! Run with `benches/sse.sh` (SQLite, then PostgreSQL), or, after
//! `cargo build --release --bin switchboard --example sse_bench`:
//! `target/release/examples/sse_bench [--subscribers N] [--changes N] [--gap-ms N]`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

#[derive(Parser)]
#[command(about = "Live event stream benchmark")]
struct Args {
    /// Concurrent subscribers on the one business.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Changes made (companies created) while they listen.
    #[arg(long, default_value_t = 50)]
    changes: usize,
    /// Milliseconds between two changes.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
}

/// Arrival times of each company's `company.created`, per subscriber.
type Arrivals = Vec<HashMap<String, Instant>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let database = database_url(dir.path()).await?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("server.log");
    let mut server = start_server(dir.path(), &database, port, &log)?;
    let pid = server.id();
    let result = run(&args, &base, &log, pid).await;
    server.kill().ok();
    server.wait().ok();
    result
}

async fn run(args: &Args, base: &str, log: &Path, pid: u32) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    wait_healthy(&http, base).await?;
    let token = register(&http, base, log).await?;

    // 1. The feed exists; one subscriber; baseline.
    let arrivals: Arc<Mutex<Arrivals>> = Arc::default();
    let first = subscribe(&http, base, &token, arrivals.clone()).await?;
    company(&http, base, &token, "warm-up").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid)?;

    // 2. The subscribers, in two halves: the second half's growth over its
    //    count is the cost of an idle subscriber (what the first half warms
    //    up once, such as the read pool's connections and caches, is not).
    let half = args.subscribers / 2;
    let mut streams = vec![first];
    streams.extend(open(&http, base, &token, &arrivals, half).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let middle = rss_kib(pid)?;
    streams.extend(open(&http, base, &token, &arrivals, args.subscribers - half).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid)?;
    let per_subscriber =
        idle.saturating_sub(middle) as f64 / (args.subscribers - half).max(1) as f64;

    // 3. Changes while they listen.
    let mut sent = HashMap::new();
    for i in 0..args.changes {
        let t0 = Instant::now();
        let id = company(&http, base, &token, &format!("change {i}")).await?;
        sent.insert(id, t0);
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let done = arrivals
            .lock()
            .await
            .iter()
            .all(|a| sent.keys().all(|id| a.contains_key(id)));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = rss_kib(pid)?;
    for s in streams {
        s.abort();
    }

    let arrivals = arrivals.lock().await;
    let mut latencies: Vec<Duration> = Vec::new();
    for a in arrivals.iter() {
        for (id, t0) in &sent {
            if let Some(t) = a.get(id) {
                latencies.push(t.saturating_duration_since(*t0));
            }
        }
    }
    let expected = arrivals.len() * sent.len();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let backend = if std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres")) {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "| {backend} | {} | {} | {}/{} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {:.1} | {} |",
        arrivals.len(),
        sent.len(),
        latencies.len(),
        expected,
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*latencies.last().context("no deliveries")?),
        before,
        middle,
        idle,
        per_subscriber,
        after,
    );
    if latencies.len() != expected {
        bail!("{} of {expected} deliveries arrived", latencies.len());
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Opens `n` streams, 64 at a time; returns their reading tasks.
async fn open(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    arrivals: &Arc<Mutex<Arrivals>>,
    n: usize,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let gate = Arc::new(Semaphore::new(64));
    let mut opening = Vec::new();
    for _ in 0..n {
        let (http, base, token, arrivals, gate) = (
            http.clone(),
            base.to_owned(),
            token.to_owned(),
            arrivals.clone(),
            gate.clone(),
        );
        opening.push(tokio::spawn(async move {
            let _permit = gate.acquire().await?;
            subscribe(&http, &base, &token, arrivals).await
        }));
    }
    let mut streams = Vec::with_capacity(n);
    for o in opening {
        streams.push(o.await??);
    }
    Ok(streams)
}

/// Opens a stream as a new subscriber (its own connection); returns once
/// the server answered `200`, reading on in a task that records arrivals.
async fn subscribe(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    arrivals: Arc<Mutex<Arrivals>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let res = http
        .get(format!("{base}/v1/events/stream"))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("stream: {} {}", res.status(), res.text().await?);
    }
    let index = {
        let mut a = arrivals.lock().await;
        a.push(HashMap::new());
        a.len() - 1
    };
    Ok(tokio::spawn(async move {
        let mut body = res.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            let now = Instant::now();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find('\n') {
                let line: String = buf.drain(..=end).collect();
                let Some(data) = line.strip_prefix("data:") else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                    continue;
                };
                if event["type"] == "company.created"
                    && let Some(id) = event["data"]["id"].as_str()
                {
                    arrivals.lock().await[index].insert(id.to_owned(), now);
                }
            }
        }
    }))
}

/// Creates a company; returns its id.
async fn company(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<String> {
    let res = http
        .post(format!("{base}/v1/companies"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "kind": "service" }))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("create company: {} {}", res.status(), res.text().await?);
    }
    let body: Value = res.json().await?;
    body["id"].as_str().map(str::to_owned).context("company id")
}

/// Signs an owner up through the API; the code comes from the console
/// mailbox in the server's log. Returns the access token.
async fn register(http: &reqwest::Client, base: &str, log: &Path) -> anyhow::Result<String> {
    let email = "sse-bench@example.com";
    post(
        http,
        base,
        "/v1/auth/register/start",
        json!({ "email": email }),
    )
    .await?;
    let mut code = None;
    for _ in 0..500 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        code = text
            .split("code is ")
            .nth(1)
            .map(|rest| rest.chars().take(6).collect::<String>());
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let code = code.context("no code in the server's console mailbox")?;
    let verified = post(
        http,
        base,
        "/v1/auth/register/verify",
        json!({ "email": email, "code": code }),
    )
    .await?;
    let done = post(
        http,
        base,
        "/v1/auth/register/complete",
        json!({
            "registration_token": verified["registration_token"],
            "password": "sse bench password 1",
            "full_name": "SSE Bench",
            "business_name": "SSE Bench",
        }),
    )
    .await?;
    done["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("access token")
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let res = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("{path}: {} {}", res.status(), res.text().await?);
    }
    Ok(res.json().await.unwrap_or(Value::Null))
}

async fn wait_healthy(http: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..400 {
        if http
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the server did not become healthy")
}

/// The server's resident set size in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

/// A fresh SQLite file in `dir`, or a fresh database on the PostgreSQL
/// server of `DATABASE_URL`.
async fn database_url(dir: &Path) -> anyhow::Result<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => {
            use sea_orm::{ConnectionTrait, Database};
            let name = format!("sse_bench_{}", std::process::id());
            let admin = Database::connect(&url).await?;
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            Ok(format!("{base}/{name}"))
        }
        _ => Ok(format!(
            "sqlite://{}?mode=rwc",
            dir.join("switchboard.db").display()
        )),
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The release server beside this example (`target/release/switchboard`).
fn server_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("switchboard"))
        .context("binary path")?;
    if !bin.exists() {
        bail!(
            "{} missing: cargo build --release --bin switchboard",
            bin.display()
        );
    }
    Ok(bin)
}

fn start_server(dir: &Path, database: &str, port: u16, log: &Path) -> anyhow::Result<Child> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    Ok(Command::new(server_binary()?)
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database)
        .env("SWITCHBOARD_BIND", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("SWITCHBOARD_RATE_LIMIT__API_PER_MINUTE", "1000000")
        .env("SWITCHBOARD_RATE_LIMIT__AUTH_PER_MINUTE", "1000000")
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()?)
}
