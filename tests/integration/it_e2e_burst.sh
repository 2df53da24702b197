#!/usr/bin/env bash
# Coalescing through the whole fleet: signed generic webhooks into imperium-ingress, dialog,
# rag (extractive), qc and send as processes, the replies at the generic fake. The tenant has
# the default window (settings without coalesce_ms: 1.5 s).
#   1. one conversation posts 3 messages within the window → exactly one turn holding the
#      three messages, exactly one reply at the provider; the reply answers the burst (the
#      question of its last message) and replies to that last message;
#   2. two conversations burst at the same time → two turns, one per conversation, each with
#      its own three messages, and one reply each answering its own question.
# Counts are taken once the path is at rest (e2e_settled), never after a fixed sleep.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

WINDOW_MS=1500
T0=$(now_ms)
e2e_fleet
say "fleet up in $(($(now_ms) - T0)) ms"

replies_to() { generic_replies | awk -F'\t' -v r="$1" '$1 == r' | wc -l | tr -d ' '; }
reply_text() { generic_replies | awk -F'\t' -v r="$1" '$1 == r {print $4}'; }
reply_field() { # reply_field RECIPIENT FIELD: a member of the (one) request body to RECIPIENT
    fake_bodies generic | python3 -c '
import json, sys
for l in sys.stdin:
    b = json.loads(l)
    if b.get("recipient") == sys.argv[1]:
        print(b.get(sys.argv[2]))' "$1" "$2"
}
conv_turns() { # conv_turns CONVERSATION: "state|messages" per turn of the conversation
    q "SELECT coalesce(string_agg(t.state || '|' || cardinality(t.message_ids), ',' ORDER BY t.created_at), '')
       FROM turns t JOIN conversations c ON c.id = t.conversation_id
       WHERE c.tenant_id = '$TID' AND c.conversation_key = 'generic:$1'"
}
# The webhooks of a burst must all be ACKed within the window, or the test proves nothing.
burst_span() { # burst_span CONVERSATION ACKS_FILE: ms from its first ACK to its last
    awk -v p="$1" '$2 == p {if (min == "" || $3 < min) min = $3; if ($3 > max) max = $3}
        END {print max - min}' "$2"
}

# The pipeline is live (every worker joined its group) before the window is measured: a
# dialog still joining would see the burst's messages late, after the window.
e2e_generic warm-1 warm "$E2E_Q_PRICE"
wait_for 60 "the warm-up reply" eval '[ "$(replies_to warm)" -ge 1 ]' || fail "no warm-up reply"
e2e_settled 30
q "UPDATE tenants SET settings = settings - 'coalesce_ms' WHERE id = '$TID'" >/dev/null
say "pipeline live $(($(now_ms) - T0)) ms after start; window back to the default"

# ---- 1. one conversation, three messages within the window ---------------------------------
T1=$(now_ms)
e2e_post shop "$E2E_GENERIC" --convs 1 --msgs 3 --prefix solo --acks "$IMP_TEST_TMP/acks1" \
    --questions "Hello!|I have a question for you.|$E2E_Q_HOURS" >"$IMP_TEST_TMP/post1.out" 2>&1 ||
    fail "posting the burst: $(cat "$IMP_TEST_TMP/post1.out")"
SPAN=$(burst_span solo-c0 "$IMP_TEST_TMP/acks1")
say "burst of 3 ACKed within $SPAN ms"
[ "$SPAN" -lt $((WINDOW_MS - 500)) ] ||
    fail "the three webhooks took $SPAN ms to be ACKed: not within the ${WINDOW_MS} ms window"
wait_for 60 "the burst's reply" eval '[ "$(replies_to solo-c0)" -ge 1 ]' || fail "no reply to the burst"
say "reply $(($(now_ms) - T1)) ms after the first webhook"
e2e_settled 30

assert_eq "burst: 3 messages stored" 3 \
    "$(q "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id
          WHERE c.tenant_id = '$TID' AND c.conversation_key = 'generic:solo-c0' AND m.direction = 'in'")"
assert_eq "burst: exactly one turn, emitted, holding the 3 messages" "emitted|3" "$(conv_turns solo-c0)"
assert_eq "burst: the default window (due = first message + ${WINDOW_MS} ms), emitted after it" "$WINDOW_MS|true" \
    "$(q "SELECT (extract(epoch FROM t.due_at - t.first_received_at) * 1000)::int || '|' || (t.emitted_at >= t.due_at)
          FROM turns t JOIN conversations c ON c.id = t.conversation_id
          WHERE c.tenant_id = '$TID' AND c.conversation_key = 'generic:solo-c0'")"
