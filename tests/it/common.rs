//! Test helpers: `spawn_app()` runs alertflow in-process on a free port with a fresh data dir.

#![allow(dead_code)]

use alertflow::config::Config;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;

pub struct TestApp {
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    /// The engine's clock: tests move it forward instead of sleeping.
    pub clock: alertflow::clock::Clock,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), adjust).await
}

/// Starts the server on an existing data directory (a restart).
pub async fn spawn_app_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::with_data_dir(dir.path().to_path_buf());
    config.workers = 4;
    // Tests poll executions from many tasks at once, faster than any user would.
    config.rate_limits.api_per_user = 0;
    // The test binary is not alertflow; jq workers are the built binary.
    config.jq_worker_exe = env!("CARGO_BIN_EXE_alertflow").into();
    adjust(&mut config);
    let clock = config.clock.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(alertflow::run_until(config, listener, async {
        let _ = stopped.await;
    }));
    let token_file = dir.path().join("admin-token");
    let token = wait_for(|| async { std::fs::read_to_string(&token_file).ok() }).await;
    TestApp {
        base,
        token: token.trim().to_string(),
        http: client(),
        dir,
        clock,
        stop: Some(stop),
        task: Some(task),
    }
}

/// An HTTP client whose every request gives up after a minute: a server that accepts a
/// connection and never answers fails the test with the URL, instead of hanging the suite
/// (CI once sat 85 minutes on one such request).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Polls `f` until it returns Some, for up to a minute in all: an attempt that hangs is cut
/// off at that deadline too, so that a wait always ends.
pub async fn wait_for<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // (`timeout_at` polls `f` before its clock: an attempt that answers at once never times
    // out, hence the check of the deadline as well.)
    while let Ok(found) = tokio::time::timeout_at(deadline, f()).await {
        if let Some(v) = found {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 60s");
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alertmanager-0.25")
}

impl TestApp {
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.api(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub async fn create_key(&self, name: &str) -> String {
        let (status, v) = self
            .api(reqwest::Method::POST, "/keys", Some(json!({"name": name})))
            .await;
        assert_eq!(status, 201, "{v}");
        v["value"].as_str().unwrap().to_string()
    }

    /// Applies a workflow document; returns (status, body).
    pub async fn apply(&self, doc: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/api/v1/workflows", self.base))
            .bearer_auth(&self.token)
            .body(doc.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn apply_ok(&self, doc: &str) -> Value {
        let (status, v) = self.apply(doc).await;
        assert!(status == 200 || status == 201, "apply: {status} {v}");
        v
    }

    /// Posts a body to the trigger with the key as `?x-api-key=`, as the seed receiver does.
    pub async fn hook(
        &self,
        workflow: &str,
        key: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/hooks/{workflow}?x-api-key={key}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn execution(&self, id: &str) -> Value {
        self.get(&format!("/executions/{id}")).await
    }

    /// Waits until the execution reaches a final status and returns it.
    pub async fn finished(&self, id: &str) -> Value {
        wait_for(|| async {
            let ex = self.execution(id).await;
            let st = ex["status"].as_str().unwrap().to_string();
            matches!(
                st.as_str(),
                "succeeded" | "failed" | "cancelled" | "timed_out"
            )
            .then_some(ex)
        })
        .await
    }

    /// Waits until the execution has this status and returns it.
    pub async fn reaches(&self, id: &str, status: &str) -> Value {
        wait_for(|| async {
            let ex = self.execution(id).await;
            (ex["status"] == status).then_some(ex)
        })
        .await
    }

    /// Starts a manual run and returns its execution id.
    pub async fn start(&self, workflow: &str, input: Value) -> String {
        let (status, v) = self
            .api(
                reqwest::Method::POST,
                &format!("/workflows/{workflow}/run"),
                Some(input),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        v["executions"][0].as_str().unwrap().to_string()
    }

    pub async fn events(&self, workflow: &str) -> Vec<Value> {
        self.get(&format!("/events?workflow={workflow}"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        // Keep the directory alive for the caller (restart tests reuse it).
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A small HTTP server for steps to call: it records each request and answers with `status`.
pub struct Recorder {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>>,
}

pub async fn recorder(status: u16) -> Recorder {
    use axum::routing::any;
    let requests: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
    let seen = requests.clone();
    let app =
        axum::Router::new().fallback(any(move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                seen.lock().unwrap().push((uri.to_string(), v));
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    [("content-type", "application/json")],
                    r#"{"ok":true,"id":"T-1"}"#,
                )
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Recorder { url, requests }
}

/// Whether an end-to-end test that needs `binary` should run; panics when it is missing and
/// `ALERTFLOW_E2E=require` says it must not be.
pub fn e2e_binary(binary: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(binary))
            .find(|p| p.is_file())
    });
    match (found, std::env::var("ALERTFLOW_E2E").as_deref()) {
        (Some(p), _) => Some(p),
        (None, Ok("require")) => panic!("{binary} not found on PATH and ALERTFLOW_E2E=require"),
        (None, _) => {
            eprintln!("SKIPPED: {binary} not found on PATH (install it, or set ALERTFLOW_E2E=require to fail instead)");
            None
        }
    }
}

/// A throwaway database on the PostgreSQL server named by `ALERTFLOW_TEST_POSTGRES`; None (with
/// a SKIPPED line) when none is given, a failure instead under `ALERTFLOW_E2E=require`. It is
/// dropped with the value, also when the test fails.
pub async fn postgres_database() -> Option<PgDatabase> {
    let Ok(admin) = std::env::var("ALERTFLOW_TEST_POSTGRES") else {
        if std::env::var("ALERTFLOW_E2E").as_deref() == Ok("require") {
            panic!("ALERTFLOW_TEST_POSTGRES is not set and ALERTFLOW_E2E=require");
        }
        eprintln!(
            "SKIPPED: set ALERTFLOW_TEST_POSTGRES=postgres://... to run the PostgreSQL tests"
        );
        return None;
    };
    use sqlx::Connection;
    let name = format!("alertflow_it_{}", uuid::Uuid::now_v7().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("ALERTFLOW_TEST_POSTGRES is reachable");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(PgDatabase {
        url: url.to_string(),
        admin,
        name,
    })
}

pub struct PgDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Dropped inside async tests, whose runtime may be going away: a thread with a runtime
        // of its own does it. FORCE ends the connections of servers still running.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// Records what a reliability test ended with (deliveries sent, accepted, run; faults
/// injected; inputs tried) as one JSON line in the file `ALERTFLOW_FIGURES` names, for
/// `docs/reliability.sh`, which writes docs/reliability.md from them. Does nothing otherwise.
pub fn figures(test: &str, figures: Value) {
    use std::io::Write;
    let Some(path) = std::env::var_os("ALERTFLOW_FIGURES") else {
        return;
    };
    let mut line =
        serde_json::to_vec(&serde_json::json!({"test": test, "figures": figures})).unwrap();
    line.push(b'\n');
    // One append of one line: lines from tests running at once do not interleave.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&line))
        .expect("ALERTFLOW_FIGURES is writable");
}
