# imperium-dialog coalescing: a burst of 3 inside the default 1.5 s window -> exactly one
# turn holding all 3 texts; kill -9 of the worker while 20 bursts are pending -> after a
# restart each of them yields exactly one turn (the scheduler finds them in Postgres).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

TENANT=7d0c1e2f-3a4b-4c5d-8e6f-708192a3b4c5
q "INSERT INTO tenants (id, slug, name) VALUES ('$TENANT', 'clinic', 'Clinic')" >/dev/null

start_dialog() {
    start_bg "dialog.$1" env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
        IMP_KAFKA_CONSUMER_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500" \
        "$BIN/imperium-dialog"
    DPID=$BG_PID
}
msg() { # msg CONV MSGNO TEXT
    printf '{"tenant":"%s","type":"imp.inbound.message.v1","event_id":"%s-%s","data":{"channel":"generic","conversation_key":"generic:%s","sender":{"id":"u-%s"},"message":{"id":"%s-%s","kind":"text","text":"%s"}}}\n' \
        "$TENANT" "$1" "$2" "$1" "$1" "$1" "$2" "$3"
}
turns_on_kafka() {
    kcat -b "$IMP_KAFKA_BROKERS" -C -t imp.turn.v1 -e -q -J |
        jq -c '.payload | fromjson | {id, key: .data.conversation_key, q: .data.question,
               n: (.data.message_ids | length), last: .data.message_ids[-1], causation: .causationid}'
}

assigned() { grep -q '"msg":"partitions assigned"' "$IMP_TEST_TMP/logs/dialog.$1.log"; }
start_dialog 0
# The window runs from the ingress time of the first message: feed once the worker consumes.
wait_for 30 "dialog joined its group" assigned 0
# ---- a burst of 3 within the window (default 1500 ms) ----------------------------------
{ msg burst 1 "Hello"; msg burst 2 "do you work on Sunday?"; msg burst 3 "and what time?"; } |
    "$BIN/dialog_feed" >/dev/null
wait_for 60 "3 messages stored" at_least 3 "SELECT count(*) FROM messages"
assert_eq "turns emitted before the window ends" 0 \
    "$(q "SELECT count(*) FROM turns WHERE state = 'emitted'")"
wait_for 30 "the burst's turn" at_least 1 "SELECT count(*) FROM turns WHERE state = 'emitted'"
sleep 2.5 # a second turn would be due by now
turns_on_kafka >"$IMP_TEST_TMP/t1"
assert_eq "turns for the burst" 1 "$(grep -c '"generic:burst"' "$IMP_TEST_TMP/t1")"
assert_eq "question" "Hello
do you work on Sunday?
and what time?" "$(jq -r .q "$IMP_TEST_TMP/t1")"
assert_eq "message ids in the turn" 3 "$(jq -r .n "$IMP_TEST_TMP/t1")"
# The turn id derives from the last message of the burst.
assert_eq "causation = last message" "$(jq -r .last "$IMP_TEST_TMP/t1")" "$(jq -r .causation "$IMP_TEST_TMP/t1")"
assert_eq "turn id = derive(last, turn)" \
    "$(q "SELECT operation_id FROM turns WHERE state = 'emitted'")" "$(jq -r .id "$IMP_TEST_TMP/t1")"

# ---- kill -9 while bursts are pending -------------------------------------------------
q "UPDATE tenants SET settings = '{\"coalesce_ms\": 6000}' WHERE id = '$TENANT'" >/dev/null
for c in $(seq 1 20); do msg "k$c" 1 "first $c"; msg "k$c" 2 "second $c"; done | "$BIN/dialog_feed" >/dev/null
wait_for 60 "20 pending bursts of 2" at_least 40 \
    "SELECT coalesce(sum(cardinality(message_ids)), 0) FROM turns WHERE state = 'pending'"
kill -9 "$DPID"
assert_eq "pending bursts at the kill" 20 "$(q "SELECT count(*) FROM turns WHERE state = 'pending'")"
sleep 1
start_dialog 1
wait_for 60 "pending bursts emitted after the restart" at_least 21 \
    "SELECT count(*) FROM turns WHERE state = 'emitted'"
sleep 3
assert_eq "pending left" 0 "$(q "SELECT count(*) FROM turns WHERE state = 'pending'")"
turns_on_kafka >"$IMP_TEST_TMP/t2"
assert_eq "turn events for the 20 bursts" 20 "$(grep -c '"generic:k' "$IMP_TEST_TMP/t2")"
assert_eq "distinct ids" 20 "$(grep '"generic:k' "$IMP_TEST_TMP/t2" | jq -r .id | sort -u | wc -l)"
assert_eq "every turn holds both messages" 20 "$(grep '"generic:k' "$IMP_TEST_TMP/t2" | jq -r 'select(.n == 2) | .id' | wc -l)"
assert_eq "message rows" 43 "$(q "SELECT count(*) FROM messages")"

# ---- window 0 with a burst left pending from a larger window ---------------------------
# The window is still 6 s: the first message waits; at 0 the second one takes the pending
# burst with it at once: one turn holding both.
msg flush 1 "first" | "$BIN/dialog_feed" >/dev/null
flush_turns() {
    printf "SELECT count(*) FROM turns t JOIN conversations c ON c.id = t.conversation_id
        WHERE c.conversation_key = 'generic:flush' AND t.state = '%s'" "$1"
}
wait_for 30 "the first message pending" at_least 1 "$(flush_turns pending)"
q "UPDATE tenants SET settings = '{\"coalesce_ms\": 0}' WHERE id = '$TENANT'" >/dev/null
msg flush 2 "second" | "$BIN/dialog_feed" >/dev/null
wait_for 30 "the burst emitted" at_least 1 "$(flush_turns emitted)"
sleep 1
assert_eq "flush: turns rows" "0 1" "$(q "$(flush_turns pending)") $(q "$(flush_turns emitted)")"
turns_on_kafka >"$IMP_TEST_TMP/t3"
assert_eq "flush: one turn holding both messages" "first
second|2" "$(grep '"generic:flush"' "$IMP_TEST_TMP/t3" | jq -r '.q + "|" + (.n | tostring)')"
assert_eq "message rows" 45 "$(q "SELECT count(*) FROM messages")"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
pass "a burst of 3 -> one turn; 20 bursts pending across kill -9 -> 20 turns; window 0 takes a pending burst along"
