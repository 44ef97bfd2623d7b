#!/usr/bin/env bash
# The benchmark: alertflow's scenarios, then Node-RED and n8n running the same end-to-end flow,
# all driven by one generator (bench/harness) on this machine. Prints a table and writes
# bench/RESULTS.md, bench/results.svg, and the raw records (results.jsonl, results.meta.json).
# See bench/README.md.
#
#   bash bench/run.sh                 # everything, full counts (under 10 minutes on 2 cores once built and installed)
#   bash bench/run.sh --smoke         # everything, small counts: proves the harness end to end
#   bash bench/run.sh --quick         # CI: alertflow only, tiny counts, debug build, writes nothing in bench/
#   bash bench/run.sh --postgres postgres://postgres@127.0.0.1:5432/postgres   # adds alertflow on PostgreSQL
#
# Options: --no-peers (alertflow only), --no-build, --repeat K (targets alternate each repeat),
#   -n N and -c C (deliveries and connections of the full-speed scenarios), --rate R and
#   --rate-seconds S (the fixed-rate scenario), --n8n-requests N, --note TEXT (shown at the top of
#   RESULTS.md), --out DIR (where the results go; default bench/, or a temp dir for --quick),
#   --postgres URL (also run ingest and end to end with alertflow on that PostgreSQL server, as
#   target alertflow-pg, each on a new database that is dropped afterwards; needs psql).
#
# Every server binds 127.0.0.1 on a free port, in a process group of its own, and is stopped
# when the script exits, also on error or Ctrl-C. Every load is bounded by a count and a time
# limit. Needs cargo, curl, jq, python3 (to find free ports) and, for the peers, Node 20.19+ and
# npm; peers are installed by npm into bench/node-red/node_modules and bench/n8n/node_modules.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
# The command as RESULTS.md shows it; a --note is shown at the top of the report instead.
COMMAND="bash bench/run.sh"
skip_next=0
for arg in "$@"; do
    if [[ $skip_next == 1 ]]; then skip_next=0; elif [[ $arg == --note ]]; then skip_next=1; else COMMAND+=" $arg"; fi
done

MODE=full
PEERS=1
BUILD=1
REPEAT=1
NOTE=
OUT=
POSTGRES=
N= C= RATE= RATE_SECONDS= N8N_N=

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) MODE=smoke ;;
        --quick) MODE=quick ;;
        --no-peers) PEERS=0 ;;
        --no-build) BUILD=0 ;;
        --repeat) REPEAT=$2; shift ;;
        -n|--requests) N=$2; shift ;;
        -c|--concurrency) C=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --rate-seconds) RATE_SECONDS=$2; shift ;;
        --n8n-requests) N8N_N=$2; shift ;;
        --note) NOTE=$2; shift ;;
        --out) OUT=$2; shift ;;
        --postgres) POSTGRES=$2; shift ;;
        -h|--help) usage 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; usage 2 ;;
    esac
    shift
done

# Counts per mode. The full run is sized to finish in about 10 minutes on 2 cores; n8n gets
# fewer deliveries because it runs about 14 a second, and a time limit (N8N_SECONDS) besides.
case $MODE in
    full)  : "${N:=50000}" "${C:=64}" "${RATE:=1000}" "${RATE_SECONDS:=20}" "${N8N_N:=1000}"
           BIG_N=500 WARMUP=1000 FANOUT=10000 FANOUT_TIMEOUT=60 STARTS=5 IDLE_SECONDS=10 TIMEOUT=240 PROFILE=release ;;
    smoke) : "${N:=2000}" "${C:=64}" "${RATE:=1000}" "${RATE_SECONDS:=3}" "${N8N_N:=60}"
           BIG_N=40 WARMUP=100 FANOUT=10000 FANOUT_TIMEOUT=30 STARTS=3 IDLE_SECONDS=3 TIMEOUT=120 PROFILE=release ;;
    quick) : "${N:=200}" "${C:=8}" "${RATE:=200}" "${RATE_SECONDS:=1}" "${N8N_N:=20}"
           BIG_N=4 WARMUP=10 FANOUT=100 FANOUT_TIMEOUT=30 STARTS=1 IDLE_SECONDS=1 TIMEOUT=60 PROFILE=debug PEERS=0 ;;
