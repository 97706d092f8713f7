//! Outgoing webhooks: a business's own endpoints receive its events, signed
//! per the Standard Webhooks specification (`webhook-id`: the event's id,
//! `webhook-timestamp`: Unix seconds, `webhook-signature: v1,<base64
//! HMAC-SHA256 of "{id}.{timestamp}.{body}">`, the `standardwebhooks`
//! crate), so any receiver can check them with a Standard Webhooks library.
//!
//! - Endpoints: a URL (checked against SSRF: [`crate::integrations::ssrf`]),
//!   an optional filter of event types, and a signing secret
//!   (`whsec_` + base64 of 32 random bytes) shown once at creation and
//!   rollable: after a roll the previous secret keeps signing too for
//!   [`ROLL_GRACE_HOURS`] (both signatures in the header), so receivers can
//!   switch without losing a delivery. Secrets are sealed under the vault's
//!   keys, bound to their endpoint.
//! - Deliveries: an event's [`FanOut`] task (queued in the transaction of
//!   the change) makes one delivery per matching enabled endpoint, each a
//!   [`Deliver`] task of the job runner, retried with backoff for about
//!   three days (`webhooks.max_attempts`, from `webhooks.retry_base_secs`
//!   doubling, capped at 12 h). Every attempt's outcome is kept in the
//!   endpoint's delivery log.
//! - An endpoint whose delivery still fails after every retry is disabled
//!   (`disabled_reason`), and the owner is emailed; re-enabling it (PATCH)
//!   starts over.

use chrono::{DateTime, Duration, Utc};
use entity::webhook::{delivery, endpoint};
use entity::{business, event, user};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{EventView, kind};
use crate::crypto::{Binding, Keyring, Sealed};
use crate::domain::audit::{self, Actor, Outcome};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::tenancy::access::BusinessScope;
use crate::domain::validate;
use crate::error::{Error, Result};
use crate::integrations::ssrf;
use crate::jobs::queue::{Task, kind as job_kind};

/// Hours the previous secret keeps signing after a roll.
pub const ROLL_GRACE_HOURS: i64 = 24;
/// Longest description.
pub const DESCRIPTION_MAX: usize = 200;
/// How long a receiver has to answer.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// What endpoint management needs: the database, the keyring (secrets) and
/// whether private addresses are allowed (`webhooks.allow_private_targets`).
#[derive(Clone, Copy)]
pub struct Endpoints<'a> {
    /// The database pool.
    pub db: &'a DatabaseConnection,
    /// Seals the signing secrets.
    pub keyring: &'a Keyring,
    /// Allow loopback and private addresses (tests, private networks).
    pub allow_private: bool,
}

/// The signing secrets of an endpoint, sealed together.
#[derive(Serialize, Deserialize)]
struct Secrets {
    current: String,
    previous: Option<(String, DateTime<Utc>)>,
}

fn new_secret() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn binding(e: &endpoint::Model) -> Binding<'static> {
    Binding {
        business_id: e.business_id,
        secret_id: e.id,
        provider: "webhook_endpoint",
        name: "signing_secrets",
    }
}

fn seal(keyring: &Keyring, business_id: Uuid, id: Uuid, secrets: &Secrets) -> Result<Sealed> {
    let plain = Zeroizing::new(serde_json::to_vec(secrets).map_err(Error::internal)?);
    keyring
        .seal(
            &Binding {
                business_id,
                secret_id: id,
                provider: "webhook_endpoint",
                name: "signing_secrets",
            },
            &plain,
        )
        .map_err(Error::internal)
}

fn sealed_of(e: &endpoint::Model) -> Sealed {
    Sealed {
        ciphertext: e.secret_ciphertext.clone(),
        nonce: e.secret_nonce.clone(),
        wrapped_dek: e.secret_wrapped_dek.clone(),
        dek_nonce: e.secret_dek_nonce.clone(),
        key_id: e.secret_key_id.clone(),
        version: e.secret_version,
    }
}

