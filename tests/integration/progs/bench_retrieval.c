/* Retrieval benchmark (tests/bench/retrieval/run.sh): top-k hybrid retrieval latency over
 * one tenant's KB version, the dense scan's throughput, and the machine's memory bandwidth
 * measured in the same run.
 *
 *   bench_retrieval --dsn DSN --tenant T --version V [--queries 1000] [--k 8] [--dim 1024]
 *                   [--threads 0] [--pg-fts-queries 20] [QUESTIONS.json ...]
 *
 * Queries: the questions of the given files (JSON arrays of {"question"} or strings), then
 * 2-5 words sampled from random chunks of the index, up to --queries. Each query is timed
 * end to end (embedding, the query's lexemes from Postgres, full-text ranking in memory, the
 * dense scan, fusion) with the default parameters. --pg-fts-queries N runs the first N
 * queries again with the full text ranked in Postgres instead, for comparison. */
#include "imp/embed.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/pg.h"
#include "imp/retrieval.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANDWIDTH_BYTES ((size_t)512 << 20)
#define WARMUP 50

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* CPU time of this process, all threads. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void must(imp_error_t *err, const char *what)
{
    if (err == NULL)
        return;
    fprintf(stderr, "bench_retrieval: %s: %s\n", what, imp_error_message(err));
    exit(2);
}

static unsigned long long rng = 0x9e3779b97f4a7c15ULL;

static unsigned long long next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- memory bandwidth ------------------------------------------------------------------ */

static volatile uint64_t sink;

/* Best of five sequential reads of a buffer far larger than the caches, in GB/s. */
static double read_bandwidth(const uint64_t *buf, size_t words)
{
    double best = 0;
    for (int run = 0; run < 5; run++) {
        double t0 = now_ms();
        uint64_t a = 0, b = 0, c = 0, d = 0;
        for (size_t i = 0; i + 4 <= words; i += 4) {
            a += buf[i];
            b += buf[i + 1];
            c += buf[i + 2];
            d += buf[i + 3];
        }
        sink = a + b + c + d;
        double gbs = (double)words * 8 / ((now_ms() - t0) / 1e3) / 1e9;
        if (gbs > best)
            best = gbs;
    }
    return best;
}

/* Best of five memcpy of half the buffer into the other half: bytes copied per second. */
static double copy_bandwidth(char *buf, size_t bytes)
{
    double best = 0;
    for (int run = 0; run < 5; run++) {
        double t0 = now_ms();
        memcpy(buf + bytes / 2, buf, bytes / 2);
        double gbs = (double)(bytes / 2) / ((now_ms() - t0) / 1e3) / 1e9;
        if (gbs > best)
            best = gbs;
    }
    sink = (uint64_t)buf[bytes - 1];
    return best;
}

/* ---- queries --------------------------------------------------------------------------- */

typedef struct {
    char **q;
    size_t n, cap;
} queries_t;

static void add_query(queries_t *qs, const char *text)
{
    if (qs->n == qs->cap) {
        qs->cap = qs->cap ? qs->cap * 2 : 256;
        qs->q = imp_realloc(qs->q, qs->cap * sizeof(*qs->q));
    }
    qs->q[qs->n++] = imp_strdup(text);
}

static void add_question_file(queries_t *qs, const char *path, size_t max)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    for (size_t i = 0; i < json_array_size(doc) && qs->n < max; i++) {
        json_t *item = json_array_get(doc, i);
        json_t *q = json_is_string(item) ? item : json_object_get(item, "question");
        if (json_is_string(q))
            add_query(qs, json_string_value(q));
    }
    json_decref(doc);
}

/* 2-5 consecutive words from a random chunk. */
static void add_sampled(queries_t *qs, const imp_retrieval_index_t *idx)
{
    const char *text =
        imp_retrieval_index_chunk(idx, next_rand() % imp_retrieval_index_size(idx))->text;
    char *copy = imp_strdup(text), *save = NULL, *words[256];
    size_t n = 0;
    for (char *w = strtok_r(copy, " \n\t,.;:!?()—-", &save); w && n < 256;
         w = strtok_r(NULL, " \n\t,.;:!?()—-", &save))
        words[n++] = w;
    size_t len = 2 + next_rand() % 4, start = n > len ? next_rand() % (n - len) : 0;
    char q[512] = "";
    for (size_t i = start; i < start + len && i < n; i++)
        snprintf(q + strlen(q), sizeof(q) - strlen(q), "%s%s", i > start ? " " : "", words[i]);
    add_query(qs, q[0] ? q : "цены");
    free(copy);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

/* ---- main ------------------------------------------------------------------------------ */

typedef struct {
    const char *dsn, *tenant, *version;
    size_t queries, k, dim, pg_fts_queries, threads;
    char **files;
    int nfiles;
} options_t;

static options_t parse(int argc, char **argv)
{
    options_t o = {.queries = 1000, .k = 8, .dim = 1024};
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (strcmp(argv[i], "--dsn") == 0)
            o.dsn = argv[i + 1];
        else if (strcmp(argv[i], "--tenant") == 0)
            o.tenant = argv[i + 1];
        else if (strcmp(argv[i], "--version") == 0)
            o.version = argv[i + 1];
        else if (strcmp(argv[i], "--queries") == 0)
            o.queries = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--k") == 0)
            o.k = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--dim") == 0)
            o.dim = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--threads") == 0)
            o.threads = (size_t)atol(argv[i + 1]);
        else if (strcmp(argv[i], "--pg-fts-queries") == 0)
            o.pg_fts_queries = (size_t)atol(argv[i + 1]);
    }
    o.files = argv + i;
    o.nfiles = argc - i;
    if (o.dsn == NULL || o.tenant == NULL || o.version == NULL || o.queries == 0) {
        fprintf(stderr, "usage: bench_retrieval --dsn DSN --tenant T --version V [--queries N] "
                        "[--k K] [--dim D] [QUESTIONS.json ...]\n");
        exit(2);
    }
    return o;
}

