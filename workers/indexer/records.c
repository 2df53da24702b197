/* What a request leaves besides its effect, all in its transaction: the command's outcome in
 * operations (the client waits on it), the audit_log row, and the invalidation event on
 * imp.control.v1 (through the outbox). */
#include "indexer.h"

#include "imp/mem.h"
#include "imp/opid.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* imperium-control wrote the row as pending; a request that reached us some other way (the
 * API, a replay) gets one. kind: the command's type, imp.command.<what>. */
#define SQL_OUTCOME                                                                                \
    "INSERT INTO operations (operation_id, tenant_id, kind, status, actor, result, error) "        \
    "VALUES ($1, $2, 'imp.command.' || substr($3, 5), $4, $5, $6::jsonb, $7) "                     \
    "ON CONFLICT (operation_id) DO UPDATE SET status = EXCLUDED.status, "                          \
    "result = EXCLUDED.result, error = EXCLUDED.error, updated_at = now()"

#define SQL_AUDIT                                                                                  \
    "INSERT INTO audit_log (tenant_id, actor, action, target, operation_id, before, after) "       \
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)"

static char *vformat(const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    return imp_strdup(msg);
}

void indexer_fail(indexer_outcome_t *out, json_t *result, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    out->failed = true;
    out->error = msg;
    out->result = result != NULL ? result : json_object();
    json_object_set_new(out->result, "message", json_string(msg));
}

void indexer_succeed(indexer_outcome_t *out, json_t *result, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    json_object_set_new(result, "message", json_string(msg));
    free(msg);
    out->result = result;
}

void indexer_outcome_dispose(indexer_outcome_t *out)
{
    free(out->error);
    json_decref(out->result);
    memset(out, 0, sizeof(*out));
}

json_t *indexer_result(const indexer_op_t *op)
{
    return json_pack("{s:s, s:s}", "tenant_id", op->tenant_id, "slug", op->slug);
}

imp_error_t *indexer_record_outcome(indexer_op_t *op, const indexer_outcome_t *out)
{
    char *result = json_dumps(out->result, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    const char *params[] = {op->command_id,
                            op->tenant_id,
                            op->ev->type,
                            out->failed ? "failed" : "succeeded",
                            op->actor,
                            result,
                            out->failed ? out->error : NULL};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_OUTCOME, 7, params, NULL);
    free(result);
    return err;
}

imp_error_t *indexer_audit(indexer_op_t *op, const char *action, const json_t *before,
                           const json_t *after)
{
    char target[96];
    snprintf(target, sizeof(target), "kb:%s", op->slug);
    char *b =
        before ? json_dumps(before, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
    char *a =
        after ? json_dumps(after, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
    const char *params[] = {op->tenant_id, op->actor, action, target, op->command_id, b, a};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_AUDIT, 7, params, NULL);
    free(b);
    free(a);
    return err;
}

imp_error_t *indexer_publish_changed(indexer_op_t *op, long long version)
{
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(op->ev->id, "control.changed", id);
    if (err != NULL)
        return err;
    imp_envelope_t ev;
    json_t *data = json_pack("{s:s, s:s, s:I}", "tenant_id", op->tenant_id, "what", "kb", "version",
                             (json_int_t)version);
    err = imp_envelope_derive(&ev, op->ev, id, INDEXER_SOURCE, INDEXER_TYPE_CHANGED, data);
    if (err != NULL)
        return err;
    return imp_worker_emit(op->ctx, INDEXER_TOPIC_CONTROL, op->tenant_id, &ev);
}
