//! Group commit for SQLite: every write is an operation sent to one task that owns the write
//! connection. The task runs the operations that are waiting in one transaction, commits once,
//! and only then answers each caller. Concurrent webhook deliveries and step results thus share
//! a single fsync instead of paying one each, and no writer ever waits on SQLITE_BUSY.
//!
//! An operation is either async over the sqlx connection (the rare writes) or a plain function
//! over the rusqlite connection on the same handle (the hot ones, see `hot.rs`): consecutive
//! plain ones run under one lock of the handle, with no hand-off to sqlx's worker per statement.
//! COMMIT goes through sqlx, so that its fsync blocks sqlx's worker thread, not a tokio one.
//!
//! When an operation fails (a duplicate key name, say), the batch is rolled back and run again
//! with each operation in its own savepoint, so that the failure undoes only its own writes.
//! Operations are therefore re-runnable: they get their arguments behind an `Arc`.

use super::direct::Direct;
use crate::store::{Result, StoreError};
use futures_util::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use std::any::Any;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Enough to amortise a commit; small enough that one batch does not hold readers' snapshots
/// back for long.
const MAX_BATCH: usize = 512;

type Output = Box<dyn Any + Send>;
type AsyncRun =
    Box<dyn for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Output>> + Send + Sync>;
type SyncRun = Box<dyn Fn(&rusqlite::Connection) -> Result<Output> + Send + Sync>;

enum Run {
    Async(AsyncRun),
    Sync(SyncRun),
}

struct Op {
    run: Run,
    reply: oneshot::Sender<Result<Output>>,
}

#[derive(Clone)]
pub struct Writer {
    ops: mpsc::Sender<Op>,
}

impl Writer {
    pub fn start(pool: SqlitePool, batch_sizes: Histogram) -> Writer {
        let (ops, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_loop(pool, rx, batch_sizes));
        Writer { ops }
    }

    /// Runs `f(conn, args)` in the next batch; returns its result once the batch is committed.
    pub async fn write<A, T, F>(&self, args: A, f: F) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
        F: for<'c> Fn(&'c mut SqliteConnection, Arc<A>) -> BoxFuture<'c, Result<T>>
            + Send
            + Sync
            + 'static,
    {
        let args = Arc::new(args);
        let run = Run::Async(Box::new(move |conn| {
            let fut = f(conn, args.clone());
            Box::pin(async move { fut.await.map(|v| Box::new(v) as Output) })
        }));
        self.send(run).await
    }

    /// Runs `f(db, &args)`, a plain function over the same connection, in the next batch.
    pub async fn write_sync<A, T, F>(&self, args: A, f: F) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
        F: Fn(&rusqlite::Connection, &A) -> Result<T> + Send + Sync + 'static,
    {
        let run = Run::Sync(Box::new(move |db| {
            f(db, &args).map(|v| Box::new(v) as Output)
        }));
        self.send(run).await
    }

    async fn send<T: 'static>(&self, run: Run) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.ops
            .send(Op { run, reply })
            .await
            .map_err(|_| StoreError::Unavailable("store is shutting down".into()))?;
        let out = answer
            .await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))??;
        Ok(*out
            .downcast::<T>()
            .expect("writer returns the type it was given"))
    }
}

/// The write connection, held for good, and the rusqlite connection on its handle. `direct`
/// is declared first so that it is dropped first: its cached statements must be finalised
/// before sqlx closes the handle.
struct Conn {
    direct: Direct,
    conn: PoolConnection<Sqlite>,
}

impl Conn {
    async fn open(pool: &SqlitePool) -> Result<Conn> {
        let mut conn = pool.acquire().await?;
        let direct = Direct::open(&mut conn).await?;
        Ok(Conn { direct, conn })
    }

    /// Finalises the cached statements while sqlx's worker is parked, then lets the
    /// connection go back to the pool.
    async fn close(mut self) {
        if let Ok(locked) = self.direct.lock(&mut self.conn).await {
            locked.db.flush_prepared_statement_cache();
        }
    }
}

/// Logs when writes start failing (a full disk, say) and when they succeed again, once each,
/// rather than once per write while the fault lasts.
#[derive(Default)]
struct Health {
    failing: bool,
}

impl Health {
    fn failed(&mut self, e: &StoreError) {
        if !self.failing {
            tracing::error!(error = %e, "writes to the store are failing: deliveries are answered 503 until this clears");
        } else {
            tracing::debug!(error = %e, "write failed");
        }
        self.failing = true;
    }

