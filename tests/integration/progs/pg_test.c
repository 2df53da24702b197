/* The pg module against a real Postgres (run by tests/integration/it_pg.sh in the harness). */
#include "imp/pg.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <check.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define TENANT_A "0a000000-0000-4000-8000-00000000000a"
#define TENANT_B "0b000000-0000-4000-8000-00000000000b"

static const char *owner_dsn(void)
{
    const char *dsn = getenv("IMP_PG_DSN");
    ck_assert_msg(dsn != NULL, "IMP_PG_DSN not set: run under tests/harness.sh");
    return dsn;
}

static imp_pg_t *open_owner(void)
{
    imp_pg_t *pg = NULL;
    imp_error_t *err = imp_pg_connect(owner_dsn(), &pg);
    ck_assert_msg(err == NULL, "connect: %s", err ? imp_error_message(err) : "");
    return pg;
}

static void ok(imp_error_t *err, const char *what)
{
    ck_assert_msg(err == NULL, "%s: %s [%s]", what, err ? imp_error_message(err) : "",
                  err ? imp_error_code(err) : "");
}

static void must(imp_pg_t *pg, const char *sql)
{
    ok(imp_pg_exec(pg, sql, 0, NULL, NULL), sql);
}

static long long scalar_int(imp_pg_t *pg, const char *sql)
{
    char *v = NULL;
    ok(imp_pg_exec_scalar(pg, sql, 0, NULL, &v), sql);
    ck_assert_ptr_nonnull(v);
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

/* The error of sql, which must fail. */
static imp_error_t *fails(imp_pg_t *pg, const char *sql)
{
    imp_error_t *err = imp_pg_exec(pg, sql, 0, NULL, NULL);
    ck_assert_msg(err != NULL, "expected failure: %s", sql);
    return err;
}

static void expect_class(imp_error_t *err, imp_err_class_t cls, const char *code)
{
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(imp_error_class(err) == cls, "%s: class %s, expected %s", imp_error_message(err),
                  imp_err_class_name(imp_error_class(err)), imp_err_class_name(cls));
    ck_assert_str_eq(imp_error_code(err), code);
    imp_error_free(err);
}

static long long ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000LL + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

/* ---- round trips, counted at the socket ------------------------------------------------
 *
 * libpq writes with send() and reads with recv(); this program defines both (under their
 * symbol names, so that a fortified <sys/socket.h> does not get in the way), and the
 * executable comes first in symbol lookup, so libpq's calls land here before going on to the
 * next definition (libc, or the sanitizer's interceptor). While counting, a round trip is a
 * send() that follows data received (or the first send() of the window): a client that sends
 * everything and only then reads is one round trip, however many writes it takes. Exact, no
 * timing involved; only the connection under test is active while counting. */
static struct {
    bool on;
    bool received; /* data came back since the last send (true at the start of a window) */
    int trips;
    long long sent; /* bytes */
} rt;

ssize_t rt_send(int fd, const void *buf, size_t len, int flags) __asm__("send");
ssize_t rt_recv(int fd, void *buf, size_t len, int flags) __asm__("recv");

ssize_t rt_send(int fd, const void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, const void *, size_t, int);
    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    ssize_t n = real(fd, buf, len, flags);
    if (rt.on && n > 0) {
        if (rt.received)
            rt.trips++;
        rt.received = false;
        rt.sent += n;
    }
    return n;
}

ssize_t rt_recv(int fd, void *buf, size_t len, int flags)
{
    static ssize_t (*real)(int, void *, size_t, int);
    if (real == NULL)
        real = (ssize_t(*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
    ssize_t n = real(fd, buf, len, flags);
    if (rt.on && n > 0)
        rt.received = true;
    return n;
}

static void trips_start(void)
{
    rt.trips = 0;
    rt.sent = 0;
    rt.received = true;
    rt.on = true;
}

/* Round trips since trips_start(). */
static int trips_stop(void)
{
    rt.on = false;
    return rt.trips;
}

static void setup(void)
{
    imp_pg_t *pg = open_owner();
    must(pg, "DROP TABLE IF EXISTS pg_test_items");
    must(pg, "CREATE TABLE pg_test_items (id integer PRIMARY KEY, v text, u uuid, b bytea)");
    imp_pg_free(pg);
}

/* ---- statements ---------------------------------------------------------------------- */

START_TEST(exec_params_and_results)
{
    imp_pg_t *pg = open_owner();
    const char *p1[] = {"1", "one", NULL};
    imp_pg_result_t *res = NULL;
    ok(imp_pg_exec(pg, "INSERT INTO pg_test_items (id, v, u) VALUES ($1, $2, $3)", 3, p1, &res),
       "insert");
    ck_assert_int_eq(imp_pg_result_affected(res), 1);
    imp_pg_result_free(res);

    const char *p2[] = {"1"};
    ok(imp_pg_exec(pg, "SELECT id, v, u, id > 0 AS pos FROM pg_test_items WHERE id = $1", 1, p2,
                   &res),
       "select");
    ck_assert_int_eq(imp_pg_result_rows(res), 1);
    ck_assert_int_eq(imp_pg_result_cols(res), 4);
    ck_assert_int_eq(imp_pg_result_column(res, "v"), 1);
    ck_assert_int_eq(imp_pg_result_column(res, "nope"), -1);
    ck_assert_str_eq(imp_pg_result_value(res, 0, 1), "one");
    ck_assert(imp_pg_result_is_null(res, 0, 2));
    ck_assert_ptr_null(imp_pg_result_value(res, 0, 2));
    ck_assert_ptr_null(imp_pg_result_value(res, 5, 0));
    long long id = 0;
    bool pos = false;
    ck_assert_int_eq(imp_pg_result_get_int64(res, 0, 0, &id), 0);
    ck_assert_int_eq(id, 1);
    ck_assert_int_eq(imp_pg_result_get_int64(res, 0, 1, &id), -1);
    ck_assert_int_eq(imp_pg_result_get_bool(res, 0, 3, &pos), 0);
    ck_assert(pos);
    imp_pg_result_free(res);

    char *v = NULL;
    ok(imp_pg_exec_scalar(pg, "SELECT u FROM pg_test_items WHERE id = 1", 0, NULL, &v), "scalar");
    ck_assert_ptr_null(v);
    expect_class(imp_pg_exec_scalar(pg, "SELECT 1 WHERE false", 0, NULL, &v), IMP_ERR_POISON,
                 "pg_rows");
    imp_pg_free(pg);
}
END_TEST

START_TEST(bytea_round_trip)
{
    imp_pg_t *pg = open_owner();
    unsigned char raw[256];
    for (int i = 0; i < 256; i++)
        raw[i] = (unsigned char)i;
    char *hex = imp_pg_bytea_hex(raw, sizeof(raw));
    const char *params[] = {hex};
    ok(imp_pg_exec(pg, "INSERT INTO pg_test_items (id, b) VALUES (7, $1)", 1, params, NULL),
       "insert bytea");
    free(hex);
    imp_pg_result_t *res = NULL;
    ok(imp_pg_exec(pg, "SELECT b FROM pg_test_items WHERE id = 7", 0, NULL, &res), "select");
    unsigned char *out = NULL;
    size_t len = 0;
    ck_assert_int_eq(imp_pg_result_get_bytea(res, 0, 0, &out, &len), 0);
    ck_assert_uint_eq(len, sizeof(raw));
    ck_assert(memcmp(out, raw, len) == 0);
    free(out);
    imp_pg_result_free(res);
    imp_pg_free(pg);
}
END_TEST

START_TEST(cached_statements)
{
    imp_pg_t *pg = open_owner();
    const char *sql = "INSERT INTO pg_test_items (id, v) VALUES ($1, $2)";
    char id[16];
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "%d", 100 + i);
        const char *params[] = {id, "cached"};
        ok(imp_pg_exec_cached(pg, sql, 2, params, NULL), "cached insert");
    }
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_prepared_statements"), 1);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items WHERE v = 'cached'"), 50);
    imp_pg_free(pg);
}
END_TEST

