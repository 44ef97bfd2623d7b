//! `slack.message`: posts to Slack through an incoming webhook (`webhook_url`), or as a bot
//! with `chat.postMessage` (`token` and `channel`), as text and/or Block Kit `blocks`.

use super::http_util::{self, send, DEFAULT_TIMEOUT};
use super::input::Input;
use super::*;

pub struct SlackMessage;

const API_URL: &str = "https://slack.com/api";
const SERVICE: &str = "Slack";

/// `chat.postMessage` errors (answered with HTTP 200 and `ok: false`) worth another attempt.
const TRANSIENT_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// The message fields both APIs take, passed as the user wrote them.
const MESSAGE_FIELDS: &[&str] = &[
    "text",
    "blocks",
    "attachments",
    "thread_ts",
    "mrkdwn",
    "unfurl_links",
    "unfurl_media",
    "username",
    "icon_emoji",
    "icon_url",
];

#[async_trait]
impl Action for SlackMessage {
    fn name(&self) -> &'static str {
        "slack.message"
    }

    fn inputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "description": "Give webhook_url, or token and channel.",
            "properties": {
                "webhook_url": {"type": "string", "format": "uri",
                    "description": "An incoming-webhook URL (https://hooks.slack.com/services/...); keep it in a secret."},
                "token": {"type": "string", "description": "A bot token (xoxb-...) with chat:write, for chat.postMessage."},
                "channel": {"type": "string", "description": "Channel id or name, with token."},
                "text": {"type": "string", "description": "The message (mrkdwn); with blocks, the notification fallback."},
                "blocks": {"type": "array", "items": {"type": "object"}, "description": "Block Kit blocks."},
                "attachments": {"type": "array", "items": {"type": "object"}, "description": "Legacy attachments (coloured bars)."},
                "thread_ts": {"type": "string", "description": "Reply in the thread of this message ts."},
                "mrkdwn": {"type": "boolean"},
                "unfurl_links": {"type": "boolean"},
                "unfurl_media": {"type": "boolean"},
                "username": {"type": "string", "description": "Display name (chat:write.customize)."},
                "icon_emoji": {"type": "string"},
                "icon_url": {"type": "string", "format": "uri"},
                "api_url": {"type": "string", "format": "uri", "description": "Web API base (default https://slack.com/api)."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "ok": {"type": "boolean"},
                "channel": {"type": "string", "description": "Channel id (chat.postMessage only)."},
                "ts": {"type": "string", "description": "The message's timestamp id, for thread_ts (chat.postMessage only)."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let has = |k: &str| with.get(k).is_some_and(|v| !v.is_null());
        let mut out = Vec::new();
        match (has("webhook_url"), has("token")) {
            (true, true) => out.push(problem(
                "token",
                "give either webhook_url or token, not both",
            )),
            (false, false) => out.push(problem("webhook_url", "required (or token and channel)")),
            (false, true) if !has("channel") => out.push(problem("channel", "required with token")),
            _ => {}
        }
        if !has("text") && !has("blocks") && !has("attachments") {
            out.push(problem("text", "required (or blocks)"));
        }
        out
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let mut body = serde_json::Map::new();
        for k in MESSAGE_FIELDS {
            if let Some(v) = input.get(k) {
                body.insert(k.to_string(), v.clone());
            }
        }
        let http = &ctx.clients.http;

        if let Some(url) = input.str("webhook_url") {
            let reply = send(SERVICE, timeout, || http.post(url).json(&body)).await?;
            if !reply.is_success() {
                // Webhooks answer errors as a short text: invalid_payload, no_text, no_service...
                return Err(reply.error(SERVICE, reply.text().trim()));
            }
            return Ok(serde_json::json!({"ok": true}));
        }

        let token = input.required("token")?;
        body.insert("channel".into(), input.required("channel")?.into());
        let url = http_util::join(input.str("api_url").unwrap_or(API_URL), "/chat.postMessage");
        let reply = send(SERVICE, timeout, || {
            http.post(&url).bearer_auth(token).json(&body)
        })
        .await?;
        if !reply.is_success() {
            return Err(reply.error(SERVICE, reply.text().trim()));
        }
        let b = &reply.body;
        if b["ok"] != true {
            let code = b["error"].as_str().unwrap_or("unexpected answer");
            let e = ActionError::permanent(format!("Slack chat.postMessage: {code}"))
                .with_output(reply.record());
            return Err(ActionError {
                retryable: TRANSIENT_ERRORS.contains(&code),
                ..e
            });
        }
        Ok(serde_json::json!({"ok": true, "channel": b["channel"], "ts": b["ts"]}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_way_to_post_and_something_to_say() {
        let paths = |with: Value| save_problems("slack.message", &with);
        assert_eq!(
            paths(json!({})),
            vec![
                "webhook_url: required (or token and channel)",
                "text: required (or blocks)"
            ]
        );
        assert_eq!(
            paths(json!({"token": "x", "text": "hi"})),
            vec!["channel: required with token"]
        );
        assert_eq!(
            paths(json!({"token": "x", "channel": "c", "webhook_url": "https://h", "text": "t"})),
            vec!["token: give either webhook_url or token, not both"]
        );
        assert!(paths(json!({"webhook_url": "{{ secrets.SLACK }}", "blocks": []})).is_empty());
        assert_eq!(
            paths(json!({"webhook_url": "https://h", "text": "t", "blocks": {}})),
            vec!["blocks: must be array, not object"]
        );
    }
}
