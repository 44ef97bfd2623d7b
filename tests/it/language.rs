//! The workflow language: waits, backoff, approvals, cancel and replay, foreach, alert memory
//! and the per-alert lock, throttling, schedules, run timeouts. Time is moved with the app's
//! clock, never slept through.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Runs each named `async fn(TestApp)` against a server on SQLite, and on PostgreSQL when
/// `ALERTFLOW_TEST_POSTGRES` names one.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::common::*;
            #[tokio::test]
            async fn sqlite() {
                super::$name(spawn_app().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = postgres_database().await {
                    let url = db.url.clone();
                    super::$name(spawn_app_with(|c| c.database_url = url).await).await;
                }
            }
        }
    )*};
}

on_both_stores!(
    approvals_decide_through_the_api_a_signed_link_and_the_cli,
    only_named_approvers_decide_through_the_api,
    cancel_stops_a_run_and_replay_runs_its_input_again,
    a_running_step_is_cancelled_at_once,
    foreach_runs_each_item_and_shows_each_status,
    alert_memory_and_the_per_alert_lock_close_what_the_firing_run_opened,
    a_resolved_notification_ends_a_wait_until_resolved,
    max_runs_holds_back_deliveries_and_records_them,
    a_schedule_fires_on_the_clock_and_lists_its_next_times,
    a_run_past_its_timeout_ends_timed_out,
);

fn step<'a>(ex: &'a Value, id: &str) -> &'a Value {
    ex["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {ex}"))
}

const MIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_wait_holds_no_worker_and_ends_on_the_clock() {
    // One worker: if the wait held it, the second run could not finish.
    let app = spawn_app_with(|c| c.workers = 1).await;
    app.apply_ok("name: slow\ntrigger: {type: manual}\nsteps:\n  - {id: pause, uses: wait, with: {duration: 5m}}\n  - {id: after, uses: transform, with: {value: done}}\n").await;
    app.apply_ok("name: quick\ntrigger: {type: manual}\nsteps:\n  - {id: only, uses: transform, with: {value: 1}}\n").await;
    let slow = app.start("slow", json!({})).await;
    let ex = app.reaches(&slow, "waiting").await;
    assert_eq!(step(&ex, "pause")["status"], "waiting");
    assert_eq!(step(&ex, "after")["status"], "pending");
    let quick = app.start("quick", json!({})).await;
    assert_eq!(app.finished(&quick).await["status"], "succeeded");
    assert_eq!(app.execution(&slow).await["status"], "waiting");

    app.clock.advance(5 * MIN);
    let ex = app.finished(&slow).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(step(&ex, "pause")["output"]["reason"], "elapsed");
    assert_eq!(step(&ex, "after")["output"], "done");
}

#[tokio::test]
async fn retries_back_off_on_the_clock_and_record_every_attempt() {
    let sink = recorder(503).await;
    let app = spawn_app().await;
    app.apply_ok(&format!(
        "name: flaky\ntrigger: {{type: manual}}\nsteps:\n  - {{id: call, uses: http.request, with: {{url: '{}/x'}}, retry: {{attempts: 3, backoff: 1m, max_backoff: 90s}}, timeout: 1h}}\n",
        sink.url
    ))
    .await;
    let id = app.start("flaky", json!({})).await;
    let ex = app.reaches(&id, "waiting").await;
    let call = step(&ex, "call");
    assert_eq!(call["status"], "waiting");
    assert_eq!(call["attempts"], 1);
    assert!(
        call["error"]
            .as_str()
            .unwrap()
            .contains("attempt 1 of 3 failed"),
        "{call}"
    );
    assert_eq!(sink.requests.lock().unwrap().len(), 1);

    // The first backoff is about a minute (with jitter): not over after 30s, over after 2m.
    app.clock.advance(MIN / 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.requests.lock().unwrap().len(), 1);
    app.clock.advance(2 * MIN);
    wait_for(|| async { (sink.requests.lock().unwrap().len() == 2).then_some(()) }).await;
    app.reaches(&id, "waiting").await;
    app.clock.advance(2 * MIN);
    let ex = app.finished(&id).await;
    assert_eq!(ex["status"], "failed");
    let call = step(&ex, "call");
    assert_eq!(call["attempts"], 3);
    let log = call["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a["attempt"], i + 1);
        assert!(a["error"].as_str().unwrap().contains("503"), "{a}");
    }
    assert_eq!(sink.requests.lock().unwrap().len(), 3);
}

