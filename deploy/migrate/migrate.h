/* imperium-migrate's internal interfaces: the migration files on disk and what the database
 * has applied. */
#ifndef IMP_MIGRATE_H
#define IMP_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "imp/error.h"
#include "imp/pg.h"

/* One file NNNN_name.sql. */
typedef struct {
    long version;
    char *name;        /* the file name */
    char *sql;         /* its contents */
    char checksum[65]; /* SHA-256, lowercase hex */
} migrate_file_t;

/* The files of a directory, sorted by version. */
typedef struct {
    migrate_file_t *files;
    size_t n;
} migrate_set_t;

/* A row of schema_migrations. */
typedef struct {
    long version;
    char *name;
    char *checksum;
    char *applied_at;
} migrate_applied_t;

typedef struct {
    migrate_applied_t *rows;
    size_t n;
} migrate_history_t;

/* Read every *.sql of dir. Names must be NNNN_name.sql with distinct versions; at least one
 * file. Errors name the offending file. */
imp_error_t *migrate_load_dir(const char *dir, migrate_set_t *out);
void migrate_set_dispose(migrate_set_t *set);
const migrate_file_t *migrate_set_find(const migrate_set_t *set, long version);

/* schema_migrations as it is (empty when the table does not exist yet). */
imp_error_t *migrate_history_load(imp_pg_t *pg, migrate_history_t *out);
void migrate_history_dispose(migrate_history_t *h);
const migrate_applied_t *migrate_history_find(const migrate_history_t *h, long version);

/* Apply every pending file under the advisory lock, one transaction each. Stops at the
 * first failure (the error names the file); applied files whose checksum changed and
 * pending files older than the newest applied one are errors before anything runs. */
imp_error_t *migrate_up(imp_pg_t *pg, const migrate_set_t *set, long long lock_timeout_ms);

/* Set the login passwords of the application roles (each only when not empty). */
imp_error_t *migrate_set_passwords(imp_pg_t *pg, const char *app_password,
                                   const char *api_password);

/* Print applied / pending / changed / missing per version. *clean is false when a checksum
 * changed or a pending file is older than the newest applied one. */
imp_error_t *migrate_status(imp_pg_t *pg, const migrate_set_t *set, FILE *out, bool *clean);

#endif
