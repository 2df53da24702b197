/* Hybrid retrieval: the in-memory index of a KB version and its loading from Postgres, the
 * query's lexemes, full-text ranking in SQL (for comparison), reciprocal rank fusion and
 * the confidence, the search, the retrieval log and the evaluation. The scans are in
 * retrieval_scan.c, the cache in retrieval_cache.c. */
#include "retrieval_internal.h"

#include "imp/kb.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <assert.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOAD_PAGE_ROWS 1000 /* a page of 1024-dimension rows is about 8 MB of hex */
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)
#define MATRIX_ALIGN 64

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the index ------------------------------------------------------------------------ */

imp_retrieval_index_t *imp_retrieval_index_new(const char *tenant_id, const char *version_id,
                                               const char *embedder_name,
                                               const char *embedder_model, size_t dim)
{
    assert(dim > 0);
    imp_retrieval_index_t *idx = imp_calloc(1, sizeof(*idx));
    atomic_init(&idx->refs, 1);
    idx->tenant = imp_strdup(tenant_id ? tenant_id : "");
    idx->version = imp_strdup(version_id ? version_id : "");
    idx->embedder_name = imp_strdup(embedder_name ? embedder_name : "");
    idx->embedder_model = imp_strdup(embedder_model ? embedder_model : "");
    idx->dim = dim;
    idx->lexicon = kb_lexicon_new();
    return idx;
}

static void index_reserve(imp_retrieval_index_t *idx, size_t cap)
{
    if (cap <= idx->cap)
        return;
    void *m = NULL;
    if (posix_memalign(&m, MATRIX_ALIGN, cap * idx->dim * sizeof(float)) != 0) {
        IMP_LOG_ERROR("out of memory", IMP_LI("bytes", cap * idx->dim * sizeof(float)));
        abort();
    }
    if (idx->n > 0)
        memcpy(m, idx->matrix, idx->n * idx->dim * sizeof(float));
    free(idx->matrix);
    idx->matrix = m;
    idx->chunks = imp_realloc(idx->chunks, cap * sizeof(*idx->chunks));
    idx->cap = cap;
}

void imp_retrieval_index_add(imp_retrieval_index_t *idx, int64_t id, int32_t ordinal,
                             const char *source, const char *heading, const char *text,
                             const float *vec)
{
    assert(!kb_lexicon_sealed(idx->lexicon));
    assert(idx->n == 0 || idx->chunks[idx->n - 1].ordinal < ordinal);
    if (idx->n == idx->cap)
        index_reserve(idx, idx->cap ? idx->cap * 2 : 64);
    imp_retrieval_chunk_t *c = &idx->chunks[idx->n];
    c->id = id;
    c->ordinal = ordinal;
    c->source = imp_strdup(source ? source : "");
    c->heading = imp_strdup(heading ? heading : "");
    c->text = imp_strdup(text ? text : "");
    idx->text_bytes += strlen(c->source) + strlen(c->heading) + strlen(c->text) + 3;
    memcpy(idx->matrix + idx->n * idx->dim, vec, idx->dim * sizeof(float));
    idx->n++;
}

imp_retrieval_index_t *imp_retrieval_index_ref(imp_retrieval_index_t *idx)
{
    atomic_fetch_add(&idx->refs, 1);
    return idx;
}

void imp_retrieval_index_unref(imp_retrieval_index_t *idx)
{
    if (idx == NULL || atomic_fetch_sub(&idx->refs, 1) != 1)
        return;
    for (size_t i = 0; i < idx->n; i++) {
        free((char *)idx->chunks[i].source);
        free((char *)idx->chunks[i].heading);
        free((char *)idx->chunks[i].text);
    }
    free(idx->chunks);
    free(idx->matrix);
    free(idx->qmatrix);
    free(idx->qscale);
    free(idx->ql1);
    free(idx->ql2);
    kb_lexicon_free(idx->lexicon);
    free(idx->tenant);
    free(idx->version);
    free(idx->embedder_name);
    free(idx->embedder_model);
    free(idx);
}

size_t imp_retrieval_index_size(const imp_retrieval_index_t *idx)
{
    return idx->n;
}

