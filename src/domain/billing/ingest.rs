//! The webhook writer: verified Stripe events are committed in groups.
//!
//! Request handlers verify and parse a delivery (and fetch from Stripe what
//! an event does not carry), then hand the event to one writer task per
//! process and wait for its verdict. The writer drains whatever has queued
//! up (at most [`MAX_BATCH`] events) and commits it in one transaction with
//! a fixed number of set-based statements, whatever the batch size: one
//! ledger read, one read each of the businesses, subscriptions and channels
//! concerned, the same rules as a single event applied in memory, in
//! arrival order, then one multi-row write per table. Group commit is the
//! classic answer to a database with one writer at a time (SQLite) and
//! saves PostgreSQL a round trip per row. Under no load a batch is one event
//! and nothing waits.
//!
//! Guarantees are those of one event per transaction:
//! - the ledger row of each event is written in the transaction of its
//!   effect, and an event already `done` (or repeated within the batch) is a
//!   duplicate;
//! - subscription state obeys the watermark ([`subscriptions::decide`]); an
//!   event that cannot be ordered is left unclaimed and answered
//!   `Ambiguous`, so the caller re-fetches it from Stripe and submits the
//!   fetched state;
//! - every business touched is re-settled from its final rows
//!   ([`entitlement::settle`]), so the result equals any one-by-one order.
//!
//! If the transaction fails, each event of the batch is retried alone, so
//! one bad event fails only its own delivery (answered 5xx, recorded for
//! Stripe's retry). On PostgreSQL the businesses concerned are locked
//! (`FOR UPDATE`, in id order, so batches never deadlock); if another
//! process finished one of the events meanwhile, the claim sees it and the
//! batch is retried.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, TimeZone, Utc};
use entity::billing::{stripe_event, subscription};
use entity::{business, channel, user};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::entitlement::{self, Timings};
use super::subscriptions::{self, Applied};
use super::webhook::{Effect, Notice, Outcome, send_notice};
use crate::error::{Error, Result};
use crate::state::AppState;

/// Most events committed in one transaction. Bounds the statement sizes
/// (SQLite allows 32,766 bound values; the widest write here binds 15 per
/// row) and the latency a batch adds.
pub const MAX_BATCH: usize = 256;

/// Rows per multi-row write, below every backend's bound-value limit.
const WRITE_CHUNK: usize = 500;

/// A verified event, ready to commit.
pub(super) struct Item {
    /// Stripe's event id (`evt_…`).
    pub(super) id: String,
    /// Stripe's event type.
    pub(super) kind: String,
    /// Stripe's `created`, Unix seconds.
    pub(super) created: i64,
    /// What the event asks for.
    pub(super) effect: Effect,
}

/// The writer's verdict on one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Committed (or a duplicate, or ignored).
    Done(Outcome),
    /// Same second as the stored state but different: fetch subscription
    /// `.0` from Stripe and submit the fetched state. Nothing was written.
    Ambiguous(String),
}

struct Job {
    item: Item,
    reply: oneshot::Sender<Result<Step>>,
}

/// Handle to the process's webhook writer, started on first use (and again
/// if it ever stopped: the events it held are answered 5xx, so Stripe
/// retries them). Cheap to clone. The writer lives as long as the runtime.
/// Its queue is unbounded: each queued event is a request waiting for its
/// answer, so HTTP concurrency bounds it.
#[derive(Clone, Default)]
pub struct Ingest {
    queue: Arc<Mutex<Option<mpsc::UnboundedSender<Job>>>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    events: AtomicU64,
}

/// What the writer has done since start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestStats {
    /// Transactions attempted (batches).
    pub batches: u64,
    /// Events handed to the writer.
    pub events: u64,
}

