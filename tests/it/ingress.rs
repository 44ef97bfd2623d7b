//! The trigger: key forms, status codes, the 202 body, dedupe, split and when, real bodies.

use crate::common::*;
use serde_json::{json, Value};

const NOTIFY: &str = "
name: notify
trigger: {type: prometheus, api_keys: [ops]}
steps:
  - id: echo
    uses: transform
    with: {value: '{{ trigger.status }}'}
";

async fn app_with_notify() -> (TestApp, String) {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(NOTIFY).await;
    (app, key)
}

#[tokio::test]
async fn every_real_alertmanager_body_starts_a_run_with_its_bytes_kept() {
    let (app, key) = app_with_notify().await;
    let mut names: Vec<_> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);
    for name in names {
        let body = fixture(&name);
        let (status, answer) = app.hook("notify", &key, body.clone()).await;
        assert_eq!(status, 202, "{name}: {answer}");
        assert_eq!(answer["outcome"], "started", "{name}");
        let id = answer["executions"][0].as_str().unwrap();
        let ex = app.finished(id).await;
        assert_eq!(ex["status"], "succeeded", "{name}: {ex}");
        let expected: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(ex["steps"][0]["output"], expected["status"], "{name}");
        // byte for byte, through the raw endpoint
        let raw = app
            .http
            .get(format!("{}/api/v1/executions/{id}/input", app.base))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(raw.as_ref(), body.as_slice(), "{name}");
        assert_eq!(ex["input"], expected, "{name}");
        assert_eq!(ex["trigger"]["event_id"], answer["event_id"]);
    }
}

#[tokio::test]
async fn the_four_key_forms_are_accepted() {
    let (app, key) = app_with_notify().await;
    let url = format!("{}/hooks/notify", app.base);
    let body = |alertname: &str| {
        String::from_utf8(fixture("prometheus-rule-firing.json"))
            .unwrap()
            .replace("AlwaysFiring", alertname)
    };
    let sends = vec![
        app.http
            .post(format!("{url}?x-api-key={key}"))
            .body(body("q")),
        app.http
            .post(&url)
            .header("X-API-Key", &key)
            .body(body("h")),
        app.http.post(&url).bearer_auth(&key).body(body("b")),
        app.http
            .post(&url)
            .basic_auth("alertmanager", Some(&key))
            .body(body("p")),
    ];
    for req in sends {
        let resp = req
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        assert_eq!(v["outcome"], "started");
    }
    let keys = app.get("/keys").await;
    assert!(keys[0]["last_used_at"].is_string(), "{keys}");
}

