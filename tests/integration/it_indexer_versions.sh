# Knowledge-base versions end to end, through imperium-control's client, imperium-control and
# imperium-indexer (built-in hash embedder): sources put, replaced, removed; builds (a second
# build of unchanged sources gives identical chunks and embeddings; --if-changed builds
# nothing); promote and rollback moving the stable pointer exactly (draft, stable and archived
# states after every step, rollback walking the history backwards, refusals that change
# nothing); the kb_releases history, audit rows and imp.control.v1 events, counted exactly;
# the 512 KiB limit and malformed sources refused by the client before anything is sent and
# by the worker when sent anyway; versions immutable for the application role.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

start_control
start_indexer indexer
write_sources "$T/kb"

ctl tenant create salon --name "Salon"
expect "create salon" 0 "succeeded: tenant salon created"
A=$(tenant_id salon)

# ---- sources ---------------------------------------------------------------------------------

ctl kb build salon
expect "build without sources" 1 "failed: kb salon has no sources to build from"
assert_eq "no version" "" "$(states salon)"

ctl kb source put salon salon.md --file "$T/kb/salon.md"
expect "put salon.md (format from the extension)" 0 "succeeded: kb source salon/salon.md created"
ctl kb source put salon faq.csv --format qa_csv --file "$T/kb/faq.csv"
expect "put faq.csv" 0 "succeeded: kb source salon/faq.csv created"
ctl kb source put salon faq.json --file "$T/kb/faq.json"
expect "put faq.json" 0 "created"
ctl kb source put salon salon.md --file "$T/kb/salon.md"
expect "put salon.md again" 0 "succeeded: kb source salon/salon.md unchanged"
assert_eq "kb_sources rows with the server's hashes" \
    "faq.csv|qa_csv|$(sha256sum <"$T/kb/faq.csv" | cut -c1-64) faq.json|qa_json|$(sha256sum <"$T/kb/faq.json" | cut -c1-64) salon.md|markdown|$(sha256sum <"$T/kb/salon.md" | cut -c1-64)" \
    "$(sql "SELECT string_agg(name || '|' || format || '|' || sha256, ' ' ORDER BY name) FROM kb_sources WHERE tenant_id = '$A'")"
assert_eq "three source audit rows (none for the unchanged put)" \
    "kb.source.create:kb_source:salon/faq.csv kb.source.create:kb_source:salon/faq.json kb.source.create:kb_source:salon/salon.md" \
    "$(sql "SELECT string_agg(action || ':' || target, ' ' ORDER BY target) FROM audit_log WHERE tenant_id = '$A' AND action LIKE 'kb.%'")"
assert_eq "no content in the audit rows" 0 \
    "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A' AND after::text LIKE '%Abay%'")"

# ---- builds ----------------------------------------------------------------------------------

ctl kb build salon
expect "build 1" 0 "succeeded: kb salon: version 1 built as a draft"
assert_eq "build 1 prints its version" 1 "$(printed_version)"
V1=$(version_id salon 1)
N1=$(sql "SELECT chunk_count FROM kb_versions WHERE id = '$V1'")
assert_eq "chunk_count = the chunks inserted" "$N1" "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V1'")"
[ "$N1" -ge 8 ] || fail "version 1 has only $N1 chunks"
assert_eq "ordinals 0..n-1" "0 $((N1 - 1)) $N1" \
    "$(sql "SELECT min(ordinal) || ' ' || max(ordinal) || ' ' || count(DISTINCT ordinal) FROM kb_chunks WHERE version_id = '$V1'")"
assert_eq "version 1: the built-in embedder, default chunk settings, three sources" \
    'hash|hash-ngram-v1|1024|{"max_chars": 1000, "target_chars": 600, "overlap_chars": 100}|3' \
    "$(sql "SELECT embedder_name || '|' || embedder_model || '|' || embedder_dim || '|' || chunk_settings::text || '|' || jsonb_array_length(built_from) FROM kb_versions WHERE id = '$V1'")"
assert_eq "every embedding holds 1024 float32" "$N1" \
    "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V1' AND octet_length(embedding) = 4096")"
assert_eq "a Q&A pair is one chunk: the question its heading" "Can I pay by card?|Yes, we take cards, Kaspi QR and cash." \
    "$(sql "SELECT heading || '|' || text FROM kb_chunks WHERE version_id = '$V1' AND heading = 'Can I pay by card?'")"

