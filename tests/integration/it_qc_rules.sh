#!/usr/bin/env bash
# imperium-qc (docs/answers.md): a good draft → exactly one answer to the customer; a draft
# on a forbidden topic (Cyrillic, other case) → exactly one safe reply (the tenant's text) +
# one escalation to the Telegram manager chat + the conversation in handover + a
# message_traces row; a later draft for that conversation (now in handover) → no answer, one
# forward of its question to the manager chat; a tenant without a manager chat → the default safe reply, no
# escalation, the conversation stays with the bot; redelivered drafts change nothing.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

T=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
T2=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
C1=c1c1c1c1-0000-4000-8000-000000000001
C2=c2c2c2c2-0000-4000-8000-000000000002
C3=c3c3c3c3-0000-4000-8000-000000000003

# draft_event ID TENANT CONVERSATION KEY QUESTION ANSWER MODE CONFIDENCE NCITATIONS
draft_event() {
    python3 - "$@" <<'PY'
import json, sys, uuid
did, tenant, conv, key, question, answer, mode, conf, ncite = sys.argv[1:10]
cites = [{"chunk_id": 10 + i, "source": "faq_ru.md", "heading": "Цены", "score": 0.03}
         for i in range(int(ncite))]
print(json.dumps({"specversion": "1.0", "id": did, "source": "imperium/rag",
    "type": "imp.draft.created.v1", "time": "2026-05-01T03:04:05.678Z", "subject": key,
    "tenantid": tenant, "causationid": str(uuid.uuid5(uuid.NAMESPACE_URL, did)),
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "attempt": 0,
    "data": {"conversation_id": conv, "channel": "whatsapp", "conversation_key": key,
             "recipient": key.split(":", 1)[1], "question": question, "reply_to": "wamid.1",
             "received_at_ms": 1777604645000, "answer": answer, "mode": mode,
             "confidence": float(conf), "citations": cites, "kb_version": None,
             "bot_version": None, "timings": {"rag_ms": 7, "llm_ms": 0}}}, ensure_ascii=False))
PY
}
produce_draft() { draft_event "$@" | kcat -P -b "$IMP_KAFKA_BROKERS" -t imp.draft.v1 -k "$2:$4"; }
outbound() { # outbound DRAFT_ID PURPOSE: count
    q "SELECT count(*) FROM outbox WHERE topic = 'imp.outbound.v1' AND payload::jsonb->>'causationid' = '$1' AND payload::jsonb->'data'->>'purpose' = '$2'"
}
out_field() { # out_field DRAFT_ID PURPOSE FIELD
    q "SELECT payload::jsonb->'data'->>'$3' FROM outbox WHERE topic = 'imp.outbound.v1' AND payload::jsonb->>'causationid' = '$1' AND payload::jsonb->'data'->>'purpose' = '$2'"
}

psql_owner -c "
INSERT INTO tenants (id, slug, name, settings) VALUES
  ('$T', 'salon', 'Salon', '{\"safe_reply\": \"Спасибо! Менеджер скоро ответит.\", \"qc\": {\"forbidden_topics\": [\"ОРУЖИЕ\", \"refund\"], \"min_confidence\": 0.4}}'),
  ('$T2', 'nochat', 'No chat', '{}');
INSERT INTO channels (tenant_id, kind, settings) VALUES
  ('$T', 'whatsapp', '{}'), ('$T', 'telegram', '{\"manager_chat_id\": \"-100777\"}');
INSERT INTO conversations (id, tenant_id, channel_kind, conversation_key) VALUES
  ('$C1', '$T', 'whatsapp', 'whatsapp:7701'), ('$C2', '$T', 'whatsapp', 'whatsapp:7702'),
  ('$C3', '$T2', 'whatsapp', 'whatsapp:7703');" >/dev/null

start_bg qc env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info IMP_WORKER_RETRY_BASE=200ms \
    "$BIN/imperium-qc"
QC=$BG_PID