assert_eq "burst: one retrieval over the three texts" "1|Hello!
I have a question for you.
$E2E_Q_HOURS" \
    "$(q "SELECT count(*) || '|' || min(r.query) FROM retrieval_log r JOIN turns t ON t.operation_id = r.operation_id
          JOIN conversations c ON c.id = t.conversation_id
          WHERE c.tenant_id = '$TID' AND c.conversation_key = 'generic:solo-c0'")"
assert_eq "burst: exactly one reply at the provider" 1 "$(replies_to solo-c0)"
assert_contains "burst: the reply answers the burst's question" "$(reply_text solo-c0)" "$E2E_A_HOURS"
assert_eq "burst: the reply is an answer to the last message" "answer|solo-c0-m2" \
    "$(reply_field solo-c0 purpose)|$(reply_field solo-c0 reply_to)"
assert_eq "burst: one outbound row, sent once" "1|sent|1" \
    "$(q "SELECT count(*) || '|' || min(state) || '|' || sum(attempts) FROM outbound
          WHERE tenant_id = '$TID' AND recipient = 'solo-c0'")"
pass "a burst of 3 within the window: one turn, one reply"

# ---- 2. two conversations bursting at the same time ----------------------------------------
T2=$(now_ms)
e2e_post shop "$E2E_GENERIC" --convs 1 --msgs 3 --prefix pa --acks "$IMP_TEST_TMP/acks_a" \
    --questions "Good morning.|A question, please.|$E2E_Q_HOURS" >"$IMP_TEST_TMP/post_a.out" 2>&1 &
PA=$!
e2e_post shop "$E2E_GENERIC" --convs 1 --msgs 3 --prefix pb --acks "$IMP_TEST_TMP/acks_b" \
    --questions "Hi!|One more thing.|$E2E_Q_PARKING" >"$IMP_TEST_TMP/post_b.out" 2>&1 &
PB=$!
wait "$PA" || fail "posting burst a: $(cat "$IMP_TEST_TMP/post_a.out")"
wait "$PB" || fail "posting burst b: $(cat "$IMP_TEST_TMP/post_b.out")"
for c in pa pb; do
    SPAN=$(burst_span "$c-c0" "$IMP_TEST_TMP/acks_${c#p}")
    say "burst $c ACKed within $SPAN ms"
    [ "$SPAN" -lt $((WINDOW_MS - 500)) ] ||
        fail "burst $c took $SPAN ms to be ACKed: not within the ${WINDOW_MS} ms window"
done
OVERLAP=$(cat "$IMP_TEST_TMP/acks_a" "$IMP_TEST_TMP/acks_b" | awk '{if (min == "" || $3 < min) min = $3; if ($3 > max) max = $3} END {print max - min}')
say "both bursts ACKed within $OVERLAP ms of each other"
[ "$OVERLAP" -lt $((WINDOW_MS - 500)) ] || fail "the two bursts were not at the same time ($OVERLAP ms)"
wait_for 60 "a reply to each burst" eval '[ "$(replies_to pa-c0)" -ge 1 ] && [ "$(replies_to pb-c0)" -ge 1 ]' ||
    fail "replies: pa $(replies_to pa-c0), pb $(replies_to pb-c0)"
say "both replies $(($(now_ms) - T2)) ms after the first webhook"
e2e_settled 30

for c in pa pb; do
    assert_eq "$c: exactly one turn, emitted, holding 3 messages" "emitted|3" "$(conv_turns "$c-c0")"
    assert_eq "$c: the turn holds only its own conversation's messages" 3 \
        "$(q "SELECT count(*) FROM turns t JOIN conversations c ON c.id = t.conversation_id
              CROSS JOIN LATERAL unnest(t.message_ids) u(op)
              JOIN messages m ON m.operation_id = u.op AND m.conversation_id = t.conversation_id
              WHERE c.tenant_id = '$TID' AND c.conversation_key = 'generic:$c-c0'")"
    assert_eq "$c: exactly one reply at the provider" 1 "$(replies_to "$c-c0")"
    assert_eq "$c: an answer to its own last message" "answer|$c-c0-m2" \
        "$(reply_field "$c-c0" purpose)|$(reply_field "$c-c0" reply_to)"
done
assert_contains "pa: answers its hours question" "$(reply_text pa-c0)" "$E2E_A_HOURS"
assert_contains "pb: answers its parking question" "$(reply_text pb-c0)" "$E2E_A_PARKING"
case "$(reply_text pa-c0)" in *"$E2E_A_PARKING"*) fail "pa's reply holds pb's answer" ;; esac
case "$(reply_text pb-c0)" in *"$E2E_A_HOURS"*) fail "pb's reply holds pa's answer" ;; esac
pass "two bursts at once: not merged"

# ---- the whole run ---------------------------------------------------------------------------
assert_eq "turns in all: warm-up + 3 bursts" 4 \
    "$(q "SELECT count(*) FROM turns WHERE tenant_id = '$TID' AND state = 'emitted'")"
assert_eq "message_traces: one per turn, all pass" "4|4" \
    "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE decision = 'pass') FROM message_traces WHERE tenant_id = '$TID'")"
assert_eq "requests at the generic fake in all" 4 "$(requests generic)"
assert_eq "requests at the other fakes" "0|0|0" "$(requests chatflow)|$(requests whatsapp)|$(requests telegram)"
assert_eq "outbound: 4 answers, each sent once" "4|4|4" \
    "$(q "SELECT count(*) || '|' || count(*) FILTER (WHERE state = 'sent') || '|' || sum(attempts)
          FROM outbound WHERE tenant_id = '$TID'")"
assert_eq "dialog recorded every outbound's final state" "" "$(delivery_mismatches)"
assert_eq "dead letters" 0 "$(q "SELECT count(*) FROM dead_letters")"
pass "coalescing end to end ($(($(now_ms) - T0)) ms)"
