//! Telegram bot channels (SPEC §4, §5 "Channel connection"): the owner
//! gives the bot's token (from @BotFather); n8n answers the bot's
//! customers through the business's own copy of the Telegram ingress
//! workflow, whose Telegram Trigger makes n8n set the bot's webhook.
//!
//! - [`connect`]: `getMe` checks the token (refused: 422
//!   `telegram_token_invalid`, nothing stored, nothing made in n8n); the
//!   token goes into the vault (`telegram` / `bot.{channel id}`), the
//!   connection is recorded (the bot's id, unique: one bot, one channel),
//!   the channel is `connecting` with the bot as its account, and
//!   [`ProvisionBot`] is queued, all before the answer.
//! - [`provision_bot`] (a task, retried until done; each step finds what
//!   an earlier attempt made): a `telegramApi` credential (token and the
//!   configured Bot API base), a copy of the template workflow (fresh node
//!   and webhook ids, this credential, the tenant's ids in its static
//!   data), tagged with the business, activated; then `getWebhookInfo`
//!   must show the webhook pointing at n8n, and the channel is
//!   `connected`. Every n8n id is recorded the moment n8n answers
//!   (`domain::automation`). A token Telegram stops accepting ends the
//!   attempt: the channel goes to `error` with what to do.
//! - [`disconnect`]: the channel is `disconnected` at once; [`RemoveBot`]
//!   deactivates and deletes the workflow, deletes the credential, calls
//!   `deleteWebhook` as a safety and destroys the token. Safe to repeat.
//! - [`follow`] / [`sync_bot`]: a suspended channel's workflow is
//!   deactivated (n8n removes the bot's webhook), a restored one's
//!   activated again.

use chrono::Utc;
use entity::channel;
use entity::channel_connection as connection;
use entity::enums::{ChannelStatus, Platform};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::ChannelView;
use crate::config::N8nConfig;
use crate::domain::audit::Actor;
use crate::domain::automation::{self, kind as object_kind, purpose};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::vault::secrets::{self, Vault};
use crate::error::{Error, Result};
use crate::integrations::System;
use crate::integrations::n8n::{self, N8nApi};
use crate::integrations::telegram::{CallError, TelegramApi};
use crate::jobs::queue::{Queue, Task, kind as job_kind};

/// `provider` of a Telegram connection; its `external_id` is the bot's id.
pub const PROVIDER: &str = "telegram";

/// What Telegram channels need.
#[derive(Clone, Copy)]
pub struct Telegram<'a> {
    /// The database.
    pub db: &'a sea_orm::DatabaseConnection,
    /// Seals and opens the bots' tokens.
    pub keyring: &'a crate::crypto::Keyring,
    /// Where the provisioning tasks are queued.
    pub jobs: &'a Queue,
    /// The Bot API client.
    pub api: &'a TelegramApi,
    /// n8n, when configured.
    pub n8n: Option<&'a N8nApi>,
    /// n8n's configuration (the template's id), when configured.
    pub n8n_config: Option<&'a N8nConfig>,
}

impl Telegram<'_> {
    fn vault(&self) -> Vault<'_> {
        Vault {
            db: self.db,
            keyring: self.keyring,
        }
    }

    /// n8n and the template to duplicate; 503 `automation_unavailable`
    /// without them.
    fn automation(&self) -> Result<(&N8nApi, &str)> {
        match (
            self.n8n,
            self.n8n_config
                .and_then(|c| c.telegram_template_id.as_deref()),
        ) {
            (Some(n8n), Some(template)) => Ok((n8n, template)),
            _ => Err(automation::unavailable("Telegram bots")),
        }
    }
}

/// Channel `channel_id`'s bot token, from the vault (not audited: the
/// platform's own use).
pub async fn token(
    t: Telegram<'_>,
    business_id: Uuid,
    channel_id: Uuid,
) -> Result<Option<SecretString>> {
    secrets::open_for_platform(
        t.vault(),
        &BusinessScope::platform(business_id),
        System::Telegram,
        &token_name(channel_id),
    )
    .await
}

/// The vault name of a channel's bot token.
pub fn token_name(channel_id: Uuid) -> String {
    format!("bot.{channel_id}")
}

/// The name of a channel's workflow and credential in n8n (n8n names are
/// free text; this one says whose they are).
pub fn object_name(business_id: Uuid, channel_id: Uuid) -> String {
    format!("Switchboard Telegram {channel_id} (business {business_id})")
}

