//! Sign-in hardening (issue "Sign-in hardening"):
//!
//! - `users.sessions_valid_after`: access tokens issued before it are dead
//!   (logout everywhere, password reset and change, role change);
//! - `refresh_tokens.auth_time`: when the family's user last proved who they
//!   are (a refresh carries it on; sensitive changes want it recent);
//! - `oauth_states.browser_hash`: SHA-256 of the cookie set in the browser
//!   that started the authorization request (RFC 9700 §4.7);
//! - `email_outbox.body_*`: message bodies sealed under the vault's keys;
//!   the plaintext columns are blanked for every message already sent or
//!   failed (the server seals what is still pending when it starts);
//! - `integration_secrets.hint_*`: the last four characters sealed under the
//!   secret's own data key instead of `last4` in plaintext (the server fills
//!   them for existing secrets when it starts);
//! - `login_throttles`: failed password sign-ins per account, for backoff.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    SessionsValidAfter,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    AuthTime,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    BrowserHash,
}

#[derive(DeriveIden)]
enum EmailOutbox {
    Table,
    BodyCiphertext,
    BodyNonce,
    BodyWrappedDek,
    BodyDekNonce,
    BodyKeyId,
    BodyVersion,
}

#[derive(DeriveIden)]
enum IntegrationSecrets {
    Table,
    HintCiphertext,
    HintNonce,
    Last4,
}

#[derive(DeriveIden)]
enum LoginThrottles {
    Table,
    AccountKey,
    Failures,
    LockedUntil,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite's ALTER TABLE adds one column per statement.
        m.alter_table(
            Table::alter()
                .table(Users::Table)
                .add_column(timestamp_with_time_zone_null(Users::SessionsValidAfter))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(RefreshTokens::Table)
                .add_column(timestamp_with_time_zone_null(RefreshTokens::AuthTime))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(OauthStates::Table)
                .add_column(string_null(OauthStates::BrowserHash))
                .to_owned(),
        )
        .await?;
        for column in [
            EmailOutbox::BodyCiphertext,
            EmailOutbox::BodyNonce,
            EmailOutbox::BodyWrappedDek,
            EmailOutbox::BodyDekNonce,
        ] {
            m.alter_table(
                Table::alter()
                    .table(EmailOutbox::Table)
                    .add_column(blob_null(column))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(EmailOutbox::Table)
                .add_column(string_null(EmailOutbox::BodyKeyId))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(EmailOutbox::Table)
                .add_column(integer_null(EmailOutbox::BodyVersion))
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "UPDATE email_outbox SET text_body = '', html_body = '' WHERE status = 'sent'",
        )
        .await?;
        for column in [
            IntegrationSecrets::HintCiphertext,
            IntegrationSecrets::HintNonce,
        ] {
            m.alter_table(
                Table::alter()
                    .table(IntegrationSecrets::Table)
                    .add_column(blob_null(column))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(IntegrationSecrets::Table)
                .drop_column(IntegrationSecrets::Last4)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(LoginThrottles::Table)
                .col(string(LoginThrottles::AccountKey).primary_key())
                .col(integer(LoginThrottles::Failures))
                .col(timestamp_with_time_zone_null(LoginThrottles::LockedUntil))
                .col(timestamp_with_time_zone(LoginThrottles::UpdatedAt))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(LoginThrottles::Table).to_owned())
            .await?;
        Ok(())
    }
}
