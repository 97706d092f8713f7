//! The SQLite read connections of [`super::reader`], and the read
//! transactions they keep open between reads while the database is unchanged.
//!
//! In WAL mode, beginning and ending a read transaction locks and unlocks a
//! read-mark byte of the shared-memory file (two `fcntl` calls, each under
//! SQLite's process-wide shared-memory mutex), so that other processes can
//! use the file too (SQLite docs: wal.html). Under load that was the largest
//! single cost of a read: on `GET /v1/companies`, about 5 µs of the server's
//! 42 µs per request, and with both worker threads queued on that mutex the
//! CPU sat idle a tenth of the time.
//!
//! So a connection here keeps its read transaction open after a read, and
//! the next read on it reuses the transaction only if nothing was committed
//! since it began: the wal-index header, which every commit of every process
//! rewrites before the commit returns, and the checkpoint's progress
//! (`nBackfill`) are unchanged (SQLite docs: walformat.html, "The WAL-Index
//! Header"). They are the first 100 bytes of the shared-memory file, read
//! with one `pread` and no lock. Otherwise the transaction ends and a new one
//! begins, as it would without this module. The header is read before a
//! transaction begins, so a commit that lands in between only makes the next
//! read start over, and a header read while it is being rewritten only
//! differs. A read therefore sees every commit that finished before it
//! started, as before.
//!
//! When the process holds the file exclusively (`sqlite_exclusive`), the
//! wal-index lives in the process's memory and its locks take no system
//! call: every read is then its own transaction.
//!
//! An open read transaction holds its snapshot's WAL frames: a checkpoint
//! copies no frame past it and the writer cannot restart the WAL. So no
//! transaction is reused once it is [`MAX_AGE`] old, and a reaper thread
//! ends those of idle connections: a snapshot outlives the last read on it
//! by at most twice that.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sea_orm::DbErr;

use super::reader::query_err;

/// How long a read transaction may be reused, and how often the reaper ends
/// those of idle connections.
pub const MAX_AGE: Duration = Duration::from_millis(50);

/// Bytes of the shared-memory file compared between reads: both 48-byte
/// copies of the wal-index header, then the checkpoint's `nBackfill`.
const WATCHED: usize = 100;

/// Opens a read connection (flags, pragmas, statement cache).
type Open = dyn Fn() -> rusqlite::Result<Connection> + Send + Sync;

/// Read connections to one SQLite file. Reads never yield while they hold a
/// connection, so there are at most as many as threads reading at once.
pub struct ReadPool {
    open: Box<Open>,
    idle: Mutex<Vec<ReadConn>>,
    /// The database's shared-memory file, when read transactions are kept.
    wal_index: Option<WalIndex>,
}

impl ReadPool {
    /// A pool whose connections `open` makes; one is opened now, so that a
    /// file that cannot be read fails at start-up. With `shm`, the path of
    /// the database's shared-memory file (`<database>-shm`), connections keep
    /// their read transactions while the database is in WAL mode; a reaper
    /// thread, which stops once the pool is dropped, ends them. Errors: the
    /// database cannot be opened, or its shared-memory file read.
    pub fn new(
        open: impl Fn() -> rusqlite::Result<Connection> + Send + Sync + 'static,
        shm: Option<PathBuf>,
    ) -> Result<Arc<ReadPool>, DbErr> {
        let first = open().map_err(query_err)?;
        let wal_index = match shm {
            Some(path) if in_wal_mode(&first)? => Some(WalIndex::open(path)?),
            _ => None,
        };
        let keeps = wal_index.is_some();
        let pool = Arc::new(ReadPool {
            open: Box::new(open),
            idle: Mutex::new(Vec::new()),
            wal_index,
        });
        pool.put(ReadConn {
            conn: first,
            open: None,
        });
        if !keeps {
            return Ok(pool);
        }
        let weak = Arc::downgrade(&pool);
        std::thread::Builder::new()
            .name("sqlite-read-reaper".into())
            .spawn(move || reap(weak))
            .map_err(|e| DbErr::Custom(format!("cannot start the read reaper: {e}")))?;
        Ok(pool)
    }

