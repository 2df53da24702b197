/* A scripted HTTP/1.1 server on loopback for tests (see fake_http.h). */
#include "fake_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_HTTP_MAX_HEAD (64 * 1024)
#define FAKE_HTTP_MAX_BODY (16 * 1024 * 1024)

typedef struct fake_http_script {
    struct fake_http_script *next;
    fake_http_reply_t reply; /* strings owned */
} fake_http_script_t;

typedef struct fake_http_conn {
    struct fake_http_conn *next;
    fake_http_t *f;
    pthread_t thread;
    int fd;
} fake_http_conn_t;

struct fake_http {
    int listen_fd;
    int port;
    int stop_pipe[2]; /* written once at stop: every poll wakes up */
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    fake_http_conn_t *conns;
    size_t nconns;
    fake_http_request_t **reqs;
    size_t nreqs;
    fake_http_script_t *script, **script_tail;
    fake_http_reply_t def;
    fake_http_handler_fn handler;
    void *handler_ctx;
};

/* Growable byte buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} fake_http_buf_t;

static void *fh_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

static char *fh_strndup(const char *s, size_t n)
{
    char *d = fh_alloc(n + 1);
    memcpy(d, s, n);
    return d;
}

static void fh_die(const char *what)
{
    fprintf(stderr, "fake_http: %s: %s\n", what, strerror(errno));
    abort();
}

static void fh_buf_reserve(fake_http_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    b->cap = (b->len + more + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
        abort();
}

static fake_http_reply_t fh_reply_copy(fake_http_reply_t r)
{
    size_t blen = r.body ? (r.body_len ? r.body_len : strlen(r.body)) : 0;
    r.headers = r.headers ? fh_strndup(r.headers, strlen(r.headers)) : NULL;
    r.body = r.body ? fh_strndup(r.body, blen) : NULL;
    r.body_len = blen;
    return r;
}

static void fh_reply_free(fake_http_reply_t *r)
{
    free((char *)r->headers);
    free((char *)r->body);
}

static void fh_request_free(fake_http_request_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->method);
    free(r->path);
    free(r->body);
    free(r);
}

const char *fake_http_header(const fake_http_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

/* ---- reading a request ---- */

/* Wait for data or stop; append what arrives. 1 read, 0 EOF/stop/error. */
static int fh_conn_read(fake_http_conn_t *c, fake_http_buf_t *b)
{
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                          {.fd = c->f->stop_pipe[0], .events = POLLIN}};
    while (poll(p, 2, -1) < 0)
        if (errno != EINTR)
            return 0;
    if (p[1].revents)
        return 0;
    fh_buf_reserve(b, 16384);
    ssize_t n = recv(c->fd, b->p + b->len, 16384, 0);
    if (n <= 0)
        return 0;
    b->len += (size_t)n;
    b->p[b->len] = '\0';
    return 1;
}

static void fh_send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void fh_parse_header_line(fake_http_request_t *r, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return;
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    r->names = realloc(r->names, (r->nheaders + 1) * sizeof(char *));
    r->values = realloc(r->values, (r->nheaders + 1) * sizeof(char *));
    if (r->names == NULL || r->values == NULL)
        abort();
    r->names[r->nheaders] = fh_strndup(line, (size_t)(colon - line));
    r->values[r->nheaders] = fh_strndup(v, (size_t)(end - v));
    r->nheaders++;
}

/* Parse the head (request line and headers, ending with the blank line). */
static fake_http_request_t *fh_parse_head(const char *head, size_t len)
{
    fake_http_request_t *r = fh_alloc(sizeof(*r));
    const char *eol = memmem(head, len, "\r\n", 2);
    const char *sp1 = memchr(head, ' ', (size_t)(eol - head));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL) {
        fh_request_free(r);
        return NULL;
    }
    r->method = fh_strndup(head, (size_t)(sp1 - head));
    r->path = fh_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    for (const char *line = eol + 2; line < head + len;) {
        const char *next = memmem(line, (size_t)(head + len - line), "\r\n", 2);
        if (next == NULL || next == line)
            break;
        fh_parse_header_line(r, line, (size_t)(next - line));
        line = next + 2;
    }
    return r;
}

/* Read one whole request off the connection, keeping any pipelined rest in b.
 * NULL on EOF, stop or a malformed/unsupported request (*status set to answer with). */
