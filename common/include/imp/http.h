/* Outgoing HTTP (libcurl): one request at a time per client, no redirects, http/https only,
 * size-capped bodies, and an SSRF guard on the address actually connected to.
 *
 *   imp_http_client_t *c = NULL;
 *   imp_error_t *err = imp_http_client_new(&(imp_http_options_t){.timeout_ms = 10000}, &c);
 *   imp_http_response_t *resp = NULL;
 *   err = imp_http_request(c, &(imp_http_request_t){.method = "POST", .url = url,
 *                           .headers = (const char *[]){"Content-Type: application/json", NULL},
 *                           .body = json, .body_len = strlen(json),
 *                           .traceparent = tp}, &resp);
 *   switch (imp_http_outcome(err)) {
 *   case IMP_HTTP_RESPONDED:  look at imp_http_response_status(resp)
 *   case IMP_HTTP_NOT_SENT:   the request never left: safe to retry anywhere
 *   case IMP_HTTP_AMBIGUOUS:  it left and no answer came: the server may have acted
 *   }
 *
 * SSRF guard: every socket curl opens is checked against the resolved address it is about
 * to connect to (CURLOPT_OPENSOCKETFUNCTION), and again before the request is sent
 * (CURLOPT_PREREQFUNCTION), so DNS rebinding cannot slip past a check done on the name.
 * Blocked unless the client's allow-list names them: loopback (127/8, ::1), private (10/8,
 * 172.16/12, 192.168/16, fc00::/7, fec0::/10), link-local (169.254/16, fe80::/10),
 * unspecified (0/8, ::), CGNAT 100.64/10, multicast (224/4, ff00::/8), broadcast and
 * reserved (240/4), IETF protocol assignments (192.0.0/24), benchmarking (198.18/15), and
 * the same IPv4 ranges in IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d),
 * NAT64 (64:ff9b::/96) and 6to4 (2002::/16) IPv6 forms. Proxies from the environment are
 * ignored (a proxy would be the connected address).
 *
 * Thread-safety: a client is used by one thread at a time (one per thread, or a lock);
 * different clients run in parallel. curl_global_init runs once, under pthread_once, when
 * the first client is created (or on imp_http_global_init). */
#ifndef IMP_HTTP_H
#define IMP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "imp/error.h"

typedef struct imp_http_client imp_http_client_t;
typedef struct imp_http_response imp_http_response_t;

/* Error codes (imp_error_code) returned by imp_http_request. */
#define IMP_HTTP_ERR_SSRF "ssrf_blocked"            /* poison; never sent */
#define IMP_HTTP_ERR_BAD_REQUEST "http_bad_request" /* poison; never sent (URL, scheme, header) */
#define IMP_HTTP_ERR_NOT_SENT "http_not_sent"   /* retriable; DNS, refused, connect timeout, TLS */
#define IMP_HTTP_ERR_AMBIGUOUS "http_ambiguous" /* retriable; failed after the request left */
#define IMP_HTTP_ERR_STATUS "http_status"       /* from imp_http_response_error only */

typedef struct {
    long connect_timeout_ms; /* 0: 5000 */
    long timeout_ms;         /* whole request; 0: 30000 */
    size_t max_body;         /* response body cap in bytes; 0: 1 MiB */
    const char *user_agent;  /* NULL: "imperium" */
    /* CIDRs the SSRF guard lets through, comma or space separated ("127.0.0.0/8, ::1");
     * NULL or "" for none. Tests allow loopback here; production leaves it empty. */
    const char *allow_cidrs;
} imp_http_options_t;

/* opts may be NULL (all defaults). Fails (class fatal, code "http_config") only on a
 * malformed allow-list. *out is a new client. */
imp_error_t *imp_http_client_new(const imp_http_options_t *opts, imp_http_client_t **out);
/* NULL is a no-op. */
void imp_http_client_free(imp_http_client_t *c);

/* Optional: run curl_global_init now (e.g. from main before threads start). */
void imp_http_global_init(void);

