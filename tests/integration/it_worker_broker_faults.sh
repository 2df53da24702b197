# Broker errors injected on produce and on offset commit through the devbroker's control
# channel while the worker consumes and emits: nothing lost, nothing duplicated, every
# emitted event published.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

example_setup
start_example worker IMP_EXAMPLE_EMIT_TOPIC=imp.test.out.v1 IMP_WORKER_BATCH=100 \
    IMP_EXAMPLE_SLEEP_US=200 IMP_WORKER_PUBLISH_TIMEOUT=3s \
    IMP_KAFKA_PRODUCER_PROPS="delivery.timeout.ms=2000,retry.backoff.ms=50"
feed --count 10000 --run faults
wait_distinct 1000 120
for round in 1 2 3 4 5; do
    devbroker_cmd "error produce 30 NOT_ENOUGH_REPLICAS" >/dev/null || fail "control: produce errors"
    devbroker_cmd "error commit 10 REQUEST_TIMED_OUT" >/dev/null || fail "control: commit errors"
    sleep 1
done
wait_distinct 10000 180
wait_for 60 "outbox drained" at_most 0 "SELECT count(*) FROM outbox WHERE published_at IS NULL"
wait_quiet 3
check_effects 0 10000
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "emitted events" 10000 \
    "$(q "SELECT count(DISTINCT operation_id) FROM outbox WHERE topic = 'imp.test.out.v1'")"
pass "produce and commit errors injected: exactly once, every event published"
