//! `/v1/events`: the business's event log, as pages and as a live stream
//! of server-sent events (SSE). Owners, and API keys with `events:read`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{AnyAuth, Json, Query};
use crate::authz::{Action, Object};
use crate::domain::events::{self, EventType, EventView};
use crate::domain::pagination::page_limit;
use crate::domain::tenancy::access;
use crate::error::{Error, Problem, Result};
use crate::state::AppState;

/// Query of `GET /v1/events`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// Only events numbered after this one (an event's `seq`; default 0:
    /// from the first).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Only this type, e.g. `channel.status_changed`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<EventType>,
    /// Items per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// The events, in order.
    pub items: Vec<EventView>,
    /// Pass as `after` for the next page; `null` when this page is the
    /// last one so far (poll again with the last `seq` for newer ones).
    pub next_after: Option<i64>,
}

/// One server-sent event of the stream, as an SSE parser hands it over.
#[derive(ToSchema)]
#[schema(as = StreamedEvent)]
pub struct StreamedEvent {
    /// The event's `seq` (send it back as `Last-Event-ID` to resume).
    #[schema(pattern = r"^[0-9]+$")]
    pub id: String,
    /// The event's `type`.
    pub event: String,
    /// The event, as JSON (an [`EventView`]).
    #[schema(content_media_type = "application/json")]
    pub data: String,
}

/// Query of `GET /v1/events/stream`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this event number (like `Last-Event-ID`, for clients
    /// that cannot set headers); default: only new events.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

fn parse_after(value: Option<i64>, field: &str) -> Result<Option<i64>> {
    match value {
        Some(v) if v < 0 => Err(Error::invalid_field(field, "must be 0 or more")),
        v => Ok(v),
    }
}

/// The business's events in order (polling). A new event appears here as
/// soon as its change commits.
///
/// API keys: `events:read`.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])), params(ListEvents),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    Query(q): Query<ListEvents>,
) -> Result<Json<EventPage>> {
    let scope = access::own_scope(&state.authz, principal, Object::Event, Action::List)?;
    let limit = page_limit(q.limit, 20)?;
    let after = parse_after(q.after, "after")?.unwrap_or(0);
    let items = events::list(
        &state.db,
        &scope,
        after,
        limit,
        q.event_type.map(EventType::as_str),
    )
    .await?;
    let next_after = (items.len() as u64 == limit)
        .then(|| items.last().map(|e| e.seq))
        .flatten();
    Ok(Json(EventPage { items, next_after }))
}

/// The business's events live, as server-sent events: each event is
/// `id: <seq>`, `event: <type>`, `data: <the event as JSON>`. Reconnect
/// with `Last-Event-ID` (or `?after=`) to resume exactly after the last
/// event received; without either, only new events are sent. Idle streams
/// get a keep-alive comment every 15 s.
///
/// API keys: `events:read`.
#[utoipa::path(get, path = "/v1/events/stream", tag = "events", security(("bearer" = [])), params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event number", minimum = 0)),
    responses(
        (status = 200, description = "A stream of server-sent events: `id` is the event's `seq`, `event` its `type`, `data` the event as JSON", content_type = "text/event-stream", body = StreamedEvent),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream_events(
    State(state): State<AppState>,
    AnyAuth(principal): AnyAuth,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response> {
    let scope = access::own_scope(&state.authz, principal, Object::Event, Action::List)?;
    let header = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| Error::invalid_field("Last-Event-ID", "an event number"))?,
        ),
    };
    let query = parse_after(q.after, "after")?;
    let after = parse_after(header, "Last-Event-ID")?.or(query);
    let subscription = state.hub.subscribe(scope.id(), after).await?;
    let stream = futures_util::stream::unfold(subscription, |mut sub| async move {
        let event = sub.next().await?;
        let sse = Event::default()
            .id(event.seq.to_string())
            .event(event.event_type.clone())
            .data(event.json.clone());
        Some((Ok::<_, Infallible>(sse), sub))
    });
    let keep_alive = Duration::from_secs(state.config.events.keep_alive_secs.unwrap_or(15));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(keep_alive))
        .into_response())
}
