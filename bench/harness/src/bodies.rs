//! Alertmanager webhook bodies, and the tags that let the sink match what a workflow forwards
//! to the delivery that caused it.
//!
//! Every body is stamped for request `i` of run `RUN`:
//! - each alert gets the label `bench_id: "RUN-i"`, so `commonLabels.bench_id` carries it too
//!   (as Alertmanager would compute it: every alert of the notification has it);
//! - each alert `j` gets the annotation `bench_alert: "j"`;
//! - `groupKey` and every alert's `fingerprint` become unique to the run and request, so a
//!   server that drops duplicate notifications (alertflow does) drops none of them.
//!
//! A workflow forwards `"bench_id": "RUN-i"` (one execution per notification) or
//! `"bench_id": "RUN-i/j"` (one per alert) in the JSON it posts to the sink.

use serde_json::{json, Map, Value};
use std::path::Path;

/// Where the bodies come from.
#[derive(Debug, Clone)]
pub enum BodySource {
    /// No body (a GET, e.g. `/healthz`).
    Empty,
    /// Real Alertmanager bodies, used in turn.
    Fixtures(Vec<Value>),
    /// A generated notification of this many firing alerts.
    Generated { alerts: usize },
}

impl BodySource {
    /// `none`, `fixtures` (every `*.json` in `fixtures_dir`) or `alerts:N`.
    pub fn parse(spec: &str, fixtures_dir: &Path) -> Result<BodySource, String> {
        match spec {
            "none" => Ok(BodySource::Empty),
            "fixtures" => load_fixtures(fixtures_dir).map(BodySource::Fixtures),
            _ => match spec.strip_prefix("alerts:").map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(BodySource::Generated { alerts: n }),
                _ => Err(format!(
                    "--body {spec}: want none, fixtures or alerts:N (N > 0)"
                )),
            },
        }
    }

    /// Alerts in request `i`'s body: the executions a per-alert workflow starts for it.
    pub fn alerts_in(&self, i: u64) -> usize {
        match self {
            BodySource::Empty => 0,
            BodySource::Fixtures(f) => f[(i as usize) % f.len()]["alerts"]
                .as_array()
                .map_or(0, Vec::len),
            BodySource::Generated { alerts } => *alerts,
        }
    }

    /// Request `i`'s body, stamped for `run`; empty for [`BodySource::Empty`].
    pub fn body(&self, run: &str, i: u64) -> Vec<u8> {
        let mut v = match self {
            BodySource::Empty => return Vec::new(),
            BodySource::Fixtures(f) => f[(i as usize) % f.len()].clone(),
            BodySource::Generated { alerts } => generated_notification(*alerts),
        };
        stamp(&mut v, run, i);
        serde_json::to_vec(&v).expect("a JSON value serializes")
    }
}

/// Real bodies from a directory, in file-name order.
fn load_fixtures(dir: &Path) -> Result<Vec<Value>, String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let v: Value =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        if v.get("alerts").and_then(Value::as_array).is_none() {
            return Err(format!("{}: not an Alertmanager body", p.display()));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(format!("no *.json bodies in {}", dir.display()));
    }
    Ok(out)
}

/// A notification as Alertmanager 0.25 sends it for a group of `alerts` firing node alerts.
fn generated_notification(alerts: usize) -> Value {
    let alerts: Vec<Value> = (0..alerts)
        .map(|j| {
            json!({
                "status": "firing",
                "labels": {"alertname": "NodeHighLoad", "instance": format!("node-{j}:9100"),
                           "job": "node", "severity": "warning"},
                "annotations": {"summary": format!("load on node-{j} is above 4 for 5 minutes")},
                "startsAt": "2026-11-23T23:07:31.32Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=node_load5+%3E+4&g0.tab=1",
                "fingerprint": ""
            })
        })
        .collect();
    json!({
        "receiver": "alertflow",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {"alertname": "NodeHighLoad"},
        "commonLabels": {"alertname": "NodeHighLoad", "job": "node", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "",
        "truncatedAlerts": 0
    })
}

/// The label value that names request `i` of `run`.
pub fn request_tag(run: &str, i: u64) -> String {
    format!("{run}-{i}")
}

fn object_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v[key].is_object() {
        v[key] = Value::Object(Map::new());
    }
    v[key].as_object_mut().expect("just made an object")
}