size_t imp_retrieval_index_dim(const imp_retrieval_index_t *idx)
{
    return idx->dim;
}

size_t imp_retrieval_index_bytes(const imp_retrieval_index_t *idx)
{
    size_t quantised = idx->qmatrix ? idx->n * (idx->dim * sizeof(int16_t) + 3 * sizeof(float)) : 0;
    return sizeof(*idx) + idx->cap * (idx->dim * sizeof(float) + sizeof(*idx->chunks)) +
           idx->text_bytes + kb_lexicon_bytes(idx->lexicon) + quantised;
}

int imp_retrieval_index_add_tsvector(imp_retrieval_index_t *idx, int config, const char *text)
{
    assert(idx->n > 0);
    if (config < 0 || config >= IMP_RETRIEVAL_CONFIGS)
        return -1;
    return kb_lexicon_add_tsvector(idx->lexicon, (uint32_t)(idx->n - 1), config, text);
}

void imp_retrieval_index_seal(imp_retrieval_index_t *idx)
{
    if (kb_lexicon_sealed(idx->lexicon))
        return;
    kb_lexicon_seal(idx->lexicon, (uint32_t)idx->n);
    retrieval_quantize(idx);
}

size_t imp_retrieval_index_terms(const imp_retrieval_index_t *idx)
{
    return kb_lexicon_terms(idx->lexicon);
}

const char *imp_retrieval_index_tenant(const imp_retrieval_index_t *idx)
{
    return idx->tenant;
}

const char *imp_retrieval_index_version(const imp_retrieval_index_t *idx)
{
    return idx->version;
}

const imp_retrieval_chunk_t *imp_retrieval_index_chunk(const imp_retrieval_index_t *idx, size_t i)
{
    assert(i < idx->n);
    return &idx->chunks[i];
}

const float *imp_retrieval_index_vector(const imp_retrieval_index_t *idx, size_t i)
{
    assert(i < idx->n);
    return idx->matrix + i * idx->dim;
}

imp_error_t *imp_retrieval_index_check_embedder(const imp_retrieval_index_t *idx,
                                                const imp_embedder_t *e)
{
    if (strcmp(idx->embedder_name, imp_embedder_name(e)) != 0 ||
        strcmp(idx->embedder_model, imp_embedder_model(e)) != 0 || idx->dim != imp_embedder_dim(e))
        return imp_error_new(IMP_ERR_POISON, "retrieval_embedder",
                             "kb version %s was built with %s/%s (dimension %zu), the query "
                             "embedder is %s/%s (dimension %zu)",
                             idx->version, idx->embedder_name, idx->embedder_model, idx->dim,
                             imp_embedder_name(e), imp_embedder_model(e), imp_embedder_dim(e));
    return NULL;
}

/* Row of an ordinal (ordinals increase with rows), or SIZE_MAX. */
static size_t row_of(const imp_retrieval_index_t *idx, int32_t ordinal)
{
    size_t lo = 0, hi = idx->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->chunks[mid].ordinal < ordinal)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < idx->n && idx->chunks[lo].ordinal == ordinal ? lo : SIZE_MAX;
}

/* ---- loading from Postgres ------------------------------------------------------------ */

static const char VERSION_SQL[] =
    "SELECT embedder_name, embedder_model, embedder_dim, chunk_count FROM kb_versions "
    "WHERE tenant_id = $1 AND id = $2";

static const char CHUNKS_SQL[] =
    "SELECT c.id, c.ordinal, s.name, c.heading, c.text, c.embedding, c.tsv_simple::text, "
    "c.tsv_ru::text, c.tsv_en::text "
    "FROM kb_chunks c JOIN kb_sources s ON s.tenant_id = c.tenant_id AND s.id = c.source_id "
    "WHERE c.tenant_id = $1 AND c.version_id = $2 AND c.ordinal > $3 "
    "ORDER BY c.ordinal LIMIT " STRINGIFY(LOAD_PAGE_ROWS);

