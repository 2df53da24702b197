/* Hybrid retrieval over one knowledge-base version: a full-text rank and exact dense cosine
 * similarity, fused by reciprocal rank, with a confidence in [0, 1]
 * (docs/knowledge-base.md).
 *
 * Both signals run over the version held in memory. The dense one is an exact scan of the
 * contiguous float32 matrix of its embeddings (with a quantised prefilter that provably
 * changes nothing, see imp_retrieval_dense). The full-text one ranks, with BM25, the lexemes
 * Postgres put in the chunks' tsv_simple / tsv_ru / tsv_en columns (loaded with the embeddings),
 * looked up for the lexemes Postgres makes of the query (imp_kb_query_lexemes, one round
 * trip without table access). Ranking in SQL instead (ts_rank_cd over the three columns,
 * imp_retrieval_fts, params.fts_in_postgres) is kept for comparison: with row-level
 * security the planner cannot use the GIN indexes (the @@ operator is not leakproof), and
 * the tsvectors are toasted, so every query reads and ranks every chunk of the version:
 * about 250 ms per query at 20,000 chunks, against a fraction of a millisecond in memory
 * (tests/bench/retrieval).
 *
 *   imp_retrieval_cache_t *cache = imp_retrieval_cache_new(512 << 20);   // per process
 *   ...
 *   imp_retrieval_index_t *idx = NULL;
 *   err = imp_retrieval_cache_get(cache, pg, tenant_id, version_id, &idx);
 *   imp_retrieval_result_t res = {0};
 *   err = imp_retrieval_search(pg, idx, embedder, "сколько стоит стрижка", NULL, &res);
 *   for (size_t i = 0; i < res.n; i++)
 *       ... res.hits[i].chunk->text, .score, .fts_rank, .dense_rank, res.confidence ...
 *   imp_retrieval_result_dispose(&res);
 *   imp_retrieval_index_unref(idx);
 *   ... on imp.control.v1 for a tenant: imp_retrieval_cache_invalidate(cache, tenant_id);
 *
 * Postgres access runs as the application role under row-level security: outside a
 * transaction these functions open their own (read only) and set app.tenant_id to the
 * index's tenant; inside the caller's transaction (a worker handler) they use it, and the
 * transaction's tenant must be the index's.
 *
 * Threads: an index is immutable once built and may be searched from any number of threads
 * (its reference count is atomic); the cache is internally locked; a pg handle and an
 * embedder are used by one thread at a time, as usual. */
#ifndef IMP_RETRIEVAL_H
#define IMP_RETRIEVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/embed.h"
#include "imp/error.h"
#include "imp/pg.h"

/* ---- the in-memory index of one version ------------------------------------------------ */

typedef struct imp_retrieval_index imp_retrieval_index_t;

typedef struct {
    int64_t id;          /* kb_chunks.id */
    int32_t ordinal;     /* position in the version */
    const char *source;  /* kb_sources.name */
    const char *heading; /* "" when none */
    const char *text;
} imp_retrieval_chunk_t;

/* Load a version's chunks, embeddings and full-text lexemes (rows ordered by ordinal, read
 * in pages) and seal the index. Errors: poison "kb_version_not_found" (no such version for
 * this tenant: another tenant's version id looks exactly like a missing one), poison
 * "kb_version_incomplete" (fewer or more chunks than kb_versions.chunk_count: a builder
 * must insert the version with its final count, in the transaction of its chunks), poison
 * "kb_embedding" (an embedding of the wrong size), "retrieval_tenant" (inside a
 * transaction whose tenant differs), pg errors. */
imp_error_t *imp_retrieval_index_load(imp_pg_t *pg, const char *tenant_id, const char *version_id,
                                      imp_retrieval_index_t **out);

/* An empty index to fill with imp_retrieval_index_add and imp_retrieval_index_add_tsvector,
 * then seal (tests, benchmarks, a builder that already holds the vectors). Reference
 * count 1. */
imp_retrieval_index_t *imp_retrieval_index_new(const char *tenant_id, const char *version_id,
                                               const char *embedder_name,
                                               const char *embedder_model, size_t dim);

/* Append a chunk (strings copied; vec has dim floats, stored as given: pass normalised
 * vectors). Ordinals must increase. Only before the index is sealed. */
void imp_retrieval_index_add(imp_retrieval_index_t *idx, int64_t id, int32_t ordinal,
                             const char *source, const char *heading, const char *text,
                             const float *vec);