fn open(keyring: &Keyring, e: &endpoint::Model) -> Result<Secrets> {
    let plain = keyring
        .open(&binding(e), &sealed_of(e))
        .map_err(|err| Error::internal(format!("webhook secret of {}: {err}", e.id)))?;
    serde_json::from_slice(&plain).map_err(Error::internal)
}

fn store_seal(a: &mut endpoint::ActiveModel, s: Sealed) {
    a.secret_ciphertext = Set(s.ciphertext);
    a.secret_nonce = Set(s.nonce);
    a.secret_wrapped_dek = Set(s.wrapped_dek);
    a.secret_dek_nonce = Set(s.dek_nonce);
    a.secret_key_id = Set(s.key_id);
    a.secret_version = Set(s.version);
}

/// An endpoint as lists show it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    /// Endpoint id.
    pub id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// Event types it receives; empty: every type.
    pub event_types: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why it was disabled, if it was.
    pub disabled_reason: Option<String>,
    /// When it was created.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<endpoint::Model> for EndpointView {
    fn from(e: endpoint::Model) -> EndpointView {
        EndpointView {
            event_types: serde_json::from_str(&e.event_types).unwrap_or_default(),
            id: e.id,
            url: e.url,
            description: e.description,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

/// An endpoint just made, or whose secret was just rolled: the only time
/// its signing secret is shown.
#[derive(Serialize, ToSchema)]
pub struct EndpointWithSecret {
    /// The signing secret (`whsec_…`): verify deliveries with it. Store it
    /// now; it cannot be shown again.
    pub secret: String,
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: EndpointView,
}

impl std::fmt::Debug for EndpointWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointWithSecret")
            .field("secret", &"[redacted]")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// What an endpoint is made or changed with.
#[derive(Debug, Default)]
pub struct EndpointInput {
    /// The URL (`http(s)`, public unless allowed).
    pub url: Option<String>,
    /// A description (≤ 200 characters; empty clears it).
    pub description: Option<String>,
    /// Event types (each one of [`kind::ALL`]); empty: every type.
    pub event_types: Option<Vec<String>>,
    /// Enable (re-enabling clears the failure count) or disable.
    pub enabled: Option<bool>,
}

async fn checked_url(h: &Endpoints<'_>, raw: &str) -> Result<String> {
    if !validate::is_url(raw) {
        return Err(Error::invalid_field(
            "url",
            format!(
                "an http(s) URL such as https://example.com/hooks, a DNS name or IPv4 address, at most {} characters",
                validate::URL_MAX
            ),
        ));
    }
    ssrf::vet(raw, h.allow_private)
        .await
        .map_err(|e| Error::invalid_field("url", e.to_string()))?;
    Ok(raw.to_owned())
}

fn checked_types(types: Vec<String>) -> Result<String> {
    if let Some(bad) = types.iter().find(|t| !kind::ALL.contains(&t.as_str())) {
        return Err(Error::invalid_field(
            "event_types",
            format!(
                "unknown event type `{bad}`; one of {}",
                kind::ALL.join(", ")
            ),
        ));
    }
    let mut types = types;
    types.sort();
    types.dedup();
    serde_json::to_string(&types).map_err(Error::internal)
}

fn checked_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > DESCRIPTION_MAX => Err(Error::invalid_field(
            "description",
            format!("at most {DESCRIPTION_MAX} characters"),
        )),
        Some(d) if !validate::matches(validate::TEXT_PATTERN, &d) => Err(Error::invalid_field(
            "description",
            "one line without control characters",
        )),
        Some(d) if d.trim().is_empty() => Ok(None),
        d => Ok(d),
    }
}

