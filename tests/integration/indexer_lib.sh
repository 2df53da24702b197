# shellcheck shell=bash
# Shared by the knowledge-base tests (it_indexer_*.sh): imperium-control and imperium-indexer
# as processes against the harness, the client as the application role, SQL helpers. Source
# it after the harness has exported the environment.
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

BIN="$IMP_BUILD_DIR/bin"
CONTROL="$BIN/imperium-control"
INDEXER="$BIN/imperium-indexer"
for b in "$CONTROL" "$INDEXER"; do [ -x "$b" ] || die "$b is not built"; done
T=$IMP_TEST_TMP
export IMP_SECRET_KEY
IMP_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

start_control() {
    start_bg control env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
        IMP_WORKER_RELAY_INTERVAL=500ms IMP_WORKER_RELAY_GRACE=1s "$CONTROL" serve
    CONTROL_PID=$BG_PID
}

# start_indexer NAME [VAR=VALUE…]: an indexer in the background ($INDEXER_PID).
start_indexer() {
    local name=$1
    shift
    start_bg "$name" env IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_LOG_LEVEL=info \
        IMP_WORKER_RETRY_BASE=200ms IMP_WORKER_RETRY_MAX=2s IMP_WORKER_RELAY_INTERVAL=500ms \
        IMP_WORKER_RELAY_GRACE=1s "$@" "$INDEXER"
    INDEXER_PID=$BG_PID
}

# ctl ARGS…: the client as the application role. stdout in $OUT, stderr in $ERR, exit
# status in $RC; never fails the script by itself.
ctl() {
    RC=0
    OUT=$(IMP_PG_DSN="$IMP_PG_APP_DSN" IMP_CONTROL_ACTOR=it-operator IMP_LOG_LEVEL=warn \
        "$CONTROL" "$@" 2>"$T/ctl.err") || RC=$?
    ERR=$(cat "$T/ctl.err")
    printf '$ %s\n%s\n%s\n' "$*" "$OUT" "$ERR" >>"$T/logs/cli.log"
}

# expect NAME RC NEEDLE: the last ctl exited RC and its output contains NEEDLE.
expect() {
    assert_eq "$1: exit status" "$2" "$RC"
    assert_contains "$1: output" "$OUT $ERR" "$3"
}

sql() { psql_owner -c "$1"; }

tenant_id() { sql "SELECT id FROM tenants WHERE slug = '$1'"; }

# "1:archived 2:stable 3:draft": the versions of a tenant and their states.
states() {
    sql "SELECT coalesce(string_agg(v.number || ':' || v.state, ' ' ORDER BY v.number), '')
         FROM kb_versions v JOIN tenants t ON t.id = v.tenant_id WHERE t.slug = '$1'"
}

version_id() { # version_id SLUG NUMBER
    sql "SELECT v.id FROM kb_versions v JOIN tenants t ON t.id = v.tenant_id
         WHERE t.slug = '$1' AND v.number = $2"
}

# The printed version of the last `kb build`.
printed_version() { printf '%s\n' "$OUT" | sed -n 's/^version //p'; }

# A digest of a version's chunks: ordinals, sources, offsets, headings, texts, embeddings.
chunks_digest() { # chunks_digest VERSION_ID
    sql "SELECT count(*) || ':' || md5(string_agg(ordinal || '|' || source_id || '|' ||
                start_offset || '-' || end_offset || '|' || heading || '|' || text || '|' ||
                encode(embedding, 'hex'), E'\n' ORDER BY ordinal))
         FROM kb_chunks WHERE version_id = '$1'"
}

# imp.control.v1 events about the knowledge base of a tenant: "version…" in order.
kb_changes() { # kb_changes TENANT_ID
    kcat -C -b "$IMP_KAFKA_BROKERS" -t imp.control.v1 -o beginning -e -q 2>/dev/null |
        python3 -c 'import json, sys
out = []
for line in sys.stdin:
    if not line.strip():
        continue
    ev = json.loads(line)
    d = ev["data"]
    if d.get("what") == "kb" and d["tenant_id"] == sys.argv[1]:
        assert ev["type"] == "imp.control.changed.v1" and ev["source"] == "imperium/indexer", ev
        assert ev["tenantid"] == d["tenant_id"], ev
        out.append(str(d["version"]))
print(" ".join(out))' "$1"
}

# produce TOPIC KEY JSON: one raw event (for commands the client would refuse to send).
produce() {
    printf '%s\n' "$3" | kcat -P -b "$IMP_KAFKA_BROKERS" -t "$1" -k "$2" >/dev/null 2>&1 ||
        fail "kcat could not produce to $1"
}

uuid4() { python3 -c 'import uuid; print(uuid.uuid4())'; }

# derived_id PARENT STEP: imp_opid_derive (UUIDv5 of "<parent>|<step>" under the project's
# namespace).
derived_id() {
    python3 -c 'import sys, uuid
ns = uuid.UUID("07da5cec-ed2a-4cf7-a0ae-43edb714bc16")
print(uuid.uuid5(ns, sys.argv[1] + "|" + sys.argv[2]))' "$1" "$2"
}

# operation_status OPID: the status of a command's outcome ('' while there is none).
operation_status() { sql "SELECT coalesce(max(status), '') FROM operations WHERE operation_id = '$1'"; }
status_is() { [ "$(operation_status "$1")" = "$2" ]; }
# wait_status OPID STATUS: the outcome reaches STATUS within 30 s, or the test fails.
wait_status() {
    wait_for 30 "operation $1 $2" status_is "$1" "$2" ||
        fail "operation $1: expected $2, got '$(operation_status "$1")'"
}
sql_is() { [ "$(sql "$2")" = "$1" ]; }
# wait_sql VALUE SQL: the query's value becomes VALUE within 30 s, or the test fails.
wait_sql() {
    wait_for 30 "$2 = $1" sql_is "$1" "$2" || fail "expected $1 from: $2, got $(sql "$2")"
}
kb_changes_at_least() { [ "$(kb_changes "$1" | wc -w)" -ge "$2" ]; }

# The knowledge base the tests build from: a small salon FAQ in three formats.
write_sources() { # write_sources DIR
    mkdir -p "$1"
    cat >"$1/salon.md" <<'EOF'
# Opening hours

We are open every day from 9:00 to 21:00, without a lunch break.

## Holidays

On public holidays we work from 10:00 to 18:00. Closed on 1 January.

# Prices

## Haircuts

- Women's haircut: short hair 8,000 tenge, long hair 12,000 tenge
- Men's haircut 5,000 tenge, clipper cut 3,500 tenge

## Coloring

Single-color dye from 15,000 tenge. Balayage from 30,000 tenge.

# Address

Almaty, Abay avenue 52, second floor. The entrance is from the courtyard.
EOF
    cat >"$1/faq.csv" <<'EOF'
question,answer
Can I pay by card?,"Yes, we take cards, Kaspi QR and cash."
Is there parking?,"Yes, free parking in the courtyard for clients."
Сколько длится стрижка?,"Около часа, окрашивание — от двух до четырёх часов."
EOF
    cat >"$1/faq.json" <<'EOF'
[
  {"q": "Do you have wifi?", "a": "Yes, free Wi-Fi: network Aurora_Guest."},
  {"q": "Can I bring my kids?", "a": "Yes, we have a kids' corner with toys."}
]
EOF
}
