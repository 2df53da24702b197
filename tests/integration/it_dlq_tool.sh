# imperium-dlq against the harness's Postgres and devbroker: dead letters seeded with psql
# (several workers, tenants and classes; one envelope that is not even UTF-8, one that is
# text but not JSON; inbox rows in state 'dead'), then list filters, show, replay (messages
# read back from Kafka), replay twice, unknown ids, Kafka unreachable, purge, and Postgres
# unreachable. Every check is an exact count or an exact set of ids.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

DLQ="$IMP_BUILD_DIR/bin/imperium-dlq"
[ -x "$DLQ" ] || die "$DLQ is not built"
export IMP_DLQ_ACTOR=it-operator IMP_LOG_LEVEL=error

T1=11111111-1111-4111-8111-111111111111
T2=22222222-2222-4222-8222-222222222222
OA=a0000000-0000-4000-8000-00000000000a
OB=b0000000-0000-4000-8000-00000000000b
OC=c0000000-0000-4000-8000-00000000000c
OE=e0000000-0000-4000-8000-00000000000e
OG=f0000000-0000-4000-8000-00000000000f

# dlq ARGS…: the tool as the application role. Output in $OUT (stdout and stderr), exit
# status in $RC; never fails the script by itself.
dlq() {
    RC=0
    OUT=$(IMP_PG_DSN="$IMP_PG_APP_DSN" "$DLQ" "$@" 2>&1) || RC=$?
}

# ids_of: the ids of a --json list on stdin, space separated, in order.
ids_of() { python3 -c 'import json,sys; print(" ".join(str(r["id"]) for r in json.load(sys.stdin)))'; }

list_ids() { # list_ids ARGS…: ids that `list --json ARGS…` returns
    local json
    json=$(IMP_PG_DSN="$IMP_PG_APP_DSN" "$DLQ" list --json "$@") || fail "list $*: exit $?"
    printf '%s' "$json" | ids_of
}

sql() { psql_owner -c "$1"; }

# envelope OPID TENANT ATTEMPT [dlq]: hex of a valid envelope; a retried one carries
# notbefore, "dlq" adds a dlq member.
envelope() {
    python3 - "$@" <<'PY'
import json, sys
opid, tenant, attempt = sys.argv[1], sys.argv[2], int(sys.argv[3])
ev = {"specversion": "1.0", "id": opid, "source": "imperium/ingress", "type": "imp.inbound.v1",
      "time": "2026-05-01T03:00:00.000Z", "subject": "conv", "datacontenttype": "application/json",
      "tenantid": tenant, "attempt": attempt}
if attempt > 0:
    ev["notbefore"] = "2026-05-01T03:05:00.000Z"
if len(sys.argv) > 4:
    ev["dlq"] = {"worker": "dialog", "class": "poison", "reason": "bad", "topic": "imp.test.v1",
                 "partition": 5, "offset": 200, "at": "2026-05-01T03:06:00.000Z"}
ev["data"] = {"text": "hello \u00e9", "n": 1}
print(json.dumps(ev).encode().hex())
PY
}

hex_of() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }

# seed WORKER CLASS TOPIC PARTITION OFFSET KEY|- OPID|- TENANT|- ATTEMPT ENVHEX AGE: prints
# the new dead letter's id. Headers as the runtime writes them.
seed() {
    local key=NULL opid=NULL tenant=NULL
    [ "$6" != - ] && key="convert_to('$6', 'UTF8')"
    [ "$7" != - ] && opid="'$7'"
    [ "$8" != - ] && tenant="'$8'"
    sql "INSERT INTO dead_letters (worker, class, reason, topic, kafka_partition, kafka_offset,
             kafka_key, operation_id, tenant_id, attempt, envelope, headers, created_at)
         VALUES ('$1', '$2', 'reason of $1 at $3/$4/$5: ' || repeat('long text ', 20), '$3', $4, $5,
             $key, $opid, $tenant, $9, decode('${10}', 'hex'),
             jsonb_build_object('imp-origin-topic', '$3', 'imp-origin-partition', '$4',
                 'imp-origin-offset', '$5', 'imp-dlq-class', '$2', 'imp-dlq-reason', 'x'),
             now() - interval '${11}')
         RETURNING id"
}

