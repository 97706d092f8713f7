//! `/v1/channels`: channels of the caller's business, under the plan limit;
//! connecting WhatsApp channels through WAHA (connect, QR, disconnect) and
//! WAHA's webhook, `POST /v1/webhooks/waha/{session}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entity::enums::{ChannelStatus, Platform};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::billing::WebhookReceipt;
use super::extract::{AnyAuth, Json, OptionalJson, Path, Query};
use crate::authz::{Action, Object};
use crate::domain::audit::{Actor, RequestMeta};
use crate::domain::channels::{self, ChannelFilter, ChannelView, NewChannel, telegram, whatsapp};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access;
use crate::error::{Problem, Result};
use crate::state::AppState;

/// Body of `POST /v1/channels`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannel {
    /// Company of the caller's business.
    pub company_id: Uuid,
    /// `whatsapp`, `telegram`, `instagram`, `facebook`, `email` or `tiktok`.
    pub platform: Platform,
    /// Display name, ≤ 200 characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub account_name: Option<String>,
    /// Non-secret configuration, a JSON object ≤ 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A PNG image: the bytes themselves (`image/png`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Png(pub Vec<u8>);

/// Query of `GET /v1/channels`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListChannels {
    /// Only this company's channels.
    pub company_id: Option<Uuid>,
    /// Only this platform.
    pub platform: Option<Platform>,
    /// Only this status.
    pub status: Option<ChannelStatus>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^[A-Za-z0-9_-]{21}[AQgw]$")]
    pub cursor: Option<String>,
}

impl ListChannels {
    /// The filter part.
    pub fn filter(&self) -> ChannelFilter {
        ChannelFilter {
            company_id: self.company_id,
            platform: self.platform,
            status: self.status,
        }
    }
}

/// Add a channel. Counts against the plan: at the limit it answers 402
/// `plan_limit_reached` with `{plan, limit, used}`; after a trial without a
/// subscription, 402 `subscription_required`.
///
/// API keys: `channels:write`.
#[utoipa::path(post, path = "/v1/channels", tag = "channels", security(("bearer" = [])), request_body = CreateChannel,
    responses(
        (status = 201, body = ChannelView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`plan_limit_reached` or `subscription_required`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The company is not the business's", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Json(body): Json<CreateChannel>,
) -> Result<(StatusCode, Json<ChannelView>)> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Create)?;
    let channel = channels::create(&state.db, &state.plans, &scope, body.into(), None).await?;
    Ok((StatusCode::CREATED, Json(channel)))
}

/// List the business's channels, filtered by company, platform or status.
///
/// API keys: `channels:read`.
#[utoipa::path(get, path = "/v1/channels", tag = "channels", security(("bearer" = [])), params(ListChannels),
    responses(
        (status = 200, body = Page<ChannelView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`company_id` is not the business's", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_channels(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<ListChannels>,
) -> Result<Json<Page<ChannelView>>> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::List)?;
    Ok(Json(
        channels::list(&state.read, &scope, q.filter(), page).await?,
    ))
}

/// One channel of the business.
///
/// API keys: `channels:read`.
#[utoipa::path(get, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 200, body = ChannelView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Json<ChannelView>> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Read)?;
    Ok(Json(channels::get(&state.read, &scope, id).await?))
}

