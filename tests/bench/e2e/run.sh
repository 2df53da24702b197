# The conversation path end to end (issue 6): the whole fleet as processes (ingress, dialog
# with window 0, rag extractive, qc, send; tests/integration/e2e_lib.sh) and a generic-channel
# fake provider that answers at once and records the arrival time of every request.
# Runs inside tests/harness.sh:
#
#   bash tests/harness.sh bash tests/bench/e2e/run.sh
#
# First the fleet idle for BENCH_IDLE_SECONDS (3): the CPU it spends with nothing to do.
# Then two phases, each with its own conversations (one message each, one POST each):
#   1. throughput: BENCH_N (2000) messages offered as fast as the driver can (BENCH_THREADS
#      (64) requests in flight, tests/integration/progs/e2e_load.c):
#      replies/s = replies / (last reply − first ACK); then the CPU each kind of process spent
#      per message in that phase.
#   2. latency: BENCH_LAT_N (2000) messages at a fixed offered rate BENCH_RATE (200/s):
#      webhook ACK (the ingress's 200) → provider received (the fake's record), p50/p99/max;
#      then the CPU per message in that phase and how busy the machine was.
# Targets of issue 6 (2 cores): >= 1,000 replies/s sustained; p99 <= 100 ms at 200/s.
# Knobs: BENCH_PG_TRANSPORT (socket; see below), BENCH_SENDERS (1) imperium-send processes,
# BENCH_METRICS (off; see below); BENCH_BATCH_WAIT, BENCH_CONSUMER_PROPS
# for the workers' IMP_WORKER_BATCH_WAIT and IMP_KAFKA_CONSUMER_PROPS; IMP_TEST_PG_OPTS='-c
# shared_preload_libraries=pg_stat_statements' (read by the harness) adds Postgres's most
# costly statements at the end; IMP_DEVBROKER_BROKERS=1 (read by the dev broker the harness
# starts) runs one broker instead of three (docs/round-trip.md § The machine at 200 messages/s).
# Timestamps are wall-clock ms on one machine (driver and fake both read gettimeofday).
set -euo pipefail
# BENCH_PG_TRANSPORT: socket (default) connects the fleet to Postgres over its Unix socket,
# as processes on the database's own machine would; tcp over 127.0.0.1, where loopback TCP
# costs Postgres and every client a share of the CPU that a remote database would not.
case ${BENCH_PG_TRANSPORT:-socket} in
socket)
    IMP_PG_APP_DSN="postgresql://imperium_app@/imperium?host=$IMP_PG_SOCKDIR&port=$IMP_PG_PORT"
    export IMP_PG_APP_DSN
    ;;
tcp) ;;
*)
    echo "BENCH_PG_TRANSPORT must be socket or tcp" >&2
    exit 2
    ;;
esac
source "$IMP_SOURCE_DIR/tests/integration/e2e_lib.sh"

N=${BENCH_N:-2000}
LAT_N=${BENCH_LAT_N:-2000}
RATE=${BENCH_RATE:-200}
THREADS=${BENCH_THREADS:-64}
SENDERS=${BENCH_SENDERS:-1}
# info, as in production: the per-draft lines of rag and qc are part of the cost, and the
# runtime's group assignments say where a stuck phase stopped.
export IMP_LOG_LEVEL=info
# BENCH_METRICS=1: each worker also serves /metrics, and where_stuck prints the partitions
# its consumer-lag gauges (refreshed every 10 s) show behind. Off by default: the gauges'
# watermark queries share the dev broker's connections with the fetches being measured.
if [ -n "${BENCH_METRICS:-}" ]; then export E2E_METRICS=1; fi

# The production relay cadence (the tests' 200 ms relay interval is a steady cost here).
E2E_WORKER_ENV+=(IMP_WORKER_RELAY_INTERVAL=5s IMP_WORKER_RELAY_GRACE=10s
    ${BENCH_CONSUMER_PROPS:+IMP_KAFKA_CONSUMER_PROPS=$BENCH_CONSUMER_PROPS}
    ${BENCH_BATCH_WAIT:+IMP_WORKER_BATCH_WAIT=$BENCH_BATCH_WAIT})