dead_inbox() { # dead_inbox WORKER OPID TENANT ATTEMPT
    sql "INSERT INTO inbox (worker, operation_id, tenant_id, state, attempt)
         VALUES ('$1', '$2', '$3', 'dead', $4)"
}

# kafka_messages TOPIC: every message of TOPIC as kcat JSON lines.
kafka_messages() {
    kcat -C -b "$IMP_KAFKA_BROKERS" -t "$1" -o beginning -e -J -q -m 30 2>/dev/null || true
}

count_lines() { grep -c . || true; }

# ---- seed ---------------------------------------------------------------------------------

sql "INSERT INTO tenants (id, slug, name) VALUES ('$T1', 'acme', 'Acme'), ('$T2', 'globex', 'Globex')"
A=$(seed dialog retriable imp.test.v1 3 100 "$T1:conv-a" $OA $T1 4 "$(envelope $OA $T1 4)" '1 hour')
B=$(seed dialog poison imp.test.v1 5 200 "$T2:conv-b" $OB $T2 0 "$(envelope $OB $T2 0 dlq)" '2 hours')
C=$(seed send retriable imp.test.v1 7 300 "$T1:conv-c" $OC $T1 2 "$(envelope $OC $T1 2)" '3 days')
D=$(seed rag poison imp.turn.v1 1 400 - - - 0 "fffe6e6f74206a736f6e00" '10 minutes')
E=$(seed dialog fatal imp.test.v1 1 50 "$T1:conv-e" $OE $T1 0 "$(envelope $OE $T1 0)" '2 days')
F=$(seed send poison imp.usage.v1 2 600 k - - 0 "$(hex_of 'this is not json')" '5 minutes')
sql "UPDATE dead_letters SET replayed_at = now() - interval '1 day', replayed_by = 'someone',
         replay_count = 1 WHERE id = $E"
dead_inbox dialog $OA $T1 4
dead_inbox dialog $OB $T2 0
dead_inbox send $OC $T1 2
say "seeded dead letters A=$A B=$B C=$C D=$D E=$E F=$F"

# ---- list ---------------------------------------------------------------------------------

assert_eq "list hides replayed, newest first" "$F $D $A $B $C" "$(list_ids)"
assert_eq "list --all" "$F $D $A $B $E $C" "$(list_ids --all)"
assert_eq "list --worker dialog" "$A $B" "$(list_ids --worker dialog)"
assert_eq "list --worker dialog --all" "$A $B $E" "$(list_ids --worker dialog --all)"
assert_eq "list --tenant uuid" "$A $C" "$(list_ids --tenant $T1)"
assert_eq "list --tenant slug" "$A $C" "$(list_ids --tenant acme)"
assert_eq "list --tenant slug --all" "$A $E $C" "$(list_ids --tenant acme --all)"
assert_eq "list --class poison" "$F $D $B" "$(list_ids --class poison)"
assert_eq "list --worker send --class retriable" "$C" "$(list_ids --worker send --class retriable)"
assert_eq "list --since 1d" "$F $D $A $B" "$(list_ids --since 1d)"
assert_eq "list --since 30m" "$F $D" "$(list_ids --since 30m)"
assert_eq "list --since RFC 3339" "$F $D $A" \
    "$(list_ids --since "$(date -u -d '-90 minutes' +%Y-%m-%dT%H:%M:%SZ)")"
assert_eq "list --before 1d --all" "$E $C" "$(list_ids --before 1d --all)"
assert_eq "list --replayed-only" "$E" "$(list_ids --replayed-only)"
assert_eq "list --limit 2" "$F $D" "$(list_ids --limit 2)"
dlq list --limit 2
assert_contains "list --limit says what is hidden" "$OUT" "showing the newest 2 of 5"
assert_eq "list --worker nobody" "" "$(list_ids --worker nobody)"

