//! The audit log: who did what to which business, when, from where.
//! Append-only (the database refuses UPDATE and DELETE). Changes write their
//! record inside their own transaction, so a change without its record (or
//! the reverse) cannot exist; reads that must be accounted for (secret
//! reveals) write theirs before any plaintext leaves the server.

use chrono::{DateTime, Utc};
use entity::audit_event;
use entity::enums::Role;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::{BusinessScope, Caller, Grant, Principal};
use crate::error::Result;

/// Where a request came from: client IP and request id (`x-request-id`);
/// extracted from a request by `http::extract`.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// TCP peer address.
    pub client_ip: Option<String>,
    /// The request id set by the request-id layer.
    pub request_id: Option<String>,
}

/// Who acts, in which role, from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user, or the API key (role `api_key`); `None` for the system
    /// (jobs, CLI maintenance).
    pub user_id: Option<Uuid>,
    /// `owner`, `manager`, `admin`, `api_key` or `system`.
    pub role: &'static str,
    /// Request origin.
    pub meta: RequestMeta,
}

impl Actor {
    /// A signed-in user acting in `role`.
    pub fn user(caller: Caller, role: Role, meta: RequestMeta) -> Actor {
        Actor {
            user_id: Some(caller.user_id),
            role: role.as_str(),
            meta,
        }
    }

    /// Whoever `principal` is, acting in a business through `scope` (the
    /// role that granted it, or `api_key` with the key's id).
    pub fn acting(principal: Principal, scope: &BusinessScope, meta: RequestMeta) -> Actor {
        match (principal, scope.grant()) {
            (Principal::User(caller), Grant::Role(role)) => Actor::user(caller, role, meta),
            (Principal::User(caller), Grant::ApiKey) => Actor::user(caller, caller.role, meta),
            (Principal::Key(key), _) => Actor {
                user_id: Some(key.key_id),
                role: "api_key",
                meta,
            },
        }
    }

    /// The system itself (e.g. `switchboard keys rotate`).
    pub fn system() -> Actor {
        Actor {
            user_id: None,
            role: "system",
            meta: RequestMeta::default(),
        }
    }
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused by policy.
    Denied,
    /// Attempted and failed (e.g. a ciphertext failed authentication).
    Failure,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

/// Records a change platform staff made to a business's own records
/// (companies, channels) in the change's transaction `txn`: `staff` is the
/// admin acting, `None` when the business's own owner or key made it (their
/// changes are the business's event log, not the audit log). Target:
/// `{kind}/{id}`.
pub async fn staff_change<C: ConnectionTrait>(
    txn: &C,
    staff: Option<&Actor>,
    business_id: Uuid,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<()> {
    match staff {
        Some(actor) => {
            record(
                txn,
                actor,
                Some(business_id),
                action,
                target,
                Outcome::Success,
                detail,
            )
            .await
        }
        None => Ok(()),
    }
}

/// Appends one record through `db` (pass the change's transaction).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: &Actor,
    business_id: Option<Uuid>,
    action: &str,
    target: &str,
    outcome: Outcome,
    detail: serde_json::Value,
) -> Result<()> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        occurred_at: Set(Utc::now()),
        actor_id: Set(actor.user_id),
        actor_role: Set(actor.role.to_owned()),
        business_id: Set(business_id),
        action: Set(action.to_owned()),
        target: Set(target.to_owned()),
        outcome: Set(outcome.as_str().to_owned()),
        client_ip: Set(actor.meta.client_ip.clone()),
        request_id: Set(actor.meta.request_id.clone()),
        detail: Set(detail),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// One audit record as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Record id (UUIDv7: time-ordered).
    pub id: Uuid,
    /// When it happened.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub occurred_at: DateTime<Utc>,
    /// Who acted; `null` for the system.
    pub actor_id: Option<Uuid>,
    /// Their role.
    pub actor_role: String,
    /// The business concerned.
    pub business_id: Option<Uuid>,
    /// What was done, e.g. `secret.reveal`.
    pub action: String,
    /// On what, e.g. `telegram/bot_token`.
    pub target: String,
    /// `success`, `denied` or `failure`.
    pub outcome: String,
    /// Client IP.
    pub client_ip: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Extra facts.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl From<audit_event::Model> for AuditView {
    fn from(e: audit_event::Model) -> Self {
        AuditView {
            id: e.id,
            occurred_at: e.occurred_at,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            business_id: e.business_id,
            action: e.action,
            target: e.target,
            outcome: e.outcome,
            client_ip: e.client_ip,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

impl AuditView {
    /// The record as a business's owner sees it: what platform staff
    /// (admins, managers) and the system did shows their role only, not who
    /// they are, where they connected from, or the request id.
    pub fn for_owner(mut self) -> AuditView {
        if self.actor_role != Role::Owner.as_str() {
            self.actor_id = None;
            self.client_ip = None;
            self.request_id = None;
        }
        self
    }
}

/// Filters of the audit list.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Only this business.
    pub business_id: Option<Uuid>,
    /// Only this actor.
    pub actor_id: Option<Uuid>,
    /// Only this action.
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// A page of records matching `filter`, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditView>> {
    let mut q = audit_event::Entity::find().order_by_asc(audit_event::Column::Id);
    if let Some(b) = filter.business_id {
        q = q.filter(audit_event::Column::BusinessId.eq(b));
    }
    if let Some(a) = filter.actor_id {
        q = q.filter(audit_event::Column::ActorId.eq(a));
    }
    if let Some(a) = &filter.action {
        q = q.filter(audit_event::Column::Action.eq(a.as_str()));
    }
    if let Some(from) = filter.from {
        q = q.filter(audit_event::Column::OccurredAt.gte(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_event::Column::OccurredAt.lt(to));
    }
    if let Some(after) = page.after {
        q = q.filter(audit_event::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page, |e| e.id, AuditView::from))
}

/// Time of the latest record about `business_id`.
pub async fn last_activity<C: ConnectionTrait>(
    db: &C,
    business_id: Uuid,
) -> Result<Option<DateTime<Utc>>> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::BusinessId.eq(business_id))
        .order_by_desc(audit_event::Column::Id)
        .select_only()
        .column(audit_event::Column::OccurredAt)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await?)
}
