//! Alertmanager webhook notifications (payload version 4), as every release from 0.25 on sends
//! them. Unknown fields are ignored so newer releases (`notification_reason`, `routeLabels`) parse.

use chrono::{DateTime, Utc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

/// A notification as alertflow reads it: what identifies it and its alerts. Labels,
/// annotations and URLs are checked to be what Alertmanager sends (objects of strings, strings)
/// and not kept: templates and `when` read them from the body's JSON, so keeping them here
/// would only cost each delivery an allocation per label.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: AlertStatus,
    pub receiver: String,
    #[allow(dead_code)] // checked, not kept
    #[serde(default, deserialize_with = "strings")]
    group_labels: (),
    #[allow(dead_code)] // checked, not kept
    #[serde(default, deserialize_with = "strings")]
    common_labels: (),
    #[allow(dead_code)] // checked, not kept
    #[serde(default, deserialize_with = "strings")]
    common_annotations: (),
    #[allow(dead_code)] // checked, not kept
    #[serde(default, rename = "externalURL", deserialize_with = "string")]
    external_url: (),
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: AlertStatus,
    #[allow(dead_code)] // checked, not kept
    #[serde(deserialize_with = "strings")]
    labels: (),
    #[allow(dead_code)] // checked, not kept
    #[serde(default, deserialize_with = "strings")]
    annotations: (),
    #[serde(deserialize_with = "timestamp")]
    pub starts_at: DateTime<Utc>,
    #[serde(deserialize_with = "timestamp")]
    pub ends_at: DateTime<Utc>,
    #[allow(dead_code)] // checked, not kept
    #[serde(default, rename = "generatorURL", deserialize_with = "string")]
    generator_url: (),
    pub fingerprint: String,
}

/// Why a body is not an Alertmanager v4 notification, with the path of the field that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an Alertmanager v4 notification: {field}: {message}")]
pub struct NotificationError {
    pub field: String,
    pub message: String,
}

impl Notification {
    /// Parses a webhook body. The raw bytes stay with the caller; this only reads them.
    pub fn parse(body: &[u8]) -> Result<Notification, NotificationError> {
        // Tracking the path costs as much as the parse itself, so it is only done to explain
        // a body that failed.
        let n: Notification = match serde_json::from_slice(body) {
            Ok(n) => n,
            Err(_) => return Err(Self::explain(body)),
        };
        if n.version != "4" {
            return Err(NotificationError {
                field: "version".into(),
                message: format!("expected \"4\", got {:?}", n.version),
            });
        }
        Ok(n)
    }

    /// Why a body is not a notification, naming the field.
    fn explain(body: &[u8]) -> NotificationError {
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed: Result<Notification, _> = serde_path_to_error::deserialize(&mut de);
        let e = match parsed {
            Err(e) => e,
            Ok(_) => {
                let message = de.end().err().map(|e| strip_position(&e.to_string()));
                return NotificationError {
                    field: "(root)".into(),
                    message: message.unwrap_or_else(|| "not a notification".into()),
                };
            }
        };
        let path = e.path().to_string();
        let message = strip_position(&e.into_inner().to_string());
        NotificationError {
            field: if path == "." { "(root)".into() } else { path },
            message,
        }
    }

    /// The identity used for duplicate detection: receiver, group key and the set of
    /// (fingerprint, status, startsAt, endsAt). HA peers and retries send equal identities.
    pub fn dedupe_key(&self) -> String {
        let mut members: Vec<String> = self
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{}|{:?}|{}|{}",
                    a.fingerprint,
                    a.status,
                    a.starts_at.timestamp_nanos_opt().unwrap_or_default(),
                    a.ends_at.timestamp_nanos_opt().unwrap_or_default()
                )
            })
            .collect();
        members.sort();
        members.dedup();
        let mut h = Sha256::new();
        h.update(self.receiver.as_bytes());
        h.update([0]);
        h.update(self.group_key.as_bytes());
        for m in &members {
            h.update([0]);
            h.update(m.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// RFC 3339 with any UTC offset and 0 to 9 fraction digits, normalised to UTC.
fn timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    struct Timestamp;
    impl Visitor<'_> for Timestamp {
        type Value = DateTime<Utc>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| E::custom(format!("invalid RFC 3339 timestamp {s:?}: {e}")))
        }
    }
    d.deserialize_str(Timestamp)
}

