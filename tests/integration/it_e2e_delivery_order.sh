#!/usr/bin/env bash
# A replayed send's delivery report against the late report of its first failure, through the
# whole fleet (signed webhook into imperium-ingress, dialog, rag, qc, send as processes, the
# generic fake failing with 500 until fixed; imperium-send with IMP_WORKER_MAX_ATTEMPTS=2;
# every worker with the runtime's default relay grace, 10 s).
#
# imperium-send gives up: it commits `failed` and the `delivery failed` report to the outbox
# on its own connection, and that report leaves only with an outbox relay (docs/send.md). The
# operator fixes the provider and replays while another process's relay holds that report
# (relays lock their rows FOR UPDATE SKIP LOCKED while they publish; here the test holds the
# lock, which makes the race deterministic): `imperium-dlq` skips the locked row and publishes
# the replay, the message is delivered and reported `sent`, and then the stale `failed` report
# arrives. Expect: delivered exactly once, and dialog's delivery status of the message is what
# imperium-send recorded (`sent`), whatever order the reports arrive in.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

BROKEN="$IMP_TEST_TMP/generic.broken"
GRACE=(IMP_WORKER_RELAY_GRACE=10s)
T0=$(now_ms)

touch "$BROKEN"
e2e_fake generic --fail-while "$BROKEN"
for k in chatflow whatsapp telegram; do e2e_fake "$k"; done
e2e_control
e2e_tenant shop
e2e_settings shop '{"coalesce_ms": 0}'
e2e_kb
for k in dialog rag qc; do e2e_worker "$k" "${GRACE[@]}"; done
e2e_worker send "${GRACE[@]}" IMP_WORKER_MAX_ATTEMPTS=2
e2e_ingress
say "fleet up in $(($(now_ms) - T0)) ms"

dialog_status() { q "SELECT coalesce(delivery_status, '-') FROM messages WHERE operation_id = '$1'"; }

e2e_generic ord-1 order-1 "$E2E_Q_PARKING"
wait_for 60 "the generic outbound" eval '[ -n "$(q "SELECT operation_id FROM outbound WHERE tenant_id = '"'$TID'"'")" ]' ||
    fail "no outbound"
GEN=$(q "SELECT operation_id FROM outbound WHERE tenant_id = '$TID'")
wait_for 60 "the dead letter of send" at_least 1 \
    "SELECT count(*) FROM dead_letters WHERE worker = 'send' AND operation_id = '$GEN'" ||
    fail "no dead letter: $(outbound "$GEN" state) after $(requests generic) requests"
assert_eq "gave up: 2 requests, outbound failed" "2|failed" "$(requests generic)|$(outbound "$GEN" state)"
ROW=$(q "SELECT id FROM outbox WHERE topic = 'imp.delivery.v1'
         AND payload::jsonb->'data'->>'outbound_id' = '$GEN' AND payload::jsonb->'data'->>'status' = 'failed'
         AND published_at IS NULL")
[ -n "$ROW" ] || fail "the failed report was published already: the race cannot be set up"

# A relay is publishing the failed report: its row stays locked meanwhile.
mkfifo "$IMP_TEST_TMP/lock.in"
psql_owner <"$IMP_TEST_TMP/lock.in" >"$IMP_TEST_TMP/lock.out" 2>&1 &
LOCKER=$!
exec 7>"$IMP_TEST_TMP/lock.in"
echo "BEGIN; SELECT 'locked ' || id FROM outbox WHERE id = $ROW FOR UPDATE;" >&7
wait_for 10 "the failed report locked" grep -q "locked $ROW" "$IMP_TEST_TMP/lock.out" ||
    fail "could not lock outbox row $ROW: $(cat "$IMP_TEST_TMP/lock.out")"

rm -f "$BROKEN"
DLQ_ID=$(q "SELECT id FROM dead_letters WHERE worker = 'send' AND operation_id = '$GEN'")
env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_DLQ_ACTOR=it-e2e "$BIN/imperium-dlq" replay "$DLQ_ID" \
    >"$IMP_TEST_TMP/replay.out" 2>&1 || fail "imperium-dlq replay: $(cat "$IMP_TEST_TMP/replay.out")"
wait_for 60 "the replayed outbound sent" state_is "$GEN" sent ||
    fail "replayed outbound not sent: $(outbound "$GEN" state)"
wait_for 30 "dialog recorded sent" eval '[ "$(dialog_status "$GEN")" = sent ]' ||
    fail "dialog's status of the delivered message: $(dialog_status "$GEN")"
pass "replayed while the failed report was held back: delivered, dialog says sent"

echo "COMMIT;" >&7
exec 7>&-
wait "$LOCKER" || fail "the lock holder failed: $(cat "$IMP_TEST_TMP/lock.out")"
e2e_settled 60 # the late report published by a relay and consumed by dialog
assert_eq "delivered exactly once: one more request" 3 "$(requests generic)"
assert_eq "outbound sent, 3 attempts" "sent|3" "$(outbound "$GEN" state)|$(outbound "$GEN" attempts)"
assert_eq "the late failed report reached dialog" t \
    "$(q "SELECT EXISTS (SELECT 1 FROM inbox i JOIN outbox o ON o.operation_id = i.operation_id
          WHERE o.id = $ROW AND i.worker = 'dialog' AND i.state = 'done')")"
assert_eq "dialog's delivery status = imperium-send's final state" "" "$(delivery_mismatches)"
pass "delivery reports out of order: the message stays sent ($(($(now_ms) - T0)) ms)"
