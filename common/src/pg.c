/* Postgres over libpq: reconnecting connection, statements, transactions, pipelined batches,
 * SQLSTATE classification. */
#include "imp/pg.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_MAX 256   /* prepared statements per connection */
#define CACHE_SLOTS 512 /* open-addressing table, a power of two above CACHE_MAX */
#define FLUSH_POLL_MS 1000

typedef struct {
    char *sql; /* NULL: free slot */
    uint64_t hash;
    bool prepared; /* on the current connection */
    char name[16];
} cached_stmt_t;

struct imp_pg {
    char *dsn;
    char *app_name;
    char connect_timeout[16];
    int backoff_min_ms, backoff_max_ms;

    PGconn *conn;
    bool had_conn;            /* a connection existed before: the next one is a reconnect */
    unsigned long reconnects; /* connections that replaced an earlier one */
    unsigned fail_count;      /* consecutive failed connection attempts */
    long long next_attempt_ms;

    bool in_tx;
    bool tx_lost; /* the connection went away inside the transaction */
    /* Statements whose results nobody reads wait for the next one and go out in its round
     * trip: the transaction's BEGIN (begin_sql, until sent) and the tenant setting. */
    char *begin_sql;
    bool tenant_pending;
    char tenant[40];
    struct imp_pg_batch *deferred; /* imp_pg_exec_deferred's statements, in order, and the
                                    * tenant settings between them */
    size_t ndeferred;              /* of those, imp_pg_exec_deferred's */
    bool err_deferred;             /* the last call's error came from one of them */
    size_t defer_label;            /* imp_pg_defer_label's, given to those queued from now */
    imp_error_t *defer_fail;       /* the first of them that failed in this transaction */
    size_t defer_fail_label;
    imp_err_class_t tx_error_cls; /* class of the statement that aborted the tx, 0 if none */

    cached_stmt_t *cache; /* CACHE_SLOTS entries, allocated on first use */
    unsigned cache_n;
    bool cache_full_warned;
};

struct imp_pg_result {
    PGresult *res;
};

typedef struct {
    char *sql;
    char **params;
    int nparams;
    bool cached;
    imp_pg_result_t result; /* result.res NULL: did not run */
    long long affected;
    size_t label; /* a deferred statement's imp_pg_defer_label */
} batch_stmt_t;

struct imp_pg_batch {
    batch_stmt_t *stmts;
    size_t n, cap;
    size_t failed;
};

/* ---- time ---------------------------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- errors -------------------------------------------------------------------------- */

static bool state_is(const char *state, const char *prefix)
{
    return strncmp(state, prefix, strlen(prefix)) == 0;
}

/* The class of a server error from its SQLSTATE (see the table in pg.h). */
static imp_err_class_t classify_sqlstate(const char *state)
{
    static const char *const infra[] = {"08",    "53",    "58",    "57P01", "57P02", "57P03",
                                        "57P04", "57P05", "XX001", "XX002", "25006", "40003"};
    static const char *const retriable[] = {"40001", "40P01", "55P03", "55006", "57014"};
    if (state == NULL || strlen(state) != 5)
        return IMP_ERR_POISON;
    for (size_t i = 0; i < IMP_ARRAY_LEN(infra); i++)
        if (state_is(state, infra[i]))
            return IMP_ERR_INFRA;
    for (size_t i = 0; i < IMP_ARRAY_LEN(retriable); i++)
        if (state_is(state, retriable[i]))
            return IMP_ERR_RETRIABLE;
    return IMP_ERR_POISON;
}

/* SQLSTATEs after which the server closes the session. */
static bool state_ends_session(const char *state)
{
    return state != NULL && (state_is(state, "08") || state_is(state, "57P0"));
}

/* A libpq message without its trailing newline, in a new string. */
static char *trimmed(const char *msg)
{
    if (msg == NULL || *msg == '\0')
        return imp_strdup("unknown error");
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    return imp_strndup(msg, n);
}

static void append_detail(char **acc, const char *label, const char *text)
{
    if (text == NULL || *text == '\0')
        return;
    char *next = *acc == NULL ? imp_asprintf("%s%s", label, text)
                              : imp_asprintf("%s; %s%s", *acc, label, text);
    free(*acc);
    *acc = next;
}

static void set_server_detail(imp_error_t *err, const PGresult *res)
{
    char *detail = NULL;
    append_detail(&detail, "", PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL));
    append_detail(&detail, "hint: ", PQresultErrorField(res, PG_DIAG_MESSAGE_HINT));
    append_detail(&detail, "constraint: ", PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME));
    append_detail(&detail, "context: ", PQresultErrorField(res, PG_DIAG_CONTEXT));
    if (detail != NULL)
        imp_error_set_detail(err, detail);
    free(detail);
}

/* An error from a failed result (res may be NULL when libpq could not even send). */
static imp_error_t *make_error(PGconn *conn, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    bool lost = conn == NULL || PQstatus(conn) == CONNECTION_BAD || state_ends_session(state);
    char *text = trimmed(primary != NULL ? primary : conn != NULL ? PQerrorMessage(conn) : NULL);
    imp_error_t *err;
    if (lost)
        err = imp_error_new(IMP_ERR_INFRA, state != NULL ? state : "pg_connection_lost",
                            "postgres connection lost: %s", text);
    else if (res != NULL && state != NULL)
        err = imp_error_new(classify_sqlstate(state), state, "postgres: %s", text);
    else
        err = imp_error_new(IMP_ERR_POISON, "pg_protocol", "postgres: %s", text);
    free(text);
    if (res != NULL && primary != NULL)
        set_server_detail(err, res);
    return err;
}

