/* The h2o server: IMP_INGRESS_THREADS event loops, each with its own SO_REUSEPORT listener on
 * IMP_INGRESS_LISTEN and its own producer; the routes; /livez, /readyz and /metrics. */
#include "ingress.h"

#include "imp/log.h"
#include "imp/mem.h"
#include "imp/metrics.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_ROUNDS 100
#define DRAIN_WAIT_MS 10
#define PREFIX "/v1/webhooks/"

struct ing_server {
    ing_app_t *app;
    h2o_globalconf_t config;
    ing_thread_t *threads;
    int nthreads;
    int port;
};

typedef struct {
    h2o_handler_t super;
    ing_server_t *server;
} handler_t;

/* ---- per request -------------------------------------------------------------------------- */

const char *ing_req_header(void *ctx, const char *name, size_t *len)
{
    h2o_req_t *req = ctx;
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    *len = req->headers.entries[i].value.len;
    return req->headers.entries[i].value.base;
}

/* Random bytes for trace ids, drawn from OpenSSL's generator a block at a time: every draw
 * makes a system call (its fork check), and imp_trace_new makes two (getrandom). Trace ids
 * are not secrets; they only have to be unpredictable and distinct. */
#define RANDOM_BLOCK 1024

static __thread uint8_t random_pool[RANDOM_BLOCK];
static __thread size_t random_used = RANDOM_BLOCK;

/* n random bytes as 2n lowercase hex digits, never all zero (W3C forbids it). */
static void random_hex(char *out, size_t n)
{
    static const uint8_t zero[IMP_TRACE_ID_LEN / 2];
    assert(n <= sizeof(zero));
    do {
        if (RANDOM_BLOCK - random_used < n) {
            imp_crypto_random(random_pool, RANDOM_BLOCK);
            random_used = 0;
        }
        imp_hex_encode(random_pool + random_used, n, out);
        random_used += n;
    } while (memcmp(random_pool + random_used - n, zero, n) == 0);
    out[2 * n] = '\0';
}

void ing_reqinfo_init(ing_reqinfo_t *info, h2o_req_t *req, ing_route_t route)
{
    info->route = route;
    info->start_ns = ing_now_ns();
    size_t len = 0;
    const char *tp = ing_req_header(req, "traceparent", &len);
    imp_error_t *err = tp != NULL ? imp_trace_parse(tp, len, &info->trace) : NULL;
    if (tp == NULL || err != NULL) {
        random_hex(info->trace.trace_id, IMP_TRACE_ID_LEN / 2);
        info->trace.flags = IMP_TRACE_FLAG_SAMPLED;
    }
    /* This request's span: a child of the caller's, or the root of a new trace. */
    random_hex(info->trace.parent_id, IMP_TRACE_PARENT_ID_LEN / 2);
    imp_error_free(err);
    imp_trace_format(&info->trace, info->traceparent);
}

/* ---- probes ------------------------------------------------------------------------------- */

bool ing_ready(ing_server_t *s, char *reason, size_t cap)
{
    if (!ing_directory_ready(s->app->directory, reason, cap))
        return false;
    if (!ing_server_producers_ok(s)) {
        snprintf(reason, cap, "kafka: a producer's cluster did not answer its last ping");
        return false;
    }
    return true;
}

static void serve_readyz(ing_server_t *s, h2o_req_t *req)
{
    char reason[200] = "";
    if (ing_ready(s, reason, sizeof(reason))) {
        ing_answer(req, ING_ROUTE_READYZ, 200, "text/plain; charset=utf-8", H2O_STRLIT("ready\n"));
        return;
    }
    ing_reqinfo_t info;
    ing_reqinfo_init(&info, req, ING_ROUTE_READYZ);
    char detail[220];
    snprintf(detail, sizeof(detail), "not ready: %s", reason);
    ing_problem(req, &info, 503, "not-ready", "Service Unavailable", detail, 1, NULL);
}

