/* HTTP client: responses, outcomes, limits, the SSRF guard and its CIDR parser. All traffic
 * stays on loopback: private ranges are checked through the classifier only. */
#include "http.c" /* the module itself: its static guard callbacks are tested directly */

#include "fake_http.c"

#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static fake_http_t *fake;
static imp_http_client_t *client; /* allows loopback */

static void setup(void)
{
    fake = fake_http_start();
    ck_assert_ptr_null(imp_http_client_new(&(imp_http_options_t){.allow_cidrs = "127.0.0.0/8, ::1",
                                                                 .timeout_ms = 5000,
                                                                 .max_body = 4096},
                                           &client));
}

static void teardown(void)
{
    imp_http_client_free(client);
    fake_http_stop(fake);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Perform and expect a response. */
static imp_http_response_t *must(imp_http_client_t *c, const imp_http_request_t *req)
{
    imp_http_response_t *resp = NULL;
    imp_error_t *err = imp_http_request(c, req, &resp);
    ck_assert_msg(err == NULL, "unexpected error: %s", err ? imp_error_message(err) : "");
    ck_assert_ptr_nonnull(resp);
    return resp;
}

/* Perform and expect an error with this code; returns it (caller frees). */
static imp_error_t *must_fail(imp_http_client_t *c, const imp_http_request_t *req, const char *code)
{
    imp_http_response_t *resp = NULL;
    imp_error_t *err = imp_http_request(c, req, &resp);
    ck_assert_msg(err != NULL, "expected %s, got status %ld", code,
                  resp ? imp_http_response_status(resp) : 0L);
    ck_assert_ptr_null(resp);
    ck_assert_msg(strcmp(imp_error_code(err), code) == 0, "%s: expected %s, got %s: %s",
                  req->url ? req->url : "(null)", code, imp_error_code(err),
                  imp_error_message(err));
    return err;
}

START_TEST(post_status_headers_body)
{
    fake_http_push(
        fake, (fake_http_reply_t){.status = 201,
                                  .headers = "Content-Type: application/json\r\nRetry-After: 7\r\n"
                                             "X-Custom:   spaced value  \r\n",
                                  .body = "{\"ok\":true}"});
    char *url = fake_http_url(fake, "/bot123/sendMessage?x=1");
    const char *headers[] = {"Content-Type: application/json", "X-Api-Key: k1", NULL};
    const char *body = "{\"text\":\"hi\"}";
    imp_http_response_t *resp = must(client, &(imp_http_request_t){.method = "POST",
                                                                   .url = url,
                                                                   .headers = headers,
                                                                   .body = body,
                                                                   .body_len = strlen(body)});
    ck_assert_int_eq(imp_http_response_status(resp), 201);
    size_t len = 0;
    ck_assert_str_eq(imp_http_response_body(resp, &len), "{\"ok\":true}");
    ck_assert_uint_eq(len, 11);
    ck_assert(!imp_http_response_truncated(resp));
    ck_assert_str_eq(imp_http_response_content_type(resp), "application/json");
    ck_assert_str_eq(imp_http_response_header(resp, "x-custom"), "spaced value");
    ck_assert_int_eq(imp_http_response_retry_after_s(resp), 7);
    ck_assert_ptr_null(imp_http_response_header(resp, "X-Absent"));
    ck_assert_ptr_null(imp_http_response_error(resp));
    imp_http_response_free(resp);

    ck_assert_uint_eq(fake_http_count(fake), 1);
    const fake_http_request_t *r = fake_http_request(fake, 0);
    ck_assert_str_eq(r->method, "POST");
    ck_assert_str_eq(r->path, "/bot123/sendMessage?x=1");
    ck_assert_str_eq(r->body, body);
    ck_assert_str_eq(fake_http_header(r, "content-type"), "application/json");
    ck_assert_str_eq(fake_http_header(r, "x-api-key"), "k1");
    ck_assert_ptr_null(fake_http_header(r, "expect"));
    ck_assert_ptr_null(fake_http_header(r, "traceparent"));
    free(url);
}
END_TEST

START_TEST(methods)
{
    char *url = fake_http_url(fake, "/m");
    imp_http_response_free(must(client, &(imp_http_request_t){.url = url}));
    imp_http_response_free(must(client, &(imp_http_request_t){.method = "DELETE", .url = url}));
    imp_http_response_free(must(
        client, &(imp_http_request_t){.method = "PUT", .url = url, .body = "x", .body_len = 1}));
    imp_http_response_free(must(client, &(imp_http_request_t){.method = "HEAD", .url = url}));
    imp_http_response_free(must(client, &(imp_http_request_t){.method = "POST", .url = url}));
    ck_assert_uint_eq(fake_http_count(fake), 5);
    const char *want[] = {"GET", "DELETE", "PUT", "HEAD", "POST"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_str_eq(fake_http_request(fake, i)->method, want[i]);
    ck_assert_str_eq(fake_http_request(fake, 2)->body, "x");
    ck_assert_str_eq(fake_http_header(fake_http_request(fake, 4), "content-length"), "0");
    /* One client, one kept-alive connection. */
    ck_assert_uint_eq(fake_http_connections(fake), 1);
    free(url);
}
END_TEST

START_TEST(traceparent_propagated)
{
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char *url = fake_http_url(fake, "/t");
    imp_http_response_free(must(client, &(imp_http_request_t){.url = url, .traceparent = tp}));
    ck_assert_str_eq(fake_http_header(fake_http_request(fake, 0), "traceparent"), tp);
    free(url);
}
END_TEST

START_TEST(timeout_after_send_is_ambiguous)
{
    fake_http_push(fake, (fake_http_reply_t){.delay_ms = 3000, .body = "late"});
    char *url = fake_http_url(fake, "/slow");
    double t0 = now_s();
    imp_error_t *err =
        must_fail(client,
                  &(imp_http_request_t){
                      .method = "POST", .url = url, .body = "b", .body_len = 1, .timeout_ms = 300},
                  IMP_HTTP_ERR_AMBIGUOUS);
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.25 && took < 2.0, "took %.3f s", took);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_RETRIABLE);
    ck_assert_int_eq(imp_http_outcome(err), IMP_HTTP_AMBIGUOUS);
    ck_assert_uint_eq(fake_http_count(fake), 1); /* it did arrive */
    imp_error_free(err);
    free(url);
}
END_TEST

