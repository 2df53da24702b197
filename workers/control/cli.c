/* The client: turn a command line into a command on imp.commands.v1 (secrets sealed), produce
 * it durably, then wait for its outcome in Postgres. */
#include "control.h"

#include "imp/config.h"
#include "imp/kafka.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCE_TIMEOUT_MS 15000

static const imp_config_entry_t cli_table[] = {
    {"IMP_KAFKA_BROKERS", IMP_CFG_STRING, "", 0, 0, 0,
     "Kafka bootstrap servers (host:port,...); every command but tenant show sends to Kafka",
     offsetof(cli_settings_t, kafka_brokers)},
    {"IMP_PG_DSN", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "Postgres connection string of the application role (imperium_app): tenant lookups, "
     "outcomes, tenant show",
     offsetof(cli_settings_t, pg_dsn)},
    {"IMP_SECRET_KEY", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "key of the secrets at rest: needed to send --secret values and to show generated ones",
     offsetof(cli_settings_t, secret_key)},
    {"IMP_CONTROL_ACTOR", IMP_CFG_STRING, "", 0, 0, 0,
     "who acts, as recorded in audit_log (empty: cli:$USER)", offsetof(cli_settings_t, actor)},
    {"IMP_KAFKA_PRODUCER_PROPS", IMP_CFG_STRING, "", 0, 0, 0,
     "librdkafka producer overrides, name=value,...", offsetof(cli_settings_t, producer_props)},
    {"IMP_LOG_LEVEL", IMP_CFG_STRING, "warn", 0, 0, 0,
     "debug, info, warn or error (JSON log lines on stderr)", offsetof(cli_settings_t, log_level)},
};

static const char cli_summary[] =
    "The client: submits tenant lifecycle, knowledge-base and bot commands to imp.commands.v1\n"
    "and waits for their outcome (docs/tenants.md, docs/knowledge-base-operations.md,\n"
    "docs/bot-versions.md).";

void control_cli_help(FILE *out)
{
    imp_config_print_help(out, CONTROL_BINARY " tenant|channel|secret|kb|bot ...", cli_summary,
                          cli_table, IMP_ARRAY_LEN(cli_table));
}

void cli_report(const char *what, const imp_error_t *err)
{
    const char *detail = imp_error_detail(err);
    fprintf(stderr, "%s: %s: %s%s%s\n", CONTROL_BINARY, what, imp_error_message(err),
            detail ? " - " : "", detail ? detail : "");
}

void cli_settings_dispose(cli_settings_t *s)
{
    imp_crypto_wipe(s->key, sizeof(s->key));
    imp_config_dispose(cli_table, IMP_ARRAY_LEN(cli_table), s);
}

int cli_load_settings(cli_settings_t *s)
{
    imp_error_t *err = imp_config_load(cli_table, IMP_ARRAY_LEN(cli_table), s);
    imp_log_level_t level = IMP_LOG_LEVEL_WARN;
    if (err == NULL && imp_log_level_parse(s->log_level, &level) != 0)
        err = imp_error_new(IMP_ERR_FATAL, "config",
                            "IMP_LOG_LEVEL is not one of debug, info, warn, error");
    if (err == NULL && s->secret_key[0] != '\0') {
        err = imp_crypto_key_parse("IMP_SECRET_KEY", s->secret_key, s->key);
        s->have_key = err == NULL;
    }
    imp_crypto_wipe(s->secret_key, strlen(s->secret_key));
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", CONTROL_BINARY, imp_error_message(err));
        imp_error_free(err);
        return -1;
    }
    imp_log_init(CONTROL_BINARY, level);
    if (s->actor[0] == '\0') {
        const char *user = getenv("USER");
        free(s->actor);
        s->actor = imp_asprintf("cli:%s", user && *user ? user : "operator");
    }
    return 0;
}

imp_error_t *cli_connect_pg(const cli_settings_t *s, imp_pg_t **out)
{
    /* libpq's parse errors quote the text around the fault, which may be the password. */
    char *why = NULL;
    PQconninfoOption *parsed = PQconninfoParse(s->pg_dsn, &why);
    PQfreemem(why);
    if (parsed == NULL)
        return imp_error_new(IMP_ERR_FATAL, "config",
                             "IMP_PG_DSN is not a valid connection string or URI");
    PQconninfoFree(parsed);
    imp_pg_options_t opts = {.dsn = s->pg_dsn, .application_name = CONTROL_BINARY};
    imp_pg_t *pg = imp_pg_new(&opts);
    imp_error_t *err = imp_pg_ensure_connected(pg);
    if (err != NULL) {
        imp_pg_free(pg);
        return err;
    }
    *out = pg;
    return NULL;
}

/* The tenant the command is for: the existing tenant of slug, else the id a create of slug
 * gives it (UUIDv5 of "tenant|<slug>"), so that a retried create targets the same id. */
imp_error_t *cli_tenant_id(imp_pg_t *pg, const char *slug, char out[IMP_UUID_STR_SIZE])
{
    char *id = NULL;
    const char *params[] = {slug};
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT imp_tenant_id_by_slug($1)::text", 1, params, &id);
    if (err != NULL)
        return err;
    if (id != NULL) {
        snprintf(out, IMP_UUID_STR_SIZE, "%s", id);
        free(id);
        return NULL;
    }
    char *name = imp_asprintf("tenant|%s", slug);
    uint8_t uuid[IMP_UUID_LEN];
    imp_uuid_v5(IMP_OPID_NAMESPACE, name, strlen(name), uuid);
    imp_uuid_format(uuid, out);
    free(name);
    return NULL;
}