static imp_error_t *misuse(const char *what)
{
    return imp_error_new(IMP_ERR_POISON, "pg_misuse", "postgres: %s", what);
}

const char *imp_pg_error_sqlstate(const imp_error_t *err)
{
    if (err == NULL)
        return NULL;
    const char *code = imp_error_code(err);
    if (strlen(code) != 5)
        return NULL;
    for (const char *p = code; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p) && !isupper((unsigned char)*p))
            return NULL;
    return code;
}

/* ---- connection ---------------------------------------------------------------------- */

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    if (imp_log_level > IMP_LOG_LEVEL_DEBUG)
        return;
    char *text = trimmed(message);
    IMP_LOG_DEBUG("postgres notice", IMP_LS("notice", text));
    free(text);
}

static void cache_forget_prepared(imp_pg_t *pg)
{
    if (pg->cache == NULL)
        return;
    for (size_t i = 0; i < CACHE_SLOTS; i++)
        pg->cache[i].prepared = false;
}

/* Close the connection. Inside a transaction the transaction is lost with it. */
static void drop_conn(imp_pg_t *pg)
{
    if (pg->conn == NULL)
        return;
    PQfinish(pg->conn);
    pg->conn = NULL;
    if (pg->in_tx)
        pg->tx_lost = true;
    pg->fail_count = 0;
    pg->next_attempt_ms = 0;
    cache_forget_prepared(pg);
}

static void schedule_retry(imp_pg_t *pg)
{
    long long delay = pg->backoff_min_ms;
    for (unsigned i = 0; i < pg->fail_count && delay < pg->backoff_max_ms; i++)
        delay *= 2;
    if (delay > pg->backoff_max_ms)
        delay = pg->backoff_max_ms;
    pg->fail_count++;
    pg->next_attempt_ms = now_ms() + delay;
}

static imp_error_t *connect_now(imp_pg_t *pg)
{
    /* Our defaults come before dbname so that the DSN's own settings override them. */
    const char *keys[] = {"connect_timeout", "application_name", "client_encoding", "dbname", NULL};
    const char *vals[] = {pg->connect_timeout, pg->app_name, "UTF8", pg->dsn, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        char *text = trimmed(PQerrorMessage(conn));
        imp_error_t *err =
            imp_error_new(IMP_ERR_INFRA, "pg_connect", "could not connect to postgres: %s", text);
        free(text);
        PQfinish(conn);
        schedule_retry(pg);
        return err;
    }
    PQsetNoticeProcessor(conn, on_notice, pg);
    pg->conn = conn;
    pg->fail_count = 0;
    pg->next_attempt_ms = 0;
    if (pg->had_conn)
        pg->reconnects++;
    pg->had_conn = true;
    return NULL;
}

imp_pg_t *imp_pg_new(const imp_pg_options_t *opts)
{
    assert(opts != NULL && opts->dsn != NULL);
    imp_pg_t *pg = imp_calloc(1, sizeof(*pg));
    pg->dsn = imp_strdup(opts->dsn);
    pg->app_name = imp_strdup(opts->application_name ? opts->application_name : "imperium");
    snprintf(pg->connect_timeout, sizeof(pg->connect_timeout), "%d",
             opts->connect_timeout_s > 0 ? opts->connect_timeout_s : 5);
    pg->backoff_min_ms = opts->backoff_min_ms > 0 ? opts->backoff_min_ms : 100;
    pg->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 5000;
    if (pg->backoff_max_ms < pg->backoff_min_ms)
        pg->backoff_max_ms = pg->backoff_min_ms;
    return pg;
}

imp_error_t *imp_pg_connect(const char *dsn, imp_pg_t **out)
{
    imp_pg_options_t opts = {.dsn = dsn};
    imp_pg_t *pg = imp_pg_new(&opts);
    imp_error_t *err = imp_pg_ensure_connected(pg);
    if (err != NULL) {
        imp_pg_free(pg);
        pg = NULL;
    }
    *out = pg;
    return err;
}

void imp_pg_free(imp_pg_t *pg)
{
    if (pg == NULL)
        return;
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    if (pg->cache != NULL) {
        for (size_t i = 0; i < CACHE_SLOTS; i++)
            free(pg->cache[i].sql);
        free(pg->cache);
    }
    free(pg->begin_sql);
    imp_pg_batch_free(pg->deferred);
    imp_error_free(pg->defer_fail);
    free(pg->dsn);
    free(pg->app_name);
    free(pg);
}

imp_error_t *imp_pg_ensure_connected(imp_pg_t *pg)
{
    if (pg->conn != NULL)
        return NULL;
    long long wait = pg->next_attempt_ms - now_ms();
    if (wait > 0)
        sleep_ms(wait);
    return connect_now(pg);
}

bool imp_pg_is_connected(const imp_pg_t *pg)
{
    return pg->conn != NULL;
}

