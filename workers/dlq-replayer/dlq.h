/* imperium-dlq's internal interfaces: arguments, pure formatting helpers, dead-letter rows as
 * read from Postgres, and the commands (list, show, replay, purge). */
#ifndef DLQ_H
#define DLQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "imp/error.h"
#include "imp/pg.h"

#define DLQ_BINARY "imperium-dlq"

/* A replayed dead letter whose event the worker has dead-lettered again since (the inbox
 * says 'dead', decided after the replay). The runtime keeps one dead_letters row per origin
 * (topic, partition, offset), and a replayed event keeps its origin, so a second failure
 * leaves the first row as it was: the inbox is what tells. Refers to the row as "d". */
#define DLQ_SQL_DEAD_AGAIN                                                                         \
    "(d.replayed_at IS NOT NULL AND EXISTS (SELECT 1 FROM inbox di WHERE di.worker = d.worker "    \
    "AND di.operation_id = d.operation_id AND di.state = 'dead' "                                  \
    "AND di.processed_at > d.replayed_at))"

/* to_char format of RFC 3339 with milliseconds; use on "col AT TIME ZONE 'UTC'", so the
 * text is UTC whatever the session's TimeZone. */
#define DLQ_SQL_RFC3339 "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"

/* Exit statuses (docs/dead-letters.md). */
enum {
    DLQ_EXIT_OK = 0,
    DLQ_EXIT_PARTIAL = 1, /* some ids not found or not replayable; purge without --yes */
    DLQ_EXIT_USAGE = 2,   /* bad arguments, or Postgres unreachable or failing */
    DLQ_EXIT_KAFKA = 3,   /* replayed, but the events wait in the outbox (Kafka unreachable) */
};

typedef struct {
    char *pg_dsn;
    char *kafka_brokers;
    char *actor;
    char *log_level;
    long long publish_timeout_ms;
} dlq_settings_t;

/* ---- arguments (args.c) ---------------------------------------------------------------- */

typedef enum { DLQ_CMD_LIST, DLQ_CMD_SHOW, DLQ_CMD_REPLAY, DLQ_CMD_PURGE } dlq_cmd_t;

/* Which dead letters a command is about. Strings are borrowed from argv. */
typedef struct {
    const char *worker; /* NULL: any */
    const char *tenant; /* NULL: any; a UUID or a tenant slug as given */
    const char *cls;    /* NULL: any; one of infra, retriable, poison, fatal */
    int64_t since_ms;   /* 0: no bound; created_at >= since */
    int64_t before_ms;  /* 0: no bound; created_at < before */
    bool with_replayed; /* include rows already replayed (and not dead again since) */
    bool replayed_only;
    long long limit; /* rows shown by list */
} dlq_filter_t;

typedef struct {
    dlq_cmd_t cmd;
    bool have_cmd; /* cmd was recognised (for the usage line of an error) */
    dlq_filter_t filter;
    bool json;
    bool yes;
    bool dry_run;
    bool again;
    long long *ids; /* heap; explicit ids in the order given, duplicates removed */
    size_t nids;
} dlq_args_t;

/* Parse argv[1..argc) (argv[1] is the command). now_ms anchors relative times. Returns 0, or
 * -1 with a one-line description of the problem in err (no "usage:" prefix). Dispose out
 * in both cases. */
int dlq_args_parse(int argc, char **argv, int64_t now_ms, dlq_args_t *out, char *err, size_t cap);
void dlq_args_dispose(dlq_args_t *a);

/* The usage text of every command, or of one. */
void dlq_print_usage(FILE *out);
void dlq_print_command_usage(FILE *out, dlq_cmd_t cmd);

/* ---- pure helpers (format.c) ----------------------------------------------------------- */

/* A time argument: RFC 3339 ("2026-05-01T03:00:00Z", offsets allowed), a date
 * ("2026-05-01", midnight UTC), or an age relative to now_ms: "<n>s|m|h|d|w" ("15m", "7d").
 * Returns 0 and the epoch milliseconds, or -1. */
int dlq_parse_time(const char *text, int64_t now_ms, int64_t *out_ms);

/* A positive decimal id (1 .. 2^63-1), nothing else. Returns 0 or -1. */
int dlq_parse_id(const char *text, long long *out);

/* A UUID in text form (either case). */
bool dlq_is_uuid(const char *s);

/* True when buf[0..len) is well-formed UTF-8 without NUL bytes (text Postgres accepts). */
bool dlq_utf8_text(const void *buf, size_t len);

/* Number of code points of a UTF-8 string (its width in a terminal, near enough). */
size_t dlq_utf8_len(const char *s);

/* s as one table cell: control characters become spaces, and text longer than max code
 * points is cut to max - 1 followed by "…". New heap string. NULL gives "-". */
char *dlq_cell(const char *s, size_t max);

/* buf[0..len) for a terminal: valid UTF-8 with tabs and newlines kept, every other control
 * character and every byte of an invalid sequence as \xNN. New heap string. */
char *dlq_escape(const void *buf, size_t len);

/* Standard base64 of buf[0..len) (new heap string). */
char *dlq_base64(const void *buf, size_t len);

/* "45s", "12m", "3h", "2d" (whole units, rounded down) for a non-negative duration. */
void dlq_format_age(int64_t ms, char *out, size_t cap);

/* A table: a header row and rows of cells, printed with columns padded to their widest
 * cell (by code points) and separated by two spaces; the last column is not padded. */
