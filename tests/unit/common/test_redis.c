/* Redis client without a server: URL parsing, and the degrade path (refused, connect
 * timeout, command timeout). Against a real Redis: tests/integration/it_redis.sh. */
#include "imp/log.h"
#include "imp/metrics.h"
#include "imp/redis.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(url_valid)
{
    const struct {
        const char *url, *host, *user, *password;
        int port, db;
    } cases[] = {
        {"redis://127.0.0.1:6380/2", "127.0.0.1", NULL, NULL, 6380, 2},
        {"redis://localhost", "localhost", NULL, NULL, 6379, 0},
        {"redis://cache.internal/", "cache.internal", NULL, NULL, 6379, 0},
        {"redis://:p%40ss@host:1/0", "host", NULL, "p@ss", 1, 0},
        {"redis://app:s3cret@[::1]:7000/15", "::1", "app", "s3cret", 7000, 15},
        {"REDIS://h/3", "h", NULL, NULL, 6379, 3},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        imp_redis_url_t u;
        imp_error_t *err = imp_redis_url_parse(cases[i].url, &u);
        ck_assert_msg(err == NULL, "%s: %s", cases[i].url, err ? imp_error_message(err) : "");
        ck_assert_str_eq(u.host, cases[i].host);
        ck_assert_int_eq(u.port, cases[i].port);
        ck_assert_int_eq(u.db, cases[i].db);
        if (cases[i].user)
            ck_assert_str_eq(u.user, cases[i].user);
        else
            ck_assert_ptr_null(u.user);
        if (cases[i].password)
            ck_assert_str_eq(u.password, cases[i].password);
        else
            ck_assert_ptr_null(u.password);
        imp_redis_url_dispose(&u);
    }
}
END_TEST

START_TEST(url_invalid)
{
    const char *bad[] = {"",
                         "http://host:6379/0",
                         "rediss://host",
                         "redis://",
                         "redis://host:abc",
                         "redis://host:0",
                         "redis://host:70000",
                         "redis://host/x",
                         "redis://host/1/2",
                         "redis://host/-1",
                         "redis://host/0?timeout=1",
                         "redis://host/0#frag",
                         "unix:///tmp/redis.sock",
                         "redis://u:supersecret@host/nope",
                         NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        imp_redis_url_t u;
        imp_error_t *err = imp_redis_url_parse(bad[i], &u);
        ck_assert_msg(err != NULL, "accepted %s", bad[i]);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
        ck_assert_str_eq(imp_error_code(err), "redis_url");
        ck_assert_ptr_null(strstr(imp_error_message(err), "supersecret"));
        imp_error_free(err);
    }
    imp_redis_t *r = NULL;
    imp_error_t *err = imp_redis_new(&(imp_redis_options_t){.url = "redis://h:x"}, &r);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(r);
    imp_error_free(err);
    err = imp_redis_new(NULL, &r);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
}
END_TEST

/* A loopback port with nothing listening. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

/* A listener that never accepts; with backlog 0 and the queue filled, SYNs are dropped. */
static int silent_listener(int backlog, int fill, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    *port = ntohs(sin.sin_port);
    for (int i = 0; i < fill; i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(c, (struct sockaddr *)&sin, sizeof(sin)); /* leaked on purpose until exit */
    }
    usleep(50 * 1000);
    return fd;
}

