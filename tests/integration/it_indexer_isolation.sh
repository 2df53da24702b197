# Tenant isolation of knowledge-base versions: tenant B cannot see, promote, evaluate or roll
# back A's versions (its numbers are its own), not through the client, not through forged
# commands or forged imp.kb.v1 requests, and not through SQL as the application role under
# row-level security; builds of both tenants at once each get their own chunks.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

start_control
start_indexer indexer
write_sources "$T/kb"
printf '# Garage\n\nWe change tyres from 9:00 to 18:00.\n\n# Prices\n\nA tyre change costs 8,000 tenge.\n' >"$T/garage.md"

ctl tenant create alpha --name "Alpha salon"
expect "create alpha" 0 "created"
ctl tenant create beta --name "Beta garage"
expect "create beta" 0 "created"
A=$(tenant_id alpha)
B=$(tenant_id beta)

for f in salon.md faq.csv; do
    ctl kb source put alpha "$f" --file "$T/kb/$f"
    expect "alpha: put $f" 0 "created"
done
ctl kb source put beta garage.md --file "$T/garage.md"
expect "beta: put garage.md" 0 "created"
ctl kb source put beta salon.md --file "$T/garage.md"
expect "beta: a source named like one of alpha's" 0 "kb source beta/salon.md created"
assert_eq "alpha's salon.md untouched" "$(sha256sum <"$T/kb/salon.md" | cut -c1-64)" \
    "$(sql "SELECT sha256 FROM kb_sources WHERE tenant_id = '$A' AND name = 'salon.md'")"

# Builds of both tenants at once.
ctl kb build alpha --no-wait
OPA=$(printf '%s\n' "$OUT" | sed -n 's/^operation \([0-9a-f-]*\): submitted$/\1/p')
ctl kb build beta --no-wait
OPB=$(printf '%s\n' "$OUT" | sed -n 's/^operation \([0-9a-f-]*\): submitted$/\1/p')
ctl kb build alpha --operation-id "$OPA"
expect "alpha: build 1" 0 "kb alpha: version 1 built"
ctl kb build beta --operation-id "$OPB"
expect "beta: build 1" 0 "kb beta: version 1 built"
ctl kb build alpha
expect "alpha: build 2" 0 "kb alpha: version 2 built"
ctl kb promote alpha 2
expect "alpha: promote 2" 0 "version 2 is stable"
assert_eq "alpha's versions" "1:draft 2:stable" "$(states alpha)"
assert_eq "beta's versions" "1:draft" "$(states beta)"
assert_eq "beta's chunks come from beta's sources only" 0 \
    "$(sql "SELECT count(*) FROM kb_chunks c JOIN kb_sources s ON s.id = c.source_id WHERE c.tenant_id = '$B' AND s.tenant_id <> '$B'")"
assert_eq "beta's chunks say nothing of haircuts" 0 \
    "$(sql "SELECT count(*) FROM kb_chunks WHERE tenant_id = '$B' AND text LIKE '%haircut%'")"

# ---- through the client: B's numbers are B's -------------------------------------------------------

ctl kb promote beta 2
expect "beta cannot promote alpha's version 2" 1 "failed: kb beta has no version 2"
ctl kb eval beta 2
expect "beta cannot evaluate it" 1 "failed: kb beta has no version 2"
ctl kb rollback beta
expect "beta has nothing to roll back" 1 "failed: kb beta has no stable version to roll back"
ctl kb promote beta 1
expect "beta promotes its own version 1" 0 "kb beta: version 1 is stable"
assert_eq "alpha's versions unchanged" "1:draft 2:stable" "$(states alpha)"
assert_eq "beta's" "1:stable" "$(states beta)"
ctl kb versions beta --json
assert_eq "kb versions beta: beta's only" "1:$(version_id beta 1)" \
    "$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(" ".join("%d:%s" % (v["version"], v["id"]) for v in json.load(sys.stdin)["versions"]))')"

# ---- forged commands and requests ------------------------------------------------------------------

