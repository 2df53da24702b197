#!/usr/bin/env bash
# Two failing LLM turns in one rag batch, with the fleet behind rag (qc, send, the fakes) and
# the LLM of progs/rag_fake_llm; rag has IMP_WORKER_MAX_ATTEMPTS=2 and IMP_WORKER_BATCH_WAIT=1s.
# Two turn events go onto imp.turn.v1 in one write, with the same Kafka key (one partition,
# consumed within the batch wait: one batch, in this order):
#   A "[500] …"      attempt 1 = A's last (as a retry would be): the LLM answers 500 → rag
#                    emits a mode-none draft; the handler succeeds
#   B "[garbage] …"  attempt 0: retriable failure → the runtime rolls the batch back and runs
#                    it again with savepoints, A's handler included
# Expect what IMP_WORKER_MAX_ATTEMPTS promises (docs/answers.md): one LLM request per attempt
# (A 1, B 2), one safe reply and one escalation per turn, no dead letter. In the fleet this
# batch happens on its own when several customers' LLM turns fail at once (it_e2e_llm_faults
# sends its failing turns one after another so that they never share a batch).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

SAFE="Thank you for your question! A manager will answer you shortly."
T0=$(now_ms)
e2e_fakes
e2e_fake_llm
e2e_control
e2e_tenant shop
e2e_settings shop "{\"coalesce_ms\": 0, \"safe_reply\": \"$SAFE\"}"
e2e_kb
for k in dialog qc send; do e2e_worker "$k"; done
e2e_worker rag IMP_LLM_URL="$FAKE_LLM_URL" IMP_LLM_MODEL=fake-1 IMP_LLM_TIMEOUT=1s \
    IMP_LLM_ALLOW_CIDRS=127.0.0.0/8 IMP_WORKER_MAX_ATTEMPTS=2 IMP_WORKER_BATCH_WAIT=1s
e2e_ingress
say "fleet up in $(($(now_ms) - T0)) ms"

QA="[500] $E2E_Q_ADDRESS"
QB="[garbage] $E2E_Q_HOURS"
TURN_A=$(cat /proc/sys/kernel/random/uuid)
TURN_B=$(cat /proc/sys/kernel/random/uuid)
turn_event() { # turn_event ID QUESTION CHAT ATTEMPT: imp.turn.requested.v1 of a Telegram chat
    python3 - "$@" "$TID" <<'PY'
import json, sys, time
tid, question, chat, attempt, tenant = sys.argv[1:6]
key = "telegram:%s" % chat
print(json.dumps({"specversion": "1.0", "id": tid, "source": "imperium/dialog",
    "type": "imp.turn.requested.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "attempt": int(attempt), "data": {
        "conversation_id": None, "channel": "telegram", "conversation_key": key,
        "recipient": chat, "message_ids": [tid], "question": question, "reply_to": "9",
        "history": [], "received_at_ms": int(time.time() * 1000)}}))
PY
}
# rag joined its group: a turn produced now is consumed at once.
wait_for 60 "rag assigned" grep -q '"msg":"partitions assigned"' "$IMP_TEST_TMP/logs/rag.log" ||
    fail "rag did not join its group"
{ turn_event "$TURN_A" "$QA" 801 1 && turn_event "$TURN_B" "$QB" 802 0; } |
    kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.turn.v1 -k "$TID:telegram:801" ||
    fail "producing the turns"

decided() {
    [ "$(q "SELECT count(*) FROM message_traces WHERE tenant_id = '$TID'")" -ge 2 ] &&
        [ "$(q "SELECT count(*) FILTER (WHERE state = 'sent') FROM outbound WHERE tenant_id = '$TID'")" -ge 4 ] &&
        [ "$(unpublished_outbox)" = 0 ]
}
wait_for 60 "both turns decided and their 4 messages sent" decided ||
    fail "traces $(q "SELECT count(*) FROM message_traces WHERE tenant_id = '$TID'"), outbound $(q "SELECT coalesce(string_agg(purpose || ':' || state, ' '), '-') FROM outbound WHERE tenant_id = '$TID'")"

say "LLM requests in order: $(cut -d'|' -f1 "$FAKE_LLM_LOG" | tr '\n' ' ')"
assert_eq "one safe reply to each customer" "801	$SAFE
802	$SAFE" "$(fake_messages telegram | awk -F'\t' -v m="$MANAGER_CHAT" '$1 != m' | sort)"
assert_eq "two escalations, one per turn" "llm_garbage,llm_status" "$(fake_messages telegram | python3 -c '
import re, sys
print(",".join(sorted(m.group(1) for m in (re.search(r"no_answer: (\w+)", l) for l in sys.stdin) if m)))')"
assert_eq "traces: two escalated failures" "2|2" \
    "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE decision = 'fail' AND escalated) FROM message_traces WHERE tenant_id = '$TID'")"
assert_eq "no dead letter" 0 "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "B: 2 LLM requests, one per attempt" 2 "$(llm_requests garbage "$QB")"
assert_eq "A: 1 LLM request for its one (last) attempt, though its batch ran again for B" 1 \
    "$(llm_requests 500 "$QA")"
pass "two failing LLM turns in one batch: one LLM request per attempt ($(($(now_ms) - T0)) ms)"
