# The quality check: test questions set (and refused when malformed), `kb eval` (hit@1, hit@k,
# the questions that missed, stored in kb_versions.eval), the tenant's KB settings, and the
# promotion gate: refused with the failing questions listed when kb_min_hit_rate is not met
# (nothing changes), accepted when it is, refused when there are no questions to check, and
# an evaluation refused when the indexer's embedder is not the one the version was built
# with. Sources and questions: the demo salon FAQ (deploy/demo/).
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/integration/indexer_lib.sh"

DEMO="$IMP_SOURCE_DIR/deploy/demo"
start_control
start_indexer indexer

ctl tenant create salon --name "Salon"
expect "create salon" 0 "tenant salon created"
A=$(tenant_id salon)
for f in faq_ru.md faq_en.md faq_kk.csv faq_qa.json; do
    ctl kb source put salon "$f" --file "$DEMO/$f"
    expect "put $f" 0 "created"
done
ctl kb build salon
expect "build 1" 0 "version 1 built as a draft"

# ---- questions -------------------------------------------------------------------------------

NQ=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$DEMO/kb_questions.json")
ctl kb eval salon 1
expect "eval without questions" 1 "failed: kb salon: version 1 cannot be evaluated: salon has no test questions"
ctl kb questions set salon --file "$DEMO/kb_questions.json"
expect "questions set" 0 "succeeded: kb questions of salon set ($NQ questions)"
ctl kb questions set salon --file "$DEMO/kb_questions.json"
expect "the same questions again" 0 "kb questions of salon unchanged ($NQ)"
assert_eq "questions stored" "$NQ" "$(sql "SELECT count(*) FROM kb_eval_questions WHERE tenant_id = '$A'")"
assert_eq "one audit row for them" 1 "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A' AND action = 'kb.questions.set'")"
printf '[{"question": "What time do you open?"}]' >"$T/noexpect.json"
ctl kb questions set salon --file "$T/noexpect.json"
expect "a question without an expectation" 2 "data.questions[0] names neither a source nor a fragment"
printf '[{"question": "a", "source": "x"}, {"question": "a", "fragment": "y"}]' >"$T/dup.json"
ctl kb questions set salon --file "$T/dup.json"
expect "a question twice" 2 "repeats question 0"
printf '{"question": "a"}' >"$T/object.json"
ctl kb questions set salon --file "$T/object.json"
expect "not a list" 2 "is not a JSON array of questions"
# Under the file's limit (4 MiB), over a command's once encoded (Kafka's message size).
python3 -c 'import json; print(json.dumps([{"question": "q%d %s" % (i, "x" * 1000), "source": "faq_en.md"} for i in range(1000)]))' >"$T/big.json"
ctl kb questions set salon --file "$T/big.json"
expect "a command too large for Kafka" 2 "more than the 960000 a command may be (Kafka's message size)"
assert_eq "questions unchanged after the refused ones" "$NQ" \
    "$(sql "SELECT count(*) FROM kb_eval_questions WHERE tenant_id = '$A'")"

# ---- eval -------------------------------------------------------------------------------------

ctl kb eval salon 1
expect "eval 1" 0 "succeeded: kb salon version 1: hit@1"
H1=$(printf '%s\n' "$OUT" | sed -n 's/^hit@1 \([0-9]*\)\/.*/\1/p')
H3=$(printf '%s\n' "$OUT" | sed -n 's/^hit@3 \([0-9]*\)\/.*/\1/p')
assert_eq "eval prints hit@1 and hit@3 of $NQ questions" "$NQ $NQ" \
    "$(printf '%s\n' "$OUT" | sed -n 's/^hit@[13] [0-9]*\/\([0-9]*\) .*/\1/p' | paste -sd' ')"
assert_eq "kb_versions.eval holds the same" "$H1|$H3|3|$NQ" \
    "$(sql "SELECT (eval->>'hit1') || '|' || (eval->>'hitk') || '|' || (eval->>'k') || '|' || (eval->>'questions') FROM kb_versions WHERE tenant_id = '$A' AND number = 1")"
[ "$H3" -ge "$H1" ] || fail "hit@3 ($H3) below hit@1 ($H1)"
assert_eq "one missed line per question not in the top 3" "$((NQ - H3))" \
    "$(printf '%s\n' "$OUT" | grep -c '^missed: ' || true)"
ctl kb eval salon 1 --k 1
expect "eval --k 1" 0 "hit@1"
assert_eq "--k 1: hit@k is hit@1" "hit@1 $H1/$NQ" "$(printf '%s\n' "$OUT" | sed -n 3p | cut -d' ' -f1,2)"
ctl kb eval salon 7
expect "eval of a version that does not exist" 1 "failed: kb salon has no version 7"

# Two questions nothing in the FAQ answers.
python3 - "$DEMO/kb_questions.json" "$T/questions.json" <<'PY'
import json, sys
qs = json.load(open(sys.argv[1]))
qs.append({"question": "What is the capital of Mongolia?", "fragment": "Ulaanbaatar"})
qs.append({"question": "Do you repair bicycles?", "source": "bicycles.md"})
json.dump(qs, open(sys.argv[2], "w"), ensure_ascii=False)
PY
ctl kb questions set salon --file "$T/questions.json"
expect "questions with two that cannot be found" 0 "set ($((NQ + 2)) questions)"
ctl kb eval salon 1
expect "eval with them" 0 "hit@3"
assert_contains "the first is listed as not found" "$OUT" \
    'missed: What is the capital of Mongolia? (expected "Ulaanbaatar"; not found)'
