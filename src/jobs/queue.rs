//! The task table's write side: what kinds of task exist and how each
//! retries ([`Policy`]), and [`Queue::enqueue`], which writes a task in the
//! caller's transaction (the outbox pattern: a rolled-back change queues
//! nothing). Also the admin's view: list tasks, retry a failed one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::job;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::Config;

/// The kinds of background task, by their stable names (the `kind`
/// column). One place to read what runs in the background.
pub mod kind {
    /// Deliver one queued email (`jobs::email`).
    pub const EMAIL_DELIVER: &str = "email.deliver";
    /// End trials and grace periods that are due (`jobs::billing`), recurring.
    pub const BILLING_SWEEP: &str = "billing.sweep";
    /// Re-read every subscription from Stripe (`jobs::billing`), recurring.
    pub const BILLING_RECONCILE: &str = "billing.reconcile";
    /// Purge expired codes, tokens and counters (`jobs::cleanup`), recurring.
    pub const CLEANUP_PURGE: &str = "cleanup.purge";
    /// Make the deliveries of one event to the business's webhook endpoints
    /// (`domain::events::webhooks`).
    pub const WEBHOOK_FAN_OUT: &str = "webhook.fan_out";
    /// Deliver one event to one webhook endpoint, retried for about three
    /// days (`domain::events::webhooks`).
    pub const WEBHOOK_DELIVER: &str = "webhook.deliver";
    /// Create (or update) and start a WhatsApp channel's WAHA session
    /// (`domain::channels::whatsapp`).
    pub const WAHA_SESSION_START: &str = "waha.session_start";
    /// Log out and delete a WAHA session, then destroy its webhook key
    /// (`domain::channels::whatsapp`).
    pub const WAHA_SESSION_REMOVE: &str = "waha.session_remove";
    /// Probe every connected channel's health (`domain::channels::health`),
    /// recurring.
    pub const CHANNELS_HEALTH: &str = "channels.health";
    /// Log a WhatsApp channel's session out so it waits for a new scan
    /// (`domain::channels::whatsapp`).
    pub const WAHA_SESSION_RESTART: &str = "waha.session_restart";
    /// Stop a suspended WhatsApp channel's session, start a restored one's
    /// (`domain::channels::whatsapp`).
    pub const WAHA_SESSION_SYNC: &str = "waha.session_sync";
    /// Make a Telegram channel's credential and workflow in n8n, activate
    /// it and check the bot's webhook (`domain::channels::telegram`).
    pub const TELEGRAM_PROVISION: &str = "telegram.provision";
    /// Remove a Telegram channel's workflow, credential, webhook and token
    /// (`domain::channels::telegram`).
    pub const TELEGRAM_REMOVE: &str = "telegram.remove";
    /// Deactivate a suspended Telegram channel's workflow, activate a
    /// restored one's (`domain::channels::telegram`).
    pub const TELEGRAM_SYNC: &str = "telegram.sync";
    /// Forward one WhatsApp message to the shared n8n ingress workflow
    /// (`domain::channels::whatsapp`).
    pub const WHATSAPP_FORWARD: &str = "whatsapp.forward";
    /// Make or delete a business's n8n credential for its Stripe connected
    /// account (`domain::billing::connect`).
    pub const CONNECT_SYNC_N8N: &str = "connect.sync_n8n";
}

/// Task states as stored.
pub mod state {
    /// Waiting for `run_at`.
    pub const QUEUED: &str = "queued";
    /// Leased by a worker until `lease_until`.
    pub const RUNNING: &str = "running";
    /// Failed at least once; due again at `run_at`.
    pub const RETRYING: &str = "retrying";
    /// Gave up after `max_attempts`; `last_error` says why.
    pub const FAILED: &str = "failed";
}

/// How a kind of task is retried and scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts before a one-off task is `failed` (recurring tasks wait
    /// for their next time instead).
    pub max_attempts: u32,
    /// Delay after the first failure; doubles per attempt, with full
    /// jitter on the upper half (a delay is uniform in `[d/2, d]`).
    pub backoff_base: Duration,
    /// Longest delay between attempts.
    pub backoff_cap: Duration,
    /// `Some(interval)`: the task recurs, due again `interval` after each
    /// run; its dedup key is its kind, so one row exists per kind.
    pub every: Option<Duration>,
    /// Recurring tasks: delay of the first run after the row is created.
    pub first_run: Duration,
}

