# Worker runtime throughput: events/s committed through inbox, outbox and offsets, with a
# no-op handler that emits one event per event, and with a handler that also writes one row.
# Runs inside tests/harness.sh (deploy/dev.sh bench).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

N=${BENCH_EVENTS:-100000}
example_setup

# Each run reads its own topic (the dev broker keeps only about 5 MiB per partition, so runs
# must not pile up on one).
run() { # run LABEL RUNNAME TOPIC [VAR=VALUE…]
    local label=$1 runname=$2 topic=$3
    shift 3
    q "TRUNCATE inbox, outbox, example_effects" >/dev/null
    feed --count "$N" --run "$runname" --topic "$topic"
    start_example "bench.$runname" IMP_WORKER_GROUP="bench-$runname" IMP_LOG_LEVEL=warn \
        IMP_WORKER_RELAY_INTERVAL=5s IMP_WORKER_RELAY_GRACE=10s \
        IMP_EXAMPLE_EMIT_TOPIC=imp.test.out.v1 IMP_EXAMPLE_TOPIC="$topic" "$@"
    local pid=$BG_PID
    local total=$N secs rate
    # Poll once a second: a tighter loop of psql processes would eat the CPU being measured.
    local waited=0
    until at_least "$total" "SELECT count(*) FROM inbox"; do
        sleep 1
        waited=$((waited + 1))
        [ "$waited" -lt 900 ] || fail "$label: not done after 900 s"
    done
    stop_bg "$pid" 20 || true
    secs=$(q "SELECT extract(epoch FROM max(processed_at) - min(processed_at)) FROM inbox")
    rate=$(python3 -c "print(round($total / max($secs, 1e-9)))")
    printf '%-40s %8d events in %6.2f s  %8d events/s  %6.1f us/event\n' "$label" "$total" \
        "$secs" "$rate" "$(python3 -c "print(1e6 / $rate)")"
}

echo "runtime throughput (2 cores, devbroker, local Postgres; batch up to 500)"
run "no-op handler, 1 emitted event each" noop imp.bench.noop.v1 IMP_EXAMPLE_NOOP=1
run "one INSERT per event, 1 emitted event" insert imp.bench.insert.v1