unsigned long imp_pg_reconnect_count(const imp_pg_t *pg)
{
    return pg->reconnects;
}

void imp_pg_disconnect(imp_pg_t *pg)
{
    drop_conn(pg);
}

/* Every call that talks to the server starts here. */
static imp_error_t *prepare_call(imp_pg_t *pg)
{
    if (pg->tx_lost)
        return imp_error_new(IMP_ERR_INFRA, "pg_tx_lost",
                             "postgres connection lost inside the transaction; roll it back");
    return imp_pg_ensure_connected(pg);
}

/* The error of a failed statement; closes the connection when it is gone. */
static imp_error_t *call_failed(imp_pg_t *pg, const PGresult *res)
{
    imp_error_t *err = make_error(pg->conn, res);
    if (imp_error_class(err) == IMP_ERR_INFRA &&
        (PQstatus(pg->conn) == CONNECTION_BAD ||
         state_ends_session(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL)))
        drop_conn(pg);
    if (pg->in_tx && pg->tx_error_cls == 0)
        pg->tx_error_cls = imp_error_class(err);
    return err;
}

static bool result_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

/* Hand a result to the caller or turn it into an error; consumes res. */
static imp_error_t *finish(imp_pg_t *pg, PGresult *res, imp_pg_result_t **out)
{
    if (!result_ok(res)) {
        ExecStatusType st = PQresultStatus(res);
        imp_error_t *err = call_failed(pg, res);
        PQclear(res);
        /* COPY and friends leave the connection mid-protocol: start over. */
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            drop_conn(pg);
        return err;
    }
    if (out == NULL) {
        PQclear(res);
        return NULL;
    }
    *out = imp_malloc(sizeof(**out));
    (*out)->res = res;
    return NULL;
}

imp_error_t *imp_pg_ping(imp_pg_t *pg)
{
    return imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL);
}

/* ---- statements ---------------------------------------------------------------------- */

static size_t user_deferred(const imp_pg_t *pg)
{
    return pg->ndeferred;
}

static void clear_defer_fail(imp_pg_t *pg)
{
    imp_error_free(pg->defer_fail);
    pg->defer_fail = NULL;
    pg->defer_fail_label = IMP_PG_NO_LABEL;
}

static void drop_user_deferred(imp_pg_t *pg)
{
    if (pg->deferred != NULL)
        imp_pg_batch_reset(pg->deferred);
    pg->ndeferred = 0;
}

static bool has_deferred(const imp_pg_t *pg)
{
    return pg->begin_sql != NULL || pg->tenant_pending || user_deferred(pg) > 0;
}

static imp_error_t *exec_with_deferred(imp_pg_t *pg, const char *sql, int nparams,
                                       const char *const *params, bool cached,
                                       imp_pg_result_t **out);

imp_error_t *imp_pg_exec(imp_pg_t *pg, const char *sql, int nparams, const char *const *params,
                         imp_pg_result_t **out)
{
    if (out != NULL)
        *out = NULL;
    pg->err_deferred = false;
    if (has_deferred(pg))
        return exec_with_deferred(pg, sql, nparams, params, false, out);
    imp_error_t *err = prepare_call(pg);
    if (err != NULL)
        return err;
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    return finish(pg, res, out);
}

