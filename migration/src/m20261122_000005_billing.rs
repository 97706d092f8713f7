//! Billing: Stripe subscriptions as last seen, the ledger of Stripe events
//! (idempotent webhook processing), job run bookkeeping for scheduled jobs,
//! and the entitlement columns of businesses and channels.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Subscriptions {
    Table,
    Id,
    BusinessId,
    StripeSubscriptionId,
    StripeCustomerId,
    PriceId,
    Plan,
    Status,
    CurrentPeriodStart,
    CurrentPeriodEnd,
    CancelAtPeriodEnd,
    TrialEnd,
    StripeCreated,
    Watermark,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StripeEvents {
    Table,
    Id,
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
enum JobRuns {
    Table,
    Name,
    LastRunAt,
    LastReport,
}

#[derive(DeriveIden)]
enum Businesses {
    Table,
    Id,
    RecheckAt,
    TrialNoticeSentAt,
    StripeCustomerId,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    SuspendedFrom,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Subscriptions::Table)
                .col(pk_uuid(Subscriptions::Id))
                .col(uuid(Subscriptions::BusinessId))
                .col(string_uniq(Subscriptions::StripeSubscriptionId))
                .col(string(Subscriptions::StripeCustomerId))
                .col(string_null(Subscriptions::PriceId))
                .col(string_null(Subscriptions::Plan))
                .col(string(Subscriptions::Status))
                .col(timestamp_with_time_zone_null(
                    Subscriptions::CurrentPeriodStart,
                ))
                .col(timestamp_with_time_zone_null(
                    Subscriptions::CurrentPeriodEnd,
                ))
                .col(boolean(Subscriptions::CancelAtPeriodEnd).default(false))
                .col(timestamp_with_time_zone_null(Subscriptions::TrialEnd))
                .col(timestamp_with_time_zone(Subscriptions::StripeCreated))
                .col(big_integer(Subscriptions::Watermark).default(0))
                .col(timestamp_with_time_zone(Subscriptions::CreatedAt))
                .col(timestamp_with_time_zone(Subscriptions::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Subscriptions::Table, Subscriptions::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_subscriptions_business")
                .table(Subscriptions::Table)
                .col(Subscriptions::BusinessId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(StripeEvents::Table)
                .col(string(StripeEvents::Id).primary_key())
                .col(string(StripeEvents::EventType))
                .col(string(StripeEvents::Status))
                .col(integer(StripeEvents::Attempts).default(0))
                .col(text_null(StripeEvents::LastError))
                .col(uuid_null(StripeEvents::BusinessId))
                .col(timestamp_with_time_zone(StripeEvents::EventCreated))
                .col(timestamp_with_time_zone(StripeEvents::ReceivedAt))
                .col(timestamp_with_time_zone_null(StripeEvents::ProcessedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(JobRuns::Table)
                .col(string(JobRuns::Name).primary_key())
                .col(timestamp_with_time_zone(JobRuns::LastRunAt))
                .col(text_null(JobRuns::LastReport))
                .to_owned(),
        )
        .await?;

        // SQLite adds one column per ALTER TABLE.
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(timestamp_with_time_zone_null(Businesses::RecheckAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(timestamp_with_time_zone_null(Businesses::TrialNoticeSentAt))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Channels::Table)
                .add_column(string_null(Channels::SuspendedFrom))
                .to_owned(),
        )
        .await?;
        // Registration sets the first re-check at the end of the trial;
        // businesses from before this migration are checked at once.
        m.get_connection()
            .execute_unprepared("UPDATE businesses SET recheck_at = trial_ends_at")
            .await?;
        // Webhooks find the business by its customer; a customer is one business's.
        m.create_index(
            Index::create()
                .name("uq_businesses_stripe_customer")
                .table(Businesses::Table)
                .col(Businesses::StripeCustomerId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_businesses_recheck")
                .table(Businesses::Table)
                .col(Businesses::RecheckAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("uq_businesses_stripe_customer")
                .table(Businesses::Table)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("idx_businesses_recheck")
                .table(Businesses::Table)
                .to_owned(),
        )
        .await?;
        for column in [Businesses::RecheckAt, Businesses::TrialNoticeSentAt] {
            m.alter_table(
                Table::alter()
                    .table(Businesses::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Channels::Table)
                .drop_column(Channels::SuspendedFrom)
                .to_owned(),
        )
        .await?;
        m.drop_table(Table::drop().table(JobRuns::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(StripeEvents::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Subscriptions::Table).to_owned())
            .await?;
        Ok(())
    }
}
