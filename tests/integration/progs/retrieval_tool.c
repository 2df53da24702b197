/* Knowledge-base test tool: builds a KB version from source files (chunk, embed with the
 * built-in embedder, insert) as the application role, and runs retrieval against it.
 *
 *   retrieval_tool load --dsn DSN --tenant T [--dim N] [--promote] FILE...
 *       prints the new version's id; the source name is the file's base name, the format
 *       comes from the extension (.md markdown, .txt text, .csv qa_csv, .json qa_json)
 *   retrieval_tool eval --dsn DSN --tenant T --version V --questions FILE [--k 3]
 *                       [--label L] [--min-hit R] [--offtopic FILE] [--max-offtopic C]
 *                       [--fts-postgres]
 *       prints hit@1 and hit@k; exits 1 below --min-hit or above --max-offtopic;
 *       --fts-postgres ranks the full text with ts_rank_cd in Postgres instead of BM25
 *   retrieval_tool query --dsn DSN --tenant T --version V [--k 8] [--log-op UUID] TEXT
 *       prints the hits; with --log-op also writes retrieval_log and prints "logged 1|0"
 *   retrieval_tool isolation --dsn DSN [--threads 4] [--rounds 3] T:V:QFILE...
 *       threads sharing one cache search every spec's questions as their own tenant
 *       (thread i uses spec i mod n); prints "tenant chunk_id" per hit and a summary line
 *       to stderr */
#include "imp/embed.h"
#include "imp/kb.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/pg.h"
#include "imp/retrieval.h"

#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INSERT_BATCH 200
#define MAX_SPECS 8

static const char *opt_dsn, *opt_tenant, *opt_version, *opt_questions, *opt_label = "eval";
static const char *opt_offtopic, *opt_log_op;
static long opt_dim = 1024, opt_k = 0, opt_threads = 4, opt_rounds = 3;
static double opt_min_hit = -1, opt_max_offtopic = 2;
static int opt_promote, opt_fts_postgres;

/* The search parameters of this run. */
static imp_retrieval_params_t params(size_t k)
{
    imp_retrieval_params_t p = IMP_RETRIEVAL_PARAMS_DEFAULT;
    if (k > 0)
        p.k = k;
    p.fts_in_postgres = opt_fts_postgres != 0;
    return p;
}

static void die(const char *what, imp_error_t *err)
{
    fprintf(stderr, "retrieval_tool: %s: %s%s%s\n", what, err ? imp_error_message(err) : "",
            err && imp_error_detail(err) ? " — " : "",
            err && imp_error_detail(err) ? imp_error_detail(err) : "");
    exit(2);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path, NULL);
    size_t cap = 1 << 16, n = 0;
    char *buf = imp_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = imp_realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static imp_pg_t *connect_or_die(void)
{
    imp_pg_t *pg = NULL;
    imp_error_t *err = imp_pg_connect(opt_dsn, &pg);
    if (err != NULL)
        die("connect", err);
    return pg;
}

static imp_embedder_t *embedder_or_die(void)
{
    imp_embedder_t *e = NULL;
    imp_error_t *err = imp_embed_hash_new((size_t)opt_dim, &e);
    if (err != NULL)
        die("embedder", err);
    return e;
}

static void must(imp_error_t *err, const char *what)
{
    if (err != NULL)
        die(what, err);
}

/* ---- load --------------------------------------------------------------------------------- */

typedef struct {
    char *name;
    imp_kb_format_t format;
    char *id, *sha256;
    imp_kb_chunks_t chunks;
} source_t;

static imp_kb_format_t format_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL && strcmp(dot, ".md") == 0)
        return IMP_KB_MARKDOWN;
    if (dot != NULL && strcmp(dot, ".csv") == 0)
        return IMP_KB_QA_CSV;
    if (dot != NULL && strcmp(dot, ".json") == 0)
        return IMP_KB_QA_JSON;
    return IMP_KB_TEXT;
}

