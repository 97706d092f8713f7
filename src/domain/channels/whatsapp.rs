//! WhatsApp channels through WAHA (SPEC §4, §5 "Channel connection"): one
//! WAHA session per channel, named after it, whose webhook calls back at
//! `/v1/webhooks/waha/{session}` signed with a key of its own (kept in the
//! vault as `waha` / `hmac.{channel id}`).
//!
//! - [`connect`]: records the connection (`channel_connections`), moves the
//!   channel to `connecting` and queues [`StartSession`], all in one
//!   transaction; the task creates (or, on a retry, updates) and starts the
//!   session at WAHA until it succeeds. Connecting a channel that is
//!   connecting or connected returns it as it is: never a second session.
//! - [`qr`]: the session's current QR code, read from WAHA on every call
//!   (codes rotate about every 20 s).
//! - [`apply_status`]: a verified `session.status` webhook moves the
//!   channel (`STARTING`/`SCAN_QR_CODE` → `connecting`, `WORKING` →
//!   `connected` with the account, `FAILED` → `error`, `STOPPED` →
//!   `disconnected`), only if the report is newer than the last one applied
//!   (WAHA's timestamp, then its event id), so any delivery order ends in
//!   the same state.
//! - [`disconnect`]: removes the connection and moves the channel to
//!   `disconnected` at once, and queues [`RemoveSession`], which logs the
//!   session out, deletes it at WAHA and destroys its key, until done.
//!   Safe to repeat.
//! - [`follow`]: when the plan or the subscription suspends a channel its
//!   session is stopped, and started again on restore ([`SyncSession`]).
//! - n8n (SPEC §4: one shared WhatsApp workflow, per-business credential
//!   and routing): starting a session makes sure the business has its n8n
//!   credential for replies (`httpHeaderAuth`, WAHA's `X-Api-Key`;
//!   recorded as `waha_reply`), and every verified `message` event is
//!   forwarded by [`ForwardMessage`] (a task, retried) to the shared
//!   workflow's Webhook node with the routing attached: business, company,
//!   channel, session and that credential's id.

use chrono::Utc;
use entity::channel;
use entity::channel_connection as connection;
use entity::enums::{ChannelStatus, Platform};
use rand::RngCore;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ChannelView;
use crate::domain::audit::Actor;
use crate::domain::automation;
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::vault::secrets::{self, Vault};
use crate::error::{Error, Result};
use crate::integrations::System;
use crate::integrations::waha::{self, QrAnswer, WahaApi};
use crate::jobs::queue::{Queue, Task, kind as job_kind};

/// `provider` of a WAHA connection.
pub const PROVIDER: &str = "waha";

/// What WhatsApp channels need: the database, the vault's keys, the job
/// queue, WAHA (absent when not configured) and where WAHA calls back.
#[derive(Clone, Copy)]
pub struct WhatsApp<'a> {
    /// The database.
    pub db: &'a sea_orm::DatabaseConnection,
    /// Seals and opens the sessions' webhook keys.
    pub keyring: &'a crate::crypto::Keyring,
    /// Where the session tasks are queued.
    pub jobs: &'a Queue,
    /// The WAHA client, when configured.
    pub waha: Option<&'a WahaApi>,
    /// `public_url` without its trailing slash.
    pub public_base: &'a str,
    /// n8n, when configured.
    pub n8n: Option<&'a crate::integrations::n8n::N8nApi>,
    /// n8n's configuration (the shared workflow's id), when configured.
    pub n8n_config: Option<&'a crate::config::N8nConfig>,
}

impl WhatsApp<'_> {
    fn vault(&self) -> Vault<'_> {
        Vault {
            db: self.db,
            keyring: self.keyring,
        }
    }

    fn waha(&self) -> Result<&WahaApi> {
        self.waha.ok_or_else(unavailable)
    }

    /// Where WAHA posts session `session`'s events.
    pub fn webhook_url(&self, session: &str) -> String {
        format!("{}/v1/webhooks/waha/{session}", self.public_base)
    }
}

