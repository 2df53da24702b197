# deploy/demo.sh's knowledge base against the harness, with imperium-control and
# imperium-indexer running as deploy/dev.sh runs them: the demo tenant ends with a stable
# version built from the salon FAQ in deploy/demo/, its test questions set and passing the
# promotion gate (kb_min_hit_rate 0.9); a second run builds nothing and audits nothing; with
# IMP_DEMO_KB unset the knowledge base is seeded only when dev.sh's indexer runs.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

DEMO="$IMP_SOURCE_DIR/deploy/demo"
DEV="$T/dev"
mkdir -p "$DEV"
start_control
start_indexer indexer

cat >"$DEV/env" <<EOF
# as deploy/dev.sh writes it
IMP_PG_DSN=$IMP_PG_APP_DSN
IMP_PG_APP_DSN=$IMP_PG_APP_DSN
IMP_KAFKA_BROKERS=$IMP_KAFKA_BROKERS
IMP_SECRET_KEY=$IMP_SECRET_KEY
IMP_INGRESS_URL=http://127.0.0.1:9
IMP_LOG_LEVEL=info
EOF

demo() { # demo [VAR=VALUE…]: deploy/demo.sh; stderr in $DEMO_ERR
    env -u IMP_SECRET_KEY IMP_DEMO_DIR="$DEV" "$@" bash "$IMP_SOURCE_DIR/deploy/demo.sh" \
        "$IMP_BUILD_DIR" >"$T/demo.out" 2>"$T/demo.err" || fail "demo.sh failed: $(tail -n 20 "$T/demo.err")"
    DEMO_ERR=$(cat "$T/demo.err")
    cat "$T/demo.err" >>"$T/logs/demo.log"
}

demo IMP_DEMO_KB=1
pass "demo.sh seeds the knowledge base"
A=$(tenant_id demo)
NQ=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$DEMO/kb_questions.json")
assert_contains "demo.sh says so" "$DEMO_ERR" "knowledge base of demo: version 1 is stable"
assert_eq "one stable version" "1:stable" "$(states demo)"
assert_eq "built from the four FAQ files as they are in deploy/demo" \
    "faq_en.md:$(sha256sum <"$DEMO/faq_en.md" | cut -c1-64) faq_kk.csv:$(sha256sum <"$DEMO/faq_kk.csv" | cut -c1-64) faq_qa.json:$(sha256sum <"$DEMO/faq_qa.json" | cut -c1-64) faq_ru.md:$(sha256sum <"$DEMO/faq_ru.md" | cut -c1-64)" \
    "$(sql "SELECT string_agg((s->>'name') || ':' || (s->>'sha256'), ' ' ORDER BY s->>'name') FROM kb_versions, jsonb_array_elements(built_from) s WHERE tenant_id = '$A' AND number = 1")"
assert_eq "the test questions" "$NQ" "$(sql "SELECT count(*) FROM kb_eval_questions WHERE tenant_id = '$A'")"
assert_eq "the promotion gate" '{"kb_min_hit_rate": 0.9}' "$(sql "SELECT settings::text FROM tenants WHERE id = '$A'")"
assert_eq "the stable version passed it: hit@3 of at least 0.9 of $NQ questions" "true|$NQ" \
    "$(sql "SELECT ((eval->>'hitk')::int >= 0.9 * (eval->>'questions')::int) || '|' || (eval->>'questions') FROM kb_versions WHERE tenant_id = '$A' AND state = 'stable'")"
assert_eq "promoted once" "promote:1" \
    "$(sql "SELECT string_agg(r.action || ':' || v.number, ' ') FROM kb_releases r JOIN kb_versions v ON v.id = r.version_id WHERE r.tenant_id = '$A'")"
assert_eq "every command succeeded" "succeeded" \
    "$(sql "SELECT string_agg(DISTINCT status, ',') FROM operations WHERE tenant_id = '$A'")"
AUDIT=$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A'")
OPS=$(sql "SELECT count(*) FROM operations WHERE tenant_id = '$A'")
EVAL=$(sql "SELECT eval::text FROM kb_versions WHERE tenant_id = '$A' AND number = 1")

demo IMP_DEMO_KB=1
pass "demo.sh runs again"
assert_contains "the second run finds the version" "$DEMO_ERR" "sources unchanged since version 1 (stable): no new version"
assert_eq "second run: no new version" "1:stable" "$(states demo)"
assert_eq "second run: nothing audited" "$AUDIT" "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A'")"
assert_eq "second run: the same evaluation" "$EVAL" "$(sql "SELECT eval::text FROM kb_versions WHERE tenant_id = '$A' AND number = 1")"
assert_eq "second run: still promoted once" 1 "$(sql "SELECT count(*) FROM kb_releases WHERE tenant_id = '$A'")"
assert_eq "second run: every command succeeded" "succeeded" \
    "$(sql "SELECT string_agg(DISTINCT status, ',') FROM operations WHERE tenant_id = '$A'")"

OPS=$(sql "SELECT count(*) FROM operations WHERE tenant_id = '$A'")
demo
assert_contains "IMP_DEMO_KB unset and no dev.sh indexer: the knowledge base is left alone" "$DEMO_ERR" \
    "imperium-indexer is not running: the demo knowledge base is not seeded"
assert_eq "only the tenant and channel commands were sent" $((OPS + 6)) \
    "$(sql "SELECT count(*) FROM operations WHERE tenant_id = '$A'")"
mkdir -p "$DEV/run"
echo "$INDEXER_PID" >"$DEV/run/imperium-indexer.pid"
demo
assert_contains "IMP_DEMO_KB unset, dev.sh's indexer runs: seeded" "$DEMO_ERR" \
    "knowledge base of demo: version 1 is stable"
assert_eq "still one version" "1:stable" "$(states demo)"

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
pass "imperium-indexer stopped cleanly"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