static void upsert_source(imp_pg_t *pg, const char *path, source_t *s)
{
    size_t len = 0;
    char *content = read_file(path, &len);
    char *copy = imp_strdup(path);
    s->name = imp_strdup(basename(copy));
    free(copy);
    s->format = format_of(s->name);
    const char *params[] = {opt_tenant, s->name, imp_kb_format_name(s->format), content};
    imp_pg_result_t *res = NULL;
    must(imp_pg_exec(pg,
                     "INSERT INTO kb_sources (tenant_id, name, format, content) "
                     "VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, name) DO UPDATE "
                     "SET format = EXCLUDED.format, content = EXCLUDED.content, "
                     "deleted = false, updated_at = now() RETURNING id, sha256",
                     4, params, &res),
         "upsert source");
    s->id = imp_strdup(imp_pg_result_value(res, 0, 0));
    s->sha256 = imp_strdup(imp_pg_result_value(res, 0, 1));
    imp_pg_result_free(res);
    imp_kb_chunk_settings_t set = IMP_KB_CHUNK_DEFAULTS;
    must(imp_kb_chunk(s->format, content, len, &set, &s->chunks), s->name);
    free(content);
}

static char *built_from(const source_t *s, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "source_id", s[i].id, "name",
                                             s[i].name, "format", imp_kb_format_name(s[i].format),
                                             "sha256", s[i].sha256));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

static char *create_version(imp_pg_t *pg, const source_t *s, size_t n, size_t total,
                            const imp_embedder_t *e)
{
    imp_kb_chunk_settings_t set = IMP_KB_CHUNK_DEFAULTS;
    char *from = built_from(s, n), *settings = imp_kb_chunk_settings_json(&set);
    char dim[16], count[16];
    snprintf(dim, sizeof(dim), "%zu", imp_embedder_dim(e));
    snprintf(count, sizeof(count), "%zu", total);
    const char *params[] = {opt_tenant, from, imp_embedder_name(e), imp_embedder_model(e), dim,
                            settings,   count};
    char *id = NULL;
    must(imp_pg_exec_scalar(
             pg,
             "INSERT INTO kb_versions (tenant_id, number, built_from, embedder_name, "
             "embedder_model, embedder_dim, chunk_settings, chunk_count) "
             "SELECT $1::uuid, coalesce(max(number), 0) + 1, $2::jsonb, $3, $4, $5::integer, "
             "$6::jsonb, $7::integer "
             "FROM kb_versions RETURNING id",
             7, params, &id),
         "create version");
    free(from);
    free(settings);
    return id;
}

static const char CHUNK_SQL[] =
    "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, heading, text, "
    "start_offset, end_offset, char_count, token_count, embedding) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/* Little-endian float32 bytes of a vector, as bytea input text. */
static char *vector_hex(const float *v, size_t dim)
{
    unsigned char *b = imp_malloc(dim * 4);
    for (size_t k = 0; k < dim; k++) {
        uint32_t u;
        memcpy(&u, &v[k], 4);
        for (int j = 0; j < 4; j++)
            b[4 * k + j] = (unsigned char)(u >> (8 * j));
    }
    char *hex = imp_pg_bytea_hex(b, dim * 4);
    free(b);
    return hex;
}

static void add_chunk_insert(imp_pg_batch_t *batch, const char *version, size_t ordinal,
                             const source_t *s, const imp_kb_chunk_t *c, const float *vec,
                             size_t dim)
{
    char ord[16], start[16], end[16], chars[16], tokens[16];
    snprintf(ord, sizeof(ord), "%zu", ordinal);
    snprintf(start, sizeof(start), "%zu", c->start);
    snprintf(end, sizeof(end), "%zu", c->end);
    snprintf(chars, sizeof(chars), "%zu", c->chars);
    snprintf(tokens, sizeof(tokens), "%zu", c->tokens);
    char *hex = vector_hex(vec, dim);
    const char *params[] = {opt_tenant, version, ord,   s->id,  c->heading, c->text,
                            start,      end,     chars, tokens, hex};
    imp_pg_batch_add_cached(batch, CHUNK_SQL, 11, params);
    free(hex);
}

