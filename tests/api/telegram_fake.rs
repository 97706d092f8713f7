//! A local Telegram Bot API server speaking the Bot API's wire format (no
//! emulator exists in any registry), as the Bot API documents it
//! (<https://core.telegram.org/bots/api>, "Making requests"):
//!
//! - `GET|POST /bot{token}/{method}`, parameters in the query string, a
//!   JSON body or a form body; answers `{"ok":true,"result":…}` or
//!   `{"ok":false,"error_code":…,"description":…}` with the HTTP status of
//!   `error_code`. An unknown or revoked token: 401 `Unauthorized`; an
//!   unknown method: 404 `Not Found`.
//! - `getMe` → the bot's `User`; `getWebhookInfo` → `WebhookInfo` (`url`
//!   empty when none is set; `last_error_date`/`last_error_message` when a
//!   test says deliveries fail); `setWebhook {url, allowed_updates,
//!   secret_token}` → `true`, "Webhook was set"; `deleteWebhook` → `true`,
//!   "Webhook was deleted" (or "Webhook is already deleted").
//!
//! n8n's Telegram Trigger calls this server itself (its credential's
//! `baseUrl`), so tests see n8n's own `setWebhook`/`deleteWebhook`, with
//! the secret it expects back in `X-Telegram-Bot-Api-Secret-Token`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

/// A bot the server knows.
#[derive(Clone, Debug)]
pub struct Bot {
    pub id: i64,
    pub username: String,
    pub webhook: Option<Webhook>,
    pub last_error: Option<(i64, String)>,
    pub revoked: bool,
}

/// A webhook as `setWebhook` set it.
#[derive(Clone, Debug)]
pub struct Webhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub allowed_updates: Value,
}

#[derive(Default)]
struct Inner {
    bots: HashMap<String, Bot>,
    /// (method, bot id) of every call with a known token.
    calls: Vec<(String, i64)>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{bot}/{method}", any(call))
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeTelegram {
            url: format!("http://{addr}"),
            inner,
        }
    }

    /// Registers a bot; returns its token.
    pub fn add_bot(&self, username: &str) -> String {
        let mut inner = self.inner.lock().unwrap();
        let id = 7_000_000_000 + inner.bots.len() as i64 + i64::from(rand::random::<u16>()) * 1000;
        let key: String = (0..35)
            .map(|i| {
                let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
                alphabet[(rand::random::<u8>() as usize + i) % alphabet.len()] as char
            })
            .collect();
        let token = format!("{id}:{key}");
        inner.bots.insert(
            token.clone(),
            Bot {
                id,
                username: username.to_owned(),
                webhook: None,
                last_error: None,
                revoked: false,
            },
        );
        token
    }

    pub fn bot(&self, token: &str) -> Bot {
        self.inner.lock().unwrap().bots[token].clone()
    }

    /// Revokes a token (@BotFather's /revoke): every call with it gets 401.
    pub fn revoke(&self, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .bots
            .get_mut(token)
            .unwrap()
            .revoked = true;
    }

    /// Makes `getWebhookInfo` report a failed delivery.
    pub fn fail_deliveries(&self, token: &str, message: &str) {
        let now = chrono::Utc::now().timestamp();
        self.inner
            .lock()
            .unwrap()
            .bots
            .get_mut(token)
            .unwrap()
            .last_error = Some((now, message.to_owned()));
    }

    /// Deliveries work again (`getWebhookInfo` reports no error).
    pub fn deliveries_work(&self, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .bots
            .get_mut(token)
            .unwrap()
            .last_error = None;
    }

    /// The methods called for bot `id`, in order.
    pub fn calls(&self, id: i64) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(_, b)| *b == id)
            .map(|(m, _)| m.clone())
            .collect()
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(code: u16, description: &str) -> Response {
    answer(
        StatusCode::from_u16(code).unwrap(),
        json!({"ok": false, "error_code": code, "description": description}),
    )
}

async fn call(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(token) = bot.strip_prefix("bot") else {
        return error(404, "Not Found");
    };
    // Parameters: query string, then a JSON or form body over it.
    let mut params: Map<String, Value> = query
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !body.is_empty() {
        if content_type.starts_with("application/json") {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => params.extend(m),
                _ => return error(400, "Bad Request: can't parse JSON object"),
            }
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            for (k, v) in form_urlencoded::parse(&body) {
                params.insert(k.into_owned(), Value::String(v.into_owned()));
            }
        }
    }
    let mut inner = inner.lock().unwrap();
    let Some(b) = inner.bots.get(token).filter(|b| !b.revoked).cloned() else {
        return error(401, "Unauthorized");
    };
    inner.calls.push((method.clone(), b.id));
    let bot = inner.bots.get_mut(token).unwrap();
    match method.as_str() {
        "getMe" => answer(
            StatusCode::OK,
            json!({"ok": true, "result": {
                "id": b.id, "is_bot": true, "first_name": format!("{} bot", b.username),
                "username": b.username, "can_join_groups": true,
                "can_read_all_group_messages": false, "supports_inline_queries": false,
                "can_connect_to_business": false, "has_main_web_app": false,
            }}),
        ),
        "getWebhookInfo" => {
            let mut info = json!({
                "url": b.webhook.as_ref().map(|w| w.url.clone()).unwrap_or_default(),
                "has_custom_certificate": false,
                "pending_update_count": 0,
            });
            if let Some(w) = &b.webhook {
                info["max_connections"] = json!(40);
                info["ip_address"] = json!("127.0.0.1");
                if w.allowed_updates.as_array().is_some_and(|a| !a.is_empty()) {
                    info["allowed_updates"] = w.allowed_updates.clone();
                }
            }
            if let Some((at, message)) = &b.last_error {
                info["last_error_date"] = json!(at);
                info["last_error_message"] = json!(message);
            }
            answer(StatusCode::OK, json!({"ok": true, "result": info}))
        }
        "setWebhook" => {
            let Some(url) = params.get("url").and_then(Value::as_str) else {
                return error(400, "Bad Request: bad webhook: URL must be provided");
            };
            if url.is_empty() {
                bot.webhook = None;
                return answer(
                    StatusCode::OK,
                    json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
                );
            }
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return error(400, "Bad Request: bad webhook: Failed to resolve host");
            }
            let allowed = match params.get("allowed_updates") {
                Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(json!([])),
                Some(v) => v.clone(),
                None => json!([]),
            };
            bot.webhook = Some(Webhook {
                url: url.to_owned(),
                secret_token: params
                    .get("secret_token")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                allowed_updates: allowed,
            });
            answer(
                StatusCode::OK,
                json!({"ok": true, "result": true, "description": "Webhook was set"}),
            )
        }
        "deleteWebhook" => {
            let had = bot.webhook.take().is_some();
            let description = if had {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            };
            answer(
                StatusCode::OK,
                json!({"ok": true, "result": true, "description": description}),
            )
        }
        _ => error(404, "Not Found"),
    }
}