    fn succeeded(&mut self) {
        if std::mem::take(&mut self.failing) {
            tracing::info!("writes to the store succeed again");
        }
    }
}

async fn write_loop(pool: SqlitePool, mut rx: mpsc::Receiver<Op>, batch_sizes: Histogram) {
    let mut conn: Option<Conn> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut health = Health::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch_sizes.observe(batch.len() as f64);
        if conn.is_none() {
            match Conn::open(&pool).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    fail_all(&mut batch, &e, &mut health);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("opened above");
        let results = match run_batch(c, &batch).await {
            Ok(results) => results,
            Err(e) => {
                // Harmless when no transaction is open; needed when one is.
                let _ = sqlx::query("ROLLBACK").execute(&mut *c.conn).await;
                fail_all(&mut batch, &e, &mut health);
                continue;
            }
        };
        let replies = batch.drain(..).map(|op| op.reply);
        match sqlx::query("COMMIT").execute(&mut *c.conn).await {
            Ok(_) => {
                // An operation can fail on the disk while the (then empty) commit succeeds.
                let fault = results.iter().find_map(|r| match r {
                    Err(e @ StoreError::Unavailable(_)) => Some(e),
                    _ => None,
                });
                match fault {
                    Some(e) => health.failed(e),
                    None => health.succeeded(),
                }
                for (reply, result) in replies.zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *c.conn).await;
                let err = StoreError::from(e);
                health.failed(&err);
                for reply in replies {
                    let _ = reply.send(Err(unavailable(&err)));
                }
            }
        }
    }
    if let Some(c) = conn {
        c.close().await;
    }
}

/// Begins a transaction and runs the batch in it, all at once; if an operation fails, rolls
/// back and runs them again each in a savepoint. Returns each operation's result, or the
/// error that left the transaction unusable (already rolled back where it could be).
async fn run_batch(c: &mut Conn, batch: &[Op]) -> Result<Vec<Result<Output>>> {
    let results = run_ops(c, batch, false).await?;
    if results.iter().all(|r| r.is_ok()) {
        return Ok(results);
    }
    sqlx::query("ROLLBACK").execute(&mut *c.conn).await?;
    run_ops(c, batch, true).await
}

/// Runs BEGIN IMMEDIATE and the operations, in order. Runs of plain operations share one lock
/// of the handle; the first lock also begins the transaction.
async fn run_ops(c: &mut Conn, ops: &[Op], savepoints: bool) -> Result<Vec<Result<Output>>> {
    let mut results = Vec::with_capacity(ops.len());
    let mut i = 0;
    let mut begun = false;
    while i < ops.len() || !begun {
        if !begun || matches!(ops[i].run, Run::Sync(_)) {
            let locked = c.direct.lock(&mut c.conn).await?;
            if !begun {
                // No fsync; it waits (busy_timeout) only if another process is writing.
                locked.db.execute_batch("BEGIN IMMEDIATE")?;
                begun = true;
            }
            while let Some(Op {
                run: Run::Sync(run),
                ..
            }) = ops.get(i)
            {
                results.push(if savepoints {
                    sync_in_savepoint(locked.db, run)?
                } else {
                    run(locked.db)
                });
                i += 1;
            }
        }
        while let Some(Op {
            run: Run::Async(run),
            ..
        }) = ops.get(i)
        {
            results.push(if savepoints {
                async_in_savepoint(&mut c.conn, run).await?
            } else {
                run(&mut c.conn).await
            });
            i += 1;
        }
    }
    Ok(results)
}

/// The operation's result; the outer error is one that leaves the transaction unusable.
async fn async_in_savepoint(conn: &mut SqliteConnection, run: &AsyncRun) -> Result<Result<Output>> {
    sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
    let result = run(&mut *conn).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
    }
    sqlx::query("RELEASE op").execute(&mut *conn).await?;
    Ok(result)
}

fn sync_in_savepoint(db: &rusqlite::Connection, run: &SyncRun) -> Result<Result<Output>> {
    db.execute_batch("SAVEPOINT op")?;
    let result = run(db);
    if result.is_err() {
        db.execute_batch("ROLLBACK TO op")?;
    }
    db.execute_batch("RELEASE op")?;
    Ok(result)
}

fn fail_all(batch: &mut Vec<Op>, e: &StoreError, health: &mut Health) {
    health.failed(e);
    for op in batch.drain(..) {
        let _ = op.reply.send(Err(unavailable(e)));
    }
}

/// The error each caller of a failed batch gets: the store is unavailable, for this reason.
fn unavailable(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Unavailable(other.to_string()),
    }
}
