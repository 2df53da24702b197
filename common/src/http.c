/* HTTP client over libcurl: timeouts, no redirects, capped bodies, outcome classification and
 * an SSRF guard on the connected address. */
#include "imp/http.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 5000
#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_BODY (1024 * 1024)
#define MAX_HEADERS 256
#define ERROR_DETAIL_MAX 512

struct imp_http_client {
    CURL *curl;
    imp_cidr_t *allow;
    size_t nallow;
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_body;
    char *user_agent;
};

struct imp_http_response {
    long status;
    char *body;
    size_t len, cap;
    bool truncated;
    char **names;
    char **values;
    size_t nheaders;
};

/* State of one request, shared with curl's callbacks. */
typedef struct {
    imp_http_client_t *client;
    imp_http_response_t *resp;
    size_t max_body;
    int opened;                 /* sockets the guard let through */
    bool prereq_blocked;        /* the pre-request check refused the connection */
    const char *blocked_reason; /* last refusal */
    char blocked_addr[INET6_ADDRSTRLEN];
} transfer_t;

/* ---- addresses ---- */

typedef struct {
    int family;
    uint8_t b[16];
} ipaddr_t;

static bool addr_from_sockaddr(const struct sockaddr *sa, ipaddr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        out->family = AF_INET;
        memcpy(out->b, &sin.sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        out->family = AF_INET6;
        memcpy(out->b, &sin6.sin6_addr, 16);
        return true;
    }
    return false;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

/* The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
static bool embedded_v4(const ipaddr_t *a, ipaddr_t *v4)
{
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    const uint8_t *src = NULL;
    if (a->family != AF_INET6)
        return false;
    if (all_zero(a->b, 10) && a->b[10] == 0xff && a->b[11] == 0xff)
        src = a->b + 12; /* ::ffff:a.b.c.d */
    else if (all_zero(a->b, 12) && !(all_zero(a->b + 12, 3) && a->b[15] <= 1))
        src = a->b + 12; /* ::a.b.c.d, but not :: or ::1 */
    else if (memcmp(a->b, nat64, 12) == 0)
        src = a->b + 12; /* 64:ff9b::a.b.c.d */
    else if (a->b[0] == 0x20 && a->b[1] == 0x02)
        src = a->b + 2; /* 2002:aabb:ccdd:: */
    if (src == NULL)
        return false;
    memset(v4, 0, sizeof(*v4));
    v4->family = AF_INET;
    memcpy(v4->b, src, 4);
    return true;
}

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, net, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

typedef struct {
    uint8_t net[16];
    unsigned bits;
    const char *reason;
} range_t;

/* Order matters: the first match names the reason. */
static const range_t v4_ranges[] = {
    {{0}, 8, "unspecified"},          {{10}, 8, "private"},
    {{100, 64}, 10, "cgnat"},         {{127}, 8, "loopback"},
    {{169, 254}, 16, "link_local"},   {{172, 16}, 12, "private"},
    {{192, 0, 0}, 24, "reserved"},    {{192, 0, 2}, 24, "reserved"},
    {{192, 168}, 16, "private"},      {{198, 18}, 15, "reserved"},
    {{198, 51, 100}, 24, "reserved"}, {{203, 0, 113}, 24, "reserved"},
    {{224}, 4, "multicast"},          {{255, 255, 255, 255}, 32, "broadcast"},
    {{240}, 4, "reserved"},
};

static const range_t v6_ranges[] = {
    {{0}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0}, 8, "reserved"}, /* the rest of ::/8, after the IPv4-carrying forms */
    {{0x01, 0x00}, 64, "reserved"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "reserved"},
    {{0xfc}, 7, "private"},
    {{0xfe, 0x80}, 10, "link_local"},
    {{0xfe, 0xc0}, 10, "private"},
    {{0xff}, 8, "multicast"},
};

static const char *classify_addr(const ipaddr_t *a)
{
    ipaddr_t v4;
    if (embedded_v4(a, &v4))
        return classify_addr(&v4);
    const range_t *r = a->family == AF_INET ? v4_ranges : v6_ranges;
    size_t n = a->family == AF_INET ? IMP_ARRAY_LEN(v4_ranges) : IMP_ARRAY_LEN(v6_ranges);
    for (size_t i = 0; i < n; i++)
        if (prefix_match(a->b, r[i].net, r[i].bits))
            return r[i].reason;
    return NULL;
}

const char *imp_http_addr_blocked(const struct sockaddr *sa)
{
    ipaddr_t a;
    if (!addr_from_sockaddr(sa, &a))
        return "unsupported_family";
    return classify_addr(&a);
}