START_TEST(close_without_reply_is_ambiguous)
{
    fake_http_push(fake, (fake_http_reply_t){.close_without_reply = true});
    char *url = fake_http_url(fake, "/drop");
    imp_error_t *err = must_fail(client, &(imp_http_request_t){.url = url}, IMP_HTTP_ERR_AMBIGUOUS);
    ck_assert_int_eq(imp_http_outcome(err), IMP_HTTP_AMBIGUOUS);
    ck_assert_uint_eq(fake_http_count(fake), 1);
    imp_error_free(err);
    free(url);
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

START_TEST(refused_is_not_sent)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", closed_port());
    imp_error_t *err = must_fail(client, &(imp_http_request_t){.url = url}, IMP_HTTP_ERR_NOT_SENT);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_RETRIABLE);
    ck_assert_int_eq(imp_http_outcome(err), IMP_HTTP_NOT_SENT);
    imp_error_free(err);
}
END_TEST

START_TEST(connect_timeout_is_not_sent)
{
    /* A listener with a full accept queue drops SYNs: connecting hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    int fillers[3];
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sin, sizeof(sin));
    }
    usleep(100 * 1000);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sin.sin_port));
    double t0 = now_s();
    imp_error_t *err =
        must_fail(client, &(imp_http_request_t){.url = url, .connect_timeout_ms = 300},
                  IMP_HTTP_ERR_NOT_SENT);
    double took = now_s() - t0;
    ck_assert_msg(took >= 0.25 && took < 2.0, "took %.3f s", took);
    imp_error_free(err);
    for (int i = 0; i < 3; i++)
        close(fillers[i]);
    close(lfd);
}
END_TEST

START_TEST(redirect_not_followed)
{
    char *target = fake_http_url(fake, "/elsewhere");
    char headers[128];
    snprintf(headers, sizeof(headers), "Location: %s\r\n", target);
    fake_http_push(fake, (fake_http_reply_t){.status = 302, .headers = headers});
    char *url = fake_http_url(fake, "/moved");
    imp_http_response_t *resp = must(client, &(imp_http_request_t){.url = url});
    ck_assert_int_eq(imp_http_response_status(resp), 302);
    ck_assert_str_eq(imp_http_response_header(resp, "Location"), target);
    imp_http_response_free(resp);
    usleep(100 * 1000);
    ck_assert_uint_eq(fake_http_count(fake), 1);
    free(url);
    free(target);
}
END_TEST

START_TEST(body_cap)
{
    char *big = malloc(100001);
    memset(big, 'a', 100000);
    big[100000] = '\0';
    fake_http_push(fake, (fake_http_reply_t){.body = big});
    char exact[4097];
    memset(exact, 'b', 4096);
    exact[4096] = '\0';
    fake_http_push(fake, (fake_http_reply_t){.body = exact});
    char *url = fake_http_url(fake, "/big");

    imp_http_response_t *resp = must(client, &(imp_http_request_t){.url = url});
    size_t len = 0;
    const char *body = imp_http_response_body(resp, &len);
    ck_assert_int_eq(imp_http_response_status(resp), 200);
    ck_assert_uint_eq(len, 4096);
    ck_assert_uint_eq(strlen(body), 4096);
    ck_assert(imp_http_response_truncated(resp));
    imp_http_response_free(resp);

    resp = must(client, &(imp_http_request_t){.url = url});
    imp_http_response_body(resp, &len);
    ck_assert_uint_eq(len, 4096);
    ck_assert(!imp_http_response_truncated(resp));
    imp_http_response_free(resp);
    free(big);
    free(url);
}
END_TEST

START_TEST(status_errors)
{
    const struct {
        int status;
        imp_err_class_t cls;
    } cases[] = {{503, IMP_ERR_RETRIABLE}, {500, IMP_ERR_RETRIABLE}, {429, IMP_ERR_RETRIABLE},
                 {408, IMP_ERR_RETRIABLE}, {404, IMP_ERR_POISON},    {400, IMP_ERR_POISON},
                 {301, IMP_ERR_POISON}};
    char *url = fake_http_url(fake, "/s");
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        fake_http_push(fake, (fake_http_reply_t){.status = cases[i].status, .body = "why"});
        imp_http_response_t *resp = must(client, &(imp_http_request_t){.url = url});
        imp_error_t *err = imp_http_response_error(resp);
        ck_assert_ptr_nonnull(err);
        ck_assert_int_eq(imp_error_class(err), cases[i].cls);
        ck_assert_str_eq(imp_error_code(err), IMP_HTTP_ERR_STATUS);
        ck_assert_str_eq(imp_error_detail(err), "why");
        imp_error_free(err);
        imp_http_response_free(resp);
    }
    free(url);
}
END_TEST

START_TEST(retry_after_date)
{
    char headers[128];
    time_t at = time(NULL) + 100;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(headers, sizeof(headers), "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    fake_http_push(fake, (fake_http_reply_t){.status = 503, .headers = headers});
    fake_http_push(fake, (fake_http_reply_t){.status = 503, .headers = "Retry-After: soon\r\n"});
    char *url = fake_http_url(fake, "/r");
    imp_http_response_t *resp = must(client, &(imp_http_request_t){.url = url});
    long long s = imp_http_response_retry_after_s(resp);
    ck_assert_msg(s >= 95 && s <= 100, "retry after %lld", s);
    imp_http_response_free(resp);
    resp = must(client, &(imp_http_request_t){.url = url});
    ck_assert_int_eq(imp_http_response_retry_after_s(resp), -1);
    imp_http_response_free(resp);
    free(url);
}
END_TEST

START_TEST(bad_requests)
{
    char *url = fake_http_url(fake, "/x");
    const char *inject[] = {"X-A: 1\r\nX-B: 2", NULL};
    const char *nocolon[] = {"just text", NULL};
    const imp_http_request_t reqs[] = {
        {.url = "ftp://127.0.0.1/x"},
        {.url = "file:///etc/passwd"},
        {.url = "gopher://127.0.0.1:70/"},
        {.url = "127.0.0.1/no-scheme"},
        {.url = NULL},
        {.url = url, .headers = inject},
        {.url = url, .headers = nocolon},
        {.url = url, .traceparent = "00-abc\r\nX-Evil: 1"},
        {.url = url, .method = "GE T"},
        {.url = "http://[::1"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(reqs); i++) {
        imp_error_t *err = must_fail(client, &reqs[i], IMP_HTTP_ERR_BAD_REQUEST);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        imp_error_free(err);
    }
    ck_assert_uint_eq(fake_http_count(fake), 0);
    free(url);
}
END_TEST

/* The fake server's own knobs: handler, default reply, script order, close_after. */
static void echo_path(const fake_http_request_t *req, fake_http_reply_t *reply, void *ctx)
{
    (void)ctx;
    reply->status = strcmp(req->path, "/missing") == 0 ? 404 : 200;
    reply->body = strcmp(req->path, "/missing") == 0 ? "nope" : "handled";
}

START_TEST(fake_server_replies)
{
    char *url = fake_http_url(fake, "/a");
    fake_http_set_default(fake, (fake_http_reply_t){.status = 204});
    imp_http_response_t *resp = must(client, &(imp_http_request_t){.url = url});
    ck_assert_int_eq(imp_http_response_status(resp), 204);
    imp_http_response_free(resp);

    fake_http_set_handler(fake, echo_path, NULL);
    fake_http_push(fake,
                   (fake_http_reply_t){.status = 202, .body = "scripted", .close_after = true});
    resp = must(client, &(imp_http_request_t){.url = url}); /* the script comes first */
    ck_assert_int_eq(imp_http_response_status(resp), 202);
    ck_assert_str_eq(imp_http_response_body(resp, NULL), "scripted");
    imp_http_response_free(resp);
    resp = must(client, &(imp_http_request_t){.url = url});
    ck_assert_str_eq(imp_http_response_body(resp, NULL), "handled");
    imp_http_response_free(resp);
    char *missing = fake_http_url(fake, "/missing");
    resp = must(client, &(imp_http_request_t){.url = missing});
    ck_assert_int_eq(imp_http_response_status(resp), 404);
    imp_http_response_free(resp);
    ck_assert(fake_http_wait(fake, 4, 1000));
    ck_assert(!fake_http_wait(fake, 5, 50));
    ck_assert_ptr_null(fake_http_request(fake, 4));
    /* close_after closed the first connection; the client opened a second one. */
    ck_assert_uint_eq(fake_http_connections(fake), 2);
    free(missing);
    free(url);
}
END_TEST

/* ---- the guard at connect time (loopback targets only) ---- */

START_TEST(guard_blocks_loopback_by_default)
{
    imp_http_client_t *strict = NULL;
    ck_assert_ptr_null(imp_http_client_new(NULL, &strict));
    int port = fake_http_port(fake);
    const struct {
        const char *host;
        const char *addr;
    } cases[] = {
        {"127.0.0.1", "127.0.0.1"},  {"[::1]", "::1"}, {"[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
        {"127.1", "127.0.0.1"},      /* short form */
        {"2130706433", "127.0.0.1"}, /* decimal */
        {"0x7f000001", "127.0.0.1"}, /* hex */
        {"0.0.0.0", "0.0.0.0"},      /* reaches the local host on Linux */
        {"localhost", NULL},         /* a name resolving to loopback */
        {"LocalHost", NULL},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://%s:%d/secret", cases[i].host, port);
        imp_error_t *err = must_fail(strict, &(imp_http_request_t){.url = url}, IMP_HTTP_ERR_SSRF);
        ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
        ck_assert_int_eq(imp_http_outcome(err), IMP_HTTP_NOT_SENT);
        const char *msg = imp_error_message(err);
        ck_assert_msg(strstr(msg, "loopback") || strstr(msg, "unspecified"), "%s", msg);
        if (cases[i].addr != NULL)
            ck_assert_msg(strstr(msg, cases[i].addr) != NULL, "%s lacks %s", msg, cases[i].addr);
        imp_error_free(err);
    }
    ck_assert_uint_eq(fake_http_count(fake), 0);
    ck_assert_uint_eq(fake_http_connections(fake), 0);
    imp_http_client_free(strict);
}
END_TEST

START_TEST(guard_allow_list)
{
    imp_http_client_t *v4only = NULL;
    ck_assert_ptr_null(
        imp_http_client_new(&(imp_http_options_t){.allow_cidrs = "127.0.0.0/8"}, &v4only));
    int port = fake_http_port(fake);
    const char *ok[] = {"127.0.0.1", "[::ffff:127.0.0.1]", "localhost"};
    for (size_t i = 0; i < IMP_ARRAY_LEN(ok); i++) {
        char url[128];
        snprintf(url, sizeof(url), "http://%s:%d/ok", ok[i], port);
        imp_http_response_free(must(v4only, &(imp_http_request_t){.url = url}));
    }
    ck_assert_uint_eq(fake_http_count(fake), 3);
    char url[128];
    snprintf(url, sizeof(url), "http://[::1]:%d/no", port);
    imp_error_t *err = must_fail(v4only, &(imp_http_request_t){.url = url}, IMP_HTTP_ERR_SSRF);
    imp_error_free(err);
    imp_http_client_free(v4only);

    imp_http_client_t *bad = NULL;
    err = imp_http_client_new(&(imp_http_options_t){.allow_cidrs = "127.0.0.0/8, nonsense"}, &bad);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(bad);
    ck_assert_str_eq(imp_error_code(err), "http_config");
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "nonsense"));
    imp_error_free(err);
}
END_TEST

