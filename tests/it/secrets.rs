//! Secrets: set from stdin, encrypted at rest, read by templates, and redacted from every
//! stored record and log line.

use crate::common::*;
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const SECRET: &str = "s3cr3t-value-4711";

fn cli(base: &str, token: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_alertflow"));
    c.args(["--server", base, "--token", token]);
    c
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_action_and_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("serve.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.path().to_str().unwrap(),
        ])
        .env("ALERTFLOW_LOG", "debug")
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let token_file = data.path().join("admin-token");
    let token = wait_for(|| async { std::fs::read_to_string(&token_file).ok() }).await;
    let token = token.trim().to_string();
    wait_for(|| async {
        reqwest::get(format!("{base}/readyz"))
            .await
            .ok()
            .filter(|r| r.status() == 200)
    })
    .await;

    let sink = recorder(200).await;
    let doc = format!(
        "name: uses-secret\ntrigger: {{type: manual}}\nsteps:\n  - id: call\n    uses: http.request\n    with:\n      url: '{}/x'\n      headers: {{Authorization: 'Bearer {{{{ secrets.API_TOKEN }}}}'}}\n      json: {{token: '{{{{ secrets.API_TOKEN }}}}'}}\n  - {{id: oops, uses: fail, with: {{message: 'token was {{{{ secrets.API_TOKEN }}}}'}}, on_error: continue}}\n",
        sink.url
    );
    let file = data.path().join("wf.yaml");
    std::fs::write(&file, &doc).unwrap();

    // Applied before the secret exists: refused, naming the step and the field.
    let out = cli(&base, &token)
        .args(["workflows", "apply", "-f", file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("steps[0].with.headers.Authorization")
            && err.contains("no secret named \"API_TOKEN\""),
        "{err}"
    );

    let mut set = cli(&base, &token)
        .args(["secrets", "set", "API_TOKEN"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    set.stdin
        .take()
        .unwrap()
        .write_all(format!("{SECRET}\n").as_bytes())
        .await
        .unwrap();
    assert!(set.wait().await.unwrap().success());
    let out = cli(&base, &token)
        .args(["secrets", "list"])
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("API_TOKEN") && !listed.contains(SECRET),
        "{listed}"
    );

    let out = cli(&base, &token)
        .args(["workflows", "apply", "-f", file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&base, &token)
        .args(["-o", "json", "run", "uses-secret", "--wait"])
        .output()
        .await
        .unwrap();
    let ex: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);

    // The action got the value...
    let seen = sink.requests.lock().unwrap().clone();
    assert_eq!(seen[0].1, json!({"token": SECRET}));
    // ...the record shows it redacted...
    let id = ex["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let resp = client()
        .get(format!("{base}/api/v1/executions/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let record = resp.text().await.unwrap();
    assert!(!record.contains(SECRET), "{record}");
    assert!(
        record.contains("Bearer ***") && record.contains("token was ***"),
        "{record}"
    );

    // An API key presented in the query string (as Alertmanager's URL carries it) is not
    // logged either.
    let key: serde_json::Value = client()
        .post(format!("{base}/api/v1/keys"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "am"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["value"].as_str().unwrap().to_string();
    let hook = client()
        .post(format!("{base}/hooks/no-such-workflow?x-api-key={key}"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 404);

    // ...and neither the store's files nor the logs hold it.
    server.kill().await.unwrap();
    assert_eq!(
        files_containing(logs.path(), key.as_bytes()),
        Vec::<String>::new(),
        "the API key is in the log"
    );
    assert_eq!(
        files_containing(data.path(), SECRET.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        files_containing(logs.path(), SECRET.as_bytes()),
        Vec::<String>::new()
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("request"),
        "the server logged at debug level: {log}"
    );
}
