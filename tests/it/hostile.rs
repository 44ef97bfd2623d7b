//! Hostile and malformed deliveries (the corpus in tests/fixtures/hostile, and generated ones
//! too big to keep): each gets a 4xx, the server stays up, and what was accepted before is
//! unaffected.

use crate::common::*;
use crate::standin::{run_workflow, step};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/hostile/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn alert(i: usize) -> Value {
    json!({"status": "firing", "labels": {"i": i.to_string()}, "annotations": {},
           "startsAt": "2026-11-24T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
           "generatorURL": "", "fingerprint": format!("{i:016x}")})
}

fn notification(alerts: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "r", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts}),
    )
    .unwrap()
}

async fn post(app: &TestApp, key: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}/hooks/fanout", app.base))
        .header("x-api-key", key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_deliveries_get_4xx_and_harm_nothing() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok("name: fanout\ntrigger: {type: prometheus, split: per_alert}\nsteps:\n  - {id: a, uses: transform, with: {value: '{{ alert.labels.i }}'}}\n").await;
    let (status, first) = post(&app, &key, "application/json", notification(vec![alert(1)])).await;
    assert_eq!(status, 202);

    let mut cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "truncated",
            "application/json",
            corpus("truncated.json"),
            415,
            "not_json",
        ),
        (
            "invalid UTF-8",
            "application/json",
            corpus("invalid-utf8.json"),
            415,
            "not_json",
        ),
        (
            "deep nesting",
            "application/json",
            corpus("deep-nesting.json"),
            415,
            "not_json",
        ),
        (
            "huge number",
            "application/json",
            corpus("huge-number.json"),
            415,
            "not_json",
        ),
        (
            "duplicate keys",
            "application/json",
            corpus("duplicate-keys.json"),
            400,
            "not_alertmanager",
        ),
        (
            "form encoded",
            "application/x-www-form-urlencoded",
            corpus("form-encoded.txt"),
            415,
            "not_json",
        ),
    ];
    // Generated: a string just over the 10 MiB limit, a million empty alerts, and more
    // alerts than one delivery may fan out to.
    let mut big = b"{\"version\":\"4\",\"receiver\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    big.extend(b"\"}");
    cases.push((
        "10 MB string",
        "application/json",
        big,
        413,
        "body_too_large",
    ));
    let million = format!(
        "{{\"version\":\"4\",\"alerts\":[{}]}}",
        vec!["{}"; 1_000_000].join(",")
    );
    cases.push((
        "a million tiny alerts",
        "application/json",
        million.into_bytes(),
        400,
        "not_alertmanager",
    ));
    cases.push((
        "fan-out over the cap",
        "application/json",
        notification((0..10_001).map(alert).collect()),
        413,
        "too_many_alerts",
    ));

    let mut tried = Vec::new();
    for (what, content_type, body, status, code) in cases {
        let (got, v) = post(&app, &key, content_type, body).await;
        assert_eq!(
            (got, v["code"].as_str()),
            (status, Some(code)),
            "{what}: {v}"
        );
        tried.push(json!({"input": what, "answer": got, "code": code}));
    }

    // Slow senders hold connections, not the server: with 100 of them trickling headers, a
    // normal delivery still goes through.
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"POST /hooks/fanout HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(s);
    }
    // A header flood is refused.
    let mut flood = app
        .http
        .post(format!("{}/hooks/fanout", app.base))
        .header("x-api-key", &key);
    for i in 0..2000 {
        flood = flood.header(format!("x-flood-{i}"), "y");
    }
    let flooded = flood.body("{}").send().await.map(|r| r.status().as_u16());
    assert!(
        flooded
            .as_ref()
            .map(|s| (400..500).contains(s))
            .unwrap_or(true),
        "a header flood was taken"
    );

    let (status, _) = post(&app, &key, "application/json", notification(vec![alert(2)])).await;
    assert_eq!(status, 202, "the server still takes deliveries");
    drop(slow);

    // What was accepted before is intact, and ran.
    let ex = app.finished(first["executions"][0].as_str().unwrap()).await;
    assert_eq!(ex["status"], "succeeded");
    assert_eq!(ex["steps"][0]["output"], "1");
    let rejected = app
        .events("fanout")
        .await
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .count();
    assert!(
        rejected >= 9,
        "every refused delivery is on record: {rejected}"
    );
    let peak_rss_kb = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
    figures(
        "hostile_deliveries_get_4xx_and_harm_nothing",
        json!({
            "inputs": tried,
            "slow_loris_connections": 100,
            "header_flood_headers": 2000,
            "header_flood_answer": flooded.map_or("connection closed".to_string(), |s| s.to_string()),
            "valid_delivery_after": 202,
            "test_process_peak_rss_kb": peak_rss_kb,
        }),
    );
}