command_json() { # command_json ID TYPE TENANTID DATA
    python3 -c 'import json,sys; print(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"imperium/control-cli","type":sys.argv[2],"time":"2026-05-01T03:04:05.678Z","tenantid":sys.argv[3],"data":json.loads(sys.argv[4])}))' "$@"
}
F1=$(uuid4)
produce imp.commands.v1 "$B" "$(command_json "$F1" imp.command.kb.promote.v1 "$B" '{"slug":"alpha","version":1}')"
wait_sql 1 "SELECT count(*) FROM dead_letters WHERE worker = 'control' AND operation_id = '$F1'"
assert_contains "a command of beta naming alpha is refused" \
    "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$F1'")" "is not the tenant of slug alpha"
F2=$(uuid4)
F2CMD=$(uuid4)
produce imp.kb.v1 "$B" "$(python3 -c 'import json,sys; print(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"imperium/control","type":"imp.kb.promote.v1","time":"2026-05-01T03:04:05.678Z","tenantid":sys.argv[2],"causationid":sys.argv[3],"data":{"slug":"alpha","version":1,"actor":"forger"}}))' "$F2" "$B" "$F2CMD")"
wait_sql 1 "SELECT count(*) FROM dead_letters WHERE worker = 'indexer' AND operation_id = '$F2'"
assert_contains "a request of beta naming alpha is refused by the indexer" \
    "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$F2'")" "is not the tenant of slug alpha"
F3=$(uuid4)
produce imp.kb.v1 "$B" "$(python3 -c 'import json,sys; print(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"imperium/control","type":"imp.kb.build.v1","time":"2026-05-01T03:04:05.678Z","tenantid":sys.argv[2],"data":{"slug":"beta"}}))' "$F3" "$B")"
wait_sql 1 "SELECT count(*) FROM dead_letters WHERE worker = 'indexer' AND operation_id = '$F3'"
assert_contains "a request without its command's id is refused" \
    "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$F3'")" "causationid"
assert_eq "alpha's versions still unchanged" "1:draft 2:stable" "$(states alpha)"
assert_eq "no release or audit row of alpha written under beta" 0 \
    "$(sql "SELECT count(*) FROM kb_releases r JOIN kb_versions v ON v.id = r.version_id WHERE r.tenant_id <> v.tenant_id")"
assert_eq "beta built nothing more" "1:stable" "$(states beta)"

# ---- row-level security, as the application role ---------------------------------------------------

as_beta() { psql_app -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$B', true)" -c "$1" -c "COMMIT" 2>&1 | sed 1d; }
assert_eq "beta sees none of alpha's versions" 0 "$(as_beta "SELECT count(*) FROM kb_versions WHERE tenant_id = '$A'" | head -n 1)"
assert_eq "nor their chunks" 0 "$(as_beta "SELECT count(*) FROM kb_chunks WHERE version_id = '$(version_id alpha 2)'" | head -n 1)"
assert_eq "nor alpha's sources, releases or questions" "0|0|0" \
    "$(as_beta "SELECT (SELECT count(*) FROM kb_sources WHERE tenant_id = '$A') || '|' || (SELECT count(*) FROM kb_releases WHERE tenant_id = '$A') || '|' || (SELECT count(*) FROM kb_eval_questions WHERE tenant_id = '$A')" | head -n 1)"
assert_eq "beta sees its own" 1 "$(as_beta "SELECT count(*) FROM kb_versions" | head -n 1)"
assert_eq "beta cannot archive alpha's stable version" 0 \
    "$(as_beta "WITH u AS (UPDATE kb_versions SET state = 'archived' WHERE id = '$(version_id alpha 2)' RETURNING 1) SELECT count(*) FROM u" | head -n 1)"
assert_contains "beta cannot add chunks to alpha's version" \
    "$(as_beta "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, text, start_offset, end_offset, char_count, token_count, embedding) VALUES ('$A', '$(version_id alpha 1)', 999, (SELECT id FROM kb_sources LIMIT 1), 'x', 0, 1, 1, 1, '\\x00')" || true)" \
    "ERROR:"
assert_contains "beta cannot point a release at alpha's version" \
    "$(as_beta "INSERT INTO kb_releases (tenant_id, action, version_id, operation_id, actor) VALUES ('$B', 'promote', '$(version_id alpha 1)', gen_random_uuid(), 'x')" || true)" \
    "violates foreign key constraint"
assert_eq "alpha's stable version is still stable" "1:draft 2:stable" "$(states alpha)"

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
pass "imperium-indexer stopped cleanly"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