static fake_http_request_t *fh_read_request(fake_http_conn_t *c, fake_http_buf_t *b, int *status)
{
    char *end;
    *status = 0;
    while ((end = b->len ? memmem(b->p, b->len, "\r\n\r\n", 4) : NULL) == NULL) {
        if (b->len > FAKE_HTTP_MAX_HEAD || !fh_conn_read(c, b))
            return NULL;
    }
    size_t head_len = (size_t)(end - b->p) + 4;
    fake_http_request_t *r = fh_parse_head(b->p, head_len - 2);
    if (r == NULL) {
        *status = 400;
        return NULL;
    }
    const char *te = fake_http_header(r, "transfer-encoding");
    const char *cl = fake_http_header(r, "content-length");
    size_t body_len = cl ? strtoul(cl, NULL, 10) : 0;
    if (te != NULL || body_len > FAKE_HTTP_MAX_BODY) {
        fh_request_free(r);
        *status = te ? 501 : 413;
        return NULL;
    }
    const char *expect = fake_http_header(r, "expect");
    if (expect && strcasecmp(expect, "100-continue") == 0 && b->len < head_len + body_len)
        fh_send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    while (b->len < head_len + body_len) {
        if (!fh_conn_read(c, b)) {
            fh_request_free(r);
            return NULL;
        }
    }
    r->body = fh_strndup(b->p + head_len, body_len);
    r->body_len = body_len;
    memmove(b->p, b->p + head_len + body_len, b->len - head_len - body_len);
    b->len -= head_len + body_len;
    return r;
}

/* ---- answering ---- */

static const char *fh_reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

static void fh_send_reply(int fd, const fake_http_reply_t *r, bool head_only, bool close)
{
    int status = r->status ? r->status : 200;
    size_t blen = r->body ? (r->body_len ? r->body_len : strlen(r->body)) : 0;
    char *head = NULL;
    int n = asprintf(&head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s\r\n", status,
                     fh_reason_phrase(status), blen, close ? "Connection: close\r\n" : "",
                     r->headers ? r->headers : "");
    if (n < 0)
        abort();
    fh_send_all(fd, head, (size_t)n);
    if (!head_only && blen > 0)
        fh_send_all(fd, r->body, blen);
    free(head);
}

/* Record the request and pick its reply (under the lock). The reply's strings are owned by
 * the caller afterwards when *owned is set. */
static fake_http_reply_t fh_record_and_choose(fake_http_t *f, fake_http_request_t *req, bool *owned)
{
    fake_http_reply_t reply;
    pthread_mutex_lock(&f->lock);
    f->reqs = realloc(f->reqs, (f->nreqs + 1) * sizeof(*f->reqs));
    if (f->reqs == NULL)
        abort();
    f->reqs[f->nreqs++] = req;
    pthread_cond_broadcast(&f->cond);
    fake_http_script_t *s = f->script;
    *owned = false;
    if (s != NULL) {
        f->script = s->next;
        if (f->script == NULL)
            f->script_tail = &f->script;
        reply = s->reply;
        *owned = true;
        free(s);
    } else if (f->handler != NULL) {
        fake_http_handler_fn fn = f->handler;
        void *ctx = f->handler_ctx;
        pthread_mutex_unlock(&f->lock);
        reply = (fake_http_reply_t){0};
        fn(req, &reply, ctx);
        return reply;
    } else {
        reply = fh_reply_copy(f->def);
        *owned = true;
    }
    pthread_mutex_unlock(&f->lock);
    return reply;
}

/* Sleep for ms unless stop comes first; false when stopping. */
static bool fh_delay(fake_http_t *f, long ms)
{
    struct pollfd p = {.fd = f->stop_pipe[0], .events = POLLIN};
    if (ms <= 0)
        return true;
    return poll(&p, 1, (int)ms) == 0;
}

static bool fh_wants_close(const fake_http_request_t *req)
{
    const char *conn = fake_http_header(req, "connection");
    return conn != NULL && strcasecmp(conn, "close") == 0;
}

static void *fh_conn_main(void *arg)
{
    fake_http_conn_t *c = arg;
    fake_http_buf_t b = {0};
    for (;;) {
        int status;
        fake_http_request_t *req = fh_read_request(c, &b, &status);
        if (req == NULL) {
            if (status)
                fh_send_reply(c->fd, &(fake_http_reply_t){.status = status}, false, true);
            break;
        }
        bool owned, head = strcmp(req->method, "HEAD") == 0, close_after = fh_wants_close(req);
        fake_http_reply_t reply = fh_record_and_choose(c->f, req, &owned);
        bool go_on = fh_delay(c->f, reply.delay_ms) && !reply.close_without_reply;
        close_after = close_after || reply.close_after;
        if (go_on)
            fh_send_reply(c->fd, &reply, head, close_after);
        if (owned)
            fh_reply_free(&reply);
        if (!go_on || close_after)
            break;
    }
    free(b.p);
    shutdown(c->fd, SHUT_RDWR);
    return NULL;
}

