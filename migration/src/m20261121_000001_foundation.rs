//! The foundation schema: users, businesses, companies, channels, sign-up
//! codes, refresh tokens and one-time tokens.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    FullName,
    Role,
    EmailVerifiedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Businesses {
    Table,
    Id,
    Name,
    OwnerId,
    Plan,
    Status,
    TrialEndsAt,
    CompanySeq,
    ManagerId,
    StripeCustomerId,
    StripeAccountId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Companies {
    Table,
    Id,
    BusinessId,
    Code,
    Name,
    Kind,
    ShopType,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Channels {
    Table,
    Id,
    BusinessId,
    CompanyId,
    Platform,
    Status,
    AccountId,
    AccountName,
    LastError,
    ErrorCount,
    SuspendedReason,
    Config,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Registrations {
    Table,
    Id,
    Email,
    CodeHash,
    Attempts,
    ExpiresAt,
    VerifiedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    Id,
    Purpose,
    UserId,
    Email,
    TokenHash,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

fn ts(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone(col)
}

fn ts_null(col: impl IntoIden) -> ColumnDef {
    timestamp_with_time_zone_null(col)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_uuid(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string_null(Users::PasswordHash))
                .col(string(Users::FullName))
                .col(string(Users::Role))
                .col(ts_null(Users::EmailVerifiedAt))
                .col(ts(Users::CreatedAt))
                .col(ts(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Businesses::Table)
                .col(pk_uuid(Businesses::Id))
                .col(string(Businesses::Name))
                .col(uuid_uniq(Businesses::OwnerId))
                .col(string(Businesses::Plan))
                .col(string(Businesses::Status))
                .col(ts(Businesses::TrialEndsAt))
                .col(big_integer(Businesses::CompanySeq).default(0))
                // One column, so at most one manager per business (SPEC §1).
                .col(uuid_null(Businesses::ManagerId))
                .col(string_null(Businesses::StripeCustomerId))
                .col(string_null(Businesses::StripeAccountId))
                .col(ts(Businesses::CreatedAt))
                .col(ts(Businesses::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Businesses::Table, Businesses::OwnerId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Businesses::Table, Businesses::ManagerId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_businesses_manager")
                .table(Businesses::Table)
                .col(Businesses::ManagerId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Companies::Table)
                .col(pk_uuid(Companies::Id))
                .col(uuid(Companies::BusinessId))
                .col(string(Companies::Code))
                .col(string(Companies::Name))
                .col(string(Companies::Kind))
                .col(string_null(Companies::ShopType))
                .col(string(Companies::Status))
                .col(ts(Companies::CreatedAt))
                .col(ts(Companies::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Companies::Table, Companies::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_companies_business_code")
                .table(Companies::Table)
                .col(Companies::BusinessId)
                .col(Companies::Code)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_companies_business_id")
                .table(Companies::Table)
                .col(Companies::BusinessId)
                .col(Companies::Id)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Channels::Table)
                .col(pk_uuid(Channels::Id))
                .col(uuid(Channels::BusinessId))
                .col(uuid(Channels::CompanyId))
                .col(string(Channels::Platform))
                .col(string(Channels::Status))
                .col(string_null(Channels::AccountId))
                .col(string_null(Channels::AccountName))
                .col(text_null(Channels::LastError))
                .col(integer(Channels::ErrorCount).default(0))
                .col(string_null(Channels::SuspendedReason))
                .col(json(Channels::Config))
                .col(ts(Channels::CreatedAt))
                .col(ts(Channels::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Channels::Table, Channels::BusinessId)
                        .to(Businesses::Table, Businesses::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from(Channels::Table, Channels::CompanyId)
                        .to(Companies::Table, Companies::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channels_business_id")
                .table(Channels::Table)
                .col(Channels::BusinessId)
                .col(Channels::Id)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_channels_company_id")
                .table(Channels::Table)
                .col(Channels::CompanyId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Registrations::Table)
                .col(pk_uuid(Registrations::Id))
                .col(string(Registrations::Email))
                .col(string(Registrations::CodeHash))
                .col(integer(Registrations::Attempts).default(0))
                .col(ts(Registrations::ExpiresAt))
                .col(ts_null(Registrations::VerifiedAt))
                .col(ts(Registrations::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_registrations_email")
                .table(Registrations::Table)
                .col(Registrations::Email)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(RefreshTokens::Table)
                .col(pk_uuid(RefreshTokens::Id))
                .col(uuid(RefreshTokens::UserId))
                .col(uuid(RefreshTokens::FamilyId))
                .col(string_uniq(RefreshTokens::TokenHash))
                .col(ts(RefreshTokens::ExpiresAt))
                .col(ts_null(RefreshTokens::UsedAt))
                .col(ts_null(RefreshTokens::RevokedAt))
                .col(ts(RefreshTokens::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(RefreshTokens::Table, RefreshTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("idx_refresh_tokens_family")
                .table(RefreshTokens::Table)
                .col(RefreshTokens::FamilyId)
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(OneTimeTokens::Table)
                .col(pk_uuid(OneTimeTokens::Id))
                .col(string(OneTimeTokens::Purpose))
                .col(uuid_null(OneTimeTokens::UserId))
                .col(string(OneTimeTokens::Email))
                .col(string_uniq(OneTimeTokens::TokenHash))
                .col(ts(OneTimeTokens::ExpiresAt))
                .col(ts_null(OneTimeTokens::UsedAt))
                .col(ts(OneTimeTokens::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(OneTimeTokens::Table, OneTimeTokens::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OneTimeTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Registrations::Table.into_iden(),
            Channels::Table.into_iden(),
            Companies::Table.into_iden(),
            Businesses::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
