//! Stripe Connect onboarding (SPEC §3 "Connected account"; Stripe docs:
//! Connect, Express accounts, "Account Links", "Handle verification
//! updates"): each business may have one Express connected account so its
//! own customers pay it through the platform.
//!
//! - [`create_account`]: creates the account once (a deterministic
//!   `Idempotency-Key`, and the table's primary key on the business, so
//!   concurrent or retried calls end with one account) and stores what
//!   Stripe says of it.
//! - [`onboarding_link`]: an Account Link; its `refresh_url` is a
//!   Switchboard route ([`refresh_link`]) that makes a fresh link and
//!   redirects, since links expire within minutes.
//! - [`State`] is derived from Stripe's own fields ([`derive`]), never
//!   guessed; [`apply`] stores a new description when it is newer than the
//!   last (the event's `created`, then its id; a fetch counts as now), so
//!   `account.updated` deliveries in any order settle alike.
//! - [`remove`]: deletes (or, where Stripe refuses, rejects) the account
//!   and forgets it.
//! - n8n (SPEC seed, "Stripe ↔ n8n"): while the account is `enabled`, the
//!   business has an n8n credential its payment workflows call Stripe on
//!   the account's behalf with (`httpHeaderAuth`, `Stripe-Account: acct_…`;
//!   recorded as `stripe_account`); [`SyncN8n`], queued in the transaction
//!   of every change of state and of the removal, makes or deletes it.

use chrono::{DateTime, Utc};
use entity::connected_account as row;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Set,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Billing;
use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::events::{self, kind};
use crate::domain::tenancy::access::BusinessScope;
use crate::error::{Error, Result};
use crate::integrations::stripe::connect::Link;

/// Where a connected account stands, from Stripe's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The person has not finished Stripe's onboarding form
    /// (`details_submitted` false): send them through an onboarding link.
    OnboardingRequired,
    /// Submitted; Stripe is verifying it (`requirements.pending_verification`
    /// or `disabled_reason = requirements.pending_verification`, nothing due).
    PendingVerification,
    /// Submitted, but charges or payouts are off: `disabled_reason` and the
    /// `currently_due` / `past_due` lists say what Stripe needs.
    Restricted,
    /// Charges and payouts are enabled: the business can be paid.
    Enabled,
    /// Stripe rejected the account (`disabled_reason` `rejected.*`).
    Rejected,
}

impl State {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            State::OnboardingRequired => "onboarding_required",
            State::PendingVerification => "pending_verification",
            State::Restricted => "restricted",
            State::Enabled => "enabled",
            State::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "pending_verification" => State::PendingVerification,
            "restricted" => State::Restricted,
            "enabled" => State::Enabled,
            "rejected" => State::Rejected,
            _ => State::OnboardingRequired,
        }
    }
}

/// What Stripe says of an account, as far as the state depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// `acct_…`.
    pub id: String,
    /// `charges_enabled`.
    pub charges_enabled: bool,
    /// `payouts_enabled`.
    pub payouts_enabled: bool,
    /// `details_submitted`.
    pub details_submitted: bool,
    /// `requirements.disabled_reason`.
    pub disabled_reason: Option<String>,
    /// `requirements.currently_due`.
    pub currently_due: Vec<String>,
    /// `requirements.past_due`.
    pub past_due: Vec<String>,
    /// `requirements.pending_verification`.
    pub pending_verification: Vec<String>,
}

impl From<&stripe_shared::Account> for Facts {
    fn from(a: &stripe_shared::Account) -> Facts {
        let r = a.requirements.as_ref();
        Facts {
            id: a.id.to_string(),
            charges_enabled: a.charges_enabled.unwrap_or(false),
            payouts_enabled: a.payouts_enabled.unwrap_or(false),
            details_submitted: a.details_submitted.unwrap_or(false),
            disabled_reason: r
                .and_then(|r| r.disabled_reason.as_ref())
                .map(|d| d.as_str().to_owned()),
            currently_due: r.and_then(|r| r.currently_due.clone()).unwrap_or_default(),
            past_due: r.and_then(|r| r.past_due.clone()).unwrap_or_default(),
            pending_verification: r
                .and_then(|r| r.pending_verification.clone())
                .unwrap_or_default(),
        }
    }
}

