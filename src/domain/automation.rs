//! The automation layer Switchboard provisions in n8n (SPEC §4 "n8n"):
//! the record of every object made there (`n8n_objects`, written as soon as
//! n8n answers a creation, so disconnecting a channel and deleting a
//! business find them all), and the steps every connection shares:
//! a business's tag, a credential made once per purpose, the removal of a
//! channel's objects, a workflow's `active` flag following its channel.
//!
//! Objects per channel: a Telegram bot's `telegramApi` credential
//! (`telegram_bot`) and its copy of the Telegram ingress workflow
//! (`telegram_ingress`). Per business: its tag (`business_tag`), the
//! credential the shared WhatsApp workflow replies with (`waha_reply`) and
//! the one its payment workflows reach its Stripe connected account with
//! (`stripe_account`).

use chrono::Utc;
use entity::n8n_object as object;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::integrations::n8n::{self, N8nApi};

/// Object kinds as stored.
pub mod kind {
    /// A workflow.
    pub const WORKFLOW: &str = "workflow";
    /// A credential.
    pub const CREDENTIAL: &str = "credential";
    /// A tag.
    pub const TAG: &str = "tag";
}

/// What objects are for, as stored.
pub mod purpose {
    /// A bot's `telegramApi` credential (per channel).
    pub const TELEGRAM_BOT: &str = "telegram_bot";
    /// A bot's copy of the Telegram ingress workflow (per channel).
    pub const TELEGRAM_INGRESS: &str = "telegram_ingress";
    /// The business's tag on its workflows.
    pub const BUSINESS_TAG: &str = "business_tag";
    /// The credential the shared WhatsApp workflow answers a business's
    /// customers with (per business).
    pub const WAHA_REPLY: &str = "waha_reply";
    /// The credential a business's payment workflows call Stripe on its
    /// connected account's behalf with (`Stripe-Account`; per business).
    pub const STRIPE_ACCOUNT: &str = "stripe_account";
}

/// 503 `automation_unavailable`: n8n (or the template `what` needs) is
/// not configured.
pub fn unavailable(what: &str) -> Error {
    Error::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "automation_unavailable",
        "The automation layer is not available",
    )
    .with_detail(format!(
        "This server has no n8n to answer {what} with: set n8n.base_url and n8n.api_key (SWITCHBOARD_N8N__BASE_URL, SWITCHBOARD_N8N__API_KEY) and the template (n8n.telegram_template_id)."
    ))
}

/// Records object `n8n_id` of `kind` made for `purpose`.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    business_id: Uuid,
    channel_id: Option<Uuid>,
    kind: &str,
    purpose: &str,
    n8n_id: &str,
) -> Result<object::Model> {
    Ok(object::ActiveModel {
        id: Set(Uuid::now_v7()),
        business_id: Set(business_id),
        channel_id: Set(channel_id),
        kind: Set(kind.to_owned()),
        purpose: Set(purpose.to_owned()),
        n8n_id: Set(n8n_id.to_owned()),
        active: Set(false),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?)
}

/// The object made for `purpose` of channel `channel_id` (or, with
/// `None`, of the business itself).
pub async fn find<C: ConnectionTrait>(
    db: &C,
    business_id: Uuid,
    channel_id: Option<Uuid>,
    purpose: &str,
) -> Result<Option<object::Model>> {
    let q = object::Entity::find()
        .filter(object::Column::BusinessId.eq(business_id))
        .filter(object::Column::Purpose.eq(purpose));
    let q = match channel_id {
        Some(c) => q.filter(object::Column::ChannelId.eq(c)),
        None => q.filter(object::Column::ChannelId.is_null()),
    };
    Ok(q.one(db).await?)
}

/// Every object made for channel `channel_id`.
pub async fn of_channel<C: ConnectionTrait>(
    db: &C,
    channel_id: Uuid,
) -> Result<Vec<object::Model>> {
    Ok(object::Entity::find()
        .filter(object::Column::ChannelId.eq(channel_id))
        .all(db)
        .await?)
}

/// The business's tag in n8n (made once, then read from the record).
pub async fn business_tag(
    n8n: &N8nApi,
    db: &DatabaseConnection,
    business_id: Uuid,
) -> Result<String> {
    if let Some(t) = find(db, business_id, None, purpose::BUSINESS_TAG).await? {
        return Ok(t.n8n_id);
    }
    let id = n8n.ensure_tag(&n8n::business_tag(business_id)).await?;
    match record(db, business_id, None, kind::TAG, purpose::BUSINESS_TAG, &id).await {
        Ok(_) => Ok(id),
        // Another task recorded it meanwhile: the same tag.
        Err(_)
            if find(db, business_id, None, purpose::BUSINESS_TAG)
                .await?
                .is_some() =>
        {
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// The credential made for `purpose` (of the channel, or of the business
/// with `None`), created with `create` the first time and recorded at once.
pub async fn credential<F, Fut>(
    db: &DatabaseConnection,
    business_id: Uuid,
    channel_id: Option<Uuid>,
    purpose: &str,
    create: F,
) -> Result<object::Model>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<n8n::Created>>,
{
    if let Some(c) = find(db, business_id, channel_id, purpose).await? {
        return Ok(c);
    }
    let made = create().await?;
    record(
        db,
        business_id,
        channel_id,
        kind::CREDENTIAL,
        purpose,
        &made.id,
    )
    .await
}

/// Removes every object of channel `channel_id` from n8n (workflows first:
/// they use the credentials), each record going once its object is gone.
/// Safe to repeat: what is already gone is skipped.
pub async fn remove_channel(
    n8n: &N8nApi,
    db: &DatabaseConnection,
    channel_id: Uuid,
) -> Result<usize> {
    let mut objects = of_channel(db, channel_id).await?;
    objects.sort_by_key(|o| o.kind != kind::WORKFLOW);
    let n = objects.len();
    for o in objects {
        remove(n8n, &o).await?;
        object::Entity::delete_by_id(o.id).exec(db).await?;
    }
    Ok(n)
}

/// Removes object `o` from n8n (a workflow is deactivated first).
pub async fn remove(n8n: &N8nApi, o: &object::Model) -> Result<()> {
    match o.kind.as_str() {
        kind::WORKFLOW => {
            n8n.deactivate(&o.n8n_id).await?;
            n8n.delete_workflow(&o.n8n_id).await
        }
        kind::CREDENTIAL => n8n.delete_credential(&o.n8n_id).await,
        // Tags go with the business (they mark all its workflows).
        _ => Ok(()),
    }
}

/// Makes the workflows of channel `channel_id` active (`true`) or not in
/// n8n, and records it.
pub async fn set_active(
    n8n: &N8nApi,
    db: &DatabaseConnection,
    channel_id: Uuid,
    active: bool,
) -> Result<()> {
    for o in of_channel(db, channel_id).await? {
        if o.kind != kind::WORKFLOW {
            continue;
        }
        if active {
            n8n.activate(&o.n8n_id).await?;
        } else {
            n8n.deactivate(&o.n8n_id).await?;
        }
        if o.active != active {
            let mut row: object::ActiveModel = o.into();
            row.active = Set(active);
            row.update(db).await?;
        }
    }
    Ok(())
}
