/* Metrics: exposition format (golden text), concurrency, misuse, and the h2o listener. */
#include "imp/http.h"
#include "imp/metrics.h"

#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

static char *render(imp_metrics_t *m)
{
    size_t len = 0;
    char *text = imp_metrics_render(m, &len);
    ck_assert_uint_eq(len, strlen(text));
    return text;
}

START_TEST(counter_golden)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_counter_t *tg = imp_metrics_counter(m, "imperium_test_sent_total", "Messages sent.",
                                                    IMP_LABELS({"provider", "telegram"}));
    imp_metrics_counter_t *meta = imp_metrics_counter(
        m, "imperium_test_sent_total", "Messages sent.", IMP_LABELS({"provider", "meta"}));
    imp_metrics_counter_t *again = imp_metrics_counter(
        m, "imperium_test_sent_total", "Messages sent.", IMP_LABELS({"provider", "telegram"}));
    ck_assert_ptr_eq(tg, again);
    imp_metrics_inc(tg);
    imp_metrics_add(tg, 2);
    imp_metrics_inc(meta);
    imp_metrics_counter_t *plain =
        imp_metrics_counter(m, "imperium_test_restarts_total", "Restarts.", IMP_NO_LABELS);
    (void)plain;
    char *text = render(m);
    ck_assert_str_eq(text, "# HELP imperium_test_sent_total Messages sent.\n"
                           "# TYPE imperium_test_sent_total counter\n"
                           "imperium_test_sent_total{provider=\"telegram\"} 3\n"
                           "imperium_test_sent_total{provider=\"meta\"} 1\n"
                           "# HELP imperium_test_restarts_total Restarts.\n"
                           "# TYPE imperium_test_restarts_total counter\n"
                           "imperium_test_restarts_total 0\n");
    ck_assert_uint_eq(imp_metrics_counter_value(tg), 3);
    free(text);
    imp_metrics_free(m);
}
END_TEST

START_TEST(gauge_golden)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_gauge_t *g = imp_metrics_gauge(m, "imperium_test_inflight", "In flight.",
                                               IMP_LABELS({"worker", "send"}, {"pool", "a"}));
    imp_metrics_gauge_t *tenth =
        imp_metrics_gauge(m, "imperium_test_ratio", "A ratio.", IMP_LABELS({"k", "tenth"}));
    imp_metrics_gauge_t *inf =
        imp_metrics_gauge(m, "imperium_test_ratio", "A ratio.", IMP_LABELS({"k", "inf"}));
    imp_metrics_gauge_t *neg =
        imp_metrics_gauge(m, "imperium_test_ratio", "A ratio.", IMP_LABELS({"k", "neg"}));
    imp_metrics_set(g, 1.5);
    imp_metrics_gauge_add(g, -0.25);
    imp_metrics_set(tenth, 0.1);
    imp_metrics_set(inf, 1.0 / 0.0);
    imp_metrics_set(neg, -3);
    ck_assert(imp_metrics_gauge_value(g) == 1.25);
    char *text = render(m);
    ck_assert_str_eq(text, "# HELP imperium_test_inflight In flight.\n"
                           "# TYPE imperium_test_inflight gauge\n"
                           "imperium_test_inflight{worker=\"send\",pool=\"a\"} 1.25\n"
                           "# HELP imperium_test_ratio A ratio.\n"
                           "# TYPE imperium_test_ratio gauge\n"
                           "imperium_test_ratio{k=\"tenth\"} 0.1\n"
                           "imperium_test_ratio{k=\"inf\"} +Inf\n"
                           "imperium_test_ratio{k=\"neg\"} -3\n");
    free(text);
    imp_metrics_free(m);
}
END_TEST

