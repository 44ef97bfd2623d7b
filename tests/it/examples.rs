//! The workflows in examples/, validated as they are and run end to end: through the trigger
//! with real Alertmanager bodies, against the stand-ins (and the real Prometheus and
//! Alertmanager where the example uses them). Until secrets render, the tests put the values
//! of `{{ secrets.X }}` into the document, and point base URLs at the stand-ins.

use crate::actions_chat::{slack, SLACK_HOOK_PATH};
use crate::actions_paging::{pagerduty, PD_KEY};
use crate::actions_prometheus::{alert_status, post_alert, start_prometheus};
use crate::alertmanager_e2e::start_alertmanager;
use crate::common::*;
use crate::standin::*;
use alertflow::actions::Registry;
use serde_json::{json, Value};

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// An example as a JSON document, with secrets given values and `with` inputs set per step.
fn example(file: &str, secrets: &[(&str, &str)], set: &[(&str, &str, Value)]) -> String {
    let mut src = std::fs::read_to_string(examples_dir().join(file)).unwrap();
    for (name, value) in secrets {
        src = src.replace(&format!("{{{{ secrets.{name} }}}}"), value);
    }
    assert!(
        !src.contains("secrets."),
        "{file}: a secret was left without a value"
    );
    let mut doc: Value = serde_yaml::from_str(&src).unwrap();
    for (id, key, value) in set {
        let steps = doc["steps"].as_array_mut().unwrap();
        let step = steps
            .iter_mut()
            .find(|s| s["id"] == *id)
            .unwrap_or_else(|| panic!("{file}: no step {id}"));
        step["with"][*key] = value.clone();
    }
    doc.to_string()
}

/// Each execution a delivery started, once finished.
async fn deliver(app: &TestApp, workflow: &str, key: &str, body: Vec<u8>) -> Vec<Value> {
    let (status, v) = app.hook(workflow, key, body).await;
    assert_eq!(status, 202, "{v}");
    let mut out = Vec::new();
    for id in v["executions"].as_array().unwrap() {
        out.push(app.finished(id.as_str().unwrap()).await);
    }
    out
}

