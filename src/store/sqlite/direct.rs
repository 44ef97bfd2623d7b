//! rusqlite on the handles of sqlx connections, so that the hot statements (`hot.rs`) run as
//! plain calls instead of one hand-off to sqlx's worker thread each.
//!
//! sqlx 0.8's `lock_handle` parks a connection's worker thread and lends its `sqlite3*`;
//! `rusqlite::Connection::from_handle` wraps it without taking ownership. rusqlite 0.32 links the
//! same libsqlite3-sys (0.30) as sqlx, so both speak to one SQLite library. Each wrapper keeps
//! its prepared statements cached, and is dropped (finalising them) before its sqlx connection
//! closes: SQLite refuses to close a handle with statements open.
//!
//! - `WriterConn`: the writer's connection, lent from one batch to the next.
//! - `Readers`: read connections whose worker stays parked for good, taken one at a time.

use super::*;
use rusqlite::ffi::sqlite3;
use rusqlite::Connection;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnectOptions};
use sqlx::ConnectOptions;
use sqlx::Sqlite;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Enough for every hot statement, so that none is prepared twice.
const STATEMENT_CACHE: usize = 64;
/// Reads are short and synchronous, so about one connection per runtime thread is in use at a
/// time; a few more are kept for bursts.
const IDLE_READERS: usize = 4;

/// The writer's rusqlite connection over its sqlx connection's handle, used only while sqlx's
/// worker is parked (`WriterConn::db`). Keep it in a field declared before the sqlx
/// connection's, so that it is dropped first.
pub(super) struct Direct {
    db: Connection,
    handle: NonNull<sqlite3>,
}

// SAFETY: the handle is only used through `WriterConn::db`, which holds sqlx's lock on it; the raw
// pointer is not Send only because the compiler cannot know that.
unsafe impl Send for Direct {}

impl Direct {
    pub(super) async fn open(conn: &mut SqliteConnection) -> Result<Direct> {
        let mut locked = conn.lock_handle().await?;
        let handle = locked.as_raw_handle();
        // SAFETY: the handle stays open as long as `conn`, which outlives this value (see
        // above). `from_handle` does not take ownership: dropping the rusqlite connection
        // finalises its statements and leaves the handle open for sqlx.
        let db = unsafe { Connection::from_handle(handle.as_ptr()) }?;
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        drop(locked);
        Ok(Direct { db, handle })
    }
}

/// The writer's connection, its handle lent to rusqlite from the first `db` until an operation
/// needs sqlx (`sqlx`), across any number of batches.
///
/// Lending it again for each batch can deadlock sqlx 0.8.6. `lock_handle` sends `UnlockDb` to
/// the connection's worker over a bounded channel while it waits for the connection's mutex.
/// When it gets the mutex before the worker has asked for it back, that command stays in the
/// channel unanswered. Lends with no awaited command in between pile them up until the channel
/// is full: the next lend then holds the mutex while it waits for room in the channel, and the
/// worker waits for the mutex (bench/ANALYSIS.md, round 8). Here a lend is taken again only
/// after an operation through sqlx, whose answer means the worker has read every command
/// before it.
pub(super) struct WriterConn {
    // Dropped in this order: the lend ends, the cached statements are finalised, and then the
    // connection goes back to the pool.
    lend: Option<LockedSqliteHandle<'static>>,
    direct: Direct,
    conn: Owned,
    /// How many times the handle was lent: a transaction of plain operations lends it once.
    lends: Arc<AtomicU64>,
}

/// The connection, owned through a pointer (from `Box::leak`, freed on drop) so that the lend's
/// borrow of it stays valid when the `WriterConn` moves.
struct Owned(NonNull<PoolConnection<Sqlite>>);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: from `Box::leak` in `WriterConn::open`; the lend, declared before, has ended.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

// SAFETY: the pointer is owned, like a Box; the lend and `Direct` are used only through
// `&mut WriterConn`.
unsafe impl Send for WriterConn {}

