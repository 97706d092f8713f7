//! A local WAHA server speaking WAHA's wire format (no emulator exists in
//! any registry), as read from WAHA's source (`sessions.controller.ts`,
//! `auth.controller.ts`, `WebhookSender.ts`; WAHA 2025.12, PLUS tier):
//!
//! - `X-Api-Key` on every call; 401 `{"statusCode":401,"message":"Unauthorized"}`.
//! - `POST /api/sessions` `{name, start, config}` → 201 session info; an
//!   existing name → 422 NestJS body. `GET|PUT|DELETE /api/sessions/{name}`,
//!   `POST /api/sessions/{name}/start|stop|logout` (start on a running
//!   session → 422), missing → 404 `{"statusCode":404,"message":"Session
//!   not found","error":"Not Found"}`; `DELETE` is 200 with an empty body
//!   either way.
//! - `GET /api/{session}/auth/qr?format=image`: PNG bytes, or
//!   `{"mimetype":"image/png","data":"<base64>"}` when `Accept` is exactly
//!   `application/json`; 422 `{"error":…,"session":…,"status":…,
//!   "expected":["SCAN_QR_CODE"]}` outside `SCAN_QR_CODE`. Each
//!   [`FakeWaha::rotate_qr`] makes a new code.
//! - Webhooks: `POST` of `JSON.stringify(envelope)` with `X-Webhook-Request-Id`,
//!   `X-Webhook-Timestamp` (ms), and, when the session's webhook has
//!   `hmac.key`, `X-Webhook-Hmac` (lowercase hex HMAC-SHA512 of the raw
//!   body, key as UTF-8) and `X-Webhook-Hmac-Algorithm: sha512`. Envelope
//!   `{id: "evt_…", timestamp, event, session, me, payload, engine,
//!   environment}`. A started session, or a running one logged out,
//!   reports `STARTING` then `SCAN_QR_CODE`; the test drives the rest
//!   ([`FakeWaha::set_status`]).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha512;
use tokio::net::TcpListener;

pub const API_KEY: &str = "waha-test-api-key";

#[derive(Clone, Debug)]
pub struct Session {
    pub status: String,
    pub config: Value,
    pub me: Option<Value>,
    pub qr: u64,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Session>,
    calls: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct FakeWaha {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    seq: Arc<AtomicU64>,
}

/// What a webhook delivery got back.
#[derive(Debug)]
pub struct Delivery {
    pub status: u16,
    pub body: Value,
}

fn nest(status: StatusCode, message: &str) -> Response {
    let error = status.canonical_reason().unwrap_or("Error");
    (
        status,
        axum::Json(json!({ "statusCode": status.as_u16(), "message": message, "error": error })),
    )
        .into_response()
}

fn info(name: &str, s: &Session) -> Value {
    json!({
        "name": name,
        "status": s.status,
        "config": s.config,
        "me": s.me,
        "presence": if s.status == "WORKING" { json!("online") } else { Value::Null },
        "timestamps": { "activity": null },
        "engine": { "engine": "WEBJS", "WWebVersion": "2.3000.1017531287", "state": if s.status == "WORKING" { json!("CONNECTED") } else { Value::Null } },
    })
}

impl FakeWaha {
    pub async fn start() -> FakeWaha {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeWaha {
            url,
            inner: Arc::default(),
            http: reqwest::Client::new(),
            seq: Arc::default(),
        };
        let app = Router::new()
            .route("/api/sessions", post(create))
            .route("/api/sessions/{name}", get(read).put(update).delete(delete))
            .route("/api/sessions/{name}/{action}", post(action))
            .route("/api/{session}/auth/qr", get(qr))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        fake
    }

    pub fn session(&self, name: &str) -> Option<Session> {
        self.inner.lock().unwrap().sessions.get(name).cloned()
    }

    pub fn sessions(&self) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .sessions
            .keys()
            .cloned()
            .collect()
    }

    /// `(method, path)` of every authenticated call, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// A new QR code for `name` (WAHA's rotate about every 20 s).
    pub fn rotate_qr(&self, name: &str) {
        if let Some(s) = self.inner.lock().unwrap().sessions.get_mut(name) {
            s.qr += 1;
        }
    }

    /// An envelope as WAHA builds it, `timestamp` in ms.
    pub fn envelope(&self, name: &str, event: &str, timestamp: i64, payload: Value) -> Value {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let me = self.session(name).and_then(|s| s.me);
        json!({
            "id": format!("evt_01jf{n:022}"),
            "timestamp": timestamp,
            "event": event,
            "session": name,
            "me": me,
            "payload": payload,
            "engine": "WEBJS",
            "environment": { "version": "2025.12.3", "engine": "WEBJS", "tier": "PLUS", "browser": "/usr/bin/chromium" },
        })
    }

