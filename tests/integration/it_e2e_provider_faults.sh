#!/usr/bin/env bash
# Provider failures through the whole fleet: signed webhooks into imperium-ingress, dialog
# (window 0), rag (extractive), qc and send as processes, one fake provider per channel, each
# failing its own way; imperium-send with IMP_WORKER_MAX_ATTEMPTS=4 and a 2 s send timeout.
#   chatflow  answers 500, 500, 200        → 3 requests (same Idempotency-Key), one delivery,
#                                            the outbound row sent after 3 attempts
#   whatsapp  answers 429 Retry-After: 2   → the second request not before 2 s, sent
#   generic   answers 500 until fixed      → 4 requests, failed, a dead letter of send; fixed
#                                            + `imperium-dlq replay` → one more request, sent
#   telegram  accepts, then never answers  → unknown after 1 request; the customer's next
#             in time (6 s > the timeout)    message: kill -9 of send while its request
#                                            hangs, restart → unknown, never sent again
# Counts are taken once the path is at rest (e2e_settled), never after a fixed sleep.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

MAX=4
BROKEN="$IMP_TEST_TMP/generic.broken"
# A short session, so that the group gives the partitions of a killed send to its successor
# within seconds; added to the fleet's own consumer settings.
shared_consumer_props() {
    local v
    for v in "${E2E_WORKER_ENV[@]}"; do
        case $v in IMP_KAFKA_CONSUMER_PROPS=?*) printf '%s,' "${v#*=}" ;; esac
    done
}
SEND_ENV=("IMP_WORKER_MAX_ATTEMPTS=$MAX" IMP_SEND_TIMEOUT=2s
    "IMP_KAFKA_CONSUMER_PROPS=$(shared_consumer_props)session.timeout.ms=3000,heartbeat.interval.ms=300")
T0=$(now_ms)

touch "$BROKEN"
e2e_fake chatflow --script 500,500
e2e_fake whatsapp --script 429 --retry-after 2
e2e_fake generic --fail-while "$BROKEN"
e2e_fake telegram --delay-ms 6000
e2e_control
e2e_tenant shop
e2e_settings shop '{"coalesce_ms": 0}'
e2e_kb
for k in dialog rag qc; do e2e_worker "$k"; done
e2e_worker send "${SEND_ENV[@]}"
e2e_ingress
say "fleet up in $(($(now_ms) - T0)) ms"

CUST_TG=4242
tg() { # tg UPDATE_ID MESSAGE_ID TEXT: the Telegram customer writes
    post_telegram shop "$E2E_TG" "{\"update_id\": $1, \"message\": {\"message_id\": $2, \"date\": 1700000000, \"chat\": {\"id\": $CUST_TG, \"type\": \"private\"}, \"from\": {\"id\": $CUST_TG, \"first_name\": \"Dan\"}, \"text\": \"$3\"}}"
    assert_eq "telegram webhook $1 ACKed" 200 "$STATUS"
}
op_of() { # op_of CHANNEL [N]: the outbound operation id of the channel's N-th row (1-based)
    q "SELECT operation_id FROM outbound WHERE tenant_id = '$TID' AND channel = '$1'
       ORDER BY id OFFSET $((${2:-1} - 1)) LIMIT 1"
}
has_op() { [ -n "$(op_of "$@")" ]; }
rec() { # rec KIND PYEXPR: PYEXPR over the list of fake KIND's records (r), printed
    python3 - "$IMP_TEST_TMP/$1.rec" "$2" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
print(eval(sys.argv[2]))
PY
}

post_standard chatflow shop "$E2E_CHATFLOW" cf-pf-1 "{\"event\": \"message.received\", \"message\": {\"id\": \"cf-pf-1\", \"chat_id\": \"77001112233\", \"type\": \"text\", \"text\": \"$E2E_Q_PRICE\", \"from\": {\"id\": \"77001112233\", \"name\": \"Bob\"}}}"
assert_eq "chatflow webhook ACKed" 200 "$STATUS"
post_meta shop "$E2E_WA_APP" "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"WABA1\", \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\": \"whatsapp\", \"metadata\": {\"display_phone_number\": \"15550001111\", \"phone_number_id\": \"$E2E_PHONE_ID\"}, \"contacts\": [{\"profile\": {\"name\": \"Carl\"}, \"wa_id\": \"15550009999\"}], \"messages\": [{\"from\": \"15550009999\", \"id\": \"wamid.PF1\", \"timestamp\": \"1700000000\", \"type\": \"text\", \"text\": {\"body\": \"$E2E_Q_HOURS\"}}]}}]}]}"
assert_eq "whatsapp webhook ACKed" 200 "$STATUS"
e2e_generic gen-pf-1 order-9 "$E2E_Q_PARKING"
tg 91001 55 "$E2E_Q_ADDRESS"
T1=$(now_ms)

