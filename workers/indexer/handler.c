/* The handler: check a request from imp.kb.v1 (schemas/events/imp.kb.*.v1.json), serialise
 * it with every other version change of its tenant, apply it and record its outcome. */
#include "indexer.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Version changes of one tenant never interleave (two indexers, a retried request): the
 * lock is the transaction's, so it is released by its commit or rollback. */
#define SQL_LOCK "SELECT pg_advisory_xact_lock(hashtextextended('imp.kb|' || $1, 0))"
#define SQL_SLUG_OWNER "SELECT imp_tenant_id_by_slug($1)::text"

static const struct {
    const char *type;
    indexer_kind_t kind;
    const char *members[5];
    imp_error_t *(*apply)(indexer_op_t *op, indexer_outcome_t *out);
} kinds[] = {
    {"imp.kb.build.v1", INDEXER_BUILD, {"slug", "actor", "if_changed"}, indexer_build},
    {"imp.kb.promote.v1", INDEXER_PROMOTE, {"slug", "actor", "version"}, indexer_promote},
    {"imp.kb.rollback.v1", INDEXER_ROLLBACK, {"slug", "actor"}, indexer_rollback},
    {"imp.kb.eval.v1", INDEXER_EVAL, {"slug", "actor", "version", "k"}, indexer_eval},
};

static imp_error_t *bad(const char *what)
{
    return imp_error_new(IMP_ERR_POISON, "bad_request", "%s", what);
}

static bool uuid_valid(const char *s)
{
    uint8_t u[IMP_UUID_LEN];
    return strlen(s) == IMP_UUID_STR_LEN && imp_uuid_parse(s, strlen(s), u) == 0;
}

static imp_error_t *check_members(size_t kind, const json_t *data)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < IMP_ARRAY_LEN(kinds[kind].members) && kinds[kind].members[i]; i++)
            known = known || strcmp(kinds[kind].members[i], key) == 0;
        if (!known)
            return imp_error_new(IMP_ERR_POISON, "bad_request", "data.%.64s is not a member of %s",
                                 key, kinds[kind].type);
    }
    return NULL;
}

static imp_error_t *parse_int(const json_t *data, const char *name, long long max, bool required,
                              long long *out)
{
    json_t *v = json_object_get(data, name);
    if (v == NULL)
        return required ? imp_error_new(IMP_ERR_POISON, "bad_request", "data.%s is required", name)
                        : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max)
        return imp_error_new(IMP_ERR_POISON, "bad_request",
                             "data.%s is not an integer from 1 to %lld", name, max);
    *out = (long long)json_integer_value(v);
    return NULL;
}

static imp_error_t *parse(size_t kind, const imp_envelope_t *ev, indexer_op_t *op)
{
    const json_t *d = ev->data;
    if (!uuid_valid(ev->tenantid))
        return bad("tenantid is not a tenant id (a UUID)");
    if (!uuid_valid(ev->causationid))
        return bad("causationid (the command's operation id) is missing");
    imp_error_t *err = check_members(kind, d);
    if (err != NULL)
        return err;
    op->slug = json_string_value(json_object_get(d, "slug"));
    op->actor = json_string_value(json_object_get(d, "actor"));
    if (op->slug == NULL || op->slug[0] == '\0' || strlen(op->slug) > 63)
        return bad("data.slug is not a tenant slug");
    if (json_object_get(d, "actor") != NULL && (op->actor == NULL || op->actor[0] == '\0'))
        return bad("data.actor is not a non-empty string");
    if (op->actor == NULL)
        op->actor = "unknown";
    json_t *ifc = json_object_get(d, "if_changed");
    if (ifc != NULL && !json_is_boolean(ifc))
        return bad("data.if_changed is not true or false");
    op->if_changed = json_is_true(ifc);
    bool versioned = op->kind == INDEXER_PROMOTE || op->kind == INDEXER_EVAL;
    err = parse_int(d, "version", INT32_MAX, versioned, &op->version);
    if (err == NULL)
        err = parse_int(d, "k", 50, false, &op->k);
    return err;
}

/* The slug must name the event's tenant: a request never reaches into another tenant. */
static imp_error_t *check_tenant(indexer_op_t *op)
{
    char *owner = NULL;
    const char *params[] = {op->slug};
    imp_error_t *err = imp_pg_exec_scalar(op->pg, SQL_SLUG_OWNER, 1, params, &owner);
    if (err == NULL && (owner == NULL || strcmp(owner, op->tenant_id) != 0))
        err = imp_error_new(IMP_ERR_POISON, "bad_request",
                            "tenantid %s is not the tenant of slug %s", op->tenant_id, op->slug);
    free(owner);
    return err;
}

static void log_outcome(const indexer_op_t *op, const indexer_outcome_t *out)
{
    const char *msg = json_string_value(json_object_get(out->result, "message"));
    if (out->failed)
        IMP_LOG_WARN("request failed", IMP_LS("type", op->ev->type), IMP_LS("slug", op->slug),
                     IMP_LS("actor", op->actor), IMP_LS("command", op->command_id),
                     IMP_LS("reason", out->error));
    else
        IMP_LOG_INFO("request applied", IMP_LS("type", op->ev->type), IMP_LS("slug", op->slug),
                     IMP_LS("actor", op->actor), IMP_LS("command", op->command_id),
                     IMP_LS("outcome", msg));
}

imp_error_t *indexer_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    size_t kind = IMP_ARRAY_LEN(kinds);
    for (size_t i = 0; i < IMP_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].type, ev->type) == 0)
            kind = i;
    if (kind == IMP_ARRAY_LEN(kinds))
        return imp_error_new(IMP_ERR_POISON, "unknown_request",
                             "type %s is not a request imperium-indexer applies", ev->type);
    indexer_op_t op = {.ctx = ctx,
                       .ev = ev,
                       .ix = user,
                       .kind = kinds[kind].kind,
                       .tenant_id = ev->tenantid,
                       .command_id = ev->causationid};
    imp_error_t *err = parse(kind, ev, &op);
    if (err != NULL)
        return err;
    op.pg = imp_worker_ctx_pg(ctx);
    const char *params[] = {op.tenant_id};
    err = imp_pg_exec_cached(op.pg, SQL_LOCK, 1, params, NULL);
    if (err == NULL)
        err = check_tenant(&op);
    indexer_outcome_t out = {0};
    if (err == NULL)
        err = kinds[kind].apply(&op, &out);
    if (err == NULL)
        err = indexer_record_outcome(&op, &out);
    if (err == NULL)
        log_outcome(&op, &out);
    indexer_outcome_dispose(&out);
    return err;
}