START_TEST(script_errors_name_the_line)
{
    imp_pg_t *pg = open_owner();
    imp_error_t *err = imp_pg_exec_script(pg, "SELECT 1;\nSELECT 2;\nSELEC 3;\n-- é\nSELECT 4;\n");
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(imp_error_message(err), "(line 3)") != NULL, "message: %s",
                  imp_error_message(err));
    ck_assert_str_eq(imp_error_code(err), "42601");
    imp_error_free(err);
    ok(imp_pg_exec_script(pg, "SELECT 1; SELECT 2"), "script");
    imp_pg_free(pg);
}
END_TEST

/* ---- transactions -------------------------------------------------------------------- */

START_TEST(tx_commit_and_rollback)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    ck_assert(imp_pg_in_tx(pg));
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    imp_pg_tx_rollback(pg);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);

    ok(imp_pg_tx_begin_with(pg, "ISOLATION LEVEL REPEATABLE READ"), "begin rr");
    expect_class(imp_pg_tx_begin(pg), IMP_ERR_POISON, "pg_misuse");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (2)");
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1);
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_misuse");
    imp_pg_tx_rollback(pg); /* no-op outside a transaction */
    imp_pg_free(pg);
}
END_TEST

START_TEST(commit_of_aborted_tx_reports_its_class)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    expect_class(
        fails(pg, "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '40001'; END $$"),
        IMP_ERR_RETRIABLE, "40001");
    expect_class(fails(pg, "SELECT 1"), IMP_ERR_POISON, "25P02");
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_RETRIABLE, "pg_tx_aborted");
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);
    imp_pg_free(pg);
}
END_TEST

START_TEST(savepoints)
{
    imp_pg_t *pg = open_owner();
    expect_class(imp_pg_savepoint(pg, "s1"), IMP_ERR_POISON, "pg_misuse");
    ok(imp_pg_tx_begin(pg), "begin");
    expect_class(imp_pg_savepoint(pg, "bad name;"), IMP_ERR_POISON, "pg_misuse");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    ok(imp_pg_savepoint(pg, "ev_2"), "savepoint");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (2)");
    expect_class(fails(pg, "INSERT INTO pg_test_items (id) VALUES (1)"), IMP_ERR_POISON, "23505");
    ok(imp_pg_savepoint_rollback(pg, "ev_2"), "rollback to");
    ok(imp_pg_savepoint(pg, "ev_3"), "savepoint");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (3)");
    ok(imp_pg_savepoint_release(pg, "ev_3"), "release");
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(scalar_int(pg, "SELECT sum(id) FROM pg_test_items"), 4);
    imp_pg_free(pg);
}
END_TEST

/* set_tenant is transaction-local and drives row-level security for the app role. */
START_TEST(set_tenant_is_transaction_local)
{
    imp_pg_t *owner = open_owner();
    must(owner, "DELETE FROM tenants WHERE slug IN ('pg-test-a', 'pg-test-b')");
    must(owner, "INSERT INTO tenants (id, slug, name) VALUES ('" TENANT_A "', 'pg-test-a', 'A'), "
                "('" TENANT_B "', 'pg-test-b', 'B')");
    imp_pg_free(owner);

    const char *app_dsn = getenv("IMP_PG_APP_DSN");
    ck_assert_ptr_nonnull(app_dsn);
    imp_pg_t *pg = NULL;
    ok(imp_pg_connect(app_dsn, &pg), "connect app");
    expect_class(imp_pg_set_tenant(pg, TENANT_A), IMP_ERR_POISON, "pg_misuse");

    ok(imp_pg_tx_begin(pg), "begin");
    expect_class(imp_pg_set_tenant(pg, "not-a-uuid"), IMP_ERR_POISON, "pg_misuse");
    ok(imp_pg_set_tenant(pg, TENANT_A), "set tenant");
    char *slug = NULL;
    ok(imp_pg_exec_scalar(pg, "SELECT string_agg(slug, ',') FROM tenants", 0, NULL, &slug),
       "tenants in tx");
    ck_assert_str_eq(slug, "pg-test-a");
    free(slug);
    ok(imp_pg_tx_commit(pg), "commit");

    char *setting = NULL;
    ok(imp_pg_exec_scalar(pg, "SELECT coalesce(current_setting('app.tenant_id', true), '')", 0,
                          NULL, &setting),
       "setting after commit");
    ck_assert_str_eq(setting, "");
    free(setting);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM tenants"), 0);

    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_B), "set tenant b");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM tenants"), 1);
    ok(imp_pg_set_tenant(pg, NULL), "clear tenant");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM tenants"), 0);
    imp_pg_tx_rollback(pg);
    imp_pg_free(pg);
}
END_TEST

/* ---- classification ------------------------------------------------------------------ */

