//! The engine: a dispatcher claims due jobs from the database queue in batches and runs each
//! execution in its own task, up to `--workers` at once. Each step's result is committed before
//! the next starts, so a crash loses at most the step that was running, which runs again
//! (attempt + 1) when the job comes back: at once on this node's restart, or when its lease
//! runs out on another node.

pub mod context;
mod foreach;
mod run;
pub mod schedule;
mod step;
mod suspend;

pub use suspend::{approval_link, LinkClaims, LinkDecision};

use crate::actions::{Clients, Registry};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use alertflow_domain::workflow::{template_names, Split, Workflow};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A job claimed this often without finishing is given up (a step that crashes the process).
const MAX_CLAIMS: i64 = 10;
/// The dispatcher looks for due jobs at least this often, besides being woken by new work.
const POLL: Duration = Duration::from_millis(1000);
/// Parsed workflow versions kept in memory; versions never change, so entries never go stale.
const WORKFLOW_CACHE: usize = 1024;

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub registry: Registry,
    pub clients: Clients,
    pub metrics: Arc<Metrics>,
    pub node_id: String,
    pub lease: Duration,
    /// Signalled when executions are queued or a running one ends.
    pub wake: Arc<Notify>,
    pub workflows: Mutex<HashMap<(String, i64), Arc<Plan>>>,
    /// Executions running on this node, whose leases the heartbeat keeps, each with the token
    /// that cancels it.
    pub running: Mutex<HashMap<String, CancellationToken>>,
    pub clock: Clock,
    /// Parsed trigger bodies by event, so the runs of one delivery (`split: per_alert`, up to
    /// thousands) parse and convert its body once, not once each.
    pub triggers: Mutex<HashMap<String, Arc<context::Trigger>>>,
    /// Held while a body is loaded into `triggers`, so it is loaded once.
    pub trigger_loading: tokio::sync::Mutex<()>,
    pub master: MasterKey,
    /// The base of approval links.
    pub public_base: String,
}

/// A workflow version, parsed, with what its runs need to load besides their input.
pub struct Plan {
    pub wf: Workflow,
    /// The `secrets.NAME` its templates read.
    pub secrets: Vec<String>,
    /// Runs read and write alert memory (`split: per_alert`).
    pub memory: bool,
}

impl Engine {
    /// Starts the dispatcher and the lease heartbeat; the handle ends after shutdown, once
    /// running executions are done.
    pub fn start(
        self: &Arc<Self>,
        concurrency: usize,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(heartbeat(self.clone(), shutdown.clone()));
        tokio::spawn(schedule::run(self.clone(), shutdown.clone()));
        tokio::spawn(dispatch(self.clone(), concurrency, shutdown))
    }

    fn running_set(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops a run executing on this node at once; false when it runs elsewhere or not at all.
    pub fn cancel_local(&self, execution_id: &str) -> bool {
        match self.running_set().get(execution_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// A workflow version, parsed once.
    async fn workflow(&self, id: &str, version: i64) -> Result<Arc<Plan>, StoreError> {
        let key = (id.to_string(), version);
        if let Some(wf) = self
            .workflows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(wf.clone());
        }
        let record = self.store.get_workflow(id, Some(version)).await?;
        let wf: Workflow = serde_json::from_str(&record.document).map_err(|e| {
            StoreError::Unavailable(format!("stored workflow {id} v{version} unreadable: {e}"))
        })?;
        let mut secrets: Vec<String> = template_names(&wf, "secrets")
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        secrets.sort();
        secrets.dedup();
        let memory = wf.trigger.split() == Split::PerAlert;
        let wf = Arc::new(Plan {
            wf,
            secrets,
            memory,
        });
        let mut cache = self.workflows.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= WORKFLOW_CACHE {
            cache.clear();
        }
        cache.insert(key, wf.clone());
        Ok(wf)
    }
}

async fn dispatch(engine: Arc<Engine>, concurrency: usize, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(concurrency));
    let lease_ms = engine.lease.as_millis() as i64;
    while !*shutdown.borrow() {
        let free = slots.available_permits();
        if free == 0 {
            // Wait for a running execution to end.
            tokio::select! {
                _ = engine.wake.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        match engine
            .store
            .claim_jobs(&engine.node_id, engine.clock.now_ms(), lease_ms, free)
            .await
        {
            Ok(jobs) if !jobs.is_empty() => {
                for (id, claims) in jobs {
                    // Only this task takes permits, and `free` were free: this does not wait.
                    let slot = slots
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore is never closed");
                    tokio::spawn(run_claimed(engine.clone(), id, claims, slot));
                }
            }
            Ok(_) => {
                tokio::select! {
                    _ = engine.wake.notified() => {}
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
    // Let running executions finish their current step.
    let _ = slots.acquire_many(concurrency as u32).await;
}

/// Runs one claimed execution, then frees its slot and tells the dispatcher.
async fn run_claimed(engine: Arc<Engine>, id: String, claims: i64, slot: OwnedSemaphorePermit) {
    let cancel = CancellationToken::new();
    engine.running_set().insert(id.clone(), cancel.clone());
    // In its own task, so that a panic in an action ends the run, not this bookkeeping.
    let (e, task_id) = (engine.clone(), id.clone());
    let outcome =
        tokio::spawn(async move { run::execute(&e, &task_id, claims, cancel).await }).await;
    match outcome {
        Ok(Ok(())) => {}
        // No longer heartbeated, the job's lease runs out and the run is claimed again.
        Ok(Err(err)) => {
            tracing::warn!(execution = %id, error = %err, "execution paused until its lease runs out")
        }
        Err(panic) => tracing::error!(execution = %id, error = %panic, "execution task panicked"),
    }
    engine.running_set().remove(&id);
    drop(slot);
    engine.wake.notify_one();
}

/// Extends the leases of the executions running here, so only a stopped node, or a run that
/// stopped on an error, gives its job back.
async fn heartbeat(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(engine.lease / 3) => {}
            _ = shutdown.changed() => return,
        }
        let running: Vec<String> = engine.running_set().keys().cloned().collect();
        if running.is_empty() {
            continue;
        }
        let until = engine.clock.now_ms() + engine.lease.as_millis() as i64;
        match engine
            .store
            .extend_leases(&engine.node_id, running, until)
            .await
        {
            // Cancels asked for on another node reach this one here.
            Ok(cancelled) => {
                for id in cancelled {
                    engine.cancel_local(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot extend leases"),
        }
    }
}