/* Inside the caller's transaction: its tenant must be this one. */
static imp_error_t *check_tx_tenant(imp_pg_t *pg, const char *tenant_id)
{
    char *current = NULL;
    imp_error_t *err = imp_pg_exec_scalar(pg, "SELECT coalesce(imp_current_tenant()::text, '')", 0,
                                          NULL, &current);
    if (err == NULL && strcasecmp(current, tenant_id) != 0)
        err = imp_error_new(IMP_ERR_POISON, "retrieval_tenant",
                            "the transaction's tenant is \"%s\", not %s", current, tenant_id);
    free(current);
    return err;
}

/* float32 little-endian → host floats. */
static void decode_vector(const unsigned char *b, size_t dim, float *out)
{
    for (size_t k = 0; k < dim; k++) {
        uint32_t u = (uint32_t)b[4 * k] | (uint32_t)b[4 * k + 1] << 8 |
                     (uint32_t)b[4 * k + 2] << 16 | (uint32_t)b[4 * k + 3] << 24;
        memcpy(&out[k], &u, sizeof(u));
    }
}

static imp_error_t *load_version(imp_pg_t *pg, const char *tenant_id, const char *version_id,
                                 imp_retrieval_index_t **out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_id, version_id, NULL};
    long long dim = 0, count = 0;
    imp_error_t *err = imp_pg_exec_cached(pg, VERSION_SQL, 2, params, &res);
    if (err != NULL)
        return err;
    if (imp_pg_result_rows(res) != 1) {
        err = imp_error_new(IMP_ERR_POISON, "kb_version_not_found",
                            "kb version %s of tenant %s not found", version_id, tenant_id);
        goto out;
    }
    imp_pg_result_get_int64(res, 0, 2, &dim);
    imp_pg_result_get_int64(res, 0, 3, &count);
    *out = imp_retrieval_index_new(tenant_id, version_id, imp_pg_result_value(res, 0, 0),
                                   imp_pg_result_value(res, 0, 1), (size_t)dim);
    index_reserve(*out, count > 0 ? (size_t)count : 1);
    (*out)->expected = count;
out:
    imp_pg_result_free(res);
    return err;
}

/* One page of rows after the ordinal `after`; *rows is how many came. */
static imp_error_t *load_page(imp_pg_t *pg, imp_retrieval_index_t *idx, long long *after, int *rows)
{
    char after_text[24];
    snprintf(after_text, sizeof(after_text), "%lld", *after);
    const char *params[] = {idx->tenant, idx->version, after_text};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, CHUNKS_SQL, 3, params, &res);
    if (err != NULL)
        return err;
    float *vec = imp_malloc(idx->dim * sizeof(float));
    *rows = imp_pg_result_rows(res);
    for (int r = 0; r < *rows && err == NULL; r++) {
        long long id = 0, ordinal = 0;
        unsigned char *emb = NULL;
        size_t len = 0;
        imp_pg_result_get_int64(res, r, 0, &id);
        imp_pg_result_get_int64(res, r, 1, &ordinal);
        if (imp_pg_result_get_bytea(res, r, 5, &emb, &len) != 0 || len != idx->dim * 4) {
            err = imp_error_new(IMP_ERR_POISON, "kb_embedding",
                                "chunk %lld of kb version %s: embedding of %zu bytes, expected "
                                "%zu",
                                id, idx->version, len, idx->dim * 4);
        } else {
            decode_vector(emb, idx->dim, vec);
            imp_retrieval_index_add(idx, id, (int32_t)ordinal, imp_pg_result_value(res, r, 2),
                                    imp_pg_result_value(res, r, 3), imp_pg_result_value(res, r, 4),
                                    vec);
            for (int c = 0; c < IMP_RETRIEVAL_CONFIGS && err == NULL; c++)
                if (imp_retrieval_index_add_tsvector(idx, c, imp_pg_result_value(res, r, 6 + c)) !=
                    0)
                    err = imp_error_new(IMP_ERR_POISON, "kb_tsvector",
                                        "chunk %lld of kb version %s: unreadable tsvector", id,
                                        idx->version);
            *after = ordinal;
        }
        free(emb);
    }
    free(vec);
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *load_in_tx(imp_pg_t *pg, const char *tenant_id, const char *version_id,
                               imp_retrieval_index_t **out)
{
    imp_error_t *err = load_version(pg, tenant_id, version_id, out);
    long long after = -1;
    int rows = LOAD_PAGE_ROWS;
    while (err == NULL && rows == LOAD_PAGE_ROWS)
        err = load_page(pg, *out, &after, &rows);
    if (err == NULL && (*out)->n != (size_t)(*out)->expected)
        err = imp_error_new(IMP_ERR_POISON, "kb_version_incomplete",
                            "kb version %s has %zu chunks, its row says %lld", version_id,
                            (*out)->n, (*out)->expected);
    if (err == NULL)
        imp_retrieval_index_seal(*out);
    return err;
}