e2e_fleet
# One imperium-send, as deploy/dev.sh runs it: it calls the providers of a batch's
# conversations concurrently (IMP_SEND_CONCURRENCY). BENCH_SENDERS > 1 adds processes to its
# consumer group, to share imp.outbound.v1's partitions.
for i in $(seq 2 "$SENDERS"); do E2E_NAME=send$i e2e_worker send; done
# warm-up: the consumer groups, the KB cache, the connections
e2e_post shop "$E2E_GENERIC" --convs 20 --prefix warm --questions "$E2E_Q_PRICE" >/dev/null ||
    fail "warm-up failed"
# where_stuck: how far the messages got (for a phase that did not finish).
where_stuck() {
    psql_owner -c "SELECT 'messages in ' || (SELECT count(*) FROM messages WHERE direction = 'in') ||
        ', turns ' || (SELECT count(*) FROM turns) || ', traces ' || (SELECT count(*) FROM message_traces) ||
        ', outbound ' || coalesce((SELECT string_agg(state || ' ' || n, ' ') FROM (SELECT state, count(*) n
            FROM outbound GROUP BY state) s), 'none') || ', dead letters ' || (SELECT count(*) FROM dead_letters) ||
        ', unpublished outbox rows ' || (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
    # Each worker's last consumer-group event (the runtime logs them at info).
    local f
    for f in "$IMP_TEST_TMP"/logs/{dialog,rag,qc,send*}.log; do
        printf '; %s: %s' "$(basename "$f" .log)" "$(grep -ho '"msg":"partitions [a-z]*"[^}]*"count":[0-9]*' "$f" |
            tail -1 | sed 's/"msg":"partitions \([a-z]*\)".*"count":\([0-9]*\)/\1 \2/')"
    done
    # Partitions a worker's group has not consumed to the end: {worker,topic,partition} lag.
    for f in "$IMP_TEST_TMP"/metrics.*; do
        [ -e "$f" ] || continue
        printf '; %s behind: %s' "${f##*/metrics.}" "$(curl -s --max-time 2 \
            "http://127.0.0.1:$(cat "$f")/metrics" | awk '/^imperium_worker_consumer_lag\{/ &&
                $NF != 0 { sub(/^imperium_worker_consumer_lag/, ""); printf "%s ", $0 }')"
    done
}
wait_for 60 "the warm-up replies" at_least_requests 20 ||
    fail "$(requests generic) of 20 warm-up replies; $(where_stuck)"
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

# pg_apps FILE: {pid: "pg:<application name>"} of the Postgres backends serving a client
# that names itself (the workers: "pg:imperium/dialog").
pg_apps() {
    psql_owner -c "SELECT coalesce(json_object_agg(pid, 'pg:' || application_name), '{}')
        FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> ''" >"$1"
}

# cpu_snapshot FILE: CPU ticks (user + system) and command name of every process right now,
# the Postgres backends by their client's application name ("pg:imperium/dialog").
cpu_snapshot() {
    pg_apps "$1.apps"
    python3 - "$1" <<'PY'
import json, os, sys, time
apps = json.load(open(sys.argv[1] + ".apps"))
use = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        st = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    comm = apps.get(pid, st[st.index("(") + 1:st.rindex(")")])
    f = st[st.rindex(")") + 2:].split()
    # By process (pid and start time): a kernel worker's name changes with its work item.
    use[f"{pid}:{f[19]}"] = [comm, int(f[11]) + int(f[12])]
# The machine's busy ticks (user, nice, system, irq, softirq): processes that exited in the
# phase (the driver) and the kernel's own work count there, not in any process above.
cpu = open("/proc/stat").readline().split()
use[" machine"] = sum(int(cpu[i]) for i in (1, 2, 3, 6, 7))
use[" seconds"] = time.monotonic()
json.dump(use, open(sys.argv[1], "w"))
PY
}
# cpu_report BEFORE AFTER N: CPU µs per message of each process kind over the phase; all of
# them, the fleet's share, and the machine's (which also holds exited processes and the kernel),
# then how busy the machine was (its busy time over the phase's time on all its CPUs).
# N = 0: the same as per cent of one CPU (the fleet idle).
cpu_report() {
    python3 - "$@" "$(getconf CLK_TCK)" "$(nproc)" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
n, hz, ncpu = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
seconds = b.pop(" seconds") - a.pop(" seconds")
if n > 0:
    what, us = "CPU per message (us)", lambda ticks: f"{ticks * 1e6 / hz / n:.0f}"
else:
    what, us = "CPU (% of one CPU)", lambda ticks: f"{ticks * 100 / hz / seconds:.1f}"
machine = b.pop(" machine") - a.pop(" machine")
d = {}
for k, (comm, ticks) in b.items():
    d[comm] = d.get(comm, 0) + ticks - a.get(k, [comm, 0])[1]
d = {k: v for k, v in d.items() if v > 0}
# The fleet: its binaries (comm is cut to 15 characters), Postgres, Redis, the fake provider.
ours = ("imperium-", "pg:", "postgres", "redis-server", "send_fake_provi")
fleet = sum(v for k, v in d.items() if k.startswith(ours))
print(f"  {what}: " + ", ".join(f"{k} {us(v)}"
      for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:16]) +
      f"; all {us(sum(d.values()))} (the fleet {us(fleet)}); the machine {us(machine)}, "
      f"{machine * 100 / hz / seconds / ncpu:.0f}% busy over {seconds:.1f} s")