START_TEST(classification_by_sqlstate)
{
    imp_pg_t *pg = open_owner();
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");

    imp_error_t *err = fails(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    ck_assert_str_eq(imp_pg_error_sqlstate(err), "23505");
    ck_assert_ptr_nonnull(imp_error_detail(err));
    ck_assert_msg(strstr(imp_error_detail(err), "already exists") != NULL, "detail: %s",
                  imp_error_detail(err));
    ck_assert_msg(strstr(imp_error_detail(err), "pg_test_items_pkey") != NULL, "detail: %s",
                  imp_error_detail(err));
    expect_class(err, IMP_ERR_POISON, "23505");

    expect_class(fails(pg, "SELECT 'zzz'::uuid"), IMP_ERR_POISON, "22P02");
    expect_class(fails(pg, "SELECT * FROM no_such_table"), IMP_ERR_POISON, "42P01");

    static const struct {
        const char *state;
        imp_err_class_t cls;
    } raised[] = {
        {"40001", IMP_ERR_RETRIABLE}, {"40P01", IMP_ERR_RETRIABLE}, {"55P03", IMP_ERR_RETRIABLE},
        {"57014", IMP_ERR_RETRIABLE}, {"53300", IMP_ERR_INFRA},     {"53200", IMP_ERR_INFRA},
        {"25006", IMP_ERR_INFRA},     {"P0001", IMP_ERR_POISON},    {"XX000", IMP_ERR_POISON},
        {"22012", IMP_ERR_POISON},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(raised); i++) {
        char *sql = imp_asprintf("DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '%s'; END $$",
                                 raised[i].state);
        expect_class(fails(pg, sql), raised[i].cls, raised[i].state);
        free(sql);
    }
    ck_assert(imp_pg_is_connected(pg));
    ck_assert_uint_eq(imp_pg_reconnect_count(pg), 0);

    imp_error_t *other = imp_error_new(IMP_ERR_POISON, "pg_misuse", "x");
    ck_assert_ptr_null(imp_pg_error_sqlstate(other));
    imp_error_free(other);
    imp_pg_free(pg);
}
END_TEST

/* ---- batches ------------------------------------------------------------------------- */

static void add_inserts(imp_pg_batch_t *b, int from, int n, bool cached)
{
    char id[16];
    for (int i = from; i < from + n; i++) {
        snprintf(id, sizeof(id), "%d", i);
        const char *params[] = {id, "batch"};
        if (cached)
            imp_pg_batch_add_cached(b, "INSERT INTO pg_test_items (id, v) VALUES ($1, $2)", 2,
                                    params);
        else
            imp_pg_batch_add(b, "INSERT INTO pg_test_items (id, v) VALUES ($1, $2)", 2, params);
    }
}

START_TEST(batch_of_1000_in_one_round_trip)
{
    imp_pg_t *pg = open_owner();
    imp_pg_batch_t *b = imp_pg_batch_new();
    add_inserts(b, 1, 1000, true);
    ck_assert_uint_eq(imp_pg_batch_size(b), 1000);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok(imp_pg_batch_run(pg, b), "batch");
    long long ms = ms_since(&t0);
    fprintf(stderr, "pg_test: 1000 pipelined inserts (outside a transaction) in %lld ms\n", ms);
    ck_assert_uint_eq(imp_pg_batch_failed(b), 1000);
    for (size_t i = 0; i < 1000; i++)
        ck_assert_int_eq(imp_pg_batch_affected(b, i), 1);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1000);
    /* One sync point: all 1000 rows were written by one (implicit) transaction. */
    ck_assert_int_eq(scalar_int(pg, "SELECT count(DISTINCT xmin::text) FROM pg_test_items"), 1);

    /* Again inside an explicit transaction, reusing the batch with new statements. */
    imp_pg_batch_reset(b);
    add_inserts(b, 1001, 1000, false);
    ok(imp_pg_tx_begin(pg), "begin");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok(imp_pg_batch_run(pg, b), "batch in tx");
    fprintf(stderr, "pg_test: 1000 pipelined inserts (inside a transaction) in %lld ms\n",
            ms_since(&t0));
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 2000);
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

START_TEST(batch_failure_stops_and_rolls_back)
{
    imp_pg_t *pg = open_owner();
    must(pg, "INSERT INTO pg_test_items (id) VALUES (500)");
    imp_pg_batch_t *b = imp_pg_batch_new();
    add_inserts(b, 1, 1000, true); /* statement 499 inserts id 500: duplicate */
    imp_error_t *err = imp_pg_batch_run(pg, b);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(imp_pg_error_sqlstate(err), "23505");
    ck_assert_msg(strncmp(imp_error_message(err), "statement 499:", 14) == 0, "message: %s",
                  imp_error_message(err));
    expect_class(err, IMP_ERR_POISON, "23505");
    ck_assert_uint_eq(imp_pg_batch_failed(b), 499);
    ck_assert_int_eq(imp_pg_batch_affected(b, 0), 1);
    ck_assert_ptr_nonnull(imp_pg_batch_result(b, 0));
    ck_assert_ptr_null(imp_pg_batch_result(b, 499));
    ck_assert_int_eq(imp_pg_batch_affected(b, 600), -1);
    ck_assert_ptr_null(imp_pg_batch_result(b, 600));
    /* The implicit transaction of the batch is gone: only the row from before remains. */
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1);

    /* The connection is still usable, and the batch can run again once the conflict is gone. */
    must(pg, "DELETE FROM pg_test_items");
    ok(imp_pg_batch_run(pg, b), "rerun");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1000);
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

