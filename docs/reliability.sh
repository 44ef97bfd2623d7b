#!/usr/bin/env bash
# Runs the reliability tests and writes docs/reliability.md from the figures they record.
#
#   bash docs/reliability.sh             # the tests, then the report
#   bash docs/reliability.sh --fuzz 60   # also each fuzz target for 60 s (needs nightly + cargo-fuzz)
#
# Needs what .ci/run installs: prometheus-alertmanager, a PostgreSQL to make databases on
# (ALERTFLOW_TEST_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres), and root for
# the tmpfs and the loop-mounted ext4 of the disk tests. Every test must run: a missing part fails instead of skipping.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

FUZZ_SECONDS=
if [[ ${1:-} == --fuzz ]]; then FUZZ_SECONDS=${2:?--fuzz SECONDS}; fi

# Test name (the filter given to cargo test), then what it does; the report keeps this order.
TESTS=(
  sigkill_under_a_real_alertmanager
  "A real Alertmanager (Debian's package) streams 30 alert groups at \`alertflow serve\`, which is killed with SIGKILL after the 10th and restarted on the same address. Every group must run exactly once and succeed; the server must have taken at least what Alertmanager counts as sent; a delivery taken twice (committed as the process died, then retried) must be recognised as a duplicate and start nothing."
  a_killed_server_resumes_the_run_after_restart
  "A run is killed (SIGKILL) while its second step's request is in flight, and the server restarted. The finished first step must not run again; the interrupted one runs again as attempt 2; the delivery and its body are intact."
  sigterm_stops_taking_deliveries_and_hands_back_unfinished_runs
  "SIGTERM while a step is held open downstream: the server must stop taking deliveries at once, exit 0 within its 10 s grace, and hand the run back; after a restart the step resumes as attempt 2."
  three_nodes_share_the_work_and_survive_a_killed_one
  "Three nodes on one PostgreSQL. Each of 60 notifications is posted by two \"HA peers\" to two different nodes; one node is killed with SIGKILL after the 20th. There must be exactly one run per notification, all succeeded, and the sink must see each, repeated at most where a killed node's step ran again."
  a_postgres_restart_answers_503_and_loses_nothing
  "A private PostgreSQL is stopped and started under a steady sender. Deliveries during the outage must get 503 with Retry-After (never a 4xx or 500), the node reconnects by itself, and every delivery answered 202 runs to the end."
  a_disk_filling_up_under_ingest_answers_503_and_recovers_when_space_returns
  "The data dir is on a 24 MB tmpfs; a file fills it while deliveries of half a megabyte arrive. Once SQLite cannot write, deliveries must get 503 with Retry-After and a reason naming the disk, the log must say so once, and when the file is deleted the same process takes deliveries again. Every delivery answered 202 runs; SQLite's integrity check passes."
  a_read_only_or_full_disk_at_start_up_answers_503_until_it_clears
  "The server is started on an existing store whose tmpfs is remounted read-only, then again on one that is full. It must not exit: while it cannot open the store every request gets 503 with the reason, \`/readyz\` fails and the log says why (on the full disk the store may still open, and then the first write is refused with 503 naming the full disk); when the fault clears the same process takes a delivery and runs it. SQLite's integrity check passes."
  a_data_dir_turning_read_only_under_ingest_answers_503_and_loses_nothing
  "The data dir is on a loop-mounted ext4 with \`errors=remount-ro\`; the kernel is told to find an error in it (\`trigger_fs_error\`), so it turns read-only under the server's open files, as a failing disk does. Deliveries must get 503 with Retry-After, the API still reads, the log says so once, and SIGTERM still exits cleanly. After the operator's repair (unmount, e2fsck, mount) and a restart, everything accepted before is there and new deliveries are taken; SQLite's integrity check passes."
  every_downstream_fault_ends_the_run_with_its_cause_and_no_worker_stays_blocked
  "\`http.request\` and the seven HTTP integrations, each against a refused port, a connection reset (RST), a server that never answers, a body that drips one byte a second, a 503, and TLS spoken to a plain server; step timeout 1 s, 2 attempts. Only four workers run all 48 runs (about a minute of timeouts in all), so a worker blocked past its timeout would leave runs unfinished. Each run must fail with an error naming the fault and the host, transient faults tried twice, TLS once, and nothing left running."
  a_429_with_retry_after_is_waited_out_by_every_integration
  "Each integration first gets a 429 with Retry-After: 1, then the answer the real API gives. Each run must succeed after exactly two requests."
  hostile_deliveries_get_4xx_and_harm_nothing
  "The corpus in \`tests/fixtures/hostile\` and generated bodies, then 100 slow-loris connections and a flood of 2,000 headers. Each must get its 4xx, a valid delivery must still pass, and what was accepted before must be intact and run."
  deliveries_over_the_rate_per_key_or_per_source_get_503_with_retry_after
  "Deliveries over the rate of their key, or of their source address, must get 503 with Retry-After (Alertmanager retries a 5xx and drops a 4xx), name the limit, and start nothing; another key is not held back by one key's flood."
  runaway_jq_programs_and_templates_fail_their_step_and_nothing_else
  "jq programs that recurse until the stack overflows, never end, or eat memory, and a template with nested loops of 100,000. Each must fail its own step with its cause (jq runs in worker processes that die or are killed; templates run on fuel); a later jq step must still work."
  templates_as_deep_as_the_length_limit_allows_do_not_take_the_server_down
  "Templates of 16 KiB (the limit) that chain \`.a\`, \`|string\` or \`[0]\` as deep as that length allows are applied and run by the real binary: parsers that recurse must not overflow its stack. One byte more is refused with 422 when applied. (jq programs are likewise limited to 16 KiB and 128 levels of brackets; the unit tests check that.)"
  every_api_route_enforces_its_role
  "Walks the route table the router is built from: every \`/api/v1\` route is called without a credential and as a viewer, an editor and an admin. Anonymous must get 401 everywhere; each role must be refused exactly the routes above it."
)

