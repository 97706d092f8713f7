//! The read path of hot, read-only queries (`GET` lists and lookups).
//!
//! On PostgreSQL it is simply the pool. On SQLite it bypasses sqlx: sqlx runs
//! every SQLite connection on its own worker thread, so each statement costs
//! two cross-thread wake-ups, and under load those hand-offs (futex wakes and
//! context switches) took more CPU than the queries themselves (measured on
//! `GET /v1/companies`: 40% of the server's CPU in sqlx's SQLite worker
//! threads, 25% in scheduler code). Here a short indexed read runs in place
//! on the calling thread over a pooled, read-only rusqlite connection to the
//! same file. In WAL mode readers never wait for the writer and see every
//! committed transaction (SQLite docs: wal.html), so a read that follows a
//! write through the sqlx pool sees it.
//!
//! Statements are still built by sea-orm from the entity (the same query code
//! as on PostgreSQL); this module binds their values the way sqlx encodes
//! them (UUIDs as 16-byte blobs, timestamps as RFC 3339 text), checks that
//! the statement selects the model's columns in the entity's order, and
//! decodes each row into the model ([`super::rows`]).
//!
//! Only for statements that finish in microseconds (indexed lookups, small
//! pages): they hold the calling runtime thread while they run.
//!
//! Each read is one statement in autocommit mode ([`super::read_pool`]):
//! it sees every commit, from any process, that finished before it began.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::SecondsFormat;
use rusqlite::config::DbConfig;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags, Statement};
use sea_orm::sea_query::Value;
use sea_orm::{DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryTrait, Select};

use super::read_pool::{ReadPool, query_err};
use super::rows::FromSqliteRow;

/// SQLite's VFS that holds the database file for this process alone.
pub(crate) const EXCLUSIVE_VFS: &str = "unix-excl";

/// The SQL text of one shape of a hot query (which of its optional filters
/// are present), kept once sea-orm has built it; see [`Reader::all_shaped`].
pub struct Shape(OnceLock<String>);

impl Shape {
    /// A shape whose text is not built yet (for a `static`).
    pub const fn new() -> Shape {
        Shape(OnceLock::new())
    }
}

impl Default for Shape {
    fn default() -> Shape {
        Shape::new()
    }
}

/// Where hot reads go. Cheap to clone.
#[derive(Clone)]
pub enum Reader {
    /// PostgreSQL (or an in-memory SQLite database): the sea-orm pool.
    Pool(DatabaseConnection),
    /// A SQLite file: in place, over read-only rusqlite connections
    /// ([`ReadPool`]).
    Sqlite(Arc<ReadPool>),
}

impl Reader {
    /// The reader for `database_url`, next to the pool `db` (already
    /// migrated, so the file exists in WAL mode). A SQLite URL is
    /// `sqlite://PATH[?options]` or `sqlite:PATH[?options]`; `:memory:` or
    /// `mode=memory` databases are private to their connection, so they read
    /// through `db`. With `exclusive` (the process holds the file, see
    /// `Config::sqlite_exclusive`) the connections use the same `unix-excl`
    /// VFS as `db`; they are then opened read-write, because a read-only one
    /// would take real file locks that replace the process's exclusive lock,
    /// and made read-only with `PRAGMA query_only`. Errors: the file cannot
    /// be opened.
    pub fn new(
        database_url: &str,
        db: &DatabaseConnection,
        exclusive: bool,
    ) -> Result<Reader, DbErr> {
        let Some(path) = sqlite_file(database_url) else {
            return Ok(Reader::Pool(db.clone()));
        };
        let (target, flags) = read_target(&path, exclusive);
        let pool = ReadPool::new(move || {
            let conn = Connection::open_with_flags(&target, flags)?;
            if exclusive {
                conn.pragma_update(None, "query_only", true)?;
            }
            conn.busy_timeout(Duration::from_secs(1))?;
            // Plans must not depend on bound values: otherwise SQLite
            // re-prepares a statement whenever a value it peeked at
            // (such as `LIMIT ?`) is bound again, i.e. on every use of
            // the cached statement (SQLite docs: c3ref/c_dbconfig_
            // defensive, SQLITE_DBCONFIG_ENABLE_QPSG).
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        })?;
        Ok(Reader::Sqlite(pool))
    }

