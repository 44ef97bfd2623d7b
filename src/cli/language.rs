//! Commands of the workflow language: secrets, run control (cancel, replay, approve, deny),
//! schedules, and the document's JSON Schema.

use super::client::{enc, Client};
use super::output::{print_json, print_list, s};
use super::*;
use crate::actions::Registry;
use alertflow_domain::workflow::json_schema::{self, ActionSchema};
use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Read;

pub fn document_schema(registry: &Registry) -> Value {
    let actions: Vec<ActionSchema> = registry
        .all()
        .map(|a| ActionSchema {
            name: a.name(),
            inputs: a.inputs(),
            outputs: a.outputs(),
        })
        .collect();
    json_schema::document(&actions)
}

pub async fn secrets(c: &Client, cmd: SecretsCmd, format: Format) -> Result<()> {
    match cmd {
        SecretsCmd::Set { name } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("reading the secret from stdin")?;
            let body = serde_json::to_vec(&json!({ "value": value }))?;
            let out = c
                .json(Method::PUT, &format!("/secrets/{}", enc(&name)), Some(body))
                .await?;
            if format == Format::Json {
                print_json(&out);
            } else if out["created"] == true {
                println!("Secret {name} created");
            } else {
                println!("Secret {name} updated");
            }
        }
        SecretsCmd::List => {
            let all = c.get("/secrets").await?;
            print_list(
                &all,
                format == Format::Json,
                &["NAME", "CREATED", "UPDATED"],
                |r| vec![s(&r["name"]), s(&r["created_at"]), s(&r["updated_at"])],
            );
        }
        SecretsCmd::Delete { name } => {
            c.send(Method::DELETE, &format!("/secrets/{}", enc(&name)), None)
                .await?;
            if format != Format::Json {
                println!("Secret {name} deleted");
            }
        }
    }
    Ok(())
}

pub async fn control(c: &Client, cmd: ExecutionsCmd, format: Format) -> Result<()> {
    let (path, body) = match cmd {
        ExecutionsCmd::Cancel { id } => (format!("/executions/{}/cancel", enc(&id)), json!({})),
        ExecutionsCmd::Replay {
            id,
            recorded_version,
        } => (
            format!("/executions/{}/replay", enc(&id)),
            json!({"version": if recorded_version { "recorded" } else { "current" }}),
        ),
        ExecutionsCmd::Approve { id, step, comment } => (
            format!("/executions/{}/approval", enc(&id)),
            json!({"decision": "approve", "step": step, "comment": comment}),
        ),
        ExecutionsCmd::Deny { id, step, comment } => (
            format!("/executions/{}/approval", enc(&id)),
            json!({"decision": "deny", "step": step, "comment": comment}),
        ),
        other => unreachable!(
            "not a control command: {}",
            std::any::type_name_of_val(&other)
        ),
    };
    let out = c
        .json(Method::POST, &path, Some(serde_json::to_vec(&body)?))
        .await?;
    if format == Format::Json {
        print_json(&out);
    } else if let Some(status) = out["status"].as_str() {
        println!("Execution {}: {status}", s(&out["id"]));
    } else if let Some(ids) = out["executions"].as_array() {
        for id in ids {
            println!(
                "Execution {} started (version {})",
                s(id),
                s(&out["version"])
            );
        }
    } else {
        println!(
            "Step {} of execution {}: {} by {}",
            s(&out["step"]),
            s(&out["execution"]),
            s(&out["decision"]),
            s(&out["by"])
        );
    }
    Ok(())
}

pub async fn schedule(c: &Client, id: &str, format: Format) -> Result<()> {
    let out = c.get(&format!("/workflows/{}/schedule", enc(id))).await?;
    if format == Format::Json {
        print_json(&out);
        return Ok(());
    }
    for t in out["next"].as_array().into_iter().flatten() {
        println!("{}", s(t));
    }
    Ok(())
}
