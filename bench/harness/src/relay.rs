//! The end-to-end ceiling: the flow that Node-RED and n8n run (check the key, render the
//! message, POST it to the sink, answer), as the least a Rust server can do for it: no store,
//! no engine, no workflow, nothing written to disk. Run on the same machine with the same
//! generator and sink, its executions/s is what a server doing nothing but the flow
//! reaches there, as `/healthz` is for ingest; alertflow's end-to-end figure is read against it.
//!
//! Like alertflow, it runs one tokio worker per core and answers 202 once the sink answered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Address to serve on, e.g. 127.0.0.1:8081; the flow is at POST /hooks/e2e
    #[arg(long)]
    listen: String,
    /// Where to POST each message, e.g. http://127.0.0.1:9000/sink
    #[arg(long)]
    sink_url: String,
    /// The key a delivery must present in X-API-Key
    #[arg(long)]
    api_key: String,
}

struct Relay {
    client: reqwest::Client,
    sink_url: String,
    api_key: String,
}

pub fn main(args: RelayArgs) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| format!("relay bind {}: {e}", args.listen))?;
        let relay = Arc::new(Relay {
            client: reqwest::Client::new(),
            sink_url: args.sink_url,
            api_key: args.api_key,
        });
        let app = axum::Router::new()
            .route("/hooks/e2e", axum::routing::post(receive))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .with_state(relay);
        axum::serve(listener, app)
            .await
            .map_err(|e| format!("relay: {e}"))?;
        Ok(true)
    })
}

async fn receive(
    State(relay): State<Arc<Relay>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    match headers.get("x-api-key") {
        Some(key) if key.as_bytes() == relay.api_key.as_bytes() => {}
        Some(_) => return (StatusCode::UNAUTHORIZED, r#"{"code":"invalid_api_key"}"#),
        None => return (StatusCode::UNAUTHORIZED, r#"{"code":"missing_api_key"}"#),
    }
    let Some(message) = message(&body) else {
        return (StatusCode::BAD_REQUEST, r#"{"code":"not_alertmanager"}"#);
    };
    let sent = relay
        .client
        .post(&relay.sink_url)
        .header(header::CONTENT_TYPE, "application/json")
        .body(message.to_string())
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => (StatusCode::ACCEPTED, r#"{"ok":true}"#),
        _ => (StatusCode::BAD_GATEWAY, r#"{"code":"sink_failed"}"#),
    }
}

/// The message of bench/workflows/e2e.yaml, from an Alertmanager body; `None` when the body
/// is not one.
fn message(body: &[u8]) -> Option<Value> {
    let body: Value = serde_json::from_slice(body).ok()?;
    let alerts = body.get("alerts")?.as_array()?;
    let common = body.get("commonLabels");
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    let name = common
        .and_then(|c| c.get("alertname"))
        .and_then(Value::as_str)
        .unwrap_or("alerts");
    Some(json!({
        "text": format!("[{}] {name}: {} alert(s)", status.to_uppercase(), alerts.len()),
        "bench_id": common.and_then(|c| c.get("bench_id")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_workflows_message() {
        let body = br#"{"status":"firing","commonLabels":{"alertname":"Disk","bench_id":"r1-7"},"alerts":[{},{}]}"#;
        assert_eq!(
            message(body),
            Some(json!({"text": "[FIRING] Disk: 2 alert(s)", "bench_id": "r1-7"}))
        );
        let unnamed = br#"{"status":"resolved","alerts":[]}"#;
        assert_eq!(
            message(unnamed).unwrap()["text"],
            "[RESOLVED] alerts: 0 alert(s)"
        );
        assert_eq!(message(b"[]"), None);
        assert_eq!(message(br#"{"alerts":{}}"#), None);
    }
}
