//! PostgreSQL restarted under load: deliveries during the outage are answered 503 with
//! Retry-After (Alertmanager retries those), the node reconnects by itself, and every delivery
//! answered 202 runs to the end. Uses a private PostgreSQL instance, so restarting it disturbs
//! no other test.

use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// initdb and start; None when the server binaries are missing (or we cannot run them as
    /// the postgres user), unless `ALERTFLOW_E2E=require`.
    fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file());
        let bin =
            bin.or_else(|| e2e_binary("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))?;
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL will not run as root: hand the directory to the postgres user.
        let _ = Command::new("chown")
            .args(["-R", "postgres", dir.path().to_str().unwrap()])
            .status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres { bin, dir, port };
        let ok = pg.run(
            "initdb",
            &["-D", &pg.data(), "-A", "trust", "-U", "postgres"],
        );
        if !ok {
            if std::env::var("ALERTFLOW_E2E").as_deref() == Ok("require") {
                panic!("initdb failed and ALERTFLOW_E2E=require");
            }
            eprintln!("SKIPPED: cannot initdb a private PostgreSQL here");
            return None;
        }
        assert!(pg.pg_ctl("start"), "private PostgreSQL did not start");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let tool = self.bin.join(tool);
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&tool);
            c
        } else {
            Command::new(&tool)
        };
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn pg_ctl(&self, action: &str) -> bool {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &opts,
                "-l",
                &log,
                "-w",
                "-m",
                "fast",
                action,
            ],
        )
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn running_as_root() -> bool {
    std::env::var("USER").as_deref() == Ok("root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.pg_ctl("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_answers_503_and_loses_nothing() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let url = pg.url();
    let app = spawn_app_with(|c| {
        c.database_url = url.clone();
        c.job_lease = Duration::from_secs(2);
    })
    .await;
    let key = app.create_key("ops").await;
    app.apply_ok("name: steady\ntrigger: {type: webhook}\nsteps:\n  - {id: a, uses: transform, with: {value: '{{ trigger.n }}'}}\n").await;

    // A steady sender, as Alertmanager would be.
    // (status, Retry-After, body) of each answer.
    type Answers = Arc<Mutex<Vec<(u16, Option<String>, Value)>>>;
    let answers: Answers = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sender = {
        let (answers, stop, http, base, key) = (
            answers.clone(),
            stop.clone(),
            app.http.clone(),
            app.base.clone(),
            key.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let resp = http
                    .post(format!("{base}/hooks/steady"))
                    .header("x-api-key", &key)
                    .json(&json!({"n": n}))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                if let Ok(r) = resp {
                    let status = r.status().as_u16();
                    let retry = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    answers.lock().unwrap().push((status, retry, body));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let count = |status: u16| {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.0 == status)
            .count()
    };
    wait_for(|| async { (count(202) >= 10).then_some(()) }).await;
    assert!(pg.pg_ctl("stop"));
    wait_for(|| async { (count(503) >= 3).then_some(()) }).await;
    assert!(pg.pg_ctl("start"));
    let before = count(202);
    wait_for(|| async { (count(202) >= before + 10).then_some(()) }).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    sender.await.unwrap();

    let answers = answers.lock().unwrap().clone();
    for (status, retry, body) in &answers {
        match status {
            202 => {}
            503 => assert!(retry.is_some(), "503 without Retry-After: {body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // Every accepted delivery runs to the end, the ones caught mid-run by the outage too.
    for (_, _, body) in answers.iter().filter(|a| a.0 == 202) {
        let id = body["executions"][0].as_str().unwrap();
        assert_eq!(app.finished(id).await["status"], "succeeded");
    }
    let accepted = answers.iter().filter(|a| a.0 == 202).count();
    figures(
        "a_postgres_restart_answers_503_and_loses_nothing",
        json!({
            "restarts": 1,
            "deliveries_sent": answers.len(),
            "accepted_202": accepted,
            "refused_503": answers.len() - accepted,
            "runs_succeeded": accepted,
        }),
    );
}
