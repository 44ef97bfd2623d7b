//! End to end through real binaries: Alertmanager (and Prometheus) deliver notifications to an
//! in-process alertflow, set up by the seed journey in examples/notify.yaml. Skipped, with a
//! message, when the binaries are not installed (ALERTFLOW_E2E=require makes that a failure).

use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A child process killed (and reaped) on drop, so a failing assert still cleans up.
pub struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn start(name: &'static str, bin: &Path, args: &[String], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Proc { name, child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `GET {url}/-/ready` to answer 200; fails early, with the log, if the process exits.
    pub async fn ready(&mut self, url: &str) {
        let http = client();
        for _ in 0..300 {
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("{} exited with {st}:\n{}", self.name, self.log());
            }
            if let Ok(r) = http.get(format!("{url}/-/ready")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} not ready within 30s:\n{}", self.name, self.log());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now: bind port 0, note it, let it go.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs the real CLI against the app and returns its stdout; fails on a non-zero exit.
async fn cli(app: &TestApp, args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_alertflow"));
    cmd.args(["--server", &app.base, "--token", &app.token])
        .args(args)
        .current_dir(app.data_dir())
        .env_remove("ALERTFLOW_CONFIG")
        .env_remove("ALERTFLOW_DATA_DIR");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "alertflow {args:?}: {}\n{stdout}{err}",
        out.status
    );
    stdout
}

/// The alertmanager.yml of the journey: a fast route, then the receiver block as given.
pub fn alertmanager_yml(receiver_block: &str) -> String {
    "route:\n  receiver: 'alertflow'\n  group_by: ['alertname']\n  group_wait: 1s\n  \
     group_interval: 2s\n  repeat_interval: 1h\n"
        .to_string()
        + receiver_block
}

/// Starts Alertmanager with `config` on a free port (clustering off); returns it and its URL.
pub async fn start_alertmanager(bin: &Path, dir: &Path, config: &str) -> (Proc, String) {
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(&cfg, config).unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", cfg.display()),
        format!("--storage.path={}", dir.join("am-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--cluster.listen-address=".to_string(),
    ];
    let mut am = Proc::start("alertmanager", bin, &args, dir.join("alertmanager.log"));
    let url = format!("http://127.0.0.1:{port}");
    am.ready(&url).await;
    (am, url)
}

/// The finished execution of `notify` whose input matches `pred`, if one exists yet.
async fn find_execution(app: &TestApp, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let list = app.get("/executions?workflow=notify").await;
    for e in list.as_array()? {
        let ex = app.execution(e["id"].as_str()?).await;
        if pred(&ex["input"]) {
            return Some(app.finished(ex["id"].as_str()?).await);
        }
    }
    None
}

/// Like `wait_for`, with a longer cap: Alertmanager resolves on its own clock.
async fn wait_long(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..360 {
        if let Some(ex) = find_execution(app, &pred).await {
            return ex;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no {what} execution within 90s");
}

/// Both steps of the seed workflow ran once and recorded what they did; `text` is its message.
fn assert_succeeded(ex: &Value, text: &str) {
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(ex["steps"][1]["output"]["text"], text, "{ex:#}");
    assert_eq!(ex["trigger"]["type"], "prometheus", "{ex:#}");
    let steps = ex["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["summary", "message"]);
    for st in steps {
        assert_eq!(st["status"], "succeeded", "{st:#}");
        assert_eq!(st["attempts"], 1, "{st:#}");
        for field in ["input", "output", "started_at", "finished_at"] {
            assert!(
                !st[field].is_null(),
                "step {} has no {field}: {st:#}",
                st["id"]
            );
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_journey_through_a_real_alertmanager() {
    let Some(am_bin) = e2e_binary("prometheus-alertmanager") else {
        return;
    };
    let app = spawn_app().await;

    // The journey as the README tells it, with the real CLI.
    let key = cli(&app, &["keys", "create", "ops"]).await;
    let key = key.trim();
    assert!(
        !key.is_empty() && !key.contains(char::is_whitespace),
        "key: {key:?}"
    );
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/notify.yaml");
    let applied = cli(&app, &["workflows", "apply", "-f", example]).await;
    let hook = format!("{}/hooks/notify", app.base);
    assert!(
        applied.contains("workflow notify version 1 (created)"),
        "{applied}"
    );
    assert!(
        applied.contains(&format!("Workflow Webhook URL: {hook}")),
        "{applied}"
    );
    let block = cli(&app, &["alertmanager-config", "notify", "--key", "ops"]).await;
    assert!(block.starts_with("receivers:\n"), "{block}");
    assert!(block.contains("name: 'alertflow'"), "{block}");
    assert!(
        block.contains(&format!("url: '{hook}?x-api-key={key}'")),
        "{block}"
    );

    // The printed block pasted unchanged: Alertmanager must accept it as it is.
    let tmp = tempfile::tempdir().unwrap();
    let (_am, am_url) = start_alertmanager(&am_bin, tmp.path(), &alertmanager_yml(&block)).await;

    let http = client();
    let labels = json!({"alertname": "SeedJourney", "severity": "critical"});
    let starts_at = now();
    let post_alert = |alert: Value| {
        let req = http
            .post(format!("{am_url}/api/v2/alerts"))
            .json(&json!([alert]));
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        }
    };
    post_alert(json!({
        "labels": labels,
        "annotations": {"summary": "the seed journey fires"},
        "startsAt": starts_at,
    }))
    .await;

    let firing = wait_for(|| find_execution(&app, |i| i["status"] == "firing")).await;
    // The seed workflow's message is what a chat would get.
    assert_succeeded(&firing, "[FIRING] SeedJourney: 1 alert(s)");
    let input = &firing["input"];
    assert_eq!(input["receiver"], "alertflow");
    assert_eq!(input["alerts"][0]["labels"], labels);
    assert_eq!(
        input["alerts"][0]["annotations"]["summary"],
        "the seed journey fires"
    );

    // Resolve it: the same alert with an end time; Alertmanager sends `resolved` (send_resolved).
    post_alert(json!({
        "labels": labels,
        "annotations": {"summary": "the seed journey fires"},
        "startsAt": starts_at,
        "endsAt": now(),
    }))
    .await;
    let resolved = wait_for(|| find_execution(&app, |i| i["status"] == "resolved")).await;
    assert_succeeded(&resolved, "[RESOLVED] SeedJourney: 1 alert(s)");
    assert_eq!(resolved["input"]["alerts"][0]["labels"], labels);
    let (fid, rid) = (
        firing["id"].as_str().unwrap(),
        resolved["id"].as_str().unwrap(),
    );
    assert_ne!(fid, rid);

    // What an operator sees from the CLI.
    let list = cli(&app, &["executions", "list"]).await;
    for id in [fid, rid] {
        let row = list
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{list}"));
        assert!(
            row.contains("notify") && row.contains("succeeded") && row.contains("prometheus"),
            "{row}"
        );
    }
    let shown = cli(&app, &["executions", "get", rid]).await;
    for want in [
        format!("Execution  {rid}"),
        "Status     succeeded".into(),
        "Trigger    prometheus (event ".into(),
        r#""status":"resolved""#.into(),
        r#""alertname":"SeedJourney""#.into(),
        "- summary (transform)  succeeded  attempts 1".into(),
        "- message (transform)  succeeded  attempts 1".into(),
    ] {
        assert!(shown.contains(&want), "missing {want:?} in:\n{shown}");
    }

    // The input is kept as Alertmanager sent it.
    let raw = app
        .http
        .get(format!("{}/api/v1/executions/{rid}/input", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    let raw: Value = serde_json::from_slice(&raw.bytes().await.unwrap()).unwrap();
    assert_eq!(raw["version"], "4");
    assert_eq!(raw["receiver"], "alertflow");
    assert_eq!(raw["status"], "resolved");

    // Each delivery is an event that started its execution.
    let events = app.events("notify").await;
    for id in [fid, rid] {
        let ev = events
            .iter()
            .find(|e| e["executions"].as_array().unwrap().iter().any(|x| x == id))
            .unwrap_or_else(|| panic!("no event for {id}: {events:#?}"));
        assert_eq!(ev["outcome"], "started", "{ev:#}");
        assert_eq!(ev["status_code"], 202, "{ev:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_rule_fires_and_resolves_through_alertmanager() {
    let Some(am_bin) = e2e_binary("prometheus-alertmanager") else {
        return;
    };
    let Some(prom_bin) = e2e_binary("prometheus") else {
        return;
    };
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/notify.yaml"))
            .unwrap();
    app.apply_ok(&example).await;
    let receiver = format!(
        "receivers:\n- name: 'alertflow'\n  webhook_configs:\n  - send_resolved: true\n    \
         url: '{}/hooks/notify?x-api-key={key}'\n    max_alerts: 0\n",
        app.base
    );
    let tmp = tempfile::tempdir().unwrap();
    let (_am, am_url) = start_alertmanager(&am_bin, tmp.path(), &alertmanager_yml(&receiver)).await;

    // A rule that is always true; short intervals so the alert reaches Alertmanager quickly.
    let am_addr = am_url.trim_start_matches("http://");
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n- name: e2e\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n    \
         labels:\n      severity: warning\n",
    )
    .unwrap();
    let prom_cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  evaluation_interval: 1s\n  scrape_interval: 15s\nrule_files: [rules.yml]\n\
             alerting:\n  alertmanagers:\n  - static_configs:\n    - targets: ['{am_addr}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let args = [
        format!("--config.file={}", prom_cfg.display()),
        format!(
            "--storage.tsdb.path={}",
            tmp.path().join("prom-data").display()
        ),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--rules.alert.resend-delay=2s".to_string(),
    ];
    let log = tmp.path().join("prometheus.log");
    let mut prom = Proc::start("prometheus", &prom_bin, &args, log);
    prom.ready(&format!("http://127.0.0.1:{port}")).await;

    let is_ours = |i: &Value| i["alerts"][0]["labels"]["alertname"] == "AlwaysFiring";
    let firing = wait_long(&app, "firing", |i| is_ours(i) && i["status"] == "firing").await;
    assert_succeeded(&firing, "[FIRING] AlwaysFiring: 1 alert(s)");
    assert_eq!(
        firing["input"]["alerts"][0]["labels"]["severity"],
        "warning"
    );

    // Without Prometheus the alert's endsAt passes and Alertmanager resolves it by itself.
    drop(prom);
    let resolved = wait_long(&app, "resolved", |i| {
        is_ours(i) && i["status"] == "resolved"
    })
    .await;
    assert_succeeded(&resolved, "[RESOLVED] AlwaysFiring: 1 alert(s)");
    assert_ne!(firing["id"], resolved["id"]);
}