/// Connects Telegram channel `c` to the bot `token` belongs to (202 with
/// the channel, `connecting`). Connecting a channel already connecting or
/// connected to the same bot returns it as it is; to another bot, 409
/// `channel_already_connected`. 422 `telegram_token_invalid` when Telegram
/// refuses the token; 409 `bot_already_connected` when the bot serves
/// another channel; 503 `automation_unavailable` without n8n.
pub async fn connect(
    t: Telegram<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    c: channel::Model,
    token: SecretString,
) -> Result<ChannelView> {
    t.automation()?;
    super::ensure_connectable(t.db, scope, &c).await?;
    if !crate::integrations::telegram::token_shape_ok(token.expose_secret()) {
        return Err(Error::invalid_field(
            "bot_token",
            "is not a bot token (digits, a colon, then the key @BotFather gave)",
        ));
    }
    let bot = t.api.get_me(&token).await.map_err(Error::from)?;
    if !bot.is_bot {
        return Err(CallError::Unauthorized("the token is not a bot's".into()).into());
    }
    let bot_id = bot.id.to_string();
    let existing = super::connection_of(t.db, c.id).await?;
    if let Some(conn) = &existing {
        if conn.external_id == bot_id
            && matches!(
                c.status,
                ChannelStatus::Connecting | ChannelStatus::Connected
            )
        {
            return Ok(c.into());
        }
        if conn.external_id != bot_id {
            return Err(Error::conflict(
                "channel_already_connected",
                "The channel is connected to another bot: disconnect it first.",
            ));
        }
    }
    if let Some(other) = connection::Entity::find()
        .filter(connection::Column::Provider.eq(PROVIDER))
        .filter(connection::Column::ExternalId.eq(&bot_id))
        .one(t.db)
        .await?
        && other.channel_id != c.id
    {
        return Err(bot_taken());
    }
    secrets::put(
        t.vault(),
        actor,
        scope,
        System::Telegram,
        &token_name(c.id),
        token,
        secrets::SecretMetadata::default(),
    )
    .await?;
    let now = Utc::now();
    let txn = crate::db::begin_write(t.db).await?;
    let c = super::find(&txn, scope, c.id).await?;
    if existing.is_none() {
        let row = connection::ActiveModel {
            channel_id: Set(c.id),
            business_id: Set(scope.id()),
            provider: Set(PROVIDER.to_owned()),
            external_id: Set(bot_id.clone()),
            remote_status: Set(None),
            status_at: Set(0),
            status_event: Set(None),
            page_token_hash: Set(None),
            page_token_expires_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        // A unique violation: the bot was connected to another channel
        // meanwhile.
        row.insert(&txn).await.map_err(|e| {
            Error::unique_violation_as(
                e,
                "bot_already_connected",
                "This bot already serves another channel: disconnect it there first.",
            )
        })?;
    }
    let from = c.status;
    let mut active: channel::ActiveModel = c.into();
    active.status = Set(ChannelStatus::Connecting);
    active.account_id = Set(Some(bot_id));
    active.account_name = Set(bot.username.clone().or(Some(bot.first_name.clone())));
    active.last_error = Set(None);
    active.updated_at = Set(now);
    let c = active.update(&txn).await?;
    super::status_changed(&txn, &c, from, Some("connect")).await?;
    t.jobs
        .enqueue(
            &txn,
            &ProvisionBot {
                channel_id: c.id,
                business_id: c.business_id,
            },
        )
        .await?;
    txn.commit().await?;
    Ok(c.into())
}

/// Starts Telegram channel `c`'s provisioning over (202, `connecting`):
/// for a channel in `error` whose bot works again, or whose workflow was
/// changed in n8n. 409 `not_connected` when it has no bot yet (connect it
/// with a token).
pub async fn reconnect(
    t: Telegram<'_>,
    scope: &BusinessScope,
    c: channel::Model,
) -> Result<ChannelView> {
    t.automation()?;
    super::ensure_connectable(t.db, scope, &c).await?;
    let txn = crate::db::begin_write(t.db).await?;
    if super::connection_of(&txn, c.id).await?.is_none() {
        return Err(Error::conflict(
            "not_connected",
            "The channel has no bot yet: connect it with the bot's token first.",
        ));
    }
    let c = super::find(&txn, scope, c.id).await?;
    let from = c.status;
    let mut active: channel::ActiveModel = c.into();
    active.status = Set(ChannelStatus::Connecting);
    active.last_error = Set(None);
    active.updated_at = Set(Utc::now());
    let c = active.update(&txn).await?;
    super::status_changed(&txn, &c, from, Some("reconnect")).await?;
    t.jobs
        .enqueue(
            &txn,
            &ProvisionBot {
                channel_id: c.id,
                business_id: c.business_id,
            },
        )
        .await?;
    txn.commit().await?;
    Ok(c.into())
}

fn bot_taken() -> Error {
    Error::conflict(
        "bot_already_connected",
        "This bot already serves another channel: disconnect it there first.",
    )
}

/// Provision channel `channel_id`'s bot in n8n and finish its connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProvisionBot {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for ProvisionBot {
    const KIND: &'static str = job_kind::TELEGRAM_PROVISION;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.channel_id))
    }
}

