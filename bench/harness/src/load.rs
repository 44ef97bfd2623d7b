//! The load generator: sends deliveries to one URL, at full speed over N connections or at a
//! fixed rate, records each answer's latency, and, with a sink, when each delivery's
//! forwarded request arrived. Prints one JSON object.
//!
//! Phases: (1) optionally retry one delivery until the target answers 2xx (a server that
//! registers its webhooks after it starts listening); (2) warm-up deliveries, not measured,
//! and wait for their executions; (3) the measured deliveries; (4) wait until every execution
//! has finished (read from a Prometheus counter, or from the sink). Everything is bounded by
//! counts and by `--timeout`.

use crate::bodies::BodySource;
use crate::pacing::Pacer;
use crate::sink::{match_arrivals, Sink, SinkReport};
use crate::stats::{percentiles, round1, round3, Percentiles};
use crate::wire::{request_head, Pool, Target};
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Target URL, e.g. http://127.0.0.1:8080/hooks/e2e
    #[arg(long)]
    url: String,
    /// POST (with a body) or GET (without)
    #[arg(long, default_value = "POST")]
    method: String,
    /// Sent as the X-API-Key header
    #[arg(long)]
    api_key: Option<String>,
    /// none, fixtures (the real bodies, in turn) or alerts:N (a generated notification of N alerts)
    #[arg(long, default_value = "fixtures")]
    body: String,
    /// Directory of real Alertmanager bodies for --body fixtures
    #[arg(long, default_value = "tests/fixtures/alertmanager-0.25")]
    fixtures: PathBuf,
    /// Measured deliveries (an upper bound when --duration ends the run first)
    #[arg(short = 'n', long, default_value_t = 5000)]
    requests: u64,
    /// Stop sending after this many seconds
    #[arg(long)]
    duration: Option<f64>,
    /// Deliveries in flight at once, at most (one keep-alive connection each)
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Send at this many deliveries per second instead of as fast as answers come back
    #[arg(long)]
    rate: Option<f64>,
    /// Deliveries sent and waited for before the measured ones, to warm the target up
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Retry the first warm-up delivery for up to this many seconds until it is answered 2xx
    #[arg(long, default_value_t = 0.0)]
    ready_timeout: f64,
    /// Serve the sink on this address (e.g. 127.0.0.1:9999) for the workflows to post to
    #[arg(long)]
    sink: Option<SocketAddr>,
    /// What the workflow forwards to the sink: one request per notification, or per alert
    #[arg(long, value_enum, default_value_t = Forwards::Notification)]
    forwards: Forwards,
    /// Prometheus text endpoint that counts finished executions
    #[arg(long)]
    done_metrics: Option<String>,
    /// The finished-executions sample there, name and labels as exposed
    #[arg(
        long,
        default_value = "alertflow_executions_total{status=\"succeeded\"}"
    )]
    done_metric: String,
    /// The target runs each execution before it answers, so an answer means it finished
    #[arg(long)]
    finished_on_ack: bool,
    /// Runtime threads for the generator (it shares the machine with the server)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, seconds
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Give up on the whole run after this many seconds
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
    /// Label for this run in the JSON output
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq)]
enum Forwards {
    Notification,
    Alert,
}

/// How many executions finished, and how fast.
#[derive(Debug, Serialize)]
struct Finished {
    /// `metrics` (a server counter) or `ack` (the target answers after running it).
    how: &'static str,
    expected: u64,
    count: u64,
    reached: bool,
    /// From the first measured delivery until the last execution was seen finished.
    seconds: f64,
    per_sec: f64,
}

#[derive(Debug, Serialize)]
struct LoadReport {
    label: String,
    url: String,
    method: String,
    body: String,
    requests: u64,
    sent: u64,
    ok: u64,
    non_2xx: u64,
    statuses: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    concurrency: usize,
    rate: Option<f64>,
    warmup: u64,
    /// --duration ended the sending before all `requests` were sent.
    duration_limited: bool,
    /// From the first measured delivery to the last answer.
    seconds: f64,
    /// 2xx answers per second over `seconds`.
    deliveries_per_sec: f64,
    /// Latency of the answers: from sending (or, at a fixed rate, from when it was due).
    ack: Option<Percentiles>,
    executions: Option<Finished>,
    sink: Option<SinkReport>,
    /// Everything sent, answered 2xx, forwarded and finished.
    complete: bool,
}

/// The answers to the measured deliveries.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    first_error: Option<String>,
    /// Requests answered 2xx, by index, to know which should reach the sink.
    ok_requests: Vec<u64>,
    last_answer_us: u64,
}

