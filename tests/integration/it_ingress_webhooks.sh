# imperium-ingress end to end against the devbroker: readiness waits for the tenant
# directory; a signed webhook per channel is answered 200 with X-Operation-Id only once its
# event is on imp.inbound.v1 (right id, key, type, tenant, trace); redeliveries keep the id;
# every refusal (unknown tenant, foreign secret, unconfigured channel, stale timestamp) is the
# same 401; disabled 403; Meta handshake; ops bot → imp.ops.v1; 413 and 400 produce nothing;
# rate limit 429; secret rotation with a grace period.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/ingress_lib.sh"

OPS_SECRET=ops-bot-secret-token
NIL=00000000-0000-0000-0000-000000000000
PROBLEM=application/problem+json

expect() { # expect NAME STATUS: the last answer had STATUS
    [ "$STATUS" = "$2" ] || fail "$1: expected HTTP $2, got $STATUS: $RESP"
    pass "$1 → $2"
}

expect_problem() { # expect_problem NAME STATUS
    expect "$1" "$2"
    assert_eq "$1: content type" "$PROBLEM" "$(header content-type)"
    printf '%s' "$RESP" | python3 -c "
import json, sys
p = json.load(sys.stdin)
assert p['status'] == $2 and p['type'].startswith('urn:imperium:problem:'), p
assert p['title'] and p['detail'] and len(p['trace_id']) == 32, p" ||
        fail "$1: not a problem document: $RESP"
}

# ---- readiness: nothing is served before the directory has caught up ---------------------

standard_tenants
# An ingress started while the leader of a tenant partition is down is not ready, and stops
# when told to: it asks no broker for watermarks (librdkafka 2.0.2 waits for the leader
# there whatever the timeout).
[ "$(devbroker_cmd "partition leader imp.tenants.v1 0 2")" = ok ] || fail "control: partition leader"
devbroker_cmd "broker down 2" >/dev/null || fail "control: broker down 2"
start_ingress ingress-partial IMP_INGRESS_RATE=0
PARTIAL_PID=$BG_PID
sleep 3
http GET /readyz
expect_problem "readyz while the leader of a tenant partition is down" 503
assert_contains "readyz reason with one broker down" "$RESP" "tenant directory"
stop_bg "$PARTIAL_PID" 10 || fail "the ingress did not stop by itself while broker 2 was down"
pass "an ingress waiting for a tenant partition stops on SIGTERM"
devbroker_cmd "broker up 2" >/dev/null || fail "control: broker up 2"
devbroker_cmd "broker down all" >/dev/null || fail "control: broker down"
start_ingress ingress IMP_OPS_WEBHOOK_SECRET="$OPS_SECRET" IMP_INGRESS_RATE=0
sleep 2
http GET /livez
expect "livez while Kafka is down" 200
http GET /readyz
expect_problem "readyz while Kafka is down" 503
assert_contains "readyz reason" "$RESP" "tenant directory"
post_standard generic a "$A_GENERIC" early-1 "$(generic_body early-1)"
expect_problem "webhook before the directory is loaded" 503
assert_ne "Retry-After on 503" "" "$(header retry-after)"
devbroker_cmd "broker up all" >/dev/null || fail "control: broker up"
t0=$(now_ms)
wait_ready 60
tenants=$(metric imperium_ingress_directory_tenants)
say "ready $(($(now_ms) - t0)) ms after the brokers came back"
assert_eq "tenants loaded when /readyz first says ready" 4 "$tenants"

# ---- one signed webhook per channel --------------------------------------------------------

declare -A SENT # opid → channel
CHATFLOW_BODY='{"event": "message.received", "message": {"id": "cf-1", "chat_id": "79990001122", "type": "text", "text": "hi", "from": {"id": "79990001122", "name": "Bob"}}}'
WHATSAPP_BODY='{"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"}, "contacts": [{"profile": {"name": "Carl"}, "wa_id": "15550002222"}], "messages": [{"from": "15550002222", "id": "wamid.A1", "timestamp": "1700000000", "type": "text", "text": {"body": "hi"}}]}}]}]}'
TELEGRAM_BODY='{"update_id": 1001, "message": {"message_id": 5, "date": 1700000000, "chat": {"id": 4242, "type": "private"}, "from": {"id": 4242, "first_name": "Dan"}, "text": "hi"}}'
TRACE=4bf92f3577b34da6a3ce929d0e0e4736