/// Delete a channel, freeing its plan slot.
///
/// API keys: `channels:write`.
#[utoipa::path(delete, path = "/v1/channels/{id}", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<StatusCode> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Delete)?;
    channels::delete(&state.db, &state.rules(), &state.jobs, &scope, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /v1/channels/{id}/connect` (none for WhatsApp).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectChannel {
    /// Telegram: the bot's token from @BotFather (`{bot id}:{key}`). Kept
    /// in the vault; never shown again.
    #[schema(pattern = r"^[0-9]{1,20}:[A-Za-z0-9_-]{30,100}$", max_length = 121)]
    pub bot_token: Option<String>,
}

/// Connect a channel.
///
/// - **WhatsApp** (no body): Switchboard creates the channel's WAHA
///   session (in the background, retried until WAHA answers) and the
///   channel becomes `connecting`; scan the code from
///   `GET /v1/channels/{id}/qr`, or open the answer's `connect_page.url` (a
///   page that shows the code as it rotates and the status live).
/// - **Telegram** (`bot_token`): Telegram's `getMe` checks the token
///   (refused: 422 `telegram_token_invalid`, nothing kept); the channel is
///   `connecting` with the bot as its account while n8n is provisioned in
///   the background (a credential, the business's copy of the Telegram
///   ingress workflow, activated: n8n sets the bot's webhook), then
///   `connected`.
///
/// Status changes arrive as `channel.status_changed` events. Connecting a
/// channel that is already connecting or connected returns it unchanged
/// (never a second session or workflow).
///
/// API keys: `channels:write`.
#[utoipa::path(post, path = "/v1/channels/{id}/connect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    request_body(content = Option<ConnectChannel>, description = "Telegram: the bot token; WhatsApp: no body", content_type = "application/json"),
    responses(
        (status = 202, description = "Connecting (or already connecting or connected); WhatsApp: with the connect page's link", body = whatsapp::Connection),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`subscription_required` (restricted business) or `channel_suspended`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`bot_already_connected` (the bot serves another channel) or `channel_already_connected` (to another bot)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`platform_not_connectable` (Instagram, Facebook, email and TikTok connect elsewhere), `telegram_token_invalid`, or `invalid_field` (`bot_token`)", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`telegram_unreachable`, `telegram_error` or `telegram_rate_limited`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`whatsapp_unavailable` (no WAHA) or `automation_unavailable` (no n8n)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn connect_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ConnectChannel>,
) -> Result<(StatusCode, Json<whatsapp::Connection>)> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Update)?;
    let actor = Actor::acting(principal, &scope, meta);
    let c = channels::find(&state.db, &scope, id).await?;
    let token = body.and_then(|b| b.bot_token);
    let connection = match c.platform {
        Platform::Whatsapp => {
            if token.is_some() {
                return Err(crate::error::Error::invalid_field(
                    "bot_token",
                    "is for Telegram channels; a WhatsApp channel connects by a scan",
                ));
            }
            whatsapp::connect(state.whatsapp(), &actor, &scope, id).await?
        }
        Platform::Telegram => {
            let Some(token) = token else {
                return Err(crate::error::Error::invalid_field(
                    "bot_token",
                    "is required to connect a Telegram channel",
                ));
            };
            let channel = telegram::connect(
                state.telegram(),
                &actor,
                &scope,
                c,
                secrecy::SecretString::from(token),
            )
            .await?;
            whatsapp::Connection {
                channel,
                connect_page: None,
            }
        }
        _ => return Err(channels::not_connectable(&c)),
    };
    Ok((StatusCode::ACCEPTED, Json(connection)))
}

/// Start a channel's connection over. WhatsApp: its session is logged out
/// of WhatsApp (WAHA restarts it to wait for a new scan; fetch the new code
/// from `GET /v1/channels/{id}/qr`). Telegram: n8n is provisioned again
/// (what exists is kept, what is missing made, the workflow activated).
/// The channel is `connecting`. For a channel in `error`, or linked to the
/// wrong phone.
///
/// API keys: `channels:write`.
#[utoipa::path(post, path = "/v1/channels/{id}/reconnect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 202, description = "Connecting again; WhatsApp: with the connect page's link", body = whatsapp::Connection),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 402, description = "`subscription_required` (restricted business) or `channel_suspended`", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`not_connected`: a Telegram channel without a bot", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`platform_not_connectable`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`whatsapp_unavailable` (no WAHA) or `automation_unavailable` (no n8n)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reconnect_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    meta: RequestMeta,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<whatsapp::Connection>)> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Update)?;
    let actor = Actor::acting(principal, &scope, meta);
    let c = channels::find(&state.db, &scope, id).await?;
    let connection = match c.platform {
        Platform::Whatsapp => whatsapp::reconnect(state.whatsapp(), &actor, &scope, id).await?,
        Platform::Telegram => whatsapp::Connection {
            channel: telegram::reconnect(state.telegram(), &scope, c).await?,
            connect_page: None,
        },
        _ => return Err(channels::not_connectable(&c)),
    };
    Ok((StatusCode::ACCEPTED, Json(connection)))
}

/// Disconnect a channel: it is `disconnected` at once. WhatsApp: its WAHA
/// session is logged out and deleted. Telegram: its workflow is
/// deactivated and deleted in n8n, its credential deleted, the bot's
/// webhook removed and its token destroyed. Both in the background,
/// retried until done. Safe to repeat.
///
/// API keys: `channels:write`.
#[utoipa::path(post, path = "/v1/channels/{id}/disconnect", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 200, body = ChannelView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`platform_not_connectable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disconnect_channel(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Json<ChannelView>> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Update)?;
    let c = channels::find(&state.db, &scope, id).await?;
    Ok(Json(match c.platform {
        Platform::Whatsapp => whatsapp::disconnect(state.whatsapp(), &scope, id).await?,
        Platform::Telegram => telegram::disconnect(state.telegram(), &scope, id).await?,
        _ => return Err(channels::not_connectable(&c)),
    }))
}

