/* `kb versions`: a tenant's knowledge-base versions and current sources as Postgres has them,
 * read as the application role under the tenant (row-level security confines it). */
#include "cli_kb.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_RFC3339 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define SQL_VERSIONS                                                                               \
    "SELECT number, state, chunk_count, jsonb_array_length(built_from), embedder_name, "           \
    "embedder_model, embedder_dim, to_char(created_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), "      \
    "to_char(promoted_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), eval::text, id::text "              \
    "FROM kb_versions WHERE tenant_id = $1 ORDER BY number"
#define SQL_SOURCES                                                                                \
    "SELECT name, format, octet_length(content), sha256, "                                         \
    "to_char(updated_at AT TIME ZONE 'UTC', " SQL_RFC3339 ") "                                     \
    "FROM kb_sources WHERE tenant_id = $1 AND NOT deleted ORDER BY name COLLATE \"C\""

static json_t *version_json(const imp_pg_result_t *res, int r)
{
    long long number = 0, chunks = 0, sources = 0, dim = 0;
    imp_pg_result_get_int64(res, r, 0, &number);
    imp_pg_result_get_int64(res, r, 2, &chunks);
    imp_pg_result_get_int64(res, r, 3, &sources);
    imp_pg_result_get_int64(res, r, 6, &dim);
    const char *promoted = imp_pg_result_value(res, r, 8), *eval = imp_pg_result_value(res, r, 9);
    json_t *ev = eval ? json_loads(eval, 0, NULL) : NULL;
    return json_pack("{s:I, s:s, s:s, s:I, s:I, s:{s:s, s:s, s:I}, s:s, s:o, s:o}", "version",
                     (json_int_t)number, "id", imp_pg_result_value(res, r, 10), "state",
                     imp_pg_result_value(res, r, 1), "chunks", (json_int_t)chunks, "sources",
                     (json_int_t)sources, "embedder", "name", imp_pg_result_value(res, r, 4),
                     "model", imp_pg_result_value(res, r, 5), "dim", (json_int_t)dim, "created_at",
                     imp_pg_result_value(res, r, 7), "promoted_at",
                     promoted ? json_string(promoted) : json_null(), "eval", ev ? ev : json_null());
}

static json_t *source_json(const imp_pg_result_t *res, int r)
{
    long long bytes = 0;
    imp_pg_result_get_int64(res, r, 2, &bytes);
    return json_pack("{s:s, s:s, s:I, s:s, s:s}", "name", imp_pg_result_value(res, r, 0), "format",
                     imp_pg_result_value(res, r, 1), "bytes", (json_int_t)bytes, "sha256",
                     imp_pg_result_value(res, r, 3), "updated_at", imp_pg_result_value(res, r, 4));
}

static imp_error_t *rows(imp_pg_t *pg, const char *sql, const char *tenant_id,
                         json_t *(*fn)(const imp_pg_result_t *, int), json_t *into)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_id};
    imp_error_t *err = imp_pg_exec(pg, sql, 1, params, &res);
    for (int r = 0; err == NULL && r < imp_pg_result_rows(res); r++)
        json_array_append_new(into, fn(res, r));
    imp_pg_result_free(res);
    return err;
}

/* *out NULL when there is no such tenant. */
static imp_error_t *read_kb(imp_pg_t *pg, const char *slug, json_t **out)
{
    char *id = NULL;
    const char *params[] = {slug};
    *out = NULL;
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT imp_tenant_id_by_slug($1)::text", 1, params, &id);
    if (err != NULL || id == NULL)
        return err;
    json_t *versions = json_array(), *sources = json_array();
    err = imp_pg_tx_begin_with(pg, "ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    if (err == NULL)
        err = imp_pg_set_tenant(pg, id);
    if (err == NULL)
        err = rows(pg, SQL_VERSIONS, id, version_json, versions);
    if (err == NULL)
        err = rows(pg, SQL_SOURCES, id, source_json, sources);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
    else
        imp_pg_tx_rollback(pg);
    if (err == NULL)
        *out = json_pack("{s:s, s:s, s:o, s:o}", "tenant_id", id, "slug", slug, "versions",
                         versions, "sources", sources);
    else {
        json_decref(versions);
        json_decref(sources);
    }
    free(id);
    return err;
}

static void print_version(const json_t *v)
{
    const json_t *emb = json_object_get(v, "embedder"), *ev = json_object_get(v, "eval");
    const char *promoted = json_string_value(json_object_get(v, "promoted_at"));
    char embedder[160], eval[64] = "-";
    snprintf(embedder, sizeof(embedder), "%s/%s/%lld",
             json_string_value(json_object_get(emb, "name")),
             json_string_value(json_object_get(emb, "model")),
             (long long)json_integer_value(json_object_get(emb, "dim")));
    if (json_is_object(ev))
        snprintf(eval, sizeof(eval), "hit@1 %lld/%lld hit@%lld %lld/%lld",
                 (long long)json_integer_value(json_object_get(ev, "hit1")),
                 (long long)json_integer_value(json_object_get(ev, "questions")),
                 (long long)json_integer_value(json_object_get(ev, "k")),
                 (long long)json_integer_value(json_object_get(ev, "hitk")),
                 (long long)json_integer_value(json_object_get(ev, "questions")));
    printf("%-7lld %-8s %6lld %7lld  %-24s %-24s %-24s %s\n",
           (long long)json_integer_value(json_object_get(v, "version")),
           json_string_value(json_object_get(v, "state")),
           (long long)json_integer_value(json_object_get(v, "chunks")),
           (long long)json_integer_value(json_object_get(v, "sources")), embedder,
           json_string_value(json_object_get(v, "created_at")), promoted ? promoted : "-", eval);
}

static void print_text(const json_t *doc)
{
    size_t i;
    json_t *v;
    printf("%-7s %-8s %6s %7s  %-24s %-24s %-24s %s\n", "VERSION", "STATE", "CHUNKS", "SOURCES",
           "EMBEDDER", "CREATED", "PROMOTED", "EVAL");
    json_array_foreach(json_object_get(doc, "versions"), i, v) print_version(v);
    json_array_foreach(json_object_get(doc, "sources"), i, v)
    {
        printf("source %s %s %lld bytes sha256 %.12s updated %s\n",
               json_string_value(json_object_get(v, "name")),
               json_string_value(json_object_get(v, "format")),
               (long long)json_integer_value(json_object_get(v, "bytes")),
               json_string_value(json_object_get(v, "sha256")),
               json_string_value(json_object_get(v, "updated_at")));
    }
}

int cli_kb_versions(imp_pg_t *pg, const char *slug, bool json)
{
    json_t *doc = NULL;
    imp_error_t *err = read_kb(pg, slug, &doc);
    if (err != NULL) {
        cli_report("reading the knowledge base", err);
        imp_error_free(err);
        return CONTROL_EXIT_UNKNOWN;
    }
    if (doc == NULL) {
        fprintf(stderr, "%s: tenant %s does not exist\n", CONTROL_BINARY, slug);
        return CONTROL_EXIT_FAILED;
    }
    if (json) {
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", text);
        free(text);
    } else {
        print_text(doc);
    }
    json_decref(doc);
    return CONTROL_EXIT_OK;
}
