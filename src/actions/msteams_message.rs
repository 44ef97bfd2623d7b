//! `msteams.message`: posts an Adaptive Card to a Teams Workflows URL (or a legacy incoming
//! webhook, which takes the same attachment form).

use super::http_util::{send, DEFAULT_TIMEOUT};
use super::input::Input;
use super::*;
use serde_json::json;

pub struct MsTeamsMessage;

const SERVICE: &str = "Microsoft Teams";

#[async_trait]
impl Action for MsTeamsMessage {
    fn name(&self) -> &'static str {
        "msteams.message"
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["webhook_url"],
            "properties": {
                "webhook_url": {"type": "string", "format": "uri",
                    "description": "The Workflows (\"Post to a channel when a webhook request is received\") or incoming-webhook URL; keep it in a secret."},
                "title": {"type": "string", "description": "Bold first line of the card."},
                "text": {"type": "string", "description": "The card's text (Markdown subset)."},
                "facts": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                          "description": "Name/value pairs shown as a FactSet (labels, say)."},
                "card": {"type": "object", "description": "A whole Adaptive Card, sent as is instead of title/text/facts."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "status": {"type": "integer", "description": "HTTP status (Workflows answer 202, webhooks 200)."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let has = |k: &str| with.get(k).is_some_and(|v| !v.is_null());
        if has("card") && (has("title") || has("text") || has("facts")) {
            return vec![problem(
                "card",
                "give either card or title/text/facts, not both",
            )];
        }
        if !has("card") && !has("title") && !has("text") {
            return vec![problem("text", "required (or title, or card)")];
        }
        vec![]
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let url = input.required("webhook_url")?;
        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let card = match input.get("card") {
            Some(card) => card.clone(),
            None => build_card(&input),
        };
        let body = json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": card,
            }]
        });
        let http = &ctx.clients.http;
        let reply = send(SERVICE, timeout, || http.post(url).json(&body)).await?;
        let text = reply.text();
        if !reply.is_success() {
            return Err(reply.error(SERVICE, text.trim()));
        }
        // Legacy webhooks answer "1"; some of their failures come back as 200 with a message.
        if reply.status == 200 && !text.is_empty() && text.trim() != "1" && !reply.body.is_object()
        {
            let retryable = text.contains("429") || text.contains("HTTP error 5");
            let e = ActionError::permanent(format!("{SERVICE}: {}", text.trim()))
                .with_output(reply.record());
            return Err(ActionError { retryable, ..e });
        }
        Ok(json!({"ok": true, "status": reply.status}))
    }
}

fn build_card(input: &Input) -> Value {
    let mut body = Vec::new();
    if let Some(title) = input.str("title") {
        body.push(json!({"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": true}));
    }
    if let Some(text) = input.str("text") {
        body.push(json!({"type": "TextBlock", "text": text, "wrap": true}));
    }
    if let Some(Value::Object(facts)) = input.get("facts") {
        let facts: Vec<Value> = facts
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                json!({"title": k, "value": v})
            })
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    })
}