START_TEST(batch_with_bad_cached_statement)
{
    imp_pg_t *pg = open_owner();
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (1)", 0, NULL);
    imp_pg_batch_add_cached(b, "INSERT INTO no_such_table VALUES (1)", 0, NULL);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (2)", 0, NULL);
    ok(imp_pg_tx_begin(pg), "begin");
    imp_error_t *err = imp_pg_batch_run(pg, b);
    ck_assert_uint_eq(imp_pg_batch_failed(b), 1);
    expect_class(err, IMP_ERR_POISON, "42P01");
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");
    /* The failed PREPARE is not remembered as prepared: running it again fails the same way. */
    imp_pg_batch_reset(b);
    imp_pg_batch_add_cached(b, "INSERT INTO no_such_table VALUES (1)", 0, NULL);
    expect_class(imp_pg_batch_run(pg, b), IMP_ERR_POISON, "42P01");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

/* Results far larger than the socket buffers: the sender must read while it writes. */
START_TEST(batch_with_large_results)
{
    imp_pg_t *pg = open_owner();
    imp_pg_batch_t *b = imp_pg_batch_new();
    for (int i = 0; i < 4000; i++)
        imp_pg_batch_add_cached(b, "SELECT repeat('x', 4000) AS pad, $1::int AS n", 1,
                                (const char *const[]){"7"});
    ok(imp_pg_batch_run(pg, b), "large batch");
    const imp_pg_result_t *last = imp_pg_batch_result(b, 3999);
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq((int)strlen(imp_pg_result_value(last, 0, 0)), 4000);
    ck_assert_str_eq(imp_pg_result_value(last, 0, 1), "7");
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

/* ---- reconnect ----------------------------------------------------------------------- */

static void terminate(imp_pg_t *victim)
{
    char *pid = NULL;
    ok(imp_pg_exec_scalar(victim, "SELECT pg_backend_pid()", 0, NULL, &pid), "backend pid");
    imp_pg_t *killer = open_owner();
    const char *params[] = {pid};
    char *done = NULL;
    ok(imp_pg_exec_scalar(killer, "SELECT pg_terminate_backend($1::int, 5000)", 1, params, &done),
       "terminate");
    ck_assert_str_eq(done, "t");
    free(done);
    free(pid);
    imp_pg_free(killer);
}

START_TEST(reconnect_after_terminate)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_exec_cached(pg, "SELECT $1::int + 1", 1, (const char *const[]){"1"}, NULL), "cached");
    terminate(pg);
    imp_error_t *err = imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(imp_error_class(err) == IMP_ERR_INFRA, "class %s: %s",
                  imp_err_class_name(imp_error_class(err)), imp_error_message(err));
    imp_error_free(err);
    ck_assert(!imp_pg_is_connected(pg));
    ok(imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "after reconnect");
    ck_assert_uint_eq(imp_pg_reconnect_count(pg), 1);
    /* Prepared statements are prepared again on the new connection. */
    char *v = NULL;
    ok(imp_pg_exec_scalar(pg, "SELECT 1", 0, NULL, &v), "scalar");
    free(v);
    ok(imp_pg_exec_cached(pg, "SELECT $1::int + 1", 1, (const char *const[]){"1"}, NULL),
       "cached after reconnect");
    ok(imp_pg_ping(pg), "ping");
    imp_pg_free(pg);
}
END_TEST

START_TEST(connection_lost_inside_tx)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    terminate(pg);
    imp_error_t *err = imp_pg_exec(pg, "INSERT INTO pg_test_items (id) VALUES (2)", 0, NULL, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    /* No silent autocommit on a new connection: the handle insists on a rollback first. */
    expect_class(imp_pg_exec(pg, "INSERT INTO pg_test_items (id) VALUES (3)", 0, NULL, NULL),
                 IMP_ERR_INFRA, "pg_tx_lost");
    ck_assert(imp_pg_in_tx(pg));
    imp_pg_tx_rollback(pg);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);

    /* Lost before COMMIT: the commit reports infra and closes the transaction. */
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (4)");
    terminate(pg);
    err = imp_pg_tx_commit(pg);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);
    imp_pg_free(pg);
}
END_TEST

/* BEGIN and the tenant setting go out with the transaction's first statement: they still take
 * effect for it, a transaction without statements costs nothing, and a connection lost before
 * the first statement is reported by it. */
START_TEST(begin_and_tenant_ride_with_the_first_statement)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_tx_commit(pg), "commit of an empty transaction");
    ok(imp_pg_tx_begin(pg), "begin");
    imp_pg_tx_rollback(pg);
    ck_assert(!imp_pg_in_tx(pg));

    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_A), "set tenant");
    char *v = NULL;
    ok(imp_pg_exec_scalar(pg,
                          "SELECT current_setting('app.tenant_id') || '|' || "
                          "(SELECT count(*) FROM pg_test_items)",
                          0, NULL, &v),
       "first statement");
    ck_assert_str_eq(v, TENANT_A "|0");
    free(v);
    must(pg, "INSERT INTO pg_test_items (id) VALUES (7)");
    imp_pg_tx_rollback(pg);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);

    /* A cached first statement, a batch as the first statement. */
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_A), "set tenant");
    imp_pg_result_t *res = NULL;
    ok(imp_pg_exec_cached(pg, "SELECT current_setting('app.tenant_id')", 0, NULL, &res),
       "cached first statement");
    ck_assert_str_eq(imp_pg_result_value(res, 0, 0), TENANT_A);
    imp_pg_result_free(res);
    ok(imp_pg_tx_commit(pg), "commit");
    ok(imp_pg_tx_begin(pg), "begin");
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (8)", 0, NULL);
    ok(imp_pg_batch_run(pg, b), "batch as the first statement");
    imp_pg_batch_free(b);
    imp_pg_tx_rollback(pg);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);

    /* A failing first statement aborts the transaction it opened. */
    ok(imp_pg_tx_begin(pg), "begin");
    expect_class(fails(pg, "SELECT 1/0"), IMP_ERR_POISON, "22012");
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");

    /* The connection goes away between BEGIN and the first statement. */
    ok(imp_pg_tx_begin(pg), "begin");
    terminate(pg);
    imp_error_t *err = imp_pg_exec(pg, "INSERT INTO pg_test_items (id) VALUES (9)", 0, NULL, NULL);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    expect_class(imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), IMP_ERR_INFRA, "pg_tx_lost");
    imp_pg_tx_rollback(pg);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);
    imp_pg_free(pg);
}
END_TEST

START_TEST(batch_after_terminate)
{
    imp_pg_t *pg = open_owner();
    imp_pg_batch_t *b = imp_pg_batch_new();
    add_inserts(b, 1, 10, true);
    ok(imp_pg_batch_run(pg, b), "batch");
    must(pg, "DELETE FROM pg_test_items");
    terminate(pg);
    imp_error_t *err = imp_pg_batch_run(pg, b);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    imp_error_free(err);
    ok(imp_pg_batch_run(pg, b), "batch after reconnect");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 10);
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

START_TEST(connect_failure_backs_off)
{
    imp_pg_t *pg = NULL;
    imp_error_t *err = imp_pg_connect("postgresql://nobody@127.0.0.1:1/none", &pg);
    ck_assert_ptr_null(pg);
    expect_class(err, IMP_ERR_INFRA, "pg_connect");

    imp_pg_options_t opts = {.dsn = "postgresql://nobody@127.0.0.1:1/none",
                             .backoff_min_ms = 200,
                             .backoff_max_ms = 300};
    pg = imp_pg_new(&opts);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_class(imp_pg_ping(pg), IMP_ERR_INFRA, "pg_connect"); /* at once */
    expect_class(imp_pg_ping(pg), IMP_ERR_INFRA, "pg_connect"); /* after 200 ms */
    expect_class(imp_pg_ping(pg), IMP_ERR_INFRA, "pg_connect"); /* after 300 ms (bounded) */
    long long ms = ms_since(&t0);
    ck_assert_msg(ms >= 450 && ms < 2000, "three attempts took %lld ms", ms);
    imp_pg_free(pg);
}
END_TEST