D_GOOD=$(cat /proc/sys/kernel/random/uuid)
D_BAD=$(cat /proc/sys/kernel/random/uuid)
D_NOCHAT=$(cat /proc/sys/kernel/random/uuid)
produce_draft "$D_GOOD" "$T" "$C1" whatsapp:7701 "Сколько стоит стрижка?" "Мужская стрижка 5 000 ₸." extractive 0.8 1
produce_draft "$D_BAD" "$T" "$C2" whatsapp:7702 "Где купить Оружие?" "Не знаю." extractive 0.9 1
produce_draft "$D_NOCHAT" "$T2" "$C3" whatsapp:7703 "Что-то странное" "" none 0 0

wait_for 60 "three traces" at_least 3 "SELECT count(*) FROM message_traces" ||
    fail "qc did not decide (log: $(tail -5 "$IMP_TEST_TMP/logs/qc.log"))"

# ---- a good draft: one answer, nothing else ------------------------------------------------
assert_eq "good draft: one answer" 1 "$(outbound "$D_GOOD" answer)"
assert_eq "good draft: no safe reply, no escalation" 0 \
    "$(q "SELECT count(*) FROM outbox WHERE payload::jsonb->>'causationid' = '$D_GOOD' AND payload::jsonb->'data'->>'purpose' <> 'answer'")"
assert_eq "the answer's text, channel, recipient, reply_to" "Мужская стрижка 5 000 ₸.|whatsapp|7701|wamid.1" \
    "$(q "SELECT d->>'text', d->>'channel', d->>'recipient', d->>'reply_to' FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE payload::jsonb->>'causationid' = '$D_GOOD') x")"
derive() { python3 -c 'import sys, uuid; print(uuid.uuid5(uuid.UUID("07da5cec-ed2a-4cf7-a0ae-43edb714bc16"), sys.argv[1] + "|" + sys.argv[2]))' "$1" "$2"; }
assert_eq "the answer: id derive(draft id, \"reply\"), type, key" "$(derive "$D_GOOD" reply)|imp.outbound.message.v1|$T:whatsapp:7701" \
    "$(q "SELECT operation_id, payload::jsonb->>'type', key FROM outbox WHERE payload::jsonb->>'causationid' = '$D_GOOD'")"
assert_eq "good draft: trace pass, not escalated, conversation stays bot" "pass||f|bot" \
    "$(q "SELECT t.decision, t.reason, t.escalated, c.state FROM message_traces t JOIN conversations c ON c.id = t.conversation_id WHERE t.draft_id = '$D_GOOD'")"

# ---- a forbidden topic: safe reply + escalation + handover + trace --------------------------
assert_eq "forbidden topic: one safe reply" 1 "$(outbound "$D_BAD" safe_reply)"
assert_eq "forbidden topic: one escalation" 1 "$(outbound "$D_BAD" escalation)"
assert_eq "forbidden topic: no answer" 0 "$(outbound "$D_BAD" answer)"
assert_eq "the safe reply is the tenant's, to the customer" "Спасибо! Менеджер скоро ответит.|whatsapp|7702" \
    "$(q "SELECT d->>'text', d->>'channel', d->>'recipient' FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE payload::jsonb->>'causationid' = '$D_BAD' AND payload::jsonb->'data'->>'purpose' = 'safe_reply') x")"
assert_eq "the escalation goes to the manager chat in Telegram" "telegram|-100777" \
    "$(q "SELECT d->>'channel', d->>'recipient' FROM (SELECT payload::jsonb->'data' d FROM outbox WHERE payload::jsonb->>'causationid' = '$D_BAD' AND payload::jsonb->'data'->>'purpose' = 'escalation') x")"
esc=$(out_field "$D_BAD" escalation text)
assert_contains "the escalation names the reason" "$esc" "forbidden_topic: оружие"
assert_contains "the escalation quotes the question" "$esc" "Где купить Оружие?"
assert_contains "the escalation quotes the draft" "$esc" "Не знаю."
assert_contains "the escalation names the conversation" "$esc" "whatsapp:7702"
assert_eq "safe reply and escalation ids derive from the draft" "$(derive "$D_BAD" escalation)
$(derive "$D_BAD" safe_reply)" \
    "$(q "SELECT operation_id FROM outbox WHERE payload::jsonb->>'causationid' = '$D_BAD' ORDER BY payload::jsonb->'data'->>'purpose'")"
