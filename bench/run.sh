#!/usr/bin/env bash
# Ingest benchmark: N Alertmanager deliveries, C in flight, against a fresh alertflow (and/or
# Node-RED doing the same work), all on 127.0.0.1. See bench/README.md.
#
#   bash bench/run.sh                      # alertflow, N=5000, C=64, once
#   bash bench/run.sh --node-red           # Node-RED only
#   bash bench/run.sh --all --repeat 2     # both, interleaved: alertflow, node-red, alertflow, ...
#   bash bench/run.sh -n 2000 -c 16 --no-build --out results.jsonl
#   bash bench/run.sh --workers 0          # alertflow ingest only: no workers, no executions run
#   bash bench/run.sh --split              # ingest with no workers, then restart and time the
#                                          # workers alone on the N queued executions
#
# Every run starts a new server on a free loopback port with an empty temp data dir, and every
# server is killed when the script exits. Bounded: fixed N, 60 s to start a server, --timeout
# (default 300 s) for the load and its completion, 10 s to stop.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
N=5000
C=64
REPEAT=1
TIMEOUT=300
THREADS=1
WORKERS=
SPLIT=0
BUILD=1
OUT=
TARGETS=(alertflow)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --alertflow) TARGETS=(alertflow) ;;
        --node-red) TARGETS=(node-red) ;;
        --all) TARGETS=(alertflow node-red) ;;
        -n|--requests) N=$2; shift ;;
        -c|--concurrency) C=$2; shift ;;
        --repeat) REPEAT=$2; shift ;;
        --timeout) TIMEOUT=$2; shift ;;
        --threads) THREADS=$2; shift ;;
        --workers) WORKERS=$2; shift ;;
        --split) SPLIT=1 ;;
        --no-build) BUILD=0 ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

for tool in curl jq python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: needs $tool" >&2; exit 2; }
done