static void bench_memory(double *read_gbs, double *copy_gbs)
{
    char *buf = imp_malloc(BANDWIDTH_BYTES);
    memset(buf, 1, BANDWIDTH_BYTES); /* fault every page in before timing */
    *read_gbs = read_bandwidth((const uint64_t *)buf, BANDWIDTH_BYTES / 8);
    *copy_gbs = copy_bandwidth(buf, BANDWIDTH_BYTES);
    free(buf);
}

/* Dense searches alone: the median milliseconds per query over the embeddings of RUNS
 * queries (a median, because other processes on the machine add outliers). threads 0: the
 * plain float32 scan. */
enum { RUNS = 41, WARM = 3 };

static double bench_dense(const imp_retrieval_index_t *idx, const float *vecs, size_t dim,
                          size_t n_out, size_t threads)
{
    imp_retrieval_dense_hit_t *hits = imp_malloc(n_out * sizeof(*hits));
    double took[RUNS];
    size_t nh = 0;
    for (int r = 0; r < RUNS + WARM; r++) {
        const float *q = vecs + (size_t)(r % RUNS) * dim;
        double t0 = now_ms();
        if (threads == 0)
            imp_retrieval_dense_plain(idx, q, n_out, hits, &nh);
        else
            imp_retrieval_dense(idx, q, n_out, threads, hits, &nh);
        if (r >= WARM) /* the first scans warm the TLB and the page tables */
            took[r - WARM] = now_ms() - t0;
    }
    free(hits);
    qsort(took, RUNS, sizeof(double), cmp_double);
    return took[RUNS / 2];
}

