//! Channels of a business, counted against its plan (SPEC §2).
//!
//! The limit holds under concurrency on both databases: a creation first
//! takes a write lock on the business row (`UPDATE businesses SET updated_at`
//! as the transaction's first statement: a row lock on PostgreSQL; on SQLite
//! the transaction already holds the database write lock from its
//! `BEGIN IMMEDIATE`), then counts and inserts. Concurrent creations for one
//! business are thereby serialised; N parallel requests at limit L leave
//! exactly L channels.

pub mod health;
pub mod telegram;
pub mod whatsapp;

use crate::domain::audit::{self, Actor};
use crate::domain::events::{self, kind};
use chrono::{DateTime, Utc};
use entity::channel;
use entity::enums::{ChannelStatus, Platform};
use sea_orm::sea_query::{Expr, Value};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::reader::{Reader, Shape};
use crate::domain::billing::entitlement;
use crate::domain::billing::plans::{PlanCatalogue, ensure_may_add_channels, plan_limit_reached};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::tenancy::businesses::channel_count;
use crate::domain::{tenancy::companies, validate};
use crate::error::{Error, Result};

/// Largest non-secret channel configuration, serialized (bytes).
pub const CONFIG_MAX_BYTES: usize = 16 * 1024;

/// A channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Channel id.
    pub id: Uuid,
    /// Business it belongs to.
    pub business_id: Uuid,
    /// Company it belongs to.
    pub company_id: Uuid,
    /// Messaging platform.
    pub platform: Platform,
    /// Connection status.
    pub status: ChannelStatus,
    /// Account id on the platform, once connected.
    pub account_id: Option<String>,
    /// Display name of the account.
    pub account_name: Option<String>,
    /// Last connection error: what a health probe found (`auth_revoked`,
    /// `rate_limited`, `unreachable`, `misconfigured`) or the platform said.
    pub last_error: Option<String>,
    /// Failures (probes, session failures) since the channel last worked.
    pub error_count: i32,
    /// Why the platform suspended it.
    pub suspended_reason: Option<String>,
    /// Non-secret configuration.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    /// Creation time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<channel::Model> for ChannelView {
    fn from(c: channel::Model) -> Self {
        ChannelView {
            id: c.id,
            business_id: c.business_id,
            company_id: c.company_id,
            platform: c.platform,
            status: c.status,
            account_id: c.account_id,
            account_name: c.account_name,
            last_error: c.last_error,
            error_count: c.error_count,
            suspended_reason: c.suspended_reason,
            config: c.config,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A new channel.
pub struct NewChannel {
    /// Company (of the same business).
    pub company_id: Uuid,
    /// Platform.
    pub platform: Platform,
    /// Display name (optional, ≤ 200 characters).
    pub account_name: Option<String>,
    /// Non-secret configuration, a JSON object of at most 16 KiB.
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Filters of the channel list.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChannelFilter {
    /// Only this company's.
    pub company_id: Option<Uuid>,
    /// Only this platform.
    pub platform: Option<Platform>,
    /// Only this status.
    pub status: Option<ChannelStatus>,
}

/// Channel `channel_id`'s connection to an outside system, if it has one.
pub(crate) async fn connection_of<C: ConnectionTrait>(
    db: &C,
    channel_id: Uuid,
) -> Result<Option<entity::channel_connection::Model>> {
    Ok(entity::channel_connection::Entity::find_by_id(channel_id)
        .one(db)
        .await?)
}

/// Refuses to connect channel `c` of `scope`'s business when the business
/// is restricted (402 `subscription_required`) or the channel suspended
/// (402 `channel_suspended`).
pub(crate) async fn ensure_connectable<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    c: &channel::Model,
) -> Result<()> {
    let business = entity::business::Entity::find_by_id(scope.id())
        .one(db)
        .await?
        .ok_or_else(Error::not_found)?;
    ensure_may_add_channels(&business, Utc::now())?;
    if c.status == ChannelStatus::Suspended {
        return Err(Error::new(
            axum::http::StatusCode::PAYMENT_REQUIRED,
            "channel_suspended",
            "The channel is suspended",
        )
        .with_detail("It is over the plan's limit or the subscription lapsed: upgrade the plan or remove another channel, then connect again.")
        .with("reason", c.suspended_reason.clone().unwrap_or_default()));
    }
    Ok(())
}

/// Records `channel.status_changed` for channel `c` (now in its new
/// status) if it left `from`, with `reason`. Nothing when unchanged.
pub(crate) async fn status_changed<C: ConnectionTrait>(
    db: &C,
    c: &channel::Model,
    from: ChannelStatus,
    reason: Option<&str>,
) -> Result<()> {
    if from == c.status {
        return Ok(());
    }
    events::record(
        db,
        c.business_id,
        kind::CHANNEL_STATUS_CHANGED,
        serde_json::json!({
            "id": c.id,
            "company_id": c.company_id,
            "from": from,
            "to": c.status,
            "reason": reason,
            "account_id": c.account_id,
            "account_name": c.account_name,
        }),
    )
    .await?;
    Ok(())
}

/// Moves channel `c` (its connection already removed in `txn`) to
/// `disconnected` (a suspended one returns there when restored), forgets
/// its account id and records the change.
pub(crate) async fn mark_disconnected<C: ConnectionTrait>(
    txn: &C,
    c: channel::Model,
) -> Result<channel::Model> {
    let from = c.status;
    let mut active: channel::ActiveModel = c.into();
    if from == ChannelStatus::Suspended {
        active.suspended_from = Set(Some(ChannelStatus::Disconnected));
    } else {
        active.status = Set(ChannelStatus::Disconnected);
    }
    active.account_id = Set(None);
    active.updated_at = Set(Utc::now());
    let c = active.update(txn).await?;
    status_changed(txn, &c, from, Some("disconnected")).await?;
    Ok(c)
}

/// 422 `platform_not_connectable`: channel `c`'s platform does not connect
/// through this route.
pub(crate) fn not_connectable(c: &channel::Model) -> Error {
    Error::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "platform_not_connectable",
        "This channel does not connect here",
    )
    .with_detail(
        "WhatsApp and Telegram channels connect through this route; the others have their own.",
    )
    .with(
        "platform",
        serde_json::to_value(c.platform).unwrap_or_default(),
    )
}

/// The channel `id` of the scope's business, or 404.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<channel::Model> {
    channel::Entity::find_by_id(id)
        .filter(channel::Column::BusinessId.eq(scope.id()))
        .one(db)
        .await?
        .ok_or_else(Error::not_found)
}

