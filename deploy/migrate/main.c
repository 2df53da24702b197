/* imperium-migrate: brings a database to the newest migrations/NNNN_name.sql. */
#include "migrate.h"

#include "imp/config.h"
#include "imp/log.h"
#include "imp/mem.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BINARY "imperium-migrate"

typedef struct {
    char *pg_dsn;
    char *dir;
    char *app_password;
    char *api_password;
    long long lock_timeout_ms;
    char *log_level;
} settings_t;

static const imp_config_entry_t config_table[] = {
    {"IMP_PG_DSN", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
     "Postgres DSN of a superuser or of the schema owner (imperium_owner)",
     offsetof(settings_t, pg_dsn)},
    {"IMP_MIGRATIONS_DIR", IMP_CFG_STRING, "./migrations", 0, 0, 0,
     "directory of the NNNN_name.sql files", offsetof(settings_t, dir)},
    {"IMP_PG_APP_PASSWORD", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "when set, the login password of imperium_app (after migrating)",
     offsetof(settings_t, app_password)},
    {"IMP_PG_API_PASSWORD", IMP_CFG_STRING, "", 0, 0, IMP_CFG_SECRET,
     "when set, the login password of imperium_api (after migrating)",
     offsetof(settings_t, api_password)},
    {"IMP_MIGRATE_LOCK_TIMEOUT", IMP_CFG_DURATION, "60s", 0, 3600000, 0,
     "how long to wait for another run's migration lock", offsetof(settings_t, lock_timeout_ms)},
    {"IMP_LOG_LEVEL", IMP_CFG_STRING, "info", 0, 0, 0, "debug | info | warn | error",
     offsetof(settings_t, log_level)},
};

static const char summary[] =
    "Applies the migrations of IMP_MIGRATIONS_DIR in order, one transaction per file, under\n"
    "an advisory lock; re-running is a no-op.\n\n"
    "Commands:\n"
    "  up (default)  apply pending migrations, then set the role passwords that are given\n"
    "  status        list applied / pending / changed / missing migrations (exit 1 when a\n"
    "                checksum changed or a pending file is older than an applied one)";

static int usage_error(const char *arg)
{
    fprintf(stderr, "%s: unknown argument \"%s\" (try --help)\n", BINARY, arg);
    return 2;
}

static int fail(imp_error_t *err)
{
    IMP_LOG_ERROR("migration run failed", IMP_LE(err));
    fprintf(stderr, "%s: error: %s\n", BINARY, imp_error_message(err));
    if (imp_error_detail(err) != NULL)
        fprintf(stderr, "%s: detail: %s\n", BINARY, imp_error_detail(err));
    imp_error_free(err);
    return 1;
}

static imp_error_t *run(const settings_t *s, bool status, int *exit_code)
{
    migrate_set_t set;
    imp_pg_t *pg = NULL;
    bool clean = true;
    imp_error_t *err = migrate_load_dir(s->dir, &set);
    if (err != NULL)
        return err;
    imp_pg_options_t opts = {.dsn = s->pg_dsn, .application_name = BINARY};
    pg = imp_pg_new(&opts);
    err = imp_pg_ensure_connected(pg);
    if (err != NULL)
        goto out;
    if (status) {
        err = migrate_status(pg, &set, stdout, &clean);
        *exit_code = clean ? 0 : 1;
        goto out;
    }
    err = migrate_up(pg, &set, s->lock_timeout_ms);
    if (err == NULL)
        err = migrate_set_passwords(pg, s->app_password, s->api_password);
out:
    imp_pg_free(pg);
    migrate_set_dispose(&set);
    return err;
}

int main(int argc, char **argv)
{
    bool status = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            imp_config_print_help(stdout, BINARY " [up|status]", summary, config_table,
                                  IMP_ARRAY_LEN(config_table));
            return 0;
        }
        if (strcmp(argv[i], "status") == 0)
            status = true;
        else if (strcmp(argv[i], "up") != 0)
            return usage_error(argv[i]);
    }
    settings_t s;
    imp_config_init_or_exit(argc, argv, BINARY, summary, config_table, IMP_ARRAY_LEN(config_table),
                            &s);
    imp_log_level_t level;
    if (imp_log_level_parse(s.log_level, &level) != 0) {
        fprintf(stderr, "%s: IMP_LOG_LEVEL is not one of debug, info, warn, error\n", BINARY);
        imp_config_dispose(config_table, IMP_ARRAY_LEN(config_table), &s);
        return 2;
    }
    imp_log_init(BINARY, level);
    int code = 0;
    imp_error_t *err = run(&s, status, &code);
    imp_config_dispose(config_table, IMP_ARRAY_LEN(config_table), &s);
    return err != NULL ? fail(err) : code;
}