PY
}

# wake_snapshot FILE: voluntary context switches (a thread blocking: waiting for a socket, a
# lock) per process kind, all threads, and of the Postgres backends by their client's
# application name ("pg:dialog"): a backend wakes about once per round trip. BENCH_WAKE_THREADS=1
# splits the processes by thread name ("imperium-send/rdk:broker1").
wake_snapshot() {
    pg_apps "$1.apps"
    BY_THREAD=${BENCH_WAKE_THREADS:-} python3 - "$1" <<'PY'
import json, os, sys
by_thread = os.environ.get("BY_THREAD") == "1"
apps = json.load(open(sys.argv[1] + ".apps"))
sw = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        comm = open(f"/proc/{pid}/comm").read().strip()
        for t in os.listdir(f"/proc/{pid}/task"):
            k = apps.get(pid, comm)
            if by_thread and pid not in apps:
                k += "/" + open(f"/proc/{pid}/task/{t}/comm").read().strip()
            for l in open(f"/proc/{pid}/task/{t}/status"):
                if l.startswith("voluntary_ctxt_switches:"):
                    sw[k] = sw.get(k, 0) + int(l.split()[1])
    except OSError:
        continue
json.dump(sw, open(sys.argv[1], "w"))
PY
}
# wake_report BEFORE AFTER N: those switches per message over the phase.
wake_report() {
    python3 - "$@" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
n = int(sys.argv[3])
d = {k: b[k] - a[k] for k in b if k in a and b[k] - a[k] >= n / 10}
print("  wake-ups per message: " + ", ".join(f"{k} {v / n:.1f}"
      for k, v in sorted(d.items(), key=lambda kv: -kv[1])) + f"; all {sum(d.values()) / n:.1f}")
PY
}

# wait_replies N: the fake has recorded N requests, within 600 s. Polled four times a second:
# the poll competes with the fleet it measures for the same two cores, and the figures come
# from the fake's timestamps, not from when the poll notices.
wait_replies() { WAIT_FOR_EVERY=0.25 wait_for 600 "$1 replies" at_least_requests "$1"; }

# The driver (progs/e2e_load.c): signed webhooks over libcurl's multi interface.
load() { "$BIN/e2e_load" "$INGRESS_URL" shop "$E2E_GENERIC" --question "$E2E_Q_PRICE" "$@"; }

# The fleet with nothing to do: its consumers' empty fetches, which the dev broker holds for
# the whole fetch.wait.max.ms (docs/devbroker.md), and the workers' timers.
IDLE_S=${BENCH_IDLE_SECONDS:-3}
cpu_snapshot "$IMP_TEST_TMP/idle0"
sleep "$IDLE_S"
cpu_snapshot "$IMP_TEST_TMP/idle1"
C0=$(cpu_report "$IMP_TEST_TMP/idle0" "$IMP_TEST_TMP/idle1" 0)

say "phase 1: $N messages as fast as possible"
cpu_snapshot "$IMP_TEST_TMP/cpu0"
wake_snapshot "$IMP_TEST_TMP/wake0"
base=$(requests generic)
D1=$(load --convs "$N" --conns "$THREADS" --prefix tput --acks "$IMP_TEST_TMP/acks1") ||
    fail "driver: $D1"
