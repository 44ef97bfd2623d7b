//! `alertmanager.silence`: creates a silence through Alertmanager's API v2 (matchers default to
//! the current alert's labels), expires one by id, or lists alerts matching the matchers.

use super::http_util::{self, send, Reply, DEFAULT_TIMEOUT};
use super::input::{field, Input};
use super::*;
use serde_json::json;

pub struct AlertmanagerSilence;

const SERVICE: &str = "Alertmanager";
const DEFAULT_DURATION: std::time::Duration = std::time::Duration::from_secs(3600);

#[async_trait]
impl Action for AlertmanagerSilence {
    fn name(&self) -> &'static str {
        "alertmanager.silence"
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "Alertmanager, e.g. http://alertmanager:9093."},
                "action": {"enum": ["create", "expire", "list_alerts"], "description": "Default create."},
                "matchers": {"type": ["object", "array"],
                    "items": {"type": "object", "required": ["name", "value"], "properties": {
                        "name": {"type": "string"}, "value": {"type": "string"},
                        "isRegex": {"type": "boolean"}, "isEqual": {"type": "boolean"}}},
                    "additionalProperties": {"type": "string"},
                    "description": "label: value pairs (equality), or the API's [{name, value, isRegex, isEqual}]; default: the current alert's labels."},
                "duration": {"format": "duration", "description": "Create: how long (default 1h)."},
                "starts_at": {"type": "string", "description": "Create: RFC 3339 (default now)."},
                "comment": {"type": "string", "description": "Create: why (default names the workflow and execution)."},
                "created_by": {"type": "string", "description": "Create: default alertflow."},
                "silence_id": {"type": "string", "description": "Expire: the silence's id."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "e.g. Authorization."},
                "timeout": {"format": "duration", "description": "Per request (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "silenceID": {"type": "string"},
                "startsAt": {"type": "string"},
                "endsAt": {"type": "string"},
                "matchers": {"type": "array"},
                "url": {"type": "string", "description": "Create: the silence in Alertmanager's UI."},
                "alerts": {"type": "array", "description": "list_alerts: as the API gives them."}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        if static_str(with, "action") == Some("expire") && with.get("silence_id").is_none() {
            return vec![problem("silence_id", "required to expire")];
        }
        if let Some(s) = static_str(with, "starts_at") {
            if chrono::DateTime::parse_from_rfc3339(s).is_err() {
                return vec![problem(
                    "starts_at",
                    format!("{s:?} is not an RFC 3339 time"),
                )];
            }
        }
        vec![]
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let am = Am {
            base: input.required("url")?.trim_end_matches('/').to_string(),
            headers: input.string_map("headers"),
            timeout: input.duration("timeout", DEFAULT_TIMEOUT)?,
            http: &ctx.clients.http,
        };
        match input.str("action").unwrap_or("create") {
            "expire" => {
                let id = input.required("silence_id")?;
                let path = format!(
                    "/api/v2/silence/{}",
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                );
                am.call(reqwest::Method::DELETE, &path, None, &[]).await?;
                Ok(json!({"silenceID": id, "expired": true}))
            }
            "list_alerts" => {
                let filter: Vec<(&str, String)> = matchers(&input, ctx)?
                    .iter()
                    .map(|m| ("filter", filter_expr(m)))
                    .collect();
                let reply = am
                    .call(reqwest::Method::GET, "/api/v2/alerts", None, &filter)
                    .await?;
                Ok(json!({"alerts": reply.body}))
            }
            _ => {
                let matchers = matchers(&input, ctx)?;
                let starts = match input.str("starts_at") {
                    Some(s) => chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|e| field("starts_at", e))?
                        .with_timezone(&chrono::Utc),
                    None => chrono::Utc::now(),
                };
                let duration = input.duration("duration", DEFAULT_DURATION)?;
                let ends = starts
                    + chrono::Duration::from_std(duration).map_err(|e| field("duration", e))?;
                let fmt = |t: chrono::DateTime<chrono::Utc>| {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                };
                let comment = match input.str("comment") {
                    Some(c) => c.to_string(),
                    None => default_comment(ctx),
                };
                let silence = json!({
                    "matchers": matchers,
                    "startsAt": fmt(starts),
                    "endsAt": fmt(ends),
                    "createdBy": input.str("created_by").unwrap_or("alertflow"),
                    "comment": comment,
                });
                let reply = am
                    .call(
                        reqwest::Method::POST,
                        "/api/v2/silences",
                        Some(&silence),
                        &[],
                    )
                    .await?;
                let id = reply.body["silenceID"].as_str().unwrap_or_default();
                Ok(json!({
                    "silenceID": id,
                    "startsAt": silence["startsAt"],
                    "endsAt": silence["endsAt"],
                    "matchers": silence["matchers"],
                    "url": format!("{}/#/silences/{id}", am.base),
                }))
            }
        }
    }
}