ctl kb build salon
expect "build 2 from the same sources" 0 "version 2 built as a draft"
V2=$(version_id salon 2)
assert_eq "version 2: the same chunk texts and embeddings as version 1" "$(chunks_digest "$V1")" "$(chunks_digest "$V2")"
assert_eq "version 2: built from the same sources" \
    "$(sql "SELECT built_from::text FROM kb_versions WHERE id = '$V1'")" \
    "$(sql "SELECT built_from::text FROM kb_versions WHERE id = '$V2'")"
assert_eq "no chunk of version 2 differs from its twin in version 1" 0 \
    "$(sql "SELECT count(*) FROM kb_chunks a JOIN kb_chunks b ON b.version_id = '$V2' AND b.ordinal = a.ordinal
            WHERE a.version_id = '$V1' AND (a.text, a.heading, a.embedding, a.source_id) IS DISTINCT FROM (b.text, b.heading, b.embedding, b.source_id)")"

ctl kb build salon --if-changed
expect "build --if-changed, sources unchanged" 0 "succeeded: kb salon: sources unchanged since version 2 (draft): no new version"
assert_eq "--if-changed prints the version it found" 2 "$(printed_version)"
assert_eq "still two drafts" "1:draft 2:draft" "$(states salon)"

# ---- promote and rollback ----------------------------------------------------------------------

ctl kb promote salon 1
expect "promote 1" 0 "succeeded: kb salon: version 1 is stable"
assert_eq "after promote 1" "1:stable 2:draft" "$(states salon)"
ctl kb promote salon 2
expect "promote 2" 0 "succeeded: kb salon: version 2 is stable (version 1 archived)"
assert_eq "after promote 2" "1:archived 2:stable" "$(states salon)"
ctl kb promote salon 2
expect "promote 2 again" 0 "version 2 is already stable"
ctl kb promote salon 9
expect "promote a version that does not exist" 1 "failed: kb salon has no version 9"
ctl kb rollback salon
expect "rollback" 0 "succeeded: kb salon: rolled back to version 1 (version 2 archived)"
assert_eq "after rollback" "1:stable 2:archived" "$(states salon)"
ctl kb rollback salon
expect "rollback past the first stable version" 1 "failed: kb salon: nothing to roll back to: version 1 was its first stable version"
assert_eq "a refused rollback changes nothing" "1:stable 2:archived" "$(states salon)"

printf '\nClosed on 8 March too.\n' >>"$T/kb/salon.md"
ctl kb source put salon salon.md --file "$T/kb/salon.md"
expect "replace salon.md" 0 "succeeded: kb source salon/salon.md updated"
ctl kb build salon --if-changed
expect "build 3 (--if-changed, a source changed)" 0 "version 3 built as a draft"
V3=$(version_id salon 3)
assert_eq "version 3 has the new text" 1 "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V3' AND text LIKE '%8 March%'")"
assert_eq "versions 1 and 2 did not change" "0 0" \
    "$(sql "SELECT (SELECT count(*) FROM kb_chunks WHERE version_id = '$V1' AND text LIKE '%8 March%') || ' ' || (SELECT count(*) FROM kb_chunks WHERE version_id = '$V2' AND text LIKE '%8 March%')")"
assert_eq "version 1 still as built" "$(chunks_digest "$V2")" "$(chunks_digest "$V1")"

ctl kb promote salon 2
expect "promote the archived version 2" 0 "version 2 is stable (version 1 archived)"
ctl kb promote salon 3
expect "promote 3" 0 "version 3 is stable (version 2 archived)"
assert_eq "after promote 3" "1:archived 2:archived 3:stable" "$(states salon)"
ctl kb rollback salon
expect "rollback from 3" 0 "rolled back to version 2 (version 3 archived)"
assert_eq "after rollback from 3" "1:archived 2:stable 3:archived" "$(states salon)"
ctl kb rollback salon
expect "rollback from 2 goes to what was stable before 2" 0 "rolled back to version 1 (version 2 archived)"
assert_eq "after rollback from 2" "1:stable 2:archived 3:archived" "$(states salon)"
ctl kb rollback salon
expect "and no further" 1 "nothing to roll back to"
assert_eq "exactly one stable version" 1 "$(sql "SELECT count(*) FROM kb_versions WHERE tenant_id = '$A' AND state = 'stable'")"
assert_eq "promoted_at set on every version that was stable, archived_at on the archived" "3 2" \
    "$(sql "SELECT count(*) FILTER (WHERE promoted_at IS NOT NULL) || ' ' || count(*) FILTER (WHERE archived_at IS NOT NULL) FROM kb_versions WHERE tenant_id = '$A'")"

