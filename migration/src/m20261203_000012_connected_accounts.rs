//! Businesses get paid (issue "Businesses get paid"): `connected_accounts`,
//! each business's Stripe Connect Express account (SPEC §3 "Connected
//! account") as Stripe last described it: the flags and requirements the
//! onboarding state is derived from, and the watermark of that description
//! (the event's `created`, then its id; a fetch counts as now), so
//! `account.updated` deliveries in any order settle on the same state; and
//! the hash of the onboarding refresh link's token (where Stripe sends the
//! person when an Account Link expired). One account per business, one
//! business per account (both unique).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectedAccounts {
    Table,
    BusinessId,
    StripeAccountId,
    State,
    ChargesEnabled,
    PayoutsEnabled,
    DetailsSubmitted,
    DisabledReason,
    CurrentlyDue,
    PastDue,
    PendingVerification,
    VersionAt,
    VersionEvent,
    RefreshTokenHash,
    RefreshTokenExpiresAt,
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
                .table(ConnectedAccounts::Table)
                .col(uuid(ConnectedAccounts::BusinessId).primary_key())
                .col(string(ConnectedAccounts::StripeAccountId))
                .col(string(ConnectedAccounts::State))
                .col(boolean(ConnectedAccounts::ChargesEnabled).default(false))
                .col(boolean(ConnectedAccounts::PayoutsEnabled).default(false))
                .col(boolean(ConnectedAccounts::DetailsSubmitted).default(false))
                .col(string_null(ConnectedAccounts::DisabledReason))
                .col(json(ConnectedAccounts::CurrentlyDue))
                .col(json(ConnectedAccounts::PastDue))
                .col(json(ConnectedAccounts::PendingVerification))
                .col(big_integer(ConnectedAccounts::VersionAt).default(0))
                .col(string_null(ConnectedAccounts::VersionEvent))
                .col(string_null(ConnectedAccounts::RefreshTokenHash))
                .col(timestamp_with_time_zone_null(
                    ConnectedAccounts::RefreshTokenExpiresAt,
                ))
                .col(timestamp_with_time_zone(ConnectedAccounts::CreatedAt))
                .col(timestamp_with_time_zone(ConnectedAccounts::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ConnectedAccounts::Table, ConnectedAccounts::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_connected_accounts_stripe")
                .table(ConnectedAccounts::Table)
                .col(ConnectedAccounts::StripeAccountId)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ConnectedAccounts::Table).to_owned())
            .await
    }
}