/// What every sending task shares.
struct Shared {
    pool: Pool,
    /// Request line and headers, the same for every request.
    head: String,
    get: bool,
    bodies: Vec<Bytes>,
    request_timeout: Duration,
    clock: Instant,
    /// When each measured delivery was sent (or due), microseconds on `clock`; MAX: never.
    sent_us: Vec<AtomicU64>,
    tally: Mutex<Tally>,
}

impl Shared {
    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.clock).as_micros() as u64
    }

    async fn send(&self, i: u64) -> Result<(u16, Bytes), String> {
        let body = (!self.get).then(|| &self.bodies[i as usize][..]);
        let answer =
            tokio::time::timeout(self.request_timeout, self.pool.request(&self.head, body))
                .await
                .map_err(|_| format!("timed out after {:?}", self.request_timeout))?
                .map_err(|e| format!("transport: {e}"))?;
        Ok((answer.status, answer.body))
    }

    /// Sends measured delivery `i`, timing it from `start`, and records the answer.
    async fn measured(&self, i: u64, start: Instant) {
        self.sent_us[i as usize].store(self.micros(start), Ordering::Relaxed);
        let result = self.send(i).await;
        let done = Instant::now();
        let mut t = self.tally.lock().expect("tally lock");
        t.last_answer_us = t.last_answer_us.max(self.micros(done));
        let key = match result {
            Ok((status, body)) => {
                t.latencies_us
                    .push(done.saturating_duration_since(start).as_micros() as u64);
                if let Some(outcome) = outcome_of(&body) {
                    *t.outcomes.entry(outcome).or_default() += 1;
                }
                if is_success(status) {
                    t.ok_requests.push(i);
                } else if t.first_error.is_none() {
                    let shown = &body[..body.len().min(300)];
                    t.first_error = Some(format!("{status}: {}", String::from_utf8_lossy(shown)));
                }
                status.to_string()
            }
            Err(e) => {
                t.first_error.get_or_insert(e);
                "error".to_string()
            }
        };
        *t.statuses.entry(key).or_default() += 1;
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The `outcome` of a small JSON answer (alertflow's 202 says started, duplicate or filtered).
fn outcome_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        outcome: Option<std::borrow::Cow<'a, str>>,
    }
    if body.len() > 4096 || !body.starts_with(b"{") {
        return None;
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    answer.outcome.map(|o| o.into_owned())
}

/// The value of one sample in Prometheus text exposition; `None` when absent.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

async fn read_metric(client: &reqwest::Client, url: &str, name: &str) -> Result<f64, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    // A counter not yet incremented is not exposed yet: zero so far.
    Ok(sample(&text, name).unwrap_or(0.0))
}

/// Polls `reached` every `every` until it says yes or `deadline` passes; true if reached.
async fn wait_until<F, Fut>(deadline: Instant, every: Duration, mut reached: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if reached().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

pub fn main(args: LoadArgs) -> Result<bool, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(run(args))
}

/// Refuses runs whose bodies would not fit comfortably in memory; they are all built before
/// the clock starts so that building them costs the measured run nothing.
const MAX_BODY_BYTES_IN_MEMORY: usize = 1 << 30;

