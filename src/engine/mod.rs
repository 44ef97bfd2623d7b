//! The engine: workers claim jobs from the database queue and run executions step by step,
//! committing each step's result before the next starts, so a crash loses at most the step that
//! was running, which runs again (attempt + 1) when the job's lease comes back.

mod run;

use crate::actions::{Clients, Registry};
use crate::metrics::Metrics;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// A job claimed this often without finishing is given up (a step that crashes the process).
const MAX_CLAIMS: i64 = 10;
/// Workers look for due jobs at least this often, besides being woken by new work.
const POLL: Duration = Duration::from_millis(1000);

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub clients: Clients,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
    pub lease: Duration,
    pub wake: Arc<Notify>,
}

impl Engine {
    pub fn spawn_workers(
        self: &Arc<Self>,
        count: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        (0..count)
            .map(|_| tokio::spawn(worker(self.clone(), shutdown.clone())))
            .collect()
    }
}

async fn worker(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let lease_ms = engine.lease.as_millis() as i64;
    while !*shutdown.borrow() {
        // Register for a wake-up before looking, so work committed in between is not missed.
        let woken = engine.wake.notified();
        match engine
            .store
            .claim_job(&engine.node_id, crate::now_ms(), lease_ms)
            .await
        {
            Ok(Some((execution_id, claims))) => {
                let e = engine.clone();
                let id = execution_id.clone();
                // A panic in an action ends that task, not the worker.
                let outcome =
                    tokio::spawn(async move { run::execute(&e, &id, claims).await }).await;
                match outcome {
                    Ok(Err(err)) => {
                        tracing::warn!(execution = %execution_id, error = %err, "execution paused; it resumes when its lease ends")
                    }
                    Err(panic) => {
                        tracing::error!(execution = %execution_id, error = %panic, "execution task panicked")
                    }
                    Ok(Ok(())) => {}
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim jobs");
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}