esac
N8N_SECONDS=$((TIMEOUT / 3))
# The fan-out waits at most this long for its executions (its target is 5 s).
: "${FANOUT_TIMEOUT:=60}"

for tool in cargo curl jq python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: needs $tool" >&2; exit 2; }
done
if [[ -n $POSTGRES ]]; then
    command -v psql >/dev/null || { echo "run.sh: --postgres needs psql" >&2; exit 2; }
    psql -q "$POSTGRES" -c 'SELECT 1' >/dev/null || { echo "run.sh: cannot reach $POSTGRES" >&2; exit 2; }
fi
if [[ $PEERS == 1 ]]; then
    for tool in node npm; do
        command -v "$tool" >/dev/null || { echo "run.sh: the peers need $tool (or pass --no-peers)" >&2; exit 2; }
    done
fi

BIN=$ROOT/target/$PROFILE
ALERTFLOW=$BIN/alertflow
HARNESS=$BIN/alertflow-bench
NODE_RED=$BENCH/node-red/node_modules/node-red/red.js
N8N=$BENCH/n8n/node_modules/n8n/bin/n8n

if [[ $BUILD == 1 ]]; then
    echo "== cargo build ($PROFILE): alertflow and the harness" >&2
    if [[ $PROFILE == release ]]; then
        (cd "$ROOT" && cargo build --release --locked --quiet -p alertflow -p alertflow-bench)
    else
        # Every target of the workspace, as `cargo test --workspace` builds them: the same
        # features, so CI, which runs the tests next, compiles the dependencies only once.
        (cd "$ROOT" && cargo build --locked --quiet --workspace --all-targets)
    fi
fi
for bin in "$ALERTFLOW" "$HARNESS"; do
    [[ -x $bin ]] || { echo "run.sh: no $bin (drop --no-build)" >&2; exit 2; }
done
if [[ $PEERS == 1 ]]; then
    # From the committed lock files, into folders git ignores. `npm install --no-save` rather
    # than `npm ci`: this npm leaves other platforms' optional packages out of lock files, and
    # `npm ci` then refuses them; --no-save installs what they pin and leaves them as they are.
    npm_install=(npm install --no-audit --no-fund --no-save --loglevel=error)
    [[ -f $NODE_RED ]] || { echo "== npm install (node-red)" >&2; (cd "$BENCH/node-red" && "${npm_install[@]}"); }
    [[ -f $N8N ]] || { echo "== npm install (n8n, a few minutes)" >&2; (cd "$BENCH/n8n" && "${npm_install[@]}"); }
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/alertflow-bench.XXXXXX")
[[ -n $OUT ]] || { if [[ $MODE == quick ]]; then OUT=$WORK/out; else OUT=$BENCH; fi; }
mkdir -p "$OUT"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
SERVER_PID=
LOAD_PID=

