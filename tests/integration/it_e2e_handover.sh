#!/usr/bin/env bash
# Handover end to end (issue 6), the whole fleet as processes. A WhatsApp customer asks about
# a forbidden topic → one safe reply to the customer (WhatsApp fake) + one escalation in the
# manager chat (Telegram fake) + the conversation in handover; the customer's next message is
# forwarded to the manager chat and the bot does not answer it; the manager replies in
# Telegram (a signed webhook from the manager chat, a reply to the forward's Telegram message
# id that the fake returned) → the text reaches the customer on WhatsApp; /release → a notice
# in the manager chat, and the bot answers the customer's next question from the FAQ.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

SAFE="Thank you! A manager will answer you shortly."
e2e_fleet "{\"qc\": {\"forbidden_topics\": [\"refund\"]}, \"safe_reply\": \"$SAFE\"}"

CUST=15557770001
wa() { # wa WAMID TEXT: a signed WhatsApp message from the customer
    post_meta shop "$E2E_WA_APP" "{\"object\": \"whatsapp_business_account\", \"entry\": [{\"id\": \"WABA1\", \"changes\": [{\"field\": \"messages\", \"value\": {\"messaging_product\": \"whatsapp\", \"metadata\": {\"display_phone_number\": \"15550001111\", \"phone_number_id\": \"$E2E_PHONE_ID\"}, \"contacts\": [{\"profile\": {\"name\": \"Carl\"}, \"wa_id\": \"$CUST\"}], \"messages\": [{\"from\": \"$CUST\", \"id\": \"$1\", \"timestamp\": \"1700000000\", \"type\": \"text\", \"text\": {\"body\": \"$2\"}}]}}]}]}"
    assert_eq "whatsapp webhook $1 ACKed" 200 "$STATUS"
}
manager() { # manager UPDATE_ID MESSAGE_ID TEXT REPLY_TO: the manager writes in the manager chat
    post_telegram shop "$E2E_TG" "{\"update_id\": $1, \"message\": {\"message_id\": $2, \"date\": 1700000000, \"chat\": {\"id\": $MANAGER_CHAT, \"type\": \"supergroup\", \"title\": \"Managers\"}, \"from\": {\"id\": 31337, \"first_name\": \"Mia\", \"username\": \"mia_manager\"}, \"text\": \"$3\", \"reply_to_message\": {\"message_id\": $4, \"date\": 1700000000, \"chat\": {\"id\": $MANAGER_CHAT, \"type\": \"supergroup\"}, \"text\": \"forwarded\"}}}"
    assert_eq "manager's telegram webhook $1 ACKed" 200 "$STATUS"
}
wa_texts() { fake_bodies whatsapp | python3 -c 'import json,sys; [print(json.loads(l)["to"] + "|" + json.loads(l)["text"]["body"].replace("\n", " ")) for l in sys.stdin]'; }
tg_texts() { fake_bodies telegram | python3 -c 'import json,sys; [print(str(json.loads(l)["chat_id"]) + "|" + json.loads(l)["text"].replace("\n", " ")) for l in sys.stdin]'; }
conv_state() { q "SELECT state FROM conversations WHERE tenant_id = '$TID' AND conversation_key = 'whatsapp:$CUST'"; }
T0=$(now_ms)

# 1. a forbidden topic
wa wamid.H1 "I want a refund for my last visit"
wait_for 60 "the safe reply and the escalation" eval '[ "$(requests whatsapp)" -ge 1 ] && [ "$(requests telegram)" -ge 1 ]' ||
    fail "whatsapp $(requests whatsapp), telegram $(requests telegram)"
sleep 2
assert_eq "one message to the customer: the safe reply" "$CUST|$SAFE" "$(wa_texts)"
assert_eq "one message in the manager chat" 1 "$(requests telegram)"
assert_eq "it goes to the manager chat" "$MANAGER_CHAT" "$(request_field telegram 0 'json.loads(r["body"])["chat_id"]')"
ESC=$(request_field telegram 0 'json.loads(r["body"])["text"]')
assert_contains "the escalation names the reason" "$ESC" "forbidden_topic"
assert_contains "the escalation holds the question" "$ESC" "I want a refund for my last visit"
assert_contains "the escalation names the conversation" "$ESC" "whatsapp:$CUST"
assert_eq "conversation in handover" handover "$(conv_state)"
assert_eq "trace: fail, escalated" "fail|t" \
    "$(q "SELECT decision, escalated FROM message_traces WHERE tenant_id = '$TID'")"
