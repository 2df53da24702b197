# imperium-dialog handover: a conversation set to handover (SQL) -> the next customer message
# is forwarded to the manager chat and yields no turn; the delivery event records the
# forward's provider message id; the manager's reply to it -> an outbound to the customer;
# /release in reply to it -> state bot and a notice; the next message -> a turn again.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/worker_lib.sh"

TENANT=3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f
MANAGER=-100777
q "INSERT INTO tenants (id, slug, name, settings) VALUES ('$TENANT', 'shop', 'Shop', '{\"coalesce_ms\": 0}');
   INSERT INTO channels (tenant_id, kind, settings) VALUES ('$TENANT', 'telegram', '{\"manager_chat_id\": \"$MANAGER\"}')" >/dev/null
start_bg dialog env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
    IMP_KAFKA_CONSUMER_PROPS="session.timeout.ms=6000,heartbeat.interval.ms=500" "$BIN/imperium-dialog"

feed_line() { printf '%s\n' "$1" | "$BIN/dialog_feed" >/dev/null || fail "dialog_feed failed"; }
customer() { # customer UPDATE_ID TEXT
    feed_line "{\"tenant\":\"$TENANT\",\"type\":\"imp.inbound.message.v1\",\"event_id\":\"$1\",\"data\":{\"channel\":\"telegram\",\"conversation_key\":\"telegram:9001\",\"chat\":{\"id\":\"9001\",\"type\":\"private\"},\"sender\":{\"id\":\"9001\",\"name\":\"Anna\"},\"message\":{\"id\":\"m$1\",\"kind\":\"text\",\"text\":\"$2\"}}}"
}
manager() { # manager UPDATE_ID TEXT REPLY_TO
    feed_line "{\"tenant\":\"$TENANT\",\"type\":\"imp.inbound.message.v1\",\"event_id\":\"$1\",\"data\":{\"channel\":\"telegram\",\"conversation_key\":\"telegram:$MANAGER\",\"chat\":{\"id\":\"$MANAGER\",\"type\":\"supergroup\"},\"sender\":{\"id\":\"555\",\"name\":\"Irina\",\"username\":\"irina\"},\"message\":{\"id\":\"g$1\",\"kind\":\"text\",\"text\":\"$2\",\"reply_to\":\"$3\"}}}"
}
outbound() { # outbound PURPOSE: the data of the dialog's outbound events of that purpose
    q "SELECT payload::json->'data' FROM outbox WHERE topic = 'imp.outbound.v1'
       AND payload::json->'data'->>'purpose' = '$1' ORDER BY id"
}
turns() { q "SELECT count(*) FROM outbox WHERE topic = 'imp.turn.v1'"; }

customer 1 "hello"
wait_for 60 "first turn" at_least 1 "SELECT count(*) FROM outbox WHERE topic = 'imp.turn.v1'"
CONV=$(q "SELECT id FROM conversations WHERE conversation_key = 'telegram:9001'")
q "UPDATE conversations SET state = 'handover' WHERE id = '$CONV'" >/dev/null

customer 2 "I want a human"
wait_for 30 "forward" at_least 1 \
    "SELECT count(*) FROM outbox WHERE payload::json->'data'->>'purpose' = 'forward'"
fwd=$(outbound forward)
assert_eq "forward recipient" "$MANAGER" "$(jq -r .recipient <<<"$fwd")"
assert_eq "forward channel" telegram "$(jq -r .channel <<<"$fwd")"
assert_contains "forward text" "$(jq -r .text <<<"$fwd")" "I want a human"
FWD_ID=$(q "SELECT operation_id FROM outbox WHERE payload::json->'data'->>'purpose' = 'forward'")
sleep 1
assert_eq "turns while in handover" 1 "$(turns)"

# imperium-send's delivery event: Telegram gave the forward message id 501 in the manager chat.
feed_line "{\"tenant\":\"$TENANT\",\"type\":\"imp.delivery.status.v1\",\"topic\":\"imp.delivery.v1\",\"id\":\"$(cat /proc/sys/kernel/random/uuid)\",\"subject\":\"telegram:9001\",\"data\":{\"outbound_id\":\"$FWD_ID\",\"conversation_id\":\"$CONV\",\"channel\":\"telegram\",\"purpose\":\"forward\",\"status\":\"sent\",\"provider_message_id\":\"501\",\"error\":null,\"attempts\":1}}"
wait_for 30 "provider id recorded" at_least 1 \
    "SELECT count(*) FROM messages WHERE provider_message_id = '501' AND delivery_status = 'sent'"

manager 10 "We are open 10 to 18" 501
wait_for 30 "manager reply" at_least 1 \
    "SELECT count(*) FROM outbox WHERE payload::json->'data'->>'purpose' = 'manager_reply'"
rep=$(outbound manager_reply)
assert_eq "reply recipient (the customer)" 9001 "$(jq -r .recipient <<<"$rep")"
assert_eq "reply channel" telegram "$(jq -r .channel <<<"$rep")"
assert_eq "reply text" "We are open 10 to 18" "$(jq -r .text <<<"$rep")"
assert_eq "manager messages made no turn" 1 "$(turns)"

manager 11 "/release" 501
wait_for 30 "released" at_least 1 \
    "SELECT count(*) FROM conversations WHERE id = '$CONV' AND state = 'bot'"
wait_for 30 "notice" at_least 1 \
    "SELECT count(*) FROM outbox WHERE payload::json->'data'->>'purpose' = 'notice'"
assert_eq "notice recipient" "$MANAGER" "$(outbound notice | jq -r .recipient)"

customer 3 "thanks, one more question"
wait_for 30 "a turn after the release" at_least 2 "SELECT count(*) FROM outbox WHERE topic = 'imp.turn.v1'"
last=$(q "SELECT payload::json->'data' FROM outbox WHERE topic = 'imp.turn.v1' ORDER BY id DESC LIMIT 1")
assert_eq "question" "thanks, one more question" "$(jq -r .question <<<"$last")"
# History: hello, the forwarded message, and the manager's answer (as the assistant).
assert_eq "history" '["user:hello","user:I want a human","assistant:We are open 10 to 18"]' \
    "$(jq -c '[.history[] | .role + ":" + .text]' <<<"$last")"
sleep 1
assert_eq "outbound events on Kafka" 3 \
    "$(kcat -b "$IMP_KAFKA_BROKERS" -C -t imp.outbound.v1 -e -q -J | wc -l)"
assert_eq "turn events on Kafka" 2 "$(kcat -b "$IMP_KAFKA_BROKERS" -C -t imp.turn.v1 -e -q -J | wc -l)"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
pass "handover: forward, manager reply, /release, bot again"
