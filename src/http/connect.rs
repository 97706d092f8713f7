//! The connect page, `GET /connect/{token}`: where a person scans a
//! WhatsApp channel's QR code. Served by the binary (no CDN: works
//! offline), opened by the link `POST /v1/channels/{id}/connect` returns;
//! the token opens this connection's page only, for
//! [`whatsapp::PAGE_TTL_MINUTES`], and a new connect call replaces it.
//!
//! - `GET /connect/{token}/events`: server-sent events `status` (the
//!   channel's status and account, at once and on every change) and `qr`
//!   (the current code as a `data:` URL, at once and whenever it rotates).
//!   A stream lasts at most [`STREAM_SECS`]; the browser's `EventSource`
//!   reconnects by itself (after `retry` ms), so no proxy holds it for long.
//! - `GET /connect/{token}/status` and `GET /connect/{token}/qr`: the same
//!   for the page's fallback, polling once a second when server-sent events
//!   do not get through.
//!
//! These are pages and their own calls, not API operations: they are not in
//! the OpenAPI document. An unknown or expired token is a 404 page.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use entity::channel_connection as connection;
use entity::enums::ChannelStatus;

use crate::domain::channels::whatsapp;
use crate::error::{Error, Result};
use crate::state::AppState;

/// Longest life of one event stream, seconds.
pub const STREAM_SECS: u64 = 10;
/// How often a stream looks at the status (and every third time at the code).
const TICK: Duration = Duration::from_millis(500);

const PAGE: &str = include_str!("connect/page.html");
const SCRIPT: &str = include_str!("connect/connect.js");
const STYLE: &str = include_str!("connect/connect.css");

/// The routes of the connect page.
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/connect/assets/connect.js", get(script))
        .route("/connect/assets/connect.css", get(style))
        .route("/connect/{token}", get(page))
        .route("/connect/{token}/status", get(status))
        .route("/connect/{token}/qr", get(qr))
        .route("/connect/{token}/events", get(events))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn expired_page() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, "no-store")],
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Link expired · Switchboard</title>\
             <link rel=\"stylesheet\" href=\"/connect/assets/connect.css\"></head><body><main><h1>This link has expired</h1>\
             <p>Connect links work for a few minutes. Start connecting the channel again from your dashboard for a new one.</p>\
             </main></body></html>",
        ),
    )
        .into_response()
}

async fn connection_of(state: &AppState, token: &str) -> Result<connection::Model> {
    whatsapp::by_page_token(&state.db, token)
        .await?
        .ok_or_else(Error::not_found)
}

async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    if whatsapp::by_page_token(&state.db, &token).await?.is_none() {
        return Ok(expired_page());
    }
    Ok(([(header::CACHE_CONTROL, "no-store")], Html(PAGE)).into_response())
}

async fn status(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    let conn = connection_of(&state, &token).await?;
    let s = whatsapp::page_status(&state.db, &conn).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(s)).into_response())
}

async fn qr(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    let conn = connection_of(&state, &token).await?;
    match whatsapp::page_qr(state.whatsapp(), &conn).await? {
        Some(qr) => Ok((
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            qr.data,
        )
            .into_response()),
        None => Err(Error::conflict(
            "qr_not_available",
            "There is no QR code to scan: the session is not waiting for one.",
        )),
    }
}

/// What one stream has sent so far.
struct Sent {
    status: Option<String>,
    qr: Option<String>,
    ticks: u64,
}

async fn events(State(state): State<AppState>, Path(token): Path<String>) -> Result<Response> {
    connection_of(&state, &token).await?;
    let last_tick = STREAM_SECS * 1000 / TICK.as_millis() as u64;
    let sent = Sent {
        status: None,
        qr: None,
        ticks: 0,
    };
    let stream = futures_util::stream::unfold(
        (state, token, sent),
        move |(state, token, mut sent)| async move {
            loop {
                if sent.ticks > last_tick {
                    return None;
                }
                if sent.ticks > 0 {
                    tokio::time::sleep(TICK).await;
                }
                sent.ticks += 1;
                // The link may have been replaced, expired or its
                // connection removed: then the stream ends.
                let conn = whatsapp::by_page_token(&state.db, &token).await.ok()??;
                let s = whatsapp::page_status(&state.db, &conn).await.ok()?;
                let json = serde_json::to_string(&s).unwrap_or_default();
                if sent.status.as_deref() != Some(json.as_str()) {
                    sent.status = Some(json.clone());
                    if s.status != ChannelStatus::Connecting {
                        // Say it, then end: there is nothing more to show.
                        sent.ticks = last_tick + 1;
                    }
                    let event = Event::default()
                        .event("status")
                        .retry(Duration::from_millis(500))
                        .data(json);
                    return Some((Ok::<_, Infallible>(event), (state, token, sent)));
                }
                if s.status == ChannelStatus::Connecting
                    && (sent.ticks - 1) % 3 == 0
                    && let Ok(Some(qr)) = whatsapp::page_qr(state.whatsapp(), &conn).await
                {
                    let url = format!(
                        "data:{};base64,{}",
                        qr.mimetype,
                        base64::engine::general_purpose::STANDARD.encode(&qr.data)
                    );
                    if sent.qr.as_deref() != Some(url.as_str()) {
                        sent.qr = Some(url.clone());
                        let event = Event::default().event("qr").data(url);
                        return Some((Ok(event), (state, token, sent)));
                    }
                }
            }
        },
    );
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5))),
    )
        .into_response())
}
