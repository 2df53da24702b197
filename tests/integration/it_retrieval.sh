#!/usr/bin/env bash
# Knowledge base and hybrid retrieval against the harness's Postgres, as the application
# role under row-level security (tests/integration/progs/retrieval_tool.c):
#   - the demo FAQ (deploy/demo) loaded as tenant A while tenant B's overlapping FAQ is loaded
#     by a second process at the same time: exact chunk counts, one stable version each;
#   - retrieval quality with the built-in hash embedder: hit@1 and hit@3 of the demo questions
#     (deploy/demo/kb_questions.json) and of the held-out set (tests/data/kb_heldout.json),
#     hit@3 >= 0.9 for both; the confidence of off-topic questions is reported;
#   - tenant isolation: A's queries never return B's chunks, with four threads searching both
#     tenants at once through one cache that is invalidated every round; A cannot load B's
#     version; the schema's own guards (RLS, drafts only, dimension, one stable, API role);
#   - the retrieval log: one row per operation, written once.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

TOOL="$IMP_BUILD_DIR/bin/retrieval_tool"
DEMO="$IMP_SOURCE_DIR/deploy/demo"
DATA="$IMP_SOURCE_DIR/tests/data"
A=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
B=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
OUT="$IMP_TEST_TMP/retrieval"
mkdir -p "$OUT"

as_tenant() { # as_tenant ROLE TENANT SQL
    "psql_$1" <<SQL
BEGIN;
SELECT set_config('app.tenant_id', '$2', true) \g /dev/null
$3;
COMMIT;
SQL
}

psql_owner -c "INSERT INTO tenants (id, slug, name) VALUES ('$A', 'salon-a', 'A'), ('$B', 'salon-b', 'B')"

# ---- two tenants loaded at the same time by two processes ---------------------------------
start=$(now_ms)
"$TOOL" load --dsn "$IMP_PG_APP_DSN" --tenant "$A" --promote \
    "$DEMO/faq_ru.md" "$DEMO/faq_en.md" "$DEMO/faq_qa.json" "$DEMO/faq_kk.csv" \
    >"$OUT/a.version" 2>"$OUT/a.log" &
pid_a=$!
"$TOOL" load --dsn "$IMP_PG_APP_DSN" --tenant "$B" --promote "$DATA/kb_tenant_b.md" \
    >"$OUT/b.version" 2>"$OUT/b.log" &
pid_b=$!
wait "$pid_a" || fail "loading tenant A: $(cat "$OUT/a.log")"
wait "$pid_b" || fail "loading tenant B: $(cat "$OUT/b.log")"
VA=$(cat "$OUT/a.version")
VB=$(cat "$OUT/b.version")
cat "$OUT/a.log" "$OUT/b.log" >&2
say "both tenants loaded in $(($(now_ms) - start)) ms"

# The chunker's own count for each source (markdown and Q&A) against what landed in Postgres.
chunks_a=$(sed -n 's/.*loaded \([0-9]*\) chunks.*/\1/p' "$OUT/a.log")
chunks_b=$(sed -n 's/.*loaded \([0-9]*\) chunks.*/\1/p' "$OUT/b.log")
assert_eq "tenant A: 49 chunks from the demo FAQ" 49 "$chunks_a"
assert_eq "tenant B: 9 chunks" 9 "$chunks_b"
assert_eq "tenant A's rows: chunks, sources, stable versions" "49|4|1" \
    "$(psql_owner -c "SELECT (SELECT count(*) FROM kb_chunks WHERE tenant_id = '$A'),
                             (SELECT count(*) FROM kb_sources WHERE tenant_id = '$A'),
                             (SELECT count(*) FROM kb_versions WHERE tenant_id = '$A' AND state = 'stable')")"
assert_eq "tenant B's rows: chunks, sources, stable versions" "9|1|1" \
    "$(psql_owner -c "SELECT (SELECT count(*) FROM kb_chunks WHERE tenant_id = '$B'),
                             (SELECT count(*) FROM kb_sources WHERE tenant_id = '$B'),
                             (SELECT count(*) FROM kb_versions WHERE tenant_id = '$B' AND state = 'stable')")"
assert_eq "every chunk belongs to its tenant's version and source" 0 \
    "$(psql_owner -c "SELECT count(*) FROM kb_chunks c JOIN kb_versions v ON v.id = c.version_id
                      JOIN kb_sources s ON s.id = c.source_id
                      WHERE v.tenant_id <> c.tenant_id OR s.tenant_id <> c.tenant_id")"
assert_eq "ordinals are 0..n-1 per version" "0|48|49" \
    "$(psql_owner -c "SELECT min(ordinal), max(ordinal), count(DISTINCT ordinal) FROM kb_chunks WHERE version_id = '$VA'")"