async fn find<C: ConnectionTrait>(
    db: &C,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<endpoint::Model> {
    endpoint::Entity::find_by_id(id)
        .filter(endpoint::Column::BusinessId.eq(scope.id()))
        .one(db)
        .await?
        .ok_or_else(Error::not_found)
}

/// Makes an endpoint of `scope`'s business; its secret is in the answer
/// only. Recorded as `webhook_endpoint.create`. 422 for a bad or non-public
/// URL, an unknown event type or a long description.
pub async fn create(
    h: &Endpoints<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    input: EndpointInput,
) -> Result<EndpointWithSecret> {
    let url = checked_url(h, input.url.as_deref().unwrap_or_default()).await?;
    let types = checked_types(input.event_types.unwrap_or_default())?;
    let description = checked_description(input.description)?;
    let id = Uuid::now_v7();
    let secret = new_secret();
    let sealed = seal(
        h.keyring,
        scope.id(),
        id,
        &Secrets {
            current: secret.clone(),
            previous: None,
        },
    )?;
    let now = Utc::now();
    let mut row = endpoint::ActiveModel {
        id: Set(id),
        business_id: Set(scope.id()),
        url: Set(url),
        description: Set(description),
        event_types: Set(types),
        enabled: Set(input.enabled.unwrap_or(true)),
        disabled_reason: Set(None),
        consecutive_failures: Set(0),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    };
    store_seal(&mut row, sealed);
    let txn = crate::db::begin_write(h.db).await?;
    let row = row.insert(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        "webhook_endpoint.create",
        &format!("webhook_endpoint/{id}"),
        Outcome::Success,
        json!({ "url": row.url }),
    )
    .await?;
    txn.commit().await?;
    Ok(EndpointWithSecret {
        secret,
        endpoint: row.into(),
    })
}

/// A page of `scope`'s endpoints, oldest first.
pub async fn list(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    page: PageRequest,
) -> Result<Page<EndpointView>> {
    let mut q = endpoint::Entity::find()
        .filter(endpoint::Column::BusinessId.eq(scope.id()))
        .order_by_asc(endpoint::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(endpoint::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page, |e| e.id, EndpointView::from))
}

/// One endpoint of `scope`'s business.
pub async fn get(db: &DatabaseConnection, scope: &BusinessScope, id: Uuid) -> Result<EndpointView> {
    Ok(find(db, scope, id).await?.into())
}

/// Changes an endpoint. Recorded as `webhook_endpoint.update`.
pub async fn update(
    h: &Endpoints<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
    input: EndpointInput,
) -> Result<EndpointView> {
    let url = match &input.url {
        Some(u) => Some(checked_url(h, u).await?),
        None => None,
    };
    let types = input.event_types.map(checked_types).transpose()?;
    let txn = crate::db::begin_write(h.db).await?;
    let row = find(&txn, scope, id).await?;
    let mut a = row.into_active_model();
    if let Some(url) = url {
        a.url = Set(url);
    }
    if let Some(types) = types {
        a.event_types = Set(types);
    }
    if input.description.is_some() {
        a.description = Set(checked_description(input.description)?);
    }
    if let Some(enabled) = input.enabled {
        a.enabled = Set(enabled);
        if enabled {
            a.disabled_reason = Set(None);
            a.consecutive_failures = Set(0);
        } else {
            a.disabled_reason = Set(Some("disabled by the business".into()));
        }
    }
    a.updated_at = Set(Utc::now());
    let row = a.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        "webhook_endpoint.update",
        &format!("webhook_endpoint/{id}"),
        Outcome::Success,
        json!({ "url": row.url, "enabled": row.enabled }),
    )
    .await?;
    txn.commit().await?;
    Ok(row.into())
}

