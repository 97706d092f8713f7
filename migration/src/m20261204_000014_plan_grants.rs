//! The admin's plan grants (SPEC §2: `free` "granted by an admin only",
//! `enterprise` "admin-set, Stripe subscription with a custom price"):
//!
//! - `businesses.granted_plan`: the plan an admin granted (`free` or
//!   `enterprise`), which stands until an admin grants another; `NULL`
//!   when none was granted;
//! - `businesses.granted_channel_limit`: the custom channel limit of a
//!   granted `enterprise` plan; `NULL` is unlimited (SPEC §2's default).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Businesses {
    Table,
    GrantedPlan,
    GrantedChannelLimit,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(string_null(Businesses::GrantedPlan))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(Businesses::Table)
                .add_column(integer_null(Businesses::GrantedChannelLimit))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for column in [Businesses::GrantedChannelLimit, Businesses::GrantedPlan] {
            m.alter_table(
                Table::alter()
                    .table(Businesses::Table)
                    .drop_column(column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
