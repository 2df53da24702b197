/* `imperium-control serve`: the worker that applies commands from imp.commands.v1 on the
 * worker runtime (imp/worker.h). */
#include "control.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    imp_worker_settings_t rt;
    char *secret_key;
} serve_settings_t;

static const imp_config_entry_t serve_table[] = {
    IMP_WORKER_CONFIG(serve_settings_t, rt),
    {"IMP_SECRET_KEY", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "key of the secrets at rest (AES-256-GCM): 64 hex digits or the base64 of 32 bytes",
     offsetof(serve_settings_t, secret_key)},
};

static const char serve_summary[] =
    "Applies tenant lifecycle commands from imp.commands.v1 (create tenant, enable/disable,\n"
    "channel set, secret rotation), audits them, records their outcome in operations and\n"
    "publishes the tenant directory to imp.tenants.v1 (docs/tenants.md).";

/* Config, log and key; 0 or an exit status. */
static int setup(int argc, char **argv, serve_settings_t *s, control_t *c)
{
    imp_config_init_or_exit(argc, argv, CONTROL_BINARY " serve", serve_summary, serve_table,
                            IMP_ARRAY_LEN(serve_table), s);
    imp_log_level_t level;
    if (imp_log_level_parse(s->rt.log_level, &level) != 0) {
        fprintf(stderr, "%s: IMP_LOG_LEVEL must be debug, info, warn or error\n", CONTROL_BINARY);
        return CONTROL_EXIT_USAGE;
    }
    imp_log_init(CONTROL_BINARY, level);
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRET_KEY", s->secret_key, c->key);
    imp_crypto_wipe(s->secret_key, strlen(s->secret_key));
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", CONTROL_BINARY, imp_error_message(err));
        imp_error_free(err);
        return CONTROL_EXIT_USAGE;
    }
    return 0;
}

int control_serve(int argc, char **argv)
{
    static const char *const topics[] = {CONTROL_TOPIC_COMMANDS};
    serve_settings_t s = {0};
    control_t c = {0};
    int rc = setup(argc, argv, &s, &c);
    if (rc != 0)
        goto out;
    imp_worker_def_t def = {
        .name = CONTROL_WORKER,
        .topics = topics,
        .ntopics = IMP_ARRAY_LEN(topics),
        .handler = control_handle,
        .user = &c,
    };
    imp_worker_t *w = NULL;
    imp_error_t *err = imp_worker_new(&def, &s.rt, &w);
    if (err == NULL) {
        imp_worker_handle_signals(w);
        err = imp_worker_run(w);
    } else {
        IMP_LOG_ERROR("could not start", IMP_LE(err));
    }
    rc = err == NULL ? CONTROL_EXIT_OK : 1;
    imp_error_free(err);
    imp_worker_free(w);
out:
    imp_crypto_wipe(c.key, sizeof(c.key));
    imp_config_dispose(serve_table, IMP_ARRAY_LEN(serve_table), &s);
    return rc;
}

void control_serve_help(FILE *out)
{
    imp_config_print_help(out, CONTROL_BINARY " [serve]", serve_summary, serve_table,
                          IMP_ARRAY_LEN(serve_table));
}
