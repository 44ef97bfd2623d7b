//! loadgen: POST N Alertmanager webhook bodies to one URL with C in flight, then print JSON.
//!
//! Every body is one of the real Alertmanager 0.25 fixtures with its `groupKey` and each alert's
//! `fingerprint` rewritten to values unique to this run and request, so a server that
//! deduplicates notifications (alertflow does, over receiver + groupKey + alert set) sees N
//! distinct deliveries. Bodies are built before the clock starts.
//!
//! With `--done-metrics URL`, after the last ack it polls that Prometheus text endpoint until
//! the sample `--done-metric` has grown by `--done-target` (default N) since before the run,
//! and reports that time too: for alertflow, the time until every execution has succeeded.
//!
//! Everything is bounded: a fixed count, a per-request timeout and an overall `--timeout`.

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(about = "Send Alertmanager-style webhook deliveries and report ack latency as JSON")]
struct Args {
    /// Webhook URL, key included, e.g. http://127.0.0.1:8080/hooks/notify?x-api-key=afk_...
    #[arg(long)]
    url: String,
    /// Deliveries to send
    #[arg(short = 'n', long, default_value_t = 5000)]
    requests: usize,
    /// Deliveries in flight at once (one keep-alive connection each)
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Directory of Alertmanager JSON bodies (every *.json in it, used round-robin)
    #[arg(long, default_value = "tests/fixtures/alertmanager-0.25")]
    fixtures: PathBuf,
    /// Runtime threads for the load generator (it shares the machine with the server)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, seconds
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Give up on the whole run (sending and waiting for done) after this many seconds
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Prometheus text endpoint to poll after the load, e.g. http://127.0.0.1:8080/metrics
    #[arg(long)]
    done_metrics: Option<String>,
    /// Sample to watch there, name and labels exactly as exposed
    #[arg(
        long,
        default_value = "alertflow_executions_total{status=\"succeeded\"}"
    )]
    done_metric: String,
    /// Growth of that sample that means "done" [default: the number of requests]
    #[arg(long)]
    done_target: Option<u64>,
    /// Label for this run in the JSON output
    #[arg(long, default_value = "")]
    label: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(args)) {
        Ok(ok) => {
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

/// Real bodies from the fixture directory, parsed once.
fn load_fixtures(dir: &PathBuf) -> Result<Vec<Value>, String> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
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

/// Request `i`'s body: fixture `i % len` with a unique groupKey and alert fingerprints.
fn make_body(fixtures: &[Value], run_id: &str, i: usize) -> Vec<u8> {
    let mut v = fixtures[i % fixtures.len()].clone();
    let group = format!("{{}}:{{bench=\"{run_id}-{i}\"}}");
    v["groupKey"] = Value::String(group);
    if let Some(alerts) = v["alerts"].as_array_mut() {
        for (j, a) in alerts.iter_mut().enumerate() {
            // 16 hex digits like Alertmanager's: 8 of run id, 6 of request, 2 of alert.
            a["fingerprint"] =
                Value::String(format!("{run_id}{:06x}{:02x}", i & 0xff_ffff, j & 0xff));
        }
    }
    serde_json::to_vec(&v).expect("serialize")
}

/// The value of one sample line in Prometheus/OpenMetrics text, 0 if absent.
fn sample(text: &str, name: &str) -> f64 {
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(name) {
            if let Some(val) = rest.strip_prefix(' ') {
                if let Some(v) = val.split_whitespace().next().and_then(|s| s.parse().ok()) {
                    return v;
                }
            }
        }
    }
    0.0
}

async fn read_metric(client: &reqwest::Client, url: &str, name: &str) -> Result<f64, String> {
    let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    Ok(sample(&text, name))
}

struct Tally {
    latency_us: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    outcomes: BTreeMap<String, u64>,
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram"),
            statuses: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            first_error: None,
        }
    }
    fn merge(&mut self, other: Tally) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let fixtures = load_fixtures(&args.fixtures)?;
    // Unique per run (milliseconds since the epoch, low 32 bits), so a second run against the
    // same server is not deduplicated either.
    let run_id = format!(
        "{:08x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u32)
            .unwrap_or(0)
    );
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..args.requests)
            .map(|i| make_body(&fixtures, &run_id, i))
            .collect(),
    );
    let client = reqwest::Client::builder()
        .user_agent("Alertmanager/0.25.0")
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(args.request_timeout))
        .build()
        .map_err(|e| e.to_string())?;

    let baseline = match &args.done_metrics {
        Some(url) => Some(read_metric(&client, url, &args.done_metric).await?),
        None => None,
    };

    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (client, bodies, next, url) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            args.url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut t = Tally::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() >= deadline {
                    break;
                }
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bodies[i].clone())
                    .send()
                    .await;
                let key = match result {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.bytes().await.unwrap_or_default();
                        let us = sent.elapsed().as_micros() as u64;
                        t.latency_us.saturating_record(us.max(1));
                        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                            if let Some(o) = v.get("outcome").and_then(Value::as_str) {
                                *t.outcomes.entry(o.to_string()).or_default() += 1;
                            }
                        }
                        if !status.is_success() && t.first_error.is_none() {
                            t.first_error = Some(format!(
                                "{status}: {}",
                                String::from_utf8_lossy(&body[..body.len().min(300)])
                            ));
                        }
                        status.as_u16().to_string()
                    }
                    Err(e) => {
                        if t.first_error.is_none() {
                            t.first_error = Some(format!("transport: {e}"));
                        }
                        "error".to_string()
                    }
                };
                *t.statuses.entry(key).or_default() += 1;
            }
            t
        }));
    }
    let mut tally = Tally::new();
    for task in tasks {
        tally.merge(task.await.map_err(|e| e.to_string())?);
    }
    let load_secs = started.elapsed().as_secs_f64();
    let sent: u64 = tally.statuses.values().sum();
    let ok: u64 = tally
        .statuses
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v)
        .sum();
    let non_2xx = sent - ok;
    let h = &tally.latency_us;
    let ms = |q: f64| (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0;

    let mut out = json!({
        "label": args.label,
        "url": redact(&args.url),
        "requests": args.requests,
        "sent": sent,
        "concurrency": args.concurrency,
        "seconds": round3(load_secs),
        "acks_per_sec": round1(ok as f64 / load_secs),
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": ms(1.0),
        "mean_ms": (h.mean() / 10.0).round() / 100.0,
        "statuses": tally.statuses,
        "outcomes": tally.outcomes,
        "non_2xx": non_2xx,
    });
    if let Some(e) = &tally.first_error {
        out["first_error"] = json!(e);
    }
    let mut all_done = sent == args.requests as u64 && non_2xx == 0;

    if let (Some(url), Some(base)) = (&args.done_metrics, baseline) {
        let target = args.done_target.unwrap_or(args.requests as u64) as f64;
        let mut last = base;
        let reached = loop {
            match read_metric(&client, url, &args.done_metric).await {
                Ok(v) => last = v,
                Err(e) => eprintln!("loadgen: polling {url}: {e}"),
            }
            if last - base >= target {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let e2e = started.elapsed().as_secs_f64();
        out["done"] = json!({
            "metric": args.done_metric,
            "target": target,
            "reached": reached,
            "count": last - base,
            "seconds": round3(e2e),
            "per_sec": round1((last - base) / e2e),
        });
        all_done &= reached;
    }
    println!("{out}");
    Ok(all_done)
}

/// The URL without its query string (it carries the API key).
fn redact(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_reads_exact_series() {
        let text = "# TYPE alertflow_executions counter\n\
            alertflow_executions_total{status=\"failed\"} 2\n\
            alertflow_executions_total{status=\"succeeded\"} 17\n";
        assert_eq!(
            sample(text, "alertflow_executions_total{status=\"succeeded\"}"),
            17.0
        );
        assert_eq!(sample(text, "nope"), 0.0);
    }

    #[test]
    fn bodies_are_unique() {
        let f =
            vec![json!({"groupKey": "g", "alerts": [{"fingerprint": "a"}, {"fingerprint": "b"}]})];
        let a: Value = serde_json::from_slice(&make_body(&f, "0000000r", 1)).unwrap();
        let b: Value = serde_json::from_slice(&make_body(&f, "0000000r", 2)).unwrap();
        assert_ne!(a["groupKey"], b["groupKey"]);
        assert_ne!(a["alerts"][0]["fingerprint"], b["alerts"][0]["fingerprint"]);
        assert_ne!(a["alerts"][0]["fingerprint"], a["alerts"][1]["fingerprint"]);
    }
}