/// Reads from `s` until what came holds `needle` (or the connection ends), for at most 10 s.
async fn read_until(s: &mut tokio::net::TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        while !String::from_utf8_lossy(&got).contains(needle) {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), read).await;
    String::from_utf8_lossy(&got).into_owned()
}

/// A body over the limit gets its 413 however it comes: written whole (the server reads and
/// drops it, so the sender is not reset halfway through its upload and sees the answer), or
/// announced with `Expect: 100-continue` (answered at once, so the sender uploads nothing).
#[tokio::test]
async fn an_oversized_body_gets_its_413_whether_written_or_only_announced() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok("name: big\ntrigger: {type: prometheus}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n").await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let too_big = 10 * 1024 * 1024 + 1;
    let head = |expect: &str| {
        format!(
            "POST /hooks/big HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {too_big}\r\n{expect}\r\n"
        )
    };

    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head("Expect: 100-continue\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until(&mut s, "body_too_large").await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "answered before any body, with no 100 Continue: {answer:?}"
    );

    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(head("").as_bytes()).await.unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    let mut left = too_big;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n])
            .await
            .expect("the server takes the whole body before it answers");
        left -= n;
    }
    let answer = read_until(&mut s, "body_too_large").await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("body_too_large"), "{answer:?}");
}