static bool cidr_has(const imp_cidr_t *c, const ipaddr_t *a)
{
    return c->family == a->family && prefix_match(a->b, c->addr, c->prefix);
}

bool imp_http_cidr_contains(const imp_cidr_t *cidr, const struct sockaddr *sa)
{
    ipaddr_t a, v4;
    if (!addr_from_sockaddr(sa, &a))
        return false;
    return cidr_has(cidr, &a) || (embedded_v4(&a, &v4) && cidr_has(cidr, &v4));
}

static bool host_bits_zero(const imp_cidr_t *c)
{
    unsigned total = c->family == AF_INET ? 32 : 128;
    for (unsigned bit = c->prefix; bit < total; bit++)
        if (c->addr[bit / 8] & (0x80 >> (bit % 8)))
            return false;
    return true;
}

static int parse_prefix(const char *s, unsigned max, unsigned *out)
{
    if (*s == '\0' || strlen(s) > 3)
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int imp_http_cidr_parse(const char *text, imp_cidr_t *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (text == NULL || strlen(text) >= sizeof(buf))
        return -1;
    strcpy(buf, text);
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash = '\0';
    imp_cidr_t c = {0};
    if (inet_pton(AF_INET, buf, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, buf, c.addr) == 1)
        c.family = AF_INET6;
    else
        return -1;
    unsigned max = c.family == AF_INET ? 32 : 128;
    c.prefix = max;
    if (slash != NULL && parse_prefix(slash + 1, max, &c.prefix) != 0)
        return -1;
    if (!host_bits_zero(&c))
        return -1;
    /* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n. */
    if (c.family == AF_INET6 && c.prefix >= 96 && all_zero(c.addr, 10) && c.addr[10] == 0xff &&
        c.addr[11] == 0xff) {
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, 12);
        c.family = AF_INET;
        c.prefix -= 96;
    }
    *out = c;
    return 0;
}

imp_error_t *imp_http_cidr_parse_list(const char *text, imp_cidr_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (text == NULL)
        return NULL;
    char *copy = imp_strdup(text), *save = NULL;
    imp_error_t *err = NULL;
    for (char *tok = strtok_r(copy, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save)) {
        imp_cidr_t c;
        if (imp_http_cidr_parse(tok, &c) != 0) {
            err = imp_error_new(IMP_ERR_FATAL, "http_config", "malformed CIDR \"%s\"", tok);
            free(*out);
            *out = NULL;
            *n = 0;
            goto out;
        }
        *out = imp_realloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = c;
    }
out:
    free(copy);
    return err;
}

/* ---- the guard, from curl's callbacks ---- */

static const char *guard(const imp_http_client_t *c, const struct sockaddr *sa)
{
    const char *why = imp_http_addr_blocked(sa);
    if (why == NULL)
        return NULL;
    for (size_t i = 0; i < c->nallow; i++)
        if (imp_http_cidr_contains(&c->allow[i], sa))
            return NULL;
    return why;
}

static void note_blocked(transfer_t *t, const struct sockaddr *sa, const char *why)
{
    const void *src = sa->sa_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (inet_ntop(sa->sa_family, src, t->blocked_addr, sizeof(t->blocked_addr)) == NULL)
        snprintf(t->blocked_addr, sizeof(t->blocked_addr), "?");
    t->blocked_reason = why;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    transfer_t *t = ud;
    struct sockaddr_storage ss = {0};
    (void)purpose;
    memcpy(&ss, &a->addr, a->addrlen < sizeof(ss) ? a->addrlen : sizeof(ss));
    const char *why = guard(t->client, (struct sockaddr *)&ss);
    if (why != NULL) {
        note_blocked(t, (struct sockaddr *)&ss, why);
        return CURL_SOCKET_BAD;
    }
    t->opened++;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* Second look, at the address of the connection about to carry the request. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    transfer_t *t = ud;
    (void)local_ip;
    (void)primary_port;
    (void)local_port;
    char ip[128];
    snprintf(ip, sizeof(ip), "%s", primary_ip ? primary_ip : "");
    ip[strcspn(ip, "%")] = '\0'; /* drop an IPv6 zone */
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    const char *why = ss.ss_family ? guard(t->client, (struct sockaddr *)&ss) : "unparsable";
    if (why == NULL)
        return CURL_PREREQFUNC_OK;
    t->prereq_blocked = true;
    if (ss.ss_family)
        note_blocked(t, (struct sockaddr *)&ss, why);
    else
        t->blocked_reason = why;
    return CURL_PREREQFUNC_ABORT;
}

