//! The Stripe Connect source: `POST /v1/webhooks/stripe/connect`, the
//! endpoint Stripe sends connected accounts' events to (Stripe docs:
//! Connect webhooks; each event carries `account`), signed with that
//! endpoint's own secrets (`stripe.connect_webhook_secrets`).
//!
//! - Verified as the platform endpoint is ([`super::signature`]), before
//!   anything is parsed; a bad signature is 400 and changes nothing.
//! - `account.updated`: the account in the event is stored when newer than
//!   the stored description (the event's `created`, then its id); an
//!   equally old event that says something else is a tie, settled by
//!   re-fetching the account from Stripe (the truth as of now), as
//!   subscriptions do. `capability.updated` re-fetches the account (a
//!   capability's status feeds `charges_enabled` / `payouts_enabled`).
//! - Events for an account that is not one of ours are recorded as
//!   ignored; other types are recorded without effect.
//! - Each event commits with its ledger row (source `stripe_connect`), so
//!   a duplicate is a no-op and any order of deliveries ends in the same
//!   state. Connect events are few (an account's onboarding), so they
//!   commit one by one rather than through a group-commit writer.

use axum::http::StatusCode;
use chrono::Utc;

use super::{Envelope, invalid_event};
use crate::domain::billing::connect::{self, Applied, Facts, Version};
use crate::domain::billing::entitlement;
use crate::error::{Error, Result};
use crate::inbound::{Outcome, ledger};
use crate::state::AppState;

/// The source's name in the ledger.
pub const SOURCE: &str = "stripe_connect";

/// Verifies and processes one delivery (`body` raw). 400 for a bad
/// signature or body, 503 when the Connect endpoint is not configured,
/// 500 `webhook_processing_failed` when processing failed (recorded for
/// Stripe's retry).
pub async fn receive(state: &AppState, signature: Option<&str>, body: &[u8]) -> Result<Outcome> {
    if state.stripe.is_none() || state.connect_webhook_secrets.is_empty() {
        return Err(Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhooks_unavailable",
            "Stripe Connect webhooks are not configured",
        )
        .with_detail("Set stripe.connect_webhook_secrets (SWITCHBOARD_STRIPE__CONNECT_WEBHOOK_SECRETS) to the Connect endpoint's signing secret."));
    }
    let env = super::verified(state, &state.connect_webhook_secrets, signature, body)?;
    if env.id.is_empty() || env.id.len() > 255 {
        return Err(invalid_event("an event needs an id"));
    }
    let created = super::created_at(env.created);
    match process(state, &env, created).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            Err(ledger::failed(&state.db, SOURCE, &env.id, &env.type_, created, e, "Stripe").await)
        }
    }
}

async fn process(
    state: &AppState,
    env: &Envelope<'_>,
    created: chrono::DateTime<Utc>,
) -> Result<Outcome> {
    let object = env.data.object.get();
    // The account concerned: the envelope's `account` (every Connect
    // event has it); an `account.updated` also names it as its object.
    let incoming: Option<stripe_shared::Account> = if env.type_ == "account.updated" {
        Some(
            miniserde::json::from_str(object)
                .map_err(|_| invalid_event("data.object is not an account"))?,
        )
    } else {
        None
    };
    let Some(account_id) = env
        .account
        .clone()
        .or_else(|| incoming.as_ref().map(|a| a.id.to_string()))
    else {
        return Err(invalid_event("a Connect event names its account"));
    };
    let Some(current) = connect::by_stripe_id(&state.db, &account_id).await? else {
        let new = ledger::record_ignored(&state.db, SOURCE, &env.id, &env.type_, created).await?;
        return Ok(if new {
            Outcome::Ignored
        } else {
            Outcome::Duplicate
        });
    };
    if !ledger::done(&state.db, SOURCE, &[&env.id])
        .await?
        .is_empty()
    {
        return Ok(Outcome::Duplicate);
    }
    let billing = state.billing();
    let stripe = billing
        .stripe
        .ok_or_else(|| Error::internal("Stripe is gone"))?;
    let (facts, version) = match (&incoming, env.type_.as_str()) {
        (Some(account), _) => (
            Facts::from(account),
            Version::Event {
                at: env.created,
                id: env.id.clone(),
            },
        ),
        (None, "capability.updated") => match stripe.retrieve_account(&account_id).await? {
            Some(a) => (Facts::from(&a), fetched()),
            None => return without_effect(state, env, created, current.business_id).await,
        },
        _ => return without_effect(state, env, created, current.business_id).await,
    };
    let txn = crate::db::begin_write(&state.db).await?;
    // One account's events apply one after the other (the business's row
    // lock on PostgreSQL), each deciding from the stored state as it is.
    entitlement::lock_business(&txn, current.business_id).await?;
    let stored = connect::find(&txn, current.business_id)
        .await?
        .unwrap_or_else(|| current.clone());
    if connect::apply(&txn, &state.jobs, &stored, &facts, &version).await? != Applied::Tie {
        return finish(
            txn,
            env,
            created,
            Some(current.business_id),
            Outcome::Processed,
        )
        .await;
    }
    txn.rollback().await?;
    // A tie: the account as Stripe has it now decides.
    let fresh = stripe.retrieve_account(&account_id).await?;
    let txn = crate::db::begin_write(&state.db).await?;
    entitlement::lock_business(&txn, current.business_id).await?;
    if let (Some(a), Some(current)) = (fresh, connect::find(&txn, current.business_id).await?) {
        connect::apply(&txn, &state.jobs, &current, &Facts::from(&a), &fetched()).await?;
    }
    finish(
        txn,
        env,
        created,
        Some(current.business_id),
        Outcome::Processed,
    )
    .await
}

fn fetched() -> Version {
    Version::Fetched(Utc::now().timestamp())
}

/// Records an event of ours without effect (a type we do not act on, or
/// an account Stripe no longer has).
async fn without_effect(
    state: &AppState,
    env: &Envelope<'_>,
    created: chrono::DateTime<Utc>,
    business: uuid::Uuid,
) -> Result<Outcome> {
    let txn = crate::db::begin_write(&state.db).await?;
    finish(txn, env, created, Some(business), Outcome::Ignored).await
}

/// Writes the ledger row in `txn` and commits; a row another delivery
/// claimed first makes this one a duplicate (rolled back).
async fn finish(
    txn: sea_orm::DatabaseTransaction,
    env: &Envelope<'_>,
    created: chrono::DateTime<Utc>,
    business: Option<uuid::Uuid>,
    outcome: Outcome,
) -> Result<Outcome> {
    let row = ledger::row(SOURCE, &env.id, &env.type_, created, business, Utc::now());
    if ledger::claim(&txn, vec![row]).await? == 0 {
        txn.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    txn.commit().await?;
    Ok(outcome)
}
