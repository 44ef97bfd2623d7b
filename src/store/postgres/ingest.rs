//! Deliveries on PostgreSQL, taken together (see `batch`): one statement takes the batch's
//! duplicate locks, one checks them, one writes every event, run and job, and one COMMIT makes
//! them all durable. One transaction per delivery had cost about six round trips each.

use super::batch::BatchWrite;
use super::*;
use std::collections::HashMap;

/// Writes deliveries (see `batch`): decides each, inserts them all, and tells the other nodes
/// of runs they may take once committed.
pub(super) struct Deliveries {
    pub(super) announcer: queue::Announcer,
}

#[async_trait]
impl BatchWrite for Deliveries {
    type Item = NewEvent;
    type Out = Ingested;

    async fn write(
        &self,
        pool: &PgPool,
        events: &[&NewEvent],
    ) -> std::result::Result<Vec<Ingested>, sqlx::Error> {
        let outcomes = write_together(pool, events).await?;
        // New runs that no node holds yet, or waiting runs that a resolve brought forward. (A
        // NOTIFY is a transaction of its own, with a commit to flush.)
        let queued = events.iter().zip(&outcomes).any(|(e, o)| {
            (!o.executions.is_empty() && e.lease.is_none()) || !e.resolved_keys.is_empty()
        });
        if queued {
            self.announcer.announce();
        }
        Ok(outcomes)
    }
}

/// What the checks decided for one delivery.
struct Decision<'e> {
    outcome: &'static str,
    status_code: u16,
    reason: Option<String>,
    admitted: &'e [NewExecution],
}

async fn write_together(
    pool: &PgPool,
    events: &[&NewEvent],
) -> std::result::Result<Vec<Ingested>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let originals = lock_and_find_originals(&mut tx, events).await?;
    let decisions = decide(&mut tx, events, originals).await?;
    insert(&mut tx, events, &decisions).await?;
    mark_resolved(&mut tx, events).await?;
    touch_keys(&mut tx, events).await?;
    tx.commit().await?;
    Ok(decisions
        .into_iter()
        .map(|d| Ingested {
            outcome: d.outcome,
            executions: d.admitted.iter().map(|e| e.id.clone()).collect(),
        })
        .collect())
}

/// For each delivery with an identity, the earlier event it repeats, if one is stored. The
/// identities are locked first, in one order for every transaction (so two cannot deadlock),
/// and then looked up by a second statement: it sees what a concurrent transaction on any
/// node committed while this one waited for the lock. So HA Alertmanager peers sending the
/// same notification to two nodes start one run.
async fn lock_and_find_originals(
    c: &mut PgConnection,
    events: &[&NewEvent],
) -> std::result::Result<Vec<Option<String>>, sqlx::Error> {
    let (mut workflows, mut keys, mut since) = (vec![], vec![], vec![]);
    for ev in events {
        if let Some((key, window_ms)) = &ev.dedupe {
            workflows.push(ev.workflow_id.as_str());
            keys.push(key.as_str());
            since.push(ev.received_at - window_ms);
        }
    }
    if keys.is_empty() {
        return Ok(vec![None; events.len()]);
    }
    let identities = workflows.iter().zip(&keys).map(|(w, k)| format!("{w}:{k}"));
    lock_in_order(c, identities.collect()).await?;
    let found: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT (SELECT id FROM events e WHERE e.workflow_id = t.w AND e.dedupe_key = t.k AND e.received_at >= t.since
                   AND e.outcome IN ('started', 'filtered') LIMIT 1)
         FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS t(w, k, since, i) ORDER BY t.i",
    )
    .bind(&workflows)
    .bind(&keys)
    .bind(&since)
    .fetch_all(&mut *c)
    .await?;
    let mut found = found.into_iter();
    Ok(events
        .iter()
        .map(|ev| ev.dedupe.as_ref().and_then(|_| found.next().flatten()))
        .collect())
}