assert_eq "version A records its sources, embedder and chunk count" "4|hash|hash-ngram-v1|1024|49" \
    "$(psql_owner -c "SELECT jsonb_array_length(built_from), embedder_name, embedder_model, embedder_dim, chunk_count FROM kb_versions WHERE id = '$VA'")"
assert_eq "source hashes are the SHA-256 of the content" \
    "$(sha256sum "$DEMO/faq_ru.md" | cut -d' ' -f1)" \
    "$(psql_owner -c "SELECT sha256 FROM kb_sources WHERE tenant_id = '$A' AND name = 'faq_ru.md'")"
assert_eq "full-text vectors in the three configurations" 49 \
    "$(psql_owner -c "SELECT count(*) FROM kb_chunks WHERE version_id = '$VA' AND tsv_simple <> '' AND tsv_ru <> '' AND tsv_en <> ''")"

# ---- retrieval quality ------------------------------------------------------------------
eval_set() { # eval_set LABEL QUESTIONS [more options]
    local label=$1 file=$2
    shift 2
    "$TOOL" eval --dsn "$IMP_PG_APP_DSN" --tenant "$A" --version "$VA" --questions "$file" \
        --k 3 --min-hit 0.9 --label "$label" "$@" >"$OUT/$label.txt" 2>&1 || {
        cat "$OUT/$label.txt" >&2
        fail "$label: hit@3 below 0.9"
    }
    cat "$OUT/$label.txt" >&2
    grep "^$label: questions=" "$OUT/$label.txt"
}
demo_line=$(eval_set demo "$DEMO/kb_questions.json")
heldout_line=$(eval_set heldout "$DATA/kb_heldout.json" --offtopic "$DATA/kb_offtopic.json")
pass "demo questions: ${demo_line#demo: }"
pass "held-out questions: ${heldout_line#heldout: }"
# The same with the full text ranked by ts_rank_cd in Postgres instead of BM25 in memory.
demo_pg=$(eval_set demo-pg "$DEMO/kb_questions.json" --fts-postgres)
heldout_pg=$(eval_set heldout-pg "$DATA/kb_heldout.json" --fts-postgres)
pass "demo questions, ts_rank_cd: ${demo_pg#demo-pg: }"
pass "held-out questions, ts_rank_cd: ${heldout_pg#heldout-pg: }"
assert_contains "the demo set has 43 questions" "$demo_line" "questions=43 "
assert_contains "the held-out set has 57 questions" "$heldout_line" "questions=57 "

# ---- isolation --------------------------------------------------------------------------
assert_fails "tenant A cannot load tenant B's version" \
    "$TOOL" query --dsn "$IMP_PG_APP_DSN" --tenant "$A" --version "$VB" "цены"
assert_contains "  it looks like a missing version" "$ASSERT_OUTPUT" "not found"

# B's questions are asked of A's version and A's of B's, by 4 threads at once (threads 0 and
# 2 as A, 1 and 3 as B), 2 rounds: (43 + 57) questions * 8 hits * 2 rounds per thread.
"$TOOL" isolation --dsn "$IMP_PG_APP_DSN" --threads 4 --rounds 2 \
    "$A:$VA:$DEMO/kb_questions.json" "$B:$VB:$DATA/kb_heldout.json" \
    >"$OUT/isolation.txt" 2>"$OUT/isolation.log" || fail "isolation run: $(cat "$OUT/isolation.log")"
cat "$OUT/isolation.log" >&2
assert_eq "hits returned: 4 threads x 2 rounds x 100 questions x 8" 6400 "$(wc -l <"$OUT/isolation.txt")"
psql_owner -c "CREATE TABLE iso_hits (tenant uuid, chunk_id bigint)"
psql_owner -c "\\copy iso_hits FROM '$OUT/isolation.txt' WITH (DELIMITER ' ')"
assert_eq "hits per tenant" "$A|3200
$B|3200" "$(psql_owner -c "SELECT tenant, count(*) FROM iso_hits GROUP BY 1 ORDER BY 1")"
assert_eq "no hit is another tenant's chunk" 0 \
    "$(psql_owner -c "SELECT count(*) FROM iso_hits h JOIN kb_chunks c ON c.id = h.chunk_id WHERE c.tenant_id <> h.tenant")"
assert_eq "every hit is a chunk of the tenant's stable version" 0 \
    "$(psql_owner -c "SELECT count(*) FROM iso_hits h LEFT JOIN kb_chunks c ON c.id = h.chunk_id
                      AND c.version_id = CASE WHEN h.tenant = '$A' THEN '$VA'::uuid ELSE '$VB'::uuid END
                      WHERE c.id IS NULL")"
assert_eq "B's distinctive chunks never reach A" 0 \
    "$(psql_owner -c "SELECT count(*) FROM iso_hits h JOIN kb_chunks c ON c.id = h.chunk_id WHERE h.tenant = '$A' AND c.text LIKE '%Лаванд%'")"

