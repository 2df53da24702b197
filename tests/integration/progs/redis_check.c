/* The redis module against real Redis servers (run by tests/integration/it_redis.sh):
 *   IMP_REDIS_URL               the harness's Redis: commands, helpers, exact counts
 *   IMP_TEST_REDIS_PRIVATE_URL  a password-protected Redis this test may stop and kill
 *   IMP_TEST_REDIS_CTL          "bash …/redis-private.sh": start | stop | kill that Redis */
#include "imp/log.h"
#include "imp/metrics.h"
#include "imp/redis.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char prefix[64]; /* keys of this run */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    ck_assert_msg(v != NULL && *v != '\0', "%s is not set (run under tests/harness.sh)", name);
    return v;
}

static char *key(const char *name)
{
    static _Thread_local char buf[8][128];
    static _Thread_local int next;
    char *k = buf[next++ % 8];
    snprintf(k, sizeof(buf[0]), "%s:%s", prefix, name);
    return k;
}

static imp_redis_t *open_url(const char *url, long command_ms, long retry_ms)
{
    imp_redis_t *r = NULL;
    imp_error_t *err = imp_redis_new(&(imp_redis_options_t){.url = url,
                                                            .connect_timeout_ms = 500,
                                                            .command_timeout_ms = command_ms,
                                                            .retry_interval_ms = retry_ms},
                                     &r);
    ck_assert_ptr_null(err);
    return r;
}

static imp_redis_t *open_main(void)
{
    imp_redis_t *r = open_url(env("IMP_REDIS_URL"), 1000, 200);
    ck_assert(imp_redis_connected(r));
    return r;
}

static long long pttl(imp_redis_t *r, const char *k)
{
    redisReply *reply = NULL;
    imp_error_t *err = imp_redis_command(r, &reply, "PTTL %s", k);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(reply->type, REDIS_REPLY_INTEGER);
    long long v = reply->integer;
    freeReplyObject(reply);
    return v;
}

static void ctl(const char *what)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s", env("IMP_TEST_REDIS_CTL"), what);
    ck_assert_msg(system(cmd) == 0, "%s failed", cmd);
}

static void sleep_ms(long ms)
{
    usleep((useconds_t)ms * 1000);
}

/* ---- against the harness's Redis ---- */

START_TEST(raw_commands)
{
    imp_redis_t *r = open_main();
    redisReply *reply = NULL;
    const char bin[] = {'a', '\0', 'b'};
    ck_assert_ptr_null(imp_redis_command(r, &reply, "SET %s %b", key("bin"), bin, sizeof(bin)));
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    const char *argv[] = {"GET", key("bin")};
    ck_assert_ptr_null(imp_redis_command_argv(r, &reply, 2, argv, NULL));
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(reply->len, 3);
    ck_assert_mem_eq(reply->str, bin, 3);
    freeReplyObject(reply);

    /* An error reply is poison and is not an outage. */
    ck_assert_ptr_null(imp_redis_command(r, &reply, "LPUSH %s x", key("list")));
    freeReplyObject(reply);
    imp_error_t *err = imp_redis_command(r, &reply, "INCR %s", key("list"));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_str_eq(imp_error_code(err), "redis_reply");
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "WRONGTYPE"));
    imp_error_free(err);
    ck_assert_uint_eq(imp_redis_failures(r), 0);
    /* ... but a helper hitting it falls back and counts. */
    long long v = 7;
    ck_assert(!imp_redis_incr(r, key("list"), 1, 0, &v));
    ck_assert_int_eq(v, 0);
    ck_assert_uint_eq(imp_redis_failures(r), 1);
    ck_assert(imp_redis_connected(r));
    imp_redis_free(r);
}
END_TEST

START_TEST(database_selection)
{
    char url[256];
    snprintf(url, sizeof(url), "%s", env("IMP_REDIS_URL"));
    char *slash = strrchr(url, '/');
    ck_assert_ptr_nonnull(slash);
    strcpy(slash, "/3");
    imp_redis_t *db3 = open_url(url, 1000, 200);
    imp_redis_t *db0 = open_main();
    ck_assert(imp_redis_set(db3, key("where"), "db3", 0));
    char *v = NULL;
    ck_assert(imp_redis_get(db3, key("where"), &v));
    ck_assert_str_eq(v, "db3");
    free(v);
    ck_assert(imp_redis_get(db0, key("where"), &v));
    ck_assert_ptr_null(v);
    imp_redis_free(db3);
    imp_redis_free(db0);
}
END_TEST

