//! `slack.message` and `msteams.message` against stand-ins that check what Slack and Teams
//! check and answer as they document.

use crate::standin::*;
use serde_json::{json, Value};
use std::time::Duration;

pub const SLACK_TOKEN: &str = "xoxb-test-token";
pub const SLACK_HOOK_PATH: &str = "/services/T0001/B0001/secretpart";

/// Slack: incoming webhooks under /services/..., and the Web API's chat.postMessage.
pub async fn slack() -> StandIn {
    StandIn::start(|r| {
        if r.path.starts_with("/services/") {
            // Webhooks answer in plain text: "ok", or the error code.
            if r.path != SLACK_HOOK_PATH {
                return Answer::text(404, "no_service");
            }
            if r.method != "POST" {
                return Answer::text(405, "invalid_method");
            }
            let Some(body) = r.json() else {
                return Answer::text(400, "invalid_payload");
            };
            if ["text", "blocks", "attachments"]
                .iter()
                .all(|k| body.get(k).is_none())
            {
                return Answer::text(400, "no_text");
            }
            return Answer::text(200, "ok");
        }
        if r.path == "/api/chat.postMessage" && r.method == "POST" {
            // The Web API answers 200 with ok: false for its errors.
            let err = |e: &str| Answer::json(200, json!({"ok": false, "error": e}));
            match r.header("authorization") {
                None => return err("not_authed"),
                Some(a) if a != format!("Bearer {SLACK_TOKEN}") => return err("invalid_auth"),
                _ => {}
            }
            let Some(body) = r.json().filter(|_| r.is_json()) else {
                return err("invalid_arguments");
            };
            match body["channel"].as_str() {
                Some("#alerts") | Some("C0123") => {}
                _ => return err("channel_not_found"),
            }
            if body.get("text").is_none() && body.get("blocks").is_none() {
                return err("no_text");
            }
            return Answer::json(
                200,
                json!({"ok": true, "channel": "C0123", "ts": "1700000000.000100",
                       "message": {"text": body["text"], "ts": "1700000000.000100"}}),
            );
        }
        Answer::text(404, "unknown_method")
    })
    .await
}

#[tokio::test]
async fn slack_webhook_posts_text_and_blocks() {
    let s = slack().await;
    let blocks =
        json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*DiskFull* on db1"}}]);
    let out = run_action(
        "slack.message",
        json!({"webhook_url": format!("{}{SLACK_HOOK_PATH}", s.url), "text": "DiskFull", "blocks": blocks}),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"ok": true}));
    let seen = s.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert!(seen[0].is_json());
    assert_eq!(
        seen[0].json().unwrap(),
        json!({"text": "DiskFull", "blocks": blocks})
    );

    // A webhook that was revoked: 404 no_service, not worth retrying.
    let err = run_action(
        "slack.message",
        json!({"webhook_url": format!("{}/services/T0001/B0001/revoked", s.url), "text": "x"}),
    )
    .await
    .unwrap_err();
    assert!(!err.retryable);
    assert_eq!(err.message, "Slack request rejected (HTTP 404): no_service");
    assert!(
        !err.message.contains("revoked"),
        "the URL is a secret: {}",
        err.message
    );
}

#[tokio::test]
async fn slack_bot_token_posts_with_chat_post_message_and_returns_ts() {
    let s = slack().await;
    let input = |token: &str, channel: &str| {
        json!({"token": token, "channel": channel, "text": "hello", "thread_ts": "1699999999.000001",
               "api_url": format!("{}/api", s.url)})
    };
    let out = run_action("slack.message", input(SLACK_TOKEN, "#alerts"))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"ok": true, "channel": "C0123", "ts": "1700000000.000100"})
    );
    let sent = s.seen()[0].json().unwrap();
    assert_eq!(
        sent,
        json!({"channel": "#alerts", "text": "hello", "thread_ts": "1699999999.000001"})
    );

    for (token, channel, code) in [
        ("xoxb-wrong", "#alerts", "invalid_auth"),
        (SLACK_TOKEN, "#nope", "channel_not_found"),
    ] {
        let err = run_action("slack.message", input(token, channel))
            .await
            .unwrap_err();
        assert_eq!(err.message, format!("Slack chat.postMessage: {code}"));
        assert!(!err.retryable, "{code}");
        assert_eq!(err.output.unwrap()["body"]["error"], code);
    }
}