/* ---- client ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        IMP_LOG_ERROR("curl_global_init failed", IMP_LS("error", curl_easy_strerror(rc)));
        abort();
    }
}

void imp_http_global_init(void)
{
    pthread_once(&global_once, global_init);
}

imp_error_t *imp_http_client_new(const imp_http_options_t *opts, imp_http_client_t **out)
{
    static const imp_http_options_t defaults = {0};
    if (opts == NULL)
        opts = &defaults;
    *out = NULL;
    imp_http_global_init();
    imp_cidr_t *allow = NULL;
    size_t nallow = 0;
    imp_error_t *err = imp_http_cidr_parse_list(opts->allow_cidrs, &allow, &nallow);
    if (err != NULL)
        return imp_error_prefix(err, "http allow-list");
    imp_http_client_t *c = imp_calloc(1, sizeof(*c));
    c->allow = allow;
    c->nallow = nallow;
    c->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
    c->max_body = opts->max_body > 0 ? opts->max_body : DEFAULT_MAX_BODY;
    c->user_agent = imp_strdup(opts->user_agent ? opts->user_agent : "imperium");
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        IMP_LOG_ERROR("curl_easy_init failed", IMP_LS("module", "http"));
        abort();
    }
    *out = c;
    return NULL;
}

void imp_http_client_free(imp_http_client_t *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c->allow);
    free(c->user_agent);
    free(c);
}

/* ---- response building (curl callbacks) ---- */

static void clear_headers(imp_http_response_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    r->nheaders = 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    transfer_t *t = ud;
    imp_http_response_t *r = t->resp;
    size_t len = size * n;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        clear_headers(r); /* a new response: an interim 1xx came before */
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (colon == NULL || colon == buf || r->nheaders >= MAX_HEADERS)
        return len;
    const char *v = colon + 1, *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (r->names == NULL) {
        r->names = imp_realloc(r->names, MAX_HEADERS * sizeof(char *));
        r->values = imp_realloc(r->values, MAX_HEADERS * sizeof(char *));
    }
    r->names[r->nheaders] = imp_strndup(buf, (size_t)(colon - buf));
    r->values[r->nheaders] = imp_strndup(v, (size_t)(end - v));
    r->nheaders++;
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ud)
{
    transfer_t *t = ud;
    imp_http_response_t *r = t->resp;
    size_t len = size * n, room = t->max_body - r->len;
    size_t take = len < room ? len : room;
    if (r->len + take + 1 > r->cap) {
        r->cap = r->len + take + 1 > r->cap * 2 ? r->len + take + 1 : r->cap * 2;
        r->body = imp_realloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, buf, take);
    r->len += take;
    r->body[r->len] = '\0';
    if (take < len) {
        r->truncated = true;
        return 0; /* stops the transfer: the rest is not wanted */
    }
    return len;
}

/* ---- request ---- */

static bool header_safe(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

static bool method_valid(const char *m)
{
    if (*m == '\0' || strlen(m) > 16)
        return false;
    for (; *m; m++)
        if (!isupper((unsigned char)*m))
            return false;
    return true;
}

/* Header list for the request; NULL *err on success. */
static struct curl_slist *build_headers(const imp_http_request_t *req, imp_error_t **err)
{
    struct curl_slist *list = curl_slist_append(NULL, "Expect:"); /* no 100-continue wait */
    *err = NULL;
    for (const char *const *h = req->headers; h != NULL && *h != NULL; h++) {
        if (!header_safe(*h) || strchr(*h, ':') == NULL) {
            *err =
                imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST, "malformed request header");
            break;
        }
        list = curl_slist_append(list, *h);
    }
    if (*err == NULL && req->traceparent != NULL) {
        if (header_safe(req->traceparent)) {
            char line[256];
            snprintf(line, sizeof(line), "traceparent: %s", req->traceparent);
            list = curl_slist_append(list, line);
        } else {
            *err = imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST, "malformed traceparent");
        }
    }
    if (*err != NULL) {
        curl_slist_free_all(list);
        return NULL;
    }
    return list;
}