static int cmd_load(int nfiles, char **files)
{
    imp_pg_t *pg = connect_or_die();
    imp_embedder_t *e = embedder_or_die();
    source_t *src = imp_calloc((size_t)nfiles, sizeof(*src));
    double t0 = now_ms();
    must(imp_pg_tx_begin(pg), "begin");
    must(imp_pg_set_tenant(pg, opt_tenant), "set tenant");
    size_t total = 0;
    for (int i = 0; i < nfiles; i++) {
        upsert_source(pg, files[i], &src[i]);
        total += src[i].chunks.n;
    }
    char *version = create_version(pg, src, (size_t)nfiles, total, e);
    double embed_ms = 0, insert_ms = 0;
    size_t dim = imp_embedder_dim(e), ordinal = 0;
    imp_pg_batch_t *batch = imp_pg_batch_new();
    for (int i = 0; i < nfiles; i++) {
        for (size_t c = 0; c < src[i].chunks.n;) {
            size_t m = src[i].chunks.n - c < INSERT_BATCH ? src[i].chunks.n - c : INSERT_BATCH;
            char **docs = imp_malloc(m * sizeof(*docs));
            float *vecs = imp_malloc(m * dim * sizeof(float));
            for (size_t j = 0; j < m; j++)
                docs[j] = imp_kb_chunk_document(src[i].chunks.items[c + j].heading,
                                                src[i].chunks.items[c + j].text);
            double a = now_ms();
            must(imp_embedder_embed(e, (const char *const *)docs, m, vecs), "embed");
            double b = now_ms();
            imp_pg_batch_reset(batch);
            for (size_t j = 0; j < m; j++)
                add_chunk_insert(batch, version, ordinal++, &src[i], &src[i].chunks.items[c + j],
                                 vecs + j * dim, dim);
            must(imp_pg_batch_run(pg, batch), "insert chunks");
            embed_ms += b - a;
            insert_ms += now_ms() - b;
            for (size_t j = 0; j < m; j++)
                free(docs[j]);
            free(docs);
            free(vecs);
            c += m;
        }
    }
    imp_pg_batch_free(batch);
    if (opt_promote) {
        const char *params[] = {opt_tenant, version};
        must(imp_pg_exec(pg,
                         "UPDATE kb_versions SET state = 'archived', archived_at = now() "
                         "WHERE tenant_id = $1 AND state = 'stable' AND id <> $2",
                         2, params, NULL),
             "archive stable");
        must(imp_pg_exec(pg,
                         "UPDATE kb_versions SET state = 'stable', promoted_at = now() "
                         "WHERE tenant_id = $1 AND id = $2",
                         2, params, NULL),
             "promote");
    }
    must(imp_pg_tx_commit(pg), "commit");
    fprintf(stderr,
            "retrieval_tool: loaded %zu chunks from %d sources as version %s in %.0f ms "
            "(embedding %.0f ms, inserting %.0f ms)\n",
            total, nfiles, version, now_ms() - t0, embed_ms, insert_ms);
    printf("%s\n", version);
    for (int i = 0; i < nfiles; i++) {
        free(src[i].name);
        free(src[i].id);
        free(src[i].sha256);
        imp_kb_chunks_dispose(&src[i].chunks);
    }
    free(src);
    free(version);
    imp_embedder_free(e);
    imp_pg_free(pg);
    return 0;
}

/* ---- questions ---------------------------------------------------------------------------- */

typedef struct {
    json_t *doc;
    imp_retrieval_eval_question_t *q;
    size_t n;
} questions_t;