imp_error_t *imp_retrieval_index_load(imp_pg_t *pg, const char *tenant_id, const char *version_id,
                                      imp_retrieval_index_t **out)
{
    imp_retrieval_index_t *idx = NULL;
    imp_error_t *err = NULL;
    bool own_tx = !imp_pg_in_tx(pg);
    *out = NULL;
    if (own_tx) {
        if ((err = imp_pg_tx_begin_with(pg, "ISOLATION LEVEL REPEATABLE READ, READ ONLY")) != NULL)
            return err;
        err = imp_pg_set_tenant(pg, tenant_id);
    } else {
        err = check_tx_tenant(pg, tenant_id);
    }
    if (err == NULL)
        err = load_in_tx(pg, tenant_id, version_id, &idx);
    if (err == NULL && own_tx)
        err = imp_pg_tx_commit(pg);
    if (err != NULL) {
        if (own_tx)
            imp_pg_tx_rollback(pg);
        imp_retrieval_index_unref(idx);
        return imp_error_prefix(err, "loading kb version %s", version_id);
    }
    *out = idx;
    return NULL;
}

/* ---- full-text candidates -------------------------------------------------------------- */

static const char FTS_SQL[] =
    "SELECT c.ordinal, "
    "coalesce(ts_rank_cd('{0.5,0.5,0.5,1.0}', c.tsv_simple, q.s), 0) + "
    "coalesce(ts_rank_cd('{0.5,0.5,0.5,1.0}', c.tsv_ru, q.r), 0) + "
    "coalesce(ts_rank_cd('{0.5,0.5,0.5,1.0}', c.tsv_en, q.e), 0) AS rank "
    "FROM (SELECT imp_kb_tsquery('simple', $3) AS s, imp_kb_tsquery('russian', $3) AS r, "
    "imp_kb_tsquery('english', $3) AS e) q "
    "JOIN kb_chunks c ON c.tsv_simple @@ q.s OR c.tsv_ru @@ q.r OR c.tsv_en @@ q.e "
    "WHERE c.tenant_id = $1 AND c.version_id = $2 "
    "ORDER BY rank DESC, c.ordinal LIMIT $4";

/* Run one statement under the index's tenant: in the caller's transaction, or in a batch
 * with set_config (one round trip, one implicit transaction). */
static imp_error_t *exec_as_tenant(imp_pg_t *pg, const char *tenant_id, const char *sql,
                                   int nparams, const char *const *params,
                                   imp_pg_result_t **res_out, const imp_pg_result_t **borrowed,
                                   imp_pg_batch_t **batch_out)
{
    if (imp_pg_in_tx(pg))
        return imp_pg_exec_cached(pg, sql, nparams, params, res_out);
    imp_pg_batch_t *b = imp_pg_batch_new();
    const char *tp[] = {tenant_id};
    imp_pg_batch_add_cached(b, IMP_PG_SET_TENANT_SQL, 1, tp);
    imp_pg_batch_add_cached(b, sql, nparams, params);
    imp_error_t *err = imp_pg_batch_run(pg, b);
    if (err != NULL) {
        imp_pg_batch_free(b);
        return err;
    }
    *borrowed = imp_pg_batch_result(b, 1);
    *batch_out = b;
    return NULL;
}

