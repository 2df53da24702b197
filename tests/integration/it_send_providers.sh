# imperium-send against fake providers: one outbound event per provider → exactly one request
# at the right fake with the right path, auth and body (Telegram, ChatFlow with its
# Idempotency-Key, Meta, generic with a Standard Webhooks signature that verifies, the test
# channel's sink); an event published 3 times → one request; delivery events on
# imp.delivery.v1.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/send_lib.sh"

T=5e1d0b8a-7c43-4c1e-9d55-0a1b2c3d4e5f
mk_tenant "$T" prov
start_fake tg
TG=$FAKE_URL
start_fake cf
CF=$FAKE_URL
start_fake wa
WA=$FAKE_URL
start_fake gen
GEN=$FAKE_URL
set_channel "$T" telegram "{\"api_url\": \"$TG\"}" '{"bot_token": "123:ABC", "secret_token": "s"}'
set_channel "$T" chatflow "{\"api_url\": \"$CF\"}" '{"api_token": "cf-token"}'
set_channel "$T" whatsapp "{\"api_url\": \"$WA/v21.0\", \"phone_number_id\": \"1055\"}" \
    '{"access_token": "wa-token"}'
set_channel "$T" generic "{\"callback_url\": \"$GEN/hooks/reply\"}" \
    "{\"callback_secret\": \"$GEN_SECRET\"}"

start_send
ID_TG=$(send_event "$T" p-tg telegram --recipient 777 --text "hi tg" --reply-to 42)
ID_CF=$(send_event "$T" p-cf chatflow --recipient 7916@c.us --text "hi cf" --reply-to cfm-1)
ID_WA=$(send_event "$T" p-wa whatsapp --recipient 79161234567 --text "hi wa")
ID_GEN=$(send_event "$T" p-gen generic --recipient conv-9 --text "hi gen")
ID_TEST=$(send_event "$T" p-test test --recipient chat-1 --text "hi test")
ID_DUP=$(send_event "$T" p-dup telegram --recipient 778 --text "dup" --copies 3)

for id in "$ID_TG" "$ID_CF" "$ID_WA" "$ID_GEN" "$ID_TEST" "$ID_DUP"; do
    wait_for 60 "outbound $id sent" state_is "$id" sent || fail "outbound $id not sent"
done
sleep 2 # room for a wrong second request

assert_eq "telegram requests (one + one for the 3 copies)" 2 "$(requests tg)"
assert_eq "chatflow requests" 1 "$(requests cf)"
assert_eq "whatsapp requests" 1 "$(requests wa)"
assert_eq "generic requests" 1 "$(requests gen)"

# The two Telegram events travel on different partitions: find each by its chat.
I_TG=$(request_field tg 0 "0 if json.loads(r['body'])['chat_id'] == '777' else 1")
I_DUP=$((1 - I_TG))
assert_eq "telegram path" "/bot123:ABC/sendMessage" "$(request_field tg "$I_TG" "r['path']")"
assert_eq "telegram body" '{"chat_id": "777", "text": "hi tg", "reply_to_message_id": 42}' \
    "$(request_field tg "$I_TG" "json.loads(r['body'])")"
assert_eq "telegram duplicate body" "dup" "$(request_field tg "$I_DUP" "json.loads(r['body'])['text']")"
assert_eq "telegram message id" $((1000 + I_TG)) "$(outbound "$ID_TG" provider_message_id)"

assert_eq "chatflow path" "/v1/messages/send-text" "$(request_field cf 0 "r['path']")"
assert_eq "chatflow auth" "Bearer cf-token" "$(request_field cf 0 "r['headers']['authorization']")"
assert_eq "chatflow idempotency key" "$ID_CF" "$(request_field cf 0 "r['headers']['idempotency-key']")"
assert_eq "chatflow body" '{"chat_id": "7916@c.us", "text": "hi cf", "reply_to": "cfm-1"}' \
    "$(request_field cf 0 "json.loads(r['body'])")"
assert_eq "chatflow message id" cf-1000 "$(outbound "$ID_CF" provider_message_id)"