/* ---- deferred statements ------------------------------------------------------------- */

static const char *const DEFERRED_INSERT =
    "INSERT INTO pg_test_items (id, v) VALUES ($1::int, 'deferred')";

static void defer_insert(imp_pg_t *pg, int id)
{
    char s[16];
    snprintf(s, sizeof(s), "%d", id);
    const char *params[] = {s};
    ok(imp_pg_exec_deferred(pg, DEFERRED_INSERT, 1, params), "defer insert");
}

/* scalar_int on a connection of its own: what is committed. */
static long long committed_int(const char *sql)
{
    imp_pg_t *other = open_owner();
    long long n = scalar_int(other, sql);
    imp_pg_free(other);
    return n;
}

/* err came from a deferred statement that failed with SQLSTATE code (a poison class). */
static void expect_deferred_error(imp_pg_t *pg, imp_error_t *err, const char *code)
{
    ck_assert_msg(err != NULL, "expected the error of a deferred statement");
    ck_assert_msg(strncmp(imp_error_message(err), "deferred statement: ", 20) == 0, "message: %s",
                  imp_error_message(err));
    ck_assert_msg(imp_pg_error_deferred(pg), "error_deferred is false for: %s",
                  imp_error_message(err));
    ck_assert_pstr_eq(imp_pg_error_sqlstate(err), code);
    expect_class(err, IMP_ERR_POISON, code);
}

/* Advisory locks on key held by any session (the lock of a statement that was sent). */
static long long advisory_locks(int key)
{
    char *sql = imp_asprintf("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND objid = %d AND granted",
                             key);
    long long n = committed_int(sql);
    free(sql);
    return n;
}

/* The counter itself: one statement is one round trip, a pipelined batch too. */
START_TEST(round_trip_counter)
{
    imp_pg_t *pg = open_owner();
    trips_start();
    ok(imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "select");
    int trips = trips_stop();
    ck_assert_msg(trips == 1, "SELECT 1 took %d round trips (is send() interposed?)", trips);
    trips_start();
    ok(imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "select");
    ok(imp_pg_exec(pg, "SELECT 2", 0, NULL, NULL), "select");
    ck_assert_int_eq(trips_stop(), 2);
    imp_pg_batch_t *b = imp_pg_batch_new();
    add_inserts(b, 1, 10, true);
    trips_start();
    ok(imp_pg_batch_run(pg, b), "batch");
    ck_assert_int_eq(trips_stop(), 1);
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

START_TEST(deferred_statements_go_out_with_the_next_statement)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    trips_start();
    for (int i = 1; i <= 3; i++)
        defer_insert(pg, i);
    ck_assert_int_eq(trips_stop(), 0);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 3);
    trips_start();
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 3);
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert(!imp_pg_error_deferred(pg));

    /* In order, each seeing the ones before it. */
    ok(imp_pg_exec_deferred(pg, "UPDATE pg_test_items SET v = v || '+a' WHERE id = 1", 0, NULL),
       "defer update a");
    ok(imp_pg_exec_deferred(pg, "UPDATE pg_test_items SET v = v || '+b' WHERE id = 1", 0, NULL),
       "defer update b");
    defer_insert(pg, 4);
    ok(imp_pg_exec_deferred(pg, "UPDATE pg_test_items SET v = 'after ' || v WHERE id = 4", 0, NULL),
       "defer update of the deferred insert");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 4);
    imp_pg_result_t *res = NULL;
    ok(imp_pg_exec_cached(pg, "SELECT string_agg(v, ',' ORDER BY id) FROM pg_test_items", 0, NULL,
                          &res),
       "cached select");
    ck_assert_str_eq(imp_pg_result_value(res, 0, 0),
                     "deferred+a+b,deferred,deferred,after deferred");
    imp_pg_result_free(res);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);

    /* Before a batch, and sent by a flush. */
    defer_insert(pg, 5);
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add(b, "SELECT count(*) FROM pg_test_items", 0, NULL);
    trips_start();
    ok(imp_pg_batch_run(pg, b), "batch");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_str_eq(imp_pg_result_value(imp_pg_batch_result(b, 0), 0, 0), "5");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    imp_pg_batch_free(b);

    ok(imp_pg_exec_deferred(pg, "SELECT pg_advisory_xact_lock(424242)", 0, NULL), "defer lock");
    ck_assert_int_eq(advisory_locks(424242), 0); /* queued, not sent */
    trips_start();
    ok(imp_pg_flush(pg), "flush");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_int_eq(advisory_locks(424242), 1);
    trips_start();
    ck_assert_ptr_null(imp_pg_flush(pg)); /* nothing waits */
    ck_assert_int_eq(trips_stop(), 0);

    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 0);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(advisory_locks(424242), 0);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 5);
    imp_pg_free(pg);
}
END_TEST

START_TEST(deferred_statements_and_commit_in_one_round_trip)
{
    imp_pg_t *pg = open_owner();
    char id[16];

    /* BEGIN, 100 deferred inserts (their statement not prepared yet) and COMMIT. */
    ok(imp_pg_tx_begin(pg), "begin");
    trips_start();
    for (int i = 1; i <= 100; i++)
        defer_insert(pg, i);
    ck_assert_int_eq(trips_stop(), 0);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 100);
    trips_start();
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 100);
    ck_assert_int_eq(committed_int("SELECT count(DISTINCT xmin::text) FROM pg_test_items"), 1);

    /* After a statement of the transaction (BEGIN already sent), prepared statement warm. */
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1000)");
    for (int i = 101; i <= 200; i++)
        defer_insert(pg, i);
    trips_start();
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 201);
    ck_assert_int_eq(committed_int("SELECT count(DISTINCT xmin::text) FROM pg_test_items "
                                   "WHERE id > 100"),
                     1);

    /* Deferred statements with parameters of their own, one text for all. */
    ok(imp_pg_tx_begin(pg), "begin");
    for (int i = 201; i <= 210; i++) {
        snprintf(id, sizeof(id), "%d", i);
        const char *params[] = {id, i % 2 ? "odd" : "even"};
        ok(imp_pg_exec_deferred(pg, "INSERT INTO pg_test_items (id, v) VALUES ($1, $2)", 2, params),
           "defer");
    }
    trips_start();
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items WHERE v = 'odd'"), 5);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items WHERE v = 'even'"), 5);
    imp_pg_free(pg);
}
END_TEST