impl Ingest {
    /// Batches and events so far (events per batch shows the grouping).
    pub fn stats(&self) -> IngestStats {
        IngestStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
        }
    }

    /// Commits `item` with whatever else is queued; waits for the verdict.
    /// Errors: the event's processing failed (nothing of it was written).
    pub(super) async fn submit(&self, state: &AppState, item: Item) -> Result<Step> {
        let queue = {
            let mut slot = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref() {
                Some(tx) if !tx.is_closed() => tx.clone(),
                _ => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(writer(state.clone(), rx));
                    *slot = Some(tx.clone());
                    tx
                }
            }
        };
        let (reply, verdict) = oneshot::channel();
        queue
            .send(Job { item, reply })
            .map_err(|_| Error::internal("the webhook writer has stopped"))?;
        verdict
            .await
            .map_err(|_| Error::internal("the webhook writer dropped an event"))?
    }
}

async fn writer(state: AppState, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let items: Vec<&Item> = jobs.iter().map(|j| &j.item).collect();
        let counters = &state.ingest.counters;
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters
            .events
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        let verdicts = match commit_with_retry(&state, &items).await {
            Ok(steps) => steps.into_iter().map(Ok).collect(),
            Err(e) if items.len() == 1 => vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, events = items.len(), "webhook batch failed; committing its events one by one");
                let mut verdicts = Vec::with_capacity(items.len());
                for item in &items {
                    verdicts.push(
                        commit_with_retry(&state, std::slice::from_ref(item))
                            .await
                            .map(|mut steps| steps.remove(0)),
                    );
                }
                verdicts
            }
        };
        for (job, verdict) in jobs.drain(..).zip(verdicts) {
            // The handler may have gone (client disconnected): Stripe retries.
            let _ = job.reply.send(verdict);
        }
    }
}

/// Commits `items`; retries when another process claimed one of them
/// between our ledger read and our claim (PostgreSQL only).
async fn commit_with_retry(state: &AppState, items: &[&Item]) -> Result<Vec<Step>> {
    for _ in 0..3 {
        if let Some(steps) = commit(state, items).await? {
            return Ok(steps);
        }
    }
    Err(Error::internal(
        "webhook batch kept racing another process for its events",
    ))
}

/// The in-memory picture of everything a batch touches.
#[derive(Default)]
struct Picture {
    businesses: HashMap<Uuid, business::Model>,
    by_customer: HashMap<String, Uuid>,
    /// By Stripe subscription id.
    subs: HashMap<String, subscription::Model>,
    channels: HashMap<Uuid, Vec<channel::Model>>,
    dirty_businesses: HashSet<Uuid>,
    /// Stripe subscription ids whose rows are to be written (new or changed).
    dirty_subs: HashSet<String>,
}