ALERTFLOW=$ROOT/target/release/alertflow
LOADGEN=$BENCH/loadgen/target/release/alertflow-loadgen
NODE_RED=$BENCH/node-red/node_modules/node-red/red.js
want() { local t; for t in "${TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

if [[ $BUILD == 1 ]]; then
    if want alertflow; then
        echo "== cargo build --release (alertflow)" >&2
        (cd "$ROOT" && cargo build --release --quiet)
    fi
    echo "== cargo build --release (loadgen)" >&2
    cargo build --release --quiet --manifest-path "$BENCH/loadgen/Cargo.toml"
fi
if want node-red && [[ ! -f $NODE_RED ]]; then
    echo "== npm ci (node-red)" >&2
    (cd "$BENCH/node-red" && npm ci --no-audit --no-fund --loglevel=error)
fi
[[ -x $LOADGEN ]] || { echo "run.sh: no $LOADGEN (drop --no-build)" >&2; exit 2; }
if want alertflow; then
    [[ -x $ALERTFLOW ]] || { echo "run.sh: no $ALERTFLOW (drop --no-build)" >&2; exit 2; }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/alertflow-bench.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
SERVER_PID=
LOADGEN_PID=

stop_server() {
    local pid=$SERVER_PID
    [[ -n $pid ]] || return 0
    SERVER_PID=
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    if [[ -n $LOADGEN_PID ]]; then kill -TERM "$LOADGEN_PID" 2>/dev/null || true; fi
    stop_server
    if [[ -n ${KEEP:-} ]]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until `curl ARGS` prints the wanted status code, the server is alive, and 60 s have not passed.
wait_for() {
    local want=$1 log=$2; shift 2
    for _ in $(seq 600); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "run.sh: server exited during start-up; its log:" >&2; tail -20 "$log" >&2; return 1
        fi
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" || true) == "$want" ]] && return 0
        sleep 0.1
    done
    echo "run.sh: server not ready after 60 s; its log:" >&2; tail -20 "$log" >&2; return 1
}

# Peak and current resident set (KiB) and CPU seconds (user + system) of a live process.
proc_stats() {
    local pid=$1 hwm rss ticks
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    jq -nc --argjson hwm "$hwm" --argjson rss "$rss" --argjson t "$ticks" --argjson hz "$(getconf CLK_TCK)" \
        '{peak_rss_kib: $hwm, rss_after_kib: $rss, server_cpu_s: ($t / $hz)}'
}

# Runs the load generator for COUNT deliveries in the background and waits for it, so that a
# signal reaches the trap at once instead of after the load. Its JSON goes to $WORK/loadgen.json.
loadgen() {
    local count=$1 out=$WORK/loadgen.json
    shift
    : >"$out"
    timeout $((TIMEOUT + 60)) "$LOADGEN" --requests "$count" --concurrency "$C" --threads "$THREADS" \
        --timeout "$TIMEOUT" --fixtures "$ROOT/tests/fixtures/alertmanager-0.25" "$@" >"$out" &
    LOADGEN_PID=$!
    wait "$LOADGEN_PID" || true
    LOADGEN_PID=
}

start_alertflow() {
    local port=$1 data=$2 log=$3
    shift 3
    ALERTFLOW_LOG=warn "$ALERTFLOW" serve --listen "127.0.0.1:$port" --data-dir "$data" "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
    wait_for 200 "$log" "http://127.0.0.1:$port/readyz"
}

run_alertflow() {
    local run=$1 port data log base token key json stats extra name=alertflow
    local serve_args=() done_args=()
    [[ -n $WORKERS ]] && serve_args=(--workers "$WORKERS") && name=alertflow/w$WORKERS
    [[ $SPLIT == 1 ]] && name=alertflow/split
    port=$(free_port)
    data=$WORK/alertflow-$run
    log=$WORK/alertflow-$run.log
    base=http://127.0.0.1:$port
    if [[ $SPLIT == 1 ]]; then
        start_alertflow "$port" "$data" "$log" --workers 0
    else
        start_alertflow "$port" "$data" "$log" "${serve_args[@]}"
    fi
    token=$(cat "$data/admin-token")
    local auth=(-H "Authorization: Bearer $token")
    key=$(curl -sf "${auth[@]}" -H 'content-type: application/json' -d '{"name":"ops"}' "$base/api/v1/keys" | jq -r .value)
    curl -sf "${auth[@]}" -H 'content-type: application/yaml' --data-binary @"$BENCH/notify.yaml" \
        "$base/api/v1/workflows" >/dev/null
    # Done means every execution succeeded; with no workers nothing runs, so only acks count.
    [[ $WORKERS == 0 || $SPLIT == 1 ]] || done_args=(--done-metrics "$base/metrics")
    echo "== $name run $run: $base, N=$N C=$C" >&2
    loadgen "$N" --url "$base/hooks/notify?x-api-key=$key" "${done_args[@]}" --label "$name"
    json=$(cat "$WORK/loadgen.json")
    [[ -n $json ]] || json="{\"label\":\"$name\",\"error\":\"loadgen printed nothing\"}"
    local metrics failed
    metrics=$(curl -sf "$base/metrics")
    if [[ $SPLIT == 1 ]]; then
        # Phase 2: the same data dir with workers, now only running the N queued executions.
        # Timed from the moment the restarted server answers /readyz.
        stop_server
        start_alertflow "$port" "$data" "$log" "${serve_args[@]}"
        echo "== $name run $run: restarted with workers, draining $N executions" >&2
        loadgen 0 --url "$base/hooks/notify" --done-metrics "$base/metrics" --done-target "$N" --label drain
        json=$(jq -c --slurpfile d "$WORK/loadgen.json" '. + {done: ($d[0].done // {reached: false})}' <<<"$json")
    fi
    stats=$(proc_stats "$SERVER_PID")
    failed=$(curl -sf "${auth[@]}" "$base/api/v1/executions?status=failed&limit=1000" | jq length || echo null)
    extra=$(jq -nc --argjson failed "$failed" \
        --argjson bsum "$(awk '/^alertflow_store_commit_batch_size_sum/ {print $2}' <<<"$metrics")" \
        --argjson bcount "$(awk '/^alertflow_store_commit_batch_size_count/ {print $2}' <<<"$metrics")" \
        --argjson disk "$(du -sk "$data" | cut -f1)" \
        '{failed_executions: $failed, commit_batches: $bcount,
          mean_commit_batch: (if $bcount > 0 then ($bsum / $bcount * 10 | round / 10) else null end),
          data_dir_kib: $disk}')
    stop_server
    jq -c --argjson s "$stats" --argjson e "$extra" --arg run "$run" --arg name "$name" \
        '. + $s + $e + {target: $name, run: ($run | tonumber)}' <<<"$json" | tee -a "$RESULTS" >&2
}

run_node_red() {
    local run=$1 port dir log base json stats
    port=$(free_port)
    dir=$WORK/node-red-$run
    log=$WORK/node-red-$run.log
    base=http://127.0.0.1:$port
    mkdir -p "$dir"
    BENCH_PORT=$port node "$NODE_RED" --settings "$BENCH/node-red/settings.js" --userDir "$dir" >"$log" 2>&1 &
    SERVER_PID=$!
    # 401 for a wrong key means the flow is deployed and answering, not just the port open.
    wait_for 401 "$log" -X POST -H 'content-type: application/json' -d '{}' "$base/hooks/notify?x-api-key=probe"
    echo "== node-red run $run: $base, N=$N C=$C" >&2
    loadgen "$N" --url "$base/hooks/notify?x-api-key=bench-key" --label node-red
    json=$(cat "$WORK/loadgen.json")
    [[ -n $json ]] || json='{"label":"node-red","error":"loadgen printed nothing"}'
    stats=$(proc_stats "$SERVER_PID")
    stop_server
    jq -c --argjson s "$stats" --argjson disk "$(du -sk "$dir" | cut -f1)" --arg run "$run" \
        '. + $s + {data_dir_kib: $disk, target: "node-red", run: ($run | tonumber)}' <<<"$json" | tee -a "$RESULTS" >&2
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) $(nproc) cores, alertflow $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), node $(node --version 2>/dev/null || echo -)" >&2
for run in $(seq "$REPEAT"); do
    for t in "${TARGETS[@]}"; do
        case $t in
            alertflow) run_alertflow "$run" ;;
            node-red) run_node_red "$run" ;;
        esac
    done