START_TEST(histogram_golden)
{
    imp_metrics_t *m = imp_metrics_new();
    const double bounds[] = {0.25, 0.5, 1};
    imp_metrics_histogram_t *h = imp_metrics_histogram(m, "imperium_test_latency_seconds",
                                                       "Latency.", bounds, 3, IMP_NO_LABELS);
    imp_metrics_observe(h, 0.125);
    imp_metrics_observe(h, 0.25); /* le is inclusive */
    imp_metrics_observe(h, 0.5);
    imp_metrics_observe(h, 2);
    imp_metrics_observe(h, 0.0 / 0.0); /* NaN is ignored */
    const double with_inf[] = {0.25, 1.0 / 0.0};
    imp_metrics_histogram_t *l = imp_metrics_histogram(m, "imperium_test_size_bytes", "Size.",
                                                       with_inf, 2, IMP_LABELS({"provider", "x"}));
    imp_metrics_observe(l, 1000);
    char *text = render(m);
    ck_assert_str_eq(text, "# HELP imperium_test_latency_seconds Latency.\n"
                           "# TYPE imperium_test_latency_seconds histogram\n"
                           "imperium_test_latency_seconds_bucket{le=\"0.25\"} 2\n"
                           "imperium_test_latency_seconds_bucket{le=\"0.5\"} 3\n"
                           "imperium_test_latency_seconds_bucket{le=\"1\"} 3\n"
                           "imperium_test_latency_seconds_bucket{le=\"+Inf\"} 4\n"
                           "imperium_test_latency_seconds_sum 2.875\n"
                           "imperium_test_latency_seconds_count 4\n"
                           "# HELP imperium_test_size_bytes Size.\n"
                           "# TYPE imperium_test_size_bytes histogram\n"
                           "imperium_test_size_bytes_bucket{provider=\"x\",le=\"0.25\"} 0\n"
                           "imperium_test_size_bytes_bucket{provider=\"x\",le=\"+Inf\"} 1\n"
                           "imperium_test_size_bytes_sum{provider=\"x\"} 1000\n"
                           "imperium_test_size_bytes_count{provider=\"x\"} 1\n");
    free(text);
    imp_metrics_free(m);
}
END_TEST

START_TEST(latency_buckets)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_histogram_t *h = imp_metrics_histogram(m, "imperium_test_seconds", "Latency.",
                                                       IMP_METRICS_LATENCY_BUCKETS, IMP_NO_LABELS);
    imp_metrics_observe(h, 0.003);
    char *text = render(m);
    ck_assert_ptr_nonnull(strstr(text, "imperium_test_seconds_bucket{le=\"0.0025\"} 0\n"
                                       "imperium_test_seconds_bucket{le=\"0.005\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "imperium_test_seconds_bucket{le=\"10\"} 1\n"
                                       "imperium_test_seconds_bucket{le=\"+Inf\"} 1\n"));
    free(text);
    imp_metrics_free(m);
}
END_TEST

START_TEST(escaping)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_counter_t *c =
        imp_metrics_counter(m, "imperium_test_odd_total", "Back\\slash, \"quotes\"\nand lines.",
                            IMP_LABELS({"v", "a\\b\"c\nd"}));
    imp_metrics_inc(c);
    char *text = render(m);
    ck_assert_str_eq(text, "# HELP imperium_test_odd_total Back\\\\slash, \"quotes\"\\nand lines.\n"
                           "# TYPE imperium_test_odd_total counter\n"
                           "imperium_test_odd_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
    free(text);
    imp_metrics_free(m);
}
END_TEST

static double forty_two(void *ctx)
{
    (void)ctx;
    return 42;
}

START_TEST(sampled)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_counter_fn(m, "imperium_test_seen_total", "Seen.", IMP_NO_LABELS, forty_two, NULL);
    imp_metrics_gauge_fn(m, "imperium_test_lag", "Lag.", IMP_LABELS({"topic", "t"}), forty_two,
                         NULL);
    char *text = render(m);
    ck_assert_str_eq(text, "# HELP imperium_test_seen_total Seen.\n"
                           "# TYPE imperium_test_seen_total counter\n"
                           "imperium_test_seen_total 42\n"
                           "# HELP imperium_test_lag Lag.\n"
                           "# TYPE imperium_test_lag gauge\n"
                           "imperium_test_lag{topic=\"t\"} 42\n");
    free(text);
    imp_metrics_free(m);
}
END_TEST

#define PER_THREAD 1000000

typedef struct {
    imp_metrics_counter_t *c;
    imp_metrics_gauge_t *g;
    imp_metrics_histogram_t *h;
} hot_t;

static void *hammer(void *arg)
{
    hot_t *hot = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        imp_metrics_inc(hot->c);
        if (i % 10 == 0) {
            imp_metrics_gauge_add(hot->g, 1.0);
            imp_metrics_observe(hot->h, (i % 20 == 0) ? 0.5 : 2.0);
        }
    }
    return NULL;
}