#[test]
fn every_example_is_a_valid_workflow() {
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        if let Err(problems) = alertflow_domain::workflow::parse(&src, &Registry::builtin()) {
            panic!("{}: {problems:?}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 5, "examples found: {seen}");
}

#[tokio::test]
async fn pagerduty_example_pages_on_firing_and_resolves_on_resolved() {
    let (pd, incidents) = pagerduty().await;
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(&example(
        "pagerduty.yaml",
        &[("PD_ROUTING_KEY", PD_KEY)],
        &[("page", "api_url", json!(pd.url))],
    ))
    .await;

    let fired = deliver(
        &app,
        "pagerduty",
        &key,
        fixture("prometheus-rule-firing.json"),
    )
    .await;
    assert_eq!(fired[0]["status"], "succeeded", "{:#}", fired[0]);
    assert_eq!(
        step(&fired[0], "page")["output"]["dedup_key"],
        "2dc6ade02cfdd11b"
    );
    {
        let inc = incidents.lock().unwrap();
        let (status, payload) = &inc["2dc6ade02cfdd11b"];
        assert_eq!(status, "triggered");
        assert_eq!(payload["summary"], "AlwaysFiring: value is 1");
        assert_eq!(payload["severity"], "warning");
    }

    let resolved = deliver(
        &app,
        "pagerduty",
        &key,
        fixture("prometheus-rule-resolved.json"),
    )
    .await;
    assert_eq!(resolved[0]["status"], "succeeded", "{:#}", resolved[0]);
    assert_eq!(
        incidents.lock().unwrap()["2dc6ade02cfdd11b"].0,
        "resolved",
        "the same incident"
    );

    // Two alerts in one notification: two incidents, one per fingerprint.
    let two = deliver(
        &app,
        "pagerduty",
        &key,
        fixture("firing-two-alerts-truncated.json"),
    )
    .await;
    assert_eq!(two.len(), 2);
    let inc = incidents.lock().unwrap();
    for fp in ["1751650d45bf7d6b", "70bd263dc713630c"] {
        assert_eq!(inc[fp].0, "triggered", "{fp}");
    }
}

#[tokio::test]
async fn slack_example_posts_one_message_with_every_alert() {
    let s = slack().await;
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    let hook = format!("{}{SLACK_HOOK_PATH}", s.url);
    app.apply_ok(&example(
        "slack-notification.yaml",
        &[("SLACK_WEBHOOK_URL", &hook)],
        &[],
    ))
    .await;

    let ex = deliver(
        &app,
        "slack-notification",
        &key,
        fixture("firing-two-alerts-truncated.json"),
    )
    .await;
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0]["status"], "succeeded", "{:#}", ex[0]);
    let seen = s.seen();
    assert_eq!(seen.len(), 1, "one message for the notification");
    let msg = seen[0].json().unwrap();
    assert_eq!(msg["text"], "[FIRING] DiskFull: 2 alert(s)");
    assert_eq!(msg["blocks"][0]["text"]["text"], "[FIRING] DiskFull");
    assert_eq!(
        msg["blocks"][1]["text"]["text"],
        ":red_circle: *DiskFull* db1:9100: Disk &lt;full&gt; &amp; \"bad\"\n\
         :red_circle: *DiskFull* db2:9100: Disk &lt;full&gt; &amp; \"bad\"\n\
         …and 1 more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_example_silences_a_flapping_alert_and_says_so() {
    let (Some(am_bin), Some(prom_bin)) = (
        e2e_binary("prometheus-alertmanager"),
        e2e_binary("prometheus"),
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (_am, am) = start_alertmanager(
        &am_bin,
        tmp.path(),
        "route:\n  receiver: 'null'\nreceivers:\n- name: 'null'\n",
    )
    .await;
    let (_prom, prom) = start_prometheus(&prom_bin, tmp.path()).await;
    let s = slack().await;
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    let hook = format!("{}{SLACK_HOOK_PATH}", s.url);

    // The alert, as Alertmanager holds it.
    let body = fixture("prometheus-rule-firing.json");
    let labels = serde_json::from_slice::<Value>(&body).unwrap()["alerts"][0]["labels"].clone();
    post_alert(&am, &labels).await;

    let doc = |query: Option<&str>| {
        let mut set = vec![("flaps", "url", json!(prom)), ("silence", "url", json!(am))];
        if let Some(q) = query {
            set.push(("flaps", "query", json!(q)));
        }
        example(
            "silence-flapping.yaml",
            &[("SLACK_WEBHOOK_URL", &hook)],
            &set,
        )
    };
    // The example's own query, on a fresh Prometheus with no alert history: no flaps.
    app.apply_ok(&doc(None).replace("\"silence-flapping\"", "\"calm\""))
        .await;
    let calm = deliver(&app, "calm", &key, body.clone()).await;
    assert_eq!(calm[0]["status"], "succeeded", "{:#}", calm[0]);
    assert_eq!(step(&calm[0], "flaps")["output"]["result"], json!([]));
    assert_eq!(step(&calm[0], "silence")["status"], "skipped");
    assert_eq!(step(&calm[0], "tell")["status"], "skipped");
    assert!(s.seen().is_empty());

    // Flapping: a history Prometheus cannot have yet, given as a constant count.

    app.apply_ok(&doc(Some("sum(vector(4))"))).await;
    let ex = deliver(&app, "silence-flapping", &key, body).await;
    assert_eq!(ex[0]["status"], "succeeded", "{:#}", ex[0]);
    let id = step(&ex[0], "silence")["output"]["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let status = wait_for(|| async {
        alert_status(&am, "AlwaysFiring")
            .await
            .filter(|s| s.0 == "suppressed")
    })
    .await;
    assert_eq!(
        status.1,
        vec![id.clone()],
        "Alertmanager says our silence mutes it"
    );
    let text = s.seen()[0].json().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        format!(":mute: AlwaysFiring went active 4 times in the last hour; silenced for 1h: {am}/#/silences/{id}")
    );
}

