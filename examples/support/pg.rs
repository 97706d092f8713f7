//! Throwaway PostgreSQL databases for the benchmarks (included by
//! `#[path]`): one per run on the server of `DATABASE_URL`, as the test
//! harness makes one per test, dropped when the run ends.

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database};
use uuid::Uuid;

/// Creates a uniquely named database on the server of `base` and returns
/// its URL.
pub async fn fresh_pg_database(base: &str) -> anyhow::Result<String> {
    let name = format!("sb_bench_{}", Uuid::new_v4().simple());
    let admin = Database::connect(base).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    let (prefix, _) = base
        .rsplit_once('/')
        .context("DATABASE_URL has no database path")?;
    Ok(format!("{prefix}/{name}"))
}

/// Drops the database of `url` (made by [`fresh_pg_database`]) on the
/// server of `base`.
pub async fn drop_pg_database(base: &str, url: &str) -> anyhow::Result<()> {
    let (_, name) = url.rsplit_once('/').context("database URL has no path")?;
    let admin = Database::connect(base).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    admin.close().await?;
    Ok(())
}