/* The full-text configurations, in the order of kb_chunks' columns. */
#define IMP_RETRIEVAL_CONFIGS 3 /* 0 simple (tsv_simple), 1 russian (tsv_ru), 2 english */

/* Give the chunk added last the lexemes of one of its tsvectors, in Postgres's text form
 * ("'стрижк':3A,7 'цен':9"; weight A marks the heading). 0, or -1 when malformed. */
int imp_retrieval_index_add_tsvector(imp_retrieval_index_t *idx, int config, const char *text);

/* Finish building (the postings lists of the lexemes): required before searching, and
 * before the index is shared between threads. imp_retrieval_index_load seals. */
void imp_retrieval_index_seal(imp_retrieval_index_t *idx);

/* Distinct (configuration, lexeme) pairs. */
size_t imp_retrieval_index_terms(const imp_retrieval_index_t *idx);

imp_retrieval_index_t *imp_retrieval_index_ref(imp_retrieval_index_t *idx);
/* Drop a reference; the last one frees. NULL is a no-op. */
void imp_retrieval_index_unref(imp_retrieval_index_t *idx);

size_t imp_retrieval_index_size(const imp_retrieval_index_t *idx);
size_t imp_retrieval_index_dim(const imp_retrieval_index_t *idx);
/* Memory held (the matrix, texts and arrays), for the cache bound. */
size_t imp_retrieval_index_bytes(const imp_retrieval_index_t *idx);
const char *imp_retrieval_index_tenant(const imp_retrieval_index_t *idx);
const char *imp_retrieval_index_version(const imp_retrieval_index_t *idx);
/* Chunk i (0 <= i < size), borrowed from the index. */
const imp_retrieval_chunk_t *imp_retrieval_index_chunk(const imp_retrieval_index_t *idx, size_t i);
/* Row i of the matrix (dim floats). */
const float *imp_retrieval_index_vector(const imp_retrieval_index_t *idx, size_t i);
/* NULL when the embedder is the one the version was built with (name, model, dim); else
 * poison "retrieval_embedder" saying what differs: vectors of different embedders cannot
 * be compared. */
imp_error_t *imp_retrieval_index_check_embedder(const imp_retrieval_index_t *idx,
                                                const imp_embedder_t *e);

/* ---- search ---------------------------------------------------------------------------- */

typedef struct {
    size_t k;             /* results (top k after fusion) */
    size_t dense_threads; /* threads of the dense scan; 0: 2 for a matrix of 8 MiB or more */
    bool fts_in_postgres; /* full text ranked by ts_rank_cd in Postgres (imp_retrieval_fts)
                             instead of BM25 in memory (imp_retrieval_lexical) */
    size_t fts_n;         /* full-text candidates */
    size_t dense_n;       /* dense candidates */
    double rrf_k;         /* reciprocal rank fusion constant */
    double dense_floor;   /* cosine at or below which the dense factor of the confidence is 0 */
    double dense_full;    /* cosine at or above which it is 1 */
    /* The query's lexemes when the caller read them already (imp_retrieval_lexemes_parse of
     * IMP_RETRIEVAL_LEXEMES_SQL, sent with statements of its own); NULL: read them here. */
    const struct imp_retrieval_lexemes *lexemes;
} imp_retrieval_params_t;

/* dense_floor and dense_full suit the hash embedder (a question and the chunk that answers
 * it score about 0.1-0.4 there); a neural model needs its own, read off its eval set. */
#define IMP_RETRIEVAL_PARAMS_DEFAULT                                                               \
    ((imp_retrieval_params_t){                                                                     \
        .k = 8, .fts_n = 50, .dense_n = 50, .rrf_k = 60, .dense_floor = 0.08, .dense_full = 0.45})

/* A full-text hit: a chunk of the index's version by ordinal, with its rank score. */
typedef struct {
    int32_t ordinal;
    double score; /* BM25 (in memory) or ts_rank_cd (in Postgres), summed over the
                     three configurations */
} imp_retrieval_fts_hit_t;

/* A dense hit: a row of the index and its cosine similarity. */
typedef struct {
    size_t row;
    float score;
} imp_retrieval_dense_hit_t;

typedef struct {
    const imp_retrieval_chunk_t *chunk; /* borrowed from the result's index */
    double score;                       /* fused: sum of 1 / (rrf_k + rank) */
    int fts_rank;                       /* 1-based; 0: not among the full-text candidates */
    double fts_score;                   /* ts_rank_cd (0 when fts_rank is 0) */
    int dense_rank;                     /* 1-based; 0: not among the dense candidates */
    double dense_score;                 /* cosine similarity, always computed */
} imp_retrieval_hit_t;

