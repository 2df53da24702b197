/* The commands imperium-control applies (docs/tenants.md). Each one: validate (malformed →
 * poison, dead-lettered by the runtime), look at the current state (cannot apply → a failed
 * outcome, nothing changed), apply, audit, publish the tenant snapshot; the outcome is
 * recorded in operations either way. All of it in the runtime's transaction, under the
 * command's tenant (app.tenant_id = the envelope's tenantid). */
#include "bot.h"
#include "control.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_SLUG_OWNER "SELECT imp_tenant_id_by_slug($1)::text"
#define SQL_TENANT_LOCK "SELECT name, plan, status FROM tenants WHERE id = $1 FOR UPDATE"
#define SQL_TENANT_INSERT                                                                          \
    "INSERT INTO tenants (id, slug, name, plan) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
#define SQL_TENANT_STATUS "UPDATE tenants SET status = $2, updated_at = now() WHERE id = $1"
#define SQL_RFC3339 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define SQL_CHANNEL_LOCK                                                                           \
    "SELECT enabled, settings::text, secrets_enc, "                                                \
    "to_char(previous_secrets_until AT TIME ZONE 'UTC', " SQL_RFC3339 ") "                         \
    "FROM channels WHERE tenant_id = $1 AND kind = $2 AND name = '" CONTROL_CHANNEL_NAME           \
    "' FOR UPDATE"
#define SQL_CHANNEL_UPSERT                                                                         \
    "INSERT INTO channels (tenant_id, kind, name, enabled, settings, secrets_enc) "                \
    "VALUES ($1, $2, '" CONTROL_CHANNEL_NAME "', $3, $4::jsonb, $5) "                              \
    "ON CONFLICT (tenant_id, kind, name) DO UPDATE SET enabled = EXCLUDED.enabled, "               \
    "settings = EXCLUDED.settings, secrets_enc = EXCLUDED.secrets_enc, updated_at = now()"
/* No grace: the replaced secrets stop working at once (previous is cleared). */
#define SQL_CHANNEL_ROTATE                                                                         \
    "UPDATE channels SET secrets_enc = $3, previous_secrets_enc = $4::text, "                      \
    "previous_secrets_until = CASE WHEN $4::text IS NULL THEN NULL "                               \
    "ELSE now() + make_interval(secs => $5::double precision) END, updated_at = now() "            \
    "WHERE tenant_id = $1 AND kind = $2 AND name = '" CONTROL_CHANNEL_NAME "' "                    \
    "RETURNING to_char(previous_secrets_until AT TIME ZONE 'UTC', " SQL_RFC3339 ")"

/* A channel row as read (and locked) before a change; secrets opened. */
typedef struct {
    bool exists;
    bool enabled;
    json_t *settings;
    json_t *secrets;
    char *previous_until; /* NULL when none */
} channel_t;

/* ---- outcomes ----------------------------------------------------------------------------- */

/* ---- tenants ------------------------------------------------------------------------------ */

/* The id of the tenant that has slug: a new heap string, or NULL when none has. */
static imp_error_t *slug_owner(control_op_t *op, char **owner)
{
    const char *params[] = {op->d.slug};
    return imp_pg_exec_scalar(op->pg, SQL_SLUG_OWNER, 1, params, owner);
}

/* The command's tenant, locked: *res holds name, plan, status; NULL when slug names no tenant.
 * A slug that belongs to another tenant than the envelope's is a malformed command. */
static imp_error_t *tenant_lock(control_op_t *op, imp_pg_result_t **res)
{
    char *owner = NULL;
    *res = NULL;
    imp_error_t *err = slug_owner(op, &owner);
    if (err == NULL && owner != NULL && strcmp(owner, op->ev->tenantid) != 0)
        err =
            imp_error_new(IMP_ERR_POISON, "bad_command", "tenantid %s is not the tenant of slug %s",
                          op->ev->tenantid, op->d.slug);
    if (err == NULL && owner != NULL) {
        const char *params[] = {op->ev->tenantid};
        err = imp_pg_exec_cached(op->pg, SQL_TENANT_LOCK, 1, params, res);
    }
    free(owner);
    return err;
}

