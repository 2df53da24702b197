# The per-(tenant, provider) circuit breaker of imperium-send: a provider that answers 500
# gets IMP_SEND_BREAKER_FAILURES requests, then none while the breaker is open (the message
# waits on the retry topic, "circuit_open"), and the message is delivered once the provider
# is back and the breaker has closed. Another tenant's messages to the same provider kind are
# not held back.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/send_lib.sh"

T1=33333333-0000-4000-8000-000000000001 # its provider fails
T2=33333333-0000-4000-8000-000000000002 # same kind, healthy
mk_tenant "$T1" breaker-1
mk_tenant "$T2" breaker-2
touch "$IMP_TEST_TMP/down"
start_fake fdown --fail-while "$IMP_TEST_TMP/down"
set_channel "$T1" chatflow "{\"api_url\": \"$FAKE_URL\"}" '{"api_token": "b1"}'
start_fake fok
set_channel "$T2" chatflow "{\"api_url\": \"$FAKE_URL\"}" '{"api_token": "b2"}'

requests_at_least() { [ "$(requests "$1")" -ge "$2" ]; }

start_send IMP_SEND_BREAKER_FAILURES=3 IMP_SEND_BREAKER_WINDOW=30s IMP_SEND_BREAKER_OPEN=8s \
    IMP_WORKER_MAX_ATTEMPTS=40
ID=$(send_event "$T1" br-1 chatflow)
wait_for 30 "3 failed requests" requests_at_least fdown 3 || fail "$(requests fdown) requests"
opened=$(date +%s%N)
# Open for 8 s: the retries (every 2 s at most) make no request meanwhile.
ID2=$(send_event "$T2" br-2 chatflow)
wait_for 20 "the other tenant's message sent" state_is "$ID2" sent || fail "other tenant held back"
sleep 3
assert_eq "no request while the breaker is open" 3 "$(requests fdown)"
assert_eq "breaker opened once" 1 "$(grep -c '"msg":"circuit breaker opened"' "$IMP_TEST_TMP/logs/send.log")"
assert_contains "the retries say why" "$(cat "$IMP_TEST_TMP/logs/send.log")" "circuit breaker of chatflow is open"
assert_eq "not settled yet" pending "$(outbound "$ID" state)"

rm "$IMP_TEST_TMP/down"
wait_for 40 "sent once the breaker closed" state_is "$ID" sent || fail "state $(outbound "$ID" state)"
closed_ms=$((($(date +%s%N) - opened) / 1000000))
say "sent ${closed_ms} ms after the breaker opened"
[ "$closed_ms" -ge 7000 ] || fail "sent after $closed_ms ms, before the breaker closed"
assert_eq "one more request: the one that got through" 4 "$(requests fdown)"
assert_eq "no dead letter" 0 "$(q "SELECT count(*) FROM dead_letters")"
