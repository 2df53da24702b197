# A handler's deferred writes (imp_pg_exec_deferred) belong to its event, whichever later
# round trip carries them. Every 7th event queues an insert that fails in Postgres (NULL in a
# NOT NULL column). Three phases: batches of up to 500 whose handlers only write (the batch's
# writes all go with its COMMIT); the same with a read first in every handler (a failure comes
# back to the next event's handler, which is not to blame); batches of one (every failure
# surfaces in the COMMIT's round trip). Each failing event is one poison dead letter that names
# the deferred statement, every other event has exactly one effect, and every outbox row is
# marked published (the marks ride with the following commits).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

N=1400
example_setup

# phase NAME START BATCH [ENV...]: N events from START, every 7th seq failing in its deferred
# insert.
phase() {
    local name=$1 start=$2 batch=$3
    shift 3
    local end=$((start + N))
    local bad=$(($((end - 1)) / 7 - $((start - 1)) / 7))
    feed --count "$N" --start "$start" --run "$name" --fail-every 7 --fail-kind deferred_poison
    start_example "$name" IMP_EXAMPLE_DEFERRED=1 IMP_WORKER_BATCH="$batch" \
        IMP_EXAMPLE_EMIT_TOPIC=imp.test.out.v1 "$@"
    local pid=$BG_PID
    local want_dead=$(($(q "SELECT count(*) FROM dead_letters") + bad))
    wait_for 180 "$((N - bad)) effects of $name" at_least $((N - bad)) \
        "SELECT count(DISTINCT seq) FROM example_effects WHERE seq >= $start AND seq < $end" ||
        fail "$name: $(q "SELECT count(DISTINCT seq) FROM example_effects WHERE seq >= $start")" \
            "of $((N - bad)) effects"
    wait_for 60 "$want_dead dead letters" at_least "$want_dead" "SELECT count(*) FROM dead_letters" ||
        fail "$name: $(q "SELECT count(*) FROM dead_letters") of $want_dead dead letters"
    wait_quiet 3

    local lost dup wrong dead named
    lost=$(q "SELECT count(*) FROM generate_series($start, $end - 1) s WHERE s % 7 <> 0
              AND NOT EXISTS (SELECT 1 FROM example_effects e WHERE e.seq = s)")
    dup=$(q "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM example_effects
             WHERE seq >= $start AND seq < $end GROUP BY seq) x")
    wrong=$(q "SELECT count(*) FROM example_effects WHERE seq >= $start AND seq < $end
               AND seq % 7 = 0")
    dead=$(q "SELECT count(*) FROM dead_letters WHERE worker = 'example' AND class = 'poison'
                AND (convert_from(envelope, 'UTF8')::jsonb #>> '{data,seq}')::bigint
                    BETWEEN $start AND $end - 1")
    named=$(q "SELECT count(*) FROM dead_letters WHERE class = 'poison'
                 AND reason LIKE 'deferred statement: postgres: null value in column \"seq\"%'
                 AND (convert_from(envelope, 'UTF8')::jsonb #>> '{data,seq}')::bigint
                     BETWEEN $start AND $end - 1")
    say "$name (batch $batch): lost=$lost duplicated=$dup failing-with-effect=$wrong" \
        "dead letters=$dead named=$named of $bad"
    assert_eq "$name: lost events" 0 "$lost"
    assert_eq "$name: duplicated effects" 0 "$dup"
    assert_eq "$name: failing events with an effect" 0 "$wrong"
    assert_eq "$name: dead letters of failing events" "$bad" "$dead"
    assert_eq "$name: dead letters naming the deferred statement" "$bad" "$named"
    assert_eq "$name: derived events of good events" $((N - bad)) \
        "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.test.out.v1'
              AND (payload::jsonb #>> '{data,seq}')::bigint BETWEEN $start AND $end - 1")"
    wait_for 30 "every outbox row marked published" at_most 0 \
        "SELECT count(*) FROM outbox WHERE published_at IS NULL" ||
        fail "$name: $(unpublished_outbox) outbox rows not marked published"
    stop_bg "$pid" 20 || true
}

phase batched 1 500
phase read-first 50001 500 IMP_EXAMPLE_READ=1
phase single 100001 1
assert_eq "dead letters in all" 600 "$(q "SELECT count(*) FROM dead_letters")"
