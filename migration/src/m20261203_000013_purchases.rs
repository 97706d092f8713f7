//! End-customer payments (issue "Businesses get paid"): `purchases`, the
//! business's payment log (SPEC §3 "Purchase"): who was asked to pay what
//! (integer minor units and an ISO 4217 currency), through which company,
//! channel and lead source, the Stripe Checkout Session (a destination
//! charge to the business's connected account) and the status Stripe's
//! events moved it to, with the `created` second of the last event applied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Purchases {
    Table,
    Id,
    BusinessId,
    CompanyId,
    ChannelId,
    CustomerRef,
    Description,
    Amount,
    Currency,
    ApplicationFeeAmount,
    LeadSource,
    Status,
    StripeAccountId,
    StripeCheckoutSessionId,
    StripePaymentIntentId,
    PaymentUrl,
    StatusAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Businesses {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Purchases::Table)
                .col(uuid(Purchases::Id).primary_key())
                .col(uuid(Purchases::BusinessId))
                .col(uuid(Purchases::CompanyId))
                .col(uuid_null(Purchases::ChannelId))
                .col(string(Purchases::CustomerRef))
                .col(string(Purchases::Description))
                .col(big_integer(Purchases::Amount))
                .col(string(Purchases::Currency))
                .col(big_integer(Purchases::ApplicationFeeAmount).default(0))
                .col(string(Purchases::LeadSource))
                .col(string(Purchases::Status))
                .col(string(Purchases::StripeAccountId))
                .col(string_null(Purchases::StripeCheckoutSessionId))
                .col(string_null(Purchases::StripePaymentIntentId))
                .col(string_null(Purchases::PaymentUrl))
                .col(big_integer(Purchases::StatusAt).default(0))
                .col(timestamp_with_time_zone(Purchases::CreatedAt))
                .col(timestamp_with_time_zone(Purchases::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Purchases::Table, Purchases::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_purchases_business")
                .table(Purchases::Table)
                .col(Purchases::BusinessId)
                .col(Purchases::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_purchases_session")
                .table(Purchases::Table)
                .col(Purchases::StripeCheckoutSessionId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_purchases_payment_intent")
                .table(Purchases::Table)
                .col(Purchases::StripePaymentIntentId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Purchases::Table).to_owned())
            .await
    }
}