assert_eq "kb_releases: every move of the stable pointer, in order" \
    "promote:1:- promote:2:1 rollback:1:2 promote:2:1 promote:3:2 rollback:2:3 rollback:1:2" \
    "$(sql "SELECT string_agg(r.action || ':' || v.number || ':' || coalesce(p.number::text, '-'), ' ' ORDER BY r.id)
            FROM kb_releases r JOIN kb_versions v ON v.id = r.version_id LEFT JOIN kb_versions p ON p.id = r.previous_version_id
            WHERE r.tenant_id = '$A'")"
assert_eq "audit rows of the versions" \
    "kb.build kb.build kb.promote kb.promote kb.rollback kb.build kb.promote kb.promote kb.rollback kb.rollback" \
    "$(sql "SELECT string_agg(action, ' ' ORDER BY id) FROM audit_log WHERE tenant_id = '$A' AND action IN ('kb.build', 'kb.promote', 'kb.rollback')")"
assert_eq "audit rows name the actor and the command" 0 \
    "$(sql "SELECT count(*) FROM audit_log a LEFT JOIN operations o USING (operation_id) WHERE a.tenant_id = '$A' AND a.action LIKE 'kb.%' AND (a.actor <> 'it-operator' OR o.operation_id IS NULL)")"
wait_for 10 "ten kb events on imp.control.v1" kb_changes_at_least "$A" 10 || true
assert_eq "imp.control.v1: one event per version change (builds, promotes, rollbacks)" \
    "1 2 1 2 1 3 2 3 2 1" "$(kb_changes "$A")"
assert_eq "outcomes: no command left pending" "0" \
    "$(sql "SELECT count(*) FROM operations WHERE tenant_id = '$A' AND status = 'pending'")"

# ---- remove a source ----------------------------------------------------------------------------

ctl kb source rm salon faq.json
expect "remove faq.json" 0 "succeeded: kb source salon/faq.json removed"
ctl kb source rm salon faq.json
expect "remove it again" 0 "already removed"
ctl kb source rm salon nothing.md
expect "remove a source that does not exist" 1 "failed: kb source salon/nothing.md does not exist"
ctl kb build salon
expect "build 4 without faq.json" 0 "version 4 built as a draft"
assert_eq "version 4 from two sources" "faq.csv salon.md" \
    "$(sql "SELECT string_agg(s->>'name', ' ' ORDER BY s->>'name') FROM kb_versions, jsonb_array_elements(built_from) s WHERE id = '$(version_id salon 4)'")"
assert_eq "version 3 keeps the chunks of faq.json" 2 \
    "$(sql "SELECT count(*) FROM kb_chunks c JOIN kb_sources s ON s.id = c.source_id WHERE c.version_id = '$V3' AND s.name = 'faq.json'")"
ctl kb source put salon faq.json --file "$T/kb/faq.json"
expect "put the removed source back" 0 "kb source salon/faq.json updated"

# ---- versions listing ---------------------------------------------------------------------------

ctl kb versions salon
expect "kb versions" 0 "VERSION"
assert_eq "kb versions: one line per version, then one per source" 8 "$(printf '%s\n' "$OUT" | grep -c .)"
assert_contains "kb versions: version 1 is stable" "$(printf '%s\n' "$OUT" | grep '^1 ')" "stable"
ctl kb versions salon --json
assert_eq "kb versions --json" "1:stable 2:archived 3:archived 4:draft|3" \
    "$(printf '%s' "$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join("%d:%s" % (v["version"], v["state"]) for v in d["versions"]) + "|" + str(len(d["sources"])))')"
ctl kb versions nobody
expect "kb versions of a tenant that does not exist" 1 "tenant nobody does not exist"

# ---- sources the client refuses to send ---------------------------------------------------------

