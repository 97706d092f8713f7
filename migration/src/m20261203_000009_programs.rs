//! Programs as first-class users (issue "Programs are first-class users"):
//!
//! - `api_keys`: a business's keys for its programs, stored as a SHA-256
//!   hash with a lookup prefix, scoped, expiring, revocable;
//! - `idempotency_keys`: stored answers of `POST`s sent with an
//!   `Idempotency-Key`, per principal, for 24 hours;
//! - `businesses.event_seq` and `business_events`: the event log of each
//!   business, numbered in commit order (the counter is bumped in the
//!   transaction of the change, so a business's events commit one after
//!   another);
//! - `businesses.api_rate_limit_per_minute`: an admin's raise of the
//!   business's request limit;
//! - `webhook_endpoints` and `webhook_deliveries`: the business's own
//!   endpoints for outgoing webhooks (signing secrets sealed under the
//!   vault's keys) and every delivery's outcome.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Businesses {
    Table,
    Id,
    EventSeq,
    ApiRateLimitPerMinute,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    BusinessId,
    Name,
    Prefix,
    SecretHash,
    Scopes,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Principal,
    Key,
    Fingerprint,
    State,
    ResponseStatus,
    ResponseBody,
    ResponseHeaders,
    CreatedAt,
    LockedUntil,
}

#[derive(DeriveIden)]
enum BusinessEvents {
    Table,
    BusinessId,
    Seq,
    Id,
    Type,
    Data,
    OccurredAt,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    BusinessId,
    Url,
    Description,
    EventTypes,
    Enabled,
    DisabledReason,
    SecretCiphertext,
    SecretNonce,
    SecretWrappedDek,
    SecretDekNonce,
    SecretKeyId,
    SecretVersion,
    ConsecutiveFailures,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EndpointId,
    BusinessId,
    EventId,
    EventSeq,
    EventType,
    State,
    Attempts,
    LastAttemptAt,
    LastStatus,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(big_integer(Businesses::EventSeq).default(0))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(integer_null(Businesses::ApiRateLimitPerMinute))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiKeys::Table)
                .col(pk_uuid(ApiKeys::Id))
                .col(uuid(ApiKeys::BusinessId))
                .col(string(ApiKeys::Name))
                .col(string_uniq(ApiKeys::Prefix))
                .col(string(ApiKeys::SecretHash))
                .col(text(ApiKeys::Scopes))
                .col(uuid_null(ApiKeys::CreatedBy))
                .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(ApiKeys::Table, ApiKeys::CreatedBy)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_api_keys_business")
                .table(ApiKeys::Table)
                .col(ApiKeys::BusinessId)
                .col(ApiKeys::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(string(IdempotencyKeys::Principal))
                .col(string(IdempotencyKeys::Key))
                .col(string(IdempotencyKeys::Fingerprint))
                .col(string(IdempotencyKeys::State))
                .col(integer_null(IdempotencyKeys::ResponseStatus))
                .col(blob_null(IdempotencyKeys::ResponseBody))
                .col(text_null(IdempotencyKeys::ResponseHeaders))
                .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::LockedUntil))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Principal)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_idempotency_created")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::CreatedAt)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(BusinessEvents::Table)
                .col(uuid(BusinessEvents::BusinessId))
                .col(big_integer(BusinessEvents::Seq))
                .col(uuid_uniq(BusinessEvents::Id))
                .col(string(BusinessEvents::Type))
                .col(text(BusinessEvents::Data))
                .col(timestamp_with_time_zone(BusinessEvents::OccurredAt))
                .primary_key(
                    Index::create()
                        .col(BusinessEvents::BusinessId)
                        .col(BusinessEvents::Seq),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(BusinessEvents::Table, BusinessEvents::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(pk_uuid(WebhookEndpoints::Id))
                .col(uuid(WebhookEndpoints::BusinessId))
                .col(text(WebhookEndpoints::Url))
                .col(string_null(WebhookEndpoints::Description))
                .col(text(WebhookEndpoints::EventTypes))
                .col(boolean(WebhookEndpoints::Enabled))
                .col(string_null(WebhookEndpoints::DisabledReason))
                .col(blob(WebhookEndpoints::SecretCiphertext))
                .col(blob(WebhookEndpoints::SecretNonce))
                .col(blob(WebhookEndpoints::SecretWrappedDek))
                .col(blob(WebhookEndpoints::SecretDekNonce))
                .col(string(WebhookEndpoints::SecretKeyId))
                .col(integer(WebhookEndpoints::SecretVersion))
                .col(integer(WebhookEndpoints::ConsecutiveFailures).default(0))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookEndpoints::Table, WebhookEndpoints::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_endpoints_business")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::BusinessId)
                .col(WebhookEndpoints::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(pk_uuid(WebhookDeliveries::Id))
                .col(uuid(WebhookDeliveries::EndpointId))
                .col(uuid(WebhookDeliveries::BusinessId))
                .col(uuid(WebhookDeliveries::EventId))
                .col(big_integer(WebhookDeliveries::EventSeq))
                .col(string(WebhookDeliveries::EventType))
                .col(string(WebhookDeliveries::State))
                .col(integer(WebhookDeliveries::Attempts).default(0))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::LastAttemptAt,
                ))
                .col(integer_null(WebhookDeliveries::LastStatus))
                .col(text_null(WebhookDeliveries::LastError))
                .col(timestamp_with_time_zone(WebhookDeliveries::CreatedAt))
                .col(timestamp_with_time_zone_null(
                    WebhookDeliveries::DeliveredAt,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                        .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookDeliveries::Table.into_iden(),
            WebhookEndpoints::Table.into_iden(),
            BusinessEvents::Table.into_iden(),
            IdempotencyKeys::Table.into_iden(),
            ApiKeys::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