impl WriterConn {
    /// `lends` counts the lends of the handle.
    pub(super) async fn open(
        mut conn: PoolConnection<Sqlite>,
        lends: Arc<AtomicU64>,
    ) -> Result<WriterConn> {
        let direct = Direct::open(&mut conn).await?;
        Ok(WriterConn {
            lend: None,
            direct,
            conn: Owned(NonNull::from(Box::leak(Box::new(conn)))),
            lends,
        })
    }

    /// The rusqlite connection, lending the handle if it is not lent already.
    pub(super) async fn db(&mut self) -> Result<&Connection> {
        if self.lend.is_none() {
            // SAFETY: the connection lives, at the same address, until `conn` drops, after the
            // lend (field order); while the lend lasts nothing else reaches it (`sqlx` ends it).
            let conn: &'static mut PoolConnection<Sqlite> = unsafe { &mut *self.conn.0.as_ptr() };
            let mut guard = conn.lock_handle().await?;
            assert_eq!(
                guard.as_raw_handle(),
                self.direct.handle,
                "sqlite handle changed"
            );
            self.lend = Some(guard);
            self.lends.fetch_add(1, Ordering::Relaxed);
        }
        Ok(&self.direct.db)
    }

    /// The sqlx connection, the lend ended.
    pub(super) fn sqlx(&mut self) -> &mut SqliteConnection {
        self.lend = None;
        // SAFETY: the lend, the only other path to the connection, has just ended.
        unsafe { &mut *self.conn.0.as_ptr() }
    }

    /// Finalises the cached statements while the handle is lent, then lets the connection go
    /// back to the pool.
    pub(super) async fn close(mut self) {
        if let Ok(db) = self.db().await {
            db.flush_prepared_statement_cache();
        }
    }
}

/// Read connections for the hot reads, each a sqlx connection (same options as the pool: WAL,
/// busy timeout, foreign keys) whose worker thread stays parked while we hold it.
pub(super) struct Readers {
    opts: SqliteConnectOptions,
    idle: Mutex<Vec<Parked>>,
}

impl Readers {
    pub(super) fn new(opts: SqliteConnectOptions) -> Readers {
        Readers {
            opts,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on an idle reader (opening one if none is idle). `f` runs on the calling
    /// thread: a read of a few pages, which in WAL mode never waits for the writer.
    pub(super) async fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let reader = match idle {
            Some(r) => r,
            None => Parked::open(&self.opts).await?,
        };
        let out = f(&reader.db);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(reader);
        } else {
            drop(idle);
            drop(reader);
        }
        out
    }
}

/// A sqlx connection locked for good, with a rusqlite connection on its handle. The lock
/// borrows the connection, so the connection lives on the heap behind a raw pointer and the
/// borrow is made `'static`; `Drop` undoes it in order.
struct Parked {
    db: std::mem::ManuallyDrop<Connection>,
    guard: std::mem::ManuallyDrop<LockedSqliteHandle<'static>>,
    conn: Leaked,
}

/// The connection, from `Box::leak`; only `Parked` frees it.
struct Leaked(NonNull<SqliteConnection>);

// SAFETY: a plain owner of a SqliteConnection, which is Send.
unsafe impl Send for Leaked {}

impl Leaked {
    /// SAFETY: only once no borrow of the connection is left.
    unsafe fn free(self) {
        drop(Box::from_raw(self.0.as_ptr()));
    }
}

// SAFETY: a `Parked` is used by one thread at a time (it is taken out of the idle list to be
// used); SQLite connections may move between threads (sqlx moves them too), and sqlx's worker
// does not touch the handle while the lock is held.
unsafe impl Send for Parked {}