/// How long a connect page's link opens the page.
pub const PAGE_TTL_MINUTES: i64 = 15;

/// A connection being made: the channel, and the page where a person
/// scans the code.
#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    /// The channel (`connecting`, or as it was if already connected).
    pub channel: ChannelView,
    /// The connect page for this attempt (WhatsApp); `null` for channels
    /// that connect without a scan (Telegram).
    pub connect_page: Option<ConnectPage>,
}

/// A connect page link: bound to this channel's connection, opening
/// nothing else, short-lived; each connect call issues a new one (the
/// previous one stops working).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectPage {
    /// `{public_url}/connect/{token}`: open it on a computer and scan the
    /// code it shows with WhatsApp on the phone (Linked devices).
    pub url: String,
    /// When the link stops working (RFC 3339).
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub expires_at: chrono::DateTime<Utc>,
}

/// Issues a new page token for channel `id`'s connection in `txn`.
async fn issue_page<C: ConnectionTrait>(
    w: &WhatsApp<'_>,
    txn: &C,
    id: Uuid,
) -> Result<ConnectPage> {
    let token = crate::auth::tokens::opaque_token();
    let expires_at = Utc::now() + chrono::Duration::minutes(PAGE_TTL_MINUTES);
    connection::Entity::update_many()
        .col_expr(
            connection::Column::PageTokenHash,
            sea_orm::sea_query::Expr::value(crate::auth::tokens::sha256_hex(&token)),
        )
        .col_expr(
            connection::Column::PageTokenExpiresAt,
            sea_orm::sea_query::Expr::value(expires_at),
        )
        .filter(connection::Column::ChannelId.eq(id))
        .exec(txn)
        .await?;
    Ok(ConnectPage {
        url: format!("{}/connect/{token}", w.public_base),
        expires_at,
    })
}

/// The connection whose connect page `token` opens, while the link lasts.
pub async fn by_page_token<C: ConnectionTrait>(
    db: &C,
    token: &str,
) -> Result<Option<connection::Model>> {
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let hash = crate::auth::tokens::sha256_hex(token);
    Ok(connection::Entity::find()
        .filter(connection::Column::PageTokenHash.eq(hash))
        .one(db)
        .await?
        .filter(|c| c.page_token_expires_at.is_some_and(|t| t > Utc::now())))
}

/// What the connect page shows: the channel's status and account.
#[derive(Debug, Serialize)]
pub struct PageStatus {
    /// `connecting`, `connected`, `error`, …
    pub status: ChannelStatus,
    /// The phone's WhatsApp id once connected.
    pub account_id: Option<String>,
    /// Its profile name.
    pub account_name: Option<String>,
}

/// The status behind connection `conn`'s page.
pub async fn page_status<C: ConnectionTrait>(
    db: &C,
    conn: &connection::Model,
) -> Result<PageStatus> {
    let c = channel::Entity::find_by_id(conn.channel_id)
        .filter(channel::Column::BusinessId.eq(conn.business_id))
        .one(db)
        .await?
        .ok_or_else(Error::not_found)?;
    Ok(PageStatus {
        status: c.status,
        account_id: c.account_id,
        account_name: c.account_name,
    })
}

/// The current QR code of connection `conn`'s session, if it waits for a
/// scan.
pub async fn page_qr(w: WhatsApp<'_>, conn: &connection::Model) -> Result<Option<waha::Qr>> {
    match w.waha()?.qr(&conn.external_id).await? {
        QrAnswer::Code(qr) => Ok(Some(qr)),
        QrAnswer::NotAvailable(_) => Ok(None),
    }
}