static uint64_t hash_sql(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* The cache entry for sql, added when new; NULL when the cache is full. */
static cached_stmt_t *cache_get(imp_pg_t *pg, const char *sql)
{
    if (pg->cache == NULL)
        pg->cache = imp_calloc(CACHE_SLOTS, sizeof(*pg->cache));
    uint64_t h = hash_sql(sql);
    size_t i = h & (CACHE_SLOTS - 1);
    for (; pg->cache[i].sql != NULL; i = (i + 1) & (CACHE_SLOTS - 1))
        if (pg->cache[i].hash == h && strcmp(pg->cache[i].sql, sql) == 0)
            return &pg->cache[i];
    if (pg->cache_n >= CACHE_MAX) {
        if (!pg->cache_full_warned)
            IMP_LOG_WARN("postgres statement cache full; running unprepared",
                         IMP_LI("size", CACHE_MAX));
        pg->cache_full_warned = true;
        return NULL;
    }
    cached_stmt_t *e = &pg->cache[i];
    e->sql = imp_strdup(sql);
    e->hash = h;
    e->prepared = false;
    snprintf(e->name, sizeof(e->name), "imp_s%u", pg->cache_n++);
    return e;
}

imp_error_t *imp_pg_exec_cached(imp_pg_t *pg, const char *sql, int nparams,
                                const char *const *params, imp_pg_result_t **out)
{
    if (out != NULL)
        *out = NULL;
    pg->err_deferred = false;
    if (has_deferred(pg))
        return exec_with_deferred(pg, sql, nparams, params, true, out);
    cached_stmt_t *e = cache_get(pg, sql);
    if (e == NULL)
        return imp_pg_exec(pg, sql, nparams, params, out);
    imp_error_t *err = prepare_call(pg);
    if (err != NULL)
        return err;
    if (!e->prepared) {
        err = finish(pg, PQprepare(pg->conn, e->name, sql, nparams, NULL), NULL);
        if (err != NULL)
            return err;
        e->prepared = true;
    }
    PGresult *res = PQexecPrepared(pg->conn, e->name, nparams, params, NULL, NULL, 0);
    return finish(pg, res, out);
}

/* The 1-based line of a 1-based character position in text (UTF-8). */
static int line_of_position(const char *text, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p != '\0'; p++) {
        if ((*p & 0xC0) != 0x80 && ++chars >= pos)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

static imp_error_t *flush_deferred(imp_pg_t *pg);

imp_error_t *imp_pg_exec_script(imp_pg_t *pg, const char *sql)
{
    pg->err_deferred = false;
    imp_error_t *err = has_deferred(pg) ? flush_deferred(pg) : NULL;
    if (err == NULL)
        err = prepare_call(pg);
    if (err != NULL)
        return err;
    PGresult *res = PQexec(pg->conn, sql);
    const char *pos = result_ok(res) ? NULL : PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
    long position = pos != NULL ? strtol(pos, NULL, 10) : 0;
    err = finish(pg, res, NULL);
    if (err != NULL && position > 0) {
        char *msg =
            imp_asprintf("%s (line %d)", imp_error_message(err), line_of_position(sql, position));
        imp_error_t *with_line =
            imp_error_new(imp_error_class(err), imp_error_code(err), "%s", msg);
        imp_error_set_detail(with_line, imp_error_detail(err));
        free(msg);
        imp_error_free(err);
        err = with_line;
    }
    return err;
}

imp_error_t *imp_pg_exec_scalar(imp_pg_t *pg, const char *sql, int nparams,
                                const char *const *params, char **out)
{
    *out = NULL;
    imp_pg_result_t *res = NULL;
    imp_error_t *err = imp_pg_exec(pg, sql, nparams, params, &res);
    if (err != NULL)
        return err;
    if (imp_pg_result_rows(res) != 1 || imp_pg_result_cols(res) < 1) {
        err = imp_error_new(IMP_ERR_POISON, "pg_rows", "postgres: expected one row, got %d",
                            imp_pg_result_rows(res));
        goto out;
    }
    const char *v = imp_pg_result_value(res, 0, 0);
    *out = v != NULL ? imp_strdup(v) : NULL;
out:
    imp_pg_result_free(res);
    return err;
}

/* ---- transactions -------------------------------------------------------------------- */

imp_error_t *imp_pg_tx_begin(imp_pg_t *pg)
{
    return imp_pg_tx_begin_with(pg, NULL);
}

imp_error_t *imp_pg_tx_begin_with(imp_pg_t *pg, const char *modes)
{
    if (pg->in_tx)
        return misuse("transaction already open");
    /* Sent with the transaction's first statement (a transaction with none sends nothing). */
    pg->begin_sql = modes != NULL ? imp_asprintf("BEGIN %s", modes) : imp_strdup("BEGIN");
    pg->tenant_pending = false;
    pg->in_tx = true;
    pg->tx_error_cls = 0;
    pg->defer_label = IMP_PG_NO_LABEL;
    clear_defer_fail(pg);
    return NULL;
}

/* Drop what was deferred and not sent (the transaction ends). */
static void forget_deferred(imp_pg_t *pg)
{
    free(pg->begin_sql);
    pg->begin_sql = NULL;
    pg->tenant_pending = false;
    drop_user_deferred(pg);
}

static imp_error_t *commit_aborted(imp_pg_t *pg)
{
    imp_err_class_t cls = pg->tx_error_cls != 0 ? pg->tx_error_cls : IMP_ERR_POISON;
    imp_pg_tx_rollback(pg);
    return imp_error_new(cls, "pg_tx_aborted",
                         "postgres: transaction aborted by an earlier error; rolled back");
}

imp_error_t *imp_pg_tx_commit(imp_pg_t *pg)
{
    imp_pg_batch_t none = {0};
    return imp_pg_tx_commit_batch(pg, &none);
}

void imp_pg_tx_rollback(imp_pg_t *pg)
{
    if (!pg->in_tx)
        return;
    bool began = pg->begin_sql == NULL;
    forget_deferred(pg);
    pg->in_tx = false;
    if (!began && !pg->tx_lost)
        return; /* the server never saw the transaction */
    if (pg->tx_lost || pg->conn == NULL) {
        pg->tx_lost = false;
        return;
    }
    PGresult *res = PQexec(pg->conn, "ROLLBACK");
    if (!result_ok(res))
        drop_conn(pg);
    PQclear(res);
}

bool imp_pg_in_tx(const imp_pg_t *pg)
{
    return pg->in_tx;
}

static bool valid_savepoint(const char *name)
{
    if (name == NULL || !(islower((unsigned char)name[0]) || name[0] == '_'))
        return false;
    size_t n = 0;
    for (const char *p = name; *p != '\0'; p++, n++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
            return false;
    return n <= 63;
}

static imp_error_t *savepoint_cmd(imp_pg_t *pg, const char *verb, const char *name)
{
    if (!pg->in_tx)
        return misuse("savepoint outside a transaction");
    if (!valid_savepoint(name))
        return misuse("invalid savepoint name");
    char *sql = imp_asprintf("%s %s", verb, name);
    imp_error_t *err = imp_pg_exec(pg, sql, 0, NULL, NULL);
    free(sql);
    return err;
}

imp_error_t *imp_pg_savepoint(imp_pg_t *pg, const char *name)
{
    return savepoint_cmd(pg, "SAVEPOINT", name);
}

imp_error_t *imp_pg_savepoint_release(imp_pg_t *pg, const char *name)
{
    return savepoint_cmd(pg, "RELEASE SAVEPOINT", name);
}

imp_error_t *imp_pg_savepoint_rollback(imp_pg_t *pg, const char *name)
{
    /* Deferred statements wait only since the last statement sent, which was the savepoint
     * or came after it: the rollback would undo them. */
    if (pg->in_tx)
        drop_user_deferred(pg);
    imp_error_t *err = savepoint_cmd(pg, "ROLLBACK TO SAVEPOINT", name);
    if (err == NULL) {
        pg->tx_error_cls = 0;
        clear_defer_fail(pg); /* undone with what it aborted */
    }
    return err;
}

static bool valid_uuid(const char *s)
{
    if (strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

imp_error_t *imp_pg_set_tenant(imp_pg_t *pg, const char *tenant_id)
{
    if (!pg->in_tx)
        return misuse("set_tenant outside a transaction");
    if (tenant_id != NULL && !valid_uuid(tenant_id))
        return misuse("tenant id is not a uuid");
    /* Goes out with the next statement, which is the first one it applies to; after deferred
     * statements, in their queue, so that they keep the tenant they were queued under. */
    if (user_deferred(pg) > 0) {
        const char *params[] = {tenant_id != NULL ? tenant_id : ""};
        imp_pg_batch_add_cached(pg->deferred, IMP_PG_SET_TENANT_SQL, 1, params);
        pg->deferred->stmts[pg->deferred->n - 1].label = pg->defer_label;
        return NULL;
    }
    snprintf(pg->tenant, sizeof(pg->tenant), "%s", tenant_id != NULL ? tenant_id : "");
    pg->tenant_pending = true;
    return NULL;
}

/* ---- results ------------------------------------------------------------------------- */

void imp_pg_result_free(imp_pg_result_t *res)
{
    if (res == NULL)
        return;
    PQclear(res->res);
    free(res);
}

int imp_pg_result_rows(const imp_pg_result_t *res)
{
    return PQntuples(res->res);
}

int imp_pg_result_cols(const imp_pg_result_t *res)
{
    return PQnfields(res->res);
}

int imp_pg_result_column(const imp_pg_result_t *res, const char *name)
{
    for (int i = 0; i < PQnfields(res->res); i++)
        if (strcmp(PQfname(res->res, i), name) == 0)
            return i;
    return -1;
}

static bool in_range(const imp_pg_result_t *res, int row, int col)
{
    return row >= 0 && col >= 0 && row < PQntuples(res->res) && col < PQnfields(res->res);
}

const char *imp_pg_result_value(const imp_pg_result_t *res, int row, int col)
{
    if (!in_range(res, row, col) || PQgetisnull(res->res, row, col))
        return NULL;
    return PQgetvalue(res->res, row, col);
}

bool imp_pg_result_is_null(const imp_pg_result_t *res, int row, int col)
{
    return !in_range(res, row, col) || PQgetisnull(res->res, row, col);
}

long long imp_pg_result_affected(const imp_pg_result_t *res)
{
    const char *n = PQcmdTuples(res->res);
    return n != NULL && *n != '\0' ? strtoll(n, NULL, 10) : 0;
}

int imp_pg_result_get_int64(const imp_pg_result_t *res, int row, int col, long long *out)
{
    const char *v = imp_pg_result_value(res, row, col);
    if (v == NULL || *v == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = n;
    return 0;
}

int imp_pg_result_get_bool(const imp_pg_result_t *res, int row, int col, bool *out)
{
    const char *v = imp_pg_result_value(res, row, col);
    if (v == NULL || (strcmp(v, "t") != 0 && strcmp(v, "f") != 0))
        return -1;
    *out = v[0] == 't';
    return 0;
}

int imp_pg_result_get_bytea(const imp_pg_result_t *res, int row, int col, unsigned char **out,
                            size_t *len)
{
    const char *v = imp_pg_result_value(res, row, col);
    if (v == NULL)
        return -1;
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &n);
    if (raw == NULL)
        return -1;
    *out = imp_malloc(n > 0 ? n : 1);
    memcpy(*out, raw, n);
    *len = n;
    PQfreemem(raw);
    return 0;
}

char *imp_pg_bytea_hex(const void *data, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = data;
    char *s = imp_malloc(2 * len + 3);
    s[0] = '\\';
    s[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        s[2 + 2 * i] = hex[p[i] >> 4];
        s[3 + 2 * i] = hex[p[i] & 0xF];
    }
    s[2 + 2 * len] = '\0';
    return s;
}

/* ---- batches ------------------------------------------------------------------------- */

imp_pg_batch_t *imp_pg_batch_new(void)
{
    return imp_calloc(1, sizeof(imp_pg_batch_t));
}

static void stmt_clear_result(batch_stmt_t *s)
{
    PQclear(s->result.res);
    s->result.res = NULL;
    s->affected = -1;
}

static void stmt_dispose(batch_stmt_t *s)
{
    stmt_clear_result(s);
    for (int i = 0; i < s->nparams; i++)
        free(s->params[i]);
    free(s->params);
    free(s->sql);
}

void imp_pg_batch_reset(imp_pg_batch_t *batch)
{
    for (size_t i = 0; i < batch->n; i++)
        stmt_dispose(&batch->stmts[i]);
    batch->n = 0;
    batch->failed = 0;
}

void imp_pg_batch_free(imp_pg_batch_t *batch)
{
    if (batch == NULL)
        return;
    imp_pg_batch_reset(batch);
    free(batch->stmts);
    free(batch);
}

/* A new last slot of b (its contents are the caller's to fill). */
static batch_stmt_t *batch_grow(imp_pg_batch_t *b)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->stmts = imp_realloc(b->stmts, b->cap * sizeof(*b->stmts));
    }
    return &b->stmts[b->n++];
}

static void batch_append(imp_pg_batch_t *b, const char *sql, int nparams, const char *const *params,
                         bool cached)
{
    assert(sql != NULL && nparams >= 0);
    batch_stmt_t *s = batch_grow(b);
    memset(s, 0, sizeof(*s));
    s->sql = imp_strdup(sql);
    s->nparams = nparams;
    s->cached = cached;
    s->affected = -1;
    s->label = IMP_PG_NO_LABEL;
    if (nparams > 0)
        s->params = imp_calloc((size_t)nparams, sizeof(char *));
    for (int i = 0; i < nparams; i++)
        s->params[i] = params[i] != NULL ? imp_strdup(params[i]) : NULL;
    b->failed = b->n;
}

void imp_pg_batch_add(imp_pg_batch_t *batch, const char *sql, int nparams,
                      const char *const *params)
{
    batch_append(batch, sql, nparams, params, false);
}

void imp_pg_batch_add_cached(imp_pg_batch_t *batch, const char *sql, int nparams,
                             const char *const *params)
{
    batch_append(batch, sql, nparams, params, true);
}

size_t imp_pg_batch_size(const imp_pg_batch_t *batch)
{
    return batch->n;
}

const imp_pg_result_t *imp_pg_batch_result(const imp_pg_batch_t *batch, size_t i)
{
    if (i >= batch->n || batch->stmts[i].result.res == NULL)
        return NULL;
    return &batch->stmts[i].result;
}

long long imp_pg_batch_affected(const imp_pg_batch_t *batch, size_t i)
{
    return i < batch->n ? batch->stmts[i].affected : -1;
}

size_t imp_pg_batch_failed(const imp_pg_batch_t *batch)
{
    return batch->failed;
}

/* What each result coming back belongs to: a statement, or the PREPARE of a cache entry
 * sent just before statement stmt. */
typedef struct {
    size_t stmt;
    cached_stmt_t *prepare;
} slot_t;

typedef struct {
    imp_pg_t *pg;
    imp_pg_batch_t *b;
    slot_t *slots;
    size_t nslots;
    imp_error_t *err; /* the first failure */
} run_t;

static bool send_stmt(run_t *r, size_t i)
{
    batch_stmt_t *s = &r->b->stmts[i];
    PGconn *conn = r->pg->conn;
    const char *const *params = (const char *const *)s->params;
    cached_stmt_t *e = s->cached ? cache_get(r->pg, s->sql) : NULL;
    if (e != NULL && !e->prepared) {
        if (!PQsendPrepare(conn, e->name, s->sql, s->nparams, NULL))
            return false;
        e->prepared = true; /* undone below if the PREPARE fails */
        r->slots[r->nslots++] = (slot_t){.stmt = i, .prepare = e};
    }
    int ok = e != NULL ? PQsendQueryPrepared(conn, e->name, s->nparams, params, NULL, NULL, 0)
                       : PQsendQueryParams(conn, s->sql, s->nparams, NULL, params, NULL, NULL, 0);
    r->slots[r->nslots++] = (slot_t){.stmt = i, .prepare = NULL};
    return ok == 1;
}

/* Flush everything queued. While the server is busy answering, read its results into
 * libpq's buffer so that neither side blocks writing to the other. */
static bool flush_all(PGconn *conn)
{
    int rc;
    while ((rc = PQflush(conn)) == 1) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN | POLLOUT};
        if (poll(&pfd, 1, FLUSH_POLL_MS) < 0 && errno != EINTR)
            return false;
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(conn))
            return false;
    }
    return rc == 0;
}

