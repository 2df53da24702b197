#!/usr/bin/env bash
# Retrieval benchmark: top-8 hybrid retrieval (Postgres full text + exact dense scan, fused by
# reciprocal rank) over 20,000 chunks of one tenant with 1024-dimension embeddings: p50 / p90
# / p99 per query over 1,000 queries, the dense scan's throughput in GB/s of the matrix
# scanned, and the machine's memory bandwidth measured in the same run. Target: p99 <= 10 ms.
# Runs inside tests/harness.sh (deploy/dev.sh bench); BENCH_CHUNKS and BENCH_QUERIES change
# the sizes.
#
# The corpus: the demo FAQ (deploy/demo, 49 chunks) plus synthetic markdown sections, one
# chunk each, drawn from the FAQ's own vocabulary and 3,000 made-up words with a Zipf
# distribution (so common words are common, as in real text). The queries: the demo and
# held-out questions, then 2-5 consecutive words of random chunks.
set -euo pipefail
source "$IMP_SOURCE_DIR/tests/lib/common.sh"

CHUNKS=${BENCH_CHUNKS:-20000}
QUERIES=${BENCH_QUERIES:-1000}
DEMO_CHUNKS=49
TENANT=cccccccc-cccc-4ccc-8ccc-cccccccccccc
DEMO="$IMP_SOURCE_DIR/deploy/demo"
DIR="$IMP_TEST_TMP/bench-kb"
mkdir -p "$DIR"

psql_owner -c "INSERT INTO tenants (id, slug, name) VALUES ('$TENANT', 'bench', 'Bench')"

python3 - "$DIR" "$((CHUNKS - DEMO_CHUNKS))" "$DEMO"/faq_ru.md "$DEMO"/faq_en.md <<'PY'
import random, re, sys
out, sections, faqs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rnd = random.Random(20250101)
words = []
for f in faqs:
    words += [w.lower() for w in re.findall(r"[^\W\d_]{3,}", open(f, encoding="utf-8").read())]
vocab = list(dict.fromkeys(words))
ru, en = "бвгдзклмнпрстфхцчш", "bcdfghklmnprstvwz"
for i in range(3000):
    cons, vow = (ru, "аеиоуя") if i % 2 else (en, "aeiou")
    vocab.append("".join(rnd.choice(cons) + rnd.choice(vow) for _ in range(rnd.randint(2, 4))))
rnd.shuffle(vocab)
weights = [1.0 / (r + 1) for r in range(len(vocab))]
def sentence():
    ws = rnd.choices(vocab, weights, k=rnd.randint(6, 14))
    return ws[0].capitalize() + " " + " ".join(ws[1:]) + "."
files, cur, size = 0, [], 0
def flush():
    global files, cur, size
    with open(f"{out}/bench_{files:03d}.md", "w", encoding="utf-8") as fh:
        fh.write("".join(cur))
    files, cur, size = files + 1, [], 0
for s in range(sections):
    body = ""
    while True:
        nxt = (body + " " if body else "") + sentence()
        if len(nxt) > 560:
            break
        body = nxt
    text = f"## Раздел {s} — section {s}\n\n{body}\n\n"
    if size + len(text.encode()) > 500_000:
        flush()
    cur.append(text)
    size += len(text.encode())
if cur:
    flush()
PY

say "loading $CHUNKS chunks"
version=$("$IMP_BUILD_DIR/bin/retrieval_tool" load --dsn "$IMP_PG_APP_DSN" --tenant "$TENANT" \
    --promote "$DEMO"/faq_ru.md "$DEMO"/faq_en.md "$DEMO"/faq_qa.json "$DEMO"/faq_kk.csv \
    "$DIR"/bench_*.md)
assert_eq "chunks in the benchmark's version" "$CHUNKS" \
    "$(psql_owner -c "SELECT count(*) FROM kb_chunks WHERE version_id = '$version'")"
psql_owner -c "ANALYZE kb_chunks"

"$IMP_BUILD_DIR/bin/bench_retrieval" --dsn "$IMP_PG_APP_DSN" --tenant "$TENANT" \
    --version "$version" --queries "$QUERIES" --k 8 --dim 1024 --pg-fts-queries 20 \
    "$DEMO/kb_questions.json" "$IMP_SOURCE_DIR/tests/data/kb_heldout.json"