assert_eq "whatsapp path" "/v21.0/1055/messages" "$(request_field wa 0 "r['path']")"
assert_eq "whatsapp auth" "Bearer wa-token" "$(request_field wa 0 "r['headers']['authorization']")"
assert_eq "whatsapp body" \
    '{"messaging_product": "whatsapp", "recipient_type": "individual", "to": "79161234567", "type": "text", "text": {"body": "hi wa"}}' \
    "$(request_field wa 0 "json.loads(r['body'])")"
assert_eq "whatsapp message id" wamid.1000 "$(outbound "$ID_WA" provider_message_id)"

assert_eq "generic path" "/hooks/reply" "$(request_field gen 0 "r['path']")"
assert_eq "generic webhook-id" "$ID_GEN" "$(request_field gen 0 "r['headers']['webhook-id']")"
assert_eq "generic text" "hi gen" "$(request_field gen 0 "json.loads(r['body'])['text']")"
VERIFIED=$(python3 - "$IMP_TEST_TMP/gen.rec" "$GEN_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
r = json.loads(open(sys.argv[1]).readline())
h = r["headers"]
key = base64.b64decode(sys.argv[2][len("whsec_"):])
signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.{r['body']}".encode()
want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
fresh = abs(time.time() - int(h["webhook-timestamp"])) < 300
print("yes" if hmac.compare_digest(want, h["webhook-signature"]) and fresh else "no")
PY
)
assert_eq "generic signature verifies" yes "$VERIFIED"
assert_eq "sink message id" "sink:$ID_TEST" "$(outbound "$ID_TEST" provider_message_id)"

assert_eq "outbound rows" 6 "$(q "SELECT count(*) FROM outbound")"
assert_eq "sent rows, one attempt each" 6 "$(q "SELECT count(*) FROM outbound WHERE state = 'sent' AND attempts = 1")"
wait_for 20 "6 delivery events" at_least 6 \
    "SELECT count(*) FROM outbox WHERE topic = 'imp.delivery.v1' AND published_at IS NOT NULL" ||
    fail "delivery events not published"
assert_eq "delivery events (sent, one per outbound)" 6 "$(q "SELECT count(DISTINCT operation_id)
    FROM outbox WHERE topic = 'imp.delivery.v1' AND payload::jsonb #>> '{data,status}' = 'sent'")"
assert_eq "delivery event keys" 6 "$(q "SELECT count(*) FROM outbox
    WHERE topic = 'imp.delivery.v1' AND key LIKE '$T:%'")"
# Usage: one imp.usage.recorded.v1 per sent message, keyed by the tenant, on imp.usage.v1.
wait_for 20 "6 usage events published" at_least 6 \
    "SELECT count(*) FROM outbox WHERE topic = 'imp.usage.v1' AND published_at IS NOT NULL" ||
    fail "usage events not published"
assert_eq "usage events (one per sent outbound, keyed by tenant)" 6 "$(q "SELECT count(DISTINCT operation_id)
    FROM outbox WHERE topic = 'imp.usage.v1' AND key = '$T'
    AND payload::jsonb #>> '{data,kind}' = 'message'
    AND (payload::jsonb #>> '{data,counters,messages}')::int = 1")"
assert_eq "usage characters = outbound text length" 0 "$(q "SELECT count(*) FROM outbox x
    JOIN outbound o ON o.operation_id::text = x.payload::jsonb #>> '{data,ref}'
    WHERE x.topic = 'imp.usage.v1'
    AND (x.payload::jsonb #>> '{data,counters,characters}')::int <> char_length(o.text)")"
assert_eq "usage events on the topic" 6 "$(kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.usage.v1 \
    -o beginning -e -q -f '%k %s\n' 2>/dev/null | grep -c "^$T .*\"imp.usage.recorded.v1\"")"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
assert_eq "bot token never logged" 0 "$(grep -c '123:ABC' "$IMP_TEST_TMP/logs/send.log" || true)"
stop_bg "$SEND_PID"
