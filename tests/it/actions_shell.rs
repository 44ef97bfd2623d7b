//! `shell.exec`: arguments, environment and stdin; output captured and capped; a timeout
//! kills the process group; and the server refuses it unless started with --allow-shell.

use crate::common::*;
use crate::standin::*;
use serde_json::json;

#[tokio::test]
async fn runs_a_program_with_args_env_and_stdin() {
    let out = run_action(
        "shell.exec",
        json!({"command": "sh", "args": ["-c", "echo \"$GREETING $1\"; cat; echo oops >&2", "sh", "world; rm -rf /"],
               "env": {"GREETING": "hello"}, "stdin": "from stdin\n"}),
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        json!({"exit_code": 0, "stdout": "hello world; rm -rf /\nfrom stdin\n", "stderr": "oops\n",
               "stdout_truncated": false, "stderr_truncated": false}),
        "an argument is one argument, never shell syntax"
    );
}

#[tokio::test]
async fn the_server_environment_is_not_passed_on() {
    let out = run_action(
        "shell.exec",
        json!({"command": "env", "env": {"ONLY": "this"}}),
    )
    .await
    .unwrap();
    let names: Vec<&str> = out["stdout"]
        .as_str()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('=').map(|p| p.0))
        .collect();
    assert!(
        names.contains(&"ONLY") && names.contains(&"PATH"),
        "{names:?}"
    );
    for n in &names {
        assert!(
            ["ONLY", "PATH", "HOME", "LANG", "LC_ALL"].contains(n),
            "{n} leaked from the server: {names:?}"
        );
    }
}

#[tokio::test]
async fn a_failing_command_fails_the_step_with_its_output() {
    let script = json!([
        "-c",
        "echo partial; echo 'unit nginx.service not found' >&2; exit 3"
    ]);
    let err = run_action("shell.exec", json!({"command": "sh", "args": script}))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "\"sh\" exited with 3: unit nginx.service not found"
    );
    assert!(!err.retryable);
    let output = err.output.unwrap();
    assert_eq!(
        (output["exit_code"].as_i64(), output["stdout"].as_str()),
        (Some(3), Some("partial\n"))
    );

    let out = run_action(
        "shell.exec",
        json!({"command": "sh", "args": script, "expect_exit": [0, 3]}),
    )
    .await
    .unwrap();
    assert_eq!(out["exit_code"], 3);

    let err = run_action("shell.exec", json!({"command": "no-such-program-here"}))
        .await
        .unwrap_err();
    assert!(
        err.message
            .starts_with("with.command: cannot run \"no-such-program-here\": "),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn output_is_capped_and_the_rest_drained() {
    let out = run_action(
        "shell.exec",
        json!({"command": "sh", "args": ["-c", "head -c 300000 /dev/zero | tr '\\0' x"], "max_output": 1000}),
    )
    .await
    .unwrap();
    assert_eq!(
        out["exit_code"], 0,
        "the command was not blocked on a full pipe"
    );
    assert_eq!(out["stdout"].as_str().unwrap(), "x".repeat(1000));
    assert_eq!(out["stdout_truncated"], true);
    assert_eq!(out["stderr_truncated"], false);
}

/// Whether a process is gone (or a zombie waiting for its reaper).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn a_timeout_kills_the_command_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let err = run_action(
        "shell.exec",
        json!({"command": "sh", "args": ["-c", script], "timeout": "1s"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "\"sh\" timed out after 1s and was killed");
    assert!(err.retryable);
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    wait_for(|| async { gone(&pid).then_some(()) }).await;
}

const SHELL_DOC: &str = "
name: restart
trigger: {type: manual}
steps:
  - {id: check, uses: transform, with: {value: 1}}
  - id: restart
    uses: shell.exec
    with: {command: echo, args: [restarted, '{{ trigger.service }}']}
";

#[tokio::test]
async fn apply_refuses_shell_exec_unless_the_server_allows_it() {
    let app = spawn_app().await;
    let (status, v) = app.apply(SHELL_DOC).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["code"], "invalid_workflow");
    assert_eq!(v["details"][0]["path"], "steps[1].uses");
    let message = v["details"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("step \"restart\" uses shell.exec, which this server does not allow; start it with --allow-shell"), "{message}");
    assert_eq!(app.get("/workflows").await, json!([]));

    // Offline validation takes it: whether shell is allowed is the server's to say.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("restart.yaml");
    std::fs::write(&file, SHELL_DOC).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args(["workflows", "validate", "-f"])
        .arg(&file)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let allowed = spawn_app_with(|c| c.allow_shell = true).await;
    allowed.apply_ok(SHELL_DOC).await;
    let ex = run_workflow(&allowed, "restart", json!({"service": "nginx"})).await;
    assert_eq!(ex["status"], "succeeded", "{ex:#}");
    assert_eq!(
        step(&ex, "restart")["output"]["stdout"],
        "restarted nginx\n"
    );
}

#[tokio::test]
async fn a_restart_without_allow_shell_stops_saved_workflows_from_running_it() {
    let app = spawn_app_with(|c| c.allow_shell = true).await;
    app.apply_ok(SHELL_DOC).await;
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    let ex = run_workflow(&app, "restart", json!({"service": "nginx"})).await;
    assert_eq!(ex["status"], "failed");
    assert_eq!(
        step(&ex, "restart")["error"],
        "shell.exec is not allowed on this server: start it with --allow-shell (ALERTFLOW_ALLOW_SHELL=true)"
    );
}