typedef struct {
    const char *method;         /* NULL: "GET" (or "POST" when body is set); any token */
    const char *url;            /* http:// or https:// only */
    const char *const *headers; /* "Name: value" lines, NULL-terminated; may be NULL */
    const char *body;           /* request body, borrowed for the call; may be NULL */
    size_t body_len;
    const char *traceparent; /* sent as the traceparent header when not NULL */
    long timeout_ms;         /* 0: the client's */
    long connect_timeout_ms; /* 0: the client's */
} imp_http_request_t;

/* Perform one request. Redirects are not followed: a 3xx is returned as it is.
 *
 * NULL: a response arrived, whatever its status; *out is a new response (caller frees).
 * Otherwise an error (and *out NULL) whose code says what happened:
 *   ssrf_blocked     poison     the connected address is blocked; message names it
 *   http_bad_request poison     malformed URL, a scheme other than http/https, a header
 *                               with CR/LF, a bad method
 *   http_not_sent    retriable  nothing was sent: DNS failure, refused, connect timeout,
 *                               TLS handshake failure
 *   http_ambiguous   retriable  the request (or part of it) was sent and no complete answer
 *                               came back: timeout waiting, reset, truncated response
 * imp_http_outcome maps the error to the three outcomes a sender cares about. */
imp_error_t *imp_http_request(imp_http_client_t *c, const imp_http_request_t *req,
                              imp_http_response_t **out);

typedef enum {
    IMP_HTTP_RESPONDED = 0, /* err == NULL: look at the status */
    IMP_HTTP_NOT_SENT,      /* the request never left: retrying cannot duplicate it */
    IMP_HTTP_AMBIGUOUS,     /* it may have been acted on */
} imp_http_outcome_t;

imp_http_outcome_t imp_http_outcome(const imp_error_t *err);

void imp_http_response_free(imp_http_response_t *r);
long imp_http_response_status(const imp_http_response_t *r);
/* The body (NUL-terminated, borrowed) and its length. At most max_body bytes are kept. */
const char *imp_http_response_body(const imp_http_response_t *r, size_t *len);
/* True when the body was longer than max_body and was cut off (the transfer is stopped). */
bool imp_http_response_truncated(const imp_http_response_t *r);
/* The first header of the final response with this name (case-insensitive), value trimmed;
 * borrowed; NULL when absent. */
const char *imp_http_response_header(const imp_http_response_t *r, const char *name);
/* Content-Type, or NULL. */
const char *imp_http_response_content_type(const imp_http_response_t *r);
/* Retry-After in seconds (delta-seconds, or an HTTP date converted to a delay, never
 * negative); -1 when absent or unparsable. */
long long imp_http_response_retry_after_s(const imp_http_response_t *r);

/* A status mapped to an error class for senders: 2xx NULL; 408, 425, 429 and 5xx retriable;
 * anything else (other 4xx, 1xx, 3xx) poison. Code "http_status"; the message names the
 * status; the detail holds the start of the body. New error; NULL for 2xx. */
imp_error_t *imp_http_response_error(const imp_http_response_t *r);

/* ---- the address guard, exposed for configuration checks and tests ---- */

typedef struct {
    int family; /* AF_INET or AF_INET6; IPv4-mapped IPv6 CIDRs are stored as AF_INET */
    uint8_t addr[16];
    unsigned prefix;
} imp_cidr_t;

/* "10.0.0.0/8", "fc00::/7", "127.0.0.1" (a host: /32 or /128), "::ffff:127.0.0.0/104"
 * (stored as 127.0.0.0/8). Host bits past the prefix must be zero. 0 or -1 (malformed). */
int imp_http_cidr_parse(const char *text, imp_cidr_t *out);

/* Parse a comma/space separated list into a new array (caller frees); NULL or "" gives
 * *n = 0. Error: class fatal, code "http_config", naming the bad entry. */
imp_error_t *imp_http_cidr_parse_list(const char *text, imp_cidr_t **out, size_t *n);

/* True when the address (IPv4-mapped, -compatible, NAT64 and 6to4 forms seen as their
 * IPv4 address) lies in the CIDR. */
bool imp_http_cidr_contains(const imp_cidr_t *cidr, const struct sockaddr *sa);

/* Why the guard blocks this address by default: "loopback", "private", "link_local",
 * "unspecified", "cgnat", "multicast", "broadcast", "reserved"; NULL when it is public. */
const char *imp_http_addr_blocked(const struct sockaddr *sa);

#endif
