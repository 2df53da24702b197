# imperium-send takes a batch of messages per transaction and calls the provider for each, one
# after the other. When a message of the batch fails (a 400 here: poison), the runtime rolls
# the batch back and runs it again with the failed message set aside; the messages before it
# were already sent, and they are settled from their calls' results, not claimed and sent
# again. For Telegram, which takes no idempotency key, a second claim would have recorded each
# of them `unknown`. Then concurrency: the first message of each conversation of a batch is
# called at once (IMP_SEND_CONCURRENCY), a conversation's further messages after it, in order.
# Also: a batch that could outlast Kafka's poll interval is refused at start-up.
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

# ---- concurrent calls: one per conversation of a batch at once, a conversation's in order ----
# 8 conversations, the first with 3 messages; the provider answers each request after 1 s.
T2=22222222-0000-4000-8000-000000000002
mk_tenant "$T2" batch-2
start_fake slow --delay-ms 1000
set_channel "$T2" chatflow "{\"api_url\": \"$FAKE_URL\"}" '{"api_token": "c2"}'
send_event "$T2" c0-0 chatflow --recipient r0 --text "r0 first" >/dev/null
for i in 1 2 3 4 5 6 7; do send_event "$T2" "c$i" chatflow --recipient "r$i" --text "r$i only" >/dev/null; done
send_event "$T2" c0-1 chatflow --recipient r0 --text "r0 second" >/dev/null
send_event "$T2" c0-2 chatflow --recipient r0 --text "r0 third" >/dev/null
# A batch waits up to 1 s for the messages of every partition to arrive.
start_send IMP_WORKER_BATCH=16 IMP_WORKER_BATCH_WAIT=1s IMP_SEND_CONCURRENCY=8 IMP_SEND_TIMEOUT=5s
wait_for 60 "10 messages sent" at_least 10 \
    "SELECT count(*) FROM outbound WHERE tenant_id = '$T2' AND state = 'sent'" ||
    fail "$(q "SELECT count(*) FROM outbound WHERE tenant_id = '$T2' AND state = 'sent'") of 10 sent"
read -r firsts r0 <<<"$(python3 - "$IMP_TEST_TMP/slow.rec" <<'PY'
import json, sys
reqs = [(r["t_ms"], json.loads(r["body"])) for r in map(json.loads, open(sys.argv[1]))]
first = {}
for t, b in reqs:
    first.setdefault(b["chat_id"], t)
spread = max(first.values()) - min(first.values())
r0 = [(t, b["text"]) for t, b in reqs if b["chat_id"] == "r0"]
gaps = [b[0] - a[0] for a, b in zip(r0, r0[1:])]
order = "in-order" if [x for _, x in r0] == ["r0 first", "r0 second", "r0 third"] else "out-of-order"
print(spread, f"{order},{min(gaps) if gaps else -1}")
PY
)"
say "first requests of 8 conversations within $firsts ms; r0's three: ${r0}"
assert_eq "requests" 10 "$(requests slow)"
[ "$firsts" -lt 1000 ] || fail "the 8 conversations' first calls took $firsts ms to start: not concurrent"
pass "8 conversations called at once ($firsts ms apart, 1 s per call)"
[ "${r0%%,*}" = in-order ] || fail "r0's messages went out ${r0%%,*}"
[ "${r0##*,}" -ge 950 ] || fail "r0's calls overlapped (gap ${r0##*,} ms < the provider's 1 s)"
pass "a conversation's calls one after the other, in order (gap ${r0##*,} ms)"
assert_eq "all sent" 0 "$(q "SELECT count(*) FROM outbound WHERE tenant_id = '$T2' AND state <> 'sent'")"
stop_bg "$SEND_PID" 20 || true

# IMP_WORKER_BATCH x IMP_SEND_TIMEOUT over 240 s: refused, naming both.
set +e
out=$(env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_WORKER_BATCH=25 IMP_SEND_TIMEOUT=10s \
    "$BIN/imperium-send" 2>&1 >/dev/null)
rc=$?
set -e
assert_eq "too long a batch: exit status" 2 "$rc"
assert_contains "too long a batch: the message" "$out" "IMP_WORKER_BATCH (25) x IMP_SEND_TIMEOUT"