done

[[ -n $OUT ]] && cat "$RESULTS" >>"$OUT"

# One table. e2e: from the first request until every execution succeeded (alertflow, read from
# /metrics); Node-RED does its work before it answers, so there it is the ack time. RSS is the
# server's peak (VmHWM), CPU its user + system seconds, disk its data dir after the run.
echo
printf '%-15s %3s %6s %4s %9s %7s %7s %7s %7s %8s %9s %8s %8s %8s\n' \
    target run N C 'acks/s' 'p50 ms' 'p90 ms' 'p99 ms' non-2xx 'e2e s' 'e2e/s' 'RSS MiB' 'CPU s' 'disk MiB'
jq -r '[.target, .run, (if .sent == .requests then .requests else "\(.sent)/\(.requests)" end), .concurrency, .acks_per_sec, .p50_ms, .p90_ms, .p99_ms, .non_2xx,
        (if .done then .done.seconds elif .target == "node-red" then .seconds else "-" end),
        (if .done then .done.per_sec elif .target == "node-red" then .acks_per_sec else "-" end),
        ((.peak_rss_kib / 1024 * 10 | round) / 10), ((.server_cpu_s * 10 | round) / 10),
        ((.data_dir_kib / 1024 * 10 | round) / 10)] | @tsv' "$RESULTS" |
    while IFS=$'\t' read -r t r n c a p50 p90 p99 bad e2e e2eps rss cpu disk; do
        printf '%-15s %3s %6s %4s %9s %7s %7s %7s %7s %8s %9s %8s %8s %8s\n' \
            "$t" "$r" "$n" "$c" "$a" "$p50" "$p90" "$p99" "$bad" "$e2e" "$e2eps" "$rss" "$cpu" "$disk"
    done

# Exit non-zero unless every delivery got a 2xx and (alertflow) every execution succeeded.
jq -e -s 'all(.[]; .non_2xx == 0 and .sent == .requests and (.done.reached // true) and ((.failed_executions // 0) == 0))' \
    "$RESULTS" >/dev/null