typedef struct {
    double embed_ms, fts_ms, dense_ms, fuse_ms;
} imp_retrieval_timings_t;

typedef struct {
    imp_retrieval_hit_t *hits; /* best first */
    size_t n;
    /* Confidence in [0, 1]: sqrt(F * D) where, for the best hit, F = its fused score divided
     * by the best possible one (2 / (rrf_k + 1): first in both lists), and D = its cosine
     * mapped linearly from [dense_floor, dense_full] onto [0, 1] (clamped). Both signals
     * must agree for a high value; 0 when there is no hit. */
    double confidence;
    imp_retrieval_timings_t timings;
    imp_retrieval_index_t *index; /* the reference that keeps the hits' chunks alive */
} imp_retrieval_result_t;

/* The lexemes of a query under the three configurations, as Postgres analyses it (parser,
 * Snowball stemmers, stop words) after imp_kb_query_terms dropped our own stop words. */
typedef struct imp_retrieval_lexemes {
    char **lex[IMP_RETRIEVAL_CONFIGS];
    size_t n[IMP_RETRIEVAL_CONFIGS];
} imp_retrieval_lexemes_t;

/* One round trip (SELECT imp_kb_query_lexemes($1)), no table access: usable inside or
 * outside a transaction, with any tenant. */
imp_error_t *imp_retrieval_query_lexemes(imp_pg_t *pg, const char *query,
                                         imp_retrieval_lexemes_t *out);
/* The same in parts, for a caller that sends the statement in a batch of its own: the
 * statement (one parameter), its parameter for a query (new string), and its result. */
#define IMP_RETRIEVAL_LEXEMES_SQL "SELECT imp_kb_query_lexemes($1)"
char *imp_retrieval_lexemes_param(const char *query);
void imp_retrieval_lexemes_parse(const imp_pg_result_t *res, imp_retrieval_lexemes_t *out);
void imp_retrieval_lexemes_dispose(imp_retrieval_lexemes_t *l);

/* Full-text candidates in memory: BM25 (k1 1.2, b 0.75, a heading occurrence counts twice)
 * of every chunk containing any of the lexemes, summed over the configurations; the best n
 * into out (n entries), ties by ordinal; *nout of them. Pure. */
void imp_retrieval_lexical(const imp_retrieval_index_t *idx, const imp_retrieval_lexemes_t *q,
                           size_t n, imp_retrieval_fts_hit_t *out, size_t *nout);

/* Full-text candidates ranked by Postgres: each of the 'simple', 'russian' and 'english'
 * configurations turns the query into an OR of its lexemes (imp_kb_tsquery in
 * migrations/0020); ts_rank_cd (heading weighted twice the text) summed over the three
 * ranks the chunks that match any; the best n, ties by ordinal. *hits is a new array
 * (caller frees), best first. Slow on large versions (see the top of this file). */
imp_error_t *imp_retrieval_fts(imp_pg_t *pg, const imp_retrieval_index_t *idx, const char *query,
                               size_t n, imp_retrieval_fts_hit_t **hits, size_t *nhits);

#define IMP_RETRIEVAL_MAX_THREADS 16

/* The n rows most similar to q (dim floats, normalised) by dot product over the whole
 * matrix — exact, no approximate index — best first, ties by row; out holds n entries,
 * *nout = min(n, size). The rows are first scored from a copy of the matrix quantised to
 * 16 bits (made by seal), with a proven bound on each score's error; only rows whose upper
 * bound reaches the n-th best lower bound are scored again from the float32 matrix, so the
 * result is exactly imp_retrieval_dense_plain's while reading about half the bytes.
 * threads > 1 shares the rows with threads - 1 helper threads (at most
 * IMP_RETRIEVAL_MAX_THREADS; small matrices are scanned by the caller alone). The index
 * must be sealed. */
void imp_retrieval_dense(const imp_retrieval_index_t *idx, const float *q, size_t n, size_t threads,
                         imp_retrieval_dense_hit_t *out, size_t *nout);

/* The same by reading every row of the float32 matrix, one thread: the reference, and the
 * benchmark's measure of the matrix scan against the memory bandwidth. */
void imp_retrieval_dense_plain(const imp_retrieval_index_t *idx, const float *q, size_t n,
                               imp_retrieval_dense_hit_t *out, size_t *nout);

