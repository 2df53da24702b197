# Ingress throughput and latency: signed 1 KiB generic webhooks with durable ACK (each 200
# only after Kafka's delivery report), and GET /livez on the same server in the same run
# (wrk, one phase after the other). Prints req/s, p50 and p99 of each and their ratio, against
# the targets of issue 4: >= 30,000 signed req/s, p99 <= 10 ms, >= 0.3 of the /livez rate.
# Runs inside tests/harness.sh (deploy/dev.sh bench).
#
# Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (64), BENCH_WRK_THREADS (1), BENCH_POOL
# (20000 distinct pre-signed webhooks), BENCH_INGRESS_THREADS (1), BENCH_PRODUCER_PROPS.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/ingress_lib.sh"

SECONDS_RUN=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNECTIONS:-64}
WRK_THREADS=${BENCH_WRK_THREADS:-1}
POOL_SIZE=${BENCH_POOL:-20000}
# The mock broker never sets TCP_NODELAY: one request in flight per connection keeps Nagle
# out of the latency (STACK-NOTES.md).
PRODUCER_PROPS=${BENCH_PRODUCER_PROPS:-max.in.flight.requests.per.connection=1}
HERE=$IMP_SOURCE_DIR/tests/bench/ingress
POOL=$IMP_TEST_TMP/pool.lua
BENCH_SECRET=whsec_$(printf 'bench-tenant-generic-key-0123456' | base64)
BENCH_TENANT=5e5e5e5e-0000-4000-8000-00000000000e

command -v wrk >/dev/null || die "wrk is not installed"
publish_tenants "[$(tenant bench "$BENCH_TENANT" active 1 \
    "{\"generic\": {\"secrets\": {\"webhook_secret\": \"$BENCH_SECRET\"}}}")]"
start_ingress ingress IMP_INGRESS_THREADS="${BENCH_INGRESS_THREADS:-1}" IMP_INGRESS_RATE=0 \
    IMP_LOG_LEVEL=warn IMP_KAFKA_PRODUCER_PROPS="$PRODUCER_PROPS"
INGRESS_PID=$BG_PID
wait_ready 30

# The pool: distinct webhook-ids, bodies of exactly 1024 bytes, signed now (the run is far
# shorter than the 300 s tolerance).
python3 - "$BENCH_SECRET" "$POOL_SIZE" "$(date +%s)" >"$POOL" <<'PY'
import base64, hashlib, hmac, json, sys
secret, n, ts = sys.argv[1], int(sys.argv[2]), sys.argv[3]
key = base64.b64decode(secret[len("whsec_"):])
print('return {path = "/v1/webhooks/generic/bench", items = {')
for i in range(n):
    wid = "msg_bench_%07d" % i
    doc = {"conversation": "bench-%d" % (i % 500), "sender": {"id": "u%d" % (i % 500),
           "name": "Bench"}, "message": {"id": wid, "text": ""}}
    pad = 1024 - len(json.dumps(doc, separators=(",", ":")))
    doc["message"]["text"] = ("lorem ipsum dolor sit amet " * 64)[:pad]
    body = json.dumps(doc, separators=(",", ":"))
    assert len(body) == 1024 and "]==]" not in body
    sig = base64.b64encode(hmac.new(key, ("%s.%s.%s" % (wid, ts, body)).encode(),
                                    hashlib.sha256).digest()).decode()
    print('{"%s", "%s", "%s", [==[%s]==]},' % (wid, ts, sig, body))
print('}}')
PY

