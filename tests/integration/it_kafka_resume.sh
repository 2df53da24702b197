# Kafka through imperium-devbroker across processes: a producer program and a consumer
# program that commits per batch; the consumer is killed with SIGKILL mid-way and restarted,
# and must resume from its committed offsets: every message consumed at least once, exactly
# the produced set of distinct messages, re-reads bounded by one uncommitted batch. Also
# the control channel: an unknown command, and a broker taken down and up while producing.
#
# Needs IMP_KAFKA_BROKERS and IMP_DEVBROKER_CONTROL (tests/harness.sh provides them).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"
TOPIC=imp.test.v1
GROUP="it-kafka-resume-$$"
WAVE1=20000
WAVE2=5000
BATCH=200
OUT="$IMP_TEST_TMP/kafka_consume.out"
CTL() { "$BIN/imperium-devbroker" ctl "$IMP_DEVBROKER_CONTROL" "$@"; }
# Short sessions so the killed member leaves the group quickly (the mock honours them).
CONSUMER_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500"

consumed_lines() { grep -c '^M ' "$OUT" 2>/dev/null || true; }
distinct_values() { awk '$1 == "M" { print $4 }' "$OUT" | sort -u | wc -l; }
has_consumed() { [ "$(consumed_lines)" -ge "$1" ]; }
has_distinct() { [ "$(distinct_values)" -ge "$1" ]; }

# ---- the control channel ---------------------------------------------------------------

assert_eq "control ping" ok "$(CTL ping)"
assert_eq "control brokers" "ok 1 2 3" "$(CTL brokers)"
rc=0
reply=$(CTL frobnicate now) || rc=$?
assert_eq "unknown command exit status" 1 "$rc"
assert_eq "unknown command reply" 'error: unknown command "frobnicate"' "$reply"
rc=0
reply=$(CTL broker down 42) || rc=$?
assert_eq "bad broker exit status" 1 "$rc"
rc=0
"$BIN/imperium-devbroker" ctl 127.0.0.1:1 ping >/dev/null 2>&1 || rc=$?
assert_eq "ctl without a devbroker" 2 "$rc"

# ---- wave 1, then a consumer killed mid-way --------------------------------------------

t0=$(now_ms)
assert_ok "produce wave 1" "$BIN/kafka_produce" "$TOPIC" "$WAVE1" w1
assert_eq "wave 1 persisted" "produced $WAVE1" "$(tail -n 1 <<<"$ASSERT_OUTPUT")"
say "wave 1: $WAVE1 messages in $(($(now_ms) - t0)) ms"

: >"$OUT"
IMP_KAFKA_PROPS=$CONSUMER_PROPS start_bg consumer1 "$BIN/kafka_consume" "$TOPIC" "$GROUP" "$BATCH" "$OUT" 20
C1=$BG_PID
wait_for 60 "the first consumer to read a third" has_consumed $((WAVE1 / 3)) ||
    fail "the first consumer did not get going"
signal_proc KILL "$C1"
wait "$C1" 2>/dev/null || true
run1=$(consumed_lines)
say "killed the first consumer after $run1 messages"
[ "$run1" -lt "$WAVE1" ] || fail "the first consumer finished before the kill; slow it down"
cp "$OUT" "$IMP_TEST_TMP/run1.out"

# Last commit per partition seen by run 1, and the highest offset it read.
awk '$1 == "C" { c[$2] = $3 } END { for (p in c) print p, c[p] }' "$OUT" | sort -n \
    >"$IMP_TEST_TMP/run1.commits"
awk '$1 == "M" { if (!($2 in m) || $3 > m[$2]) m[$2] = $3 } END { for (p in m) print p, m[p] }' \
    "$OUT" | sort -n >"$IMP_TEST_TMP/run1.max"
echo "--- run 2" >>"$OUT"

# ---- a broker down while wave 2 is produced; the restarted consumer ---------------------

