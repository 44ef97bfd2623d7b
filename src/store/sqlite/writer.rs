//! Group commit for SQLite: every write is an operation sent to one task that owns the write
//! connection. The task runs the operations that are waiting in one transaction, commits once,
//! and only then answers each caller. Concurrent webhook deliveries and step results thus share
//! a single fsync instead of paying one each, and no writer ever waits on SQLITE_BUSY.
//!
//! When an operation fails (a duplicate key name, say), the batch is rolled back and run again
//! with each operation in its own savepoint, so that the failure undoes only its own writes.
//! Operations are therefore re-runnable: they get their arguments behind an `Arc`.

use crate::store::{Result, StoreError};
use futures_util::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::{SqliteConnection, SqlitePool};
use std::any::Any;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Enough to amortise a commit; small enough that one batch does not hold readers' snapshots
/// back for long.
const MAX_BATCH: usize = 512;

type Output = Box<dyn Any + Send>;
type Run =
    Box<dyn for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Output>> + Send + Sync>;

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
        let (reply, answer) = oneshot::channel();
        let args = Arc::new(args);
        let run: Run = Box::new(move |conn| {
            let fut = f(conn, args.clone());
            Box::pin(async move { fut.await.map(|v| Box::new(v) as Output) })
        });
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
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut health = Health::default();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch_sizes.observe(batch.len() as f64);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                fail_all(&mut batch, &StoreError::from(e), &mut health);
                continue;
            }
        };
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            fail_all(&mut batch, &StoreError::from(e), &mut health);
            continue;
        }
        // Fast path: everything in one go. A failure sends the batch down the careful path.
        let mut results = Vec::with_capacity(batch.len());
        for op in &batch {
            results.push((op.run)(&mut conn).await);
        }
        if results.iter().any(|r| r.is_err()) {
            results.clear();
            let again = async {
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                Ok::<_, sqlx::Error>(())
            };
            if let Err(e) = again.await {
                fail_all(&mut batch, &StoreError::from(e), &mut health);
                continue;
            }
            for op in &batch {
                results.push(run_in_savepoint(&mut conn, &op.run).await);
            }
        }
        let replies = batch.drain(..).map(|op| op.reply);
        match sqlx::query("COMMIT").execute(&mut *conn).await {
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
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                let err = StoreError::from(e);
                health.failed(&err);
                for reply in replies {
                    let _ = reply.send(Err(unavailable(&err)));
                }
            }
        }
    }
}

async fn run_in_savepoint(conn: &mut SqliteConnection, run: &Run) -> Result<Output> {
    sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
    let result = run(&mut *conn).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
    }
    sqlx::query("RELEASE op").execute(&mut *conn).await?;
    result
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