# ---- the schema's guards ----------------------------------------------------------------
assert_eq "app without a tenant sees no chunks" 0 "$(psql_app -c "SELECT count(*) FROM kb_chunks")"
assert_eq "app as A sees only A's chunks" 49 "$(as_tenant app "$A" "SELECT count(*) FROM kb_chunks")"
assert_eq "api as B sees only B's versions" 1 "$(as_tenant api "$B" "SELECT count(*) FROM kb_versions")"
src_b=$(psql_owner -c "SELECT id FROM kb_sources WHERE tenant_id = '$B'")
assert_fails "app as A cannot write a chunk into B's version" as_tenant app "$A" \
    "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, text, start_offset, end_offset, char_count, token_count, embedding) VALUES ('$B', '$VB', 99, '$src_b', 'x', 0, 1, 1, 1, '\\x00')"
assert_contains "  B's version is invisible to A" "$ASSERT_OUTPUT" "not found"
assert_fails "app as A cannot write a source for B" as_tenant app "$A" \
    "INSERT INTO kb_sources (tenant_id, name, format, content) VALUES ('$B', 'x.md', 'markdown', 'x')"
assert_contains "  by the policy" "$ASSERT_OUTPUT" "row-level security"
src_a=$(psql_owner -c "SELECT id FROM kb_sources WHERE tenant_id = '$A' AND name = 'faq_ru.md'")
assert_fails "a built stable version takes no new chunks" as_tenant app "$A" \
    "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, text, start_offset, end_offset, char_count, token_count, embedding) VALUES ('$A', '$VA', 99, '$src_a', 'x', 0, 1, 1, 1, decode(repeat('00', 4096), 'hex'))"
assert_contains "  drafts only" "$ASSERT_OUTPUT" "chunks are added to drafts only"
assert_fails "a chunk's text cannot be changed" as_tenant app "$A" "UPDATE kb_chunks SET text = 'x'"
assert_contains "  no UPDATE grant" "$ASSERT_OUTPUT" "permission denied"
assert_fails "a version's build record cannot be changed" as_tenant app "$A" \
    "UPDATE kb_versions SET chunk_settings = '{}'"
assert_contains "  only lifecycle columns are updatable" "$ASSERT_OUTPUT" "permission denied"
draft=$(as_tenant app "$A" "INSERT INTO kb_versions (tenant_id, number, embedder_name, embedder_dim) VALUES ('$A', 100, 'hash', 4) RETURNING id")
assert_fails "an embedding of the wrong size is refused" as_tenant app "$A" \
    "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, text, start_offset, end_offset, char_count, token_count, embedding) VALUES ('$A', '$draft', 0, '$src_a', 'x', 0, 1, 1, 1, '\\x0000')"
assert_contains "  names the dimension" "$ASSERT_OUTPUT" "dimension 4 needs 16"
assert_fails "at most one stable version per tenant" as_tenant app "$A" \
    "UPDATE kb_versions SET state = 'stable' WHERE id = '$draft'"
assert_contains "  the partial unique index" "$ASSERT_OUTPUT" "kb_versions_one_stable"
assert_fails "the API role cannot write" as_tenant api "$A" \
    "INSERT INTO kb_eval_questions (tenant_id, question, expected_source) VALUES ('$A', 'q', 'faq_ru.md')"
assert_fails "a source over 512 KiB is refused" as_tenant app "$A" \
    "INSERT INTO kb_sources (tenant_id, name, format, content) VALUES ('$A', 'big.md', 'markdown', repeat('x', 524289))"

# ---- the retrieval log ------------------------------------------------------------------
op=11111111-2222-5333-8444-555555555555
for expect in 1 0; do
    out=$("$TOOL" query --dsn "$IMP_PG_APP_DSN" --tenant "$A" --version "$VA" --log-op "$op" \
        "сколько стоит стрижка")
    assert_contains "retrieval log written: $expect" "$out" "logged $expect"
done
assert_eq "one log row with 8 chunks, best first, from A's version" "1|8|$VA|t" \
    "$(psql_owner -c "SELECT count(*), max(jsonb_array_length(chunks)), max(kb_version_id::text),
                             bool_and((chunks->0->>'score')::float >= (chunks->1->>'score')::float)
                      FROM retrieval_log WHERE operation_id = '$op' AND tenant_id = '$A'")"
assert_eq "the logged best chunk is the haircut prices" "t" \
    "$(psql_owner -c "SELECT c.heading LIKE '%Стрижки%' FROM retrieval_log l
                      JOIN kb_chunks c ON c.id = (l.chunks->0->>'chunk_id')::bigint
                      WHERE l.operation_id = '$op'")"
