//! The durable job runner's table (`jobs`), replacing `job_runs` and the
//! email outbox's own lease and schedule columns: every background task —
//! an email to deliver, a billing sweep, a purge — is one row here.
//! Emails still pending are carried over as `email.deliver` tasks.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    State,
    DedupKey,
    RunAt,
    Attempts,
    MaxAttempts,
    LeaseUntil,
    Worker,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    Id,
    Status,
}

#[derive(DeriveIden)]
enum JobRuns {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(pk_uuid(Jobs::Id))
                .col(string(Jobs::Kind))
                .col(text(Jobs::Payload))
                .col(string(Jobs::State))
                .col(string_null(Jobs::DedupKey).unique_key())
                .col(timestamp_with_time_zone(Jobs::RunAt))
                .col(integer(Jobs::Attempts).default(0))
                .col(integer(Jobs::MaxAttempts))
                .col(timestamp_with_time_zone_null(Jobs::LeaseUntil))
                .col(string_null(Jobs::Worker))
                .col(text_null(Jobs::LastError))
                .col(timestamp_with_time_zone(Jobs::CreatedAt))
                .col(timestamp_with_time_zone(Jobs::UpdatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_jobs_due")
                .table(Jobs::Table)
                .col(Jobs::State)
                .col(Jobs::RunAt)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_jobs_kind")
                .table(Jobs::Table)
                .col(Jobs::Kind)
                .col(Jobs::State)
                .to_owned(),
        )
        .await?;

        // Pending emails become delivery tasks, due now.
        let db = m.get_connection();
        let pending = db
            .query_all(
                Query::select()
                    .column(EmailOutbox::Id)
                    .from(EmailOutbox::Table)
                    .and_where(Expr::col(EmailOutbox::Status).eq("pending")),
            )
            .await?;
        let now = chrono::Utc::now();
        for row in pending {
            let id: uuid::Uuid = row.try_get_by_index(0)?;
            let insert = Query::insert()
                .into_table(Jobs::Table)
                .columns([
                    Jobs::Id,
                    Jobs::Kind,
                    Jobs::Payload,
                    Jobs::State,
                    Jobs::DedupKey,
                    Jobs::RunAt,
                    Jobs::Attempts,
                    Jobs::MaxAttempts,
                    Jobs::CreatedAt,
                    Jobs::UpdatedAt,
                ])
                .values([
                    uuid::Uuid::now_v7().into(),
                    "email.deliver".into(),
                    format!("{{\"email_id\":\"{id}\"}}").into(),
                    "queued".into(),
                    format!("email.deliver:{id}").into(),
                    now.into(),
                    0.into(),
                    10.into(),
                    now.into(),
                    now.into(),
                ])
                .map_err(|e| DbErr::Custom(e.to_string()))?
                .to_owned();
            db.execute(&insert).await?;
        }

        m.drop_index(
            Index::drop()
                .name("idx_outbox_due")
                .table(EmailOutbox::Table)
                .to_owned(),
        )
        .await?;
        // One column per statement: SQLite's ALTER TABLE drops one at a time.
        for column in ["next_attempt_at", "locked_until"] {
            let sql = format!("ALTER TABLE email_outbox DROP COLUMN {column}");
            db.execute_unprepared(&sql).await?;
        }
        m.drop_table(Table::drop().table(JobRuns::Table).to_owned())
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Jobs::Table).to_owned())
            .await?;
        Ok(())
    }
}
