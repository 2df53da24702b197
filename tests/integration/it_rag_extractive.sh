#!/usr/bin/env bash
# imperium-rag without an LLM (docs/answers.md): a turn on a tenant with the demo FAQ gets an
# extractive draft citing the right chunk, with a retrieval_log row; a tenant without a KB
# gets a mode "none" draft (qc turns it into the safe reply); a redelivered turn makes no
# second draft; a turn without a question is a dead letter.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

T=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
T2=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
OUT="$IMP_TEST_TMP/rag"
mkdir -p "$OUT"

# turn_event ID TENANT QUESTION [CONVERSATION_KEY]: one imp.turn.requested.v1 envelope line.
turn_event() {
    python3 - "$@" <<'PY'
import json, sys, time
tid, tenant, question = sys.argv[1:4]
key = sys.argv[4] if len(sys.argv) > 4 else "telegram:555"
print(json.dumps({"specversion": "1.0", "id": tid, "source": "imperium/dialog",
    "type": "imp.turn.requested.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "attempt": 0, "data": {
        "conversation_id": None, "channel": "telegram", "conversation_key": key,
        "recipient": key.split(":", 1)[1], "message_ids": [tid], "question": question,
        "reply_to": "77", "history": [], "received_at_ms": int(time.time() * 1000)}},
    ensure_ascii=False))
PY
}
produce_turn() { # produce_turn ID TENANT QUESTION
    turn_event "$@" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.turn.v1 -k "$2:telegram:555"
}
drafts_of() { q "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$1'"; }
draft() { q "SELECT payload::jsonb->'data'->$2 FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$1' ORDER BY id LIMIT 1"; }

psql_owner -c "INSERT INTO tenants (id, slug, name) VALUES ('$T', 'salon', 'Salon'), ('$T2', 'empty', 'Empty')" >/dev/null
"$BIN/retrieval_tool" load --dsn "$IMP_PG_APP_DSN" --tenant "$T" --promote \
    "$IMP_SOURCE_DIR/deploy/demo/faq_en.md" >"$OUT/version" 2>"$OUT/load.log" ||
    fail "loading the FAQ: $(cat "$OUT/load.log")"
V=$(cat "$OUT/version")
want_chunk=$(q "SELECT id FROM kb_chunks WHERE version_id = '$V' AND text LIKE '%Men''s haircut 5,000%'")
[ -n "$want_chunk" ] || fail "no chunk holds the men's haircut price"

start_bg rag env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info IMP_WORKER_RETRY_BASE=200ms \
    IMP_WORKER_RETRY_MAX=1s IMP_WORKER_MAX_ATTEMPTS=3 "$BIN/imperium-rag"
RAG=$BG_PID

T1=$(cat /proc/sys/kernel/random/uuid)
T_NOKB=$(cat /proc/sys/kernel/random/uuid)
T_BAD=$(cat /proc/sys/kernel/random/uuid)
produce_turn "$T1" "$T" "How much is a men's haircut?"
produce_turn "$T_NOKB" "$T2" "How much is a men's haircut?"
python3 -c "import json,sys; print(json.dumps({'specversion':'1.0','id':sys.argv[1],'source':'imperium/dialog','type':'imp.turn.requested.v1','time':'2026-05-01T03:04:05.678Z','tenantid':sys.argv[2],'data':{'channel':'telegram'}}))" \
    "$T_BAD" "$T" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.turn.v1 -k "$T:bad"

wait_for 60 "the draft" at_least 1 "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T1'" ||
    fail "no draft (log: $(tail -5 "$IMP_TEST_TMP/logs/rag.log"))"
wait_for 30 "the no-KB draft" at_least 1 "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T_NOKB'" ||
    fail "no draft for the tenant without a KB"
wait_for 30 "the dead letter" at_least 1 "SELECT count(*) FROM dead_letters WHERE worker = 'rag'" ||
    fail "the turn without a question was not dead-lettered"

assert_eq "mode" '"extractive"' "$(draft "$T1" "'mode'")"
assert_eq "the men's haircut chunk is cited first" "$want_chunk" "$(draft "$T1" "'citations'->0->'chunk_id'")"
assert_eq "one citation" 1 "$(draft "$T1" "'citations'" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
assert_contains "the answer is the chunk's text" "$(draft "$T1" "'answer'")" "Men's haircut 5,000"
assert_eq "the draft names the KB version" "\"$V\"" "$(draft "$T1" "'kb_version'")"
assert_eq "confidence in (0, 1]" t "$(q "SELECT (payload::jsonb->'data'->>'confidence')::float8 BETWEEN 0.0001 AND 1 FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T1'")"
assert_eq "the turn's fields are carried" '"77"|"555"|"telegram:555"' \
    "$(q "SELECT d->'reply_to', d->'recipient', d->'conversation_key' FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T1') x")"
assert_eq "the draft's key keeps the conversation's partition" "$T:telegram:555" \
    "$(q "SELECT key FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T1'")"
assert_eq "retrieval_log: one row, the version, the cited chunk first" "1|$V|$want_chunk" \
    "$(q "SELECT count(*), min(kb_version_id::text), min(chunks->0->>'chunk_id') FROM retrieval_log WHERE operation_id = '$T1'")"
assert_eq "retrieval_log holds the top 8 in order" 8 \
    "$(q "SELECT jsonb_array_length(chunks) FROM retrieval_log WHERE operation_id = '$T1'")"
assert_eq "no KB: mode none, no_kb, empty answer, confidence 0" '"none"|"no_kb"|""|0.0' \
    "$(q "SELECT d->'mode', d->'failure', d->'answer', d->'confidence' FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$T_NOKB') x")"
assert_eq "usage: one turn without LLM, keyed by tenant, on the usage topic" \
    "1|$T|{\"turns\": 1, \"llm_requests\": 0, \"prompt_tokens\": 0, \"completion_tokens\": 0}|telegram" \
    "$(q "SELECT count(*) || '|' || min(key) || '|' || min(payload::jsonb #>> '{data,counters}') || '|' || min(payload::jsonb #>> '{data,channel}')
          FROM outbox WHERE topic = 'imp.usage.v1' AND payload::jsonb #>> '{data,ref}' = '$T1'")"
assert_eq "no KB: no retrieval_log row" 0 "$(q "SELECT count(*) FROM retrieval_log WHERE operation_id = '$T_NOKB'")"
assert_contains "the bad turn's dead letter names the missing member" \
    "$(q "SELECT reason FROM dead_letters WHERE worker = 'rag'")" "conversation_key is missing"

# The same turn again: the inbox skips it.
produce_turn "$T1" "$T" "How much is a men's haircut?"
sleep 3
assert_eq "a redelivered turn makes no second draft" 1 "$(drafts_of "$T1")"
assert_eq "drafts in all" 2 "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1'")"

stop_bg "$RAG" || fail "imperium-rag exited with an error"
pass "imperium-rag extractive"