START_TEST(rate_limit_window)
{
    imp_redis_t *r = open_main();
    const char *k = key("rl:window");
    int allowed_n = 0;
    for (int i = 0; i < 10; i++) {
        bool allowed = false;
        ck_assert(imp_redis_rate_allow(r, k, 3, 400, &allowed));
        allowed_n += allowed;
    }
    ck_assert_int_eq(allowed_n, 3);
    long long ttl = pttl(r, k);
    ck_assert_msg(ttl > 0 && ttl <= 400, "pttl %lld", ttl);
    sleep_ms(500);
    allowed_n = 0;
    for (int i = 0; i < 10; i++) {
        bool allowed = false;
        ck_assert(imp_redis_rate_allow(r, k, 3, 400, &allowed));
        allowed_n += allowed;
    }
    ck_assert_int_eq(allowed_n, 3);
    ck_assert_uint_eq(imp_redis_failures(r), 0);
    imp_redis_free(r);
}
END_TEST

typedef struct {
    imp_redis_t *shared; /* NULL: each thread opens its own */
    int allowed;
} rl_thread_t;

static void *rate_hammer(void *arg)
{
    rl_thread_t *t = arg;
    imp_redis_t *r = t->shared ? t->shared : open_main();
    for (int i = 0; i < 100; i++) {
        bool allowed = false;
        ck_assert(imp_redis_rate_allow(r, key("rl:shared"), 137, 60000, &allowed));
        t->allowed += allowed;
    }
    if (t->shared == NULL)
        imp_redis_free(r);
    return NULL;
}

START_TEST(rate_limit_concurrent_exact)
{
    /* 4 threads sharing one client + 2 with their own: 600 calls, exactly 137 allowed. */
    imp_redis_t *shared = open_main();
    rl_thread_t ts[6] = {{shared, 0}, {shared, 0}, {shared, 0}, {shared, 0}, {NULL, 0}, {NULL, 0}};
    pthread_t th[6];
    for (int i = 0; i < 6; i++)
        pthread_create(&th[i], NULL, rate_hammer, &ts[i]);
    int total = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        total += ts[i].allowed;
    }
    ck_assert_int_eq(total, 137);
    char *v = NULL;
    ck_assert(imp_redis_get(shared, key("rl:shared"), &v));
    ck_assert_str_eq(v, "600");
    free(v);
    imp_redis_free(shared);
}
END_TEST

START_TEST(incr_with_expiry)
{
    imp_redis_t *r = open_main();
    long long v = 0;
    for (long long want = 1; want <= 3; want++) {
        ck_assert(imp_redis_incr(r, key("n"), 1, 5000, &v));
        ck_assert_int_eq(v, want);
    }
    ck_assert(imp_redis_incr(r, key("n"), 5, 5000, &v));
    ck_assert_int_eq(v, 8);
    long long ttl = pttl(r, key("n"));
    ck_assert_msg(ttl > 4000 && ttl <= 5000, "pttl %lld", ttl);
    ck_assert(imp_redis_incr(r, key("forever"), 2, 0, &v));
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(pttl(r, key("forever")), -1);
    /* A key that exists without expiry gets one. */
    ck_assert(imp_redis_incr(r, key("forever"), 1, 3000, &v));
    ck_assert_int_eq(v, 3);
    ck_assert(pttl(r, key("forever")) > 0);
    imp_redis_free(r);
}
END_TEST

START_TEST(get_set_ttl)
{
    imp_redis_t *r = open_main();
    char *v = (char *)"untouched";
    ck_assert(imp_redis_get(r, key("missing"), &v));
    ck_assert_ptr_null(v);
    ck_assert(imp_redis_set(r, key("short"), "value with spaces", 200));
    ck_assert(imp_redis_get(r, key("short"), &v));
    ck_assert_str_eq(v, "value with spaces");
    free(v);
    sleep_ms(300);
    ck_assert(imp_redis_get(r, key("short"), &v));
    ck_assert_ptr_null(v);
    ck_assert(imp_redis_set(r, key("long"), "x", 0));
    ck_assert_int_eq(pttl(r, key("long")), -1);
    ck_assert(imp_redis_del(r, key("long")));
    ck_assert(imp_redis_get(r, key("long"), &v));
    ck_assert_ptr_null(v);

    bool acquired = false;
    ck_assert(imp_redis_set_nx(r, key("claim"), "a", 200, false, &acquired));
    ck_assert(acquired);
    ck_assert(imp_redis_set_nx(r, key("claim"), "b", 200, true, &acquired));
    ck_assert(!acquired);
    sleep_ms(300);
    ck_assert(imp_redis_set_nx(r, key("claim"), "c", 200, false, &acquired));
    ck_assert(acquired);
    ck_assert_uint_eq(imp_redis_failures(r), 0);
    imp_redis_free(r);
}
END_TEST