    /// The headers WAHA sends with `body` for session `name` (signed with
    /// the session's `hmac.key`, if it has one).
    pub fn headers(&self, name: &str, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
        let mut h = vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "WAHA/2025.12.3".into()),
            (
                "x-webhook-request-id".into(),
                format!("4n5px{}", self.seq.fetch_add(1, Ordering::Relaxed)),
            ),
            ("x-webhook-timestamp".into(), timestamp.to_string()),
        ];
        if let Some(key) = self
            .hook(name)
            .and_then(|h| h["hmac"]["key"].as_str().map(str::to_owned))
        {
            h.push(("x-webhook-hmac".into(), sign(&key, body)));
            h.push(("x-webhook-hmac-algorithm".into(), "sha512".into()));
        }
        h
    }

    fn hook(&self, name: &str) -> Option<Value> {
        self.session(name)
            .and_then(|s| s.config["webhooks"].get(0).cloned())
    }

    /// Posts `body` to session `name`'s webhook URL with `headers`.
    pub async fn post_raw(
        &self,
        name: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Delivery {
        let url = self
            .hook(name)
            .and_then(|h| h["url"].as_str().map(str::to_owned))
            .expect("a webhook URL");
        self.post_to(&url, body, headers).await
    }

    pub async fn post_to(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Delivery {
        let mut req = self.http.post(url).body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let res = req.send().await.expect("webhook delivered");
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Delivery { status, body }
    }

    /// Sends `envelope` for `name` as WAHA does (signed).
    pub async fn deliver(&self, name: &str, envelope: &Value) -> Delivery {
        let body = serde_json::to_vec(envelope).unwrap();
        let ts = envelope["timestamp"].as_i64().unwrap_or_default();
        let headers = self.headers(name, &body, ts);
        self.post_raw(name, body, headers).await
    }

    /// Moves session `name` to `status` (with the account on `WORKING`)
    /// and delivers its `session.status`; returns the envelope and the answer.
    pub async fn set_status(&self, name: &str, status: &str) -> (Value, Delivery) {
        self.report(name, status).await.expect("a session")
    }

    /// [`FakeWaha::set_status`], or `None` when the session is gone.
    async fn report(&self, name: &str, status: &str) -> Option<(Value, Delivery)> {
        {
            let mut inner = self.inner.lock().unwrap();
            let s = inner.sessions.get_mut(name)?;
            s.status = status.into();
            s.me = (status == "WORKING")
                .then(|| json!({ "id": "15551234567@c.us", "pushName": "Acme Support" }));
        }
        self.hook(name)?;
        let env = self.envelope(
            name,
            "session.status",
            now_ms(),
            json!({ "name": name, "status": status }),
        );
        let d = self.deliver(name, &env).await;
        Some((env, d))
    }

    /// Moves session `name` to `status` without telling anyone (a webhook
    /// that never arrived).
    pub fn set_status_silently(&self, name: &str, status: &str) {
        if let Some(s) = self.inner.lock().unwrap().sessions.get_mut(name) {
            s.status = status.into();
        }
    }

    /// WAHA's own asynchronous reports after a start.
    fn starting(&self, name: String) {
        let fake = self.clone();
        tokio::spawn(async move {
            for status in ["STARTING", "SCAN_QR_CODE"] {
                if fake.report(&name, status).await.is_none() {
                    return;
                }
            }
        });
    }

    /// `Some(401)` without the right key; records the call otherwise.
    fn refused(&self, headers: &HeaderMap, method: &str, path: String) -> Option<Response> {
        if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(API_KEY) {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(json!({ "statusCode": 401, "message": "Unauthorized" })),
                )
                    .into_response(),
            );
        }
        self.inner.lock().unwrap().calls.push((method.into(), path));
        None
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Lowercase hex HMAC-SHA512 of `body` under `key` (UTF-8).
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn create(State(f): State<FakeWaha>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = f.refused(&headers, "POST", "/api/sessions".into()) {
        return r;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return nest(StatusCode::BAD_REQUEST, "Unexpected token in JSON");
    };
    let name = req["name"].as_str().unwrap_or("default").to_owned();
    let start = req["start"].as_bool().unwrap_or(false);
    let s = {
        let mut inner = f.inner.lock().unwrap();
        if inner.sessions.contains_key(&name) {
            drop(inner);
            return nest(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("Session '{name}' already exists. Use PUT to update it."),
            );
        }
        let s = Session {
            status: if start { "STARTING" } else { "STOPPED" }.into(),
            config: req["config"].clone(),
            me: None,
            qr: 0,
        };
        inner.sessions.insert(name.clone(), s.clone());
        s
    };
    if start {
        f.starting(name.clone());
    }
    (StatusCode::CREATED, axum::Json(info(&name, &s))).into_response()
}

async fn read(State(f): State<FakeWaha>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Some(r) = f.refused(&headers, "GET", format!("/api/sessions/{name}")) {
        return r;
    }
    match f.session(&name) {
        Some(s) => axum::Json(info(&name, &s)).into_response(),
        None => nest(StatusCode::NOT_FOUND, "Session not found"),
    }
}

async fn update(
    State(f): State<FakeWaha>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if let Some(r) = f.refused(&headers, "PUT", format!("/api/sessions/{name}")) {
        return r;
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut inner = f.inner.lock().unwrap();
    match inner.sessions.get_mut(&name) {
        Some(s) => {
            s.config = req["config"].clone();
            axum::Json(info(&name, s)).into_response()
        }
        None => nest(StatusCode::NOT_FOUND, "Session not found"),
    }
}

async fn delete(
    State(f): State<FakeWaha>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Some(r) = f.refused(&headers, "DELETE", format!("/api/sessions/{name}")) {
        return r;
    }
    f.inner.lock().unwrap().sessions.remove(&name);
    StatusCode::OK.into_response()
}

async fn action(
    State(f): State<FakeWaha>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> Response {
    if let Some(r) = f.refused(&headers, "POST", format!("/api/sessions/{name}/{action}")) {
        return r;
    }
    let Some(s) = f.session(&name) else {
        return nest(StatusCode::NOT_FOUND, "Session not found");
    };
    match action.as_str() {
        "start" => {
            if !matches!(s.status.as_str(), "STOPPED" | "FAILED") {
                return nest(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &format!("Session '{name}' is already started."),
                );
            }
            f.starting(name.clone());
        }
        "stop" => {
            f.set_status(&name, "STOPPED").await;
        }
        "logout" => {
            // WAHA clears the login and restarts a running session.
            let running = {
                let mut inner = f.inner.lock().unwrap();
                let s = inner.sessions.get_mut(&name);
                s.map(|s| {
                    s.me = None;
                    s.status != "STOPPED"
                })
                .unwrap_or(false)
            };
            if running {
                f.starting(name.clone());
            }
        }
        _ => return nest(StatusCode::NOT_FOUND, "Cannot POST"),
    }
    let s = f.session(&name).unwrap_or(s);
    (StatusCode::CREATED, axum::Json(info(&name, &s))).into_response()
}

async fn qr(
    State(f): State<FakeWaha>,
    headers: HeaderMap,
    Path(session): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = f.refused(&headers, "GET", format!("/api/{session}/auth/qr")) {
        return r;
    }
    let Some(s) = f.session(&session) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({ "error": format!("Session \"{session}\" does not exist"), "session": session })),
        )
            .into_response();
    };
    if s.status != "SCAN_QR_CODE" {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({
                "error": "Session status is not as expected. Try again later or restart the session",
                "session": session, "status": s.status, "expected": ["SCAN_QR_CODE"],
            })),
        )
            .into_response();
    }
    let value = format!("2@{session}:{}", s.qr);
    if q.get("format").map(String::as_str) == Some("raw") {
        return axum::Json(json!({ "value": value })).into_response();
    }
    let png = png_with_text(&value);
    if headers.get("accept").and_then(|v| v.to_str().ok()) == Some("application/json") {
        let data = base64::engine::general_purpose::STANDARD.encode(&png);
        return axum::Json(json!({ "mimetype": "image/png", "data": data })).into_response();
    }
    ([("content-type", "image/png")], png).into_response()
}

/// A valid 1×1 PNG carrying `text` in a tEXt chunk (so codes differ).
pub fn png_with_text(text: &str) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]);
    let mut text_data = b"qr\0".to_vec();
    text_data.extend_from_slice(text.as_bytes());
    chunk(&mut out, b"tEXt", &text_data);
    // zlib stream of one scanline: filter 0, one gray byte.
    chunk(
        &mut out,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x02, 0x00, 0xfd, 0xff, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
        ],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}
