//! The WAHA source: `POST /v1/webhooks/waha/{session}`, one URL per
//! session so the session's key is known before the body is read.
//!
//! - **Verify**: `X-Webhook-Hmac` must be the hex HMAC-SHA512 of the raw
//!   body under the session's key (`X-Webhook-Hmac-Algorithm: sha512`;
//!   WAHA docs: webhooks, "HMAC authentication"); otherwise 401 and
//!   nothing is recorded. A session that is not (or no longer) one of ours
//!   is answered 200 `ignored` and recorded as such, so WAHA stops retrying.
//! - **Parse** the envelope `{id, timestamp, event, session, me, payload}`
//!   (malformed: 400).
//! - **Commit** through the source's writer with the ledger row (source
//!   `waha`, the envelope's `id`): a duplicate is a no-op. `session.status`
//!   moves the channel when newer than the last report applied
//!   ([`whatsapp::apply_status`]: WAHA's millisecond `timestamp`, then the
//!   event id), so any order of deliveries ends in the same state;
//!   `message` is recorded in the ledger (the conversation log is a later
//!   step) and, with n8n's shared WhatsApp workflow configured, queued for
//!   forwarding there ([`whatsapp::ForwardMessage`]) in the same
//!   transaction; other events are recorded as ignored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use chrono::{TimeZone, Utc};
use entity::channel_connection as connection;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::channels::whatsapp::{self, StatusReport};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::validate;
use crate::domain::vault::secrets;
use crate::error::{Error, Result};
use crate::inbound::writer::Writer;
use crate::inbound::{Outcome, ledger, verify};
use crate::integrations::System;
use crate::integrations::waha::Me;
use crate::memo::Memo;
use crate::state::AppState;

/// The source's name in the ledger.
pub const SOURCE: &str = "waha";

pub use crate::domain::channels::whatsapp::SESSION_PATTERN;

/// How long a session's connection and key are remembered between
/// deliveries. A key that no longer verifies is read again at once (a
/// reconnection made a new one), and the commit reads the connection
/// again before acting on a status, so staleness costs one read at most.
const KEY_TTL: Duration = Duration::from_secs(30);

/// A session's connection and webhook key, as last read.
pub struct SessionAuth {
    connection: connection::Model,
    key: SecretString,
    read_at: Instant,
}

/// The sessions' connections and keys, remembered for [`KEY_TTL`] so a
/// delivery costs no database read and no unsealing on the way in.
pub struct SessionKeys(Memo<String, Arc<SessionAuth>>);

impl Default for SessionKeys {
    fn default() -> SessionKeys {
        SessionKeys(Memo::new(16_384))
    }
}

/// A verified delivery, ready to commit.
pub struct Item {
    /// WAHA's event id.
    pub id: String,
    /// WAHA's event name (`session.status`, `message`, …).
    pub kind: String,
    /// WAHA's timestamp, milliseconds.
    pub at: i64,
    /// The connection it concerns, as read before verifying.
    pub connection: connection::Model,
    /// The status report of a `session.status`.
    pub status: Option<StatusReport>,
    /// The `payload` of a `message` (forwarded to n8n).
    pub message: Option<serde_json::Value>,
}

/// The WAHA source's writer.
pub type WahaWriter = Writer<Item, Outcome>;

#[derive(Deserialize)]
struct Envelope {
    id: String,
    timestamp: i64,
    event: String,
    session: String,
    #[serde(default)]
    me: Option<Me>,
    #[serde(default)]
    payload: serde_json::Value,
}

fn invalid_event(what: &str) -> Error {
    Error::new(StatusCode::BAD_REQUEST, "invalid_event", "Not a WAHA event")
        .with_detail(what.to_owned())
}

fn bad_signature() -> Error {
    Error::unauthorized(
        "invalid_signature",
        "X-Webhook-Hmac is not the HMAC-SHA512 of this body under the session's key.",
    )
}

