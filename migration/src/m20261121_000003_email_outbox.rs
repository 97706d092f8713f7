//! The durable email outbox and its delivery attempts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    ToAddress,
    Template,
    Subject,
    TextBody,
    HtmlBody,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    CreatedAt,
    SentAt,
}

#[derive(DeriveIden)]
enum EmailAttempts {
    Table,
    Id,
    EmailId,
    AttemptedAt,
    Outcome,
    Error,
}

#[derive(DeriveIden)]
enum EmailRequests {
    Table,
    Id,
    Email,
    Kind,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(EmailOutbox::Table)
                .col(pk_uuid(EmailOutbox::Id))
                .col(string(EmailOutbox::ToAddress))
                .col(string(EmailOutbox::Template))
                .col(string(EmailOutbox::Subject))
                .col(text(EmailOutbox::TextBody))
                .col(text(EmailOutbox::HtmlBody))
                .col(string(EmailOutbox::Status))
                .col(integer(EmailOutbox::Attempts).default(0))
                .col(timestamp_with_time_zone(EmailOutbox::NextAttemptAt))
                .col(timestamp_with_time_zone_null(EmailOutbox::LockedUntil))
                .col(text_null(EmailOutbox::LastError))
                .col(timestamp_with_time_zone(EmailOutbox::CreatedAt))
                .col(timestamp_with_time_zone_null(EmailOutbox::SentAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_due")
                .table(EmailOutbox::Table)
                .col(EmailOutbox::Status)
                .col(EmailOutbox::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_outbox_recipient")
                .table(EmailOutbox::Table)
                .col(EmailOutbox::ToAddress)
                .col(EmailOutbox::Template)
                .col(EmailOutbox::CreatedAt)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(EmailAttempts::Table)
                .col(pk_uuid(EmailAttempts::Id))
                .col(uuid(EmailAttempts::EmailId))
                .col(timestamp_with_time_zone(EmailAttempts::AttemptedAt))
                .col(string(EmailAttempts::Outcome))
                .col(text_null(EmailAttempts::Error))
                .foreign_key(
                    ForeignKey::create()
                        .from(EmailAttempts::Table, EmailAttempts::EmailId)
                        .to(EmailOutbox::Table, EmailOutbox::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_email_attempts_email")
                .table(EmailAttempts::Table)
                .col(EmailAttempts::EmailId)
                .to_owned(),
        )
        .await?;
        // Per-email request counters (abuse limits), one row per request,
        // whether or not the address has an account.
        m.create_table(
            Table::create()
                .table(EmailRequests::Table)
                .col(pk_uuid(EmailRequests::Id))
                .col(string(EmailRequests::Email))
                .col(string(EmailRequests::Kind))
                .col(timestamp_with_time_zone(EmailRequests::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_email_requests")
                .table(EmailRequests::Table)
                .col(EmailRequests::Email)
                .col(EmailRequests::Kind)
                .col(EmailRequests::CreatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(EmailRequests::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(EmailAttempts::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(EmailOutbox::Table).to_owned())
            .await?;
        Ok(())
    }
}