/// The state `f` means (Stripe docs: Connect, "Handle verification
/// updates"): rejected (`disabled_reason` `rejected.*`), else enabled
/// (charges and payouts), else onboarding required (details not
/// submitted), else pending verification (Stripe verifying, nothing due),
/// else restricted.
pub fn derive(f: &Facts) -> State {
    let reason = f.disabled_reason.as_deref().unwrap_or("");
    if reason.starts_with("rejected.") {
        State::Rejected
    } else if f.charges_enabled && f.payouts_enabled {
        State::Enabled
    } else if !f.details_submitted {
        State::OnboardingRequired
    } else if f.currently_due.is_empty()
        && f.past_due.is_empty()
        && (!f.pending_verification.is_empty()
            || reason == "requirements.pending_verification"
            || reason == "under_review")
    {
        State::PendingVerification
    } else {
        State::Restricted
    }
}

/// The business's connected account, as Switchboard last heard of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAccountView {
    /// Stripe's account id (`acct_…`).
    pub stripe_account_id: String,
    /// Where it stands.
    pub state: State,
    /// Whether it can take charges.
    pub charges_enabled: bool,
    /// Whether Stripe pays out to it.
    pub payouts_enabled: bool,
    /// Whether the onboarding form was submitted.
    pub details_submitted: bool,
    /// Why Stripe disabled it, if it did (`requirements.disabled_reason`).
    pub disabled_reason: Option<String>,
    /// What Stripe needs now (`requirements.currently_due`).
    pub currently_due: Vec<String>,
    /// What is overdue (`requirements.past_due`).
    pub past_due: Vec<String>,
    /// What Stripe is verifying (`requirements.pending_verification`).
    pub pending_verification: Vec<String>,
    /// When Switchboard last heard of it.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl From<row::Model> for ConnectedAccountView {
    fn from(m: row::Model) -> Self {
        ConnectedAccountView {
            stripe_account_id: m.stripe_account_id,
            state: State::parse(&m.state),
            charges_enabled: m.charges_enabled,
            payouts_enabled: m.payouts_enabled,
            details_submitted: m.details_submitted,
            disabled_reason: m.disabled_reason,
            currently_due: strings(&m.currently_due),
            past_due: strings(&m.past_due),
            pending_verification: strings(&m.pending_verification),
            updated_at: m.updated_at,
        }
    }
}

/// Where a description of an account comes from, for ordering (as
/// subscriptions are ordered): an event, created at a Unix second (older
/// than the stored watermark: stale; as old but saying something else: a
/// tie, settled by a fetch), or a fetch made at a Unix second (the truth as
/// of now: always applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// From event `id`, created at `at`.
    Event {
        /// Unix seconds.
        at: i64,
        /// The event's id.
        id: String,
    },
    /// Fetched from Stripe at this Unix second.
    Fetched(i64),
}

/// The audit action of a removal (also what moves the creation's
/// idempotency key on).
const REMOVED: &str = "connect.account_removed";

/// 404 `no_connected_account`.
fn missing() -> Error {
    Error::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_connected_account",
        "The business has no connected account",
    )
    .with_detail("Create one with POST /v1/connect/account.")
}

/// The business's connected account row.
pub async fn find<C: ConnectionTrait>(db: &C, business_id: Uuid) -> Result<Option<row::Model>> {
    Ok(row::Entity::find_by_id(business_id).one(db).await?)
}

/// The connected account `stripe_account_id` belongs to, if it is one of
/// ours.
pub async fn by_stripe_id<C: ConnectionTrait>(
    db: &C,
    stripe_account_id: &str,
) -> Result<Option<row::Model>> {
    Ok(row::Entity::find()
        .filter(row::Column::StripeAccountId.eq(stripe_account_id))
        .one(db)
        .await?)
}

