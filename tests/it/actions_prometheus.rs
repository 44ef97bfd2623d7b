//! `prometheus.query` and `alertmanager.silence` against the real Debian `prometheus` and
//! `prometheus-alertmanager`, on free loopback ports. Skipped, with a message, when they are
//! not installed (ALERTFLOW_E2E=require makes that a failure).

use crate::alertmanager_e2e::{free_port, start_alertmanager, Proc};
use crate::common::*;
use crate::standin::*;
use serde_json::{json, Value};
use std::path::Path;

/// Prometheus scraping itself every second, so `up` has a sample soon after start.
pub async fn start_prometheus(bin: &Path, dir: &Path) -> (Proc, String) {
    let cfg = dir.join("prometheus.yml");
    let port = free_port();
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n\
             - job_name: prometheus\n  static_configs:\n  - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .unwrap();
    let args = [
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
    ];
    let mut p = Proc::start("prometheus", bin, &args, dir.join("prometheus.log"));
    let url = format!("http://127.0.0.1:{port}");
    p.ready(&url).await;
    (p, url)
}

async fn query(url: &str, extra: Value) -> Result<Value, alertflow::actions::ActionError> {
    let mut with = json!({"url": url});
    with.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    run_action("prometheus.query", with).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_query_instant_range_and_errors() {
    let Some(bin) = e2e_binary("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_prom, url) = start_prometheus(&bin, tmp.path()).await;

    let out = query(&url, json!({"query": "vector(42)"})).await.unwrap();
    assert_eq!(out["resultType"], "vector");
    assert_eq!(
        out["result"][0]["value"][1], "42",
        "the API's result is kept"
    );
    assert_eq!(out["value"], 42);

    let out = query(&url, json!({"query": "scalar(vector(7.5))", "time": "now"}))
        .await
        .unwrap();
    assert_eq!(
        (out["resultType"].as_str(), out["value"].as_f64()),
        (Some("scalar"), Some(7.5))
    );

    let two = r#"label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")"#;
    let out = query(&url, json!({"query": two})).await.unwrap();
    assert_eq!(out["result"].as_array().unwrap().len(), 2);
    assert_eq!(out["value"], Value::Null, "two samples have no one value");

    let out = query(
        &url,
        json!({"query": "vector(3)", "start": "1m", "step": "15s"}),
    )
    .await
    .unwrap();
    assert_eq!(out["resultType"], "matrix");
    let points = out["result"][0]["values"].as_array().unwrap();
    assert!(points.len() >= 4, "a minute at 15s steps: {points:?}");
    assert!(points.iter().all(|p| p[1] == "3"));

    // Prometheus's own error comes back as the step's, with its errorType.
    let err = query(&url, json!({"query": "sum(rate(x[5m])"}))
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("Prometheus query failed (HTTP 400, bad_data): "),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    let output = err.output.unwrap();
    assert_eq!(output["errorType"], "bad_data");
    assert!(
        output["error"].as_str().unwrap().contains("parse error"),
        "{output}"
    );

    let err = query(&url, json!({"query": "up", "start": "1m", "end": "2h"}))
        .await
        .unwrap_err();
    assert_eq!(err.message, "with.end: must be after start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_step_reads_the_value_of_a_query() {
    let Some(bin) = e2e_binary("prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_prom, url) = start_prometheus(&bin, tmp.path()).await;
    // Wait for the first self-scrape.
    wait_for(|| async {
        let out = query(&url, json!({"query": "up{job=\"prometheus\"}"}))
            .await
            .ok()?;
        (out["value"] == 1).then_some(())
    })
    .await;
    let app = spawn_app().await;
    app.apply_ok(&format!(
        "
name: up
trigger: {{type: manual}}
steps:
  - id: q
    uses: prometheus.query
    with: {{url: '{url}', query: 'up{{job=\"{{{{ trigger.job }}}}\"}}'}}
  - id: verdict
    uses: transform
    with: {{value: \"{{{{ 'up' if steps.q.output.value == 1 else 'down' }}}}\"}}
"
    ))
    .await;
    let ex = run_workflow(&app, "up", json!({"job": "prometheus"})).await;
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(
        step(&ex, "q")["output"]["result"][0]["metric"]["job"],
        "prometheus"
    );
    assert_eq!(step(&ex, "verdict")["output"], "up");
}

/// Alertmanager routing everything nowhere: these tests look at its API, not its deliveries.
const QUIET: &str = "route:\n  receiver: 'null'\nreceivers:\n- name: 'null'\n";

pub async fn post_alert(am: &str, labels: &Value) {
    let r = client()
        .post(format!("{am}/api/v2/alerts"))
        .json(&json!([{"labels": labels, "annotations": {"summary": "flapping"}}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// The alert's status as Alertmanager reports it: (state, silencedBy).
pub async fn alert_status(am: &str, alertname: &str) -> Option<(String, Vec<String>)> {
    let alerts: Value = client()
        .get(format!("{am}/api/v2/alerts"))
        .query(&[("filter", format!("alertname=\"{alertname}\""))])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let st = &alerts.get(0)?["status"];
    let by = st["silencedBy"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    Some((st["state"].as_str()?.to_string(), by))
}

pub async fn silence(am: &str, id: &str) -> Value {
    reqwest::get(format!("{am}/api/v2/silence/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_from_the_current_alert_silences_it_in_alertmanager() {
    let Some(bin) = e2e_binary("prometheus-alertmanager") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_am, am) = start_alertmanager(&bin, tmp.path(), QUIET).await;
    let labels = json!({"alertname": "Flapping", "instance": "web1:9100", "severity": "warning"});
    post_alert(&am, &labels).await;
    wait_for(|| async {
        alert_status(&am, "Flapping")
            .await
            .filter(|s| s.0 == "active")
    })
    .await;

    // No matchers: the current alert's labels.
    let scope = json!({"alert": {"labels": labels, "fingerprint": "x"}, "execution": {"id": "ex1", "workflow": "silence"}});
    let out = run_action_in(
        "alertmanager.silence",
        json!({"url": am, "duration": "1h"}),
        scope.clone(),
    )
    .await
    .unwrap();
    let id = out["silenceID"].as_str().unwrap().to_string();
    assert_eq!(out["url"], format!("{am}/#/silences/{id}"));

    let s = silence(&am, &id).await;
    assert_eq!(s["status"]["state"], "active", "{s:#}");
    assert_eq!(s["createdBy"], "alertflow");
    assert_eq!(
        s["comment"],
        "Silenced by alertflow workflow silence (execution ex1)"
    );
    let mut names: Vec<&str> = s["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["alertname", "instance", "severity"]);
    // An hour from when it was asked for (Alertmanager moves a past start to its own now).
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(t(&s["endsAt"]), t(&out["endsAt"]));
    assert_eq!((t(&out["endsAt"]) - t(&out["startsAt"])).num_minutes(), 60);

    // Alertmanager itself says the alert is silenced by it.
    let status = wait_for(|| async {
        alert_status(&am, "Flapping")
            .await
            .filter(|s| s.0 == "suppressed")
    })
    .await;
    assert_eq!(status.1, vec![id.clone()]);

    // list_alerts shows the same, through the action.
    let listed = run_action(
        "alertmanager.silence",
        json!({"url": am, "action": "list_alerts", "matchers": {"alertname": "Flapping"}}),
    )
    .await
    .unwrap();
    assert_eq!(listed["alerts"][0]["status"]["silencedBy"], json!([id]));
    let none = run_action(
        "alertmanager.silence",
        json!({"url": am, "action": "list_alerts", "matchers": {"alertname": "Other"}}),
    )
    .await
    .unwrap();
    assert_eq!(none["alerts"], json!([]));

    // Expire it: the alert is no longer silenced.
    let out = run_action(
        "alertmanager.silence",
        json!({"url": am, "action": "expire", "silence_id": id}),
    )
    .await
    .unwrap();
    assert_eq!(out["expired"], true);
    assert_eq!(silence(&am, &id).await["status"]["state"], "expired");
    wait_for(|| async {
        alert_status(&am, "Flapping")
            .await
            .filter(|s| s.0 == "active" && s.1.is_empty())
    })
    .await;

    // What Alertmanager refuses comes back as its words.
    let err = run_action(
        "alertmanager.silence",
        json!({"url": am, "matchers": [{"name": "", "value": "x"}], "comment": "c"}),
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .starts_with("Alertmanager request rejected (HTTP 400): "),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    let err = run_action("alertmanager.silence", json!({"url": am}))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "with.matchers: required (no current alert to take the labels of)"
    );
}