dlq list
assert_eq "list table exit" 0 "$RC"
assert_eq "list table: header + 5 rows" 6 "$(printf '%s\n' "$OUT" | count_lines)"
assert_contains "list table header" "$OUT" "ID  "
assert_contains "list table origin" "$OUT" "imp.test.v1/3/100"
assert_contains "list table truncates the reason" "$OUT" "…"

# Every field, with the encodings of bytes that are not text.
IMP_PG_DSN="$IMP_PG_APP_DSN" "$DLQ" list --json --all >"$IMP_TEST_TMP/all.json"
python3 - "$IMP_TEST_TMP/all.json" "$A" "$D" "$F" "$OA" "$T1" <<'PY' || fail "list --json fields"
import base64, json, sys
rows = {r["id"]: r for r in json.load(open(sys.argv[1]))}
a, d, f = (rows[int(x)] for x in sys.argv[2:5])
want = {"id", "created_at", "worker", "class", "reason", "topic", "partition", "offset", "key",
        "key_encoding", "operation_id", "tenant_id", "attempt", "envelope", "envelope_encoding",
        "headers", "replayed_at", "replayed_by", "replay_count", "dead_again", "inbox"}
assert set(a) == want, set(a) ^ want
assert a["envelope_encoding"] == "json" and json.loads(a["envelope"])["attempt"] == 4, a
assert a["operation_id"] == sys.argv[5] and a["tenant_id"] == sys.argv[6], a
assert a["key"].endswith(":conv-a") and a["key_encoding"] == "text", a
assert (a["topic"], a["partition"], a["offset"]) == ("imp.test.v1", 3, 100), a
assert a["inbox"]["state"] == "dead" and a["inbox"]["attempt"] == 4, a
assert a["headers"]["imp-origin-offset"] == "100", a
assert d["envelope_encoding"] == "base64", d
assert base64.b64decode(d["envelope"]) == bytes.fromhex("fffe6e6f74206a736f6e00"), d
assert d["key"] is None and d["operation_id"] is None and d["inbox"] is None, d
assert f["envelope_encoding"] == "base64", f
assert base64.b64decode(f["envelope"]) == b"this is not json", f
assert len(a["reason"]) > 200, "the JSON reason is not truncated"
PY
pass "list --json fields and encodings"

# ---- show ---------------------------------------------------------------------------------

dlq show "$A"
assert_eq "show exit" 0 "$RC"
assert_contains "show names it" "$OUT" "dead letter $A"
assert_contains "show origin" "$OUT" "imp.test.v1 partition 3 offset 100"
assert_contains "show inbox" "$OUT" "dead, attempt 4"
assert_contains "show pretty-prints the envelope" "$OUT" '  "attempt": 4,'
dlq show "$D"
assert_contains "show unparsable envelope escaped" "$OUT" '\xff\xfenot json\x00'
dlq show --json "$B"
assert_eq "show --json id" "$B" "$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
dlq show 999999
assert_eq "show unknown id exit" 1 "$RC"
assert_contains "show unknown id" "$OUT" "dead letter 999999 not found"

# ---- replay -------------------------------------------------------------------------------

dlq replay "$A" "$B" "$C"
printf '%s\n' "$OUT" >&2
assert_eq "replay exit" 0 "$RC"
assert_eq "replay: one replayed line per id" 3 "$(printf '%s\n' "$OUT" | grep -c ': replayed to imp.test.v1')"
assert_contains "replay summary" "$OUT" "replayed 3, already replayed 0, not found 0"
assert_contains "replay published" "$OUT" "published 3 replayed events to Kafka"