START_TEST(concurrent_updates)
{
    imp_metrics_t *m = imp_metrics_new();
    const double bounds[] = {1};
    hot_t hot = {
        .c = imp_metrics_counter(m, "imperium_test_hits_total", "Hits.", IMP_NO_LABELS),
        .g = imp_metrics_gauge(m, "imperium_test_level", "Level.", IMP_NO_LABELS),
        .h =
            imp_metrics_histogram(m, "imperium_test_obs_seconds", "Obs.", bounds, 1, IMP_NO_LABELS),
    };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, &hot);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_uint_eq(imp_metrics_counter_value(hot.c), 2 * PER_THREAD);
    ck_assert(imp_metrics_gauge_value(hot.g) == 2 * PER_THREAD / 10);
    char *text = render(m);
    /* 200000 observations: half 0.5 (le=1), half 2.0; sum 100000*0.5 + 100000*2 */
    ck_assert_ptr_nonnull(strstr(text, "imperium_test_obs_seconds_bucket{le=\"1\"} 100000\n"
                                       "imperium_test_obs_seconds_bucket{le=\"+Inf\"} 200000\n"
                                       "imperium_test_obs_seconds_sum 250000\n"
                                       "imperium_test_obs_seconds_count 200000\n"));
    free(text);
    imp_metrics_free(m);
}
END_TEST

START_TEST(misuse_no_prefix)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_gauge(m, "queue_depth", "Depth.", IMP_NO_LABELS);
}
END_TEST

START_TEST(misuse_counter_suffix)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_counter(m, "imperium_sent", "Sent.", IMP_NO_LABELS);
}
END_TEST

START_TEST(misuse_type_clash)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_gauge(m, "imperium_x_total", "X.", IMP_NO_LABELS);
    imp_metrics_counter(m, "imperium_x_total", "X.", IMP_NO_LABELS);
}
END_TEST

START_TEST(misuse_label_names)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_counter(m, "imperium_x_total", "X.", IMP_LABELS({"a", "1"}));
    imp_metrics_counter(m, "imperium_x_total", "X.", IMP_LABELS({"b", "1"}));
}
END_TEST

START_TEST(misuse_le_label)
{
    imp_metrics_t *m = imp_metrics_new();
    imp_metrics_gauge(m, "imperium_x", "X.", IMP_LABELS({"le", "1"}));
}
END_TEST

START_TEST(misuse_bounds)
{
    imp_metrics_t *m = imp_metrics_new();
    const double bounds[] = {1, 0.5};
    imp_metrics_histogram(m, "imperium_x_seconds", "X.", bounds, 2, IMP_NO_LABELS);
}
END_TEST

/* ---- the listener ---- */

static atomic_bool ready_flag;

static bool readiness(void *ctx, char *reason, size_t cap)
{
    ck_assert_ptr_eq(ctx, &ready_flag);
    if (atomic_load(&ready_flag))
        return true;
    snprintf(reason, cap, "postgres unreachable");
    return false;
}

typedef struct {
    long status;
    char *body;
    char *ctype;
} got_t;

static got_t get(imp_http_client_t *c, int port, const char *method, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    imp_http_response_t *resp = NULL;
    imp_error_t *err =
        imp_http_request(c, &(imp_http_request_t){.method = method, .url = url}, &resp);
    ck_assert_msg(err == NULL, "%s", err ? imp_error_message(err) : "");
    const char *ct = imp_http_response_content_type(resp);
    got_t g = {.status = imp_http_response_status(resp),
               .body = strdup(imp_http_response_body(resp, NULL)),
               .ctype = ct ? strdup(ct) : NULL};
    imp_http_response_free(resp);
    return g;
}

static void got_free(got_t *g)
{
    free(g->body);
    free(g->ctype);
}

START_TEST(server_endpoints)
{
    imp_metrics_counter_t *c = imp_metrics_counter(
        imp_metrics_default(), "imperium_test_served_total", "Served.", IMP_NO_LABELS);
    imp_metrics_add(c, 7);
    imp_error_t *err = NULL;
    imp_metrics_server_t *s =
        imp_metrics_server_start("127.0.0.1", 0, readiness, &ready_flag, &err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(s);
    int port = imp_metrics_server_port(s);
    ck_assert_int_gt(port, 0);
    imp_http_client_t *hc = NULL;
    ck_assert_ptr_null(imp_http_client_new(
        &(imp_http_options_t){.allow_cidrs = "127.0.0.0/8", .timeout_ms = 5000}, &hc));

    got_t g = get(hc, port, "GET", "/livez");
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "ok\n");
    got_free(&g);

    atomic_store(&ready_flag, false);
    g = get(hc, port, "GET", "/readyz");
    ck_assert_int_eq(g.status, 503);
    ck_assert_str_eq(g.body, "not ready: postgres unreachable\n");
    got_free(&g);
    atomic_store(&ready_flag, true);
    g = get(hc, port, "GET", "/readyz");
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.body, "ready\n");
    got_free(&g);

    g = get(hc, port, "GET", "/metrics");
    ck_assert_int_eq(g.status, 200);
    ck_assert_str_eq(g.ctype, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(g.body, "# TYPE imperium_test_served_total counter\n"
                                         "imperium_test_served_total 7\n"));
    got_free(&g);

    g = get(hc, port, "GET", "/nope");
    ck_assert_int_eq(g.status, 404);
    got_free(&g);
    g = get(hc, port, "GET", "/metricsx");
    ck_assert_int_eq(g.status, 404);
    got_free(&g);
    g = get(hc, port, "POST", "/livez");
    ck_assert_int_eq(g.status, 405);
    got_free(&g);

    /* The client keeps its connection open: stop must close it and still be clean. */
    imp_metrics_server_stop(s);
    imp_http_response_t *resp = NULL;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/livez", port);
    err = imp_http_request(hc, &(imp_http_request_t){.url = url}, &resp);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(imp_error_code(err), IMP_HTTP_ERR_NOT_SENT);
    imp_error_free(err);
    imp_http_client_free(hc);
}
END_TEST

