//! `pagerduty.event`: Events API v2 (`POST /v2/enqueue`): trigger, acknowledge or resolve an
//! alert by `dedup_key`. With a current alert, `dedup_key` defaults to its fingerprint, so the
//! resolved notification resolves the incident the firing one opened.

use super::http_util::{self, send, DEFAULT_TIMEOUT};
use super::input::{field, Input};
use super::*;
use serde_json::json;

pub struct PagerDutyEvent;

const API_URL: &str = "https://events.pagerduty.com";
const SERVICE: &str = "PagerDuty";
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];
/// PagerDuty refuses longer summaries; a truncated page beats no page.
const MAX_SUMMARY: usize = 1024;

#[async_trait]
impl Action for PagerDutyEvent {
    fn name(&self) -> &'static str {
        "pagerduty.event"
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["routing_key"],
            "properties": {
                "routing_key": {"type": "string", "description": "The 32-character integration key of an Events API v2 integration; keep it in a secret."},
                "event_action": {"enum": ["trigger", "acknowledge", "resolve"], "description": "Default trigger."},
                "dedup_key": {"type": "string", "description": "Identifies the alert across events (default: the current alert's fingerprint)."},
                "summary": {"type": "string", "description": "Trigger: the incident title (default: the alert's summary annotation, else its alertname)."},
                "source": {"type": "string", "description": "Trigger: the affected system (default: the alert's instance label, else alertflow)."},
                "severity": {"enum": SEVERITIES, "description": "Trigger: default the alert's severity label when it is one of these, else critical."},
                "timestamp": {"type": "string", "description": "Trigger: when it happened, RFC 3339 (default: the alert's startsAt)."},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"description": "Trigger: free-form details (default: the alert's labels and annotations)."},
                "links": {"type": "array", "items": {"type": "object", "required": ["href"], "properties": {"href": {"type": "string"}, "text": {"type": "string"}}}},
                "images": {"type": "array", "items": {"type": "object", "required": ["src"]}},
                "client": {"type": "string", "description": "Default alertflow."},
                "client_url": {"type": "string", "format": "uri", "description": "Default: the alert's generatorURL."},
                "api_url": {"type": "string", "format": "uri", "description": "Default https://events.pagerduty.com."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "status": {"type": "string", "description": "success"},
                "message": {"type": "string"},
                "dedup_key": {"type": "string", "description": "The key PagerDuty filed the event under."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        match static_str(with, "routing_key") {
            Some(k) if k.len() != 32 => vec![problem(
                "routing_key",
                format!(
                    "an Events API v2 integration key has 32 characters, this has {}",
                    k.len()
                ),
            )],
            _ => vec![],
        }
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let action = input.str("event_action").unwrap_or("trigger");
        let dedup_key = input
            .str("dedup_key")
            .or_else(|| alert_str(ctx, &["fingerprint"]));
        let mut event = json!({
            "routing_key": input.required("routing_key")?,
            "event_action": action,
        });
        match dedup_key {
            Some(k) => event["dedup_key"] = k.into(),
            None if action != "trigger" => {
                return Err(field(
                    "dedup_key",
                    format!("required to {action} (no current alert to take the fingerprint of)"),
                ))
            }
            None => {}
        }
        if action == "trigger" {
            event["payload"] = payload(&input, ctx)?;
            for k in ["links", "images"] {
                if let Some(v) = input.get(k) {
                    event[k] = v.clone();
                }
            }
            event["client"] = input.str("client").unwrap_or("alertflow").into();
            if let Some(u) = input
                .str("client_url")
                .or_else(|| alert_str(ctx, &["generatorURL"]))
            {
                event["client_url"] = u.into();
            }
        }

        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let url = http_util::join(input.str("api_url").unwrap_or(API_URL), "/v2/enqueue");
        let http = &ctx.clients.http;
        let reply = send(SERVICE, timeout, || http.post(&url).json(&event)).await?;
        if !reply.is_success() {
            // 400: {"status": "invalid event", "message": ..., "errors": [...]}
            let b = &reply.body;
            let mut detail = b["message"].as_str().unwrap_or_default().to_string();
            if let Some(errors) = b["errors"].as_array() {
                let errors: Vec<&str> = errors.iter().filter_map(Value::as_str).collect();
                detail = format!("{detail} ({})", errors.join("; "));
            }
            if detail.is_empty() {
                detail = reply.plain();
            }
            return Err(reply.error(SERVICE, detail.trim()));
        }
        let b = &reply.body;
        Ok(json!({
            "status": b["status"],
            "message": b["message"],
            "dedup_key": b.get("dedup_key").cloned().unwrap_or_else(|| json!(dedup_key)),
        }))
    }
}

/// The trigger's payload, defaults taken from the current alert.
fn payload(input: &Input, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
    let summary = input
        .str("summary")
        .or_else(|| alert_str(ctx, &["annotations", "summary"]))
        .or_else(|| alert_str(ctx, &["labels", "alertname"]))
        .ok_or_else(|| {
            field(
                "summary",
                "required to trigger (no current alert to take it from)",
            )
        })?;
    let summary: String = summary.chars().take(MAX_SUMMARY).collect();
    let severity = input.str("severity").unwrap_or_else(|| {
        alert_str(ctx, &["labels", "severity"])
            .filter(|s| SEVERITIES.contains(s))
            .unwrap_or("critical")
    });
    let source = input
        .str("source")
        .or_else(|| alert_str(ctx, &["labels", "instance"]))
        .unwrap_or("alertflow");
    let mut p = json!({"summary": summary, "source": source, "severity": severity});
    if let Some(t) = input
        .str("timestamp")
        .or_else(|| alert_str(ctx, &["startsAt"]))
    {
        p["timestamp"] = t.into();
    }
    for k in ["component", "group", "class"] {
        if let Some(v) = input.str(k) {
            p[k] = v.into();
        }
    }
    match (input.get("custom_details"), current_alert(ctx)) {
        (Some(d), _) => p["custom_details"] = d.clone(),
        (None, Some(a)) => {
            p["custom_details"] = json!({"labels": a["labels"], "annotations": a["annotations"]})
        }
        _ => {}
    }
    Ok(p)
}
