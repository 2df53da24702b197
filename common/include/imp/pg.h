/* Postgres access over libpq: one connection with reconnect, parameterised statements,
 * transactions, the tenant setting for row-level security, pipelined batches and an
 * error classification the worker runtime can act on.
 *
 *   imp_pg_t *pg = NULL;
 *   imp_error_t *err = imp_pg_connect(dsn, &pg);
 *   ...
 *   if ((err = imp_pg_tx_begin(pg)) != NULL) goto out;
 *   if ((err = imp_pg_set_tenant(pg, tenant_id)) != NULL) goto out;
 *   const char *params[] = {worker, operation_id};
 *   if ((err = imp_pg_exec_cached(pg, "INSERT INTO inbox(worker, operation_id) VALUES ($1, $2) "
 *                                     "ON CONFLICT DO NOTHING", 2, params, &res)) != NULL)
 *       goto out;
 *   if (imp_pg_result_affected(res) == 0) ... duplicate ...
 *   err = imp_pg_tx_commit(pg);
 * out:
 *   imp_pg_result_free(res);
 *   if (err != NULL) imp_pg_tx_rollback(pg);
 *
 * Threads: an imp_pg_t is one connection and is used by one thread at a time.
 *
 * Parameters and values are text (libpq text format): params[i] == NULL is SQL NULL; bytea
 * goes in as imp_pg_bytea_hex() text and comes out through imp_pg_result_get_bytea().
 *
 * Errors (imp_error_t *, NULL = success, caller frees) are classified:
 *   infra     - connection refused or lost (CONNECTION_BAD, SQLSTATE class 08, 57P01..57P05),
 *               resources (53xxx), system errors (58xxx, XX001, XX002), a read-only
 *               transaction (25006: we reached a standby after a failover), 40003;
 *   retriable - 40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock timeout,
 *               55006 object in use, 57014 statement timeout / cancel;
 *   poison    - everything else the server rejects: 23xxx integrity, 22xxx data,
 *               42xxx syntax/undefined/privilege (RLS WITH CHECK violations are 42501),
 *               P0001 raised exceptions, XX000; and misuse of this API;
 *   fatal     - not used by this module.
 * A server error's code is its SQLSTATE ("23505"); the message is "postgres: <primary>",
 * the detail holds DETAIL and HINT when the server sent them (the constraint name too).
 * Client-side conditions use the codes "pg_connect", "pg_connection_lost", "pg_tx_lost",
 * "pg_tx_aborted", "pg_misuse", "pg_protocol".
 *
 * Reconnect: a lost connection is reported once as an infra error and closed. The next call
 * that needs the server connects again; consecutive failed attempts are spaced by a backoff
 * that doubles from backoff_min_ms to backoff_max_ms (the call sleeps for the remaining
 * delay, so a call may block for up to backoff_max_ms plus the connect timeout). The first
 * attempt after a loss is immediate. Prepared statements are prepared again, lazily, on the
 * new connection. A connection lost inside a transaction leaves the handle in the "tx lost"
 * state: every call fails with infra "pg_tx_lost" (without touching the network) until the
 * caller calls imp_pg_tx_rollback(), so work is never silently continued outside the
 * transaction it started in. */
#ifndef IMP_PG_H
#define IMP_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

typedef struct imp_pg imp_pg_t;
typedef struct imp_pg_result imp_pg_result_t;
typedef struct imp_pg_batch imp_pg_batch_t;

/* The statement imp_pg_set_tenant runs, for callers that pipeline it in a batch. */
#define IMP_PG_SET_TENANT_SQL "SELECT set_config('app.tenant_id', $1, true)"

typedef struct {
    const char *dsn;              /* libpq connection string or URI (required; copied) */
    const char *application_name; /* NULL: "imperium"; the DSN's own setting wins */
    int connect_timeout_s;        /* 0: 5 s; the DSN's connect_timeout wins */
    int backoff_min_ms;           /* 0: 100 ms */
    int backoff_max_ms;           /* 0: 5000 ms */
} imp_pg_options_t;

/* ---- connection ---------------------------------------------------------------------- */