/// Remove channel `channel_id`'s bot from n8n and Telegram, and its token.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemoveBot {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for RemoveBot {
    const KIND: &'static str = job_kind::TELEGRAM_REMOVE;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.channel_id))
    }
}

/// Bring channel `channel_id`'s workflow's `active` flag in line with it.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncBot {
    /// The channel.
    pub channel_id: Uuid,
    /// Its business.
    pub business_id: Uuid,
}

impl Task for SyncBot {
    const KIND: &'static str = job_kind::TELEGRAM_SYNC;
}

/// The [`ProvisionBot`] task (see the module docs). Done when the
/// connection is gone (disconnected meanwhile). n8n and Telegram errors
/// are transient (the runner retries; until then the connecting channel's
/// `last_error` says what failed); a token Telegram no longer accepts puts
/// the channel in `error` and ends the task.
pub async fn provision_bot(t: Telegram<'_>, task: &ProvisionBot) -> Result<()> {
    let outcome = provision(t, task).await;
    if let Err(e) = &outcome {
        let note = format!(
            "Setting up the automation failed ({}); it is retried.",
            e.code()
        );
        let noted = channel::Entity::update_many()
            .col_expr(
                channel::Column::LastError,
                sea_orm::sea_query::Expr::value(note),
            )
            .filter(channel::Column::Id.eq(task.channel_id))
            .filter(channel::Column::Status.eq(ChannelStatus::Connecting))
            .exec(t.db)
            .await;
        if let Err(db) = noted {
            tracing::warn!(error = %db, "could not note a provisioning failure");
        }
    }
    outcome
}

async fn provision(t: Telegram<'_>, task: &ProvisionBot) -> Result<()> {
    let (n8n, template_id) = t.automation()?;
    if super::connection_of(t.db, task.channel_id).await?.is_none() {
        return Ok(());
    }
    let Some(token) = token(t, task.business_id, task.channel_id).await? else {
        return Err(Error::internal("the bot's token is missing"));
    };
    // The token may have been revoked since connect.
    let bot = match t.api.get_me(&token).await {
        Ok(bot) => bot,
        Err(CallError::Unauthorized(d)) => {
            return fail(t, task, &format!("Telegram no longer accepts the bot's token ({d}); connect it again with a new token")).await;
        }
        Err(e) => return Err(e.into()),
    };
    let name = object_name(task.business_id, task.channel_id);
    if automation::find(
        t.db,
        task.business_id,
        Some(task.channel_id),
        purpose::TELEGRAM_BOT,
    )
    .await?
    .is_none()
    {
        check_credential_type(n8n).await?;
    }
    let credential = automation::credential(
        t.db,
        task.business_id,
        Some(task.channel_id),
        purpose::TELEGRAM_BOT,
        || {
            n8n.create_credential(
                &name,
                "telegramApi",
                json!({ "accessToken": token.expose_secret(), "baseUrl": t.api.base() }),
            )
        },
    )
    .await?;
    let workflow = match automation::find(
        t.db,
        task.business_id,
        Some(task.channel_id),
        purpose::TELEGRAM_INGRESS,
    )
    .await?
    {
        Some(w) => w,
        None => {
            // A copy an interrupted attempt made but did not record is
            // adopted rather than made twice.
            let id = match n8n.workflows_named(&name).await?.into_iter().next() {
                Some(w) => w.id,
                None => {
                    let Some(template) = n8n.workflow(template_id).await? else {
                        return Err(Error::internal(format!(
                            "n8n has no workflow {template_id} (n8n.telegram_template_id)"
                        )));
                    };
                    let company_id = channel::Entity::find_by_id(task.channel_id)
                        .one(t.db)
                        .await?
                        .map(|c| c.company_id);
                    let body = n8n::duplicate(
                        &template,
                        &name,
                        &n8n::CredentialRef {
                            kind: "telegramApi",
                            id: &credential.n8n_id,
                            name: &name,
                        },
                        json!({ "switchboard": {
                            "business_id": task.business_id,
                            "company_id": company_id,
                            "channel_id": task.channel_id,
                            "bot_id": bot.id,
                        }}),
                    );
                    n8n.create_workflow(&body).await?.id
                }
            };
            automation::record(
                t.db,
                task.business_id,
                Some(task.channel_id),
                object_kind::WORKFLOW,
                purpose::TELEGRAM_INGRESS,
                &id,
            )
            .await?
        }
    };
    let tag = automation::business_tag(n8n, t.db, task.business_id).await?;
    n8n.set_tags(&workflow.n8n_id, &[tag]).await?;
    let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .one(t.db)
        .await?
    else {
        return Ok(());
    };
    if c.status == ChannelStatus::Suspended {
        // Made, and left inactive until the channel is restored.
        automation::set_active(n8n, t.db, task.channel_id, false).await?;
        return settle(t, task, &bot, true).await;
    }
    automation::set_active(n8n, t.db, task.channel_id, true).await?;
    // n8n set the webhook on activation; check it points at n8n.
    let info = t.api.webhook_info(&token).await?;
    let expected = format!("{}/webhook/", n8n.webhook_base());
    if !info.url.starts_with(&expected) {
        return Err(Error::internal(format!(
            "the bot's webhook does not point at n8n's webhooks ({expected}…) after activation"
        )));
    }
    settle(t, task, &bot, false).await
}

