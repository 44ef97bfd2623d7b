//! `prometheus.query`: an instant (`/api/v1/query`) or range (`/api/v1/query_range`) PromQL
//! query. The output keeps the API's `resultType` and `result` and adds `value`, a plain
//! number, when the result is one sample. A Prometheus error fails the step with its
//! `errorType`.

use super::http_util::{self, send};
use super::input::{field, Input};
use super::*;
use serde_json::json;

pub struct PrometheusQuery;

const SERVICE: &str = "Prometheus";
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// About as many points as the Prometheus graph asks for when no step is given.
const DEFAULT_POINTS: f64 = 250.0;
/// Prometheus error types that another attempt can get past.
const TRANSIENT: &[&str] = &["timeout", "canceled", "unavailable", "internal"];

const TIME_HELP: &str = "RFC 3339, unix seconds, now, or a duration meaning that long ago (1h)";

#[async_trait]
impl Action for PrometheusQuery {
    fn name(&self) -> &'static str {
        "prometheus.query"
    }

    fn is_pure(&self) -> bool {
        true
    }

    fn inputs(&self) -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["url", "query"],
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "Prometheus (or a compatible API: Thanos, Mimir, VictoriaMetrics), e.g. http://prometheus:9090."},
                "query": {"type": "string", "description": "PromQL."},
                "time": {"type": ["string", "number"], "description": format!("Instant query: evaluation time ({TIME_HELP}); default now.")},
                "start": {"type": ["string", "number"], "description": format!("Range query: start ({TIME_HELP}).")},
                "end": {"type": ["string", "number"], "description": "Range query: end (default now)."},
                "step": {"format": "duration", "description": "Range query: resolution (default: the range / 250)."},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}, "description": "e.g. Authorization, X-Scope-OrgID."},
                "timeout": {"format": "duration", "description": "Query timeout, sent to Prometheus too (default 30s)."}
            }
        })
    }

    fn outputs(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "resultType": {"enum": ["vector", "matrix", "scalar", "string"]},
                "result": {"description": "As the API gives it."},
                "value": {"type": ["number", "null"], "description": "The sample's value when the result is one sample (a scalar or a one-series vector); null otherwise or when not finite."},
                "warnings": {"type": "array", "items": {"type": "string"}}
            }
        })
    }

    fn check(&self, with: &Value) -> Vec<DocError> {
        let mut out = Vec::new();
        if with.get("time").is_some() && with.get("start").is_some() {
            out.push(problem(
                "time",
                "give time (instant query) or start (range query), not both",
            ));
        }
        if with.get("start").is_none() {
            for k in ["end", "step"] {
                if with.get(k).is_some() {
                    out.push(problem(k, "only with start (a range query)"));
                }
            }
        }
        let now = 0.0;
        for k in ["time", "start", "end"] {
            if let Some(v) = with.get(k).filter(|v| !is_templated(v)) {
                if let Err(e) = unix_time(v, now) {
                    out.push(problem(k, e));
                }
            }
        }
        out
    }

    async fn run(&self, input: Value, ctx: &ActionContext<'_>) -> Result<Value, ActionError> {
        let input = Input::checked(self, input)?;
        let timeout = input.duration("timeout", DEFAULT_TIMEOUT)?;
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        let time = |k: &str| -> Result<Option<f64>, ActionError> {
            input
                .get(k)
                .map(|v| unix_time(v, now).map_err(|e| field(k, e)))
                .transpose()
        };
        let mut form: Vec<(&str, String)> = vec![
            ("query", input.required("query")?.to_string()),
            ("timeout", timeout.as_secs_f64().to_string()),
        ];
        let path = if let Some(start) = time("start")? {
            let end = time("end")?.unwrap_or(now);
            if end <= start {
                return Err(field("end", "must be after start"));
            }
            let default_step = ((end - start) / DEFAULT_POINTS).max(1.0);
            let step = match input.get("step") {
                Some(_) => input.duration("step", Default::default())?.as_secs_f64(),
                None => default_step,
            };
            form.extend([
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", step.to_string()),
            ]);
            "/api/v1/query_range"
        } else {
            form.push(("time", time("time")?.unwrap_or(now).to_string()));
            "/api/v1/query"
        };

        let url = http_util::join(input.required("url")?, path);
        let http = &ctx.clients.http;
        let headers = input.string_map("headers");
        // A little longer than the query timeout, so Prometheus can say it timed out itself.
        let wait = timeout + std::time::Duration::from_secs(5);
        let reply = send(SERVICE, wait, || {
            let mut req = http.post(&url).form(&form);
            for (k, v) in &headers {
                req = req.header(k, v);
            }
            req
        })
        .await?;
        let b = &reply.body;
        if b["status"] == "error" {
            let kind = b["errorType"].as_str().unwrap_or("error");
            let e = ActionError::permanent(format!(
                "Prometheus query failed (HTTP {}, {kind}): {}",
                reply.status,
                b["error"].as_str().unwrap_or_default()
            ))
            .with_output(json!({"status": reply.status, "errorType": kind, "error": b["error"]}));
            return Err(ActionError {
                retryable: TRANSIENT.contains(&kind) || reply.status >= 500,
                ..e
            });
        }
        if !reply.is_success() || b["status"] != "success" {
            let text = reply.text();
            return Err(reply.error(SERVICE, &text.chars().take(200).collect::<String>()));
        }
        let data = &b["data"];
        let mut out = json!({
            "resultType": data["resultType"],
            "result": data["result"],
            "value": one_sample(data),
        });
        if let Some(w) = b.get("warnings") {
            out["warnings"] = w.clone();
        }
        Ok(out)
    }
}

