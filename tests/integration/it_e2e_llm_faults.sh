#!/usr/bin/env bash
# LLM failures through the whole fleet: signed webhooks into imperium-ingress, dialog (window
# 0), rag answering with an LLM (progs/rag_fake_llm: slow past IMP_LLM_TIMEOUT=1s, 500 with a
# raw traceback, a body that is not JSON, an empty completion — chosen by a marker in the
# question), qc and send as processes, one fake provider per channel. rag has
# IMP_WORKER_MAX_ATTEMPTS=3.
#   each failing LLM (one customer per channel, one after another: chatflow slow, whatsapp
#   500, generic garbage, telegram empty) → 3 LLM requests, then exactly one safe reply to
#   that customer, exactly one escalation in the manager chat (Telegram fake) naming the
#   failure, the conversation in handover, no dead letter;
#   a healthy LLM (a generic customer asking twice) → each answer reaches the customer
#   exactly once, one LLM request per turn, the conversation stays with the bot;
#   no customer ever receives an empty text or the LLM's raw error (every recorded body of
#   every fake is checked).
# Counts are taken once the path is at rest (e2e_settled), never after a fixed sleep.
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
    IMP_LLM_ALLOW_CIDRS=127.0.0.0/8 IMP_WORKER_MAX_ATTEMPTS=3
e2e_ingress
say "fleet up in $(($(now_ms) - T0)) ms"

Q_OK1=$E2E_Q_PRICE
Q_OK2=$E2E_Q_HOURS
Q_SLOW="[slow] $E2E_Q_PARKING"
Q_500="[500] $E2E_Q_ADDRESS"
Q_GARBAGE="[garbage] $E2E_Q_HOURS"
Q_EMPTY="[empty] $E2E_Q_PRICE"
CF_CHAT=77001110001 WA_ID=15550000500 TG_CHAT=5005

customer_replies() { # customer_replies KIND RECIPIENT
    fake_messages "$1" | awk -F'\t' -v r="$2" '$1 == r' | wc -l | tr -d ' '
}
safe_out() { # safe_out KIND RECIPIENT ESCALATIONS: the customer's reply and the escalation are out
    [ "$(customer_replies "$1" "$2")" -ge 1 ] && [ "$(customer_replies telegram "$MANAGER_CHAT")" -ge "$3" ]
}
await_safe() { # await_safe KIND RECIPIENT ESCALATIONS
    wait_for 60 "the reply to $2 and escalation $3" safe_out "$1" "$2" "$3" ||
        fail "$1 $2: $(customer_replies "$1" "$2") replies, $(customer_replies telegram "$MANAGER_CHAT") escalations, LLM requests: $(cut -d'|' -f1 "$FAKE_LLM_LOG" | sort | uniq -c | tr '\n' ' ')"
}

# The healthy LLM: two questions of one generic customer, two turns; with them, the first
# failing LLM. The failing turns go one after another: each has rag to itself, so its LLM
# requests are its attempts (it_e2e_llm_batch.sh has two failing turns in one rag batch).
T1=$(now_ms)
e2e_generic gen-llm-ok-1 llm-ok "$Q_OK1"
e2e_generic gen-llm-ok-2 llm-ok "$Q_OK2"
post_standard chatflow shop "$E2E_CHATFLOW" cf-llm-1 "{\"event\": \"message.received\", \"message\": {\"id\": \"cf-llm-1\", \"chat_id\": \"$CF_CHAT\", \"type\": \"text\", \"text\": \"$Q_SLOW\", \"from\": {\"id\": \"$CF_CHAT\", \"name\": \"Bob\"}}}"
assert_eq "chatflow webhook ACKed" 200 "$STATUS"
await_safe chatflow "$CF_CHAT" 1
post_meta shop "$E2E_WA_APP" "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"WABA1\", \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\": \"whatsapp\", \"metadata\": {\"display_phone_number\": \"15550001111\", \"phone_number_id\": \"$E2E_PHONE_ID\"}, \"contacts\": [{\"profile\": {\"name\": \"Carl\"}, \"wa_id\": \"$WA_ID\"}], \"messages\": [{\"from\": \"$WA_ID\", \"id\": \"wamid.LLM1\", \"timestamp\": \"1700000000\", \"type\": \"text\", \"text\": {\"body\": \"$Q_500\"}}]}}]}]}"
assert_eq "whatsapp webhook ACKed" 200 "$STATUS"
await_safe whatsapp "$WA_ID" 2
e2e_generic gen-llm-garbage llm-garbage "$Q_GARBAGE"
await_safe generic llm-garbage 3
post_telegram shop "$E2E_TG" "{\"update_id\": 92001, \"message\": {\"message_id\": 7, \"date\": 1700000000, \"chat\": {\"id\": $TG_CHAT, \"type\": \"private\"}, \"from\": {\"id\": $TG_CHAT, \"first_name\": \"Dan\"}, \"text\": \"$Q_EMPTY\"}}"
assert_eq "telegram webhook ACKed" 200 "$STATUS"
await_safe telegram "$TG_CHAT" 4
wait_for 60 "both healthy answers" eval '[ "$(customer_replies generic llm-ok)" -ge 2 ]' ||
    fail "healthy answers: $(customer_replies generic llm-ok)"
say "all replies at the fakes $(($(now_ms) - T1)) ms after the first webhook"
e2e_settled 60

