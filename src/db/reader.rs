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
//! them (UUIDs as 16-byte blobs, timestamps as RFC 3339 text), decode each
//! column by the entity's definition of it, set it on the entity's
//! `ActiveModel` (which checks the value's type) and turn that into the
//! `Model` (which checks that every column was read).
//!
//! Only for statements that finish in microseconds (indexed lookups, small
//! pages): they hold the calling runtime thread while they run.
//!
//! Each read is one SQLite read transaction. By default its start and end
//! lock and unlock a byte of the shared-memory file (`fcntl`, under SQLite's
//! shared-memory mutex) so that other processes can use the database too;
//! with `sqlite_exclusive` the process holds the file alone and those locks
//! stay in memory (see `Config::sqlite_exclusive`).

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::OpenFlags;
use rusqlite::config::DbConfig;
use rusqlite::types::{Value as SqlValue, ValueRef};
use sea_orm::sea_query::{ColumnType, Value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, IdenStatic,
    Iterable, QueryTrait, Select, TryIntoModel,
};

/// Read connections kept per SQLite database: at most one per thread that
/// reads at the same moment, and reads never yield while they hold one.
const POOL_SIZE: u32 = 16;

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
    /// A SQLite file: in place, over read-only rusqlite connections.
    Sqlite(r2d2::Pool<SqliteConnectionManager>),
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
        let manager = SqliteConnectionManager::file(target).with_flags(flags);
        let manager = manager.with_init(move |conn| {
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
            Ok(())
        });
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            // A local file does not go stale: no round trip before each use.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(5))
            .build(manager)
            .map_err(pool_err)?;
        Ok(Reader::Sqlite(pool))
    }

    /// Every row `select` returns, as models.
    pub async fn all<E>(&self, select: Select<E>) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
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
        E::ActiveModel: TryIntoModel<E::Model>,
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
    /// order, and each distinct text needs its own `shape`. Both are checked
    /// whenever the statement is built: on a shape's first use, and on every
    /// call in debug builds (the test suite), so a mismatch is an error, not a
    /// wrong answer. PostgreSQL builds `select()` as usual.
    pub async fn all_shaped<E>(
        &self,
        shape: &Shape,
        values: Vec<Value>,
        select: impl FnOnce() -> Select<E>,
    ) -> Result<Vec<E::Model>, DbErr>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
    {
        let pool = match self {
            Reader::Pool(db) => return select().all(db).await,
            Reader::Sqlite(pool) => pool,
        };
        let sql = match shape.0.get() {
            Some(sql) if !cfg!(debug_assertions) => sql,
            _ => {
                let built = select().build(DbBackend::Sqlite);
                let built_values = built.values.map(|v| v.0).unwrap_or_default();
                if built_values != values {
                    return Err(DbErr::Custom(format!(
                        "shaped read: values {values:?} are not the statement's {built_values:?}"
                    )));
                }
                let sql = shape.0.get_or_init(|| built.sql.clone());
                if *sql != built.sql {
                    return Err(DbErr::Custom(format!(
                        "shaped read: one shape for two statements: {sql} / {}",
                        built.sql
                    )));
                }
                sql
            }
        };
        run::<E>(pool, sql, &values)
    }

    /// The row `select` finds, or 404 `not_found`: a tenant-scoped lookup
    /// of one resource.
    pub async fn found<E>(&self, select: Select<E>) -> crate::error::Result<E::Model>
    where
        E: EntityTrait,
        E::ActiveModel: TryIntoModel<E::Model>,
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
    uri.push_str(super::EXCLUSIVE_VFS);
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

fn query<E>(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    select: Select<E>,
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let statement = select.build(DbBackend::Sqlite);
    let values = statement.values.map(|v| v.0).unwrap_or_default();
    run::<E>(pool, &statement.sql, &values)
}

/// Runs `sql` with `values` bound in order and decodes the rows as `E`.
fn run<E>(
    pool: &r2d2::Pool<SqliteConnectionManager>,
    sql: &str,
    values: &[Value],
) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    E::ActiveModel: TryIntoModel<E::Model>,
{
    let conn = pool.get().map_err(pool_err)?;
    let mut stmt = conn.prepare_cached(sql).map_err(query_err)?;
    for (i, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, bind(value)?)
            .map_err(query_err)?;
    }
    // Which entity column each result column is, and how to decode it:
    // `find()` selects every column in declaration order, which the
    // entity's plan already says; any other column list is looked up by name.
    let plan = plan::<E>();
    let in_order = stmt.column_count() == plan.len()
        && plan
            .iter()
            .enumerate()
            .all(|(i, (c, _))| stmt.column_name(i).is_ok_and(|n| n == c.as_str()));
    let columns: Cow<'_, [(E::Column, Decode)]> = if in_order {
        Cow::Borrowed(&plan[..])
    } else {
        Cow::Owned(
            stmt.column_names()
                .into_iter()
                .map(|name| {
                    plan.iter()
                        .find(|(c, _)| c.as_str() == name)
                        .copied()
                        .ok_or_else(|| {
                            DbErr::Type(format!("column `{name}` is not a column of the entity"))
                        })
                })
                .collect::<Result<_, _>>()?,
        )
    };
    let mut rows = stmt.raw_query();
    let mut models = Vec::new();
    while let Some(row) = rows.next().map_err(query_err)? {
        let mut model = <E::ActiveModel as ActiveModelTrait>::default();
        for (i, (column, how)) in columns.iter().enumerate() {
            let raw = row.get_ref(i).map_err(query_err)?;
            model.try_set(*column, decode(raw, *how, column.as_str())?)?;
        }
        models.push(model.try_into_model()?);
    }
    Ok(models)
}