assert_contains "the second too" "$OUT" 'missed: Do you repair bicycles? (expected bicycles.md; not found)'

# ---- the promotion gate ------------------------------------------------------------------------

ctl kb settings salon --min-hit-rate 1
expect "require every question" 0 'kb settings of salon set: {"kb_min_hit_rate":1'
ctl kb settings salon --min-hit-rate 1
expect "the same setting again" 0 "kb settings of salon unchanged"
ctl kb settings salon --min-hit-rate 1.5
expect "a rate above 1" 2 "--min-hit-rate wants a number from 0 to 1"
ctl kb promote salon 1
expect "promote below the minimum" 1 "failed: kb salon: version 1 not promoted: hit@3"
assert_contains "the refusal names the minimum" "$OUT" "is below the tenant's kb_min_hit_rate 1.000"
assert_contains "and lists the failing questions" "$OUT" \
    'missed: What is the capital of Mongolia? (expected "Ulaanbaatar"; not found)'
assert_contains "all of them" "$OUT" 'missed: Do you repair bicycles? (expected bicycles.md; not found)'
assert_eq "nothing promoted" "1:draft" "$(states salon)"
assert_eq "no release, no promote audited" "0 0" \
    "$(sql "SELECT (SELECT count(*) FROM kb_releases WHERE tenant_id = '$A') || ' ' || (SELECT count(*) FROM audit_log WHERE tenant_id = '$A' AND action = 'kb.promote')")"
assert_eq "imp.control.v1: only the build's event" 1 "$(kb_changes "$A")"
assert_eq "the refused evaluation is kept on the version" "$((NQ + 2))" \
    "$(sql "SELECT eval->>'questions' FROM kb_versions WHERE tenant_id = '$A' AND number = 1")"

RATE=$(python3 -c "print(round(($H3 - 0.5) / ($NQ + 2), 4))")
ctl kb settings salon --min-hit-rate "$RATE" --eval-k 3
expect "a minimum the version meets ($RATE)" 0 "kb settings of salon set"
ctl kb promote salon 1
expect "promote when the minimum is met" 0 "succeeded: kb salon: version 1 is stable"
assert_contains "the promotion reports its evaluation" "$OUT" "hit@3 $H3/$((NQ + 2))"
assert_eq "promoted" "1:stable" "$(states salon)"
ctl kb settings salon --min-hit-rate ''
expect "remove the minimum" 0 'kb settings of salon set: {"kb_eval_k":3}'
assert_eq "the tenant's settings" '{"kb_eval_k": 3}' "$(sql "SELECT settings::text FROM tenants WHERE id = '$A'")"
assert_eq "settings audited" 3 "$(sql "SELECT count(*) FROM audit_log WHERE tenant_id = '$A' AND action = 'kb.settings'")"

# A tenant with a minimum and no questions: nothing to check, so no promotion.
ctl tenant create quiet --name "Quiet"
expect "create quiet" 0 "created"
ctl kb source put quiet faq_en.md --file "$DEMO/faq_en.md"
expect "put" 0 "created"
ctl kb settings quiet --min-hit-rate 0.5
expect "quiet's minimum" 0 "set"
ctl kb build quiet
expect "build quiet 1" 0 "version 1 built"
ctl kb promote quiet 1
expect "promote without questions" 1 "not promoted: kb_min_hit_rate is 0.500 and version 1 cannot be evaluated: quiet has no test questions"
assert_eq "quiet: nothing promoted" "1:draft" "$(states quiet)"

# ---- chunk settings -----------------------------------------------------------------------------

ctl kb settings quiet --chunk-max 400 --chunk-target 200 --chunk-overlap 50
expect "smaller chunks" 0 '"kb_chunk":{"max_chars":400,"overlap_chars":50,"target_chars":200}'
ctl kb settings quiet --chunk-max 100
expect "chunk settings the chunker refuses" 2 "data.chunk"
ctl kb build quiet
expect "build quiet 2 with them" 0 "version 2 built"
assert_eq "version 2 records them, and cut smaller chunks" \
    '{"max_chars": 400, "target_chars": 200, "overlap_chars": 50}|true|true' \
    "$(sql "SELECT v2.chunk_settings::text || '|' || (v2.chunk_count > v1.chunk_count) || '|' || ((SELECT max(char_count) FROM kb_chunks WHERE version_id = v2.id) <= 400) FROM kb_versions v1, kb_versions v2 WHERE v1.tenant_id = '$(tenant_id quiet)' AND v2.tenant_id = v1.tenant_id AND v1.number = 1 AND v2.number = 2")"

# ---- another embedder ---------------------------------------------------------------------------

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
start_indexer indexer512 IMP_EMBED_DIM=512
ctl kb eval salon 1
expect "eval with an embedder of another dimension" 1 "version 1 cannot be evaluated"
assert_contains "it says why" "$OUT" "was built with hash/hash-ngram-v1 (dimension 1024), the query embedder is hash/hash-ngram-v1 (dimension 512)"

stop_bg "$INDEXER_PID" || fail "imperium-indexer did not stop cleanly"
pass "imperium-indexer stopped cleanly"
stop_bg "$CONTROL_PID" || fail "imperium-control did not stop cleanly"
pass "imperium-control stopped cleanly"
