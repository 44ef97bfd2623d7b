//! Group commit for SQLite: every write is an operation sent to one task that owns the write
//! connection. The task runs the operations that are waiting in one transaction, commits once,
//! and only then answers each caller. Concurrent webhook deliveries and step results thus share
//! a single fsync instead of paying one each, and no writer ever waits on SQLITE_BUSY.
//!
//! For a database on disk the commit does not wait for the fsync: the write-ahead log is synced
//! on a blocking thread (`wal_sync.rs`) while the next operations run in a new transaction, and
//! callers are answered when the sync that covers their commit ends. That transaction is
//! committed as soon as the sync ends, so two syncs never overlap and a batch grows while the
//! disk works, as it did while COMMIT waited for it.
//!
//! An operation is either async over the sqlx connection (the rare writes) or a plain function
//! over the rusqlite connection on the same handle (the hot ones, see `hot.rs`): consecutive
//! plain ones run under one lock of the handle, with no hand-off to sqlx's worker per statement.
//! The handle stays lent from one batch to the next (`WriterConn`: lending it again for every
//! batch can deadlock sqlx), so COMMIT runs through rusqlite too. It does not sync (the log is
//! synced as above) except when SQLite checkpoints, every thousand pages or so.
//!
//! When an operation fails (a duplicate key name, say), the transaction is rolled back and its
//! operations run again each in its own savepoint, so that the failure undoes only its own
//! writes. (A savepoint for every batch would be simpler, but in WAL mode SQLite copies each
//! page a savepoint changes to a side journal: ingest was 20% slower.)
//! Operations are therefore re-runnable: they get their arguments behind an `Arc`.

use super::direct::WriterConn;
use super::wal_sync::SyncWal;
use crate::store::{Result, StoreError};
use futures_util::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::{SqliteConnection, SqlitePool};
use std::any::Any;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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
    /// How many times the connection's handle was lent to rusqlite (see `WriterConn`).
    #[cfg(test)]
    lends: Arc<AtomicU64>,
}

impl Writer {
    /// Starts the writer over the pool's connection. With `sync_wal`, its commits do not sync
    /// themselves (`synchronous=NORMAL`) and each is answered after `sync_wal` returns.
    pub fn start(pool: SqlitePool, batch_sizes: Histogram, sync_wal: Option<SyncWal>) -> Writer {
        let (ops, rx) = mpsc::channel(4 * MAX_BATCH);
        let lends = Arc::new(AtomicU64::new(0));
        let w = WriteLoop {
            pool,
            lends: lends.clone(),
            conn: None,
            open: Vec::with_capacity(MAX_BATCH),
            results: Vec::with_capacity(MAX_BATCH),
            sync_wal,
            broken: None,
            health: Health::default(),
            batch_sizes,
        };
        tokio::spawn(write_loop(w, rx));
        Writer {
            ops,
            #[cfg(test)]
            lends,
        }
    }

