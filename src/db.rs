//! Database connection and migrations. SQLite (the zero-configuration
//! default) runs in WAL mode with foreign keys on and a busy timeout, so
//! concurrent writers wait instead of failing; PostgreSQL is production's.
//! With `sqlite_exclusive`, every connection of the process opens the file
//! through SQLite's `unix-excl` VFS (see [`Config::sqlite_exclusive`]).

pub mod read_pool;
pub mod reader;
pub mod rows;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::config::Config;

/// Opens the pool described by `config`.
pub async fn connect(config: &Config) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(config.database_url.clone());
    options
        .max_connections(config.database_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        // Over a network, check a connection only when it sat idle a while
        // (instead of a round trip before every use).
        .test_before_acquire_if_idle_for(Duration::from_secs(30));
    let file = reader::sqlite_file(&config.database_url);
    let exclusive = config.sqlite_exclusive && file.is_some();
    if config.is_sqlite() {
        // A local file connection does not go stale: no ping round trip
        // through the connection's worker thread before every use.
        options.test_before_acquire(false);
        options.map_sqlx_sqlite_opts(move |o| {
            let o = if exclusive {
                o.vfs(reader::EXCLUSIVE_VFS)
            } else {
                o
            };
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    }
    if let Some(path) = file {
        tokio::task::spawn_blocking(move || not_held_elsewhere(&path, exclusive))
            .await
            .map_err(|e| DbErr::Custom(e.to_string()))??;
    }
    Database::connect(options).await
}

/// Fails fast, and says why, when another process holds the SQLite file
/// at `path` exclusively (a server with `sqlite_exclusive`): otherwise every
/// connection attempt would wait out its busy timeout and end in an opaque
/// pool timeout. A read needs a shared lock on the file, which an exclusive
/// holder never releases; other writers in WAL mode never block it for more
/// than a moment, hence the 2-second wait. A file that does not exist yet
/// is nobody's.
fn not_held_elsewhere(path: &std::path::Path, exclusive: bool) -> Result<(), DbErr> {
    use rusqlite::{Connection, ErrorCode};
    if !path.exists() {
        return Ok(());
    }
    let (target, flags) = reader::read_target(path, exclusive);
    let read = Connection::open_with_flags(target, flags).and_then(|conn| {
        conn.busy_timeout(Duration::from_secs(2))?;
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
    });
    match read {
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::DatabaseBusy => {
            Err(DbErr::Custom(format!(
                "the SQLite database {} is held by another process (a server running with \
                 sqlite_exclusive = true keeps it until it stops); stop that server and retry",
                path.display()
            )))
        }
        // Anything else (a corrupt or unreadable file) is reported by the
        // pool, with SQLite's own message.
        _ => Ok(()),
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Why the database is not ready: a stable reason for clients and the
/// full text for the log.
#[derive(Debug)]
pub struct NotReady {
    /// `database_unreachable` or `migrations_pending` (safe to show).
    pub reason: &'static str,
    /// What went wrong, for the log only (may name hosts and errors).
    pub detail: String,
}

/// Readiness: the database answers and no migration is pending.
pub async fn ready(db: &DatabaseConnection) -> Result<(), NotReady> {
    db.execute_unprepared("SELECT 1")
        .await
        .map_err(|e| NotReady {
            reason: "database_unreachable",
            detail: format!("database unreachable: {e}"),
        })?;
    let pending = Migrator::get_pending_migrations(db)
        .await
        .map_err(|e| NotReady {
            reason: "database_unreachable",
            detail: format!("cannot read migrations: {e}"),
        })?;
    if pending.is_empty() {
        Ok(())
    } else {
        Err(NotReady {
            reason: "migrations_pending",
            detail: format!("{} migration(s) pending", pending.len()),
        })
    }
}

/// Starts a transaction that will write. On SQLite it begins `IMMEDIATE`:
/// the write lock is taken at `BEGIN` (waiting up to the busy timeout), so a
/// transaction that reads before it writes cannot fail with `SQLITE_BUSY`
/// when another connection or process commits in between (SQLite docs:
/// lang_transaction, "BEGIN IMMEDIATE"). PostgreSQL ignores the mode.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Rows per multi-row write, below every backend's bound-value limit
/// (SQLite allows 32,766 bound values; the widest table written this way
/// binds 15 per row).
const WRITE_CHUNK: usize = 500;

/// Writes `rows` whole (every column set, `reset_all`) as multi-row
/// `INSERT … ON CONFLICT` statements of at most 500 rows; returns the rows
/// inserted or updated (a conflict whose `WHERE` refuses counts none).
pub async fn upsert<C, M, A>(
    txn: &C,
    rows: impl IntoIterator<Item = M>,
    conflict: sea_orm::sea_query::OnConflict,
) -> Result<u64, DbErr>
where
    C: ConnectionTrait,
    M: sea_orm::IntoActiveModel<A>,
    A: sea_orm::ActiveModelTrait,
{
    use sea_orm::EntityTrait;
    let mut written = 0;
    let mut rows = rows
        .into_iter()
        .map(|row| row.into_active_model().reset_all())
        .peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(WRITE_CHUNK).collect();
        written += <A::Entity as EntityTrait>::insert_many(chunk)
            .on_conflict(conflict.clone())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(written)
}