START_TEST(breaker_state)
{
    imp_redis_t *r = open_main();
    const char *k = key("breaker:t1:telegram");
    imp_breaker_state_t st = IMP_BREAKER_OPEN;
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    ck_assert(imp_redis_breaker_set(r, k, IMP_BREAKER_OPEN, 300));
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_OPEN);
    ck_assert(imp_redis_breaker_set(r, k, IMP_BREAKER_HALF_OPEN, 0));
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_HALF_OPEN);
    ck_assert(imp_redis_breaker_set(r, k, IMP_BREAKER_CLOSED, 0));
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    char *v = (char *)"x";
    ck_assert(imp_redis_get(r, k, &v));
    ck_assert_ptr_null(v); /* CLOSED is the absence of the key */
    /* OPEN for a cool-down closes by itself. */
    ck_assert(imp_redis_breaker_set(r, k, IMP_BREAKER_OPEN, 200));
    sleep_ms(300);
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    /* A value we did not write reads as CLOSED. */
    ck_assert(imp_redis_set(r, k, "weird", 0));
    st = IMP_BREAKER_OPEN;
    ck_assert(imp_redis_breaker_get(r, k, &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    imp_redis_free(r);
}
END_TEST

/* ---- against the private Redis: auth, timeouts, outages ---- */

static FILE *capture_log(void)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    imp_log_set_stream(f);
    return f;
}

static size_t count_lines(FILE *f, const char *needle)
{
    char line[4096];
    size_t n = 0;
    fflush(f);
    rewind(f);
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fseek(f, 0, SEEK_END);
    return n;
}

START_TEST(password)
{
    const char *url = env("IMP_TEST_REDIS_PRIVATE_URL");
    imp_redis_t *ok = open_url(url, 500, 200);
    ck_assert(imp_redis_connected(ok));
    ck_assert(imp_redis_set(ok, key("auth"), "1", 10000));
    imp_redis_free(ok);

    /* Same server, wrong password: degraded, not failing. */
    char wrong[256];
    const char *at = strchr(url, '@');
    ck_assert_ptr_nonnull(at);
    snprintf(wrong, sizeof(wrong), "redis://:not-the-password%s", at);
    FILE *log = capture_log();
    imp_redis_t *bad = open_url(wrong, 500, 200);
    ck_assert(!imp_redis_connected(bad));
    char *v = NULL;
    ck_assert(!imp_redis_get(bad, key("auth"), &v));
    ck_assert_ptr_null(v);
    ck_assert_uint_eq(imp_redis_failures(bad), 1);
    ck_assert_uint_eq(count_lines(log, "redis handshake failed"), 1);
    ck_assert_uint_eq(count_lines(log, "not-the-password"), 0);
    imp_redis_free(bad);
    imp_log_set_stream(NULL);
    fclose(log);
}
END_TEST

START_TEST(command_timeout_on_pause)
{
    const char *url = env("IMP_TEST_REDIS_PRIVATE_URL");
    imp_redis_t *admin = open_url(url, 2000, 200);
    imp_redis_t *r = open_url(url, 200, 100);
    long long v = 0;
    ck_assert(imp_redis_incr(r, key("paused"), 1, 0, &v));
    redisReply *reply = NULL;
    ck_assert_ptr_null(imp_redis_command(admin, &reply, "CLIENT PAUSE 800 ALL"));
    freeReplyObject(reply);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert(!imp_redis_incr(r, key("paused"), 1, 0, &v));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(took >= 0.15 && took < 0.6, "took %.3f", took);
    ck_assert_int_eq(v, 0);
    sleep_ms(1000);
    /* The paused INCR may still have run once Redis resumed (sent, reply lost): 2 or 3. */
    ck_assert(imp_redis_incr(r, key("paused"), 1, 0, &v));
    ck_assert_msg(v == 2 || v == 3, "value %lld", v);
    imp_redis_free(r);
    imp_redis_free(admin);
}
END_TEST

