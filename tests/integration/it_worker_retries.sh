# A handler failing retriably for 30% of events (deterministic by operation id): half of
# those recover on their retry, the other half exhaust 3 attempts and become dead letters
# with their reason; once the fault is removed, imperium-dlq replay processes them exactly
# once, and a second replay changes nothing.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

N=2000
example_setup
touch "$IMP_TEST_TMP/fault"
start_example worker IMP_EXAMPLE_RETRIABLE_PCT=30 IMP_EXAMPLE_FAULT_FILE="$IMP_TEST_TMP/fault" \
    IMP_WORKER_MAX_ATTEMPTS=3 IMP_WORKER_RETRY_BASE=200ms IMP_WORKER_RETRY_MAX=1s

# The expected fates, computed the way the example worker decides them.
python3 - "$N" >"$IMP_TEST_TMP/expected" <<'PY'
import sys, uuid
ns = uuid.UUID("07da5cec-ed2a-4cf7-a0ae-43edb714bc16")
for seq in range(int(sys.argv[1])):
    op = str(uuid.uuid5(ns, f"feed|retry|{seq}"))
    h = 2166136261
    for ch in op.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    fate = "ok" if h % 100 >= 30 else ("transient" if (h // 100) % 2 == 0 else "dead")
    print(seq, op, fate)
PY
DEAD=$(grep -c ' dead$' "$IMP_TEST_TMP/expected")
TRANSIENT=$(grep -c ' transient$' "$IMP_TEST_TMP/expected")
say "expect $TRANSIENT events to recover on retry and $DEAD to be dead-lettered"
[ "$DEAD" -gt 0 ] && [ "$TRANSIENT" -gt 0 ] || fail "the fault injection selected nothing"

feed --count "$N" --run retry
wait_distinct $((N - DEAD)) 180
wait_for 120 "$DEAD dead letters" at_least $DEAD "SELECT count(*) FROM dead_letters"
wait_quiet 3

assert_eq "dead letters" "$DEAD" "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "dead letters with their reason" "$DEAD" "$(q "SELECT count(*) FROM dead_letters
    WHERE class = 'retriable' AND reason LIKE 'gave up after 3 attempts: injected fault%'
      AND attempt = 2 AND topic = 'imp.test.v1'")"
grep ' dead$' "$IMP_TEST_TMP/expected" | cut -d' ' -f2 | sort >"$IMP_TEST_TMP/want_dead"
q "SELECT operation_id FROM dead_letters" | sort >"$IMP_TEST_TMP/got_dead"
diff -q "$IMP_TEST_TMP/want_dead" "$IMP_TEST_TMP/got_dead" >/dev/null ||
    fail "the dead-lettered events are not the ones that kept failing"
assert_eq "events processed on their retry" "$TRANSIENT" \
    "$(q "SELECT count(*) FROM example_effects WHERE attempt = 1")"
assert_eq "effects before the replay" $((N - DEAD)) "$(q "SELECT count(*) FROM example_effects")"

rm -f "$IMP_TEST_TMP/fault"
dlq() { env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_DLQ_ACTOR=it-test "$BIN/imperium-dlq" "$@"; }
dlq replay --worker example >"$IMP_TEST_TMP/replay1.out" || fail "replay failed: $(tail -3 "$IMP_TEST_TMP/replay1.out")"
wait_distinct "$N" 120
wait_quiet 3
check_effects 0 "$N"

dlq replay --worker example >"$IMP_TEST_TMP/replay2.out" || fail "second replay failed"
dlq replay $(q "SELECT id FROM dead_letters ORDER BY id LIMIT 5") >"$IMP_TEST_TMP/replay3.out" ||
    fail "replay by id failed"
wait_quiet 3
check_effects 0 "$N"
assert_eq "replayed dead letters" "$DEAD" "$(q "SELECT count(*) FROM dead_letters
    WHERE replayed_at IS NOT NULL AND replay_count = 1")"
assert_eq "dead letters after the replays" "$DEAD" "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "replay audit rows" "$DEAD" "$(q "SELECT count(*) FROM audit_log WHERE action = 'dlq.replay'")"
pass "30% retriable: $TRANSIENT recovered, $DEAD dead-lettered and replayed exactly once"