# ---- chatflow: 500, 500, 200 -------------------------------------------------------------
wait_for 60 "the chatflow outbound" has_op chatflow || fail "no chatflow outbound"
CF=$(op_of chatflow)
wait_for 60 "chatflow sent" state_is "$CF" sent ||
    fail "chatflow not sent: $(outbound "$CF" state) after $(requests chatflow) requests"
say "chatflow sent $(($(now_ms) - T1)) ms after the webhooks"
assert_eq "500,500,200: 3 requests" 3 "$(requests chatflow)"
assert_eq "500,500,200: every request carries the outbound id as Idempotency-Key" "$CF" \
    "$(rec chatflow '",".join(sorted(set(x["headers"].get("idempotency-key", "-") for x in r)))')"
assert_eq "500,500,200: the same body each time" 1 "$(rec chatflow 'len(set(x["body"] for x in r))')"
assert_eq "500,500,200: outbound sent after 3 attempts, provider id of the 200" "sent|3|true" \
    "$(q "SELECT state || '|' || attempts || '|' || (provider_message_id LIKE 'cf-%') FROM outbound WHERE operation_id = '$CF'")"
pass "chatflow 500, 500, 200: delivered once"

# ---- whatsapp: 429 Retry-After: 2 ----------------------------------------------------------
wait_for 60 "the whatsapp outbound" has_op whatsapp || fail "no whatsapp outbound"
WA=$(op_of whatsapp)
wait_for 60 "whatsapp sent" state_is "$WA" sent ||
    fail "whatsapp not sent: $(outbound "$WA" state) after $(requests whatsapp) requests"
assert_eq "429: 2 requests" 2 "$(requests whatsapp)"
GAP=$(rec whatsapp 'r[1]["t_ms"] - r[0]["t_ms"]')
say "429: the second request came ${GAP} ms after the first"
[ "$GAP" -ge 2000 ] || fail "429 with Retry-After: 2 → sent again after ${GAP} ms"
pass "429: the next request not before 2 s"
assert_eq "429: the same body each time" 1 "$(rec whatsapp 'len(set(x["body"] for x in r))')"
assert_eq "429: outbound sent after 2 attempts" "sent|2" \
    "$(q "SELECT state || '|' || attempts FROM outbound WHERE operation_id = '$WA'")"

# ---- generic: always 500 → dead letter; fixed + replay → delivered once ---------------------
wait_for 60 "the generic outbound" has_op generic || fail "no generic outbound"
GEN=$(op_of generic)
wait_for 60 "the dead letter of send" at_least 1 \
    "SELECT count(*) FROM dead_letters WHERE worker = 'send' AND operation_id = '$GEN'" ||
    fail "no dead letter: $(outbound "$GEN" state) after $(requests generic) requests"
assert_eq "always 500: $MAX requests (IMP_WORKER_MAX_ATTEMPTS)" "$MAX" "$(requests generic)"
assert_eq "always 500: outbound failed after $MAX attempts" "failed|$MAX" \
    "$(q "SELECT state || '|' || attempts FROM outbound WHERE operation_id = '$GEN'")"
DLQ=$(env IMP_PG_DSN="$IMP_PG_APP_DSN" "$BIN/imperium-dlq" list --worker send --json) ||
    fail "imperium-dlq list failed"
assert_eq "imperium-dlq list: one dead letter of send, retriable, this outbound" "1|retriable|$GEN" \
    "$(printf '%s' "$DLQ" | jq -r '"\(length)|\(.[0].class)|\(.[0].operation_id)"')"
assert_contains "the reason says it gave up" "$(printf '%s' "$DLQ" | jq -r '.[0].reason')" \
    "gave up after $MAX attempts"
assert_contains "the reason holds the provider's answer" "$(printf '%s' "$DLQ" | jq -r '.[0].reason')" "500"
DLQ_ID=$(printf '%s' "$DLQ" | jq -r '.[0].id')
# The failure is reported (send writes that report to the outbox for the relay to publish);
# the operator replays after seeing it. Replaying before it is out is it_e2e_delivery_order.sh.
wait_for 30 "dialog recorded the failed delivery" eval \
    '[ "$(q "SELECT delivery_status FROM messages WHERE operation_id = '"'$GEN'"'")" = failed ]' ||
    fail "the failed delivery of $GEN did not reach dialog"