impl Policy {
    /// A one-off task retried `max_attempts` times from `base`, capped at one hour.
    pub const fn once(max_attempts: u32, base: Duration) -> Policy {
        Policy {
            max_attempts,
            backoff_base: base,
            backoff_cap: Duration::from_secs(3600),
            every: None,
            first_run: Duration::ZERO,
        }
    }

    /// A task that runs every `every`, first after `first_run`; a failed run
    /// is retried (5 attempts from 5 s, never past the interval) and then
    /// waits for its next time.
    pub fn recurring(every: Duration, first_run: Duration) -> Policy {
        Policy {
            max_attempts: 5,
            backoff_base: Duration::from_secs(5).min(every),
            backoff_cap: every,
            every: Some(every),
            first_run,
        }
    }

    /// Delay before the attempt after `attempts` failed ones:
    /// `base · 2^(attempts-1)` capped, then jittered into its upper half
    /// (`jitter` in `[0, 1)`), so workers that failed together do not
    /// retry together.
    pub fn backoff(&self, attempts: u32, jitter: f64) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let full = self
            .backoff_base
            .saturating_mul(1u32 << doublings)
            .min(self.backoff_cap);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// A kind of background task: its payload is the value itself (JSON).
pub trait Task: Serialize + DeserializeOwned + Send + 'static {
    /// The kind's stable name (one of [`kind`]).
    const KIND: &'static str;

    /// Tasks with the same key are one task: enqueuing a key already
    /// present changes nothing. Default: none (every enqueue is a task).
    fn dedup_key(&self) -> Option<String> {
        None
    }
}

/// The kinds this configuration runs, with their policies. Recurring kinds
/// whose feature is off (reconciliation without Stripe, or with interval
/// 0) are absent, and the runner removes their rows.
pub fn policies(config: &Config) -> HashMap<&'static str, Policy> {
    let mut p = HashMap::new();
    p.insert(
        kind::EMAIL_DELIVER,
        Policy::once(
            config.outbox_max_attempts,
            Duration::from_millis(config.outbox_retry_base_ms),
        ),
    );
    p.insert(
        kind::BILLING_SWEEP,
        Policy::recurring(
            Duration::from_secs(config.billing.sweep_interval_secs),
            Duration::ZERO,
        ),
    );
    let hours = u64::from(config.billing.reconcile_interval_hours);
    if hours > 0 && config.stripe.is_some() {
        p.insert(
            kind::BILLING_RECONCILE,
            Policy::recurring(Duration::from_secs(hours * 3600), Duration::ZERO),
        );
    }
    p.insert(
        kind::WEBHOOK_FAN_OUT,
        Policy::once(
            u32::try_from(crate::domain::events::webhooks::FAN_OUT_ATTEMPTS).unwrap_or(10),
            Duration::from_secs(1),
        ),
    );
    p.insert(
        kind::WEBHOOK_DELIVER,
        Policy {
            max_attempts: config.webhooks.max_attempts,
            backoff_base: Duration::from_secs(config.webhooks.retry_base_secs),
            backoff_cap: Duration::from_secs(12 * 3600),
            every: None,
            first_run: Duration::ZERO,
        },
    );
    // WAHA calls: about an hour and a half of retries (2 s doubling to a
    // 15-minute cap), so a WAHA restart or a short outage is ridden out.
    let waha = Policy {
        max_attempts: 12,
        backoff_base: Duration::from_secs(2),
        backoff_cap: Duration::from_secs(900),
        every: None,
        first_run: Duration::ZERO,
    };
    p.insert(kind::WAHA_SESSION_START, waha);
    p.insert(kind::WAHA_SESSION_REMOVE, waha);
    p.insert(kind::WAHA_SESSION_SYNC, waha);
    p.insert(kind::WAHA_SESSION_RESTART, waha);
    // n8n and Telegram calls: the same ride-out as WAHA's.
    p.insert(kind::TELEGRAM_PROVISION, waha);
    p.insert(kind::TELEGRAM_REMOVE, waha);
    p.insert(kind::TELEGRAM_SYNC, waha);
    p.insert(kind::WHATSAPP_FORWARD, waha);
    p.insert(kind::CONNECT_SYNC_N8N, waha);
    let every = config.channels.health_interval_secs;
    if every > 0 && (config.waha.is_some() || config.n8n.is_some()) {
        p.insert(
            kind::CHANNELS_HEALTH,
            Policy::recurring(Duration::from_secs(every), Duration::from_secs(every)),
        );
    }
    p.insert(
        kind::CLEANUP_PURGE,
        Policy::recurring(Duration::from_secs(3600), Duration::from_secs(60)),
    );
    p
}

