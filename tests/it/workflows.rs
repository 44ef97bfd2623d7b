//! Workflow documents through the API and the CLI: apply, versions, get, validate.

use crate::common::*;
use serde_json::json;
use tokio::process::Command;

/// Runs the CLI without blocking the runtime that serves it.
async fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args(["--server", &app.base, "--token", &app.token])
        .args(args)
        .output()
        .await
        .unwrap()
}

const DOC: &str = "
# comments are kept in the stored source
name: disk-full
trigger: {type: prometheus, api_keys: [ops]}
steps:
  - {id: a, uses: transform, with: {value: 1}}
";

#[tokio::test]
async fn apply_rejects_bad_documents_with_paths() {
    let app = spawn_app().await;
    let cases = [
        ("unknown action", "name: x\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: pager.duty}\n", "steps[0].uses", "unknown action \"pager.duty\""),
        ("cycle", "name: x\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}, needs: [b]}\n  - {id: b, uses: transform, with: {value: 1}, needs: [a]}\n", "steps[0].needs", "cycle in needs: a -> b -> a"),
        ("duplicate id", "name: x\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n  - {id: a, uses: transform, with: {value: 2}}\n", "steps[1].id", "duplicate step id \"a\""),
        ("bad field", "name: x\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: http.request, with: {url: 'http://x', methd: GET}}\n", "steps[0].with.methd", "unknown input"),
        ("bad trigger", "name: x\ntrigger: {type: alertmanager}\nsteps: []\n", "trigger.type", "unknown variant `alertmanager`"),
    ];
    for (what, doc, path, message) in cases {
        let (status, v) = app.apply(doc).await;
        assert_eq!(status, 422, "{what}: {v}");
        assert_eq!(v["code"], "invalid_workflow", "{what}");
        let details = v["details"].as_array().unwrap();
        assert!(
            details
                .iter()
                .any(|d| d["path"] == path && d["message"].as_str().unwrap().contains(message)),
            "{what}: expected {path}: {message} in {v}"
        );
    }
    assert_eq!(app.get("/workflows").await, json!([]));
}

#[tokio::test]
async fn each_change_is_a_version_and_get_prints_the_source() {
    let app = spawn_app().await;
    let v1 = app.apply_ok(DOC).await;
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["created"], true);
    assert_eq!(v1["webhook_url"], format!("{}/hooks/disk-full", app.base));
    assert!(v1["warnings"][0]
        .as_str()
        .unwrap()
        .contains("no API key named \"ops\""));

    // Applying the same document again (as a GitOps loop does) makes no new version.
    let again = app.apply_ok(DOC).await;
    assert_eq!(
        (again["version"].clone(), again["unchanged"].clone()),
        (json!(1), json!(true))
    );
    let v2 = app.apply_ok(&DOC.replace("value: 1", "value: 2")).await;
    assert_eq!(v2["version"], 2);

    let versions = app.get("/workflows/disk-full/versions").await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let old = app.get("/workflows/disk-full?version=1").await;
    assert_eq!(old["document"]["steps"][0]["with"]["value"], 1);

    let out = cli(&app, &["workflows", "get", "disk-full"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("# comments are kept") && text.contains("value: 2"),
        "{text}"
    );

    let out = cli(&app, &["workflows", "list"]).await;
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("disk-full") && text.contains("prometheus"),
        "{text}"
    );

    // Delete, then a new apply starts after the old version numbers.
    assert!(cli(&app, &["workflows", "delete", "disk-full"])
        .await
        .status
        .success());
    let (status, _) = app
        .api(reqwest::Method::GET, "/workflows/disk-full", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(app.apply_ok(DOC).await["version"], 3);
}

#[tokio::test]
async fn validate_works_offline_and_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "name: x\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: nope}\n  - {id: a, uses: fail}\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args(["workflows", "validate", "-f", bad.to_str().unwrap()])
        .env("ALERTFLOW_SERVER", "http://127.0.0.1:1")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("steps[0].uses: unknown action \"nope\""),
        "{err}"
    );
    assert!(
        err.contains("steps[1].id: duplicate step id \"a\""),
        "{err}"
    );
    assert!(err.contains("steps[1].with.message: required"), "{err}");

    // For editors and scripts: the same problems as JSON, each with its path.
    let out = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "-o",
            "json",
            "workflows",
            "validate",
            "-f",
            bad.to_str().unwrap(),
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    let expected = json!({"path": "steps[0].uses", "message": "unknown action \"nope\" (known: alertmanager.silence, email.send, fail, http.request, jira.issue, msteams.message, opsgenie.alert, pagerduty.event, prometheus.query, shell.exec, slack.message, transform)"});
    assert!(v["errors"].as_array().unwrap().contains(&expected), "{v}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/notify.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args(["workflows", "validate", "-f", example])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn keys_create_list_reveal_delete() {
    let app = spawn_app().await;
    let out = cli(&app, &["keys", "create", "ops"]).await;
    assert!(out.status.success());
    let value = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(value.starts_with("afk_") && value.len() > 40, "{value}");

    let out = cli(&app, &["keys", "reveal", "ops"]).await;
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), value);
    let out = cli(&app, &["-o", "json", "keys", "list"]).await;
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "ops");
    assert!(
        list[0].get("value").is_none(),
        "list never shows values: {list}"
    );

    let out = cli(&app, &["keys", "create", "ops"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a key named \"ops\" exists"));

    // The value is not in the database file in clear.
    let db = std::fs::read(app.data_dir().join("alertflow.db")).unwrap();
    assert!(!db.windows(value.len()).any(|w| w == value.as_bytes()));

    assert!(cli(&app, &["keys", "delete", "ops"]).await.status.success());
    app.apply_ok("name: n\ntrigger: {type: webhook}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n").await;
    let (status, v) = app.hook("n", &value, "{}").await;
    assert_eq!((status, v["code"].clone()), (401, json!("invalid_api_key")));
}

#[tokio::test]
async fn alertmanager_config_prints_the_receiver_block() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(DOC).await;
    let out = cli(&app, &["alertmanager-config", "disk-full", "--key", "ops"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "receivers:\n- name: 'alertflow'\n  webhook_configs:\n  - send_resolved: true\n    url: '{}/hooks/disk-full?x-api-key={key}'\n    max_alerts: 0\n",
        app.base
    );
    assert_eq!(text, expected);
}

#[tokio::test]
async fn a_restart_keeps_the_admin_token_and_everything_applied() {
    let app = spawn_app().await;
    let token = app.token.clone();
    let master_key = std::fs::read(app.data_dir().join("master.key")).unwrap();
    let key = app.create_key("ops").await;
    app.apply_ok(DOC).await;
    let dir = app.stop().await;

    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(app.token, token, "the first start's token stays the token");
    assert_eq!(
        std::fs::read(app.data_dir().join("master.key")).unwrap(),
        master_key
    );
    let revealed = app.get("/keys/ops/value").await;
    assert_eq!(revealed["value"], key, "still decrypts after a restart");
    assert_eq!(app.get("/workflows/disk-full").await["version"], 1);
}

#[tokio::test]
async fn webhook_urls_use_the_public_url() {
    let app =
        spawn_app_with(|c| c.public_url = Some("https://alertflow.example.com/".into())).await;
    let v = app.apply_ok(DOC).await;
    assert_eq!(
        v["webhook_url"],
        "https://alertflow.example.com/hooks/disk-full"
    );
}