#[tokio::test]
async fn a_short_retry_after_is_waited_out_in_place() {
    let s = slack().await;
    s.queue(Answer::text(429, "rate_limited").header("retry-after", "1"));
    let out = run_action(
        "slack.message",
        json!({"webhook_url": format!("{}{SLACK_HOOK_PATH}", s.url), "text": "again"}),
    )
    .await
    .unwrap();
    assert_eq!(out["ok"], true);
    let seen = s.seen();
    assert_eq!(seen.len(), 2, "one 429, then the same request again");
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn a_long_retry_after_goes_back_to_the_engine() {
    let s = slack().await;
    s.queue(
        Answer::json(429, json!({"ok": false, "error": "ratelimited"}))
            .header("retry-after", "3600"),
    );
    let err = run_action(
        "slack.message",
        json!({"token": SLACK_TOKEN, "channel": "#alerts", "text": "x", "api_url": format!("{}/api", s.url)}),
    )
    .await
    .unwrap_err();
    assert!(err.retryable);
    assert_eq!(err.retry_after, Some(Duration::from_secs(3600)));
    assert_eq!(
        err.message,
        "Slack rate limit (HTTP 429); Retry-After 3600s"
    );
    assert_eq!(s.seen().len(), 1, "no waiting in place for an hour");
}

/// Teams Workflows: an Adaptive Card in a message attachment; answers 202 with no body.
pub async fn teams() -> StandIn {
    StandIn::start(|r| {
        if r.method != "POST" || !r.path.starts_with("/workflows/") {
            return Answer::json(404, json!({"error": {"code": "TriggerNotFound"}}));
        }
        if r.query_pairs().iter().all(|(k, v)| k != "sig" || v != "s3cret") {
            return Answer::json(401, json!({"error": {"code": "DirectApiAuthorizationRequired"}}));
        }
        let body = r.json().unwrap_or(Value::Null);
        let att = &body["attachments"][0];
        let ok = body["type"] == "message"
            && att["contentType"] == "application/vnd.microsoft.card.adaptive"
            && att["content"]["type"] == "AdaptiveCard"
            && att["content"]["body"].is_array();
        if !ok {
            return Answer::json(400, json!({"error": {"code": "InvalidRequestContent", "message": "not an adaptive card message"}}));
        }
        Answer::empty(202)
    })
    .await
}

#[tokio::test]
async fn teams_posts_an_adaptive_card_built_from_title_text_and_facts() {
    let t = teams().await;
    let url = format!(
        "{}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=s3cret",
        t.url
    );
    let out = run_action(
        "msteams.message",
        json!({"webhook_url": url, "title": "[FIRING] DiskFull", "text": "db1 is at 97%",
               "facts": {"instance": "db1:9100", "severity": "critical"}}),
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"ok": true, "status": 202}));
    let card = t.seen()[0].json().unwrap()["attachments"][0]["content"].clone();
    assert_eq!(card["body"][0]["text"], "[FIRING] DiskFull");
    assert_eq!(card["body"][1]["text"], "db1 is at 97%");
    assert_eq!(
        card["body"][2]["facts"],
        json!([{"title": "instance", "value": "db1:9100"}, {"title": "severity", "value": "critical"}])
    );

    // A URL whose signature is wrong: 401, permanent.
    let err = run_action(
        "msteams.message",
        json!({"webhook_url": url.replace("s3cret", "x"), "text": "t"}),
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .starts_with("Microsoft Teams request rejected (HTTP 401)"),
        "{}",
        err.message
    );
    assert!(!err.retryable);
}

#[tokio::test]
async fn a_legacy_teams_webhook_failing_with_200_is_an_error() {
    // Office 365 connectors answer "1" on success, and some failures as 200 with a message.
    let hook = StandIn::start(|_| {
        Answer::text(200, "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error 429 with ContextId ...")
    })
    .await;
    let err = run_action(
        "msteams.message",
        json!({"webhook_url": hook.url, "text": "t"}),
    )
    .await
    .unwrap_err();
    assert!(err.retryable, "{}", err.message);
    assert!(err.message.contains("HTTP error 429"), "{}", err.message);

    let ok = StandIn::start(|_| Answer::text(200, "1")).await;
    let card = json!({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "hi"}]});
    let out = run_action(
        "msteams.message",
        json!({"webhook_url": ok.url, "card": card}),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(
        ok.seen()[0].json().unwrap()["attachments"][0]["content"],
        card,
        "sent as given"
    );
}

#[test]
fn chat_inputs_are_checked_at_save_time() {
    assert_eq!(
        save_time_problems("msteams.message", json!({"webhook_url": "outlook.office.com/webhook", "card": {}, "text": "x"})),
        vec![
            "webhook_url: \"outlook.office.com/webhook\" is not an absolute URL (write e.g. https://host/path)",
            "card: give either card or title/text/facts, not both",
        ]
    );
    assert_eq!(
        save_time_problems("slack.message", json!({"webhook_url": "https://hooks.slack.com/x", "text": "t", "colour": "red"})),
        vec!["colour: unknown input (known: api_url, attachments, blocks, channel, icon_emoji, icon_url, mrkdwn, text, thread_ts, timeout, token, unfurl_links, unfurl_media, username, webhook_url)"]
    );
}