/// The QR code to scan with WhatsApp (Linked devices) while the channel's
/// session waits for one, as a PNG. Codes rotate about every 20 s: fetch
/// it again rather than caching it. 409 `qr_not_available` with
/// `session_status` otherwise (e.g. `WORKING` once scanned).
///
/// API keys: `channels:write`.
#[utoipa::path(get, path = "/v1/channels/{id}/qr", tag = "channels", security(("bearer" = [])), params(("id" = Uuid, Path, description = "Channel id")),
    responses(
        (status = 200, description = "The current QR code", content_type = "image/png", body = Png),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`qr_not_available`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`platform_not_connectable`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`whatsapp_unreachable` or `whatsapp_error`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`whatsapp_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn channel_qr(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let scope = access::own_scope(&state.authz, principal, Object::Channel, Action::Update)?;
    let qr = whatsapp::qr(state.whatsapp(), &scope, id).await?;
    let mimetype = if qr.mimetype == "image/png" {
        "image/png"
    } else {
        "application/octet-stream"
    };
    Ok((
        [
            (header::CONTENT_TYPE, mimetype),
            (header::CACHE_CONTROL, "no-store"),
        ],
        qr.data,
    )
        .into_response())
}

/// WAHA event delivery for one session (WAHA calls the URL Switchboard
/// gave the session). Verified by `X-Webhook-Hmac` (hex HMAC-SHA512 of
/// the raw body under the session's key) before anything is parsed;
/// processed exactly once in any order. A session that is not ours is
/// answered 200 `ignored`.
#[utoipa::path(post, path = "/v1/webhooks/waha/{session}", tag = "channels",
    params(
        ("session" = String, Path, description = "The session's name", pattern = r"^sb_[0-9a-f]{32}$"),
        ("X-Webhook-Hmac" = Option<String>, Header, description = "Hex HMAC-SHA512 of the raw body under the session's key (WAHA docs: webhooks)"),
        ("X-Webhook-Hmac-Algorithm" = Option<String>, Header, description = "`sha512`"),
    ),
    request_body(content = Object, description = "A WAHA event envelope `{id, timestamp, event, session, me, payload}`", content_type = "application/json"),
    responses(
        (status = 200, body = WebhookReceipt),
        (status = 400, description = "`invalid_event`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_signature`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not a session name Switchboard gives", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "`webhook_processing_failed`: recorded; WAHA retries", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`whatsapp_unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn waha_webhook(
    State(state): State<AppState>,
    axum::extract::Path(session): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WebhookReceipt>> {
    let outcome = crate::inbound::waha::receive(&state, &session, &headers, &body).await?;
    Ok(Json(outcome.into()))
}

impl From<CreateChannel> for NewChannel {
    fn from(body: CreateChannel) -> NewChannel {
        NewChannel {
            company_id: body.company_id,
            platform: body.platform,
            account_name: body.account_name,
            config: body.config,
        }
    }
}
