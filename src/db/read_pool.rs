//! The SQLite read connections of [`super::reader`]: a small pool of
//! read-only rusqlite connections to the database file. Each read is one
//! statement in autocommit mode, so it is its own read transaction and sees
//! every commit, of any process, that finished before it began (WAL mode:
//! readers never wait for the writer; SQLite docs: wal.html). Nothing is
//! kept between reads, so checkpoints always reset the WAL, and nothing but
//! SQLite's documented API touches the database's files.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::Connection;
use sea_orm::DbErr;

/// Opens a read connection (flags, pragmas, statement cache).
type Open = dyn Fn() -> rusqlite::Result<Connection> + Send + Sync;

/// Read connections to one SQLite file. Reads never yield while they hold a
/// connection, so there are at most as many as threads reading at once.
pub struct ReadPool {
    open: Box<Open>,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    /// A pool whose connections `open` makes; one is opened now, so that a
    /// file that cannot be read fails at start-up. Errors: the database
    /// cannot be opened.
    pub fn new(
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
    ) -> Result<Arc<ReadPool>, DbErr> {
        let first = open().map_err(query_err)?;
        Ok(Arc::new(ReadPool {
            open: Box::new(open),
            idle: Mutex::new(vec![first]),
        }))
    }

    /// Runs `f` on an idle connection (or a new one). Errors: the connection
    /// cannot be opened, or `f`'s own.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match taken {
            Some(conn) => conn,
            None => (self.open)().map_err(query_err)?,
        };
        let result = f(&conn);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        result
    }
}

/// A rusqlite error as sea-orm's query error.
pub(super) fn query_err(e: rusqlite::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::Internal(e.to_string()))
}