static json_t *settings_of(const cli_args_t *a)
{
    json_t *settings = NULL;
    for (size_t i = 0; i < IMP_ARRAY_LEN(a->settings); i++) {
        if (a->settings[i] == NULL)
            continue;
        if (settings == NULL)
            settings = json_object();
        json_object_set_new(settings, cli_setting_names[i],
                            a->settings[i][0] ? json_string(a->settings[i]) : json_null());
    }
    return settings;
}

/* The command's data (new reference), without secrets. */
static json_t *data_of(const cli_args_t *a, const cli_settings_t *s)
{
    json_t *d = json_pack("{s:s, s:s}", "slug", a->slug, "actor", s->actor);
    switch (a->cmd) {
    case CLI_TENANT_CREATE:
        json_object_set_new(d, "name", json_string(a->name));
        if (a->plan != NULL)
            json_object_set_new(d, "plan", json_string(a->plan));
        break;
    case CLI_TENANT_DISABLE:
    case CLI_TENANT_ENABLE:
        json_object_set_new(d, "status",
                            json_string(a->cmd == CLI_TENANT_ENABLE ? "active" : "disabled"));
        break;
    case CLI_TENANT_PUBLISH:
        break;
    case CLI_CHANNEL_SET: {
        json_object_set_new(d, "kind", json_string(a->kind));
        if (a->enabled >= 0)
            json_object_set_new(d, "enabled", json_boolean(a->enabled));
        json_t *settings = settings_of(a);
        if (settings != NULL)
            json_object_set_new(d, "settings", settings);
        break;
    }
    default:
        json_object_set_new(d, "kind", json_string(a->kind));
        if (a->grace_s >= 0)
            json_object_set_new(d, "grace_s", json_integer(a->grace_s));
        break;
    }
    return d;
}

static control_cmd_t command_of(cli_cmd_t cmd)
{
    switch (cmd) {
    case CLI_TENANT_CREATE:
        return CONTROL_CMD_TENANT_CREATE;
    case CLI_CHANNEL_SET:
        return CONTROL_CMD_CHANNEL_SET;
    case CLI_SECRET_ROTATE:
        return CONTROL_CMD_SECRET_ROTATE;
    case CLI_TENANT_PUBLISH:
        return CONTROL_CMD_TENANT_PUBLISH;
    default:
        return CONTROL_CMD_TENANT_STATUS;
    }
}

/* The command's data (a new reference in *out). Secrets are sealed for this tenant and
 * operation; the data is checked by the rules the worker applies. */
static imp_error_t *command_data(void *arg, const cli_settings_t *s, const char *tenant_id,
                                 const char *opid, json_t **out)
{
    const cli_args_t *a = arg;
    json_t *data = data_of(a, s);
    imp_error_t *err = NULL;
    if (a->secrets != NULL) {
        char aad[CONTROL_AAD_MAX], *sealed = NULL;
        control_aad_command(tenant_id, opid, aad);
        err = control_seal_json(s->key, a->secrets, aad, &sealed);
        if (err == NULL)
            json_object_set_new(data, "secrets_enc", json_string(sealed));
        free(sealed);
    }
    control_data_t d;
    if (err == NULL)
        err = control_data_parse(command_of(a->cmd), data, &d);
    if (err != NULL) {
        json_decref(data);
        return err;
    }
    *out = data;
    return NULL;
}

imp_error_t *cli_produce(const cli_settings_t *s, const char *tenant_id, const char *payload)
{
    imp_kafka_props_t props = {0};
    imp_error_t *err = imp_kafka_props_parse(s->producer_props, &props);
    if (err != NULL)
        return err;
    imp_kafka_producer_t *p = imp_kafka_producer_new(s->kafka_brokers, &props, &err);
    imp_kafka_props_dispose(&props);
    if (err != NULL)
        return err;
    imp_kafka_out_t m = {.topic = CONTROL_TOPIC_COMMANDS,
                         .partition = IMP_KAFKA_PARTITION_ANY,
                         .key = tenant_id,
                         .key_len = strlen(tenant_id),
                         .value = payload,
                         .value_len = strlen(payload)};
    err = imp_kafka_produce_sync(p, &m, PRODUCE_TIMEOUT_MS, NULL, NULL);
    imp_kafka_producer_free(p);
    return err;
}

static int show(imp_pg_t *pg, const cli_settings_t *s, void *args)
{
    const cli_args_t *a = args;
    return cli_show(pg, s, a->slug, a->json);
}

/* --secret values are sealed with the key of the secrets at rest: it must be set. */
static int needs_key(void *args, const cli_settings_t *s, json_t **data)
{
    (void)data;
    const cli_args_t *a = args;
    if (a->secrets != NULL && !s->have_key) {
        fprintf(stderr, "%s: IMP_SECRET_KEY is not set: it seals --secret values\n",
                CONTROL_BINARY);
        return -1;
    }
    return 0;
}

int control_cli(int argc, char **argv)
{
    cli_args_t a;
    char problem[512];
    int rc = CONTROL_EXIT_USAGE;
    if (cli_args_parse(argc, argv, &a, problem, sizeof(problem)) != 0) {
        fprintf(stderr, "%s: %s\n", CONTROL_BINARY, problem);
        cli_print_usage(stderr);
    } else {
        cli_command_t c = {.reads = a.cmd == CLI_TENANT_SHOW,
                           .read = show,
                           .prepare = needs_key,
                           .sub = {.slug = a.slug,
                                   .type = control_cmd_type(command_of(a.cmd)),
                                   .operation_id = a.operation_id,
                                   .no_wait = a.no_wait,
                                   .timeout_ms = a.timeout_ms,
                                   .build = command_data,
                                   .arg = &a}};
        rc = cli_run(&c, &a);
    }
    cli_args_dispose(&a);
    return rc;
}
