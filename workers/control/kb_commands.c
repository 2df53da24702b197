/* The knowledge-base commands imperium-control applies (docs/knowledge-base-operations.md).
 * Sources, test questions and KB settings are small writes done here, in the command's
 * transaction, with their audit row and outcome. Build, promote, rollback and eval need the
 * embedder and serialise on the tenant's versions, so they are recorded as pending in
 * operations and forwarded to imperium-indexer on imp.kb.v1 (through the outbox of the same
 * transaction); the indexer records their outcome under the command's operation id. */
#include "control.h"

#include "imp/kb.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_SLUG_OWNER "SELECT imp_tenant_id_by_slug($1)::text"
#define SQL_CHUNK_SETTINGS "SELECT (settings->'kb_chunk')::text FROM tenants WHERE id = $1"
#define SQL_SOURCE_LOCK                                                                            \
    "SELECT format, sha256, deleted, octet_length(content) FROM kb_sources "                       \
    "WHERE tenant_id = $1 AND name = $2 FOR UPDATE"
#define SQL_SOURCE_UPSERT                                                                          \
    "INSERT INTO kb_sources (tenant_id, name, format, content) VALUES ($1, $2, $3, $4) "           \
    "ON CONFLICT (tenant_id, name) DO UPDATE SET format = EXCLUDED.format, "                       \
    "content = EXCLUDED.content, deleted = false, updated_at = now()"
#define SQL_SOURCE_REMOVE                                                                          \
    "UPDATE kb_sources SET deleted = true, updated_at = now() WHERE tenant_id = $1 AND name = $2"
#define SQL_QUESTIONS                                                                              \
    "SELECT question, expected_source, expected_fragment FROM kb_eval_questions "                  \
    "WHERE tenant_id = $1 ORDER BY question COLLATE \"C\""
#define SQL_QUESTIONS_DELETE "DELETE FROM kb_eval_questions WHERE tenant_id = $1"
#define SQL_QUESTION_INSERT                                                                        \
    "INSERT INTO kb_eval_questions (tenant_id, question, expected_source, expected_fragment) "     \
    "VALUES ($1, $2, $3, $4)"
#define SQL_SETTINGS_LOCK "SELECT settings::text FROM tenants WHERE id = $1 FOR UPDATE"
#define SQL_SETTINGS_UPDATE                                                                        \
    "UPDATE tenants SET settings = $2::jsonb, updated_at = now() WHERE id = $1"
#define SQL_PENDING                                                                                \
    "INSERT INTO operations (operation_id, tenant_id, kind, status, actor, result) "               \
    "VALUES ($1, $2, $3, 'pending', $4, $5::jsonb) ON CONFLICT (operation_id) DO NOTHING"

/* One kb command being applied. op carries what records.c needs (slug, actor). */
typedef struct {
    control_op_t op;
    control_kb_cmd_t cmd;
    control_kb_data_t k;
} kb_op_t;

/* ---- outcomes ------------------------------------------------------------------------------ */

/* Add the members of src to dst; takes src. */
static void merge_new(json_t *dst, json_t *src)
{
    json_object_update(dst, src);
    json_decref(src);
}

static json_t *kb_result(const kb_op_t *kop)
{
    return json_pack("{s:s, s:s}", "tenant_id", kop->op.ev->tenantid, "slug", kop->k.slug);
}

/* ---- the tenant ---------------------------------------------------------------------------- */

/* The command's tenant must exist (*ok false and a failed outcome when it does not); a slug
 * that belongs to another tenant than the envelope's is a malformed command. */
static imp_error_t *kb_require_tenant(kb_op_t *kop, control_outcome_t *out, bool *ok)
{
    char *owner = NULL;
    const char *params[] = {kop->k.slug};
    *ok = false;
    imp_error_t *err = imp_pg_exec_scalar(kop->op.pg, SQL_SLUG_OWNER, 1, params, &owner);
    if (err == NULL && owner == NULL)
        control_fail(out, "tenant %s does not exist", kop->k.slug);
    else if (err == NULL && strcmp(owner, kop->op.ev->tenantid) != 0)
        err =
            imp_error_new(IMP_ERR_POISON, "bad_command", "tenantid %s is not the tenant of slug %s",
                          kop->op.ev->tenantid, kop->k.slug);
    else if (err == NULL)
        *ok = true;
    free(owner);
    return err;
}

