//! alertflow: workflow automation triggered by Prometheus Alertmanager.
//!
//! `run(config, listener)` starts everything (API, webhook ingress, workers) in one process;
//! tests call it on port 0.

pub mod actions;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod engine;
pub mod error;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod plans;
pub mod startup;
pub mod store;

use crate::actions::{Clients, Registry};
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::store::{SqliteStore, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub master: MasterKey,
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    /// The base of webhook URLs.
    pub public_base: Arc<str>,
    /// Tells the engine that new executions are queued.
    pub wake: Arc<Notify>,
    pub clock: clock::Clock,
    /// This node's engine, when it runs one: a cancel stops a run here at once.
    pub engine: Option<Arc<Engine>>,
    /// True once shutdown began: deliveries are then answered 503, so senders retry elsewhere.
    pub stopping: watch::Receiver<bool>,
    pub limits: Arc<http::limits::Limits>,
    /// Parsed workflow versions, shared with the engine.
    pub plans: Arc<plans::Plans>,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Runs until Ctrl-C or SIGTERM.
pub async fn run(config: Config, listener: TcpListener) -> anyhow::Result<()> {
    run_until(config, listener, shutdown_signal()).await
}

/// Runs until `shutdown` completes, then stops taking requests and lets running steps finish
/// their current attempt for a short while.
pub async fn run_until(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let mut shutdown = Box::pin(shutdown);
    let (listener, started) =
        match startup::wait_for_store(&config, &metrics, listener, &mut shutdown).await? {
            Some(ready) => ready,
            None => return Ok(()),
        };
    let startup::Started {
        store,
        master,
        node,
    } = started;

    let bound: SocketAddr = listener.local_addr()?;
    let wake = Arc::new(Notify::new());
    let registry = Registry::builtin().with_shell(config.allow_shell);
    let public_base = config.public_base(bound);
    let plans = Arc::new(plans::Plans::default());

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut engine_task = None;
    let mut engine_handle = None;
    if config.workers > 0 {
        let node_id = node.clone();
        // Jobs this node held when it last stopped (or crashed) are ours to resume now,
        // rather than after their leases run out.
        let released = store.release_leases(&node_id).await?;
        store.listen_for_work(wake.clone());
        if released > 0 {
            tracing::info!(released, "resuming executions interrupted by the last stop");
        }
        let destinations = Arc::new(config.destinations.clone());
        let http = reqwest::Client::builder()
            .user_agent(concat!("alertflow/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(actions::destinations::Resolver(
                destinations.clone(),
            )))
            .build()?;
        let engine = Arc::new(Engine {
            store: store.clone(),
            registry: registry.clone(),
            clients: Clients {
                http,
                destinations,
                jq: Arc::new(actions::jq_sandbox::Sandbox::new(
                    config.jq_worker_exe.clone(),
                )),
            },
            metrics: metrics.clone(),
            node_id,
            lease: config.job_lease,
            wake: wake.clone(),
            plans: plans.clone(),
            running: Default::default(),
            clock: config.clock.clone(),
            triggers: Default::default(),
            trigger_loading: Default::default(),
            master: master.clone(),
            public_base: public_base.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(config.workers)),
            workers: config.workers,
        });
        engine_task = Some(engine.start(stop_rx.clone()));
        engine_handle = Some(engine);
    }
    let state = AppState {
        store: store.clone(),
        config: Arc::new(config.clone()),
        master,
        registry,
        metrics,
        public_base: public_base.into(),
        wake,
        clock: config.clock.clone(),
        engine: engine_handle,
        stopping: stop_rx.clone(),
        limits: Arc::new(http::limits::Limits::new(&config.rate_limits)),
        plans,
    };

    tracing::info!(listen = %bound, data_dir = %config.data_dir.display(), "alertflow is up");
    let app = http::router(state);
    // With each connection's address, for the limits per source.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await?;
    if let Some(engine) = engine_task {
        // Running steps get a moment to finish. What does not is handed back: its lease is
        // released, so another node (or this one, restarted) resumes it from its last step.
        if tokio::time::timeout(SHUTDOWN_GRACE, engine).await.is_err() {
            match store.release_leases(&node).await {
                Ok(n) => tracing::info!(handed_back = n, "stopping with runs unfinished"),
                Err(e) => tracing::warn!(error = %e, "could not hand back unfinished runs"),
            }
        }
    }
    tracing::info!("alertflow stopped");
    Ok(())
}

/// How long a stopping node lets running steps finish before handing their runs back.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens and migrates the store the URL names.
pub async fn open_store(url: &str, metrics: &Metrics) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(
            SqliteStore::open(url, metrics.commit_batch.clone()).await?,
        ));
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return Ok(Arc::new(store::PgStore::open(url, 32).await?));
    }
    anyhow::bail!("unsupported --database-url {url:?}: use sqlite://PATH or postgres://...")
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
