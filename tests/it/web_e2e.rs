//! The web UI in a real browser: `web/e2e/journey.mjs` drives Debian's Chromium through
//! playwright-core against the real `alertflow` binary on a free port. Skipped (SKIPPED on
//! stderr) without chromium, node or `web/node_modules` (`npm ci` in web/), unless
//! ALERTFLOW_E2E=require. SCREENSHOTS=DIR keeps the screenshots there (the README's come from
//! `SCREENSHOTS=$PWD/docs/screenshots`).

use crate::common::{client, e2e_binary, fixtures_dir, wait_for};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn playwright_installed(web: &Path) -> bool {
    let found = web.join("node_modules/playwright-core").is_dir();
    match (found, std::env::var("ALERTFLOW_E2E").as_deref()) {
        (true, _) => true,
        (false, Ok("require")) => {
            panic!("web/node_modules/playwright-core missing (run npm ci in web/) and ALERTFLOW_E2E=require")
        }
        (false, _) => {
            eprintln!("SKIPPED: web/node_modules/playwright-core missing (run npm ci in web/)");
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_journey_by_clicking_in_chromium() {
    let (Some(chromium), Some(node)) = (e2e_binary("chromium"), e2e_binary("node")) else {
        return;
    };
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    if !playwright_installed(&web) {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_alertflow"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data.path())
        .env("ALERTFLOW_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The first start prints the admin's password once.
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut password = None;
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(p) = line.trim().strip_prefix("password:") {
            password = Some(p.trim().to_string());
            break;
        }
    }
    let password = password.expect("serve printed the admin password");
    let http = client();
    wait_for(|| async {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    let shots = std::env::var("SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| data.path().join("screenshots"));
    let out = Command::new(node)
        .arg("e2e/journey.mjs")
        .current_dir(&web)
        .env("ALERTFLOW_URL", &base)
        .env("ADMIN_PASSWORD", &password)
        .env("CHROMIUM", chromium)
        .env("SCREENSHOTS", &shots)
        .env(
            "FIXTURE",
            fixtures_dir().join("prometheus-rule-firing.json"),
        )
        .output()
        .await
        .unwrap();
    let _ = server.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("journey: ok"),
        "the browser journey failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for page in [
        "01-sign-in",
        "06-builder-trigger",
        "10-execution",
        "13-viewer",
    ] {
        assert!(
            shots.join(format!("{page}.png")).is_file(),
            "screenshot {page}"
        );
    }
}