imp_error_t *imp_retrieval_fts(imp_pg_t *pg, const imp_retrieval_index_t *idx, const char *query,
                               size_t n, imp_retrieval_fts_hit_t **hits, size_t *nhits)
{
    char limit[24];
    snprintf(limit, sizeof(limit), "%zu", n);
    char *terms = imp_kb_query_terms(query);
    const char *params[] = {idx->tenant, idx->version, terms, limit};
    imp_pg_result_t *own = NULL;
    const imp_pg_result_t *res = NULL;
    imp_pg_batch_t *batch = NULL;
    *hits = NULL;
    *nhits = 0;
    imp_error_t *err = exec_as_tenant(pg, idx->tenant, FTS_SQL, 4, params, &own, &res, &batch);
    free(terms);
    if (err != NULL)
        return imp_error_prefix(err, "full-text search");
    if (own != NULL)
        res = own;
    int rows = imp_pg_result_rows(res);
    *hits = imp_calloc(rows > 0 ? (size_t)rows : 1, sizeof(**hits));
    for (int r = 0; r < rows; r++) {
        long long ordinal = 0;
        imp_pg_result_get_int64(res, r, 0, &ordinal);
        (*hits)[r].ordinal = (int32_t)ordinal;
        (*hits)[r].score = strtod(imp_pg_result_value(res, r, 1), NULL);
    }
    *nhits = (size_t)rows;
    imp_pg_result_free(own);
    imp_pg_batch_free(batch);
    return NULL;
}

/* ---- the lexemes of a query ----------------------------------------------------------------- */

void imp_retrieval_lexemes_dispose(imp_retrieval_lexemes_t *l)
{
    if (l == NULL)
        return;
    for (int c = 0; c < IMP_RETRIEVAL_CONFIGS; c++) {
        for (size_t i = 0; i < l->n[c]; i++)
            free(l->lex[c][i]);
        free(l->lex[c]);
    }
    memset(l, 0, sizeof(*l));
}

char *imp_retrieval_lexemes_param(const char *query)
{
    return imp_kb_query_terms(query);
}

imp_error_t *imp_retrieval_query_lexemes(imp_pg_t *pg, const char *query,
                                         imp_retrieval_lexemes_t *out)
{
    memset(out, 0, sizeof(*out));
    char *terms = imp_retrieval_lexemes_param(query);
    const char *params[] = {terms};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, IMP_RETRIEVAL_LEXEMES_SQL, 1, params, &res);
    free(terms);
    if (err != NULL)
        return imp_error_prefix(err, "query lexemes");
    imp_retrieval_lexemes_parse(res, out);
    imp_pg_result_free(res);
    return NULL;
}

void imp_retrieval_lexemes_parse(const imp_pg_result_t *res, imp_retrieval_lexemes_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *text = imp_pg_result_value(res, 0, 0);
    json_t *doc = json_loads(text != NULL ? text : "", 0, NULL);
    for (int c = 0; c < IMP_RETRIEVAL_CONFIGS; c++) {
        json_t *arr = json_array_get(doc, (size_t)c);
        out->lex[c] = imp_calloc(json_array_size(arr) + 1, sizeof(char *));
        for (size_t i = 0; i < json_array_size(arr); i++)
            if (json_is_string(json_array_get(arr, i)))
                out->lex[c][out->n[c]++] = imp_strdup(json_string_value(json_array_get(arr, i)));
    }
    json_decref(doc);
}

/* ---- fusion ---------------------------------------------------------------------------- */

typedef struct {
    size_t row;
    int fts_rank, dense_rank;
    double fts_score, dense_score, score;
} candidate_t;

static candidate_t *find_candidate(candidate_t *c, size_t n, size_t row)
{
    for (size_t i = 0; i < n; i++)
        if (c[i].row == row)
            return &c[i];
    return NULL;
}

static int best_rank(const candidate_t *c)
{
    int a = c->fts_rank ? c->fts_rank : 1 << 30, b = c->dense_rank ? c->dense_rank : 1 << 30;
    return a < b ? a : b;
}

static int cmp_candidate(const void *pa, const void *pb)
{
    const candidate_t *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    if (best_rank(a) != best_rank(b))
        return best_rank(a) < best_rank(b) ? -1 : 1;
    if (a->dense_score != b->dense_score)
        return a->dense_score > b->dense_score ? -1 : 1;
    return a->row < b->row ? -1 : a->row > b->row;
}

