//! `shell.exec`: runs a program with arguments (no shell unless you run one, so templated
//! arguments cannot inject commands), with environment and stdin from templates. Output is
//! captured up to a cap; on timeout the whole process group is killed. Off unless the server
//! runs with `--allow-shell`: `apply` refuses it, and it refuses to run.

use super::input::{field, Input};
use super::*;
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub const NAME: &str = "shell.exec";

pub struct ShellExec {
    pub allowed: bool,
}

const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
const DEFAULT_MAX_OUTPUT: u64 = 64 * 1024;
/// What the command inherits from the server: never the rest, which may hold
/// ALERTFLOW_MASTER_KEY or database credentials.
const INHERITED: [&str; 4] = ["PATH", "HOME", "LANG", "LC_ALL"];

#[async_trait]
impl Action for ShellExec {
    fn name(&self) -> &'static str {
        NAME
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["command"],
            "description": "Needs the server started with --allow-shell.",
            "properties": {
                "command": {"type": "string", "description": "The program (looked up in PATH); run sh with args [-c, SCRIPT] for a shell."},
                "args": {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "description": "Its arguments, one each (no shell splitting)."},
                "env": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                        "description": "Environment variables; besides them only PATH, HOME, LANG and LC_ALL are passed on."},
                "stdin": {"type": "string", "description": "Written to the command's standard input."},
                "cwd": {"type": "string", "description": "Working directory (default: the server's)."},
                "timeout": {"format": "duration", "description": "Then its process group is killed (default 60s). Background processes it leaves are killed when it exits."},
                "max_output": {"type": "integer", "minimum": 0, "description": "Bytes of stdout and of stderr kept (default 65536); the rest is read and dropped."},
                "expect_exit": {"type": ["integer", "array"], "items": {"type": "integer"}, "description": "Exit codes that count as success (default 0)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "exit_code": {"type": ["integer", "null"], "description": "null when killed by a signal."},
                "signal": {"type": "integer", "description": "The signal that ended it, if one did."},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "stdout_truncated": {"type": "boolean"},
                "stderr_truncated": {"type": "boolean"}
            }
        })
    }

    async fn run(&self, input: Value, _: &ActionContext<'_>) -> Result<Value, ActionError> {
        if !self.allowed {
            return Err(ActionError::permanent(
                "shell.exec is not allowed on this server: start it with --allow-shell (ALERTFLOW_ALLOW_SHELL=true)",
            ));
        }
        let input = Input::checked(self, input)?;
        let program = input.required("command")?;
        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let cap = input
            .get("max_output")
            .and_then(Value::as_u64)
            .unwrap_or(DEFAULT_MAX_OUTPUT) as usize;

        let mut cmd = tokio::process::Command::new(program);
        cmd.args(input.strings("args"))
            .env_clear()
            .stdin(if input.get("stdin").is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        for k in INHERITED {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        if let Some(Value::Object(env)) = input.get("env") {
            for (k, v) in env {
                cmd.env(
                    k,
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                );
            }
        }
        if let Some(dir) = input.str("cwd") {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| field("command", format!("cannot run {program:?}: {e}")))?;
        // Killed with its group when this run ends early (the step's own timeout drops us).
        let group = GroupKill(child.id());

        if let (Some(mut pipe), Some(data)) = (child.stdin.take(), input.str("stdin")) {
            let data = data.as_bytes().to_vec();
            // A command that exits without reading its input is not an error.
            tokio::spawn(async move {
                let _ = pipe.write_all(&data).await;
            });
        }
        let out = tokio::spawn(read_capped(child.stdout.take(), cap));
        let err = tokio::spawn(read_capped(child.stderr.take(), cap));
        let waited = tokio::time::timeout(timeout, child.wait()).await;
        // The command is over, or out of time: what is left of its group goes with it, so
        // nothing holds the output pipes open.
        drop(group);
        let status = match waited {
            Ok(status) => status
                .map_err(|e| ActionError::transient(format!("waiting for {program:?}: {e}")))?,
            Err(_) => {
                let _ = child.wait().await;
                let (stdout, stderr) = (collect(out).await, collect(err).await);
                let output = record(None, None, &stdout, &stderr);
                return Err(ActionError::transient(format!(
                    "{program:?} timed out after {} and was killed",
                    alertflow_domain::Duration(timeout)
                ))
                .with_output(output));
            }
        };
        let (stdout, stderr) = (collect(out).await, collect(err).await);
        use std::os::unix::process::ExitStatusExt;
        let output = record(status.code(), status.signal(), &stdout, &stderr);
        let expected = match input.get("expect_exit") {
            Some(Value::Array(codes)) => codes.iter().filter_map(Value::as_i64).collect(),
            Some(code) => code.as_i64().into_iter().collect(),
            None => vec![0],
        };
        match status.code() {
            Some(code) if expected.contains(&(code as i64)) => Ok(output),
            code => {
                let how = match (code, status.signal()) {
                    (Some(c), _) => format!("exited with {c}"),
                    (None, Some(s)) => format!("was killed by signal {s}"),
                    _ => "ended abnormally".into(),
                };
                let tail = last_line(&stderr.0);
                let tail = if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                };
                Err(ActionError::permanent(format!("{program:?} {how}{tail}")).with_output(output))
            }
        }
    }
}

struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals the group the child leads; the
            // group id is the child's pid, set by process_group(0) at spawn.
            unsafe {
                libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
            }
        }
    }
}

/// Reads everything, keeping the first `cap` bytes, so a chatty command never blocks on a
/// full pipe; the flag says whether anything was dropped.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (vec![], false);
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        truncated |= n > room;
    }
    (kept, truncated)
}

async fn collect(h: tokio::task::JoinHandle<(Vec<u8>, bool)>) -> (Vec<u8>, bool) {
    h.await.unwrap_or_default()
}

fn record(
    code: Option<i32>,
    signal: Option<i32>,
    out: &(Vec<u8>, bool),
    err: &(Vec<u8>, bool),
) -> Value {
    let mut v = json!({
        "exit_code": code,
        "stdout": String::from_utf8_lossy(&out.0),
        "stderr": String::from_utf8_lossy(&err.0),
        "stdout_truncated": out.1,
        "stderr_truncated": err.1,
    });
    if let Some(s) = signal {
        v["signal"] = s.into();
    }
    v
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.trim_end()
        .lines()
        .last()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}
