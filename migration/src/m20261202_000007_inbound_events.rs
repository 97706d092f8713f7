//! One ledger for every inbound webhook source (`inbound_events`, keyed by
//! source and the source's event id), replacing the Stripe-only
//! `stripe_events`; its rows are carried over as source `stripe`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InboundEvents {
    Table,
    Source,
    EventId,
    EventType,
    Status,
    Attempts,
    LastError,
    BusinessId,
    EventCreated,
    ReceivedAt,
    ProcessedAt,
}

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(InboundEvents::Table)
                .col(string(InboundEvents::Source))
                .col(string(InboundEvents::EventId))
                .col(string(InboundEvents::EventType))
                .col(string(InboundEvents::Status))
                .col(integer(InboundEvents::Attempts).default(0))
                .col(text_null(InboundEvents::LastError))
                .col(uuid_null(InboundEvents::BusinessId))
                .col(timestamp_with_time_zone(InboundEvents::EventCreated))
                .col(timestamp_with_time_zone(InboundEvents::ReceivedAt))
                .col(timestamp_with_time_zone_null(InboundEvents::ProcessedAt))
                .primary_key(
                    Index::create()
                        .col(InboundEvents::Source)
                        .col(InboundEvents::EventId),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_inbound_events_business")
                .table(InboundEvents::Table)
                .col(InboundEvents::BusinessId)
                .col(InboundEvents::EventType)
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared(
                "INSERT INTO inbound_events (source, event_id, event_type, status, attempts, \
                 last_error, business_id, event_created, received_at, processed_at) \
                 SELECT 'stripe', id, event_type, status, attempts, last_error, business_id, \
                 event_created, received_at, processed_at FROM stripe_events",
            )
            .await?;
        m.drop_table(Table::drop().table(StripeEvents::Table).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(InboundEvents::Table).to_owned())
            .await?;
        Ok(())
    }
}