/// Checks, before the first credential is made, that this n8n's
/// `telegramApi` credential type takes a `baseUrl` (`GET /credentials/
/// schema/telegramApi`): without it n8n's Telegram nodes would call
/// api.telegram.org whatever `telegram.api_base` says.
async fn check_credential_type(n8n: &N8nApi) -> Result<()> {
    let schema = n8n.credential_schema("telegramApi").await?;
    let fields = schema
        .as_ref()
        .and_then(|s| s.get("properties"))
        .and_then(serde_json::Value::as_object);
    match fields {
        Some(f) if f.contains_key("accessToken") && f.contains_key("baseUrl") => Ok(()),
        _ => Err(Error::internal(
            "this n8n's telegramApi credential type has no accessToken and baseUrl (n8n 1.x with the Telegram node is needed)",
        )),
    }
}

/// Marks the channel connected (or, if suspended, connected once
/// restored), with the bot as its account.
async fn settle(
    t: Telegram<'_>,
    task: &ProvisionBot,
    bot: &crate::integrations::telegram::Bot,
    suspended: bool,
) -> Result<()> {
    let txn = crate::db::begin_write(t.db).await?;
    if super::connection_of(&txn, task.channel_id).await?.is_none() {
        txn.commit().await?;
        return Ok(());
    }
    let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .filter(channel::Column::BusinessId.eq(task.business_id))
        .one(&txn)
        .await?
    else {
        txn.commit().await?;
        return Ok(());
    };
    let from = c.status;
    let mut active: channel::ActiveModel = c.into();
    if suspended || from == ChannelStatus::Suspended {
        active.suspended_from = Set(Some(ChannelStatus::Connected));
    } else {
        active.status = Set(ChannelStatus::Connected);
    }
    active.account_id = Set(Some(bot.id.to_string()));
    active.account_name = Set(bot.username.clone().or(Some(bot.first_name.clone())));
    active.last_error = Set(None);
    active.error_count = Set(0);
    active.updated_at = Set(Utc::now());
    let c = active.update(&txn).await?;
    super::status_changed(&txn, &c, from, Some("provisioned")).await?;
    txn.commit().await?;
    Ok(())
}