kafka_messages imp.test.v1 >"$IMP_TEST_TMP/test.v1.json"
python3 - "$IMP_TEST_TMP/test.v1.json" "$OA" "$OB" "$OC" "$T1" "$T2" <<'PY' || fail "replayed messages"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(msgs) == 3, "expected 3 messages, got %d" % len(msgs)
oa, ob, oc, t1, t2 = sys.argv[2:7]
want = {oa: (t1 + ":conv-a", "3", "100"), ob: (t2 + ":conv-b", "5", "200"),
        oc: (t1 + ":conv-c", "7", "300")}
seen = set()
for m in msgs:
    ev = json.loads(m["payload"])
    key, part, off = want[ev["id"]]
    seen.add(ev["id"])
    assert ev["attempt"] == 0, ev
    assert "dlq" not in ev and "notbefore" not in ev, ev
    assert ev["data"] == {"text": "hello \u00e9", "n": 1}, ev
    assert m["key"] == key, m
    h = m.get("headers") or []
    hd = dict(zip(h[0::2], h[1::2]))
    assert hd == {"imp-origin-topic": "imp.test.v1", "imp-origin-partition": part,
                  "imp-origin-offset": off}, hd
assert seen == set(want), seen
PY
pass "exactly 3 messages on imp.test.v1: original ids and keys, attempt 0, no dlq, origin headers"

assert_eq "inbox rows of the replayed events deleted" 0 \
    "$(sql "SELECT count(*) FROM inbox WHERE operation_id IN ('$OA', '$OB', '$OC')")"
assert_eq "dead letters marked replayed" 3 \
    "$(sql "SELECT count(*) FROM dead_letters WHERE id IN ($A, $B, $C) AND replayed_at IS NOT NULL
             AND replayed_by = 'it-operator' AND replay_count = 1")"
assert_eq "audit rows" 3 \
    "$(sql "SELECT count(*) FROM audit_log WHERE action = 'dlq.replay' AND actor = 'it-operator'")"
assert_eq "audit rows name the dead letters, tenants and operations" 3 \
    "$(sql "SELECT count(*) FROM audit_log a JOIN dead_letters d ON a.target = 'dead_letter:' || d.id
             WHERE a.action = 'dlq.replay' AND a.tenant_id = d.tenant_id
               AND a.operation_id = d.operation_id
               AND a.before->>'inbox_state' = 'dead' AND (a.after->>'replay_count')::int = 1
               AND a.after->'inbox_state' = 'null'::jsonb")"
assert_eq "outbox rows published" 0 "$(sql "SELECT count(*) FROM outbox WHERE published_at IS NULL")"

dlq replay "$A" "$B" "$C"
assert_eq "second replay exit" 0 "$RC"
assert_eq "second replay: already replayed" 3 "$(printf '%s\n' "$OUT" | grep -c ': already replayed at ')"
assert_contains "second replay summary" "$OUT" "replayed 0, already replayed 3, not found 0"
assert_eq "second replay: no new messages" 3 "$(kafka_messages imp.test.v1 | count_lines)"
assert_eq "second replay: no new audit rows" 3 \
    "$(sql "SELECT count(*) FROM audit_log WHERE action = 'dlq.replay'")"
assert_eq "second replay: replay_count unchanged" 3 \
    "$(sql "SELECT sum(replay_count) FROM dead_letters WHERE id IN ($A, $B, $C)")"

dlq replay 999999 "$A"
assert_eq "unknown id exit" 1 "$RC"
assert_contains "unknown id outcome" "$OUT" "dead letter 999999: not found"
assert_contains "unknown id summary" "$OUT" "replayed 0, already replayed 1, not found 1"

