//! The ledger of inbound events (`inbound_events`), one row per (source,
//! event id). A source writes an event's row in the transaction of its
//! effect ([`claim`]), so a duplicate finds it `done` and is a no-op, and a
//! failure rolls both back; the failure is then recorded apart
//! ([`record_failure`]: `failed`, attempts counted, the error kept) for the
//! source's retry.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::inbound_event;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The upsert rule of a ledger row: on conflict the row takes `status` and
/// counts one more attempt, unless it is already `done` (then nothing
/// changes and the write counts no row).
fn conflict(status: &str) -> OnConflict {
    OnConflict::columns([
        inbound_event::Column::Source,
        inbound_event::Column::EventId,
    ])
    .value(inbound_event::Column::Status, status)
    .value(
        inbound_event::Column::Attempts,
        Expr::col((inbound_event::Entity, inbound_event::Column::Attempts)).add(1),
    )
    .action_and_where(Expr::col((inbound_event::Entity, inbound_event::Column::Status)).ne("done"))
    .to_owned()
}

/// A new ledger row for event `id` of `kind` from `source` (the source's
/// own timestamp `created`): `done` with one attempt, processed `now`.
pub fn row(
    source: &str,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
    business_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> inbound_event::Model {
    inbound_event::Model {
        source: source.to_owned(),
        event_id: id.to_owned(),
        event_type: kind.to_owned(),
        status: "done".into(),
        attempts: 1,
        last_error: None,
        business_id,
        event_created: created,
        received_at: now,
        processed_at: Some(now),
    }
}

/// Which of `ids` from `source` are already `done`.
pub async fn done<C: ConnectionTrait>(
    db: &C,
    source: &str,
    ids: &[&str],
) -> Result<HashSet<String>> {
    Ok(inbound_event::Entity::find()
        .select_only()
        .column(inbound_event::Column::EventId)
        .filter(inbound_event::Column::Source.eq(source))
        .filter(inbound_event::Column::EventId.is_in(ids.iter().copied()))
        .filter(inbound_event::Column::Status.eq("done"))
        .into_tuple()
        .all(db)
        .await?
        .into_iter()
        .collect())
}

/// Writes `rows` (from [`row`]) as `done` in `txn`; returns how many were
/// claimed. Fewer than `rows.len()` means another process finished one of
/// them meanwhile: the caller rolls back and tries again.
pub async fn claim<C: ConnectionTrait>(txn: &C, rows: Vec<inbound_event::Model>) -> Result<u64> {
    let rule = conflict("done")
        .update_columns([
            inbound_event::Column::ProcessedAt,
            inbound_event::Column::BusinessId,
        ])
        .to_owned();
    Ok(crate::db::upsert(txn, rows, rule).await?)
}

/// Records event `id` of `source` as `ignored` (a delivery nothing can be
/// done with, e.g. for an object that is not ours), unless a row exists;
/// returns whether it was new.
pub async fn record_ignored(
    db: &sea_orm::DatabaseConnection,
    source: &str,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
) -> Result<bool> {
    let row = inbound_event::Model {
        status: "ignored".into(),
        ..row(source, id, kind, created, None, Utc::now())
    };
    let rule = OnConflict::columns([
        inbound_event::Column::Source,
        inbound_event::Column::EventId,
    ])
    .do_nothing()
    .to_owned();
    let txn = crate::db::begin_write(db).await?;
    let written = crate::db::upsert(&txn, [row], rule).await?;
    txn.commit().await?;
    Ok(written == 1)
}

/// The answer to a delivery whose processing failed with `e`: the failure
/// is recorded ([`record_failure`]) so the retry finds it; an error the
/// event itself caused (4xx) is answered as it is, anything else as 500
/// `webhook_processing_failed`, telling `sender` to deliver it again.
pub async fn failed(
    db: &sea_orm::DatabaseConnection,
    source: &str,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
    e: Error,
    sender: &str,
) -> Error {
    if let Err(record) = record_failure(db, source, id, kind, created, &e).await {
        tracing::error!(error = %record, event = %id, source, "could not record a failed event");
    }
    tracing::warn!(event = %id, kind = %kind, source, code = e.code(), "event processing failed");
    if e.status().is_client_error() {
        e
    } else {
        Error::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "webhook_processing_failed",
            "The event could not be processed",
        )
        .with_detail(format!(
            "Recorded for retry; {sender} will deliver it again."
        ))
    }
}

/// Marks event `id` of `source` `failed` (unless a concurrent delivery
/// finished it), counting the attempt and keeping the error's code and
/// status for operators.
pub async fn record_failure(
    db: &sea_orm::DatabaseConnection,
    source: &str,
    id: &str,
    kind: &str,
    created: DateTime<Utc>,
    error: &Error,
) -> Result<()> {
    let message = format!("{}: {}", error.code(), error.status());
    let row = inbound_event::Model {
        status: "failed".into(),
        last_error: Some(message.clone()),
        processed_at: None,
        ..row(source, id, kind, created, None, Utc::now())
    };
    let rule = conflict("failed")
        .value(inbound_event::Column::LastError, message)
        .to_owned();
    let txn = crate::db::begin_write(db).await?;
    crate::db::upsert(&txn, [row], rule).await?;
    txn.commit().await?;
    Ok(())
}