fn parse(body: &[u8]) -> Result<Envelope> {
    let env: Envelope = serde_json::from_slice(body).map_err(|e| invalid_event(&format!("{e}")))?;
    if env.id.is_empty() || env.id.len() > 200 || env.event.len() > 100 {
        return Err(invalid_event(
            "an event needs an id (at most 200 characters)",
        ));
    }
    Ok(env)
}

/// Verifies and processes one delivery for `session` (`body` raw).
pub async fn receive(
    state: &AppState,
    session: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Outcome> {
    if state.waha.is_none() {
        return Err(whatsapp::unavailable());
    }
    if !validate::matches(SESSION_PATTERN, session) {
        return Err(Error::not_found());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-webhook-hmac-algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("sha512")) {
        return Err(bad_signature());
    }
    let signature = header("x-webhook-hmac");
    let verifies = |auth: &SessionAuth| {
        signature
            .is_some_and(|s| verify::hmac_sha512_hex(auth.key.expose_secret().as_bytes(), body, s))
    };
    let keys = &state.inbound.waha_keys.0;
    let remembered = keys
        .get(&session.to_owned())
        .filter(|a| a.read_at.elapsed() < KEY_TTL);
    let auth = match remembered {
        Some(a) if verifies(&a) => a,
        _ => {
            // Not remembered, stale, or not verifying with the remembered
            // key (the session was connected again): read it now.
            let Some(auth) = read_auth(state, session).await? else {
                keys.remove(&session.to_owned());
                return ignore_unknown(state, body).await;
            };
            keys.insert(session.to_owned(), Arc::clone(&auth), |a| {
                a.read_at.elapsed() < KEY_TTL
            });
            if !verifies(&auth) {
                return Err(bad_signature());
            }
            auth
        }
    };
    let conn = auth.connection.clone();
    let env = parse(body)?;
    if env.session != session {
        return Err(invalid_event("the envelope's session is not the URL's"));
    }
    let status = (env.event == "session.status")
        .then(|| {
            env.payload
                .get("status")
                .and_then(|s| s.as_str())
                .map(|s| StatusReport {
                    event_id: env.id.clone(),
                    at: env.timestamp,
                    status: s.to_owned(),
                    me: env.me.clone(),
                })
        })
        .flatten();
    if env.event == "session.status" && status.is_none() {
        return Err(invalid_event("a session.status payload has a status"));
    }
    let message = (env.event == "message").then_some(env.payload);
    let item = Item {
        id: env.id.clone(),
        kind: env.event.clone(),
        at: env.timestamp,
        connection: conn,
        status,
        message,
    };
    let ctx = state.clone();
    let verdict = state
        .inbound
        .waha
        .submit(item, move |items| {
            let ctx = ctx.clone();
            Box::pin(async move { commit(&ctx, items).await })
        })
        .await;
    match verdict {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let created = created_of(env.timestamp);
            if let Err(record) =
                ledger::record_failure(&state.db, SOURCE, &env.id, &env.event, created, &e).await
            {
                tracing::error!(error = %record, event = %env.id, "could not record a failed WAHA event");
            }
            tracing::warn!(event = %env.id, kind = %env.event, code = e.code(), "WAHA event processing failed");
            Err(Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "webhook_processing_failed",
                "The event could not be processed",
            )
            .with_detail("Recorded for retry; WAHA will deliver it again."))
        }
    }
}

/// The connection named `session` and its webhook key, or `None` when it
/// is not (or no longer) one of ours.
async fn read_auth(state: &AppState, session: &str) -> Result<Option<Arc<SessionAuth>>> {
    let Some(connection) = whatsapp::by_session(&state.db, session).await? else {
        return Ok(None);
    };
    let scope = BusinessScope::platform(connection.business_id);
    let key = secrets::open_for_platform(
        state.vault(),
        &scope,
        System::Waha,
        &whatsapp::key_name(connection.channel_id),
    )
    .await?;
    Ok(key.map(|key| {
        Arc::new(SessionAuth {
            connection,
            key,
            read_at: Instant::now(),
        })
    }))
}