static json_t *tenant_result(control_op_t *op)
{
    return json_pack("{s:s, s:s}", "tenant_id", op->ev->tenantid, "slug", op->d.slug);
}

static imp_error_t *tenant_insert(control_op_t *op, control_outcome_t *out)
{
    const char *params[] = {op->ev->tenantid, op->d.slug, op->d.name, op->d.plan};
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_TENANT_INSERT, 4, params, &res);
    long long inserted = err == NULL ? imp_pg_result_affected(res) : 0;
    imp_pg_result_free(res);
    if (err != NULL)
        return err;
    if (inserted == 0) {
        control_fail(out, "tenant id %s is already used by another slug", op->ev->tenantid);
        return NULL;
    }
    char target[96];
    snprintf(target, sizeof(target), "tenant:%s", op->d.slug);
    json_t *after = json_pack("{s:s, s:s, s:s, s:s}", "slug", op->d.slug, "name", op->d.name,
                              "plan", op->d.plan, "status", "active");
    err = control_audit(op, "tenant.create", target, NULL, after);
    json_decref(after);
    long long version = 0;
    if (err == NULL)
        err = control_publish_tenant(op, "tenant", &version);
    if (err == NULL)
        control_succeed(out,
                        json_pack("{s:s, s:s, s:b, s:I}", "tenant_id", op->ev->tenantid, "slug",
                                  op->d.slug, "created", 1, "snapshot_version",
                                  (json_int_t)version),
                        "tenant %s created (id %s)", op->d.slug, op->ev->tenantid);
    return err;
}

/* Create of a slug that exists: the same tenant, name and plan is a success (a retry);
 * anything else is a failure that says what differs. */
static imp_error_t *tenant_exists(control_op_t *op, const char *owner, control_outcome_t *out)
{
    if (strcmp(owner, op->ev->tenantid) != 0) {
        control_fail(out, "slug %s is already taken by another tenant", op->d.slug);
        return NULL;
    }
    imp_pg_result_t *res = NULL;
    const char *params[] = {op->ev->tenantid};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_TENANT_LOCK, 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        const char *name = imp_pg_result_value(res, 0, 0), *plan = imp_pg_result_value(res, 0, 1);
        if (strcmp(name, op->d.name) == 0 && strcmp(plan, op->d.plan) == 0) {
            json_t *r = tenant_result(op);
            json_object_set_new(r, "created", json_false());
            control_succeed(out, r, "tenant %s already exists (id %s)", op->d.slug,
                            op->ev->tenantid);
        } else {
            control_fail(out, "tenant %s already exists with another name or plan (\"%s\", %s)",
                         op->d.slug, name, plan);
        }
    }
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *tenant_create(control_op_t *op, control_outcome_t *out)
{
    char *owner = NULL;
    imp_error_t *err = slug_owner(op, &owner);
    if (err == NULL)
        err = owner != NULL ? tenant_exists(op, owner, out) : tenant_insert(op, out);
    free(owner);
    return err;
}

