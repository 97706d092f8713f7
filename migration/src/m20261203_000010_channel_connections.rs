//! Channels connect for real (issue "Channels connect for real"):
//! `channel_connections`, one row per channel connected to an outside
//! system, naming what Switchboard made there (the WAHA session today), so
//! disconnecting and deleting find every object; with the watermark of the
//! last status the system reported (its own timestamp, then its event id),
//! so deliveries in any order settle on the same status; and the hash and
//! expiry of the connect page's token (the page where a person scans the
//! code), bound to this connection.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ChannelConnections {
    Table,
    ChannelId,
    BusinessId,
    Provider,
    ExternalId,
    RemoteStatus,
    StatusAt,
    StatusEvent,
    PageTokenHash,
    PageTokenExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(ChannelConnections::Table)
                .col(uuid(ChannelConnections::ChannelId).primary_key())
                .col(uuid(ChannelConnections::BusinessId))
                .col(string(ChannelConnections::Provider))
                .col(string(ChannelConnections::ExternalId))
                .col(string_null(ChannelConnections::RemoteStatus))
                .col(big_integer(ChannelConnections::StatusAt).default(0))
                .col(string_null(ChannelConnections::StatusEvent))
                .col(string_null(ChannelConnections::PageTokenHash))
                .col(timestamp_with_time_zone_null(
                    ChannelConnections::PageTokenExpiresAt,
                ))
                .col(timestamp_with_time_zone(ChannelConnections::CreatedAt))
                .col(timestamp_with_time_zone(ChannelConnections::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ChannelConnections::Table, ChannelConnections::ChannelId)
                        .to(Channels::Table, Channels::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channel_connections_external")
                .table(ChannelConnections::Table)
                .col(ChannelConnections::Provider)
                .col(ChannelConnections::ExternalId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channel_connections_page_token")
                .table(ChannelConnections::Table)
                .col(ChannelConnections::PageTokenHash)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channel_connections_business")
                .table(ChannelConnections::Table)
                .col(ChannelConnections::BusinessId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ChannelConnections::Table).to_owned())
            .await
    }
}