    #[cfg(test)]
    fn lends(&self) -> u64 {
        self.lends.load(std::sync::atomic::Ordering::Relaxed)
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

/// Opens the writer's connection. `sync_wal`: its commits leave the sync of the write-ahead
/// log to the writer.
async fn open_conn(pool: &SqlitePool, sync_wal: bool, lends: Arc<AtomicU64>) -> Result<WriterConn> {
    let mut conn = pool.acquire().await?;
    if sync_wal {
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
    }
    WriterConn::open(conn, lends).await
}

/// Runs SQL with no result on the writer's connection.
async fn exec(c: &mut WriterConn, sql: &str) -> Result<()> {
    c.db().await?.execute_batch(sql)?;
    Ok(())
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

/// An operation's caller and the result it gets once the transaction is durable.
type Answer = (oneshot::Sender<Result<Output>>, Result<Output>);

/// A committed transaction whose WAL frames are being synced, and the answers that wait on it.
struct Syncing {
    done: JoinHandle<std::io::Result<()>>,
    answers: Vec<Answer>,
}

struct WriteLoop {
    pool: SqlitePool,
    lends: Arc<AtomicU64>,
    conn: Option<WriterConn>,
    /// Operations run in the open transaction, not yet committed, and their results; none
    /// means no transaction. Kept to be run again if a later one fails.
    open: Vec<Op>,
    results: Vec<Result<Output>>,
    /// None: commits sync themselves (`synchronous=FULL`, or a database in memory).
    sync_wal: Option<SyncWal>,
    /// Set when a sync failed: what was written since may not be on disk, and later syncs
    /// could report success for pages the kernel already dropped, so writes stop here.
    broken: Option<StoreError>,
    health: Health,
    batch_sizes: Histogram,
}

async fn write_loop(mut w: WriteLoop, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut syncing: Option<Syncing> = None;
    let mut closed = false;
    loop {
        // Invariant: a transaction is open only while a sync is running; when the sync ends,
        // the open transaction is committed and its own sync starts.
        tokio::select! {
            biased;
            synced = async { (&mut syncing.as_mut().expect("branch enabled").done).await },
                if syncing.is_some() =>
            {
                let answers = syncing.take().expect("branch enabled").answers;
                let synced = synced.unwrap_or_else(|e| Err(std::io::Error::other(e)));
                w.synced(synced, answers).await;
                if !w.open.is_empty() {
                    syncing = w.commit().await;
                }
            }
            n = rx.recv_many(&mut batch, MAX_BATCH - w.open.len()),
                if !closed && w.open.len() < MAX_BATCH =>
            {
                if n == 0 {
                    closed = true;
                    continue;
                }
                w.run(&mut batch).await;
                if syncing.is_none() && !w.open.is_empty() {
                    syncing = w.commit().await;
                }
            }
            else => break,
        }
    }
    if let Some(c) = w.conn {
        c.close().await;
    }
}

impl WriteLoop {
    /// Runs the operations in the open transaction, beginning one if none is open.
    async fn run(&mut self, batch: &mut Vec<Op>) {
        if let Some(e) = &self.broken {
            let e = unavailable(e);
            return fail_all(batch.drain(..).map(|op| op.reply), &e, &mut self.health);
        }
        if self.conn.is_none() {
            match open_conn(&self.pool, self.sync_wal.is_some(), self.lends.clone()).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    return fail_all(batch.drain(..).map(|op| op.reply), &e, &mut self.health)
                }
            }
        }
        let c = self.conn.as_mut().expect("opened above");
        let first = self.open.len();
        self.open.append(batch);
        if let Err(e) = run_more(c, &self.open, first, &mut self.results).await {
            // Harmless when no transaction is open; needed when one is.
            let _ = exec(c, "ROLLBACK").await;
            self.results.clear();
            fail_all(self.open.drain(..).map(|op| op.reply), &e, &mut self.health);
        }
    }

    /// Commits the open transaction. Its callers are answered now if the commit synced
    /// itself, or else once the returned sync ends.
    async fn commit(&mut self) -> Option<Syncing> {
        self.batch_sizes.observe(self.open.len() as f64);
        let replies = self.open.drain(..).map(|op| op.reply);
        let answers: Vec<Answer> = replies.zip(self.results.drain(..)).collect();
        let c = self.conn.as_mut().expect("a transaction is open on it");
        if let Err(e) = exec(c, "COMMIT").await {
            let _ = exec(c, "ROLLBACK").await;
            fail_all(
                answers.into_iter().map(|(reply, _)| reply),
                &e,
                &mut self.health,
            );
            return None;
        }
        // An operation can fail on the disk while the (then empty) commit succeeds.
        let fault = answers.iter().find_map(|(_, r)| match r {
            Err(e @ StoreError::Unavailable(_)) => Some(e),
            _ => None,
        });
        match fault {
            Some(e) => self.health.failed(e),
            None => self.health.succeeded(),
        }
        match &self.sync_wal {
            Some(sync_wal) => Some(Syncing {
                done: tokio::task::spawn_blocking({
                    let sync_wal = sync_wal.clone();
                    move || sync_wal()
                }),
                answers,
            }),
            None => {
                answer(answers);
                None
            }
        }
    }

    /// Answers a synced transaction's callers; if the sync failed, fails them and stops writes.
    async fn synced(&mut self, synced: std::io::Result<()>, answers: Vec<Answer>) {
        let Err(e) = synced else {
            return answer(answers);
        };
        let e = StoreError::Unavailable(format!(
            "the write-ahead log could not be synced, so writes are stopped until alertflow restarts: {e}"
        ));
        self.broken.get_or_insert(unavailable(&e));
        if !self.open.is_empty() {
            let c = self.conn.as_mut().expect("a transaction is open on it");
            let _ = exec(c, "ROLLBACK").await;
        }
        self.results.clear();
        let open = self.open.drain(..).map(|op| op.reply);
        let synced = answers.into_iter().map(|(reply, _)| reply);
        fail_all(synced.chain(open), &e, &mut self.health);
    }
}

fn answer(answers: Vec<Answer>) {
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
}

/// Runs `ops[first..]` in the open transaction, beginning it if `first` is 0, and appends
/// their results. If one fails, rolls the transaction back and runs all of `ops` again, each in
/// a savepoint, so that the failure undoes only its own writes. Errs with what left the
/// transaction unusable.
async fn run_more(
    c: &mut WriterConn,
    ops: &[Op],
    first: usize,
    results: &mut Vec<Result<Output>>,
) -> Result<()> {
    // BEGIN IMMEDIATE does no fsync; it waits (busy_timeout) only if another process writes.
    let begin = (first == 0).then_some("BEGIN IMMEDIATE");
    let more = run_ops(c, &ops[first..], begin, false).await?;
    if more.iter().all(|r| r.is_ok()) {
        results.extend(more);
        return Ok(());
    }
    exec(c, "ROLLBACK").await?;
    *results = run_ops(c, ops, Some("BEGIN IMMEDIATE"), true).await?;
    Ok(())
}

/// Runs the prelude and the operations, in order. Runs of plain operations share one lock of
/// the handle; the first lock also runs the prelude.
async fn run_ops(
    c: &mut WriterConn,
    ops: &[Op],
    mut prelude: Option<&str>,
    savepoints: bool,
) -> Result<Vec<Result<Output>>> {
    let mut results = Vec::with_capacity(ops.len());
    let mut i = 0;
    while i < ops.len() || prelude.is_some() {
        if prelude.is_some() || matches!(ops[i].run, Run::Sync(_)) {
            let db = c.db().await?;
            if let Some(sql) = prelude.take() {
                db.execute_batch(sql)?;
            }
            while let Some(Op {
                run: Run::Sync(run),
                ..
            }) = ops.get(i)
            {
                results.push(if savepoints {
                    sync_in_savepoint(db, run)?
                } else {
                    run(db)
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
                async_in_savepoint(c.sqlx(), run).await?
            } else {
                run(c.sqlx()).await
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

fn fail_all(
    replies: impl Iterator<Item = oneshot::Sender<Result<Output>>>,
    e: &StoreError,
    health: &mut Health,
) {
    health.failed(e);
    for reply in replies {
        let _ = reply.send(Err(unavailable(e)));
    }
}

/// The error each caller of a failed batch gets: the store is unavailable, for this reason.
fn unavailable(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
