/* Applying migrations: advisory lock, schema_migrations, one transaction per file. */
#include "migrate.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* pg_advisory_lock key of the whole run ("impmig" in ASCII). */
#define LOCK_KEY "115852186085735"
#define OWNER_ROLE "imperium_owner"

static const char *const create_history_sql = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                              " version integer PRIMARY KEY,"
                                              " name text NOT NULL,"
                                              " checksum text NOT NULL,"
                                              " applied_at timestamptz NOT NULL DEFAULT now())";

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- history ------------------------------------------------------------------------- */

static void history_add(migrate_history_t *h, const imp_pg_result_t *res, int row)
{
    migrate_applied_t *a = &h->rows[h->n++];
    long long v = 0;
    imp_pg_result_get_int64(res, row, 0, &v);
    a->version = (long)v;
    a->name = imp_strdup(imp_pg_result_value(res, row, 1));
    a->checksum = imp_strdup(imp_pg_result_value(res, row, 2));
    a->applied_at = imp_strdup(imp_pg_result_value(res, row, 3));
}

imp_error_t *migrate_history_load(imp_pg_t *pg, migrate_history_t *out)
{
    memset(out, 0, sizeof(*out));
    char *exists = NULL;
    imp_error_t *err = imp_pg_exec_scalar(pg, "SELECT to_regclass('schema_migrations') IS NOT NULL",
                                          0, NULL, &exists);
    bool present = err == NULL && exists != NULL && strcmp(exists, "t") == 0;
    free(exists);
    if (err != NULL || !present)
        return err;
    imp_pg_result_t *res = NULL;
    err = imp_pg_exec(pg,
                      "SELECT version, name, checksum, "
                      "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                      "FROM schema_migrations ORDER BY version",
                      0, NULL, &res);
    if (err != NULL)
        return err;
    out->rows = imp_calloc((size_t)imp_pg_result_rows(res) + 1, sizeof(*out->rows));
    for (int i = 0; i < imp_pg_result_rows(res); i++)
        history_add(out, res, i);
    imp_pg_result_free(res);
    return NULL;
}

void migrate_history_dispose(migrate_history_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->rows[i].name);
        free(h->rows[i].checksum);
        free(h->rows[i].applied_at);
    }
    free(h->rows);
    memset(h, 0, sizeof(*h));
}

const migrate_applied_t *migrate_history_find(const migrate_history_t *h, long version)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->rows[i].version == version)
            return &h->rows[i];
    return NULL;
}

/* ---- checks before anything runs ----------------------------------------------------- */

static imp_error_t *check_applied(const migrate_set_t *set, const migrate_history_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        const migrate_applied_t *a = &h->rows[i];
        const migrate_file_t *f = migrate_set_find(set, a->version);
        if (f == NULL) {
            IMP_LOG_WARN("applied migration has no file", IMP_LS("migration", a->name));
            continue;
        }
        if (strcmp(f->checksum, a->checksum) != 0)
            return imp_error_new(IMP_ERR_FATAL, "migrate_checksum",
                                 "migration %s was changed after it was applied "
                                 "(checksum %.12s, applied %.12s)",
                                 f->name, f->checksum, a->checksum);
    }
    return NULL;
}

static imp_error_t *check_order(const migrate_set_t *set, const migrate_history_t *h)
{
    long newest = h->n > 0 ? h->rows[h->n - 1].version : -1;
    for (size_t i = 0; i < set->n; i++) {
        const migrate_file_t *f = &set->files[i];
        if (f->version < newest && migrate_history_find(h, f->version) == NULL)
            return imp_error_new(IMP_ERR_FATAL, "migrate_order",
                                 "migration %s is pending but a later version (%ld) is "
                                 "already applied; renumber it",
                                 f->name, newest);
    }
    return NULL;
}

/* ---- lock ---------------------------------------------------------------------------- */

static imp_error_t *try_lock(imp_pg_t *pg, bool *got)
{
    char *v = NULL;
    imp_error_t *err =
        imp_pg_exec_scalar(pg, "SELECT pg_try_advisory_lock(" LOCK_KEY ")", 0, NULL, &v);
    *got = err == NULL && v != NULL && strcmp(v, "t") == 0;
    free(v);
    return err;
}

static imp_error_t *take_lock(imp_pg_t *pg, long long timeout_ms)
{
    long long deadline = mono_ms() + timeout_ms;
    bool got = false, announced = false;
    imp_error_t *err;
    while ((err = try_lock(pg, &got)) == NULL && !got) {
        if (mono_ms() >= deadline)
            return imp_error_new(IMP_ERR_FATAL, "migrate_lock",
                                 "another imperium-migrate still holds the migration lock");
        if (!announced)
            IMP_LOG_INFO("waiting for the migration lock", IMP_LI("timeout_ms", timeout_ms));
        announced = true;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return err;
}

/* ---- one file ------------------------------------------------------------------------ */

/* Objects belong to imperium_owner whoever runs the migration: every file after the first
 * one of a database runs as that role (when the session may act as it). The first file
 * creates the role and the schema privileges it needs, and switches by itself. */
static imp_error_t *become_owner(imp_pg_t *pg)
{
    char *can = NULL;
    imp_error_t *err = imp_pg_exec_scalar(
        pg,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '" OWNER_ROLE "')"
        " AND EXISTS (SELECT 1 FROM schema_migrations)"
        " THEN pg_has_role('" OWNER_ROLE "', 'MEMBER') ELSE false END",
        0, NULL, &can);
    if (err == NULL && can != NULL && strcmp(can, "t") == 0)
        err = imp_pg_exec(pg, "SET LOCAL ROLE " OWNER_ROLE, 0, NULL, NULL);
    free(can);
    return err;
}