/// 503 `whatsapp_unavailable`: WAHA is not configured.
pub fn unavailable() -> Error {
    Error::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "whatsapp_unavailable",
        "WhatsApp is not available",
    )
    .with_detail("This server has no WhatsApp gateway: set waha.base_url and waha.api_key (SWITCHBOARD_WAHA__BASE_URL, SWITCHBOARD_WAHA__API_KEY).")
}

/// The WAHA session name of channel `id`: `sb_` and its 32 hex digits
/// (WAHA names are `[a-zA-Z0-9_-]`).
pub fn session_name(id: Uuid) -> String {
    format!("sb_{}", id.simple())
}

/// The session names [`session_name`] gives: any other name is no session
/// of ours.
pub const SESSION_PATTERN: &str = r"^sb_[0-9a-f]{32}$";

/// The vault name of a session's webhook key.
pub fn key_name(channel_id: Uuid) -> String {
    format!("hmac.{channel_id}")
}

/// Create (or update) and start the session of channel `channel_id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StartSession {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for StartSession {
    const KIND: &'static str = job_kind::WAHA_SESSION_START;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.channel_id))
    }
}

/// Log session of channel `channel_id` out of WhatsApp and have it wait
/// for a new scan (a reconnection).
#[derive(Debug, Serialize, Deserialize)]
pub struct RestartSession {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for RestartSession {
    const KIND: &'static str = job_kind::WAHA_SESSION_RESTART;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.channel_id))
    }
}

/// The [`RestartSession`] task: logs the session out (WAHA clears its
/// WhatsApp login and restarts it, so it waits for a new scan), then makes
/// sure it exists and runs, as [`StartSession`] does. Safe to repeat.
pub async fn restart_session(w: WhatsApp<'_>, task: &RestartSession) -> Result<()> {
    let waha = w.waha()?;
    let Some(conn) = connection_of(w.db, task.channel_id).await? else {
        return Ok(());
    };
    waha.logout(&conn.external_id).await?;
    start_session(
        w,
        &StartSession {
            channel_id: task.channel_id,
            business_id: task.business_id,
        },
    )
    .await
}

/// Log out and delete session `session` at WAHA, then destroy its key.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemoveSession {
    /// The WAHA session.
    pub session: String,
    /// The channel it was for.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for RemoveSession {
    const KIND: &'static str = job_kind::WAHA_SESSION_REMOVE;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.session))
    }
}

async fn whatsapp_channel<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<channel::Model> {
    let c = super::find(db, scope, id).await?;
    if c.platform != Platform::Whatsapp {
        return Err(super::not_connectable(&c));
    }
    Ok(c)
}

use super::connection_of;

