//! `opsgenie.alert`: creates an alert (`POST /v2/alerts`), or acknowledges or closes one by
//! alias. With a current alert, `alias` defaults to its fingerprint, so the resolved run
//! closes what the firing run created.

use super::http_util::{send, DEFAULT_TIMEOUT};
use super::input::{field, Input};
use super::*;
use serde_json::json;

pub struct OpsgenieAlert;

const API_URL: &str = "https://api.opsgenie.com";
const SERVICE: &str = "Opsgenie";
/// Opsgenie's limit on `message`.
const MAX_MESSAGE: usize = 130;

#[async_trait]
impl Action for OpsgenieAlert {
    fn name(&self) -> &'static str {
        "opsgenie.alert"
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["api_key"],
            "properties": {
                "api_key": {"type": "string", "description": "The key of an API integration (sent as GenieKey); keep it in a secret."},
                "action": {"enum": ["create", "acknowledge", "close"], "description": "Default create."},
                "alias": {"type": "string", "description": "Deduplicates alerts and names one to acknowledge or close (default: the current alert's fingerprint)."},
                "message": {"type": "string", "description": "Create: the title, up to 130 characters (default: the alert's summary annotation, else its alertname)."},
                "description": {"type": "string"},
                "priority": {"enum": ["P1", "P2", "P3", "P4", "P5"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "details": {"type": "object", "description": "Key/value properties (default: the alert's labels)."},
                "responders": {"type": "array", "items": {"type": "object", "required": ["type"]},
                               "description": "e.g. [{type: team, name: ops}]"},
                "entity": {"type": "string"},
                "source": {"type": "string", "description": "Default alertflow."},
                "user": {"type": "string"},
                "note": {"type": "string"},
                "api_url": {"type": "string", "format": "uri", "description": "Default https://api.opsgenie.com (EU: https://api.eu.opsgenie.com)."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "result": {"type": "string", "description": "Request will be processed"},
                "requestId": {"type": "string", "description": "Look the outcome up at /v2/alerts/requests/ID."},
                "took": {"type": "number"},
                "alias": {"type": "string"}
            }
        })
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let action = input.str("action").unwrap_or("create");
        let key = input.required("api_key")?;
        let alias = input
            .str("alias")
            .or_else(|| alert_str(ctx, &["fingerprint"]));
        let base = input.str("api_url").unwrap_or(API_URL);
        let mut url = url::Url::parse(base).map_err(|e| field("api_url", e))?;
        let mut body = json!({"source": input.str("source").unwrap_or("alertflow")});
        for k in ["user", "note"] {
            if let Some(v) = input.str(k) {
                body[k] = v.into();
            }
        }
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|_| field("api_url", "cannot be a base URL"))?;
            path.pop_if_empty().extend(["v2", "alerts"]);
            if action != "create" {
                let alias = alias.ok_or_else(|| {
                    field(
                        "alias",
                        format!(
                            "required to {action} (no current alert to take the fingerprint of)"
                        ),
                    )
                })?;
                path.extend([alias, action]);
            }
        }
        if action == "create" {
            create_body(&input, ctx, alias, &mut body)?;
        } else {
            url.query_pairs_mut().append_pair("identifierType", "alias");
        }

        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let http = &ctx.clients.http;
        let auth = format!("GenieKey {key}");
        let reply = send(SERVICE, timeout, || {
            http.post(url.clone())
                .header("authorization", &auth)
                .json(&body)
        })
        .await?;
        let b = &reply.body;
        if !reply.is_success() {
            // {"message": "...", "errors": {"field": "why"}, "took", "requestId"}
            let mut detail = b["message"].as_str().unwrap_or_default().to_string();
            if let Some(errors) = b["errors"].as_object() {
                let list: Vec<String> = errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                    .collect();
                detail = format!("{detail} ({})", list.join("; "));
            }
            if detail.is_empty() {
                detail = reply.plain();
            }
            return Err(reply.error(SERVICE, detail.trim()));
        }
        Ok(
            json!({"result": b["result"], "requestId": b["requestId"], "took": b["took"], "alias": alias}),
        )
    }
}

fn create_body(
    input: &Input,
    ctx: &ActionContext<'_>,
    alias: Option<&str>,
    body: &mut Value,
) -> Result<(), ActionError> {
    let message = input
        .str("message")
        .or_else(|| alert_str(ctx, &["annotations", "summary"]))
        .or_else(|| alert_str(ctx, &["labels", "alertname"]))
        .ok_or_else(|| {
            field(
                "message",
                "required to create (no current alert to take it from)",
            )
        })?;
    body["message"] = message.chars().take(MAX_MESSAGE).collect::<String>().into();
    if let Some(a) = alias {
        body["alias"] = a.into();
    }
    for k in ["description", "priority", "entity"] {
        if let Some(v) = input.str(k) {
            body[k] = v.into();
        }
    }
    for k in ["tags", "responders"] {
        if let Some(v) = input.get(k) {
            body[k] = v.clone();
        }
    }
    // Opsgenie's details are a map of strings.
    let details = input
        .get("details")
        .or_else(|| current_alert(ctx).map(|a| &a["labels"]))
        .and_then(Value::as_object);
    if let Some(d) = details {
        let d: serde_json::Map<String, Value> = d
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), Value::String(v))
            })
            .collect();
        body["details"] = Value::Object(d);
    }
    Ok(())
}