/* The tenant's chunk settings (tenants.settings.kb_chunk), defaults when it has none. */
static imp_error_t *kb_chunk_settings(kb_op_t *kop, imp_kb_chunk_settings_t *set)
{
    char *text = NULL;
    const char *params[] = {kop->op.ev->tenantid};
    *set = IMP_KB_CHUNK_DEFAULTS;
    imp_error_t *err = imp_pg_exec_scalar(kop->op.pg, SQL_CHUNK_SETTINGS, 1, params, &text);
    if (err == NULL && text != NULL)
        err = imp_kb_chunk_settings_parse(text, set);
    free(text);
    return err;
}

/* ---- sources ------------------------------------------------------------------------------- */

typedef struct {
    bool exists, deleted;
    char *format, *sha256;
    long long bytes;
} source_row_t;

static void source_row_dispose(source_row_t *r)
{
    free(r->format);
    free(r->sha256);
    memset(r, 0, sizeof(*r));
}

static imp_error_t *source_lock(kb_op_t *kop, source_row_t *row)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {kop->op.ev->tenantid, kop->k.name};
    memset(row, 0, sizeof(*row));
    imp_error_t *err = imp_pg_exec_cached(kop->op.pg, SQL_SOURCE_LOCK, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        row->exists = true;
        row->format = imp_strdup(imp_pg_result_value(res, 0, 0));
        row->sha256 = imp_strdup(imp_pg_result_value(res, 0, 1));
        imp_pg_result_get_bool(res, 0, 2, &row->deleted);
        imp_pg_result_get_int64(res, 0, 3, &row->bytes);
    }
    imp_pg_result_free(res);
    return err;
}

static json_t *source_view(const char *format, const char *sha256, long long bytes, bool deleted)
{
    return json_pack("{s:s, s:s, s:I, s:b}", "format", format, "sha256", sha256, "bytes",
                     (json_int_t)bytes, "deleted", deleted);
}

/* Chunk the content with the tenant's settings: a source that would not build is refused
 * now rather than at the next build. *chunks gets how many it makes. */
static imp_error_t *source_check(kb_op_t *kop, control_outcome_t *out, size_t *chunks, bool *ok)
{
    imp_kb_chunk_settings_t set;
    imp_kb_format_t format;
    imp_kb_chunks_t c = {0};
    *ok = false;
    imp_error_t *err = kb_chunk_settings(kop, &set);
    if (err != NULL)
        return imp_error_prefix(err, "tenants.settings.kb_chunk of %s", kop->k.slug);
    imp_kb_format_parse(kop->k.format, &format);
    imp_error_t *why = imp_kb_chunk(format, kop->k.content, kop->k.content_len, &set, &c);
    if (why != NULL) {
        control_fail(out, "kb source %s/%s is not valid %s: %s", kop->k.slug, kop->k.name,
                     kop->k.format, imp_error_message(why));
        imp_error_free(why);
        return NULL;
    }
    *chunks = c.n;
    imp_kb_chunks_dispose(&c);
    *ok = true;
    return NULL;
}

static imp_error_t *source_write(kb_op_t *kop, const source_row_t *row, const char *sha256,
                                 size_t chunks, control_outcome_t *out)
{
    const char *params[] = {kop->op.ev->tenantid, kop->k.name, kop->k.format, kop->k.content};
    imp_error_t *err = imp_pg_exec_cached(kop->op.pg, SQL_SOURCE_UPSERT, 4, params, NULL);
    char target[320];
    snprintf(target, sizeof(target), "kb_source:%s/%s", kop->k.slug, kop->k.name);
    json_t *before =
        row->exists ? source_view(row->format, row->sha256, row->bytes, row->deleted) : NULL;
    json_t *after = source_view(kop->k.format, sha256, (long long)kop->k.content_len, false);
    if (err == NULL)
        err = control_audit(&kop->op, row->exists ? "kb.source.update" : "kb.source.create", target,
                            before, after);
    json_decref(before);
    json_decref(after);
    if (err != NULL)
        return err;
    json_t *r = kb_result(kop);
    merge_new(r, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:b}", "name", kop->k.name, "format",
                           kop->k.format, "sha256", sha256, "bytes", (json_int_t)kop->k.content_len,
                           "chunks", (json_int_t)chunks, "created", !row->exists, "changed", 1));
    control_succeed(out, r, "kb source %s/%s %s (%zu bytes, %zu chunks)", kop->k.slug, kop->k.name,
                    row->exists ? "updated" : "created", kop->k.content_len, chunks);
    return NULL;
}