accepted() { # accepted NAME CHANNEL: 200, X-Operation-Id, and the body lists it first
    expect "$1" 200
    [ -n "$OPID" ] || fail "$1: no X-Operation-Id"
    assert_eq "$1: body" "{\"accepted\":1,\"operation_ids\":[\"$OPID\"]}" "$RESP"
    SENT[$OPID]=$2
}

post_standard generic a "$A_GENERIC" gen-1 "$(generic_body m-1)" \
    -H "traceparent: 00-$TRACE-00f067aa0ba902b7-01"
accepted "generic webhook" generic
GENERIC_OPID=$OPID
post_standard chatflow a "$A_CHATFLOW" cf-hook-1 "$CHATFLOW_BODY"
accepted "chatflow webhook" chatflow
post_meta a "$A_WA_APP" "$WHATSAPP_BODY"
accepted "whatsapp webhook" whatsapp
post_telegram a "$A_TG" "$TELEGRAM_BODY"
accepted "telegram webhook" telegram

EVENTS=$(topic_events imp.inbound.v1)
for opid in "${!SENT[@]}"; do
    ch=${SENT[$opid]}
    line=$(printf '%s\n' "$EVENTS" | awk -v id="$opid" '$1 == id')
    [ -n "$line" ] || fail "$ch: operation $opid is not on imp.inbound.v1"
    read -r _ key type subject traceparent tenantid <<<"$line"
    assert_eq "$ch: event type" imp.inbound.message.v1 "$type"
    assert_eq "$ch: tenantid" "$TENANT_A" "$tenantid"
    assert_eq "$ch: key is tenant_id:conversation_key" "$TENANT_A:$subject" "$key"
    assert_contains "$ch: conversation key names the channel" "$subject" "$ch:"
    if [ "$opid" = "$GENERIC_OPID" ]; then
        assert_contains "generic: traceparent continues the caller's trace" "$traceparent" "00-$TRACE-"
        assert_ne "generic: a new span" "00-$TRACE-00f067aa0ba902b7-01" "$traceparent"
    fi
done
assert_eq "events on imp.inbound.v1" 4 "$(printf '%s\n' "$EVENTS" | wc -l | tr -d ' ')"

# ---- redelivery: the same webhook three times, one operation id ------------------------------

ts=$(date +%s)
ids=()
for i in 1 2 3; do
    TS=$ts post_standard generic a "$A_GENERIC" redeliver-1 "$(generic_body m-redeliver)"
    expect "redelivery $i" 200
    ids+=("$OPID")
done
assert_eq "one X-Operation-Id for three deliveries" 1 "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)"
assert_eq "the redelivered event on the topic, once per 200" 3 \
    "$(topic_events imp.inbound.v1 | awk -v id="${ids[0]}" '$1 == id' | wc -l | tr -d ' ')"

# ---- authentication: one 401 for every reason, 403 only when authenticated -------------------

post_standard generic b "$A_GENERIC" cross-1 "$(generic_body cross-1)"
expect_problem "tenant a's secret on tenant b's URL" 401
SHAPE=$(problem_shape)
post_standard generic nobody "$A_GENERIC" unknown-1 "$(generic_body unknown-1)"
expect_problem "unknown tenant" 401
assert_eq "unknown tenant: the same answer as a bad signature" "$SHAPE" "$(problem_shape)"
post_standard generic 'Not_A-Slug' "$A_GENERIC" unknown-2 "$(generic_body unknown-2)"
expect_problem "impossible slug" 401
assert_eq "impossible slug: the same answer" "$SHAPE" "$(problem_shape)"
post_telegram d "$A_TG" "$TELEGRAM_BODY"
expect_problem "channel not configured for the tenant" 401
assert_eq "unconfigured channel: the same answer" "$SHAPE" "$(problem_shape)"
post_telegram b "$A_TG" "$TELEGRAM_BODY"
expect_problem "tenant a's telegram token on tenant b" 401
post_meta b "$A_WA_APP" "$WHATSAPP_BODY"
expect_problem "tenant a's app secret on tenant b" 401
TS=$(($(date +%s) - 301)) post_standard generic a "$A_GENERIC" stale-1 "$(generic_body stale-1)" \
    -H "traceparent: 00-$TRACE-00f067aa0ba902b7-01"
