# Postgres stopped for 10 s in the middle of the stream: the worker pauses (stores no offset,
# dead-letters nothing), resumes by itself, and nothing is lost or duplicated.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

example_setup
start_example worker IMP_WORKER_BATCH=100 IMP_EXAMPLE_SLEEP_US=300
feed --count 20000 --run outage
wait_distinct 3000 120
pg_stop
say "postgres stopped"
sleep 10
grep -q '"batch not committed; retrying in place"' "$IMP_TEST_TMP/logs/worker.log" ||
    fail "the worker did not report the outage"
proc_alive "$BG_PID" || fail "the worker died during the outage"
pg_start
say "postgres started again"
wait_distinct 20000 180
wait_quiet 3
check_effects 0 20000
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
proc_alive "$BG_PID" || fail "the worker is not running"
pass "Postgres down for 10 s: paused, resumed, exactly once"