# The worker dead-letters a replayed event again: the runtime keeps the first dead_letters row
# (same origin), and only the inbox tells. That row counts as unreplayed again, once.
dead_inbox dialog $OA $T1 0
assert_eq "dead again: listed again" "$F $D $A" "$(list_ids)"
assert_eq "dead again: flagged" "True" "$(IMP_PG_DSN="$IMP_PG_APP_DSN" "$DLQ" show --json "$A" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["dead_again"])')"
dlq replay "$A" "$B"
assert_eq "dead again: replay exit" 0 "$RC"
assert_contains "dead again: replayed" "$OUT" "dead letter $A: replayed to imp.test.v1"
assert_contains "dead again: says so" "$OUT" "it had died again since its last replay"
assert_contains "dead again: the other one untouched" "$OUT" "replayed 1, already replayed 1, not found 0"
assert_eq "dead again: one more message" 4 "$(kafka_messages imp.test.v1 | count_lines)"
assert_eq "dead again: replay_count 2" 2 "$(sql "SELECT replay_count FROM dead_letters WHERE id = $A")"
assert_eq "dead again: inbox row removed" 0 "$(sql "SELECT count(*) FROM inbox WHERE operation_id = '$OA'")"
assert_eq "dead again: audited" 4 "$(sql "SELECT count(*) FROM audit_log WHERE action = 'dlq.replay'")"
dlq replay "$A"
assert_contains "dead again: then already replayed" "$OUT" "replayed 0, already replayed 1, not found 0"
assert_eq "dead again: no further message" 4 "$(kafka_messages imp.test.v1 | count_lines)"

# An envelope that is not UTF-8 cannot travel through the (text) outbox: reported, unchanged.
dlq replay "$D"
assert_eq "non-UTF-8 envelope exit" 1 "$RC"
assert_contains "non-UTF-8 envelope outcome" "$OUT" "cannot replay"
assert_eq "non-UTF-8 envelope left unreplayed" 0 \
    "$(sql "SELECT count(*) FROM dead_letters WHERE id = $D AND replayed_at IS NOT NULL")"

# By filter: --dry-run changes nothing; then the text-but-not-JSON envelope goes out raw.
dlq replay --worker send --dry-run
assert_eq "dry run exit" 0 "$RC"
assert_contains "dry run lists" "$OUT" "dead letter $F: would replay to imp.usage.v1"
assert_contains "dry run summary" "$OUT" "would replay 1, already replayed 0, not found 0"
assert_eq "dry run changed nothing" 0 "$(kafka_messages imp.usage.v1 | count_lines)"
dlq replay --worker send
assert_eq "replay by filter exit" 0 "$RC"
assert_contains "replay by filter: raw" "$OUT" "its bytes are sent as they are"
assert_eq "raw envelope on its topic, byte for byte" "this is not json" \
    "$(kafka_messages imp.usage.v1 | python3 -c 'import json,sys; print("|".join(json.loads(l)["payload"] for l in sys.stdin))')"

# ---- Kafka unreachable --------------------------------------------------------------------

G=$(seed qc retriable imp.draft.v1 4 700 "$T2:conv-g" $OG $T2 3 "$(envelope $OG $T2 3)" '1 minute')
dead_inbox qc $OG $T2 3
closed=$(free_port)
start=$(now_ms)
RC=0
OUT=$(IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_KAFKA_BROKERS="127.0.0.1:$closed" \
    IMP_DLQ_PUBLISH_TIMEOUT=2s "$DLQ" replay "$G" 2>&1) || RC=$?
elapsed=$(($(now_ms) - start))
printf '%s\n' "$OUT" >&2
assert_eq "kafka unreachable exit" 3 "$RC"
assert_contains "kafka unreachable says where the event is" "$OUT" \
    "1 replayed event waits in the outbox: a running worker's outbox relay publishes it"
[ "$elapsed" -lt 15000 ] || fail "kafka unreachable: took ${elapsed} ms"
pass "kafka unreachable: bounded (${elapsed} ms)"
assert_eq "kafka unreachable: replayed in Postgres" 1 \
    "$(sql "SELECT count(*) FROM dead_letters WHERE id = $G AND replayed_at IS NOT NULL")"
assert_eq "kafka unreachable: waiting in the outbox" 1 \
    "$(sql "SELECT count(*) FROM outbox WHERE published_at IS NULL AND operation_id = '$OG'")"