expect_problem "timestamp 301 s old" 401
assert_eq "stale timestamp: the same answer" "$SHAPE" "$(problem_shape)"
assert_contains "trace_id of the caller's trace" "$RESP" "\"trace_id\":\"$TRACE\""
post_standard generic c "$C_GENERIC" disabled-1 "$(generic_body disabled-1)"
expect_problem "disabled tenant, valid signature" 403
post_standard generic c "$A_GENERIC" disabled-2 "$(generic_body disabled-2)"
expect_problem "disabled tenant, bad signature" 401
assert_eq "disabled tenant, bad signature: the same answer" "$SHAPE" "$(problem_shape)"

# ---- Meta's subscription handshake ----------------------------------------------------------

http GET "/v1/webhooks/whatsapp/a?hub.mode=subscribe&hub.verify_token=$A_WA_VERIFY&hub.challenge=1158201444"
expect "handshake" 200
assert_eq "handshake echoes the challenge" 1158201444 "$RESP"
assert_contains "handshake content type" "$(header content-type)" text/plain
http GET "/v1/webhooks/whatsapp/a?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444"
expect_problem "handshake, wrong token" 403
http GET "/v1/webhooks/whatsapp/a?hub.mode=subscribe&hub.verify_token=$B_WA_VERIFY&hub.challenge=1"
expect_problem "handshake, tenant b's token" 403
http GET "/v1/webhooks/whatsapp/nobody?hub.mode=subscribe&hub.verify_token=$A_WA_VERIFY&hub.challenge=1"
expect_problem "handshake, unknown tenant" 403

# ---- routes and methods -----------------------------------------------------------------------

http GET /v1/webhooks/generic/a
expect_problem "GET on a POST route" 405
http POST /v1/webhooks/sms/a -d '{}'
expect_problem "unknown channel" 404
http GET /nowhere
expect_problem "unknown path" 404

# ---- the operator's bot ----------------------------------------------------------------------

OPS_BODY='{"update_id": 777001, "message": {"message_id": 1, "date": 1700000000, "chat": {"id": 123456, "type": "private"}, "from": {"id": 123456, "first_name": "Op"}, "text": "/status a"}}'
http POST /v1/webhooks/ops -H "x-telegram-bot-api-secret-token: $OPS_SECRET" --data-binary "$OPS_BODY"
expect "ops update" 200
OPS_OPID=$OPID
line=$(topic_events imp.ops.v1 | awk -v id="$OPS_OPID" '$1 == id')
[ -n "$line" ] || fail "ops update $OPS_OPID is not on imp.ops.v1"
read -r _ key type subject _ tenantid <<<"$line"
assert_eq "ops: key is the chat id" 123456 "$key"
assert_eq "ops: type" imp.ops.update.v1 "$type"
assert_eq "ops: tenantid is the platform (nil UUID)" "$NIL" "$tenantid"
http POST /v1/webhooks/ops -H "x-telegram-bot-api-secret-token: $OPS_SECRET" --data-binary "$OPS_BODY"
assert_eq "ops redelivery: same id" "$OPS_OPID" "$OPID"
http POST /v1/webhooks/ops -H "x-telegram-bot-api-secret-token: wrong" --data-binary "$OPS_BODY"
expect_problem "ops, wrong secret token" 401
http POST /v1/webhooks/ops -H "x-telegram-bot-api-secret-token: $OPS_SECRET" --data-binary '{"message": {}}'
expect_problem "ops, not an update" 400

# ---- limits: 413 and 400 produce nothing ---------------------------------------------------------

before=$(topic_count imp.inbound.v1)
big=$IMP_TEST_TMP/big.json
{ printf '{"conversation": "c", "pad": "' && head -c 1048576 /dev/zero | tr '\0' x && printf '"}'; } >"$big"
post_standard generic a "$A_GENERIC" big-1 "@$big"
expect_problem "body over 1 MiB" 413
post_standard generic a "$A_GENERIC" bad-json-1 '{"conversation": "c", "message": {'
expect_problem "malformed JSON" 400
post_meta a "$A_WA_APP" '[1, 2'
expect_problem "malformed JSON (whatsapp)" 400
post_standard generic a "$A_GENERIC" after-limits "$(generic_body after-limits)"
expect "a valid webhook after them" 200
sleep 1
assert_eq "only the valid webhook was produced" $((before + 1)) "$(topic_count imp.inbound.v1)"