static void set_method(CURL *h, const imp_http_request_t *req, const char *method)
{
    bool has_body = req->body != NULL;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (has_body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, has_body ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        if (strcmp(method, "GET") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }
}

static void set_options(imp_http_client_t *c, const imp_http_request_t *req, transfer_t *t,
                        struct curl_slist *headers, char *errbuf)
{
    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps the connection and DNS caches */
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* ignore proxy variables from the environment */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(h, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    set_method(h, req, method);
}

/* The URL's host, for messages: the rest of a URL may carry a secret (a bot token). */
static char *url_host(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL, *out = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
        out = imp_strdup(host);
    curl_free(host);
    curl_url_cleanup(u);
    return out ? out : imp_strdup("?");
}

static imp_error_t *failure(imp_http_client_t *c, const imp_http_request_t *req,
                            const transfer_t *t, CURLcode rc, const char *errbuf)
{
    char *host = url_host(req->url);
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    long sent = 0;
    imp_error_t *err;
    curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &sent);
    if (t->blocked_reason != NULL && (t->prereq_blocked || t->opened == 0))
        err = imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_SSRF, "connection to %s blocked (%s)",
                            t->blocked_addr[0] ? t->blocked_addr : host, t->blocked_reason);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        err = imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST, "bad url: %s", why);
    else if (sent > 0)
        err = imp_error_new(IMP_ERR_RETRIABLE, IMP_HTTP_ERR_AMBIGUOUS,
                            "no complete response from %s after sending: %s", host, why);
    else
        err = imp_error_new(IMP_ERR_RETRIABLE, IMP_HTTP_ERR_NOT_SENT, "request to %s not sent: %s",
                            host, why);
    free(host);
    return err;
}

static imp_error_t *validate_request(const imp_http_request_t *req)
{
    if (req == NULL || req->url == NULL)
        return imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST, "no url");
    if (req->method != NULL && !method_valid(req->method))
        return imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST, "bad method");
    if (!header_safe(req->url) ||
        (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0))
        return imp_error_new(IMP_ERR_POISON, IMP_HTTP_ERR_BAD_REQUEST,
                             "url must be http:// or https://");
    return NULL;
}

imp_error_t *imp_http_request(imp_http_client_t *c, const imp_http_request_t *req,
                              imp_http_response_t **out)
{
    *out = NULL;
    imp_error_t *err = validate_request(req);
    if (err != NULL)
        return err;
    struct curl_slist *headers = build_headers(req, &err);
    if (err != NULL)
        return err;
    imp_http_response_t *r = imp_calloc(1, sizeof(*r));
    transfer_t t = {.client = c, .resp = r, .max_body = c->max_body};
    char errbuf[CURL_ERROR_SIZE] = "";
    set_options(c, req, &t, headers, errbuf);
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r->truncated)) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
        *out = r;
    } else {
        err = failure(c, req, &t, rc, errbuf);
        imp_http_response_free(r);
    }
    /* Nothing borrowed from this call may stay in the handle. */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    return err;
}

imp_http_outcome_t imp_http_outcome(const imp_error_t *err)
{
    if (err == NULL)
        return IMP_HTTP_RESPONDED;
    if (strcmp(imp_error_code(err), IMP_HTTP_ERR_AMBIGUOUS) == 0)
        return IMP_HTTP_AMBIGUOUS;
    return IMP_HTTP_NOT_SENT;
}

/* ---- response accessors ---- */

void imp_http_response_free(imp_http_response_t *r)
{
    if (r == NULL)
        return;
    clear_headers(r);
    free(r->names);
    free(r->values);
    free(r->body);
    free(r);
}

long imp_http_response_status(const imp_http_response_t *r)
{
    return r->status;
}

const char *imp_http_response_body(const imp_http_response_t *r, size_t *len)
{
    if (len != NULL)
        *len = r->len;
    return r->body ? r->body : "";
}

bool imp_http_response_truncated(const imp_http_response_t *r)
{
    return r->truncated;
}

const char *imp_http_response_header(const imp_http_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

const char *imp_http_response_content_type(const imp_http_response_t *r)
{
    return imp_http_response_header(r, "Content-Type");
}

long long imp_http_response_retry_after_s(const imp_http_response_t *r)
{
    const char *v = imp_http_response_header(r, "Retry-After");
    if (v == NULL || *v == '\0')
        return -1;
    if (isdigit((unsigned char)*v)) {
        char *end = NULL;
        errno = 0;
        long long s = strtoll(v, &end, 10);
        return (errno == 0 && *end == '\0') ? s : -1;
    }
    time_t at = curl_getdate(v, NULL);
    if (at == (time_t)-1)
        return -1;
    time_t now = time(NULL);
    return at > now ? (long long)(at - now) : 0;
}

imp_error_t *imp_http_response_error(const imp_http_response_t *r)
{
    long s = r->status;
    if (s >= 200 && s < 300)
        return NULL;
    bool retry = s == 408 || s == 425 || s == 429 || (s >= 500 && s < 600);
    imp_error_t *err = imp_error_new(retry ? IMP_ERR_RETRIABLE : IMP_ERR_POISON,
                                     IMP_HTTP_ERR_STATUS, "http status %ld", s);
    if (r->len > 0) {
        char *detail = imp_strndup(r->body, r->len < ERROR_DETAIL_MAX ? r->len : ERROR_DETAIL_MAX);
        imp_error_set_detail(err, detail);
        free(detail);
    }
    return err;
}
