//! WhatsApp channels through WAHA, against the local WAHA server
//! (`waha_fake.rs`): connect, the QR code, signed `session.status`
//! webhooks in any order, disconnect, and what bad deliveries get.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::time::{Duration, Instant};

use entity::inbound_event;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::SecretString;
use serde_json::{Value, json};
use switchboard::config::WahaConfig;

use crate::common::{TestApp, email, test_config};
use crate::waha_fake::{self, FakeWaha, now_ms, sign};

/// A delivery: what it is, its body, its headers, the answer expected.
type Case = (&'static str, Vec<u8>, Vec<(String, String)>, u16);

async fn app_with_waha() -> (TestApp, FakeWaha) {
    app_with_waha_and(None).await
}

/// [`app_with_waha`], with n8n configured as `n8n` says.
async fn app_with_waha_and(n8n: Option<switchboard::config::N8nConfig>) -> (TestApp, FakeWaha) {
    let fake = FakeWaha::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path()).await;
    // WAHA calls back at the public URL: the app's own address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.bind = format!("127.0.0.1:{port}").parse().unwrap();
    config.public_url = format!("http://127.0.0.1:{port}");
    config.waha = Some(WahaConfig {
        base_url: fake.url.clone(),
        api_key: SecretString::from(waha_fake::API_KEY),
        timeout_secs: 5,
    });
    config.n8n = n8n;
    config.jobs.poll_ms = 20;
    (TestApp::spawn_with(dir, config).await, fake)
}

fn session_of(channel: &str) -> String {
    format!("sb_{}", channel.replace('-', ""))
}