# Stops the current server: its whole process group, TERM first, KILL after 10 s.
stop_server() {
    local pid=$SERVER_PID
    [[ -n $pid ]] || return 0
    SERVER_PID=
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    if [[ -n $LOAD_PID ]]; then kill -TERM "$LOAD_PID" 2>/dev/null || true; fi
    stop_server
    if declare -F pg_drop >/dev/null; then pg_drop; fi
    if [[ -n ${KEEP:-} ]]; then echo "run.sh: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
SINK_ADDR=127.0.0.1:$(free_port)
SINK_URL=http://$SINK_ADDR/sink
API_KEY_PEERS=bench-$RANDOM$RANDOM

# Starts a server in a process group of its own (setsid), so that stopping it stops anything it
# started. Sets SERVER_PID and STARTED_AT (the wall clock just before the start).
spawn() {
    local log=$1; shift
    STARTED_AT=$EPOCHREALTIME
    setsid "$@" >>"$log" 2>&1 &
    SERVER_PID=$!
}

# Waits until the server answers, and sets STARTUP_MS to the time since it was started.
wait_ready() {
    local log=$1; shift
    local json
    if ! json=$("$HARNESS" wait-ready --since "$STARTED_AT" --pid "$SERVER_PID" "$@"); then
        echo "run.sh: server not ready; the end of its log:" >&2
        tail -20 "$log" >&2
        return 1
    fi
    STARTUP_MS=$(jq .ready_ms <<<"$json")
}

# Resident set now and at its peak (KiB), and user + system CPU seconds, of the server.
proc_stats() {
    local pid=$SERVER_PID hwm rss ticks
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the command name.
    ticks=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')
    jq -nc --argjson hwm "$hwm" --argjson rss "$rss" --argjson t "$ticks" --argjson hz "$(getconf CLK_TCK)" \
        '{peak_rss_kib: $hwm, rss_kib: $rss, cpu_total_s: ($t / $hz)}'
}

# Appends one record: JSON (from the generator or built here) plus where it belongs.
record() {
    local target=$1 scenario=$2 run=$3 json=$4
    jq -c --arg t "$target" --arg s "$scenario" --argjson r "$run" '. + {target: $t, scenario: $s, run: $r}' \
        <<<"$json" | tee -a "$RESULTS" >&2
}

# Runs the generator against the current server and records the result with the server's
# memory and the CPU it used during the load.
load() {
    local target=$1 scenario=$2 run=$3; shift 3
    local before after json rc=0
    before=$(proc_stats)
    echo "== $target $scenario (run $run)" >&2
    local limit=${LOAD_TIMEOUT:-$TIMEOUT}
    timeout $((limit + 60)) "$HARNESS" load --threads 1 --timeout "$limit" \
        --fixtures "$ROOT/tests/fixtures/alertmanager-0.25" --label "$target/$scenario" "$@" \
        >"$WORK/load.json" 2>"$WORK/load.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    json=$(cat "$WORK/load.json")
    if [[ -z $json ]]; then
        json=$(jq -nc --arg e "generator exit $rc: $(tail -c 300 "$WORK/load.err")" '{error: $e}')
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        after=$(proc_stats)
        json=$(jq -c --argjson b "$before" --argjson a "$after" \
            '. + {peak_rss_kib: $a.peak_rss_kib, rss_kib: $a.rss_kib, cpu_s: (($a.cpu_total_s - $b.cpu_total_s) * 100 | round / 100)}' <<<"$json")
    else
        json=$(jq -c '. + {error: ((.error // "") + " the server died during the load")}' <<<"$json")
    fi
    record "$target" "$scenario" "$run" "$json"
}

# Leaves the server alone for IDLE_SECONDS and records its memory and CPU meanwhile.
idle() {
    local target=$1 run=$2 before after
    echo "== $target idle (run $run): ${IDLE_SECONDS}s" >&2
    before=$(proc_stats)
    sleep "$IDLE_SECONDS"
    after=$(proc_stats)
    record "$target" idle "$run" "$(jq -nc --argjson b "$before" --argjson a "$after" \
        --argjson s "$IDLE_SECONDS" --argjson st "$STARTUP_MS" \
        '{rss_kib: $a.rss_kib, peak_rss_kib: $a.peak_rss_kib, seconds: $s, startup_ms: $st,
          cpu_s: (($a.cpu_total_s - $b.cpu_total_s) * 100 | round / 100), complete: true}')"
}

# --- alertflow ---------------------------------------------------------------------------

AF_BASE= AF_KEY= AF_DATA=
# The target the alertflow scenarios are recorded as: alertflow-pg while run_alertflow_pg runs.
AF_TARGET=alertflow

# Starts alertflow on a new, empty data dir; extra arguments go to `serve`. The ingress rate
# limits (1,000 deliveries/s per key and per source by default) are off: the benchmark measures
# what one node can take, from one key and one address.
af_start() {
    local name=$1; shift
    local port
    port=$(free_port)
    AF_DATA=$WORK/$AF_TARGET-$name
    AF_BASE=http://127.0.0.1:$port
    spawn "$AF_DATA.log" env ALERTFLOW_LOG=warn "$ALERTFLOW" serve --listen "127.0.0.1:$port" --data-dir "$AF_DATA" \
        --ingress-rate-per-key 0 --ingress-rate-per-source 0 "$@"
    wait_ready "$AF_DATA.log" --url "$AF_BASE/readyz" --status 200 --timeout 60
}