/// Starts connecting WhatsApp channel `id` (202 with the channel).
/// 503 `whatsapp_unavailable` without WAHA; 404 for another business's
/// channel; 422 `platform_not_connectable` for other platforms; 402
/// `subscription_required` for a restricted business and
/// `channel_suspended` for a suspended channel.
pub async fn connect(
    w: WhatsApp<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<Connection> {
    begin(w, actor, scope, id, false).await
}

/// Starts channel `id`'s connection over (202 with the channel): its
/// session is logged out of WhatsApp (WAHA then restarts it, waiting for a
/// new scan) and the channel is `connecting` again; without a session this
/// is [`connect`]. The refusals are [`connect`]'s.
pub async fn reconnect(
    w: WhatsApp<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<Connection> {
    begin(w, actor, scope, id, true).await
}

async fn begin(
    w: WhatsApp<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
    over: bool,
) -> Result<Connection> {
    let c = whatsapp_channel(w.db, scope, id).await?;
    w.waha()?;
    super::ensure_connectable(w.db, scope, &c).await?;
    let existing = connection_of(w.db, id).await?;
    let restart = over && existing.is_some();
    if existing.is_some()
        && !restart
        && matches!(
            c.status,
            ChannelStatus::Connecting | ChannelStatus::Connected
        )
    {
        let txn = crate::db::begin_write(w.db).await?;
        let page = issue_page(&w, &txn, id).await?;
        txn.commit().await?;
        return Ok(Connection {
            channel: c.into(),
            connect_page: Some(page),
        });
    }
    if existing.is_none() {
        // The session's webhook key: new for a new connection (a retry of
        // a half-made one keeps the stored key).
        let name = key_name(id);
        if secrets::open_for_platform(w.vault(), scope, System::Waha, &name)
            .await?
            .is_none()
        {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            secrets::put(
                w.vault(),
                actor,
                scope,
                System::Waha,
                &name,
                SecretString::from(hex::encode(key)),
                secrets::SecretMetadata::default(),
            )
            .await?;
        }
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(w.db).await?;
    let c = super::find(&txn, scope, id).await?;
    if connection_of(&txn, id).await?.is_none() {
        let row = connection::ActiveModel {
            channel_id: Set(id),
            business_id: Set(scope.id()),
            provider: Set(PROVIDER.to_owned()),
            external_id: Set(session_name(id)),
            remote_status: Set(None),
            status_at: Set(0),
            status_event: Set(None),
            page_token_hash: Set(None),
            page_token_expires_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        row.insert(&txn).await?;
    }
    let from = c.status;
    let mut active: channel::ActiveModel = c.into();
    active.status = Set(ChannelStatus::Connecting);
    active.last_error = Set(None);
    if restart {
        active.account_id = Set(None);
    }
    active.updated_at = Set(now);
    let c = active.update(&txn).await?;
    super::status_changed(&txn, &c, from, restart.then_some("reconnect")).await?;
    let page = issue_page(&w, &txn, id).await?;
    let (channel_id, business_id) = (id, scope.id());
    if restart {
        w.jobs
            .enqueue(
                &txn,
                &RestartSession {
                    channel_id,
                    business_id,
                },
            )
            .await?;
    } else {
        w.jobs
            .enqueue(
                &txn,
                &StartSession {
                    channel_id,
                    business_id,
                },
            )
            .await?;
    }
    txn.commit().await?;
    Ok(Connection {
        channel: c.into(),
        connect_page: Some(page),
    })
}

/// The [`StartSession`] task: makes the session exist at WAHA with its
/// webhook and run. Done when the connection is gone (disconnected
/// meanwhile). Errors are transient: the runner retries.
pub async fn start_session(w: WhatsApp<'_>, task: &StartSession) -> Result<()> {
    let waha = w.waha()?;
    let Some(conn) = connection_of(w.db, task.channel_id).await? else {
        return Ok(());
    };
    let scope = BusinessScope::platform(task.business_id);
    let key =
        secrets::open_for_platform(w.vault(), &scope, System::Waha, &key_name(task.channel_id))
            .await?
            .ok_or_else(|| Error::internal("the session's webhook key is missing"))?;
    let config = waha::webhook_config(&w.webhook_url(&conn.external_id), &key);
    waha.ensure_session(&conn.external_id, &config).await?;
    if let Some(n8n) = w.n8n {
        reply_credential(w, n8n, task.business_id).await?;
    }
    Ok(())
}

/// The business's n8n credential for answering over WhatsApp (made once:
/// `httpHeaderAuth` with WAHA's `X-Api-Key`, named after the business).
async fn reply_credential(
    w: WhatsApp<'_>,
    n8n: &crate::integrations::n8n::N8nApi,
    business_id: Uuid,
) -> Result<entity::n8n_object::Model> {
    let waha = w.waha()?;
    let name = format!("Switchboard WhatsApp replies (business {business_id})");
    automation::credential(
        w.db,
        business_id,
        None,
        automation::purpose::WAHA_REPLY,
        || {
            n8n.create_credential(
                &name,
                "httpHeaderAuth",
                json!({ "name": "X-Api-Key", "value": waha.api_key().expose_secret() }),
            )
        },
    )
    .await
}

/// Forward one verified WhatsApp `message` event to the shared n8n
/// workflow, with the business's routing.
#[derive(Debug, Serialize, Deserialize)]
pub struct ForwardMessage {
    /// WAHA's event id.
    pub event_id: String,
    /// WAHA's timestamp, milliseconds.
    pub timestamp: i64,
    /// The session it came through.
    pub session: String,
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
    /// WAHA's `payload` (the message).
    pub payload: serde_json::Value,
}

impl Task for ForwardMessage {
    const KIND: &'static str = job_kind::WHATSAPP_FORWARD;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.event_id))
    }
}

/// Whether verified messages are forwarded to n8n (n8n and the shared
/// workflow configured).
pub fn forwarding(w: &WhatsApp<'_>) -> bool {
    w.n8n.is_some()
        && w.n8n_config
            .is_some_and(|c| c.whatsapp_workflow_id.is_some())
}

/// The [`ForwardMessage`] task: posts `{event, id, timestamp, session,
/// payload, switchboard: {business_id, company_id, channel_id, session,
/// credential_id}}` to the shared workflow's first Webhook node
/// (`{webhook base}/webhook/{path}`, the path read from the workflow). A
/// channel disconnected or deleted meanwhile has no routing any more: the
/// message stays in the ledger only.
pub async fn forward_message(w: WhatsApp<'_>, task: &ForwardMessage) -> Result<()> {
    let (Some(n8n), Some(workflow_id)) = (
        w.n8n,
        w.n8n_config.and_then(|c| c.whatsapp_workflow_id.as_deref()),
    ) else {
        return Ok(());
    };
    let Some(conn) = connection_of(w.db, task.channel_id).await? else {
        return Ok(());
    };
    if conn.external_id != task.session {
        return Ok(());
    }
    let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .filter(channel::Column::BusinessId.eq(task.business_id))
        .one(w.db)
        .await?
    else {
        return Ok(());
    };
    let credential = reply_credential(w, n8n, task.business_id).await?;
    let Some(workflow) = n8n.workflow(workflow_id).await? else {
        return Err(Error::internal(format!(
            "n8n has no workflow {workflow_id} (n8n.whatsapp_workflow_id)"
        )));
    };
    let Some(path) = crate::integrations::n8n::webhook_path(&workflow) else {
        return Err(Error::internal(format!(
            "n8n workflow {workflow_id} (n8n.whatsapp_workflow_id) has no Webhook node"
        )));
    };
    n8n.call_webhook(
        &path,
        &json!({
            "event": "message",
            "id": task.event_id,
            "timestamp": task.timestamp,
            "session": task.session,
            "payload": task.payload,
            "switchboard": {
                "business_id": task.business_id,
                "company_id": c.company_id,
                "channel_id": task.channel_id,
                "session": task.session,
                "credential_id": credential.n8n_id,
            },
        }),
    )
    .await
}

/// The [`RemoveSession`] task: logs out and deletes the session at WAHA
/// (a missing one is fine), then destroys its webhook key, unless the
/// channel was connected again meanwhile (then the key is in use).
pub async fn remove_session(w: WhatsApp<'_>, task: &RemoveSession) -> Result<()> {
    let waha = w.waha()?;
    if connection_of(w.db, task.channel_id).await?.is_some() {
        // Reconnected meanwhile under the same session name: keep it.
        return Ok(());
    }
    waha.remove(&task.session).await?;
    let scope = BusinessScope::platform(task.business_id);
    match secrets::delete(
        w.db,
        &Actor::system(),
        &scope,
        System::Waha,
        &key_name(task.channel_id),
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => Ok(()),
        Err(e) => Err(e),
    }
}

/// Disconnects WhatsApp channel `id`: the channel is `disconnected` at
/// once and the session removed at WAHA by a task. Safe to repeat; 404 for
/// another business's channel.
pub async fn disconnect(w: WhatsApp<'_>, scope: &BusinessScope, id: Uuid) -> Result<ChannelView> {
    let txn = crate::db::begin_write(w.db).await?;
    let c = whatsapp_channel(&txn, scope, id).await?;
    let Some(conn) = connection_of(&txn, id).await? else {
        txn.commit().await?;
        return Ok(c.into());
    };
    connection::Entity::delete_by_id(id).exec(&txn).await?;
    let c = super::mark_disconnected(&txn, c).await?;
    w.jobs
        .enqueue(
            &txn,
            &RemoveSession {
                session: conn.external_id,
                channel_id: id,
                business_id: scope.id(),
            },
        )
        .await?;
    txn.commit().await?;
    Ok(c.into())
}

/// Bring channel `channel_id`'s WAHA session in line with the channel: a
/// suspended channel's session is stopped (WhatsApp stops answering), a
/// restored one's started again.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncSession {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for SyncSession {
    const KIND: &'static str = job_kind::WAHA_SESSION_SYNC;
}

/// Queues, in `txn`, a [`SyncSession`] for each WhatsApp channel of
/// `changed` (rows an entitlement settlement suspended or restored) that
/// has a session. The task reads the channel when it runs, so the latest
/// state wins whatever the order of tasks.
pub async fn follow<C: ConnectionTrait>(
    jobs: &Queue,
    txn: &C,
    changed: &[channel::Model],
) -> Result<()> {
    let ids: Vec<Uuid> = changed
        .iter()
        .filter(|c| c.platform == Platform::Whatsapp)
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let connected = connection::Entity::find()
        .filter(connection::Column::ChannelId.is_in(ids))
        .all(txn)
        .await?;
    for conn in connected {
        jobs.enqueue(
            txn,
            &SyncSession {
                channel_id: conn.channel_id,
                business_id: conn.business_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// The [`SyncSession`] task: stops the session of a suspended channel and
/// starts a stopped session of a channel that is not (WAHA answers the
/// stop of a stopped session and the start of a running one alike, so the
/// task is safe to repeat). Done when the connection is gone.
pub async fn sync_session(w: WhatsApp<'_>, task: &SyncSession) -> Result<()> {
    let waha = w.waha()?;
    let Some(conn) = connection_of(w.db, task.channel_id).await? else {
        return Ok(());
    };
    let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .one(w.db)
        .await?
    else {
        return Ok(());
    };
    let session = waha.session(&conn.external_id).await?;
    let running = session
        .as_ref()
        .is_some_and(|s| !matches!(s.status.as_str(), "STOPPED" | "FAILED"));
    if c.status == ChannelStatus::Suspended {
        if running {
            waha.stop(&conn.external_id).await?;
        }
    } else if !running {
        start_session(
            w,
            &StartSession {
                channel_id: task.channel_id,
                business_id: task.business_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// Queues the removal of channel `c`'s session, if it has one, in `txn`
/// (the channel is being deleted: its connection row goes with it).
pub async fn forget<C: ConnectionTrait>(jobs: &Queue, txn: &C, c: &channel::Model) -> Result<()> {
    if let Some(conn) = connection_of(txn, c.id).await? {
        jobs.enqueue(
            txn,
            &RemoveSession {
                session: conn.external_id,
                channel_id: c.id,
                business_id: c.business_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// The QR code of channel `id`'s session, as WAHA has it now. 409
/// `qr_not_available` (with `session_status`) when the session is not
/// waiting for a scan or the channel is not connecting.
pub async fn qr(w: WhatsApp<'_>, scope: &BusinessScope, id: Uuid) -> Result<waha::Qr> {
    let c = whatsapp_channel(w.db, scope, id).await?;
    let waha = w.waha()?;
    let not_available = |status: Option<String>| {
        Error::conflict(
            "qr_not_available",
            "There is no QR code to scan: the session is not waiting for one.",
        )
        .with("session_status", status)
        .with(
            "channel_status",
            serde_json::to_value(c.status).unwrap_or_default(),
        )
    };
    let Some(conn) = connection_of(w.db, id).await? else {
        return Err(not_available(None));
    };
    match waha.qr(&conn.external_id).await? {
        QrAnswer::Code(qr) => Ok(qr),
        QrAnswer::NotAvailable(status) => Err(not_available(status)),
    }
}

/// A verified `session.status` report for a connection.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// WAHA's event id (the tie-breaker of equal timestamps).
    pub event_id: String,
    /// WAHA's timestamp, milliseconds.
    pub at: i64,
    /// WAHA's status.
    pub status: String,
    /// The account, when WAHA says (`me`).
    pub me: Option<waha::Me>,
}

/// The channel status a WAHA session status means (WAHA docs: sessions,
/// "Session status"); `None` for a status WAHA may add later.
pub fn channel_status_of(waha_status: &str) -> Option<ChannelStatus> {
    match waha_status {
        "STARTING" | "SCAN_QR_CODE" => Some(ChannelStatus::Connecting),
        "WORKING" => Some(ChannelStatus::Connected),
        "FAILED" => Some(ChannelStatus::Error),
        "STOPPED" => Some(ChannelStatus::Disconnected),
        _ => None,
    }
}

/// Applies `report` to connection `conn` in `txn`, if it is newer than
/// the last report applied; records `channel.status_changed` when the
/// channel's status changes. A suspended channel stays suspended (the
/// status it returns to follows the report). Returns whether it applied.
pub async fn apply_status<C: ConnectionTrait>(
    txn: &C,
    conn: &connection::Model,
    report: &StatusReport,
) -> Result<bool> {
    let newer = (report.at, report.event_id.as_str())
        > (conn.status_at, conn.status_event.as_deref().unwrap_or(""));
    if !newer {
        return Ok(false);
    }
    let now = Utc::now();
    let mut row: connection::ActiveModel = conn.clone().into();
    row.remote_status = Set(Some(report.status.clone()));
    row.status_at = Set(report.at);
    row.status_event = Set(Some(report.event_id.clone()));
    row.updated_at = Set(now);
    row.update(txn).await?;
    let Some(to) = channel_status_of(&report.status) else {
        return Ok(true);
    };
    let Some(c) = channel::Entity::find_by_id(conn.channel_id)
        .filter(channel::Column::BusinessId.eq(conn.business_id))
        .one(txn)
        .await?
    else {
        return Ok(true);
    };
    let from = c.status;
    let suspended = from == ChannelStatus::Suspended;
    let mut active: channel::ActiveModel = c.clone().into();
    if suspended {
        // A session stopped because the channel is suspended (our own
        // stop) leaves the status it returns to as it was.
        if to != ChannelStatus::Disconnected {
            active.suspended_from = Set(Some(to));
        }
    } else {
        active.status = Set(to);
    }
    match to {
        ChannelStatus::Connected => {
            if let Some(me) = &report.me {
                active.account_id = Set(Some(me.id.clone()));
                if let Some(name) = &me.push_name {
                    active.account_name = Set(Some(name.chars().take(200).collect()));
                }
            }
            active.last_error = Set(None);
            active.error_count = Set(0);
        }
        ChannelStatus::Error => {
            active.last_error = Set(Some("WhatsApp session failed (WAHA status FAILED)".into()));
            active.error_count = Set(c.error_count.saturating_add(1));
        }
        _ => {}
    }
    active.updated_at = Set(now);
    let c = active.update(txn).await?;
    super::status_changed(txn, &c, from, Some(&report.status)).await?;
    Ok(true)
}

/// The connection named `session` at WAHA, if it is one of ours.
pub async fn by_session<C: ConnectionTrait>(
    db: &C,
    session: &str,
) -> Result<Option<connection::Model>> {
    Ok(connection::Entity::find()
        .filter(connection::Column::Provider.eq(PROVIDER))
        .filter(connection::Column::ExternalId.eq(session))
        .one(db)
        .await?)
}
