//! Turns a run's records (one JSON object per scenario run, written by `bench/run.sh`) and its
//! description of the machine into a table on stdout, `bench/RESULTS.md` and the SVG chart.

use crate::chart::{self, Bar, LatencyGroup};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The run's records, one JSON object a line
    #[arg(long)]
    results: PathBuf,
    /// The machine, versions and settings of the run, as JSON
    #[arg(long)]
    meta: PathBuf,
    /// Where to write the Markdown report
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where to write the SVG chart (linked from the report by file name)
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Markdown written by hand (what the profile showed, what changed, why a target is not
    /// met), shown after the targets
    #[arg(long)]
    analysis: Option<PathBuf>,
}

/// The servers in the order the tables show them: alertflow, the peers, and the relay (the
/// same flow with no store and no engine, the end-to-end ceiling; see `relay.rs`).
const TARGETS: [&str; 5] = ["alertflow", "alertflow-pg", "node-red", "n8n", "relay"];

fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The median of the values, the mean of the middle two for an even count.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The records of one target and scenario, over every repeat.
fn runs<'a>(records: &'a [Value], target: &str, scenario: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| text(r, "/target") == target && text(r, "/scenario") == scenario)
        .collect()
}

/// The median over repeats of one figure.
fn figure(records: &[Value], target: &str, scenario: &str, pointer: &str) -> Option<f64> {
    median(
        runs(records, target, scenario)
            .iter()
            .filter_map(|r| num(r, pointer))
            .collect(),
    )
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn megabytes(kib: Option<f64>) -> Option<f64> {
    kib.map(|k| k * 1024.0 / 1e6)
}

/// One row of the target check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub figure: &'static str,
    pub target: &'static str,
    pub measured: String,
    /// `None` when the figure was not measured in this run.
    pub met: Option<bool>,
}

fn check(
    figure: &'static str,
    target: &'static str,
    value: Option<(f64, String)>,
    ok: impl Fn(f64) -> bool,
) -> Check {
    match value {
        Some((v, shown)) => Check {
            figure,
            target,
            measured: shown,
            met: Some(ok(v)),
        },
        None => Check {
            figure,
            target,
            measured: "not measured".into(),
            met: None,
        },
    }
}

