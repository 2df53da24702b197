/* What a command leaves in Postgres besides its effect: the audit_log row and its outcome in
 * operations, both in the command's transaction; and the outcome itself. */
#include "control.h"

#include "imp/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define SQL_AUDIT                                                                                  \
    "INSERT INTO audit_log (tenant_id, actor, action, target, operation_id, before, after) "       \
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb)"

#define SQL_OUTCOME                                                                                \
    "INSERT INTO operations (operation_id, tenant_id, kind, status, actor, result, error, "        \
    "secrets_enc) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) "                                 \
    "ON CONFLICT (operation_id) DO UPDATE SET status = EXCLUDED.status, "                          \
    "result = EXCLUDED.result, error = EXCLUDED.error, secrets_enc = EXCLUDED.secrets_enc, "       \
    "updated_at = now()"

static char *dump_or_null(const json_t *v)
{
    return v == NULL ? NULL
                     : json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
}

imp_error_t *control_audit(control_op_t *op, const char *action, const char *target,
                           const json_t *before, const json_t *after)
{
    char *b = dump_or_null(before), *a = dump_or_null(after);
    const char *params[] = {op->ev->tenantid, op->d.actor, action, target, op->ev->id, b, a};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_AUDIT, 7, params, NULL);
    free(b);
    free(a);
    return err;
}

imp_error_t *control_record_outcome(control_op_t *op, const control_outcome_t *out)
{
    char *sealed = NULL;
    imp_error_t *err = NULL;
    if (out->generated != NULL && json_object_size(out->generated) > 0) {
        char aad[CONTROL_AAD_MAX];
        control_aad_operation(op->ev->tenantid, op->ev->id, aad);
        err = control_seal_json(op->c->key, out->generated, aad, &sealed);
        if (err != NULL)
            return err;
    }
    char *result = dump_or_null(out->result);
    const char *params[] = {op->ev->id,
                            op->ev->tenantid,
                            op->ev->type,
                            out->failed ? "failed" : "succeeded",
                            op->d.actor,
                            result,
                            out->failed ? out->error : NULL,
                            sealed};
    err = imp_pg_exec_cached(op->pg, SQL_OUTCOME, 8, params, NULL);
    free(result);
    free(sealed);
    return err;
}

void control_fail(control_outcome_t *out, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    out->failed = true;
    out->error = imp_strdup(msg);
    out->result = json_pack("{s:s}", "message", msg);
}

void control_succeed(control_outcome_t *out, json_t *result, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_object_set_new(result, "message", json_string(msg));
    out->result = result;
}

void control_outcome_dispose(control_outcome_t *out)
{
    free(out->error);
    json_decref(out->result);
    json_decref(out->generated);
}
