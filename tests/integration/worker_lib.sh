# Shared by the worker-runtime integration tests (it_worker_*.sh). Source it after the
# harness has exported the environment.
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"

# The example worker's effect table: no unique constraint, so a double effect is visible.
example_setup() {
    psql_owner -c "
        CREATE TABLE IF NOT EXISTS example_effects (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            operation_id uuid NOT NULL, seq bigint NOT NULL, attempt int NOT NULL,
            tenant uuid, at timestamptz NOT NULL DEFAULT now());
        GRANT SELECT, INSERT ON example_effects TO imperium_app;" >/dev/null
}

# start_example NAME [VAR=VALUE…]: an example worker in the background ($BG_PID).
start_example() {
    local name=$1
    shift
    start_bg "$name" env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
        IMP_WORKER_RETRY_BASE=200ms IMP_WORKER_RETRY_MAX=2s IMP_WORKER_RELAY_INTERVAL=500ms \
        IMP_WORKER_RELAY_GRACE=2s IMP_WORKER_INFRA_BACKOFF_MAX=1s "$@" "$BIN/worker_example"
}

feed() { "$BIN/worker_feed" "$@" >/dev/null || fail "worker_feed $* failed"; }

q() { psql_owner -c "$1"; }

effects_distinct() { q "SELECT count(DISTINCT seq) FROM example_effects"; }

# at_least N SQL: the query's single value is at least N (for wait_for, which re-runs it).
at_least() { [ "$(q "$2")" -ge "$1" ]; }
at_most() { [ "$(q "$2")" -le "$1" ]; }

# The main-thread stacks of every running example worker (for a test that is stuck).
dump_stacks() {
    command -v gdb >/dev/null || return 0
    local pid
    for pid in $(pgrep -f "$BIN/worker_example"); do
        say "stack of worker_example $pid:"
        gdb -p "$pid" -batch -ex "thread 1" -ex "bt 30" 2>/dev/null | grep -E '^#' >&2 || true
    done
}

# wait_distinct N TIMEOUT: until N distinct events have an effect.
wait_distinct() {
    local want=$1 timeout=$2
    if ! wait_for "$timeout" "$want distinct effects" \
        at_least "$want" "SELECT count(DISTINCT seq) FROM example_effects"; then
        dump_stacks
        fail "only $(effects_distinct) of $want events have an effect"
    fi
}

# wait_quiet SECONDS: until the effect and dead-letter counts stop moving for SECONDS.
wait_quiet() {
    local quiet=$1 last="" now stable=0
    while [ "$stable" -lt "$quiet" ]; do
        now=$(q "SELECT (SELECT count(*) FROM example_effects) || '/' ||
                        (SELECT count(*) FROM dead_letters)")
        if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
        last=$now
        sleep 1
    done
}

# check_effects FROM TO: every seq in [FROM, TO) exactly once, nothing else.
# Prints and asserts lost / duplicated / unexpected.
check_effects() {
    local from=$1 to=$2 lost dup unexpected
    lost=$(q "SELECT count(*) FROM generate_series($from, $to - 1) s
              WHERE NOT EXISTS (SELECT 1 FROM example_effects e WHERE e.seq = s)")
    dup=$(q "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM example_effects
             WHERE seq >= $from AND seq < $to GROUP BY seq) x")
    unexpected=$(q "SELECT count(*) FROM example_effects WHERE seq < $from OR seq >= $to")
    say "events [$from, $to): lost=$lost duplicated=$dup unexpected=$unexpected"
    assert_eq "lost events" 0 "$lost"
    assert_eq "duplicated effects" 0 "$dup"
    assert_eq "unexpected effects" 0 "$unexpected"
}

unpublished_outbox() { q "SELECT count(*) FROM outbox WHERE published_at IS NULL"; }
