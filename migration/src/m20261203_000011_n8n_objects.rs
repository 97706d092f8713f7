//! n8n provisioning (issue "Channels connect for real"): `n8n_objects`,
//! every object Switchboard made in n8n (workflows, credentials, tags),
//! per business and, where it serves one channel, per channel, written as
//! soon as n8n answers its creation. Disconnecting a channel and deleting a
//! business find every object here, so nothing Switchboard made is left
//! behind. No foreign keys: a row outlives its channel until the object is
//! removed in n8n.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum N8nObjects {
    Table,
    Id,
    BusinessId,
    ChannelId,
    Kind,
    Purpose,
    N8nId,
    Active,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(N8nObjects::Table)
                .col(uuid(N8nObjects::Id).primary_key())
                .col(uuid(N8nObjects::BusinessId))
                .col(uuid_null(N8nObjects::ChannelId))
                .col(string(N8nObjects::Kind))
                .col(string(N8nObjects::Purpose))
                .col(string(N8nObjects::N8nId))
                .col(boolean(N8nObjects::Active).default(false))
                .col(timestamp_with_time_zone(N8nObjects::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_n8n_objects_n8n_id")
                .table(N8nObjects::Table)
                .col(N8nObjects::Kind)
                .col(N8nObjects::N8nId)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_n8n_objects_business")
                .table(N8nObjects::Table)
                .col(N8nObjects::BusinessId)
                .col(N8nObjects::ChannelId)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(N8nObjects::Table).to_owned())
            .await
    }
}