# ---- rate limit (a second ingress with a small bucket) --------------------------------------------

MAIN_URL=$INGRESS_URL
start_ingress ingress-limited IMP_INGRESS_RATE=0.5 IMP_INGRESS_BURST=5
wait_ready 30
codes=()
for i in $(seq 1 8); do
    post_standard generic b "$B_GENERIC" "rl-$i" "$(generic_body "rl-$i")"
    codes+=("$STATUS")
    [ "$STATUS" = 429 ] && RETRY_AFTER=$(header retry-after) && LAST_429=$RESP
done
say "statuses under the limit: ${codes[*]}"
assert_eq "requests within the burst" 5 "$(printf '%s\n' "${codes[@]}" | grep -c '^200$')"
assert_eq "requests over it" 3 "$(printf '%s\n' "${codes[@]}" | grep -c '^429$')"
[ "${RETRY_AFTER:-0}" -ge 1 ] || fail "429 without a Retry-After of at least 1 s: '${RETRY_AFTER:-}'"
pass "429 carries Retry-After: $RETRY_AFTER"
RESP=$LAST_429 STATUS=429
assert_contains "429 is a problem" "$RESP" '"status":429'
post_standard generic a "$A_GENERIC" rl-other "$(generic_body rl-other)"
expect "another tenant's bucket is its own" 200
http POST /v1/webhooks/ops -H "x-telegram-bot-api-secret-token: x" -d '{}'
expect_problem "ops route without IMP_OPS_WEBHOOK_SECRET" 404
INGRESS_URL=$MAIN_URL

# ---- secret rotation ---------------------------------------------------------------------------

NEW_GENERIC=whsec_$(printf 'tenant-a-generic-key-ROTATED-01' | base64)
a_generic() { # a_generic VERSION PREVIOUS_UNTIL_MS: tenant a with the new generic secret
    tenant a "$TENANT_A" active "$1" "{
        \"generic\": {\"secrets\": {\"webhook_secret\": \"$NEW_GENERIC\"},
                      \"previous_secrets\": {\"webhook_secret\": \"$A_GENERIC\"},
                      \"previous_until_ms\": $2},
        \"telegram\": {\"secrets\": {\"secret_token\": \"$A_TG\"}}}"
}
accepts() { # accepts SECRET ID: the webhook signed with SECRET gets 200 (for wait_for)
    post_standard generic a "$1" "$2-$(now_ms)" "$(generic_body "$2")"
    [ "$STATUS" = 200 ]
}
refuses() { post_standard generic a "$1" "$2-$(now_ms)" "$(generic_body "$2")" && [ "$STATUS" = 401 ]; }

publish_tenants "[$(a_generic 2 $(($(date +%s%3N) + 600000)))]"
wait_for 15 "the rotated secret to be accepted" accepts "$NEW_GENERIC" rot-new ||
    fail "the new secret is not accepted: $STATUS $RESP"
pass "rotation: the new secret is accepted"
accepts "$A_GENERIC" rot-old || fail "rotation: the old secret is refused during the grace period"
pass "rotation: the old secret is still accepted during the grace period"
publish_tenants "[$(a_generic 3 $(($(date +%s%3N) - 1000)))]"
wait_for 15 "the old secret to be refused" refuses "$A_GENERIC" rot-old2 ||
    fail "the old secret is still accepted after its grace period"
pass "rotation: the old secret is refused after the grace period"
accepts "$NEW_GENERIC" rot-new2 || fail "rotation: the new secret is refused: $STATUS"
pass "rotation: the new secret is still accepted"
publish_tenants "[$(a_generic 1 $(($(date +%s%3N) + 600000)))]"
sleep 1
refuses "$A_GENERIC" rot-stale || fail "an older snapshot version replaced a newer one"
pass "an older snapshot version is ignored"

# ---- metrics -------------------------------------------------------------------------------------

for sample in 'imperium_ingress_requests_total{route="generic",status="200"}' \
    'imperium_ingress_requests_total{route="generic",status="401"}' \
    'imperium_ingress_ack_seconds_count{result="persisted"}'; do
    v=$(metric "$sample")
    [ "${v:-0}" -gt 0 ] || fail "metric $sample is ${v:-absent}"
    pass "metric $sample = $v"
done
assert_eq "nothing waits for delivery reports" 0 "$(metric imperium_ingress_waiting_requests)"
pass "ingress webhooks: every check passed"