/* A handle that connects on first use (no I/O here). */
imp_pg_t *imp_pg_new(const imp_pg_options_t *opts);

/* New handle with default options, connected now. On error *out is NULL and the error is
 * infra (code "pg_connect", the libpq message in the text). */
imp_error_t *imp_pg_connect(const char *dsn, imp_pg_t **out);

/* Close the connection and free the handle. NULL is a no-op. An open transaction is rolled
 * back by the server when the connection closes. */
void imp_pg_free(imp_pg_t *pg);

/* Connect if not connected (with the backoff described above). Readiness probes use
 * imp_pg_ping instead, which also proves the connection works. */
imp_error_t *imp_pg_ensure_connected(imp_pg_t *pg);

/* Round trip "SELECT 1". */
imp_error_t *imp_pg_ping(imp_pg_t *pg);

/* True while a connection is open (it may still turn out to be dead on next use). */
bool imp_pg_is_connected(const imp_pg_t *pg);

/* How many times a lost or failed connection was replaced by a new one. */
unsigned long imp_pg_reconnect_count(const imp_pg_t *pg);

/* Drop the connection now (tests, or after a fatal protocol state); the next call
 * reconnects. Inside a transaction this has the effect of a lost connection. */
void imp_pg_disconnect(imp_pg_t *pg);

/* ---- statements ---------------------------------------------------------------------- */

/* Run one parameterised statement ($1..$n, text values, NULL = SQL NULL). On success *out
 * (when out is not NULL) receives the result, which the caller frees; with out == NULL the
 * result is discarded. On error *out is NULL. */
imp_error_t *imp_pg_exec(imp_pg_t *pg, const char *sql, int nparams, const char *const *params,
                         imp_pg_result_t **out);

/* As imp_pg_exec, through a per-connection cache of prepared statements keyed by the SQL
 * text: the first call on a connection prepares it, later calls only execute it. Meant for
 * the hot path's fixed statements; do not feed it ad-hoc SQL (the cache is bounded, and past
 * its bound statements run unprepared). */
imp_error_t *imp_pg_exec_cached(imp_pg_t *pg, const char *sql, int nparams,
                                const char *const *params, imp_pg_result_t **out);

/* Run a script of several statements without parameters (simple query protocol), e.g. a
 * migration file. Inside a transaction the script runs in it; outside, the statements run
 * as one implicit transaction unless the script contains its own transaction control. */
imp_error_t *imp_pg_exec_script(imp_pg_t *pg, const char *sql);

/* One value: the statement must return exactly one row (else poison "pg_rows"); *out is a
 * new heap string (caller frees) or NULL for SQL NULL. */
imp_error_t *imp_pg_exec_scalar(imp_pg_t *pg, const char *sql, int nparams,
                                const char *const *params, char **out);

/* ---- transactions -------------------------------------------------------------------- */

/* BEGIN. Nested calls are misuse (poison "pg_misuse"); use savepoints.
 *
 * BEGIN is not sent at once: it goes out with the transaction's first statement, in the same
 * round trip (a pipeline), so this call does not touch the network and a connection problem
 * is reported by that first statement (the transaction is then "tx lost"). A transaction
 * that runs no statement sends nothing: its commit and rollback are no-ops. */
imp_error_t *imp_pg_tx_begin(imp_pg_t *pg);

/* BEGIN with transaction modes, e.g. "ISOLATION LEVEL SERIALIZABLE" or "READ ONLY". modes is
 * trusted SQL text from the program, never input. */
imp_error_t *imp_pg_tx_begin_with(imp_pg_t *pg, const char *modes);

/* COMMIT (with the deferred statements, in one round trip). If a statement of the transaction
 * failed (the server holds it aborted), the transaction is rolled back and the error is
 * "pg_tx_aborted" with the class of that statement's error. A connection lost during COMMIT is
 * infra and the outcome is unknown: the work must be idempotent (the inbox makes it so). After this
 * call, committed or not, no transaction is open. */
imp_error_t *imp_pg_tx_commit(imp_pg_t *pg);

/* ROLLBACK; a no-op outside a transaction. Cannot fail from the caller's point of view: when
 * the connection is gone the transaction is gone with it, and if ROLLBACK itself fails the
 * connection is closed. Clears the "tx lost" state. */