static void serve_metrics(h2o_req_t *req)
{
    size_t len = 0;
    char *text = imp_metrics_render(imp_metrics_default(), &len);
    ing_answer(req, ING_ROUTE_METRICS, 200, IMP_METRICS_CONTENT_TYPE, text, len);
    free(text);
}

/* ---- routing ------------------------------------------------------------------------------ */

static bool is(h2o_iovec_t v, const char *s)
{
    return h2o_memis(v.base, v.len, s, strlen(s));
}

static void not_found(h2o_req_t *req, ing_route_t route, int status)
{
    ing_reqinfo_t info;
    ing_reqinfo_init(&info, req, route);
    if (status == 405)
        ing_problem(req, &info, 405, "method-not-allowed", "Method Not Allowed",
                    "the route does not take this method", 0, NULL);
    else
        ing_problem(req, &info, 404, "not-found", "Not Found", "no such route", 0, NULL);
}

static void route_probe(ing_server_t *s, h2o_req_t *req, ing_route_t route, bool get)
{
    if (!get)
        not_found(req, route, 405);
    else if (route == ING_ROUTE_LIVEZ)
        ing_answer(req, route, 200, "text/plain; charset=utf-8", H2O_STRLIT("ok\n"));
    else if (route == ING_ROUTE_READYZ)
        serve_readyz(s, req);
    else
        serve_metrics(req);
}

/* /v1/webhooks/<rest>: "ops", or "<channel>/<slug>". */
static void route_webhook(h2o_req_t *req, h2o_iovec_t rest, bool get, bool post)
{
    if (is(rest, "ops")) {
        if (post)
            ing_ops_post(req);
        else
            not_found(req, ING_ROUTE_OPS, 405);
        return;
    }
    const char *slash = memchr(rest.base, '/', rest.len);
    ing_channel_t ch;
    if (slash == NULL || ing_channel_parse(rest.base, (size_t)(slash - rest.base), &ch) != 0) {
        not_found(req, ING_ROUTE_OTHER, 404);
        return;
    }
    h2o_iovec_t slug = h2o_iovec_init(slash + 1, rest.len - (size_t)(slash + 1 - rest.base));
    if (slug.len == 0 || memchr(slug.base, '/', slug.len) != NULL)
        not_found(req, ING_ROUTE_OTHER, 404);
    else if (post)
        ing_webhook_post(req, ch, slug);
    else if (get && ch == ING_CH_WHATSAPP)
        ing_webhook_handshake(req, slug);
    else
        not_found(req, (ing_route_t)ch, 405);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ing_server_t *s = ((handler_t *)self)->server;
    h2o_iovec_t path = req->path_normalized;
    bool get = is(req->method, "GET") || is(req->method, "HEAD");
    bool post = is(req->method, "POST");
    if (path.len > strlen(PREFIX) && memcmp(path.base, PREFIX, strlen(PREFIX)) == 0)
        route_webhook(req, h2o_iovec_init(path.base + strlen(PREFIX), path.len - strlen(PREFIX)),
                      get, post);
    else if (is(path, "/livez"))
        route_probe(s, req, ING_ROUTE_LIVEZ, get);
    else if (is(path, "/readyz"))
        route_probe(s, req, ING_ROUTE_READYZ, get);
    else if (is(path, "/metrics"))
        route_probe(s, req, ING_ROUTE_METRICS, get);
    else
        not_found(req, ING_ROUTE_OTHER, 404);
    return 0;
}

/* ---- listeners ---------------------------------------------------------------------------- */

/* "host:port", "[v6]:port" or ":port" (all addresses). */
static imp_error_t *split_listen(const char *listen, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    long p = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (colon == NULL || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return imp_error_new(IMP_ERR_FATAL, "config",
                             "IMP_INGRESS_LISTEN must be host:port, got \"%s\"", listen);
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= cap)
        return imp_error_new(IMP_ERR_FATAL, "config", "IMP_INGRESS_LISTEN: host too long");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return NULL;
}