    /// Every row `select` returns, as models.
    pub async fn all<E>(&self, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromSqliteRow,
    {
        match self {
            Reader::Pool(db) => select.all(db).await,
            Reader::Sqlite(pool) => query::<E>(pool, select),
        }
    }

    /// The first row `select` returns, if any.
    pub async fn one<E>(&self, select: Select<E>) -> Result<Option<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromSqliteRow,
    {
        match self {
            Reader::Pool(db) => select.one(db).await,
            Reader::Sqlite(pool) => {
                use sea_orm::QuerySelect;
                Ok(query::<E>(pool, select.limit(1))?.into_iter().next())
            }
        }
    }

    /// [`all`](Self::all) for a hot list: on SQLite, the text sea-orm builds
    /// for `select()` is kept in `shape` and later calls bind `values`
    /// without building it again (building the statement was about a fifth
    /// of the read path's CPU). `values` must be the statement's values in
    /// order, and each distinct text needs its own `shape`. Both, and the
    /// statement's columns, are checked whenever the statement is built: until
    /// a shape's first success, and on every call in debug builds (the test
    /// suite), so a mismatch is an error, not a wrong answer. PostgreSQL
    /// builds `select()` as usual.
    pub async fn all_shaped<E>(
        &self,
        shape: &Shape,
        values: Vec<Value>,
        select: impl FnOnce() -> Select<E>,
    ) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromSqliteRow,
    {
        let pool = match self {
            Reader::Pool(db) => return select().all(db).await,
            Reader::Sqlite(pool) => pool,
        };
        if let Some(sql) = shape.0.get().filter(|_| !cfg!(debug_assertions)) {
            return run(pool, sql, &values, false);
        }
        let built = select().build(DbBackend::Sqlite);
        let built_values = built.values.map(|v| v.0).unwrap_or_default();
        if built_values != values {
            return Err(DbErr::Custom(format!(
                "shaped read: values {values:?} are not the statement's {built_values:?}"
            )));
        }
        if let Some(sql) = shape.0.get().filter(|sql| **sql != built.sql) {
            return Err(DbErr::Custom(format!(
                "shaped read: one shape for two statements: {sql} / {}",
                built.sql
            )));
        }
        // The text is kept once it has run with its columns checked.
        let models = run(pool, &built.sql, &values, true)?;
        let _ = shape.0.set(built.sql);
        Ok(models)
    }

    /// One keyset page of `E`: the rows matching `scope` and every filter
    /// that has a value, with ids after `after`, in id order, at most
    /// `limit` of them. Read through [`all_shaped`](Self::all_shaped): the
    /// statement's values come from the same filters as its text, and
    /// `shapes` holds one [`Shape`] per combination of present filters and
    /// cursor, so `2^(filters + 1)` of them. Errors: another number of
    /// shapes, or the query's.
    pub async fn page<E, const N: usize>(
        &self,
        shapes: &[Shape],
        scope: (E::Column, Value),
        filters: [(E::Column, Option<Value>); N],
        id: E::Column,
        after: Option<uuid::Uuid>,
        limit: u64,
    ) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromSqliteRow,
    {
        use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
        if shapes.len() != 1 << (N + 1) {
            return Err(DbErr::Custom(format!(
                "a page with {N} optional filters needs {} shapes, not {}",
                1 << (N + 1),
                shapes.len()
            )));
        }
        let present = filters.iter().map(|(_, value)| value.is_some());
        let shape = present
            .chain([after.is_some()])
            .enumerate()
            .fold(0, |shape, (bit, on)| shape | usize::from(on) << bit);
        let values = std::iter::once(scope.1.clone())
            .chain(filters.iter().filter_map(|(_, value)| value.clone()))
            .chain(after.map(Value::from))
            .chain([Value::from(limit)])
            .collect();
        let select = || {
            let mut q = E::find().filter(scope.0.eq(scope.1));
            for (column, value) in filters {
                if let Some(value) = value {
                    q = q.filter(column.eq(value));
                }
            }
            if let Some(after) = after {
                q = q.filter(id.gt(after));
            }
            q.order_by_asc(id).limit(limit)
        };
        self.all_shaped(&shapes[shape], values, select).await
    }

    /// The row `select` finds, or 404 `not_found`: a tenant-scoped lookup
    /// of one resource.
    pub async fn found<E>(&self, select: Select<E>) -> crate::error::Result<E::Model>
    where
        E: EntityTrait,
        E::Model: FromSqliteRow,
    {
        self.one(select)
            .await?
            .ok_or_else(crate::error::Error::not_found)
    }
}

/// What this process opens to read the SQLite file at `path`, and with
/// which flags: the file itself, read-only; or, when the process holds the
/// file (`exclusive`), its URI through the exclusive VFS, read-write (see
/// [`Reader::new`] for why).
pub(crate) fn read_target(path: &std::path::Path, exclusive: bool) -> (PathBuf, OpenFlags) {
    if exclusive {
        (
            PathBuf::from(exclusive_uri(path)),
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
    } else {
        (
            path.to_path_buf(),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
    }
}

/// `file:` URI of `path` opened through the exclusive VFS; `%`, `?` and `#`
/// are percent-encoded (SQLite docs: uri.html).
fn exclusive_uri(path: &std::path::Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?vfs=");
    uri.push_str(EXCLUSIVE_VFS);
    uri
}

/// The file of a SQLite URL, or `None` for PostgreSQL and in-memory databases.
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, options) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        path.is_empty() || path == ":memory:" || options.split('&').any(|o| o == "mode=memory");
    (!in_memory).then(|| PathBuf::from(path))
}

fn query<E>(pool: &ReadPool, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::Model: FromSqliteRow,
{
    let statement = select.build(DbBackend::Sqlite);
    let values = statement.values.map(|v| v.0).unwrap_or_default();
    run(pool, &statement.sql, &values, true)
}

/// Runs `sql` with `values` bound in order and decodes the rows as `M`.
/// With `check_columns`, first checks that the statement selects `M`'s
/// columns in order (see [`same_columns`]); a caller that checked this
/// statement text before may skip it.
fn run<M: FromSqliteRow>(
    pool: &ReadPool,
    sql: &str,
    values: &[Value],
    check_columns: bool,
) -> Result<Vec<M>, DbErr> {
    pool.read(|conn| {
        let mut stmt = conn.prepare_cached(sql).map_err(query_err)?;
        for (i, value) in values.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, bind(value)?)
                .map_err(query_err)?;
        }
        if check_columns {
            same_columns::<M>(&stmt)?;
        }
        let mut rows = stmt.raw_query();
        let mut models = Vec::new();
        while let Some(row) = rows.next().map_err(query_err)? {
            models.push(M::from_row(row)?);
        }
        Ok(models)
    })
}