#[tokio::test]
async fn bad_deliveries_get_their_status_and_nothing_accepted_is_lost() {
    let app = spawn_app_with(|c| c.max_body_bytes = 4096).await;
    let key = app.create_key("ops").await;
    let other = app.create_key("other").await;
    app.apply_ok(NOTIFY).await;

    // One good delivery first; it must survive everything below unchanged.
    let (status, first) = app
        .hook("notify", &key, fixture("prometheus-rule-firing.json"))
        .await;
    assert_eq!(status, 202);
    let first_ex = app.finished(first["executions"][0].as_str().unwrap()).await;

    let post = |path: String, body: Vec<u8>, ct: &'static str| {
        let req = app
            .http
            .post(format!("{}{path}", app.base))
            .header("content-type", ct)
            .body(body);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let good = fixture("prometheus-rule-firing.json");
    let not_am = String::from_utf8(good.clone())
        .unwrap()
        .replace(r#""groupKey""#, r#""groupKeyX""#);
    let bad_time = String::from_utf8(good.clone())
        .unwrap()
        .replace("2026-11-23T23:07:31.32Z", "noon");
    // (path, body, content type, status, error code, text the message contains)
    type Case<'a> = (String, Vec<u8>, &'a str, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "/hooks/notify".into(),
            good.clone(),
            "application/json",
            401,
            "missing_api_key",
            "x-api-key",
        ),
        (
            "/hooks/notify?x-api-key=nope".into(),
            good.clone(),
            "application/json",
            401,
            "invalid_api_key",
            "invalid API key",
        ),
        (
            format!("/hooks/notify?x-api-key={other}"),
            good.clone(),
            "application/json",
            403,
            "api_key_not_allowed",
            "\"other\"",
        ),
        (
            format!("/hooks/nosuch?x-api-key={key}"),
            good.clone(),
            "application/json",
            404,
            "not_found",
            "nosuch",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            b"hello".to_vec(),
            "text/plain",
            415,
            "not_json",
            "text/plain",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            b"{oops".to_vec(),
            "application/json",
            415,
            "not_json",
            "not JSON",
        ),
        (
            // A whole notification with more after it is not one JSON document.
            format!("/hooks/notify?x-api-key={key}"),
            [good.as_slice(), b" {}"].concat(),
            "application/json",
            415,
            "not_json",
            "trailing characters",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            b"[1,2]".to_vec(),
            "application/json",
            400,
            "not_alertmanager",
            "an array",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            not_am.into_bytes(),
            "application/json",
            400,
            "not_alertmanager",
            "groupKey",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            bad_time.into_bytes(),
            "application/json",
            400,
            "not_alertmanager",
            "alerts[0].startsAt",
        ),
        (
            format!("/hooks/notify?x-api-key={key}"),
            vec![b' '; 5000],
            "application/json",
            413,
            "body_too_large",
            "4096",
        ),
    ];
    for (path, body, ct, want_status, want_code, want_text) in &cases {
        let (status, v) = post(path.clone(), body.clone(), ct).await;
        assert_eq!(status, *want_status, "{path}: {v}");
        assert_eq!(v["code"], *want_code, "{path}: {v}");
        let msg = v["message"].as_str().unwrap();
        assert!(
            msg.contains(want_text),
            "{path}: {msg:?} should name {want_text:?}"
        );
    }

    // Each became a rejected event with its status and reason.
    let events = app.get("/events?limit=100").await;
    let rejected: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .collect();
    assert_eq!(rejected.len(), cases.len(), "{events}");
    assert!(rejected
        .iter()
        .all(|e| e["executions"] == json!([]) && e["reason"].is_string()));
    let mut codes: Vec<i64> = rejected
        .iter()
        .map(|e| e["status_code"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![400, 400, 400, 401, 401, 403, 404, 413, 415, 415, 415]
    );

    // Nothing accepted was lost or changed.
    let all = app.get("/executions").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        app.execution(first_ex["id"].as_str().unwrap()).await,
        first_ex
    );
}

