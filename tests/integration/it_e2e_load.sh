#!/usr/bin/env bash
# The conversation path under load (issue 6): E2E_CONVS conversations (default 1,000) × 3
# messages on the generic channel, window 0, every webhook POSTed twice at once on two
# connections; a conversation's next message only after its previous one was ACKed. Expect
# exactly 3 × E2E_CONVS replies at the fake provider, no outbound id twice, and within every
# conversation the answers in the order of the questions (each question has its own FAQ
# chunk, so the answer text says which question it answers).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

CONVS=${E2E_CONVS:-1000}
MSGS=3
WANT=$((CONVS * MSGS))
QS="$E2E_Q_PRICE|$E2E_Q_HOURS|$E2E_Q_ADDRESS"
PHRASES="$E2E_A_PRICE|$E2E_A_HOURS|$E2E_A_ADDRESS"

e2e_fleet
T0=$(now_ms)
OUT=$(e2e_post shop "$E2E_GENERIC" --convs "$CONVS" --msgs "$MSGS" --copies 2 --threads 48 \
    --prefix load --questions "$QS") || fail "the load driver failed: $OUT"
T1=$(now_ms)
say "driver: $OUT; $WANT messages ACKed in $((T1 - T0)) ms"
assert_eq "webhooks ACKed (each message at least once)" "$WANT" \
    "$(printf '%s' "$OUT" | awk '{print $4}')"

wait_for 900 "$WANT replies at the generic fake" at_least_requests "$WANT" 2>/dev/null || true
T2=$(now_ms)
say "$(requests generic) replies at the fake $((T2 - T0)) ms after the first webhook ($(((T2 - T1))) ms after the last ACK)"
sleep 5 # a late duplicate would show up now
RESULT=$(check_load_replies "$CONVS" "$MSGS" load "$PHRASES")
say "$RESULT"
assert_eq "replies, distinct, duplicates, out of order, missing" \
    "replies $WANT distinct $WANT duplicates 0 out_of_order 0 missing 0" "$RESULT"
assert_eq "message rows (inbound): one per message despite the double delivery" "$WANT" \
    "$(q "SELECT count(*) FROM messages WHERE tenant_id = '$TID' AND direction = 'in'")"
assert_eq "outbound rows: one per message, all sent once" "$WANT|$WANT|$WANT" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE state = 'sent'), sum(attempts) FROM outbound WHERE tenant_id = '$TID'")"
assert_eq "message_traces: one per turn, all pass" "$WANT|$WANT" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE decision = 'pass') FROM message_traces WHERE tenant_id = '$TID'")"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
say "send_ms p50/p99: $(q "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY send_ms) || '/' || percentile_disc(0.99) WITHIN GROUP (ORDER BY send_ms) FROM message_traces")"
pass "$CONVS conversations × $MSGS messages, each delivered twice: $WANT replies, 0 duplicates, in order ($(((T2 - T0) / 1000)) s)"
