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
pass "two workers split 12 partitions; one left; exactly once"
