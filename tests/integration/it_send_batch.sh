# imperium-send takes a batch of messages per transaction and calls the provider for each, one
# after the other. When a message of the batch fails (a 400 here: poison), the runtime rolls
# the batch back and runs it again with the failed message set aside; the messages before it
# were already sent, and they are settled from their calls' results, not claimed and sent
# again. For Telegram, which takes no idempotency key, a second claim would have recorded each
# of them `unknown`. Also: a batch that could outlast Kafka's poll interval is refused at
# start-up.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/send_lib.sh"

N=60
EVERY=5
BAD=$((N / EVERY))
T=22222222-0000-4000-8000-000000000001
mk_tenant "$T" batch-1
start_fake tg --reject reject-me --body '{"ok":false,"description":"Bad Request: chat not found"}'
set_channel "$T" telegram "{\"api_url\": \"$FAKE_URL\"}" '{"bot_token": "77:T"}'

# Every message on one partition before the worker starts: its batches are full.
send_event "$T" b telegram --count "$N" --every "$EVERY" --every-text reject-me --text fine
start_send IMP_WORKER_BATCH=16

settled() {
    q "SELECT count(*) FROM outbound WHERE tenant_id = '$T' AND state IN ('sent', 'failed', 'unknown')"
}
wait_for 60 "$N messages settled" at_least "$N" "SELECT count(*) FROM outbound
    WHERE tenant_id = '$T' AND state IN ('sent', 'failed', 'unknown')" ||
    fail "$(settled) of $N settled"
wait_for 30 "$BAD dead letters" at_least "$BAD" "SELECT count(*) FROM dead_letters" ||
    fail "$(q "SELECT count(*) FROM dead_letters") of $BAD dead letters"
wait_for 30 "$N delivery events published" at_least "$N" "SELECT count(*) FROM outbox
    WHERE topic = 'imp.delivery.v1' AND published_at IS NOT NULL" ||
    fail "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.delivery.v1'") delivery events"

state_count() { q "SELECT count(*) FROM outbound WHERE tenant_id = '$T' AND state = '$1'"; }
distinct_texts=$(python3 - "$IMP_TEST_TMP/tg.rec" <<'PY'
import json, sys
print(len({json.loads(json.loads(l)["body"])["text"] for l in open(sys.argv[1])}))
PY
)
say "requests $(requests tg) (distinct texts $distinct_texts), sent $(state_count sent)," \
    "failed $(state_count failed), unknown $(state_count unknown)"
assert_eq "one request per message" "$N" "$(requests tg)"
assert_eq "no message requested twice" "$N" "$distinct_texts"
assert_eq "sent" $((N - BAD)) "$(state_count sent)"
assert_eq "failed" "$BAD" "$(state_count failed)"
assert_eq "unknown" 0 "$(state_count unknown)"
assert_eq "attempts: one each" "$N" "$(q "SELECT count(*) FROM outbound WHERE tenant_id = '$T' AND attempts = 1")"
assert_eq "dead letters: the rejected ones, poison" "$BAD" "$(q "SELECT count(*) FROM dead_letters
    WHERE class = 'poison' AND reason LIKE '%chat not found%'")"
assert_eq "delivery sent events" $((N - BAD)) "$(q "SELECT count(DISTINCT operation_id) FROM outbox
    WHERE topic = 'imp.delivery.v1' AND payload::jsonb #>> '{data,status}' = 'sent'")"
assert_eq "delivery failed events" "$BAD" "$(q "SELECT count(DISTINCT operation_id) FROM outbox
    WHERE topic = 'imp.delivery.v1' AND payload::jsonb #>> '{data,status}' = 'failed'")"
assert_eq "no delivery event twice" "$N" "$(q "SELECT count(*) FROM outbox WHERE topic = 'imp.delivery.v1'")"
assert_eq "usage events of sent messages" $((N - BAD)) "$(q "SELECT count(*) FROM outbox
    WHERE topic = 'imp.usage.v1'")"
stop_bg "$SEND_PID" 20 || true

# IMP_WORKER_BATCH x IMP_SEND_TIMEOUT over 240 s: refused, naming both.
set +e
out=$(env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_WORKER_BATCH=25 IMP_SEND_TIMEOUT=10s \
    "$BIN/imperium-send" 2>&1 >/dev/null)
rc=$?
set -e
assert_eq "too long a batch: exit status" 2 "$rc"
assert_contains "too long a batch: the message" "$out" "IMP_WORKER_BATCH (25) x IMP_SEND_TIMEOUT"