# run LABEL URL_PATH [SCRIPT ARGS…]: one wrk phase; sets RPS P50 P99 N BAD.
run() {
    local label=$1 path=$2 out
    shift 2
    out=$(wrk -t "$WRK_THREADS" -c "$CONNS" -d "${SECONDS_RUN}s" --timeout 10s \
        -s "$HERE/signed.lua" "$INGRESS_URL$path" -- "$@")
    local line
    line=$(printf '%s\n' "$out" | grep '^RESULT') || die "wrk gave no result: $out"
    N=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
    RPS=$(sed 's/.*rps=\([0-9]*\).*/\1/' <<<"$line")
    P50=$(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$line")
    P99=$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$line")
    BAD=$(sed 's/.*non2xx=\([0-9]*\) socket_errors=\([0-9]*\).*/\1+\2/' <<<"$line")
    printf '%-34s %9s req/s   p50 %7s ms   p99 %7s ms   (%s requests, non-2xx+errors %s)\n' \
        "$label" "$RPS" "$P50" "$P99" "$N" "$BAD"
}

counter() { metric "imperium_ingress_requests_total{route=\"generic\",status=\"$1\"}"; }
# CPU time (user + system, in clock ticks) the ingress process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$INGRESS_PID/stat"; }
# CPU time of every process in the devbroker's process group, and of the whole machine (all
# cores, idle excluded), in clock ticks: where the rest of the 2 cores went.
DEVBROKER_PGID=$(awk '$2 == "devbroker" {print $1}' "$IMP_TEST_TMP/.pids" | tail -1)
group_ticks() { cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" '$5 == g {t += $14 + $15} END {print t + 0}'; }
machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

echo "ingress benchmark: $(nproc) cores, $SECONDS_RUN s per phase, wrk -t$WRK_THREADS -c$CONNS," \
    "ingress ${BENCH_INGRESS_THREADS:-1} threads, producer props: $PRODUCER_PROPS," \
    "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
SECONDS_RUN=3 run "warm-up (signed)" /v1/webhooks/generic/bench "$POOL" "$WRK_THREADS" >/dev/null
run "GET /livez" /livez
LIVEZ_RPS=$RPS LIVEZ_P99=$P99
before=$(counter 200)
ticks=$(cpu_ticks) broker_ticks=$(group_ticks "$DEVBROKER_PGID") all_ticks=$(machine_ticks)
run "signed 1 KiB webhook, durable ACK" /v1/webhooks/generic/bench "$POOL" "$WRK_THREADS"
SIGNED_N=$N SIGNED_BAD=$BAD
per_req() { python3 -c "print(round(($1) * 1e6 / $(getconf CLK_TCK) / $N))"; }
us_per_req=$(per_req "$(cpu_ticks) - $ticks")
broker_us=$(per_req "$(group_ticks "$DEVBROKER_PGID") - $broker_ticks")
all_us=$(per_req "$(machine_ticks) - $all_ticks")
acked=$(($(counter 200) - before))
ratio=$(python3 -c "print(f'{$RPS / $LIVEZ_RPS:.2f}')")
echo
printf 'signed/livez ratio: %s   (signed %s req/s, p99 %s ms; /livez %s req/s, p99 %s ms)\n' \
    "$ratio" "$RPS" "$P99" "$LIVEZ_RPS" "$LIVEZ_P99"
printf '200s (after PERSISTED) counted by the ingress in the signed phase: %s; wrk completed %s\n' \
    "$acked" "$SIGNED_N"
printf 'ingress CPU per signed request: %s us (all its threads; less sensitive to other load than req/s)\n' \
    "$us_per_req"
printf 'machine CPU per signed request: %s us: ingress %s, devbroker %s, wrk and the rest %s\n' \
    "$all_us" "$us_per_req" "$broker_us" "$((all_us - us_per_req - broker_us))"
printf 'load average at the end: %s (on %s cores; other work on the machine lowers every figure)\n' \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(nproc)"
[ "$SIGNED_BAD" = "0+0" ] || say "WARNING: the signed phase had non-2xx answers or socket errors: $SIGNED_BAD"
verdict() { python3 -c "print('met' if $1 else 'MISSED')"; }
echo "targets: >= 30000 signed req/s: $(verdict "$RPS >= 30000");" \
    "p99 <= 10 ms: $(verdict "$P99 <= 10");" \
    "ratio >= 0.3: $(verdict "$RPS / $LIVEZ_RPS >= 0.3")"