impl Parked {
    async fn open(opts: &SqliteConnectOptions) -> Result<Parked> {
        let conn = Leaked(NonNull::from(Box::leak(Box::new(opts.connect().await?))));
        // SAFETY: the connection is only freed by `Leaked::free`, after the guard (the only
        // user of this reference) is gone.
        let conn_ref: &'static mut SqliteConnection = unsafe { &mut *conn.0.as_ptr() };
        let mut guard = match conn_ref.lock_handle().await {
            Ok(g) => g,
            Err(e) => {
                // SAFETY: no guard was made; nothing else refers to the connection.
                unsafe { conn.free() };
                return Err(e.into());
            }
        };
        // SAFETY: the handle is open while the connection is, and `Drop` drops `db` first;
        // `from_handle` does not close it.
        let db = match unsafe { Connection::from_handle(guard.as_raw_handle().as_ptr()) } {
            Ok(db) => db,
            Err(e) => {
                drop(guard);
                // SAFETY: the guard is gone; nothing else refers to the connection.
                unsafe { conn.free() };
                return Err(e.into());
            }
        };
        db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Parked {
            db: std::mem::ManuallyDrop::new(db),
            guard: std::mem::ManuallyDrop::new(guard),
            conn,
        })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        // SAFETY: each is dropped once, here, in this order: the statements (while the handle
        // is still locked for us), the lock (sqlx's worker resumes), then the connection, which
        // came from `Box::leak` in `open` and is no longer borrowed.
        unsafe {
            std::mem::ManuallyDrop::drop(&mut self.db);
            std::mem::ManuallyDrop::drop(&mut self.guard);
            Leaked(self.conn.0).free();
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Executor;

    /// Each failure, once through sqlx and once through rusqlite on the same connection, maps
    /// to the same StoreError variant.
    #[tokio::test]
    async fn errors_map_as_through_sqlx() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let lends = Arc::new(AtomicU64::new(0));
        let mut conn = WriterConn::open(pool.acquire().await.unwrap(), lends.clone())
            .await
            .unwrap();
        conn.sqlx()
            .execute("CREATE TABLE t (k TEXT PRIMARY KEY, u TEXT UNIQUE, n TEXT NOT NULL, b BLOB)")
            .await
            .unwrap();
        conn.sqlx()
            .execute("INSERT INTO t (k, u, n) VALUES ('a', 'x', 'n')")
            .await
            .unwrap();
        let cases = [
            ("INSERT INTO t (k, u, n) VALUES ('a', 'y', 'n')", "Conflict"),
            ("INSERT INTO t (k, u, n) VALUES ('b', 'x', 'n')", "Conflict"),
            ("INSERT INTO t (k, u) VALUES ('c', 'z')", "Unavailable"),
            ("SELECT k FROM t WHERE k = 'none'", "NotFound"),
            // SQLITE_FULL: the database may not grow past its pages.
            ("PRAGMA max_page_count = 2; INSERT INTO t (k, u, n, b) VALUES ('d', 'd', 'n', zeroblob(100000))", "Unavailable"),
            // SQLITE_READONLY.
            ("PRAGMA query_only = 1; INSERT INTO t (k, u, n) VALUES ('e', 'e', 'n')", "Unavailable"),
        ];
        let kind = |e: &StoreError| match e {
            StoreError::NotFound => "NotFound",
            StoreError::Conflict => "Conflict",
            StoreError::Unavailable(_) => "Unavailable",
            StoreError::State(_) => "State",
            StoreError::Incompatible(_) => "Incompatible",
        };
        for (sql, want) in cases {
            let (setup, stmt) = sql.rsplit_once("; ").unwrap_or(("", sql));
            if !setup.is_empty() {
                conn.sqlx().execute(setup).await.unwrap();
            }
            let via_sqlx = sqlx::query(stmt)
                .fetch_one(conn.sqlx())
                .await
                .map(|_| ())
                .map_err(StoreError::from);
            let via_rusqlite = conn
                .db()
                .await
                .unwrap()
                .query_row(stmt, [], |_| Ok(()))
                .map_err(StoreError::from);
            assert_eq!(kind(&via_sqlx.unwrap_err()), want, "{sql} through sqlx");
            assert_eq!(
                kind(&via_rusqlite.unwrap_err()),
                want,
                "{sql} through rusqlite"
            );
        }
        // Each switch from sqlx to rusqlite lent the handle once.
        assert_eq!(lends.load(Ordering::Relaxed), cases.len() as u64);
        conn.close().await;
    }
}