async fn run(args: LoadArgs) -> Result<bool, String> {
    let get = match args.method.to_ascii_uppercase().as_str() {
        "GET" => true,
        "POST" => false,
        m => return Err(format!("--method {m}: want GET or POST")),
    };
    let source = BodySource::parse(if get { "none" } else { &args.body }, &args.fixtures)?;
    let pacer = match args.rate {
        Some(r) => Some(Pacer::new(r).ok_or(format!("--rate {r}: want a positive rate"))?),
        None => None,
    };
    let requests = match (pacer, args.duration) {
        (Some(p), Some(d)) => args
            .requests
            .min(p.count_within(Duration::from_secs_f64(d))),
        _ => args.requests,
    };
    // Unique per run, so that a target that deduplicates never sees a repeat.
    let run_id = format!(
        "{:08x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u32)
    );
    // Measured deliveries are 0..requests; warm-up ones follow.
    let total = requests + args.warmup.max(u64::from(args.ready_timeout > 0.0));
    let first_size = source.body(&run_id, 0).len().max(1);
    if first_size.saturating_mul(total as usize) > MAX_BODY_BYTES_IN_MEMORY {
        return Err(format!(
            "{total} bodies of {first_size} bytes would not fit in memory; send fewer"
        ));
    }
    let bodies: Vec<Bytes> = (0..total)
        .map(|i| Bytes::from(source.body(&run_id, i)))
        .collect();

    let clock = Instant::now();
    let deadline = clock + Duration::from_secs_f64(args.timeout);
    let sink = match args.sink {
        Some(addr) => {
            let sink = Sink::new(clock, &run_id, requests);
            sink.serve(addr)?;
            Some(sink)
        }
        None => None,
    };
    let forwarded_by = |i: u64| match args.forwards {
        Forwards::Notification => 1,
        Forwards::Alert => source.alerts_in(i) as u64,
    };

    // Only for reading the metrics, a few times a run.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs_f64(args.request_timeout))
        .build()
        .map_err(|e| e.to_string())?;
    let target = Target::parse(&args.url)?;
    let mut headers = vec![("user-agent", "Alertmanager/0.25.0")];
    if !get {
        headers.push(("content-type", "application/json"));
    }
    if let Some(k) = &args.api_key {
        headers.push(("x-api-key", k));
    }
    let shared = Arc::new(Shared {
        pool: Pool::new(&target.authority),
        head: request_head(if get { "GET" } else { "POST" }, &target, &headers),
        get,
        bodies,
        request_timeout: Duration::from_secs_f64(args.request_timeout),
        clock,
        sent_us: (0..requests).map(|_| AtomicU64::new(u64::MAX)).collect(),
        tally: Mutex::new(Tally::default()),
    });
    let metric = |client: reqwest::Client| {
        let url = args.done_metrics.clone();
        let name = args.done_metric.clone();
        async move {
            match url {
                Some(url) => read_metric(&client, &url, &name).await.map(Some),
                None => Ok(None),
            }
        }
    };

    // (1) and (2): readiness and warm-up, outside the measurement.
    let before_warmup = metric(client.clone()).await?;
    let mut warm_next = requests;
    if args.ready_timeout > 0.0 {
        let ready_by = Instant::now() + Duration::from_secs_f64(args.ready_timeout);
        let s = shared.clone();
        let ready = wait_until(ready_by, Duration::from_millis(100), || {
            let s = s.clone();
            async move { matches!(s.send(requests).await, Ok((st, _)) if is_success(st)) }
        })
        .await;
        if !ready {
            return Err(format!(
                "{} answered no 2xx within {} s",
                redact(&args.url),
                args.ready_timeout
            ));
        }
        warm_next += 1;
    }
    let warm_end = total;
    let next = Arc::new(AtomicUsize::new(warm_next as usize));
    let mut warmers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (s, next) = (shared.clone(), next.clone());
        warmers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= warm_end || Instant::now() >= deadline {
                    break;
                }
                let _ = s.send(i).await;
            }
        }));
    }
    for w in warmers {
        w.await.map_err(|e| e.to_string())?;
    }
    let warm_executions: u64 = (requests..warm_end).map(forwarded_by).sum();
    if warm_executions > 0 {
        // Let the warm-up's executions finish so that they do not count, nor compete.
        let settle_by = (Instant::now() + Duration::from_secs(60)).min(deadline);
        if let (Some(base), Some(url)) = (before_warmup, &args.done_metrics) {
            let (c, name) = (client.clone(), args.done_metric.clone());
            wait_until(settle_by, Duration::from_millis(50), || {
                let (c, name) = (c.clone(), name.clone());
                async move {
                    read_metric(&c, url, &name)
                        .await
                        .is_ok_and(|v| v - base >= warm_executions as f64)
                }
            })
            .await;
        }
    }
    let baseline = metric(client.clone()).await?;

    // (3) The measured deliveries.
    let started = Instant::now();
    let duration_end = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let send_until = duration_end.unwrap_or(deadline).min(deadline);
    match pacer {
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..args.concurrency.max(1) {
                let (s, next) = (shared.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                        let now = Instant::now();
                        if i >= requests || now >= send_until {
                            break;
                        }
                        s.measured(i, now).await;
                    }
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())?;
            }
        }
        Some(pacer) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            // The count already fits the duration; a generator running late sends the rest
            // at once rather than dropping them, and their latency counts from when they were due.
            for i in 0..requests {
                let wait = pacer.wait_before(i, started.elapsed());
                // Only a real wait sleeps: tokio's timer ticks in milliseconds, so even a zero
                // sleep could cost a tick per request and hold the rate below 1,000/s.
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                let due = started + pacer.due(i);
                if Instant::now() >= deadline {
                    break;
                }
                // When every connection is busy this waits; the latency still counts from `due`.
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| e.to_string())?;
                let s = shared.clone();
                tasks.spawn(async move {
                    s.measured(i, due).await;
                    drop(permit);
                });
            }
            while let Some(r) = tasks.join_next().await {
                r.map_err(|e| e.to_string())?;
            }
        }
    }

    let (latencies, statuses, outcomes, first_error, ok_requests, last_answer_us) = {
        let mut t = shared.tally.lock().expect("tally lock");
        let t = std::mem::take(&mut *t);
        (
            t.latencies_us,
            t.statuses,
            t.outcomes,
            t.first_error,
            t.ok_requests,
            t.last_answer_us,
        )
    };
    let started_us = shared.micros(started);
    let load_secs = (last_answer_us.saturating_sub(started_us) as f64 / 1e6).max(1e-6);
    let sent: u64 = statuses.values().sum();
    let ok = ok_requests.len() as u64;
    let expected_executions: u64 = ok_requests.iter().map(|&i| forwarded_by(i)).sum();

    // (4) Wait for the executions to finish.
    let executions = if let (Some(base), Some(url)) = (baseline, &args.done_metrics) {
        let (c, name) = (client.clone(), args.done_metric.clone());
        let last = Arc::new(Mutex::new(0.0));
        let seen = last.clone();
        let reached = wait_until(deadline, Duration::from_millis(50), || {
            let (c, name, seen) = (c.clone(), name.clone(), seen.clone());
            async move {
                match read_metric(&c, url, &name).await {
                    Ok(v) => {
                        *seen.lock().expect("lock") = v - base;
                        v - base >= expected_executions as f64
                    }
                    Err(_) => false,
                }
            }
        })
        .await;
        let secs = started.elapsed().as_secs_f64();
        let count = *last.lock().expect("lock") as u64;
        Some(Finished {
            how: "metrics",
            expected: expected_executions,
            count,
            reached,
            seconds: round3(secs),
            per_sec: round1(count as f64 / secs),
        })
    } else if args.finished_on_ack {
        Some(Finished {
            how: "ack",
            expected: sent,
            count: ok,
            reached: ok == sent,
            seconds: round3(load_secs),
            per_sec: round1(ok as f64 / load_secs),
        })
    } else {
        None
    };
    let sink_report = match &sink {
        Some(sink) => {
            wait_until(deadline, Duration::from_millis(10), || async {
                sink.measured_arrivals() >= expected_executions
            })
            .await;
            let sent_us: Vec<Option<u64>> = shared
                .sent_us
                .iter()
                .map(|a| Some(a.load(Ordering::Relaxed)).filter(|&us| us != u64::MAX))
                .collect();
            Some(match_arrivals(
                &sink.arrivals(),
                &sent_us,
                expected_executions,
            ))
        }
        None => None,
    };

    // A run that --duration ended before the count is complete with what it sent.
    let duration_limited = sent < requests && duration_end.is_some_and(|end| end < deadline);
    let complete = (sent == requests || duration_limited)
        && ok == sent
        && executions.as_ref().is_none_or(|e| e.reached)
        && sink_report.as_ref().is_none_or(|s| s.missing == 0);
    let report = LoadReport {
        label: args.label.clone(),
        url: redact(&args.url),
        method: if get { "GET" } else { "POST" }.into(),
        body: if get {
            "none".into()
        } else {
            args.body.clone()
        },
        requests,
        sent,
        ok,
        non_2xx: sent - ok,
        statuses,
        outcomes,
        first_error,
        concurrency: args.concurrency,
        rate: args.rate,
        warmup: warm_end - requests,
        duration_limited,
        seconds: round3(load_secs),
        deliveries_per_sec: round1(ok as f64 / load_secs),
        ack: percentiles(latencies),
        executions,
        sink: sink_report,
        complete,
    };
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(complete)
}

/// The URL without its query string, which may carry a key.
fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_reads_the_exact_series() {
        let text = "# TYPE alertflow_executions counter\n\
            alertflow_executions_total{status=\"failed\"} 2\n\
            alertflow_executions_total{status=\"succeeded\"} 17\n";
        let name = "alertflow_executions_total{status=\"succeeded\"}";
        assert_eq!(sample(text, name), Some(17.0));
        assert_eq!(sample(text, "alertflow_executions_total"), None);
        assert_eq!(sample(text, "nope"), None);
    }

    #[test]
    fn outcome_is_read_from_small_json_answers_only() {
        assert_eq!(
            outcome_of(br#"{"event_id":"e","outcome":"started","executions":["x"]}"#),
            Some("started".into())
        );
        assert_eq!(outcome_of(b"ok"), None);
        assert_eq!(outcome_of(br#"{"ok":true}"#), None);
    }

    #[test]
    fn redact_hides_the_query() {
        assert_eq!(redact("http://h/hooks/x?x-api-key=s"), "http://h/hooks/x?…");
        assert_eq!(redact("http://h/healthz"), "http://h/healthz");
    }
}