/* Every helper once against a Redis that is down; all must fall back. Returns calls made. */
static int degraded_round(imp_redis_t *r)
{
    bool allowed = false, acquired = false;
    long long n = 5;
    char *v = (char *)"x";
    imp_breaker_state_t st = IMP_BREAKER_OPEN;
    ck_assert(!imp_redis_rate_allow(r, key("rl:o"), 1, 1000, &allowed));
    ck_assert(allowed);
    ck_assert(!imp_redis_incr(r, key("n:o"), 1, 1000, &n));
    ck_assert_int_eq(n, 0);
    ck_assert(!imp_redis_get(r, key("k:o"), &v));
    ck_assert_ptr_null(v);
    ck_assert(!imp_redis_set(r, key("k:o"), "v", 0));
    ck_assert(!imp_redis_set_nx(r, key("c:o"), "v", 1000, true, &acquired));
    ck_assert(acquired);
    ck_assert(!imp_redis_breaker_get(r, key("b:o"), &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    return 6;
}

/* Call until Redis answers again; returns the calls that still fell back. */
static int wait_recovered(imp_redis_t *r, long timeout_ms)
{
    int fell_back = 0;
    for (long waited = 0; waited < timeout_ms; waited += 50) {
        bool allowed;
        if (imp_redis_rate_allow(r, key("rl:recover"), 1000, 60000, &allowed))
            return fell_back;
        fell_back++;
        sleep_ms(50);
    }
    ck_abort_msg("redis did not come back within %ld ms", timeout_ms);
    return -1;
}

static uint64_t metric_failures(void)
{
    char *text = imp_metrics_render(imp_metrics_default(), NULL);
    const char *at = strstr(text, "\nimperium_redis_failures_total ");
    ck_assert_ptr_nonnull(at);
    uint64_t v = strtoull(at + strlen("\nimperium_redis_failures_total "), NULL, 10);
    free(text);
    return v;
}

static void outage(const char *how)
{
    FILE *log = capture_log();
    imp_redis_t *r = open_url(env("IMP_TEST_REDIS_PRIVATE_URL"), 300, 100);
    bool allowed = false;
    int allowed_n = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert(imp_redis_rate_allow(r, key(how), 2, 60000, &allowed));
        allowed_n += allowed;
    }
    ck_assert_int_eq(allowed_n, 2);
    ck_assert_uint_eq(imp_redis_failures(r), 0);

    ctl(how); /* "stop" (SHUTDOWN NOSAVE) or "kill" (SIGKILL) */
    int calls = 0;
    for (int i = 0; i < 100; i++)
        calls += degraded_round(r);
    ck_assert_int_eq(calls, 600);
    ck_assert_uint_eq(imp_redis_failures(r), 600);
    ck_assert(!imp_redis_connected(r));
    ck_assert_uint_eq(count_lines(log, "redis unavailable, degrading"), 1);
    ck_assert_uint_eq(count_lines(log, "\"level\":\"warn\""), 1);

    ctl("start");
    int more = wait_recovered(r, 5000);
    ck_assert_uint_eq(imp_redis_failures(r), 600 + (uint64_t)more);
    ck_assert_uint_eq(metric_failures(), 600 + (uint64_t)more);
    ck_assert(imp_redis_connected(r));
    ck_assert_uint_eq(count_lines(log, "redis available again"), 1);
    /* Back to normal: the data went away with the restart, the limiter counts afresh. */
    allowed_n = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert(imp_redis_rate_allow(r, key(how), 2, 60000, &allowed));
        allowed_n += allowed;
    }
    ck_assert_int_eq(allowed_n, 2);
    ck_assert_uint_eq(imp_redis_failures(r), 600 + (uint64_t)more);
    imp_redis_free(r);
    imp_log_set_stream(NULL);
    fclose(log);
}

START_TEST(outage_shutdown)
{
    outage("stop");
}
END_TEST

START_TEST(outage_kill)
{
    outage("kill");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis (live)");
    TCase *live = tcase_create("live");
    tcase_set_timeout(live, 60);
    tcase_add_test(live, raw_commands);
    tcase_add_test(live, database_selection);
    tcase_add_test(live, rate_limit_window);
    tcase_add_test(live, rate_limit_concurrent_exact);
    tcase_add_test(live, incr_with_expiry);
    tcase_add_test(live, get_set_ttl);
    tcase_add_test(live, breaker_state);
    suite_add_tcase(s, live);
    TCase *priv = tcase_create("private");
    tcase_set_timeout(priv, 60);
    tcase_add_test(priv, password);
    tcase_add_test(priv, command_timeout_on_pause);
    tcase_add_test(priv, outage_shutdown);
    tcase_add_test(priv, outage_kill);
    suite_add_tcase(s, priv);
    return s;
}

int main(void)
{
    snprintf(prefix, sizeof(prefix), "it_redis:%d:%ld", (int)getpid(), (long)time(NULL));
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
