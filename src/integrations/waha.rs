//! The WAHA client (WhatsApp HTTP API, <https://waha.devlike.pro>): the
//! session calls Switchboard makes for a WhatsApp channel, over WAHA's REST
//! API with the server's key in `X-Api-Key` (WAHA docs: security). The
//! base URL is configuration, so tests run this code against a local server
//! speaking WAHA's wire format.
//!
//! Failures map to problem details: WAHA unreachable or answering 5xx →
//! 502 `whatsapp_unreachable`; WAHA refusing a request → 502
//! `whatsapp_error` with its status. A session that is not there is not a
//! failure for the calls that remove it (`logout`, `delete`).

use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::WahaConfig;
use crate::error::Error;

/// Events a session's webhook asks WAHA for (WAHA docs: events).
pub const WEBHOOK_EVENTS: [&str; 2] = ["session.status", "message"];

/// A configured WAHA client (cheap to clone).
#[derive(Clone)]
pub struct WahaApi {
    http: reqwest::Client,
    base: String,
    key: SecretString,
}

/// A session as `GET /api/sessions/{name}` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// Its name.
    pub name: String,
    /// `STARTING`, `SCAN_QR_CODE`, `WORKING`, `FAILED` or `STOPPED`.
    pub status: String,
    /// The WhatsApp account once `WORKING`.
    #[serde(default)]
    pub me: Option<Me>,
}

/// The account a session is logged in as (`me`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Me {
    /// WhatsApp id, e.g. `15551234567@c.us`.
    pub id: String,
    /// The profile's display name.
    #[serde(default, rename = "pushName")]
    pub push_name: Option<String>,
}

/// A QR code to scan: PNG bytes.
pub struct Qr {
    /// `image/png` as WAHA gives it.
    pub mimetype: String,
    /// The image.
    pub data: Vec<u8>,
}

/// What `GET /api/{session}/auth/qr` gave.
pub enum QrAnswer {
    /// The current code.
    Code(Qr),
    /// No code: the session is in this status (not `SCAN_QR_CODE`), or
    /// missing (`None`).
    NotAvailable(Option<String>),
}

/// The webhook configuration of a session: where WAHA posts its events
/// and the key it signs them with (`hmac.key`: WAHA sends
/// `X-Webhook-Hmac`, hex HMAC-SHA512 of the raw body).
pub fn webhook_config(url: &str, hmac_key: &SecretString) -> Value {
    json!({
        "webhooks": [{
            "url": url,
            "events": WEBHOOK_EVENTS,
            "hmac": { "key": hmac_key.expose_secret() },
            "retries": { "policy": "exponential", "delaySeconds": 2, "attempts": 15 },
        }]
    })
}

fn unreachable(e: impl std::fmt::Display) -> Error {
    tracing::warn!(error = %e, "WAHA request failed");
    Error::new(
        StatusCode::BAD_GATEWAY,
        "whatsapp_unreachable",
        "The WhatsApp server could not be reached",
    )
    .with_detail("Try again shortly.")
}

fn refused(status: reqwest::StatusCode, body: &str) -> Error {
    let message: String = body.chars().take(300).collect();
    tracing::warn!(status = status.as_u16(), %message, "WAHA refused a request");
    Error::new(
        StatusCode::BAD_GATEWAY,
        "whatsapp_error",
        "The WhatsApp server refused the request",
    )
    .with_detail(message)
    .with("waha_status", status.as_u16())
}

