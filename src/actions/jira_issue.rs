//! `jira.issue`: creates an issue, comments on one, or transitions one (to Done, say) through
//! the REST API v2, which Jira Cloud and Data Center both serve and which takes plain text.
//! Auth: `user` and `token` (Cloud: e-mail and API token) as basic auth, or `token` alone as
//! a bearer personal access token (Data Center).

use super::http_util::{self, send, Reply, DEFAULT_TIMEOUT};
use super::input::{field, Input};
use super::*;
use serde_json::json;

pub struct JiraIssue;

const SERVICE: &str = "Jira";

/// The inputs each action needs besides `url` and `token`.
fn needed(action: &str) -> &'static [&'static str] {
    match action {
        "comment" => &["issue", "comment"],
        "transition" => &["issue", "transition"],
        _ => &["project", "summary"],
    }
}

#[async_trait]
impl Action for JiraIssue {
    fn name(&self) -> &'static str {
        "jira.issue"
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url", "token"],
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "The Jira site, e.g. https://acme.atlassian.net."},
                "action": {"enum": ["create", "comment", "transition"], "description": "Default create."},
                "user": {"type": "string", "description": "With token: basic auth (Jira Cloud: your e-mail)."},
                "token": {"type": "string", "description": "API token (with user), or a personal access token alone (Data Center); keep it in a secret."},
                "project": {"type": "string", "description": "Create: the project key."},
                "issue_type": {"type": "string", "description": "Create: default Task."},
                "summary": {"type": "string", "description": "Create: the title."},
                "description": {"type": "string"},
                "labels": {"type": "array", "items": {"type": "string"}},
                "priority": {"type": "string", "description": "Create: priority name (High, ...)."},
                "fields": {"type": "object", "description": "Create: more fields, as the API names them (customfield_10010: ...)."},
                "issue": {"type": "string", "description": "Comment, transition: the issue key (OPS-12) or id."},
                "comment": {"type": "string", "description": "Comment: the text; transition: a comment added with it."},
                "transition": {"type": "string", "description": "Transition: its name (Done) or id, or the name of the status it leads to."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "Create: issue id; comment: comment id."},
                "key": {"type": "string", "description": "The issue key (OPS-12)."},
                "self": {"type": "string", "description": "API URL of what was created."},
                "url": {"type": "string", "description": "Create: the issue's page."},
                "transition": {"type": "object", "description": "Transition: {id, name} applied."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let Some(action) =
            static_str(with, "action").or(with.get("action").is_none().then_some("create"))
        else {
            return vec![]; // templated: known at run time
        };
        if !["create", "comment", "transition"].contains(&action) {
            return vec![]; // the schema's enum says so
        }
        needed(action)
            .iter()
            .filter(|k| with.get(**k).is_none_or(Value::is_null))
            .map(|k| problem(k, format!("required to {action}")))
            .collect()
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let action = input.str("action").unwrap_or("create");
        let jira = Jira {
            base: input.required("url")?.trim_end_matches('/').to_string(),
            user: input.str("user").filter(|u| !u.is_empty()),
            token: input.required("token")?,
            timeout: input.duration("timeout", DEFAULT_TIMEOUT)?,
            http: &ctx.clients.http,
        };
        match action {
            "comment" => {
                let issue = input.required("issue")?;
                let path = format!("/rest/api/2/issue/{}/comment", segment(issue));
                let reply = jira
                    .call(
                        reqwest::Method::POST,
                        &path,
                        Some(json!({"body": input.required("comment")?})),
                    )
                    .await?;
                Ok(json!({"id": reply.body["id"], "key": issue, "self": reply.body["self"]}))
            }
            "transition" => transition(&jira, &input).await,
            _ => {
                let mut fields = json!({
                    "project": {"key": input.required("project")?},
                    "issuetype": {"name": input.str("issue_type").unwrap_or("Task")},
                    "summary": input.required("summary")?,
                });
                if let Some(d) = input.str("description") {
                    fields["description"] = d.into();
                }
                if let Some(l) = input.get("labels") {
                    fields["labels"] = l.clone();
                }
                if let Some(p) = input.str("priority") {
                    fields["priority"] = json!({"name": p});
                }
                if let Some(Value::Object(extra)) = input.get("fields") {
                    for (k, v) in extra {
                        fields[k] = v.clone();
                    }
                }
                let reply = jira
                    .call(
                        reqwest::Method::POST,
                        "/rest/api/2/issue",
                        Some(json!({"fields": fields})),
                    )
                    .await?;
                let b = reply.body;
                let key = b["key"].as_str().unwrap_or_default();
                Ok(
                    json!({"id": b["id"], "key": key, "self": b["self"], "url": format!("{}/browse/{key}", jira.base)}),
                )
            }
        }
    }
}