    /// Runs `f` on a connection inside a read transaction that has seen
    /// every commit finished before this call. Errors: the connection cannot
    /// be opened or the transaction begun, or `f`'s own.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => ReadConn {
                conn: (self.open)().map_err(query_err)?,
                open: None,
            },
        };
        let result = match &self.wal_index {
            Some(wal_index) => conn.read(wal_index.watched(), f),
            None => f(&conn.conn),
        };
        self.put(conn);
        result
    }

    fn put(&self, conn: ReadConn) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

/// Every [`MAX_AGE`], ends the read transactions of idle connections that
/// are that old; returns once the pool is gone.
fn reap(pool: Weak<ReadPool>) {
    loop {
        std::thread::sleep(MAX_AGE);
        let Some(pool) = pool.upgrade() else { return };
        let mut idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for conn in idle.iter_mut() {
            if conn
                .open
                .as_ref()
                .is_some_and(|t| t.since.elapsed() >= MAX_AGE)
            {
                conn.end();
            }
        }
    }
}

/// A read connection and the read transaction it keeps open, if any.
struct ReadConn {
    conn: Connection,
    open: Option<Kept>,
}

/// An open read transaction: the watched bytes as they were before it
/// began, and when that was.
struct Kept {
    seen: [u8; WATCHED],
    since: Instant,
}

impl ReadConn {
    /// Runs `f` in a kept read transaction, given the watched bytes as they
    /// are now (`None`: unknown, so no transaction is kept past this read).
    fn read<T>(
        &mut self,
        now: Option<[u8; WATCHED]>,
        f: impl FnOnce(&Connection) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        if let Some(kept) = &self.open
            && (Some(kept.seen) != now || kept.since.elapsed() >= MAX_AGE)
        {
            self.end();
        }
        let Some(now) = now else {
            return f(&self.conn);
        };
        if self.open.is_none() {
            self.end();
            // Deferred: the snapshot is taken by `f`'s first read, after
            // `now` was read.
            self.conn
                .prepare_cached("BEGIN")
                .and_then(|mut begin| begin.execute([]))
                .map_err(query_err)?;
            self.open = Some(Kept {
                seen: now,
                since: Instant::now(),
            });
        }
        let result = f(&self.conn);
        if result.is_err() {
            self.end();
        }
        result
    }

    /// Ends the connection's transaction, if it has one (a read
    /// transaction: rolling it back changes nothing). A failure is logged;
    /// the next `BEGIN` on the connection then fails and says why.
    fn end(&mut self) {
        self.open = None;
        if !self.conn.is_autocommit()
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "ending a kept SQLite read transaction failed");
        }
    }
}

/// Whether `conn`'s main database is in WAL mode.
/// (Its first read also opens the shared-memory file, if it has none yet.)
fn in_wal_mode(conn: &Connection) -> Result<bool, DbErr> {
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(()))
        .map_err(query_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(query_err)?;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// The shared-memory file of a WAL database, only read here. SQLite deletes
/// it only when the last connection to the database, in any process,
/// closes; the pool's connections stay open while it exists.
struct WalIndex(File);

impl WalIndex {
    fn open(path: PathBuf) -> Result<WalIndex, DbErr> {
        File::open(&path).map(WalIndex).map_err(|e| {
            DbErr::Custom(format!(
                "cannot read SQLite's shared-memory file {}: {e}",
                path.display()
            ))
        })
    }

    /// The watched bytes now, or `None` if they cannot be read (the file
    /// is being created or reset).
    fn watched(&self) -> Option<[u8; WATCHED]> {
        let mut bytes = [0u8; WATCHED];
        self.0.read_exact_at(&mut bytes, 0).ok().map(|()| bytes)
    }
}
