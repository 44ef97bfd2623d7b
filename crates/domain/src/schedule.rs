//! When a schedule trigger fires: a 5-field cron expression in a time zone, or a fixed interval.

use crate::workflow::Trigger;
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<Cron>, Tz),
    Every(std::time::Duration),
}

impl Schedule {
    /// The trigger's schedule; errors name the field at fault.
    pub fn of(t: &Trigger) -> Result<Schedule, (&'static str, String)> {
        match (&t.cron, t.every) {
            (Some(_), Some(_)) => Err((
                "trigger.every",
                "give either cron or every, not both".into(),
            )),
            (None, None) => Err((
                "trigger.cron",
                "a schedule trigger needs cron (or every)".into(),
            )),
            (None, Some(every)) => {
                if every.as_std() < std::time::Duration::from_secs(1) {
                    return Err(("trigger.every", "must be at least 1s".into()));
                }
                if t.timezone.is_some() {
                    return Err((
                        "trigger.timezone",
                        "only a cron schedule has a time zone".into(),
                    ));
                }
                Ok(Schedule::Every(every.as_std()))
            }
            (Some(expr), None) => {
                let tz: Tz = match &t.timezone {
                    None => Tz::UTC,
                    Some(name) => name.parse().map_err(|_| {
                        ("trigger.timezone", format!("unknown time zone {name:?} (use an IANA name such as Europe/Paris)"))
                    })?,
                };
                let fields = expr.split_whitespace().count();
                if !expr.trim_start().starts_with('@') && fields != 5 {
                    return Err(("trigger.cron", format!(
                        "{expr:?} has {fields} fields; write 5: minute hour day-of-month month day-of-week"
                    )));
                }
                let cron: Cron = expr
                    .parse()
                    .map_err(|e| ("trigger.cron", format!("{expr:?} does not parse: {e}")))?;
                Ok(Schedule::Cron(Box::new(cron), tz))
            }
        }
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                // Aligned to the interval since the epoch, so every node computes the same times.
                let step = d.as_millis().max(1) as i64;
                let ms = after.timestamp_millis();
                let next = (ms.div_euclid(step) + 1) * step;
                Utc.timestamp_millis_opt(next).single()
            }
            Schedule::Cron(cron, tz) => cron
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    pub fn next_n(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(yaml: &str) -> Trigger {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn cron_in_a_time_zone() {
        let s = Schedule::of(&trigger(
            "{type: schedule, cron: '30 9 * * 1-5', timezone: Europe/Paris}",
        ))
        .unwrap();
        // Friday 2026-11-20 10:00 UTC is 11:00 in Paris: the next is Monday 09:30 Paris = 08:30 UTC.
        let after = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let next = s.next_n(after, 2);
        assert_eq!(next[0].to_rfc3339(), "2026-11-23T08:30:00+00:00");
        assert_eq!(next[1].to_rfc3339(), "2026-11-24T08:30:00+00:00");
    }

    #[test]
    fn every_is_aligned() {
        let s = Schedule::of(&trigger("{type: schedule, every: 5m}")).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 11, 20, 10, 2, 0).unwrap();
        assert_eq!(
            s.next_after(after).unwrap().to_rfc3339(),
            "2026-11-20T10:05:00+00:00"
        );
    }

    #[test]
    fn mistakes_name_the_field() {
        let e = |y: &str| Schedule::of(&trigger(y)).unwrap_err();
        assert_eq!(e("{type: schedule, cron: '* * *'}").0, "trigger.cron");
        assert!(e("{type: schedule, cron: '61 * * * *'}")
            .1
            .contains("does not parse"));
        assert_eq!(
            e("{type: schedule, cron: '* * * * *', timezone: Mars/Base}").0,
            "trigger.timezone"
        );
        assert_eq!(e("{type: schedule}").0, "trigger.cron");
        assert_eq!(
            e("{type: schedule, every: 1s, cron: '* * * * *'}").0,
            "trigger.every"
        );
    }
}