static bool send_all(run_t *r)
{
    PGconn *conn = r->pg->conn;
    if (!PQenterPipelineMode(conn) || PQsetnonblocking(conn, 1) != 0)
        return false;
    for (size_t i = 0; i < r->b->n; i++)
        if (!send_stmt(r, i))
            return false;
    if (!PQpipelineSync(conn) || !flush_all(conn))
        return false;
    return PQsetnonblocking(conn, 0) == 0;
}

static void note_failure(run_t *r, size_t stmt, const PGresult *res)
{
    if (r->err != NULL)
        return;
    r->err = call_failed(r->pg, res);
    r->b->failed = stmt;
}

/* Take one result for slot k; false when the connection broke. */
static bool collect_slot(run_t *r, size_t k)
{
    slot_t *slot = &r->slots[k];
    PGresult *res = PQgetResult(r->pg->conn);
    if (res == NULL)
        return false;
    ExecStatusType st = PQresultStatus(res);
    batch_stmt_t *s = &r->b->stmts[slot->stmt];
    if (slot->prepare != NULL && st != PGRES_COMMAND_OK)
        slot->prepare->prepared = false;
    if (st == PGRES_FATAL_ERROR)
        note_failure(r, slot->stmt, res);
    if (slot->prepare == NULL && result_ok(res)) {
        s->result.res = res;
        s->affected = imp_pg_result_affected(&s->result);
        res = NULL;
    }
    PQclear(res);
    if (r->pg->conn == NULL)
        return false;
    /* Each statement's results end with NULL. */
    PGresult *end = PQgetResult(r->pg->conn);
    PQclear(end);
    return end == NULL;
}