# Creates the key `bench` and applies the workflows, pointed at the sink.
af_setup() {
    local token wf auth
    token=$(cat "$AF_DATA/admin-token")
    auth=(-H "Authorization: Bearer $token")
    AF_KEY=$(curl -sf "${auth[@]}" -H 'content-type: application/json' -d '{"name":"bench"}' "$AF_BASE/api/v1/keys" | jq -r .value)
    for wf in "$@"; do
        sed "s|@SINK_URL@|$SINK_URL|" "$BENCH/workflows/$wf.yaml" |
            curl -sf "${auth[@]}" -H 'content-type: application/yaml' --data-binary @- "$AF_BASE/api/v1/workflows" >/dev/null
    done
}

DONE_METRIC=${DONE_METRIC:-'alertflow_executions_total{status="succeeded"}'}

run_alertflow() {
    local run=$1 k
    for k in $(seq "$STARTS"); do
        af_start "coldstart-$run-$k"
        record alertflow coldstart "$k" "$(jq -nc --argjson ms "$STARTUP_MS" '{ready_ms: $ms, complete: true}')"
        stop_server
    done

    af_start "idle-$run"; af_setup e2e
    idle alertflow "$run"
    stop_server

    af_start "healthz-$run"
    # Four times N: a request here costs a fraction of a delivery, and the run should last.
    load alertflow healthz "$run" --method GET --url "$AF_BASE/healthz" -n "$((4 * N))" -c "$C" --warmup "$WARMUP"
    stop_server

    local body scenario count
    for body in fixtures alerts:1 alerts:10 alerts:1000; do
        scenario=ingest count=$N
        [[ $body == fixtures ]] || scenario=ingest-${body#alerts:}
        [[ $body == alerts:1000 ]] && count=$BIG_N
        af_ingest "$run" "$scenario" "$body" "$count"
    done

    af_e2e "$run" e2e e2e -n "$N" -c "$C" --warmup "$WARMUP"
    af_e2e "$run" e2e-rate e2e -n "$((RATE * RATE_SECONDS))" --rate "$RATE" --duration "$RATE_SECONDS" \
        -c "$C" --warmup "$WARMUP"
    # Its target is 5 s; a server far slower than that is cut off after FANOUT_TIMEOUT and its
    # count of finished executions reported.
    LOAD_TIMEOUT=$FANOUT_TIMEOUT af_e2e "$run" fanout fanout --body "alerts:$FANOUT" -n 1 -c 1 --forwards alert
}

# Ingest alone on a fresh server with no workers: each delivery is checked, committed and
# queued, and no step runs.
af_ingest() {
    local run=$1 scenario=$2 body=$3 count=$4
    af_start "$scenario-$run" --workers 0; af_setup e2e
    load "$AF_TARGET" "$scenario" "$run" --url "$AF_BASE/hooks/e2e" --api-key "$AF_KEY" --body "$body" \
        -n "$count" -c "$C" --warmup "$((WARMUP < count ? WARMUP : count))"
    stop_server
}

# An end-to-end scenario on a fresh server: every execution must reach the sink and be counted
# as succeeded by alertflow's own /metrics.
af_e2e() {
    local run=$1 scenario=$2 workflow=$3; shift 3
    af_start "$scenario-$run"; af_setup "$workflow"
    load "$AF_TARGET" "$scenario" "$run" --url "$AF_BASE/hooks/$workflow" --api-key "$AF_KEY" \
        --sink "$SINK_ADDR" --done-metrics "$AF_BASE/metrics" --done-metric "$DONE_METRIC" "$@"
    stop_server
}

# A peer that could not be set up or started: recorded, so the report shows it, and the run
# goes on with the next target.
peer_failed() {
    local target=$1 run=$2 what=$3
    echo "run.sh: $target: $what" >&2
    record "$target" e2e "$run" "$(jq -nc --arg e "$what" '{error: $e}')"
    stop_server
}

# --- alertflow on PostgreSQL ------------------------------------------------------------

PG_DB= PG_URL=
# A new database on the --postgres server for one scenario: sets PG_DB and PG_URL.
pg_create() {
    PG_DB=alertflow_bench_$RANDOM$RANDOM
    psql -q "$POSTGRES" -c "CREATE DATABASE $PG_DB" >/dev/null
    PG_URL=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/" + sys.argv[2])))' "$POSTGRES" "$PG_DB")
}
pg_drop() {
    [[ -n $PG_DB ]] || return 0
    psql -q "$POSTGRES" -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null || true
    PG_DB=
}

# Ingest (fixtures, no workers) and end to end at full speed and at the fixed rate, as for
# SQLite, with the store on PostgreSQL: what a node of a cluster does. PostgreSQL runs with its
# own settings (durable by default).
run_alertflow_pg() {
    local run=$1
    AF_TARGET=alertflow-pg
    pg_create; ALERTFLOW_DATABASE_URL=$PG_URL af_ingest "$run" ingest fixtures "$N"; pg_drop
    pg_create; ALERTFLOW_DATABASE_URL=$PG_URL af_e2e "$run" e2e e2e -n "$N" -c "$C" --warmup "$WARMUP"; pg_drop
    pg_create
    ALERTFLOW_DATABASE_URL=$PG_URL af_e2e "$run" e2e-rate e2e -n "$((RATE * RATE_SECONDS))" --rate "$RATE" \
        --duration "$RATE_SECONDS" -c "$C" --warmup "$WARMUP"
    pg_drop
    AF_TARGET=alertflow
}

# --- the relay: the end-to-end ceiling ---------------------------------------------------

# The same flow with no store and no engine (`alertflow-bench relay`): what a server doing only
# the flow reaches on this machine with this generator and sink, as /healthz is for ingest.
run_relay() {
    local run=$1 port dir base
    port=$(free_port)
    dir=$WORK/relay-$run
    base=http://127.0.0.1:$port
    spawn "$dir.log" "$HARNESS" relay --listen "127.0.0.1:$port" --sink-url "$SINK_URL" --api-key "$API_KEY_PEERS"
    wait_ready "$dir.log" --url "$base/healthz" --status 200 --timeout 60 ||
        { peer_failed relay "$run" "did not start (see its log above)"; return 0; }
    load relay e2e "$run" --url "$base/hooks/e2e" --api-key "$API_KEY_PEERS" --sink "$SINK_ADDR" --finished-on-ack \
        -n "$N" -c "$C" --warmup "$WARMUP"
    stop_server
}

# --- Node-RED ----------------------------------------------------------------------------

run_node_red() {
    local run=$1 port dir base
    port=$(free_port)
    dir=$WORK/node-red-$run
    base=http://127.0.0.1:$port
    mkdir -p "$dir"
    spawn "$dir.log" env BENCH_PORT="$port" BENCH_API_KEY="$API_KEY_PEERS" BENCH_SINK_URL="$SINK_URL" \
        node "$NODE_RED" --settings "$BENCH/node-red/settings.js" --userDir "$dir"
    # 401 without a key means the flow is deployed and answering, not just the port open.
    wait_ready "$dir.log" --url "$base/hooks/e2e" --method POST --status 401 --timeout 60 ||
        { peer_failed node-red "$run" "did not start (see its log above)"; return 0; }
    idle node-red "$run"
    local common=(--url "$base/hooks/e2e" --api-key "$API_KEY_PEERS" --sink "$SINK_ADDR" --finished-on-ack)
    load node-red e2e "$run" "${common[@]}" -n "$N" -c "$C" --warmup "$WARMUP"
    load node-red e2e-rate "$run" "${common[@]}" -n "$((RATE * RATE_SECONDS))" --rate "$RATE" \
        --duration "$RATE_SECONDS" -c "$C" --warmup "$WARMUP"
    stop_server
}

# --- n8n -----------------------------------------------------------------------------------

run_n8n() {
    local run=$1 port dir base
    port=$(free_port)
    dir=$WORK/n8n-$run
    base=http://127.0.0.1:$port
    mkdir -p "$dir"
    local env=(env N8N_USER_FOLDER="$dir" N8N_PORT="$port" N8N_LISTEN_ADDRESS=127.0.0.1 N8N_HOST=127.0.0.1
        N8N_RUNNERS_ENABLED=false N8N_DIAGNOSTICS_ENABLED=false N8N_VERSION_NOTIFICATIONS_ENABLED=false
        N8N_TEMPLATES_ENABLED=false N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS=true N8N_LOG_LEVEL=warn)
    # The key as an n8n credential (header auth, as alertflow checks X-API-Key), the workflow
    # pointed at the sink, then activated; n8n's CLI writes them to its default SQLite store.
    sed "s|@API_KEY@|$API_KEY_PEERS|" "$BENCH/n8n/credentials.json" >"$dir/credentials.json"
    sed "s|@SINK_URL@|$SINK_URL|" "$BENCH/n8n/workflow.json" >"$dir/workflow.json"
    echo "== n8n: importing the workflow" >&2
    local step
    for step in "import:credentials --input=$dir/credentials.json" "import:workflow --input=$dir/workflow.json" \
        "update:workflow --id=alertflowBench01 --active=true"; do
        # shellcheck disable=SC2086 # each step is a command and its flags, split on purpose
        timeout 120 "${env[@]}" node "$N8N" $step >>"$dir.log" 2>&1 ||
            { tail -20 "$dir.log" >&2; peer_failed n8n "$run" "n8n $step failed"; return 0; }
    done
    spawn "$dir.log" "${env[@]}" node "$N8N" start
    # 403 without the key means the webhook is registered and checking keys.
    wait_ready "$dir.log" --url "$base/webhook/e2e" --method POST --status 403 --timeout 120 ||
        { peer_failed n8n "$run" "did not start (see its log above)"; return 0; }
    idle n8n "$run"
    load n8n e2e "$run" --url "$base/webhook/e2e" --api-key "$API_KEY_PEERS" --sink "$SINK_ADDR" --finished-on-ack \
        -n "$N8N_N" --duration "$N8N_SECONDS" -c "$C" --warmup 20
    stop_server
}

# --- the run -------------------------------------------------------------------------------

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== $(date -u +%FT%TZ) $MODE run, results in $OUT; load average $LOAD_BEFORE" >&2
for run in $(seq "$REPEAT"); do
    run_alertflow "$run"
    [[ -z $POSTGRES ]] || run_alertflow_pg "$run"
    run_relay "$run"
    if [[ $PEERS == 1 ]]; then
        run_node_red "$run"
        run_n8n "$run"
    fi
done

version_of() { jq -r .version "$1" 2>/dev/null || echo -; }
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || commit="$commit with uncommitted changes"
meta=$(jq -n --arg date "$(date -u +'%Y-%m-%d %H:%M UTC')" --arg mode "$MODE" --arg note "$NOTE" --arg command "$COMMAND" \
    --arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" --arg cores "$(nproc)" \
    --arg memory "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)" --arg kernel "$(uname -srm)" \
    --arg load_before "$LOAD_BEFORE" --arg load_after "$(cut -d' ' -f1-3 /proc/loadavg)" \
    --arg alertflow "$commit ($PROFILE build)" --arg rustc "$(rustc --version 2>/dev/null || echo -)" \
    --arg node "$(node --version 2>/dev/null || echo -)" \
    --arg node_red "$( [[ $PEERS == 1 ]] && version_of "$BENCH/node-red/node_modules/node-red/package.json" || echo 'not run')" \
    --arg n8n "$( [[ $PEERS == 1 ]] && version_of "$BENCH/n8n/node_modules/n8n/package.json" || echo 'not run')" \
    --arg settings "N=$N, C=$C, warm-up $WARMUP, ingest-1000 N=$BIG_N, fixed rate $RATE/s for ${RATE_SECONDS}s, fan-out $FANOUT alerts, n8n N=$N8N_N (at most ${N8N_SECONDS}s), $STARTS cold starts, idle ${IDLE_SECONDS}s, repeat $REPEAT" \
    '{date: $date, mode: $mode, note: $note, command: $command,
      machine: {cpu: $cpu, cores: $cores, memory: $memory, kernel: $kernel, load_before: $load_before, load_after: $load_after},
      versions: {alertflow: $alertflow, rustc: $rustc, node: $node, node_red: $node_red, n8n: $n8n},
      settings: $settings}')
echo "$meta" >"$WORK/meta.json"
# The raw records and the run's description, from which `alertflow-bench report` can redraw.
cp "$RESULTS" "$OUT/results.jsonl"
cp "$WORK/meta.json" "$OUT/results.meta.json"
echo
# The hand-written reading of a full run (the profile, what changed, why a target is missed).
ANALYSIS=()
[[ $MODE == full && -f $BENCH/ANALYSIS.md ]] && ANALYSIS=(--analysis "$BENCH/ANALYSIS.md")
# The report's exit status says whether every scenario was complete.
"$HARNESS" report --results "$RESULTS" --meta "$WORK/meta.json" --out "$OUT/RESULTS.md" --chart "$OUT/results.svg" "${ANALYSIS[@]}"
