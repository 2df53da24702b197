# imperium-indexer with the HTTP embedder (OpenAI-compatible /v1/embeddings) against a local
# fake server (progs/indexer_fake_embed.c): the chunks go in batches of IMP_EMBED_BATCH, seen
# at the server with exact counts; a request that times out makes the build retriable, the
# runtime retries it and it succeeds with the same chunks and vectors; a 400 fails the build
# with the server's message and leaves no version and no chunk behind; a 503 that does not
# go away ends as the indexer's dead letter, which the client reports. Also: a build running
# while its sources change sees one consistent set of them.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

FAKE="$BIN/indexer_fake_embed"
[ -x "$FAKE" ] || die "$FAKE is not built"
EMB_LOG="$T/embed.log"
MODE="$T/embed.mode"
: >"$EMB_LOG"
start_bg fake_embed "$FAKE" "$T/embed.port" "$EMB_LOG" "$MODE" 64
wait_for_file "$T/embed.port" 10 || fail "the fake embedding server did not start"
EMBED_URL="http://127.0.0.1:$(cat "$T/embed.port")"

start_control
start_indexer indexer IMP_EMBED_PROVIDER=openai IMP_EMBED_URL="$EMBED_URL" \
    IMP_EMBED_MODEL=fake-model IMP_EMBED_DIM=64 IMP_EMBED_BATCH=4 IMP_EMBED_TIMEOUT=2s \
    IMP_EMBED_MAX_ATTEMPTS=1 IMP_EMBED_ALLOW_CIDRS=127.0.0.0/8 IMP_WORKER_MAX_ATTEMPTS=4
write_sources "$T/kb"

requests() { grep -c . "$EMB_LOG" || true; }
# The request lines of the fake server after line N.
requests_after() { tail -n +"$(($1 + 1))" "$EMB_LOG"; }
more_requests_than() { [ "$(requests)" -gt "$1" ]; }
mode() { printf '%s\n' "$1" >"$MODE"; }

ctl tenant create salon --name "Salon"
expect "create salon" 0 "tenant salon created"
A=$(tenant_id salon)
for f in salon.md faq.csv faq.json; do
    ctl kb source put salon "$f" --file "$T/kb/$f"
    expect "put $f" 0 "created"
done

# ---- batching ----------------------------------------------------------------------------------

mode ok
ctl kb build salon
expect "build 1 through the HTTP embedder" 0 "version 1 built as a draft"
V1=$(version_id salon 1)
N=$(sql "SELECT chunk_count FROM kb_versions WHERE id = '$V1'")
[ "$N" -ge 9 ] || fail "only $N chunks: too few to see batching"
assert_eq "requests: ceil($N / 4)" $(((N + 3) / 4)) "$(requests)"
assert_eq "texts per request: 4, the last one the rest" \
    "$(python3 -c "n=$N; print(' '.join(str(min(4, n - i)) for i in range(0, n, 4)))")" \
    "$(sed -n 's/.* inputs=\([0-9]*\) .*/\1/p' "$EMB_LOG" | paste -sd' ')"
assert_eq "the version records the HTTP embedder" "openai|fake-model|64" \
    "$(sql "SELECT embedder_name || '|' || embedder_model || '|' || embedder_dim FROM kb_versions WHERE id = '$V1'")"
assert_eq "embeddings of 64 float32" "$N" "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V1' AND octet_length(embedding) = 256")"

# ---- a timeout: retried by the runtime, then built ----------------------------------------------

BEFORE=$(requests)
mode "hang 1 5000"
ctl kb build salon
expect "build 2: the first request times out" 0 "version 2 built as a draft"
V2=$(version_id salon 2)
assert_eq "the server saw the hung request, then the whole build again" \
    "1 $(((N + 3) / 4 + 1))" \
    "$(requests_after "$BEFORE" | grep -c "delay=5000") $(requests_after "$BEFORE" | grep -c .)"
assert_eq "the retry built the same chunks and vectors" "$(chunks_digest "$V1")" "$(chunks_digest "$V2")"
CMD2=$(sql "SELECT operation_id FROM kb_versions WHERE id = '$V2'")
assert_eq "the indexer's inbox: done on the second attempt" "done|1" \
    "$(sql "SELECT state || '|' || attempt FROM inbox WHERE worker = 'indexer' AND operation_id = '$(derived_id "$CMD2" kb.build)'")"
assert_eq "no dead letter" 0 "$(sql "SELECT count(*) FROM dead_letters WHERE worker = 'indexer'")"
assert_contains "the indexer logged the retry" "$(cat "$T/logs/indexer.log")" "embedding server unavailable"

# ---- a 400: the build fails with the server's message, nothing is left behind ---------------------

