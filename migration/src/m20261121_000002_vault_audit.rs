//! Integration secrets (envelope-encrypted) and the append-only audit log.

use sea_orm_migration::sea_orm::DbBackend;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationSecrets {
    Table,
    Id,
    BusinessId,
    Provider,
    Name,
    Ciphertext,
    Nonce,
    WrappedDek,
    DekNonce,
    KeyId,
    Version,
    Last4,
    Metadata,
    CreatedAt,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OccurredAt,
    ActorId,
    ActorRole,
    BusinessId,
    Action,
    Target,
    Outcome,
    ClientIp,
    RequestId,
    Detail,
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
                .table(IntegrationSecrets::Table)
                .col(pk_uuid(IntegrationSecrets::Id))
                .col(uuid(IntegrationSecrets::BusinessId))
                .col(string(IntegrationSecrets::Provider))
                .col(string(IntegrationSecrets::Name))
                .col(blob(IntegrationSecrets::Ciphertext))
                .col(blob(IntegrationSecrets::Nonce))
                .col(blob(IntegrationSecrets::WrappedDek))
                .col(blob(IntegrationSecrets::DekNonce))
                .col(string(IntegrationSecrets::KeyId))
                .col(integer(IntegrationSecrets::Version))
                .col(string_null(IntegrationSecrets::Last4))
                .col(json(IntegrationSecrets::Metadata))
                .col(timestamp_with_time_zone(IntegrationSecrets::CreatedAt))
                .col(timestamp_with_time_zone(IntegrationSecrets::UpdatedAt))
                .col(uuid_null(IntegrationSecrets::UpdatedBy))
                .foreign_key(
                    ForeignKey::create()
                        .from(IntegrationSecrets::Table, IntegrationSecrets::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_secrets_business_provider_name")
                .table(IntegrationSecrets::Table)
                .col(IntegrationSecrets::BusinessId)
                .col(IntegrationSecrets::Provider)
                .col(IntegrationSecrets::Name)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_secrets_key_id")
                .table(IntegrationSecrets::Table)
                .col(IntegrationSecrets::KeyId)
                .col(IntegrationSecrets::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditLog::Table)
                .col(pk_uuid(AuditLog::Id))
                .col(timestamp_with_time_zone(AuditLog::OccurredAt))
                .col(uuid_null(AuditLog::ActorId))
                .col(string(AuditLog::ActorRole))
                .col(uuid_null(AuditLog::BusinessId))
                .col(string(AuditLog::Action))
                .col(string(AuditLog::Target))
                .col(string(AuditLog::Outcome))
                .col(string_null(AuditLog::ClientIp))
                .col(string_null(AuditLog::RequestId))
                .col(json(AuditLog::Detail))
                .to_owned(),
        )
        .await?;
        for (name, col) in [
            ("idx_audit_business", AuditLog::BusinessId),
            ("idx_audit_actor", AuditLog::ActorId),
            ("idx_audit_action", AuditLog::Action),
        ] {
            m.create_index(
                Index::create()
                    .name(name)
                    .table(AuditLog::Table)
                    .col(col)
                    .col(AuditLog::Id)
                    .to_owned(),
            )
            .await?;
        }

        // Append-only, enforced by the database.
        let db = m.get_connection();
        match m.get_database_backend() {
            DbBackend::Sqlite => {
                for op in ["UPDATE", "DELETE"] {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER audit_log_no_{lower} BEFORE {op} ON audit_log \
                         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
                        lower = op.to_lowercase()
                    ))
                    .await?;
                }
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN RAISE EXCEPTION 'audit_log is append-only'; END; $$",
                )
                .await?;
                db.execute_unprepared(
                    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log \
                     FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        if m.get_database_backend() == DbBackend::Postgres {
            m.get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS audit_log_append_only() CASCADE")
                .await?;
        }
        m.drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(IntegrationSecrets::Table).to_owned())
            .await?;
        Ok(())
    }
}