static const char *member(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A JSON array of {"question", "source", "fragment"} objects, or of plain strings. */
static void load_questions(const char *path, questions_t *out)
{
    json_error_t jerr;
    out->doc = json_load_file(path, 0, &jerr);
    if (!json_is_array(out->doc)) {
        fprintf(stderr, "retrieval_tool: %s: %s\n", path, jerr.text);
        exit(2);
    }
    out->n = json_array_size(out->doc);
    out->q = imp_calloc(out->n ? out->n : 1, sizeof(*out->q));
    for (size_t i = 0; i < out->n; i++) {
        json_t *item = json_array_get(out->doc, i);
        if (json_is_string(item)) {
            out->q[i].question = json_string_value(item);
            continue;
        }
        out->q[i].question = member(item, "question");
        out->q[i].source = member(item, "source");
        out->q[i].fragment = member(item, "fragment");
        if (out->q[i].question == NULL) {
            fprintf(stderr, "retrieval_tool: %s: item %zu has no question\n", path, i + 1);
            exit(2);
        }
    }
}

static void free_questions(questions_t *q)
{
    json_decref(q->doc);
    free(q->q);
}

static imp_retrieval_index_t *load_index_or_die(imp_pg_t *pg, const char *tenant,
                                                const char *version)
{
    imp_retrieval_index_t *idx = NULL;
    must(imp_retrieval_index_load(pg, tenant, version, &idx), "load index");
    return idx;
}

/* ---- eval --------------------------------------------------------------------------------- */

static void print_top(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *e, const char *q,
                      size_t k, const char *indent)
{
    imp_retrieval_params_t p = params(k);
    imp_retrieval_result_t res = {0};
    must(imp_retrieval_search(pg, idx, e, q, &p, &res), "search");
    for (size_t h = 0; h < res.n; h++) {
        const imp_retrieval_hit_t *x = &res.hits[h];
        printf("%s%zu. [%s] %s | fused %.4f fts #%d %.3f dense #%d %.3f\n", indent, h + 1,
               x->chunk->source, x->chunk->heading[0] ? x->chunk->heading : "-", x->score,
               x->fts_rank, x->fts_score, x->dense_rank, x->dense_score);
    }
    printf("%sconfidence %.3f\n", indent, res.confidence);
    imp_retrieval_result_dispose(&res);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double offtopic(imp_pg_t *pg, imp_retrieval_index_t *idx, imp_embedder_t *e)
{
    questions_t q = {0};
    load_questions(opt_offtopic, &q);
    double max = 0, sum = 0;
    for (size_t i = 0; i < q.n; i++) {
        imp_retrieval_result_t res = {0};
        imp_retrieval_params_t p = params(0);
        must(imp_retrieval_search(pg, idx, e, q.q[i].question, &p, &res), "search");
        printf("  off-topic %.3f  %s\n", res.confidence, q.q[i].question);
        sum += res.confidence;
        if (res.confidence > max)
            max = res.confidence;
        imp_retrieval_result_dispose(&res);
    }
    printf("%s: off-topic questions=%zu confidence mean=%.3f max=%.3f\n", opt_label, q.n,
           q.n ? sum / (double)q.n : 0, max);
    free_questions(&q);
    return max;
}

static int cmd_eval(void)
{
    imp_pg_t *pg = connect_or_die();
    imp_embedder_t *e = embedder_or_die();
    imp_retrieval_index_t *idx = load_index_or_die(pg, opt_tenant, opt_version);
    questions_t q = {0};
    load_questions(opt_questions, &q);
    size_t k = opt_k > 0 ? (size_t)opt_k : 3;
    imp_retrieval_eval_t ev = {0};
    imp_retrieval_params_t p = params(0);
    must(imp_retrieval_eval(pg, idx, e, q.q, q.n, k, &p, &ev), "eval");
    double *conf = imp_malloc((q.n ? q.n : 1) * sizeof(double));
    for (size_t i = 0; i < q.n; i++) {
        conf[i] = ev.confidence[i];
        if (ev.rank[i] == 0 || (size_t)ev.rank[i] > k) {
            printf("  miss: %s (expected %s / %s)\n", q.q[i].question,
                   q.q[i].source ? q.q[i].source : "-", q.q[i].fragment ? q.q[i].fragment : "-");
            print_top(pg, idx, e, q.q[i].question, k, "      ");
        }
    }
    qsort(conf, q.n, sizeof(double), cmp_double);
    double hit1 = q.n ? (double)ev.hit1 / (double)q.n : 0;
    double hitk = q.n ? (double)ev.hitk / (double)q.n : 0;
    printf("%s: questions=%zu hit@1=%.3f (%zu/%zu) hit@%zu=%.3f (%zu/%zu) confidence "
           "median=%.3f p10=%.3f\n",
           opt_label, q.n, hit1, ev.hit1, q.n, k, hitk, ev.hitk, q.n, q.n ? conf[q.n / 2] : 0,
           q.n ? conf[q.n / 10] : 0);
    int rc = opt_min_hit >= 0 && hitk < opt_min_hit;
    if (rc)
        printf("%s: hit@%zu %.3f is below %.3f\n", opt_label, k, hitk, opt_min_hit);
    if (opt_offtopic != NULL && offtopic(pg, idx, e) > opt_max_offtopic) {
        printf("%s: an off-topic question scored above %.3f\n", opt_label, opt_max_offtopic);
        rc = 1;
    }
    free(conf);
    imp_retrieval_eval_dispose(&ev);
    free_questions(&q);
    imp_retrieval_index_unref(idx);
    imp_embedder_free(e);
    imp_pg_free(pg);
    return rc;
}

static int cmd_query(const char *text)
{
    imp_pg_t *pg = connect_or_die();
    imp_embedder_t *e = embedder_or_die();
    imp_retrieval_index_t *idx = load_index_or_die(pg, opt_tenant, opt_version);
    print_top(pg, idx, e, text, opt_k > 0 ? (size_t)opt_k : 8, "");
    if (opt_log_op != NULL) {
        imp_retrieval_result_t res = {0};
        imp_retrieval_params_t p = params(0);
        bool inserted = false;
        must(imp_retrieval_search(pg, idx, e, text, &p, &res), "search");
        must(imp_retrieval_log_write(pg, opt_log_op, text, &res, &inserted), "log");
        printf("logged %d\n", inserted);
        imp_retrieval_result_dispose(&res);
    }
    imp_retrieval_index_unref(idx);
    imp_embedder_free(e);
    imp_pg_free(pg);
    return 0;
}

/* ---- isolation ---------------------------------------------------------------------------- */

typedef struct {
    char *tenant, *version;
    questions_t q;
} spec_t;

static spec_t specs[MAX_SPECS];
static size_t nspecs;
static imp_retrieval_cache_t *cache;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long searches, hits_printed;

static void *isolation_thread(void *arg)
{
    size_t t = (size_t)arg;
    const spec_t *me = &specs[t % nspecs];
    imp_pg_t *pg = connect_or_die();
    imp_embedder_t *e = embedder_or_die();
    for (long round = 0; round < opt_rounds; round++) {
        if (t == 0)
            imp_retrieval_cache_invalidate(cache, NULL); /* reloads race with searches */
        for (size_t s = 0; s < nspecs; s++) {
            for (size_t i = 0; i < specs[s].q.n; i++) {
                imp_retrieval_index_t *idx = NULL;
                must(imp_retrieval_cache_get(cache, pg, me->tenant, me->version, &idx), "cache");
                imp_retrieval_result_t res = {0};
                must(imp_retrieval_search(pg, idx, e, specs[s].q.q[i].question, NULL, &res),
                     "search");
                pthread_mutex_lock(&out_mu);
                searches++;
                for (size_t h = 0; h < res.n; h++, hits_printed++)
                    printf("%s %lld\n", me->tenant, (long long)res.hits[h].chunk->id);
                pthread_mutex_unlock(&out_mu);
                imp_retrieval_result_dispose(&res);
                imp_retrieval_index_unref(idx);
            }
        }
    }
    imp_embedder_free(e);
    imp_pg_free(pg);
    return NULL;
}

static int cmd_isolation(int n, char **args)
{
    for (int i = 0; i < n && nspecs < MAX_SPECS; i++, nspecs++) {
        char *copy = imp_strdup(args[i]), *save = NULL;
        char *tenant = strtok_r(copy, ":", &save), *version = strtok_r(NULL, ":", &save);
        char *file = strtok_r(NULL, "", &save);
        if (tenant == NULL || version == NULL || file == NULL)
            die("isolation specs are TENANT:VERSION:QUESTIONS", NULL);
        specs[nspecs].tenant = imp_strdup(tenant);
        specs[nspecs].version = imp_strdup(version);
        load_questions(file, &specs[nspecs].q);
        free(copy);
    }
    cache = imp_retrieval_cache_new((size_t)256 << 20);
    pthread_t th[64];
    size_t nth = opt_threads > 0 && opt_threads <= 64 ? (size_t)opt_threads : 4;
    for (size_t t = 0; t < nth; t++)
        pthread_create(&th[t], NULL, isolation_thread, (void *)t);
    for (size_t t = 0; t < nth; t++)
        pthread_join(th[t], NULL);
    imp_retrieval_cache_stats_t st;
    imp_retrieval_cache_stats(cache, &st);
    fprintf(stderr,
            "retrieval_tool: isolation: %zu threads, %llu searches, %llu hits, cache hits %llu "
            "misses %llu\n",
            nth, searches, hits_printed, st.hits, st.misses);
    imp_retrieval_cache_free(cache);
    for (size_t s = 0; s < nspecs; s++) {
        free(specs[s].tenant);
        free(specs[s].version);
        free_questions(&specs[s].q);
    }
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static int parse_options(int argc, char **argv)
{
    int i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(o, "--promote") == 0) {
            opt_promote = 1;
            continue;
        }
        if (strcmp(o, "--fts-postgres") == 0) {
            opt_fts_postgres = 1;
            continue;
        }
        if (v == NULL)
            die(o, NULL);
        i++;
        if (strcmp(o, "--dsn") == 0)
            opt_dsn = v;
        else if (strcmp(o, "--tenant") == 0)
            opt_tenant = v;
        else if (strcmp(o, "--version") == 0)
            opt_version = v;
        else if (strcmp(o, "--questions") == 0)
            opt_questions = v;
        else if (strcmp(o, "--label") == 0)
            opt_label = v;
        else if (strcmp(o, "--offtopic") == 0)
            opt_offtopic = v;
        else if (strcmp(o, "--log-op") == 0)
            opt_log_op = v;
        else if (strcmp(o, "--dim") == 0)
            opt_dim = atol(v);
        else if (strcmp(o, "--k") == 0)
            opt_k = atol(v);
        else if (strcmp(o, "--threads") == 0)
            opt_threads = atol(v);
        else if (strcmp(o, "--rounds") == 0)
            opt_rounds = atol(v);
        else if (strcmp(o, "--min-hit") == 0)
            opt_min_hit = atof(v);
        else if (strcmp(o, "--max-offtopic") == 0)
            opt_max_offtopic = atof(v);
        else
            die(o, NULL);
    }
    return i;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: retrieval_tool load|eval|query|isolation [options] ...\n");
        return 2;
    }
    imp_log_init("retrieval_tool", IMP_LOG_LEVEL_WARN);
    int rest = parse_options(argc, argv);
    if (opt_dsn == NULL)
        die("--dsn is required", NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "load") == 0 && opt_tenant != NULL)
        return cmd_load(argc - rest, argv + rest);
    if (strcmp(cmd, "eval") == 0 && opt_tenant && opt_version && opt_questions)
        return cmd_eval();
    if (strcmp(cmd, "query") == 0 && opt_tenant && opt_version && rest < argc)
        return cmd_query(argv[rest]);
    if (strcmp(cmd, "isolation") == 0)
        return cmd_isolation(argc - rest, argv + rest);
    fprintf(stderr, "retrieval_tool: bad command line\n");
    return 2;
}