/// The value of a result that is one sample: a scalar, or a vector of one series.
fn one_sample(data: &Value) -> Value {
    let pair = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array() {
            Some(series) if series.len() == 1 => &series[0]["value"],
            _ => return Value::Null,
        },
        _ => return Value::Null,
    };
    // Samples are [unix_time, "value"]; NaN and ±Inf have no JSON number.
    let Some(v) = pair[1].as_str().and_then(|s| s.parse::<f64>().ok()) else {
        return Value::Null;
    };
    // Counts stay integers, so a template prints 4, not 4.0.
    if v.fract() == 0.0 && v.abs() < 9e15 {
        return Value::from(v as i64);
    }
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// A time input as unix seconds.
fn unix_time(v: &Value, now: f64) -> Result<f64, String> {
    if let Some(n) = v.as_f64() {
        return Ok(n);
    }
    let s = v.as_str().map(str::trim).unwrap_or_default();
    if s == "now" {
        return Ok(now);
    }
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis() as f64 / 1000.0);
    }
    if let Ok(ago) = s.parse::<alertflow_domain::Duration>() {
        return Ok(now - ago.as_std().as_secs_f64());
    }
    Err(format!("{s:?} is not a time: write {TIME_HELP}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_users_write() {
        let now = 1_700_000_000.0;
        assert_eq!(unix_time(&json!("now"), now), Ok(now));
        assert_eq!(unix_time(&json!(1699999000), now), Ok(1699999000.0));
        assert_eq!(unix_time(&json!("1699999000.5"), now), Ok(1699999000.5));
        assert_eq!(unix_time(&json!("1h"), now), Ok(now - 3600.0));
        assert_eq!(unix_time(&json!("2023-11-14T22:13:20Z"), now), Ok(now));
        assert!(unix_time(&json!("yesterday"), now)
            .unwrap_err()
            .contains("not a time"));
    }

    #[test]
    fn value_only_for_one_sample() {
        let v = |d: Value| one_sample(&d);
        assert_eq!(
            v(json!({"resultType": "scalar", "result": [1.0, "3.5"]})),
            json!(3.5)
        );
        assert_eq!(
            v(json!({"resultType": "vector", "result": [{"metric": {}, "value": [1, "2"]}]})),
            json!(2)
        );
        assert_eq!(
            v(json!({"resultType": "vector", "result": []})),
            Value::Null
        );
        assert_eq!(
            v(
                json!({"resultType": "vector", "result": [{"value": [1, "1"]}, {"value": [1, "2"]}]})
            ),
            Value::Null
        );
        assert_eq!(
            v(json!({"resultType": "scalar", "result": [1.0, "NaN"]})),
            Value::Null
        );
        assert_eq!(
            v(json!({"resultType": "matrix", "result": [{"values": [[1, "1"]]}]})),
            Value::Null
        );
    }

    #[test]
    fn save_time_rules() {
        let paths = |with: Value| save_problems("prometheus.query", &with);
        assert!(
            paths(json!({"url": "http://p:9090", "query": "up", "start": "1h", "step": "1m"}))
                .is_empty()
        );
        assert_eq!(
            paths(json!({"url": "http://p:9090", "query": "up", "step": "1m"})),
            vec!["step: only with start (a range query)"]
        );
        assert_eq!(
            paths(json!({"url": "http://p:9090", "query": "up", "time": "yesterday"})),
            vec![format!(
                "time: \"yesterday\" is not a time: write {TIME_HELP}"
            )]
        );
    }
}
