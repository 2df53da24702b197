# imperium-dialog, window 0: 100 conversations x 3 messages, every event delivered twice ->
# exactly 300 message rows and 300 turns on imp.turn.v1 with 300 distinct ids, each the
# derive(message id, "turn") of its message, in order within each conversation.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

TENANT=2b7f0c52-64a1-4c1e-9d6e-0a0f5b1e7a01
q "INSERT INTO tenants (id, slug, name, settings) VALUES ('$TENANT', 'salon', 'Salon', '{\"coalesce_ms\": 0}');
   INSERT INTO channels (tenant_id, kind, settings) VALUES ('$TENANT', 'telegram', '{\"manager_chat_id\": \"-100777\"}')" >/dev/null

start_bg dialog env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
    IMP_KAFKA_CONSUMER_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500" "$BIN/imperium-dialog"

lines() {
    local c m
    for m in 1 2 3; do
        for c in $(seq 1 100); do
            printf '{"tenant":"%s","type":"imp.inbound.message.v1","event_id":"%d","data":{"channel":"telegram","conversation_key":"telegram:%d","chat":{"id":"%d","type":"private"},"sender":{"id":"%d","name":"Customer %d"},"message":{"id":"%d","kind":"text","text":"c%d m%d"}}}\n' \
                "$TENANT" $((c * 10 + m)) $((5000 + c)) $((5000 + c)) $((5000 + c)) "$c" "$m" "$c" "$m"
        done
    done
}
# Every event twice: the whole run, then the whole run again.
{ lines; lines; } | "$BIN/dialog_feed" >/dev/null || fail "dialog_feed failed"

wait_for 90 "300 turns published" at_least 300 \
    "SELECT count(*) FROM outbox WHERE topic = 'imp.turn.v1' AND published_at IS NOT NULL" ||
    fail "only $(q "SELECT count(*) FROM outbox WHERE topic = 'imp.turn.v1'") turns"
sleep 2 # let duplicates (if any) show up

assert_eq "message rows" 300 "$(q "SELECT count(*) FROM messages")"
assert_eq "conversations" 100 "$(q "SELECT count(*) FROM conversations")"
assert_eq "emitted turns rows" 300 "$(q "SELECT count(*) FROM turns WHERE state = 'emitted'")"

kcat -b "$IMP_KAFKA_BROKERS" -C -t imp.turn.v1 -e -q -J >"$IMP_TEST_TMP/turns.jsonl"
jq -c '.payload | fromjson | {id, type, key: .data.conversation_key, q: .data.question,
       mids: .data.message_ids, rec: .data.recipient, hist: (.data.history | length)}' \
    "$IMP_TEST_TMP/turns.jsonl" >"$IMP_TEST_TMP/turns.parsed"
assert_eq "turn events on imp.turn.v1" 300 "$(wc -l <"$IMP_TEST_TMP/turns.parsed")"
assert_eq "distinct turn ids" 300 "$(jq -r .id "$IMP_TEST_TMP/turns.parsed" | sort -u | wc -l)"
assert_eq "event type" "imp.turn.requested.v1" "$(jq -r .type "$IMP_TEST_TMP/turns.parsed" | sort -u)"
# In order within each conversation: per key, the questions read m1, m2, m3.
bad_order=$(jq -r '[.key, .q] | @tsv' "$IMP_TEST_TMP/turns.parsed" |
    awk -F'\t' '{ n[$1]++; if ($2 !~ (" m" n[$1] "$")) bad++ } END { print bad + 0 }')
assert_eq "turns out of order" 0 "$bad_order"
# History: the third turn of a conversation carries the two earlier messages.
assert_eq "history of third turns" 2 \
    "$(jq -r 'select(.q | endswith(" m3")) | .hist' "$IMP_TEST_TMP/turns.parsed" | sort -u)"
assert_eq "recipient" "5001" "$(jq -r 'select(.key == "telegram:5001") | .rec' "$IMP_TEST_TMP/turns.parsed" | sort -u)"
# Ids: derive(message id, "turn") — the outbox's operation ids are those of the turns rows.
assert_eq "turn ids match turns rows" 300 "$(q "SELECT count(*) FROM turns t JOIN outbox o
    ON o.operation_id = t.operation_id AND o.topic = 'imp.turn.v1'")"
# Every turn's data passes schemas/events/imp.turn.requested.v1.json.
valid=$(python3 - "$IMP_SOURCE_DIR/schemas/events/imp.turn.requested.v1.json" "$IMP_TEST_TMP/turns.jsonl" <<'PY'
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
n = 0
for line in open(sys.argv[2]):
    jsonschema.validate(json.loads(json.loads(line)["payload"])["data"], schema)
    n += 1
print(n)
PY
)
assert_eq "turns valid against the schema" 300 "$valid"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
pass "window 0: 600 deliveries -> 300 messages, 300 turns, distinct ids, in order"