fn pool_err(e: r2d2::Error) -> DbErr {
    DbErr::Conn(sea_orm::RuntimeErr::Internal(e.to_string()))
}

fn query_err(e: rusqlite::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::Internal(e.to_string()))
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

/// How a column's SQLite value becomes the `Value` its entity type expects,
/// from the column's `ColumnType`.
#[derive(Debug, Clone, Copy)]
enum Decode {
    Uuid,
    Text,
    Bool,
    Int,
    BigInt,
    Double,
    Timestamp,
    Json,
    Blob,
    /// A type this read path does not decode (an error when read).
    Unsupported,
}

impl Decode {
    fn of(ty: &ColumnType) -> Decode {
        match ty {
            ColumnType::Uuid => Decode::Uuid,
            ColumnType::Char(_)
            | ColumnType::String(_)
            | ColumnType::Text
            | ColumnType::Enum { .. }
            | ColumnType::Custom(_) => Decode::Text,
            ColumnType::Boolean => Decode::Bool,
            ColumnType::Integer => Decode::Int,
            ColumnType::BigInteger => Decode::BigInt,
            ColumnType::Double => Decode::Double,
            ColumnType::TimestampWithTimeZone => Decode::Timestamp,
            ColumnType::Json | ColumnType::JsonBinary => Decode::Json,
            ColumnType::Blob | ColumnType::Binary(_) | ColumnType::VarBinary(_) => Decode::Blob,
            _ => Decode::Unsupported,
        }
    }
}

thread_local! {
    /// Per entity type: its columns in declaration order and how each is
    /// decoded. Built on first use in each thread; column definitions are
    /// static, and building them allocates (enum variant lists).
    static PLANS: RefCell<HashMap<TypeId, Rc<dyn Any>>> = RefCell::new(HashMap::new());
}

/// The plan of entity `E` (see [`PLANS`]).
fn plan<E: EntityTrait>() -> Rc<[(E::Column, Decode)]> {
    PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        let entry = plans.entry(TypeId::of::<E>()).or_insert_with(|| {
            let plan: Rc<[(E::Column, Decode)]> = E::Column::iter()
                .map(|c| (c, Decode::of(c.def().get_column_type())))
                .collect();
            Rc::new(plan)
        });
        match entry.downcast_ref::<Rc<[(E::Column, Decode)]>>() {
            Some(plan) => plan.clone(),
            None => unreachable!("plans are keyed by the TypeId of their entity"),
        }
    })
}

/// Decodes one column of a row into the `Value` its entity type expects
/// (typed nulls included: `ActiveModel::try_set` checks the variant).
fn decode(raw: ValueRef<'_>, how: Decode, column: &str) -> Result<Value, DbErr> {
    let mismatch = || DbErr::Type(format!("column `{column}`: {how:?} cannot hold {raw:?}"));
    let integer = || match raw {
        ValueRef::Integer(n) => Ok(Some(n)),
        ValueRef::Null => Ok(None),
        _ => Err(mismatch()),
    };
    let text = || match raw {
        ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| mismatch()),
        ValueRef::Null => Ok(None),
        _ => Err(mismatch()),
    };
    Ok(match how {
        Decode::Uuid => Value::Uuid(match raw {
            ValueRef::Blob(b) => Some(uuid::Uuid::from_slice(b).map_err(|_| mismatch())?),
            ValueRef::Text(t) => Some(
                std::str::from_utf8(t)
                    .ok()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok())
                    .ok_or_else(mismatch)?,
            ),
            ValueRef::Null => None,
            _ => return Err(mismatch()),
        }),
        Decode::Text => Value::String(text()?.map(str::to_owned)),
        Decode::Bool => Value::Bool(integer()?.map(|n| n != 0)),
        Decode::Int => Value::Int(
            integer()?
                .map(|n| i32::try_from(n).map_err(|_| mismatch()))
                .transpose()?,
        ),
        Decode::BigInt => Value::BigInt(integer()?),
        Decode::Double => Value::Double(match raw {
            ValueRef::Real(r) => Some(r),
            ValueRef::Null => None,
            _ => return Err(mismatch()),
        }),
        Decode::Timestamp => Value::ChronoDateTimeUtc(
            text()?
                .map(|s| parse_timestamp(s).ok_or_else(mismatch))
                .transpose()?,
        ),
        Decode::Json => Value::Json(
            text()?
                .map(|s| {
                    serde_json::from_str(s)
                        .map(Box::new)
                        .map_err(|_| mismatch())
                })
                .transpose()?,
        ),
        Decode::Blob => Value::Bytes(match raw {
            ValueRef::Blob(b) => Some(b.to_vec()),
            ValueRef::Null => None,
            _ => return Err(mismatch()),
        }),
        Decode::Unsupported => {
            return Err(DbErr::Type(format!(
                "column `{column}`: the SQLite read path does not decode its type"
            )));
        }
    })
}

/// A `DateTime<Utc>` as sqlx stores it in SQLite: RFC 3339, or
/// `YYYY-MM-DD HH:MM:SS[.f]` read as UTC.
fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc())
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
