# Two worker processes in one group on the 12-partition topic split the work; one leaves
# half-way; nothing is lost or duplicated.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

metric() { # metric PORT NAME: the value of an unlabelled-by-us counter for worker example
    curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"[{]" {print $2}' | head -n 1
}
example_setup
KPROPS="session.timeout.ms=3000,heartbeat.interval.ms=300"
P1=$(free_port)
P2=$(free_port)
start_example w1 IMP_METRICS_PORT="$P1" IMP_EXAMPLE_SLEEP_US=500 IMP_WORKER_BATCH=50 \
    IMP_KAFKA_CONSUMER_PROPS="$KPROPS"
W1=$BG_PID
start_example w2 IMP_METRICS_PORT="$P2" IMP_EXAMPLE_SLEEP_US=500 IMP_WORKER_BATCH=50 \
    IMP_KAFKA_CONSUMER_PROPS="$KPROPS"
wait_for 30 "both listeners" port_open "$P1"
wait_for 30 "both listeners" port_open "$P2"
feed --count 20000 --run group
wait_distinct 6000 180
a=$(metric "$P1" imperium_worker_processed_total)
b=$(metric "$P2" imperium_worker_processed_total)
say "before the leave: w1 processed ${a:-0}, w2 processed ${b:-0}"
[ "${a:-0}" -gt 0 ] && [ "${b:-0}" -gt 0 ] || fail "the work was not split (w1=${a:-0}, w2=${b:-0})"
stop_bg "$W1" 20 || fail "w1 did not stop cleanly"
say "w1 left the group"
wait_distinct 20000 180
wait_quiet 3
check_effects 0 20000
b2=$(metric "$P2" imperium_worker_processed_total)
[ "$b2" -gt "$b" ] || fail "w2 did not take over"
# The lag gauges (refreshed every 10 s off the loop's thread): w2 now owns all 12 partitions
# of the input topic, each consumed and committed to its end.
lag_of_input() { # "series total" of w2's imperium_worker_consumer_lag for imp.test.v1
    curl -sf "http://127.0.0.1:$P2/metrics" | awk '/^imperium_worker_consumer_lag\{/ &&
        /topic="imp.test.v1"/ { n++; t += $NF } END { print n + 0, t + 0 }'
}
lag_is_zero() { [ "$(lag_of_input)" = "12 0" ]; }
wait_for 30 "w2's lag gauges for 12 partitions at 0" lag_is_zero ||
    fail "w2's lag gauges for imp.test.v1 (series, total): $(lag_of_input)"
say "w2's lag gauges: $(lag_of_input) (series, total) for imp.test.v1"
pass "two workers split 12 partitions; one left; exactly once"