/* The pure part: the dense search for qvec, fused with the given full-text hits (best
 * first; ordinals not in the index are ignored), top k with each signal's rank and score,
 * and the confidence. No I/O. params NULL: IMP_RETRIEVAL_PARAMS_DEFAULT. */
void imp_retrieval_fuse(imp_retrieval_index_t *idx, const float *qvec,
                        const imp_retrieval_fts_hit_t *fts, size_t nfts,
                        const imp_retrieval_params_t *params, imp_retrieval_result_t *out);

/* Everything: embed the query (the embedder must be the version's), the query's lexemes from
 * Postgres and full-text candidates from memory (or ranked in Postgres, see params), dense
 * candidates from memory, fusion. Errors from the embedder and pg; out is empty on error. */
imp_error_t *imp_retrieval_search(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *emb,
                                  const char *query, const imp_retrieval_params_t *params,
                                  imp_retrieval_result_t *out);

/* Free the hits and drop the index reference. Idempotent. */
void imp_retrieval_result_dispose(imp_retrieval_result_t *r);

/* [{"chunk_id", "ordinal", "source", "score", "fts_rank", "fts_score", "dense_rank",
 * "dense_score"}, ...] best first: retrieval_log.chunks. A new heap string. */
char *imp_retrieval_result_json(const imp_retrieval_result_t *r);

/* Record the result in retrieval_log for operation_id (a UUID); a second write for the same
 * operation is a no-op (*inserted false). Same transaction rules as above; inside a
 * transaction with inserted NULL the insert is deferred (imp_pg_exec_deferred): it goes out
 * with the transaction's next round trip, which reports its error. */
imp_error_t *imp_retrieval_log_write(imp_pg_t *pg, const char *operation_id, const char *query,
                                     const imp_retrieval_result_t *r, bool *inserted);

/* ---- evaluation (kb eval) -------------------------------------------------------------- */

/* True when the chunk is what a test question expects: its source is `source` (when not
 * NULL) and `fragment` (when not NULL) occurs in its heading or text, byte for byte. */
bool imp_retrieval_chunk_matches(const imp_retrieval_chunk_t *c, const char *source,
                                 const char *fragment);

typedef struct {
    const char *question;
    const char *source;   /* kb_eval_questions.expected_source, or NULL */
    const char *fragment; /* kb_eval_questions.expected_fragment, or NULL */
} imp_retrieval_eval_question_t;

typedef struct {
    size_t questions;
    size_t hit1, hitk; /* questions whose expected chunk is first / in the top k */
    size_t k;
    int *rank;          /* per question: 1-based rank of the first matching hit, 0 if none */
    double *confidence; /* per question */
} imp_retrieval_eval_t;

/* Search every question (imp_retrieval_search with params, k at least the eval's k) and
 * score it. Fails on the first search error. */
imp_error_t *imp_retrieval_eval(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *emb,
                                const imp_retrieval_eval_question_t *q, size_t n, size_t k,
                                const imp_retrieval_params_t *params, imp_retrieval_eval_t *out);
void imp_retrieval_eval_dispose(imp_retrieval_eval_t *e);

/* ---- the cache of loaded indexes ------------------------------------------------------- */

typedef struct imp_retrieval_cache imp_retrieval_cache_t;

/* max_bytes bounds the memory of the cached indexes (imp_retrieval_index_bytes); least
 * recently used ones are dropped first. An index larger than the bound is loaded but not
 * kept. Indexes still referenced by a caller stay alive until released. */
imp_retrieval_cache_t *imp_retrieval_cache_new(size_t max_bytes);
void imp_retrieval_cache_free(imp_retrieval_cache_t *c);

/* The index of (tenant, version): from the cache, or loaded (imp_retrieval_index_load) and
 * cached. *out is a new reference. Concurrent misses may load twice; one copy is kept. */
imp_error_t *imp_retrieval_cache_get(imp_retrieval_cache_t *c, imp_pg_t *pg, const char *tenant_id,
                                     const char *version_id, imp_retrieval_index_t **out);

/* Drop every cached index of the tenant (NULL: of every tenant). A load already under way
 * when this is called is returned to its caller but not cached. */
void imp_retrieval_cache_invalidate(imp_retrieval_cache_t *c, const char *tenant_id);

typedef struct {
    size_t entries, bytes;
    unsigned long long hits, misses, evictions;
} imp_retrieval_cache_stats_t;

void imp_retrieval_cache_stats(imp_retrieval_cache_t *c, imp_retrieval_cache_stats_t *out);

#endif