pass "forbidden topic: one safe reply, one escalation, handover"

# 2. the next customer message reaches the manager, not the bot
wa wamid.H2 "$E2E_Q_PARKING"
wait_for 30 "the forward" eval '[ "$(requests telegram)" -ge 2 ]' || fail "no forward"
sleep 2
assert_eq "still one message to the customer" 1 "$(requests whatsapp)"
assert_eq "two messages in the manager chat" 2 "$(requests telegram)"
assert_eq "the forward goes to the manager chat" "$MANAGER_CHAT" "$(request_field telegram 1 'json.loads(r["body"])["chat_id"]')"
assert_contains "the forward holds the customer's text" "$(request_field telegram 1 'json.loads(r["body"])["text"]')" "$E2E_Q_PARKING"
assert_eq "no turn for it (one trace only)" 1 "$(q "SELECT count(*) FROM message_traces WHERE tenant_id = '$TID'")"
wait_for 15 "the forward's telegram message id" at_least 1 \
    "SELECT count(*) FROM outbound WHERE tenant_id = '$TID' AND purpose = 'forward' AND provider_message_id IS NOT NULL" ||
    fail "the forward has no provider message id"
FWD_MID=$(q "SELECT provider_message_id FROM outbound WHERE tenant_id = '$TID' AND purpose = 'forward'")
say "the fake Telegram gave the forward message id $FWD_MID"
wait_for 15 "dialog recorded it" at_least 1 \
    "SELECT count(*) FROM messages WHERE tenant_id = '$TID' AND provider_message_id = '$FWD_MID'" ||
    fail "dialog did not record the forward's provider id"
pass "in handover: the customer's message is forwarded to the manager, the bot is silent"

# 3. the manager's reply reaches the customer on WhatsApp
manager 70001 901 "Parking is in the courtyard, I reserved a spot for you." "$FWD_MID"
wait_for 30 "the manager's reply at the customer" eval '[ "$(requests whatsapp)" -ge 2 ]' ||
    fail "the manager's reply did not reach the customer"
sleep 1
assert_eq "the manager's text to the customer" "$CUST|Parking is in the courtyard, I reserved a spot for you." \
    "$(wa_texts | sed -n 2p)"
assert_eq "nothing else in the manager chat" 2 "$(requests telegram)"
assert_eq "still in handover, assigned to the manager" "handover|mia_manager" \
    "$(q "SELECT state, assignee FROM conversations WHERE tenant_id = '$TID' AND conversation_key = 'whatsapp:$CUST'")"
pass "the manager's reply reaches the customer"

# 4. /release → the bot answers again
manager 70002 902 "/release" "$FWD_MID"
wait_for 30 "released" eval '[ "$(conv_state)" = bot ]' || fail "not released: $(conv_state)"
wait_for 30 "the notice" eval '[ "$(requests telegram)" -ge 3 ]' || fail "no notice in the manager chat"
assert_eq "the notice goes to the manager chat" "$MANAGER_CHAT" "$(request_field telegram 2 'json.loads(r["body"])["chat_id"]')"
wa wamid.H3 "$E2E_Q_ADDRESS"
wait_for 60 "the bot's answer" eval '[ "$(requests whatsapp)" -ge 3 ]' || fail "the bot did not answer after /release"
sleep 2
assert_contains "the bot answers from the FAQ" "$(wa_texts | sed -n 3p)" "$E2E_A_ADDRESS"
assert_eq "three messages to the customer in all" 3 "$(requests whatsapp)"
assert_eq "three in the manager chat in all (escalation, forward, notice)" 3 "$(requests telegram)"
assert_eq "traces: the refused turn and the answered one" "fail,pass" \
    "$(q "SELECT string_agg(decision, ',' ORDER BY created_at) FROM message_traces WHERE tenant_id = '$TID'")"
pass "/release: the bot answers again ($(($(now_ms) - T0)) ms for the whole scenario)"
