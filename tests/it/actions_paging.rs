//! `pagerduty.event` and `opsgenie.alert` against stand-ins that validate events as the real
//! APIs do and keep the incidents they open, so a test can see a resolve close the right one.

use crate::standin::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const PD_KEY: &str = "R0UT1NGKEY0000000000000000000001";

/// dedup_key -> status ("triggered", "acknowledged", "resolved") and the trigger's payload.
pub type Incidents = Arc<Mutex<BTreeMap<String, (String, Value)>>>;

/// Events API v2: validates like /v2/enqueue and keeps incidents by dedup_key.
pub async fn pagerduty() -> (StandIn, Incidents) {
    let incidents: Incidents = Default::default();
    let state = incidents.clone();
    let s = StandIn::start(move |r| {
        if r.path != "/v2/enqueue" || r.method != "POST" {
            return Answer::json(404, json!({"status": "Not found"}));
        }
        let invalid = |errors: Vec<&str>| {
            Answer::json(400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors}))
        };
        let Some(e) = r.json().filter(|_| r.is_json()) else {
            return invalid(vec!["Request body is not valid JSON"]);
        };
        let mut errors = Vec::new();
        if e["routing_key"].as_str().is_none_or(|k| k.len() != 32) {
            errors.push("Length of 'routing_key' is incorrect (should be 32 characters)");
        }
        let action = e["event_action"].as_str().unwrap_or_default();
        let dedup = e["dedup_key"].as_str().map(str::to_string);
        match action {
            "trigger" => {
                let p = &e["payload"];
                if p["summary"].as_str().is_none_or(str::is_empty) {
                    errors.push("'payload.summary' is missing or blank");
                }
                if p["source"].as_str().is_none_or(str::is_empty) {
                    errors.push("'payload.source' is missing or blank");
                }
                if p.get("timestamp").is_some_and(|t| t.as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_none()) {
                    errors.push("'payload.timestamp' is invalid");
                }
                if !["critical", "error", "warning", "info"].contains(&p["severity"].as_str().unwrap_or_default()) {
                    errors.push("'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')");
                }
            }
            "acknowledge" | "resolve" if dedup.is_none() => errors.push("'dedup_key' is missing or blank"),
            "acknowledge" | "resolve" => {}
            _ => errors.push("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')"),
        }
        if !errors.is_empty() {
            return invalid(errors);
        }
        let key = dedup.unwrap_or_else(|| format!("generated-{}", state.lock().unwrap().len()));
        let mut incidents = state.lock().unwrap();
        match action {
            "trigger" => {
                incidents.insert(key.clone(), ("triggered".into(), e["payload"].clone()));
            }
            other => {
                // Events for an unknown or resolved incident are accepted and dropped.
                if let Some(inc) = incidents.get_mut(&key).filter(|i| i.0 != "resolved") {
                    inc.0 = if other == "resolve" { "resolved" } else { "acknowledged" }.into();
                }
            }
        }
        Answer::json(202, json!({"status": "success", "message": "Event processed", "dedup_key": key}))
    })
    .await;
    (s, incidents)
}

fn alert_scope(status: &str) -> Value {
    json!({"alert": {
        "status": status, "fingerprint": "1751650d45bf7d6b", "startsAt": "2024-05-01T10:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "warning"},
        "annotations": {"summary": "Disk almost full on db1"}
    }})
}

