//! Sign-in with external providers: pending authorization requests (state,
//! nonce, PKCE verifier) and linked identities.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    Id,
    Provider,
    StateHash,
    PkceVerifier,
    Nonce,
    LinkUserId,
    ExpiresAt,
    UsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Identities {
    Table,
    Id,
    UserId,
    Provider,
    Subject,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(OauthStates::Table)
                .col(pk_uuid(OauthStates::Id))
                .col(string(OauthStates::Provider))
                .col(string_uniq(OauthStates::StateHash))
                .col(string(OauthStates::PkceVerifier))
                .col(string_null(OauthStates::Nonce))
                .col(uuid_null(OauthStates::LinkUserId))
                .col(timestamp_with_time_zone(OauthStates::ExpiresAt))
                .col(timestamp_with_time_zone_null(OauthStates::UsedAt))
                .col(timestamp_with_time_zone(OauthStates::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(OauthStates::Table, OauthStates::LinkUserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Identities::Table)
                .col(pk_uuid(Identities::Id))
                .col(uuid(Identities::UserId))
                .col(string(Identities::Provider))
                .col(string(Identities::Subject))
                .col(string_null(Identities::Email))
                .col(timestamp_with_time_zone(Identities::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .from(Identities::Table, Identities::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // A provider account belongs to one user; a user has one of each provider.
        m.create_index(
            Index::create()
                .name("uq_identities_provider_subject")
                .table(Identities::Table)
                .col(Identities::Provider)
                .col(Identities::Subject)
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("uq_identities_user_provider")
                .table(Identities::Table)
                .col(Identities::UserId)
                .col(Identities::Provider)
                .unique()
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Identities::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(OauthStates::Table).to_owned())
            .await?;
        Ok(())
    }
}