/// Each delivery's outcome, in the order they arrived: a duplicate of a stored event or of an
/// earlier one in this batch is not run; `max_runs` admits what room is left.
async fn decide<'e>(
    c: &mut PgConnection,
    events: &[&'e NewEvent],
    originals: Vec<Option<String>>,
) -> std::result::Result<Vec<Decision<'e>>, sqlx::Error> {
    lock_max_runs(c, events).await?;
    let mut first_of: HashMap<(&str, &str), &str> = HashMap::new();
    // Runs this batch admitted so far, per workflow, with their time: the count below cannot
    // see them before the batch's INSERT.
    let mut admitted_here: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut decisions = Vec::with_capacity(events.len());
    for (ev, original) in events.iter().zip(originals) {
        let identity = ev
            .dedupe
            .as_ref()
            .map(|(k, _)| (ev.workflow_id.as_str(), k.as_str()));
        let original = original.or_else(|| {
            let earlier = first_of.get(&identity?)?;
            Some(earlier.to_string())
        });
        let mut d = Decision {
            outcome: ev.outcome,
            status_code: ev.status_code,
            reason: ev.reason.clone(),
            admitted: if ev.outcome == "started" {
                &ev.executions
            } else {
                &[]
            },
        };
        if let Some(original) = original {
            d.outcome = "duplicate";
            d.status_code = 202;
            d.reason = Some(format!("same notification as event {original}"));
            d.admitted = &[];
        }
        if let (Some((count, per_ms)), false) = (ev.max_runs, d.admitted.is_empty()) {
            let since = ev.received_at - per_ms;
            let stored: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM executions WHERE workflow_id = $1 AND created_at > $2 AND event_id IS NOT NULL",
            )
            .bind(&ev.workflow_id).bind(since)
            .fetch_one(&mut *c).await?;
            let here = admitted_here.get(ev.workflow_id.as_str());
            let here = here.map_or(0, |times| times.iter().filter(|t| **t > since).count());
            let room = (count - stored - here as i64).max(0) as usize;
            if room < d.admitted.len() {
                let held = d.admitted.len() - room;
                d.reason = Some(format!(
                    "max_runs: {held} of {} run(s) held back ({count} per {}s)",
                    d.admitted.len(),
                    per_ms / 1000
                ));
                if room == 0 {
                    d.outcome = "throttled";
                }
                d.admitted = &d.admitted[..room];
            }
        }
        admitted_here
            .entry(ev.workflow_id.as_str())
            .or_default()
            .extend(d.admitted.iter().map(|_| ev.received_at));
        if let (Some(identity), "started" | "filtered") = (identity, d.outcome) {
            first_of.entry(identity).or_insert(ev.id.as_str());
        }
        decisions.push(d);
    }
    Ok(decisions)
}

/// `max_runs` is counted under a lock per workflow, so nodes together keep the limit. Taken
/// after the duplicate locks, in one order, as every transaction does.
async fn lock_max_runs(
    c: &mut PgConnection,
    events: &[&NewEvent],
) -> std::result::Result<(), sqlx::Error> {
    let limited: Vec<String> = events
        .iter()
        .filter(|e| e.max_runs.is_some() && e.outcome == "started" && !e.executions.is_empty())
        .map(|e| format!("max_runs:{}", e.workflow_id))
        .collect();
    if !limited.is_empty() {
        lock_in_order(c, limited).await?;
    }
    Ok(())
}

/// Takes a transaction-scoped advisory lock on each name (by `hashtext`, as every node does),
/// in ascending order of the lock ids, so that two transactions cannot deadlock on them.
async fn lock_in_order(
    c: &mut PgConnection,
    names: Vec<String>,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(h) FROM (
            SELECT DISTINCT hashtext(name) AS h FROM unnest($1::text[]) AS name ORDER BY h
         ) AS ordered",
    )
    .bind(names)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The events, their runs and the runs' jobs in one statement: one round trip for the batch.
