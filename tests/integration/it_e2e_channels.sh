#!/usr/bin/env bash
# The conversation path end to end, one channel at a time (issue 6): the whole fleet as
# processes (control, ingress, dialog with window 0, rag extractive, qc, send) and a tenant
# whose four channels point at four fake providers. One signed message per channel → exactly
# one reply at that channel's fake (right path, recipient, auth and text from the FAQ chunk
# that answers the question), nothing at the others; the chunk first in retrieval_log; one
# message_traces row per turn (pass, extractive, send_ms filled); the outbound rows sent.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

T0=$(now_ms)
e2e_fleet
say "fleet up in $(($(now_ms) - T0)) ms"

CF_BODY="{\"event\": \"message.received\", \"message\": {\"id\": \"cf-e2e-1\", \"chat_id\": \"77001112233\", \"type\": \"text\", \"text\": \"$E2E_Q_PRICE\", \"from\": {\"id\": \"77001112233\", \"name\": \"Bob\"}}}"
WA_BODY="{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"WABA1\", \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\": \"whatsapp\", \"metadata\": {\"display_phone_number\": \"15550001111\", \"phone_number_id\": \"$E2E_PHONE_ID\"}, \"contacts\": [{\"profile\": {\"name\": \"Carl\"}, \"wa_id\": \"15550009999\"}], \"messages\": [{\"from\": \"15550009999\", \"id\": \"wamid.E2E1\", \"timestamp\": \"1700000000\", \"type\": \"text\", \"text\": {\"body\": \"$E2E_Q_HOURS\"}}]}}]}]}"
TG_BODY="{\"update_id\": 90001, \"message\": {\"message_id\": 55, \"date\": 1700000000, \"chat\": {\"id\": 4242, \"type\": \"private\"}, \"from\": {\"id\": 4242, \"first_name\": \"Dan\"}, \"text\": \"$E2E_Q_ADDRESS\"}}"
GEN_BODY="{\"conversation\": \"order-5521\", \"sender\": {\"id\": \"u-77\", \"name\": \"Eve\"}, \"message\": {\"id\": \"gen-e2e-1\", \"text\": \"$E2E_Q_PARKING\"}}"

T1=$(now_ms)
post_standard chatflow shop "$E2E_CHATFLOW" cf-e2e-1 "$CF_BODY"
assert_eq "chatflow webhook ACKed" 200 "$STATUS"
post_meta shop "$E2E_WA_APP" "$WA_BODY"
assert_eq "whatsapp webhook ACKed" 200 "$STATUS"
post_telegram shop "$E2E_TG" "$TG_BODY"
assert_eq "telegram webhook ACKed" 200 "$STATUS"
post_standard generic shop "$E2E_GENERIC" gen-e2e-1 "$GEN_BODY"
assert_eq "generic webhook ACKed" 200 "$STATUS"

all_replied() {
    [ "$(requests chatflow)" -ge 1 ] && [ "$(requests whatsapp)" -ge 1 ] &&
        [ "$(requests telegram)" -ge 1 ] && [ "$(requests generic)" -ge 1 ]
}
wait_for 60 "a reply at each fake" all_replied ||
    fail "replies: chatflow $(requests chatflow) whatsapp $(requests whatsapp) telegram $(requests telegram) generic $(requests generic)"
say "four replies at the fakes $(($(now_ms) - T1)) ms after the first webhook"
sleep 3 # anything more would arrive by now
for k in chatflow whatsapp telegram generic; do
    assert_eq "exactly one request at the $k fake" 1 "$(requests "$k")"
done

# chatflow: send-text to the chat, bearer token, idempotency key, the price chunk
assert_eq "chatflow path" /v1/messages/send-text "$(request_field chatflow 0 'r["path"]')"
assert_eq "chatflow auth" "Bearer cf-api-token" "$(request_field chatflow 0 'r["headers"]["authorization"]')"
assert_eq "chatflow recipient" 77001112233 "$(request_field chatflow 0 'json.loads(r["body"])["chat_id"]')"
assert_contains "chatflow text from the prices chunk" \
    "$(request_field chatflow 0 'json.loads(r["body"])["text"]')" "$E2E_A_PRICE"
assert_eq "chatflow idempotency key = the outbound id" \
    "$(q "SELECT operation_id FROM outbound WHERE channel = 'chatflow'")" \
    "$(request_field chatflow 0 'r["headers"]["idempotency-key"]')"

# whatsapp: Cloud API to the phone number id, to the customer's wa_id, the hours chunk
assert_eq "whatsapp path" "/$E2E_PHONE_ID/messages" "$(request_field whatsapp 0 'r["path"]')"
assert_eq "whatsapp auth" "Bearer EAA-e2e-access-token" "$(request_field whatsapp 0 'r["headers"]["authorization"]')"
assert_eq "whatsapp recipient" 15550009999 "$(request_field whatsapp 0 'json.loads(r["body"])["to"]')"
assert_contains "whatsapp text from the hours chunk" \
    "$(request_field whatsapp 0 'json.loads(r["body"])["text"]["body"]')" "$E2E_A_HOURS"
