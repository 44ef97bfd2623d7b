//! The engine: step order, `needs` and `if`, templates, actions, retries, manual runs.

use crate::common::*;
use serde_json::{json, Value};

pub async fn run_manual(app: &TestApp, workflow: &str, input: Value) -> Value {
    let (status, v) = app
        .api(
            reqwest::Method::POST,
            &format!("/workflows/{workflow}/run"),
            Some(input),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    app.finished(v["executions"][0].as_str().unwrap()).await
}

pub fn step<'a>(ex: &'a Value, id: &str) -> &'a Value {
    ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn needs_and_if_decide_what_runs_and_what_is_skipped() {
    let app = spawn_app().await;
    app.apply_ok(
        "
name: graph
trigger: {type: manual}
steps:
  - {id: check, uses: transform, with: {value: '{{ trigger.severity }}'}}
  - {id: page, if: steps.check.output == 'critical', uses: transform, with: {value: paged}}
  - {id: after_page, needs: [page], uses: transform, with: {value: '{{ steps.page.output }}'}}
  - {id: always, uses: transform, with: {value: '{{ steps.page.status }}'}}
",
    )
    .await;
    let ex = run_manual(&app, "graph", json!({"severity": "warning"})).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(step(&ex, "page")["status"], "skipped");
    assert_eq!(
        step(&ex, "after_page")["status"],
        "skipped",
        "needs only a skipped step"
    );
    assert_eq!(
        step(&ex, "always")["status"],
        "succeeded",
        "follows in order, but does not need page"
    );
    assert_eq!(step(&ex, "always")["output"], "skipped");

    let ex = run_manual(&app, "graph", json!({"severity": "critical"})).await;
    assert_eq!(step(&ex, "after_page")["output"], "paged");
    assert_eq!(step(&ex, "always")["output"], "succeeded");
}

#[tokio::test]
async fn an_undefined_name_fails_the_step_naming_step_field_and_name() {
    let app = spawn_app().await;
    app.apply_ok(
        "
name: tpl
trigger: {type: manual}
steps:
  - {id: ok, uses: transform, with: {value: 1}}
  - {id: notify, uses: transform, with: {value: {text: 'team {{ trigger.labels.team }}'}}}
  - {id: never, uses: transform, with: {value: 2}}
",
    )
    .await;
    let ex = run_manual(&app, "tpl", json!({"labels": {"severity": "page"}})).await;
    assert_eq!(ex["status"], "failed");
    let err = step(&ex, "notify")["error"].as_str().unwrap();
    assert!(
        err.contains("\"notify\"")
            && err.contains("with.value.text")
            && err.contains("trigger.labels.team"),
        "{err}"
    );
    assert_eq!(step(&ex, "never")["status"], "skipped");
    assert!(
        ex["error"]
            .as_str()
            .unwrap()
            .contains("step \"notify\" failed"),
        "{ex}"
    );
}

#[tokio::test]
async fn http_request_sends_the_rendered_input_and_records_the_response() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    let target = recorder(200).await;
    app.apply_ok(&format!(
        "
name: call
trigger: {{type: prometheus, split: per_alert}}
steps:
  - id: post
    uses: http.request
    with:
      url: {}/tickets
      query: {{source: alertflow}}
      json:
        title: '{{{{ alert.labels.alertname }}}} on {{{{ alert.labels.instance }}}}'
        labels: '{{{{ alert.labels }}}}'
  - {{id: id, uses: transform, with: {{value: '{{{{ steps.post.output.body.id }}}}'}}}}
",
        target.url
    ))
    .await;
    let (_, v) = app
        .hook("call", &key, fixture("firing-two-alerts-truncated.json"))
        .await;
    let ids = v["executions"].as_array().unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        let ex = app.finished(id.as_str().unwrap()).await;
        assert_eq!(ex["status"], "succeeded", "{ex}");
        let post = step(&ex, "post");
        assert_eq!(post["output"]["status"], 200);
        assert_eq!(post["output"]["body"]["ok"], true);
        assert!(
            post["input"]["json"]["labels"].is_object(),
            "a lone expression keeps its type"
        );
        assert_eq!(step(&ex, "id")["output"], "T-1");
    }
    let seen = target.requests.lock().unwrap().clone();
    let mut titles: Vec<String> = seen
        .iter()
        .map(|(_, body)| body["title"].as_str().unwrap().to_string())
        .collect();
    titles.sort();
    assert_eq!(titles, vec!["DiskFull on db1:9100", "DiskFull on db2:9100"]);
    assert!(
        seen[0].0.starts_with("/tickets?source=alertflow"),
        "{}",
        seen[0].0
    );
}