/// Deletes an endpoint and its delivery log; pending deliveries to it are
/// dropped. Recorded as `webhook_endpoint.delete`.
pub async fn delete(
    db: &DatabaseConnection,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<()> {
    let txn = crate::db::begin_write(db).await?;
    find(&txn, scope, id).await?;
    delivery::Entity::delete_many()
        .filter(delivery::Column::EndpointId.eq(id))
        .exec(&txn)
        .await?;
    endpoint::Entity::delete_by_id(id).exec(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        "webhook_endpoint.delete",
        &format!("webhook_endpoint/{id}"),
        Outcome::Success,
        json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Makes a new signing secret for an endpoint (shown in the answer only);
/// the previous one keeps signing beside it for [`ROLL_GRACE_HOURS`].
/// Recorded as `webhook_endpoint.roll_secret`.
pub async fn roll_secret(
    h: &Endpoints<'_>,
    actor: &Actor,
    scope: &BusinessScope,
    id: Uuid,
) -> Result<EndpointWithSecret> {
    let txn = crate::db::begin_write(h.db).await?;
    let row = find(&txn, scope, id).await?;
    let old = open(h.keyring, &row)?;
    let secret = new_secret();
    let sealed = seal(
        h.keyring,
        row.business_id,
        row.id,
        &Secrets {
            current: secret.clone(),
            previous: Some((old.current, Utc::now() + Duration::hours(ROLL_GRACE_HOURS))),
        },
    )?;
    let mut a = row.into_active_model();
    store_seal(&mut a, sealed);
    a.updated_at = Set(Utc::now());
    let row = a.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        Some(scope.id()),
        "webhook_endpoint.roll_secret",
        &format!("webhook_endpoint/{id}"),
        Outcome::Success,
        json!({ "previous_valid_hours": ROLL_GRACE_HOURS }),
    )
    .await?;
    txn.commit().await?;
    Ok(EndpointWithSecret {
        secret,
        endpoint: row.into(),
    })
}

/// One delivery of an event to an endpoint, as its log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id.
    pub id: Uuid,
    /// The event's id (`webhook-id`).
    pub event_id: Uuid,
    /// The event's number.
    pub event_seq: i64,
    /// The event's type.
    pub event_type: String,
    /// `pending` (queued or retrying), `succeeded` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// HTTP status of the last attempt, if it got an answer.
    pub last_status: Option<i32>,
    /// What went wrong last, if anything.
    pub last_error: Option<String>,
    /// Last attempt.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it was accepted.
    #[serde(serialize_with = "crate::rfc3339::serialize_option")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was queued.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub created_at: DateTime<Utc>,
}

impl From<delivery::Model> for DeliveryView {
    fn from(d: delivery::Model) -> DeliveryView {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_seq: d.event_seq,
            event_type: d.event_type,
            state: d.state,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_attempt_at: d.last_attempt_at,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

/// An endpoint's delivery log, oldest first.
pub async fn deliveries(
    db: &DatabaseConnection,
    scope: &BusinessScope,
    endpoint_id: Uuid,
    page: PageRequest,
) -> Result<Page<DeliveryView>> {
    find(db, scope, endpoint_id).await?;
    let mut q = delivery::Entity::find()
        .filter(delivery::Column::EndpointId.eq(endpoint_id))
        .order_by_asc(delivery::Column::Id);
    if let Some(after) = page.after {
        q = q.filter(delivery::Column::Id.gt(after));
    }
    let rows = q.limit(page.limit + 1).all(db).await?;
    Ok(Page::from_rows(rows, page, |d| d.id, DeliveryView::from))
}

/// The `webhook.fan_out` task: make the deliveries of one event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOut {
    /// The business.
    pub business_id: Uuid,
    /// The event's number.
    pub seq: i64,
}

impl Task for FanOut {
    const KIND: &'static str = job_kind::WEBHOOK_FAN_OUT;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}:{}", Self::KIND, self.business_id, self.seq))
    }
}

/// The `webhook.deliver` task: one delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Deliver {
    /// `webhook_deliveries.id`.
    pub delivery_id: Uuid,
}

impl Task for Deliver {
    const KIND: &'static str = job_kind::WEBHOOK_DELIVER;

    fn dedup_key(&self) -> Option<String> {
        Some(format!("{}:{}", Self::KIND, self.delivery_id))
    }
}

/// Attempts of a fan-out (it only writes rows).
pub const FAN_OUT_ATTEMPTS: i32 = 10;

