/* Building a draft version: the tenant's current sources, read by one statement (one
 * snapshot: a source changed meanwhile is either wholly in or wholly out), chunked with the
 * tenant's settings, embedded, and inserted with the kb_versions row in the request's
 * transaction, so a draft exists whole or not at all. The same sources, settings and
 * embedder always give the same chunks and vectors. */
#include "indexer.h"

#include "imp/kb.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INSERT_BATCH 100

#define SQL_BUILT_BY                                                                               \
    "SELECT number, state FROM kb_versions WHERE tenant_id = $1 AND operation_id = $2"
#define SQL_SOURCES                                                                                \
    "SELECT id::text, name, format, content, sha256 FROM kb_sources "                              \
    "WHERE tenant_id = $1 AND NOT deleted ORDER BY name COLLATE \"C\""
#define SQL_SAME_INPUTS                                                                            \
    "SELECT number, state FROM kb_versions WHERE tenant_id = $1 AND built_from = $2::jsonb "       \
    "AND chunk_settings = $3::jsonb AND embedder_name = $4 AND embedder_model = $5 "               \
    "AND embedder_dim = $6 ORDER BY number DESC LIMIT 1"
#define SQL_NEXT_NUMBER "SELECT coalesce(max(number), 0) + 1 FROM kb_versions WHERE tenant_id = $1"
#define SQL_VERSION_INSERT                                                                         \
    "INSERT INTO kb_versions (tenant_id, number, built_from, embedder_name, embedder_model, "      \
    "embedder_dim, chunk_settings, chunk_count, operation_id) "                                    \
    "VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7::jsonb, $8, $9) RETURNING id::text"
#define SQL_CHUNK_INSERT                                                                           \
    "INSERT INTO kb_chunks (tenant_id, version_id, ordinal, source_id, heading, text, "            \
    "start_offset, end_offset, char_count, token_count, embedding) "                               \
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"

/* One build in progress. */
typedef struct {
    imp_pg_result_t *sources; /* id, name, format, content, sha256: the snapshot read */
    int nsources;
    imp_kb_chunk_settings_t set;
    char *set_json;
    json_t *built_from;
    imp_kb_chunks_t *chunks; /* per source */
    size_t n;                /* chunks in all */
    float *vecs;             /* n * dim */
    long long number;
    char *version_id;
} build_t;

static void build_dispose(build_t *b)
{
    for (int i = 0; b->chunks != NULL && i < b->nsources; i++)
        imp_kb_chunks_dispose(&b->chunks[i]);
    free(b->chunks);
    free(b->vecs);
    free(b->set_json);
    free(b->version_id);
    json_decref(b->built_from);
    imp_pg_result_free(b->sources);
}

static json_t *version_result(indexer_op_t *op, long long number, const char *state, bool built)
{
    json_t *r = indexer_result(op);
    json_object_set_new(r, "version", json_integer(number));
    json_object_set_new(r, "state", json_string(state));
    json_object_set_new(r, "built", json_boolean(built));
    return r;
}

/* A version with inputs like these (sql: SQL_BUILT_BY or SQL_SAME_INPUTS): *number 0 when
 * none; *state (heap) its state. */
static imp_error_t *find_version(indexer_op_t *op, const char *sql, int n, const char **params,
                                 long long *number, char **state)
{
    imp_pg_result_t *res = NULL;
    *number = 0;
    *state = NULL;
    imp_error_t *err = imp_pg_exec_cached(op->pg, sql, n, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        imp_pg_result_get_int64(res, 0, 0, number);
        *state = imp_strdup(imp_pg_result_value(res, 0, 1));
    }
    imp_pg_result_free(res);
    return err;
}

/* ---- inputs --------------------------------------------------------------------------------- */