static imp_error_t *txid(imp_pg_t *pg, char **out)
{
    return imp_pg_exec_scalar(pg, "SELECT txid_current()::text", 0, NULL, out);
}

/* The file's statements, refusing files that end the transaction themselves. */
static imp_error_t *run_file(imp_pg_t *pg, const migrate_file_t *f)
{
    char *before = NULL, *after = NULL;
    imp_error_t *err = txid(pg, &before);
    if (err == NULL)
        err = imp_pg_exec_script(pg, f->sql);
    if (err == NULL)
        err = txid(pg, &after);
    if (err == NULL && strcmp(before, after) != 0)
        err = imp_error_new(IMP_ERR_FATAL, "migrate_tx",
                            "must not contain transaction control (BEGIN/COMMIT/ROLLBACK)");
    free(before);
    free(after);
    return err;
}

static imp_error_t *record(imp_pg_t *pg, const migrate_file_t *f)
{
    char version[32];
    snprintf(version, sizeof(version), "%ld", f->version);
    const char *params[] = {version, f->name, f->checksum};
    imp_error_t *err = imp_pg_exec(pg, "RESET ROLE", 0, NULL, NULL);
    if (err == NULL)
        err = imp_pg_exec(pg,
                          "INSERT INTO schema_migrations (version, name, checksum) "
                          "VALUES ($1, $2, $3)",
                          3, params, NULL);
    return err;
}

static imp_error_t *apply_one(imp_pg_t *pg, const migrate_file_t *f)
{
    long long start = mono_ms();
    imp_error_t *err = imp_pg_tx_begin(pg);
    if (err == NULL)
        err = become_owner(pg);
    if (err == NULL)
        err = run_file(pg, f);
    if (err == NULL)
        err = record(pg, f);
    if (err == NULL)
        err = imp_pg_tx_commit(pg);
    if (err != NULL) {
        imp_pg_tx_rollback(pg);
        return imp_error_prefix(err, "migration %s failed", f->name);
    }
    IMP_LOG_INFO("migration applied", IMP_LS("migration", f->name),
                 IMP_LI("duration_ms", mono_ms() - start));
    return NULL;
}

/* ---- the run ------------------------------------------------------------------------- */

static imp_error_t *apply_pending(imp_pg_t *pg, const migrate_set_t *set, size_t *applied)
{
    migrate_history_t h;
    imp_error_t *err = migrate_history_load(pg, &h);
    if (err != NULL)
        return err;
    err = check_applied(set, &h);
    if (err == NULL)
        err = check_order(set, &h);
    for (size_t i = 0; err == NULL && i < set->n; i++) {
        if (migrate_history_find(&h, set->files[i].version) != NULL)
            continue;
        err = apply_one(pg, &set->files[i]);
        if (err == NULL)
            (*applied)++;
    }
    migrate_history_dispose(&h);
    return err;
}

imp_error_t *migrate_up(imp_pg_t *pg, const migrate_set_t *set, long long lock_timeout_ms)
{
    imp_error_t *err = take_lock(pg, lock_timeout_ms);
    if (err != NULL)
        return err;
    size_t applied = 0;
    err = imp_pg_exec(pg, create_history_sql, 0, NULL, NULL);
    if (err == NULL)
        err = apply_pending(pg, set, &applied);
    imp_error_t *unlock = imp_pg_exec(pg, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, NULL);
    imp_error_free(unlock); /* closing the session releases it anyway */
    if (err == NULL)
        IMP_LOG_INFO("migrations up to date", IMP_LI("applied", applied), IMP_LI("files", set->n));
    return err;
}

/* ---- passwords ----------------------------------------------------------------------- */

/* The server quotes the statement (format %I %L), so no client-side escaping. */
static imp_error_t *set_password(imp_pg_t *pg, const char *role, const char *password)
{
    if (password == NULL || *password == '\0')
        return NULL;
    const char *params[] = {role, password};
    char *sql = NULL;
    imp_error_t *err = imp_pg_exec_scalar(
        pg, "SELECT format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)", 2, params, &sql);
    if (err == NULL)
        err = imp_pg_exec(pg, sql, 0, NULL, NULL);
    free(sql);
    if (err != NULL)
        return imp_error_prefix(err, "setting the password of %s", role);
    IMP_LOG_INFO("role password set", IMP_LS("role", role));
    return NULL;
}

imp_error_t *migrate_set_passwords(imp_pg_t *pg, const char *app_password, const char *api_password)
{
    imp_error_t *err = set_password(pg, "imperium_app", app_password);
    if (err == NULL)
        err = set_password(pg, "imperium_api", api_password);
    return err;
}