#[tokio::test]
async fn restart_example_restarts_the_named_service_and_reports() {
    let s = slack().await;
    let app = spawn_app_with(|c| c.allow_shell = true).await;
    let key = app.create_key("ops").await;
    let hook = format!("{}{SLACK_HOOK_PATH}", s.url);

    // A stand-in systemctl: records its arguments; "broken" is a unit it cannot restart.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let fake = dir.path().join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$3\" = broken ]; then echo \"Failed to restart $3.service: Unit $3.service not found.\" >&2; exit 5; fi\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    app.apply_ok(&example(
        "restart-service.yaml",
        &[("SLACK_WEBHOOK_URL", &hook)],
        &[("restart", "command", json!(fake.to_str().unwrap()))],
    ))
    .await;

    let body = |alertname: &str, service: &str| {
        let mut b: Value = serde_json::from_slice(&fixture("prometheus-rule-firing.json")).unwrap();
        b["alerts"][0]["labels"] = json!({"alertname": alertname, "service": service});
        b["groupKey"] = json!(format!(
            "{{}}:{{alertname=\"{alertname}\", service=\"{service}\"}}"
        ));
        serde_json::to_vec(&b).unwrap()
    };
    let ok = deliver(&app, "restart-service", &key, body("ServiceDown", "nginx")).await;
    assert_eq!(ok[0]["status"], "succeeded", "{:#}", ok[0]);
    let bad = deliver(&app, "restart-service", &key, body("ServiceDown", "broken")).await;
    assert_eq!(step(&bad[0], "restart")["status"], "failed");
    assert_eq!(
        step(&bad[0], "report")["status"],
        "succeeded",
        "on_error: continue"
    );
    // Another alert is filtered out by `when`: nothing runs.
    let (_, v) = app
        .hook("restart-service", &key, body("DiskFull", "nginx"))
        .await;
    assert_eq!(v["outcome"], "filtered", "{v}");

    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "restart -- nginx\nrestart -- broken\n"
    );
    let texts: Vec<String> = s
        .seen()
        .iter()
        .map(|r| r.json().unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        texts,
        vec![
            ":white_check_mark: restarted nginx".to_string(),
            format!(
                ":x: could not restart broken: \"{}\" exited with 5: Failed to restart broken.service: Unit broken.service not found.",
                fake.display()
            ),
        ]
    );
}

#[tokio::test]
async fn jira_example_closes_on_resolve_the_issue_it_opened_on_firing() {
    let (j, issues) = crate::actions_jira::jira().await;
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    let doc = example(
        "jira-ticket.yaml",
        &[("JIRA_TOKEN", crate::actions_jira::JIRA_TOKEN)],
        &[
            ("open", "url", json!(j.url)),
            ("close", "url", json!(j.url)),
        ],
    );
    app.apply_ok(&doc).await;

    let fired = deliver(
        &app,
        "jira-ticket",
        &key,
        fixture("prometheus-rule-firing.json"),
    )
    .await;
    assert_eq!(fired[0]["status"], "succeeded", "{}", fired[0]);
    let opened = fired[0]["steps"][0]["output"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(issues.lock().unwrap()[&opened].status, "To Do");

    // The same alert fires again (a repeat): no second issue.
    let again = deliver(&app, "jira-ticket", &key, {
        let mut b: Value = serde_json::from_slice(&fixture("prometheus-rule-firing.json")).unwrap();
        b["groupKey"] = json!("{}:{alertname=\"AlwaysFiring\",repeat=\"1\"}");
        serde_json::to_vec(&b).unwrap()
    })
    .await;
    assert_eq!(again[0]["steps"][0]["status"], "skipped");
    assert_eq!(issues.lock().unwrap().len(), 1);

    let resolved = deliver(
        &app,
        "jira-ticket",
        &key,
        fixture("prometheus-rule-resolved.json"),
    )
    .await;
    assert_eq!(
        resolved[0]["steps"][1]["status"], "succeeded",
        "{}",
        resolved[0]
    );
    let issue = issues.lock().unwrap()[&opened].clone();
    assert_eq!(issue.status, "Done");
    assert!(
        issue.comments.iter().any(|c| c.starts_with("Resolved at")),
        "{issue:?}"
    );
}