async fn wait_for<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn whatsapp_channel(app: &TestApp, owner: &str) -> String {
    let company = app.company(owner, "Acme").await;
    let r = app.channel(owner, &company, "whatsapp").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

/// A WhatsApp channel of `owner`'s business, connected and waiting for a
/// scan at WAHA; returns its id and session name.
async fn waiting_for_a_scan(app: &TestApp, waha: &FakeWaha, owner: &str) -> (String, String) {
    let id = whatsapp_channel(app, owner).await;
    let session = session_of(&id);
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    wait_for("the session waiting for a scan", async || {
        waha.session(&session)
            .filter(|s| s.status == "SCAN_QR_CODE")
    })
    .await;
    (id, session)
}

async fn channel_status(app: &TestApp, owner: &str, id: &str) -> Value {
    let r = app.get(&format!("/v1/channels/{id}"), Some(owner)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_channel_connects_by_qr_and_follows_its_session() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("wa"), "WA").await;
    let id = whatsapp_channel(&app, &owner).await;
    let session = session_of(&id);

    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["channel"]["status"], "connecting");

    // The task made the session, with our webhook and its own key; WAHA
    // then reports STARTING and SCAN_QR_CODE.
    let s = wait_for("the session waiting for a scan", async || {
        waha.session(&session)
            .filter(|s| s.status == "SCAN_QR_CODE")
    })
    .await;
    let hook = &s.config["webhooks"][0];
    assert_eq!(
        hook["url"],
        app.url(&format!("/v1/webhooks/waha/{session}"))
    );
    assert_eq!(hook["events"], json!(["session.status", "message"]));
    let key = hook["hmac"]["key"].as_str().unwrap();
    assert_eq!(key.len(), 64, "a 256-bit key, hex");

    // The current code, and a new one after it rotates.
    let qr = |app: &TestApp| {
        let (url, owner) = (app.url(&format!("/v1/channels/{id}/qr")), owner.clone());
        let client = reqwest::Client::new();
        async move { client.get(url).bearer_auth(owner).send().await.unwrap() }
    };
    let first = qr(&app).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.headers()["content-type"], "image/png");
    let first = first.bytes().await.unwrap();
    assert!(first.starts_with(b"\x89PNG\r\n\x1a\n"));
    waha.rotate_qr(&session);
    let second = qr(&app).await.bytes().await.unwrap();
    assert_ne!(first, second, "the endpoint serves the current code");

    // Connecting again is the same connection.
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let creates = waha
        .calls()
        .iter()
        .filter(|(m, p)| m == "POST" && p == "/api/sessions")
        .count();
    assert_eq!(creates, 1, "never a second session");

    // Scanned: WORKING, with the account.
    let (working, d) = waha.set_status(&session, "WORKING").await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("processed"))
    );
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(c["status"], "connected");
    assert_eq!(c["account_id"], "15551234567@c.us");
    assert_eq!(c["account_name"], "Acme Support");
    let d = waha.deliver(&session, &working).await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("duplicate"))
    );

    let r = app
        .get(&format!("/v1/channels/{id}/qr"), Some(&owner))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.code(), "qr_not_available");
    assert_eq!(r.body["session_status"], "WORKING");

    // A message is recorded in the ledger.
    let msg = waha.envelope(
        &session,
        "message",
        now_ms(),
        json!({ "id": "false_15550001111@c.us_AAAA", "timestamp": 1_766_000_000, "from": "15550001111@c.us", "fromMe": false, "body": "Hi", "hasMedia": false, "ack": 1, "ackName": "SERVER" }),
    );
    let d = waha.deliver(&session, &msg).await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("processed"))
    );
    let recorded = inbound_event::Entity::find()
        .filter(inbound_event::Column::Source.eq("waha"))
        .filter(inbound_event::Column::EventId.eq(msg["id"].as_str().unwrap()))
        .one(&app.app.state.db)
        .await
        .unwrap()
        .expect("the message in the ledger");
    assert_eq!(recorded.event_type, "message");
    assert_eq!(recorded.status, "done");

    // Every change was an event.
    let events = app
        .get("/v1/events?type=channel.status_changed", Some(&owner))
        .await;
    let tos: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["to"].as_str().unwrap())
        .collect();
    assert_eq!(tos, ["connecting", "connected"]);

    // Disconnect: at once for the channel, then the session goes at WAHA
    // with its key.
    let r = app
        .post(
            &format!("/v1/channels/{id}/disconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "disconnected");
    assert_eq!(r.body["account_id"], Value::Null);
    wait_for("the session removed", async || {
        waha.session(&session).is_none().then_some(())
    })
    .await;
    let calls = waha.calls();
    assert!(calls.contains(&("POST".into(), format!("/api/sessions/{session}/logout"))));
    assert!(calls.contains(&("DELETE".into(), format!("/api/sessions/{session}"))));
    let business = app.business_id(&owner).await;
    wait_for("the key destroyed", async || {
        let r = app
            .get(&format!("/v1/businesses/{business}/secrets"), Some(&owner))
            .await;
        (r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["provider"] != "waha"))
        .then_some(())
    })
    .await;
    let r = app
        .post(
            &format!("/v1/channels/{id}/disconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (StatusCode::OK, Some("disconnected")),
        "again: the same"
    );

    // A late delivery for the removed session is acknowledged, not acted on.
    let late = waha.envelope(
        &session,
        "session.status",
        now_ms(),
        json!({ "status": "WORKING" }),
    );
    let body = serde_json::to_vec(&late).unwrap();
    let headers = vec![
        ("content-type".into(), "application/json".into()),
        ("x-webhook-hmac".into(), sign(key, &body)),
        ("x-webhook-hmac-algorithm".into(), "sha512".into()),
    ];
    let d = waha
        .post_to(
            &app.url(&format!("/v1/webhooks/waha/{session}")),
            body,
            headers,
        )
        .await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("ignored"))
    );
    assert_eq!(
        channel_status(&app, &owner, &id).await["status"],
        "disconnected"
    );
    // A message too, though its key was remembered for the way in.
    let late = waha.envelope(
        &session,
        "message",
        now_ms(),
        json!({ "body": "still there?" }),
    );
    let body = serde_json::to_vec(&late).unwrap();
    let headers = vec![("x-webhook-hmac".into(), sign(key, &body))];
    let d = waha
        .post_to(
            &app.url(&format!("/v1/webhooks/waha/{session}")),
            body,
            headers,
        )
        .await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("ignored"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_reports_in_any_order_end_in_the_same_state() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("order"), "Order").await;
    let (id, session) = waiting_for_a_scan(&app, &waha, &owner).await;
    // Wait until WAHA's own reports are in, then replay a history
    // newest first, each twice.
    wait_for("scan reported", async || {
        (channel_status(&app, &owner, &id).await["status"] == "connecting").then_some(())
    })
    .await;
    let t = now_ms() + 1_000;
    let history = [
        waha.envelope(
            &session,
            "session.status",
            t,
            json!({ "status": "STARTING" }),
        ),
        waha.envelope(
            &session,
            "session.status",
            t + 1,
            json!({ "status": "SCAN_QR_CODE" }),
        ),
        waha.envelope(
            &session,
            "session.status",
            t + 2,
            json!({ "status": "WORKING" }),
        ),
        waha.envelope(
            &session,
            "session.status",
            t + 3,
            json!({ "status": "FAILED" }),
        ),
        waha.envelope(
            &session,
            "session.status",
            t + 4,
            json!({ "status": "WORKING" }),
        ),
    ];
    for env in history.iter().rev().chain(history.iter()) {
        let d = waha.deliver(&session, env).await;
        assert_eq!(d.status, 200, "{:?}", d.body);
    }
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(c["status"], "connected", "the newest report wins: {c}");
    assert_eq!(c["error_count"], 0, "an older FAILED is not applied");
    // Same timestamp: the event id decides, whatever the order.
    let a = waha.envelope(
        &session,
        "session.status",
        t + 10,
        json!({ "status": "STOPPED" }),
    );
    let b = waha.envelope(
        &session,
        "session.status",
        t + 10,
        json!({ "status": "WORKING" }),
    );
    assert!(a["id"].as_str() < b["id"].as_str());
    waha.deliver(&session, &b).await;
    waha.deliver(&session, &a).await;
    assert_eq!(
        channel_status(&app, &owner, &id).await["status"],
        "connected"
    );
    // A newer FAILED is an error, counted.
    waha.deliver(
        &session,
        &waha.envelope(
            &session,
            "session.status",
            t + 20,
            json!({ "status": "FAILED" }),
        ),
    )
    .await;
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["error_count"].as_i64()),
        (Some("error"), Some(1))
    );
    // Reconnecting starts over, on the same session.
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["channel"]["status"].as_str()),
        (StatusCode::ACCEPTED, Some("connecting"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_are_refused_and_change_nothing() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("badwa"), "Bad WA").await;
    let id = whatsapp_channel(&app, &owner).await;
    let session = session_of(&id);
    app.post(
        &format!("/v1/channels/{id}/connect"),
        Some(&owner),
        json!({}),
    )
    .await;
    wait_for("scan reported", async || {
        (waha
            .session(&session)
            .is_some_and(|s| s.status == "SCAN_QR_CODE")
            && channel_status(&app, &owner, &id).await["status"] == "connecting")
            .then_some(())
    })
    .await;
    let ledger_rows = async || {
        inbound_event::Entity::find()
            .filter(inbound_event::Column::Source.eq("waha"))
            .count(&app.app.state.db)
            .await
            .unwrap()
    };
    // WAHA's own two reports (STARTING, SCAN_QR_CODE) are in.
    let before = wait_for("WAHA's reports recorded", async || {
        let n = ledger_rows().await;
        (n == 2).then_some(n)
    })
    .await;
    let env = waha.envelope(
        &session,
        "session.status",
        now_ms() + 5_000,
        json!({ "status": "WORKING" }),
    );
    let body = serde_json::to_vec(&env).unwrap();
    let good = waha.headers(&session, &body, now_ms());
    let without = |name: &str| {
        good.iter()
            .filter(|(k, _)| k != name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let with = |name: &str, value: String| {
        let mut h = without(name);
        h.push((name.into(), value));
        h
    };
    let cases: Vec<Case> = vec![
        ("unsigned", body.clone(), without("x-webhook-hmac"), 401),
        (
            "signed with another key",
            body.clone(),
            with("x-webhook-hmac", sign("another key", &body)),
            401,
        ),
        (
            "signature not hex",
            body.clone(),
            with("x-webhook-hmac", "zz".into()),
            401,
        ),
        (
            "another algorithm",
            body.clone(),
            with("x-webhook-hmac-algorithm", "sha256".into()),
            401,
        ),
        (
            "a changed body",
            [&body[..], b" "].concat(),
            good.clone(),
            401,
        ),
    ];
    for (what, body, headers, status) in cases {
        let d = waha.post_raw(&session, body, headers).await;
        assert_eq!(d.status, status, "{what}: {:?}", d.body);
        assert_eq!(d.body["code"], "invalid_signature", "{what}");
    }
    // Signed, but not an event, or for another session.
    for (what, body) in [
        ("malformed JSON", b"{\"id\":".to_vec()),
        ("no id", serde_json::to_vec(&json!({ "timestamp": 1, "event": "message", "session": session })).unwrap()),
        ("another session", serde_json::to_vec(&json!({ "id": "evt_x", "timestamp": 1, "event": "message", "session": "sb_00000000000000000000000000000000" })).unwrap()),
        ("a status without a status", serde_json::to_vec(&json!({ "id": "evt_y", "timestamp": 1, "event": "session.status", "session": session, "payload": {} })).unwrap()),
    ] {
        let headers = waha.headers(&session, &body, 1);
        let d = waha.post_raw(&session, body, headers).await;
        assert_eq!((d.status, d.body["code"].as_str()), (400, Some("invalid_event")), "{what}");
    }
    assert_eq!(ledger_rows().await, before, "nothing refused is recorded");
    assert_eq!(
        channel_status(&app, &owner, &id).await["status"],
        "connecting"
    );

    // Not a name we give: 404. Ours in shape but unknown: acknowledged.
    let d = waha
        .post_to(
            &app.url("/v1/webhooks/waha/default"),
            body.clone(),
            good.clone(),
        )
        .await;
    assert_eq!(d.status, 404);
    let unknown = "sb_ffffffffffffffffffffffffffffffff";
    let env = waha.envelope(unknown, "message", now_ms(), json!({}));
    let d = waha
        .post_to(
            &app.url(&format!("/v1/webhooks/waha/{unknown}")),
            serde_json::to_vec(&env).unwrap(),
            vec![],
        )
        .await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("ignored"))
    );
    let row = inbound_event::Entity::find()
        .filter(inbound_event::Column::EventId.eq(env["id"].as_str().unwrap()))
        .one(&app.app.state.db)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(row.status, "ignored");
}

