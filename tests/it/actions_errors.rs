//! How a service action fails, through the engine: unreachable, TLS, timeout, 4xx and 5xx each
//! end the step with an error that says which, and only those that can pass are retried.

use crate::actions_paging::PD_KEY;
use crate::common::*;
use crate::standin::*;
use serde_json::json;

fn workflow(name: &str, api_url: &str) -> String {
    format!(
        "
name: {name}
trigger: {{type: manual}}
steps:
  - id: page
    uses: pagerduty.event
    with: {{routing_key: {PD_KEY}, summary: disk full, api_url: '{api_url}', timeout: 1s}}
    retry: {{attempts: 2, backoff: 10ms}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_says_which_and_only_transient_ones_are_retried() {
    let app = spawn_app().await;
    let rejecting = StandIn::start(|_| {
        Answer::json(400, json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}))
    })
    .await;
    let failing = StandIn::start(|_| Answer::text(502, "Bad Gateway")).await;
    let (hole, _hole) = black_hole().await;
    let plain = rejecting.url.replace("http://", "https://");
    let cases = [
        (
            "unreachable",
            format!("http://127.0.0.1:{}", closed_port()),
            "PagerDuty: cannot connect to 127.0.0.1",
            2,
        ),
        ("tls", plain, "PagerDuty: TLS failure with 127.0.0.1", 1),
        (
            "timeout",
            hole,
            "PagerDuty: timed out after 1s waiting for 127.0.0.1",
            2,
        ),
        (
            "client-error",
            rejecting.url.clone(),
            "PagerDuty request rejected (HTTP 400): Event object is invalid (x)",
            1,
        ),
        (
            "server-error",
            failing.url.clone(),
            "PagerDuty server error (HTTP 502): Bad Gateway",
            2,
        ),
    ];
    for (name, url, _, _) in &cases {
        app.apply_ok(&workflow(name, url)).await;
    }
    let runs = cases
        .iter()
        .map(|(name, ..)| run_workflow(&app, name, json!({})));
    let results = futures_util::future::join_all(runs).await;
    for ((name, _, message, attempts), ex) in cases.iter().zip(results) {
        assert_eq!(ex["status"], "failed", "{name}: {ex:#}");
        let page = step(&ex, "page");
        let error = page["error"].as_str().unwrap();
        assert!(error.starts_with(message), "{name}: {error}");
        assert_eq!(page["attempts"], *attempts, "{name}: {error}");
        assert!(
            ex["error"]
                .as_str()
                .unwrap()
                .contains("step \"page\" failed"),
            "{name}: {ex}"
        );
    }
    assert_eq!(rejecting.seen().len(), 1, "a 4xx is not retried");
    assert_eq!(failing.seen().len(), 2, "a 5xx is");
}

#[tokio::test]
async fn a_rendered_input_that_breaks_the_schema_names_the_field() {
    let app = spawn_app().await;
    let (pd, _) = crate::actions_paging::pagerduty().await;
    app.apply_ok(&format!(
        "
name: sev
trigger: {{type: manual}}
steps:
  - id: page
    uses: pagerduty.event
    with: {{routing_key: {PD_KEY}, summary: s, severity: '{{{{ trigger.severity }}}}', api_url: '{}'}}
",
        pd.url
    ))
    .await;
    let ex = run_workflow(&app, "sev", json!({"severity": "page"})).await;
    let page = step(&ex, "page");
    assert_eq!(
        page["error"],
        "with.severity: must be one of \"critical\", \"error\", \"warning\", \"info\""
    );
    assert!(ex["error"]
        .as_str()
        .unwrap()
        .contains("step \"page\" failed"));
    assert!(pd.seen().is_empty());
    let ex = run_workflow(&app, "sev", json!({"severity": "info"})).await;
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(pd.seen()[0].json().unwrap()["payload"]["severity"], "info");
}

#[tokio::test]
async fn http_request_says_which_failure_too_and_waits_out_a_short_429() {
    let url = format!("http://127.0.0.1:{}/x", closed_port());
    let err = run_action("http.request", json!({"url": url}))
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("http.request: cannot connect to 127.0.0.1"),
        "{}",
        err.message
    );
    assert!(err.retryable);

    let s = StandIn::start(|_| Answer::json(200, json!({"id": 7}))).await;
    let err = run_action(
        "http.request",
        json!({"url": s.url.replace("http://", "https://")}),
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .starts_with("http.request: TLS failure with 127.0.0.1"),
        "{}",
        err.message
    );
    assert!(!err.retryable);

    s.queue(Answer::text(429, "slow down").header("retry-after", "1"));
    let out = run_action("http.request", json!({"url": s.url}))
        .await
        .unwrap();
    assert_eq!(
        (out["status"].as_u64(), out["body"]["id"].as_u64()),
        (Some(200), Some(7))
    );
    assert_eq!(s.seen().len(), 2, "the 429, then the same request again");
}