static imp_error_t *tenant_status(control_op_t *op, control_outcome_t *out)
{
    imp_pg_result_t *res = NULL;
    imp_error_t *err = tenant_lock(op, &res);
    if (err != NULL || res == NULL || imp_pg_result_rows(res) != 1) {
        if (err == NULL)
            control_fail(out, "tenant %s does not exist", op->d.slug);
        imp_pg_result_free(res);
        return err;
    }
    char *before = imp_strdup(imp_pg_result_value(res, 0, 2));
    imp_pg_result_free(res);
    const char *verb = strcmp(op->d.status, "active") == 0 ? "enabled" : "disabled";
    json_t *r = tenant_result(op);
    json_object_set_new(r, "status", json_string(op->d.status));
    if (strcmp(before, op->d.status) == 0) {
        json_object_set_new(r, "changed", json_false());
        control_succeed(out, r, "tenant %s is already %s", op->d.slug, op->d.status);
        free(before);
        return NULL;
    }
    const char *params[] = {op->ev->tenantid, op->d.status};
    err = imp_pg_exec_cached(op->pg, SQL_TENANT_STATUS, 2, params, NULL);
    char target[96];
    snprintf(target, sizeof(target), "tenant:%s", op->d.slug);
    json_t *b = json_pack("{s:s}", "status", before),
           *a = json_pack("{s:s}", "status", op->d.status);
    if (err == NULL)
        err = control_audit(op, strcmp(verb, "enabled") == 0 ? "tenant.enable" : "tenant.disable",
                            target, b, a);
    json_decref(b);
    json_decref(a);
    free(before);
    long long version = 0;
    if (err == NULL)
        err = control_publish_tenant(op, "tenant", &version);
    json_object_set_new(r, "changed", json_true());
    json_object_set_new(r, "snapshot_version", json_integer(version));
    if (err == NULL)
        control_succeed(out, r, "tenant %s %s", op->d.slug, verb);
    else
        json_decref(r);
    return err;
}

/* ---- channels ----------------------------------------------------------------------------- */

static void channel_dispose(channel_t *ch)
{
    json_decref(ch->settings);
    json_decref(ch->secrets);
    free(ch->previous_until);
    memset(ch, 0, sizeof(*ch));
}

static imp_error_t *channel_lock(control_op_t *op, channel_t *ch)
{
    memset(ch, 0, sizeof(*ch));
    imp_pg_result_t *res = NULL;
    const char *params[] = {op->ev->tenantid, op->d.kind};
    imp_error_t *err = imp_pg_exec_cached(op->pg, SQL_CHANNEL_LOCK, 2, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        ch->exists = true;
        imp_pg_result_get_bool(res, 0, 0, &ch->enabled);
        ch->settings = json_loads(imp_pg_result_value(res, 0, 1), 0, NULL);
        if (!json_is_object(ch->settings)) {
            json_decref(ch->settings);
            ch->settings = json_object();
        }
        const char *sealed = imp_pg_result_value(res, 0, 2);
        if (sealed != NULL)
            err = control_open_json(op->c->key, sealed, op->ev->tenantid, &ch->secrets);
        if (err != NULL)
            err = imp_error_prefix(err, "channel %s of %s", op->d.kind, op->d.slug);
        if (!imp_pg_result_is_null(res, 0, 3))
            ch->previous_until = imp_strdup(imp_pg_result_value(res, 0, 3));
    }
    imp_pg_result_free(res);
    if (err == NULL && ch->secrets == NULL)
        ch->secrets = json_object();
    if (err == NULL && ch->settings == NULL)
        ch->settings = json_object();
    return err;
}

/* The secrets the command carries, opened and checked; *given NULL when it carries none. */
static imp_error_t *open_given(control_op_t *op, json_t **given)
{
    *given = NULL;
    if (op->d.secrets_enc == NULL)
        return NULL;
    char aad[CONTROL_AAD_MAX];
    control_aad_command(op->ev->tenantid, op->ev->id, aad);
    imp_error_t *err = control_open_json(op->c->key, op->d.secrets_enc, aad, given);
    if (err != NULL) {
        imp_error_t *why = imp_error_new(
            IMP_ERR_POISON, "bad_command",
            "data.secrets_enc does not open: sealed with another IMP_SECRET_KEY, or for another "
            "tenant or operation (%s)",
            imp_error_code(err));
        imp_error_free(err);
        return why;
    }
    err = control_secrets_check(op->d.kind, *given, "data.secrets_enc");
    if (err != NULL) {
        json_decref(*given);
        *given = NULL;
    }
    return err;
}