START_TEST(deferred_error_surfaces_on_the_next_call)
{
    imp_pg_t *pg = open_owner();
    must(pg, "INSERT INTO pg_test_items (id, v) VALUES (1, 'before')");

    /* With the next statement. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 2);
    defer_insert(pg, 1); /* duplicate key */
    defer_insert(pg, 3);
    expect_deferred_error(pg, imp_pg_exec(pg, "SELECT count(*) FROM pg_test_items", 0, NULL, NULL),
                          "23505");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert(imp_pg_in_tx(pg));
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 1);

    /* With the next cached statement, scalar statement and batch. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_exec_cached(pg, "SELECT 1", 0, NULL, NULL), "23505");
    imp_pg_tx_rollback(pg);
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    char *v = NULL;
    expect_deferred_error(pg, imp_pg_exec_scalar(pg, "SELECT 1", 0, NULL, &v), "23505");
    ck_assert_ptr_null(v);
    imp_pg_tx_rollback(pg);
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    imp_pg_batch_t *b = imp_pg_batch_new();
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (4)", 0, NULL);
    expect_deferred_error(pg, imp_pg_batch_run(pg, b), "23505");
    ck_assert_ptr_null(imp_pg_batch_result(b, 0)); /* not executed */
    imp_pg_batch_free(b);
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 1);

    /* Through a flush. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 2);
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_flush(pg), "23505");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 1);

    /* Through the COMMIT that carries it. */
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (5)");
    defer_insert(pg, 2);
    defer_insert(pg, 1);
    imp_error_t *err = imp_pg_tx_commit(pg);
    ck_assert_msg(err != NULL, "commit of a failing deferred statement succeeded");
    ck_assert_msg(imp_error_class(err) == IMP_ERR_POISON, "%s: class %s", imp_error_message(err),
                  imp_err_class_name(imp_error_class(err)));
    if (strcmp(imp_error_code(err), "pg_tx_aborted") != 0)
        expect_deferred_error(pg, err, "23505");
    else
        imp_error_free(err);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 1);

    /* The connection goes on: a fresh transaction commits, and the flag is cleared. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 2);
    ok(imp_pg_tx_commit(pg), "commit after the failure");
    ck_assert(!imp_pg_error_deferred(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 2);
    ck_assert_uint_eq(imp_pg_reconnect_count(pg), 0);
    imp_pg_free(pg);
}
END_TEST

START_TEST(error_deferred_only_for_deferred_statements)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    imp_error_t *err = fails(pg, "SELECT 1/0");
    ck_assert(!imp_pg_error_deferred(pg));
    ck_assert_msg(strncmp(imp_error_message(err), "deferred statement", 18) != 0, "message: %s",
                  imp_error_message(err));
    expect_class(err, IMP_ERR_POISON, "22012");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    expect_class(imp_pg_tx_commit(pg), IMP_ERR_POISON, "pg_tx_aborted");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 0);

    /* Set by a deferred failure, cleared by the next call's own failure and by a success. */
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "23505");
    expect_class(fails(pg, "SELECT 1"), IMP_ERR_POISON, "25P02");
    ck_assert(!imp_pg_error_deferred(pg));
    imp_pg_tx_rollback(pg);
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_flush(pg), "23505");
    imp_pg_tx_rollback(pg);
    ok(imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "select");
    ck_assert(!imp_pg_error_deferred(pg));
    imp_pg_free(pg);
}
END_TEST

/* Whose write failed: the label it was queued under, whichever call carried it, until the
 * next transaction begins (so after a failed COMMIT too) or a savepoint rollback undoes it. */
START_TEST(deferred_failure_keeps_its_label)
{
    imp_pg_t *pg = open_owner();
    must(pg, "INSERT INTO pg_test_items (id) VALUES (1)");
    size_t label = 0;

    /* Carried by a statement queued under another label. */
    ok(imp_pg_tx_begin(pg), "begin");
    ck_assert_ptr_null(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, IMP_PG_NO_LABEL);
    imp_pg_defer_label(pg, 3);
    defer_insert(pg, 2);
    imp_pg_defer_label(pg, 7);
    defer_insert(pg, 1); /* duplicate key */
    defer_insert(pg, 3);
    imp_pg_defer_label(pg, 8);
    expect_deferred_error(pg, imp_pg_exec(pg, "SELECT 1", 0, NULL, NULL), "23505");
    const imp_error_t *f = imp_pg_deferred_failure(pg, &label);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(label, 7);
    ck_assert_pstr_eq(imp_error_code(f), "23505");
    ck_assert_msg(imp_error_class(f) == IMP_ERR_POISON, "class %s",
                  imp_err_class_name(imp_error_class(f)));
    ck_assert_msg(strncmp(imp_error_message(f), "deferred statement: ", 20) == 0, "message: %s",
                  imp_error_message(f));
    /* The transaction's later failures do not replace the first. */
    expect_class(fails(pg, "SELECT 1"), IMP_ERR_POISON, "25P02");
    ck_assert_ptr_nonnull(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, 7);
    imp_pg_tx_rollback(pg);
    ck_assert_ptr_nonnull(imp_pg_deferred_failure(pg, NULL));

    /* Cleared by the next transaction; a failure in the COMMIT's round trip stays readable. */
    ok(imp_pg_tx_begin(pg), "begin");
    ck_assert_ptr_null(imp_pg_deferred_failure(pg, &label));
    defer_insert(pg, 4); /* no label in this transaction yet */
    imp_pg_defer_label(pg, 12);
    defer_insert(pg, 1);
    imp_error_t *err = imp_pg_tx_commit(pg);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_ptr_nonnull(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, 12);

    /* An unlabelled statement's failure says so. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_flush(pg), "23505");
    ck_assert_ptr_nonnull(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, IMP_PG_NO_LABEL);
    imp_pg_tx_rollback(pg);

    /* A statement's own failure is not a deferred failure. */
    ok(imp_pg_tx_begin(pg), "begin");
    imp_pg_defer_label(pg, 5);
    defer_insert(pg, 6);
    expect_class(fails(pg, "SELECT 1/0"), IMP_ERR_POISON, "22012");
    ck_assert_ptr_null(imp_pg_deferred_failure(pg, &label));
    imp_pg_tx_rollback(pg);

    /* A savepoint rollback undoes the failure with the writes it aborted. */
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_savepoint(pg, "s"), "savepoint");
    imp_pg_defer_label(pg, 9);
    defer_insert(pg, 1);
    expect_deferred_error(pg, imp_pg_flush(pg), "23505");
    ck_assert_ptr_nonnull(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, 9);
    ok(imp_pg_savepoint_rollback(pg, "s"), "rollback to savepoint");
    ck_assert_ptr_null(imp_pg_deferred_failure(pg, &label));
    ck_assert_uint_eq(label, IMP_PG_NO_LABEL);
    defer_insert(pg, 7);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 2);
    imp_pg_free(pg);
}
END_TEST