static void *fh_accept_main(void *arg)
{
    fake_http_t *f = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = f->listen_fd, .events = POLLIN},
                              {.fd = f->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno == EINTR)
            continue;
        if (p[1].revents)
            return NULL;
        int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        /* The head and the body go out in two writes: without this, Nagle holds the body
         * until the client's delayed ACK (~40 ms per request on a kept-alive connection). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fake_http_conn_t *c = fh_alloc(sizeof(*c));
        c->f = f;
        c->fd = fd;
        pthread_mutex_lock(&f->lock);
        c->next = f->conns;
        f->conns = c;
        f->nconns++;
        pthread_mutex_unlock(&f->lock);
        if (pthread_create(&c->thread, NULL, fh_conn_main, c) != 0)
            fh_die("pthread_create");
    }
}

fake_http_t *fake_http_start(void)
{
    fake_http_t *f = fh_alloc(sizeof(*f));
    f->script_tail = &f->script;
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pipe2(f->stop_pipe, O_CLOEXEC) != 0)
        fh_die("pipe2");
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        listen(f->listen_fd, 128) != 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&sin, &sl) != 0)
        fh_die("listen");
    f->port = ntohs(sin.sin_port);
    if (pthread_create(&f->acceptor, NULL, fh_accept_main, f) != 0)
        fh_die("pthread_create");
    return f;
}

void fake_http_stop(fake_http_t *f)
{
    if (f == NULL)
        return;
    if (write(f->stop_pipe[1], "x", 1) != 1)
        fh_die("write");
    pthread_join(f->acceptor, NULL);
    close(f->listen_fd);
    /* The acceptor is gone: the connection list no longer changes. */
    for (fake_http_conn_t *c = f->conns, *next; c != NULL; c = next) {
        next = c->next;
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
    for (size_t i = 0; i < f->nreqs; i++)
        fh_request_free(f->reqs[i]);
    free(f->reqs);
    for (fake_http_script_t *s = f->script, *next; s != NULL; s = next) {
        next = s->next;
        fh_reply_free(&s->reply);
        free(s);
    }
    fh_reply_free(&f->def);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int fake_http_port(const fake_http_t *f)
{
    return f->port;
}

char *fake_http_url(const fake_http_t *f, const char *path)
{
    char *url = NULL;
    if (asprintf(&url, "http://127.0.0.1:%d%s", f->port, path ? path : "/") < 0)
        abort();
    return url;
}

void fake_http_push(fake_http_t *f, fake_http_reply_t reply)
{
    fake_http_script_t *s = fh_alloc(sizeof(*s));
    s->reply = fh_reply_copy(reply);
    pthread_mutex_lock(&f->lock);
    *f->script_tail = s;
    f->script_tail = &s->next;
    pthread_mutex_unlock(&f->lock);
}

void fake_http_set_default(fake_http_t *f, fake_http_reply_t reply)
{
    fake_http_reply_t copy = fh_reply_copy(reply);
    pthread_mutex_lock(&f->lock);
    fake_http_reply_t old = f->def;
    f->def = copy;
    pthread_mutex_unlock(&f->lock);
    fh_reply_free(&old);
}

void fake_http_set_handler(fake_http_t *f, fake_http_handler_fn fn, void *ctx)
{
    pthread_mutex_lock(&f->lock);
    f->handler = fn;
    f->handler_ctx = ctx;
    pthread_mutex_unlock(&f->lock);
}

size_t fake_http_count(fake_http_t *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->nreqs;
    pthread_mutex_unlock(&f->lock);
    return n;
}

size_t fake_http_connections(fake_http_t *f)
{
    pthread_mutex_lock(&f->lock);
    size_t n = f->nconns;
    pthread_mutex_unlock(&f->lock);
    return n;
}

bool fake_http_wait(fake_http_t *f, size_t n, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    while (f->nreqs < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &deadline);
    bool ok = f->nreqs >= n;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

const fake_http_request_t *fake_http_request(fake_http_t *f, size_t i)
{
    pthread_mutex_lock(&f->lock);
    const fake_http_request_t *r = i < f->nreqs ? f->reqs[i] : NULL;
    pthread_mutex_unlock(&f->lock);
    return r;
}