/* Names whose values differ between a and b (either side missing counts), sorted. */
static json_t *changed_names(const json_t *a, const json_t *b)
{
    json_t *diff = json_object();
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)a, name, v)
    {
        if (!json_equal(v, json_object_get(b, name)))
            json_object_set(diff, name, json_true());
    }
    json_object_foreach((json_t *)b, name, v)
    {
        if (json_object_get(a, name) == NULL)
            json_object_set(diff, name, json_true());
    }
    json_t *names = control_secrets_names(diff);
    json_decref(diff);
    return names;
}

/* What the audit log keeps of a channel: never a secret value, only the names. */
static json_t *channel_view(bool enabled, const json_t *settings, const json_t *secrets)
{
    return json_pack("{s:b, s:O, s:o}", "enabled", enabled, "settings", settings, "secrets",
                     control_secrets_names(secrets));
}

static json_t *merged_settings(const json_t *old, const json_t *given)
{
    json_t *out = json_deep_copy(old);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)given, key, v)
    {
        if (json_is_null(v))
            json_object_del(out, key);
        else
            json_object_set(out, key, v);
    }
    return out;
}

static imp_error_t *channel_store(control_op_t *op, bool enabled, const json_t *settings,
                                  const json_t *secrets)
{
    char *sealed = NULL;
    imp_error_t *err = control_seal_json(op->c->key, secrets, op->ev->tenantid, &sealed);
    if (err != NULL)
        return err;
    char *text = json_dumps(settings, JSON_COMPACT | JSON_SORT_KEYS);
    const char *params[] = {op->ev->tenantid, op->d.kind, enabled ? "true" : "false", text, sealed};
    err = imp_pg_exec_cached(op->pg, SQL_CHANNEL_UPSERT, 5, params, NULL);
    free(text);
    free(sealed);
    return err;
}

/* Audit, publish and report a channel change. */
static imp_error_t *channel_changed(control_op_t *op, const char *action, json_t *before,
                                    json_t *after, json_t *result, control_outcome_t *out,
                                    const char *summary)
{
    char target[128];
    snprintf(target, sizeof(target), "channel:%s/%s", op->d.slug, op->d.kind);
    imp_error_t *err = control_audit(op, action, target, before, after);
    long long version = 0;
    if (err == NULL)
        err = control_publish_tenant(op, "channel", &version);
    json_object_set_new(result, "snapshot_version", json_integer(version));
    if (err == NULL)
        control_succeed(out, result, "channel %s/%s %s", op->d.slug, op->d.kind, summary);
    else
        json_decref(result);
    json_decref(before);
    json_decref(after);
    return err;
}

static json_t *channel_result(control_op_t *op, const json_t *generated)
{
    return json_pack("{s:s, s:s, s:s, s:o}", "tenant_id", op->ev->tenantid, "slug", op->d.slug,
                     "kind", op->d.kind, "generated", control_secrets_names(generated));
}

static imp_error_t *channel_apply(control_op_t *op, const channel_t *ch, const json_t *given,
                                  control_outcome_t *out)
{
    bool enabled = op->d.enabled >= 0 ? op->d.enabled == 1 : (ch->exists ? ch->enabled : true);
    json_t *settings = merged_settings(ch->settings, op->d.settings);
    json_t *secrets = json_deep_copy(ch->secrets), *generated = json_object();
    json_object_update(secrets, (json_t *)given);
    control_secrets_fill_missing(op->d.kind, secrets, generated);
    const char *missing = control_secrets_missing(op->d.kind, secrets);
    json_t *changed = changed_names(ch->secrets, secrets);
    imp_error_t *err = NULL;
    json_t *result = channel_result(op, generated);
    json_object_set_new(result, "created", json_boolean(!ch->exists));
    if (missing != NULL) {
        control_fail(
            out, "a %s channel needs %s, which the provider issues: give it with --secret %s=VALUE",
            op->d.kind, missing, missing);
        json_decref(result);
    } else if (ch->exists && enabled == ch->enabled && json_equal(settings, ch->settings) &&
               json_array_size(changed) == 0) {
        json_object_set_new(result, "changed", json_false());
        control_succeed(out, result, "channel %s/%s unchanged", op->d.slug, op->d.kind);
    } else {
        json_object_set_new(result, "changed", json_true());
        err = channel_store(op, enabled, settings, secrets);
        json_t *after = channel_view(enabled, settings, secrets);
        json_object_set(after, "secrets_changed", changed);
        json_t *before = ch->exists ? channel_view(ch->enabled, ch->settings, ch->secrets) : NULL;
        if (err == NULL) {
            err = channel_changed(op, ch->exists ? "channel.update" : "channel.create", before,
                                  after, result, out, ch->exists ? "updated" : "created");
        } else {
            json_decref(before);
            json_decref(after);
            json_decref(result);
        }
        if (err == NULL && json_object_size(generated) > 0)
            out->generated = json_incref(generated);
    }
    json_decref(changed);
    json_decref(generated);
    json_decref(secrets);
    json_decref(settings);
    return err;
}