static imp_error_t *read_settings(indexer_op_t *op, build_t *b, indexer_outcome_t *out, bool *ok)
{
    indexer_settings_t s;
    *ok = false;
    imp_error_t *err = indexer_settings_read(op, &s);
    if (err != NULL)
        return err;
    b->set = IMP_KB_CHUNK_DEFAULTS;
    imp_error_t *why = s.chunk != NULL ? imp_kb_chunk_settings_parse(s.chunk, &b->set) : NULL;
    indexer_settings_dispose(&s);
    if (why != NULL) {
        indexer_fail(out, indexer_result(op), "kb %s: tenants.settings.kb_chunk: %s", op->slug,
                     imp_error_message(why));
        imp_error_free(why);
        return NULL;
    }
    b->set_json = imp_kb_chunk_settings_json(&b->set);
    *ok = true;
    return NULL;
}

/* The sources, in one statement: whatever changes them meanwhile, this build sees them as
 * they were at one instant. */
static imp_error_t *read_sources(indexer_op_t *op, build_t *b, indexer_outcome_t *out, bool *ok)
{
    const char *params[] = {op->tenant_id};
    *ok = false;
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_SOURCES, 1, params, &b->sources);
    if (err != NULL)
        return err;
    b->nsources = imp_pg_result_rows(b->sources);
    if (b->nsources == 0) {
        indexer_fail(out, indexer_result(op),
                     "kb %s has no sources to build from (add them with kb source put)", op->slug);
        return NULL;
    }
    b->built_from = json_array();
    long long bytes = 0;
    for (int i = 0; i < b->nsources; i++) {
        const imp_pg_result_t *r = b->sources;
        json_array_append_new(b->built_from, json_pack("{s:s, s:s, s:s, s:s}", "source_id",
                                                       imp_pg_result_value(r, i, 0), "name",
                                                       imp_pg_result_value(r, i, 1), "format",
                                                       imp_pg_result_value(r, i, 2), "sha256",
                                                       imp_pg_result_value(r, i, 4)));
        bytes += (long long)strlen(imp_pg_result_value(r, i, 3));
    }
    IMP_LOG_INFO("build read its sources", IMP_LS("slug", op->slug),
                 IMP_LS("command", op->command_id), IMP_LI("sources", b->nsources),
                 IMP_LI("bytes", bytes));
    *ok = true;
    return NULL;
}

/* if_changed: the newest version already built from exactly these inputs, if any. */
static imp_error_t *same_inputs(indexer_op_t *op, build_t *b, long long *number, char **state)
{
    const imp_embedder_t *e = op->ix->emb;
    char *from = json_dumps(b->built_from, JSON_COMPACT);
    char dim[24];
    snprintf(dim, sizeof(dim), "%zu", imp_embedder_dim(e));
    const char *params[] = {op->tenant_id,         from, b->set_json, imp_embedder_name(e),
                            imp_embedder_model(e), dim};
    imp_error_t *err = find_version(op, SQL_SAME_INPUTS, 6, params, number, state);
    free(from);
    return err;
}

/* ---- chunks and vectors ------------------------------------------------------------------- */

static imp_error_t *chunk_all(indexer_op_t *op, build_t *b, indexer_outcome_t *out, bool *ok)
{
    b->chunks = imp_calloc((size_t)b->nsources, sizeof(*b->chunks));
    *ok = false;
    for (int i = 0; i < b->nsources; i++) {
        const char *format = imp_pg_result_value(b->sources, i, 2);
        const char *text = imp_pg_result_value(b->sources, i, 3);
        imp_kb_format_t f = IMP_KB_TEXT;
        imp_kb_format_parse(format, &f);
        imp_error_t *why = imp_kb_chunk(f, text, strlen(text), &b->set, &b->chunks[i]);
        if (why != NULL) {
            indexer_fail(out, indexer_result(op), "kb %s: source %s (%s): %s", op->slug,
                         imp_pg_result_value(b->sources, i, 1), format, imp_error_message(why));
            imp_error_free(why);
            return NULL;
        }
        b->n += b->chunks[i].n;
    }
    if (b->n == 0) {
        indexer_fail(out, indexer_result(op), "kb %s: its sources hold no text to build from",
                     op->slug);
        return NULL;
    }
    *ok = true;
    return NULL;
}

/* Embed every chunk (heading and text, as retrieval searches them). A server that refuses
 * the input (a 4xx) fails the build; one that is down or slow is the runtime's to retry. */