/* A listening socket on host:port shared with the other threads' (SO_REUSEPORT). */
static int listen_on(const char *host, int port, int *bound, imp_error_t **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(*host ? host : NULL, service, &hints, &ai);
    if (rc != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "listen", "cannot resolve \"%s\": %s", host,
                             gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "listen", "cannot listen on %s:%d: %s", host, port,
                             strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    ing_thread_t *t = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&t->accept_ctx, sock);
}

/* Only wakes the loop; the loop itself tests `stopping`. */
static void on_wake(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_buffer_consume(&sock->input, sock->input->size);
}

/* ---- threads ------------------------------------------------------------------------------ */

static int shutdown_conn(h2o_req_t *req, void *data)
{
    (void)data;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    return 0;
}

/* Stop accepting, let the requests waiting for reports be answered, then shut every
 * connection so h2o frees it through its normal path. */
static void drain(ing_thread_t *t)
{
    h2o_socket_close(t->listener);
    t->listener = NULL;
    /* No keep-alive from now on: a connection closes after the answer it is waiting for. */
    t->ctx.shutdown_requested = 1;
    ing_producer_drain(t->producer, t->loop, (int)t->app->settings->ack_timeout_ms + 1000);
    t->config->http1.callbacks.foreach_request(&t->ctx, shutdown_conn, NULL);
    for (int i = 0; i < DRAIN_ROUNDS && !h2o_linklist_is_empty(&t->ctx.http1._conns); i++)
        h2o_evloop_run(t->loop, DRAIN_WAIT_MS);
    if (!h2o_linklist_is_empty(&t->ctx.http1._conns))
        IMP_LOG_WARN("loop stopped with connections still open", IMP_LI("thread", t->index));
}

/* Loop, context, listener, waker and producer, on the thread that will use them. */
static imp_error_t *thread_init(ing_thread_t *t)
{
    imp_error_t *err = NULL;
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, t->config);
    t->accept_ctx.ctx = &t->ctx;
    t->accept_ctx.hosts = t->config->hosts;
    t->listener = h2o_evloop_socket_create(t->loop, t->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    t->listen_fd = -1;
    t->listener->data = t;
    h2o_socket_read_start(t->listener, on_accept);
    t->waker = h2o_evloop_socket_create(t->loop, t->wake_pipe[0], 0);
    t->wake_pipe[0] = -1;
    h2o_socket_read_start(t->waker, on_wake);
    t->producer = ing_producer_new(t->loop, t->app->settings->brokers, &t->app->producer_props,
                                   t->app->settings->ack_timeout_ms, &err);
    return err;
}

static void thread_dispose(ing_thread_t *t)
{
    ing_producer_free(t->producer);
    t->producer = NULL;
    if (t->listener != NULL)
        h2o_socket_close(t->listener);
    if (t->waker != NULL)
        h2o_socket_close(t->waker);
    h2o_context_dispose(&t->ctx);
    h2o_evloop_destroy(t->loop);
}

static void *run(void *arg)
{
    ing_thread_t *t = arg;
    t->start_err = thread_init(t);
    bool ok = t->start_err == NULL;
    sem_post(&t->ready); /* t->start_err is the starter's from here on */
    while (ok && !atomic_load(&t->stopping)) {
        if (h2o_evloop_run(t->loop, INT32_MAX) != 0 && errno != EINTR) {
            IMP_LOG_ERROR("event loop failed", IMP_LS("errno", strerror(errno)));
            usleep(100 * 1000);
        }
    }
    if (ok)
        drain(t);
    thread_dispose(t);
    return NULL;
}

static void configure(ing_server_t *s)
{
    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("imperium-ingress"));
    /* h2o answers a larger body with 413 itself, before it is buffered. */
    s->config.max_request_entity_size = (size_t)s->app->settings->max_body;
    s->config.http1.upgrade_to_http2 = 0; /* HTTP/1 only: drain() knows those connections */
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    ing_problem_filter_register(host);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
}

/* Bind one listener per thread (the first fixes the port when 0 was asked) and make the
 * wake pipes; the threads adopt them. */