typedef struct {
    size_t ncols;
    const char *const *header;
    char **cells; /* rows * ncols heap strings, row-major */
    size_t nrows, cap;
} dlq_table_t;

void dlq_table_init(dlq_table_t *t, const char *const *header, size_t ncols);
/* Append one row; takes ownership of the ncols heap strings in cells. */
void dlq_table_add(dlq_table_t *t, char **cells);
void dlq_table_print(const dlq_table_t *t, FILE *out);
void dlq_table_dispose(dlq_table_t *t);

/* ---- dead-letter rows (rows.c) --------------------------------------------------------- */

/* One dead_letters row with the inbox's view of its event. Strings are heap copies; times
 * are RFC 3339 UTC with milliseconds; absent values are NULL (attempt and counts -1 when
 * unknown). */
typedef struct {
    long long id;
    char *created_at;
    char *worker;
    char *cls;
    char *reason;
    char *topic;
    int partition;
    long long offset;
    unsigned char *key; /* NULL: the message had no key */
    size_t key_len;
    char *operation_id;
    char *tenant_id;
    int attempt;
    unsigned char *envelope;
    size_t envelope_len;
    char *headers; /* JSON object text */
    char *replayed_at;
    char *replayed_by;
    int replay_count;
    bool dead_again;   /* replayed, then dead-lettered again (DLQ_SQL_DEAD_AGAIN) */
    char *inbox_state; /* done | retrying | dead; NULL: no inbox row */
    int inbox_attempt;
    char *inbox_at;
} dlq_row_t;

typedef struct {
    dlq_row_t *v;
    size_t n;
} dlq_rows_t;

/* A WHERE clause for a filter, with its parameters ($1..$n). The SQL refers to the table as
 * "d". */
typedef struct {
    char sql[1024];
    const char *params[8];
    char buf[8][40];
    int n;
} dlq_where_t;

/* Build the clause for f; tenant_id is the resolved tenant (NULL: f->tenant is unset). */
void dlq_where_build(const dlq_filter_t *f, const char *tenant_id, dlq_where_t *w);

/* Resolve f->tenant (a UUID, or a slug looked up with imp_tenant_id_by_slug) into out (37
 * bytes), or "" when f->tenant is NULL. An unknown slug is a poison "dlq_tenant" error. */
imp_error_t *dlq_resolve_tenant(imp_pg_t *pg, const dlq_filter_t *f, char *out);

/* Rows matching where (newest first, at most limit; limit <= 0: all). */
imp_error_t *dlq_rows_query(imp_pg_t *pg, const dlq_where_t *where, long long limit,
                            dlq_rows_t *out);
/* The row with this id; out->n == 0 when there is none. */
imp_error_t *dlq_rows_get(imp_pg_t *pg, long long id, dlq_rows_t *out);
/* How many rows match where, and how many of them are not replayed yet. */
imp_error_t *dlq_rows_count(imp_pg_t *pg, const dlq_where_t *where, long long *total,
                            long long *unreplayed);
void dlq_rows_dispose(dlq_rows_t *rows);

/* Every field of a row as JSON (new reference): envelope and key as text when they are
 * valid UTF-8 (the envelope also valid JSON), else base64, with *_encoding saying which. */
json_t *dlq_row_json(const dlq_row_t *r);

/* The filter as JSON (new reference), for audit records and messages. */
json_t *dlq_filter_json(const dlq_filter_t *f, const char *tenant_id);

/* ---- publishing (publish.c) ----------------------------------------------------------- */

/* How many of the outbox rows ids[0..n) are unpublished; n == 0: how many rows written by
 * earlier replays are (Kafka was down then). */
imp_error_t *dlq_outbox_unpublished(imp_pg_t *pg, const long long *ids, size_t n, long long *left);

/* Publish unpublished outbox rows, in id order, until the rows ids[0..n) are out (n == 0:
 * the rows of earlier replays), Kafka fails, or about three publish timeouts have passed.
 * *left: how many of those rows are still unpublished (set it before the call: it is kept
 * when Kafka cannot be reached at all). */
imp_error_t *dlq_publish(imp_pg_t *pg, const dlq_settings_t *s, const long long *ids, size_t n,
                         long long *left);

/* Tell the operator how publishing went; mine is how many events this run replayed. Frees
 * err. Returns DLQ_EXIT_OK when nothing of the rows in question is left, else
 * DLQ_EXIT_KAFKA. */
int dlq_report_publish(imp_error_t *err, long long left, size_t mine);

/* ---- commands (list.c, replay.c, purge.c) ---------------------------------------------- */

/* Each returns the process exit status. Errors are printed on stderr. */
int dlq_cmd_list(imp_pg_t *pg, const dlq_args_t *a);
int dlq_cmd_show(imp_pg_t *pg, const dlq_args_t *a);
int dlq_cmd_replay(imp_pg_t *pg, const dlq_settings_t *s, const dlq_args_t *a);
int dlq_cmd_purge(imp_pg_t *pg, const dlq_settings_t *s, const dlq_args_t *a);

/* Print "imperium-dlq: <what>: <error message>" (and its detail) on stderr and return the
 * exit status for it: DLQ_EXIT_USAGE for Postgres and argument problems. Frees err.
 * (main.c) */
int dlq_fail(const char *what, imp_error_t *err);

#endif
