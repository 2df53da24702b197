/* The /livez, /readyz, /metrics listener: one h2o event loop on a thread of its own. */
#include "imp/metrics.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

/* How long stop waits for open connections to wind down after their sockets are shut. */
#define DRAIN_ROUNDS 100
#define DRAIN_WAIT_MS 10

struct imp_metrics_server {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_evloop_t *loop;
    h2o_socket_t *listener;
    h2o_socket_t *waker; /* read end of wake_pipe */
    int wake_pipe[2];
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    int port;
    imp_metrics_ready_fn ready;
    void *ready_ctx;
};

typedef struct {
    h2o_handler_t super;
    imp_metrics_server_t *server;
} handler_t;

static void send_text(h2o_req_t *req, int status, const char *reason, const char *ctype,
                      const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                   strlen(ctype));
    h2o_send_inline(req, body, len);
}

static void serve_readyz(imp_metrics_server_t *s, h2o_req_t *req)
{
    static const char plain[] = "text/plain; charset=utf-8";
    char reason[256] = "";
    if (s->ready == NULL || s->ready(s->ready_ctx, reason, sizeof(reason))) {
        send_text(req, 200, "OK", plain, H2O_STRLIT("ready\n"));
        return;
    }
    reason[sizeof(reason) - 1] = '\0';
    char body[300];
    int n = snprintf(body, sizeof(body), "not ready: %s\n", reason[0] ? reason : "unknown");
    send_text(req, 503, "Service Unavailable", plain, body, (size_t)n);
}

static void serve_metrics(h2o_req_t *req)
{
    size_t len = 0;
    char *text = imp_metrics_render(imp_metrics_default(), &len);
    send_text(req, 200, "OK", IMP_METRICS_CONTENT_TYPE, text, len);
    free(text);
}

static bool path_is(const h2o_req_t *req, const char *path)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, path, strlen(path));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    imp_metrics_server_t *s = ((handler_t *)self)->server;
    bool known = path_is(req, "/livez") || path_is(req, "/readyz") || path_is(req, "/metrics");
    if (!known) {
        h2o_send_error_404(req, "Not Found", "not found\n", 0);
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        h2o_send_error_405(req, "Method Not Allowed", "method not allowed\n", 0);
        return 0;
    }
    if (path_is(req, "/livez"))
        send_text(req, 200, "OK", "text/plain; charset=utf-8", H2O_STRLIT("ok\n"));
    else if (path_is(req, "/readyz"))
        serve_readyz(s, req);
    else
        serve_metrics(req);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    imp_metrics_server_t *s = listener->data;
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&s->accept_ctx, sock);
}

