# The conversation path end to end (issue 6): the whole fleet as processes (ingress, dialog
# with window 0, rag extractive, qc, send; tests/integration/e2e_lib.sh) and a generic-channel
# fake provider that answers at once and records the arrival time of every request.
# Runs inside tests/harness.sh:
#
#   bash tests/harness.sh bash tests/bench/e2e/run.sh
#
# Two phases, each with its own conversations (one message each, one POST each):
#   1. throughput: BENCH_N (2000) messages offered as fast as the driver can (BENCH_THREADS
#      (64) concurrent senders): replies/s = replies / (last reply − first ACK).
#   2. latency: BENCH_LAT_N (2000) messages at a fixed offered rate BENCH_RATE (200/s):
#      webhook ACK (the ingress's 200) → provider received (the fake's record), p50/p99/max.
# Targets of issue 6 (2 cores): >= 1,000 replies/s sustained; p99 <= 100 ms at 200/s.
# Timestamps are wall-clock ms on one machine (driver and fake both read gettimeofday).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

N=${BENCH_N:-2000}
LAT_N=${BENCH_LAT_N:-2000}
RATE=${BENCH_RATE:-200}
THREADS=${BENCH_THREADS:-64}
export IMP_LOG_LEVEL=warn

e2e_fleet
# warm-up: the consumer groups, the KB cache, the connections
e2e_post shop "$E2E_GENERIC" --convs 20 --prefix warm --questions "$E2E_Q_PRICE" >/dev/null ||
    fail "warm-up failed"
wait_for 60 "the warm-up replies" at_least_requests 20 || fail "no warm-up replies"
sleep 1

# stats PREFIX ACKS: joins the ACK times with the fake's arrival times of PREFIX's replies.
stats() {
    python3 - "$IMP_TEST_TMP/generic.rec" "$1" "$2" <<'PY'
import json, sys
rec, prefix, acks = sys.argv[1:4]
ack = {}
for l in open(acks):
    if l.strip():
        mid, cid, t = l.split()
        ack[cid] = int(t)
got = {}
for l in open(rec):
    r = json.loads(l)
    b = json.loads(r["body"])
    c = b.get("recipient", "")
    if c.startswith(prefix + "-") and c not in got:
        got[c] = r["t_ms"]
lat = sorted(got[c] - ack[c] for c in got if c in ack)
n = len(lat)
if n == 0:
    print("replies 0"); sys.exit()
pct = lambda p: lat[min(n - 1, int(p * n))]
span = max(got.values()) - min(ack.values())
print(f"replies {n}/{len(ack)} span_ms {span} replies_per_s {n * 1000 / max(span, 1):.0f} "
      f"p50_ms {pct(0.5)} p99_ms {pct(0.99)} max_ms {lat[-1]}")
PY
}

say "phase 1: $N messages as fast as possible"
base=$(requests generic)
D1=$(e2e_post shop "$E2E_GENERIC" --convs "$N" --threads "$THREADS" --prefix tput \
    --questions "$E2E_Q_PRICE" --acks "$IMP_TEST_TMP/acks1") || fail "driver: $D1"
wait_for 600 "$N replies" at_least_requests $((base + N)) || fail "only $(requests generic) replies"
S1=$(stats tput "$IMP_TEST_TMP/acks1")
say "driver: $D1"

say "phase 2: $LAT_N messages at $RATE/s"
base=$(requests generic)
D2=$(e2e_post shop "$E2E_GENERIC" --convs "$LAT_N" --threads "$THREADS" --rate "$RATE" \
    --prefix lat --questions "$E2E_Q_PRICE" --acks "$IMP_TEST_TMP/acks2") || fail "driver: $D2"
wait_for 600 "$LAT_N replies" at_least_requests $((base + LAT_N)) || fail "only $(requests generic) replies"
S2=$(stats lat "$IMP_TEST_TMP/acks2")
say "driver: $D2"

printf '\n=== e2e benchmark (window 0, extractive, generic fake answering at once) ===\n'
printf 'throughput  %s messages: %s\n' "$N" "$S1"
printf 'latency     %s messages at %s/s offered: %s\n' "$LAT_N" "$RATE" "$S2"
printf 'targets: >= 1000 replies/s; p99 <= 100 ms at 200/s\n'