START_TEST(deferred_outside_a_transaction_and_empty_flush)
{
    imp_pg_t *pg = open_owner();
    trips_start();
    expect_class(imp_pg_exec_deferred(pg, "INSERT INTO pg_test_items (id) VALUES (1)", 0, NULL),
                 IMP_ERR_POISON, "pg_misuse");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_ptr_null(imp_pg_flush(pg));
    ck_assert_int_eq(trips_stop(), 0);

    /* BEGIN and the tenant setting alone keep waiting for a statement. */
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_A), "set tenant");
    trips_start();
    ck_assert_ptr_null(imp_pg_flush(pg));
    ck_assert_int_eq(trips_stop(), 0);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    char *v = NULL;
    ok(imp_pg_exec_scalar(pg, "SELECT current_setting('app.tenant_id', true)", 0, NULL, &v),
       "tenant");
    ck_assert_str_eq(v, TENANT_A);
    free(v);
    ok(imp_pg_tx_commit(pg), "commit");

    expect_class(imp_pg_exec_deferred(pg, "INSERT INTO pg_test_items (id) VALUES (1)", 0, NULL),
                 IMP_ERR_POISON, "pg_misuse");
    ck_assert_ptr_null(imp_pg_flush(pg));
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);
    imp_pg_free(pg);
}
END_TEST

START_TEST(rollback_drops_unsent_deferred_statements)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 1);
    imp_pg_tx_rollback(pg);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 0);

    /* After statements were sent; and nothing leaks into the next transaction. */
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (2)");
    defer_insert(pg, 3);
    imp_pg_tx_rollback(pg);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ok(imp_pg_tx_begin(pg), "begin");
    must(pg, "INSERT INTO pg_test_items (id) VALUES (8)");
    ok(imp_pg_tx_commit(pg), "commit");
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 9);
    imp_pg_tx_rollback(pg);
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_tx_commit(pg), "commit of an empty transaction");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1);
    ck_assert_int_eq(scalar_int(pg, "SELECT sum(id) FROM pg_test_items"), 8);
    imp_pg_free(pg);
}
END_TEST

START_TEST(commit_batch)
{
    imp_pg_t *pg = open_owner();
    imp_pg_batch_t *b = imp_pg_batch_new();

    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id, v) VALUES (2, 'batch') RETURNING id", 0,
                     NULL);
    imp_pg_batch_add(b, "SELECT count(*) FROM pg_test_items", 0, NULL);
    trips_start();
    ok(imp_pg_tx_commit_batch(pg, b), "commit batch");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert(!imp_pg_error_deferred(pg));
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_uint_eq(imp_pg_batch_failed(b), 2);
    ck_assert_ptr_nonnull(imp_pg_batch_result(b, 0));
    ck_assert_str_eq(imp_pg_result_value(imp_pg_batch_result(b, 0), 0, 0), "2");
    ck_assert_int_eq(imp_pg_batch_affected(b, 0), 1);
    ck_assert_ptr_nonnull(imp_pg_batch_result(b, 1));
    ck_assert_str_eq(imp_pg_result_value(imp_pg_batch_result(b, 1), 0, 0), "2");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 2);
    ck_assert_int_eq(committed_int("SELECT count(DISTINCT xmin::text) FROM pg_test_items"), 1);

    /* A batch statement fails: nothing committed, its index reported, the transaction over. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 3);
    imp_pg_batch_reset(b);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (4)", 0, NULL);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (1)", 0, NULL); /* duplicate */
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (5)", 0, NULL);
    imp_error_t *err = imp_pg_tx_commit_batch(pg, b);
    ck_assert_ptr_nonnull(err);
    ck_assert(!imp_pg_error_deferred(pg));
    expect_class(err, IMP_ERR_POISON, "23505");
    ck_assert_uint_eq(imp_pg_batch_failed(b), 1);
    ck_assert_int_eq(imp_pg_batch_affected(b, 0), 1);
    ck_assert_int_eq(imp_pg_batch_affected(b, 2), -1);
    ck_assert_ptr_null(imp_pg_batch_result(b, 2));
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 2);
    ok(imp_pg_tx_begin(pg), "begin"); /* usable again */
    defer_insert(pg, 3);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 3);

    /* A deferred statement fails: the failed index is the batch's size. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 4);
    defer_insert(pg, 1); /* duplicate */
    imp_pg_batch_reset(b);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (5)", 0, NULL);
    expect_deferred_error(pg, imp_pg_tx_commit_batch(pg, b), "23505");
    ck_assert_uint_eq(imp_pg_batch_failed(b), imp_pg_batch_size(b));
    ck_assert_uint_eq(imp_pg_batch_failed(b), 1);
    ck_assert_int_eq(imp_pg_batch_affected(b, 0), -1);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 3);

    /* An empty batch commits the deferred statements. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 10);
    defer_insert(pg, 11);
    imp_pg_batch_reset(b);
    trips_start();
    ok(imp_pg_tx_commit_batch(pg, b), "commit empty batch");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_uint_eq(imp_pg_batch_failed(b), 0);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 5);

    /* The COMMIT itself fails (a deferred constraint): the failed index is the size too. */
    must(pg, "DROP TABLE IF EXISTS pg_test_deferrable");
    must(pg, "CREATE TABLE pg_test_deferrable (id integer, CONSTRAINT pg_test_deferrable_u "
             "UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)");
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_exec_deferred(pg, "INSERT INTO pg_test_deferrable (id) VALUES (1)", 0, NULL),
       "defer");
    imp_pg_batch_add(b, "INSERT INTO pg_test_deferrable (id) VALUES (1)", 0, NULL);
    imp_pg_batch_add(b, "INSERT INTO pg_test_items (id) VALUES (12)", 0, NULL);
    err = imp_pg_tx_commit_batch(pg, b);
    ck_assert_ptr_nonnull(err);
    ck_assert(!imp_pg_error_deferred(pg));
    expect_class(err, IMP_ERR_POISON, "23505");
    ck_assert_uint_eq(imp_pg_batch_failed(b), 2);
    ck_assert_int_eq(imp_pg_batch_affected(b, 0), 1);
    ck_assert_int_eq(imp_pg_batch_affected(b, 1), 1);
    ck_assert(!imp_pg_in_tx(pg));
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_deferrable"), 0);
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 5);
    must(pg, "DROP TABLE pg_test_deferrable");
    imp_pg_batch_free(b);
    imp_pg_free(pg);
}
END_TEST