/// Queues the fan-out of `rows` (events just recorded in `txn`) for those
/// of `businesses` that have an enabled endpoint (one query; none: nothing
/// queued).
pub(crate) async fn queue_fan_out<C: ConnectionTrait>(
    txn: &C,
    businesses: &[Uuid],
    rows: &[event::Model],
) -> Result<()> {
    let with_endpoints: Vec<Uuid> = endpoint::Entity::find()
        .select_only()
        .column(endpoint::Column::BusinessId)
        .filter(endpoint::Column::BusinessId.is_in(businesses.iter().copied()))
        .filter(endpoint::Column::Enabled.eq(true))
        .distinct()
        .into_tuple()
        .all(txn)
        .await?;
    for row in rows
        .iter()
        .filter(|r| with_endpoints.contains(&r.business_id))
    {
        let task = FanOut {
            business_id: row.business_id,
            seq: row.seq,
        };
        crate::jobs::queue::insert(
            txn,
            FanOut::KIND,
            serde_json::to_string(&task).map_err(Error::internal)?,
            task.dedup_key(),
            Utc::now(),
            FAN_OUT_ATTEMPTS,
        )
        .await?;
    }
    Ok(())
}

/// Makes the deliveries of event `task` to the business's enabled endpoints
/// that want its type (once each, even if run again), queuing each as a
/// [`Deliver`] task on `jobs`.
pub async fn fan_out(
    db: &DatabaseConnection,
    jobs: &crate::jobs::Queue,
    task: &FanOut,
) -> Result<usize> {
    let txn = crate::db::begin_write(db).await?;
    let Some(ev) = event::Entity::find()
        .filter(event::Column::BusinessId.eq(task.business_id))
        .filter(event::Column::Seq.eq(task.seq))
        .one(&txn)
        .await?
    else {
        return Ok(0);
    };
    let endpoints = endpoint::Entity::find()
        .filter(endpoint::Column::BusinessId.eq(task.business_id))
        .filter(endpoint::Column::Enabled.eq(true))
        .all(&txn)
        .await?;
    let done: Vec<Uuid> = delivery::Entity::find()
        .select_only()
        .column(delivery::Column::EndpointId)
        .filter(delivery::Column::EventId.eq(ev.id))
        .into_tuple()
        .all(&txn)
        .await?;
    let mut made = 0;
    for e in endpoints {
        let types: Vec<String> = serde_json::from_str(&e.event_types).unwrap_or_default();
        if done.contains(&e.id) || !(types.is_empty() || types.contains(&ev.event_type)) {
            continue;
        }
        let id = Uuid::now_v7();
        delivery::ActiveModel {
            id: Set(id),
            endpoint_id: Set(e.id),
            business_id: Set(ev.business_id),
            event_id: Set(ev.id),
            event_seq: Set(ev.seq),
            event_type: Set(ev.event_type.clone()),
            state: Set("pending".into()),
            attempts: Set(0),
            last_attempt_at: Set(None),
            last_status: Set(None),
            last_error: Set(None),
            created_at: Set(Utc::now()),
            delivered_at: Set(None),
        }
        .insert(&txn)
        .await?;
        jobs.enqueue(&txn, &Deliver { delivery_id: id }).await?;
        made += 1;
    }
    txn.commit().await?;
    Ok(made)
}

/// What a delivery attempt needs: the database, the keyring (secrets), the
/// mailer (the disabled-endpoint notice), the SSRF switch and the number of
/// attempts before a delivery fails for good.
#[derive(Clone, Copy)]
pub struct Delivery<'a> {
    /// The database pool.
    pub db: &'a DatabaseConnection,
    /// Opens the signing secrets.
    pub keyring: &'a Keyring,
    /// Tells the owner when an endpoint is disabled.
    pub mailer: &'a crate::mail::Mailer,
    /// Allow loopback and private addresses.
    pub allow_private: bool,
    /// Attempts before a delivery fails for good (`webhooks.max_attempts`).
    pub max_attempts: i32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Nothing to do (delivered already, or its endpoint is gone).
    Settled,
    /// The endpoint accepted it.
    Delivered,
    /// It failed and will be retried (the job runner's backoff).
    Retry(String),
    /// It failed for the last time; the endpoint was disabled.
    GaveUp(String),
}

