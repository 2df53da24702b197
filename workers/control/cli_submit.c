/* What every command of the client does once its arguments are read: connect to Postgres,
 * find the tenant, build the envelope, send it to imp.commands.v1 and wait for its outcome.
 * The command groups (cli.c, cli_bot.c, cli_kb.c) differ only in the data they send and in
 * how they wait. */
#include "control.h"

#include "imp/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_SOURCE "imperium/control-cli"

/* Connect as the application role: CONTROL_EXIT_OK, or the exit status after printing why
 * (usage when the settings are wrong, unknown when Postgres is unreachable). */
static int open_pg(const cli_settings_t *s, imp_pg_t **out)
{
    imp_error_t *err = cli_connect_pg(s, out);
    if (err == NULL)
        return CONTROL_EXIT_OK;
    cli_report("could not connect to Postgres", err);
    int rc = imp_error_class(err) == IMP_ERR_FATAL ? CONTROL_EXIT_USAGE : CONTROL_EXIT_UNKNOWN;
    imp_error_free(err);
    return rc;
}

/* The envelope of a new command (*out: heap), data taken over. */
static imp_error_t *envelope(const cli_submission_t *sub, const char *tenant_id, const char *opid,
                             json_t *data, char **out)
{
    imp_envelope_t ev;
    imp_error_t *err = imp_envelope_new_event(&ev, opid, CLI_SOURCE, sub->type, tenant_id, data);
    if (err != NULL)
        return err;
    imp_trace_t trace;
    imp_trace_new(&trace);
    imp_trace_format(&trace, ev.traceparent);
    err = imp_envelope_serialize(&ev, out);
    imp_envelope_dispose(&ev);
    return err;
}

int cli_submit(imp_pg_t *pg, const cli_settings_t *s, const cli_submission_t *sub)
{
    char tenant_id[IMP_UUID_STR_SIZE], opid[IMP_UUID_STR_SIZE];
    imp_error_t *err = cli_tenant_id(pg, sub->slug, tenant_id);
    if (err != NULL) {
        cli_report("looking up the tenant", err);
        imp_error_free(err);
        return CONTROL_EXIT_UNKNOWN;
    }
    if (sub->operation_id != NULL)
        snprintf(opid, sizeof(opid), "%s", sub->operation_id);
    else
        imp_uuid_v4_str(opid);
    json_t *data = NULL;
    char *payload = NULL;
    if (sub->build != NULL)
        err = sub->build(sub->arg, s, tenant_id, opid, &data);
    else
        data = json_incref(sub->data);
    if (err == NULL)
        err = envelope(sub, tenant_id, opid, data, &payload);
    if (err != NULL) {
        cli_report("invalid command", err);
        imp_error_free(err);
        return CONTROL_EXIT_USAGE;
    }
    if (strlen(payload) > CONTROL_COMMAND_MAX_BYTES) {
        fprintf(stderr,
                "%s: the command is %zu bytes once encoded, more than the %d a command may be "
                "(Kafka's message size)%s\n",
                CONTROL_BINARY, strlen(payload), CONTROL_COMMAND_MAX_BYTES,
                sub->too_large_hint ? sub->too_large_hint : "");
        free(payload);
        return CONTROL_EXIT_USAGE;
    }
    err = cli_produce(s, tenant_id, payload);
    free(payload);
    if (err != NULL) {
        cli_report("could not send the command to Kafka", err);
        fprintf(stderr, "%s: retry with --operation-id %s\n", CONTROL_BINARY, opid);
        imp_error_free(err);
        return CONTROL_EXIT_UNKNOWN;
    }
    if (sub->no_wait) {
        printf("operation %s: submitted\n", opid);
        return CONTROL_EXIT_OK;
    }
    if (sub->wait != NULL)
        return sub->wait(pg, s, tenant_id, opid, sub->arg);
    return cli_wait(pg, s, tenant_id, opid, sub->timeout_ms);
}

int cli_run(const cli_command_t *c, void *args)
{
    cli_settings_t s = {0};
    imp_pg_t *pg = NULL;
    json_t *data = NULL;
    int rc = CONTROL_EXIT_USAGE;
    if (cli_load_settings(&s) != 0)
        goto out;
    if (!c->reads && s.kafka_brokers[0] == '\0') {
        fprintf(stderr, "%s: IMP_KAFKA_BROKERS is not set\n", CONTROL_BINARY);
        goto out;
    }
    if (c->prepare != NULL && c->prepare(args, &s, &data) != 0)
        goto out;
    rc = open_pg(&s, &pg);
    if (rc != CONTROL_EXIT_OK)
        goto out;
    if (c->reads) {
        rc = c->read(pg, &s, args);
    } else {
        cli_submission_t sub = c->sub;
        sub.data = data;
        rc = cli_submit(pg, &s, &sub);
    }
out:
    json_decref(data);
    imp_pg_free(pg);
    cli_settings_dispose(&s);
    return rc;
}
