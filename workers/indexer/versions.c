/* The stable pointer of a tenant's knowledge base: promote a version (the old stable is
 * archived; optionally only when its test questions reach the tenant's minimum hit rate) and
 * roll back to the version that was stable before the current one. Every move is a
 * kb_releases row, an audit row and an imp.control.v1 event, in the request's transaction. */
#include "indexer.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_VERSION                                                                                \
    "SELECT id::text, number, state FROM kb_versions WHERE tenant_id = $1 AND number = $2"
#define SQL_VERSION_BY_ID                                                                          \
    "SELECT id::text, number, state FROM kb_versions WHERE tenant_id = $1 AND id = $2"
#define SQL_STABLE                                                                                 \
    "SELECT id::text, number, state FROM kb_versions WHERE tenant_id = $1 AND state = 'stable' "   \
    "FOR UPDATE"
#define SQL_ARCHIVE                                                                                \
    "UPDATE kb_versions SET state = 'archived', archived_at = now() "                              \
    "WHERE tenant_id = $1 AND id = $2"
#define SQL_MAKE_STABLE                                                                            \
    "UPDATE kb_versions SET state = 'stable', promoted_at = now(), archived_at = NULL "            \
    "WHERE tenant_id = $1 AND id = $2"
#define SQL_RELEASE                                                                                \
    "INSERT INTO kb_releases (tenant_id, action, version_id, previous_version_id, operation_id, "  \
    "actor) VALUES ($1, $2, $3, $4, $5, $6)"
/* Where a rollback goes: what was stable before the current version was last promoted. */
#define SQL_PREVIOUS                                                                               \
    "SELECT previous_version_id::text FROM kb_releases WHERE tenant_id = $1 AND version_id = $2 "  \
    "AND action = 'promote' ORDER BY id DESC LIMIT 1"
#define SQL_SETTINGS                                                                               \
    "SELECT settings->'kb_min_hit_rate', settings->'kb_eval_k', (settings->'kb_chunk')::text "     \
    "FROM tenants WHERE id = $1"

static imp_error_t *version_query(indexer_op_t *op, const char *sql, const char *key,
                                  indexer_version_t *v)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {op->tenant_id, key};
    memset(v, 0, sizeof(*v));
    imp_error_t *err = imp_pg_exec_cached(op->pg, sql, key ? 2 : 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        v->exists = true;
        snprintf(v->id, sizeof(v->id), "%s", imp_pg_result_value(res, 0, 0));
        imp_pg_result_get_int64(res, 0, 1, &v->number);
        snprintf(v->state, sizeof(v->state), "%s", imp_pg_result_value(res, 0, 2));
    }
    imp_pg_result_free(res);
    return err;
}

imp_error_t *indexer_version_by_number(indexer_op_t *op, long long number, indexer_version_t *v)
{
    char text[24];
    snprintf(text, sizeof(text), "%lld", number);
    return version_query(op, SQL_VERSION, text, v);
}

imp_error_t *indexer_settings_read(indexer_op_t *op, indexer_settings_t *s)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {op->tenant_id};
    memset(s, 0, sizeof(*s));
    s->min_hit_rate = -1;
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_SETTINGS, 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        const char *rate = imp_pg_result_value(res, 0, 0), *k = imp_pg_result_value(res, 0, 1);
        const char *chunk = imp_pg_result_value(res, 0, 2);
        if (rate != NULL)
            s->min_hit_rate = strtod(rate, NULL);
        if (k != NULL)
            s->eval_k = strtoll(k, NULL, 10);
        if (chunk != NULL)
            s->chunk = imp_strdup(chunk);
    }
    imp_pg_result_free(res);
    return err;
}

void indexer_settings_dispose(indexer_settings_t *s)
{
    free(s->chunk);
    s->chunk = NULL;
}

static json_t *stable_view(const indexer_version_t *v)
{
    return v->exists ? json_pack("{s:I, s:s}", "stable", (json_int_t)v->number, "version_id", v->id)
                     : json_pack("{s:n}", "stable");
}

/* Move the stable pointer from `from` (may not exist) to `to`, and record the move. */
static imp_error_t *move_stable(indexer_op_t *op, const char *action, const indexer_version_t *from,
                                const indexer_version_t *to)
{
    const char *params[] = {op->tenant_id, from->id};
    imp_error_t *err = NULL;
    if (from->exists)
        err = imp_pg_exec_cached(op->pg, SQL_ARCHIVE, 2, params, NULL);
    params[1] = to->id;
    if (err == NULL)
        err = imp_pg_exec_cached(op->pg, SQL_MAKE_STABLE, 2, params, NULL);
    const char *rel[] = {op->tenant_id,  action,   to->id, from->exists ? from->id : NULL,
                         op->command_id, op->actor};
    if (err == NULL)
        err = imp_pg_exec_cached(op->pg, SQL_RELEASE, 6, rel, NULL);
    json_t *before = stable_view(from), *after = stable_view(to);
    if (err == NULL)
        err = indexer_audit(op, strcmp(action, "promote") == 0 ? "kb.promote" : "kb.rollback",
                            before, after);
    json_decref(before);
    json_decref(after);
    if (err == NULL)
        err = indexer_publish_changed(op, to->number);
    return err;
}

/* The promotion gate: *pass false (and a failed outcome listing the questions that missed)
 * when the tenant asks for a minimum hit rate its questions do not reach. *report (may stay
 * NULL) is the evaluation that was run. */