#[tokio::test]
async fn connecting_is_refused_where_it_cannot_work() {
    // No WAHA configured: 503 with what to set.
    let app = TestApp::spawn().await;
    let owner = app.owner(&email("nowa"), "No WA").await;
    let id = whatsapp_channel(&app, &owner).await;
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.code(), "whatsapp_unavailable");
    assert!(r.body["detail"].as_str().unwrap().contains("waha.base_url"));
    assert_eq!(
        channel_status(&app, &owner, &id).await["status"],
        "disconnected"
    );
    let r = app
        .post(
            "/v1/webhooks/waha/sb_ffffffffffffffffffffffffffffffff",
            None,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);

    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("ig"), "TG").await;
    let company = app.company(&owner, "Bots").await;
    let ig = app.channel(&owner, &company, "instagram").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .post(
            &format!("/v1/channels/{ig}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "platform_not_connectable")
    );
    // Another business's channel is not found.
    let other = app.owner(&email("other"), "Other").await;
    let r = app
        .post(
            &format!("/v1/channels/{ig}/connect"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .call(
            Method::GET,
            &format!("/v1/channels/{ig}/qr"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A manager may read channels but not connect them.
    let admin = app.admin(&email("wa-admin")).await;
    let (_, manager) = app.manager(&admin, &email("wa-manager")).await;
    let r = app
        .post(
            &format!("/v1/channels/{ig}/connect"),
            Some(&manager),
            json!({}),
        )
        .await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND,
        "{}",
        r.status
    );
    assert!(waha.sessions().is_empty(), "nothing was made at WAHA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_connected_channel_removes_its_session() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("delwa"), "Del WA").await;
    let id = whatsapp_channel(&app, &owner).await;
    let session = session_of(&id);
    app.post(
        &format!("/v1/channels/{id}/connect"),
        Some(&owner),
        json!({}),
    )
    .await;
    wait_for("the session", async || waha.session(&session)).await;
    let r = app
        .call(
            Method::DELETE,
            &format!("/v1/channels/{id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    wait_for("the session removed", async || {
        waha.session(&session).is_none().then_some(())
    })
    .await;
}

/// Re-evaluates the business's entitlement now, as the sweep and webhooks do.
pub(crate) async fn settle(app: &TestApp, business: &str) {
    let state = &app.app.state;
    let txn = switchboard::db::begin_write(&state.db).await.unwrap();
    switchboard::domain::billing::entitlement::apply(
        &state.rules(),
        &txn,
        business.parse().unwrap(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_channels_session_stops_and_starts_again_on_restore() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("susp"), "Susp").await;
    let business = app.business_id(&owner).await;
    app.set_plan(&business, "enterprise").await;
    let company = app.company(&owner, "Shop").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app.channel(&owner, &company, "whatsapp").await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    }
    let newest = session_of(&ids[1]);
    wait_for("both sessions", async || {
        ids.iter()
            .all(|id| {
                waha.session(&session_of(id))
                    .is_some_and(|s| s.status == "SCAN_QR_CODE")
            })
            .then_some(())
    })
    .await;
    waha.set_status(&newest, "WORKING").await;

    // Down to one channel: the newest is suspended and its session stopped.
    app.set_plan(&business, "single").await;
    settle(&app, &business).await;
    assert_eq!(
        channel_status(&app, &owner, &ids[1]).await["status"],
        "suspended"
    );
    wait_for("the session stopped", async || {
        waha.session(&newest).filter(|s| s.status == "STOPPED")
    })
    .await;
    assert_eq!(
        waha.session(&session_of(&ids[0])).unwrap().status,
        "SCAN_QR_CODE",
        "the oldest keeps going"
    );
    let r = app
        .post(
            &format!("/v1/channels/{}/connect", ids[1]),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::PAYMENT_REQUIRED, "channel_suspended")
    );
    // Back up: restored, and its session started again.
    app.set_plan(&business, "enterprise").await;
    settle(&app, &business).await;
    wait_for("the session started", async || {
        waha.session(&newest).filter(|s| s.status != "STOPPED")
    })
    .await;
    let c = channel_status(&app, &owner, &ids[1]).await;
    assert_ne!(c["status"], "suspended", "{c}");
    let starts = waha
        .calls()
        .iter()
        .filter(|(m, p)| m == "POST" && *p == format!("/api/sessions/{newest}/start"))
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_logs_the_session_out_for_a_new_scan() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("recon"), "Recon").await;
    let (id, session) = waiting_for_a_scan(&app, &waha, &owner).await;
    waha.set_status(&session, "WORKING").await;
    assert_eq!(
        channel_status(&app, &owner, &id).await["status"],
        "connected"
    );

    let r = app
        .post(
            &format!("/v1/channels/{id}/reconnect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["channel"]["status"], "connecting");
    assert_eq!(r.body["channel"]["account_id"], Value::Null);
    let logout = ("POST".to_owned(), format!("/api/sessions/{session}/logout"));
    wait_for("a new code to scan", async || {
        (waha.calls().contains(&logout)
            && waha
                .session(&session)
                .is_some_and(|s| s.status == "SCAN_QR_CODE" && s.me.is_none()))
        .then_some(())
    })
    .await;
    let r = app
        .call(
            Method::GET,
            &format!("/v1/channels/{id}/qr"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let creates = waha
        .calls()
        .iter()
        .filter(|(m, p)| m == "POST" && p == "/api/sessions")
        .count();
    assert_eq!(creates, 1, "the same session, logged out");
    let events = app
        .get("/v1/events?type=channel.status_changed", Some(&owner))
        .await;
    let last = events.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["data"]["to"].as_str(), last["data"]["reason"].as_str()),
        (Some("connecting"), Some("reconnect"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_channel_is_put_in_error_once_and_recovers() {
    use switchboard::domain::channels::health;
    let (app, waha) = app_with_waha().await;
    let mail = email("health");
    let owner = app.owner(&mail, "Health").await;
    let (id, session) = waiting_for_a_scan(&app, &waha, &owner).await;
    waha.set_status(&session, "WORKING").await;
    let state = &app.app.state;
    let probe = async || {
        health::probe_all(
            state.whatsapp(),
            state.telegram(),
            &state.mailer,
            2,
            Duration::from_secs(300),
        )
        .await
        .unwrap()
    };
    let r = probe().await;
    assert_eq!((r.probed, r.healthy), (1, 1));
    let subjects = |app: &TestApp| {
        app.app
            .state
            .mailer
            .messages_to(&mail)
            .into_iter()
            .map(|m| m.subject)
            .collect::<Vec<_>>()
    };
    let before = subjects(&app).len();

    // The phone unlinked the device and the webhook never came.
    waha.set_status_silently(&session, "SCAN_QR_CODE");
    probe().await;
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(
        (
            c["status"].as_str(),
            c["error_count"].as_i64(),
            c["last_error"].as_str()
        ),
        (Some("connected"), Some(1), Some("auth_revoked"))
    );
    probe().await;
    probe().await;
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(
        (c["status"].as_str(), c["error_count"].as_i64()),
        (Some("error"), Some(3))
    );
    // Every queued message delivered, then counted.
    let last = app.last_message(&mail).await;
    assert_eq!(
        subjects(&app).len(),
        before + 1,
        "one email, not one per probe"
    );
    assert!(last.subject.contains("needs attention"));
    assert!(last.text.contains("logged out"));

    // It works again.
    waha.set_status_silently(&session, "WORKING");
    probe().await;
    let c = channel_status(&app, &owner, &id).await;
    assert_eq!(
        (
            c["status"].as_str(),
            c["error_count"].as_i64(),
            c["last_error"].as_str()
        ),
        (Some("connected"), Some(0), None)
    );
    let mails = app.wait_for_messages(&mail, before + 2).await;
    assert!(
        mails.last().unwrap().subject.contains("works again"),
        "{:?}",
        subjects(&app)
    );
    let events = app
        .get("/v1/events?type=channel.status_changed", Some(&owner))
        .await;
    let reasons: Vec<(&str, &str)> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["data"]["to"].as_str()?, e["data"]["reason"].as_str()?)))
        .collect();
    assert!(
        reasons.ends_with(&[("error", "auth_revoked"), ("connected", "recovered")]),
        "{reasons:?}"
    );
    // Channels that are not connected are not probed.
    app.post(
        &format!("/v1/channels/{id}/disconnect"),
        Some(&owner),
        json!({}),
    )
    .await;
    assert_eq!(probe().await.probed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_page_shows_the_code_and_turns_connected_without_a_reload() {
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("page"), "Page").await;
    let id = whatsapp_channel(&app, &owner).await;
    let session = session_of(&id);
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["channel"]["status"], "connecting");
    let url = r.body["connect_page"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.url("/connect/")), "{url}");
    let http = reqwest::Client::new();
    let page = http.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("/connect/assets/connect.js")
    );
    wait_for("the session", async || {
        waha.session(&session)
            .filter(|s| s.status == "SCAN_QR_CODE")
    })
    .await;
    let s: Value = http
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["status"], "connecting");

    // The stream: the status, then the code as a data: URL.
    let mut stream = http
        .get(format!("{url}/events"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let mut text = String::new();
    while !text.contains("event: qr") {
        use futures::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("event: status") && text.contains("data:image/png;base64,iVBOR"),
        "{text}"
    );
    drop(stream);

    // The link opens this connection's page only, and only the newest.
    let r = http
        .get(app.url("/connect/not-a-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let first = url.clone();
    let again = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    let url = again.body["connect_page"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(url, first);
    let replaced = http.get(&first).send().await.unwrap();
    assert_eq!(
        replaced.status(),
        StatusCode::NOT_FOUND,
        "the previous link no longer opens"
    );
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );

    // In a real browser: the code shows; then the phone scans it and the
    // page says so without a reload.
    if !crate::common::has_chromium() {
        return;
    }
    let mut browser = crate::browser::Browser::open(&url).await;
    browser
        .wait_for(
            "the code shows",
            "(function () { var q = document.getElementById('qr'); return !!q && !q.hidden && q.complete && q.naturalWidth > 0; })()",
            Duration::from_secs(20),
        )
        .await;
    let png = browser.screenshot().await;
    if let Some(keep) = std::env::var_os("CONNECT_SCREENSHOT") {
        std::fs::write(keep, &png).unwrap();
    }
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "a screenshot: {} bytes",
        png.len()
    );
    // A mark the page keeps only if it is never reloaded.
    browser.eval("window.__notReloaded = true").await;
    waha.set_status(&session, "WORKING").await;
    browser
        .wait_for(
            "the page turned connected",
            "document.body.dataset.state === 'connected'",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        browser.eval("window.__notReloaded === true").await,
        true,
        "the same page, not a reload"
    );
    let html = browser.html().await;
    assert!(
        html.contains("Connected: Acme Support · +15551234567"),
        "{html}"
    );
    assert_eq!(
        browser.csp_violations().await,
        Vec::<String>::new(),
        "no CSP violation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_the_shared_n8n_workflow_with_the_business_routing() {
    let Some(n8n) = crate::common::n8n() else {
        return;
    };
    // The one shared WhatsApp ingress workflow: a Webhook node, active.
    let path = uuid::Uuid::new_v4().to_string();
    let workflow = n8n
        .create_workflow(json!({
            "name": format!("WhatsApp ingress {path}"),
            "nodes": [
                {"id": uuid::Uuid::new_v4(), "name": "Webhook", "type": "n8n-nodes-base.webhook",
                 "typeVersion": 2, "position": [0, 0], "webhookId": uuid::Uuid::new_v4(),
                 "parameters": {"httpMethod": "POST", "path": path, "responseMode": "onReceived", "options": {}}},
                {"id": uuid::Uuid::new_v4(), "name": "Answer", "type": "n8n-nodes-base.noOp",
                 "typeVersion": 1, "position": [220, 0], "parameters": {}}
            ],
            "connections": {"Webhook": {"main": [[{"node": "Answer", "type": "main", "index": 0}]]}},
            "settings": {"executionOrder": "v1"}
        }))
        .await;
    let (status, body) = n8n
        .call(
            Method::POST,
            &format!("/workflows/{workflow}/activate"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut n8n_config = n8n.config(None);
    n8n_config.whatsapp_workflow_id = Some(workflow.clone());
    let (app, fake) = app_with_waha_and(Some(n8n_config)).await;
    let owner = app.owner(&email("wan8n"), "Routed").await;
    let business = app.business_id(&owner).await;
    let (id, session) = waiting_for_a_scan(&app, &fake, &owner).await;
    fake.set_status(&session, "WORKING").await;

    // The business's credential for replies, made once when the session started.
    let credential = wait_for("the business's reply credential", async || {
        entity::n8n_object::Entity::find()
            .filter(
                entity::n8n_object::Column::BusinessId.eq(business.parse::<uuid::Uuid>().unwrap()),
            )
            .filter(entity::n8n_object::Column::Purpose.eq("waha_reply"))
            .one(&app.app.state.db)
            .await
            .unwrap()
    })
    .await;

    let msg = fake.envelope(
        &session,
        "message",
        now_ms(),
        json!({ "id": "false_15550002222@c.us_BBBB", "timestamp": 1_766_000_100, "from": "15550002222@c.us", "fromMe": false, "body": "Is it in stock?", "hasMedia": false }),
    );
    let d = fake.deliver(&session, &msg).await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("processed"))
    );
    // A duplicate delivery is not forwarded twice.
    let d = fake.deliver(&session, &msg).await;
    assert_eq!(
        (d.status, d.body["outcome"].as_str()),
        (200, Some("duplicate"))
    );

    let run = wait_for("the shared workflow's execution", async || {
        n8n.executions(&workflow)
            .await
            .into_iter()
            .find(|e| e["status"] == "success")
    })
    .await;
    let received =
        &run["data"]["resultData"]["runData"]["Webhook"][0]["data"]["main"][0][0]["json"]["body"];
    assert_eq!(received["id"], msg["id"], "{run}");
    assert_eq!(received["payload"]["body"], "Is it in stock?");
    let routing = &received["switchboard"];
    assert_eq!(routing["business_id"], business);
    assert_eq!(routing["channel_id"], id);
    assert_eq!(routing["session"], session);
    assert_eq!(routing["credential_id"], credential.n8n_id);
    assert!(routing["company_id"].is_string());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(n8n.executions(&workflow).await.len(), 1, "forwarded once");
    n8n.call(
        Method::POST,
        &format!("/workflows/{workflow}/deactivate"),
        None,
    )
    .await;
}

/// A proxy in front of the app that does not let server-sent events
/// through (as some corporate proxies do): `/events` answers 502, the
/// rest is forwarded as is. The phone scans the code (WAHA reports
/// `WORKING`) when the page asks for the status the third time.
async fn proxy_without_sse(upstream: String, waha: FakeWaha, session: String) -> String {
    use axum::extract::Request;
    use axum::response::IntoResponse;
    let http = reqwest::Client::new();
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = axum::Router::new().fallback(move |req: Request| {
        let (http, upstream, polls) = (http.clone(), upstream.clone(), polls.clone());
        let (waha, session) = (waha.clone(), session.clone());
        async move {
            if req.uri().path().ends_with("/status")
                && polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 2
            {
                waha.set_status(&session, "WORKING").await;
            }
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            if req.uri().path().ends_with("/events") {
                return (StatusCode::BAD_GATEWAY, "streaming is not allowed here").into_response();
            }
            let res = http.get(format!("{upstream}{path}")).send().await.unwrap();
            let mut out = axum::http::Response::builder().status(res.status().as_u16());
            for (name, value) in res.headers() {
                if name != "transfer-encoding" && name != "content-length" {
                    out = out.header(name.as_str(), value.as_bytes());
                }
            }
            out.body(axum::body::Body::from(res.bytes().await.unwrap()))
                .unwrap()
                .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_page_polls_where_server_sent_events_do_not_get_through() {
    if !crate::common::has_chromium() {
        return;
    }
    let (app, waha) = app_with_waha().await;
    let owner = app.owner(&email("poll"), "Poll").await;
    let (id, session) = waiting_for_a_scan(&app, &waha, &owner).await;
    let r = app
        .post(
            &format!("/v1/channels/{id}/connect"),
            Some(&owner),
            json!({}),
        )
        .await;
    let url = r.body["connect_page"]["url"].as_str().unwrap().to_owned();
    let proxy = proxy_without_sse(app.url(""), waha.clone(), session.clone()).await;
    let through_proxy = url.replace(app.url("").trim_end_matches('/'), &proxy);
    assert!(through_proxy.starts_with(&proxy), "{through_proxy}");
    let blocked = reqwest::get(format!("{through_proxy}/events"))
        .await
        .unwrap();
    assert_eq!(blocked.status(), StatusCode::BAD_GATEWAY);

    let mut browser = crate::browser::Browser::open(&through_proxy).await;
    browser
        .wait_for(
            "the page turned connected by polling",
            "document.body.dataset.state === 'connected'",
            Duration::from_secs(20),
        )
        .await;
    let html = browser.html().await;
    assert!(html.contains("Connected: Acme Support"), "{html}");
}