/// One transaction for `items`. `None`: a claim raced another process and
/// everything was rolled back.
async fn commit(state: &AppState, items: &[&Item]) -> Result<Option<Vec<Step>>> {
    let now = Utc::now();
    let txn = crate::db::begin_write(&state.db).await?;

    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let done: HashSet<String> = stripe_event::Entity::find()
        .select_only()
        .column(stripe_event::Column::Id)
        .filter(stripe_event::Column::Id.is_in(ids))
        .filter(stripe_event::Column::Status.eq("done"))
        .into_tuple()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    let mut picture = load(&txn, items).await?;

    let mut steps = Vec::with_capacity(items.len());
    let mut claims: Vec<stripe_event::ActiveModel> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut touched: Vec<Uuid> = Vec::new();
    let mut notices: Vec<(Uuid, Notice, Option<subscriptions::SubscriptionState>)> = Vec::new();
    for item in items {
        if done.contains(&item.id) || !seen.insert(item.id.as_str()) {
            steps.push(Step::Done(Outcome::Duplicate));
            continue;
        }
        let effect = &item.effect;
        let (business_id, found_by_customer) = picture.resolve(effect);
        let Some(business_id) = business_id else {
            claims.push(claim_row(item, None, now));
            steps.push(Step::Done(Outcome::Ignored));
            continue;
        };
        if let Some((s, version)) = &effect.sub {
            let decision = subscriptions::decide(
                picture.subs.get(&s.id),
                &state.plans,
                business_id,
                s,
                *version,
                now,
            );
            if decision.applied == Applied::Ambiguous {
                // Not claimed: the caller fetches and submits again.
                seen.remove(item.id.as_str());
                steps.push(Step::Ambiguous(s.id.clone()));
                continue;
            }
            if let Some(row) = decision.row {
                picture.dirty_subs.insert(s.id.clone());
                picture.subs.insert(s.id.clone(), row);
            }
        }
        if let Some(customer) = &effect.customer {
            if effect.customer_deleted {
                picture.delete_customer(business_id, customer, now);
            } else if item.kind != "customer.created" && !found_by_customer {
                picture.link_customer(business_id, customer);
            }
        }
        if !touched.contains(&business_id) {
            touched.push(business_id);
        }
        if let Some(notice) = effect.notice {
            notices.push((
                business_id,
                notice,
                effect.sub.as_ref().map(|(s, _)| s.clone()),
            ));
        }
        claims.push(claim_row(item, Some(business_id), now));
        steps.push(Step::Done(Outcome::Processed));
    }

    // Every business touched is settled from its final rows.
    let t = Timings::from_config(&state.config.billing);
    let mut settlements = Vec::new();
    let mut channel_rows: Vec<channel::Model> = Vec::new();
    for id in &touched {
        let Some(b) = picture.businesses.get(id) else {
            continue;
        };
        let subs: Vec<subscription::Model> = picture
            .subs
            .values()
            .filter(|s| s.business_id == *id)
            .cloned()
            .collect();
        let channels = picture.channels.get(id).map(Vec::as_slice).unwrap_or(&[]);
        let settlement = entitlement::settle(b, &subs, channels, &state.plans, now, t);
        if let Some(row) = &settlement.business {
            picture.businesses.insert(*id, row.clone());
            picture.dirty_businesses.insert(*id);
        }
        channel_rows.extend(settlement.channels.iter().cloned());
        settlements.push(settlement);
    }

    // The writes: the ledger claim first, so a race is found before the rest.
    // A new row never meets its conflict target (fresh id), so one upsert
    // per table serves inserts and updates alike.
    let expected = claims.len() as u64;
    let claim = ledger_conflict("done")
        .update_columns([
            stripe_event::Column::ProcessedAt,
            stripe_event::Column::BusinessId,
        ])
        .to_owned();
    if upsert(&txn, claims, claim).await? != expected {
        txn.rollback().await?;
        return Ok(None);
    }
    let subs = picture
        .dirty_subs
        .iter()
        .filter_map(|id| picture.subs.get(id))
        .cloned()
        .collect::<Vec<_>>();
    let subs_conflict = OnConflict::column(subscription::Column::Id)
        .update_columns(SUBSCRIPTION_STATE_COLUMNS)
        .to_owned();
    upsert(&txn, subs, subs_conflict).await?;
    let businesses = picture
        .dirty_businesses
        .iter()
        .filter_map(|id| picture.businesses.get(id))
        .cloned()
        .collect::<Vec<_>>();
    let businesses_conflict = OnConflict::column(business::Column::Id)
        .update_columns(entitlement::BUSINESS_COLUMNS)
        .update_column(business::Column::StripeCustomerId)
        .to_owned();
    upsert(&txn, businesses, businesses_conflict).await?;
    let channels_conflict = OnConflict::column(channel::Column::Id)
        .update_columns(entitlement::CHANNEL_COLUMNS)
        .to_owned();
    upsert(&txn, channel_rows, channels_conflict).await?;

    // Notices (rare): queued in the same transaction.
    let wants_mail =
        |s: &&entitlement::Settlement| s.restricted_notice || s.trial_notice_days.is_some();
    if !notices.is_empty() || settlements.iter().any(|s| wants_mail(&s)) {
        let owners: HashMap<Uuid, String> = owner_emails(&txn, &picture, &touched).await?;
        for s in settlements.iter().filter(wants_mail) {
            if let Some(to) = owners.get(&s.change.business_id) {
                entitlement::send_notices(state, &txn, s, to).await?;
            }
        }
        for (business_id, notice, sub) in &notices {
            if let (Some(b), Some(to)) =
                (picture.businesses.get(business_id), owners.get(business_id))
            {
                send_notice(state, &txn, b, to, *notice, sub.as_ref()).await?;
            }
        }
    }
    txn.commit().await?;
    Ok(Some(steps))
}