/// Finds the transition by id, name or target status, then applies it.
async fn transition(jira: &Jira<'_>, input: &Input) -> Result<Value, ActionError> {
    let issue = input.required("issue")?;
    let wanted = input.required("transition")?;
    let path = format!("/rest/api/2/issue/{}/transitions", segment(issue));
    let reply = jira.call(reqwest::Method::GET, &path, None).await?;
    let list = reply.body["transitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let is = |v: &Value| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(wanted));
    let Some(t) = list
        .iter()
        .find(|t| t["id"] == wanted || is(&t["name"]))
        .or_else(|| list.iter().find(|t| is(&t["to"]["name"])))
    else {
        let names: Vec<&str> = list.iter().filter_map(|t| t["name"].as_str()).collect();
        return Err(field(
            "transition",
            format!(
                "{issue} has no transition {wanted:?} now (available: {})",
                names.join(", ")
            ),
        ));
    };
    let mut body = json!({"transition": {"id": t["id"]}});
    if let Some(c) = input.str("comment") {
        body["update"] = json!({"comment": [{"add": {"body": c}}]});
    }
    jira.call(reqwest::Method::POST, &path, Some(body)).await?;
    Ok(json!({"key": issue, "transition": {"id": t["id"], "name": t["name"]}}))
}

struct Jira<'a> {
    base: String,
    user: Option<&'a str>,
    token: &'a str,
    timeout: std::time::Duration,
    http: &'a reqwest::Client,
}

impl Jira<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, ActionError> {
        let url = http_util::join(&self.base, path);
        let reply = send(SERVICE, self.timeout, || {
            let req = self
                .http
                .request(method.clone(), &url)
                .header("accept", "application/json");
            let req = match self.user {
                Some(u) => req.basic_auth(u, Some(self.token)),
                None => req.bearer_auth(self.token),
            };
            match &body {
                Some(b) => req.json(b),
                None => req,
            }
        })
        .await?;
        if reply.is_success() {
            return Ok(reply);
        }
        // {"errorMessages": [...], "errors": {"field": "why"}}
        let b = &reply.body;
        let mut parts: Vec<String> = b["errorMessages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        if let Some(errors) = b["errors"].as_object() {
            parts.extend(
                errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default())),
            );
        }
        if parts.is_empty() && reply.status == 401 {
            parts.push("not authenticated: check user and token".into());
        }
        if parts.is_empty() {
            parts.push(reply.plain());
        }
        Err(reply.error(SERVICE, &parts.join("; ")))
    }
}

/// An issue key or id as one path segment.
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_names_what_it_needs_at_save_time() {
        let paths = |with: Value| save_problems("jira.issue", &with);
        let base = json!({"url": "https://x.atlassian.net", "token": "t"});
        let with = |extra: Value| {
            let mut w = base.clone();
            w.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            w
        };
        assert_eq!(
            paths(base.clone()),
            vec!["project: required to create", "summary: required to create"]
        );
        assert_eq!(
            paths(with(json!({"action": "transition", "issue": "OPS-1"}))),
            vec!["transition: required to transition"]
        );
        assert_eq!(
            paths(with(json!({"action": "comment"}))),
            vec!["issue: required to comment", "comment: required to comment"]
        );
        assert!(paths(with(json!({"action": "{{ a }}"}))).is_empty());
        assert_eq!(
            paths(with(json!({"action": "close"}))),
            vec!["action: must be one of \"create\", \"comment\", \"transition\""]
        );
    }
}