/* The command's tenant must exist; *ok false (and a failed outcome) when it does not. */
static imp_error_t *require_tenant(control_op_t *op, control_outcome_t *out, bool *ok)
{
    imp_pg_result_t *res = NULL;
    imp_error_t *err = tenant_lock(op, &res);
    *ok = err == NULL && res != NULL && imp_pg_result_rows(res) == 1;
    if (err == NULL && !*ok)
        control_fail(out, "tenant %s does not exist", op->d.slug);
    imp_pg_result_free(res);
    return err;
}

static imp_error_t *channel_set(control_op_t *op, control_outcome_t *out)
{
    bool ok = false;
    json_t *given = NULL;
    channel_t ch = {0};
    imp_error_t *err = open_given(op, &given);
    if (err == NULL)
        err = require_tenant(op, out, &ok);
    if (err == NULL && ok)
        err = channel_lock(op, &ch);
    if (err == NULL && ok)
        err = channel_apply(op, &ch, given, out);
    channel_dispose(&ch);
    json_decref(given);
    return err;
}

static imp_error_t *rotate_apply(control_op_t *op, const channel_t *ch, const json_t *given,
                                 control_outcome_t *out)
{
    json_t *secrets = json_deep_copy(ch->secrets), *generated = json_object();
    json_object_update(secrets, (json_t *)given);
    control_secrets_regenerate(op->d.kind, secrets, given, generated);
    char *current = NULL, *previous = NULL, grace[32];
    imp_error_t *err = control_seal_json(op->c->key, secrets, op->ev->tenantid, &current);
    if (err == NULL && op->d.grace_s > 0)
        err = control_seal_json(op->c->key, ch->secrets, op->ev->tenantid, &previous);
    snprintf(grace, sizeof(grace), "%lld", op->d.grace_s);
    char *until = NULL;
    const char *params[] = {op->ev->tenantid, op->d.kind, current, previous, grace};
    if (err == NULL)
        err = imp_pg_exec_scalar(op->pg, SQL_CHANNEL_ROTATE, 5, params, &until);
    if (err == NULL) {
        json_t *rotated = changed_names(ch->secrets, secrets);
        json_t *before = json_pack("{s:o, s:s?}", "secrets", control_secrets_names(ch->secrets),
                                   "previous_until", ch->previous_until);
        json_t *after =
            json_pack("{s:o, s:O, s:s?, s:I}", "secrets", control_secrets_names(secrets), "rotated",
                      rotated, "previous_until", until, "grace_s", (json_int_t)op->d.grace_s);
        json_t *result = channel_result(op, generated);
        json_object_set_new(result, "rotated", rotated);
        json_object_set_new(result, "previous_until", until ? json_string(until) : json_null());
        json_object_set_new(result, "grace_s", json_integer(op->d.grace_s));
        err = channel_changed(op, "secret.rotate", before, after, result, out, "secrets rotated");
        if (err == NULL && json_object_size(generated) > 0)
            out->generated = json_incref(generated);
    }
    free(until);
    free(current);
    free(previous);
    json_decref(generated);
    json_decref(secrets);
    return err;
}