OPS=$(sql "SELECT count(*) FROM operations")
head -c $((512 * 1024 + 1)) /dev/zero | tr '\0' 'a' >"$T/big.txt"
ctl kb source put salon big.txt --file "$T/big.txt"
expect "a source over 512 KiB" 2 "big.txt is 524289 bytes; a source holds at most 524288 bytes (512 KiB): split it"
head -c $((512 * 1024)) /dev/zero | tr '\0' 'a' >"$T/max.txt"
head -c $((500 * 1024)) /dev/zero | tr '\0' '"' >"$T/quotes.txt"
ctl kb source put salon quotes.txt --file "$T/quotes.txt"
expect "a source that grows past a Kafka message once escaped" 2 "once encoded, more than the 960000"
printf 'question,answer\n"unterminated,quote\n' >"$T/bad.csv"
ctl kb source put salon bad.csv --file "$T/bad.csv"
expect "a malformed CSV" 2 "bad.csv is not valid qa_csv"
printf '\xff\xfe broken\n' >"$T/latin1.txt"
ctl kb source put salon latin1.txt --file "$T/latin1.txt"
expect "not UTF-8" 2 "latin1.txt is not UTF-8 text (byte 0)"
ctl kb source put salon "a/b.md" --file "$T/kb/salon.md"
expect "a name with a slash" 2 "is not a source name"
cp "$T/kb/salon.md" "$T/notes"
ctl kb source put salon notes --file "$T/notes"
expect "no format, no extension" 2 "give --format"
assert_eq "nothing was sent" "$OPS" "$(sql "SELECT count(*) FROM operations")"

ctl kb source put salon max.txt --file "$T/max.txt"
expect "a source of exactly 512 KiB" 0 "kb source salon/max.txt created (524288 bytes"
ctl kb source rm salon max.txt
expect "remove it" 0 "removed"

# The worker checks what the client checks: a malformed CSV sent anyway fails, changing nothing.
BAD=$(uuid4)
produce imp.commands.v1 "$A" "$(python3 -c 'import json,sys; print(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"imperium/control-cli","type":"imp.command.kb.source.put.v1","time":"2026-05-01T03:04:05.678Z","tenantid":sys.argv[2],"data":{"slug":"salon","name":"bad.csv","format":"qa_csv","content":"question,answer\n\"open,quote\n","actor":"raw"}}))' "$BAD" "$A")"
wait_status "$BAD" failed
assert_contains "its error names the problem" "$(sql "SELECT error FROM operations WHERE operation_id = '$BAD'")" \
    "kb source salon/bad.csv is not valid qa_csv"
assert_eq "no such source" 0 "$(sql "SELECT count(*) FROM kb_sources WHERE tenant_id = '$A' AND name = 'bad.csv'")"
OVER=$(uuid4)
produce imp.commands.v1 "$A" "$(python3 -c 'import json,sys; sys.stdout.buffer.write(json.dumps({"specversion":"1.0","id":sys.argv[1],"source":"imperium/control-cli","type":"imp.command.kb.source.put.v1","time":"2026-05-01T03:04:05.678Z","tenantid":sys.argv[2],"data":{"slug":"salon","name":"over.txt","format":"text","content":"\u00e9" * 262145}}, ensure_ascii=False).encode())' "$OVER" "$A")"
wait_sql 1 "SELECT count(*) FROM dead_letters WHERE worker = 'control' AND operation_id = '$OVER'"
assert_contains "dead letter reason" "$(sql "SELECT reason FROM dead_letters WHERE operation_id = '$OVER'")" \
    "data.content is 524290 bytes; a source holds at most 524288"

# ---- a version never changes ---------------------------------------------------------------------

app() { psql_app -c "BEGIN" -c "SELECT set_config('app.tenant_id', '$A', true)" -c "$1" -c "COMMIT" 2>&1; }
assert_contains "chunks cannot be updated" "$(app "UPDATE kb_chunks SET text = 'x' WHERE version_id = '$V1'" || true)" "permission denied"
assert_contains "a version's inputs cannot be updated" "$(app "UPDATE kb_versions SET chunk_count = 0 WHERE id = '$V1'" || true)" "permission denied"
assert_contains "no chunk goes into a built version" \
    "$(app "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, text, start_offset, end_offset, char_count, token_count, embedding) SELECT tenant_id, version_id, 999, source_id, 'x', 0, 1, 1, 1, embedding FROM kb_chunks WHERE version_id = '$V3' LIMIT 1" || true)" \
    "chunks are added to drafts only"
assert_eq "version 1 unchanged after all that" "$(chunks_digest "$V2")" "$(chunks_digest "$V1")"

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
pass "imperium-indexer stopped cleanly"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
