//! Downstream faults, for `http.request` and every HTTP integration, through the engine: a
//! refused connection, a reset, a server that never answers, a body that drips slower than the
//! timeout, a 5xx, a TLS mismatch, and a 429 with Retry-After. Each run ends (none is left
//! `running`), with an error that names the fault; transient faults are retried as configured,
//! and the 429 is waited out and then succeeds. The app has only four workers for all of these
//! runs: a worker blocked past its timeout would leave runs unfinished and fail the test.

use crate::common::*;
use crate::standin::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Each action with inputs that send one request to `URL`.
const ACTIONS: &[(&str, &str)] = &[
    (
        "http.request",
        "{url: 'URL/x', method: POST, json: {a: 1}, timeout: 1s}",
    ),
    (
        "slack.message",
        "{webhook_url: 'URL/hook', text: t, timeout: 1s}",
    ),
    (
        "msteams.message",
        "{webhook_url: 'URL/hook', text: t, timeout: 1s}",
    ),
    (
        "pagerduty.event",
        "{routing_key: R0UT1NGKEY0000000000000000000000, summary: s, api_url: 'URL', timeout: 1s}",
    ),
    (
        "opsgenie.alert",
        "{api_key: k, message: m, api_url: 'URL', timeout: 1s}",
    ),
    (
        "jira.issue",
        "{url: 'URL', token: t, project: OPS, summary: s, timeout: 1s}",
    ),
    ("prometheus.query", "{url: 'URL', query: up, timeout: 1s}"),
    (
        "alertmanager.silence",
        "{url: 'URL', matchers: {alertname: X}, duration: 1h, timeout: 1s}",
    ),
];

/// Reads a request's head, so that the fault comes after the request was sent.
async fn read_head(sock: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A server that answers each connection with `fault`; returns its URL.
async fn faulty(fault: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_head(&mut sock).await;
                match fault {
                    // Closing with a zero linger sends RST instead of FIN.
                    "reset" => {
                        let _ = sock.set_zero_linger();
                        drop(sock);
                    }
                    // Headers at once, then one byte of body a second.
                    "slow-body" => {
                        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 64\r\n\r\n{";
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for _ in 0..62 {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            if sock.write_all(b" ").await.is_err() {
                                return;
                            }
                        }
                    }
                    _ => unreachable!(),
                }
            });
        }
    });
    url
}

fn workflow(name: &str, action: &str, with: &str, url: &str) -> String {
    format!(
        "name: {name}\ntrigger: {{type: manual}}\nsteps:\n  - id: call\n    uses: {action}\n    with: {}\n    retry: {{attempts: 2, backoff: 10ms}}\n",
        with.replace("URL", url)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_downstream_fault_ends_the_run_with_its_cause_and_no_worker_stays_blocked() {
    let app = spawn_app_with(|c| c.workers = 4).await;
    let (hang, _hang) = black_hole().await;
    let failing = StandIn::start(|_| Answer::text(503, "Service Unavailable")).await;
    // (fault, URL, words the error must contain, attempts)
    let faults = [
        (
            "refused",
            format!("http://127.0.0.1:{}", closed_port()),
            "cannot connect",
            2,
        ),
        ("reset", faulty("reset").await, "reset", 2),
        ("hang", hang, "timed out", 2),
        ("slow-body", faulty("slow-body").await, "timed out", 2),
        ("server-error", failing.url.clone(), "503", 2),
        ("tls", failing.url.replace("http://", "https://"), "TLS", 1),
    ];
    let mut runs = Vec::new();
    for (action, with) in ACTIONS {
        for (fault, url, _, _) in &faults {
            let name = format!("{}-{fault}", action.replace('.', "-"));
            app.apply_ok(&workflow(&name, action, with, url)).await;
            runs.push((*action, *fault, name));
        }
    }
    let results = futures_util::future::join_all(
        runs.iter()
            .map(|(_, _, name)| run_workflow(&app, name, json!({}))),
    )
    .await;
    let mut report = Vec::new();
    for ((action, fault, _), ex) in runs.iter().zip(&results) {
        let (_, _, words, attempts) = faults.iter().find(|f| f.0 == *fault).unwrap();
        let call = step(ex, "call");
        let error = call["error"].as_str().unwrap_or_default();
        report.push(format!(
            "{action} {fault}: {} attempts, {error}",
            call["attempts"]
        ));
        assert_eq!(ex["status"], "failed", "{action} {fault}: {ex:#}");
        assert!(error.contains(words), "{action} {fault}: {error}");
        if *fault != "server-error" {
            assert!(
                error.contains("127.0.0.1"),
                "names the host: {action} {fault}: {error}"
            );
        }
        assert_eq!(call["attempts"], *attempts, "{action} {fault}: {error}");
    }
    figures(
        "every_downstream_fault_ends_the_run_with_its_cause_and_no_worker_stays_blocked",
        json!({"actions": ACTIONS.len(), "faults": faults.len(), "runs": runs.len(), "workers": 4, "results": report}),
    );
    // Nothing is left running or queued.
    let executions = app.get("/executions?limit=1000").await;
    let unfinished: Vec<&Value> = executions
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !["failed", "succeeded"].contains(&e["status"].as_str().unwrap()))
        .collect();
    assert!(unfinished.is_empty(), "{unfinished:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_by_every_integration() {
    let app = spawn_app().await;
    let mut runs = Vec::new();
    for (action, with) in ACTIONS {
        // One 429 asking for a second, then what the real API answers on success.
        let ok = match *action {
            "prometheus.query" => Answer::json(
                200,
                json!({"status": "success", "data": {"resultType": "vector", "result": []}}),
            ),
            "alertmanager.silence" => Answer::json(200, json!({"silenceID": "s1"})),
            "pagerduty.event" => Answer::json(
                202,
                json!({"status": "success", "message": "Event processed", "dedup_key": "d"}),
            ),
            "opsgenie.alert" => Answer::json(
                202,
                json!({"result": "Request will be processed", "took": 0.1, "requestId": "r"}),
            ),
            "jira.issue" => Answer::json(201, json!({"id": "1", "key": "OPS-1", "self": "x"})),
            "slack.message" => Answer::text(200, "ok"),
            // A legacy Teams webhook answers "1".
            "msteams.message" => Answer::text(200, "1"),
            _ => Answer::json(200, json!({"ok": true})),
        };
        let server = StandIn::start(move |_| ok.clone()).await;
        server.queue(Answer::text(429, "slow down").header("retry-after", "1"));
        let name = format!("{}-429", action.replace('.', "-"));
        app.apply_ok(&workflow(&name, action, with, &server.url))
            .await;
        runs.push((*action, name, server));
    }
    for (action, name, server) in &runs {
        let ex = run_workflow(&app, name, json!({})).await;
        assert_eq!(ex["status"], "succeeded", "{action}: {ex:#}");
        assert_eq!(
            server.seen().len(),
            2,
            "{action}: the 429, then the request again"
        );
    }
    figures(
        "a_429_with_retry_after_is_waited_out_by_every_integration",
        json!({"actions": runs.len(), "requests_each": 2, "succeeded": runs.len()}),
    );
}