/// The foreign keys are checked at the end of the statement, when the events are there. A
/// delivery with a lease has its runs stored as claimed by that node (running, claimed once),
/// which starts them at once (see `ingest::hand_over`).
async fn insert(
    c: &mut PgConnection,
    events: &[&NewEvent],
    decisions: &[Decision<'_>],
) -> std::result::Result<(), sqlx::Error> {
    let runs = || {
        events
            .iter()
            .zip(decisions)
            .flat_map(|(e, d)| d.admitted.iter().map(move |r| (*e, r)))
    };
    let text = |f: fn(&NewExecution) -> Option<&str>| runs().map(|(_, r)| f(r)).collect::<Vec<_>>();
    sqlx::query(
        "WITH stored AS (
            INSERT INTO events (id, workflow_id, received_at, outcome, status_code, reason, key_name, dedupe_key, executions, body)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])
         ), runs AS (
            INSERT INTO executions (id, event_id, created_at, workflow_id, version, status, trigger_type, alert_index, input, alert_key, lock_key, replay_of, watches_resolution, started_at)
            SELECT r.id, r.event_id, r.created_at, r.workflow_id, r.version, CASE WHEN r.owner IS NULL THEN 'pending' ELSE 'running' END,
                   r.trigger_type, r.alert_index, r.input, r.alert_key, r.lock_key, r.replay_of, r.watches_resolution,
                   CASE WHEN r.owner IS NULL THEN NULL ELSE r.created_at END
            FROM unnest($11::text[], $12::text[], $13::bigint[], $14::text[], $15::bigint[], $16::text[], $17::bigint[], $18::bytea[], $19::text[], $20::text[], $21::text[], $22::int[], $23::text[])
              AS r(id, event_id, created_at, workflow_id, version, trigger_type, alert_index, input, alert_key, lock_key, replay_of, watches_resolution, owner)
         ), queued AS (
            INSERT INTO jobs (execution_id, run_at, lease_owner, lease_until, claims)
            SELECT id, run_at, owner, until, CASE WHEN owner IS NULL THEN 0 ELSE 1 END
            FROM unnest($11::text[], $13::bigint[], $23::text[], $24::bigint[]) AS j(id, run_at, owner, until)
         )
         SELECT 1",
    )
    .bind(events.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.workflow_id.as_str()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.received_at).collect::<Vec<_>>())
    .bind(decisions.iter().map(|d| d.outcome).collect::<Vec<_>>())
    .bind(decisions.iter().map(|d| d.status_code as i64).collect::<Vec<_>>())
    .bind(decisions.iter().map(|d| d.reason.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.key_name.as_deref()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.dedupe.as_ref().map(|d| d.0.as_str())).collect::<Vec<_>>())
    .bind(decisions.iter().map(|d| run_ids(d.admitted)).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.body.as_deref()).collect::<Vec<_>>())
    .bind(text(|r| Some(r.id.as_str())))
    .bind(runs().map(|(e, _)| e.id.as_str()).collect::<Vec<_>>())
    .bind(runs().map(|(e, _)| e.received_at).collect::<Vec<_>>())
    .bind(text(|r| Some(r.workflow_id.as_str())))
    .bind(runs().map(|(_, r)| r.version).collect::<Vec<_>>())
    .bind(text(|r| Some(r.trigger_type)))
    .bind(runs().map(|(_, r)| r.alert_index).collect::<Vec<_>>())
    .bind(runs().map(|(_, r)| r.input.as_deref()).collect::<Vec<_>>())
    .bind(text(|r| r.alert_key.as_deref()))
    .bind(text(|r| r.lock_key.as_deref()))
    .bind(text(|r| r.replay_of.as_deref()))
    .bind(runs().map(|(_, r)| r.watches_resolution as i32).collect::<Vec<_>>())
    .bind(runs().map(|(e, _)| e.lease.as_ref().map(|l| l.node.as_str())).collect::<Vec<_>>())
    .bind(runs().map(|(e, _)| e.lease.as_ref().map(|l| l.until)).collect::<Vec<_>>())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The event's list of its runs, as the events page shows it.
fn run_ids(runs: &[NewExecution]) -> String {
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    serde_json::to_string(&ids).unwrap_or_default()
}

/// Runs waiting on an alert that a delivery reports resolved are marked and their jobs brought
/// forward, in one statement. As if the batch's deliveries were written one by one, a resolve
/// does not reach the runs of deliveries after it in the batch; its own delivery's run it does.
async fn mark_resolved(
    c: &mut PgConnection,
    events: &[&NewEvent],
) -> std::result::Result<(), sqlx::Error> {
    let (mut workflows, mut keys, mut times, mut positions) = (vec![], vec![], vec![], vec![]);
    for (position, ev) in events.iter().enumerate() {
        for key in &ev.resolved_keys {
            workflows.push(ev.workflow_id.as_str());
            keys.push(key.as_str());
            times.push(ev.received_at);
            positions.push(position as i64);
        }
    }
    if keys.is_empty() {
        return Ok(());
    }
    let batch: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    sqlx::query(
        "WITH woken AS (
            UPDATE executions x SET resolved_at = r.at
            FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS r(w, k, at, pos)
            WHERE x.workflow_id = r.w AND x.alert_key = r.k
              AND x.watches_resolution = 1 AND x.status IN ('pending', 'running', 'waiting') AND x.resolved_at IS NULL
              AND NOT EXISTS (SELECT 1 FROM unnest($5::text[]) WITH ORDINALITY AS b(id, n)
                              WHERE b.id = x.event_id AND b.n - 1 > r.pos)
            RETURNING x.id, x.resolved_at
         )
         UPDATE jobs j SET run_at = w.resolved_at FROM woken w WHERE j.execution_id = w.id AND j.run_at > w.resolved_at",
    )
    .bind(&workflows)
    .bind(&keys)
    .bind(&times)
    .bind(&positions)
    .bind(&batch)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// The keys' last use, at most one update per key and batch.