wait_replies $((base + N)) || fail "only $(requests generic) replies; $(where_stuck)"
S1=$(stats tput "$IMP_TEST_TMP/acks1")
cpu_snapshot "$IMP_TEST_TMP/cpu1"
wake_snapshot "$IMP_TEST_TMP/wake1"
C1=$(cpu_report "$IMP_TEST_TMP/cpu0" "$IMP_TEST_TMP/cpu1" "$N")
W1=$(wake_report "$IMP_TEST_TMP/wake0" "$IMP_TEST_TMP/wake1" "$N")
say "driver: $D1"

say "phase 2: $LAT_N messages at $RATE/s"
base=$(requests generic)
cpu_snapshot "$IMP_TEST_TMP/cpu2"
D2=$(load --convs "$LAT_N" --conns "$THREADS" --rate "$RATE" --prefix lat \
    --acks "$IMP_TEST_TMP/acks2") || fail "driver: $D2"
wait_replies $((base + LAT_N)) || fail "only $(requests generic) replies; $(where_stuck)"
S2=$(stats lat "$IMP_TEST_TMP/acks2")
cpu_snapshot "$IMP_TEST_TMP/cpu3"
C2=$(cpu_report "$IMP_TEST_TMP/cpu2" "$IMP_TEST_TMP/cpu3" "$LAT_N")
say "driver: $D2"

printf '\n=== e2e benchmark (window 0, extractive, generic fake answering at once, Postgres over %s) ===\n' \
    "${BENCH_PG_TRANSPORT:-socket}"
printf 'idle        %s s, no messages:\n%s\n' "$IDLE_S" "$C0"
printf 'throughput  %s messages: %s\n' "$N" "$S1"
printf '%s\n%s\n' "$C1" "$W1"
printf 'latency     %s messages at %s/s offered: %s\n' "$LAT_N" "$RATE" "$S2"
printf '%s\n' "$C2"
# Where the latency phase's time went, from message_traces: ingress_ms is ingress → dialog →
# rag's start (two hops), rag_ms and qc_ms their own work, send_ms qc's outbound event → the
# provider's 2xx (one hop, the claim, the HTTP call).
printf '  stages of the latency phase (ms, p50/p99): %s\n' "$(psql_owner -c "
    SELECT string_agg(s, ', ') FROM (SELECT format('%s %s/%s', k,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY v), percentile_disc(0.99) WITHIN GROUP (ORDER BY v)) s
      FROM message_traces t JOIN conversations c ON c.id = t.conversation_id
      CROSS JOIN LATERAL (VALUES (1, 'ingress', t.ingress_ms), (2, 'rag', t.rag_ms),
          (3, 'qc', t.qc_ms), (4, 'send', t.send_ms)) x(o, k, v)
      WHERE c.conversation_key LIKE 'generic:lat-%' GROUP BY o, k ORDER BY o) y")"
printf 'targets: >= 1000 replies/s; p99 <= 100 ms at 200/s\n'

# With IMP_TEST_PG_OPTS='-c shared_preload_libraries=pg_stat_statements' the statements that
# cost Postgres the most over both phases.
if [ "$(psql_owner -c "SHOW shared_preload_libraries")" = pg_stat_statements ]; then
    printf '\nPostgres statements by total time (ms, calls, ms/call):\n'
    psql_owner -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    psql_owner -c "SELECT round(total_exec_time)::int || E'\t' || calls || E'\t' ||
        round((total_exec_time / calls)::numeric, 3) || E'\t' || left(regexp_replace(query, '\s+', ' ', 'g'), 150)
        FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25"
    # Round trips are what cost (docs/round-trip.md § Speed): statements by calls per message.
    printf '\nPostgres statements by calls per message (both phases and the warm-up):\n'
    # plans: how often Postgres planned the statement (with pg_stat_statements.track_planning=on;
    # 0 otherwise): a prepared statement planned at every call is on custom plans.
    psql_owner -c "SELECT round(calls::numeric / $((N + LAT_N + 20)), 2) || E'\t' ||
        'plans ' || plans || E'\t' || left(regexp_replace(query, '\s+', ' ', 'g'), 150)
        FROM pg_stat_statements WHERE calls >= $(((N + LAT_N) / 10)) ORDER BY calls DESC LIMIT 60"
fi
