# Durable ACK under a Kafka outage: three clients post distinct signed webhooks while every
# broker goes down and comes back (devbroker control channel). While the brokers are down
# every request gets 503 within the ack timeout and none gets a 2xx; once they are back 2xx
# resumes; every operation id that got a 2xx is on imp.inbound.v1 (exact count).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/ingress_lib.sh"

ACK_MS=2000
SENDERS=4
OUTAGE_S=10
STOP=$IMP_TEST_TMP/stop
RESULTS=$IMP_TEST_TMP/results

standard_tenants
start_ingress ingress IMP_INGRESS_ACK_TIMEOUT=${ACK_MS}ms IMP_INGRESS_RATE=0
wait_ready 30

# sender NAME: distinct webhooks until $STOP exists; one line per request:
# "<start ms> <end ms> <status> <operation id or ->"
sender() {
    local name=$1 i=0 start
    while [ ! -e "$STOP" ]; do
        i=$((i + 1))
        start=$(now_ms)
        RESP_FILES=$IMP_TEST_TMP/$name post_standard generic a "$A_GENERIC" "$name-$i" \
            "$(generic_body "$name-$i" "conv-$name")" -m 30 || true
        echo "$start $(now_ms) $STATUS ${OPID:--}" >>"$RESULTS.$name"
    done
}

count_200() { cat "$RESULTS".* 2>/dev/null | awk '$3 == 200' | wc -l; }
at_least_200() { [ "$(count_200)" -ge "$1" ]; }
resumed() { cat "$RESULTS".* | awk -v t="$1" '$1 >= t && $3 == 200' | grep -q .; }

pids=()
for s in $(seq 1 $SENDERS); do
    sender "s$s" &
    pids+=($!)
done
wait_for 30 "30 accepted webhooks" at_least_200 30 || fail "senders are not getting 200s"

devbroker_cmd "broker down all" >/dev/null || fail "control: broker down"
down_at=$(now_ms)
sleep "$OUTAGE_S"
up_at=$(now_ms)
devbroker_cmd "broker up all" >/dev/null || fail "control: broker up"
wait_for 60 "a 2xx after the brokers came back" resumed "$up_at" ||
    fail "no 2xx within 60 s of the brokers coming back"
resumed_ms=$(($(cat "$RESULTS".* | awk -v t="$up_at" '$1 >= t && $3 == 200 {print $2}' | sort -n | head -n 1) - up_at))
sleep 2
touch "$STOP"
wait "${pids[@]}"

# Requests sent and answered while every broker was down: all 503, each within the ack
# timeout (plus scheduling slack); none 2xx.
read -r down_n down_503 down_2xx down_other slowest < <(cat "$RESULTS".* | awk -v a="$down_at" -v b="$up_at" '
    $1 >= a && $2 <= b { n++; d = $2 - $1; if (d > max) max = d
                         if ($3 == 503) s++; else if ($3 ~ /^2/) ok++; else other++ }
    END { print n + 0, s + 0, ok + 0, other + 0, max + 0 }')
say "during the outage: $down_n requests, $down_503 × 503, $down_2xx × 2xx, $down_other other, slowest $slowest ms"
[ "$down_n" -ge $SENDERS ] || fail "too few requests fell inside the outage: $down_n"
assert_eq "2xx while the brokers were down" 0 "$down_2xx"
assert_eq "503 for every request during the outage" "$down_n" "$down_503"
[ "$slowest" -le $((ACK_MS + 1000)) ] || fail "a 503 took $slowest ms (ack timeout $ACK_MS ms)"
pass "every 503 within the ack timeout (slowest $slowest ms)"
others=$(cat "$RESULTS".* | awk '$3 != 200 && $3 != 503' | wc -l)
assert_eq "answers other than 200 and 503" 0 "$others"
say "2xx resumed $resumed_ms ms after the brokers came back"

# Every operation id that got a 2xx is on the topic.
total=$(cat "$RESULTS".* | wc -l)
ok_ids=$IMP_TEST_TMP/ok_ids
cat "$RESULTS".* | awk '$3 == 200 {print $4}' | sort -u >"$ok_ids"
accepted=$(wc -l <"$ok_ids")
topic_events imp.inbound.v1 | awk '{print $1}' | sort -u >"$IMP_TEST_TMP/topic_ids"
found=$(comm -12 "$ok_ids" "$IMP_TEST_TMP/topic_ids" | wc -l)
say "$total requests, $accepted accepted (2xx), $(cat "$RESULTS".* | awk '$3 == 503' | wc -l) refused (503)"
assert_eq "accepted operation ids found on imp.inbound.v1" "$accepted" "$found"
assert_eq "nothing waits for delivery reports" 0 "$(metric imperium_ingress_waiting_requests)"
pass "durable ACK across a full broker outage: $found of $accepted accepted ids on the topic"
