//! `email.send` against a real SMTP server on loopback (aiosmtpd, run by smtp_server.py):
//! STARTTLS, implicit TLS and plain, auth, text and HTML. Skipped, with a message, when
//! aiosmtpd is not installed (ALERTFLOW_E2E=require makes that a failure).

use crate::common::*;
use crate::standin::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// The Python that has aiosmtpd: the one its launcher script names in its shebang.
fn smtp_python() -> Option<PathBuf> {
    let launcher = e2e_binary("aiosmtpd")?;
    let text = std::fs::read_to_string(&launcher).unwrap_or_default();
    let shebang = text.lines().next()?.strip_prefix("#!")?.trim();
    // "#!/usr/bin/python3" or "#!/usr/bin/env python3"
    let python = shebang.split_whitespace().last()?;
    Some(PathBuf::from(python))
}

struct Smtp {
    port: u16,
    out: tempfile::TempDir,
    _child: tokio::process::Child,
}

struct Tls {
    cert_pem: String,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

/// A throwaway certificate for 127.0.0.1.
fn certificate() -> Tls {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Tls {
        cert_pem: ck.cert.pem(),
        cert,
        key,
        _dir: dir,
    }
}

async fn smtp(python: &Path, mode: &str, tls: Option<&Tls>, auth: Option<(&str, &str)>) -> Smtp {
    let port = closed_port();
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/smtp_server.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(script)
        .arg(port.to_string())
        .arg(mode)
        .arg(out.path());
    if let Some(t) = tls {
        cmd.arg(&t.cert).arg(&t.key);
    }
    if let Some((u, p)) = auth {
        cmd.args([u, p]);
    }
    // stdin stays open while the test runs; the server stops when it closes. Its log (the
    // tracebacks of refused handshakes) goes beside the messages.
    let log = std::fs::File::create(out.path().join("server.log")).unwrap();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap();
    assert_eq!(
        first.as_deref(),
        Some("ready"),
        "smtp_server.py did not start"
    );
    Smtp {
        port,
        out,
        _child: child,
    }
}

impl Smtp {
    /// The messages the server accepted, in order.
    fn received(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.out.path())
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn starttls_with_auth_sends_text_and_html_to_everyone() {
    let Some(python) = smtp_python() else { return };
    let tls = certificate();
    let server = smtp(
        &python,
        "starttls",
        Some(&tls),
        Some(("alertflow", "s3cret")),
    )
    .await;
    let input = json!({
        "host": "127.0.0.1", "port": server.port, "ca_cert": tls.cert_pem,
        "username": "alertflow", "password": "s3cret",
        "from": "Alertflow <alertflow@example.com>",
        "to": ["oncall@example.com", "Lead <lead@example.com>"], "cc": "team@example.com", "bcc": ["audit@example.com"],
        "subject": "[FIRING] DiskFull on db1", "text": "Disk almost full", "html": "<p>Disk <b>almost</b> full</p>"
    });
    let out = run_action("email.send", input.clone()).await.unwrap();
    let id = out["message_id"].as_str().unwrap();
    assert!(id.starts_with('<') && id.ends_with("@example.com>"), "{id}");
    assert_eq!(
        out["recipients"],
        json!([
            "oncall@example.com",
            "lead@example.com",
            "team@example.com",
            "audit@example.com"
        ])
    );
    assert!(
        out["response"].as_str().unwrap().starts_with("250 "),
        "{out}"
    );

    let got = &server.received()[0];
    assert_eq!(got["encrypted"], true, "STARTTLS was used");
    assert_eq!(got["login"], "alertflow");
    assert_eq!(got["mail_from"], "alertflow@example.com");
    assert_eq!(got["rcpt_tos"], out["recipients"], "bcc gets it too");
    let data = got["data"].as_str().unwrap();
    for want in [
        "Subject: [FIRING] DiskFull on db1",
        &format!("Message-ID: {id}"),
        "From: Alertflow <alertflow@example.com>",
        "multipart/alternative",
        "Disk almost full",
        "<p>Disk <b>almost</b> full</p>",
    ] {
        assert!(data.contains(want), "missing {want:?} in:\n{data}");
    }
    assert!(
        !data.contains("audit@example.com"),
        "bcc is not a header:\n{data}"
    );

    // Without trusting the certificate, the same send is a TLS failure, not retried.
    let mut untrusted = input.clone();
    untrusted.as_object_mut().unwrap().remove("ca_cert");
    let err = run_action("email.send", untrusted).await.unwrap_err();
    assert!(
        err.message
            .starts_with(&format!("SMTP: TLS failure with 127.0.0.1:{}", server.port)),
        "{}",
        err.message
    );
    assert!(!err.retryable);

    // A wrong password: the server's 535, permanent.
    let mut wrong = input;
    wrong["password"] = "nope".into();
    let err = run_action("email.send", wrong).await.unwrap_err();
    assert!(
        err.message.contains("refused (reply 535)"),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn implicit_tls_on_its_own_port() {
    let Some(python) = smtp_python() else { return };
    let tls = certificate();
    let server = smtp(&python, "tls", Some(&tls), None).await;
    let out = run_action(
        "email.send",
        json!({"host": "127.0.0.1", "port": server.port, "tls": "tls", "ca_cert": tls.cert_pem,
               "from": "alertflow@example.com", "to": "oncall@example.com", "subject": "s", "html": "<i>hi</i>"}),
    )
    .await
    .unwrap();
    assert_eq!(out["recipients"], json!(["oncall@example.com"]));
    let got = &server.received()[0];
    assert_eq!(got["encrypted"], true);
    assert!(
        got["data"]
            .as_str()
            .unwrap()
            .contains("Content-Type: text/html"),
        "{got}"
    );
}

#[tokio::test]
async fn a_workflow_mails_each_alert_over_plain_smtp() {
    let Some(python) = smtp_python() else { return };
    let server = smtp(&python, "plain", None, None).await;
    let app = spawn_app().await;
    let key = app.create_key("ops").await;
    app.apply_ok(&format!(
        "
name: mail
trigger: {{type: prometheus, split: per_alert}}
steps:
  - id: mail
    uses: email.send
    with:
      host: 127.0.0.1
      port: {}
      tls: none
      from: alertflow@example.com
      to: oncall@example.com
      subject: '[{{{{ alert.status | upper }}}}] {{{{ alert.labels.alertname }}}} on {{{{ alert.labels.instance }}}}'
      text: \"Summary: {{{{ alert.annotations.summary | default('none') }}}}\"
",
        server.port
    ))
    .await;
    let (_, v) = app
        .hook("mail", &key, fixture("firing-two-alerts-truncated.json"))
        .await;
    for id in v["executions"].as_array().unwrap() {
        let ex = app.finished(id.as_str().unwrap()).await;
        assert_eq!(ex["status"], "succeeded", "{ex:#}");
        assert!(step(&ex, "mail")["output"]["message_id"].is_string());
    }
    let mut subjects: Vec<String> = server
        .received()
        .iter()
        .map(|m| {
            assert_eq!(m["encrypted"], false);
            let data = m["data"].as_str().unwrap();
            data.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap()
                .to_string()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[FIRING] DiskFull on db1:9100",
            "[FIRING] DiskFull on db2:9100"
        ]
    );
}

#[tokio::test]
async fn unreachable_smtp_is_transient() {
    let port = closed_port();
    let err = run_action(
        "email.send",
        json!({"host": "127.0.0.1", "port": port, "tls": "none", "from": "a@example.com", "to": "b@example.com",
               "subject": "s", "text": "t"}),
    )
    .await
    .unwrap_err();
    assert!(
        err.message
            .starts_with(&format!("SMTP: cannot connect to 127.0.0.1:{port}")),
        "{}",
        err.message
    );
    assert!(err.retryable);
}

#[test]
fn addresses_and_a_body_are_checked_at_save_time() {
    assert_eq!(
        save_time_problems(
            "email.send",
            json!({"host": "smtp", "from": "not an address", "to": ["ok@example.com", "nope"], "subject": "s", "username": "u"})
        ),
        vec![
            "text: required (or html)",
            "password: username and password go together",
            "from: \"not an address\" is not an address: Invalid input",
            "to[1]: \"nope\" is not an address: Invalid input",
        ]
    );
    assert!(save_time_problems(
        "email.send",
        json!({"host": "smtp", "from": "{{ f }}", "to": "{{ trigger.owner }}", "subject": "s", "text": "t"})
    )
    .is_empty());
}