static double confidence(const imp_retrieval_hit_t *best, const imp_retrieval_params_t *p)
{
    double f = best->score / (2.0 / (p->rrf_k + 1.0));
    double d = (best->dense_score - p->dense_floor) / (p->dense_full - p->dense_floor);
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    d = d < 0 ? 0 : d > 1 ? 1 : d;
    return sqrt(f * d);
}

/* 0 threads: two (at most the CPUs online) once the matrix is large enough for the scan to
 * take milliseconds, else one. */
static size_t dense_threads(const imp_retrieval_index_t *idx, const imp_retrieval_params_t *p)
{
    if (p->dense_threads > 0)
        return p->dense_threads;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t bytes = idx->n * idx->dim * sizeof(float);
    return bytes >= ((size_t)8 << 20) && cpus > 1 ? 2 : 1;
}

static imp_retrieval_params_t effective_params(const imp_retrieval_params_t *given)
{
    imp_retrieval_params_t p = IMP_RETRIEVAL_PARAMS_DEFAULT, d = p;
    if (given == NULL)
        return p;
    p = *given;
    if (p.k == 0)
        p.k = d.k;
    if (p.fts_n == 0)
        p.fts_n = d.fts_n;
    if (p.dense_n == 0)
        p.dense_n = d.dense_n;
    if (p.rrf_k <= 0)
        p.rrf_k = d.rrf_k;
    if (p.dense_full <= p.dense_floor) {
        p.dense_floor = d.dense_floor;
        p.dense_full = d.dense_full;
    }
    return p;
}

/* Gather both lists into candidates (at most nfts + dense_n). */
static size_t gather(const imp_retrieval_index_t *idx, const float *qvec,
                     const imp_retrieval_fts_hit_t *fts, size_t nfts,
                     const imp_retrieval_dense_hit_t *dense, size_t ndense, candidate_t *c)
{
    size_t n = 0;
    for (size_t i = 0; i < nfts; i++) {
        size_t row = row_of(idx, fts[i].ordinal);
        if (row == SIZE_MAX || find_candidate(c, n, row) != NULL)
            continue;
        c[n++] = (candidate_t){.row = row, .fts_rank = (int)i + 1, .fts_score = fts[i].score};
    }
    for (size_t i = 0; i < ndense; i++) {
        candidate_t *x = find_candidate(c, n, dense[i].row);
        if (x == NULL) {
            x = &c[n++];
            *x = (candidate_t){.row = dense[i].row};
        }
        x->dense_rank = (int)i + 1;
        x->dense_score = dense[i].score;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i].dense_rank == 0)
            c[i].dense_score = retrieval_dot(qvec, idx->matrix + c[i].row * idx->dim, idx->dim);
    return n;
}

/* Fuse the dense candidates with the full-text ones into out. */
static void fuse(imp_retrieval_index_t *idx, const float *qvec, const imp_retrieval_fts_hit_t *fts,
                 size_t nfts, const imp_retrieval_dense_hit_t *dense, size_t ndense,
                 const imp_retrieval_params_t *p, imp_retrieval_result_t *out)
{
    double t0 = now_ms();
    candidate_t *c = imp_malloc((nfts + ndense + 1) * sizeof(*c));
    size_t n = gather(idx, qvec, fts, nfts, dense, ndense, c);
    for (size_t i = 0; i < n; i++)
        c[i].score = (c[i].fts_rank ? 1.0 / (p->rrf_k + c[i].fts_rank) : 0) +
                     (c[i].dense_rank ? 1.0 / (p->rrf_k + c[i].dense_rank) : 0);
    qsort(c, n, sizeof(*c), cmp_candidate);
    out->n = n < p->k ? n : p->k;
    out->hits = imp_calloc(out->n ? out->n : 1, sizeof(*out->hits));
    for (size_t i = 0; i < out->n; i++)
        out->hits[i] = (imp_retrieval_hit_t){.chunk = &idx->chunks[c[i].row],
                                             .score = c[i].score,
                                             .fts_rank = c[i].fts_rank,
                                             .fts_score = c[i].fts_score,
                                             .dense_rank = c[i].dense_rank,
                                             .dense_score = c[i].dense_score};
    out->confidence = out->n ? confidence(&out->hits[0], p) : 0;
    out->index = imp_retrieval_index_ref(idx);
    out->timings.fuse_ms = now_ms() - t0;
    free(c);
}

