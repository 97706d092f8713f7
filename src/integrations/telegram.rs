//! The Telegram Bot API client (<https://core.telegram.org/bots/api>): the
//! calls Switchboard makes for a bot channel, `{base}/bot{token}/{method}`,
//! answered `{ok: true, result}` or `{ok: false, error_code, description,
//! parameters?: {retry_after}}` (Bot API: "Making requests"). The base URL
//! is configuration (`telegram.api_base`), so tests run this code against a
//! local server speaking the same wire format; the same base goes into the
//! n8n `telegramApi` credential, so n8n's Telegram nodes reach it too.
//!
//! The token is part of the URL path: it is never logged (errors carry the
//! method and Telegram's answer, not the URL).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A configured Bot API client (cheap to clone).
#[derive(Clone)]
pub struct TelegramApi {
    http: reqwest::Client,
    base: String,
}

/// The bot, as `getMe` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Bot {
    /// The bot's user id.
    pub id: i64,
    /// `true` for every bot.
    #[serde(default)]
    pub is_bot: bool,
    /// Its display name.
    pub first_name: String,
    /// Its `@username`, without the `@`.
    #[serde(default)]
    pub username: Option<String>,
}

/// The bot's webhook, as `getWebhookInfo` describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookInfo {
    /// Where updates go; empty when no webhook is set.
    pub url: String,
    /// Updates waiting to be delivered.
    #[serde(default)]
    pub pending_update_count: i64,
    /// When the last delivery failed (Unix seconds).
    #[serde(default)]
    pub last_error_date: Option<i64>,
    /// Why it failed.
    #[serde(default)]
    pub last_error_message: Option<String>,
}

/// How a Bot API call failed.
#[derive(Debug)]
pub enum CallError {
    /// Telegram refused the token (401, or 404 for a malformed one).
    Unauthorized(String),
    /// Too many requests (429), with `retry_after` seconds if given.
    RateLimited(Option<u64>),
    /// Any other refusal: Telegram's `error_code` and `description`.
    Refused(u16, String),
    /// No answer, or an answer that is not the Bot API's.
    Unreachable(String),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        use axum::http::StatusCode;
        match e {
            CallError::Unauthorized(d) => Error::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "telegram_token_invalid",
                "Telegram does not accept this bot token",
            )
            .with_detail(format!(
                "Telegram said: {d}. Copy the token @BotFather gave again."
            )),
            CallError::RateLimited(after) => Error::new(
                StatusCode::BAD_GATEWAY,
                "telegram_rate_limited",
                "Telegram asks to slow down",
            )
            .with_detail("Try again shortly.")
            .with("retry_after", after),
            CallError::Refused(code, d) => Error::new(
                StatusCode::BAD_GATEWAY,
                "telegram_error",
                "Telegram refused the request",
            )
            .with_detail(d)
            .with("telegram_error_code", code),
            CallError::Unreachable(d) => {
                tracing::warn!(error = %d, "Telegram request failed");
                Error::new(
                    StatusCode::BAD_GATEWAY,
                    "telegram_unreachable",
                    "Telegram could not be reached",
                )
                .with_detail("Try again shortly.")
            }
        }
    }
}

/// The shape of a bot token (`{bot id}:{35 characters}`, as @BotFather
/// issues them); anything else is refused before it reaches a URL.
pub const TOKEN_PATTERN: &str = r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,100}$";

/// Whether `token` has the shape of a bot token ([`TOKEN_PATTERN`]).
pub fn token_shape_ok(token: &str) -> bool {
    crate::domain::validate::matches(TOKEN_PATTERN, token)
}

#[derive(Deserialize)]
struct Envelope<T> {
    ok: bool,
    #[serde(default = "Option::default")]
    result: Option<T>,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
}

impl TelegramApi {
    /// A client for `base` (e.g. `https://api.telegram.org`), with a
    /// `timeout` per request.
    pub fn new(base: &str, timeout: Duration) -> Result<TelegramApi, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(TelegramApi {
            http,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// The base URL (what n8n's `telegramApi` credential gets as `baseUrl`).
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        method: &str,
        params: &serde_json::Value,
    ) -> Result<T, CallError> {
        if !token_shape_ok(token.expose_secret()) {
            return Err(CallError::Unauthorized("not a bot token".into()));
        }
        let url = format!("{}/bot{}/{method}", self.base, token.expose_secret());
        let res = self
            .http
            .post(url)
            .json(params)
            .send()
            .await
            // Without the URL: it holds the token.
            .map_err(|e| CallError::Unreachable(format!("{method}: {}", e.without_url())))?;
        let status = res.status();
        let body: Envelope<T> = res.json().await.map_err(|e| {
            CallError::Unreachable(format!("{method}: {status}: {}", e.without_url()))
        })?;
        if body.ok
            && let Some(result) = body.result
        {
            return Ok(result);
        }
        let code = body.error_code.unwrap_or(status.as_u16());
        let description = body.description.unwrap_or_else(|| status.to_string());
        Err(match code {
            401 | 404 => CallError::Unauthorized(description),
            429 => CallError::RateLimited(body.parameters.and_then(|p| p.retry_after)),
            c if c >= 500 => CallError::Unreachable(format!("{method}: {c} {description}")),
            c => CallError::Refused(c, description),
        })
    }

    /// `getMe`: the bot the token belongs to.
    pub async fn get_me(&self, token: &SecretString) -> Result<Bot, CallError> {
        self.call(token, "getMe", &serde_json::json!({})).await
    }

    /// `getWebhookInfo`: where the bot's updates go.
    pub async fn webhook_info(&self, token: &SecretString) -> Result<WebhookInfo, CallError> {
        self.call(token, "getWebhookInfo", &serde_json::json!({}))
            .await
    }

    /// `deleteWebhook`: stop sending the bot's updates anywhere (pending
    /// ones are kept). Telegram answers `true` also when none was set.
    pub async fn delete_webhook(&self, token: &SecretString) -> Result<(), CallError> {
        self.call::<bool>(
            token,
            "deleteWebhook",
            &serde_json::json!({ "drop_pending_updates": false }),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shapes() {
        assert!(token_shape_ok(
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
        ));
        for bad in [
            "",
            "123456789",
            ":AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
            "12a:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",
            "123:short",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1/../getMe",
            "123:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1?x=1",
        ] {
            assert!(!token_shape_ok(bad), "{bad}");
        }
    }
}