rm -f "$BROKEN"
env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_DLQ_ACTOR=it-e2e "$BIN/imperium-dlq" replay "$DLQ_ID" \
    >"$IMP_TEST_TMP/replay.out" 2>&1 || fail "imperium-dlq replay: $(cat "$IMP_TEST_TMP/replay.out")"
assert_contains "replay: one replayed" "$(cat "$IMP_TEST_TMP/replay.out")" "replayed 1"
wait_for 60 "the replayed outbound sent" state_is "$GEN" sent ||
    fail "replayed outbound not sent: $(outbound "$GEN" state) after $(requests generic) requests"
assert_eq "replay: exactly one more request" $((MAX + 1)) "$(requests generic)"
assert_eq "replay: every request carries the outbound id as webhook-id" "$GEN" \
    "$(rec generic '",".join(sorted(set(x["headers"].get("webhook-id", "-") for x in r)))')"
assert_eq "replay: outbound sent, attempt $((MAX + 1))" "sent|$((MAX + 1))" \
    "$(q "SELECT state || '|' || attempts FROM outbound WHERE operation_id = '$GEN'")"
pass "always 500: a dead letter; fixed and replayed: delivered once"

# ---- telegram: accepted, then no answer in time → unknown, never re-sent -------------------
wait_for 60 "the first telegram outbound" has_op telegram || fail "no telegram outbound"
TG1=$(op_of telegram)
wait_for 60 "telegram unknown" state_is "$TG1" unknown ||
    fail "telegram not unknown: $(outbound "$TG1" state) after $(requests telegram) requests"
assert_eq "timeout: one request" 1 "$(requests telegram)"
assert_contains "timeout: the outbound's error names the timeout" "$(outbound "$TG1" last_error)" "timed out"

# The customer's next message; send is killed while the provider holds its request, and
# restarted: the redelivered event finds the row 'sending' and must not call Telegram again.
tg 91002 56 "$E2E_Q_PRICE"
wait_for 60 "the second telegram request" eval '[ "$(requests telegram)" -ge 2 ]' ||
    fail "the second telegram message was not sent"
TG2=$(op_of telegram 2)
assert_eq "the second outbound is in flight" sending "$(outbound "$TG2" state)"
kill -9 "$SEND_PID"
say "kill -9 imperium-send (pid $SEND_PID) while Telegram holds the request of $TG2"
E2E_NAME=send-2 e2e_worker send "${SEND_ENV[@]}"
T2=$(now_ms)
wait_for 60 "the second outbound unknown after the restart" state_is "$TG2" unknown ||
    fail "after the restart: $(outbound "$TG2" state), $(requests telegram) requests"
say "restarted send settled it $(($(now_ms) - T2)) ms after its start"
pass "telegram timeout: unknown, no second send, also across kill -9 and a restart"

e2e_settled 60
# ---- exact totals ----------------------------------------------------------------------------
assert_eq "requests: chatflow 3, whatsapp 2, generic $((MAX + 1)), telegram 2" "3|2|$((MAX + 1))|2" \
    "$(requests chatflow)|$(requests whatsapp)|$(requests generic)|$(requests telegram)"
for op in "$TG1" "$TG2"; do
    text=$(outbound "$op" text)
    assert_eq "telegram: outbound $op requested exactly once" 1 \
        "$(fake_bodies telegram | python3 -c 'import json, sys; t = sys.argv[1]; print(sum(1 for l in sys.stdin if json.loads(l)["text"] == t))' "$text")"
done
assert_eq "outbound rows: state and attempts per channel" "chatflow|sent|3
generic|sent|$((MAX + 1))
telegram|unknown|1
telegram|unknown|1
whatsapp|sent|2" \
    "$(q "SELECT channel || '|' || state || '|' || attempts FROM outbound WHERE tenant_id = '$TID' ORDER BY channel, id")"
assert_eq "dialog recorded every outbound's final state" "" "$(delivery_mismatches)"
assert_eq "dead letters: only the replayed one" "1|1" \
    "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE replayed_at IS NOT NULL) FROM dead_letters")"
assert_eq "one turn and one answer per customer message" "5|5" \
    "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE decision = 'pass') FROM message_traces WHERE tenant_id = '$TID'")"
pass "provider faults end to end ($(($(now_ms) - T0)) ms)"