int main(int argc, char **argv)
{
    options_t o = parse(argc, argv);
    imp_log_init("bench_retrieval", IMP_LOG_LEVEL_WARN);
    imp_pg_t *pg = NULL;
    imp_embedder_t *emb = NULL;
    imp_retrieval_index_t *idx = NULL;
    must(imp_pg_connect(o.dsn, &pg), "connect");
    must(imp_embed_hash_new(o.dim, &emb), "embedder");

    double t0 = now_ms();
    must(imp_retrieval_index_load(pg, o.tenant, o.version, &idx), "load");
    double load_ms = now_ms() - t0;
    size_t n = imp_retrieval_index_size(idx);
    double matrix_mb = (double)n * (double)o.dim * 4 / 1e6;

    double read_gbs, copy_gbs;
    bench_memory(&read_gbs, &copy_gbs);
    queries_t qs = {0};
    for (int f = 0; f < o.nfiles; f++)
        add_question_file(&qs, o.files[f], o.queries);
    while (qs.n < o.queries)
        add_sampled(&qs, idx);

    float *vecs = imp_malloc(RUNS * o.dim * sizeof(float));
    for (size_t r = 0; r < RUNS; r++)
        must(imp_embedder_embed(emb, (const char *const *)&qs.q[r % qs.n], 1, vecs + r * o.dim),
             "embed");
    double plain_ms = bench_dense(idx, vecs, o.dim, 50, 0);
    double dense1_ms = bench_dense(idx, vecs, o.dim, 50, 1);
    double dense2_ms = bench_dense(idx, vecs, o.dim, 50, 2);
    double plain_gbs = matrix_mb / 1e3 / (plain_ms / 1e3);
    double quantised_mb = matrix_mb / 2;
    double dense1_gbs = quantised_mb / 1e3 / (dense1_ms / 1e3);

    free(vecs);

    imp_retrieval_params_t p = IMP_RETRIEVAL_PARAMS_DEFAULT;
    p.k = o.k;
    p.dense_threads = o.threads; /* 0: the library's choice */
    double *lat = imp_malloc(o.queries * sizeof(double));
    imp_retrieval_timings_t sum = {0};
    size_t hits = 0;
    double cpu0 = cpu_ms();
    for (size_t i = 0; i < o.queries + WARMUP; i++) {
        const char *q = qs.q[i < WARMUP ? i % qs.n : i - WARMUP];
        imp_retrieval_result_t res = {0};
        double a = now_ms();
        must(imp_retrieval_search(pg, idx, emb, q, &p, &res), "search");
        double took = now_ms() - a;
        if (i >= WARMUP) {
            lat[i - WARMUP] = took;
            sum.embed_ms += res.timings.embed_ms;
            sum.fts_ms += res.timings.fts_ms;
            sum.dense_ms += res.timings.dense_ms;
            sum.fuse_ms += res.timings.fuse_ms;
            hits += res.n;
        }
        imp_retrieval_result_dispose(&res);
    }
    double cpu_per_query = (cpu_ms() - cpu0) / (double)(o.queries + WARMUP);
    qsort(lat, o.queries, sizeof(double), cmp_double);
    double nq = (double)o.queries;

    /* For comparison: the same searches with full text ranked by Postgres (a few only). */
    size_t pg_fts_queries = o.pg_fts_queries < qs.n ? o.pg_fts_queries : qs.n;
    double *pg_lat = imp_malloc((pg_fts_queries + 1) * sizeof(double)), pg_p50 = 0, pg_max = 0;
    imp_retrieval_params_t pgp = p;
    pgp.fts_in_postgres = true;
    for (size_t i = 0; i < pg_fts_queries; i++) {
        imp_retrieval_result_t res = {0};
        double a = now_ms();
        must(imp_retrieval_search(pg, idx, emb, qs.q[i], &pgp, &res), "search (postgres)");
        pg_lat[i] = now_ms() - a;
        imp_retrieval_result_dispose(&res);
    }
    if (pg_fts_queries > 0) {
        qsort(pg_lat, pg_fts_queries, sizeof(double), cmp_double);
        pg_p50 = pct(pg_lat, pg_fts_queries, 0.5);
        pg_max = pg_lat[pg_fts_queries - 1];
    }
    free(pg_lat);

    printf("retrieval benchmark: %zu chunks of one tenant, dimension %zu, top-%zu hybrid\n", n,
           o.dim, o.k);
    printf("  index load from Postgres     %8.0f ms   (matrix %.1f MB; %.1f MB in all with %zu "
           "lexemes and the texts)\n",
           load_ms, matrix_mb, (double)imp_retrieval_index_bytes(idx) / 1e6,
           imp_retrieval_index_terms(idx));
    printf("  queries                      %8zu      (%zu hits returned)\n", o.queries, hits);
    printf("  latency p50                  %8.2f ms\n", pct(lat, o.queries, 0.50));
    printf("  latency p90                  %8.2f ms\n", pct(lat, o.queries, 0.90));
    printf("  latency p99                  %8.2f ms   (target <= 10 ms: %s)\n",
           pct(lat, o.queries, 0.99), pct(lat, o.queries, 0.99) <= 10.0 ? "met" : "MISSED");
    printf("  latency max                  %8.2f ms\n", lat[o.queries - 1]);
    printf("  CPU time per query           %8.2f ms   (this process, all its threads)\n",
           cpu_per_query);
    printf("  mean per stage: embed %.3f ms, full text (lexemes from Postgres + BM25) %.3f ms, "
           "dense (overlapping the full text) %.3f ms, fusion %.3f ms\n",
           sum.embed_ms / nq, sum.fts_ms / nq, sum.dense_ms / nq, sum.fuse_ms / nq);
    printf("  memory bandwidth (this run)  read %.1f GB/s (one thread), memcpy %.1f GB/s "
           "copied\n",
           read_gbs, copy_gbs);
    printf("  dense top-50 alone, plain float32 scan, 1 thread:  %.2f ms = %.1f GB/s of the "
           "%.1f MB matrix (%.0f %% of the read bandwidth)\n",
           plain_ms, plain_gbs, matrix_mb, 100.0 * plain_gbs / read_gbs);
    printf("  dense top-50 alone, as searched (16-bit prefilter + float32 rescoring, same "
           "results):\n      1 thread %.2f ms = %.1f GB/s of the %.1f MB quantised copy (%.0f %% "
           "of the read bandwidth); 2 threads %.2f ms\n",
           dense1_ms, dense1_gbs, quantised_mb, 100.0 * dense1_gbs / read_gbs, dense2_ms);
    if (pg_fts_queries > 0)
        printf("  full text ranked in Postgres (ts_rank_cd, %zu queries): p50 %.1f ms, max "
               "%.1f ms\n",
               pg_fts_queries, pg_p50, pg_max);

    for (size_t i = 0; i < qs.n; i++)
        free(qs.q[i]);
    free(qs.q);
    free(lat);
    imp_retrieval_index_unref(idx);
    imp_embedder_free(emb);
    imp_pg_free(pg);
    return 0;
}