# The dev broker places a topic's partition leaders at random; with broker 2 leading none of
# the partitions wave 2's keys land on (50 keys, 12 partitions), the producer would finish
# while it is down. Broker 2 leads every third partition from here on.
for p in $(seq 0 11); do
    [ "$(CTL partition leader "$TOPIC" "$p" $((p % 3 + 1)))" = ok ] ||
        fail "could not move the leader of $TOPIC/$p"
done
pass "partitions 1, 4, 7 and 10 led by broker 2"
assert_eq "broker 2 down" ok "$(CTL broker down 2)"
start_bg producer2 "$BIN/kafka_produce" "$TOPIC" "$WAVE2" w2
P2=$BG_PID
IMP_KAFKA_PROPS=$CONSUMER_PROPS start_bg consumer2 "$BIN/kafka_consume" "$TOPIC" "$GROUP" "$BATCH" "$OUT"
C2=$BG_PID
sleep 3
proc_alive "$P2" || fail "the producer finished while broker 2 was down (it leads partitions)"
assert_eq "broker 2 up" ok "$(CTL broker up 2)"
rc=0
wait "$P2" || rc=$?
assert_eq "wave 2 producer exit status (all persisted)" 0 "$rc"
assert_eq "wave 2 persisted" "produced $WAVE2" "$(tail -n 1 "$IMP_TEST_TMP/logs/producer2.log")"

TOTAL=$((WAVE1 + WAVE2))
wait_for 120 "all $TOTAL distinct messages" has_distinct "$TOTAL" ||
    fail "consumed $(distinct_values) distinct of $TOTAL"
sleep 1 # anything more would be a duplicate beyond the total: give it a chance to show
rc=0
stop_bg "$C2" 30 || rc=$?
assert_eq "restarted consumer exits cleanly on SIGTERM" 0 "$rc"

# ---- the counts ---------------------------------------------------------------------------

expected=$( (seq 0 $((WAVE1 - 1)) | sed 's/^/w1-/'; seq 0 $((WAVE2 - 1)) | sed 's/^/w2-/') |
    sort)
actual=$(awk '$1 == "M" { print $4 }' "$OUT" | sort -u)
[ "$expected" = "$actual" ] || fail "the distinct consumed set differs from the produced set"
pass "distinct consumed set equals the produced set ($TOTAL)"

lines=$(consumed_lines)
reread=$((lines - TOTAL))
say "consumed $lines messages for $TOTAL distinct: $reread re-read"
[ "$reread" -le "$BATCH" ] || fail "re-read $reread > the uncommitted window ($BATCH)"
pass "re-reads ($reread) within the uncommitted window ($BATCH)"

# Run 2 starts each partition at run 1's last commit (0 when run 1 committed nothing there),
# or one batch later if the kill fell between a commit and its log line; never past what
# run 1 read.
for p in $(seq 0 11); do
    committed=$(awk -v p="$p" '$1 == p { print $2 }' "$IMP_TEST_TMP/run1.commits")
    maxread=$(awk -v p="$p" '$1 == p { print $2 }' "$IMP_TEST_TMP/run1.max")
    first=$(awk -v p="$p" '/^--- run 2/ { seen = 1 } seen && $1 == "M" && $2 == p { print $3; exit }' \
        "$OUT")
    [ -n "$first" ] || continue # nothing left to read in this partition
    [ "$first" -ge "${committed:-0}" ] && [ "$first" -le "$((${maxread:--1} + 1))" ] ||
        fail "partition $p: run 2 started at $first; run 1 committed ${committed:-none}, read up to ${maxread:-none}"
done
pass "run 2 resumed every partition from run 1's committed offset"

# Every message in a partition appears in offset order the first time it is seen.
awk '$1 == "M" && !seen[$2 " " $3]++ { if ($2 in last && $3 < last[$2]) bad++; last[$2] = $3 }
     END { exit bad > 0 }' "$IMP_TEST_TMP/run1.out" || fail "run 1 read a partition out of order"
pass "offsets in order within each partition"
