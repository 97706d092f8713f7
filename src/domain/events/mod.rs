//! The event log of each business (SPEC §7 "Events"): what changed,
//! recorded in the transaction of the change, numbered per business in
//! commit order, and read three ways: pages (`GET /v1/events`), the live
//! stream (server-sent events, [`hub`]) and signed outgoing webhooks to the
//! business's own endpoints ([`webhooks`]).
//!
//! Numbering: [`record`] bumps `businesses.event_seq` in the change's
//! transaction, which holds that row's write lock until commit, so a
//! business's events commit in the order of their numbers and a reader that
//! has seen number `n` has seen every number below it. On PostgreSQL the
//! transaction also issues `pg_notify('switchboard_events', business_id)`,
//! delivered at commit to every instance (SPEC §6: several instances share
//! one database); the hub also polls, so no commit is missed.

pub mod hub;
pub mod webhooks;

use chrono::{DateTime, Utc};
use entity::business;
use entity::event;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::tenancy::access::BusinessScope;
use crate::error::{Error, Result};

/// The PostgreSQL notification channel of new events (payload: the
/// business id).
pub const CHANNEL: &str = "switchboard_events";
/// An event's number as text (the stream's `id:` field).
pub const SEQ_PATTERN: &str = r"^[0-9]+$";

/// The kinds of event, by their stable names (also the `type` webhook
/// endpoints filter on).
pub mod kind {
    /// A company was created.
    pub const COMPANY_CREATED: &str = "company.created";
    /// A company was changed.
    pub const COMPANY_UPDATED: &str = "company.updated";
    /// A company (and its channels) was deleted.
    pub const COMPANY_DELETED: &str = "company.deleted";
    /// A channel was created.
    pub const CHANNEL_CREATED: &str = "channel.created";
    /// A channel was deleted.
    pub const CHANNEL_DELETED: &str = "channel.deleted";
    /// A channel's status changed (suspended, restored, connected, …).
    pub const CHANNEL_STATUS_CHANGED: &str = "channel.status_changed";
    /// The business's plan or status changed.
    pub const BUSINESS_UPDATED: &str = "business.updated";
    /// A Stripe subscription of the business changed.
    pub const SUBSCRIPTION_UPDATED: &str = "subscription.updated";
    /// An integration secret was written (never its value).
    pub const SECRET_WRITTEN: &str = "secret.written";
    /// An integration secret was destroyed.
    pub const SECRET_DELETED: &str = "secret.deleted";
    /// The business's Stripe connected account was created, changed state
    /// or was removed.
    pub const CONNECT_ACCOUNT_UPDATED: &str = "connect.account_updated";
    /// A purchase was recorded (no payment link yet).
    pub const PURCHASE_CREATED: &str = "purchase.created";
    /// A purchase's payment link was made.
    pub const PURCHASE_PAYMENT_LINK_SENT: &str = "purchase.payment_link_sent";
    /// A purchase was paid.
    pub const PURCHASE_PAID: &str = "purchase.paid";
    /// A purchase's payment link expired unpaid.
    pub const PURCHASE_EXPIRED: &str = "purchase.expired";
    /// A paid purchase was refunded.
    pub const PURCHASE_REFUNDED: &str = "purchase.refunded";
    /// Every kind, for validating endpoint filters.
    pub const ALL: [&str; 16] = [
        COMPANY_CREATED,
        COMPANY_UPDATED,
        COMPANY_DELETED,
        CHANNEL_CREATED,
        CHANNEL_DELETED,
        CHANNEL_STATUS_CHANGED,
        BUSINESS_UPDATED,
        SUBSCRIPTION_UPDATED,
        SECRET_WRITTEN,
        SECRET_DELETED,
        CONNECT_ACCOUNT_UPDATED,
        PURCHASE_CREATED,
        PURCHASE_PAYMENT_LINK_SENT,
        PURCHASE_PAID,
        PURCHASE_EXPIRED,
        PURCHASE_REFUNDED,
    ];
}

/// The kinds of event as the API names them (what webhook endpoints filter
/// on); the same names as [`kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, ToSchema)]
pub enum EventType {
    /// `company.created`.
    #[serde(rename = "company.created")]
    CompanyCreated,
    /// `company.updated`.
    #[serde(rename = "company.updated")]
    CompanyUpdated,
    /// `company.deleted`.
    #[serde(rename = "company.deleted")]
    CompanyDeleted,
    /// `channel.created`.
    #[serde(rename = "channel.created")]
    ChannelCreated,
    /// `channel.deleted`.
    #[serde(rename = "channel.deleted")]
    ChannelDeleted,
    /// `channel.status_changed`.
    #[serde(rename = "channel.status_changed")]
    ChannelStatusChanged,
    /// `business.updated`.
    #[serde(rename = "business.updated")]
    BusinessUpdated,
    /// `subscription.updated`.
    #[serde(rename = "subscription.updated")]
    SubscriptionUpdated,
    /// `secret.written`.
    #[serde(rename = "secret.written")]
    SecretWritten,
    /// `secret.deleted`.
    #[serde(rename = "secret.deleted")]
    SecretDeleted,
    /// `connect.account_updated`.
    #[serde(rename = "connect.account_updated")]
    ConnectAccountUpdated,
    /// `purchase.created`.
    #[serde(rename = "purchase.created")]
    PurchaseCreated,
    /// `purchase.payment_link_sent`.
    #[serde(rename = "purchase.payment_link_sent")]
    PurchasePaymentLinkSent,
    /// `purchase.paid`.
    #[serde(rename = "purchase.paid")]
    PurchasePaid,
    /// `purchase.expired`.
    #[serde(rename = "purchase.expired")]
    PurchaseExpired,
    /// `purchase.refunded`.
    #[serde(rename = "purchase.refunded")]
    PurchaseRefunded,
}