assert_eq "the conversation is handed over" handover "$(q "SELECT state FROM conversations WHERE id = '$C2'")"
assert_eq "forbidden topic: the trace" "fail|forbidden_topic: оружие|t|extractive|0.9|7|0|4bf92f3577b34da6a3ce929d0e0e4736" \
    "$(q "SELECT decision, reason, escalated, mode, confidence, rag_ms, llm_ms, trace_id FROM message_traces WHERE draft_id = '$D_BAD'")"
assert_eq "the trace is keyed by the turn (the draft's cause)" 1 \
    "$(q "SELECT count(*) FROM message_traces WHERE draft_id = '$D_BAD' AND operation_id <> draft_id AND qc_ms >= 0 AND ingress_ms >= 0")"

# ---- a draft for a conversation already in handover: no bot answer, the manager sees it ----
D_LATE=$(cat /proc/sys/kernel/random/uuid)
produce_draft "$D_LATE" "$T" "$C2" whatsapp:7702 "А сколько стоит стрижка?" "Мужская стрижка 5 000 ₸." extractive 0.9 1
wait_for 30 "the late draft's trace" at_least 1 "SELECT count(*) FROM message_traces WHERE draft_id = '$D_LATE'" ||
    fail "the draft for a conversation in handover was not decided"
assert_eq "in handover: no answer, no safe reply, no escalation, one forward" "0|0|0|1" \
    "$(outbound "$D_LATE" answer)|$(outbound "$D_LATE" safe_reply)|$(outbound "$D_LATE" escalation)|$(outbound "$D_LATE" forward)"
assert_eq "in handover: the forward goes to the manager chat" "telegram|-100777" \
    "$(out_field "$D_LATE" forward channel)|$(out_field "$D_LATE" forward recipient)"
assert_contains "in handover: the forward holds the question" "$(out_field "$D_LATE" forward text)" "А сколько стоит стрижка?"
assert_eq "in handover: the trace" "fail|handover|f" \
    "$(q "SELECT decision, reason, escalated FROM message_traces WHERE draft_id = '$D_LATE'")"

# ---- no manager chat: the default safe reply only, the bot keeps the conversation -----------
assert_eq "no manager chat: one safe reply, no escalation" "1|0" \
    "$(outbound "$D_NOCHAT" safe_reply)|$(outbound "$D_NOCHAT" escalation)"
assert_contains "the default safe reply is Russian and English" "$(out_field "$D_NOCHAT" safe_reply text)" \
    "a manager, who will reply shortly"
assert_eq "no manager chat: the conversation stays with the bot; trace not escalated" "bot|fail|no_answer|f" \
    "$(q "SELECT c.state, t.decision, t.reason, t.escalated FROM message_traces t JOIN conversations c ON c.id = t.conversation_id WHERE t.draft_id = '$D_NOCHAT'")"

# ---- redelivery ----------------------------------------------------------------------------
produce_draft "$D_BAD" "$T" "$C2" whatsapp:7702 "Где купить Оружие?" "Не знаю." extractive 0.9 1
produce_draft "$D_GOOD" "$T" "$C1" whatsapp:7701 "Сколько стоит стрижка?" "Мужская стрижка 5 000 ₸." extractive 0.8 1
sleep 3
assert_eq "after redelivery: outbound events in all (1 answer + 2 safe replies + 1 escalation + 1 forward)" 5 \
    "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.outbound.v1'")"
assert_eq "after redelivery: one trace per draft" 4 "$(q "SELECT count(*) FROM message_traces")"
assert_eq "no outbound text is empty" 0 \
    "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.outbound.v1' AND btrim(payload::jsonb->'data'->>'text') = ''")"
assert_eq "no dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"

stop_bg "$QC" || fail "imperium-qc exited with an error"
pass "imperium-qc rules"