fn created_of(ms: i64) -> chrono::DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

/// A delivery for a session that is not ours: nothing to verify it with,
/// so nothing of it is acted on; its id is recorded as `ignored`.
async fn ignore_unknown(state: &AppState, body: &[u8]) -> Result<Outcome> {
    let env = parse(body)?;
    let new = ledger::record_ignored(
        &state.db,
        SOURCE,
        &env.id,
        &env.event,
        created_of(env.timestamp),
    )
    .await?;
    Ok(if new {
        Outcome::Ignored
    } else {
        Outcome::Duplicate
    })
}

/// Commits a batch: skips what the ledger has done, applies each status
/// report to its connection as it is in the transaction, and writes the
/// ledger rows. `None` when another process claimed one of them meanwhile.
async fn commit(state: &AppState, items: &[&Item]) -> Result<Option<Vec<Outcome>>> {
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let done = ledger::done(&state.db, SOURCE, &ids).await?;
    let now = Utc::now();
    let txn = crate::db::begin_write(&state.db).await?;
    let mut verdicts = Vec::with_capacity(items.len());
    let mut rows = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let sessions: Vec<&str> = items
        .iter()
        .map(|i| i.connection.external_id.as_str())
        .collect();
    let live = connection::Entity::find()
        .filter(connection::Column::Provider.eq(whatsapp::PROVIDER))
        .filter(connection::Column::ExternalId.is_in(sessions))
        .all(&txn)
        .await?;
    let forward = whatsapp::forwarding(&state.whatsapp());
    let mut by_channel: std::collections::HashMap<uuid::Uuid, connection::Model> =
        std::collections::HashMap::new();
    for item in items {
        if done.contains(&item.id) || !seen.insert(item.id.as_str()) {
            verdicts.push(Outcome::Duplicate);
            continue;
        }
        // The connection as it is now: it may have been removed
        // (disconnected) since the delivery was verified.
        let current = live
            .iter()
            .find(|c| c.external_id == item.connection.external_id)
            .filter(|c| c.channel_id == item.connection.channel_id);
        let outcome = match (current, &item.status) {
            (None, _) => Outcome::Ignored,
            (Some(c), Some(report)) => {
                let c = match by_channel.get(&c.channel_id) {
                    Some(fresher) => fresher.clone(),
                    None => c.clone(),
                };
                if whatsapp::apply_status(&txn, &c, report).await? {
                    // A later item of this batch compares with this one.
                    let mut applied = c;
                    applied.remote_status = Some(report.status.clone());
                    applied.status_at = report.at;
                    applied.status_event = Some(report.event_id.clone());
                    by_channel.insert(applied.channel_id, applied);
                }
                Outcome::Processed
            }
            (Some(c), None) if item.kind == "message" => {
                if forward && let Some(payload) = &item.message {
                    state
                        .jobs
                        .enqueue(
                            &txn,
                            &whatsapp::ForwardMessage {
                                event_id: item.id.clone(),
                                timestamp: item.at,
                                session: c.external_id.clone(),
                                channel_id: c.channel_id,
                                business_id: c.business_id,
                                payload: payload.clone(),
                            },
                        )
                        .await?;
                }
                Outcome::Processed
            }
            (Some(_), None) => Outcome::Ignored,
        };
        verdicts.push(outcome);
        rows.push(ledger::row(
            SOURCE,
            &item.id,
            &item.kind,
            created_of(item.at),
            Some(item.connection.business_id),
            now,
        ));
    }
    let expected = rows.len() as u64;
    if expected > 0 {
        let claimed = ledger::claim(&txn, rows).await?;
        if claimed != expected {
            txn.rollback().await?;
            return Ok(None);
        }
    }
    txn.commit().await?;
    Ok(Some(verdicts))
}
