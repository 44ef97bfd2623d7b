//! Users and API tokens from the command line.

use super::client::{enc, Client};
use super::output::{print_json, print_list, s};
use super::*;
use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::json;
use std::io::Read;

/// A password from stdin, without its trailing newline.
fn password_from_stdin() -> Result<String> {
    let mut p = String::new();
    std::io::stdin()
        .read_to_string(&mut p)
        .context("reading the password from stdin")?;
    Ok(p.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn users(c: &Client, cmd: UsersCmd, format: Format) -> Result<()> {
    let out = match cmd {
        UsersCmd::Create { name, role } => {
            let body = json!({"name": name, "role": role, "password": password_from_stdin()?});
            c.json(Method::POST, "/users", Some(serde_json::to_vec(&body)?))
                .await?
        }
        UsersCmd::List => {
            let all = c.get("/users").await?;
            print_list(
                &all,
                format == Format::Json,
                &["NAME", "ROLE", "CREATED"],
                |u| vec![s(&u["name"]), s(&u["role"]), s(&u["created_at"])],
            );
            return Ok(());
        }
        UsersCmd::SetRole { name, role } => {
            let body = serde_json::to_vec(&json!({ "role": role }))?;
            c.json(Method::PATCH, &format!("/users/{}", enc(&name)), Some(body))
                .await?
        }
        UsersCmd::ResetPassword { name } => {
            let body = serde_json::to_vec(&json!({ "password": password_from_stdin()? }))?;
            c.json(Method::PATCH, &format!("/users/{}", enc(&name)), Some(body))
                .await?
        }
        UsersCmd::Delete { name } => {
            c.send(Method::DELETE, &format!("/users/{}", enc(&name)), None)
                .await?;
            json!({"name": name, "deleted": true})
        }
    };
    if format == Format::Json {
        print_json(&out);
    } else if out["deleted"] == true {
        println!("User {} deleted", s(&out["name"]));
    } else {
        println!("User {} ({})", s(&out["name"]), s(&out["role"]));
    }
    Ok(())
}

pub async fn tokens(c: &Client, cmd: TokensCmd, format: Format) -> Result<()> {
    match cmd {
        TokensCmd::Create { name } => {
            let body = serde_json::to_vec(&json!({ "name": name }))?;
            let out = c.json(Method::POST, "/tokens", Some(body)).await?;
            if format == Format::Json {
                print_json(&out);
            } else {
                // The value alone on stdout, for `$(alertflow tokens create ci)`.
                println!("{}", s(&out["value"]));
            }
        }
        TokensCmd::List => {
            let all = c.get("/tokens").await?;
            print_list(
                &all,
                format == Format::Json,
                &["NAME", "CREATED", "LAST USED"],
                |t| vec![s(&t["name"]), s(&t["created_at"]), s(&t["last_used_at"])],
            );
        }
        TokensCmd::Delete { name } => {
            c.send(Method::DELETE, &format!("/tokens/{}", enc(&name)), None)
                .await?;
            if format != Format::Json {
                println!("Token {name} deleted");
            }
        }
    }
    Ok(())
}