#[tokio::test]
async fn pagerduty_triggers_from_the_alert_and_resolves_the_same_incident() {
    let (pd, incidents) = pagerduty().await;
    let with =
        |action: &str| json!({"routing_key": PD_KEY, "event_action": action, "api_url": pd.url});

    // Everything but the routing key comes from the current alert.
    let out = run_action_in("pagerduty.event", with("trigger"), alert_scope("firing"))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"status": "success", "message": "Event processed", "dedup_key": "1751650d45bf7d6b"})
    );
    let sent = pd.seen()[0].json().unwrap();
    assert_eq!(sent["dedup_key"], "1751650d45bf7d6b");
    assert_eq!(sent["client"], "alertflow");
    assert_eq!(sent["client_url"], "http://prometheus:9090/graph?g0.expr=x");
    assert_eq!(
        sent["payload"],
        json!({"summary": "Disk almost full on db1", "source": "db1:9100", "severity": "warning",
               "timestamp": "2024-05-01T10:00:00Z",
               "custom_details": {"labels": {"alertname": "DiskFull", "instance": "db1:9100", "severity": "warning"},
                                  "annotations": {"summary": "Disk almost full on db1"}}})
    );
    assert_eq!(incidents.lock().unwrap()["1751650d45bf7d6b"].0, "triggered");

    let out = run_action_in("pagerduty.event", with("resolve"), alert_scope("resolved"))
        .await
        .unwrap();
    assert_eq!(out["dedup_key"], "1751650d45bf7d6b");
    let sent = pd.seen()[1].json().unwrap();
    assert_eq!(
        sent,
        json!({"routing_key": PD_KEY, "event_action": "resolve", "dedup_key": "1751650d45bf7d6b"})
    );
    assert_eq!(incidents.lock().unwrap()["1751650d45bf7d6b"].0, "resolved");
}