FIGURES=$(mktemp)
trap 'rm -f "$FIGURES"' EXIT
filters=()
for ((i = 0; i < ${#TESTS[@]}; i += 2)); do filters+=("${TESTS[i]}"); done

export ALERTFLOW_FIGURES=$FIGURES ALERTFLOW_E2E=require
export ALERTFLOW_TEST_POSTGRES=${ALERTFLOW_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
cargo test --locked --test it -- "${filters[@]}"

FUZZ=
if [[ -n $FUZZ_SECONDS ]]; then FUZZ=$(bash fuzz/run.sh "$FUZZ_SECONDS" 2>&1); fi

python3 - "$FIGURES" "$FUZZ_SECONDS" "$FUZZ" "${TESTS[@]}" > docs/reliability.md <<'PY'
import json, subprocess, sys
figures_file, fuzz_seconds, fuzz_out, tests = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
figures = {}
for line in open(figures_file):
    record = json.loads(line)
    figures[record["test"]] = record["figures"]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print("# Reliability")
print()
print("What alertflow's crash, fault, hostile-input and access tests do, and the figures each ended")
print(f"with in the last run. Written by `bash docs/reliability.sh` at commit {commit}; do not edit by")
print("hand. The tests are in `tests/it/` and run with the rest of the suite (`cargo test`); the figures")
print("change a little between runs (how many deliveries a sender got in before a fault, say).")
print()

def show(value, indent=""):
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                print(f"{indent}- {k.replace('_', ' ')}:")
                show(v, indent + "  ")
            else:
                print(f"{indent}- {k.replace('_', ' ')}: {v}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict):
                print(f"{indent}- " + "; ".join(f"{k.replace('_', ' ')}: {x}" for k, x in v.items()))
            else:
                print(f"{indent}- {v}")

for name, what in zip(tests[0::2], tests[1::2]):
    print(f"## `{name}`")
    print()
    print(what)
    print()
    if name in figures:
        print("Figures:")
        print()
        show(figures[name])
    else:
        print("Figures: none recorded (the test did not run to its end).")
    print()

print("## Fuzzing")
print()
print("`fuzz/` has cargo-fuzz targets for the Alertmanager body parser (`alertmanager_body`), the")
print("workflow document parser (`workflow_document`) and template evaluation (`template`). `.ci/run`")
print("runs each for 10 s where a nightly toolchain is available; `bash fuzz/run.sh SECONDS` runs them")
print("longer. Crashes found so far (minijinja's lexer panicking on `}}{`) are guarded and kept as tests.")
if fuzz_seconds:
    print()
    print(f"Last run here, {fuzz_seconds} s per target:")
    print()
    print("```")
    print(fuzz_out.strip())
    print("```")
PY
echo "wrote docs/reliability.md"