/// The signature header of `body` as event `msg_id` at `timestamp`: one
/// `v1,…` per live secret (the previous one during a roll's grace).
pub fn signature(
    secrets_in_force: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String> {
    let mut sigs = Vec::with_capacity(secrets_in_force.len());
    for s in secrets_in_force {
        let wh = standardwebhooks::Webhook::new(s).map_err(Error::internal)?;
        sigs.push(wh.sign(msg_id, timestamp, body).map_err(Error::internal)?);
    }
    Ok(sigs.join(" "))
}

/// One attempt of delivery `id` (see the module docs for what follows).
pub async fn attempt(h: &Delivery<'_>, id: Uuid) -> Result<Attempt> {
    let Some(d) = delivery::Entity::find_by_id(id).one(h.db).await? else {
        return Ok(Attempt::Settled);
    };
    if d.state != "pending" {
        return Ok(Attempt::Settled);
    }
    let Some(e) = endpoint::Entity::find_by_id(d.endpoint_id)
        .one(h.db)
        .await?
    else {
        return Ok(Attempt::Settled);
    };
    if !e.enabled {
        finish(
            h.db,
            &d,
            "failed",
            None,
            Some("the endpoint is disabled".into()),
        )
        .await?;
        return Ok(Attempt::Settled);
    }
    let Some(ev) = event::Entity::find()
        .filter(event::Column::BusinessId.eq(d.business_id))
        .filter(event::Column::Seq.eq(d.event_seq))
        .one(h.db)
        .await?
    else {
        finish(h.db, &d, "failed", None, Some("the event is gone".into())).await?;
        return Ok(Attempt::Settled);
    };
    let body = serde_json::to_vec(&EventView::from(ev)).map_err(Error::internal)?;
    let secrets = open(h.keyring, &e)?;
    let now = Utc::now();
    let mut in_force = vec![secrets.current.as_str()];
    if let Some((prev, until)) = &secrets.previous
        && *until > now
    {
        in_force.push(prev.as_str());
    }
    let msg_id = d.event_id.to_string();
    let timestamp = now.timestamp();
    let sig = signature(&in_force, &msg_id, timestamp, &body)?;
    let outcome = post(h, &e.url, &msg_id, timestamp, &sig, body).await;
    let attempts = d.attempts + 1;
    match outcome {
        Ok(status) if (200..300).contains(&status) => {
            record_attempt(h.db, &d, "succeeded", Some(status), None, true).await?;
            endpoint::Entity::update_many()
                .col_expr(endpoint::Column::ConsecutiveFailures, Expr::value(0))
                .filter(endpoint::Column::Id.eq(e.id))
                .exec(h.db)
                .await?;
            Ok(Attempt::Delivered)
        }
        other => {
            let (status, error) = match other {
                Ok(s) => (Some(s), format!("HTTP {s}")),
                Err(err) => (None, err),
            };
            if attempts >= h.max_attempts {
                record_attempt(h.db, &d, "failed", status, Some(error.clone()), false).await?;
                disable(h, &e, &error).await?;
                Ok(Attempt::GaveUp(error))
            } else {
                record_attempt(h.db, &d, "pending", status, Some(error.clone()), false).await?;
                Ok(Attempt::Retry(error))
            }
        }
    }
}

/// POSTs a delivery; the HTTP status, or what failed (text without
/// secrets).
async fn post(
    h: &Delivery<'_>,
    url: &str,
    msg_id: &str,
    timestamp: i64,
    signature: &str,
    body: Vec<u8>,
) -> Result<u16, String> {
    let target = ssrf::check(url, h.allow_private)
        .await
        .map_err(|e| format!("url refused: {e}"))?;
    let client = ssrf::client(&target, TIMEOUT).map_err(|e| e.to_string())?;
    let response = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, msg_id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "timed out".to_owned()
            } else if e.is_connect() {
                "could not connect".to_owned()
            } else {
                "request failed".to_owned()
            }
        })?;
    Ok(response.status().as_u16())
}

async fn record_attempt<C: ConnectionTrait>(
    db: &C,
    d: &delivery::Model,
    state: &str,
    status: Option<u16>,
    error: Option<String>,
    delivered: bool,
) -> Result<()> {
    let now = Utc::now();
    let mut q = delivery::Entity::update_many()
        .col_expr(delivery::Column::State, Expr::value(state))
        .col_expr(
            delivery::Column::Attempts,
            Expr::col(delivery::Column::Attempts).add(1),
        )
        .col_expr(delivery::Column::LastAttemptAt, Expr::value(now))
        .col_expr(
            delivery::Column::LastStatus,
            Expr::value(status.map(i32::from)),
        )
        .col_expr(delivery::Column::LastError, Expr::value(error))
        .filter(delivery::Column::Id.eq(d.id));
    if delivered {
        q = q.col_expr(delivery::Column::DeliveredAt, Expr::value(now));
    }
    q.exec(db).await?;
    Ok(())
}

