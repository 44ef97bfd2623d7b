//! The data dir on a small tmpfs of its own: the disk fills up under a running server, and the
//! server starts on a full or read-only disk. On a loop-mounted ext4: the file system turns
//! read-only under the running server, as it does when the kernel finds an error. Deliveries get 503 with Retry-After (Alertmanager
//! retries), the log says why once, everything answered 202 runs, the server recovers by itself
//! when the fault clears, and SQLite's integrity check passes at the end.
//!
//! Mounting needs root; without it these tests skip, unless `ALERTFLOW_E2E=require`.

use crate::alertmanager_e2e::free_port;
use crate::common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use tokio::process::{Child, Command};

/// A temporary directory something is mounted on; unmounted (lazily) on drop.
struct MountPoint(tempfile::TempDir);

impl Drop for MountPoint {
    fn drop(&mut self) {
        let _ = StdCommand::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Why a disk test cannot run here: a skip, or a failure under `ALERTFLOW_E2E=require`.
fn cannot_mount<T>(why: &str) -> Option<T> {
    if std::env::var("ALERTFLOW_E2E").as_deref() == Ok("require") {
        panic!("{why} and ALERTFLOW_E2E=require");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn succeeds(cmd: &mut StdCommand) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// A tmpfs mounted on a temporary directory.
struct Tmpfs {
    dir: MountPoint,
}

impl Tmpfs {
    fn mount(megabytes: u32) -> Option<Tmpfs> {
        let dir = MountPoint(tempfile::tempdir().unwrap());
        let mounted = succeeds(
            StdCommand::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
                .arg(dir.0.path()),
        );
        if mounted {
            return Some(Tmpfs { dir });
        }
        cannot_mount("cannot mount a tmpfs (needs root)")
    }

    fn path(&self) -> &Path {
        self.dir.0.path()
    }

    fn remount(&self, mode: &str) {
        let out = StdCommand::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {mode}: {out:?}");
    }

    /// Fills what is left of the file system; returns the filler to delete.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while f.write_all(&chunk).is_ok() {}
        // The last partial megabyte too.
        while f.write_all(&chunk[..4096]).is_ok() {}
        path
    }
}

/// An ext4 file system in an image file, loop-mounted with `errors=remount-ro` on a temporary
/// directory: the kernel can be told to find an error in it, which turns it read-only under
/// open files, as a failing disk does. Unmounted on drop.
struct Ext4 {
    dir: MountPoint,
    image: PathBuf,
    _image_dir: tempfile::TempDir,
}

impl Ext4 {
    fn mount() -> Option<Ext4> {
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let fs = Ext4 {
            dir: MountPoint(tempfile::tempdir().unwrap()),
            image,
            _image_dir: image_dir,
        };
        if succeeds(StdCommand::new("mkfs.ext4").arg("-q").arg(&fs.image))
            && fs.mount_image()
            && fs.error_trigger().is_some()
        {
            return Some(fs);
        }
        cannot_mount("cannot loop-mount an ext4 image with an error trigger (needs root, mkfs.ext4 and /sys/fs/ext4/*/trigger_fs_error)")
    }

    fn mount_image(&self) -> bool {
        succeeds(
            StdCommand::new("mount")
                .args(["-o", "loop,errors=remount-ro"])
                .arg(&self.image)
                .arg(self.path()),
        )
    }

    fn path(&self) -> &Path {
        self.dir.0.path()
    }

    /// /sys/fs/ext4/loopN/trigger_fs_error for the device mounted here.
    fn error_trigger(&self) -> Option<PathBuf> {
        let out = StdCommand::new("findmnt")
            .args(["-n", "-o", "SOURCE"])
            .arg(self.path())
            .output()
            .ok()?;
        let source = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let device = Path::new(&source).file_name()?.to_str()?.to_string();
        let trigger = PathBuf::from(format!("/sys/fs/ext4/{device}/trigger_fs_error"));
        trigger.exists().then_some(trigger)
    }

    /// The kernel finds an error: the file system turns read-only at once.
    fn fail(&self) {
        std::fs::write(self.error_trigger().unwrap(), "alertflow test").unwrap();
    }

    /// What an operator does after the error: unmount, check, mount again.
    fn repair(&self) {
        assert!(succeeds(StdCommand::new("umount").arg(self.path())));
        let _ = StdCommand::new("e2fsck")
            .args(["-f", "-y"])
            .arg(&self.image)
            .output();
        assert!(self.mount_image());
    }
}

struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(data: &Path, port: u16, log: &Path) -> Server {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_alertflow"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data)
            .env("ALERTFLOW_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_path_buf(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap() as i32;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }

    /// Posts a delivery; (status, whether Retry-After came, body); status 0 when the server
    /// is not listening (yet).
    async fn hook(&self, key: &str, body: &Value) -> (u16, bool, Value) {
        let sent = client()
            .post(format!("{}/hooks/disk", self.base))
            .header("x-api-key", key)
            .json(body)
            .send()
            .await;
        let Ok(r) = sent else {
            return (0, false, Value::Null);
        };
        let status = r.status().as_u16();
        let retry_after = r.headers().get("retry-after").is_some();
        (status, retry_after, r.json().await.unwrap_or(Value::Null))
    }

    async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = client()
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Every delivery in `accepted` (their executions) ran and succeeded, and no other
    /// delivery is on record.
    async fn ran_exactly(&self, token: &str, accepted: &[String]) {
        self.all_succeeded(token, accepted).await;
        let events = self
            .api(
                token,
                reqwest::Method::GET,
                "/events?workflow=disk&limit=1000",
                None,
            )
            .await;
        assert_eq!(events.as_array().unwrap().len(), accepted.len(), "{events}");
    }

    /// Posts deliveries until one is taken; returns its execution.
    async fn until_taken(&self, key: &str, n: i64) -> String {
        let answer = wait_for(|| async {
            let answer = self.hook(key, &json!({ "n": n })).await;
            (answer.0 == 202).then_some(answer)
        })
        .await;
        accepted_execution(&answer)
    }

    /// Waits until every execution in `ids` has succeeded.
    async fn all_succeeded(&self, token: &str, ids: &[String]) {
        for id in ids {
            let path = format!("/executions/{id}");
            let ex = wait_for(|| async {
                let ex = self.api(token, reqwest::Method::GET, &path, None).await;
                ["succeeded", "failed", "cancelled", "timed_out"]
                    .contains(&ex["status"].as_str().unwrap_or(""))
                    .then_some(ex)
            })
            .await;
            assert_eq!(ex["status"], "succeeded", "{ex}");
        }
    }
}

const WORKFLOW: &str = "name: disk\ntrigger: {type: webhook}\nsteps:\n  - {id: a, uses: transform, with: {value: '{{ trigger.n }}'}}\n";

/// Starts a server on `data`, applies the workflow and creates a key: (server, token, key).
async fn set_up(data: &Path, log: &Path) -> (Server, String, String) {
    let server = Server::start(data, free_port(), log);
    let token_file = data.join("admin-token");
    let token = wait_for(|| async { std::fs::read_to_string(&token_file).ok() })
        .await
        .trim()
        .to_string();
    wait_for(|| async {
        reqwest::get(format!("{}/readyz", server.base))
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    let resp = client()
        .post(format!("{}/api/v1/workflows", server.base))
        .bearer_auth(&token)
        .body(WORKFLOW)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let key = server
        .api(
            &token,
            reqwest::Method::POST,
            "/keys",
            Some(json!({"name": "ops"})),
        )
        .await["value"]
        .as_str()
        .unwrap()
        .to_string();
    (server, token, key)
}

async fn integrity_check(data: &Path) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}", data.join("alertflow.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (result,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    result
}

fn accepted_execution(answer: &(u16, bool, Value)) -> String {
    answer.2["executions"][0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_disk_filling_up_under_ingest_answers_503_and_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount(24) else { return };
    let logs = tempfile::tempdir().unwrap();
    let data = fs.path().join("data");
    let (server, token, key) = set_up(&data, &logs.path().join("serve.log")).await;

    let mut accepted = Vec::new();
    for n in 0..5 {
        let answer = server.hook(&key, &json!({"n": n})).await;
        assert_eq!(answer.0, 202, "{answer:?}");
        accepted.push(accepted_execution(&answer));
    }
    server.all_succeeded(&token, &accepted).await;

    // The disk fills up. The write-ahead log may still have room, so deliveries of half a
    // megabyte each go on until one needs space there is not.
    let filler = fs.fill();
    let pad = "x".repeat(512 * 1024);
    let mut refused = None;
    for n in 5..60 {
        let answer = server.hook(&key, &json!({"n": n, "pad": pad})).await;
        if answer.0 == 202 {
            accepted.push(accepted_execution(&answer));
        } else {
            refused = Some(answer);
            break;
        }
    }
    let accepted_while_filling = accepted.len() - 5;
    let (status, retry_after, body) = refused.expect("a delivery is refused on a full disk");
    assert_eq!((status, retry_after), (503, true), "{body}");
    let message = body["message"].as_str().unwrap_or("");
    assert!(message.contains("disk"), "the answer says why: {message}");
    // Still refused while the disk is full, and said once in the log.
    assert_eq!(server.hook(&key, &json!({"n": -1})).await.0, 503);
    let log = server.log();
    assert_eq!(
        log.matches("writes to the store are failing").count(),
        1,
        "{log}"
    );

    // Space returns: deliveries are taken again without a restart.
    std::fs::remove_file(filler).unwrap();
    let taken = server.until_taken(&key, 100).await;
    accepted.push(taken);
    assert!(server.log().contains("writes to the store succeed again"));

    // Every delivery answered 202 ran; none that was refused did.
    server.ran_exactly(&token, &accepted).await;
    server.stop().await;
    let integrity = integrity_check(&data).await;
    assert_eq!(integrity, "ok");
    figures(
        "a_disk_filling_up_under_ingest_answers_503_and_recovers_when_space_returns",
        json!({
            "tmpfs_mb": 24,
            "accepted_before_the_disk_filled": 5,
            "accepted_while_it_filled": accepted_while_filling,
            "refusal": format!("{status} {message}"),
            "accepted_in_all": accepted.len(),
            "runs_succeeded": accepted.len(),
            "integrity_check": integrity,
        }),
    );
}

#[tokio::test]
async fn a_read_only_or_full_disk_at_start_up_answers_503_until_it_clears() {
    let Some(fs) = Tmpfs::mount(16) else { return };
    let logs = tempfile::tempdir().unwrap();
    let data = fs.path().join("data");
    let log = logs.path().join("serve.log");
    let (server, token, key) = set_up(&data, &log).await;
    server.stop().await;

    let mut refusals = serde_json::Map::new();
    for fault in ["read-only", "full"] {
        let filler = match fault {
            "read-only" => {
                fs.remount("ro");
                None
            }
            _ => Some(fs.fill()),
        };
        let server = Server::start(&data, free_port(), &log);
        // It does not exit: it answers 503 with Retry-After and the reason.
        let (status, retry_after, body) = wait_for(|| async {
            let r = client()
                .post(format!("{}/hooks/disk", server.base))
                .header("x-api-key", &key)
                .json(&json!({"n": 1}))
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let retry_after = r.headers().get("retry-after").is_some();
            Some((status, retry_after, r.json::<Value>().await.ok()?))
        })
        .await;
        assert_eq!((status, retry_after), (503, true), "{fault}: {body}");
        let message = body["message"].as_str().unwrap_or("");
        refusals.insert(fault.to_string(), json!(format!("{status} {message}")));
        // A full disk may still leave room to open the store (SQLite's shared-memory file is
        // small); then it is the first write that is refused, which says so.
        if fault == "full" && !message.contains("cannot start yet") {
            assert!(
                message.contains("the disk holding the database is full"),
                "{message}"
            );
            assert!(
                server.log().contains("writes to the store are failing"),
                "{}",
                server.log()
            );
        } else {
            assert!(message.contains("cannot start yet"), "{fault}: {message}");
            let readyz = reqwest::get(format!("{}/readyz", server.base))
                .await
                .unwrap();
            assert_eq!(readyz.status().as_u16(), 503);
            assert!(server.log().contains("cannot start"), "{}", server.log());
        }

        // The fault clears: the same process starts and takes deliveries.
        match filler {
            None => fs.remount("rw"),
            Some(path) => std::fs::remove_file(path).unwrap(),
        }
        let taken = server.until_taken(&key, 2).await;
        server.all_succeeded(&token, &[taken]).await;
        server.stop().await;
    }
    let integrity = integrity_check(&data).await;
    assert_eq!(integrity, "ok");
    figures(
        "a_read_only_or_full_disk_at_start_up_answers_503_until_it_clears",
        json!({"answers_while_it_could_not_start": refusals, "after_the_fault_cleared": "202, run succeeded", "integrity_check": integrity}),
    );
}

#[tokio::test]
async fn a_data_dir_turning_read_only_under_ingest_answers_503_and_loses_nothing() {
    let Some(fs) = Ext4::mount() else { return };
    let logs = tempfile::tempdir().unwrap();
    let data = fs.path().join("data");
    let log = logs.path().join("serve.log");
    let (server, token, key) = set_up(&data, &log).await;
    let mut accepted = Vec::new();
    for n in 0..10 {
        let answer = server.hook(&key, &json!({"n": n})).await;
        assert_eq!(answer.0, 202, "{answer:?}");
        accepted.push(accepted_execution(&answer));
    }
    server.all_succeeded(&token, &accepted).await;

    // The file system turns read-only under the server's open files.
    fs.fail();
    let mut refusals = Vec::new();
    for n in 10..20 {
        let (status, retry_after, body) = server.hook(&key, &json!({"n": n})).await;
        assert_eq!((status, retry_after), (503, true), "{body}");
        refusals.push(body["message"].as_str().unwrap_or("").to_string());
    }
    // The API still answers from what is there.
    let ex = server
        .api(
            &token,
            reqwest::Method::GET,
            &format!("/executions/{}", accepted[0]),
            None,
        )
        .await;
    assert_eq!(ex["status"], "succeeded");
    let logged = server.log();
    assert_eq!(
        logged.matches("writes to the store are failing").count(),
        1,
        "{logged}"
    );
    server.stop().await;

    // Repaired and restarted: everything accepted before is there, and deliveries are taken.
    fs.repair();
    let server = Server::start(&data, free_port(), &log);
    let taken = server.until_taken(&key, 20).await;
    accepted.push(taken);
    server.ran_exactly(&token, &accepted).await;
    server.stop().await;
    let integrity = integrity_check(&data).await;
    assert_eq!(integrity, "ok");
    figures(
        "a_data_dir_turning_read_only_under_ingest_answers_503_and_loses_nothing",
        json!({
            "accepted_before": 10,
            "refused_while_read_only": refusals.len(),
            "refusal": format!("503 {}", refusals[0]),
            "accepted_after_repair_and_restart": 1,
            "runs_succeeded": accepted.len(),
            "integrity_check": integrity,
        }),
    );
}
