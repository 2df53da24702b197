#!/usr/bin/env bash
# imperium-rag with an LLM (tests/integration/progs/rag_fake_llm.c) and imperium-qc behind it
# (docs/answers.md): a normal turn → an llm draft, one LLM request, the completion in
# llm_turns, the answer to the customer; the same turn redelivered, and again after its inbox
# row is deleted → still one LLM request (inbox, then llm_turns); an LLM that is slow (past
# the timeout), answers 500, garbage or an empty completion → 3 requests (IMP_WORKER_MAX_ATTEMPTS),
# then a mode "none" draft, the safe reply + an escalation, no dead letter; no customer ever
# gets an empty text or the LLM's raw error.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

T=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
OUT="$IMP_TEST_TMP/rag"
mkdir -p "$OUT"

turn_event() { # turn_event ID QUESTION CONVERSATION_NUMBER
    python3 - "$@" "$T" <<'PY'
import json, sys, time
tid, question, n, tenant = sys.argv[1:5]
key = "telegram:%s" % n
print(json.dumps({"specversion": "1.0", "id": tid, "source": "imperium/dialog",
    "type": "imp.turn.requested.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "attempt": 0, "data": {
        "conversation_id": None, "channel": "telegram", "conversation_key": key,
        "recipient": n, "message_ids": [tid], "question": question, "reply_to": "9",
        "history": [{"role": "user", "text": "hello"}, {"role": "assistant", "text": "Hi!"}],
        "received_at_ms": int(time.time() * 1000)}}, ensure_ascii=False))
PY
}
produce_turn() { turn_event "$@" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.turn.v1 -k "$T:telegram:$3"; }
llm_calls() { grep -c -- " $1\$" "$OUT/llm.log" || true; }
draft_of() { q "SELECT payload::jsonb->'data'->>'$2' FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$1' ORDER BY id LIMIT 1"; }
drafts() { q "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '$1'"; }

psql_owner -c "INSERT INTO tenants (id, slug, name) VALUES ('$T', 'salon', 'Salon');
    INSERT INTO channels (tenant_id, kind, settings) VALUES ('$T', 'telegram', '{\"manager_chat_id\": \"-100555\"}')" >/dev/null
"$BIN/retrieval_tool" load --dsn "$IMP_PG_APP_DSN" --tenant "$T" --promote \
    "$IMP_SOURCE_DIR/deploy/demo/faq_en.md" >"$OUT/version" 2>"$OUT/load.log" ||
    fail "loading the FAQ: $(cat "$OUT/load.log")"

start_bg fake_llm "$BIN/rag_fake_llm" "$OUT/llm.port" "$OUT/llm.log"
wait_for_file "$OUT/llm.port" 10 || fail "the fake LLM did not start"
PORT=$(cat "$OUT/llm.port")
start_bg rag env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info IMP_WORKER_BATCH=1 \
    IMP_WORKER_RETRY_BASE=200ms IMP_WORKER_RETRY_MAX=1s IMP_WORKER_MAX_ATTEMPTS=3 \
    IMP_LLM_URL="http://127.0.0.1:$PORT/v1/chat/completions" IMP_LLM_MODEL=fake-1 \
    IMP_LLM_TIMEOUT=1s IMP_LLM_ALLOW_CIDRS=127.0.0.0/8 "$BIN/imperium-rag"
RAG=$BG_PID
start_bg qc env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info "$BIN/imperium-qc"
QC=$BG_PID

declare -A TURN
TURN[ok]=$(cat /proc/sys/kernel/random/uuid)
produce_turn "${TURN[ok]}" "How much is a men's haircut? t-ok" 1
n=2
for kind in slow 500 garbage empty; do
    TURN[$kind]=$(cat /proc/sys/kernel/random/uuid)
    produce_turn "${TURN[$kind]}" "[$kind] how much is a men's haircut? t-$kind" "$n"
    n=$((n + 1))
done

wait_for 90 "five traces" at_least 5 "SELECT count(*) FROM message_traces" ||
    fail "not every turn was decided: $(q "SELECT count(*) FROM message_traces") traces (rag log: $(tail -3 "$IMP_TEST_TMP/logs/rag.log"))"

# ---- the normal answer ----------------------------------------------------------------------
assert_eq "normal: one LLM request" 1 "$(llm_calls t-ok)"
assert_eq "normal: an llm draft with 4 citations" "llm|4" \
    "$(q "SELECT d->>'mode', jsonb_array_length(d->'citations') FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '${TURN[ok]}') x")"
assert_eq "normal: the completion is the answer" "LLM answer to: How much is a men's haircut? t-ok" "$(draft_of "${TURN[ok]}" answer)"
assert_eq "normal: llm_turns holds it with the model and tokens" "1|fake-1|120|12" \
    "$(q "SELECT count(*), min(model), min(prompt_tokens), min(completion_tokens) FROM llm_turns WHERE operation_id = '${TURN[ok]}'")"
