//! Start-up: the data dir, the store, the master key and the first admin. A full disk, a
//! read-only data dir or an unreachable database is a fault that may pass, so the node does not
//! exit: it answers every request 503 with Retry-After (Alertmanager retries) and the reason,
//! logs the reason, and tries again every few seconds until it can start.

use crate::config::Config;
use crate::crypto::{self, MasterKey};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::{self, Store, StoreError};
use crate::{ingest, now_ms, open_store};
use axum::response::IntoResponse;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long between attempts to start while the store cannot be opened.
const RETRY_EVERY: Duration = Duration::from_secs(2);

/// What a started node has.
pub struct Started {
    pub store: Arc<dyn Store>,
    pub master: MasterKey,
    /// This node's id, kept in the data dir.
    pub node: String,
}

/// Starts, trying again while the fault may pass; `None` when `shutdown` came first.
pub async fn wait_for_store(
    config: &Config,
    metrics: &Arc<Metrics>,
    listener: TcpListener,
    shutdown: &mut Pin<Box<impl Future<Output = ()>>>,
) -> anyhow::Result<Option<(TcpListener, Started)>> {
    let mut answering: Option<tokio::sync::watch::Sender<String>> = None;
    let listener = listener.into_std()?;
    loop {
        let failure = match start(config, metrics).await {
            Ok(started) => {
                // The stand-in stops accepting; requests it holds are answered 503 as usual.
                drop(answering);
                return Ok(Some((TcpListener::from_std(listener)?, started)));
            }
            Err(e) if may_pass(&e) => format!("{e:#}"),
            Err(e) => return Err(e),
        };
        tracing::error!(
            error = %failure,
            data_dir = %config.data_dir.display(),
            "cannot start: answering 503 and trying again every {}s",
            RETRY_EVERY.as_secs()
        );
        match &answering {
            Some(reason) => {
                let _ = reason.send(failure);
            }
            None => {
                let (reason, rx) = tokio::sync::watch::channel(failure);
                let stand_in = TcpListener::from_std(listener.try_clone()?)?;
                tokio::spawn(answer_unavailable(stand_in, rx));
                answering = Some(reason);
            }
        }
        tokio::select! {
            _ = shutdown.as_mut() => return Ok(None),
            _ = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// Answers every request 503 with the reason, until the sender of `reason` is dropped.
async fn answer_unavailable(listener: TcpListener, reason: tokio::sync::watch::Receiver<String>) {
    let mut closed = reason.clone();
    let app = axum::Router::new().fallback(move || {
        let message = reason.borrow().clone();
        async move {
            Error::Unavailable(format!("alertflow cannot start yet: {message}")).into_response()
        }
    });
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = closed.wait_for(|_| false).await;
        })
        .await;
}

/// Faults of the disk or the database that an operator (or time) can clear; a wrong master
/// key or a database written by a newer alertflow is not one of them.
fn may_pass(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::*;
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<StoreError>(),
            Some(StoreError::Unavailable(_))
        ) || cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                StorageFull | ReadOnlyFilesystem | PermissionDenied
            )
        })
    })
}

async fn start(config: &Config, metrics: &Metrics) -> anyhow::Result<Started> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = open_store(&config.database_url, metrics).await?;
    let master = MasterKey::load(config.master_key.as_deref(), &config.data_dir)?;
    check_master_key(store.as_ref(), &master).await?;
    bootstrap_admin(store.as_ref(), &config.data_dir).await?;
    let node = node_id(&config.data_dir)?;
    Ok(Started {
        store,
        master,
        node,
    })
}

const KEY_CHECK: &[u8] = b"alertflow master key check";

/// Nodes sharing a database must share the master key: a node with another one would write
/// secrets and keys the others cannot read, so it refuses to start.
async fn check_master_key(store: &dyn Store, master: &MasterKey) -> anyhow::Result<()> {
    let stored = store.key_check(master.encrypt(KEY_CHECK)).await?;
    match master.decrypt(&stored) {
        Ok(plain) if plain == KEY_CHECK => Ok(()),
        _ => anyhow::bail!(
            "the master key differs from the one this database was written with: start every node with the same ALERTFLOW_MASTER_KEY (or the data dir's master.key that wrote it)"
        ),
    }
}

/// On the first start with an empty store: the `admin` user, a random password and an admin
/// token, printed once; the token also goes to DATA_DIR/admin-token (0600) for local clients.
async fn bootstrap_admin(store: &dyn Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.has_users().await? {
        return Ok(());
    }
    let password = crypto::random_token("");
    let token = crypto::random_token("aft_");
    let created = store
        .create_admin(
            "admin",
            &crypto::hash_password(&password),
            &crypto::digest(&token),
            now_ms(),
        )
        .await;
    match created {
        Ok(()) => {}
        // Nodes started together on one database: another one created the admin first.
        Err(store::StoreError::Conflict) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let token_file = data_dir.join("admin-token");
    crypto::write_private(&token_file, &token)?;
    println!("alertflow: created user admin (shown once, keep them safe)");
    println!("  password:    {password}");
    println!("  admin token: {token}");
    println!(
        "  token saved: {} (mode 0600; local alertflow commands read it)",
        token_file.display()
    );
    Ok(())
}

/// A stable id for this node, kept in the data dir, so a restart can reclaim its own jobs.
fn node_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_string());
        }
    }
    let id = ingest::new_id();
    std::fs::write(&path, &id)?;
    Ok(id)
}