/* A deferred statement runs under the tenant set when it was queued. */
START_TEST(deferred_statements_keep_their_tenant)
{
    static const char *const insert_with_tenant =
        "INSERT INTO pg_test_items (id, v) VALUES ($1::int, "
        "coalesce(current_setting('app.tenant_id', true), ''))";
    imp_pg_t *pg = open_owner();

    /* Sent by the COMMIT. */
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_A), "tenant a");
    ok(imp_pg_exec_deferred(pg, insert_with_tenant, 1, (const char *const[]){"1"}), "defer 1");
    ok(imp_pg_set_tenant(pg, TENANT_B), "tenant b");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 1); /* the tenant setting is not counted */
    ok(imp_pg_exec_deferred(pg, insert_with_tenant, 1, (const char *const[]){"2"}), "defer 2");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 2);
    ok(imp_pg_tx_commit(pg), "commit");
    imp_pg_result_t *res = NULL;
    ok(imp_pg_exec(pg, "SELECT id, v FROM pg_test_items ORDER BY id", 0, NULL, &res), "select");
    ck_assert_int_eq(imp_pg_result_rows(res), 2);
    ck_assert_str_eq(imp_pg_result_value(res, 0, 1), TENANT_A);
    ck_assert_str_eq(imp_pg_result_value(res, 1, 1), TENANT_B);
    imp_pg_result_free(res);

    /* Sent by a statement, which sees the latest setting; cleared with NULL. */
    ok(imp_pg_tx_begin(pg), "begin");
    ok(imp_pg_set_tenant(pg, TENANT_B), "tenant b");
    ok(imp_pg_exec_deferred(pg, insert_with_tenant, 1, (const char *const[]){"3"}), "defer 3");
    ok(imp_pg_set_tenant(pg, TENANT_A), "tenant a");
    ok(imp_pg_exec_deferred(pg, insert_with_tenant, 1, (const char *const[]){"4"}), "defer 4");
    ok(imp_pg_set_tenant(pg, NULL), "no tenant");
    ok(imp_pg_exec_deferred(pg, insert_with_tenant, 1, (const char *const[]){"5"}), "defer 5");
    ok(imp_pg_set_tenant(pg, TENANT_B), "tenant b");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 3);
    char *v = NULL;
    ok(imp_pg_exec_scalar(pg,
                          "SELECT current_setting('app.tenant_id', true) || '|' || "
                          "(SELECT string_agg(id || '=' || v, ',' ORDER BY id) "
                          "FROM pg_test_items WHERE id >= 3)",
                          0, NULL, &v),
       "statement after");
    ck_assert_str_eq(v, TENANT_B "|3=" TENANT_B ",4=" TENANT_A ",5=");
    free(v);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(committed_int("SELECT count(*) FROM pg_test_items"), 5);
    imp_pg_free(pg);
}
END_TEST

START_TEST(deferred_statements_and_savepoints)
{
    imp_pg_t *pg = open_owner();
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 1);
    trips_start();
    ok(imp_pg_savepoint(pg, "sp"), "savepoint");
    ck_assert_int_eq(trips_stop(), 1);
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    defer_insert(pg, 2);
    ok(imp_pg_savepoint_rollback(pg, "sp"), "rollback to savepoint");
    ck_assert_uint_eq(imp_pg_deferred_count(pg), 0);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 1);
    ck_assert_int_eq(scalar_int(pg, "SELECT sum(id) FROM pg_test_items"), 1);

    /* Sent by RELEASE: it is not run after the failure, so rolling back to the savepoint
     * recovers the transaction. */
    ok(imp_pg_tx_begin(pg), "begin");
    defer_insert(pg, 3);
    ok(imp_pg_savepoint(pg, "sp"), "savepoint");
    defer_insert(pg, 4);
    defer_insert(pg, 1); /* duplicate */
    expect_deferred_error(pg, imp_pg_savepoint_release(pg, "sp"), "23505");
    ok(imp_pg_savepoint_rollback(pg, "sp"), "rollback to savepoint");
    defer_insert(pg, 5);
    ok(imp_pg_tx_commit(pg), "commit");
    ck_assert_int_eq(scalar_int(pg, "SELECT count(*) FROM pg_test_items"), 3);
    ck_assert_int_eq(scalar_int(pg, "SELECT sum(id) FROM pg_test_items"), 9);
    imp_pg_free(pg);
}
END_TEST

static Suite *pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("pg");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exec_params_and_results);
    tcase_add_test(tc, bytea_round_trip);
    tcase_add_test(tc, cached_statements);
    tcase_add_test(tc, script_errors_name_the_line);
    tcase_add_test(tc, tx_commit_and_rollback);
    tcase_add_test(tc, commit_of_aborted_tx_reports_its_class);
    tcase_add_test(tc, savepoints);
    tcase_add_test(tc, set_tenant_is_transaction_local);
    tcase_add_test(tc, classification_by_sqlstate);
    tcase_add_test(tc, batch_of_1000_in_one_round_trip);
    tcase_add_test(tc, batch_failure_stops_and_rolls_back);
    tcase_add_test(tc, batch_with_bad_cached_statement);
    tcase_add_test(tc, batch_with_large_results);
    tcase_add_test(tc, reconnect_after_terminate);
    tcase_add_test(tc, connection_lost_inside_tx);
    tcase_add_test(tc, batch_after_terminate);
    tcase_add_test(tc, begin_and_tenant_ride_with_the_first_statement);
    tcase_add_test(tc, connect_failure_backs_off);
    tcase_add_test(tc, round_trip_counter);
    tcase_add_test(tc, deferred_statements_go_out_with_the_next_statement);
    tcase_add_test(tc, deferred_statements_and_commit_in_one_round_trip);
    tcase_add_test(tc, deferred_error_surfaces_on_the_next_call);
    tcase_add_test(tc, error_deferred_only_for_deferred_statements);
    tcase_add_test(tc, deferred_failure_keeps_its_label);
    tcase_add_test(tc, deferred_outside_a_transaction_and_empty_flush);
    tcase_add_test(tc, rollback_drops_unsent_deferred_statements);
    tcase_add_test(tc, commit_batch);
    tcase_add_test(tc, deferred_statements_keep_their_tenant);
    tcase_add_test(tc, deferred_statements_and_savepoints);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    imp_log_init("pg_test", IMP_LOG_LEVEL_WARN);
    SRunner *sr = srunner_create(pg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
