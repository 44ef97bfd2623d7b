//! `jira.issue` against a stand-in of Jira's REST API v2: basic auth, the create/comment/
//! transition endpoints and their documented errors, and issues whose status changes.

use crate::standin::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const JIRA_USER: &str = "oncall@example.com";
pub const JIRA_TOKEN: &str = "jira-api-token";

#[derive(Debug, Clone)]
pub struct Issue {
    pub fields: Value,
    pub status: String,
    pub comments: Vec<String>,
}

pub type Issues = Arc<Mutex<BTreeMap<String, Issue>>>;

fn errors(status: u16, messages: &[&str], fields: Value) -> Answer {
    Answer::json(status, json!({"errorMessages": messages, "errors": fields}))
}

/// What an issue can do from its status, as Jira's default workflow lists them.
fn transitions(status: &str) -> Value {
    match status {
        "Done" => json!([{"id": "11", "name": "Reopen", "to": {"name": "To Do"}}]),
        _ => json!([{"id": "21", "name": "Start Progress", "to": {"name": "In Progress"}},
                    {"id": "31", "name": "Resolve", "to": {"name": "Done"}}]),
    }
}

pub async fn jira() -> (StandIn, Issues) {
    let issues: Issues = Default::default();
    let state = issues.clone();
    let base: Arc<Mutex<String>> = Default::default();
    let base_in = base.clone();
    let s = StandIn::start(move |r| {
        if r.basic_auth() != Some((JIRA_USER.into(), JIRA_TOKEN.into())) {
            // Jira answers a bad login with 401 and no JSON.
            return Answer::text(401, "");
        }
        let self_base = base_in.lock().unwrap().clone();
        let body = r.json().unwrap_or(Value::Null);
        let parts: Vec<&str> = r.path.trim_start_matches("/rest/api/2/").split('/').collect();
        let mut issues = state.lock().unwrap();
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", ["issue"]) => {
                let f = &body["fields"];
                let mut errs = serde_json::Map::new();
                if f["project"]["key"] != "OPS" {
                    errs.insert("project".into(), "valid project is required".into());
                }
                if !["Task", "Bug", "Incident"].contains(&f["issuetype"]["name"].as_str().unwrap_or_default()) {
                    errs.insert("issuetype".into(), "valid issue type is required".into());
                }
                if f["summary"].as_str().is_none_or(str::is_empty) {
                    errs.insert("summary".into(), "You must specify a summary of the issue.".into());
                }
                if !errs.is_empty() {
                    return errors(400, &[], Value::Object(errs));
                }
                let n = issues.len() + 1;
                let key = format!("OPS-{n}");
                issues.insert(key.clone(), Issue { fields: f.clone(), status: "To Do".into(), comments: vec![] });
                let id = 10000 + n;
                Answer::json(201, json!({"id": id.to_string(), "key": key, "self": format!("{self_base}/rest/api/2/issue/{id}")}))
            }
            (method, ["issue", key, rest]) => {
                let Some(issue) = issues.get_mut(*key) else {
                    return errors(404, &["Issue does not exist or you do not have permission to see it."], json!({}));
                };
                match (method, *rest) {
                    ("POST", "comment") => {
                        let Some(text) = body["body"].as_str().filter(|t| !t.is_empty()) else {
                            return errors(400, &[], json!({"comment": "Comment body can not be empty!"}));
                        };
                        issue.comments.push(text.into());
                        let id = 10100 + issue.comments.len();
                        Answer::json(201, json!({"id": id.to_string(), "body": text, "self": format!("{self_base}/rest/api/2/issue/{key}/comment/{id}")}))
                    }
                    ("GET", "transitions") => Answer::json(200, json!({"expand": "transitions", "transitions": transitions(&issue.status)})),
                    ("POST", "transitions") => {
                        let id = body["transition"]["id"].as_str().unwrap_or_default();
                        let list = transitions(&issue.status);
                        let Some(t) = list.as_array().unwrap().iter().find(|t| t["id"] == id) else {
                            return errors(400, &[&format!("Transition id '{id}' is not valid for this issue.")], json!({}));
                        };
                        issue.status = t["to"]["name"].as_str().unwrap().into();
                        if let Some(c) = body["update"]["comment"][0]["add"]["body"].as_str() {
                            issue.comments.push(c.into());
                        }
                        Answer::empty(204)
                    }
                    _ => errors(405, &["Method not allowed"], json!({})),
                }
            }
            _ => errors(404, &["null for uri"], json!({})),
        }
    })
    .await;
    *base.lock().unwrap() = s.url.clone();
    (s, issues)
}

