# imperium-send when providers fail: 500, 500, 200 → delivered once; 429 with Retry-After: 2
# → not sent again before 2 s; always 500 → dead letter after max attempts, then
# `imperium-dlq replay` once the fake is fixed → delivered once; Telegram accepting and then
# timing out → unknown, one request, no second send even when the event comes again; 400 →
# failed + dead letter with the provider's answer; a callback_url on loopback without the
# allow-list → refused, nothing sent.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/send_lib.sh"

MAX=6
T1=11111111-0000-4000-8000-000000000001 # 500, 500, 200 (chatflow)
T2=11111111-0000-4000-8000-000000000002 # 429 Retry-After: 2 (whatsapp)
T3=11111111-0000-4000-8000-000000000003 # always 500, then fixed (generic)
T4=11111111-0000-4000-8000-000000000004 # timeout after the request left (telegram)
T5=11111111-0000-4000-8000-000000000005 # 400 (telegram)
T6=11111111-0000-4000-8000-000000000006 # SSRF (generic on loopback, no allow-list)
for i in 1 2 3 4 5 6; do mk_tenant "11111111-0000-4000-8000-00000000000$i" "fail-$i"; done

start_fake f500 --script 500,500
set_channel "$T1" chatflow "{\"api_url\": \"$FAKE_URL\"}" '{"api_token": "t1"}'
start_fake f429 --script 429 --retry-after 2
set_channel "$T2" whatsapp "{\"api_url\": \"$FAKE_URL\", \"phone_number_id\": \"1\"}" \
    '{"access_token": "t2"}'
touch "$IMP_TEST_TMP/broken"
start_fake fdown --fail-while "$IMP_TEST_TMP/broken"
set_channel "$T3" generic "{\"callback_url\": \"$FAKE_URL/cb\"}" "{\"callback_secret\": \"$GEN_SECRET\"}"
start_fake fslow --delay-ms 4000
set_channel "$T4" telegram "{\"api_url\": \"$FAKE_URL\"}" '{"bot_token": "44:T"}'
start_fake f400 --script 400 --body '{"ok":false,"description":"Bad Request: chat not found"}'
set_channel "$T5" telegram "{\"api_url\": \"$FAKE_URL\"}" '{"bot_token": "55:T"}'
start_fake fssrf
set_channel "$T6" generic "{\"callback_url\": \"$FAKE_URL/cb\"}" "{\"callback_secret\": \"$GEN_SECRET\"}"

start_send IMP_WORKER_MAX_ATTEMPTS=$MAX
ID1=$(send_event "$T1" f-500 chatflow)
ID2=$(send_event "$T2" f-429 whatsapp)
ID3=$(send_event "$T3" f-down generic)
ID4=$(send_event "$T4" f-slow telegram)
ID5=$(send_event "$T5" f-400 telegram)

wait_for 60 "500,500,200 sent" state_is "$ID1" sent || fail "500,500,200 not sent"
assert_eq "500,500,200: requests" 3 "$(requests f500)"
assert_eq "500,500,200: attempts" 3 "$(outbound "$ID1" attempts)"

wait_for 60 "429 sent" state_is "$ID2" sent || fail "429 then 200 not sent"
assert_eq "429: requests" 2 "$(requests f429)"
GAP=$(python3 -c "
import json,sys
r=[json.loads(l) for l in open('$IMP_TEST_TMP/f429.rec')]
print(r[1]['t_ms']-r[0]['t_ms'])")
say "429: second request ${GAP} ms after the first"
[ "$GAP" -ge 2000 ] || fail "429: sent again after ${GAP} ms, before Retry-After: 2"
pass "429: not retried before 2 s"

wait_for 30 "timeout → unknown" state_is "$ID4" unknown || fail "telegram timeout not unknown"
wait_for 30 "400 → failed" state_is "$ID5" failed || fail "400 not failed"
wait_for 60 "always 500 → dead letter" at_least 1 \
    "SELECT count(*) FROM dead_letters WHERE operation_id = '$ID3'" || fail "no dead letter"
assert_eq "always 500: requests" "$MAX" "$(requests fdown)"
assert_eq "always 500: state" failed "$(outbound "$ID3" state)"
assert_contains "always 500: reason" "$(q "SELECT reason FROM dead_letters WHERE operation_id = '$ID3'")" \
    "gave up after $MAX attempts"

assert_eq "400: one request" 1 "$(requests f400)"
wait_for 10 "400 dead letter" at_least 1 "SELECT count(*) FROM dead_letters WHERE operation_id = '$ID5'" ||
    fail "400 not dead-lettered"
assert_eq "400: class" poison "$(q "SELECT class FROM dead_letters WHERE operation_id = '$ID5'")"
assert_contains "400: the provider's answer in the reason" \
    "$(q "SELECT reason FROM dead_letters WHERE operation_id = '$ID5'")" "chat not found"
wait_for 10 "delivery failed events" at_least 2 "SELECT count(*) FROM outbox WHERE topic = 'imp.delivery.v1'
    AND payload::jsonb #>> '{data,status}' = 'failed' AND published_at IS NOT NULL" ||
    fail "failed deliveries not published"

assert_eq "timeout: one request" 1 "$(requests fslow)"
assert_eq "timeout: delivery unknown" 1 "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.delivery.v1'
    AND payload::jsonb #>> '{data,status}' = 'unknown'")"
# The event comes again as a new delivery (its inbox row gone, as after a replay): the send
# that may have happened is not repeated.
q "DELETE FROM inbox WHERE worker = 'send' AND operation_id = '$ID4'" >/dev/null
send_event "$T4" f-slow telegram >/dev/null
wait_for 30 "the redelivered event handled" at_least 1 \
    "SELECT count(*) FROM inbox WHERE worker = 'send' AND operation_id = '$ID4'" ||
    fail "redelivered event not handled"
sleep 5 # past the fake's delay: a second request would be recorded by now
assert_eq "timeout: still one request after redelivery" 1 "$(requests fslow)"
assert_eq "timeout: still unknown" unknown "$(outbound "$ID4" state)"

rm -f "$IMP_TEST_TMP/broken"
env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_DLQ_ACTOR=it-test "$BIN/imperium-dlq" replay --worker send \
    >"$IMP_TEST_TMP/replay.out" 2>&1 || fail "replay failed: $(tail -3 "$IMP_TEST_TMP/replay.out")"
wait_for 30 "replayed → sent" state_is "$ID3" sent || fail "replayed event not sent"
sleep 2
assert_eq "always 500 then fixed: requests" $((MAX + 1)) "$(requests fdown)"
# The 400 was dead-lettered too; replayed, it is sent again (a refused message was never
# delivered, so a re-send cannot duplicate it) and the fake now accepts it.
wait_for 30 "replayed 400 → sent" state_is "$ID5" sent || fail "replayed 400 not sent"
assert_eq "400 replayed: one more request" 2 "$(requests f400)"

stop_bg "$SEND_PID"
# SSRF: the same kind of worker without the allow-list refuses a loopback callback_url.
start_send IMP_WORKER_MAX_ATTEMPTS=$MAX IMP_SEND_ALLOW_CIDRS=
ID6=$(send_event "$T6" f-ssrf generic)
wait_for 60 "ssrf → failed" state_is "$ID6" failed || fail "ssrf not refused"
assert_eq "ssrf: nothing sent" 0 "$(requests fssrf)"
assert_eq "ssrf: dead letter" poison "$(q "SELECT class FROM dead_letters WHERE operation_id = '$ID6'")"
assert_contains "ssrf: reason" "$(outbound "$ID6" last_error)" "blocked"
stop_bg "$SEND_PID"