/* ---- classifier and CIDRs (no traffic) ---- */

static struct sockaddr_storage sa_of(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        ck_abort_msg("bad test address %s", ip);
    return ss;
}

START_TEST(classifier)
{
    const struct {
        const char *ip;
        const char *reason; /* NULL: public */
    } cases[] = {
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"10.0.0.1", "private"},
        {"10.255.255.255", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", NULL},
        {"172.15.255.255", NULL},
        {"192.168.1.1", "private"},
        {"169.254.169.254", "link_local"},
        {"100.64.0.1", "cgnat"},
        {"100.127.255.255", "cgnat"},
        {"100.128.0.1", NULL},
        {"0.0.0.0", "unspecified"},
        {"0.1.2.3", "unspecified"},
        {"224.0.0.1", "multicast"},
        {"239.255.255.250", "multicast"},
        {"255.255.255.255", "broadcast"},
        {"240.0.0.1", "reserved"},
        {"192.0.0.8", "reserved"},
        {"198.18.0.1", "reserved"},
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"11.0.0.1", NULL},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"fc00::1", "private"},
        {"fd12:3456::1", "private"},
        {"fe80::1", "link_local"},
        {"febf::1", "link_local"},
        {"fec0::1", "private"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:169.254.169.254", "link_local"},
        {"::ffff:100.64.0.1", "cgnat"},
        {"::ffff:0.0.0.0", "unspecified"},
        {"::ffff:8.8.8.8", NULL},
        {"::127.0.0.1", "loopback"}, /* IPv4-compatible */
        {"::10.0.0.1", "private"},
        {"64:ff9b::a00:1", "private"},   /* NAT64 of 10.0.0.1 */
        {"64:ff9b::808:808", NULL},      /* NAT64 of 8.8.8.8 */
        {"2002:7f00:1::", "loopback"},   /* 6to4 of 127.0.0.1 */
        {"2002:c0a8:101::1", "private"}, /* 6to4 of 192.168.1.1 */
        {"2001:4860:4860::8888", NULL},
        {"2606:4700::1111", NULL},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        struct sockaddr_storage ss = sa_of(cases[i].ip);
        const char *got = imp_http_addr_blocked((struct sockaddr *)&ss);
        if (cases[i].reason == NULL)
            ck_assert_msg(got == NULL, "%s: blocked as %s", cases[i].ip, got);
        else
            ck_assert_msg(got != NULL && strcmp(got, cases[i].reason) == 0, "%s: %s, want %s",
                          cases[i].ip, got ? got : "public", cases[i].reason);
    }
}
END_TEST