async fn touch_keys(
    c: &mut PgConnection,
    events: &[&NewEvent],
) -> std::result::Result<(), sqlx::Error> {
    let mut last_use: HashMap<&str, i64> = HashMap::new();
    for ev in events.iter().filter(|e| e.touch_key) {
        if let Some(name) = &ev.key_name {
            let at = last_use.entry(name.as_str()).or_insert(ev.received_at);
            *at = (*at).max(ev.received_at);
        }
    }
    if last_use.is_empty() {
        return Ok(());
    }
    let (names, times): (Vec<&str>, Vec<i64>) = last_use.into_iter().unzip();
    sqlx::query(
        "UPDATE api_keys k SET last_used_at = t.at FROM unnest($1::text[], $2::bigint[]) AS t(name, at) WHERE k.name = t.name",
    )
    .bind(&names)
    .bind(&times)
    .execute(&mut *c)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{event, manual_run, TestDb};

    fn firing(id: &str, dedupe: &str, workflow: &str, runs: &[&str], alert: &str) -> NewEvent {
        let runs = runs.iter().map(|r| NewExecution {
            workflow_id: workflow.into(),
            alert_key: Some(alert.into()),
            ..manual_run(r)
        });
        NewEvent {
            workflow_id: workflow.into(),
            executions: runs.collect(),
            ..event(id, dedupe)
        }
    }

    /// One transaction for several deliveries decides each as if they had been written one
    /// after the other, in the order they came.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_is_decided_as_if_written_one_by_one() {
        let Some(db) = TestDb::create().await else {
            return;
        };
        let store = PgStore::open(&db.url, 2).await.unwrap();
        let limited = |id: &str, runs: &[&str]| NewEvent {
            max_runs: Some((3, 60_000)),
            ..firing(id, id, "m", runs, id)
        };
        let resolving = |id: &str, alert: &str| NewEvent {
            resolved_keys: vec![alert.into()],
            ..event(id, id)
        };
        let batch = [
            firing("a", "k", "w", &["ra"], "fp"),
            firing("b", "k", "w", &["rb"], "fp"),
            resolving("c", "fp2"),
            firing("d", "d", "w", &["rd"], "fp2"),
            limited("e", &["re1", "re2"]),
            limited("f", &["rf1", "rf2"]),
            limited("g", &["rg1"]),
            resolving("h", "fp"),
        ];
        let outcomes = write_together(&store.pool, &batch.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        let got: Vec<(&str, usize)> = outcomes
            .iter()
            .map(|o| (o.outcome, o.executions.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("started", 1),
                ("duplicate", 0),
                ("started", 0),
                ("started", 1),
                ("started", 2),
                ("started", 1),
                ("throttled", 0),
                ("started", 0),
            ]
        );
        let events = store.list_events(None, 100).await.unwrap();
        let reason = |id: &str| events.iter().find(|e| e.id == id).unwrap().reason.clone();
        assert_eq!(reason("b").as_deref(), Some("same notification as event a"));
        assert_eq!(
            reason("f").as_deref(),
            Some("max_runs: 1 of 2 run(s) held back (3 per 60s)")
        );
        let resolved_at = |id: &'static str| {
            let store = &store;
            async move { store.get_execution(id).await.unwrap().0.resolved_at }
        };
        assert_eq!(resolved_at("ra").await, Some(1_000), "h came after a");
        assert_eq!(resolved_at("rd").await, None, "c came before d");
        drop(store);
        db.drop_database().await;
    }
}