#[tokio::test]
async fn transient_failures_are_retried_and_every_attempt_counted() {
    let app = spawn_app().await;
    let down = recorder(503).await;
    let refused = recorder(400).await;
    app.apply_ok(&format!(
        "
name: retry
trigger: {{type: manual}}
steps:
  - {{id: flaky, uses: http.request, with: {{url: '{}'}}, retry: {{attempts: 3, backoff: 10ms}}, on_error: continue}}
  - {{id: bad, uses: http.request, with: {{url: '{}'}}, retry: {{attempts: 3, backoff: 10ms}}}}
",
        down.url, refused.url
    ))
    .await;
    let ex = run_manual(&app, "retry", json!({})).await;
    let flaky = step(&ex, "flaky");
    assert_eq!(
        (flaky["status"].clone(), flaky["attempts"].clone()),
        (json!("failed"), json!(3))
    );
    assert_eq!(flaky["output"]["status"], 503, "the last response is kept");
    assert_eq!(down.requests.lock().unwrap().len(), 3);
    // A 4xx will not get better by trying again.
    assert_eq!(step(&ex, "bad")["attempts"], 1);
    assert_eq!(refused.requests.lock().unwrap().len(), 1);
    assert_eq!(ex["status"], "failed");
}

#[tokio::test]
async fn an_execution_keeps_the_version_it_ran() {
    let app = spawn_app().await;
    let doc = "name: v\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: one}}\n";
    app.apply_ok(doc).await;
    let first = run_manual(&app, "v", json!({})).await;
    app.apply_ok(&doc.replace("one", "two")).await;
    let second = run_manual(&app, "v", json!({})).await;
    assert_eq!(
        (
            first["version"].clone(),
            step(&first, "a")["output"].clone()
        ),
        (json!(1), json!("one"))
    );
    assert_eq!(
        (
            second["version"].clone(),
            step(&second, "a")["output"].clone()
        ),
        (json!(2), json!("two"))
    );
    // Still readable with its own document after the workflow changed.
    let again = app.execution(first["id"].as_str().unwrap()).await;
    assert_eq!(step(&again, "a")["output"], "one");
    // The list has the same shape as one execution, newest first; `summary` leaves out the rest.
    let list = app.get("/executions?workflow=v").await;
    assert_eq!(list, json!([second, again]));
    let summary = app.get("/executions?workflow=v&summary=true").await;
    assert!(
        summary[0].get("input").is_none() && summary[0].get("steps").is_none(),
        "{summary}"
    );
}

#[tokio::test]
async fn run_wait_follows_the_run_and_fails_when_it_fails() {
    let app = spawn_app().await;
    app.apply_ok("name: ok\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: '{{ trigger.x }}'}}\n").await;
    app.apply_ok("name: boom\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: fail, with: {message: 'disk {{ trigger.x }} is full'}}\n").await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.json");
    std::fs::write(&input, r#"{"x": "sda"}"#).unwrap();
    let run = |wf: &'static str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_alertflow"))
            .args([
                "--server",
                &app.base,
                "--token",
                &app.token,
                "run",
                wf,
                "--input",
                input.to_str().unwrap(),
                "--wait",
            ])
            .output()
    };
    let ok = run("ok").await.unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = String::from_utf8(ok.stdout).unwrap();
    assert!(text.contains("succeeded"), "{text}");
    let boom = run("boom").await.unwrap();
    assert!(!boom.status.success());
    let text = String::from_utf8(boom.stdout).unwrap();
    assert!(text.contains("disk sda is full"), "{text}");
}