/// Ends a connection attempt that cannot succeed: the channel goes to
/// `error` with `why`.
async fn fail(t: Telegram<'_>, task: &ProvisionBot, why: &str) -> Result<()> {
    let txn = crate::db::begin_write(t.db).await?;
    if let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .filter(channel::Column::BusinessId.eq(task.business_id))
        .one(&txn)
        .await?
    {
        let from = c.status;
        let count = c.error_count;
        let mut active: channel::ActiveModel = c.into();
        if from != ChannelStatus::Suspended {
            active.status = Set(ChannelStatus::Error);
        }
        active.last_error = Set(Some(why.to_owned()));
        active.error_count = Set(count.saturating_add(1));
        active.updated_at = Set(Utc::now());
        let c = active.update(&txn).await?;
        super::status_changed(&txn, &c, from, Some("auth_revoked")).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Disconnects Telegram channel `c`: `disconnected` at once, and the bot
/// removed from n8n and Telegram by [`RemoveBot`]. Safe to repeat.
pub async fn disconnect(t: Telegram<'_>, scope: &BusinessScope, id: Uuid) -> Result<ChannelView> {
    let txn = crate::db::begin_write(t.db).await?;
    let c = super::find(&txn, scope, id).await?;
    if super::connection_of(&txn, id).await?.is_none() {
        txn.commit().await?;
        return Ok(c.into());
    }
    connection::Entity::delete_by_id(id).exec(&txn).await?;
    let c = super::mark_disconnected(&txn, c).await?;
    forget(t.jobs, &txn, &c).await?;
    txn.commit().await?;
    Ok(c.into())
}

/// Queues, in `txn`, the removal of Telegram channel `c`'s bot (it is
/// being disconnected or deleted).
pub async fn forget<C: ConnectionTrait>(jobs: &Queue, txn: &C, c: &channel::Model) -> Result<()> {
    if c.platform != Platform::Telegram {
        return Ok(());
    }
    jobs.enqueue(
        txn,
        &RemoveBot {
            channel_id: c.id,
            business_id: c.business_id,
        },
    )
    .await?;
    Ok(())
}

/// The [`RemoveBot`] task: unless the channel was connected again
/// meanwhile, removes its workflow and credential from n8n, calls
/// `deleteWebhook` (a token Telegram refuses has no webhook to remove) and
/// destroys the token. Safe to repeat.
pub async fn remove_bot(t: Telegram<'_>, task: &RemoveBot) -> Result<()> {
    if super::connection_of(t.db, task.channel_id).await?.is_some() {
        return Ok(());
    }
    if !automation::of_channel(t.db, task.channel_id)
        .await?
        .is_empty()
    {
        let n8n = t
            .n8n
            .ok_or_else(|| automation::unavailable("Telegram bots"))?;
        automation::remove_channel(n8n, t.db, task.channel_id).await?;
    }
    if let Some(token) = token(t, task.business_id, task.channel_id).await? {
        match t.api.delete_webhook(&token).await {
            Ok(()) | Err(CallError::Unauthorized(_)) => {}
            Err(e) => return Err(e.into()),
        }
        match secrets::delete(
            t.db,
            &Actor::system(),
            &BusinessScope::platform(task.business_id),
            System::Telegram,
            &token_name(task.channel_id),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if e.status() == axum::http::StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Queues, in `txn`, a [`SyncBot`] for each Telegram channel of `changed`
/// (rows a settlement suspended or restored) that has a connection.
pub async fn follow<C: ConnectionTrait>(
    jobs: &Queue,
    txn: &C,
    changed: &[channel::Model],
) -> Result<()> {
    let ids: Vec<Uuid> = changed
        .iter()
        .filter(|c| c.platform == Platform::Telegram)
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    for conn in connection::Entity::find()
        .filter(connection::Column::ChannelId.is_in(ids))
        .all(txn)
        .await?
    {
        jobs.enqueue(
            txn,
            &SyncBot {
                channel_id: conn.channel_id,
                business_id: conn.business_id,
            },
        )
        .await?;
    }
    Ok(())
}

/// The [`SyncBot`] task: deactivates a suspended channel's workflow,
/// activates a restored one's (reading the channel when it runs, so the
/// latest state wins). Before provisioning finished there is nothing to
/// change: [`provision_bot`] reads the status itself.
pub async fn sync_bot(t: Telegram<'_>, task: &SyncBot) -> Result<()> {
    if super::connection_of(t.db, task.channel_id).await?.is_none() {
        return Ok(());
    }
    let Some(c) = channel::Entity::find_by_id(task.channel_id)
        .one(t.db)
        .await?
    else {
        return Ok(());
    };
    if automation::of_channel(t.db, task.channel_id)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let n8n = t
        .n8n
        .ok_or_else(|| automation::unavailable("Telegram bots"))?;
    automation::set_active(
        n8n,
        t.db,
        task.channel_id,
        c.status != ChannelStatus::Suspended,
    )
    .await
}