static imp_redis_t *client_on(int port, long connect_ms, long command_ms, long retry_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", port);
    imp_redis_t *r = NULL;
    imp_error_t *err = imp_redis_new(&(imp_redis_options_t){.url = url,
                                                            .connect_timeout_ms = connect_ms,
                                                            .command_timeout_ms = command_ms,
                                                            .retry_interval_ms = retry_ms},
                                     &r);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(r);
    return r;
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
    return n;
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

START_TEST(down_fallbacks)
{
    FILE *log = tmpfile();
    imp_log_set_stream(log);
    imp_redis_t *r = client_on(closed_port(), 200, 200, 60000);
    ck_assert(!imp_redis_connected(r));
    ck_assert_uint_eq(imp_redis_failures(r), 0); /* starting degraded is not a failure */

    bool allowed = false, acquired = false;
    long long value = 99;
    char *s = (char *)"x";
    imp_breaker_state_t st = IMP_BREAKER_OPEN;
    ck_assert(!imp_redis_rate_allow(r, "rl:t1", 1, 1000, &allowed));
    ck_assert(allowed);
    ck_assert(!imp_redis_incr(r, "n", 1, 1000, &value));
    ck_assert_int_eq(value, 0);
    ck_assert(!imp_redis_get(r, "k", &s));
    ck_assert_ptr_null(s);
    ck_assert(!imp_redis_set(r, "k", "v", 1000));
    ck_assert(!imp_redis_set_nx(r, "claim", "1", 1000, true, &acquired));
    ck_assert(acquired);
    ck_assert(!imp_redis_set_nx(r, "claim", "1", 1000, false, &acquired));
    ck_assert(!acquired);
    ck_assert(!imp_redis_del(r, "k"));
    ck_assert(!imp_redis_breaker_get(r, "br", &st));
    ck_assert_int_eq(st, IMP_BREAKER_CLOSED);
    ck_assert(!imp_redis_breaker_set(r, "br", IMP_BREAKER_OPEN, 1000));
    redisReply *reply = (redisReply *)1;
    imp_error_t *err = imp_redis_command(r, &reply, "PING");
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_INFRA);
    ck_assert_str_eq(imp_error_code(err), "redis_unavailable");
    imp_error_free(err);
    const char *argv[] = {"PING"};
    err = imp_redis_command_argv(r, &reply, 1, argv, NULL);
    ck_assert_str_eq(imp_error_code(err), "redis_unavailable");
    imp_error_free(err);
    ck_assert_uint_eq(imp_redis_failures(r), 11);

    for (int i = 0; i < 500; i++) {
        ck_assert(!imp_redis_rate_allow(r, "rl:t1", 1, 1000, &allowed));
        ck_assert(allowed);
    }
    ck_assert_uint_eq(imp_redis_failures(r), 511);
    ck_assert_uint_eq(metric_failures(), 511);
    /* One warning for the outage, no line per call. */
    ck_assert_uint_eq(count_lines(log, "redis unavailable, degrading"), 1);
    ck_assert_uint_eq(count_lines(log, "\"level\":\"warn\""), 1);
    imp_redis_free(r);
    imp_log_set_stream(NULL);
    fclose(log);
}
END_TEST

START_TEST(fail_fast_between_attempts)
{
    int port;
    int lfd = silent_listener(0, 3, &port);
    double t0 = now_s();
    imp_redis_t *r = client_on(port, 300, 300, 5000);
    double connect_took = now_s() - t0;
    ck_assert_msg(connect_took >= 0.25 && connect_took < 2.0, "connect took %.3f", connect_took);
    ck_assert(!imp_redis_connected(r));
    t0 = now_s();
    for (int i = 0; i < 50; i++) {
        bool allowed = false;
        ck_assert(!imp_redis_rate_allow(r, "k", 1, 1000, &allowed));
        ck_assert(allowed);
    }
    double calls_took = now_s() - t0;
    ck_assert_msg(calls_took < 0.2, "50 degraded calls took %.3f s", calls_took);
    ck_assert_uint_eq(imp_redis_failures(r), 50);
    imp_redis_free(r);
    close(lfd);
}
END_TEST

START_TEST(command_timeout)
{
    int port;
    int lfd = silent_listener(16, 0, &port); /* connects, never answers */
    imp_redis_t *r = client_on(port, 300, 200, 5000);
    ck_assert(imp_redis_connected(r));
    double t0 = now_s();
    long long v = 5;
    ck_assert(!imp_redis_incr(r, "k", 1, 0, &v));
    double took = now_s() - t0;
    ck_assert_int_eq(v, 0);
    ck_assert_msg(took >= 0.15 && took < 1.5, "took %.3f", took);
    ck_assert(!imp_redis_connected(r)); /* the connection was dropped */
    /* The next call reconnects at once (and times out again). */
    ck_assert(!imp_redis_incr(r, "k", 1, 0, &v));
    ck_assert_uint_eq(imp_redis_failures(r), 2);
    imp_redis_free(r);
    close(lfd);
}
END_TEST

START_TEST(breaker_names)
{
    ck_assert_str_eq(imp_breaker_state_name(IMP_BREAKER_CLOSED), "closed");
    ck_assert_str_eq(imp_breaker_state_name(IMP_BREAKER_OPEN), "open");
    ck_assert_str_eq(imp_breaker_state_name(IMP_BREAKER_HALF_OPEN), "half_open");
    ck_assert_str_eq(imp_breaker_state_name((imp_breaker_state_t)7), "unknown");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("offline");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, url_valid);
    tcase_add_test(tc, url_invalid);
    tcase_add_test(tc, down_fallbacks);
    tcase_add_test(tc, fail_fast_between_attempts);
    tcase_add_test(tc, command_timeout);
    tcase_add_test(tc, breaker_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