static imp_error_t *embed_all(indexer_op_t *op, build_t *b, indexer_outcome_t *out, bool *ok)
{
    char **docs = imp_calloc(b->n, sizeof(*docs));
    size_t k = 0;
    for (int i = 0; i < b->nsources; i++)
        for (size_t c = 0; c < b->chunks[i].n; c++, k++)
            docs[k] =
                imp_kb_chunk_document(b->chunks[i].items[c].heading, b->chunks[i].items[c].text);
    b->vecs = imp_malloc(b->n * imp_embedder_dim(op->ix->emb) * sizeof(float));
    imp_error_t *err = imp_embedder_embed(op->ix->emb, (const char *const *)docs, b->n, b->vecs);
    for (size_t i = 0; i < b->n; i++)
        free(docs[i]);
    free(docs);
    *ok = err == NULL;
    if (err == NULL || imp_error_class(err) != IMP_ERR_POISON)
        return err;
    const char *detail = imp_error_detail(err);
    indexer_fail(out, indexer_result(op), "kb %s: embedding failed, no version was built: %s%s%s",
                 op->slug, imp_error_message(err), detail ? " - " : "", detail ? detail : "");
    imp_error_free(err);
    return NULL;
}

/* ---- inserting -------------------------------------------------------------------------- */

static imp_error_t *insert_version(indexer_op_t *op, build_t *b)
{
    const imp_embedder_t *e = op->ix->emb;
    char *num = NULL;
    const char *p1[] = {op->tenant_id};
    imp_error_t *err = imp_pg_exec_scalar(op->pg, SQL_NEXT_NUMBER, 1, p1, &num);
    if (err != NULL)
        return err;
    b->number = strtoll(num, NULL, 10);
    char *from = json_dumps(b->built_from, JSON_COMPACT);
    char dim[24], count[24];
    snprintf(dim, sizeof(dim), "%zu", imp_embedder_dim(e));
    snprintf(count, sizeof(count), "%zu", b->n);
    const char *params[] = {op->tenant_id,         num, from,        imp_embedder_name(e),
                            imp_embedder_model(e), dim, b->set_json, count,
                            op->command_id};
    err = imp_pg_exec_scalar(op->pg, SQL_VERSION_INSERT, 9, params, &b->version_id);
    free(from);
    free(num);
    return err;
}

/* float32 little-endian, as kb_chunks.embedding holds it. */
static char *embedding_hex(const float *v, size_t dim)
{
    unsigned char *bytes = imp_malloc(dim * 4);
    for (size_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof(u));
        bytes[4 * i] = (unsigned char)u;
        bytes[4 * i + 1] = (unsigned char)(u >> 8);
        bytes[4 * i + 2] = (unsigned char)(u >> 16);
        bytes[4 * i + 3] = (unsigned char)(u >> 24);
    }
    char *hex = imp_pg_bytea_hex(bytes, dim * 4);
    free(bytes);
    return hex;
}

static void add_chunk(imp_pg_batch_t *batch, indexer_op_t *op, build_t *b, int src, size_t ordinal,
                      const imp_kb_chunk_t *c)
{
    size_t dim = imp_embedder_dim(op->ix->emb);
    char ord[24], start[24], end[24], chars[24], tokens[24];
    snprintf(ord, sizeof(ord), "%zu", ordinal);
    snprintf(start, sizeof(start), "%zu", c->start);
    snprintf(end, sizeof(end), "%zu", c->end);
    snprintf(chars, sizeof(chars), "%zu", c->chars);
    snprintf(tokens, sizeof(tokens), "%zu", c->tokens);
    char *emb = embedding_hex(b->vecs + ordinal * dim, dim);
    const char *params[] = {
        op->tenant_id, b->version_id, ord,   imp_pg_result_value(b->sources, src, 0),
        c->heading,    c->text,       start, end,
        chars,         tokens,        emb};
    imp_pg_batch_add_cached(batch, SQL_CHUNK_INSERT, 11, params);
    free(emb);
}