async fn finish<C: ConnectionTrait>(
    db: &C,
    d: &delivery::Model,
    state: &str,
    status: Option<u16>,
    error: Option<String>,
) -> Result<()> {
    delivery::Entity::update_many()
        .col_expr(delivery::Column::State, Expr::value(state))
        .col_expr(
            delivery::Column::LastStatus,
            Expr::value(status.map(i32::from)),
        )
        .col_expr(delivery::Column::LastError, Expr::value(error))
        .filter(delivery::Column::Id.eq(d.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Disables endpoint `e` after a delivery failed for good, and tells the
/// owner (once: only when it was still enabled).
async fn disable(h: &Delivery<'_>, e: &endpoint::Model, error: &str) -> Result<()> {
    let txn = crate::db::begin_write(h.db).await?;
    let reason = format!("deliveries kept failing ({error}); re-enable it once it answers 2xx");
    let disabled = endpoint::Entity::update_many()
        .col_expr(endpoint::Column::Enabled, Expr::value(false))
        .col_expr(
            endpoint::Column::DisabledReason,
            Expr::value(reason.clone()),
        )
        .col_expr(
            endpoint::Column::ConsecutiveFailures,
            Expr::col(endpoint::Column::ConsecutiveFailures).add(1),
        )
        .col_expr(endpoint::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(endpoint::Column::Id.eq(e.id))
        .filter(endpoint::Column::Enabled.eq(true))
        .exec(&txn)
        .await?;
    if disabled.rows_affected == 1
        && let Some(b) = business::Entity::find_by_id(e.business_id)
            .one(&txn)
            .await?
        && let Some(owner) = user::Entity::find_by_id(b.owner_id).one(&txn).await?
    {
        h.mailer
            .enqueue(
                &txn,
                &owner.email,
                crate::mail::templates::webhook_endpoint_disabled(&e.url, error),
            )
            .await?;
        audit::record(
            &txn,
            &Actor::system(),
            Some(e.business_id),
            "webhook_endpoint.disabled",
            &format!("webhook_endpoint/{}", e.id),
            Outcome::Failure,
            json!({ "error": error }),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Re-wraps the data keys of endpoint secrets under the keyring's current
/// key (`switchboard keys rotate`): (re-wrapped, already current, failed).
pub async fn rotate<C: ConnectionTrait>(db: &C, keyring: &Keyring) -> Result<(u64, u64, u64)> {
    let rows = endpoint::Entity::find().all(db).await?;
    let (mut rewrapped, mut current, mut failed) = (0, 0, 0);
    for row in rows {
        match keyring.rewrap(&binding(&row), &sealed_of(&row)) {
            Ok(None) => current += 1,
            Ok(Some(new)) => {
                let res = endpoint::Entity::update_many()
                    .col_expr(
                        endpoint::Column::SecretWrappedDek,
                        Expr::value(new.wrapped_dek),
                    )
                    .col_expr(endpoint::Column::SecretDekNonce, Expr::value(new.dek_nonce))
                    .col_expr(endpoint::Column::SecretKeyId, Expr::value(new.key_id))
                    .filter(endpoint::Column::Id.eq(row.id))
                    .filter(endpoint::Column::SecretKeyId.eq(row.secret_key_id.as_str()))
                    .exec(db)
                    .await?;
                if res.rows_affected == 1 {
                    rewrapped += 1;
                } else {
                    current += 1;
                }
            }
            Err(err) => {
                failed += 1;
                tracing::error!(security = true, endpoint = %row.id, error = %err, "rotation could not open a webhook secret's data key");
            }
        }
    }
    Ok((rewrapped, current, failed))
}