# ---- the LLM: retried 3 times per failing turn, once per healthy turn --------------------------
assert_eq "LLM slow: 3 requests (IMP_WORKER_MAX_ATTEMPTS)" 3 "$(llm_requests slow "$Q_SLOW")"
assert_eq "LLM 500: 3 requests" 3 "$(llm_requests 500 "$Q_500")"
assert_eq "LLM garbage: 3 requests" 3 "$(llm_requests garbage "$Q_GARBAGE")"
assert_eq "LLM empty completion: 3 requests" 3 "$(llm_requests empty "$Q_EMPTY")"
assert_eq "LLM healthy: one request for the first turn" 1 "$(llm_requests ok "$Q_OK1")"
assert_eq "LLM healthy: one request for the second turn" 1 "$(llm_requests ok "$Q_OK2")"
assert_eq "LLM requests in all: 4 x 3 + 2" 14 "$(wc -l <"$FAKE_LLM_LOG" | tr -d ' ')"
assert_eq "llm_turns: the two healthy completions only" "2|fake-1" \
    "$(q "SELECT count(*) || '|' || min(model) FROM llm_turns WHERE tenant_id = '$TID'")"

# ---- the customers ---------------------------------------------------------------------------
assert_eq "chatflow (slow LLM): exactly the safe reply" "$CF_CHAT	$SAFE" "$(fake_messages chatflow)"
assert_eq "whatsapp (LLM 500): exactly the safe reply" "$WA_ID	$SAFE" "$(fake_messages whatsapp)"
assert_eq "telegram customer (empty completion): exactly the safe reply" "$TG_CHAT	$SAFE" \
    "$(fake_messages telegram | awk -F'\t' -v m="$MANAGER_CHAT" '$1 != m')"
assert_eq "generic (garbage LLM): exactly the safe reply" "llm-garbage	$SAFE" \
    "$(fake_messages generic | awk -F'\t' '$1 == "llm-garbage"')"
assert_eq "generic (healthy LLM): each answer exactly once" "llm-ok	LLM answer to: $Q_OK1
llm-ok	LLM answer to: $Q_OK2" "$(fake_messages generic | awk -F'\t' '$1 == "llm-ok"' | sort)"
assert_eq "requests: chatflow 1, whatsapp 1, generic 3, telegram 5" "1|1|3|5" \
    "$(requests chatflow)|$(requests whatsapp)|$(requests generic)|$(requests telegram)"
BAD=$(e2e_bad_customer_texts 'traceback|<html>|bad gateway|internal server error|llm_(timeout|status|garbage)|no_answer')
[ -z "$BAD" ] || fail "a customer received an empty or raw-error text: $BAD"
pass "every customer body is a real text: no empty text, no raw LLM error"

# ---- the manager chat --------------------------------------------------------------------------
assert_eq "escalations: 4 in the manager chat, one per failure" "llm_garbage,llm_garbage,llm_status,llm_timeout" \
    "$(fake_messages telegram | python3 -c '
import re, sys
m = sys.argv[1]
codes = [re.search(r"no_answer: (\w+)", t).group(1) if re.search(r"no_answer: (\w+)", t) else "?"
         for r, t in (l.rstrip("\n").split("\t", 1) for l in sys.stdin) if r == m]
print(",".join(sorted(codes)))' "$MANAGER_CHAT")"
for key in "chatflow:$CF_CHAT" "whatsapp:$WA_ID" "generic:llm-garbage" "telegram:$TG_CHAT"; do
    assert_eq "escalation names $key" 1 \
        "$(fake_messages telegram | awk -F'\t' -v m="$MANAGER_CHAT" -v k="$key" '$1 == m && index($2, k)' | wc -l | tr -d ' ')"
done
assert_eq "escalations carry no raw LLM error" 0 \
    "$(fake_messages telegram | grep -ciE 'traceback|<html>|bad gateway' || true)"

# ---- the conversations and the traces -----------------------------------------------------------
assert_eq "conversations: the four failed ones in handover, the healthy one with the bot" \
    "chatflow:$CF_CHAT|handover
generic:llm-garbage|handover
generic:llm-ok|bot
telegram:$TG_CHAT|handover
whatsapp:$WA_ID|handover" \
    "$(q "SELECT conversation_key || '|' || state FROM conversations WHERE tenant_id = '$TID' ORDER BY 1")"
assert_eq "traces: 2 llm passes, 4 escalated failures with no answer" "fail|none|no_answer: llm_garbage|t|2
fail|none|no_answer: llm_status|t|1
fail|none|no_answer: llm_timeout|t|1
pass|llm||f|2" \
    "$(q "SELECT decision || '|' || mode || '|' || coalesce(reason, '') || '|' || CASE WHEN escalated THEN 't' ELSE 'f' END || '|' || count(*)
          FROM message_traces WHERE tenant_id = '$TID' GROUP BY decision, mode, reason, escalated ORDER BY 1")"
assert_eq "outbound: 2 answers, 4 safe replies, 4 escalations, all sent once" "answer|2|2
escalation|4|4
safe_reply|4|4" \
    "$(q "SELECT purpose || '|' || count(*) || '|' || sum(attempts) FILTER (WHERE state = 'sent')
          FROM outbound WHERE tenant_id = '$TID' GROUP BY purpose ORDER BY purpose")"
assert_eq "dialog recorded every outbound's final state" "" "$(delivery_mismatches)"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
pass "LLM faults end to end ($(($(now_ms) - T0)) ms)"
