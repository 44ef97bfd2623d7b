//! Several nodes on one PostgreSQL database: deliveries spread over three nodes, HA duplicates
//! sent to two nodes, one node killed with SIGKILL mid-stream. Every accepted delivery runs to
//! the end exactly once, and nothing accepted is lost.

use crate::alertmanager_e2e::free_port;
use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::{Child, Command};

const MASTER_KEY: &str = "5f1d3c8a9b2e4f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

fn node(db: &str, dir: &std::path::Path, port: u16, key: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.to_str().unwrap(),
            "--database-url",
            db,
        ])
        .env("ALERTFLOW_MASTER_KEY", key)
        // A short lease: the killed node's runs come back to the others quickly.
        .env("ALERTFLOW_JOB_LEASE", "3s")
        .env("ALERTFLOW_WORKERS", "8")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn ready(port: u16) {
    wait_for(|| async {
        reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;
}

/// A notification of its own: one alert whose fingerprint and group are `n`.
fn notification(n: usize) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&fixture("prometheus-rule-firing.json")).unwrap();
    body["groupKey"] = json!(format!("{{}}:{{n=\"{n}\"}}"));
    body["alerts"][0]["fingerprint"] = json!(format!("{n:016x}"));
    body["alerts"][0]["labels"]["n"] = json!(n.to_string());
    serde_json::to_vec(&body).unwrap()
}