BEFORE=$(requests)
mode "reject 400 input is too long for model fake-model (at most 8 tokens)"
ctl kb build salon
expect "build 3 refused by the server" 1 "failed: kb salon: embedding failed, no version was built"
assert_contains "the server's message reaches the operator" "$OUT" "input is too long for model fake-model (at most 8 tokens)"
assert_eq "a 4xx is not retried" 1 "$(requests_after "$BEFORE" | grep -c .)"
assert_eq "no version 3" "1:draft 2:draft" "$(states salon)"
assert_eq "no chunk outside versions 1 and 2" 0 \
    "$(sql "SELECT count(*) FROM kb_chunks WHERE tenant_id = '$A' AND version_id NOT IN ('$V1', '$V2')")"
assert_eq "no build audited for it" 2 "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A' AND action = 'kb.build'")"
assert_eq "its outcome: failed, with the message" 1 \
    "$(sql "SELECT count(*) FROM operations WHERE tenant_id = '$A' AND kind = 'imp.command.kb.build.v1' AND status = 'failed' AND error LIKE '%input is too long%'")"

# ---- a 503 that stays: retried, then the indexer's dead letter ------------------------------------

mode "reject 503 model is loading"
ctl kb build salon --timeout 60s
expect "build 4 while the server answers 503" 1 "rejected: imperium-indexer:"
assert_contains "the dead letter says why" "$OUT" "embedding server unavailable"
assert_eq "one dead letter, retriable, after four attempts" "retriable|3" \
    "$(sql "SELECT class || '|' || attempt FROM dead_letters WHERE worker = 'indexer'")"
assert_eq "still no version 3" "1:draft 2:draft" "$(states salon)"

# ---- a build while its sources change ---------------------------------------------------------------

mode ok
ctl kb source rm salon faq.json
expect "leave two sources" 0 "removed"
OLD_MD=$(sha256sum <"$T/kb/salon.md" | cut -c1-64)
OLD_CSV=$(sha256sum <"$T/kb/faq.csv" | cut -c1-64)
BEFORE=$(requests)
mode "delay 1500"
ctl kb build salon --no-wait
expect "a slow build submitted" 0 "submitted"
BUILD_OP=$(printf '%s\n' "$OUT" | sed -n 's/^operation \([0-9a-f-]*\): submitted$/\1/p')
wait_for 30 "the slow build's first embedding request" more_requests_than "$BEFORE" ||
    fail "the slow build sent no embedding request"
# The build has read its sources; change both while it embeds.
sed -i 's/9:00 to 21:00/8:00 to 22:00 (NEW HOURS)/' "$T/kb/salon.md"
printf 'Do you sell gift cards?,"Yes (NEW CARDS), from 5,000 tenge."\n' >>"$T/kb/faq.csv"
ctl kb source put salon salon.md --file "$T/kb/salon.md"
expect "replace salon.md during the build" 0 "updated"
ctl kb source put salon faq.csv --file "$T/kb/faq.csv"
expect "replace faq.csv during the build" 0 "updated"
assert_eq "the sources changed while the build still runs" pending "$(operation_status "$BUILD_OP")"
ctl kb build salon --operation-id "$BUILD_OP"
expect "the slow build, waited for again by its operation id" 0 "version 3 built as a draft"
V3=$(version_id salon 3)
assert_eq "version 3: built from the sources as they were when it read them" \
    "faq.csv:$OLD_CSV salon.md:$OLD_MD" \
    "$(sql "SELECT string_agg((s->>'name') || ':' || (s->>'sha256'), ' ' ORDER BY s->>'name') FROM kb_versions, jsonb_array_elements(built_from) s WHERE id = '$V3'")"
assert_eq "version 3: none of the new text" 0 "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V3' AND text LIKE '%NEW%'")"
assert_eq "version 3: all of the old" 2 \
    "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V3' AND (text LIKE '%9:00 to 21:00%' OR text LIKE '%Kaspi QR%')")"
mode ok
ctl kb build salon
expect "build 4 after the change" 0 "version 4 built as a draft"
V4=$(version_id salon 4)
assert_eq "version 4: the new sources" \
    "faq.csv:$(sha256sum <"$T/kb/faq.csv" | cut -c1-64) salon.md:$(sha256sum <"$T/kb/salon.md" | cut -c1-64)" \
    "$(sql "SELECT string_agg((s->>'name') || ':' || (s->>'sha256'), ' ' ORDER BY s->>'name') FROM kb_versions, jsonb_array_elements(built_from) s WHERE id = '$V4'")"
assert_eq "version 4: both new texts" 2 "$(sql "SELECT count(*) FROM kb_chunks WHERE version_id = '$V4' AND text LIKE '%NEW%'")"

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
pass "imperium-indexer stopped cleanly"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