/// Makes `v` request `i` of `run`: see the module comment.
pub fn stamp(v: &mut Value, run: &str, i: u64) {
    let tag = request_tag(run, i);
    // 16 hex digits like Alertmanager's: 4 of the run, 7 of the request, 5 of the alert.
    let run_bits = u64::from_str_radix(run, 16).unwrap_or(0) & 0xffff;
    v["groupKey"] = Value::String(format!("{{}}:{{bench_id=\"{tag}\"}}"));
    object_at(v, "commonLabels").insert("bench_id".into(), Value::String(tag.clone()));
    if let Some(alerts) = v["alerts"].as_array_mut() {
        for (j, alert) in alerts.iter_mut().enumerate() {
            alert["fingerprint"] = Value::String(format!(
                "{run_bits:04x}{:07x}{:05x}",
                i & 0xfff_ffff,
                j & 0xf_ffff
            ));
            object_at(alert, "labels").insert("bench_id".into(), Value::String(tag.clone()));
            object_at(alert, "annotations")
                .insert("bench_alert".into(), Value::String(j.to_string()));
        }
    }
}

/// What a forwarded request says it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    pub request: u64,
    /// The alert within the notification, for one execution per alert.
    pub alert: Option<u32>,
}

/// Reads `RUN-i` or `RUN-i/j`; `None` when it is malformed or from another run.
pub fn parse_origin(tag: &str, run: &str) -> Option<Origin> {
    let rest = tag.strip_prefix(run)?.strip_prefix('-')?;
    let (request, alert) = match rest.split_once('/') {
        Some((i, j)) => (i, Some(j.parse().ok()?)),
        None => (rest, None),
    };
    Some(Origin {
        request: request.parse().ok()?,
        alert,
    })
}

