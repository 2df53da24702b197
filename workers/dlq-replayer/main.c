/* imperium-dlq: find, inspect, replay and purge dead letters (docs/dead-letters.md). */
#include "dlq.h"

#include "imp/config.h"
#include "imp/envelope.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const imp_config_entry_t config_table[] = {
    {"IMP_PG_DSN", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "Postgres connection string of the application role (imperium_app)",
     offsetof(dlq_settings_t, pg_dsn)},
    {"IMP_KAFKA_BROKERS", IMP_CFG_STRING, "", 0, 0, 0,
     "Kafka bootstrap servers (host:port,...); needed by replay only",
     offsetof(dlq_settings_t, kafka_brokers)},
    {"IMP_DLQ_ACTOR", IMP_CFG_STRING, "", 0, 0, 0,
     "who replays or purges, as recorded in audit_log (empty: $USER, else \"operator\")",
     offsetof(dlq_settings_t, actor)},
    {"IMP_DLQ_PUBLISH_TIMEOUT", IMP_CFG_DURATION, "10s", 1000, 10000, 0,
     "how long replay waits for Kafka to acknowledge the replayed events",
     offsetof(dlq_settings_t, publish_timeout_ms)},
    {"IMP_LOG_LEVEL", IMP_CFG_STRING, "warn", 0, 0, 0,
     "debug, info, warn or error (JSON log lines on stderr)", offsetof(dlq_settings_t, log_level)},
};

static const char summary[] =
    "Dead letters are events a worker gave up on (dead_letters in Postgres). Commands:\n"
    "  list     newest first; replayed ones only with --all; --json for every field\n"
    "  show     one dead letter in full, the envelope pretty-printed\n"
    "  replay   back to the original topic with the original key and operation id,\n"
    "           attempt 0; audited; replaying twice changes nothing\n"
    "  purge    delete dead letters (prints the count and deletes nothing without --yes)\n"
    "TIME is RFC 3339 (2026-05-01T03:00:00Z), a date (2026-05-01) or an age (15m, 2h, 7d).\n"
    "Exit status: 0 done; 1 some ids not found or not replayable, or purge without --yes;\n"
    "2 bad arguments or Postgres unreachable; 3 replayed but Kafka unreachable (the events\n"
    "wait in the outbox).";

int dlq_fail(const char *what, imp_error_t *err)
{
    if (what != NULL)
        fprintf(stderr, "%s: %s: %s\n", DLQ_BINARY, what, imp_error_message(err));
    else
        fprintf(stderr, "%s: %s\n", DLQ_BINARY, imp_error_message(err));
    if (imp_error_detail(err) != NULL)
        fprintf(stderr, "%s: detail: %s\n", DLQ_BINARY, imp_error_detail(err));
    imp_error_free(err);
    return DLQ_EXIT_USAGE;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
            strcmp(argv[i], "help") == 0)
            return true;
    return false;
}

static int usage_error(const dlq_args_t *a, const char *problem)
{
    fprintf(stderr, "%s: %s\n", DLQ_BINARY, problem);
    if (a->have_cmd)
        dlq_print_command_usage(stderr, a->cmd);
    else
        dlq_print_usage(stderr);
    return DLQ_EXIT_USAGE;
}

static int load_settings(dlq_settings_t *s)
{
    imp_error_t *err = imp_config_load(config_table, IMP_ARRAY_LEN(config_table), s);
    imp_log_level_t level = IMP_LOG_LEVEL_WARN;
    if (err == NULL && imp_log_level_parse(s->log_level, &level) != 0)
        err = imp_error_new(IMP_ERR_FATAL, "config",
                            "IMP_LOG_LEVEL is not one of debug, info, warn, error");
    if (err != NULL) {
        fprintf(stderr, "%s: %s\n", DLQ_BINARY, imp_error_message(err));
        imp_error_free(err);
        return -1;
    }
    imp_log_init(DLQ_BINARY, level);
    if (s->actor[0] == '\0') {
        const char *user = getenv("USER");
        free(s->actor);
        s->actor = imp_strdup(user && *user ? user : "operator");
    }
    return 0;
}

/* libpq's parse errors quote the text around the fault, which may be the password: check the
 * DSN first and say only that it is malformed. */
static imp_error_t *check_dsn(const char *dsn)
{
    char *why = NULL;
    PQconninfoOption *parsed = PQconninfoParse(dsn, &why);
    PQfreemem(why);
    if (parsed == NULL)
        return imp_error_new(IMP_ERR_FATAL, "config",
                             "IMP_PG_DSN is not a valid connection string or URI");
    PQconninfoFree(parsed);
    return NULL;
}

/* Connected, with bounds on how long a statement or a row lock may take. */
static imp_error_t *connect_pg(const dlq_settings_t *s, imp_pg_t **out)
{
    imp_error_t *err = check_dsn(s->pg_dsn);
    if (err != NULL)
        return err;
    imp_pg_options_t opts = {.dsn = s->pg_dsn, .application_name = DLQ_BINARY};
    imp_pg_t *pg = imp_pg_new(&opts);
    err = imp_pg_ensure_connected(pg);
    if (err == NULL)
        err = imp_pg_exec(pg,
                          "SELECT set_config('statement_timeout', '60s', false), "
                          "set_config('lock_timeout', '10s', false)",
                          0, NULL, NULL);
    if (err != NULL) {
        imp_pg_free(pg);
        return err;
    }
    *out = pg;
    return NULL;
}

static int run(const dlq_settings_t *s, const dlq_args_t *a)
{
    if (a->cmd == DLQ_CMD_REPLAY && !a->dry_run && s->kafka_brokers[0] == '\0')
        return usage_error(a, "replay: IMP_KAFKA_BROKERS is not set");
    imp_pg_t *pg = NULL;
    imp_error_t *err = connect_pg(s, &pg);
    if (err != NULL)
        return dlq_fail(NULL, err);
    int rc;
    switch (a->cmd) {
    case DLQ_CMD_LIST:
        rc = dlq_cmd_list(pg, a);
        break;
    case DLQ_CMD_SHOW:
        rc = dlq_cmd_show(pg, a);
        break;
    case DLQ_CMD_REPLAY:
        rc = dlq_cmd_replay(pg, s, a);
        break;
    default:
        rc = dlq_cmd_purge(pg, s, a);
        break;
    }
    imp_pg_free(pg);
    return rc;
}

int main(int argc, char **argv)
{
    if (wants_help(argc, argv)) {
        imp_config_print_help(stdout, DLQ_BINARY " COMMAND", summary, config_table,
                              IMP_ARRAY_LEN(config_table));
        printf("\n");
        dlq_print_usage(stdout);
        return DLQ_EXIT_OK;
    }
    signal(SIGPIPE, SIG_IGN);
    dlq_args_t args;
    char problem[512];
    int rc;
    if (dlq_args_parse(argc, argv, imp_envelope_time_now_ms(), &args, problem, sizeof(problem)) !=
        0) {
        rc = usage_error(&args, problem);
        dlq_args_dispose(&args);
        return rc;
    }
    dlq_settings_t s = {0};
    if (load_settings(&s) != 0) {
        rc = DLQ_EXIT_USAGE;
    } else {
        rc = run(&s, &args);
    }
    imp_config_dispose(config_table, IMP_ARRAY_LEN(config_table), &s);
    dlq_args_dispose(&args);
    return rc;
}
