/* Configuration from IMP_* environment variables, driven by one table per binary.
 *
 * The table gives each variable's name, type, default, bounds and description; the same
 * table drives parsing, validation, --help and the docs. A missing or malformed variable
 * stops the binary with one line naming it. Secrets are never printed.
 *
 *   typedef struct { char *pg_dsn; long long threads; } settings_t;
 *   static const imp_config_entry_t table[] = {
 *       {"IMP_PG_DSN", IMP_CFG_STRING, NULL, 0, 0, IMP_CFG_SECRET,
 *        "Postgres connection string", offsetof(settings_t, pg_dsn)},
 *       {"IMP_INGRESS_THREADS", IMP_CFG_INT, "2", 1, 64, 0, "event loops",
 *        offsetof(settings_t, threads)},
 *   };
 */
#ifndef IMP_CONFIG_H
#define IMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "imp/error.h"

typedef enum {
    IMP_CFG_STRING,   /* char * (heap; freed by imp_config_dispose) */
    IMP_CFG_INT,      /* long long, bounded by min..max */
    IMP_CFG_BOOL,     /* bool: true/false, 1/0, yes/no, on/off */
    IMP_CFG_DURATION, /* long long ms: "250ms", "2s", "5m", "1h", "14d"; a bare number is ms */
    IMP_CFG_SIZE,     /* long long bytes: "512", "64KiB", "1MiB", "1GiB" */
    IMP_CFG_DOUBLE,   /* double, bounded by min..max */
} imp_cfg_type_t;

enum {
    IMP_CFG_SECRET = 1 << 0, /* never printed, not even its default */
};

typedef struct {
    const char *name; /* the environment variable */
    imp_cfg_type_t type;
    const char *def; /* default as text; NULL means required */
    double min, max; /* bounds for numeric types (ignored when min == max == 0) */
    int flags;
    const char *description;
    size_t offset; /* where the value goes in the settings struct */
} imp_config_entry_t;

/* Fill settings from the environment (getenv). On error nothing needs freeing beyond
 * imp_config_dispose, and the error message names the variable. */
imp_error_t *imp_config_load(const imp_config_entry_t *table, size_t n, void *settings);

/* Free the strings imp_config_load allocated. */
void imp_config_dispose(const imp_config_entry_t *table, size_t n, void *settings);

/* The --help text: usage line, summary and one block per variable. */
void imp_config_print_help(FILE *out, const char *binary, const char *summary,
                           const imp_config_entry_t *table, size_t n);

/* Standard start-up: --help prints help and exits 0; otherwise load the settings, and on
 * error print one line naming the variable and exit 2. Returns only on success. */
void imp_config_init_or_exit(int argc, char **argv, const char *binary, const char *summary,
                             const imp_config_entry_t *table, size_t n, void *settings);

/* Parsers, exposed for reuse and tests; 0 on success, -1 when malformed. */
int imp_config_parse_duration_ms(const char *text, long long *out);
int imp_config_parse_size(const char *text, long long *out);
int imp_config_parse_bool(const char *text, bool *out);

#endif
