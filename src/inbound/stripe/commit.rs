//! The Stripe source's commit: one transaction for a batch of verified
//! events, with a fixed number of set-based statements whatever the batch
//! size: one ledger read, one read each of the businesses, subscriptions
//! and channels concerned, the same rules as a single event applied in
//! memory, in arrival order, then one multi-row write per table.
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
//!   ([`entitlement::settle`]), so the result equals any one-by-one order;
//! - a purchase moves only forward ([`purchases::advance`]), its events
//!   applied in arrival order to its newest row, read after its business
//!   is locked.
//!
//! On PostgreSQL the businesses concerned are locked (`FOR UPDATE`, in id
//! order, so batches never deadlock); if another process finished one of
//! the events meanwhile, the claim sees it and the batch is retried.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeZone, Utc};
use entity::billing::subscription;
use entity::{business, channel, inbound_event, purchase, user};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::SOURCE;
use super::event::{Effect, Item, Step};
use crate::db::upsert;
use crate::domain::billing::entitlement::{self, Notice, send_notice};
use crate::domain::billing::plans::PlanCatalogue;
use crate::domain::billing::purchases;
use crate::domain::billing::subscriptions::{self, Applied};
use crate::error::Result;
use crate::inbound::{Outcome, ledger};
use crate::state::AppState;

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
    /// Those whose state changed (each records a `subscription.updated`).
    changed_subs: HashSet<String>,
    /// Purchases the events name, as they stand after the lock.
    purchases: HashMap<Uuid, purchase::Model>,
    by_payment_intent: HashMap<String, Uuid>,
    /// Purchases whose rows are to be written.
    dirty_purchases: HashSet<Uuid>,
    /// Purchase events in arrival order: business, kind, data.
    purchase_events: Vec<(Uuid, &'static str, serde_json::Value)>,
}

/// One transaction for `items`. `None`: a claim raced another process and
/// everything was rolled back.
pub(super) async fn commit(state: &AppState, items: &[&Item]) -> Result<Option<Vec<Step>>> {
    let rules = state.rules();
    let now = Utc::now();
    let txn = crate::db::begin_write(&state.db).await?;

    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let done = ledger::done(&txn, SOURCE, &ids).await?;
    let mut picture = load(&txn, items).await?;
    let batch = picture.apply(items, &done, rules.plans, now);
    let (settlements, channel_rows) = picture.settle(&batch.touched, &rules, now);
    let events = picture.events(&settlements, now);

    // The writes: the ledger claim first, so a race is found before the rest.
    let expected = batch.claims.len() as u64;
    if ledger::claim(&txn, batch.claims).await? != expected {
        txn.rollback().await?;
        return Ok(None);
    }
    write(&txn, &picture, channel_rows).await?;
    crate::domain::events::insert_numbered(&txn, events).await?;
    let changed: Vec<_> = settlements
        .iter()
        .flat_map(|s| s.channels.iter().cloned())
        .collect();
    crate::domain::channels::whatsapp::follow(rules.jobs, &txn, &changed).await?;
    crate::domain::channels::telegram::follow(rules.jobs, &txn, &changed).await?;
    queue_notices(
        &txn,
        &rules,
        &picture,
        &batch.touched,
        &batch.notices,
        &settlements,
    )
    .await?;
    txn.commit().await?;
    Ok(Some(batch.steps))
}

/// What applying a batch in memory decided.
struct Batch {
    /// One verdict per item, in order.
    steps: Vec<Step>,
    /// The ledger rows to claim.
    claims: Vec<inbound_event::Model>,
    /// Businesses whose rows may have changed, in first-touched order.
    touched: Vec<Uuid>,
    /// Notices the events ask for, with the subscription they concern.
    notices: Vec<(Uuid, Notice, Option<subscriptions::SubscriptionState>)>,
}