static bool collect_all(run_t *r)
{
    for (size_t k = 0; k < r->nslots; k++)
        if (!collect_slot(r, k))
            return false;
    PGresult *sync = PQgetResult(r->pg->conn);
    bool ok = sync != NULL && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    return ok && PQexitPipelineMode(r->pg->conn) == 1;
}

static imp_error_t *batch_broken(run_t *r)
{
    imp_error_t *err = r->err;
    if (err == NULL)
        err = make_error(r->pg->conn, NULL);
    if (imp_error_class(err) != IMP_ERR_INFRA) {
        imp_error_free(err);
        err = imp_error_new(IMP_ERR_INFRA, "pg_connection_lost",
                            "postgres connection lost during a batch");
    }
    if (r->b->failed == r->b->n)
        r->b->failed = 0;
    drop_conn(r->pg); /* also leaves pipeline mode */
    return err;
}

/* Run a batch; a failing statement's error as it came (its index in batch->failed, and
 * *by_stmt set; a broken connection leaves it false). */
static imp_error_t *batch_run_raw(imp_pg_t *pg, imp_pg_batch_t *batch, bool *by_stmt)
{
    *by_stmt = false;
    for (size_t i = 0; i < batch->n; i++)
        stmt_clear_result(&batch->stmts[i]);
    batch->failed = batch->n;
    imp_error_t *err = prepare_call(pg);
    if (err != NULL || batch->n == 0)
        return err;
    run_t r = {.pg = pg, .b = batch, .slots = imp_malloc(2 * batch->n * sizeof(slot_t))};
    if (!send_all(&r) || !collect_all(&r))
        err = batch_broken(&r);
    else if ((err = r.err) != NULL)
        *by_stmt = true;
    free(r.slots);
    return err;
}