#[tokio::test]
async fn duplicates_inside_the_window_start_nothing() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(&NOTIFY.replace("api_keys: [ops]", "api_keys: [ops], dedupe_window: 3s"))
        .await;
    let firing = fixture("firing-escaped-receiver-name.json");

    let (_, a) = app.hook("notify", &key, firing.clone()).await;
    assert_eq!(a["outcome"], "started", "{a}");
    // An HA peer sends the same notification; only annotations or order may differ.
    let peer = String::from_utf8(firing.clone())
        .unwrap()
        .replace(r#""annotations":{}"#, r#""annotations":{"x":"y"}"#);
    let (status, b) = app.hook("notify", &key, peer).await;
    assert_eq!(status, 202);
    assert_eq!(b["outcome"], "duplicate");
    assert_eq!(b["executions"], json!([]));
    // The resolved notification of the same group is not a duplicate.
    let (status, c) = app
        .hook(
            "notify",
            &key,
            fixture("resolved-escaped-receiver-name.json"),
        )
        .await;
    assert_eq!((status, &c["outcome"]), (202, &json!("started")), "{c}");
    // Neither is the same one once the window has passed.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (_, d) = app.hook("notify", &key, firing).await;
    assert_eq!(d["outcome"], "started");

    let events = app.events("notify").await;
    let dup = events.iter().find(|e| e["outcome"] == "duplicate").unwrap();
    assert!(dup["reason"]
        .as_str()
        .unwrap()
        .contains(a["event_id"].as_str().unwrap()));
    assert_eq!(app.get("/executions").await.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn split_per_alert_and_when_decide_what_runs() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(
        "
name: per-alert
trigger:
  type: prometheus
  split: per_alert
  when: alert.labels.instance != 'db2:9100'
steps:
  - {id: who, uses: transform, with: {value: '{{ alert.labels.instance }}'}}
",
    )
    .await;
    let (_, v) = app
        .hook(
            "per-alert",
            &key,
            fixture("firing-two-alerts-truncated.json"),
        )
        .await;
    assert_eq!(v["outcome"], "started");
    let ids = v["executions"].as_array().unwrap();
    assert_eq!(ids.len(), 1, "db2 is filtered out: {v}");
    let ex = app.finished(ids[0].as_str().unwrap()).await;
    assert_eq!(ex["steps"][0]["output"], "db1:9100");
    assert_eq!(ex["alert_index"], 0);

    // A notification where `when` holds for no alert is recorded as filtered.
    let only_db2 = String::from_utf8(fixture("prometheus-rule-firing.json"))
        .unwrap()
        .replace(
            r#""cluster":"test""#,
            r#""cluster":"test","instance":"db2:9100""#,
        );
    let (status, v) = app.hook("per-alert", &key, only_db2).await;
    assert_eq!(status, 202);
    assert_eq!(v["outcome"], "filtered");
    assert_eq!(v["executions"], json!([]));
    let events = app.events("per-alert").await;
    assert_eq!(events[0]["outcome"], "filtered");
    assert_eq!(events[0]["reason"], "trigger.when is false");

    // Without split, each notification is one run with every alert in `trigger`.
    app.apply_ok(&NOTIFY.replace("name: notify", "name: whole"))
        .await;
    let (_, v) = app
        .hook("whole", &key, fixture("firing-two-alerts-truncated.json"))
        .await;
    assert_eq!(v["executions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_webhook_trigger_takes_any_json() {
    let app = spawn_app().await;
    let key = app.create_key("ci").await;
    app.apply_ok(
        "
name: deploys
trigger: {type: webhook, api_keys: [ci]}
steps:
  - {id: first, uses: transform, with: {value: '{{ trigger[0].service }}'}}
",
    )
    .await;
    let (status, v) = app.hook("deploys", &key, r#"[{"service":"api"}]"#).await;
    assert_eq!(status, 202, "{v}");
    let ex = app.finished(v["executions"][0].as_str().unwrap()).await;
    assert_eq!(ex["trigger"]["type"], "webhook");
    assert_eq!(ex["steps"][0]["output"], "api");
}

#[tokio::test]
async fn the_api_wants_the_admin_token() {
    let app = spawn_app().await;
    for token in [None, Some("aft_wrong")] {
        let mut req = app.http.get(format!("{}/api/v1/workflows", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["code"], "unauthenticated");
    }
    let token_file = app.data_dir().join("admin-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let (app, key) = app_with_notify().await;
    let (_, v) = app
        .hook("notify", &key, fixture("prometheus-rule-firing.json"))
        .await;
    app.finished(v["executions"][0].as_str().unwrap()).await;
    app.hook("notify", &key, fixture("prometheus-rule-firing.json"))
        .await;
    app.hook("notify", "wrong", fixture("prometheus-rule-firing.json"))
        .await;
    for path in ["/healthz", "/readyz"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"alertflow_deliveries_total{outcome="started"} 1"#,
        r#"alertflow_deliveries_total{outcome="duplicate"} 1"#,
        r#"alertflow_deliveries_total{outcome="rejected"} 1"#,
        r#"alertflow_executions_total{status="succeeded"} 1"#,
        r#"alertflow_step_duration_seconds_count{action="transform",status="succeeded"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let app = spawn_app().await;
    let doc: Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/hooks/{workflow_id}",
        "/api/v1/keys",
        "/api/v1/workflows/{id}/run",
        "/api/v1/executions/{id}",
        "/api/v1/events",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(doc["components"]["schemas"]["ExecutionView"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn a_changed_key_or_workflow_counts_from_the_next_delivery() {
    // The webhook's lookup is cached in memory; every change must still show at once.
    let (app, key) = app_with_notify().await;
    // Each delivery a different notification, so none is a duplicate of another.
    let mut sent = 0;
    let mut body = || {
        sent += 1;
        String::from_utf8(fixture("prometheus-rule-firing.json"))
            .unwrap()
            .replace("23:07:31", &format!("23:07:{:02}", sent))
            .into_bytes()
    };
    let (status, v) = app.hook("notify", &key, body()).await;
    assert_eq!(status, 202, "{v}");
    let ex = app.finished(v["executions"][0].as_str().unwrap()).await;
    assert_eq!(ex["steps"][0]["output"], "firing");

    app.apply_ok(&NOTIFY.replace("trigger.status", "trigger.receiver"))
        .await;
    let (status, v) = app.hook("notify", &key, body()).await;
    assert_eq!(status, 202, "{v}");
    let ex = app.finished(v["executions"][0].as_str().unwrap()).await;
    assert_eq!(ex["version"], 2, "{ex}");
    assert_eq!(ex["steps"][0]["output"], "hook");

    // A key no longer allowed, then one deleted, is refused at its next delivery.
    let other = app.create_key("other").await;
    let (status, _) = app.hook("notify", &other, body()).await;
    assert_eq!(status, 403);
    app.apply_ok(&NOTIFY.replace("[ops]", "[ops, other]")).await;
    let (status, v) = app.hook("notify", &other, body()).await;
    assert_eq!(status, 202, "{v}");
    let (status, _) = app.api(reqwest::Method::DELETE, "/keys/ops", None).await;
    assert_eq!(status, 204);
    let (status, v) = app.hook("notify", &key, body()).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("invalid_api_key")),
        "{v}"
    );

    let (status, _) = app
        .api(reqwest::Method::DELETE, "/workflows/notify", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.hook("notify", &other, body()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_run_this_node_starts_at_once_is_stored_as_its_claim() {
    // With workers free, the node that takes a delivery runs it without claiming it from the
    // queue; what it stores must be what a claim leaves, so that a crash resumes the run and
    // a resolved notification's own run knows it is resolved.
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(
        r#"name: grace
trigger: {type: prometheus}
steps:
  - id: grace
    uses: wait
    with: {duration: 5m, until_resolved: true}
  - id: after
    uses: transform
    with: {value: done}
"#,
    )
    .await;
    let (status, v) = app
        .hook("grace", &key, fixture("prometheus-rule-resolved.json"))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["executions"][0].as_str().unwrap().to_string();
    let ex = app.finished(&id).await;
    assert_eq!(ex["status"], "succeeded", "{ex}");
    assert_eq!(ex["steps"][0]["output"]["reason"], "resolved", "{ex}");

    let (status, v) = app
        .hook("grace", &key, fixture("prometheus-rule-firing.json"))
        .await;
    assert_eq!(status, 202, "{v}");
    let id = v["executions"][0].as_str().unwrap().to_string();
    app.reaches(&id, "waiting").await;
    let db = rusqlite::Connection::open(app.data_dir().join("alertflow.db")).unwrap();
    let (claims, started): (i64, Option<i64>) = db
        .query_row(
            "SELECT claims, started_at FROM executions WHERE id = ? AND run_at IS NOT NULL",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(claims, 1, "claimed once, at ingest");
    assert!(started.is_some());
}