static imp_error_t *source_put(kb_op_t *kop, control_outcome_t *out)
{
    bool ok = false;
    size_t chunks = 0;
    source_row_t row = {0};
    imp_error_t *err = kb_require_tenant(kop, out, &ok);
    if (err == NULL && ok)
        err = source_check(kop, out, &chunks, &ok);
    if (err == NULL && ok)
        err = source_lock(kop, &row);
    if (err != NULL || !ok)
        goto out;
    uint8_t digest[IMP_SHA256_LEN];
    char sha256[2 * IMP_SHA256_LEN + 1];
    imp_sha256(kop->k.content, kop->k.content_len, digest);
    imp_hex_encode(digest, sizeof(digest), sha256);
    if (row.exists && !row.deleted && strcmp(row.format, kop->k.format) == 0 &&
        strcmp(row.sha256, sha256) == 0) {
        json_t *r = kb_result(kop);
        merge_new(r, json_pack("{s:s, s:s, s:I, s:b}", "name", kop->k.name, "sha256", sha256,
                               "chunks", (json_int_t)chunks, "changed", 0));
        control_succeed(out, r, "kb source %s/%s unchanged", kop->k.slug, kop->k.name);
    } else {
        err = source_write(kop, &row, sha256, chunks, out);
    }
out:
    source_row_dispose(&row);
    return err;
}

static imp_error_t *source_remove(kb_op_t *kop, control_outcome_t *out)
{
    bool ok = false;
    source_row_t row = {0};
    imp_error_t *err = kb_require_tenant(kop, out, &ok);
    if (err == NULL && ok)
        err = source_lock(kop, &row);
    if (err != NULL || !ok)
        goto out;
    json_t *r = kb_result(kop);
    json_object_set_new(r, "name", json_string(kop->k.name));
    if (!row.exists) {
        json_decref(r);
        control_fail(out, "kb source %s/%s does not exist", kop->k.slug, kop->k.name);
    } else if (row.deleted) {
        json_object_set_new(r, "changed", json_false());
        control_succeed(out, r, "kb source %s/%s is already removed", kop->k.slug, kop->k.name);
    } else {
        const char *params[] = {kop->op.ev->tenantid, kop->k.name};
        err = imp_pg_exec_cached(kop->op.pg, SQL_SOURCE_REMOVE, 2, params, NULL);
        char target[320];
        snprintf(target, sizeof(target), "kb_source:%s/%s", kop->k.slug, kop->k.name);
        json_t *before = source_view(row.format, row.sha256, row.bytes, false);
        json_t *after = source_view(row.format, row.sha256, row.bytes, true);
        if (err == NULL)
            err = control_audit(&kop->op, "kb.source.remove", target, before, after);
        json_decref(before);
        json_decref(after);
        json_object_set_new(r, "changed", json_true());
        if (err == NULL)
            control_succeed(out, r, "kb source %s/%s removed (versions built from it keep it)",
                            kop->k.slug, kop->k.name);
        else
            json_decref(r);
    }
out:
    source_row_dispose(&row);
    return err;
}

/* ---- test questions ----------------------------------------------------------------------- */

static int by_question(const void *a, const void *b)
{
    const json_t *qa = *(json_t *const *)a, *qb = *(json_t *const *)b;
    return strcmp(json_string_value(json_object_get(qa, "question")),
                  json_string_value(json_object_get(qb, "question")));
}

/* The questions as a canonical array: sorted by question (byte order), members present only
 * when set. New reference. */
static json_t *questions_sorted(const json_t *qs)
{
    size_t n = json_array_size(qs);
    json_t **items = imp_calloc(n ? n : 1, sizeof(*items));
    for (size_t i = 0; i < n; i++)
        items[i] = json_array_get(qs, i);
    qsort(items, n, sizeof(*items), by_question);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, json_deep_copy(items[i]));
    free(items);
    return out;
}