/* The deferred statements first, moved into b: BEGIN and the tenant setting, then from
 * index *user on those of imp_pg_exec_deferred. Returns how many were added. */
static size_t add_deferred(imp_pg_t *pg, imp_pg_batch_t *b, size_t *user)
{
    size_t n = 0;
    if (pg->begin_sql != NULL) {
        imp_pg_batch_add(b, pg->begin_sql, 0, NULL);
        n++;
    }
    if (pg->tenant_pending) {
        const char *params[] = {pg->tenant};
        imp_pg_batch_add_cached(b, IMP_PG_SET_TENANT_SQL, 1, params);
        n++;
    }
    free(pg->begin_sql);
    pg->begin_sql = NULL;
    pg->tenant_pending = false;
    *user = n;
    imp_pg_batch_t *q = pg->deferred;
    for (size_t i = 0; q != NULL && i < q->n; i++) {
        *batch_grow(b) = q->stmts[i]; /* ownership moves */
        n++;
    }
    if (q != NULL)
        q->n = 0;
    pg->ndeferred = 0;
    b->failed = b->n;
    return n;
}

/* An error of statement `failed` of a run whose deferred statements were [user, end): such
 * an error says so. */
static imp_error_t *blame_deferred(imp_pg_t *pg, imp_error_t *err, const imp_pg_batch_t *b,
                                   size_t user, size_t end)
{
    size_t failed = b->failed;
    if (err == NULL || failed < user || failed >= end)
        return err;
    pg->err_deferred = true;
    err = imp_error_prefix(err, "deferred statement");
    if (pg->defer_fail == NULL) {
        pg->defer_fail = imp_error_copy(err);
        pg->defer_fail_label = b->stmts[failed].label;
    }
    return err;
}

static imp_error_t *flush_deferred(imp_pg_t *pg)
{
    imp_pg_batch_t *b = imp_pg_batch_new();
    size_t user;
    size_t n = add_deferred(pg, b, &user);
    bool by_stmt;
    imp_error_t *err = batch_run_raw(pg, b, &by_stmt);
    if (by_stmt)
        err = blame_deferred(pg, err, b, user, n);
    imp_pg_batch_free(b);
    return err;
}

/* One statement with the deferred ones before it, in one round trip. Its result is the
 * caller's; an error of a deferred statement is returned as the statement's. */
static imp_error_t *exec_with_deferred(imp_pg_t *pg, const char *sql, int nparams,
                                       const char *const *params, bool cached,
                                       imp_pg_result_t **out)
{
    imp_pg_batch_t *b = imp_pg_batch_new();
    size_t user;
    size_t last = add_deferred(pg, b, &user);
    batch_append(b, sql, nparams, params, cached);
    bool by_stmt;
    imp_error_t *err = batch_run_raw(pg, b, &by_stmt);
    if (by_stmt)
        err = blame_deferred(pg, err, b, user, last);
    if (err == NULL && out != NULL) {
        *out = imp_malloc(sizeof(**out));
        (*out)->res = b->stmts[last].result.res;
        b->stmts[last].result.res = NULL;
    }
    imp_pg_batch_free(b);
    return err;
}

