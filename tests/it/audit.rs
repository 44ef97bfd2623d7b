//! The audit log: who changed what through the API, and who revealed a key.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_change_and_key_reveal_is_recorded_with_its_author() {
    let app = spawn_app().await;
    app.create_key("ops").await;
    let (status, _) = app.api(Method::GET, "/keys/ops/value", None).await;
    assert_eq!(status, 200);
    app.apply_ok("name: audited\ntrigger: {type: manual}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n").await;
    let (status, _) = app
        .api(
            Method::PUT,
            "/secrets/TOKEN",
            Some(json!({"value": "hunter2-secret"})),
        )
        .await;
    assert_eq!(status, 201);
    // Refused changes are not changes.
    let (status, _) = app
        .apply("name: audited\ntrigger: {type: nope}\nsteps: []\n")
        .await;
    assert_eq!(status, 422);
    let (status, _) = app.api(Method::DELETE, "/keys/ops", None).await;
    assert_eq!(status, 204);

    let log = app.get("/audit").await;
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "admin");
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected = [
        ("DELETE /api/v1/keys/{name}", "/api/v1/keys/ops", ""),
        ("PUT /api/v1/secrets/{name}", "/api/v1/secrets/TOKEN", ""),
        (
            "POST /api/v1/workflows",
            "/api/v1/workflows",
            "workflow audited version 1",
        ),
        (
            "GET /api/v1/keys/{name}/value",
            "/api/v1/keys/ops/value",
            "",
        ),
        ("POST /api/v1/keys", "/api/v1/keys", "key ops"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, t, d)| (a.to_string(), t.to_string(), d.to_string()))
        .collect();
    assert_eq!(entries, expected);
    assert!(
        !log.to_string().contains("hunter2"),
        "no value is ever logged"
    );
}

/// Every API route is described in the OpenAPI document, so that clients generated from it
/// are complete: a route added without its description fails here.
#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut missing = Vec::new();
    for route in alertflow::http::route_table() {
        let path = format!("/api/v1{}", route.path);
        let method = route.method.as_str().to_ascii_lowercase();
        if doc["paths"][&path][&method].is_null() {
            missing.push(format!("{} {path}", route.method));
        }
    }
    assert!(missing.is_empty(), "not in openapi.json: {missing:?}");
    assert!(doc["paths"]["/api/v1/session"]["post"].is_object());
}

/// Users and tokens from the command line: an admin creates an editor, who makes a token for
/// scripts; the token acts with the editor's role.
#[tokio::test]
async fn users_and_tokens_from_the_cli() {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let cli = |token: &str, args: &[&str], stdin: Option<&str>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertflow"));
        cmd.args(["--server", &app.base, "--token", token])
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = stdin.map(str::to_string);
        async move {
            let mut child = cmd.spawn().unwrap();
            let mut pipe = child.stdin.take().unwrap();
            if let Some(text) = input {
                pipe.write_all(text.as_bytes()).await.unwrap();
            }
            drop(pipe);
            let out = child.wait_with_output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        }
    };
    let (ok, _, err) = cli(
        &app.token,
        &["users", "create", "eve", "--role", "editor"],
        Some("a long enough password\n"),
    )
    .await;
    assert!(ok, "{err}");
    let (ok, listed, _) = cli(&app.token, &["users", "list"], None).await;
    assert!(
        ok && listed.contains("eve") && listed.contains("editor"),
        "{listed}"
    );

    // Eve signs in with that password and makes a token for the CLI.
    let session = app
        .http
        .post(format!("{}/api/v1/session", app.base))
        .json(&json!({"name": "eve", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200);
    let (ok, _, err) = cli(&app.token, &["tokens", "create", "admin-ci"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&app.token, &["users", "set-role", "eve", "viewer"], None).await;
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&app.token, &["users", "set-role", "eve", "editor"], None).await;
    assert!(ok, "{err}");
    // Tokens belong to whoever creates them: eve makes hers, signed in.
    let cookie = session
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = session.json::<serde_json::Value>().await.unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let minted: serde_json::Value = app
        .http
        .post(format!("{}/api/v1/tokens", app.base))
        .header("cookie", cookie)
        .header("x-csrf-token", csrf)
        .json(&json!({"name": "laptop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let eve_token = minted["value"].as_str().unwrap().to_string();
    let (ok, listed, _) = cli(&eve_token, &["tokens", "list"], None).await;
    assert!(ok && listed.contains("laptop"), "{listed}");
    let (ok, _, err) = cli(&eve_token, &["users", "list"], None).await;
    assert!(
        !ok && err.contains("admin"),
        "an editor cannot manage users: {err}"
    );
    let (ok, _, err) = cli(
        &app.token,
        &["users", "reset-password", "eve"],
        Some("another long password\n"),
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&app.token, &["users", "delete", "eve"], None).await;
    assert!(ok && out.contains("deleted"), "{err}");
    let (ok, _, _) = cli(&eve_token, &["tokens", "list"], None).await;
    assert!(!ok, "a deleted user's token stops working");
}