static imp_error_t *questions_current(kb_op_t *kop, json_t **out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {kop->op.ev->tenantid};
    imp_error_t *err = imp_pg_exec_cached(kop->op.pg, SQL_QUESTIONS, 1, params, &res);
    *out = json_array();
    for (int r = 0; err == NULL && r < imp_pg_result_rows(res); r++) {
        json_t *q = json_pack("{s:s}", "question", imp_pg_result_value(res, r, 0));
        if (!imp_pg_result_is_null(res, r, 1))
            json_object_set_new(q, "source", json_string(imp_pg_result_value(res, r, 1)));
        if (!imp_pg_result_is_null(res, r, 2))
            json_object_set_new(q, "fragment", json_string(imp_pg_result_value(res, r, 2)));
        json_array_append_new(*out, q);
    }
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *questions_write(kb_op_t *kop, const json_t *sorted)
{
    imp_pg_batch_t *b = imp_pg_batch_new();
    const char *del[] = {kop->op.ev->tenantid};
    imp_pg_batch_add_cached(b, SQL_QUESTIONS_DELETE, 1, del);
    size_t i;
    json_t *q;
    json_array_foreach(sorted, i, q)
    {
        const char *params[] = {kop->op.ev->tenantid,
                                json_string_value(json_object_get(q, "question")),
                                json_string_value(json_object_get(q, "source")),
                                json_string_value(json_object_get(q, "fragment"))};
        imp_pg_batch_add_cached(b, SQL_QUESTION_INSERT, 4, params);
    }
    imp_error_t *err = imp_pg_batch_run(kop->op.pg, b);
    imp_pg_batch_free(b);
    return err;
}

static imp_error_t *questions_set(kb_op_t *kop, control_outcome_t *out)
{
    bool ok = false;
    json_t *current = NULL, *wanted = NULL;
    imp_error_t *err = kb_require_tenant(kop, out, &ok);
    if (err == NULL && ok)
        err = questions_current(kop, &current);
    if (err != NULL || !ok)
        goto out;
    wanted = questions_sorted(kop->k.questions);
    json_t *r = kb_result(kop);
    json_object_set_new(r, "questions", json_integer((json_int_t)json_array_size(wanted)));
    if (json_equal(current, wanted)) {
        json_object_set_new(r, "changed", json_false());
        control_succeed(out, r, "kb questions of %s unchanged (%zu)", kop->k.slug,
                        json_array_size(wanted));
        goto out;
    }
    err = questions_write(kop, wanted);
    char target[96];
    snprintf(target, sizeof(target), "kb:%s", kop->k.slug);
    json_t *before = json_pack("{s:I}", "questions", (json_int_t)json_array_size(current));
    json_t *after = json_pack("{s:I}", "questions", (json_int_t)json_array_size(wanted));
    if (err == NULL)
        err = control_audit(&kop->op, "kb.questions.set", target, before, after);
    json_decref(before);
    json_decref(after);
    json_object_set_new(r, "changed", json_true());
    if (err == NULL)
        control_succeed(out, r, "kb questions of %s set (%zu questions)", kop->k.slug,
                        json_array_size(wanted));
    else
        json_decref(r);
out:
    json_decref(current);
    json_decref(wanted);
    return err;
}

/* ---- settings ----------------------------------------------------------------------------- */

/* The kb_* members of a tenant's settings (new reference). */
static json_t *kb_settings_view(const json_t *settings)
{
    json_t *view = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)settings, key, v)
    {
        if (strncmp(key, "kb_", 3) == 0)
            json_object_set(view, key, v);
    }
    return view;
}

static void merge_setting(json_t *settings, const char *key, const json_t *given)
{
    if (given == NULL)
        return;
    if (json_is_null(given))
        json_object_del(settings, key);
    else
        json_object_set(settings, key, (json_t *)given);
}