START_TEST(server_no_callback_and_restart)
{
    imp_http_client_t *hc = NULL;
    ck_assert_ptr_null(imp_http_client_new(&(imp_http_options_t){.allow_cidrs = "::1/128"}, &hc));
    for (int round = 0; round < 3; round++) {
        imp_error_t *err = NULL;
        imp_metrics_server_t *s = imp_metrics_server_start("::1", 0, NULL, NULL, &err);
        ck_assert_ptr_null(err);
        char url[64];
        snprintf(url, sizeof(url), "http://[::1]:%d/readyz", imp_metrics_server_port(s));
        imp_http_response_t *resp = NULL;
        err = imp_http_request(hc, &(imp_http_request_t){.url = url}, &resp);
        ck_assert_ptr_null(err);
        ck_assert_int_eq(imp_http_response_status(resp), 200);
        imp_http_response_free(resp);
        imp_metrics_server_stop(s);
    }
    imp_http_client_free(hc);
    imp_metrics_server_stop(NULL);
}
END_TEST

START_TEST(server_idle_connection_at_stop)
{
    imp_error_t *err = NULL;
    imp_metrics_server_t *s = imp_metrics_server_start("127.0.0.1", 0, NULL, NULL, &err);
    ck_assert_ptr_null(err);
    /* A client that connects and sends half a request, then waits. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)imp_metrics_server_port(s)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(write(fd, "GET /livez HTTP/1.1\r\n", 21), 21);
    usleep(50 * 1000);
    imp_metrics_server_stop(s);
    char buf[16];
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0); /* the server closed it */
    close(fd);
}
END_TEST

START_TEST(server_port_in_use)
{
    imp_error_t *err = NULL;
    imp_metrics_server_t *a = imp_metrics_server_start("127.0.0.1", 0, NULL, NULL, &err);
    ck_assert_ptr_null(err);
    imp_metrics_server_t *b =
        imp_metrics_server_start("127.0.0.1", imp_metrics_server_port(a), NULL, NULL, &err);
    ck_assert_ptr_null(b);
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_FATAL);
    ck_assert_str_eq(imp_error_code(err), "metrics_listen");
    imp_error_free(err);
    imp_metrics_server_stop(a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, counter_golden);
    tcase_add_test(tc, gauge_golden);
    tcase_add_test(tc, histogram_golden);
    tcase_add_test(tc, latency_buckets);
    tcase_add_test(tc, escaping);
    tcase_add_test(tc, sampled);
    tcase_add_test(tc, concurrent_updates);
    suite_add_tcase(s, tc);
    TCase *bad = tcase_create("misuse");
    tcase_add_test_raise_signal(bad, misuse_no_prefix, SIGABRT);
    tcase_add_test_raise_signal(bad, misuse_counter_suffix, SIGABRT);
    tcase_add_test_raise_signal(bad, misuse_type_clash, SIGABRT);
    tcase_add_test_raise_signal(bad, misuse_label_names, SIGABRT);
    tcase_add_test_raise_signal(bad, misuse_le_label, SIGABRT);
    tcase_add_test_raise_signal(bad, misuse_bounds, SIGABRT);
    suite_add_tcase(s, bad);
    TCase *srv = tcase_create("server");
    tcase_set_timeout(srv, 30);
    tcase_add_test(srv, server_endpoints);
    tcase_add_test(srv, server_no_callback_and_restart);
    tcase_add_test(srv, server_idle_connection_at_stop);
    tcase_add_test(srv, server_port_in_use);
    suite_add_tcase(s, srv);
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