void imp_retrieval_fuse(imp_retrieval_index_t *idx, const float *qvec,
                        const imp_retrieval_fts_hit_t *fts, size_t nfts,
                        const imp_retrieval_params_t *params, imp_retrieval_result_t *out)
{
    imp_retrieval_params_t p = effective_params(params);
    imp_retrieval_dense_hit_t *dense = imp_malloc(p.dense_n * sizeof(*dense));
    size_t ndense = 0;
    double t0 = now_ms();
    imp_retrieval_dense(idx, qvec, p.dense_n, dense_threads(idx, &p), dense, &ndense);
    double dense_ms = now_ms() - t0;
    memset(out, 0, sizeof(*out));
    fuse(idx, qvec, fts, nfts, dense, ndense, &p, out);
    out->timings.dense_ms = dense_ms;
    free(dense);
}

/* The full-text candidates, in memory or from Postgres. *fts is a new array. */
static imp_error_t *full_text(imp_pg_t *pg, const imp_retrieval_index_t *idx, const char *query,
                              const imp_retrieval_params_t *p, imp_retrieval_fts_hit_t **fts,
                              size_t *nfts)
{
    if (p->fts_in_postgres)
        return imp_retrieval_fts(pg, idx, query, p->fts_n, fts, nfts);
    *fts = imp_malloc(p->fts_n * sizeof(**fts));
    if (p->lexemes != NULL) {
        imp_retrieval_lexical(idx, p->lexemes, p->fts_n, *fts, nfts);
        return NULL;
    }
    imp_retrieval_lexemes_t lexemes = {0};
    imp_error_t *err = imp_retrieval_query_lexemes(pg, query, &lexemes);
    if (err == NULL)
        imp_retrieval_lexical(idx, &lexemes, p->fts_n, *fts, nfts);
    imp_retrieval_lexemes_dispose(&lexemes);
    return err;
}

imp_error_t *imp_retrieval_search(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *emb,
                                  const char *query, const imp_retrieval_params_t *params,
                                  imp_retrieval_result_t *out)
{
    imp_retrieval_params_t p = effective_params(params);
    imp_retrieval_fts_hit_t *fts = NULL;
    imp_retrieval_dense_hit_t *dense = NULL;
    size_t nfts = 0, ndense = 0;
    memset(out, 0, sizeof(*out));
    if (query == NULL)
        return imp_error_new(IMP_ERR_POISON, "retrieval_query", "query is NULL");
    imp_error_t *err = imp_retrieval_index_check_embedder(idx, emb);
    if (err != NULL)
        return err;
    double t0 = now_ms();
    float *qvec = imp_malloc(idx->dim * sizeof(float));
    if ((err = imp_embedder_embed(emb, &query, 1, qvec)) != NULL) {
        free(qvec);
        return err;
    }
    /* The dense scan starts on its helper thread while this one waits for Postgres, then
     * joins in. */
    double t1 = now_ms();
    retrieval_dense_job_t *job =
        retrieval_dense_begin(idx, qvec, p.dense_n, dense_threads(idx, &p));
    err = full_text(pg, idx, query, &p, &fts, &nfts);
    double t2 = now_ms();
    dense = imp_malloc(p.dense_n * sizeof(*dense));
    retrieval_dense_end(job, dense, &ndense);
    double t3 = now_ms();
    if (err == NULL) {
        fuse(idx, qvec, fts, nfts, dense, ndense, &p, out);
        out->timings.embed_ms = t1 - t0;
        out->timings.fts_ms = t2 - t1;
        out->timings.dense_ms = t3 - t1;
    }
    free(dense);
    free(fts);
    free(qvec);
    return err;
}

void imp_retrieval_result_dispose(imp_retrieval_result_t *r)
{
    if (r == NULL)
        return;
    free(r->hits);
    imp_retrieval_index_unref(r->index);
    memset(r, 0, sizeof(*r));
}

/* ---- the retrieval log ----------------------------------------------------------------- */