impl Picture {
    /// Applies each item to the picture, in arrival order, as one event per
    /// transaction would: duplicates (already `done`, or repeated in the
    /// batch) and events of no business of ours change nothing; an event
    /// that cannot be ordered is left unclaimed (`Ambiguous`).
    fn apply(
        &mut self,
        items: &[&Item],
        done: &HashSet<String>,
        plans: &PlanCatalogue,
        now: DateTime<Utc>,
    ) -> Batch {
        let mut batch = Batch {
            steps: Vec::with_capacity(items.len()),
            claims: Vec::new(),
            touched: Vec::new(),
            notices: Vec::new(),
        };
        let mut seen: HashSet<&str> = HashSet::new();
        for item in items {
            if done.contains(&item.id) || !seen.insert(item.id.as_str()) {
                batch.steps.push(Step::Done(Outcome::Duplicate));
                continue;
            }
            let effect = &item.effect;
            if let Some(update) = &effect.purchase {
                let business_id = self.advance_purchase(update, now);
                batch.claims.push(claim_row(item, business_id, now));
                batch.steps.push(Step::Done(if business_id.is_some() {
                    Outcome::Processed
                } else {
                    Outcome::Ignored
                }));
                continue;
            }
            let (business_id, found_by_customer) = self.resolve(effect);
            let Some(business_id) = business_id else {
                batch.claims.push(claim_row(item, None, now));
                batch.steps.push(Step::Done(Outcome::Ignored));
                continue;
            };
            if let Some((s, version)) = &effect.sub {
                let decision = subscriptions::decide(
                    self.subs.get(&s.id),
                    plans,
                    business_id,
                    s,
                    *version,
                    now,
                );
                if decision.applied == Applied::Ambiguous {
                    // Not claimed: the caller fetches and submits again.
                    seen.remove(item.id.as_str());
                    batch.steps.push(Step::Ambiguous(s.id.clone()));
                    continue;
                }
                if decision.applied == Applied::Changed {
                    self.changed_subs.insert(s.id.clone());
                }
                if let Some(row) = decision.row {
                    self.dirty_subs.insert(s.id.clone());
                    self.subs.insert(s.id.clone(), row);
                }
            }
            if let Some(customer) = &effect.customer {
                if effect.customer_deleted {
                    self.delete_customer(business_id, customer, now);
                } else if item.kind != "customer.created" && !found_by_customer {
                    self.link_customer(business_id, customer);
                }
            }
            if !batch.touched.contains(&business_id) {
                batch.touched.push(business_id);
            }
            if let Some(notice) = effect.notice {
                batch.notices.push((
                    business_id,
                    notice,
                    effect.sub.as_ref().map(|(s, _)| s.clone()),
                ));
            }
            batch.claims.push(claim_row(item, Some(business_id), now));
            batch.steps.push(Step::Done(Outcome::Processed));
        }
        batch
    }

    /// Settles every business in `touched` from its final rows; returns the
    /// settlements and the channel rows they change.
    fn settle(
        &mut self,
        touched: &[Uuid],
        rules: &entitlement::Rules<'_>,
        now: DateTime<Utc>,
    ) -> (Vec<entitlement::Settlement>, Vec<channel::Model>) {
        let mut settlements = Vec::new();
        let mut channel_rows: Vec<channel::Model> = Vec::new();
        for id in touched {
            let Some(b) = self.businesses.get(id) else {
                continue;
            };
            let subs: Vec<subscription::Model> = self
                .subs
                .values()
                .filter(|s| s.business_id == *id)
                .cloned()
                .collect();
            let channels = self.channels.get(id).map(Vec::as_slice).unwrap_or(&[]);
            let settlement =
                entitlement::settle(b, &subs, channels, rules.plans, now, rules.timings());
            if let Some(row) = &settlement.business {
                self.businesses.insert(*id, row.clone());
                self.dirty_businesses.insert(*id);
            }
            channel_rows.extend(settlement.channels.iter().cloned());
            settlements.push(settlement);
        }
        (settlements, channel_rows)
    }
}