/// Channel `id` of the scope's business, through the read path. 404 otherwise.
pub async fn get(read: &Reader, scope: &BusinessScope, id: Uuid) -> Result<ChannelView> {
    let select = channel::Entity::find_by_id(id).filter(channel::Column::BusinessId.eq(scope.id()));
    Ok(read.found(select).await?.into())
}

/// Creates a channel within the plan's limit. 402 `subscription_required`
/// when the business is restricted, 402 `plan_limit_reached` at the limit,
/// 404 when the company is not the business's.
pub async fn create(
    db: &DatabaseConnection,
    plans: &PlanCatalogue,
    scope: &BusinessScope,
    input: NewChannel,
    staff: Option<&Actor>,
) -> Result<ChannelView> {
    let business_id = scope.id();
    let account_name = validate::optional_name(
        "account_name",
        input.account_name.as_deref(),
        validate::NAME_MAX,
    )?;
    let config = serde_json::Value::Object(input.config.unwrap_or_default());
    if serde_json::to_vec(&config).map_err(Error::internal)?.len() > CONFIG_MAX_BYTES {
        return Err(Error::invalid_field(
            "config",
            format!("at most {CONFIG_MAX_BYTES} bytes"),
        ));
    }
    let now = Utc::now();
    let txn = crate::db::begin_write(db).await?;
    // First statement: take the business's write lock (see module docs).
    let locked = entity::business::Entity::update_many()
        .col_expr(entity::business::Column::UpdatedAt, Expr::value(now))
        .filter(entity::business::Column::Id.eq(business_id))
        .exec(&txn)
        .await?;
    if locked.rows_affected != 1 {
        return Err(Error::not_found());
    }
    let business = entity::business::Entity::find_by_id(business_id)
        .one(&txn)
        .await?
        .ok_or_else(Error::not_found)?;
    ensure_may_add_channels(&business, now)?;
    // Another business's company is indistinguishable from none: 404.
    companies::find(&txn, scope, input.company_id).await?;
    let used = channel_count(&txn, business_id).await?;
    if let Some(limit) = plans.limit_of(&business)
        && used >= u64::from(limit)
    {
        return Err(plan_limit_reached(&business.plan, limit, used));
    }
    let channel = channel::ActiveModel {
        id: Set(Uuid::now_v7()),
        business_id: Set(business_id),
        company_id: Set(input.company_id),
        platform: Set(input.platform),
        status: Set(ChannelStatus::Disconnected),
        account_id: Set(None),
        account_name: Set(account_name),
        last_error: Set(None),
        error_count: Set(0),
        suspended_reason: Set(None),
        suspended_from: Set(None),
        config: Set(config),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let view = ChannelView::from(channel);
    let data = serde_json::to_value(&view).map_err(Error::internal)?;
    let target = format!("channel/{}", view.id);
    audit::staff_change(
        &txn,
        staff,
        business_id,
        "channel.create",
        &target,
        data.clone(),
    )
    .await?;
    events::record(&txn, business_id, kind::CHANNEL_CREATED, data).await?;
    txn.commit().await?;
    Ok(view)
}

/// A page of the business's channels matching `filter`.
pub async fn list(
    read: &Reader,
    scope: &BusinessScope,
    filter: ChannelFilter,
    page: PageRequest,
) -> Result<Page<ChannelView>> {
    if let Some(c) = filter.company_id {
        // Filtering by another business's company is a 404, like any id.
        companies::get(read, scope, c).await?;
    }
    // One statement text per combination of the optional filters and cursor.
    static SHAPES: [Shape; 16] = [const { Shape::new() }; 16];
    let rows = read
        .page::<channel::Entity, _>(
            &SHAPES,
            (channel::Column::BusinessId, Value::from(scope.id())),
            [
                (
                    channel::Column::CompanyId,
                    filter.company_id.map(Value::from),
                ),
                (
                    channel::Column::Platform,
                    filter.platform.map(|p| p.to_value().into()),
                ),
                (
                    channel::Column::Status,
                    filter.status.map(|s| s.to_value().into()),
                ),
            ],
            channel::Column::Id,
            page.after,
            page.limit + 1,
        )
        .await?;
    Ok(Page::from_rows(rows, page, |c| c.id, ChannelView::from))
}

/// Deletes channel `id` of the scope's business, freeing its plan slot; a
/// WhatsApp session it had is removed at WAHA by a task. The
/// entitlement is re-evaluated in the same transaction: once the channels
/// fit the plan again, those suspended as `over_plan_limit` come back.
pub async fn delete(
    db: &DatabaseConnection,
    rules: &entitlement::Rules<'_>,
    jobs: &crate::jobs::Queue,
    scope: &BusinessScope,
    id: Uuid,
    staff: Option<&Actor>,
) -> Result<()> {
    let business_id = scope.id();
    let txn = crate::db::begin_write(db).await?;
    if !entitlement::lock_business(&txn, business_id).await? {
        return Err(Error::not_found());
    }
    // What it is connected through goes too (a task removes it outside).
    let c = find(&txn, scope, id).await?;
    whatsapp::forget(jobs, &txn, &c).await?;
    telegram::forget(jobs, &txn, &c).await?;
    let res = channel::Entity::delete_many()
        .filter(channel::Column::Id.eq(id))
        .filter(channel::Column::BusinessId.eq(business_id))
        .exec(&txn)
        .await?;
    if res.rows_affected == 0 {
        return Err(Error::not_found());
    }
    let data = serde_json::json!({ "id": id, "company_id": c.company_id, "platform": c.platform });
    let target = format!("channel/{id}");
    audit::staff_change(&txn, staff, business_id, "channel.delete", &target, data).await?;
    events::record(
        &txn,
        business_id,
        kind::CHANNEL_DELETED,
        serde_json::json!({ "id": id }),
    )
    .await?;
    entitlement::apply(rules, &txn, business_id, Utc::now()).await?;
    txn.commit().await?;
    Ok(())
}