char *imp_retrieval_result_json(const imp_retrieval_result_t *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const imp_retrieval_hit_t *h = &r->hits[i];
        json_t *o = json_object();
        json_object_set_new(o, "chunk_id", json_integer(h->chunk->id));
        json_object_set_new(o, "ordinal", json_integer(h->chunk->ordinal));
        json_object_set_new(o, "source", json_string(h->chunk->source));
        json_object_set_new(o, "score", json_real(h->score));
        json_object_set_new(o, "fts_rank", json_integer(h->fts_rank));
        json_object_set_new(o, "fts_score", json_real(h->fts_score));
        json_object_set_new(o, "dense_rank", json_integer(h->dense_rank));
        json_object_set_new(o, "dense_score", json_real(h->dense_score));
        json_array_append_new(arr, o);
    }
    char *text = json_dumps(arr, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(arr);
    return text;
}

static const char LOG_SQL[] =
    "INSERT INTO retrieval_log (tenant_id, operation_id, kb_version_id, query, chunks, "
    "confidence) VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (operation_id) DO NOTHING";

imp_error_t *imp_retrieval_log_write(imp_pg_t *pg, const char *operation_id, const char *query,
                                     const imp_retrieval_result_t *r, bool *inserted)
{
    if (r->index == NULL)
        return imp_error_new(IMP_ERR_POISON, "retrieval_query", "no result to log");
    char *chunks = imp_retrieval_result_json(r);
    char conf[32];
    snprintf(conf, sizeof(conf), "%.6f", r->confidence);
    const char *params[] = {r->index->tenant, operation_id, r->index->version, query, chunks, conf};
    imp_pg_result_t *own = NULL;
    const imp_pg_result_t *res = NULL;
    imp_pg_batch_t *batch = NULL;
    imp_error_t *err =
        inserted == NULL && imp_pg_in_tx(pg)
            ? imp_pg_exec_deferred(pg, LOG_SQL, 6, params)
            : exec_as_tenant(pg, r->index->tenant, LOG_SQL, 6, params, &own, &res, &batch);
    if (err == NULL && inserted != NULL)
        *inserted = imp_pg_result_affected(own != NULL ? own : res) > 0;
    imp_pg_result_free(own);
    imp_pg_batch_free(batch);
    free(chunks);
    return err != NULL ? imp_error_prefix(err, "retrieval log") : NULL;
}

/* ---- evaluation ------------------------------------------------------------------------ */

bool imp_retrieval_chunk_matches(const imp_retrieval_chunk_t *c, const char *source,
                                 const char *fragment)
{
    if (source != NULL && strcmp(c->source, source) != 0)
        return false;
    return fragment == NULL || strstr(c->heading, fragment) != NULL ||
           strstr(c->text, fragment) != NULL;
}

imp_error_t *imp_retrieval_eval(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *emb,
                                const imp_retrieval_eval_question_t *q, size_t n, size_t k,
                                const imp_retrieval_params_t *params, imp_retrieval_eval_t *out)
{
    imp_retrieval_params_t p = effective_params(params);
    if (p.k < k)
        p.k = k;
    memset(out, 0, sizeof(*out));
    out->k = k;
    out->rank = imp_calloc(n ? n : 1, sizeof(*out->rank));
    out->confidence = imp_calloc(n ? n : 1, sizeof(*out->confidence));
    for (size_t i = 0; i < n; i++) {
        imp_retrieval_result_t res = {0};
        imp_error_t *err = imp_retrieval_search(pg, idx, emb, q[i].question, &p, &res);
        if (err != NULL)
            return imp_error_prefix(err, "question %zu", i + 1);
        for (size_t h = 0; h < res.n && out->rank[i] == 0; h++)
            if (imp_retrieval_chunk_matches(res.hits[h].chunk, q[i].source, q[i].fragment))
                out->rank[i] = (int)h + 1;
        out->confidence[i] = res.confidence;
        out->hit1 += out->rank[i] == 1;
        out->hitk += out->rank[i] >= 1 && (size_t)out->rank[i] <= k;
        out->questions++;
        imp_retrieval_result_dispose(&res);
    }
    return NULL;
}

void imp_retrieval_eval_dispose(imp_retrieval_eval_t *e)
{
    if (e == NULL)
        return;
    free(e->rank);
    free(e->confidence);
    memset(e, 0, sizeof(*e));
}