static imp_error_t *bind_all(ing_server_t *s)
{
    char host[256];
    imp_error_t *err = split_listen(s->app->settings->listen, host, sizeof(host), &s->port);
    for (int i = 0; err == NULL && i < s->nthreads; i++) {
        ing_thread_t *t = &s->threads[i];
        t->listen_fd = listen_on(host, s->port, &s->port, &err);
        if (err == NULL && pipe2(t->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
            err = imp_error_new(IMP_ERR_FATAL, "pipe", "wake pipe: %s", strerror(errno));
    }
    return err;
}

/* Start thread t and wait until it has set itself up. */
static imp_error_t *start_thread(ing_thread_t *t)
{
    sem_init(&t->ready, 0, 0);
    int rc = pthread_create(&t->tid, NULL, run, t);
    if (rc != 0)
        return imp_error_new(IMP_ERR_FATAL, "thread", "loop thread: %s", strerror(rc));
    t->started = true;
    while (sem_wait(&t->ready) != 0 && errno == EINTR)
        ;
    imp_error_t *err = t->start_err;
    t->start_err = NULL;
    return err;
}

ing_server_t *ing_server_start(ing_app_t *app, imp_error_t **err)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    ing_server_t *s = imp_calloc(1, sizeof(*s));
    s->app = app;
    s->nthreads = (int)app->settings->threads;
    s->threads = imp_calloc((size_t)s->nthreads, sizeof(ing_thread_t));
    for (int i = 0; i < s->nthreads; i++) {
        ing_thread_t *t = &s->threads[i];
        t->index = i;
        t->app = app;
        t->config = &s->config;
        t->listen_fd = t->wake_pipe[0] = t->wake_pipe[1] = -1;
    }
    configure(s);
    *err = bind_all(s);
    for (int i = 0; *err == NULL && i < s->nthreads; i++)
        *err = start_thread(&s->threads[i]);
    if (*err != NULL) {
        ing_server_stop(s);
        return NULL;
    }
    IMP_LOG_INFO("ingress listening", IMP_LS("listen", app->settings->listen),
                 IMP_LI("port", s->port), IMP_LI("threads", s->nthreads));
    return s;
}

int ing_server_port(const ing_server_t *s)
{
    return s->port;
}

void ing_server_ping(ing_server_t *s, int timeout_ms)
{
    for (int i = 0; i < s->nthreads; i++) {
        ing_thread_t *t = &s->threads[i];
        imp_error_t *err = ing_producer_ping(t->producer, timeout_ms);
        bool was = atomic_exchange(&t->kafka_ok, err == NULL);
        if (err != NULL && was)
            IMP_LOG_WARN("kafka unreachable from a producer", IMP_LI("thread", i), IMP_LE(err));
        else if (err == NULL && !was)
            IMP_LOG_INFO("kafka reachable from a producer", IMP_LI("thread", i));
        imp_error_free(err);
    }
}

bool ing_server_producers_ok(const ing_server_t *s)
{
    for (int i = 0; i < s->nthreads; i++) {
        if (!atomic_load(&s->threads[i].kafka_ok))
            return false;
    }
    return true;
}

void ing_server_stop(ing_server_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nthreads; i++) {
        ing_thread_t *t = &s->threads[i];
        if (!t->started)
            continue;
        atomic_store(&t->stopping, true);
        ssize_t w;
        do {
            w = write(t->wake_pipe[1], "x", 1);
        } while (w < 0 && errno == EINTR);
    }
    for (int i = 0; i < s->nthreads; i++) {
        ing_thread_t *t = &s->threads[i];
        if (t->started) {
            pthread_join(t->tid, NULL);
            sem_destroy(&t->ready);
        }
        for (int k = 0; k < 2; k++) {
            if (t->wake_pipe[k] >= 0)
                close(t->wake_pipe[k]);
        }
        if (t->listen_fd >= 0)
            close(t->listen_fd);
    }
    h2o_config_dispose(&s->config);
    free(s->threads);
    free(s);
}