/* The deferred statements, batch's, and `tail` (NULL: none) in one round trip; batch's
 * results and failed index as if it had run alone (failed == n: a deferred statement or the
 * tail). *by_stmt as for batch_run_raw. */
static imp_error_t *run_with_deferred(imp_pg_t *pg, imp_pg_batch_t *batch, const char *tail,
                                      bool *by_stmt)
{
    for (size_t i = 0; i < batch->n; i++)
        stmt_clear_result(&batch->stmts[i]);
    batch->failed = batch->n;
    imp_pg_batch_t *all = imp_pg_batch_new();
    size_t user;
    size_t k = add_deferred(pg, all, &user);
    /* batch's statements are lent to the run (no copy: the outbox insert's arrays are
     * large) and taken back with their results. */
    for (size_t i = 0; i < batch->n; i++)
        *batch_grow(all) = batch->stmts[i];
    if (tail != NULL)
        batch_append(all, tail, 0, NULL, false);
    imp_error_t *err = batch_run_raw(pg, all, by_stmt);
    for (size_t i = 0; i < batch->n; i++) {
        batch->stmts[i] = all->stmts[k + i];
        memset(&all->stmts[k + i], 0, sizeof(all->stmts[k + i]));
    }
    if (*by_stmt) {
        size_t f = all->failed;
        batch->failed = f >= k && f < k + batch->n ? f - k : batch->n;
        err = blame_deferred(pg, err, all, user, k);
    }
    imp_pg_batch_free(all);
    return err;
}

imp_error_t *imp_pg_batch_run(imp_pg_t *pg, imp_pg_batch_t *batch)
{
    pg->err_deferred = false;
    bool by_stmt;
    imp_error_t *err = has_deferred(pg) ? run_with_deferred(pg, batch, NULL, &by_stmt)
                                        : batch_run_raw(pg, batch, &by_stmt);
    if (by_stmt && batch->failed < batch->n)
        err = imp_error_prefix(err, "statement %zu", batch->failed);
    return err;
}

/* ---- deferred statements ------------------------------------------------------------- */

imp_error_t *imp_pg_exec_deferred(imp_pg_t *pg, const char *sql, int nparams,
                                  const char *const *params)
{
    if (!pg->in_tx)
        return misuse("deferred statement outside a transaction");
    if (pg->tx_lost)
        return prepare_call(pg);
    if (pg->deferred == NULL)
        pg->deferred = imp_pg_batch_new();
    imp_pg_batch_add_cached(pg->deferred, sql, nparams, params);
    pg->deferred->stmts[pg->deferred->n - 1].label = pg->defer_label;
    pg->ndeferred++;
    return NULL;
}

void imp_pg_defer_label(imp_pg_t *pg, size_t label)
{
    pg->defer_label = label;
}

const imp_error_t *imp_pg_deferred_failure(const imp_pg_t *pg, size_t *label)
{
    if (label != NULL)
        *label = pg->defer_fail != NULL ? pg->defer_fail_label : IMP_PG_NO_LABEL;
    return pg->defer_fail;
}

imp_error_t *imp_pg_flush(imp_pg_t *pg)
{
    pg->err_deferred = false;
    return user_deferred(pg) > 0 ? flush_deferred(pg) : NULL;
}

size_t imp_pg_deferred_count(const imp_pg_t *pg)
{
    return user_deferred(pg);
}

bool imp_pg_error_deferred(const imp_pg_t *pg)
{
    return pg->err_deferred;
}

imp_error_t *imp_pg_tx_commit_batch(imp_pg_t *pg, imp_pg_batch_t *batch)
{
    pg->err_deferred = false;
    for (size_t i = 0; i < batch->n; i++)
        stmt_clear_result(&batch->stmts[i]);
    batch->failed = batch->n;
    if (!pg->in_tx)
        return misuse("commit without a transaction");
    if (pg->tx_lost) {
        forget_deferred(pg);
        pg->in_tx = false;
        pg->tx_lost = false;
        return imp_error_new(IMP_ERR_INFRA, "pg_tx_lost",
                             "postgres connection lost inside the transaction");
    }
    bool began = pg->begin_sql == NULL;
    if (!began && user_deferred(pg) == 0 && batch->n == 0) {
        forget_deferred(pg);
        pg->in_tx = false; /* no statement ran: nothing to commit */
        return NULL;
    }
    if (began && pg->conn != NULL && PQtransactionStatus(pg->conn) == PQTRANS_INERROR)
        return commit_aborted(pg);

    /* Out of the transaction before COMMIT: a loss now means "outcome unknown". */
    pg->in_tx = false;
    bool by_stmt;
    imp_error_t *err = run_with_deferred(pg, batch, "COMMIT", &by_stmt);
    /* The pipeline stopped at a failure: the transaction is still open, aborted. */
    if (by_stmt && pg->conn != NULL && PQtransactionStatus(pg->conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(pg->conn, "ROLLBACK");
        if (!result_ok(res))
            drop_conn(pg);
        PQclear(res);
    }
    return err;
}