#[tokio::test]
async fn a_long_step_keeps_its_lease_and_runs_once() {
    // Leases of 1s: the step takes longer, and the heartbeat must keep the job.
    let app = spawn_app_with(|c| c.job_lease = std::time::Duration::from_secs(1)).await;
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let slow = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
            "done"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });
    app.apply_ok(&format!("name: slow\ntrigger: {{type: manual}}\nsteps:\n  - {{id: wait, uses: http.request, with: {{url: '{url}'}}}}\n"))
        .await;
    let ex = run_manual(&app, "slow", json!({})).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(step(&ex, "wait")["attempts"], 1);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn requests_to_refused_destinations_fail_before_connecting() {
    // By default only link-local (the cloud metadata address) is refused.
    let app = spawn_app().await;
    app.apply_ok("name: meta\ntrigger: {type: manual}\nsteps:\n  - {id: steal, uses: http.request, with: {url: 'http://169.254.169.254/latest/meta-data/'}}\n").await;
    let ex = run_manual(&app, "meta", json!({})).await;
    let err = step(&ex, "steal")["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("destination 169.254.169.254 is not allowed"),
        "{err}"
    );

    // With a list, only what it names: a name that resolves elsewhere is refused too.
    let sink = recorder(200).await;
    let port = sink.url.rsplit(':').next().unwrap().to_string();
    let app = spawn_app_with(|c| {
        c.destinations =
            alertflow::actions::destinations::Destinations::parse("10.0.0.0/8").unwrap()
    })
    .await;
    app.apply_ok(&format!("name: inside\ntrigger: {{type: manual}}\nsteps:\n  - {{id: by_name, uses: http.request, with: {{url: 'http://localhost:{port}/'}}, on_error: continue}}\n  - {{id: by_ip, uses: http.request, with: {{url: 'http://127.0.0.1:{port}/'}}}}\n")).await;
    let ex = run_manual(&app, "inside", json!({})).await;
    assert!(
        step(&ex, "by_name")["error"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{ex}"
    );
    assert!(
        step(&ex, "by_ip")["error"]
            .as_str()
            .unwrap()
            .contains("destination 127.0.0.1 is not allowed"),
        "{ex}"
    );
    assert!(sink.requests.lock().unwrap().is_empty());
}

/// A run reads its trigger body two ways: templates see it as `trigger` (and `alert`), and a
/// jq program without `input` gets it as JSON, which is built only when asked for.
#[tokio::test]
async fn templates_and_jq_read_the_same_trigger_body() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    for split in ["per_notification", "per_alert"] {
        let alert = match split {
            "per_alert" => "        alert: '{{ alert.labels.instance }}'\n",
            _ => "",
        };
        app.apply_ok(&format!(
            "
name: read-{split}
trigger: {{type: prometheus, split: {split}}}
steps:
  - id: jq
    uses: transform
    with: {{jq: '{{receiver, count: (.alerts | length), first: .alerts[0].labels.instance}}'}}
  - id: jinja
    uses: transform
    with:
      value:
        receiver: '{{{{ trigger.receiver }}}}'
        count: '{{{{ trigger.alerts | length }}}}'
        first: '{{{{ trigger.alerts[0].labels.instance }}}}'
        labels: '{{{{ trigger.commonLabels | list }}}}'
{alert}"
        ))
        .await;
        let body = fixture("firing-two-alerts-truncated.json");
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let (status, v) = app.hook(&format!("read-{split}"), &key, body).await;
        assert_eq!(status, 202, "{v}");
        let ids = v["executions"].as_array().unwrap();
        assert_eq!(ids.len(), if split == "per_alert" { 2 } else { 1 });
        let mut alerts = Vec::new();
        for id in ids {
            let ex = app.finished(id.as_str().unwrap()).await;
            assert_eq!(ex["status"], "succeeded", "{ex}");
            let expected = serde_json::json!({
                "receiver": sent["receiver"],
                "count": 2,
                "first": sent["alerts"][0]["labels"]["instance"],
            });
            assert_eq!(step(&ex, "jq")["output"], expected, "{split}");
            let jinja = &step(&ex, "jinja")["output"];
            assert_eq!(jinja["receiver"], expected["receiver"], "{split}");
            assert_eq!(jinja["count"], 2, "{split}");
            assert_eq!(jinja["first"], expected["first"], "{split}");
            // Keys come sorted, as they did when the body went through a JSON tree first.
            let mut keys: Vec<String> = sent["commonLabels"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            keys.sort();
            assert_eq!(jinja["labels"], serde_json::json!(keys), "{split}");
            alerts.push(jinja["alert"].as_str().unwrap_or("none").to_string());
        }
        alerts.sort();
        let expected: Vec<&str> = if split == "per_alert" {
            vec!["db1:9100", "db2:9100"]
        } else {
            vec!["none"]
        };
        assert_eq!(alerts, expected);
    }
}
