//! Schema migrations of Switchboard's database, applied in order by
//! `switchboard migrate` and at server start. The same migrations run on
//! SQLite and PostgreSQL; each is written once with sea-query.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_foundation;
mod m20261121_000002_vault_audit;
mod m20261121_000003_email_outbox;
mod m20261121_000004_oauth;
mod m20261122_000005_billing;
mod m20261202_000006_jobs;
mod m20261202_000007_inbound_events;
mod m20261203_000008_sign_in_hardening;
mod m20261203_000009_programs;
mod m20261203_000010_channel_connections;
mod m20261203_000011_n8n_objects;
mod m20261203_000012_connected_accounts;
mod m20261203_000013_purchases;
mod m20261204_000014_plan_grants;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_foundation::Migration),
            Box::new(m20261121_000002_vault_audit::Migration),
            Box::new(m20261121_000003_email_outbox::Migration),
            Box::new(m20261121_000004_oauth::Migration),
            Box::new(m20261122_000005_billing::Migration),
            Box::new(m20261202_000006_jobs::Migration),
            Box::new(m20261202_000007_inbound_events::Migration),
            Box::new(m20261203_000008_sign_in_hardening::Migration),
            Box::new(m20261203_000009_programs::Migration),
            Box::new(m20261203_000010_channel_connections::Migration),
            Box::new(m20261203_000011_n8n_objects::Migration),
            Box::new(m20261203_000012_connected_accounts::Migration),
            Box::new(m20261203_000013_purchases::Migration),
            Box::new(m20261204_000014_plan_grants::Migration),
        ]
    }
}