/// A JSON string, checked and not kept (nor copied).
struct AnyString;

impl<'de> Deserialize<'de> for AnyString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AnyString, D::Error> {
        struct Check;
        impl Visitor<'_> for Check {
            type Value = AnyString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyString, E> {
                Ok(AnyString)
            }
        }
        d.deserialize_str(Check)
    }
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    AnyString::deserialize(d).map(|_| ())
}

/// An object whose values are strings (labels, annotations), checked and not kept.
fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    struct Check;
    impl<'de> Visitor<'de> for Check {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of strings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_entry::<AnyString, AnyString>()?.is_some() {}
            Ok(())
        }
    }
    d.deserialize_map(Check)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = r#"{"receiver":"hook","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"},"annotations":{},"startsAt":"2026-11-23T23:07:31.32Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f1"}],"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","version":"4","groupKey":"{}:{}","truncatedAlerts":0}"#;

    #[test]
    fn accepts_offsets_and_fraction_lengths() {
        for ts in [
            "2026-11-23T23:07:31Z",
            "2026-11-23T23:07:31.1Z",
            "2026-11-23T23:07:31.123456789Z",
            "2026-11-24T01:07:31.32+02:00",
        ] {
            let body = BODY.replace("2026-11-23T23:07:31.32Z", ts);
            let n = Notification::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{ts}: {e}"));
            assert_eq!(n.alerts[0].starts_at.format("%H").to_string(), "23");
        }
    }

    #[test]
    fn ignores_fields_of_newer_releases() {
        let body = BODY.replace(
            r#""version":"4""#,
            r#""version":"4","notification_reason":"x","routeLabels":{"a":"b"}"#,
        );
        assert!(Notification::parse(body.as_bytes()).is_ok());
    }

    #[test]
    fn names_the_failing_field() {
        let body = BODY.replace(r#","fingerprint":"f1""#, "");
        let err = Notification::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.field, "alerts[0]");
        assert!(err.message.contains("fingerprint"), "{err}");

        let body = BODY.replace("2026-11-23T23:07:31.32Z", "yesterday");
        let err = Notification::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.field, "alerts[0].startsAt");

        let body = BODY.replace(r#"{"alertname":"A"}"#, r#"{"alertname":1}"#);
        let err = Notification::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.field, "alerts[0].labels.alertname");
        assert!(err.message.contains("expected a string"), "{err}");

        let body = BODY.replace(r#""commonLabels":{}"#, r#""commonLabels":[]"#);
        let err = Notification::parse(body.as_bytes()).unwrap_err();
        assert_eq!(err.field, "commonLabels");

        let body = BODY.replace(r#""externalURL":"http://am""#, r#""externalURL":null"#);
        assert_eq!(
            Notification::parse(body.as_bytes()).unwrap_err().field,
            "externalURL"
        );

        let body = BODY.replace(r#""version":"4""#, r#""version":"3""#);
        assert_eq!(
            Notification::parse(body.as_bytes()).unwrap_err().field,
            "version"
        );
        let err = Notification::parse(b"[]").unwrap_err();
        assert!(
            err.message.contains("expected struct") || err.message.contains("map"),
            "{err}"
        );
    }

    #[test]
    fn dedupe_key_ignores_alert_order_and_annotations() {
        let a = Notification::parse(BODY.as_bytes()).unwrap();
        let b = Notification::parse(
            BODY.replace(r#""annotations":{}"#, r#""annotations":{"x":"y"}"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(a.dedupe_key(), b.dedupe_key());
        let resolved = BODY.replace(
            r#""status":"firing","labels""#,
            r#""status":"resolved","labels""#,
        );
        let c = Notification::parse(resolved.as_bytes()).unwrap();
        assert_ne!(a.dedupe_key(), c.dedupe_key());
    }
}