impl WahaApi {
    /// A client for `config.base_url`.
    pub fn new(config: &WahaConfig) -> Result<WahaApi, Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(WahaApi {
            http,
            base: config.base_url.trim_end_matches('/').to_owned(),
            key: config.api_key.clone(),
        })
    }

    /// The server's API key (what the n8n credential a business's replies
    /// go out with holds).
    pub fn api_key(&self) -> &SecretString {
        &self.key
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header("X-Api-Key", self.key.expose_secret())
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
        req.send().await.map_err(unreachable)
    }

    /// Session `name`, or `None` when WAHA has none by that name.
    pub async fn session(&self, name: &str) -> Result<Option<Session>, Error> {
        let res = self
            .send(self.request(reqwest::Method::GET, &format!("/api/sessions/{name}")))
            .await?;
        match res.status() {
            s if s.is_success() => res.json().await.map(Some).map_err(unreachable),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Makes session `name` exist with `config` and run: creates and starts
    /// it (`POST /api/sessions` with `start: true`), or, when it exists
    /// already (a retried connection), updates its configuration
    /// (`PUT /api/sessions/{name}`) and starts it if it is `STOPPED` or
    /// `FAILED`. Safe to repeat.
    pub async fn ensure_session(&self, name: &str, config: &Value) -> Result<Session, Error> {
        if let Some(existing) = self.session(name).await? {
            let res = self
                .send(
                    self.request(reqwest::Method::PUT, &format!("/api/sessions/{name}"))
                        .json(&json!({ "name": name, "config": config })),
                )
                .await?;
            if !res.status().is_success() {
                let s = res.status();
                return Err(refused(s, &res.text().await.unwrap_or_default()));
            }
            if matches!(existing.status.as_str(), "STOPPED" | "FAILED") {
                return self.start(name).await;
            }
            return Ok(existing);
        }
        let res = self
            .send(
                self.request(reqwest::Method::POST, "/api/sessions")
                    .json(&json!({ "name": name, "start": true, "config": config })),
            )
            .await?;
        match res.status() {
            s if s.is_success() => res.json().await.map_err(unreachable),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Starts session `name` (`POST /api/sessions/{name}/start`).
    pub async fn start(&self, name: &str) -> Result<Session, Error> {
        let res = self
            .send(self.request(
                reqwest::Method::POST,
                &format!("/api/sessions/{name}/start"),
            ))
            .await?;
        match res.status() {
            s if s.is_success() => res.json().await.map_err(unreachable),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// Stops session `name` (`POST /api/sessions/{name}/stop`); a missing
    /// session is already stopped.
    pub async fn stop(&self, name: &str) -> Result<(), Error> {
        self.remove_call(reqwest::Method::POST, &format!("/api/sessions/{name}/stop"))
            .await
    }

    /// Logs session `name` out of WhatsApp and removes it from WAHA
    /// (`POST /api/sessions/{name}/logout`, then `DELETE
    /// /api/sessions/{name}`). A session that is gone, or was never logged
    /// in, is fine: safe to repeat.
    pub async fn remove(&self, name: &str) -> Result<(), Error> {
        self.remove_call(
            reqwest::Method::POST,
            &format!("/api/sessions/{name}/logout"),
        )
        .await?;
        self.remove_call(reqwest::Method::DELETE, &format!("/api/sessions/{name}"))
            .await
    }

    /// Logs session `name` out of WhatsApp (`POST
    /// /api/sessions/{name}/logout`): WAHA clears its login and, if it was
    /// running, restarts it to wait for a new scan. A missing session is fine.
    pub async fn logout(&self, name: &str) -> Result<(), Error> {
        self.remove_call(
            reqwest::Method::POST,
            &format!("/api/sessions/{name}/logout"),
        )
        .await
    }

    /// A call whose 404 (and, for logout, 422: not logged in) means done.
    async fn remove_call(&self, method: reqwest::Method, path: &str) -> Result<(), Error> {
        let res = self.send(self.request(method, path)).await?;
        match res.status() {
            s if s.is_success() => Ok(()),
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::UNPROCESSABLE_ENTITY => Ok(()),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }

    /// The session's current QR code (`GET /api/{session}/auth/qr?format=image`
    /// with `Accept: application/json`: `{mimetype, data}`, data base64).
    /// WAHA answers 422 while the session is not `SCAN_QR_CODE`; then the
    /// session's status is read, to say why.
    pub async fn qr(&self, name: &str) -> Result<QrAnswer, Error> {
        let res = self
            .send(
                self.request(reqwest::Method::GET, &format!("/api/{name}/auth/qr"))
                    .query(&[("format", "image")])
                    .header(ACCEPT, "application/json"),
            )
            .await?;
        match res.status() {
            s if s.is_success() => {
                #[derive(Deserialize)]
                struct Body {
                    mimetype: String,
                    data: String,
                }
                let body: Body = res.json().await.map_err(unreachable)?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(body.data.as_bytes())
                    .map_err(unreachable)?;
                Ok(QrAnswer::Code(Qr {
                    mimetype: body.mimetype,
                    data,
                }))
            }
            reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::UNPROCESSABLE_ENTITY => Ok(
                QrAnswer::NotAvailable(self.session(name).await?.map(|s| s.status)),
            ),
            s => Err(refused(s, &res.text().await.unwrap_or_default())),
        }
    }
}