/* Only wakes the loop; the loop itself tests `stopping`. */
static void on_wake(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static int shutdown_conn(h2o_req_t *req, void *data)
{
    (void)data;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    return 0;
}

/* Close the listener, then shut every connection's socket so h2o sees EOF and frees the
 * connection through its normal path; run the loop until none is left. */
static void drain(imp_metrics_server_t *s)
{
    h2o_socket_close(s->listener);
    s->listener = NULL;
    /* Not h2o_context_request_shutdown: its HTTP/2 half arms a timer that would outlive the
     * context. HTTP/1 only needs the flag (no keep-alive on answers still being written). */
    s->ctx.shutdown_requested = 1;
    s->config.http1.callbacks.foreach_request(&s->ctx, shutdown_conn, NULL);
    for (int i = 0; i < DRAIN_ROUNDS && !h2o_linklist_is_empty(&s->ctx.http1._conns); i++)
        h2o_evloop_run(s->loop, DRAIN_WAIT_MS);
    if (!h2o_linklist_is_empty(&s->ctx.http1._conns))
        IMP_LOG_WARN("metrics server stopped with connections still open", IMP_LI("port", s->port));
    h2o_socket_close(s->waker);
    s->waker = NULL;
}

static void *run(void *arg)
{
    imp_metrics_server_t *s = arg;
    while (!atomic_load(&s->stopping)) {
        if (h2o_evloop_run(s->loop, INT32_MAX) != 0 && errno != EINTR) {
            IMP_LOG_ERROR("metrics server loop failed", IMP_LS("errno", strerror(errno)));
            usleep(100 * 1000);
        }
    }
    drain(s);
    return NULL;
}

static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

/* A bound, listening, non-blocking socket; returns -1 and *err on failure. */
static int listen_on(const char *host, int port, int *bound_port, imp_error_t **err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "metrics_listen", "cannot resolve %s: %s", host,
                             gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "metrics_listen", "cannot listen on %s:%d: %s", host,
                             port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void configure(imp_metrics_server_t *s)
{
    h2o_config_init(&s->config);
    s->config.max_request_entity_size = 16 * 1024;
    s->config.http1.req_timeout = 5000;
    s->config.http1.upgrade_to_http2 = 0; /* HTTP/1 only: drain() knows those connections */
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;
}

static void attach(imp_metrics_server_t *s, int listen_fd)
{
    s->loop = h2o_evloop_create();
    h2o_context_init(&s->ctx, s->loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    s->listener = h2o_evloop_socket_create(s->loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    /* Not DONT_READ: h2o reads the pipe for us (with it, epoll would spin). */
    s->waker = h2o_evloop_socket_create(s->loop, s->wake_pipe[0], 0);
    s->waker->data = s;
    h2o_socket_read_start(s->waker, on_wake);
}

/* Free what start built; the thread, if any, has been joined. */
static void destroy(imp_metrics_server_t *s)
{
    if (s->loop != NULL) {
        /* The loop frees closed sockets; it neither closes nor frees registered ones. */
        if (s->listener != NULL)
            h2o_socket_close(s->listener);
        if (s->waker != NULL)
            h2o_socket_close(s->waker);
        h2o_context_dispose(&s->ctx);
        h2o_evloop_destroy(s->loop); /* closes the sockets left open and frees them */
    }
    h2o_config_dispose(&s->config);
    if (s->wake_pipe[1] >= 0)
        close(s->wake_pipe[1]);
    free(s);
}

imp_metrics_server_t *imp_metrics_server_start(const char *host, int port,
                                               imp_metrics_ready_fn ready, void *ctx,
                                               imp_error_t **err)
{
    *err = NULL;
    ignore_sigpipe();
    imp_metrics_server_t *s = imp_calloc(1, sizeof(*s));
    s->ready = ready;
    s->ready_ctx = ctx;
    s->wake_pipe[0] = s->wake_pipe[1] = -1;
    configure(s);
    int fd = listen_on(host, port, &s->port, err);
    if (fd < 0)
        goto fail;
    if (pipe2(s->wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        close(fd);
        *err = imp_error_new(IMP_ERR_FATAL, "metrics_listen", "pipe: %s", strerror(errno));
        goto fail;
    }
    attach(s, fd);
    int rc = pthread_create(&s->thread, NULL, run, s);
    if (rc != 0) {
        *err = imp_error_new(IMP_ERR_FATAL, "metrics_listen", "thread: %s", strerror(rc));
        goto fail;
    }
    s->thread_started = true;
    IMP_LOG_INFO("metrics server listening", IMP_LS("host", host), IMP_LI("port", s->port));
    return s;
fail:
    if (s->loop == NULL && s->wake_pipe[0] >= 0)
        close(s->wake_pipe[0]);
    destroy(s);
    return NULL;
}

int imp_metrics_server_port(const imp_metrics_server_t *s)
{
    return s->port;
}

void imp_metrics_server_stop(imp_metrics_server_t *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    if (s->thread_started) {
        ssize_t w;
        do {
            w = write(s->wake_pipe[1], "x", 1);
        } while (w < 0 && errno == EINTR);
        pthread_join(s->thread, NULL);
    }
    destroy(s);
}