assert_eq "whatsapp replies in context of the customer's message" wamid.E2E1 \
    "$(request_field whatsapp 0 'json.loads(r["body"])["context"]["message_id"]')"

# telegram: sendMessage with the bot token, to the chat, the address chunk, a reply to 55
assert_eq "telegram path" "/bot$E2E_BOT_TOKEN/sendMessage" "$(request_field telegram 0 'r["path"]')"
assert_eq "telegram recipient" 4242 "$(request_field telegram 0 'json.loads(r["body"])["chat_id"]')"
assert_contains "telegram text from the address chunk" \
    "$(request_field telegram 0 'json.loads(r["body"])["text"]')" "$E2E_A_ADDRESS"
assert_eq "telegram replies to the customer's message" 55 \
    "$(request_field telegram 0 'json.loads(r["body"])["reply_to_message_id"]')"

# generic: the callback URL, Standard Webhooks signature with the callback secret
assert_eq "generic path" /callback "$(request_field generic 0 'r["path"]')"
assert_eq "generic recipient" order-5521 "$(request_field generic 0 'json.loads(r["body"])["recipient"]')"
assert_contains "generic text from the parking chunk" \
    "$(request_field generic 0 'json.loads(r["body"])["text"]')" "$E2E_A_PARKING"
assert_eq "generic signature verifies with the callback secret" ok "$(python3 - "$IMP_TEST_TMP/generic.rec" "$GEN_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys
r = json.loads(open(sys.argv[1]).readline())
h = r["headers"]
key = base64.b64decode(sys.argv[2][len("whsec_"):])
mac = base64.b64encode(hmac.new(key, f'{h["webhook-id"]}.{h["webhook-timestamp"]}.{r["body"]}'.encode(), hashlib.sha256).digest()).decode()
print("ok" if ("v1," + mac) in h["webhook-signature"].split() else "bad")
PY
)"
pass "one correct reply at each channel's fake provider"

# retrieval_log: the answering chunk first, for each question
for pair in "$E2E_Q_PRICE|$E2E_A_PRICE" "$E2E_Q_HOURS|$E2E_A_HOURS" \
    "$E2E_Q_ADDRESS|$E2E_A_ADDRESS" "$E2E_Q_PARKING|$E2E_A_PARKING"; do
    question=${pair%%|*} phrase=${pair#*|}
    chunk=$(chunk_of "$phrase")
    [ -n "$chunk" ] || fail "no chunk holds '$phrase'"
    assert_eq "retrieval_log of '$question': one row, version, its chunk first" "1|$KB_VERSION|$chunk" \
        "$(q "SELECT count(*), min(kb_version_id::text), min(chunks->0->>'chunk_id')
              FROM retrieval_log WHERE tenant_id = '$TID' AND query = \$\$$question\$\$")"
done
pass "each answer's chunk is first in retrieval_log"

assert_eq "message_traces: one row per turn, all pass/extractive" "4|4|4" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE decision = 'pass' AND mode = 'extractive'),
              count(DISTINCT operation_id) FROM message_traces WHERE tenant_id = '$TID'")"
assert_eq "message_traces: each trace is a retrieval_log turn" 4 \
    "$(q "SELECT count(*) FROM message_traces t JOIN retrieval_log r USING (operation_id)
          WHERE t.tenant_id = '$TID'")"
wait_for 15 "send_ms on every trace" at_least 4 \
    "SELECT count(*) FROM message_traces WHERE tenant_id = '$TID' AND send_ms IS NOT NULL" ||
    fail "send_ms missing: $(q "SELECT count(*) FROM message_traces WHERE send_ms IS NULL")"
assert_eq "outbound: four answers, sent once each" "4|4|4" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE state = 'sent'), sum(attempts)
          FROM outbound WHERE tenant_id = '$TID'")"
assert_eq "conversations: four, with the bot" "4|bot" \
    "$(q "SELECT count(*), string_agg(DISTINCT state, ',') FROM conversations WHERE tenant_id = '$TID'")"
pass "message_traces row per turn; outbound sent once"
say "timings (ingress/rag/qc/send ms): $(q "SELECT string_agg(ingress_ms || '/' || rag_ms || '/' || qc_ms || '/' || coalesce(send_ms::text, '-'), ' ') FROM message_traces")"

for p in "$INGRESS_PID" "$SEND_PID" "$QC_PID" "$RAG_PID" "$DIALOG_PID" "$CONTROL_PID"; do
    stop_bg "$p" || fail "a process did not stop cleanly (pid $p)"
done
pass "the fleet stopped cleanly"