static imp_error_t *insert_chunks(indexer_op_t *op, build_t *b)
{
    imp_pg_batch_t *batch = imp_pg_batch_new();
    imp_error_t *err = NULL;
    size_t ordinal = 0;
    for (int i = 0; err == NULL && i < b->nsources; i++) {
        for (size_t c = 0; err == NULL && c < b->chunks[i].n; c++, ordinal++) {
            add_chunk(batch, op, b, i, ordinal, &b->chunks[i].items[c]);
            if (imp_pg_batch_size(batch) == INSERT_BATCH || ordinal + 1 == b->n) {
                err = imp_pg_batch_run(op->pg, batch);
                imp_pg_batch_reset(batch);
            }
        }
    }
    imp_pg_batch_free(batch);
    return err;
}

static imp_error_t *record_build(indexer_op_t *op, build_t *b, indexer_outcome_t *out)
{
    const imp_embedder_t *e = op->ix->emb;
    json_t *after = json_pack(
        "{s:I, s:s, s:I, s:O, s:{s:s, s:s, s:I}, s:o}", "version", (json_int_t)b->number,
        "version_id", b->version_id, "chunks", (json_int_t)b->n, "sources", b->built_from,
        "embedder", "name", imp_embedder_name(e), "model", imp_embedder_model(e), "dim",
        (json_int_t)imp_embedder_dim(e), "chunk_settings", json_loads(b->set_json, 0, NULL));
    imp_error_t *err = indexer_audit(op, "kb.build", NULL, after);
    json_decref(after);
    if (err == NULL)
        err = indexer_publish_changed(op, b->number);
    if (err != NULL)
        return err;
    json_t *r = version_result(op, b->number, "draft", true);
    json_object_set_new(r, "version_id", json_string(b->version_id));
    json_object_set_new(r, "chunks", json_integer((json_int_t)b->n));
    json_object_set_new(r, "sources", json_integer(b->nsources));
    indexer_succeed(out, r, "kb %s: version %lld built as a draft (%zu chunks from %d sources)",
                    op->slug, b->number, b->n, b->nsources);
    return NULL;
}

/* ---- the request ---------------------------------------------------------------------------- */

/* A request that already built its version (a redelivery after the inbox lost track, a
 * replay) succeeds with it. */
static imp_error_t *built_earlier(indexer_op_t *op, indexer_outcome_t *out, bool *done)
{
    long long number = 0;
    char *state = NULL;
    const char *params[] = {op->tenant_id, op->command_id};
    imp_error_t *err = find_version(op, SQL_BUILT_BY, 2, params, &number, &state);
    *done = err == NULL && number > 0;
    if (*done)
        indexer_succeed(out, version_result(op, number, state, false),
                        "kb %s: version %lld was built by this command (%s)", op->slug, number,
                        state);
    free(state);
    return err;
}

static imp_error_t *unchanged(indexer_op_t *op, build_t *b, indexer_outcome_t *out, bool *done)
{
    long long number = 0;
    char *state = NULL;
    *done = false;
    if (!op->if_changed)
        return NULL;
    imp_error_t *err = same_inputs(op, b, &number, &state);
    if (err == NULL && number > 0) {
        *done = true;
        indexer_succeed(out, version_result(op, number, state, false),
                        "kb %s: sources unchanged since version %lld (%s): no new version",
                        op->slug, number, state);
    }
    free(state);
    return err;
}

imp_error_t *indexer_build(indexer_op_t *op, indexer_outcome_t *out)
{
    build_t b = {0};
    bool done = false, ok = false;
    imp_error_t *err = built_earlier(op, out, &done);
    if (err == NULL && !done)
        err = read_settings(op, &b, out, &ok);
    if (err == NULL && ok)
        err = read_sources(op, &b, out, &ok);
    if (err == NULL && ok)
        err = unchanged(op, &b, out, &done);
    if (err == NULL && ok && !done)
        err = chunk_all(op, &b, out, &ok);
    if (err == NULL && ok && !done)
        err = embed_all(op, &b, out, &ok);
    if (err == NULL && ok && !done)
        err = insert_version(op, &b);
    if (err == NULL && ok && !done)
        err = insert_chunks(op, &b);
    if (err == NULL && ok && !done)
        err = record_build(op, &b, out);
    build_dispose(&b);
    return err;
}