/// The performance issue's targets, each with this run's figure.
pub fn checks(records: &[Value]) -> Vec<Check> {
    let af = |scenario: &str, pointer: &str| figure(records, "alertflow", scenario, pointer);
    let ingest = af("ingest", "/deliveries_per_sec");
    let healthz = af("healthz", "/deliveries_per_sec");
    let e2e = af("e2e", "/executions/per_sec");
    let ceiling = figure(records, "relay", "e2e", "/executions/per_sec");
    let ratio_to = |peer: &str| {
        let p = figure(records, peer, "e2e", "/executions/per_sec").filter(|p| *p > 0.0)?;
        let e = e2e?;
        let mut shown = format!("{:.2}x ({e:.1}/s against {p:.1}/s", e / p);
        // How far the target is within reach at all: the ceiling as a multiple of the peer.
        if let Some(c) = ceiling {
            let _ = write!(shown, "; the relay's ceiling is {c:.1}/s, {:.2}x", c / p);
        }
        shown.push(')');
        Some((e / p, shown))
    };
    let peak = records
        .iter()
        .filter(|r| text(r, "/target") == "alertflow")
        .filter_map(|r| num(r, "/peak_rss_kib"))
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let start = median(
        runs(records, "alertflow", "coldstart")
            .iter()
            .filter_map(|r| num(r, "/ready_ms"))
            .collect(),
    );
    vec![
        check(
            "ingest, deliveries/s",
            "at least 40% of /healthz requests/s",
            ingest.zip(healthz).filter(|(_, h)| *h > 0.0).map(|(i, h)| {
                (
                    i / h * 100.0,
                    format!("{:.0}% ({i:.1}/s against {h:.1}/s)", i / h * 100.0),
                )
            }),
            |pct| pct >= 40.0,
        ),
        check(
            "end to end, executions/s",
            "at least 10 times Node-RED's",
            ratio_to("node-red"),
            |x| x >= 10.0,
        ),
        check(
            "end to end, executions/s",
            "at least 500 times n8n's",
            ratio_to("n8n"),
            |x| x >= 500.0,
        ),
        check(
            "webhook to sink, p99 at 1,000 deliveries/s",
            "10 ms or less",
            af("e2e-rate", "/sink/webhook_to_sink/p99_ms").map(|p| {
                let rate = af("e2e-rate", "/deliveries_per_sec");
                (p, format!("{p:.2} ms (at {} deliveries/s)", fmt(rate, 0)))
            }),
            |ms| ms <= 10.0,
        ),
        check(
            "10,000-alert notification, per_alert: accepted",
            "1 s or less",
            af("fanout", "/ack/max_ms").map(|ms| {
                let alerts = fmt(af("fanout", "/executions/expected"), 0);
                (
                    ms / 1000.0,
                    format!("{:.3} s ({alerts} alerts)", ms / 1000.0),
                )
            }),
            |s| s <= 1.0,
        ),
        check(
            "10,000-alert notification, per_alert: all executions finished",
            "5 s or less",
            af("fanout", "/executions/seconds").map(|s| {
                let done = fmt(af("fanout", "/executions/count"), 0);
                let alerts = fmt(af("fanout", "/executions/expected"), 0);
                (s, format!("{s:.3} s ({done} of {alerts} finished)"))
            }),
            |s| s <= 5.0,
        ),
        check(
            "RSS idle",
            "30 MB or less",
            megabytes(af("idle", "/rss_kib")).map(|mb| (mb, format!("{mb:.1} MB"))),
            |mb| mb <= 30.0,
        ),
        check(
            "RSS at full load (peak of every scenario)",
            "250 MB or less",
            megabytes(peak).map(|mb| (mb, format!("{mb:.1} MB"))),
            |mb| mb <= 250.0,
        ),
        check(
            "start to ready, empty SQLite store (median)",
            "300 ms or less",
            start.map(|ms| (ms, format!("{ms:.1} ms"))),
            |ms| ms <= 300.0,
        ),
    ]
}

fn checks_table(checks: &[Check]) -> String {
    let mut out = String::from("| figure | target | measured | met |\n| --- | --- | --- | --- |\n");
    for c in checks {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "-",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            c.figure, c.target, c.measured
        );
    }
    out
}

/// Why a run is not complete, or `ok`.
fn verdict(r: &Value) -> String {
    if r.get("error").is_some() {
        return format!("**error**: {}", text(r, "/error"));
    }
    if r.get("complete").and_then(Value::as_bool) == Some(true) {
        return "ok".into();
    }
    let mut problems = Vec::new();
    let (sent, requests) = (num(r, "/sent"), num(r, "/requests"));
    let duration_limited = r.get("duration_limited").and_then(Value::as_bool) == Some(true);
    if sent != requests && !duration_limited {
        problems.push(format!("sent {}/{}", fmt(sent, 0), fmt(requests, 0)));
    }
    if num(r, "/non_2xx").unwrap_or(0.0) > 0.0 {
        problems.push(format!("{} non-2xx", fmt(num(r, "/non_2xx"), 0)));
    }
    if let Some(missing) = num(r, "/sink/missing").filter(|m| *m > 0.0) {
        problems.push(format!("{missing:.0} never reached the sink"));
    }
    if r.pointer("/executions/reached").and_then(Value::as_bool) == Some(false) {
        problems.push(format!(
            "{}/{} executions finished",
            fmt(num(r, "/executions/count"), 0),
            fmt(num(r, "/executions/expected"), 0)
        ));
    }
    if problems.is_empty() {
        "**incomplete**".into()
    } else {
        format!("**{}**", problems.join(", "))
    }
}