assert_eq "normal: the customer gets the answer" "LLM answer to: How much is a men's haircut? t-ok" \
    "$(q "SELECT payload::jsonb->'data'->>'text' FROM outbox WHERE topic = 'imp.outbound.v1' AND payload::jsonb->'data'->>'purpose' = 'answer'")"
assert_eq "normal: a retrieval_log row" 1 "$(q "SELECT count(*) FROM retrieval_log WHERE operation_id = '${TURN[ok]}'")"

# ---- failures: retried, then the safe path --------------------------------------------------
declare -A FAILURE=([slow]=llm_timeout [500]=llm_status [garbage]=llm_garbage [empty]=llm_garbage)
for kind in slow 500 garbage empty; do
    t=${TURN[$kind]}
    assert_eq "$kind: 3 LLM requests (one per attempt)" 3 "$(llm_calls "t-$kind")"
    assert_eq "$kind: one draft, mode none, ${FAILURE[$kind]}, empty answer" "1|none|${FAILURE[$kind]}|" \
        "$(drafts "$t")|$(draft_of "$t" mode)|$(draft_of "$t" failure)|$(draft_of "$t" answer)"
    assert_eq "$kind: trace fail, escalated" "fail|no_answer: ${FAILURE[$kind]}|t" \
        "$(q "SELECT decision, reason, escalated FROM message_traces WHERE operation_id = '$t'")"
    assert_eq "$kind: nothing stored in llm_turns" 0 "$(q "SELECT count(*) FROM llm_turns WHERE operation_id = '$t'")"
done
assert_eq "4 safe replies and 4 escalations, 1 answer" "answer|1
escalation|4
safe_reply|4" "$(q "SELECT payload::jsonb->'data'->>'purpose', count(*) FROM outbox WHERE topic = 'imp.outbound.v1' GROUP BY 1 ORDER BY 1")"
assert_eq "no customer text is empty or a raw error" 0 \
    "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.outbound.v1' AND payload::jsonb->'data'->>'purpose' <> 'escalation'
          AND (btrim(payload::jsonb->'data'->>'text') = '' OR payload::jsonb->'data'->>'text' ~* 'traceback|<html>|error|llm')
          AND payload::jsonb->'data'->>'purpose' <> 'answer'")"
assert_eq "no dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"

# ---- redelivery: the inbox, then llm_turns --------------------------------------------------
produce_turn "${TURN[ok]}" "How much is a men's haircut? t-ok" 1
sleep 3
assert_eq "redelivered: no second draft" 1 "$(drafts "${TURN[ok]}")"
assert_eq "redelivered: still one LLM request" 1 "$(llm_calls t-ok)"
q "DELETE FROM inbox WHERE worker = 'rag' AND operation_id = '${TURN[ok]}'" >/dev/null
produce_turn "${TURN[ok]}" "How much is a men's haircut? t-ok" 1
wait_for 30 "the re-run draft" at_least 2 "SELECT count(*) FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '${TURN[ok]}'" ||
    fail "the turn did not run again"
assert_eq "re-run without its inbox row: the completion comes from llm_turns" 1 "$(llm_calls t-ok)"
assert_eq "re-run: the same answer" "LLM answer to: How much is a men's haircut? t-ok" \
    "$(q "SELECT payload::jsonb->'data'->>'answer' FROM outbox WHERE topic = 'imp.draft.v1' AND payload::jsonb->>'causationid' = '${TURN[ok]}' ORDER BY id DESC LIMIT 1")"
assert_eq "LLM requests in all: 1 + 4 x 3" 13 "$(wc -l <"$OUT/llm.log")"

# ---- usage: one imp.usage.recorded.v1 per turn, the same id when the turn ran again --------
usage_of() { q "SELECT count(DISTINCT operation_id) || '|' || min(key) || '|' || min(payload::jsonb #>> '{data,counters}') || '|' || coalesce(min(payload::jsonb #>> '{data,model}'), '-')
    FROM outbox WHERE topic = 'imp.usage.v1' AND payload::jsonb #>> '{data,ref}' = '$1'"; }
assert_eq "usage of the answered turn (re-run: the same event id), keyed by tenant" \
    "1|$T|{\"turns\": 1, \"llm_requests\": 1, \"prompt_tokens\": 120, \"completion_tokens\": 12}|fake-1" \
    "$(usage_of "${TURN[ok]}")"
assert_eq "usage rows of the answered turn (first run and re-run)" 2 \
    "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.usage.v1' AND payload::jsonb #>> '{data,ref}' = '${TURN[ok]}'")"
for kind in slow 500 garbage empty; do
    assert_eq "$kind: usage, a turn without an LLM answer" \
        "1|$T|{\"turns\": 1, \"llm_requests\": 0, \"prompt_tokens\": 0, \"completion_tokens\": 0}|-" \
        "$(usage_of "${TURN[$kind]}")"
done

stop_bg "$RAG" || fail "imperium-rag exited with an error"
stop_bg "$QC" || fail "imperium-qc exited with an error"
pass "imperium-rag with an LLM"