fn with(url: &str, extra: Value) -> Value {
    let mut w = json!({"url": url, "user": JIRA_USER, "token": JIRA_TOKEN});
    w.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    w
}

#[tokio::test]
async fn jira_creates_comments_and_closes_an_issue() {
    let (j, issues) = jira().await;
    let created = run_action(
        "jira.issue",
        with(&j.url, json!({"project": "OPS", "issue_type": "Incident", "summary": "DiskFull on db1",
                             "description": "97% used", "labels": ["alertflow"], "fields": {"customfield_10010": "x"}})),
    )
    .await
    .unwrap();
    assert_eq!(created["key"], "OPS-1");
    assert_eq!(created["id"], "10001");
    assert_eq!(created["url"], format!("{}/browse/OPS-1", j.url));
    let fields = issues.lock().unwrap()["OPS-1"].fields.clone();
    assert_eq!(
        fields,
        json!({"project": {"key": "OPS"}, "issuetype": {"name": "Incident"}, "summary": "DiskFull on db1",
               "description": "97% used", "labels": ["alertflow"], "customfield_10010": "x"})
    );

    let c = run_action(
        "jira.issue",
        with(
            &j.url,
            json!({"action": "comment", "issue": "OPS-1", "comment": "still firing"}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (c["id"].as_str(), c["key"].as_str()),
        (Some("10101"), Some("OPS-1"))
    );

    // Closing by the status it leads to ("Done"), though the transition is named Resolve.
    let t = run_action(
        "jira.issue",
        with(&j.url, json!({"action": "transition", "issue": "OPS-1", "transition": "done", "comment": "resolved"})),
    )
    .await
    .unwrap();
    assert_eq!(
        t,
        json!({"key": "OPS-1", "transition": {"id": "31", "name": "Resolve"}})
    );
    let issue = issues.lock().unwrap()["OPS-1"].clone();
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.comments, vec!["still firing", "resolved"]);

    // Closing it again: Jira offers no such transition now; the error lists what it offers.
    let err = run_action(
        "jira.issue",
        with(
            &j.url,
            json!({"action": "transition", "issue": "OPS-1", "transition": "Done"}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "with.transition: OPS-1 has no transition \"Done\" now (available: Reopen)"
    );
    assert!(!err.retryable);
}

#[tokio::test]
async fn jira_errors_name_the_field_jira_complained_about() {
    let (j, _) = jira().await;
    let err = run_action(
        "jira.issue",
        with(
            &j.url,
            json!({"project": "NOPE", "summary": "s", "issue_type": "Epic"}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.message,
        "Jira request rejected (HTTP 400): issuetype: valid issue type is required; project: valid project is required"
    );
    let err = run_action(
        "jira.issue",
        with(
            &j.url,
            json!({"action": "comment", "issue": "OPS-404", "comment": "x"}),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "Jira request rejected (HTTP 404): Issue does not exist or you do not have permission to see it.");
    let mut bad = with(&j.url, json!({"project": "OPS", "summary": "s"}));
    bad["token"] = "wrong".into();
    let err = run_action("jira.issue", bad).await.unwrap_err();
    assert_eq!(
        err.message,
        "Jira request rejected (HTTP 401): not authenticated: check user and token"
    );
    assert!(!err.retryable);
    // Known at run time only (a template rendered to nothing): the field is named.
    let err = run_action(
        "jira.issue",
        with(&j.url, json!({"action": "comment", "issue": "OPS-1"})),
    )
    .await
    .unwrap_err();
    assert_eq!(err.message, "with.comment: required to comment");
}

#[tokio::test]
async fn jira_bearer_token_for_data_center() {
    let s = StandIn::start(|r| {
        if r.header("authorization") == Some("Bearer pat-123") {
            Answer::json(201, json!({"id": "1", "key": "OPS-1", "self": "x"}))
        } else {
            Answer::text(401, "")
        }
    })
    .await;
    let out = run_action(
        "jira.issue",
        json!({"url": s.url, "token": "pat-123", "project": "OPS", "summary": "s"}),
    )
    .await
    .unwrap();
    assert_eq!(out["key"], "OPS-1");
}