#[tokio::test]
async fn pagerduty_errors_say_what_is_wrong() {
    let (pd, _) = pagerduty().await;
    // A key from a secret is only seen at run time: checked then, before calling.
    let err = run_action(
        "pagerduty.event",
        json!({"routing_key": "short", "summary": "s", "api_url": pd.url}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "with.routing_key: an Events API v2 integration key has 32 characters, this has 5"
    );

    // PagerDuty's own validation, surfaced with its words.
    let err = run_action(
        "pagerduty.event",
        json!({"routing_key": PD_KEY, "summary": "s", "timestamp": "yesterday", "api_url": pd.url}),
    )
    .await
    .unwrap_err();
    assert!(!err.retryable);
    assert_eq!(
        err.message,
        "PagerDuty request rejected (HTTP 400): Event object is invalid ('payload.timestamp' is invalid)"
    );
    assert_eq!(err.output.unwrap()["body"]["status"], "invalid event");

    // Without a current alert, what it would have supplied must be given.
    let err = run_action(
        "pagerduty.event",
        json!({"routing_key": PD_KEY, "event_action": "resolve", "api_url": pd.url}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "with.dedup_key: required to resolve (no current alert to take the fingerprint of)"
    );
    let err = run_action(
        "pagerduty.event",
        json!({"routing_key": PD_KEY, "severity": "page", "summary": "s", "api_url": pd.url}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "with.severity: must be one of \"critical\", \"error\", \"warning\", \"info\""
    );
    assert_eq!(pd.seen().len(), 1, "input errors are caught before calling");

    // A 5xx is worth retrying.
    pd.queue(Answer::json(503, json!({"status": "unavailable"})));
    let err = run_action(
        "pagerduty.event",
        json!({"routing_key": PD_KEY, "summary": "s", "api_url": pd.url}),
    )
    .await
    .unwrap_err();
    assert!(err.retryable);
    assert!(
        err.message.starts_with("PagerDuty server error (HTTP 503)"),
        "{}",
        err.message
    );
}

#[test]
fn pagerduty_checks_static_inputs_at_save_time() {
    assert_eq!(
        save_time_problems(
            "pagerduty.event",
            json!({"routing_key": "abc", "event_action": "open"})
        ),
        vec![
            "event_action: must be one of \"trigger\", \"acknowledge\", \"resolve\"",
            "routing_key: an Events API v2 integration key has 32 characters, this has 3",
        ]
    );
    assert!(save_time_problems(
        "pagerduty.event",
        json!({"routing_key": "{{ secrets.PD }}"})
    )
    .is_empty());
}

/// Opsgenie Alert API: GenieKey auth, 422 for bad bodies, 202 + requestId for accepted
/// requests; keeps alerts by alias (open/closed/acknowledged).
pub async fn opsgenie() -> (StandIn, Arc<Mutex<BTreeMap<String, (String, Value)>>>) {
    let alerts: Arc<Mutex<BTreeMap<String, (String, Value)>>> = Default::default();
    let state = alerts.clone();
    let s = StandIn::start(move |r| {
        let request_id = format!("req-{}", r.body.len());
        if r.header("authorization") != Some("GenieKey og-key") {
            return Answer::json(401, json!({"message": "Could not authenticate", "took": 0.001, "requestId": request_id}));
        }
        let accepted = Answer::json(202, json!({"result": "Request will be processed", "took": 0.01, "requestId": request_id}));
        let body = r.json().unwrap_or(json!({}));
        let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", ["v2", "alerts"]) => {
                let message = body["message"].as_str().unwrap_or_default();
                if message.is_empty() || message.len() > 130 {
                    return Answer::json(422, json!({"message": "Request body is not processable. Please check the errors.",
                        "errors": {"message": "Message can not be empty."}, "took": 0.0, "requestId": request_id}));
                }
                let alias = body["alias"].as_str().unwrap_or(message).to_string();
                state.lock().unwrap().insert(alias, ("open".into(), body));
                accepted
            }
            ("POST", ["v2", "alerts", id, action @ ("close" | "acknowledge")]) => {
                if !r.query_pairs().contains(&("identifierType".into(), "alias".into())) {
                    return Answer::json(404, json!({"message": "Alert does not exist", "took": 0.0, "requestId": request_id}));
                }
                if let Some(a) = state.lock().unwrap().get_mut(*id) {
                    a.0 = if *action == "close" { "closed" } else { "acknowledged" }.into();
                }
                accepted
            }
            _ => Answer::json(404, json!({"message": "Not found", "took": 0.0, "requestId": request_id})),
        }
    })
    .await;
    (s, alerts)
}

#[tokio::test]
async fn opsgenie_creates_by_alias_and_closes_by_alias() {
    let (og, alerts) = opsgenie().await;
    let base = json!({"api_key": "og-key", "api_url": og.url});
    let with = |extra: Value| {
        let mut w = base.clone();
        w.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        w
    };
    let out = run_action_in(
        "opsgenie.alert",
        with(json!({"priority": "P2", "tags": ["db"]})),
        alert_scope("firing"),
    )
    .await
    .unwrap();
    assert_eq!(out["result"], "Request will be processed");
    assert_eq!(out["alias"], "1751650d45bf7d6b");
    assert!(out["requestId"].as_str().unwrap().starts_with("req-"));
    let created = og.seen()[0].json().unwrap();
    assert_eq!(created["message"], "Disk almost full on db1");
    assert_eq!(created["priority"], "P2");
    assert_eq!(
        created["details"]["instance"], "db1:9100",
        "details default to the labels"
    );
    assert_eq!(alerts.lock().unwrap()["1751650d45bf7d6b"].0, "open");

    run_action_in(
        "opsgenie.alert",
        with(json!({"action": "close", "note": "resolved"})),
        alert_scope("resolved"),
    )
    .await
    .unwrap();
    let close = &og.seen()[1];
    assert_eq!(close.path, "/v2/alerts/1751650d45bf7d6b/close");
    assert_eq!(
        close.json().unwrap(),
        json!({"source": "alertflow", "note": "resolved"})
    );
    assert_eq!(alerts.lock().unwrap()["1751650d45bf7d6b"].0, "closed");

    let err = run_action(
        "opsgenie.alert",
        with(json!({"api_key": "wrong", "message": "m"})),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Opsgenie request rejected (HTTP 401): Could not authenticate"
    );
    let err = run_action("opsgenie.alert", with(json!({"action": "close"})))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "with.alias: required to close (no current alert to take the fingerprint of)"
    );
    let err = run_action("opsgenie.alert", with(json!({"message": ""})))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "Opsgenie request rejected (HTTP 422): Request body is not processable. Please check the errors. (message: Message can not be empty.)"
    );
}