START_TEST(cidr_parse)
{
    imp_cidr_t c;
    ck_assert_int_eq(imp_http_cidr_parse("10.0.0.0/8", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 8);
    ck_assert_uint_eq(c.addr[0], 10);
    ck_assert_int_eq(imp_http_cidr_parse("127.0.0.1", &c), 0);
    ck_assert_uint_eq(c.prefix, 32);
    ck_assert_int_eq(imp_http_cidr_parse("0.0.0.0/0", &c), 0);
    ck_assert_uint_eq(c.prefix, 0);
    ck_assert_int_eq(imp_http_cidr_parse("::1", &c), 0);
    ck_assert_int_eq(c.family, AF_INET6);
    ck_assert_uint_eq(c.prefix, 128);
    ck_assert_int_eq(imp_http_cidr_parse("fc00::/7", &c), 0);
    ck_assert_uint_eq(c.prefix, 7);
    /* A mapped network is stored as IPv4. */
    ck_assert_int_eq(imp_http_cidr_parse("::ffff:127.0.0.0/104", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 8);
    ck_assert_uint_eq(c.addr[0], 127);
    ck_assert_int_eq(imp_http_cidr_parse("::ffff:10.1.2.3", &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_uint_eq(c.prefix, 32);

    const char *bad[] = {"",
                         "abc",
                         "10.0.0.0/",
                         "10.0.0.0/33",
                         "10.0.0.0/-1",
                         "10.0.0.0/8/9",
                         " 10.0.0.0/8",
                         "10.0.0.1/8",
                         "10.0.0",
                         "256.0.0.0/8",
                         "::1/129",
                         "fc00::1/7",
                         "10.0.0.0/08x",
                         "10.0.0.0/1234",
                         "[::1]",
                         NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        ck_assert_msg(imp_http_cidr_parse(bad[i], &c) == -1, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(imp_http_cidr_parse(NULL, &c), -1);
}
END_TEST

START_TEST(cidr_contains_and_lists)
{
    imp_cidr_t *list = NULL;
    size_t n = 0;
    ck_assert_ptr_null(imp_http_cidr_parse_list("127.0.0.0/8, ::1\t192.168.0.0/16", &list, &n));
    ck_assert_uint_eq(n, 3);
    struct sockaddr_storage a = sa_of("127.9.9.9"), b = sa_of("::ffff:127.0.0.5"),
                            c = sa_of("128.0.0.1"), d = sa_of("::1"), e = sa_of("::2"),
                            f = sa_of("192.168.200.1"), g = sa_of("192.169.0.1");
    ck_assert(imp_http_cidr_contains(&list[0], (struct sockaddr *)&a));
    ck_assert(imp_http_cidr_contains(&list[0], (struct sockaddr *)&b));
    ck_assert(!imp_http_cidr_contains(&list[0], (struct sockaddr *)&c));
    ck_assert(!imp_http_cidr_contains(&list[0], (struct sockaddr *)&d));
    ck_assert(imp_http_cidr_contains(&list[1], (struct sockaddr *)&d));
    ck_assert(!imp_http_cidr_contains(&list[1], (struct sockaddr *)&e));
    ck_assert(imp_http_cidr_contains(&list[2], (struct sockaddr *)&f));
    ck_assert(!imp_http_cidr_contains(&list[2], (struct sockaddr *)&g));
    free(list);

    ck_assert_ptr_null(imp_http_cidr_parse_list(NULL, &list, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(imp_http_cidr_parse_list(" , ", &list, &n));
    ck_assert_uint_eq(n, 0);
    imp_error_t *err = imp_http_cidr_parse_list("10.0.0.0/8,10.0.0.1/8", &list, &n);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(list);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "10.0.0.1/8"));
    imp_error_free(err);
}
END_TEST

/* The second look (CURLOPT_PREREQFUNCTION), called the way curl calls it. */
START_TEST(prereq_guard)
{
    imp_http_client_t *strict = NULL, *loop = NULL;
    ck_assert_ptr_null(imp_http_client_new(NULL, &strict));
    ck_assert_ptr_null(
        imp_http_client_new(&(imp_http_options_t){.allow_cidrs = "127.0.0.0/8"}, &loop));
    const struct {
        imp_http_client_t *c;
        const char *ip;
        int want;
        const char *reason;
    } cases[] = {
        {strict, "127.0.0.1", CURL_PREREQFUNC_ABORT, "loopback"},
        {strict, "::ffff:127.0.0.1", CURL_PREREQFUNC_ABORT, "loopback"},
        {strict, "fe80::1%eth0", CURL_PREREQFUNC_ABORT, "link_local"},
        {strict, "10.1.1.1", CURL_PREREQFUNC_ABORT, "private"},
        {strict, "not an address", CURL_PREREQFUNC_ABORT, "unparsable"},
        {strict, "93.184.216.34", CURL_PREREQFUNC_OK, NULL},
        {loop, "127.0.0.1", CURL_PREREQFUNC_OK, NULL},
        {loop, "::1", CURL_PREREQFUNC_ABORT, "loopback"},
    };
    for (size_t i = 0; i < IMP_ARRAY_LEN(cases); i++) {
        transfer_t t = {.client = cases[i].c};
        char ip[64], local[] = "127.0.0.1";
        snprintf(ip, sizeof(ip), "%s", cases[i].ip);
        ck_assert_int_eq(on_prereq(&t, ip, local, 80, 40000), cases[i].want);
        ck_assert(t.prereq_blocked == (cases[i].want == CURL_PREREQFUNC_ABORT));
        if (cases[i].reason)
            ck_assert_str_eq(t.blocked_reason, cases[i].reason);
    }
    imp_http_client_free(strict);
    imp_http_client_free(loop);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, post_status_headers_body);
    tcase_add_test(tc, methods);
    tcase_add_test(tc, traceparent_propagated);
    tcase_add_test(tc, timeout_after_send_is_ambiguous);
    tcase_add_test(tc, close_without_reply_is_ambiguous);
    tcase_add_test(tc, refused_is_not_sent);
    tcase_add_test(tc, connect_timeout_is_not_sent);
    tcase_add_test(tc, redirect_not_followed);
    tcase_add_test(tc, body_cap);
    tcase_add_test(tc, status_errors);
    tcase_add_test(tc, retry_after_date);
    tcase_add_test(tc, bad_requests);
    tcase_add_test(tc, fake_server_replies);
    tcase_add_test(tc, guard_blocks_loopback_by_default);
    tcase_add_test(tc, guard_allow_list);
    suite_add_tcase(s, tc);
    TCase *pure = tcase_create("addresses");
    tcase_add_test(pure, classifier);
    tcase_add_test(pure, cidr_parse);
    tcase_add_test(pure, cidr_contains_and_lists);
    tcase_add_test(pure, prereq_guard);
    suite_add_tcase(s, pure);
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
