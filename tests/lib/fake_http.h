/* A small HTTP/1.1 server for tests: loopback, a free port, a thread per connection,
 * every request recorded, replies scripted. It stands in for Telegram, Meta, ChatFlow and
 * friends.
 *
 *   fake_http_t *f = fake_http_start();
 *   fake_http_push(f, (fake_http_reply_t){.status = 429, .headers = "Retry-After: 3\r\n"});
 *   char *url = fake_http_url(f, "/bot123/sendMessage");
 *   ... the code under test sends ...
 *   ck_assert(fake_http_wait(f, 1, 2000));
 *   const fake_http_request_t *r = fake_http_request(f, 0);
 *   ck_assert_str_eq(fake_http_header(r, "content-type"), "application/json");
 *   fake_http_stop(f);
 *
 * A reply is chosen per request: the oldest scripted reply (fake_http_push), else the
 * handler (fake_http_set_handler), else the default (fake_http_set_default; initially
 * 200 with an empty body). Request bodies must come with Content-Length (chunked requests
 * get 501). Connections are kept alive unless the client or the reply says otherwise.
 *
 * Use it by including the .c (tests/lib is on the unit tests' include path):
 *   #include "fake_http.c"
 * Setup failures abort: this is test code. */
#ifndef FAKE_HTTP_H
#define FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct fake_http fake_http_t;

typedef struct {
    char *method;
    char *path; /* the request target as sent, query included */
    char *body; /* NUL-terminated */
    size_t body_len;
    size_t nheaders;
    char **names; /* as sent */
    char **values;
} fake_http_request_t;

typedef struct {
    int status;               /* 0: 200 */
    const char *headers;      /* extra header lines, each ending in "\r\n"; may be NULL */
    const char *body;         /* NULL: empty */
    size_t body_len;          /* 0: strlen(body) */
    long delay_ms;            /* wait this long before answering (cut short by stop) */
    bool close_without_reply; /* read the request, then close the connection */
    bool close_after;         /* answer with "Connection: close" and close */
} fake_http_reply_t;

/* Called from a connection thread; fill *reply. Its strings must stay valid until the
 * server is stopped (static strings, or memory the test frees after fake_http_stop). */
typedef void (*fake_http_handler_fn)(const fake_http_request_t *req, fake_http_reply_t *reply,
                                     void *ctx);

fake_http_t *fake_http_start(void);
/* Close the listener and every connection, join all threads, free everything. */
void fake_http_stop(fake_http_t *f);

int fake_http_port(const fake_http_t *f);
/* "http://127.0.0.1:<port><path>", new heap string. */
char *fake_http_url(const fake_http_t *f, const char *path);

/* Queue a reply; its strings are copied. */
void fake_http_push(fake_http_t *f, fake_http_reply_t reply);
/* The reply when the queue is empty and there is no handler; strings are copied. */
void fake_http_set_default(fake_http_t *f, fake_http_reply_t reply);
void fake_http_set_handler(fake_http_t *f, fake_http_handler_fn fn, void *ctx);

/* Requests recorded so far (fully read, before the reply). */
size_t fake_http_count(fake_http_t *f);
/* Wait until at least n requests are recorded; false on timeout. */
bool fake_http_wait(fake_http_t *f, size_t n, long timeout_ms);
/* The i-th request (0-based), borrowed until fake_http_stop. NULL when i is out of range. */
const fake_http_request_t *fake_http_request(fake_http_t *f, size_t i);
/* Header value by name (case-insensitive), first match, or NULL. */
const char *fake_http_header(const fake_http_request_t *r, const char *name);
/* Connections accepted so far. */
size_t fake_http_connections(fake_http_t *f);

#endif
