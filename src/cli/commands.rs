//! What each command does.

use super::client::{enc, Client};
use super::output::{duration, indent, pretty, print_json, print_list, s};
use super::*;
use crate::actions::Registry;
use crate::config::Config;
use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

pub async fn main(cli: Cli) -> Result<()> {
    let data_dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    let format = cli.output.unwrap_or(Format::Text);
    let client = || Client::new(&cli.server, cli.token.clone(), &data_dir);
    match cli.command {
        Command::Serve(args) => serve(args, cli.data_dir, cli.config.as_deref()).await,
        Command::Migrate(args) => {
            let cfg = Config::resolve(args, cli.data_dir, cli.config.as_deref())?;
            std::fs::create_dir_all(&cfg.data_dir)?;
            let metrics = crate::metrics::Metrics::new();
            crate::open_store(&cfg.database_url, &metrics).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Keys(cmd) => keys(&client()?, cmd, format).await,
        Command::Workflows(WorkflowsCmd::Validate { file }) => validate(&file, format),
        Command::Workflows(WorkflowsCmd::Schema) => {
            print_json(&super::language::document_schema(&Registry::builtin()));
            Ok(())
        }
        Command::Workflows(WorkflowsCmd::Schedule { id }) => {
            super::language::schedule(&client()?, &id, format).await
        }
        Command::Secrets(cmd) => super::language::secrets(&client()?, cmd, format).await,
        Command::Users(cmd) => super::people::users(&client()?, cmd, format).await,
        Command::Tokens(cmd) => super::people::tokens(&client()?, cmd, format).await,
        Command::Workflows(cmd) => workflows(&client()?, cmd, cli.output).await,
        Command::Run { id, input, wait } => {
            run(&client()?, &id, input.as_deref(), wait, format).await
        }
        Command::Executions(cmd) => executions(&client()?, cmd, format).await,
        Command::Events(EventsCmd::List { workflow, limit }) => {
            events(&client()?, workflow, limit, format).await
        }
        Command::AlertmanagerConfig { id, key } => {
            alertmanager_config(&client()?, &id, &key, format).await
        }
    }
}

async fn serve(
    args: ServeArgs,
    data_dir: Option<PathBuf>,
    config: Option<&std::path::Path>,
) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ALERTFLOW_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = Config::resolve(args, data_dir, config)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    crate::run(cfg, listener).await
}

fn read_source(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))
}

async fn keys(c: &Client, cmd: KeysCmd, format: Format) -> Result<()> {
    match cmd {
        KeysCmd::Create { name } => {
            let body = serde_json::to_vec(&serde_json::json!({ "name": name }))?;
            let key = c.json(Method::POST, "/keys", Some(body)).await?;
            if format == Format::Json {
                return {
                    print_json(&key);
                    Ok(())
                };
            }
            eprintln!("Created API key {name:?}. `alertflow keys reveal {name}` shows it again.");
            println!("{}", s(&key["value"]));
        }
        KeysCmd::List => {
            let keys = c.get("/keys").await?;
            print_list(
                &keys,
                format == Format::Json,
                &["NAME", "CREATED", "LAST USED"],
                |k| vec![s(&k["name"]), s(&k["created_at"]), s(&k["last_used_at"])],
            );
        }
        KeysCmd::Reveal { name } => {
            let key = c.get(&format!("/keys/{}/value", enc(&name))).await?;
            if format == Format::Json {
                return {
                    print_json(&key);
                    Ok(())
                };
            }
            println!("{}", s(&key["value"]));
        }
        KeysCmd::Delete { name } => {
            c.json(Method::DELETE, &format!("/keys/{}", enc(&name)), None)
                .await?;
            eprintln!("Deleted API key {name:?}.");
        }
    }
    Ok(())
}