impl EventType {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CompanyCreated => kind::COMPANY_CREATED,
            EventType::CompanyUpdated => kind::COMPANY_UPDATED,
            EventType::CompanyDeleted => kind::COMPANY_DELETED,
            EventType::ChannelCreated => kind::CHANNEL_CREATED,
            EventType::ChannelDeleted => kind::CHANNEL_DELETED,
            EventType::ChannelStatusChanged => kind::CHANNEL_STATUS_CHANGED,
            EventType::BusinessUpdated => kind::BUSINESS_UPDATED,
            EventType::SubscriptionUpdated => kind::SUBSCRIPTION_UPDATED,
            EventType::SecretWritten => kind::SECRET_WRITTEN,
            EventType::SecretDeleted => kind::SECRET_DELETED,
            EventType::ConnectAccountUpdated => kind::CONNECT_ACCOUNT_UPDATED,
            EventType::PurchaseCreated => kind::PURCHASE_CREATED,
            EventType::PurchasePaymentLinkSent => kind::PURCHASE_PAYMENT_LINK_SENT,
            EventType::PurchasePaid => kind::PURCHASE_PAID,
            EventType::PurchaseExpired => kind::PURCHASE_EXPIRED,
            EventType::PurchaseRefunded => kind::PURCHASE_REFUNDED,
        }
    }
}

/// One event as clients see it (page item, stream `data`, webhook body).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// Global id (`webhook-id` of its deliveries).
    pub id: Uuid,
    /// Number within the business, in commit order (the stream's `id:`,
    /// `Last-Event-ID` and the pages' `after`).
    pub seq: i64,
    /// Dotted kind, e.g. `channel.status_changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The business it happened in.
    pub business_id: Uuid,
    /// When it was recorded.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub occurred_at: DateTime<Utc>,
    /// What changed (shape per kind).
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<event::Model> for EventView {
    fn from(e: event::Model) -> EventView {
        EventView {
            data: serde_json::from_str(&e.data).unwrap_or(Value::Null),
            id: e.id,
            seq: e.seq,
            event_type: e.event_type,
            business_id: e.business_id,
            occurred_at: e.occurred_at,
        }
    }
}

/// Records an event of `business_id` through `txn` (the transaction of the
/// change it describes); returns its number. Also announces it (PostgreSQL
/// `pg_notify`, at commit) and, when the business has webhook endpoints,
/// queues its fan-out to them ([`webhooks::FanOut`]).
pub async fn record<C: ConnectionTrait>(
    txn: &C,
    business_id: Uuid,
    event_type: &'static str,
    data: Value,
) -> Result<i64> {
    let bumped = business::Entity::update_many()
        .col_expr(
            business::Column::EventSeq,
            Expr::col(business::Column::EventSeq).add(1),
        )
        .filter(business::Column::Id.eq(business_id))
        .exec_with_returning(txn)
        .await?;
    let seq = bumped
        .first()
        .map(|b| b.event_seq)
        .ok_or_else(|| Error::internal("an event of a business that does not exist"))?;
    let row = event::Model {
        business_id,
        seq,
        id: Uuid::now_v7(),
        event_type: event_type.to_owned(),
        data: data.to_string(),
        occurred_at: Utc::now(),
    };
    event::ActiveModel::from(row.clone()).insert(txn).await?;
    after_insert(txn, std::slice::from_ref(&row)).await?;
    Ok(seq)
}

/// Writes events whose numbers the caller assigned from business rows it
/// holds locked and writes back (the Stripe batch), announcing and fanning
/// them out like [`record`].
pub async fn insert_numbered<C: ConnectionTrait>(txn: &C, rows: Vec<event::Model>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let models: Vec<event::ActiveModel> = rows.iter().cloned().map(Into::into).collect();
    event::Entity::insert_many(models)
        .exec_without_returning(txn)
        .await?;
    after_insert(txn, &rows).await
}

/// The notification and fan-out of freshly numbered `rows`.
async fn after_insert<C: ConnectionTrait>(txn: &C, rows: &[event::Model]) -> Result<()> {
    let mut businesses: Vec<Uuid> = rows.iter().map(|r| r.business_id).collect();
    businesses.sort();
    businesses.dedup();
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        for b in &businesses {
            txn.execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), b.to_string().into()],
            ))
            .await?;
        }
    }
    webhooks::queue_fan_out(txn, &businesses, rows).await
}

/// A page of `scope`'s events after number `after` (oldest first), at most
/// `limit`, optionally of one `kind`.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    after: i64,
    limit: u64,
    event_type: Option<&str>,
) -> Result<Vec<EventView>> {
    let mut q = event::Entity::find()
        .filter(event::Column::BusinessId.eq(scope.id()))
        .filter(event::Column::Seq.gt(after))
        .order_by_asc(event::Column::Seq)
        .limit(limit);
    if let Some(t) = event_type {
        q = q.filter(event::Column::EventType.eq(t));
    }
    Ok(q.all(db).await?.into_iter().map(EventView::from).collect())
}

/// The number of `business_id`'s latest event (0: none yet).
pub async fn latest<C: ConnectionTrait>(db: &C, business_id: Uuid) -> Result<i64> {
    Ok(business::Entity::find_by_id(business_id)
        .select_only()
        .column(business::Column::EventSeq)
        .into_tuple::<i64>()
        .one(db)
        .await?
        .unwrap_or(0))
}