void imp_pg_tx_rollback(imp_pg_t *pg);

/* True between imp_pg_tx_begin and commit/rollback (also in the "tx lost" state). */
bool imp_pg_in_tx(const imp_pg_t *pg);

/* SAVEPOINT name / RELEASE SAVEPOINT name / ROLLBACK TO SAVEPOINT name, inside a
 * transaction. name: [a-z_][a-z0-9_]* up to 63 characters, else poison "pg_misuse".
 * Rolling back to a savepoint recovers a transaction aborted after it, and drops the
 * deferred statements not sent yet (every savepoint command sends those before it, so they
 * came after the last one and the rollback would undo them). */
imp_error_t *imp_pg_savepoint(imp_pg_t *pg, const char *name);
imp_error_t *imp_pg_savepoint_release(imp_pg_t *pg, const char *name);
imp_error_t *imp_pg_savepoint_rollback(imp_pg_t *pg, const char *name);

/* Set app.tenant_id for the current transaction only (set_config(..., true), i.e. SET LOCAL
 * semantics): it is gone after commit or rollback. Row-level security policies read it.
 * Outside a transaction: poison "pg_misuse". tenant_id must be a UUID in text form (else
 * poison "pg_misuse"); NULL clears the setting for the rest of the transaction. Like BEGIN,
 * it goes out with the next statement, the first one it applies to. */
imp_error_t *imp_pg_set_tenant(imp_pg_t *pg, const char *tenant_id);

/* ---- deferred statements ------------------------------------------------------------- */

/* Queue a statement whose result nobody reads (an INSERT or UPDATE of the transaction) to go
 * out in the transaction's next round trip: with the next statement, batch, flush, savepoint
 * command or COMMIT, before it and in order. Each round trip costs both processes a wake-up;
 * a handler that ends with writes sends them with its transaction's COMMIT.
 *
 * Inside a transaction only (else poison "pg_misuse"); through the prepared-statement cache
 * (imp_pg_exec_cached). The statement sees everything sent before it and is seen by
 * everything after it. An error of a deferred statement is returned by the call that sent
 * it, with the statement's code and class and the message prefixed "deferred statement: ";
 * imp_pg_error_deferred() then says so, and the transaction is aborted as after any failed
 * statement. Rollback drops what was not sent. */
imp_error_t *imp_pg_exec_deferred(imp_pg_t *pg, const char *sql, int nparams,
                                  const char *const *params);

/* Send the deferred statements now (a no-op when none waits; BEGIN and the tenant setting
 * alone keep waiting for a statement). Reports their first error. */
imp_error_t *imp_pg_flush(imp_pg_t *pg);

/* How many deferred statements wait (BEGIN and the tenant setting not counted). */
size_t imp_pg_deferred_count(const imp_pg_t *pg);

/* True when the error the last call on pg returned came from a deferred statement. */
bool imp_pg_error_deferred(const imp_pg_t *pg);

#define IMP_PG_NO_LABEL SIZE_MAX

/* Label the deferred statements queued from now on in this transaction (each transaction
 * starts with IMP_PG_NO_LABEL): whoever reads the failure below learns whose write failed,
 * whichever later call carried it. The worker runtime labels each handler's with its event. */
void imp_pg_defer_label(imp_pg_t *pg, size_t label);

/* The first deferred statement of the transaction that failed, or NULL: its error as the call
 * that sent it returned it, and its label in *label (may be NULL). It stays until the next
 * transaction begins (so it can be read after a failed COMMIT) or a ROLLBACK TO SAVEPOINT
 * undoes it. */
const imp_error_t *imp_pg_deferred_failure(const imp_pg_t *pg, size_t *label);

/* COMMIT with batch's statements before it: the deferred statements, batch, then COMMIT, in
 * one round trip. batch's results are read as after imp_pg_batch_run. On error nothing is
 * committed, the transaction is over (rolled back), and imp_pg_batch_failed(batch) is the
 * failing statement of batch, or imp_pg_batch_size(batch) when the failure was a deferred
 * statement (imp_pg_error_deferred) or the COMMIT. A connection lost on the way is infra and
 * the outcome unknown, as for imp_pg_tx_commit. batch may be empty. */