/// The sink the workflow posts to: it records requests per notification and answers slowly,
/// so that the kill finds steps in flight.
async fn slow_sink() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::routing::post;
    let seen: Arc<Mutex<Vec<String>>> = Default::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/n/{n}",
        post(move |axum::extract::Path(n): axum::extract::Path<String>| {
            let s = s.clone();
            async move {
                // Counted on arrival: a request from the killed node counts too.
                s.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(800)).await;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_a_killed_one() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();

    // `migrate` brings the schema up before any node starts.
    let out = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "migrate",
            "--database-url",
            &db.url,
            "--data-dir",
            dirs[0].path().to_str().unwrap(),
        ])
        .env("ALERTFLOW_MASTER_KEY", MASTER_KEY)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut nodes: Vec<Option<Child>> = Vec::new();
    for i in 0..3 {
        nodes.push(Some(node(&db.url, dirs[i].path(), ports[i], MASTER_KEY)));
    }
    for p in &ports {
        ready(*p).await;
    }
    // Exactly one node created the admin (and wrote its token).
    let tokens: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.path().join("admin-token")).ok())
        .collect();
    assert_eq!(tokens.len(), 1);
    let token = tokens[0].trim().to_string();

    // A node with another master key refuses to start, saying why.
    let other = free_port();
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = node(&db.url, stranger_dir.path(), other, &"0".repeat(64));
    // (Bounded: a node that wrongly started would serve for ever.)
    let out = tokio::time::timeout(Duration::from_secs(60), stranger.wait_with_output())
        .await
        .expect("a node with another master key exits")
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("master key differs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let http = client();
    let base = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let api = |i: usize, path: &str| format!("{}/api/v1{path}", base(i));
    let key: Value = http
        .post(api(0, "/keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["value"].as_str().unwrap().to_string();
    let (sink, seen) = slow_sink().await;
    let doc = format!("name: spread\ntrigger: {{type: prometheus}}\nsteps:\n  - {{id: post, uses: http.request, with: {{url: '{sink}/n/{{{{ trigger.alerts[0].labels.n }}}}', json: {{}}}}}}\n");
    let resp = http
        .post(api(1, "/workflows"))
        .bearer_auth(&token)
        .body(doc)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // 60 notifications; each sent by two "HA peers" to two different nodes. Node 2 is killed
    // after the 20th; what it no longer answers goes to the next node, as Alertmanager's
    // retries through a load balancer would.
    const N: usize = 60;
    let accepted = Arc::new(Mutex::new(Vec::<(usize, Value)>::new()));
    let dead = Arc::new(AtomicUsize::new(usize::MAX));
    for n in 0..N {
        if n == 20 {
            let mut victim = nodes[2].take().unwrap();
            victim.start_kill().unwrap();
            victim.wait().await.unwrap();
            dead.store(2, Ordering::SeqCst);
        }
        for peer in 0..2 {
            let mut target = (n + peer) % 3;
            loop {
                let url = format!("{}/hooks/spread", base(target));
                let sent = http
                    .post(&url)
                    .header("x-api-key", &key)
                    .header("content-type", "application/json")
                    .body(notification(n))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 202 => {
                        let answer: Value = r.json().await.unwrap();
                        accepted.lock().unwrap().push((n, answer));
                        break;
                    }
                    Ok(r) => panic!("node {target} answered {} for notification {n}", r.status()),
                    Err(_) => {
                        assert_eq!(
                            target,
                            dead.load(Ordering::SeqCst),
                            "only the killed node refuses"
                        );
                        target = (target + 1) % 3;
                    }
                }
            }
        }
    }

    // One run per notification, whichever nodes took its two copies.
    let accepted = accepted.lock().unwrap().clone();
    let mut started: Vec<(usize, String)> = Vec::new();
    for (n, answer) in &accepted {
        match answer["outcome"].as_str().unwrap() {
            "started" => started.push((*n, answer["executions"][0].as_str().unwrap().to_string())),
            "duplicate" => {}
            other => panic!("unexpected outcome {other} for {n}"),
        }
    }
    let mut started_ns: Vec<usize> = started.iter().map(|(n, _)| *n).collect();
    started_ns.sort();
    assert_eq!(started_ns, (0..N).collect::<Vec<_>>());

    // Every accepted run ends, succeeded, once; the killed node's runs were finished by others.
    let mut retried = 0;
    for (n, id) in &started {
        let ex: Value = wait_for(|| async {
            let ex: Value = http
                .get(api(0, &format!("/executions/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (ex["status"] == "succeeded").then_some(ex)
        })
        .await;
        let attempts = ex["steps"][0]["attempts"].as_i64().unwrap();
        assert!(attempts == 1 || attempts == 2, "notification {n}: {ex}");
        retried += (attempts - 1) as usize;
    }
    // The sink saw each notification, and again at most where a killed node's step ran again
    // (a step cut off before its request went out ran again without a duplicate).
    let seen = seen.lock().unwrap().clone();
    for n in 0..N {
        assert!(
            seen.contains(&n.to_string()),
            "notification {n} never reached the sink"
        );
    }
    eprintln!("runs whose step ran again after the kill: {retried}");
    assert!(
        seen.len() >= N && seen.len() <= N + retried,
        "{} requests for {N} notifications, {retried} reruns",
        seen.len()
    );
    let all: Value = http
        .get(api(0, "/executions?limit=500&summary=true"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), N, "no run was started twice");

    // A key deleted through one node stops working at once on the other: every delivery looks
    // the key up in the shared database, and nothing caches it.
    let deleted = http
        .delete(api(1, "/keys/ops"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let after = http
        .post(format!("{}/hooks/spread?x-api-key={key}", base(0)))
        .header("content-type", "application/json")
        .body(notification(N + 1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        401,
        "a revoked key still works on another node"
    );
    figures(
        "three_nodes_share_the_work_and_survive_a_killed_one",
        json!({
            "nodes": 3,
            "kills": 1,
            "notifications": N,
            "deliveries": 2 * N,
            "runs": all.as_array().unwrap().len(),
            "steps_run_again": retried,
            "sink_requests": seen.len(),
            "revoked_key_on_another_node": after.status().as_u16(),
        }),
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("alertflow.db").display());
    let migrate = || {
        Command::new(env!("CARGO_BIN_EXE_alertflow"))
            .args(["migrate", "--data-dir", dir.path().to_str().unwrap()])
            .output()
    };
    let out = migrate().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A later alertflow applied a migration this one does not know.
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db).await.unwrap();
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (9999, 'future', CURRENT_TIMESTAMP, 1, X'00', 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let out = migrate().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema is newer than this alertflow") && err.contains("9999"),
        "{err}"
    );
}