impl Picture {
    /// The events of the batch, numbered from the businesses' counters
    /// (the rows are locked and written back with their new counters):
    /// each changed subscription's `subscription.updated`, then each
    /// settlement's channel and business events.
    fn events(
        &mut self,
        settlements: &[entitlement::Settlement],
        now: DateTime<Utc>,
    ) -> Vec<entity::event::Model> {
        use crate::domain::events::kind;
        let mut per_business: Vec<(Uuid, &'static str, serde_json::Value)> = Vec::new();
        let mut changed: Vec<&String> = self.changed_subs.iter().collect();
        changed.sort();
        for id in changed {
            if let Some(s) = self.subs.get(id) {
                per_business.push((
                    s.business_id,
                    kind::SUBSCRIPTION_UPDATED,
                    serde_json::json!({
                        "stripe_subscription_id": s.stripe_subscription_id,
                        "plan": s.plan,
                        "status": s.status,
                        "current_period_end": s.current_period_end,
                        "cancel_at_period_end": s.cancel_at_period_end,
                    }),
                ));
            }
        }
        per_business.append(&mut self.purchase_events);
        for s in settlements {
            let before = self
                .channels
                .get(&s.change.business_id)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            for (t, d) in entitlement::events_of(s, before) {
                per_business.push((s.change.business_id, t, d));
            }
        }
        let mut rows = Vec::with_capacity(per_business.len());
        for (business_id, event_type, data) in per_business {
            let Some(b) = self.businesses.get_mut(&business_id) else {
                continue;
            };
            b.event_seq += 1;
            self.dirty_businesses.insert(business_id);
            rows.push(entity::event::Model {
                business_id,
                seq: b.event_seq,
                id: Uuid::now_v7(),
                event_type: event_type.to_owned(),
                data: data.to_string(),
                occurred_at: now,
            });
        }
        rows
    }
}

/// Writes the picture's changed subscriptions and businesses and
/// `channel_rows`, one multi-row upsert per table (a new row never meets
/// its conflict target, a fresh id, so one statement serves inserts and
/// updates alike).
async fn write<C: ConnectionTrait>(
    txn: &C,
    picture: &Picture,
    channel_rows: Vec<channel::Model>,
) -> Result<()> {
    let subs = picture
        .dirty_subs
        .iter()
        .filter_map(|id| picture.subs.get(id))
        .cloned()
        .collect::<Vec<_>>();
    let subs_conflict = OnConflict::column(subscription::Column::Id)
        .update_columns(SUBSCRIPTION_STATE_COLUMNS)
        .to_owned();
    upsert(txn, subs, subs_conflict).await?;
    let businesses = picture
        .dirty_businesses
        .iter()
        .filter_map(|id| picture.businesses.get(id))
        .cloned()
        .collect::<Vec<_>>();
    let businesses_conflict = OnConflict::column(business::Column::Id)
        .update_columns(entitlement::BUSINESS_COLUMNS)
        .update_column(business::Column::StripeCustomerId)
        .update_column(business::Column::EventSeq)
        .to_owned();
    upsert(txn, businesses, businesses_conflict).await?;
    let channels_conflict = OnConflict::column(channel::Column::Id)
        .update_columns(entitlement::CHANNEL_COLUMNS)
        .to_owned();
    upsert(txn, channel_rows, channels_conflict).await?;
    let purchases = picture
        .dirty_purchases
        .iter()
        .filter_map(|id| picture.purchases.get(id))
        .cloned()
        .collect::<Vec<_>>();
    let purchases_conflict = OnConflict::column(purchase::Column::Id)
        .update_columns([
            purchase::Column::Status,
            purchase::Column::StatusAt,
            purchase::Column::StripePaymentIntentId,
            purchase::Column::UpdatedAt,
        ])
        .to_owned();
    upsert(txn, purchases, purchases_conflict).await?;
    Ok(())
}

/// Queues, in `txn`, the owners' notices the settlements and events call
/// for (rare: most batches send none and read no owner).
async fn queue_notices<C: ConnectionTrait>(
    txn: &C,
    rules: &entitlement::Rules<'_>,
    picture: &Picture,
    touched: &[Uuid],
    notices: &[(Uuid, Notice, Option<subscriptions::SubscriptionState>)],
    settlements: &[entitlement::Settlement],
) -> Result<()> {
    let wants_mail =
        |s: &&entitlement::Settlement| s.restricted_notice || s.trial_notice_days.is_some();
    if notices.is_empty() && !settlements.iter().any(|s| wants_mail(&s)) {
        return Ok(());
    }
    let owners: HashMap<Uuid, String> = owner_emails(txn, picture, touched).await?;
    for s in settlements.iter().filter(wants_mail) {
        if let Some(to) = owners.get(&s.change.business_id) {
            entitlement::send_notices(rules, txn, s, to).await?;
        }
    }
    for (business_id, notice, sub) in notices {
        if let (Some(b), Some(to)) = (picture.businesses.get(business_id), owners.get(business_id))
        {
            send_notice(rules, txn, b, to, *notice, sub.as_ref()).await?;
        }
    }
    Ok(())
}

/// Reads, in the transaction, every row the batch may need: the businesses
/// named by customer or hint (locked on PostgreSQL), all their
/// subscriptions and those the events name, and their channels.
async fn load<C: ConnectionTrait>(txn: &C, items: &[&Item]) -> Result<Picture> {
    let mut customers: Vec<&str> = Vec::new();
    let mut hints: Vec<Uuid> = Vec::new();
    let mut sub_ids: Vec<&str> = Vec::new();
    let mut purchase_ids: Vec<Uuid> = Vec::new();
    let mut payment_intents: Vec<&str> = Vec::new();
    for item in items {
        let e = &item.effect;
        if !e.known {
            continue;
        }
        customers.extend(e.customer.as_deref());
        hints.extend(e.hint);
        sub_ids.extend(e.sub.as_ref().map(|(s, _)| s.id.as_str()));
        if let Some(u) = &e.purchase {
            purchase_ids.extend(u.purchase_id);
            payment_intents.extend(u.payment_intent.as_deref());
        }
    }
    let mut picture = Picture::default();
    // Purchases name their business: found first, read again once it is
    // locked. Businesses reached only through purchases are not settled,
    // so their subscriptions and channels are not read.
    let find_purchases = || {
        purchase::Entity::find().filter(
            Condition::any()
                .add(purchase::Column::Id.is_in(purchase_ids.clone()))
                .add(purchase::Column::StripePaymentIntentId.is_in(payment_intents.clone())),
        )
    };
    let mut purchase_businesses: HashSet<Uuid> = HashSet::new();
    if !purchase_ids.is_empty() || !payment_intents.is_empty() {
        purchase_businesses = find_purchases()
            .all(txn)
            .await?
            .into_iter()
            .map(|p| p.business_id)
            .collect();
    }
    let settled: HashSet<Uuid> = hints.iter().copied().collect();
    hints.extend(purchase_businesses.iter().copied());
    if customers.is_empty() && hints.is_empty() {
        return Ok(picture);
    }
    let businesses = business::Entity::find()
        .filter(
            Condition::any()
                .add(business::Column::StripeCustomerId.is_in(customers.clone()))
                .add(business::Column::Id.is_in(hints)),
        )
        .order_by_asc(business::Column::Id)
        .lock_exclusive()
        .all(txn)
        .await?;
    let ids: Vec<Uuid> = businesses
        .iter()
        .filter(|b| {
            !purchase_businesses.contains(&b.id)
                || settled.contains(&b.id)
                || b.stripe_customer_id
                    .as_deref()
                    .is_some_and(|c| customers.contains(&c))
        })
        .map(|b| b.id)
        .collect();
    if !purchase_businesses.is_empty() {
        for p in find_purchases().all(txn).await? {
            if let Some(pi) = &p.stripe_payment_intent_id {
                picture.by_payment_intent.insert(pi.clone(), p.id);
            }
            picture.purchases.insert(p.id, p);
        }
    }
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

    /// Applies a purchase event to the purchase it names (by id, else by
    /// PaymentIntent) and queues its event when it moved forward; the
    /// business concerned, or `None` when the purchase is not ours.
    fn advance_purchase(&mut self, u: &purchases::Update, now: DateTime<Utc>) -> Option<Uuid> {
        let id = u
            .purchase_id
            .filter(|id| self.purchases.contains_key(id))
            .or_else(|| {
                u.payment_intent
                    .as_ref()
                    .and_then(|pi| self.by_payment_intent.get(pi).copied())
            })?;
        let p = self.purchases.get_mut(&id)?;
        let advance = purchases::advance(p, u, now);
        if advance.changed {
            if let Some(pi) = &p.stripe_payment_intent_id {
                self.by_payment_intent.insert(pi.clone(), id);
            }
            self.dirty_purchases.insert(id);
        }
        if let Some(from) = advance.from {
            // The view of a row we hold always serialises.
            if let Ok((kind, data)) = purchases::event_of(p, Some(from)) {
                self.purchase_events.push((p.business_id, kind, data));
            }
        }
        Some(p.business_id)
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

fn claim_row(item: &Item, business_id: Option<Uuid>, now: DateTime<Utc>) -> inbound_event::Model {
    let created = Utc.timestamp_opt(item.created, 0).single().unwrap_or(now);
    ledger::row(SOURCE, &item.id, &item.kind, created, business_id, now)
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
