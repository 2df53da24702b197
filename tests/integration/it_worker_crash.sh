# kill -9 of the worker at random moments, 20 times, during 20,000 events: the effects are
# exactly the input set, and the relay leaves no unpublished outbox row.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

example_setup
KPROPS="session.timeout.ms=3000,heartbeat.interval.ms=300"
start_worker() {
    start_example "worker.$1" IMP_WORKER_BATCH=100 IMP_EXAMPLE_SLEEP_US=300 \
        IMP_EXAMPLE_EMIT_TOPIC=imp.test.out.v1 IMP_KAFKA_CONSUMER_PROPS="$KPROPS"
    WPID=$BG_PID
}

RANDOM=42
start_worker 0
kills=0
for chunk in 0 1 2 3; do
    feed --count 5000 --start $((chunk * 5000)) --run crash --seed $((chunk + 1))
    for _ in 1 2 3 4 5; do
        before=$(q "SELECT count(*) FROM example_effects")
        # Wait until this incarnation is processing, then kill it at a random moment.
        wait_for 60 "progress" at_least $((before + 1)) "SELECT count(*) FROM example_effects" ||
            fail "worker made no progress after restart $kills"
        sleep "0.$((RANDOM % 8))$((RANDOM % 10))"
        kill -9 "$WPID"
        kills=$((kills + 1))
        start_worker "$kills"
    done
done
assert_eq "kills" 20 "$kills"
wait_distinct 20000 240
wait_quiet 3
check_effects 0 20000
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
wait_for 30 "relay publishes the outbox" at_most 0 "SELECT count(*) FROM outbox WHERE published_at IS NULL"
assert_eq "unpublished outbox rows" 0 "$(unpublished_outbox)"
assert_eq "outbox rows (one emitted event per event)" 20000 \
    "$(q "SELECT count(DISTINCT operation_id) FROM outbox WHERE topic = 'imp.test.out.v1'")"
pass "20 kill -9 during 20,000 events: exactly once"