#[tokio::test]
async fn guessing_keys_or_passwords_is_slowed_and_valid_senders_still_pass() {
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok("name: guarded\ntrigger: {type: webhook}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n").await;
    let hook = format!("{}/hooks/guarded", app.base);
    let send = |k: String| {
        let (http, hook) = (app.http.clone(), hook.clone());
        async move {
            let r = http
                .post(&hook)
                .header("x-api-key", k)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
            )
        }
    };
    let mut answers = Vec::new();
    for i in 0..40 {
        answers.push(send(format!("wrong-{i}")).await);
    }
    // 401 until the source has used up its allowance, then 503 with Retry-After.
    assert!(answers[..30].iter().all(|a| a.0 == 401), "{answers:?}");
    assert!(
        answers[30..].iter().all(|a| *a == (503, true)),
        "{answers:?}"
    );
    // Only the refusals within the allowance were recorded.
    let rejected = app
        .events("guarded")
        .await
        .iter()
        .filter(|e| e["outcome"] == "rejected")
        .count();
    assert_eq!(rejected, 30);
    // A sender with the right key from the same address is not locked out.
    assert_eq!(send(key.clone()).await.0, 202);

    // Sign-in: wrong passwords for one name are refused with 429 after ten.
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = app
            .http
            .post(format!("{}/api/v1/session", app.base))
            .json(&json!({"name": "admin", "password": "not-it"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
}

/// Deliveries over the rate per key, or per source address, are answered 503 with Retry-After
/// (Alertmanager retries a 5xx and drops a 4xx), start nothing, and say which limit; one key's
/// flood does not hold back another key. A rate of R admits a burst of 2R, so with R = 1 the
/// first two go through however slow the machine is; refill may admit a few more.
#[tokio::test]
async fn deliveries_over_the_rate_per_key_or_per_source_get_503_with_retry_after() {
    let doc = "name: limited\ntrigger: {type: webhook}\nsteps:\n  - {id: a, uses: transform, with: {value: 1}}\n";
    let per_key = spawn_app_with(|c| {
        c.rate_limits.deliveries_per_key = 1;
        c.rate_limits.deliveries_per_source = 0;
    })
    .await;
    per_key.apply_ok(doc).await;
    let busy = per_key.create_key("busy").await;
    let quiet = per_key.create_key("quiet").await;
    let answers = until_refused(&per_key, &busy).await;
    let (status, reason) = answers.last().unwrap().clone();
    assert_eq!(status, 503);
    assert!(reason.contains("\"busy\""), "names the key: {reason}");
    // The other key from the same address has its own allowance.
    assert_eq!(per_key.hook("limited", &quiet, "{}").await.0, 202);
    assert_eq!(per_key.hook("limited", &quiet, "{}").await.0, 202);
    // Exactly the accepted deliveries are on record, each with its run.
    let events = per_key.events("limited").await;
    assert_eq!(events.len(), answers.len() - 1 + 2, "{events:?}");
    assert!(
        events.iter().all(|e| e["outcome"] == "started"),
        "{events:?}"
    );

    let per_source = spawn_app_with(|c| {
        c.rate_limits.deliveries_per_key = 0;
        c.rate_limits.deliveries_per_source = 1;
    })
    .await;
    per_source.apply_ok(doc).await;
    let key = per_source.create_key("ops").await;
    let answers = until_refused(&per_source, &key).await;
    let (_, reason) = answers.last().unwrap();
    assert!(reason.contains("127.0.0.1"), "names the address: {reason}");
    assert_eq!(per_source.events("limited").await.len(), answers.len() - 1);
    figures(
        "deliveries_over_the_rate_per_key_or_per_source_get_503_with_retry_after",
        json!({"per_source_rate": 1, "accepted_before_503": answers.len() - 1, "refusal": answers.last().unwrap().1}),
    );
}

/// Sends deliveries one after another until one is refused (at most 50); checks that the first
/// two went through and the refusal came with Retry-After; returns (status, reason) of each.
async fn until_refused(app: &TestApp, key: &str) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for n in 0..50 {
        let r = app
            .http
            .post(format!("{}/hooks/limited", app.base))
            .header("x-api-key", key)
            .json(&json!({ "n": n }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").is_some();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        answers.push((status, body["message"].as_str().unwrap_or("").to_string()));
        if status != 202 {
            assert!(retry_after, "{answers:?}");
            break;
        }
    }
    assert!(
        answers.len() > 2,
        "the burst of two went through: {answers:?}"
    );
    assert!(
        answers[..answers.len() - 1].iter().all(|a| a.0 == 202),
        "{answers:?}"
    );
    assert_eq!(answers.last().unwrap().0, 503, "{answers:?}");
    answers
}

/// The management API answers a user over their rate with 429 and Retry-After.
#[tokio::test]
async fn api_requests_over_the_rate_per_user_get_429() {
    let app = spawn_app_with(|c| c.rate_limits.api_per_user = 1).await;
    let mut answers = Vec::new();
    for _ in 0..50 {
        let (status, body) = app.api(reqwest::Method::GET, "/workflows", None).await;
        answers.push(status);
        if status != 200 {
            assert_eq!(status, 429, "{body}");
            let message = body["message"].as_str().unwrap_or("");
            assert!(message.contains("admin"), "names the user: {message}");
            break;
        }
    }
    assert!(
        answers.len() > 2 && answers.ends_with(&[429]),
        "{answers:?}"
    );
    let r = app
        .http
        .get(format!("{}/api/v1/workflows", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
}

/// jq programs run in worker processes: one that recurses until its stack overflows, one that
/// never ends, and one that eats memory each fail their own step, with a cause; the server
/// stays up, later jq steps run, and templates are bounded by fuel the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_jq_programs_and_templates_fail_their_step_and_nothing_else() {
    let app = spawn_app().await;
    let cases = [
        (
            "deep",
            "def f: 1 + f; f",
            "5s",
            "recursed too deep or used too much memory",
        ),
        ("endless", "last(range(infinite))", "1s", "timed out"),
        (
            "greedy",
            "[range(1e10)] | length",
            "30s",
            "recursed too deep or used too much memory",
        ),
    ];
    for (name, program, timeout, _) in &cases {
        app.apply_ok(&format!(
            "name: jq-{name}\ntrigger: {{type: manual}}\nsteps:\n  - {{id: x, uses: transform, timeout: {timeout}, with: {{jq: '{program}', input: 1}}}}\n"
        ))
        .await;
    }
    app.apply_ok("name: template-loop\ntrigger: {type: manual}\nsteps:\n  - {id: x, uses: transform, with: {value: '{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}'}}\n").await;
    app.apply_ok("name: jq-fine\ntrigger: {type: manual}\nsteps:\n  - {id: x, uses: transform, with: {jq: '[.[] * 2]', input: [1, 2]}}\n").await;
    let mut outcomes = Vec::new();
    for (name, program, _, cause) in &cases {
        let ex = run_workflow(&app, &format!("jq-{name}"), json!({})).await;
        assert_eq!(ex["status"], "failed", "{name}: {ex:#}");
        let error = step(&ex, "x")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(error.contains(cause), "{name}: {error}");
        outcomes.push(json!({"program": program, "error": error}));
    }
    let ex = run_workflow(&app, "template-loop", json!({})).await;
    let error = step(&ex, "x")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("ran too long"), "{error}");
    let ex = run_workflow(&app, "jq-fine", json!({})).await;
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(step(&ex, "x")["output"], json!([2, 4]));
    outcomes.push(json!({"program": "template: nested range(100000) loops", "error": error}));
    figures(
        "runaway_jq_programs_and_templates_fail_their_step_and_nothing_else",
        json!({"programs": outcomes}),
    );
}

/// Templates at the length limit that chain as deep as that allows (`trigger.a.a.a...`,
/// `x|string|string...`) are parsed at apply time and evaluated at run time by the real
/// binary without overflowing its stack; one byte more is refused when applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_as_deep_as_the_length_limit_allows_do_not_take_the_server_down() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::alertmanager_e2e::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let token_file = dir.path().join("admin-token");
    let token = wait_for(|| async { std::fs::read_to_string(&token_file).ok() })
        .await
        .trim()
        .to_string();
    let http = client();
    wait_for(|| async { http.get(format!("{base}/readyz")).send().await.ok() }).await;
    let limit = alertflow_domain::template::MAX_TEMPLATE_BYTES;
    let chain = |link: &str| {
        let head = "{{ trigger";
        let links = (limit - head.len() - 3) / link.len();
        format!("{head}{} }}}}", link.repeat(links))
    };
    let apply = |name: &str, template: &str| {
        let doc = json!({"name": name, "trigger": {"type": "manual"}, "steps": [
            {"id": "x", "uses": "transform", "with": {"value": template}}]});
        http.post(format!("{base}/api/v1/workflows"))
            .bearer_auth(&token)
            .json(&doc)
            .send()
    };
    for (name, link) in [("attrs", ".a"), ("filters", "|string"), ("items", "[0]")] {
        let template = chain(link);
        assert!(template.len() <= limit);
        let applied = apply(name, &template).await.unwrap();
        assert!(
            applied.status().is_success(),
            "{name}: {}",
            applied.text().await.unwrap()
        );
        let run: Value = http
            .post(format!("{base}/api/v1/workflows/{name}/run"))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = run["executions"][0].as_str().unwrap().to_string();
        let ex: Value = wait_for(|| async {
            let ex: Value = http
                .get(format!("{base}/api/v1/executions/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            ["succeeded", "failed"]
                .contains(&ex["status"].as_str()?)
                .then_some(ex)
        })
        .await;
        // Undefined names fail the step; what matters is that the server answered.
        assert!(ex["steps"][0]["status"].is_string(), "{name}: {ex}");
    }
    let too_long = format!("{}x", chain(".a")) + &" ".repeat(3);
    let refused = apply("too-long", &too_long).await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    assert!(refused.text().await.unwrap().contains("the limit is 16384"));
    assert!(http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    figures(
        "templates_as_deep_as_the_length_limit_allows_do_not_take_the_server_down",
        json!({
            "template_bytes": limit,
            "chained_attributes": (limit - 13) / 2,
            "chained_filters": (limit - 13) / 7,
            "chained_subscripts": (limit - 13) / 3,
            "over_the_limit": 422,
            "server_up_after": true,
        }),
    );
}