/// Reads, in the transaction, every row the batch may need: the businesses
/// named by customer or hint (locked on PostgreSQL), all their
/// subscriptions and those the events name, and their channels.
async fn load<C: ConnectionTrait>(txn: &C, items: &[&Item]) -> Result<Picture> {
    let mut customers: Vec<&str> = Vec::new();
    let mut hints: Vec<Uuid> = Vec::new();
    let mut sub_ids: Vec<&str> = Vec::new();
    for item in items {
        let e = &item.effect;
        if !e.known {
            continue;
        }
        customers.extend(e.customer.as_deref());
        hints.extend(e.hint);
        sub_ids.extend(e.sub.as_ref().map(|(s, _)| s.id.as_str()));
    }
    let mut picture = Picture::default();
    if customers.is_empty() && hints.is_empty() {
        return Ok(picture);
    }
    let businesses = business::Entity::find()
        .filter(
            Condition::any()
                .add(business::Column::StripeCustomerId.is_in(customers))
                .add(business::Column::Id.is_in(hints)),
        )
        .order_by_asc(business::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    let ids: Vec<Uuid> = businesses.iter().map(|b| b.id).collect();
    for b in businesses {
        if let Some(c) = &b.stripe_customer_id {
            picture.by_customer.insert(c.clone(), b.id);
        }
        picture.businesses.insert(b.id, b);
    }
    for s in subscription::Entity::find()
        .filter(
            Condition::any()
                .add(subscription::Column::BusinessId.is_in(ids.clone()))
                .add(subscription::Column::StripeSubscriptionId.is_in(sub_ids)),
        )
        .all(txn)
        .await?
    {
        picture.subs.insert(s.stripe_subscription_id.clone(), s);
    }
    for c in channel::Entity::find()
        .filter(channel::Column::BusinessId.is_in(ids))
        .all(txn)
        .await?
    {
        picture.channels.entry(c.business_id).or_default().push(c);
    }
    Ok(picture)
}

impl Picture {
    /// The business an event concerns: by Stripe customer, else by the id
    /// our metadata or `client_reference_id` carries; and whether it was
    /// found by the customer.
    fn resolve(&self, effect: &Effect) -> (Option<Uuid>, bool) {
        if !effect.known {
            return (None, false);
        }
        if let Some(id) = effect
            .customer
            .as_ref()
            .and_then(|c| self.by_customer.get(c))
        {
            return (Some(*id), true);
        }
        let by_hint = effect.hint.filter(|id| self.businesses.contains_key(id));
        (by_hint, false)
    }

    /// Stripe deleted `customer`: unlink it from the business, and its
    /// subscriptions end at once.
    fn delete_customer(&mut self, business_id: Uuid, customer: &str, now: DateTime<Utc>) {
        if let Some(b) = self.businesses.get_mut(&business_id)
            && b.stripe_customer_id.as_deref() == Some(customer)
        {
            b.stripe_customer_id = None;
            self.by_customer.remove(customer);
            self.dirty_businesses.insert(business_id);
        }
        for s in self.subs.values_mut() {
            if s.stripe_customer_id == customer && !entitlement::is_terminal(&s.status) {
                s.status = "canceled".into();
                s.updated_at = now;
                self.dirty_subs.insert(s.stripe_subscription_id.clone());
            }
        }
    }

    /// A Checkout customer we did not create ourselves becomes the
    /// business's, unless it already has one.
    fn link_customer(&mut self, business_id: Uuid, customer: &str) {
        if let Some(b) = self.businesses.get_mut(&business_id)
            && b.stripe_customer_id.is_none()
            && !self.by_customer.contains_key(customer)
        {
            b.stripe_customer_id = Some(customer.to_owned());
            self.by_customer.insert(customer.to_owned(), business_id);
            self.dirty_businesses.insert(business_id);
        }
    }
}

/// The ledger upsert of an event id: on conflict the row takes `status`
/// and counts one more attempt, unless it is already `done` (then nothing
/// changes and the write counts no row).
pub(super) fn ledger_conflict(status: &str) -> OnConflict {
    OnConflict::column(stripe_event::Column::Id)
        .value(stripe_event::Column::Status, status)
        .value(
            stripe_event::Column::Attempts,
            Expr::col((stripe_event::Entity, stripe_event::Column::Attempts)).add(1),
        )
        .action_and_where(
            Expr::col((stripe_event::Entity, stripe_event::Column::Status)).ne("done"),
        )
        .to_owned()
}

/// A new ledger row for event `id` of `kind` (Stripe's `created`, Unix
/// seconds): `done` with one attempt, processed `now`. Callers adjust it for
/// other outcomes.
pub(super) fn ledger_row(
    id: &str,
    kind: &str,
    created: i64,
    business_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> stripe_event::Model {
    stripe_event::Model {
        id: id.to_owned(),
        event_type: kind.to_owned(),
        status: "done".into(),
        attempts: 1,
        last_error: None,
        business_id,
        event_created: Utc.timestamp_opt(created, 0).single().unwrap_or(now),
        received_at: now,
        processed_at: Some(now),
    }
}

fn claim_row(
    item: &Item,
    business_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> stripe_event::ActiveModel {
    ledger_row(&item.id, &item.kind, item.created, business_id, now)
        .into_active_model()
        .reset_all()
}

/// The subscription columns a newer state overwrites.
const SUBSCRIPTION_STATE_COLUMNS: [subscription::Column; 10] = [
    subscription::Column::BusinessId,
    subscription::Column::PriceId,
    subscription::Column::Plan,
    subscription::Column::Status,
    subscription::Column::CurrentPeriodStart,
    subscription::Column::CurrentPeriodEnd,
    subscription::Column::CancelAtPeriodEnd,
    subscription::Column::TrialEnd,
    subscription::Column::Watermark,
    subscription::Column::UpdatedAt,
];

/// Writes `rows` whole (every column set, `reset_all`) as multi-row
/// `INSERT … ON CONFLICT` statements of at most [`WRITE_CHUNK`] rows;
/// returns the rows inserted or updated.
async fn upsert<C, M, A>(
    txn: &C,
    rows: impl IntoIterator<Item = M>,
    conflict: OnConflict,
) -> Result<u64>
where
    C: ConnectionTrait,
    M: IntoActiveModel<A>,
    A: ActiveModelTrait,
{
    let mut written = 0;
    let mut rows = rows
        .into_iter()
        .map(|row| row.into_active_model().reset_all())
        .peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(WRITE_CHUNK).collect();
        written += <A::Entity as EntityTrait>::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(written)
}

async fn owner_emails<C: ConnectionTrait>(
    txn: &C,
    picture: &Picture,
    touched: &[Uuid],
) -> Result<HashMap<Uuid, String>> {
    let owners: HashMap<Uuid, Uuid> = touched
        .iter()
        .filter_map(|id| picture.businesses.get(id).map(|b| (b.owner_id, b.id)))
        .collect();
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(owners.keys().copied()))
        .all(txn)
        .await?;
    Ok(users
        .into_iter()
        .filter_map(|u| owners.get(&u.id).map(|b| (*b, u.email)))
        .collect())
}
