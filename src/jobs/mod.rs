//! Background work: one durable job runner over the `jobs` table, on SQLite
//! and PostgreSQL alike.
//!
//! - [`queue`]: the kinds of task and their retry policies, and
//!   `Queue::enqueue`, which writes a task inside the caller's transaction
//!   (a rolled-back change queues nothing); a dedup key makes a task
//!   unique.
//! - [`runner`]: workers claim due tasks under an expiring lease (`FOR
//!   UPDATE SKIP LOCKED` on PostgreSQL), retry failures with exponential
//!   backoff and jitter up to the kind's maximum, then leave them `failed`
//!   with the error; recurring kinds reschedule themselves; a stopping
//!   process lets running tasks finish or releases them.
//! - [`admin`]: what admins see (`GET /v1/admin/jobs`) and the retry of a
//!   failed task.
//! - The kinds: [`email`] (deliver one queued email), [`billing`] (the
//!   entitlement sweep and the reconciliation with Stripe), [`cleanup`]
//!   (purge expired rows), [`webhooks`] (outgoing webhooks: an event's
//!   fan-out, each delivery).
//!
//! A new kind is a [`queue::Task`] type with a name in [`queue::kind`], a
//! policy in [`queue::policies`] and a handler in [`handlers`].
//!
//! Why not apalis 1.0: its SQLite and PostgreSQL storages push through
//! their own sqlx pools, so a task cannot be queued inside the sea-orm
//! transaction of the change that causes it without writing apalis's
//! internal tables by hand; they have no deduplication key; and each
//! backend has its own schema and admin queries. The runner here is the
//! smallest that meets those points on one table.

pub mod admin;
pub mod billing;
pub mod cleanup;
pub mod email;
pub mod queue;
pub mod runner;
pub mod webhooks;

use crate::domain::channels::{health, telegram, whatsapp};
use crate::state::AppState;
pub use queue::{Queue, Task};
pub use runner::{Failure, Handlers, Runner};

/// Every kind's handler, over `state`.
pub fn handlers(state: &AppState) -> Handlers {
    let mut h = Handlers::default();
    let s = state.clone();
    h.add(move |t: email::DeliverEmail| email::deliver(s.clone(), t));
    let s = state.clone();
    h.add(move |_: billing::Sweep| billing::sweep(s.clone()));
    let s = state.clone();
    h.add(move |_: billing::Reconcile| billing::reconcile(s.clone()));
    let s = state.clone();
    h.add(move |_: cleanup::Purge| cleanup::run(s.clone()));
    let s = state.clone();
    h.add(move |t: crate::domain::events::webhooks::FanOut| webhooks::fan_out(s.clone(), t));
    let s = state.clone();
    h.add(move |t: crate::domain::events::webhooks::Deliver| webhooks::deliver(s.clone(), t));
    let s = state.clone();
    h.add(move |t: whatsapp::StartSession| {
        let s = s.clone();
        async move { Ok(whatsapp::start_session(s.whatsapp(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |_: health::Probe| {
        let s = s.clone();
        async move {
            let round = health::probe_all(
                s.whatsapp(),
                s.telegram(),
                &s.mailer,
                s.config.channels.failures_before_error,
                std::time::Duration::from_secs(s.config.channels.health_interval_secs),
            )
            .await?;
            tracing::info!(?round, "channel health probes");
            Ok(())
        }
    });
    let s = state.clone();
    h.add(move |t: whatsapp::RestartSession| {
        let s = s.clone();
        async move { Ok(whatsapp::restart_session(s.whatsapp(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: whatsapp::SyncSession| {
        let s = s.clone();
        async move { Ok(whatsapp::sync_session(s.whatsapp(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: whatsapp::RemoveSession| {
        let s = s.clone();
        async move { Ok(whatsapp::remove_session(s.whatsapp(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: whatsapp::ForwardMessage| {
        let s = s.clone();
        async move { Ok(whatsapp::forward_message(s.whatsapp(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: crate::domain::billing::connect::SyncN8n| {
        let s = s.clone();
        async move {
            Ok(crate::domain::billing::connect::sync_n8n(&s.db, s.n8n.as_ref(), &t).await?)
        }
    });
    let s = state.clone();
    h.add(move |t: telegram::ProvisionBot| {
        let s = s.clone();
        async move { Ok(telegram::provision_bot(s.telegram(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: telegram::RemoveBot| {
        let s = s.clone();
        async move { Ok(telegram::remove_bot(s.telegram(), &t).await?) }
    });
    let s = state.clone();
    h.add(move |t: telegram::SyncBot| {
        let s = s.clone();
        async move { Ok(telegram::sync_bot(s.telegram(), &t).await?) }
    });
    h
}

/// A runner for `state` with every kind's handler.
pub fn runner(state: &AppState) -> Runner {
    Runner::new(
        state.db.clone(),
        state.jobs.clone(),
        handlers(state),
        state.config.jobs.clone(),
    )
}