async fn approvals_decide_through_the_api_a_signed_link_and_the_cli(app: TestApp) {
    app.apply_ok("name: gate\ntrigger: {type: manual}\nsteps:\n  - {id: ok, uses: approval, with: {message: restart db1?, timeout: 1h}}\n  - {id: act, uses: transform, with: {value: 'restarted by {{ steps.ok.output.by }}'}}\n").await;

    // Approved through the API: the next step runs.
    let a = app.start("gate", json!({})).await;
    let ex = app.reaches(&a, "waiting").await;
    let links = step(&ex, "ok")["output"].clone();
    assert_eq!(links["message"], "restart db1?");
    let (status, v) = app
        .api(
            Method::POST,
            &format!("/executions/{a}/approval"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let ex = app.finished(&a).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(step(&ex, "ok")["output"]["decision"], "approved");
    assert_eq!(step(&ex, "act")["output"], "restarted by admin");
    // Decided twice: refused, naming the first decision.
    let (status, v) = app
        .api(
            Method::POST,
            &format!("/executions/{a}/approval"),
            Some(json!({"decision": "deny", "step": "ok"})),
        )
        .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("already approved by admin"),
        "{v}"
    );

    // Denied through the signed link: a GET only shows a button; the POST decides.
    let b = app.start("gate", json!({})).await;
    let ex = app.reaches(&b, "waiting").await;
    let deny = step(&ex, "ok")["output"]["deny_url"]
        .as_str()
        .unwrap()
        .to_string();
    let page = app.http.get(&deny).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<form method=post>"));
    assert_eq!(app.execution(&b).await["status"], "waiting");
    let decided = app.http.post(&deny).send().await.unwrap();
    assert_eq!(decided.status(), 200);
    let ex = app.finished(&b).await;
    assert_eq!(ex["status"], "failed");
    assert_eq!(step(&ex, "ok")["output"]["decision"], "denied");
    assert_eq!(step(&ex, "ok")["error"], "denied by link");
    assert_eq!(step(&ex, "act")["status"], "skipped");
    // A tampered link is refused.
    let forged = format!("{}x", deny);
    assert_eq!(app.http.post(&forged).send().await.unwrap().status(), 404);

    // Approved from the CLI.
    let c = app.start("gate", json!({})).await;
    app.reaches(&c, "waiting").await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "--server",
            &app.base,
            "--token",
            &app.token,
            "executions",
            "approve",
            &c,
            "--comment",
            "go",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ex = app.finished(&c).await;
    assert_eq!(step(&ex, "ok")["output"]["comment"], "go");

    // No decision before the timeout: the step fails with the decision `timeout`.
    let d = app.start("gate", json!({})).await;
    app.reaches(&d, "waiting").await;
    app.clock.advance(61 * MIN);
    let ex = app.finished(&d).await;
    assert_eq!(step(&ex, "ok")["output"]["decision"], "timeout");
    assert!(step(&ex, "ok")["error"]
        .as_str()
        .unwrap()
        .contains("no decision within 1h"));
}

async fn only_named_approvers_decide_through_the_api(app: TestApp) {
    app.apply_ok("name: gate\ntrigger: {type: manual}\nsteps:\n  - {id: ok, uses: approval, with: {approvers: [alice]}}\n").await;
    let id = app.start("gate", json!({})).await;
    app.reaches(&id, "waiting").await;
    let (status, v) = app
        .api(
            Method::POST,
            &format!("/executions/{id}/approval"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["message"].as_str().unwrap().contains("alice"), "{v}");
    // A step that is not waiting cannot be decided.
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/executions/{id}/approval"),
            Some(json!({"decision": "approve", "step": "nope"})),
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn waits_and_approvals_survive_a_restart() {
    let app = spawn_app().await;
    app.apply_ok("name: w\ntrigger: {type: manual}\nsteps:\n  - {id: pause, uses: wait, with: {duration: 10m}}\n").await;
    app.apply_ok("name: g\ntrigger: {type: manual}\nsteps:\n  - {id: ok, uses: approval}\n")
        .await;
    let w = app.start("w", json!({})).await;
    let g = app.start("g", json!({})).await;
    app.reaches(&w, "waiting").await;
    app.reaches(&g, "waiting").await;
    let dir = app.stop().await;

    let app = spawn_app_in(dir, |c| c.clock.advance(11 * MIN)).await;
    let ex = app.finished(&w).await;
    assert_eq!(ex["status"], "succeeded");
    assert_eq!(app.execution(&g).await["status"], "waiting");
    let (status, _) = app
        .api(
            Method::POST,
            &format!("/executions/{g}/approval"),
            Some(json!({"decision": "approve"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(app.finished(&g).await["status"], "succeeded");
}

async fn cancel_stops_a_run_and_replay_runs_its_input_again(app: TestApp) {
    app.apply_ok("name: w\ntrigger: {type: manual}\nsteps:\n  - {id: pause, uses: wait, with: {duration: 1h}}\n").await;
    let id = app.start("w", json!({"n": 1})).await;
    app.reaches(&id, "waiting").await;
    let (status, v) = app
        .api(Method::POST, &format!("/executions/{id}/cancel"), None)
        .await;
    assert_eq!((status, v["status"].clone()), (202, json!("cancelled")));
    let ex = app.finished(&id).await;
    assert_eq!(ex["status"], "cancelled");
    assert_eq!(step(&ex, "pause")["status"], "cancelled");
    let (status, v) = app
        .api(Method::POST, &format!("/executions/{id}/cancel"), None)
        .await;
    assert_eq!(status, 409);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("already ended (cancelled)"),
        "{v}"
    );

    // Replay against the current version (2), then the recorded one (1), with the same input.
    app.apply_ok("name: w\ntrigger: {type: manual}\nsteps:\n  - {id: echo, uses: transform, with: {value: '{{ trigger.n }}'}}\n").await;
    let (status, v) = app
        .api(
            Method::POST,
            &format!("/executions/{id}/replay"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let again = app.finished(v["executions"][0].as_str().unwrap()).await;
    assert_eq!(
        (again["version"].clone(), again["replay_of"].clone()),
        (json!(2), json!(id))
    );
    assert_eq!(again["input"], json!({"n": 1}));
    assert_eq!(step(&again, "echo")["output"], 1);
    let (_, v) = app
        .api(
            Method::POST,
            &format!("/executions/{id}/replay"),
            Some(json!({"version": "recorded"})),
        )
        .await;
    let old = app
        .reaches(v["executions"][0].as_str().unwrap(), "waiting")
        .await;
    assert_eq!(old["version"], 1);
}

async fn a_running_step_is_cancelled_at_once(app: TestApp) {
    // A server that never answers: only the cancel can end the step.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    app.apply_ok(&format!("name: hang\ntrigger: {{type: manual}}\nsteps:\n  - {{id: call, uses: http.request, with: {{url: '{url}'}}}}\n")).await;
    let id = app.start("hang", json!({})).await;
    wait_for(|| async {
        let ex = app.execution(&id).await;
        (step(&ex, "call")["status"] == "running").then_some(())
    })
    .await;
    let (status, v) = app
        .api(Method::POST, &format!("/executions/{id}/cancel"), None)
        .await;
    assert_eq!((status, v["status"].clone()), (202, json!("cancelling")));
    let ex = app.finished(&id).await;
    assert_eq!(ex["status"], "cancelled");
    assert_eq!(step(&ex, "call")["status"], "cancelled");
}

async fn foreach_runs_each_item_and_shows_each_status(app: TestApp) {
    let key = app.create_key("ops").await;
    app.apply_ok("name: each\ntrigger: {type: prometheus}\nsteps:\n  - id: names\n    uses: transform\n    foreach: '{{ trigger.alerts }}'\n    concurrency: 2\n    with: {value: '{{ index }}:{{ alert.labels.instance }}'}\n").await;
    let (status, v) = app
        .hook("each", &key, fixture("firing-two-alerts-truncated.json"))
        .await;
    assert_eq!(status, 202, "{v}");
    let ex = app.finished(v["executions"][0].as_str().unwrap()).await;
    let names = step(&ex, "names");
    assert_eq!(names["status"], "succeeded", "{ex}");
    let out = names["output"].as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[0].as_str().unwrap().starts_with("0:"), "{out:?}");
    assert!(names["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "succeeded"));

    // One item fails: the others still run, the step fails naming the item.
    app.apply_ok("name: some\ntrigger: {type: manual}\nsteps:\n  - {id: x, uses: transform, foreach: [0, 1, 2], with: {jq: 'if . == 1 then error(\"boom\") else . * 10 end', input: '{{ item }}'}}\n").await;
    let ex = app.finished(&app.start("some", json!({})).await).await;
    let x = step(&ex, "x");
    assert_eq!(x["status"], "failed");
    assert_eq!(x["output"], json!([0, null, 20]));
    assert_eq!(x["items"][1]["status"], "failed");
    assert!(x["error"].as_str().unwrap().contains("item 1"), "{x}");

    // Not a list: the step fails naming foreach.
    app.apply_ok("name: bad\ntrigger: {type: manual}\nsteps:\n  - {id: x, uses: transform, foreach: '{{ trigger }}', with: {value: 1}}\n").await;
    let ex = app.finished(&app.start("bad", json!({"a": 1})).await).await;
    assert!(
        step(&ex, "x")["error"]
            .as_str()
            .unwrap()
            .contains("foreach: expected a list, got a mapping"),
        "{ex}"
    );
}

async fn alert_memory_and_the_per_alert_lock_close_what_the_firing_run_opened(app: TestApp) {
    let key = app.create_key("ops").await;
    app.apply_ok(
        r#"name: ticket
trigger: {type: prometheus, split: per_alert, concurrency: per_alert}
steps:
  - id: open
    if: alert.status == "firing"
    uses: transform
    with: {value: "T-{{ alert.fingerprint }}"}
    remember: {ticket: "{{ steps.open.output }}"}
  - id: settle
    needs: [open]
    uses: wait
    with: {duration: 1m}
  - id: close
    needs: []
    if: alert.status == "resolved"
    uses: transform
    with: {value: "closing {{ memory.ticket }}"}
"#,
    )
    .await;
    let (_, fired) = app
        .hook("ticket", &key, fixture("prometheus-rule-firing.json"))
        .await;
    let first = fired["executions"][0].as_str().unwrap().to_string();
    app.reaches(&first, "waiting").await;
    let (_, resolved) = app
        .hook("ticket", &key, fixture("prometheus-rule-resolved.json"))
        .await;
    let second = resolved["executions"][0].as_str().unwrap().to_string();
    // The lock: the resolved run waits its turn while the firing run is not over.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.execution(&second).await["status"], "pending");

    app.clock.advance(2 * MIN);
    assert_eq!(app.finished(&first).await["status"], "succeeded");
    let ex = app.finished(&second).await;
    assert_eq!(
        step(&ex, "close")["output"],
        "closing T-2dc6ade02cfdd11b",
        "{ex}"
    );
}

async fn a_resolved_notification_ends_a_wait_until_resolved(app: TestApp) {
    let key = app.create_key("ops").await;
    app.apply_ok(
        r#"name: still-firing
trigger: {type: prometheus, split: per_alert}
steps:
  - id: grace
    if: alert.status == "firing"
    uses: wait
    with: {duration: 5m, until_resolved: true, on_resolved: cancel}
  - id: page
    uses: transform
    with: {value: paged}
"#,
    )
    .await;
    let (_, fired) = app
        .hook("still-firing", &key, fixture("prometheus-rule-firing.json"))
        .await;
    let first = fired["executions"][0].as_str().unwrap().to_string();
    app.reaches(&first, "waiting").await;
    app.hook(
        "still-firing",
        &key,
        fixture("prometheus-rule-resolved.json"),
    )
    .await;
    let ex = app.finished(&first).await;
    assert_eq!(ex["status"], "cancelled", "{ex}");
    assert_eq!(step(&ex, "grace")["output"]["reason"], "resolved");
    assert_eq!(step(&ex, "page")["status"], "cancelled");
    assert!(ex["error"].as_str().unwrap().contains("resolved"));
}

async fn max_runs_holds_back_deliveries_and_records_them(app: TestApp) {
    let key = app.create_key("ops").await;
    app.apply_ok("name: capped\ntrigger: {type: webhook, max_runs: {count: 2, per: 1h}}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n").await;
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let (status, v) = app.hook("capped", &key, format!("{{\"i\": {i}}}")).await;
        assert_eq!(status, 202);
        outcomes.push(v["outcome"].as_str().unwrap().to_string());
    }
    assert_eq!(outcomes, ["started", "started", "throttled"]);
    let events = app.events("capped").await;
    let held = events.iter().find(|e| e["outcome"] == "throttled").unwrap();
    assert!(
        held["reason"].as_str().unwrap().contains("max_runs"),
        "{held}"
    );
    assert_eq!(held["executions"], json!([]));
}

async fn a_schedule_fires_on_the_clock_and_lists_its_next_times(app: TestApp) {
    app.apply_ok("name: tick\ntrigger: {type: schedule, every: 1h}\nsteps:\n  - {id: a, uses: transform, with: {value: '{{ trigger.scheduled_at }}'}}\n").await;
    let next = app.get("/workflows/tick/schedule").await;
    let times = next["next"].as_array().unwrap();
    assert_eq!(times.len(), 10);
    assert!(
        times[0].as_str().unwrap().ends_with(":00:00.000Z"),
        "{next}"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(app.get("/executions?workflow=tick").await, json!([]));

    app.clock.advance(61 * MIN);
    let runs = wait_for(|| async {
        let list = app.get("/executions?workflow=tick").await;
        (!list.as_array().unwrap().is_empty()).then_some(list)
    })
    .await;
    let ex = app.finished(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(ex["trigger"]["type"], "schedule");
    assert_eq!(step(&ex, "a")["output"], times[0]);
    // Later ticks do not fire it again until the next time.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.get("/executions?workflow=tick")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn a_run_past_its_timeout_ends_timed_out(app: TestApp) {
    app.apply_ok("name: bounded\ntimeout: 2m\ntrigger: {type: manual}\nsteps:\n  - {id: pause, uses: wait, with: {duration: 1h}}\n  - {id: after, uses: transform, with: {value: 1}}\n").await;
    let id = app.start("bounded", json!({})).await;
    app.reaches(&id, "waiting").await;
    app.clock.advance(3 * MIN);
    let ex = app.finished(&id).await;
    assert_eq!(ex["status"], "timed_out", "{ex}");
    assert_eq!(step(&ex, "after")["status"], "cancelled");
    assert!(
        ex["error"].as_str().unwrap().contains("timeout of 2m"),
        "{ex}"
    );
}
