/* The tenant snapshot (docs/tenant-directory.md): built from the rows the command's
 * transaction sees, the channels' verification secrets re-sealed for the ingress, published
 * to imp.tenants.v1 with an invalidation event on imp.control.v1, both through the outbox. */
#include "control.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

/* The version only grows, even when this process's clock is behind the last one's. */
#define SQL_BUMP_VERSION                                                                           \
    "UPDATE tenants SET snapshot_version = GREATEST("                                              \
    "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint, snapshot_version + 1) "          \
    "WHERE id = $1"

#define SQL_TENANT                                                                                 \
    "SELECT id::text, slug, name, status, plan, snapshot_version FROM tenants WHERE id = $1"

/* Previous secrets count only while their grace lasts. */
#define SQL_CHANNELS                                                                               \
    "SELECT kind, enabled, secrets_enc, previous_secrets_enc, "                                    \
    "CASE WHEN previous_secrets_enc IS NOT NULL AND previous_secrets_until > now() "               \
    "THEN floor(extract(epoch FROM previous_secrets_until) * 1000)::bigint ELSE 0 END "            \
    "FROM channels WHERE tenant_id = $1 AND name = '" CONTROL_CHANNEL_NAME "' ORDER BY kind"

/* token (at rest: every secret of the channel) → a token of its verification secrets only,
 * as a JSON string; JSON null when token is NULL. */
static imp_error_t *reseal(const uint8_t *key, const char *tenant_id, const char *kind,
                           const char *token, json_t **out)
{
    *out = NULL;
    if (token == NULL) {
        *out = json_null();
        return NULL;
    }
    json_t *all = NULL;
    imp_error_t *err = control_open_json(key, token, tenant_id, &all);
    if (err != NULL)
        return imp_error_prefix(err, "channel %s", kind);
    json_t *verification = control_secrets_verification(kind, all);
    char *sealed = NULL;
    err = control_seal_json(key, verification, tenant_id, &sealed);
    if (err == NULL)
        *out = json_string(sealed);
    free(sealed);
    json_decref(verification);
    json_decref(all);
    return err;
}

static imp_error_t *channel_entry(const uint8_t *key, const char *tenant_id,
                                  const imp_pg_result_t *res, int row, json_t **out)
{
    const char *kind = imp_pg_result_value(res, row, 0);
    bool enabled = false;
    long long until = 0;
    imp_pg_result_get_bool(res, row, 1, &enabled);
    imp_pg_result_get_int64(res, row, 4, &until);
    json_t *current = NULL, *previous = NULL;
    imp_error_t *err = reseal(key, tenant_id, kind, imp_pg_result_value(res, row, 2), &current);
    if (err == NULL)
        err = reseal(key, tenant_id, kind, until > 0 ? imp_pg_result_value(res, row, 3) : NULL,
                     &previous);
    if (err != NULL) {
        json_decref(current);
        return err;
    }
    *out = json_pack("{s:b, s:o, s:o, s:I}", "enabled", enabled, "secrets_enc", current,
                     "previous_secrets_enc", previous, "previous_until_ms", (json_int_t)until);
    return NULL;
}

static imp_error_t *channels_object(imp_pg_t *pg, const uint8_t *key, const char *tenant_id,
                                    json_t **out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_id};
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_CHANNELS, 1, params, &res);
    json_t *channels = json_object();
    for (int r = 0; err == NULL && r < imp_pg_result_rows(res); r++) {
        json_t *entry = NULL;
        err = channel_entry(key, tenant_id, res, r, &entry);
        if (err == NULL)
            json_object_set_new(channels, imp_pg_result_value(res, r, 0), entry);
    }
    imp_pg_result_free(res);
    if (err != NULL) {
        json_decref(channels);
        return err;
    }
    *out = channels;
    return NULL;
}

imp_error_t *control_snapshot_build(imp_pg_t *pg, const uint8_t *key, const char *tenant_id,
                                    json_t **out)
{
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant_id};
    *out = NULL;
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_TENANT, 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) != 1)
        err =
            imp_error_new(IMP_ERR_POISON, "tenant_missing", "tenant %s is not visible", tenant_id);
    json_t *channels = NULL;
    if (err == NULL)
        err = channels_object(pg, key, tenant_id, &channels);
    if (err == NULL) {
        long long version = 0;
        imp_pg_result_get_int64(res, 0, 5, &version);
        *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:o}", "tenant_id",
                         imp_pg_result_value(res, 0, 0), "slug", imp_pg_result_value(res, 0, 1),
                         "name", imp_pg_result_value(res, 0, 2), "status",
                         imp_pg_result_value(res, 0, 3), "plan", imp_pg_result_value(res, 0, 4),
                         "version", (json_int_t)version, "channels", channels);
    }
    imp_pg_result_free(res);
    return err;
}

/* Emit data (taken) as an event derived from the command, step naming it. */
static imp_error_t *emit(control_op_t *op, const char *step, const char *topic, const char *key,
                         const char *type, json_t *data)
{
    char id[IMP_UUID_STR_SIZE];
    imp_error_t *err = imp_opid_derive(op->ev->id, step, id);
    if (err != NULL) {
        json_decref(data);
        return err;
    }
    imp_envelope_t ev;
    err = imp_envelope_derive(&ev, op->ev, id, CONTROL_SOURCE, type, data);
    if (err != NULL)
        return err;
    return imp_worker_emit(op->ctx, topic, key, &ev);
}

imp_error_t *control_publish_tenant(control_op_t *op, const char *what, long long *version)
{
    const char *tenant_id = op->ev->tenantid;
    const char *params[] = {tenant_id};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_BUMP_VERSION, 1, params, NULL);
    json_t *data = NULL;
    if (err == NULL)
        err = control_snapshot_build(op->pg, op->c->key, tenant_id, &data);
    if (err != NULL)
        return err;
    *version = (long long)json_integer_value(json_object_get(data, "version"));
    char *slug = imp_strdup(json_string_value(json_object_get(data, "slug")));
    err = emit(op, "tenant.snapshot", CONTROL_TOPIC_TENANTS, slug, CONTROL_TYPE_SNAPSHOT, data);
    free(slug);
    if (err == NULL)
        err = emit(op, "control.changed", CONTROL_TOPIC_CONTROL, tenant_id, CONTROL_TYPE_CHANGED,
                   json_pack("{s:s, s:s}", "tenant_id", tenant_id, "what", what));
    return err;
}