imp_error_t *imp_pg_tx_commit_batch(imp_pg_t *pg, imp_pg_batch_t *batch);

/* ---- results ------------------------------------------------------------------------- */

void imp_pg_result_free(imp_pg_result_t *res);
int imp_pg_result_rows(const imp_pg_result_t *res);
int imp_pg_result_cols(const imp_pg_result_t *res);
/* Column index by name, -1 when absent. */
int imp_pg_result_column(const imp_pg_result_t *res, const char *name);
/* Borrowed text value (valid until the result is freed); NULL for SQL NULL and for a row or
 * column out of range. */
const char *imp_pg_result_value(const imp_pg_result_t *res, int row, int col);
bool imp_pg_result_is_null(const imp_pg_result_t *res, int row, int col);
/* Rows affected by INSERT/UPDATE/DELETE/MERGE/SELECT/COPY (PQcmdTuples); 0 for other
 * statements. */
long long imp_pg_result_affected(const imp_pg_result_t *res);
/* Typed reads: 0 on success, -1 when NULL, out of range or malformed. bool reads "t"/"f". */
int imp_pg_result_get_int64(const imp_pg_result_t *res, int row, int col, long long *out);
int imp_pg_result_get_bool(const imp_pg_result_t *res, int row, int col, bool *out);
/* A bytea value as new heap bytes (caller frees *out); -1 when NULL or malformed. */
int imp_pg_result_get_bytea(const imp_pg_result_t *res, int row, int col, unsigned char **out,
                            size_t *len);

/* bytea input in text format ("\x" followed by hex), a new heap string (caller frees). */
char *imp_pg_bytea_hex(const void *data, size_t len);

/* The SQLSTATE of an error from this module ("23505"), or NULL when the error did not come
 * from the server (or is not a pg error). */
const char *imp_pg_error_sqlstate(const imp_error_t *err);

/* ---- pipelined batches --------------------------------------------------------------- */

/* A batch: statements added, then sent in one round trip (libpq pipeline mode, one sync
 * point) and their results collected.
 *
 * Inside a transaction the batch runs in it. Outside one, the whole batch is one implicit
 * transaction: all or nothing. The first failing statement stops the batch: later ones are
 * not executed (their result is NULL and affected -1), the error of the failing one is
 * returned (prefixed "statement N"), its index is imp_pg_batch_failed(), and the enclosing
 * transaction is aborted (roll it back, or to a savepoint). A batch can be run again after
 * imp_pg_batch_reset or reused as is (results are replaced). */
imp_pg_batch_t *imp_pg_batch_new(void);
void imp_pg_batch_free(imp_pg_batch_t *batch);
/* Drop statements and results, keep the memory. */
void imp_pg_batch_reset(imp_pg_batch_t *batch);
/* Append one statement; sql and params are copied. */
void imp_pg_batch_add(imp_pg_batch_t *batch, const char *sql, int nparams,
                      const char *const *params);
/* Append one statement that goes through the connection's prepared-statement cache (see
 * imp_pg_exec_cached); statements not yet prepared are prepared inside the same round
 * trip. */
void imp_pg_batch_add_cached(imp_pg_batch_t *batch, const char *sql, int nparams,
                             const char *const *params);
size_t imp_pg_batch_size(const imp_pg_batch_t *batch);
/* Send every statement (the deferred ones first), sync once, collect every result. */
imp_error_t *imp_pg_batch_run(imp_pg_t *pg, imp_pg_batch_t *batch);
/* After a run: the result of statement i (borrowed, owned by the batch; NULL when it did
 * not run), its affected rows (-1 when it did not run), the index of the failed statement
 * (imp_pg_batch_size() when none failed). */
const imp_pg_result_t *imp_pg_batch_result(const imp_pg_batch_t *batch, size_t i);
long long imp_pg_batch_affected(const imp_pg_batch_t *batch, size_t i);
size_t imp_pg_batch_failed(const imp_pg_batch_t *batch);

#endif