static imp_error_t *settings_set(kb_op_t *kop, control_outcome_t *out)
{
    bool ok = false;
    char *text = NULL;
    json_t *old = NULL, *now = NULL, *before = NULL, *after = NULL;
    const char *params[] = {kop->op.ev->tenantid, NULL};
    imp_error_t *err = kb_require_tenant(kop, out, &ok);
    if (err == NULL && ok)
        err = imp_pg_exec_scalar(kop->op.pg, SQL_SETTINGS_LOCK, 1, params, &text);
    if (err != NULL || !ok)
        goto out;
    old = json_loads(text ? text : "{}", 0, NULL);
    if (!json_is_object(old)) {
        json_decref(old);
        old = json_object();
    }
    now = json_deep_copy(old);
    merge_setting(now, "kb_min_hit_rate", kop->k.min_hit_rate);
    merge_setting(now, "kb_eval_k", kop->k.eval_k);
    merge_setting(now, "kb_chunk", kop->k.chunk);
    before = kb_settings_view(old);
    after = kb_settings_view(now);
    json_t *r = kb_result(kop);
    json_object_set(r, "settings", after);
    if (json_equal(before, after)) {
        json_object_set_new(r, "changed", json_false());
        control_succeed(out, r, "kb settings of %s unchanged", kop->k.slug);
        goto out;
    }
    char *merged = json_dumps(now, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    params[1] = merged;
    err = imp_pg_exec_cached(kop->op.pg, SQL_SETTINGS_UPDATE, 2, params, NULL);
    free(merged);
    char target[96];
    snprintf(target, sizeof(target), "kb:%s", kop->k.slug);
    if (err == NULL)
        err = control_audit(&kop->op, "kb.settings", target, before, after);
    json_object_set_new(r, "changed", json_true());
    char *shown = json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    if (err == NULL)
        control_succeed(out, r, "kb settings of %s set: %s", kop->k.slug, shown);
    else
        json_decref(r);
    free(shown);
out:
    free(text);
    json_decref(old);
    json_decref(now);
    json_decref(before);
    json_decref(after);
    return err;
}

/* ---- forwarded to imperium-indexer -------------------------------------------------------- */

static json_t *forward_data(const kb_op_t *kop)
{
    json_t *d = json_pack("{s:s, s:s}", "slug", kop->k.slug, "actor", kop->k.actor);
    if (kop->cmd == CONTROL_KB_BUILD)
        json_object_set_new(d, "if_changed", json_boolean(kop->k.if_changed));
    if (kop->cmd == CONTROL_KB_PROMOTE || kop->cmd == CONTROL_KB_EVAL)
        json_object_set_new(d, "version", json_integer(kop->k.version));
    if (kop->cmd == CONTROL_KB_EVAL && kop->k.k > 0)
        json_object_set_new(d, "k", json_integer(kop->k.k));
    return d;
}

static imp_error_t *forward(kb_op_t *kop, control_outcome_t *out)
{
    bool ok = false;
    imp_error_t *err = kb_require_tenant(kop, out, &ok);
    if (err != NULL || !ok)
        return err;
    const imp_envelope_t *ev = kop->op.ev;
    char id[IMP_UUID_STR_SIZE];
    err = imp_opid_derive(ev->id, control_kb_forward_step(kop->cmd), id);
    imp_envelope_t fwd;
    if (err == NULL)
        err = imp_envelope_derive(&fwd, ev, id, CONTROL_SOURCE, control_kb_event_type(kop->cmd),
                                  forward_data(kop));
    if (err == NULL)
        err = imp_worker_emit(kop->op.ctx, CONTROL_TOPIC_KB, ev->tenantid, &fwd);
    if (err != NULL)
        return err;
    json_t *r = kb_result(kop);
    json_object_set_new(r, "forwarded_as", json_string(id));
    control_succeed(out, r, "queued for imperium-indexer");
    return NULL;
}

/* A pending outcome: the indexer writes the final one over it. Never overwrites one. */
static imp_error_t *record_pending(kb_op_t *kop, const control_outcome_t *out)
{
    char *result = json_dumps(out->result, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    const imp_envelope_t *ev = kop->op.ev;
    const char *params[] = {ev->id, ev->tenantid, ev->type, kop->k.actor, result};
    imp_error_t *err = imp_pg_exec_cached(kop->op.pg, SQL_PENDING, 5, params, NULL);
    free(result);
    return err;
}

/* ---- the handler --------------------------------------------------------------------------- */

typedef imp_error_t *(*kb_fn)(kb_op_t *kop, control_outcome_t *out);

static const kb_fn kb_fns[CONTROL_KB_COUNT] = {
    source_put, source_remove, questions_set, settings_set, forward, forward, forward, forward,
};

imp_error_t *control_kb_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    int cmd = control_kb_cmd_of_type(ev->type);
    assert(cmd >= 0);
    if (!control_uuid_valid(ev->tenantid))
        return imp_error_new(IMP_ERR_POISON, "bad_command",
                             "tenantid is not a tenant id (a lowercase UUID)");
    kb_op_t kop = {.op = {.ctx = ctx, .ev = ev, .c = user}, .cmd = (control_kb_cmd_t)cmd};
    imp_error_t *err = control_kb_data_parse(kop.cmd, ev->data, &kop.k);
    if (err != NULL)
        return err;
    kop.op.pg = imp_worker_ctx_pg(ctx);
    kop.op.d.slug = kop.k.slug;
    kop.op.d.actor = kop.k.actor;
    control_outcome_t out = {0};
    err = kb_fns[cmd](&kop, &out);
    bool pending = err == NULL && !out.failed && control_kb_event_type(kop.cmd) != NULL;
    if (err == NULL)
        err = pending ? record_pending(&kop, &out) : control_record_outcome(&kop.op, &out);
    const char *msg = json_string_value(json_object_get(out.result, "message"));
    if (err == NULL && out.failed)
        IMP_LOG_WARN("command failed", IMP_LS("type", ev->type), IMP_LS("slug", kop.k.slug),
                     IMP_LS("actor", kop.k.actor), IMP_LS("reason", out.error));
    else if (err == NULL)
        IMP_LOG_INFO(pending ? "command forwarded" : "command applied", IMP_LS("type", ev->type),
                     IMP_LS("slug", kop.k.slug), IMP_LS("actor", kop.k.actor),
                     IMP_LS("outcome", msg));
    control_outcome_dispose(&out);
    return err;
}
