//! The event log: recorded with each change, numbered in commit order, read
//! as pages and as a live stream (server-sent events) that resumes with
//! `Last-Event-ID`, across instances; and outgoing webhooks signed per
//! Standard Webhooks, retried, then disabled with a notice.
#![expect(clippy::unwrap_used, reason = "test helpers: a panic is a failed test")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestApp, email, test_config};

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: i64,
    event: String,
    data: Value,
}

/// A live stream read by a test: its events arrive in `events`.
struct Stream {
    events: Arc<Mutex<Vec<Sse>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> Stream {
        let mut req = app
            .client
            .get(app.url("/v1/events/stream"))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let task = tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            while let Some(Ok(chunk)) = body.next().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    let mut id = None;
                    let mut event = String::new();
                    let mut data = String::new();
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().parse().ok();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_owned();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(id) = id {
                        sink.lock().unwrap().push(Sse {
                            id,
                            event,
                            data: serde_json::from_str(&data).unwrap(),
                        });
                    }
                }
            }
        });
        Stream { events, task }
    }

    /// Waits (up to 10 s) for `n` events.
    async fn wait_for(&self, n: usize) -> Vec<Sse> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.events.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn changes_are_recorded_in_order_and_each_business_sees_its_own() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("events"), "Evented").await;
    let other = app.owner(&email("other"), "Other").await;
    let business = app.business_id(&owner).await;
    let company = app.company(&owner, "Main").await;
    let r = app.channel(&owner, &company, "telegram").await;
    let channel = r.body["id"].as_str().unwrap().to_owned();
    app.call(
        Method::PUT,
        &format!("/v1/businesses/{business}/secrets/telegram/bot"),
        Some(&owner),
        Some(json!({ "value": "123456:event-secret-value" })),
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/v1/channels/{channel}"),
        Some(&owner),
        None,
    )
    .await;
    let r = app.get("/v1/events", Some(&owner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "company.created",
            "channel.created",
            "secret.written",
            "channel.deleted"
        ]
    );
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(items[1]["data"]["id"], channel);
    assert_eq!(
        items[2]["data"],
        json!({ "provider": "telegram", "name": "bot", "created": true })
    );
    assert!(
        !r.text.contains("event-secret-value"),
        "no secret value in events"
    );
    // Pages and filters.
    let r = app.get("/v1/events?after=2&limit=1", Some(&owner)).await;
    assert_eq!(r.body["items"][0]["seq"], 3);
    assert_eq!(r.body["next_after"], 3);
    let r = app
        .get("/v1/events?type=channel.created", Some(&owner))
        .await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    // Another business has none of them.
    let r = app.get("/v1/events", Some(&other)).await;
    assert_eq!(r.body["items"], json!([]));
    // A key needs events:read.
    let key = app.api_key(&owner, &["companies:read"]).await;
    assert_eq!(
        app.get("/v1/events", Some(&key)).await.status,
        StatusCode::FORBIDDEN
    );
    let key = app.api_key(&owner, &["events:read"]).await;
    assert_eq!(
        app.get("/v1/events", Some(&key)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_its_events_live_in_order_and_resumes_after_a_disconnect() {
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("live"), "Live").await;
    let other = app.owner(&email("quiet"), "Quiet").await;
    let stream = Stream::open(&app, &owner, None).await;
    let bystander = Stream::open(&app, &other, None).await;
    for i in 0..5 {
        app.company(&owner, &format!("Live {i}")).await;
    }
    let got = stream.wait_for(5).await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got.iter().map(|e| e.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(got.iter().all(|e| e.event == "company.created"));
    assert_eq!(got[4].data["data"]["name"], "Live 4");
    // Disconnect after 3, miss 2 + 3 more, resume with Last-Event-ID 3.
    drop(stream);
    for i in 5..8 {
        app.company(&owner, &format!("Live {i}")).await;
    }
    let resumed = Stream::open(&app, &owner, Some(3)).await;
    app.company(&owner, "Live 8").await;
    let got = resumed.wait_for(6).await;
    assert_eq!(
        got.iter().map(|e| e.id).collect::<Vec<_>>(),
        [4, 5, 6, 7, 8, 9],
        "exactly the missed events, then live ones, once each"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        bystander.events.lock().unwrap().is_empty(),
        "another business sees none"
    );
    // A malformed Last-Event-ID is refused.
    let r = crate::common::into_resp(
        app.client
            .get(app.url("/v1/events/stream"))
            .bearer_auth(&owner)
            .header("last-event-id", "yesterday")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_one_instance_sees_changes_made_through_another() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    let postgres = crate::common::postgres_url().is_some();
    if postgres {
        // Only LISTEN/NOTIFY can be fast enough: the poll waits a minute.
        config.events.poll_ms = Some(60_000);
    }
    let a = TestApp::spawn_with(dir, config.clone()).await;
    // Signed up before B runs: B's job runner would otherwise deliver the
    // verification email into B's dev mailbox, where A never looks.
    let owner = a.owner(&email("shared"), "Shared").await;
    let b = TestApp::spawn_with(tempfile::tempdir().unwrap(), config).await;
    let stream = Stream::open(&a, &owner, None).await;
    let started = Instant::now();
    b.company(&owner, "Through B").await;
    let got = stream.wait_for(1).await;
    assert_eq!(
        got.len(),
        1,
        "the event made through B reached A's subscriber"
    );
    assert_eq!(got[0].data["data"]["name"], "Through B");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    if postgres {
        // And the notification is what carried it.
        let again = Instant::now();
        b.company(&owner, "Through B again").await;
        assert_eq!(stream.wait_for(2).await.len(), 2);
        assert!(
            again.elapsed() < Duration::from_secs(2),
            "{:?}",
            again.elapsed()
        );
    }
}

/// One delivery as a receiver got it: headers and body.
type Delivery = (axum::http::HeaderMap, Vec<u8>);

/// A webhook receiver: records each delivery and answers `status`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Delivery>>>,
    status: Arc<Mutex<u16>>,
}

async fn start_receiver(status: u16) -> (String, Receiver) {
    let receiver = Receiver::default();
    *receiver.status.lock().unwrap() = status;
    let r = receiver.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let r = r.clone();
                async move {
                    r.got.lock().unwrap().push((headers, body.to_vec()));
                    let code = *r.status.lock().unwrap();
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, receiver)
}

async fn wait_until<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_receive_signed_events_they_asked_for_and_a_rolled_secret_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.jobs.poll_ms = 20;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("hooked"), "Hooked").await;
    let (url, receiver) = start_receiver(204).await;
    let r = app
        .post(
            "/v1/webhook-endpoints",
            Some(&owner),
            json!({ "url": url, "description": "n8n", "event_types": ["company.created"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let endpoint = r.body["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let list = app.get("/v1/webhook-endpoints", Some(&owner)).await;
    assert!(!list.text.contains(&secret[6..]), "secrets are shown once");

    let company = app.company(&owner, "Announced").await;
    // Not a type the endpoint asked for:
    app.channel(&owner, &company, "telegram").await;
    let (headers, body) = wait_until(10, "a delivery", || {
        receiver.got.lock().unwrap().first().cloned()
    })
    .await;
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    wh.verify(&body, &headers)
        .expect("a valid Standard Webhooks signature");
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "company.created");
    assert_eq!(event["data"]["id"], company);
    assert_eq!(
        headers["webhook-id"].to_str().unwrap(),
        event["id"].as_str().unwrap()
    );
    // A wrong secret does not verify it.
    let wrong = standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert!(wrong.verify(&body, &headers).is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.got.lock().unwrap().len(),
        1,
        "only the types asked for"
    );
    let log = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            Some(&owner),
        )
        .await;
    assert_eq!(log.body["items"][0]["state"], "succeeded");
    assert_eq!(log.body["items"][0]["last_status"], 204);

    // Roll: the next delivery carries both signatures; each secret verifies.
    let r = app
        .post(
            &format!("/v1/webhook-endpoints/{endpoint}/roll-secret"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let new_secret = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    app.company(&owner, "After the roll").await;
    let (headers, body) = wait_until(10, "a second delivery", || {
        receiver.got.lock().unwrap().get(1).cloned()
    })
    .await;
    assert_eq!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    standardwebhooks::Webhook::new(&new_secret)
        .unwrap()
        .verify(&body, &headers)
        .unwrap();
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&body, &headers)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_retried_then_disabled_and_its_owner_told() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.jobs.poll_ms = 20;
    config.webhooks.max_attempts = 3;
    config.webhooks.retry_base_secs = 1;
    let app = TestApp::spawn_with(dir, config).await;
    let mail = email("broken");
    let owner = app.owner(&mail, "Broken Hook").await;
    let (url, receiver) = start_receiver(500).await;
    let r = app
        .post("/v1/webhook-endpoints", Some(&owner), json!({ "url": url }))
        .await;
    let endpoint = r.body["id"].as_str().unwrap().to_owned();
    app.company(&owner, "Undeliverable").await;
    let log = wait_until(20, "the delivery fails for good", || {
        let n = receiver.got.lock().unwrap().len();
        (n >= 3).then_some(n)
    })
    .await;
    assert_eq!(log, 3, "three attempts");
    let r = wait_until(10, "the endpoint is disabled", || {
        let r = futures::executor::block_on(
            app.get(&format!("/v1/webhook-endpoints/{endpoint}"), Some(&owner)),
        );
        (r.body["enabled"] == false).then_some(r)
    })
    .await;
    assert!(
        r.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("HTTP 500")
    );
    let deliveries = app
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
            Some(&owner),
        )
        .await;
    assert_eq!(deliveries.body["items"][0]["state"], "failed");
    assert_eq!(deliveries.body["items"][0]["attempts"], 3);
    let notice = app.last_message(&mail).await;
    assert!(
        notice.subject.contains("webhook endpoint was disabled"),
        "{notice:?}"
    );
    // Disabled: new events are not sent to it.
    app.company(&owner, "Unsent").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.got.lock().unwrap().len(), 3);
    // Re-enabled, it receives again.
    *receiver.status.lock().unwrap() = 200;
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            Some(&owner),
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(r.body["enabled"], true);
    app.company(&owner, "Delivered again").await;
    wait_until(10, "a delivery after re-enabling", || {
        (receiver.got.lock().unwrap().len() == 4).then_some(())
    })
    .await;
}

#[tokio::test]
async fn endpoints_on_private_addresses_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    config.webhooks.allow_private_targets = false;
    let app = TestApp::spawn_with(dir, config).await;
    let owner = app.owner(&email("ssrf"), "SSRF").await;
    for url in [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "ftp://example.com/hook",
        "https://user:password@example.com/hook",
    ] {
        let r = app
            .post("/v1/webhook-endpoints", Some(&owner), json!({ "url": url }))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}");
    }
    let r = app
        .post(
            "/v1/webhook-endpoints",
            Some(&owner),
            json!({ "url": "https://93.184.216.34/hook", "event_types": ["no.such.event"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.code(),
        "invalid_body",
        "an unknown event type is not in the enum"
    );
}

#[tokio::test]
async fn a_description_with_control_characters_is_refused_not_a_500() {
    // U+0000 is one PostgreSQL's `text` cannot store; found by schemathesis.
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("nul"), "Nul").await;
    for description in ["a\u{0}b", "two\nlines", "\u{89}"] {
        let r = app
            .post(
                "/v1/webhook-endpoints",
                Some(&owner),
                json!({ "url": "https://93.184.216.34/hook", "description": description }),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{description:?}: {}",
            r.text
        );
        assert_eq!(r.body["errors"][0]["field"], "description");
    }
    let r = app
        .post(
            "/v1/webhook-endpoints",
            Some(&owner),
            json!({ "url": "https://93.184.216.34/hook", "description": "ok" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap();
    let r = app
        .call(
            Method::PATCH,
            &format!("/v1/webhook-endpoints/{id}"),
            Some(&owner),
            Some(json!({ "description": "x\u{0}" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
}
