//! Group commit for SQLite: every write is an operation sent to one task that owns the write
//! connection. The task runs the operations that are waiting in one transaction, each inside
//! its own savepoint (so one failing operation does not undo the others), commits once, and
//! only then answers each caller. Concurrent webhook deliveries and step results thus share a
//! single fsync instead of paying one each, and no writer ever waits on SQLITE_BUSY.

use crate::store::{Result, StoreError};
use futures_util::future::BoxFuture;
use prometheus_client::metrics::histogram::Histogram;
use sqlx::{SqliteConnection, SqlitePool};
use std::any::Any;
use tokio::sync::{mpsc, oneshot};

/// Enough to amortise a commit; small enough that one batch does not hold readers' snapshots
/// back for long.
const MAX_BATCH: usize = 512;

type Output = Box<dyn Any + Send>;
type Run =
    Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<Output>> + Send>;

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

    /// Runs `f` in the next batch; returns its result once the batch is committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Run = Box::new(move |conn| {
            Box::pin(async move { f(conn).await.map(|v| Box::new(v) as Output) })
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

async fn write_loop(pool: SqlitePool, mut rx: mpsc::Receiver<Op>, batch_sizes: Histogram) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        batch_sizes.observe(batch.len() as f64);
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                fail_all(&mut batch, &StoreError::from(e));
                continue;
            }
        };
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
            fail_all(&mut batch, &StoreError::from(e));
            continue;
        }
        let mut results = Vec::with_capacity(batch.len());
        for op in batch.drain(..) {
            let result = run_in_savepoint(&mut conn, op.run).await;
            results.push((op.reply, result));
        }
        match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => {
                for (reply, result) in results {
                    let _ = reply.send(result);
                }
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                let err = StoreError::from(e);
                tracing::error!(error = %err, "commit failed");
                for (reply, _) in results {
                    let _ = reply.send(Err(StoreError::Unavailable(err.to_string())));
                }
            }
        }
    }
}

async fn run_in_savepoint(conn: &mut SqliteConnection, run: Run) -> Result<Output> {
    sqlx::query("SAVEPOINT op").execute(&mut *conn).await?;
    let result = run(&mut *conn).await;
    if result.is_err() {
        sqlx::query("ROLLBACK TO op").execute(&mut *conn).await?;
    }
    sqlx::query("RELEASE op").execute(&mut *conn).await?;
    result
}

fn fail_all(batch: &mut Vec<Op>, e: &StoreError) {
    tracing::error!(error = %e, "cannot start a write transaction");
    for op in batch.drain(..) {
        let _ = op.reply.send(Err(StoreError::Unavailable(e.to_string())));
    }
}
