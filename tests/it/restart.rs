//! A server killed (SIGKILL) in the middle of a run resumes it after a restart: finished steps
//! are not run again, the interrupted one runs again as attempt 2, and nothing accepted is lost.

use crate::alertmanager_e2e::free_port;
use crate::common::*;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::process::{Child, Command};

/// An endpoint that holds requests open while `hold` is set, and counts them.
async fn gate(hold: Arc<AtomicBool>, hits: Arc<AtomicUsize>) -> String {
    let app = axum::Router::new().fallback(move || {
        let (hold, hits) = (hold.clone(), hits.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if hold.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            "released"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn serve(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        // A long lease: the restart must resume the run because it is this node's, not
        // because a lease ran out.
        .env("ALERTFLOW_JOB_LEASE", "10m")
        .stdout(log_file(dir))
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// The servers' log, `server.log` in the data dir, appended to by each start.
fn log_file(dir: &std::path::Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .unwrap()
}

/// Prints the servers' log when the test fails, before the data dir goes.
struct PrintLogOnFailure<'a>(&'a std::path::Path);

impl Drop for PrintLogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.0.join("server.log")).unwrap_or_default();
            eprintln!("--- server.log ---\n{log}--- end of server.log ---");
        }
    }
}

/// Starts the binary on `dir`, waits until it answers, and creates the key `ops`: the server,
/// the admin token and the key's value.
async fn start_with_key(dir: &std::path::Path, port: u16) -> (Child, String, String) {
    let base = format!("http://127.0.0.1:{port}");
    let server = serve(dir, port);
    let token_file = dir.join("admin-token");
    let token = wait_for(|| async { std::fs::read_to_string(&token_file).ok() })
        .await
        .trim()
        .to_string();
    wait_for(|| async { api(&base, &token, "/workflows").await }).await;
    let key: Value = client()
        .post(format!("{base}/api/v1/keys"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (server, token, key["value"].as_str().unwrap().to_string())
}

async fn api(base: &str, token: &str, path: &str) -> Option<Value> {
    let resp = client()
        .get(format!("{base}/api/v1{path}"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_the_run_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let _log = PrintLogOnFailure(dir.path());
    let first_hits = recorder(200).await;
    let (hold, gate_hits) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let gate_url = gate(hold.clone(), gate_hits.clone()).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (mut server, token, key) = start_with_key(dir.path(), port).await;
    let http = client();
    let doc = format!(
        "name: resume\ntrigger: {{type: prometheus}}\nsteps:\n  - {{id: first, uses: http.request, with: {{url: '{}'}}}}\n  - {{id: slow, uses: http.request, with: {{url: '{gate_url}'}}}}\n  - {{id: last, uses: transform, with: {{value: '{{{{ steps.slow.output.body }}}}'}}}}\n",
        first_hits.url
    );
    let resp = http
        .post(format!("{base}/api/v1/workflows"))
        .bearer_auth(&token)
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let accepted: Value = http
        .post(format!("{base}/hooks/resume?x-api-key={key}"))
        .header("content-type", "application/json")
        .body(fixture("prometheus-rule-firing.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(accepted["outcome"], "started");
    let id = accepted["executions"][0].as_str().unwrap().to_string();

    // Wait until `slow` is in flight, then kill the server without warning.
    wait_for(|| async {
        let ex = api(&base, &token, &format!("/executions/{id}")).await?;
        (ex["steps"][1]["status"] == "running" && gate_hits.load(Ordering::SeqCst) == 1)
            .then_some(())
    })
    .await;
    server.kill().await.unwrap();
    hold.store(false, Ordering::SeqCst);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(dir.path(), port);
    let ex = wait_for(|| async {
        let ex = api(&base, &token, &format!("/executions/{id}")).await?;
        (ex["status"] == "succeeded" || ex["status"] == "failed").then_some(ex)
    })
    .await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    let attempts: Vec<i64> = ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["attempts"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2, 1], "{ex}");
    assert_eq!(
        first_hits.requests.lock().unwrap().len(),
        1,
        "a finished step does not run again"
    );
    assert_eq!(gate_hits.load(Ordering::SeqCst), 2);
    assert_eq!(ex["steps"][2]["output"], "released");
    // The delivery accepted before the kill is still there, body and all.
    let events = api(&base, &token, "/events").await.unwrap();
    assert_eq!(events[0]["id"], accepted["event_id"]);
    assert_eq!(
        ex["input"],
        serde_json::from_slice::<Value>(&fixture("prometheus-rule-firing.json")).unwrap()
    );
    figures(
        "a_killed_server_resumes_the_run_after_restart",
        serde_json::json!({
            "kills": 1,
            "step_attempts": attempts,
            "finished_step_requests": first_hits.requests.lock().unwrap().len(),
            "status": ex["status"],
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_taking_deliveries_and_hands_back_unfinished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let _log = PrintLogOnFailure(dir.path());
    let (hold, hits) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let gate_url = gate(hold.clone(), hits.clone()).await;
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (mut server, token, key) = start_with_key(dir.path(), port).await;
    let http = client();
    let doc = format!("name: held\ntrigger: {{type: webhook}}\nsteps:\n  - {{id: slow, uses: http.request, with: {{url: '{gate_url}'}}, timeout: 1h}}\n");
    assert!(http
        .post(format!("{base}/api/v1/workflows"))
        .bearer_auth(&token)
        .body(doc)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let hook = format!("{base}/hooks/held?x-api-key={key}");
    let accepted: Value = http
        .post(&hook)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = accepted["executions"][0].as_str().unwrap().to_string();
    wait_for(|| async { (hits.load(Ordering::SeqCst) == 1).then_some(()) }).await;

    // SIGTERM: the server stops taking deliveries, waits for the step a while, hands the run
    // back and exits cleanly by itself.
    let pid = server.id().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // The signal is handled a moment later, on the server's own time: a delivery sent at once
    // could arrive before it (seen once in CI). "After SIGTERM" is once the node says it is
    // stopping, which /readyz tells the load balancer too.
    wait_for(|| async {
        let ready = http.get(format!("{base}/readyz")).send().await;
        ready.map_or(true, |r| r.status() == 503).then_some(())
    })
    .await;
    let after = http.post(&hook).json(&serde_json::json!({})).send().await;
    let after = after.map(|r| r.status().as_u16()).ok();
    assert!(
        after.unwrap_or(503) != 202,
        "a delivery was taken after SIGTERM"
    );
    // It exits by itself (bounded by its grace period); a hang fails the test here.
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), server.wait())
        .await
        .expect("the server exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");

    // Restarted, the node resumes the handed-back run from its step.
    hold.store(false, Ordering::SeqCst);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(dir.path(), port);
    let ex = wait_for(|| async {
        let ex = api(&base, &token, &format!("/executions/{id}")).await?;
        (ex["status"] == "succeeded").then_some(ex)
    })
    .await;
    assert_eq!(ex["steps"][0]["attempts"], 2, "{ex}");
    figures(
        "sigterm_stops_taking_deliveries_and_hands_back_unfinished_runs",
        serde_json::json!({
            "delivery_after_sigterm": after.map_or("connection refused".to_string(), |s| s.to_string()),
            "exit_status": status.code(),
            "resumed_step_attempt": ex["steps"][0]["attempts"],
        }),
    );
}

/// SIGKILL while a real Alertmanager streams notifications at the server, then a restart on
/// the same address: every group Alertmanager notified ran exactly once, whether its delivery
/// was acknowledged before the kill or retried by Alertmanager after it; a delivery taken twice
/// (committed as the process died, then retried) started nothing the second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_a_real_alertmanager_loses_and_doubles_nothing() {
    let Some(am_bin) = e2e_binary("prometheus-alertmanager") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let _log = PrintLogOnFailure(dir.path());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let (mut server, token, key) = start_with_key(dir.path(), port).await;
    let http = client();
    let doc = "name: stream\ntrigger: {type: prometheus}\nsteps:\n  - {id: note, uses: transform, with: {value: '{{ trigger.groupLabels.alertname }}'}}\n";
    let resp = http
        .post(format!("{base}/api/v1/workflows"))
        .bearer_auth(&token)
        .body(doc)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());

    let receiver = format!(
        "receivers:\n- name: 'alertflow'\n  webhook_configs:\n  - url: '{base}/hooks/stream'\n    send_resolved: false\n    http_config:\n      basic_auth: {{username: alertmanager, password: '{key}'}}\n"
    );
    let config = "route:\n  receiver: 'alertflow'\n  group_by: ['alertname']\n  group_wait: 200ms\n  group_interval: 1s\n  repeat_interval: 1h\n".to_string() + &receiver;
    let am_dir = tempfile::tempdir().unwrap();
    let (_am, am_url) =
        crate::alertmanager_e2e::start_alertmanager(&am_bin, am_dir.path(), &config).await;

    // 30 alert groups, one every 100 ms; the server is killed after the 10th and comes back
    // on the same address a second later.
    const GROUPS: usize = 30;
    for i in 0..GROUPS {
        let alert =
            serde_json::json!([{"labels": {"alertname": format!("A{i:02}"), "job": "stream"}}]);
        let r = http
            .post(format!("{am_url}/api/v2/alerts"))
            .json(&alert)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        if i == 10 {
            server.kill().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            server = serve(dir.path(), port);
            wait_for(|| async { api(&base, &token, "/workflows").await }).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Every group ends up with exactly one run, succeeded.
    let runs = wait_for(|| async {
        let list = api(
            &base,
            &token,
            "/executions?workflow=stream&limit=500&summary=true",
        )
        .await?;
        let list = list.as_array()?.clone();
        (list.len() >= GROUPS && list.iter().all(|e| e["status"] == "succeeded")).then_some(list)
    })
    .await;
    let mut groups = Vec::new();
    for run in &runs {
        let ex = api(
            &base,
            &token,
            &format!("/executions/{}", run["id"].as_str().unwrap()),
        )
        .await
        .unwrap();
        groups.push(ex["steps"][0]["output"].as_str().unwrap().to_string());
    }
    groups.sort();
    let expected: Vec<String> = (0..GROUPS).map(|i| format!("A{i:02}")).collect();
    assert_eq!(groups, expected, "one run per group, none twice");

    // What Alertmanager says it sent successfully, the server took; anything it took beyond
    // that (acknowledged as the process died) was a duplicate and started nothing.
    let metrics = http
        .get(format!("{am_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("integration=\"webhook\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let sent = count("alertmanager_notifications_total")
        - count("alertmanager_notifications_failed_total");
    let events = api(&base, &token, "/events?workflow=stream&limit=500")
        .await
        .unwrap();
    let taken = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status_code"] == 202)
        .count() as f64;
    let started = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "started")
        .count();
    eprintln!(
        "Alertmanager: {} sent, {} given up; the server took {taken}",
        count("alertmanager_notifications_total"),
        count("alertmanager_notifications_failed_total")
    );
    assert_eq!(started, GROUPS);
    assert!(
        taken >= sent,
        "Alertmanager counted {sent} successes, the server took {taken}"
    );
    // A delivery committed as the process died, whose answer Alertmanager never got, came again
    // and was recognised as the same notification.
    let duplicates = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "duplicate")
        .count();
    assert_eq!(taken as usize, started + duplicates);
    figures(
        "sigkill_under_a_real_alertmanager",
        serde_json::json!({
            "groups": GROUPS,
            "kills": 1,
            "alertmanager_sent": count("alertmanager_notifications_total") as u64,
            "alertmanager_given_up": count("alertmanager_notifications_failed_total") as u64,
            "deliveries_taken": taken as u64,
            "runs": started,
            "duplicates_recognised": duplicates,
        }),
    );
}