/// Handle for enqueuing; cheap to clone. Knows every kind's policy and
/// wakes this process's runner when something is queued.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    policies: HashMap<&'static str, Policy>,
    wake: tokio::sync::Notify,
}

impl Queue {
    /// A queue for `config`'s kinds ([`policies`]).
    pub fn new(config: &Config) -> Queue {
        Queue {
            inner: Arc::new(Inner {
                policies: policies(config),
                wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The policy of `kind`, if this configuration runs it.
    pub fn policy(&self, kind: &str) -> Option<&Policy> {
        self.inner.policies.get(kind)
    }

    /// Every kind this configuration runs.
    pub fn kinds(&self) -> impl Iterator<Item = (&'static str, &Policy)> {
        self.inner.policies.iter().map(|(k, p)| (*k, p))
    }

    /// Queues `task`, due now, through `db` — pass the transaction of the
    /// change that causes it. Returns the new task's id, or `None` when a
    /// task with the same dedup key already exists.
    pub async fn enqueue<T: Task, C: ConnectionTrait>(
        &self,
        db: &C,
        task: &T,
    ) -> Result<Option<Uuid>, sea_orm::DbErr> {
        self.enqueue_at(db, task, Utc::now()).await
    }

    /// [`Queue::enqueue`], due at `run_at`.
    pub async fn enqueue_at<T: Task, C: ConnectionTrait>(
        &self,
        db: &C,
        task: &T,
        run_at: DateTime<Utc>,
    ) -> Result<Option<Uuid>, sea_orm::DbErr> {
        let payload =
            serde_json::to_string(task).map_err(|e| sea_orm::DbErr::Custom(e.to_string()))?;
        let max = self
            .policy(T::KIND)
            .map_or(1, |p| i32::try_from(p.max_attempts).unwrap_or(i32::MAX));
        let id = insert(db, T::KIND, payload, task.dedup_key(), run_at, max).await?;
        self.inner.wake.notify_one();
        Ok(id)
    }

    /// Resolves when something was queued by this process.
    pub(crate) fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.wake.notified()
    }

    /// Wakes this process's runner (a task was made due by other means).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }
}

/// Inserts a task row; `None` when `dedup_key` is taken.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    kind: &str,
    payload: String,
    dedup_key: Option<String>,
    run_at: DateTime<Utc>,
    max_attempts: i32,
) -> Result<Option<Uuid>, sea_orm::DbErr> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    let row = job::ActiveModel {
        id: Set(id),
        kind: Set(kind.to_owned()),
        payload: Set(payload),
        state: Set(state::QUEUED.to_owned()),
        dedup_key: Set(dedup_key),
        run_at: Set(run_at),
        attempts: Set(0),
        max_attempts: Set(max_attempts),
        lease_until: Set(None),
        worker: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    let written = job::Entity::insert(row)
        .on_conflict(
            OnConflict::column(job::Column::DedupKey)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok((written == 1).then_some(id))
}

/// Tasks with `dedup_key`, for tests and tools.
pub async fn find_by_key<C: ConnectionTrait>(
    db: &C,
    dedup_key: &str,
) -> Result<Option<job::Model>, sea_orm::DbErr> {
    job::Entity::find()
        .filter(job::Column::DedupKey.eq(dedup_key))
        .one(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_is_capped_and_jitters_into_its_upper_half() {
        let p = Policy::once(10, Duration::from_secs(5));
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(5));
        assert_eq!(p.backoff(1, 0.0), Duration::from_millis(2500));
        assert_eq!(p.backoff(2, 1.0), Duration::from_secs(10));
        assert_eq!(p.backoff(4, 1.0), Duration::from_secs(40));
        assert_eq!(p.backoff(30, 1.0), Duration::from_secs(3600));
        assert_eq!(p.backoff(30, 0.0), Duration::from_secs(1800));
        let r = Policy::recurring(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(
            r.backoff(9, 1.0),
            Duration::from_secs(60),
            "never past the interval"
        );
    }
}
