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
