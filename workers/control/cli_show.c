/* `tenant show`: a tenant and its channels as Postgres has them, read as the application role
 * under the tenant. Secret values are never shown; with IMP_SECRET_KEY the names of the
 * secrets a channel holds are. */
#include "control.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQL_RFC3339 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"
#define SQL_TENANT                                                                                 \
    "SELECT id::text, slug, name, plan, status, release_channel, "                                 \
    "to_char(created_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), "                                    \
    "to_char(updated_at AT TIME ZONE 'UTC', " SQL_RFC3339 "), snapshot_version "                   \
    "FROM tenants WHERE id = imp_tenant_id_by_slug($1)"
#define SQL_CHANNELS                                                                               \
    "SELECT kind, name, enabled, settings::text, secrets_enc, "                                    \
    "CASE WHEN previous_secrets_until > now() THEN "                                               \
    "to_char(previous_secrets_until AT TIME ZONE 'UTC', " SQL_RFC3339 ") END, "                    \
    "to_char(updated_at AT TIME ZONE 'UTC', " SQL_RFC3339 ") "                                     \
    "FROM channels WHERE tenant_id = $1::uuid ORDER BY kind, name"

/* The names of the secrets in a sealed token, or a word saying why they are not known. */
static json_t *secret_names(const cli_settings_t *s, const char *tenant_id, const char *token)
{
    if (token == NULL)
        return json_array();
    if (!s->have_key)
        return json_string("sealed (set IMP_SECRET_KEY to list their names)");
    json_t *secrets = NULL;
    imp_error_t *err = control_open_json(s->key, token, tenant_id, &secrets);
    if (err != NULL) {
        imp_error_free(err);
        return json_string("sealed under another key");
    }
    json_t *names = control_secrets_names(secrets);
    json_decref(secrets);
    return names;
}

static json_t *channel_json(const cli_settings_t *s, const char *tenant_id,
                            const imp_pg_result_t *res, int r)
{
    bool enabled = false;
    imp_pg_result_get_bool(res, r, 2, &enabled);
    json_t *settings = json_loads(imp_pg_result_value(res, r, 3), 0, NULL);
    const char *until = imp_pg_result_value(res, r, 5);
    return json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:s}", "kind", imp_pg_result_value(res, r, 0),
                     "name", imp_pg_result_value(res, r, 1), "enabled", enabled, "settings",
                     settings ? settings : json_object(), "secrets",
                     secret_names(s, tenant_id, imp_pg_result_value(res, r, 4)),
                     "previous_secrets_until", until ? json_string(until) : json_null(),
                     "updated_at", imp_pg_result_value(res, r, 6));
}

static json_t *tenant_json(const imp_pg_result_t *res)
{
    long long version = 0;
    imp_pg_result_get_int64(res, 0, 8, &version);
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", imp_pg_result_value(res, 0, 0),
        "slug", imp_pg_result_value(res, 0, 1), "name", imp_pg_result_value(res, 0, 2), "plan",
        imp_pg_result_value(res, 0, 3), "status", imp_pg_result_value(res, 0, 4), "release_channel",
        imp_pg_result_value(res, 0, 5), "created_at", imp_pg_result_value(res, 0, 6), "updated_at",
        imp_pg_result_value(res, 0, 7), "snapshot_version", (json_int_t)version);
}

/* Read the tenant of slug and its channels; *out NULL when there is no such tenant. */
static imp_error_t *read_tenant(imp_pg_t *pg, const cli_settings_t *s, const char *slug,
                                json_t **out)
{
    *out = NULL;
    char *id = NULL;
    const char *params[] = {slug};
    imp_pg_result_t *res = NULL;
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT imp_tenant_id_by_slug($1)::text", 1, params, &id);
    if (err != NULL || id == NULL)
        return err;
    err = imp_pg_tx_begin_with(pg, "READ ONLY");
    if (err == NULL)
        err = imp_pg_set_tenant(pg, id);
    if (err == NULL)
        err = imp_pg_exec(pg, SQL_TENANT, 1, params, &res);
    if (err == NULL && imp_pg_result_rows(res) == 1) {
        json_t *channels = json_array();
        *out = json_pack("{s:o, s:o}", "tenant", tenant_json(res), "channels", channels);
        imp_pg_result_free(res);
        res = NULL;
        const char *cparams[] = {id};
        err = imp_pg_exec(pg, SQL_CHANNELS, 1, cparams, &res);
        for (int r = 0; err == NULL && r < imp_pg_result_rows(res); r++)
            json_array_append_new(channels, channel_json(s, id, res, r));
    }
    imp_pg_result_free(res);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
    else
        imp_pg_tx_rollback(pg);
    free(id);
    return err;
}

static void print_text(const json_t *doc)
{
    const json_t *t = json_object_get(doc, "tenant");
    const char *fields[] = {"slug",       "id",        "name", "status", "plan", "release_channel",
                            "created_at", "updated_at"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(fields); i++)
        printf("%-16s %s\n", fields[i], json_string_value(json_object_get(t, fields[i])));
    printf("%-16s %lld\n", "snapshot_version",
           (long long)json_integer_value(json_object_get(t, "snapshot_version")));
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(doc, "channels"), i, ch)
    {
        char *settings = json_dumps(json_object_get(ch, "settings"), JSON_COMPACT | JSON_SORT_KEYS);
        char *secrets = json_dumps(json_object_get(ch, "secrets"), JSON_COMPACT | JSON_ENCODE_ANY);
        const char *until = json_string_value(json_object_get(ch, "previous_secrets_until"));
        printf("channel %-9s %s %s settings=%s secrets=%s",
               json_string_value(json_object_get(ch, "kind")),
               json_string_value(json_object_get(ch, "name")),
               json_is_true(json_object_get(ch, "enabled")) ? "enabled" : "disabled", settings,
               secrets);
        if (until != NULL)
            printf(" previous_secrets_until=%s", until);
        printf("\n");
        free(settings);
        free(secrets);
    }
}

int cli_show(imp_pg_t *pg, const cli_settings_t *s, const char *slug, bool json)
{
    json_t *doc = NULL;
    imp_error_t *err = read_tenant(pg, s, slug, &doc);
    if (err != NULL) {
        cli_report("reading the tenant", err);
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