dlq replay "$G"
assert_eq "after kafka is back exit" 0 "$RC"
assert_contains "after kafka is back: already replayed" "$OUT" "already replayed 1"
assert_contains "after kafka is back: published" "$OUT" "published the replayed events left in the outbox"
assert_eq "after kafka is back: one message" 1 "$(kafka_messages imp.draft.v1 | count_lines)"
assert_eq "after kafka is back: outbox empty" 0 \
    "$(sql "SELECT count(*) FROM outbox WHERE published_at IS NULL")"

# ---- purge --------------------------------------------------------------------------------

total() { sql "SELECT count(*) FROM dead_letters"; }
assert_eq "before purge" 7 "$(total)"
dlq purge --before 1d
assert_eq "purge without --yes exit" 1 "$RC"
assert_contains "purge without --yes counts" "$OUT" "would delete 2 dead letters"
assert_eq "purge without --yes deletes nothing" 7 "$(total)"
dlq purge --before 1d --yes
assert_eq "purge --yes exit" 0 "$RC"
assert_contains "purge --yes" "$OUT" "deleted 2 dead letters"
assert_eq "purge --before 1d deleted exactly C and E" "0 5" \
    "$(sql "SELECT count(*) FILTER (WHERE id IN ($C, $E)) || ' ' || count(*) FROM dead_letters")"
dlq purge --worker dialog --replayed-only --yes
assert_contains "purge --replayed-only" "$OUT" "deleted 2 dead letters"
assert_eq "purge --worker dialog --replayed-only deleted exactly A and B" "$D $F $G" \
    "$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM dead_letters")"
assert_eq "purge audit rows" 2 \
    "$(sql "SELECT count(*) FROM audit_log WHERE action = 'dlq.purge' AND tenant_id IS NULL
             AND actor = 'it-operator' AND (after->>'count')::int = 2")"
assert_eq "purge audit names the filters" 1 \
    "$(sql "SELECT count(*) FROM audit_log WHERE action = 'dlq.purge'
             AND after->'filters'->>'worker' = 'dialog'
             AND (after->'filters'->>'replayed_only')::boolean")"

# ---- errors -------------------------------------------------------------------------------

closed=$(free_port)
RC=0
OUT=$(IMP_PG_DSN="postgresql://imperium_app:pw-must-not-show@127.0.0.1:$closed/imperium" \
    "$DLQ" list 2>&1) || RC=$?
assert_eq "postgres unreachable exit" 2 "$RC"
assert_contains "postgres unreachable message" "$OUT" "imperium-dlq: could not connect to postgres: "
case "$OUT" in *pw-must-not-show*) fail "the password was printed: $OUT" ;; esac
pass "postgres unreachable: no password in the output"

RC=0
OUT=$(IMP_PG_DSN="host=127.0.0.1 password=pw must-not-show" "$DLQ" list 2>&1) || RC=$?
assert_eq "malformed DSN exit" 2 "$RC"
assert_contains "malformed DSN message" "$OUT" "IMP_PG_DSN is not a valid connection string"
case "$OUT" in *must-not-show*) fail "part of the DSN was printed: $OUT" ;; esac
pass "malformed DSN: nothing of it in the output"

dlq list --class nope
assert_eq "bad class exit" 2 "$RC"
assert_contains "bad class names the problem" "$OUT" '--class: "nope" is not one of'
assert_contains "bad class usage line" "$OUT" "usage: imperium-dlq list"
dlq replay abc
assert_eq "bad id exit" 2 "$RC"
assert_contains "bad id" "$OUT" '"abc" is not a dead letter id'
dlq list --tenant nosuchslug
assert_eq "unknown tenant slug exit" 2 "$RC"
assert_contains "unknown tenant slug" "$OUT" 'no tenant has the slug "nosuchslug"'

say "imperium-dlq: all checks passed"