/// The load scenarios' table, in target order then run order.
pub fn load_table(records: &[Value]) -> String {
    let mut out = String::from(
        "| target | scenario | run | sent | C | rate/s | deliveries/s | executions/s \
         | answer p50 | p99 | p99.9 ms | to sink p50 | p99 | p99.9 ms | peak RSS MB | CPU s | status |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in ordered(records)
        .into_iter()
        .filter(|r| !matches!(text(r, "/scenario"), "idle" | "coldstart"))
    {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            text(r, "/target"),
            text(r, "/scenario"),
            fmt(num(r, "/run"), 0),
            fmt(num(r, "/sent"), 0),
            fmt(num(r, "/concurrency"), 0),
            fmt(num(r, "/rate"), 0),
            fmt(num(r, "/deliveries_per_sec"), 1),
            fmt(num(r, "/executions/per_sec"), 1),
            fmt(num(r, "/ack/p50_ms"), 2),
            fmt(num(r, "/ack/p99_ms"), 2),
            fmt(num(r, "/ack/p999_ms"), 2),
            fmt(num(r, "/sink/webhook_to_sink/p50_ms"), 2),
            fmt(num(r, "/sink/webhook_to_sink/p99_ms"), 2),
            fmt(num(r, "/sink/webhook_to_sink/p999_ms"), 2),
            fmt(megabytes(num(r, "/peak_rss_kib")), 1),
            fmt(num(r, "/cpu_s"), 1),
            verdict(r),
        );
    }
    out
}

/// Start-up and idle figures, one row per target.
pub fn startup_table(records: &[Value]) -> String {
    let mut out = String::from(
        "| target | start to ready ms (median) | starts | fastest..slowest ms | idle RSS MB | idle CPU % |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    for target in TARGETS {
        // alertflow has its own cold-start scenario; a peer's start is timed when it is started.
        let mut starts: Vec<f64> = runs(records, target, "coldstart")
            .iter()
            .filter_map(|r| num(r, "/ready_ms"))
            .collect();
        if starts.is_empty() {
            starts = records
                .iter()
                .filter(|r| text(r, "/target") == target)
                .filter_map(|r| num(r, "/startup_ms"))
                .collect();
        }
        let idle = runs(records, target, "idle");
        if starts.is_empty() && idle.is_empty() {
            continue;
        }
        let lo = starts.iter().cloned().reduce(f64::min);
        let hi = starts.iter().cloned().reduce(f64::max);
        let cpu_pct = median(
            idle.iter()
                .filter_map(|r| Some(num(r, "/cpu_s")? / num(r, "/seconds")? * 100.0))
                .collect(),
        );
        let _ = writeln!(
            out,
            "| {target} | {} | {} | {}..{} | {} | {} |",
            fmt(median(starts.clone()), 1),
            starts.len(),
            fmt(lo, 1),
            fmt(hi, 1),
            fmt(megabytes(figure(records, target, "idle", "/rss_kib")), 1),
            fmt(cpu_pct, 2),
        );
    }
    out
}

/// Records sorted by target (alertflow first, then the peers), keeping run order otherwise.
fn ordered(records: &[Value]) -> Vec<&Value> {
    let rank = |r: &Value| {
        TARGETS
            .iter()
            .position(|t| *t == text(r, "/target"))
            .unwrap_or(TARGETS.len())
    };
    let mut v: Vec<&Value> = records.iter().collect();
    v.sort_by_key(|r| rank(r));
    v
}