/// The matchers as the API takes them: given, or the current alert's labels.
fn matchers(input: &Input, ctx: &ActionContext<'_>) -> Result<Vec<Value>, ActionError> {
    let equal = |labels: &serde_json::Map<String, Value>| -> Vec<Value> {
        labels
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()), "isRegex": false, "isEqual": true}))
            .collect()
    };
    let list = match input.get("matchers") {
        Some(Value::Object(m)) => equal(m),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                let mut m = m.clone();
                m["isRegex"] = m.get("isRegex").cloned().unwrap_or(json!(false));
                m["isEqual"] = m.get("isEqual").cloned().unwrap_or(json!(true));
                m
            })
            .collect(),
        _ => match current_alert(ctx).and_then(|a| a["labels"].as_object()) {
            Some(labels) => equal(labels),
            None => {
                return Err(field(
                    "matchers",
                    "required (no current alert to take the labels of)",
                ))
            }
        },
    };
    if list.is_empty() {
        // An empty matcher list is refused by Alertmanager, and would silence everything.
        return Err(field("matchers", "must not be empty"));
    }
    Ok(list)
}

/// One matcher in the filter syntax of `GET /api/v2/alerts`: `name="value"`, `name=~"re"`.
fn filter_expr(m: &Value) -> String {
    let op = match (m["isRegex"] == true, m["isEqual"] != false) {
        (false, true) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (true, false) => "!~",
    };
    let value = m["value"].as_str().unwrap_or_default();
    let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{}{op}\"{quoted}\"", m["name"].as_str().unwrap_or_default())
}

fn default_comment(ctx: &ActionContext<'_>) -> String {
    let ex = &ctx.scope["execution"];
    match (ex["workflow"].as_str(), ex["id"].as_str()) {
        (Some(w), Some(id)) => format!("Silenced by alertflow workflow {w} (execution {id})"),
        _ => "Silenced by alertflow".to_string(),
    }
}

struct Am<'a> {
    base: String,
    headers: Vec<(String, String)>,
    timeout: std::time::Duration,
    http: &'a reqwest::Client,
}

impl Am<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        query: &[(&str, String)],
    ) -> Result<Reply, ActionError> {
        let url = http_util::join(&self.base, path);
        let reply = send(SERVICE, self.timeout, || {
            let mut req = self.http.request(method.clone(), &url).query(query);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            match body {
                Some(b) => req.json(b),
                None => req,
            }
        })
        .await?;
        if !reply.is_success() {
            // Alertmanager answers errors as a JSON string ("silence invalid: ...").
            let text = reply.text();
            return Err(reply.error(SERVICE, text.trim()));
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_expressions_quote_values() {
        let m = |v: Value| filter_expr(&v);
        assert_eq!(
            m(json!({"name": "a", "value": "x", "isRegex": false, "isEqual": true})),
            r#"a="x""#
        );
        assert_eq!(
            m(json!({"name": "a", "value": "x.*", "isRegex": true, "isEqual": true})),
            r#"a=~"x.*""#
        );
        assert_eq!(
            m(json!({"name": "a", "value": "x", "isRegex": false, "isEqual": false})),
            r#"a!="x""#
        );
        assert_eq!(
            m(json!({"name": "a", "value": r#"q"\"#, "isRegex": true, "isEqual": false})),
            r#"a!~"q\"\\""#
        );
    }
}