static imp_error_t *gate(indexer_op_t *op, const indexer_version_t *v, json_t **report,
                         indexer_outcome_t *out, bool *pass)
{
    indexer_settings_t s;
    *pass = false;
    *report = NULL;
    imp_error_t *err = indexer_settings_read(op, &s);
    if (err != NULL || s.min_hit_rate <= 0) {
        *pass = err == NULL;
        indexer_settings_dispose(&s);
        return err;
    }
    long long k = s.eval_k > 0 ? s.eval_k : op->ix->eval_k;
    err = indexer_eval_run(op, v, k, report, out);
    if (err == NULL && *report != NULL)
        err = indexer_eval_store(op, v, *report);
    if (err == NULL && *report == NULL) {
        char *why = imp_asprintf("kb %s: version %lld not promoted: kb_min_hit_rate is %.3f and %s",
                                 op->slug, v->number, s.min_hit_rate, out->error);
        free(out->error);
        out->error = why;
        json_object_set_new(out->result, "message", json_string(why));
    }
    if (err != NULL || *report == NULL) {
        indexer_settings_dispose(&s);
        return err;
    }
    json_int_t n = json_integer_value(json_object_get(*report, "questions"));
    json_int_t hitk = json_integer_value(json_object_get(*report, "hitk"));
    /* hitk / n >= min, without the rounding of the division */
    *pass = (double)hitk >= s.min_hit_rate * (double)n - 1e-9;
    if (!*pass) {
        json_t *r = indexer_result(op);
        json_object_set_new(r, "version", json_integer(v->number));
        json_object_set(r, "eval", *report);
        json_object_set_new(r, "min_hit_rate", json_real(s.min_hit_rate));
        indexer_fail(out, r,
                     "kb %s: version %lld not promoted: hit@%lld %.3f (%lld of %lld questions) is "
                     "below the tenant's kb_min_hit_rate %.3f; the questions it missed follow",
                     op->slug, v->number, k, n ? (double)hitk / (double)n : 0.0, (long long)hitk,
                     (long long)n, s.min_hit_rate);
    }
    indexer_settings_dispose(&s);
    return NULL;
}

imp_error_t *indexer_promote(indexer_op_t *op, indexer_outcome_t *out)
{
    indexer_version_t v, stable;
    json_t *report = NULL;
    bool pass = false;
    imp_error_t *err = indexer_version_by_number(op, op->version, &v);
    if (err != NULL)
        return err;
    if (!v.exists) {
        indexer_fail(out, indexer_result(op), "kb %s has no version %lld", op->slug, op->version);
        return NULL;
    }
    json_t *r = indexer_result(op);
    json_object_set_new(r, "version", json_integer(v.number));
    json_object_set_new(r, "state", json_string("stable"));
    if (strcmp(v.state, "stable") == 0) {
        json_object_set_new(r, "changed", json_false());
        indexer_succeed(out, r, "kb %s: version %lld is already stable", op->slug, v.number);
        return NULL;
    }
    err = gate(op, &v, &report, out, &pass);
    if (err == NULL && pass)
        err = version_query(op, SQL_STABLE, NULL, &stable);
    if (err == NULL && pass)
        err = move_stable(op, "promote", &stable, &v);
    if (err == NULL && pass) {
        char archived[64] = "";
        if (stable.exists)
            snprintf(archived, sizeof(archived), " (version %lld archived)", stable.number);
        json_object_set_new(r, "changed", json_true());
        json_object_set_new(r, "previous",
                            stable.exists ? json_integer(stable.number) : json_null());
        if (report != NULL)
            json_object_set(r, "eval", report);
        indexer_succeed(out, r, "kb %s: version %lld is stable%s", op->slug, v.number, archived);
        r = NULL;
    }
    json_decref(r);
    json_decref(report);
    return err;
}

imp_error_t *indexer_rollback(indexer_op_t *op, indexer_outcome_t *out)
{
    indexer_version_t stable, prev;
    char *prev_id = NULL;
    imp_error_t *err = version_query(op, SQL_STABLE, NULL, &stable);
    if (err != NULL)
        return err;
    if (!stable.exists) {
        indexer_fail(out, indexer_result(op), "kb %s has no stable version to roll back", op->slug);
        return NULL;
    }
    const char *params[] = {op->tenant_id, stable.id};
    imp_pg_result_t *res = NULL;
    err = imp_pg_exec_cached(op->pg, SQL_PREVIOUS, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1 && !imp_pg_result_is_null(res, 0, 0))
        prev_id = imp_strdup(imp_pg_result_value(res, 0, 0));
    imp_pg_result_free(res);
    memset(&prev, 0, sizeof(prev));
    if (err == NULL && prev_id != NULL)
        err = version_query(op, SQL_VERSION_BY_ID, prev_id, &prev);
    free(prev_id);
    if (err != NULL)
        return err;
    if (!prev.exists) {
        indexer_fail(out, indexer_result(op),
                     "kb %s: nothing to roll back to: version %lld was its first stable version",
                     op->slug, stable.number);
        return NULL;
    }
    err = move_stable(op, "rollback", &stable, &prev);
    if (err != NULL)
        return err;
    json_t *r = indexer_result(op);
    json_object_set_new(r, "version", json_integer(prev.number));
    json_object_set_new(r, "state", json_string("stable"));
    json_object_set_new(r, "previous", json_integer(stable.number));
    json_object_set_new(r, "changed", json_true());
    indexer_succeed(out, r, "kb %s: rolled back to version %lld (version %lld archived)", op->slug,
                    prev.number, stable.number);
    return NULL;
}