fn validate(file: &str, format: Format) -> Result<()> {
    let source = read_source(file)?;
    let result = alertflow_domain::workflow::parse(&source, &Registry::builtin());
    if format == Format::Json {
        let errors = result.as_ref().err().cloned().unwrap_or_default();
        print_json(
            &serde_json::json!({"file": file, "valid": errors.is_empty(), "errors": errors}),
        );
    }
    match result {
        Ok(wf) if format != Format::Json => {
            println!(
                "{file}: ok: workflow {} with {} step(s)",
                wf.name,
                wf.steps.len()
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(problems) => {
            if format != Format::Json {
                for p in &problems {
                    eprintln!("{file}: {p}");
                }
            }
            bail!("{} problem(s) in {file}", problems.len())
        }
    }
}

async fn workflows(c: &Client, cmd: WorkflowsCmd, format: Option<Format>) -> Result<()> {
    let json = format == Some(Format::Json);
    match cmd {
        WorkflowsCmd::Apply { file } => {
            let source = read_source(&file)?;
            let r = c
                .json(Method::POST, "/workflows", Some(source.into_bytes()))
                .await?;
            if json {
                return {
                    print_json(&r);
                    Ok(())
                };
            }
            let what = if r["created"] == true {
                "created"
            } else if r["unchanged"] == true {
                "unchanged"
            } else {
                "new version"
            };
            println!(
                "workflow {} version {} ({what})",
                s(&r["id"]),
                s(&r["version"])
            );
            if let Some(url) = r["webhook_url"].as_str() {
                println!("Workflow Webhook URL: {url}");
            }
            for w in r["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", s(w));
            }
        }
        WorkflowsCmd::List => {
            let all = c.get("/workflows").await?;
            let headers = [
                "ID",
                "VERSION",
                "TRIGGER",
                "STEPS",
                "UPDATED",
                "WEBHOOK URL",
            ];
            print_list(&all, json, &headers, |w| {
                let cols = [
                    "id",
                    "version",
                    "trigger",
                    "steps",
                    "updated_at",
                    "webhook_url",
                ];
                cols.iter().map(|c| s(&w[*c])).collect()
            });
        }
        WorkflowsCmd::Get { id, version } => {
            let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
            let w = c.get(&format!("/workflows/{}{q}", enc(&id))).await?;
            match format {
                Some(Format::Json) => print_json(&w),
                // The document as applied (comments kept) when it was YAML.
                _ => match w["source"].as_str() {
                    Some(src) if !src.trim_start().starts_with('{') => print!("{src}"),
                    _ => print!("{}", serde_yaml::to_string(&w["document"])?),
                },
            }
        }
        WorkflowsCmd::Versions { id } => {
            let v = c.get(&format!("/workflows/{}/versions", enc(&id))).await?;
            print_list(&v, json, &["VERSION", "CREATED"], |v| {
                vec![s(&v["version"]), s(&v["created_at"])]
            });
        }
        WorkflowsCmd::Delete { id } => {
            c.json(Method::DELETE, &format!("/workflows/{}", enc(&id)), None)
                .await?;
            eprintln!("Deleted workflow {id:?}; its executions stay.");
        }
        WorkflowsCmd::Validate { .. } | WorkflowsCmd::Schema | WorkflowsCmd::Schedule { .. } => {
            unreachable!("dispatched in main")
        }
    }
    Ok(())
}

async fn run(c: &Client, id: &str, input: Option<&str>, wait: bool, format: Format) -> Result<()> {
    let body = match input {
        Some(file) => read_source(file)?.into_bytes(),
        None => b"{}".to_vec(),
    };
    let r = c
        .json(
            Method::POST,
            &format!("/workflows/{}/run", enc(id)),
            Some(body),
        )
        .await?;
    let ids: Vec<String> = r["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(s)
        .collect();
    if !wait {
        if format == Format::Json {
            return {
                print_json(&r);
                Ok(())
            };
        }
        for id in &ids {
            println!("{id}");
        }
        return Ok(());
    }
    let mut failed = 0;
    for ex_id in &ids {
        let ex = follow(c, ex_id, format).await?;
        if format == Format::Json {
            print_json(&ex);
        }
        if ex["status"] != "succeeded" {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} execution(s) did not succeed", ids.len());
    }
    Ok(())
}

/// Polls an execution, printing each step as it reaches a final status.
async fn follow(c: &Client, id: &str, format: Format) -> Result<Value> {
    let mut printed = std::collections::HashSet::new();
    loop {
        let ex = c.get(&format!("/executions/{}", enc(id))).await?;
        if format == Format::Text {
            for st in ex["steps"].as_array().into_iter().flatten() {
                let status = s(&st["status"]);
                let done = !matches!(status.as_str(), "pending" | "running" | "waiting");
                if done && printed.insert(s(&st["id"])) {
                    let err = st["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default();
                    println!(
                        "  {:<10} {} ({}){err}",
                        status,
                        s(&st["id"]),
                        duration(&st["started_at"], &st["finished_at"])
                    );
                }
            }
        }
        let status = s(&ex["status"]);
        if !matches!(status.as_str(), "pending" | "running" | "waiting") {
            if format == Format::Text {
                let err = ex["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                println!("execution {id} {status}{err}");
            }
            return Ok(ex);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn executions(c: &Client, cmd: ExecutionsCmd, format: Format) -> Result<()> {
    match cmd {
        ExecutionsCmd::List {
            workflow,
            status,
            limit,
        } => {
            let mut q = format!("?limit={limit}");
            if format != Format::Json {
                q.push_str("&summary=true");
            }
            if let Some(w) = workflow {
                q.push_str(&format!("&workflow={}", enc(&w)));
            }
            if let Some(st) = status {
                q.push_str(&format!("&status={}", enc(&st)));
            }
            let all = c.get(&format!("/executions{q}")).await?;
            let headers = [
                "ID", "WORKFLOW", "VERSION", "STATUS", "TRIGGER", "CREATED", "DURATION",
            ];
            print_list(&all, format == Format::Json, &headers, |e| {
                vec![
                    s(&e["id"]),
                    s(&e["workflow"]),
                    s(&e["version"]),
                    s(&e["status"]),
                    s(&e["trigger"]["type"]),
                    s(&e["created_at"]),
                    duration(&e["started_at"], &e["finished_at"]),
                ]
            });
        }
        ExecutionsCmd::Cancel { .. }
        | ExecutionsCmd::Replay { .. }
        | ExecutionsCmd::Approve { .. }
        | ExecutionsCmd::Deny { .. } => super::language::control(c, cmd, format).await?,
        ExecutionsCmd::Get { id } => {
            let ex = c.get(&format!("/executions/{}", enc(&id))).await?;
            if format == Format::Json {
                return {
                    print_json(&ex);
                    Ok(())
                };
            }
            let (_, raw) = c
                .send(
                    Method::GET,
                    &format!("/executions/{}/input", enc(&id)),
                    None,
                )
                .await?;
            print_execution(&ex, &raw);
        }
    }
    Ok(())
}

fn print_execution(ex: &Value, raw_input: &[u8]) {
    println!("Execution  {}", s(&ex["id"]));
    println!(
        "Workflow   {} (version {})",
        s(&ex["workflow"]),
        s(&ex["version"])
    );
    println!("Status     {}", s(&ex["status"]));
    if let Some(e) = ex["error"].as_str() {
        println!("Error      {e}");
    }
    let trigger = match ex["trigger"]["event_id"].as_str() {
        Some(ev) => format!("{} (event {ev})", s(&ex["trigger"]["type"])),
        None => s(&ex["trigger"]["type"]),
    };
    println!("Trigger    {trigger}");
    if let Some(i) = ex["alert_index"].as_i64() {
        println!("Alert      #{i} of the notification (split: per_alert)");
    }
    println!("Created    {}", s(&ex["created_at"]));
    println!("Started    {}", s(&ex["started_at"]));
    println!(
        "Finished   {}  ({})",
        s(&ex["finished_at"]),
        duration(&ex["started_at"], &ex["finished_at"])
    );
    println!();
    println!("Input (as received, byte for byte):");
    println!("{}", String::from_utf8_lossy(raw_input).trim_end());
    println!();
    println!("Steps:");
    for st in ex["steps"].as_array().into_iter().flatten() {
        println!(
            "- {} ({})  {}  attempts {}  started {}  finished {}  ({})",
            s(&st["id"]),
            s(&st["uses"]),
            s(&st["status"]),
            s(&st["attempts"]),
            s(&st["started_at"]),
            s(&st["finished_at"]),
            duration(&st["started_at"], &st["finished_at"])
        );
        if !st["input"].is_null() {
            println!("  input:\n{}", indent(&pretty(&st["input"]), "    "));
        }
        if !st["output"].is_null() {
            println!("  output:\n{}", indent(&pretty(&st["output"]), "    "));
        }
        if let Some(e) = st["error"].as_str() {
            println!("  error: {e}");
        }
        for a in st["attempt_log"].as_array().into_iter().flatten() {
            if let Some(e) = a["error"].as_str() {
                println!(
                    "  attempt {} failed at {}: {e}",
                    s(&a["attempt"]),
                    s(&a["finished_at"])
                );
            }
        }
        for item in st["items"].as_array().into_iter().flatten() {
            println!(
                "  item {}: {}{}",
                s(&item["index"]),
                s(&item["status"]),
                item["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
    }
}

async fn events(c: &Client, workflow: Option<String>, limit: u32, format: Format) -> Result<()> {
    let mut q = format!("?limit={limit}");
    if let Some(w) = workflow {
        q.push_str(&format!("&workflow={}", enc(&w)));
    }
    let all = c.get(&format!("/events{q}")).await?;
    let headers = [
        "ID",
        "WORKFLOW",
        "OUTCOME",
        "STATUS",
        "RECEIVED",
        "EXECUTIONS",
        "REASON",
    ];
    print_list(&all, format == Format::Json, &headers, |e| {
        let execs: Vec<String> = e["executions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        vec![
            s(&e["id"]),
            s(&e["workflow"]),
            s(&e["outcome"]),
            s(&e["status_code"]),
            s(&e["received_at"]),
            if execs.is_empty() {
                "-".into()
            } else {
                execs.join(",")
            },
            s(&e["reason"]),
        ]
    });
    Ok(())
}

async fn alertmanager_config(c: &Client, id: &str, key: &str, format: Format) -> Result<()> {
    let wf = c.get(&format!("/workflows/{}", enc(id))).await?;
    let Some(url) = wf["webhook_url"].as_str() else {
        bail!("workflow {id:?} has a manual trigger: it has no webhook URL");
    };
    let k = c.get(&format!("/keys/{}/value", enc(key))).await?;
    let value = s(&k["value"]);
    let block = receiver_block(url, &value);
    if format == Format::Json {
        print_json(
            &serde_json::json!({"url": format!("{url}?x-api-key={}", enc(&value)), "receiver": block}),
        );
    } else {
        print!("{block}");
        eprintln!("# Route alerts to it in alertmanager.yml, e.g. route: {{receiver: 'alertflow'}} or a child route.");
    }
    Ok(())
}

/// The receiver block of the seed journey, a top-level `receivers:` list to paste into
/// alertmanager.yml unchanged.
pub fn receiver_block(webhook_url: &str, key: &str) -> String {
    format!(
        "receivers:\n- name: 'alertflow'\n  webhook_configs:\n  - send_resolved: true\n    url: '{webhook_url}?x-api-key={}'\n    max_alerts: 0\n",
        enc(key)
    )
}