/// The chart's bars: the ceiling and ingest for alertflow, end to end for every server.
pub fn chart_data(records: &[Value]) -> (Vec<Bar>, Vec<LatencyGroup>) {
    let mut bars = Vec::new();
    let mut push = |label: String, v: Option<f64>| {
        if let Some(value) = v {
            bars.push(Bar { label, value });
        }
    };
    push(
        "alertflow /healthz".into(),
        figure(records, "alertflow", "healthz", "/deliveries_per_sec"),
    );
    for t in ["alertflow", "alertflow-pg"] {
        push(
            format!("{t} ingest"),
            figure(records, t, "ingest", "/deliveries_per_sec"),
        );
    }
    for t in TARGETS {
        push(
            format!("{t} end to end"),
            figure(records, t, "e2e", "/executions/per_sec"),
        );
    }
    let groups = TARGETS
        .iter()
        .filter(|t| !runs(records, t, "e2e").is_empty())
        .map(|t| {
            let f = |p: &str| figure(records, t, "e2e", p);
            LatencyGroup {
                label: t.to_string(),
                ack: [f("/ack/p50_ms"), f("/ack/p99_ms"), f("/ack/p999_ms")],
                sink: [
                    f("/sink/webhook_to_sink/p50_ms"),
                    f("/sink/webhook_to_sink/p99_ms"),
                    f("/sink/webhook_to_sink/p999_ms"),
                ],
            }
        })
        .collect();
    (bars, groups)
}

const SCENARIOS: &str = "\
| scenario | what it measures, and how |
| --- | --- |
| `healthz` | the ceiling: `GET /healthz` at full speed over C connections, the most the server and generator answer on this machine |
| `ingest` | the webhook alone: real Alertmanager bodies (the fixtures, in turn) posted with the key over C connections to a server started with `--workers 0`, so each delivery is checked and committed (202 after the commit) and its execution queued, and no step runs during the run |
| `ingest-1`, `ingest-10`, `ingest-1000` | the same with generated notifications of 1, 10 and 1,000 alerts |
| `e2e` | end to end at full speed: prometheus trigger, a `transform`, an `http.request` to the harness's sink. Executions/s counts from the first delivery until the server's `alertflow_executions_total{status=\"succeeded\"}` has grown by every delivery (for the peers, which run the flow before they answer, the answers). *To sink* is from sending a delivery to its forwarded request reaching the sink |
| `e2e` (relay) | the ceiling for end to end: the same flow served by `alertflow-bench relay`, which checks the key, renders the message, POSTs it to the sink and answers 202, with no store, no engine and nothing on disk; what a server doing nothing but the flow reaches end to end on this machine with this generator and sink |
| `e2e-rate` | the same flow at a fixed rate (open loop: latency counts from when each delivery was due, so a stall is not hidden) |
| `fanout` | one notification of 10,000 alerts to a `split: per_alert` workflow (transform, then `http.request` to the sink): *answer* is the time to accept it, executions/s and its seconds run until all 10,000 have succeeded |
| `ingest`, `e2e`, `e2e-rate` (alertflow-pg) | with `--postgres URL`: the same scenarios with alertflow's store on that PostgreSQL server (each on a new database), as a node of a cluster runs; no target covers them |
| `idle` | a fresh server with its workflow loaded, left alone: resident memory and CPU over the idle seconds |
| `coldstart` | from starting the binary on an empty data dir (a new SQLite store) until `/readyz` answers 200, polled every 5 ms; for the peers, until their flow answers |
";