/// The scope's business's connected account; 404 `no_connected_account`.
pub async fn get(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<ConnectedAccountView> {
    find(ctx.db, scope.id())
        .await?
        .map(Into::into)
        .ok_or_else(missing)
}

/// A two-letter country code (ISO 3166-1 alpha-2), upper case.
pub const COUNTRY_PATTERN: &str = "^[A-Z]{2}$";

/// Creates the business's Express account if it has none and returns it
/// (`true` when made now). Country: `country`, else
/// `stripe.connect_country`; email: the owner's. 503
/// `billing_unavailable` without Stripe.
pub async fn create_account(
    ctx: &Billing<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    country: Option<&str>,
) -> Result<(ConnectedAccountView, bool)> {
    let stripe = super::customer::stripe(ctx)?;
    let default_country = ctx
        .config
        .stripe
        .as_ref()
        .map_or("US", |s| s.connect_country.as_str());
    let country = country.unwrap_or(default_country);
    if !crate::domain::validate::matches(COUNTRY_PATTERN, country) {
        return Err(Error::invalid_field(
            "country",
            "an ISO 3166-1 alpha-2 code in upper case, e.g. US",
        ));
    }
    if let Some(existing) = find(ctx.db, scope.id()).await? {
        return Ok((existing.into(), false));
    }
    let business = entity::business::Entity::find_by_id(scope.id())
        .one(ctx.db)
        .await?
        .ok_or_else(Error::not_found)?;
    let owner = entity::user::Entity::find_by_id(business.owner_id)
        .one(ctx.db)
        .await?
        .ok_or_else(Error::not_found)?;
    // Idempotent at Stripe: concurrent and retried calls get one account;
    // each account removed before moves the key on.
    let generation = entity::audit_event::Entity::find()
        .filter(entity::audit_event::Column::BusinessId.eq(scope.id()))
        .filter(entity::audit_event::Column::Action.eq(REMOVED))
        .count(ctx.db)
        .await?;
    let account = stripe
        .create_express_account(scope.id(), generation, country, &owner.email)
        .await?;
    let facts = Facts::from(&account);
    let now = Utc::now();
    let txn = crate::db::begin_write(ctx.db).await?;
    let inserted = crate::db::upsert(
        &txn,
        [model(scope.id(), &facts, &fetched(now), now)],
        OnConflict::column(row::Column::BusinessId)
            .do_nothing()
            .to_owned(),
    )
    .await?;
    let created = inserted == 1;
    if created {
        entity::business::Entity::update_many()
            .col_expr(
                entity::business::Column::StripeAccountId,
                Expr::value(facts.id.clone()),
            )
            .filter(entity::business::Column::Id.eq(scope.id()))
            .exec(&txn)
            .await?;
        audit::record(
            &txn,
            actor,
            Some(scope.id()),
            "connect.account_created",
            &facts.id,
            Outcome::Success,
            serde_json::json!({ "country": country }),
        )
        .await?;
        events::record(
            &txn,
            scope.id(),
            kind::CONNECT_ACCOUNT_UPDATED,
            serde_json::json!({ "stripe_account_id": facts.id, "state": derive(&facts), "from": null }),
        )
        .await?;
        ctx.rules
            .jobs
            .enqueue(
                &txn,
                &SyncN8n {
                    business_id: scope.id(),
                },
            )
            .await?;
    }
    let stored = find(&txn, scope.id()).await?.ok_or_else(Error::not_found)?;
    txn.commit().await?;
    Ok((stored.into(), created))
}

fn fetched(now: DateTime<Utc>) -> Version {
    Version::Fetched(now.timestamp())
}

fn model(business_id: Uuid, f: &Facts, v: &Version, now: DateTime<Utc>) -> row::Model {
    row::Model {
        business_id,
        stripe_account_id: f.id.clone(),
        state: derive(f).as_str().to_owned(),
        charges_enabled: f.charges_enabled,
        payouts_enabled: f.payouts_enabled,
        details_submitted: f.details_submitted,
        disabled_reason: f.disabled_reason.clone(),
        currently_due: serde_json::json!(f.currently_due),
        past_due: serde_json::json!(f.past_due),
        pending_verification: serde_json::json!(f.pending_verification),
        version_at: match v {
            Version::Event { at, .. } | Version::Fetched(at) => *at,
        },
        version_event: match v {
            Version::Event { id, .. } => Some(id.clone()),
            Version::Fetched(_) => None,
        },
        refresh_token_hash: None,
        refresh_token_expires_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Stored.
    Stored,
    /// Older than what is stored, or the same: nothing changed.
    Stale,
    /// As old as what is stored but saying something else: the caller
    /// re-fetches the account and applies that.
    Tie,
}

/// Stores `facts` for connected account `current` as [`Version`] orders
/// it; records `connect.account_updated` when the state changes.
pub async fn apply<C: ConnectionTrait>(
    txn: &C,
    jobs: &crate::jobs::Queue,
    current: &row::Model,
    facts: &Facts,
    version: &Version,
) -> Result<Applied> {
    let incoming = model(current.business_id, facts, version, current.updated_at);
    let same = incoming.stripe_account_id == current.stripe_account_id
        && incoming.charges_enabled == current.charges_enabled
        && incoming.payouts_enabled == current.payouts_enabled
        && incoming.details_submitted == current.details_submitted
        && incoming.disabled_reason == current.disabled_reason
        && incoming.currently_due == current.currently_due
        && incoming.past_due == current.past_due
        && incoming.pending_verification == current.pending_verification;
    let (watermark, event) = match version {
        Version::Event { at, id } => {
            if *at < current.version_at || current.version_event.as_deref() == Some(id.as_str()) {
                return Ok(Applied::Stale);
            }
            if *at == current.version_at && !same {
                return Ok(Applied::Tie);
            }
            (*at, Some(id.clone()))
        }
        Version::Fetched(at) if *at >= current.version_at => (*at, None),
        Version::Fetched(_) => (current.version_at, current.version_event.clone()),
    };
    if same && watermark == current.version_at {
        return Ok(Applied::Stale);
    }
    let from = State::parse(&current.state);
    let to = derive(facts);
    let mut active: row::ActiveModel = current.clone().into();
    active.state = Set(to.as_str().to_owned());
    active.charges_enabled = Set(facts.charges_enabled);
    active.payouts_enabled = Set(facts.payouts_enabled);
    active.details_submitted = Set(facts.details_submitted);
    active.disabled_reason = Set(facts.disabled_reason.clone());
    active.currently_due = Set(incoming.currently_due);
    active.past_due = Set(incoming.past_due);
    active.pending_verification = Set(incoming.pending_verification);
    active.version_at = Set(watermark);
    active.version_event = Set(event);
    active.updated_at = Set(Utc::now());
    active.update(txn).await?;
    if from != to {
        events::record(
            txn,
            current.business_id,
            kind::CONNECT_ACCOUNT_UPDATED,
            serde_json::json!({
                "stripe_account_id": current.stripe_account_id,
                "state": to,
                "from": from,
                "disabled_reason": facts.disabled_reason,
                "currently_due": facts.currently_due,
            }),
        )
        .await?;
        jobs.enqueue(
            txn,
            &SyncN8n {
                business_id: current.business_id,
            },
        )
        .await?;
    }
    Ok(Applied::Stored)
}

/// Re-reads the scope's business's account from Stripe and stores it (the
/// truth as of now).
pub async fn refresh(ctx: &Billing<'_>, business_id: Uuid) -> Result<Option<row::Model>> {
    let stripe = super::customer::stripe(ctx)?;
    let Some(current) = find(ctx.db, business_id).await? else {
        return Ok(None);
    };
    let Some(account) = stripe.retrieve_account(&current.stripe_account_id).await? else {
        return Ok(Some(current));
    };
    let txn = crate::db::begin_write(ctx.db).await?;
    super::entitlement::lock_business(&txn, business_id).await?;
    if let Some(current) = find(&txn, business_id).await? {
        apply(
            &txn,
            ctx.rules.jobs,
            &current,
            &Facts::from(&account),
            &fetched(Utc::now()),
        )
        .await?;
    }
    let stored = find(&txn, business_id).await?;
    txn.commit().await?;
    Ok(stored)
}

/// How long the refresh link of an onboarding link works (Stripe sends the
/// person there when the Account Link expired or was used).
pub const REFRESH_TTL_DAYS: i64 = 7;

/// An onboarding link for the scope's business's account. A new refresh
/// token is issued each time (the previous one stops working).
pub async fn onboarding_link(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<Link> {
    let stripe = super::customer::stripe(ctx)?;
    let current = find(ctx.db, scope.id()).await?.ok_or_else(missing)?;
    let token = crate::auth::tokens::opaque_token();
    row::Entity::update_many()
        .col_expr(
            row::Column::RefreshTokenHash,
            Expr::value(crate::auth::tokens::sha256_hex(&token)),
        )
        .col_expr(
            row::Column::RefreshTokenExpiresAt,
            Expr::value(Utc::now() + chrono::Duration::days(REFRESH_TTL_DAYS)),
        )
        .filter(row::Column::BusinessId.eq(scope.id()))
        .exec(ctx.db)
        .await?;
    stripe
        .create_onboarding_link(
            &current.stripe_account_id,
            &refresh_url(ctx, &token),
            &return_url(ctx),
        )
        .await
}

fn refresh_url(ctx: &Billing<'_>, token: &str) -> String {
    format!(
        "{}/connect/stripe/refresh/{token}",
        ctx.config.public_base()
    )
}

fn return_url(ctx: &Billing<'_>) -> String {
    ctx.config
        .stripe
        .as_ref()
        .and_then(|s| s.connect_return_url.clone())
        .unwrap_or_else(|| format!("{}/billing/connect", ctx.config.public_base()))
}

/// A fresh onboarding link for the account whose refresh link holds
/// `token` (Stripe sent the person back: the last link expired or was
/// used); `None` for a token that opens nothing.
pub async fn refresh_link(ctx: &Billing<'_>, token: &str) -> Result<Option<Link>> {
    let stripe = super::customer::stripe(ctx)?;
    if token.is_empty() || token.len() > 100 {
        return Ok(None);
    }
    let Some(current) = row::Entity::find()
        .filter(row::Column::RefreshTokenHash.eq(crate::auth::tokens::sha256_hex(token)))
        .one(ctx.db)
        .await?
        .filter(|r| r.refresh_token_expires_at.is_some_and(|t| t > Utc::now()))
    else {
        return Ok(None);
    };
    Ok(Some(
        stripe
            .create_onboarding_link(
                &current.stripe_account_id,
                &refresh_url(ctx, token),
                &return_url(ctx),
            )
            .await?,
    ))
}

/// An Express dashboard login link; 409 `onboarding_incomplete` until the
/// onboarding form is submitted (Stripe has no dashboard before).
pub async fn login_link(ctx: &Billing<'_>, scope: &BusinessScope) -> Result<Link> {
    let stripe = super::customer::stripe(ctx)?;
    let current = find(ctx.db, scope.id()).await?.ok_or_else(missing)?;
    if !current.details_submitted {
        return Err(Error::conflict(
            "onboarding_incomplete",
            "The Express dashboard opens once onboarding is submitted: finish it through an onboarding link first.",
        ));
    }
    stripe.create_login_link(&current.stripe_account_id).await
}

/// Disconnects the scope's business's account: deleted at Stripe (or
/// rejected where Stripe refuses the deletion), then forgotten here.
/// Returns the account's id and whether Stripe deleted it. 404
/// `no_connected_account` without one; 409 `purchases_open` while
/// customers hold payment links to it.
pub async fn remove(
    ctx: &Billing<'_>,
    actor: &Actor,
    scope: &BusinessScope,
) -> Result<(String, bool)> {
    let current = find(ctx.db, scope.id()).await?.ok_or_else(missing)?;
    let stripe = super::customer::stripe(ctx)?;
    let open = entity::purchase::Entity::find()
        .filter(entity::purchase::Column::BusinessId.eq(scope.id()))
        .filter(entity::purchase::Column::Status.eq("payment_link_sent"))
        .count(ctx.db)
        .await?;
    if open > 0 {
        return Err(Error::conflict(
            "purchases_open",
            "Customers still hold payment links to this account: wait until they are paid or expire (Checkout links last 24 hours).",
        )
        .with("open_purchases", open));
    }
    let deleted = stripe.remove_account(&current.stripe_account_id).await?;
    let txn = crate::db::begin_write(ctx.db).await?;
    row::Entity::delete_by_id(scope.id()).exec(&txn).await?;
    entity::business::Entity::update_many()
        .col_expr(
            entity::business::Column::StripeAccountId,
            Expr::value(Option::<String>::None),
        )
        .filter(entity::business::Column::Id.eq(scope.id()))
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        REMOVED,
        &current.stripe_account_id,
        Outcome::Success,
        serde_json::json!({ "deleted": deleted }),
    )
    .await?;
    events::record(
        &txn,
        scope.id(),
        kind::CONNECT_ACCOUNT_UPDATED,
        serde_json::json!({
            "stripe_account_id": current.stripe_account_id,
            "state": null,
            "from": State::parse(&current.state),
            "removed": if deleted { "deleted" } else { "rejected" },
        }),
    )
    .await?;
    ctx.rules
        .jobs
        .enqueue(
            &txn,
            &SyncN8n {
                business_id: scope.id(),
            },
        )
        .await?;
    txn.commit().await?;
    Ok((current.stripe_account_id, deleted))
}

/// Bring the business's n8n credential for its connected account in line
/// with the account (see the module docs).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct SyncN8n {
    /// The business.
    pub business_id: Uuid,
}

impl crate::jobs::Task for SyncN8n {
    const KIND: &'static str = crate::jobs::queue::kind::CONNECT_SYNC_N8N;
}

/// The [`SyncN8n`] task: with n8n configured, an `enabled` account has
/// its credential (made once), and a business without one (or whose
/// account is not enabled) has none. Safe to repeat; reads the account
/// when it runs, so the latest state wins.
pub async fn sync_n8n(
    db: &sea_orm::DatabaseConnection,
    n8n: Option<&crate::integrations::n8n::N8nApi>,
    task: &SyncN8n,
) -> Result<()> {
    use crate::domain::automation::{self, purpose};
    let Some(n8n) = n8n else {
        return Ok(());
    };
    let account = find(db, task.business_id).await?;
    let recorded = automation::find(db, task.business_id, None, purpose::STRIPE_ACCOUNT).await?;
    match (account, recorded) {
        (Some(a), recorded) if State::parse(&a.state) == State::Enabled => {
            if recorded.is_none() {
                let name = format!("Switchboard Stripe account (business {})", task.business_id);
                automation::credential(db, task.business_id, None, purpose::STRIPE_ACCOUNT, || {
                    n8n.create_credential(
                        &name,
                        "httpHeaderAuth",
                        serde_json::json!({ "name": "Stripe-Account", "value": a.stripe_account_id }),
                    )
                })
                .await?;
            }
        }
        (_, Some(o)) => {
            automation::remove(n8n, &o).await?;
            entity::n8n_object::Entity::delete_by_id(o.id)
                .exec(db)
                .await?;
        }
        (_, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            id: "acct_1".into(),
            charges_enabled: false,
            payouts_enabled: false,
            details_submitted: false,
            disabled_reason: Some("requirements.past_due".into()),
            currently_due: vec!["external_account".into()],
            past_due: vec![],
            pending_verification: vec![],
        }
    }

    #[test]
    fn states_come_from_stripes_fields() {
        let f = facts();
        assert_eq!(derive(&f), State::OnboardingRequired);
        let submitted = Facts {
            details_submitted: true,
            ..f.clone()
        };
        assert_eq!(derive(&submitted), State::Restricted);
        let verifying = Facts {
            details_submitted: true,
            disabled_reason: Some("requirements.pending_verification".into()),
            currently_due: vec![],
            pending_verification: vec!["individual.verification.document".into()],
            ..f.clone()
        };
        assert_eq!(derive(&verifying), State::PendingVerification);
        let enabled = Facts {
            details_submitted: true,
            charges_enabled: true,
            payouts_enabled: true,
            disabled_reason: None,
            currently_due: vec![],
            ..f.clone()
        };
        assert_eq!(derive(&enabled), State::Enabled);
        let half = Facts {
            payouts_enabled: false,
            ..enabled.clone()
        };
        assert_eq!(derive(&half), State::Restricted);
        let rejected = Facts {
            disabled_reason: Some("rejected.fraud".into()),
            ..enabled
        };
        assert_eq!(derive(&rejected), State::Rejected);
    }
}