/// The string value of the `"bench_id"` field in a JSON body, found by scanning rather than
/// parsing so that the sink stays cheap. Whitespace around the colon is allowed; the value is
/// expected without escapes (the harness's tags never need any).
pub fn find_bench_id(body: &[u8]) -> Option<&str> {
    const FIELD: &[u8] = b"\"bench_id\"";
    let mut from = 0;
    // The name may also appear as a value; the field is the occurrence followed by a colon.
    while let Some(at) = body[from..].windows(FIELD.len()).position(|w| w == FIELD) {
        from += at + FIELD.len();
        let Some(rest) = body[from..].trim_ascii_start().strip_prefix(b":") else {
            continue;
        };
        let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
        if rest[end] == b'\\' {
            return None;
        }
        return std::str::from_utf8(&rest[..end]).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn fixtures_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/alertmanager-0.25")
    }

    fn parsed(source: &BodySource, i: u64) -> Value {
        serde_json::from_slice(&source.body("00c0ffee", i)).unwrap()
    }

    #[test]
    fn generated_notifications_have_the_asked_number_of_distinct_alerts() {
        for n in [1, 10, 1000] {
            let source = BodySource::parse(&format!("alerts:{n}"), Path::new(".")).unwrap();
            let v = parsed(&source, 7);
            let alerts = v["alerts"].as_array().unwrap();
            assert_eq!(alerts.len(), n);
            assert_eq!(source.alerts_in(7), n);
            let fingerprints: HashSet<&str> = alerts
                .iter()
                .map(|a| a["fingerprint"].as_str().unwrap())
                .collect();
            assert_eq!(fingerprints.len(), n, "every alert its own fingerprint");
            assert!(fingerprints.iter().all(|f| f.len() == 16));
            assert_eq!(v["version"], "4");
            assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        }
    }

    #[test]
    fn every_request_is_a_different_notification() {
        let source = BodySource::parse("alerts:2", Path::new(".")).unwrap();
        let (a, b) = (parsed(&source, 1), parsed(&source, 2));
        assert_ne!(a["groupKey"], b["groupKey"]);
        assert_ne!(a["alerts"][0]["fingerprint"], b["alerts"][0]["fingerprint"]);
        assert_ne!(a["alerts"][0]["fingerprint"], a["alerts"][1]["fingerprint"]);
    }

    #[test]
    fn bodies_carry_the_tags_a_workflow_forwards() {
        let source = BodySource::parse("alerts:3", Path::new(".")).unwrap();
        let v = parsed(&source, 42);
        assert_eq!(v["commonLabels"]["bench_id"], "00c0ffee-42");
        assert_eq!(v["alerts"][2]["labels"]["bench_id"], "00c0ffee-42");
        assert_eq!(v["alerts"][2]["annotations"]["bench_alert"], "2");
        // What a per-alert workflow sends back reads as alert 2 of request 42.
        let forwarded = format!(
            "{}/{}",
            v["alerts"][2]["labels"]["bench_id"].as_str().unwrap(),
            v["alerts"][2]["annotations"]["bench_alert"]
                .as_str()
                .unwrap()
        );
        assert_eq!(
            parse_origin(&forwarded, "00c0ffee"),
            Some(Origin {
                request: 42,
                alert: Some(2)
            })
        );
    }

    #[test]
    fn fixtures_are_used_in_turn_and_keep_their_content() {
        let source = BodySource::parse("fixtures", &fixtures_dir()).unwrap();
        let BodySource::Fixtures(all) = &source else {
            panic!("fixtures")
        };
        let n = all.len() as u64;
        assert!(n >= 2);
        let (first, again) = (parsed(&source, 0), parsed(&source, n));
        assert_eq!(first["receiver"], again["receiver"]);
        assert_eq!(
            first["alerts"].as_array().unwrap().len(),
            source.alerts_in(n)
        );
        assert_ne!(first["groupKey"], again["groupKey"]);
        // Everything but the stamped fields is the real body.
        assert_eq!(first["status"], all[0]["status"]);
        assert_eq!(first["externalURL"], all[0]["externalURL"]);
        assert_eq!(
            first["alerts"][0]["labels"]["alertname"],
            all[0]["alerts"][0]["labels"]["alertname"]
        );
    }

    #[test]
    fn rejects_unknown_body_specs() {
        for spec in ["alerts:0", "alerts:x", "lots"] {
            assert!(BodySource::parse(spec, Path::new(".")).is_err(), "{spec}");
        }
        assert!(BodySource::parse("fixtures", Path::new("/nonexistent")).is_err());
        assert!(BodySource::parse("none", Path::new("."))
            .unwrap()
            .body("r", 1)
            .is_empty());
    }

    #[test]
    fn origins_from_another_run_or_malformed_are_refused() {
        assert_eq!(
            parse_origin("abcd0123-17", "abcd0123"),
            Some(Origin {
                request: 17,
                alert: None
            })
        );
        assert_eq!(parse_origin("ffff0000-17", "abcd0123"), None);
        assert_eq!(parse_origin("abcd0123-", "abcd0123"), None);
        assert_eq!(parse_origin("abcd0123-3/x", "abcd0123"), None);
        assert_eq!(parse_origin("abcd012317", "abcd0123"), None);
    }

    #[test]
    fn finds_the_tag_in_the_json_each_peer_sends() {
        assert_eq!(
            find_bench_id(br#"{"text":"[FIRING] x","bench_id":"r-1"}"#),
            Some("r-1")
        );
        // Pretty-printed, and after another field whose value mentions the name.
        let pretty = b"{\n  \"text\": \"bench_id\",\n  \"bench_id\" : \"r-2/5\"\n}";
        assert_eq!(find_bench_id(pretty), Some("r-2/5"));
        assert_eq!(find_bench_id(br#"{"bench_id": 5}"#), None);
        assert_eq!(find_bench_id(br#"{"bench_id":"a\"b"}"#), None);
        assert_eq!(find_bench_id(b"{}"), None);
    }
}