pub fn main(args: ReportArgs) -> Result<bool, String> {
    let read =
        |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let records: Vec<Value> = read(&args.results)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", args.results.display())))
        .collect::<Result<_, _>>()?;
    let meta: Value = serde_json::from_str(&read(&args.meta)?)
        .map_err(|e| format!("{}: {e}", args.meta.display()))?;

    let checks = checks(&records);
    let (targets, loads, starts) = (
        checks_table(&checks),
        load_table(&records),
        startup_table(&records),
    );
    println!("{targets}\n{loads}\n{starts}");

    if let Some(path) = &args.chart {
        let (bars, groups) = chart_data(&records);
        let title = format!(
            "alertflow and peers, {} ({})",
            text(&meta, "/date"),
            text(&meta, "/mode")
        );
        chart::draw(path, &title, &bars, &groups)?;
    }
    if let Some(path) = &args.out {
        let chart_link = args
            .chart
            .as_ref()
            .and_then(|c| c.file_name())
            .map(|n| format!("![throughput and latency]({})\n\n", n.to_string_lossy()))
            .unwrap_or_default();
        let analysis = match &args.analysis {
            Some(p) => format!("{}\n\n", read(p)?.trim_end()),
            None => String::new(),
        };
        let doc = markdown(&meta, &targets, &analysis, &loads, &starts, &chart_link);
        std::fs::write(path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let all_ok = records.iter().all(|r| {
        r.get("error").is_none() && r.get("complete").and_then(Value::as_bool) != Some(false)
    });
    Ok(all_ok)
}

fn markdown(
    meta: &Value,
    targets: &str,
    analysis: &str,
    loads: &str,
    starts: &str,
    chart_link: &str,
) -> String {
    let mut out = String::from("# Benchmark results\n\n");
    if let Some(note) = meta
        .get("note")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        let _ = writeln!(out, "> **{note}**\n");
    }
    let _ = writeln!(
        out,
        "Written by `{}` on {} ({} mode). `bench/README.md` explains the harness.\n",
        text(meta, "/command"),
        text(meta, "/date"),
        text(meta, "/mode")
    );
    out.push_str("## Machine and versions\n\n| | |\n| --- | --- |\n");
    for (name, pointer) in [
        ("CPU", "/machine/cpu"),
        ("cores", "/machine/cores"),
        ("memory", "/machine/memory"),
        ("kernel", "/machine/kernel"),
        ("load average before the run", "/machine/load_before"),
        ("load average after the run", "/machine/load_after"),
        ("alertflow", "/versions/alertflow"),
        ("rustc", "/versions/rustc"),
        ("Node", "/versions/node"),
        ("Node-RED", "/versions/node_red"),
        ("n8n", "/versions/n8n"),
        ("settings", "/settings"),
    ] {
        let value = match meta.pointer(pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".into(),
            Some(v) => v.to_string(),
        };
        let _ = writeln!(out, "| {name} | {value} |");
    }
    let _ = write!(
        out,
        "\n## Targets\n\nEach figure is the median over the run's repeats.\n\n{targets}\n{analysis}\
         ## Throughput and latency\n\n{chart_link}{loads}\n\
         Peers: Node-RED and n8n run the same flow (webhook in, render the message, POST it to the \
         sink, answer) and answer after it has run, so their executions/s are their answers/s. \
         The relay runs it too, with no store and no engine: the ceiling for end to end. \
         Each alertflow scenario starts a fresh server on an empty data dir; each peer is started \
         once and runs its scenarios in turn, so its peak RSS is cumulative.\n\n\
         ## Start-up and idle\n\n{starts}\n## Scenarios\n\n{SCENARIOS}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(target: &str, scenario: &str, run: u64, per_sec: f64) -> Value {
        json!({"target": target, "scenario": scenario, "run": run, "complete": true,
               "deliveries_per_sec": per_sec, "executions": {"per_sec": per_sec, "seconds": 2.0}})
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn checks_compare_against_peers_in_the_same_run() {
        let records = vec![
            load("alertflow", "healthz", 1, 10_000.0),
            load("alertflow", "ingest", 1, 3_000.0),
            load("alertflow", "e2e", 1, 1_000.0),
            load("alertflow", "e2e", 2, 3_000.0),
            load("node-red", "e2e", 1, 200.0),
            load("n8n", "e2e", 1, 10.0),
            load("relay", "e2e", 1, 2_500.0),
        ];
        let c = checks(&records);
        // 3000 of 10000 is 30%: below 40%.
        assert_eq!(c[0].met, Some(false));
        assert!(c[0].measured.starts_with("30%"), "{}", c[0].measured);
        // The median of 1000 and 3000 is 2000: ten times 200, but not 500 times 10.
        assert_eq!(c[1].met, Some(true));
        assert_eq!(c[2].met, Some(false));
        // The relay's ceiling is shown beside each peer, as a multiple of it; it is not a peer.
        assert!(
            c[1].measured.contains("ceiling is 2500.0/s, 12.50x"),
            "{}",
            c[1].measured
        );
        assert!(
            c[2].measured.contains("ceiling is 2500.0/s, 250.00x"),
            "{}",
            c[2].measured
        );
        // Figures that were not measured are said so, not passed or failed.
        assert!(c[3..].iter().all(|c| c.met.is_none()));
        assert!(c[3].measured.contains("not measured"));
    }

    #[test]
    fn memory_and_start_checks_read_their_scenarios() {
        let records = vec![
            json!({"target": "alertflow", "scenario": "idle", "rss_kib": 20_000.0}),
            json!({"target": "alertflow", "scenario": "e2e", "peak_rss_kib": 100_000.0}),
            json!({"target": "alertflow", "scenario": "fanout", "peak_rss_kib": 300_000.0,
                   "ack": {"max_ms": 800.0}, "executions": {"seconds": 6.5}}),
            json!({"target": "node-red", "scenario": "e2e", "peak_rss_kib": 900_000.0}),
            json!({"target": "alertflow", "scenario": "coldstart", "ready_ms": 120.0}),
            json!({"target": "alertflow", "scenario": "coldstart", "ready_ms": 400.0}),
            json!({"target": "alertflow", "scenario": "coldstart", "ready_ms": 130.0}),
        ];
        let c = checks(&records);
        let by = |name: &str| c.iter().find(|c| c.figure.starts_with(name)).unwrap();
        assert_eq!(by("RSS idle").met, Some(true)); // 20.5 MB
                                                    // The peak is alertflow's own worst scenario; Node-RED's memory does not count.
        assert_eq!(by("RSS at full load").met, Some(false));
        assert_eq!(by("RSS at full load").measured, "307.2 MB");
        assert_eq!(by("start to ready").met, Some(true)); // median 130 ms
        assert_eq!(
            by("10,000-alert notification, per_alert: accepted").met,
            Some(true)
        );
        assert_eq!(
            by("10,000-alert notification, per_alert: all").met,
            Some(false)
        );
    }

    #[test]
    fn the_table_says_what_went_wrong_in_a_run() {
        let bad = json!({"target": "alertflow", "scenario": "e2e", "run": 1, "complete": false,
            "sent": 90, "requests": 100, "non_2xx": 3, "sink": {"missing": 5},
            "executions": {"reached": false, "count": 80, "expected": 87}});
        let table = load_table(&[bad]);
        assert!(table.contains("sent 90/100"));
        assert!(table.contains("3 non-2xx"));
        assert!(table.contains("5 never reached the sink"));
        assert!(table.contains("80/87 executions finished"));
        let good = load("n8n", "e2e", 1, 12.0);
        assert!(load_table(&[good]).contains("| ok |"));
    }

    #[test]
    fn rows_come_in_target_order() {
        let records = vec![
            load("n8n", "e2e", 1, 1.0),
            load("alertflow", "e2e", 1, 1.0),
            load("relay", "e2e", 1, 1.0),
            load("node-red", "e2e", 1, 1.0),
        ];
        let table = load_table(&records);
        let at = |t: &str| table.find(&format!("| {t} |")).unwrap();
        assert!(at("alertflow") < at("node-red") && at("node-red") < at("n8n"));
        assert!(at("n8n") < at("relay"));
        let (bars, groups) = chart_data(&records);
        assert_eq!(bars.len(), 4);
        assert_eq!(groups.len(), 4);
        assert_eq!(groups[0].label, "alertflow");
    }
}