/// Whether `stmt` selects exactly `M`'s columns in the entity's order (what
/// `Entity::find()` selects). Errors: `DbErr::Type` listing both.
fn same_columns<M: FromSqliteRow>(stmt: &Statement<'_>) -> Result<(), DbErr> {
    let selected = stmt.column_names();
    if selected == M::COLUMNS {
        return Ok(());
    }
    Err(DbErr::Type(format!(
        "the SQLite read path reads whole models: the statement selects {selected:?}, \
         the model's columns are {:?}",
        M::COLUMNS
    )))
}

/// A bound value, encoded as sqlx encodes it for SQLite (sqlx-sqlite
/// `types/`): UUIDs as 16-byte blobs, `DateTime<Utc>` as RFC 3339 text with
/// `SecondsFormat::AutoSi`, booleans as 0/1.
fn bind(value: &Value) -> Result<SqlValue, DbErr> {
    fn or_null<T>(v: &Option<T>, f: impl FnOnce(&T) -> SqlValue) -> SqlValue {
        v.as_ref().map_or(SqlValue::Null, f)
    }
    Ok(match value {
        Value::Bool(v) => or_null(v, |b| SqlValue::Integer(i64::from(*b))),
        Value::TinyInt(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::SmallInt(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::Int(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::BigInt(v) => or_null(v, |n| SqlValue::Integer(*n)),
        Value::TinyUnsigned(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::SmallUnsigned(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::Unsigned(v) => or_null(v, |n| SqlValue::Integer(i64::from(*n))),
        Value::BigUnsigned(Some(n)) => SqlValue::Integer(
            i64::try_from(*n).map_err(|_| DbErr::Type(format!("{n} exceeds SQLite's INTEGER")))?,
        ),
        Value::BigUnsigned(None) => SqlValue::Null,
        Value::Double(v) => or_null(v, |n| SqlValue::Real(*n)),
        Value::Float(v) => or_null(v, |n| SqlValue::Real(f64::from(*n))),
        Value::String(v) => or_null(v, |s| SqlValue::Text(s.clone())),
        Value::Bytes(v) => or_null(v, |b| SqlValue::Blob(b.clone())),
        Value::Uuid(v) => or_null(v, |u| SqlValue::Blob(u.as_bytes().to_vec())),
        Value::ChronoDateTimeUtc(v) => or_null(v, |t| {
            SqlValue::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        other => {
            return Err(DbErr::Type(format!(
                "the SQLite read path cannot bind {other:?}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{exclusive_uri, sqlite_file};

    #[test]
    fn exclusive_uris_escape_what_sqlite_would_parse() {
        assert_eq!(
            exclusive_uri(std::path::Path::new("/tmp/a b/100%?#.db")),
            "file:/tmp/a b/100%25%3f%23.db?vfs=unix-excl"
        );
    }

    #[test]
    fn sqlite_urls_name_their_file_and_memory_databases_have_none() {
        assert_eq!(
            sqlite_file("sqlite://data/s.db?mode=rwc").as_deref(),
            Some(std::path::Path::new("data/s.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:/tmp/x.db").as_deref(),
            Some(std::path::Path::new("/tmp/x.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(
            sqlite_file("sqlite://shared?mode=memory&cache=shared"),
            None
        );
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