static imp_error_t *secret_rotate(control_op_t *op, control_outcome_t *out)
{
    bool ok = false;
    json_t *given = NULL;
    channel_t ch = {0};
    imp_error_t *err = open_given(op, &given);
    if (err == NULL)
        err = require_tenant(op, out, &ok);
    if (err == NULL && ok)
        err = channel_lock(op, &ch);
    if (err == NULL && ok && !ch.exists)
        control_fail(out, "channel %s/%s does not exist: create it with channel set", op->d.slug,
                     op->d.kind);
    else if (err == NULL && ok)
        err = rotate_apply(op, &ch, given, out);
    channel_dispose(&ch);
    json_decref(given);
    return err;
}

/* Publish the tenant's snapshot again, unchanged but for a newer version: for a directory
 * topic that lost its data (a dev broker restarted, a topic re-created). */
static imp_error_t *tenant_publish(control_op_t *op, control_outcome_t *out)
{
    imp_pg_result_t *res = NULL;
    imp_error_t *err = tenant_lock(op, &res);
    if (err != NULL || res == NULL || imp_pg_result_rows(res) != 1) {
        if (err == NULL)
            control_fail(out, "tenant %s does not exist", op->d.slug);
        imp_pg_result_free(res);
        return err;
    }
    imp_pg_result_free(res);
    char target[96];
    snprintf(target, sizeof(target), "tenant:%s", op->d.slug);
    long long version = 0;
    err = control_audit(op, "tenant.publish", target, NULL, NULL);
    if (err == NULL)
        err = control_publish_tenant(op, "tenant", &version);
    if (err != NULL)
        return err;
    json_t *r = tenant_result(op);
    json_object_set_new(r, "snapshot_version", json_integer(version));
    control_succeed(out, r, "tenant %s published (snapshot version %lld)", op->d.slug, version);
    return NULL;
}

/* ---- the handler ---------------------------------------------------------------------------- */

typedef imp_error_t *(*command_fn)(control_op_t *op, control_outcome_t *out);

static const command_fn commands[CONTROL_CMD_COUNT] = {
    tenant_create, tenant_status, channel_set, secret_rotate, tenant_publish,
};

imp_error_t *control_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user)
{
    if (control_kb_cmd_of_type(ev->type) >= 0)
        return control_kb_handle(ctx, ev, user);
    if (control_bot_cmd_of_type(ev->type) >= 0)
        return control_bot_handle(ctx, ev, user);
    int cmd = control_cmd_of_type(ev->type);
    if (cmd < 0)
        return imp_error_new(IMP_ERR_POISON, "unknown_command",
                             "type %s is not a command imperium-control applies", ev->type);
    if (!control_uuid_valid(ev->tenantid))
        return imp_error_new(IMP_ERR_POISON, "bad_command",
                             "tenantid is not a tenant id (a lowercase UUID)");
    control_op_t op = {.ctx = ctx, .ev = ev, .c = user, .cmd = (control_cmd_t)cmd};
    imp_error_t *err = control_data_parse(op.cmd, ev->data, &op.d);
    if (err != NULL)
        return err;
    op.pg = imp_worker_ctx_pg(ctx);
    control_outcome_t out = {0};
    err = commands[cmd](&op, &out);
    if (err == NULL)
        err = control_record_outcome(&op, &out);
    if (err == NULL && out.failed)
        IMP_LOG_WARN("command failed", IMP_LS("type", ev->type), IMP_LS("slug", op.d.slug),
                     IMP_LS("actor", op.d.actor), IMP_LS("reason", out.error));
    else if (err == NULL)
        IMP_LOG_INFO("command applied", IMP_LS("type", ev->type), IMP_LS("slug", op.d.slug),
                     IMP_LS("actor", op.d.actor),
                     IMP_LS("outcome", json_string_value(json_object_get(out.result, "message"))));
    control_outcome_dispose(&out);
    return err;
}
